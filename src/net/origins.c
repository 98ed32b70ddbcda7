#include "net/origins.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "net/ident.h"
#include "proto/err.h"

/* One origin: its key, the sequence numbers it has accepted (top and the 64
 * below it, as a bitmap), and its token bucket (in thousandths of a
 * message). */
struct origin {
	struct km_id id;
	uint8_t pubkey[KM_PUBKEY_LEN];
	bool has_key;
	bool has_seq;
	uint64_t top;
	uint64_t window;       /* bit i: top - i was accepted */
	uint64_t tokens;
	km_ms refilled, used;
	UT_hash_handle hh;
};

#define REPLAY_WINDOW 64

struct km_origins {
	struct km_origins_config cfg;
	struct origin *map;
	size_t n;
};

struct km_origins *km_origins_new(const struct km_origins_config *cfg)
{
	struct km_origins *os = calloc(1, sizeof(*os));

	if (os)
		os->cfg = *cfg;
	return os;
}

void km_origins_del(struct km_origins *os)
{
	struct origin *o, *t;

	if (!os)
		return;
	HASH_ITER(hh, os->map, o, t) {
		HASH_DEL(os->map, o);
		free(o);
	}
	free(os);
}

/* A full table forgets the origin heard from least recently: its pin, its
 * window and its bucket (a scan, only when a new origin arrives at the cap). */
static void forget_oldest(struct km_origins *os)
{
	struct origin *o, *t, *old = NULL;

	HASH_ITER(hh, os->map, o, t)
		if (!old || o->used < old->used)
			old = o;
	if (old) {
		HASH_DEL(os->map, old);
		free(old);
		os->n--;
	}
}

static struct origin *origin_get(struct km_origins *os, const struct km_id *id,
				 km_ms now)
{
	struct origin *o;

	HASH_FIND(hh, os->map, id->b, KM_ID_LEN, o);
	if (o)
		return o;
	if (os->n >= os->cfg.max)
		forget_oldest(os);
	if (!(o = calloc(1, sizeof(*o))))
		return NULL;
	o->id = *id;
	o->tokens = (uint64_t)os->cfg.burst * 1000;
	o->refilled = o->used = now;
	HASH_ADD(hh, os->map, id.b, KM_ID_LEN, o);
	os->n++;
	return o;
}

int km_origins_pin(struct km_origins *os, const struct km_id *origin,
		   const uint8_t pubkey[static KM_PUBKEY_LEN], km_ms now)
{
	struct origin *o = origin_get(os, origin, now);

	if (!o)
		return KM_ERR_NOMEM;
	if (o->has_key && memcmp(o->pubkey, pubkey, KM_PUBKEY_LEN) != 0)
		return KM_ERR_AUTH;
	memcpy(o->pubkey, pubkey, KM_PUBKEY_LEN);
	o->has_key = true;
	return 0;
}

/* Sequence numbers: newer than top, or one of the REPLAY_WINDOW below it
 * not yet seen.  Anything older is a replay as far as we can tell. */
static bool seq_fresh(const struct origin *o, uint64_t seq)
{
	if (!o->has_seq || seq > o->top)
		return true;
	if (o->top - seq >= REPLAY_WINDOW)
		return false;
	return !(o->window & ((uint64_t)1 << (o->top - seq)));
}

static void seq_mark(struct origin *o, uint64_t seq)
{
	if (!o->has_seq) {
		o->has_seq = true;
		o->top = seq;
		o->window = 1;
	} else if (seq > o->top) {
		uint64_t shift = seq - o->top;

		o->window = shift >= REPLAY_WINDOW ? 1 : (o->window << shift) | 1;
		o->top = seq;
	} else {
		o->window |= (uint64_t)1 << (o->top - seq);
	}
}

static bool take_token(const struct km_origins *os, struct origin *o,
		       km_ms now)
{
	uint64_t cap = (uint64_t)os->cfg.burst * 1000;

	o->tokens += (now - o->refilled) * os->cfg.rate;
	if (o->tokens > cap)
		o->tokens = cap;
	o->refilled = now;
	if (o->tokens < 1000)
		return false;
	o->tokens -= 1000;
	return true;
}

enum km_origin_verdict km_origins_check(struct km_origins *os,
					const struct km_message *m,
					const uint8_t *tbs, size_t tbs_len,
					km_ms now)
{
	struct origin *o = origin_get(os, &m->origin, now);

	if (!o)
		return KM_ORIGIN_NOMEM;
	if ((o->has_key && memcmp(o->pubkey, m->pubkey, KM_PUBKEY_LEN) != 0) ||
	    !km_ident_verify(m->pubkey, tbs, tbs_len, m->sig))
		return KM_ORIGIN_FORGED;
	o->used = now;
	if (!seq_fresh(o, m->seq))
		return KM_ORIGIN_REPLAYED;
	if (!take_token(os, o, now))
		return KM_ORIGIN_RATE_LIMITED;
	memcpy(o->pubkey, m->pubkey, KM_PUBKEY_LEN);
	o->has_key = true;
	seq_mark(o, m->seq);
	return KM_ORIGIN_OK;
}
