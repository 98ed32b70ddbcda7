/* announce_peer tokens (BEP 5).
 *
 * A token is a keyed hash of the requester's IP, so it proves the requester
 * can receive packets at that IP without the node storing anything per
 * requester.  The secret rotates every KM_TOKEN_ROTATE_MS, and a token made
 * with the previous secret is still accepted, so a token lives between 5
 * and 10 minutes. */
#ifndef KM_DHT_TOKENS_H
#define KM_DHT_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "dht/rng.h"

#define KM_TOKEN_LEN 8
#define KM_TOKEN_SECRET_LEN 16
#define KM_TOKEN_ROTATE_MS KM_MINUTES(5)

struct km_tokens {
	uint8_t secret[KM_TOKEN_SECRET_LEN];
	uint8_t previous[KM_TOKEN_SECRET_LEN];
	km_ms rotated_at;
};

void km_tokens_init(struct km_tokens *t, struct km_rng *rng, km_ms now);

/* Rotates the secret if KM_TOKEN_ROTATE_MS has passed. */
void km_tokens_tick(struct km_tokens *t, struct km_rng *rng, km_ms now);
km_ms km_tokens_next_rotation(const struct km_tokens *t);

void km_tokens_make(const struct km_tokens *t, const struct km_addr *requester,
		    uint8_t out[static KM_TOKEN_LEN]);
bool km_tokens_check(const struct km_tokens *t, const struct km_addr *requester,
		     const uint8_t *token, size_t len);

#endif
