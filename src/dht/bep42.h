/* Node IDs tied to IP addresses (BEP 42), and the address classes the
 * routing table's Sybil defences need.
 *
 * BEP 42 makes the first 21 bits of a node ID a function of its IP: a node
 * cannot pick IDs next to a target it wants to eclipse without controlling
 * many IPs.  The rule: r = a random 3-bit number, stored in the low bits of
 * the ID's last byte; crc = crc32c((ip & mask) with r in the top bits);
 * the ID starts with the top 21 bits of crc.  Local addresses are exempt,
 * as the BEP says. */
#ifndef KM_DHT_BEP42_H
#define KM_DHT_BEP42_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/rng.h"
#include "proto/addr.h"
#include "proto/node.h"

/* CRC-32C (Castagnoli), as BEP 42 uses it. */
uint32_t km_crc32c(const uint8_t *p, size_t len);

/* True for addresses that are not globally routable: loopback, RFC 1918,
 * link-local, CGNAT (100.64/10), unspecified; IPv6 ::1, ::, fc00::/7,
 * fe80::/10, and IPv4-mapped forms of the IPv4 ones.  These are exempt from
 * BEP 42 and, unless the table is strict, from the subnet caps. */
bool km_addr_is_local(const struct km_addr *a);

/* Writes a BEP 42 ID for ip with the given 3-bit r (r & 7 is used); the
 * other bits come from rng.  ip must be IPv4 or IPv6. */
void km_bep42_make_id(const struct km_addr *ip, uint8_t r, struct km_rng *rng,
		      struct km_id *out);

/* True if id satisfies BEP 42 for ip: the first 21 bits match the crc
 * computed with r = the low 3 bits of id's last byte.  Local addresses
 * always pass. */
bool km_bep42_id_valid(const struct km_id *id, const struct km_addr *ip);

/* True if a and b are in the same /24 (IPv4) or /64 (IPv6). */
bool km_addr_same_subnet(const struct km_addr *a, const struct km_addr *b);

#endif
