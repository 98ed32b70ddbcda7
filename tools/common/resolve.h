/* Turning what a user typed into addresses, for the programs. */
#ifndef KM_TOOLS_RESOLVE_H
#define KM_TOOLS_RESOLVE_H

#include <stdbool.h>

#include "proto/addr.h"

/* km_tool_resolve()'s families: either, or just one. */
enum { KM_TOOL_ANY = 0, KM_TOOL_V4 = 1, KM_TOOL_V6 = 2 };

/* "HOST:PORT" or "[IPv6]:PORT", HOST a name or a numeric IPv4 address,
 * resolved with getaddrinfo to its first address of a family in `families`
 * (KM_TOOL_V4 | KM_TOOL_V6, or KM_TOOL_ANY for either).  Prints its own
 * message (prefixed with prog) on stderr and returns false on any error. */
bool km_tool_resolve(const char *prog, const char *spec, unsigned families,
		     struct km_addr *out);

/* Parses a decimal integer in [lo, hi] for option opt; prints an error. */
bool km_tool_parse_long(const char *prog, const char *opt, const char *s,
			long lo, long hi, long *out);

#endif
