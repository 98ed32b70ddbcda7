/* BEP 5's compact node and peer info: the `nodes`, `nodes6` and `values`
 * strings of KRPC (krpc.c), which the DHT reads and writes (dht/). */
#ifndef KM_PROTO_COMPACT_H
#define KM_PROTO_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"
#include "proto/node.h"

#define KM_COMPACT_NODE4_LEN 26  /* id 20 + IPv4 4 + port 2 */
#define KM_COMPACT_NODE6_LEN 38  /* id 20 + IPv6 16 + port 2 */
#define KM_COMPACT_PEER4_LEN 6
#define KM_COMPACT_PEER6_LEN 18

/* Compact node info: writes 26 or 38 bytes according to c->addr's family
 * and returns the count, or KM_ERR_INVAL for an address with no family. */
int km_compact_node_write(const struct km_contact *c, uint8_t *out, size_t cap);

/* Reads the i-th entry of a validated `nodes` (KM_AF_INET4) or `nodes6`
 * (KM_AF_INET6) string. */
void km_compact_node_read(const uint8_t *list, size_t i, enum km_family family,
			  struct km_contact *out);

/* Compact peer info: 6 or 18 bytes.  read returns false for other lengths. */
int km_compact_peer_write(const struct km_addr *a, uint8_t *out, size_t cap);
bool km_compact_peer_read(const uint8_t *p, size_t len, struct km_addr *out);

#endif
