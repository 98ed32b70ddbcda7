#include "dht/peers.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "proto/err.h"

struct stored_peer {
	struct km_addr addr;
	km_ms announced;
};

/* One info-hash and its peers, oldest announcement first. */
struct swarm {
	struct km_id info_hash;
	size_t count, cap;
	struct stored_peer *peers;
	UT_hash_handle hh;
};

struct km_peers {
	struct km_peers_config cfg;
	struct swarm *swarms;
	size_t total;
	unsigned long rejected_full, expired;
};

void km_peers_config_default(struct km_peers_config *cfg)
{
	cfg->max_per_hash = 100;
	cfg->max_hashes = 4096;
	cfg->max_total = 32768;
	cfg->ttl_ms = KM_MINUTES(30);
}

struct km_peers *km_peers_new(const struct km_peers_config *cfg)
{
	struct km_peers *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (cfg)
		s->cfg = *cfg;
	else
		km_peers_config_default(&s->cfg);
	return s;
}

static void swarm_del(struct km_peers *s, struct swarm *w)
{
	HASH_DEL(s->swarms, w);
	s->total -= w->count;
	free(w->peers);
	free(w);
}

void km_peers_del(struct km_peers *s)
{
	struct swarm *w, *tmp;

	if (!s)
		return;
	HASH_ITER(hh, s->swarms, w, tmp)
		swarm_del(s, w);
	free(s);
}

static struct swarm *swarm_find(const struct km_peers *s, const struct km_id *ih)
{
	struct swarm *w;

	HASH_FIND(hh, s->swarms, ih->b, KM_ID_LEN, w);
	return w;
}

static struct swarm *swarm_create(struct km_peers *s, const struct km_id *ih)
{
	struct swarm *w;

	if (HASH_COUNT(s->swarms) >= s->cfg.max_hashes)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->info_hash = *ih;
	HASH_ADD(hh, s->swarms, info_hash.b, KM_ID_LEN, w);
	return w;
}

static void swarm_remove_at(struct swarm *w, size_t i)
{
	memmove(&w->peers[i], &w->peers[i + 1],
		(w->count - i - 1) * sizeof(w->peers[0]));
	w->count--;
}

/* Makes room for one more peer: grows the array, or evicts the oldest
 * announcement when the swarm is at its cap.  False if neither is possible. */
static bool swarm_make_room(struct km_peers *s, struct swarm *w)
{
	if (w->count >= s->cfg.max_per_hash) {
		swarm_remove_at(w, 0);
		s->total--;
		return true;
	}
	if (s->total >= s->cfg.max_total)
		return false;
	if (w->count == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 4;
		struct stored_peer *p;

		if (cap > s->cfg.max_per_hash)
			cap = s->cfg.max_per_hash;
		p = realloc(w->peers, cap * sizeof(*p));
		if (!p)
			return false;
		w->peers = p;
		w->cap = cap;
	}
	return true;
}

int km_peers_add(struct km_peers *s, const struct km_id *info_hash,
		 const struct km_addr *peer, km_ms now)
{
	struct swarm *w = swarm_find(s, info_hash);

	if (!w && !(w = swarm_create(s, info_hash))) {
		s->rejected_full++;
		return KM_ERR_FULL;
	}
	for (size_t i = 0; i < w->count; i++) {
		if (km_addr_eq(&w->peers[i].addr, peer)) {
			swarm_remove_at(w, i); /* re-added below as newest */
			s->total--;
			break;
		}
	}
	if (!swarm_make_room(s, w)) {
		s->rejected_full++;
		if (w->count == 0)
			swarm_del(s, w);
		return KM_ERR_FULL;
	}
	w->peers[w->count++] = (struct stored_peer){ .addr = *peer, .announced = now };
	s->total++;
	return 0;
}

size_t km_peers_get(const struct km_peers *s, const struct km_id *info_hash,
		    enum km_family family, struct km_addr *out, size_t max,
		    km_ms now)
{
	const struct swarm *w = swarm_find(s, info_hash);
	size_t n = 0;

	for (size_t i = w ? w->count : 0; i > 0 && n < max; i--) {
		const struct stored_peer *p = &w->peers[i - 1];

		if (p->addr.family == family && now < p->announced + s->cfg.ttl_ms)
			out[n++] = p->addr;
	}
	return n;
}

void km_peers_expire(struct km_peers *s, km_ms now)
{
	struct swarm *w, *tmp;

	HASH_ITER(hh, s->swarms, w, tmp) {
		size_t stale = 0;

		while (stale < w->count &&
		       now >= w->peers[stale].announced + s->cfg.ttl_ms)
			stale++;
		if (stale == 0)
			continue;
		memmove(w->peers, w->peers + stale,
			(w->count - stale) * sizeof(w->peers[0]));
		w->count -= stale;
		s->total -= stale;
		s->expired += stale;
		if (w->count == 0)
			swarm_del(s, w);
	}
}

struct km_peers_stats km_peers_stats(const struct km_peers *s)
{
	return (struct km_peers_stats){
		.hashes = HASH_COUNT(s->swarms),
		.total = s->total,
		.rejected_full = s->rejected_full,
		.expired = s->expired,
	};
}

size_t km_peers_mem(const struct km_peers *s)
{
	const struct swarm *w;
	size_t n = sizeof(*s);

	for (w = s->swarms; w; w = w->hh.next)
		n += sizeof(*w) + w->cap * sizeof(*w->peers);
	if (s->swarms)
		n += sizeof(*s->swarms->hh.tbl) +
		     s->swarms->hh.tbl->num_buckets * sizeof(UT_hash_bucket);
	return n;
}
