/* The record of recent peers by IP: two rotating Bloom filters (see
 * contacted.h). */
#include "dht/contacted.h"

#include <string.h>

#include "dht/rng.h"

void km_contacted_init(struct km_contacted *c, uint64_t key, km_ms now)
{
	memset(c, 0, sizeof(*c));
	c->key = key;
	c->rotated_at = now;
}

/* Generations start on a fixed grid of windows from init: entries of the
 * current one are at most a window old when it turns into the older one,
 * which is cleared a window later.  So an IP stays between one window and
 * two after its last datagram, and after two windows of silence nothing in
 * either generation is recent. */
static void rotate(struct km_contacted *c, km_ms now)
{
	km_ms windows;

	if (now < c->rotated_at + KM_CONTACTED_WINDOW_MS)
		return;
	windows = (now - c->rotated_at) / KM_CONTACTED_WINDOW_MS;
	if (windows >= 2)
		memset(c->bits[c->current], 0, sizeof(c->bits[0]));
	c->current ^= 1;
	memset(c->bits[c->current], 0, sizeof(c->bits[0]));
	c->rotated_at += windows * KM_CONTACTED_WINDOW_MS;
}

/* The IP (family included, port left out) as one keyed 64-bit hash; each
 * filter bit index is KM_CONTACTED_BITS' worth of it. */
static uint64_t hash(const struct km_contacted *c, const struct km_addr *a)
{
	uint8_t ip[16] = { 0 };
	uint64_t x, y;

	memcpy(ip, a->ip, km_addr_ip_len(a));
	memcpy(&x, ip, 8);
	memcpy(&y, ip + 8, 8);
	x = km_rng_mix64(c->key ^ x ^ a->family);
	return km_rng_mix64(x ^ y ^ (c->key >> 1));
}

#define INDEX_BITS 12 /* log2(KM_CONTACTED_BITS) */
_Static_assert(KM_CONTACTED_BITS == 1u << INDEX_BITS, "bits per generation");
_Static_assert(KM_CONTACTED_HASHES * INDEX_BITS <= 64, "indices in one hash");

static unsigned bit_index(uint64_t h, int i)
{
	return (unsigned)(h >> (i * INDEX_BITS)) & (KM_CONTACTED_BITS - 1);
}

static bool all_set(const uint64_t *bits, uint64_t h)
{
	for (int i = 0; i < KM_CONTACTED_HASHES; i++) {
		unsigned b = bit_index(h, i);

		if (!(bits[b / 64] >> (b % 64) & 1))
			return false;
	}
	return true;
}

void km_contacted_note(struct km_contacted *c, const struct km_addr *a,
		       km_ms now)
{
	uint64_t h = hash(c, a);

	rotate(c, now);
	for (int i = 0; i < KM_CONTACTED_HASHES; i++) {
		unsigned b = bit_index(h, i);

		c->bits[c->current][b / 64] |= (uint64_t)1 << (b % 64);
	}
}

bool km_contacted_maybe(struct km_contacted *c, const struct km_addr *a,
			km_ms now)
{
	uint64_t h = hash(c, a);

	rotate(c, now);
	return all_set(c->bits[0], h) || all_set(c->bits[1], h);
}
