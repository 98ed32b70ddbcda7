#include "dht/rng.h"

#include <string.h>

uint64_t km_rng_u64(struct km_rng *rng)
{
	uint64_t v;

	km_rng_fill(rng, &v, sizeof(v));
	return v;
}

uint64_t km_rng_below(struct km_rng *rng, uint64_t n)
{
	/* Reject the top partial range so every residue is equally likely. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t v;

	do
		v = km_rng_u64(rng);
	while (v >= limit);
	return v % n;
}

uint64_t km_rng_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
