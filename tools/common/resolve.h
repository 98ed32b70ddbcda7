/* Turning what a user typed into addresses, for the programs. */
#ifndef KM_TOOLS_RESOLVE_H
#define KM_TOOLS_RESOLVE_H

#include <stdbool.h>

#include "proto/addr.h"

/* "HOST:PORT", HOST a name or an IPv4 address, resolved with getaddrinfo
 * to its first IPv4 address.  "[v6]:PORT" is recognised and refused until
 * kadmesh speaks IPv6.  Prints its own message (prefixed with prog) on
 * stderr and returns false on any error. */
bool km_tool_resolve(const char *prog, const char *spec, struct km_addr *out);

/* Parses a decimal integer in [lo, hi] for option opt; prints an error. */
bool km_tool_parse_long(const char *prog, const char *opt, const char *s,
			long lo, long hi, long *out);

#endif
