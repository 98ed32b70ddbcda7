/* Node IDs tied to IP addresses (BEP 42).
 *
 * BEP 42 makes the first 21 bits of a node ID a function of its IP: a node
 * cannot pick IDs next to a target it wants to eclipse without controlling
 * many IPs.  The rule: r = a random 3-bit number, stored in the low bits of
 * the ID's last byte; crc = crc32c((ip & mask) with r in the top bits);
 * the ID starts with the top 21 bits of crc.  Local addresses are exempt,
 * as the BEP says.  The address classes (km_addr_is_local,
 * km_addr_same_subnet) are in proto/addr.h. */
#ifndef KM_DHT_BEP42_H
#define KM_DHT_BEP42_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/rng.h"
#include "proto/addr.h"
#include "proto/node.h"

/* CRC-32C (Castagnoli), as BEP 42 uses it. */
uint32_t km_bep42_crc32c(const uint8_t *p, size_t len);

/* Writes a BEP 42 ID for ip with the given 3-bit r (r & 7 is used); the
 * other bits come from rng.  ip must be IPv4 or IPv6. */
void km_bep42_make_id(const struct km_addr *ip, uint8_t r, struct km_rng *rng,
		      struct km_id *out);

/* True if id satisfies BEP 42 for ip: the first 21 bits match the crc
 * computed with r = the low 3 bits of id's last byte.  Local addresses
 * always pass. */
bool km_bep42_id_valid(const struct km_id *id, const struct km_addr *ip);

#endif
