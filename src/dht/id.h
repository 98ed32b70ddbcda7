/* 160-bit node IDs and the XOR metric.
 *
 * Bits are numbered from the most significant bit of b[0] (bit 0) to the
 * least significant bit of b[19] (bit 159), so "common prefix length" and
 * "bucket index" read the same way as in the Kademlia paper. */
#ifndef KM_DHT_ID_H
#define KM_DHT_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/rng.h"
#include "proto/node.h"

bool km_id_eq(const struct km_id *a, const struct km_id *b);

/* out = a XOR b; out may alias a or b. */
void km_id_xor(const struct km_id *a, const struct km_id *b, struct km_id *out);

/* Compares a and b as 160-bit big-endian numbers: <0, 0, >0. */
int km_id_cmp(const struct km_id *a, const struct km_id *b);

/* <0 if a is closer to target than b, 0 if equal, >0 if farther. */
int km_id_cmp_distance(const struct km_id *target, const struct km_id *a,
		       const struct km_id *b);

/* Number of leading bits a and b share: 0..160. */
int km_id_cpl(const struct km_id *a, const struct km_id *b);

/* Bit i (0 = most significant). */
bool km_id_bit(const struct km_id *id, int i);

/* Writes 40 lowercase hex characters and a NUL. */
void km_id_to_hex(const struct km_id *id, char out[static KM_ID_HEXLEN + 1]);

/* Parses exactly 40 hex characters (either case) followed by NUL. */
bool km_id_from_hex(const char *hex, struct km_id *out);

/* A uniformly random ID that keeps the first `bits` bits of base. */
void km_id_random_with_prefix(const struct km_id *base, int bits,
			      struct km_rng *rng, struct km_id *out);

void km_id_random(struct km_rng *rng, struct km_id *out);

/* SHA-1 of data, via libcrypto. */
void km_id_sha1(const void *data, size_t len, struct km_id *out);

#endif
