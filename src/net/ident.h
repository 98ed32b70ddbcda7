/* Node identity keys (Ed25519, from libcrypto).  The table of keys pinned
 * per node ID is net/pins.h.
 *
 * A key pair is held as its 32-byte seed (RFC 8032's private key) plus the
 * public key derived from it.  Ed25519 signing is deterministic, so signing
 * and verifying are pure functions and fit the sans-IO core; the seed itself
 * comes from outside (the daemon reads or creates DIR/key, tests derive it
 * from a km_rng). */
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

#endif
