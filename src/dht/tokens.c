#include "dht/tokens.h"

#include <openssl/sha.h>
#include <string.h>

void km_tokens_init(struct km_tokens *t, struct km_rng *rng, km_ms now)
{
	km_rng_fill(rng, t->secret, sizeof(t->secret));
	km_rng_fill(rng, t->previous, sizeof(t->previous));
	t->rotated_at = now;
}

void km_tokens_tick(struct km_tokens *t, struct km_rng *rng, km_ms now)
{
	if (now < km_tokens_next_rotation(t))
		return;
	memcpy(t->previous, t->secret, sizeof(t->previous));
	km_rng_fill(rng, t->secret, sizeof(t->secret));
	t->rotated_at = now;
}

km_ms km_tokens_next_rotation(const struct km_tokens *t)
{
	return t->rotated_at + KM_TOKEN_ROTATE_MS;
}

static void token_for(const uint8_t secret[static KM_TOKEN_SECRET_LEN],
		      const struct km_addr *requester,
		      uint8_t out[static KM_TOKEN_LEN])
{
	uint8_t buf[KM_TOKEN_SECRET_LEN + 16];
	uint8_t digest[SHA_DIGEST_LENGTH];
	size_t iplen = km_addr_ip_len(requester);

	/* The IP only, not the port: BEP 5 ties tokens to the requester's IP,
	 * and NATs may change the port between get_peers and announce_peer. */
	memcpy(buf, secret, KM_TOKEN_SECRET_LEN);
	memcpy(buf + KM_TOKEN_SECRET_LEN, requester->ip, iplen);
	SHA1(buf, KM_TOKEN_SECRET_LEN + iplen, digest);
	memcpy(out, digest, KM_TOKEN_LEN);
}

void km_tokens_make(const struct km_tokens *t, const struct km_addr *requester,
		    uint8_t out[static KM_TOKEN_LEN])
{
	token_for(t->secret, requester, out);
}

bool km_tokens_check(const struct km_tokens *t, const struct km_addr *requester,
		     const uint8_t *token, size_t len)
{
	uint8_t want[KM_TOKEN_LEN];

	if (len != KM_TOKEN_LEN)
		return false;
	token_for(t->secret, requester, want);
	if (memcmp(want, token, KM_TOKEN_LEN) == 0)
		return true;
	token_for(t->previous, requester, want);
	return memcmp(want, token, KM_TOKEN_LEN) == 0;
}
