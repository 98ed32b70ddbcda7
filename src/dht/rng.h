/* Randomness as an input.
 *
 * The core never reads a random source by itself: whoever owns a node passes
 * a km_rng in.  The daemon fills it from the OS; tests and the simulator use
 * km_prng, a seeded xoshiro256** generator, so that runs repeat exactly. */
#ifndef KM_DHT_RNG_H
#define KM_DHT_RNG_H

#include <stddef.h>
#include <stdint.h>

struct km_rng {
	void (*fill)(void *ctx, void *buf, size_t len);
	void *ctx;
};

static inline void km_rng_fill(struct km_rng *rng, void *buf, size_t len)
{
	rng->fill(rng->ctx, buf, len);
}

uint64_t km_rng_u64(struct km_rng *rng);

/* splitmix64's finalizer: a bijection that spreads every input bit over
 * the output, for keyed hashes of addresses (ratelimit.c, contacted.c). */
uint64_t km_rng_mix64(uint64_t x);

/* Uniform in [0, n); n must be > 0.  Unbiased (rejection sampling). */
uint64_t km_rng_below(struct km_rng *rng, uint64_t n);

/* A deterministic generator: xoshiro256** seeded through splitmix64
 * (prng.c). */
struct km_prng {
	uint64_t s[4];
};

void km_prng_seed(struct km_prng *p, uint64_t seed);
uint64_t km_prng_next(struct km_prng *p);

/* A km_rng view of p; p must outlive every use of the result. */
struct km_rng km_prng_rng(struct km_prng *p);

#endif
