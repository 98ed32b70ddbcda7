#include "dht/ratelimit.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "dht/bep42.h"

/* Tokens are counted in thousandths so that refills need no floats. */
#define MILLI 1000u

struct source {
	struct km_addr key;       /* IP (port 0), or IP and port if local */
	uint64_t tokens;          /* milli-tokens */
	km_ms refilled;           /* when tokens was last brought up to date */
	km_ms window_start;
	unsigned drops;           /* in the current window */
	km_ms banned_until;       /* 0 = not banned */
	bool verified;
	UT_hash_handle hh;
	struct source *prev, *next; /* least recently active first */
};

struct km_ratelimit {
	struct km_ratelimit_config cfg;
	struct source *by_key;
	struct source *lru;
	struct km_ratelimit_stats stats;
};

void km_ratelimit_config_default(struct km_ratelimit_config *cfg)
{
	*cfg = (struct km_ratelimit_config){
		.qps = 20,
		.burst = 40,
		.ban_drops = 200,
		.ban_window_ms = KM_SECONDS(10),
		.ban_ms = KM_MINUTES(10),
		.max_entries = 4096,
	};
}

struct km_ratelimit *km_ratelimit_new(const struct km_ratelimit_config *cfg)
{
	struct km_ratelimit *rl;

	if ((cfg->qps > 0 && cfg->burst == 0) || cfg->max_entries == 0)
		return NULL;
	rl = calloc(1, sizeof(*rl));
	if (rl)
		rl->cfg = *cfg;
	return rl;
}

static void source_free(struct km_ratelimit *rl, struct source *s)
{
	HASH_DEL(rl->by_key, s);
	DL_DELETE(rl->lru, s);
	rl->stats.entries--;
	free(s);
}

void km_ratelimit_del(struct km_ratelimit *rl)
{
	struct source *s, *tmp;

	if (!rl)
		return;
	DL_FOREACH_SAFE(rl->lru, s, tmp)
		source_free(rl, s);
	free(rl);
}

/* Built field by field on a zeroed struct: the key is hashed as raw bytes,
 * padding included. */
static struct km_addr key_of(const struct km_addr *a)
{
	struct km_addr k;

	memset(&k, 0, sizeof(k));
	k.family = a->family;
	memcpy(k.ip, a->ip, sizeof(k.ip));
	k.port = km_addr_is_local(a) ? a->port : 0;
	return k;
}

static struct source *find(const struct km_ratelimit *rl,
			   const struct km_addr *a)
{
	struct km_addr k = key_of(a);
	struct source *s;

	HASH_FIND(hh, rl->by_key, &k, sizeof(k), s);
	return s;
}

/* Finds or creates the source, and marks it most recently active.  NULL
 * only if memory runs out. */
static struct source *touch(struct km_ratelimit *rl, const struct km_addr *a,
			    km_ms now)
{
	struct source *s = find(rl, a);

	if (s) {
		DL_DELETE(rl->lru, s);
		DL_APPEND(rl->lru, s);
		return s;
	}
	if (rl->stats.entries >= rl->cfg.max_entries) {
		source_free(rl, rl->lru);
		rl->stats.evictions++;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->key = key_of(a);
	s->tokens = (uint64_t)rl->cfg.burst * MILLI;
	s->refilled = s->window_start = now;
	HASH_ADD(hh, rl->by_key, key, sizeof(s->key), s);
	DL_APPEND(rl->lru, s);
	rl->stats.entries++;
	return s;
}

bool km_ratelimit_banned(struct km_ratelimit *rl, const struct km_addr *from,
			 km_ms now)
{
	struct source *s = find(rl, from);

	if (!s || s->banned_until <= now)
		return false;
	rl->stats.banned_drops++;
	return true;
}

static void refill(const struct km_ratelimit *rl, struct source *s, km_ms now)
{
	uint64_t cap = (uint64_t)rl->cfg.burst * MILLI;
	km_ms dt = now > s->refilled ? now - s->refilled : 0;

	/* dt * qps milli-tokens; clamp dt first so the product cannot wrap. */
	if (dt > KM_SECONDS(3600))
		dt = KM_SECONDS(3600);
	s->tokens += dt * rl->cfg.qps;
	if (s->tokens > cap)
		s->tokens = cap;
	s->refilled = now;
}

static void count_drop(struct km_ratelimit *rl, struct source *s, km_ms now)
{
	rl->stats.limited++;
	if (now - s->window_start >= rl->cfg.ban_window_ms || now < s->window_start) {
		s->window_start = now;
		s->drops = 0;
	}
	if (++s->drops < rl->cfg.ban_drops || rl->cfg.ban_drops == 0)
		return;
	s->banned_until = now + rl->cfg.ban_ms;
	s->drops = 0;
	rl->stats.bans++;
}

enum km_rl_verdict km_ratelimit_query(struct km_ratelimit *rl,
				      const struct km_addr *from, km_ms now)
{
	struct source *s;

	if (rl->cfg.qps == 0)
		return KM_RL_PASS;
	s = touch(rl, from, now);
	if (!s)
		return KM_RL_LIMITED; /* out of memory: shed load */
	if (s->banned_until > now) {
		rl->stats.banned_drops++;
		return KM_RL_BANNED;
	}
	refill(rl, s, now);
	if (s->tokens >= MILLI) {
		s->tokens -= MILLI;
		return KM_RL_PASS;
	}
	count_drop(rl, s, now);
	return KM_RL_LIMITED;
}

void km_ratelimit_verify(struct km_ratelimit *rl, const struct km_addr *from,
			 km_ms now)
{
	struct source *s = touch(rl, from, now);

	if (s)
		s->verified = true;
}

bool km_ratelimit_verified(const struct km_ratelimit *rl,
			   const struct km_addr *from)
{
	const struct source *s = find(rl, from);

	return s && s->verified;
}

size_t km_ratelimit_banned_now(const struct km_ratelimit *rl, km_ms now)
{
	const struct source *s;
	size_t n = 0;

	DL_FOREACH(rl->lru, s)
		n += s->banned_until > now;
	return n;
}

struct km_ratelimit_stats km_ratelimit_stats(const struct km_ratelimit *rl)
{
	return rl->stats;
}

const struct km_ratelimit_config *km_ratelimit_config(const struct km_ratelimit *rl)
{
	return &rl->cfg;
}
