/* The connection manager's policy; see connmgr.h.  Link and backoff tables
 * are small (max_in + max_out + handshakes, backoff_max), so the scans
 * here are linear and simple. */
#include "net/connmgr.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "proto/err.h"

/* Scores for choosing a dial: a new /24 group outweighs any bucket. */
#define SCORE_GROUP_USED 1000000u
#define SCORE_PER_BUCKET 10u
#define SCORE_QUESTIONABLE 1u
/* While anchor slots are free, a young node loses even to a used group. */
#define SCORE_YOUNG (4 * SCORE_GROUP_USED)
#define BUCKETS_MAX 161

struct cm_link {
	uint64_t conn;
	struct km_addr remote;
	struct km_id id;
	bool have_id;
	bool outbound;
	bool up;
	bool anchor;       /* dialled as an old node (see anchor_slots) */
	bool seed;         /* dialled by address, not picked: a way in */
	km_ms since;       /* opened, then up */
	UT_hash_handle hh;
};

struct cm_backoff {
	struct km_id id;
	int failures;
	km_ms until;
	UT_hash_handle hh;
};

/* A private node and the neighbour that offers to be its rendezvous. */
struct cm_private {
	struct km_contact c;
	uint64_t via;      /* 0: a free slot */
	km_ms seen;        /* last advertised */
	km_ms asked;       /* last ask; it counts as pending a while */
	int asks;
};

/* An ask counts as a pending outbound link this long: PUNCH_GO, the 12 s
 * punch and the relay fallback fit in it. */
#define PUNCH_PENDING_MS KM_SECONDS(20)

struct km_connmgr {
	struct km_connmgr_config cfg;
	struct km_id self;
	struct km_rng *rng;
	struct cm_link *links;
	struct cm_backoff *backoffs;
	size_t nbackoffs;
	struct km_cm_counts counts;
	km_ms next_fill;
	struct km_id anchor_pick; /* the last dial chosen, if it was old */
	bool anchor_picked;
	bool table_dry;           /* the last pick found no one to dial */
	/* KM_CM_PRIVATE_MAX slots, allocated when the first private node is
	 * heard of: most nodes never are, and 5 KiB each adds up in dht-sim. */
	struct cm_private *privates;
};

void km_connmgr_config_default(struct km_connmgr_config *cfg)
{
	*cfg = (struct km_connmgr_config){
		.max_out = 8,
		.max_in = 32,
		.max_per_ip = 4,
		.backoff_base_ms = KM_SECONDS(2),
		.backoff_max_ms = KM_MINUTES(5),
		.protect_ms = KM_SECONDS(60),
		.fill_interval_ms = KM_SECONDS(1),
		.backoff_max = 1024,
		.max_per_16 = 4,
		.anchor_slots = 2,
		.anchor_age_ms = KM_MINUTES(10),
	};
}

struct km_connmgr *km_connmgr_new(const struct km_id *self,
				  const struct km_connmgr_config *cfg,
				  struct km_rng *rng)
{
	struct km_connmgr *cm;

	if (cfg->max_out + cfg->max_in == 0 || !(cm = calloc(1, sizeof(*cm))))
		return NULL;
	cm->cfg = *cfg;
	cm->self = *self;
	cm->rng = rng;
	return cm;
}

void km_connmgr_del(struct km_connmgr *cm)
{
	struct cm_link *l, *ltmp;
	struct cm_backoff *b, *btmp;

	if (!cm)
		return;
	HASH_ITER(hh, cm->links, l, ltmp) {
		HASH_DEL(cm->links, l);
		free(l);
	}
	HASH_ITER(hh, cm->backoffs, b, btmp) {
		HASH_DEL(cm->backoffs, b);
		free(b);
	}
	free(cm->privates);
	free(cm);
}

km_ms km_connmgr_backoff(const struct km_connmgr_config *cfg, int failures,
			 struct km_rng *rng)
{
	km_ms delay = cfg->backoff_base_ms;

	for (int i = 1; i < failures && delay < cfg->backoff_max_ms; i++)
		delay *= 2;
	if (delay > cfg->backoff_max_ms)
		delay = cfg->backoff_max_ms;
	if (delay == 0)
		return 0;
	return delay / 2 + km_rng_below(rng, delay);
}

/* --- addresses ---------------------------------------------------------- */

static bool is_loopback(const struct km_addr *a)
{
	static const uint8_t v6_lo[16] = { [15] = 1 };

	if (a->family == KM_AF_INET4)
		return a->ip[0] == 127;
	return a->family == KM_AF_INET6 && memcmp(a->ip, v6_lo, 16) == 0;
}

/* Same /24 (IPv4) or /64 (IPv6): likely one operator. */
static bool same_group(const struct km_addr *a, const struct km_addr *b)
{
	size_t len = a->family == KM_AF_INET4 ? 3 : 8;

	return a->family == b->family && memcmp(a->ip, b->ip, len) == 0;
}

/* Same /16 (IPv4) or /32 (IPv6): one provider's block. */
static bool same_16(const struct km_addr *a, const struct km_addr *b)
{
	size_t len = a->family == KM_AF_INET4 ? 2 : 4;

	return a->family == b->family && memcmp(a->ip, b->ip, len) == 0;
}

/* --- links -------------------------------------------------------------- */

static struct cm_link *link_get(const struct km_connmgr *cm, uint64_t conn)
{
	struct cm_link *l;

	HASH_FIND(hh, cm->links, &conn, sizeof(conn), l);
	return l;
}

static struct cm_link *link_with_id(const struct km_connmgr *cm,
				    const struct km_id *id, bool up_only,
				    const struct cm_link *except)
{
	struct cm_link *l, *tmp;

	HASH_ITER(hh, cm->links, l, tmp)
		if (l != except && l->have_id && (l->up || !up_only) &&
		    km_id_eq(&l->id, id))
			return l;
	return NULL;
}

static size_t links_from_ip(const struct km_connmgr *cm,
			    const struct km_addr *a)
{
	struct cm_link *l, *tmp;
	size_t count = 0;

	HASH_ITER(hh, cm->links, l, tmp)
		count += !l->outbound && km_addr_ip_eq(&l->remote, a);
	return count;
}

static bool subnet_full(const struct km_connmgr *cm, const struct km_addr *a)
{
	struct cm_link *l, *tmp;
	size_t count = 0;

	if (cm->cfg.max_per_16 == 0 || (!cm->cfg.cap_loopback && is_loopback(a)))
		return false;
	HASH_ITER(hh, cm->links, l, tmp)
		count += l->up && same_16(&l->remote, a);
	return count >= cm->cfg.max_per_16;
}

static void count_link(struct km_connmgr *cm, const struct cm_link *l, int d)
{
	size_t *c = l->up ? (l->outbound ? &cm->counts.out : &cm->counts.in)
			  : (l->outbound ? &cm->counts.pending_out
					 : &cm->counts.pending_in);

	*c = (size_t)((long)*c + d);
	if (l->anchor)
		cm->counts.anchors = (size_t)((long)cm->counts.anchors + d *
					      (l->up ? 1 : 0));
}

int km_connmgr_opened(struct km_connmgr *cm, uint64_t conn,
		      const struct km_addr *remote, bool outbound,
		      const struct km_id *id, km_ms now)
{
	struct cm_link *l;

	if (!outbound && cm->cfg.max_per_ip > 0 &&
	    (cm->cfg.cap_loopback || !is_loopback(remote)) &&
	    links_from_ip(cm, remote) >= cm->cfg.max_per_ip) {
		cm->counts.refused_ip++;
		return KM_ERR_FULL;
	}
	if (link_get(cm, conn) || !(l = calloc(1, sizeof(*l))))
		return KM_ERR_NOMEM;
	l->conn = conn;
	l->remote = *remote;
	l->outbound = outbound;
	l->since = now;
	l->seed = outbound && !id;
	if (id) {
		l->id = *id;
		l->have_id = true;
		l->anchor = outbound && cm->anchor_picked &&
			    km_id_eq(id, &cm->anchor_pick);
	}
	HASH_ADD(hh, cm->links, conn, sizeof(l->conn), l);
	count_link(cm, l, +1);
	if (outbound && id)
		cm->counts.dials++;
	return 0;
}

/* --- backoff ------------------------------------------------------------ */

static struct cm_backoff *backoff_get(const struct km_connmgr *cm,
				      const struct km_id *id)
{
	struct cm_backoff *b;

	HASH_FIND(hh, cm->backoffs, id->b, KM_ID_LEN, b);
	return b;
}

/* At the cap, the entry that expires first makes room. */
static struct cm_backoff *backoff_new(struct km_connmgr *cm,
				      const struct km_id *id)
{
	struct cm_backoff *b, *tmp, *oldest = NULL;

	if (cm->nbackoffs >= cm->cfg.backoff_max) {
		HASH_ITER(hh, cm->backoffs, b, tmp)
			if (!oldest || b->until < oldest->until)
				oldest = b;
		if (!oldest)
			return NULL;
		HASH_DEL(cm->backoffs, oldest);
		cm->nbackoffs--;
		free(oldest);
	}
	if (!(b = calloc(1, sizeof(*b))))
		return NULL;
	b->id = *id;
	HASH_ADD(hh, cm->backoffs, id.b, KM_ID_LEN, b);
	cm->nbackoffs++;
	return b;
}

static void backoff_fail(struct km_connmgr *cm, const struct km_id *id,
			 bool reset, km_ms now)
{
	struct cm_backoff *b = backoff_get(cm, id);

	if (!b && !(b = backoff_new(cm, id)))
		return;
	if (reset)
		b->failures = 0;
	b->failures++;
	b->until = now + km_connmgr_backoff(&cm->cfg, b->failures, cm->rng);
}

static bool backing_off(const struct km_connmgr *cm, const struct km_id *id,
			km_ms now)
{
	const struct cm_backoff *b = backoff_get(cm, id);

	return b && b->until > now;
}

/* --- HELLO -------------------------------------------------------------- */

/* The node ID that dialled l. */
static const struct km_id *initiator(const struct km_connmgr *cm,
				     const struct cm_link *l)
{
	return l->outbound ? &cm->self : &l->id;
}

/* Of two links to one node, the one opened by the lower ID survives; if
 * one node opened both, the older does. */
static bool keeps_new(const struct km_connmgr *cm, const struct cm_link *new,
		      const struct cm_link *old)
{
	int c = km_id_cmp(initiator(cm, new), initiator(cm, old));

	return c < 0;
}

static bool protected(const struct km_connmgr *cm, const struct cm_link *l,
		      km_ms now)
{
	return now - l->since >= cm->cfg.protect_ms;
}

static size_t inbound_in_group(const struct km_connmgr *cm,
			       const struct km_addr *a)
{
	struct cm_link *l, *tmp;
	size_t count = 0;

	HASH_ITER(hh, cm->links, l, tmp)
		count += l->up && !l->outbound && same_group(&l->remote, a);
	return count;
}

/* An inbound neighbour to drop for a newcomer from an unrepresented
 * group: the youngest unprotected one of the most crowded group. */
static struct cm_link *eviction_victim(const struct km_connmgr *cm,
				       const struct cm_link *newcomer,
				       km_ms now)
{
	struct cm_link *l, *tmp, *victim = NULL;
	size_t crowd = 0;

	if (inbound_in_group(cm, &newcomer->remote) > 0)
		return NULL;
	HASH_ITER(hh, cm->links, l, tmp) {
		size_t g;

		if (!l->up || l->outbound || protected(cm, l, now))
			continue;
		g = inbound_in_group(cm, &l->remote);
		if (g < 2)
			continue;
		if (!victim || g > crowd ||
		    (g == crowd && l->since > victim->since)) {
			crowd = g;
			victim = l;
		}
	}
	return victim;
}

static enum km_cm_verdict make_up(struct km_connmgr *cm, struct cm_link *l,
				  enum km_cm_verdict v, km_ms now)
{
	count_link(cm, l, -1);
	l->up = true;
	l->since = now;
	count_link(cm, l, +1);
	return v;
}

enum km_cm_verdict km_connmgr_hello(struct km_connmgr *cm, uint64_t conn,
				    const struct km_id *id, km_ms now,
				    uint64_t *other)
{
	struct cm_link *l = link_get(cm, conn), *dup, *victim;
	size_t in_after;

	if (!l || l->up)
		return KM_CM_DUPLICATE;
	l->id = *id;
	l->have_id = true;
	/* Kept, a seed link would make the seed every joiner's neighbour;
	 * the table's picks spread links over buckets and subnets. */
	if (l->seed)
		return KM_CM_JOIN_ONLY;
	dup = link_with_id(cm, id, true, l);
	in_after = cm->counts.in + (!l->outbound) -
		   (dup && !dup->outbound);
	if (dup && (!keeps_new(cm, l, dup) || in_after > cm->cfg.max_in)) {
		cm->counts.duplicates++;
		return KM_CM_DUPLICATE;
	}
	if (dup) {
		cm->counts.duplicates++;
		*other = dup->conn;
		return make_up(cm, l, KM_CM_REPLACE, now);
	}
	if (subnet_full(cm, &l->remote)) {
		cm->counts.refused_subnet++;
		return l->outbound ? KM_CM_JOIN_ONLY : KM_CM_FULL;
	}
	if (l->outbound) {
		if (cm->counts.out >= cm->cfg.max_out)
			return KM_CM_JOIN_ONLY;
		return make_up(cm, l, KM_CM_ACCEPT, now);
	}
	if (cm->counts.in < cm->cfg.max_in)
		return make_up(cm, l, KM_CM_ACCEPT, now);
	victim = eviction_victim(cm, l, now);
	if (!victim) {
		cm->counts.refused_full++;
		return KM_CM_FULL;
	}
	cm->counts.evicted++;
	*other = victim->conn;
	return make_up(cm, l, KM_CM_EVICT, now);
}

bool km_connmgr_closed(struct km_connmgr *cm, uint64_t conn, km_ms now)
{
	struct cm_link *l = link_get(cm, conn);
	bool was_up;

	if (!l)
		return false;
	was_up = l->up;
	/* Dials that failed back off; so does any neighbour lost, so that a
	 * node that just left is not dialled straight back.  One that stayed
	 * long starts over from the base delay. */
	if (l->have_id && !l->seed && (l->outbound || was_up))
		backoff_fail(cm, &l->id, was_up && protected(cm, l, now), now);
	if (was_up)
		cm->next_fill = now;
	for (size_t i = 0; cm->privates && i < KM_CM_PRIVATE_MAX; i++)
		if (cm->privates[i].via == conn) {
			cm->privates[i].via = 0;
			cm->counts.privates--;
		}
	count_link(cm, l, -1);
	HASH_DEL(cm->links, l);
	free(l);
	return was_up;
}

bool km_connmgr_is_neighbour(const struct km_connmgr *cm, uint64_t conn)
{
	const struct cm_link *l = link_get(cm, conn);

	return l && l->up;
}

struct km_cm_counts km_connmgr_counts(const struct km_connmgr *cm)
{
	return cm->counts;
}

/* --- choosing whom to dial ---------------------------------------------- */

static bool group_used(const struct km_connmgr *cm, const struct km_addr *a)
{
	struct cm_link *l, *tmp;

	HASH_ITER(hh, cm->links, l, tmp)
		if (same_group(&l->remote, a))
			return true;
	return false;
}

static int bucket_of(const struct km_connmgr *cm, const struct km_id *id,
		     int nbuckets)
{
	int b = km_id_cpl(&cm->self, id);

	return b < nbuckets ? b : nbuckets - 1;
}

static void outbound_per_bucket(const struct km_connmgr *cm, int nbuckets,
				unsigned *per_bucket)
{
	struct cm_link *l, *tmp;

	memset(per_bucket, 0, BUCKETS_MAX * sizeof(*per_bucket));
	HASH_ITER(hh, cm->links, l, tmp)
		if (l->outbound && l->have_id)
			per_bucket[bucket_of(cm, &l->id, nbuckets)]++;
}

static bool dialable(const struct km_connmgr *cm, const struct km_table *t,
		     const struct km_table_entry *e, km_ms now)
{
	return km_table_state(t, e, now) != KM_ENTRY_BAD &&
	       !km_id_eq(&e->c.id, &cm->self) &&
	       !link_with_id(cm, &e->c.id, false, NULL) &&
	       !backing_off(cm, &e->c.id, now) && !subnet_full(cm, &e->c.addr);
}

static bool is_old(const struct km_connmgr *cm, const struct km_table_entry *e,
		   km_ms now)
{
	return now - e->first_seen >= cm->cfg.anchor_age_ms;
}

/* Outbound links, pending ones included, dialled as anchors. */
static size_t anchors_open(const struct km_connmgr *cm)
{
	struct cm_link *l, *tmp;
	size_t n = 0;

	HASH_ITER(hh, cm->links, l, tmp)
		n += l->outbound && l->anchor;
	return n;
}

static unsigned score(const struct km_connmgr *cm, const struct km_table *t,
		      const struct km_table_entry *e, unsigned bucket_load,
		      bool want_anchor, km_ms now)
{
	unsigned s = bucket_load * SCORE_PER_BUCKET;

	if (want_anchor && !is_old(cm, e, now))
		s += SCORE_YOUNG;
	if (group_used(cm, &e->c.addr))
		s += SCORE_GROUP_USED;
	if (km_table_state(t, e, now) == KM_ENTRY_QUESTIONABLE)
		s += SCORE_QUESTIONABLE;
	return s;
}

/* The best candidate so far: the lowest score wins; ties are broken
 * uniformly (reservoir sampling). */
struct pick_state {
	unsigned per_bucket[BUCKETS_MAX];
	int nbuckets;
	bool want_anchor;
	unsigned best;
	uint64_t ties;
};

static void consider(struct km_connmgr *cm, const struct km_table *t,
		     struct pick_state *ps, const struct km_table_entry *e,
		     km_ms now, struct km_contact *out)
{
	unsigned s;

	if (!dialable(cm, t, e, now))
		return;
	s = score(cm, t, e, ps->per_bucket[bucket_of(cm, &e->c.id,
						       ps->nbuckets)],
		  ps->want_anchor, now);
	if (s < ps->best) {
		ps->best = s;
		ps->ties = 0;
	}
	if (s == ps->best && km_rng_below(cm->rng, ++ps->ties) == 0) {
		*out = e->c;
		cm->anchor_picked = ps->want_anchor && is_old(cm, e, now);
	}
}

/* Table entries first; then, should none be dialable (all linked, or
 * backing off after refusals), the nodes waiting in replacement caches: a
 * joiner's seed may wait there behind a full bucket. */
static bool pick(struct km_connmgr *cm, const struct km_table *t, km_ms now,
		 struct km_contact *out)
{
	struct pick_state ps = {
		.nbuckets = km_table_bucket_count(t),
		.want_anchor = anchors_open(cm) < cm->cfg.anchor_slots,
		.best = UINT32_MAX,
	};

	cm->anchor_picked = false;
	if (ps.nbuckets > BUCKETS_MAX)
		ps.nbuckets = BUCKETS_MAX;
	outbound_per_bucket(cm, ps.nbuckets, ps.per_bucket);
	for (int b = 0; b < ps.nbuckets; b++)
		for (size_t i = 0; i < km_table_bucket_size(t, b); i++)
			consider(cm, t, &ps, km_table_bucket_entry(t, b, i),
				 now, out);
	for (int b = 0; ps.ties == 0 && b < ps.nbuckets; b++)
		for (size_t i = 0; i < km_table_replacement_count(t, b); i++)
			consider(cm, t, &ps, km_table_replacement_entry(t, b, i),
				 now, out);
	if (cm->anchor_picked)
		cm->anchor_pick = out->id;
	return ps.ties > 0;
}

bool km_connmgr_next_dial(struct km_connmgr *cm, const struct km_table *t,
			  km_ms now, struct km_contact *out)
{
	if (cm->counts.out + cm->counts.pending_out >= cm->cfg.max_out ||
	    now < cm->next_fill)
		return false;
	cm->table_dry = !pick(cm, t, now, out);
	if (!cm->table_dry)
		return true;
	cm->next_fill = now + cm->cfg.fill_interval_ms;
	return false;
}

/* --- private nodes ------------------------------------------------------ */

void km_connmgr_private_add(struct km_connmgr *cm, const struct km_contact *c,
			    uint64_t via, km_ms now)
{
	struct cm_private *p = NULL, *oldest;

	if (via == 0 || km_id_eq(&c->id, &cm->self))
		return;
	if (!cm->privates &&
	    !(cm->privates = calloc(KM_CM_PRIVATE_MAX, sizeof(*cm->privates))))
		return;
	oldest = &cm->privates[0];
	for (size_t i = 0; !p && i < KM_CM_PRIVATE_MAX; i++) {
		struct cm_private *e = &cm->privates[i];

		if (e->via && km_id_eq(&e->c.id, &c->id))
			p = e;
		else if (!e->via || (oldest->via && e->seen < oldest->seen))
			oldest = e;
	}
	if (!p) {
		p = oldest;
		cm->counts.privates += !p->via;
		memset(p, 0, sizeof(*p));
	}
	p->c = *c;
	p->via = via;
	p->seen = now;
}

static size_t asks_pending(const struct km_connmgr *cm, km_ms now)
{
	size_t n = 0;

	for (size_t i = 0; cm->privates && i < KM_CM_PRIVATE_MAX; i++)
		n += cm->privates[i].via && cm->privates[i].asks > 0 &&
		     now - cm->privates[i].asked < PUNCH_PENDING_MS;
	return n;
}

static bool punchable(const struct km_connmgr *cm, const struct cm_private *p,
		      bool higher_only, km_ms now)
{
	km_ms wait = KM_CM_PUNCH_BACKOFF_MS;

	for (int i = 1; i < p->asks && wait < cm->cfg.backoff_max_ms; i++)
		wait *= 2;
	if (wait > cm->cfg.backoff_max_ms)
		wait = cm->cfg.backoff_max_ms;
	return p->via && (p->asks == 0 || now - p->asked >= wait) &&
	       (!higher_only || km_id_cmp(&cm->self, &p->c.id) < 0) &&
	       !link_with_id(cm, &p->c.id, false, NULL) &&
	       !backing_off(cm, &p->c.id, now) && !subnet_full(cm, &p->c.addr);
}

bool km_connmgr_next_punch(struct km_connmgr *cm, bool higher_only, km_ms now,
			   struct km_contact *out, uint64_t *via)
{
	if (!cm->table_dry || cm->counts.out + cm->counts.pending_out +
	    asks_pending(cm, now) >= cm->cfg.max_out)
		return false;
	for (size_t i = 0; cm->privates && i < KM_CM_PRIVATE_MAX; i++) {
		struct cm_private *p = &cm->privates[i];

		if (!punchable(cm, p, higher_only, now))
			continue;
		p->asks++;
		p->asked = now;
		cm->counts.punch_asks++;
		*out = p->c;
		*via = p->via;
		return true;
	}
	return false;
}

km_ms km_connmgr_wake(const struct km_connmgr *cm)
{
	if (cm->counts.out + cm->counts.pending_out >= cm->cfg.max_out)
		return 0;
	return cm->next_fill ? cm->next_fill : 1;
}
