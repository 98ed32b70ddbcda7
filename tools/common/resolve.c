#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "uv/addr.h"

bool km_tool_parse_long(const char *prog, const char *opt, const char *s,
			long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
		fprintf(stderr, "%s: %s: '%s' is not a number from %ld to %ld\n",
			prog, opt, s, lo, hi);
		return false;
	}
	*out = v;
	return true;
}

/* HOST:PORT, or [HOST]:PORT for an IPv6 address with its colons. */
static bool split_host_port(const char *prog, const char *spec, char *host,
			    size_t cap, const char **port)
{
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	size_t hlen;

	if (!colon || colon == spec || colon[1] == '\0') {
		fprintf(stderr, "%s: %s: expected HOST:PORT or [IPv6]:PORT\n",
			prog, spec);
		return false;
	}
	hlen = (size_t)(colon - spec);
	if (spec[0] == '[') {
		if (hlen < 3 || spec[hlen - 1] != ']') {
			fprintf(stderr, "%s: %s: expected [IPv6]:PORT\n", prog,
				spec);
			return false;
		}
		h++;
		hlen -= 2;
	} else if (memchr(spec, ':', hlen)) {
		fprintf(stderr, "%s: %s: an IPv6 address needs brackets: "
			"[IPv6]:PORT\n", prog, spec);
		return false;
	}
	if (hlen >= cap) {
		fprintf(stderr, "%s: %s: host name too long\n", prog, spec);
		return false;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = colon + 1;
	return true;
}

static bool family_wanted(unsigned families, int af)
{
	if (families == KM_TOOL_ANY)
		return af == AF_INET || af == AF_INET6;
	return (af == AF_INET && (families & KM_TOOL_V4)) ||
	       (af == AF_INET6 && (families & KM_TOOL_V6));
}

bool km_tool_resolve(const char *prog, const char *spec, unsigned families,
		     struct km_addr *out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_DGRAM };
	struct addrinfo *res = NULL;
	char host[256];
	const char *port;
	bool found = false;
	long p;
	int rc;

	if (!split_host_port(prog, spec, host, sizeof(host), &port) ||
	    !km_tool_parse_long(prog, spec, port, 1, 65535, &p))
		return false;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, host, gai_strerror(rc));
		return false;
	}
	for (struct addrinfo *ai = res; ai && !found; ai = ai->ai_next)
		found = family_wanted(families, ai->ai_family) &&
			km_uv_addr_from_sockaddr(ai->ai_addr, out);
	freeaddrinfo(res);
	if (!found)
		fprintf(stderr, "%s: %s: no %s address\n", prog, host,
			families == KM_TOOL_V4 ? "IPv4" :
			families == KM_TOOL_V6 ? "IPv6" : "usable");
	return found;
}
