/* Node identity keys (Ed25519, from libcrypto) and the table of pinned keys.
 *
 * A key pair is held as its 32-byte seed (RFC 8032's private key) plus the
 * public key derived from it.  Ed25519 signing is deterministic, so signing
 * and verifying are pure functions and fit the sans-IO core; the seed itself
 * comes from outside (the daemon reads or creates DIR/key, tests derive it
 * from a km_rng).
 *
 * Pinning is trust on first use: the first key seen for a node ID is kept,
 * and a later, different key for that ID is refused.  The table is bounded;
 * when full, the least recently used pin is forgotten. */
#ifndef KM_NET_IDENT_H
#define KM_NET_IDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"

#define KM_IDENT_SEED_LEN 32
#define KM_IDENT_PUB_LEN 32
#define KM_IDENT_SIG_LEN 64

struct km_ident {
	uint8_t seed[KM_IDENT_SEED_LEN];
	uint8_t pub[KM_IDENT_PUB_LEN];
};

/* Derives the public key of seed.  Returns 0 or KM_ERR_NOMEM. */
int km_ident_from_seed(struct km_ident *k,
		       const uint8_t seed[static KM_IDENT_SEED_LEN]);

/* Signs msg[0..len).  Returns 0 or KM_ERR_NOMEM. */
int km_ident_sign(const struct km_ident *k, const uint8_t *msg, size_t len,
		  uint8_t sig[static KM_IDENT_SIG_LEN]);

/* True if sig is pub's signature of msg[0..len). */
bool km_ident_verify(const uint8_t pub[static KM_IDENT_PUB_LEN],
		     const uint8_t *msg, size_t len,
		     const uint8_t sig[static KM_IDENT_SIG_LEN]);

/* ---- Pinned keys ---- */

struct km_pins;

/* max == 0 means 4096 entries. */
struct km_pins *km_pins_new(size_t max);
void km_pins_del(struct km_pins *p); /* NULL is a no-op */

/* Checks pub against the key pinned for id, pinning it if there is none.
 * Returns 0 (pinned now, or the same key as before), KM_ERR_AUTH (another
 * key is pinned for id) or KM_ERR_NOMEM. */
int km_pins_check(struct km_pins *p, const struct km_id *id,
		  const uint8_t pub[static KM_IDENT_PUB_LEN], km_ms now);

/* The key pinned for id, or NULL. */
const uint8_t *km_pins_find(const struct km_pins *p, const struct km_id *id);

size_t km_pins_count(const struct km_pins *p);

#endif
