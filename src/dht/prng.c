/* km_prng (dht/rng.h): the seeded generator that tests and the simulator
 * pass in as a km_rng, so that their runs repeat exactly. */
#include "dht/rng.h"

#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
	return km_rng_mix64(*x += 0x9e3779b97f4a7c15ULL);
}

void km_prng_seed(struct km_prng *p, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		p->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t km_prng_next(struct km_prng *p)
{
	uint64_t *s = p->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

static void prng_fill(void *ctx, void *buf, size_t len)
{
	struct km_prng *p = ctx;
	uint8_t *out = buf;

	while (len > 0) {
		uint64_t v = km_prng_next(p);
		size_t n = len < sizeof(v) ? len : sizeof(v);

		memcpy(out, &v, n);
		out += n;
		len -= n;
	}
}

struct km_rng km_prng_rng(struct km_prng *p)
{
	return (struct km_rng){ .fill = prng_fill, .ctx = p };
}
