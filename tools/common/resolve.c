#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/uv_addr.h"

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

static bool split_host_port(const char *prog, const char *spec, char *host,
			    size_t cap, const char **port)
{
	const char *colon = strrchr(spec, ':');
	size_t hlen;

	if (spec[0] == '[') {
		fprintf(stderr, "%s: %s: IPv6 addresses are not supported yet\n",
			prog, spec);
		return false;
	}
	if (!colon || colon == spec || colon[1] == '\0') {
		fprintf(stderr, "%s: %s: expected HOST:PORT\n", prog, spec);
		return false;
	}
	hlen = (size_t)(colon - spec);
	if (memchr(spec, ':', hlen)) {
		fprintf(stderr, "%s: %s: IPv6 addresses need [brackets], and are "
			"not supported yet\n", prog, spec);
		return false;
	}
	if (hlen >= cap) {
		fprintf(stderr, "%s: %s: host name too long\n", prog, spec);
		return false;
	}
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	*port = colon + 1;
	return true;
}

bool km_tool_resolve(const char *prog, const char *spec, struct km_addr *out)
{
	struct addrinfo hints = { .ai_family = AF_INET,
				  .ai_socktype = SOCK_DGRAM };
	struct addrinfo *res = NULL;
	char host[256];
	const char *port;
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
	rc = km_uv_addr_from_sockaddr(res->ai_addr, out);
	freeaddrinfo(res);
	if (!rc)
		fprintf(stderr, "%s: %s: no IPv4 address\n", prog, host);
	return rc;
}
