/* The OS's randomness for the core, drawn through a small pool. */
#define _GNU_SOURCE /* struct mmsghdr in node_internal.h */
#include "uv/node_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static void getrandom_all(uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		/* Without randomness, tokens and transaction ids turn
		 * guessable; refusing to run is the only safe answer. */
		if (n < 0)
			abort();
		p += n;
		len -= (size_t)n;
	}
}

/* Draws from a small pool so that the core's many 2- and 8-byte requests
 * do not cost a system call each; used bytes are wiped. */
void km_uv_rng_fill(void *ctx, void *buf, size_t len)
{
	struct km_uv_rng *r = ctx;
	uint8_t *src;

	if (len > RNG_POOL / 2) {
		getrandom_all(buf, len);
		return;
	}
	if (r->avail < len) {
		getrandom_all(r->pool, RNG_POOL);
		r->avail = RNG_POOL;
	}
	src = r->pool + RNG_POOL - r->avail;
	memcpy(buf, src, len);
	memset(src, 0, len);
	r->avail -= len;
}
