/* A network address as plain bytes, with no socket headers.
 *
 * The core passes these around; only the libuv drivers convert them to and
 * from struct sockaddr.  IPv4 addresses use the first 4 bytes of ip[]; the
 * rest are zero, so km_addr_eq() can compare whole structs field by field. */
#ifndef KM_PROTO_ADDR_H
#define KM_PROTO_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum km_family { KM_AF_NONE = 0, KM_AF_INET4 = 4, KM_AF_INET6 = 6 };

struct km_addr {
	uint8_t family;   /* enum km_family */
	uint8_t ip[16];   /* network byte order */
	uint16_t port;    /* host byte order */
};

/* Longest string km_addr_format() writes, including the NUL:
 * "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535". */
#define KM_ADDR_STRLEN 56

void km_addr_set_v4(struct km_addr *a, const uint8_t ip[static 4], uint16_t port);
void km_addr_set_v6(struct km_addr *a, const uint8_t ip[static 16], uint16_t port);

/* Length of the IP in bytes: 4, 16, or 0 for KM_AF_NONE. */
size_t km_addr_ip_len(const struct km_addr *a);

bool km_addr_eq(const struct km_addr *a, const struct km_addr *b);
bool km_addr_ip_eq(const struct km_addr *a, const struct km_addr *b);

/* "1.2.3.4:5" or "[::1]:5".  Returns the string length, or KM_ERR_BUF. */
int km_addr_format(const struct km_addr *a, char *buf, size_t cap);

/* Parses a numeric "IP:PORT" or "[IPv6]:PORT".  Names are not resolved here;
 * that is I/O and belongs to the drivers.  Returns false on any error. */
bool km_addr_parse(const char *s, struct km_addr *out);

/* Parses a bare numeric IP (no port) into out with port 0. */
bool km_addr_parse_ip(const char *s, struct km_addr *out);

/* True for addresses that are not globally routable: loopback, RFC 1918,
 * link-local, CGNAT (100.64/10), unspecified; IPv6 ::1, ::, fc00::/7,
 * fe80::/10, and IPv4-mapped forms of the IPv4 ones.  These are exempt from
 * BEP 42 and, unless the table is strict, from the subnet caps
 * (dht/bep42.h, dht/table.c). */
bool km_addr_is_local(const struct km_addr *a);

/* True if a and b are in the same /24 (IPv4) or /64 (IPv6). */
bool km_addr_same_subnet(const struct km_addr *a, const struct km_addr *b);

#endif
