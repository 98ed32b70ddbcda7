#include "dht/ratelimit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dht/bep42.h"
#include "dht/rng.h"

/* Tokens are counted in thousandths so that refills need no floats. */
#define MILLI 1000u
#define NIL UINT32_MAX
/* The first allocation; every later one is half as large again.  A node
 * that hears from a few hundred sources (a DHT of 100,000 nodes) holds a
 * few hundred entries, not the 4,096 of the cap. */
#define MIN_CAP 16

/* One source, 48 bytes.  Sources live in one array, linked by index into
 * least-recently-active order, and are found through an open-addressing
 * index: no allocation per source, no pointers to fix when the array
 * moves.  Times are 32-bit milliseconds since the limiter's epoch, which
 * moves forward before they could wrap (see clock_of()). */
struct source {
	uint8_t ip[16];           /* the key: IP, port (0 unless local), family */
	uint16_t port;
	uint8_t family;
	bool verified;
	uint32_t tokens;          /* milli-tokens; burst * MILLI fits */
	uint32_t drops;           /* in the current window */
	uint32_t prev, next;      /* least recently active first; NIL ends */
	uint32_t refilled;        /* when tokens was last brought up to date */
	uint32_t window_start;
	uint32_t banned_until;    /* 0 = not banned */
};

/* Epoch times stay below 2^31; a rebase brings now back to 2^30.  Ban and
 * window lengths are capped at 2^30 ms (12 days) so they always fit. */
#define CLOCK_LIMIT (1u << 31)
#define CLOCK_REBASED (1u << 30)

struct km_ratelimit {
	struct km_ratelimit_config cfg;
	uint64_t key;             /* hash key: see km_ratelimit_set_key() */
	km_ms epoch;              /* what time 0 of the sources means */
	bool started;             /* epoch is set */
	struct source *src;       /* src[0 .. stats.entries) in use */
	uint32_t cap;             /* room in src */
	uint32_t *slot;           /* index + 1 into src, and a tag; 0 = empty */
	uint32_t nslots;          /* a power of two, > cap * 4 / 3 */
	uint32_t oldest, newest;
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

	if ((cfg->qps > 0 && cfg->burst == 0) || cfg->burst > UINT32_MAX / MILLI ||
	    cfg->max_entries == 0 || cfg->max_entries > KM_RATELIMIT_MAX_ENTRIES)
		return NULL;
	rl = calloc(1, sizeof(*rl));
	if (!rl)
		return NULL;
	rl->cfg = *cfg;
	if (rl->cfg.ban_ms > CLOCK_REBASED)
		rl->cfg.ban_ms = CLOCK_REBASED;
	if (rl->cfg.ban_window_ms > CLOCK_REBASED)
		rl->cfg.ban_window_ms = CLOCK_REBASED;
	rl->oldest = rl->newest = NIL;
	return rl;
}

void km_ratelimit_del(struct km_ratelimit *rl)
{
	if (!rl)
		return;
	free(rl->src);
	free(rl->slot);
	free(rl);
}

static uint32_t probe(const struct km_ratelimit *rl, const struct source *k);
static uint32_t slot_value(const struct km_ratelimit *rl, uint32_t i);

void km_ratelimit_set_key(struct km_ratelimit *rl, uint64_t key)
{
	rl->key = key;
	if (!rl->slot)
		return;
	/* Every home moves: rebuild the index in place. */
	memset(rl->slot, 0, rl->nslots * sizeof(*rl->slot));
	for (uint32_t i = 0; i < rl->stats.entries; i++)
		rl->slot[probe(rl, &rl->src[i])] = slot_value(rl, i);
}

size_t km_ratelimit_mem(const struct km_ratelimit *rl)
{
	return sizeof(*rl) + (size_t)rl->cap * sizeof(*rl->src) +
	       (size_t)rl->nslots * sizeof(*rl->slot);
}

static uint32_t sub_floor0(uint32_t t, km_ms d)
{
	return t > d ? (uint32_t)(t - d) : 0;
}

/* now on the sources' clock.  Before it reaches 2^31 the epoch moves
 * forward and every stored time with it; a time pushed below the epoch
 * becomes 0, "long ago", which is what it was: no ban or drop window is
 * that long, and a bucket that old is full anyway. */
static uint32_t clock_of(struct km_ratelimit *rl, km_ms now)
{
	km_ms shift;

	if (!rl->started) {
		rl->epoch = now;
		rl->started = true;
	}
	if (now < rl->epoch)
		return 0; /* a clock that stepped back: as early as we know */
	if (now - rl->epoch < CLOCK_LIMIT)
		return (uint32_t)(now - rl->epoch);
	shift = now - rl->epoch - CLOCK_REBASED;
	rl->epoch += shift;
	for (uint32_t i = 0; i < rl->stats.entries; i++) {
		struct source *s = &rl->src[i];

		s->refilled = sub_floor0(s->refilled, shift);
		s->window_start = sub_floor0(s->window_start, shift);
		s->banned_until = sub_floor0(s->banned_until, shift);
	}
	return CLOCK_REBASED;
}

/* The same without moving anything, for read-only questions: a time past
 * the epoch's range is later than anything stored. */
static uint32_t clock_peek(const struct km_ratelimit *rl, km_ms now)
{
	if (!rl->started || now < rl->epoch)
		return 0;
	return now - rl->epoch < UINT32_MAX ? (uint32_t)(now - rl->epoch) :
					       UINT32_MAX;
}

/* The key of an address, as a source with everything else zero.  Local
 * addresses keep their port: there many honest nodes share one host. */
static struct source key_of(const struct km_addr *a)
{
	struct source k;

	memset(&k, 0, sizeof(k));
	k.family = a->family;
	memcpy(k.ip, a->ip, km_addr_ip_len(a));
	k.port = km_addr_is_local(a) ? a->port : 0;
	return k;
}

static bool same_key(const struct source *a, const struct source *b)
{
	return a->family == b->family && a->port == b->port &&
	       memcmp(a->ip, b->ip, sizeof(a->ip)) == 0;
}

/* Keyed, so that a flooder who picks its source addresses cannot pick
 * ones that pile up in one run of the index. */
static uint64_t hash(const struct km_ratelimit *rl, const struct source *k)
{
	uint64_t a, b;

	memcpy(&a, k->ip, 8);
	memcpy(&b, k->ip + 8, 8);
	a = km_rng_mix64(rl->key ^ a ^ ((uint64_t)k->port << 8 | k->family));
	return km_rng_mix64(a ^ b ^ (rl->key >> 1));
}

static uint32_t home(const struct km_ratelimit *rl, const struct source *k)
{
	return (uint32_t)hash(rl, k) & (rl->nslots - 1);
}

/* A slot holds the source's index + 1 in its low 24 bits and 8 more bits
 * of its hash above them: most mismatches are seen without touching the
 * source itself, which is the cache miss that costs. */
#define SLOT_INDEX(v) ((v) & 0xffffffu)

static uint32_t slot_value(const struct km_ratelimit *rl, uint32_t i)
{
	return (uint32_t)(hash(rl, &rl->src[i]) >> 56) << 24 | (i + 1);
}

/* The index position holding k, or of the empty slot where it would go. */
static uint32_t probe(const struct km_ratelimit *rl, const struct source *k)
{
	uint64_t h = hash(rl, k);
	uint32_t i = (uint32_t)h & (rl->nslots - 1), tag = (uint32_t)(h >> 56);

	while (rl->slot[i] && (rl->slot[i] >> 24 != tag ||
			       !same_key(&rl->src[SLOT_INDEX(rl->slot[i]) - 1], k)))
		i = (i + 1) & (rl->nslots - 1);
	return i;
}

static struct source *find(const struct km_ratelimit *rl,
			   const struct km_addr *a)
{
	struct source k = key_of(a);
	uint32_t i;

	if (rl->stats.entries == 0 || !rl->slot)
		return NULL;
	i = probe(rl, &k);
	return rl->slot[i] ? &rl->src[SLOT_INDEX(rl->slot[i]) - 1] : NULL;
}

/* Backward-shift deletion: later entries of the run move up, so that a
 * lookup never stops early at the hole. */
static void slot_clear(struct km_ratelimit *rl, uint32_t i)
{
	uint32_t mask = rl->nslots - 1, j = i;

	for (;;) {
		uint32_t h;

		j = (j + 1) & mask;
		if (!rl->slot[j])
			break;
		h = home(rl, &rl->src[SLOT_INDEX(rl->slot[j]) - 1]);
		/* slot[j] may fill the hole at i unless its home lies
		 * cyclically in (i, j]. */
		if (((j - h) & mask) >= ((j - i) & mask)) {
			rl->slot[i] = rl->slot[j];
			i = j;
		}
	}
	rl->slot[i] = 0;
}

static void lru_unlink(struct km_ratelimit *rl, uint32_t i)
{
	struct source *s = &rl->src[i];

	if (s->prev != NIL)
		rl->src[s->prev].next = s->next;
	else
		rl->oldest = s->next;
	if (s->next != NIL)
		rl->src[s->next].prev = s->prev;
	else
		rl->newest = s->prev;
}

static void lru_append(struct km_ratelimit *rl, uint32_t i)
{
	rl->src[i].prev = rl->newest;
	rl->src[i].next = NIL;
	if (rl->newest != NIL)
		rl->src[rl->newest].next = i;
	else
		rl->oldest = i;
	rl->newest = i;
}

/* An index with room for cap entries at a load of at most 3/4. */
static bool reindex(struct km_ratelimit *rl, uint32_t cap)
{
	uint32_t n = 16, *slot;

	while (n < (uint64_t)cap * 4 / 3 + 1)
		n *= 2;
	if (n == rl->nslots && rl->slot)
		return true;
	slot = calloc(n, sizeof(*slot));
	if (!slot)
		return false;
	free(rl->slot);
	rl->slot = slot;
	rl->nslots = n;
	for (uint32_t i = 0; i < rl->stats.entries; i++)
		rl->slot[probe(rl, &rl->src[i])] = slot_value(rl, i);
	return true;
}

/* Room for one more source, up to max_entries: half as much again each
 * time.  False if memory ran out. */
static bool grow(struct km_ratelimit *rl)
{
	size_t cap = rl->cap < MIN_CAP ? MIN_CAP : rl->cap + rl->cap / 2;
	struct source *src;

	if (cap > rl->cfg.max_entries)
		cap = rl->cfg.max_entries;
	/* The index first: it must never fill up, whatever fails. */
	if (!reindex(rl, (uint32_t)cap))
		return false;
	src = realloc(rl->src, cap * sizeof(*src));
	if (!src)
		return false;
	rl->src = src;
	rl->cap = (uint32_t)cap;
	return true;
}

/* The slot of the least recently active source, emptied for reuse. */
static uint32_t evict_oldest(struct km_ratelimit *rl)
{
	uint32_t i = rl->oldest;

	slot_clear(rl, probe(rl, &rl->src[i]));
	lru_unlink(rl, i);
	rl->stats.evictions++;
	rl->stats.entries--;
	return i;
}

/* Finds or creates the source, and marks it most recently active.  NULL
 * only if memory runs out. */
static struct source *touch(struct km_ratelimit *rl, const struct km_addr *a,
			    uint32_t now)
{
	struct source *s = find(rl, a);
	uint32_t i;

	if (s) {
		i = (uint32_t)(s - rl->src);
		lru_unlink(rl, i);
		lru_append(rl, i);
		return s;
	}
	if (rl->stats.entries >= rl->cfg.max_entries)
		i = evict_oldest(rl);
	else if (rl->stats.entries < rl->cap || grow(rl))
		i = (uint32_t)rl->stats.entries;
	else
		return NULL;
	s = &rl->src[i];
	*s = key_of(a);
	s->tokens = rl->cfg.burst * MILLI;
	s->refilled = s->window_start = now;
	rl->slot[probe(rl, s)] = slot_value(rl, i);
	lru_append(rl, i);
	rl->stats.entries++;
	return s;
}

bool km_ratelimit_banned(struct km_ratelimit *rl, const struct km_addr *from,
			 km_ms now)
{
	struct source *s = find(rl, from);

	if (!s || s->banned_until <= clock_peek(rl, now))
		return false;
	rl->stats.banned_drops++;
	return true;
}

static void refill(const struct km_ratelimit *rl, struct source *s,
		   uint32_t now)
{
	uint64_t cap = (uint64_t)rl->cfg.burst * MILLI, tokens;
	uint64_t dt = now > s->refilled ? now - s->refilled : 0;

	/* dt * qps milli-tokens: dt < 2^31 (see clock_of) and qps < 2^32, so
	 * the product cannot wrap. */
	tokens = s->tokens + dt * rl->cfg.qps;
	s->tokens = (uint32_t)(tokens > cap ? cap : tokens);
	s->refilled = now;
}

static void count_drop(struct km_ratelimit *rl, struct source *s,
		       uint32_t now)
{
	rl->stats.limited++;
	if (now - s->window_start >= rl->cfg.ban_window_ms || now < s->window_start) {
		s->window_start = now;
		s->drops = 0;
	}
	if (++s->drops < rl->cfg.ban_drops || rl->cfg.ban_drops == 0)
		return;
	s->banned_until = now + (uint32_t)rl->cfg.ban_ms;
	s->drops = 0;
	rl->stats.bans++;
}

enum km_rl_verdict km_ratelimit_query(struct km_ratelimit *rl,
				      const struct km_addr *from, km_ms now_ms)
{
	uint32_t now;
	struct source *s;

	if (rl->cfg.qps == 0)
		return KM_RL_PASS;
	now = clock_of(rl, now_ms);
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
	struct source *s = touch(rl, from, clock_of(rl, now));

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
	uint32_t t = clock_peek(rl, now);
	size_t n = 0;

	for (size_t i = 0; i < rl->stats.entries; i++)
		n += rl->src[i].banned_until > t;
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
