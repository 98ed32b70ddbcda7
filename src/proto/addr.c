#include "proto/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/err.h"

void km_addr_set_v4(struct km_addr *a, const uint8_t ip[static 4], uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->family = KM_AF_INET4;
	memcpy(a->ip, ip, 4);
	a->port = port;
}

void km_addr_set_v6(struct km_addr *a, const uint8_t ip[static 16], uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->family = KM_AF_INET6;
	memcpy(a->ip, ip, 16);
	a->port = port;
}

size_t km_addr_ip_len(const struct km_addr *a)
{
	switch (a->family) {
	case KM_AF_INET4: return 4;
	case KM_AF_INET6: return 16;
	default: return 0;
	}
}

bool km_addr_ip_eq(const struct km_addr *a, const struct km_addr *b)
{
	return a->family == b->family &&
	       memcmp(a->ip, b->ip, km_addr_ip_len(a)) == 0;
}

bool km_addr_eq(const struct km_addr *a, const struct km_addr *b)
{
	return km_addr_ip_eq(a, b) && a->port == b->port;
}

int km_addr_format(const struct km_addr *a, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];
	int n;

	if (a->family == KM_AF_INET4) {
		inet_ntop(AF_INET, a->ip, ip, sizeof(ip));
		n = snprintf(buf, cap, "%s:%u", ip, a->port);
	} else if (a->family == KM_AF_INET6) {
		inet_ntop(AF_INET6, a->ip, ip, sizeof(ip));
		n = snprintf(buf, cap, "[%s]:%u", ip, a->port);
	} else {
		n = snprintf(buf, cap, "-");
	}
	if (n < 0 || (size_t)n >= cap)
		return KM_ERR_BUF;
	return n;
}

bool km_addr_parse_ip(const char *s, struct km_addr *out)
{
	uint8_t ip[16];

	if (inet_pton(AF_INET, s, ip) == 1) {
		km_addr_set_v4(out, ip, 0);
		return true;
	}
	if (inet_pton(AF_INET6, s, ip) == 1) {
		km_addr_set_v6(out, ip, 0);
		return true;
	}
	return false;
}

static bool parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return false;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

bool km_addr_parse(const char *s, struct km_addr *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *colon;
	size_t hlen;
	uint16_t port;
	bool bracketed = s[0] == '[';

	if (bracketed) {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return false;
		hlen = (size_t)(close - s - 1);
		colon = close + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return false;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host) || !parse_port(colon + 1, &port))
		return false;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (!km_addr_parse_ip(host, out))
		return false;
	if (!bracketed && out->family == KM_AF_INET6)
		return false; /* "::1:80" is ambiguous; require brackets */
	out->port = port;
	return true;
}

static bool v4_local(const uint8_t *ip)
{
	return ip[0] == 0 || ip[0] == 10 || ip[0] == 127 ||
	       (ip[0] == 100 && (ip[1] & 0xc0) == 64) ||
	       (ip[0] == 169 && ip[1] == 254) ||
	       (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
	       (ip[0] == 192 && ip[1] == 168);
}

bool km_addr_is_local(const struct km_addr *a)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	static const uint8_t zero[15];

	if (a->family == KM_AF_INET4)
		return v4_local(a->ip);
	if (a->family != KM_AF_INET6)
		return true;
	if (memcmp(a->ip, mapped, sizeof(mapped)) == 0)
		return v4_local(a->ip + 12);
	if (memcmp(a->ip, zero, sizeof(zero)) == 0)
		return a->ip[15] <= 1; /* :: and ::1 */
	return (a->ip[0] & 0xfe) == 0xfc ||                  /* fc00::/7 */
	       (a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80); /* fe80::/10 */
}

bool km_addr_same_subnet(const struct km_addr *a, const struct km_addr *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == KM_AF_INET4)
		return memcmp(a->ip, b->ip, 3) == 0;
	return a->family == KM_AF_INET6 && memcmp(a->ip, b->ip, 8) == 0;
}
