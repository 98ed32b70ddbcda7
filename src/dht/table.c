#include "dht/table.h"
#include "dht/table_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dht/bep42.h"
#include "proto/err.h"

/* Larger buckets or caches gain nothing, and the cap keeps the storage
 * arithmetic far from overflow whatever the config says. */
#define MAX_PER_BUCKET 1024

/* Buckets allocated up front; the storage doubles as the last bucket splits.
 * A node in a network of N peers ends up with about log2(N / k) buckets, so
 * most tables never reach the full 160. */
#define INITIAL_BUCKETS 8

void km_table_config_default(struct km_table_config *cfg)
{
	*cfg = (struct km_table_config){
		.k = 8,
		.replacements = 8,
		.max_nodes = 1280,
		.bad_after_failures = 2,
		.good_ms = KM_MINUTES(15),
		.refresh_ms = KM_MINUTES(15),
		.revalidate_ms = KM_MINUTES(1),
		.revalidate_far_ms = KM_MINUTES(2),
		.bucket_subnet_max = 2,
		.table_subnet_max = 10,
	};
}

static bool config_valid(const struct km_table_config *cfg)
{
	return cfg->k >= 1 && cfg->k <= MAX_PER_BUCKET &&
	       cfg->replacements >= 0 && cfg->replacements <= MAX_PER_BUCKET &&
	       cfg->max_nodes >= 0 && cfg->bad_after_failures >= 1 &&
	       cfg->bucket_subnet_max >= 1 && cfg->table_subnet_max >= 1;
}

struct km_table *km_table_new(const struct km_id *self,
			      const struct km_table_config *cfg, km_ms now)
{
	struct km_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	if (cfg)
		t->cfg = *cfg;
	else
		km_table_config_default(&t->cfg);
	if (!config_valid(&t->cfg))
		goto fail;
	t->self = *self;
	t->cap = INITIAL_BUCKETS;
	t->slabs = calloc((size_t)t->cap * slab_len(t), sizeof(*t->slabs));
	if (t->slabs == NULL)
		goto fail;
	t->nbuckets = 1;
	t->b[0].last_changed = now;
	return t;
fail:
	free(t);
	return NULL;
}

void km_table_del(struct km_table *t)
{
	if (t == NULL)
		return;
	free(t->slabs);
	free(t);
}

const struct km_id *km_table_self(const struct km_table *t)
{
	return &t->self;
}

/* A node has just entered bucket i. */
static void count_added(struct km_table *t, int i)
{
	t->changes.added++;
	if (i >= t->nbuckets - KM_TABLE_NEAR_BUCKETS)
		t->changes.added_near++;
}

static int slot_find(const struct km_table_entry *arr, int n,
		     const struct km_id *id)
{
	for (int i = 0; i < n; i++)
		if (km_id_eq(&arr[i].c.id, id))
			return i;
	return -1;
}

static void slot_remove(struct km_table_entry *arr, int *n, int i)
{
	memmove(&arr[i], &arr[i + 1], (size_t)(*n - i - 1) * sizeof(*arr));
	(*n)--;
}

/* Inserts e keeping last_seen ascending; the caller guarantees room.  With
 * a monotonic clock the new entry nearly always lands at the end. */
static void slot_insert(struct km_table_entry *arr, int *n,
			const struct km_table_entry *e)
{
	int i = *n;

	while (i > 0 && arr[i - 1].last_seen > e->last_seen)
		i--;
	memmove(&arr[i + 1], &arr[i], (size_t)(*n - i) * sizeof(*arr));
	arr[i] = *e;
	(*n)++;
}

enum km_entry_state km_table_state(const struct km_table *t,
				   const struct km_table_entry *e, km_ms now)
{
	/* "t + good_ms > now" rather than "now - t < good_ms", so a clock that
	 * steps backwards cannot wrap around into "long ago". */
	km_ms window = t->cfg.good_ms;

	if (is_bad(t, e))
		return KM_ENTRY_BAD;
	if (!km_table_confirmed(e))
		return KM_ENTRY_QUESTIONABLE;
	if (e->last_reply + window > now ||
	    (e->last_query != 0 && e->last_query + window > now))
		return KM_ENTRY_GOOD;
	return KM_ENTRY_QUESTIONABLE;
}

/* Records a valid message from e (a node or a cached replacement). */
static void entry_seen(struct km_table_entry *e, enum km_seen_kind kind,
		       uint32_t rtt_ms, km_ms now)
{
	e->last_seen = now;
	if (kind == KM_SEEN_QUERY) {
		e->last_query = now;
		return;
	}
	e->last_reply = now;
	e->failures = 0;
	e->ping_pending = false;
	if (rtt_ms == 0)
		return;
	/* The usual 7/8 smoothing (TCP's SRTT): one slow answer barely moves
	 * it, a consistently slow node does. */
	if (e->rtt_ms == 0)
		e->rtt_ms = rtt_ms;
	else
		e->rtt_ms = (uint32_t)(((uint64_t)e->rtt_ms * 7 + rtt_ms) / 8);
}

/* The replacement to promote next: the most recently seen with a BEP 42
 * verified ID, or failing that the most recently seen. */
static int best_replacement(const struct km_table *t, int i)
{
	const struct km_table_entry *repl = repl_of(t, i);

	for (int j = t->b[i].nrepl - 1; j >= 0; j--)
		if (repl[j].id_verified)
			return j;
	return t->b[i].nrepl - 1;
}

/* Moves the bucket's best replacements into free slots. */
static void promote(struct km_table *t, int i)
{
	struct bucket *b = &t->b[i];
	struct km_table_entry e;

	while (b->n < t->cfg.k && b->nrepl > 0 &&
	       t->size < (size_t)t->cfg.max_nodes) {
		int j = best_replacement(t, i);

		e = repl_of(t, i)[j];
		slot_remove(repl_of(t, i), &b->nrepl, j);
		e.failures = 0;
		e.ping_pending = false;
		slot_insert(nodes_of(t, i), &b->n, &e);
		t->size++;
		count_added(t, i);
		/* remove() has no clock; the promoted node's own last sighting
		 * is the honest measure of how fresh the bucket now is. */
		if (e.last_seen > b->last_changed)
			b->last_changed = e.last_seen;
	}
}

static int grow(struct km_table *t)
{
	int cap = t->cap * 2 < KM_ID_BITS ? t->cap * 2 : KM_ID_BITS;
	struct km_table_entry *s;

	if (t->nbuckets < t->cap)
		return 0;
	s = realloc(t->slabs, (size_t)cap * slab_len(t) * sizeof(*s));
	if (s == NULL)
		return KM_ERR_NOMEM;
	t->slabs = s;
	t->cap = cap;
	return 0;
}

/* Moves the entries that share more than `cpl` bits with self from src to
 * dst, preserving order in both. */
static void move_closer(const struct km_table *t, int cpl,
			struct km_table_entry *src, int *nsrc,
			struct km_table_entry *dst, int *ndst)
{
	int kept = 0;

	for (int i = 0; i < *nsrc; i++) {
		if (km_id_cpl(&t->self, &src[i].c.id) > cpl)
			dst[(*ndst)++] = src[i];
		else
			src[kept++] = src[i];
	}
	*nsrc = kept;
}

/* Splits the last bucket in two: entries sharing exactly `old` bits with
 * self stay, the rest move into a new last bucket. */
static int split(struct km_table *t)
{
	int old = t->nbuckets - 1, nw = old + 1;
	struct bucket *ob, *nb;

	if (t->nbuckets >= KM_ID_BITS || grow(t) < 0)
		return -1;
	t->nbuckets++;
	ob = &t->b[old];
	nb = &t->b[nw];
	*nb = (struct bucket){ .last_changed = ob->last_changed };
	move_closer(t, old, nodes_of(t, old), &ob->n, nodes_of(t, nw), &nb->n);
	move_closer(t, old, repl_of(t, old), &ob->nrepl, repl_of(t, nw),
		    &nb->nrepl);
	promote(t, old);
	promote(t, nw);
	return 0;
}

/* The all-zero ID is what a message without one would decode to: no node
 * draws it by chance, so it is never filed. */
static bool contact_usable(const struct km_table *t, const struct km_contact *c)
{
	static const struct km_id zero;

	return (c->addr.family == KM_AF_INET4 || c->addr.family == KM_AF_INET6) &&
	       c->addr.port != 0 && !km_id_eq(&c->id, &t->self) &&
	       !km_id_eq(&c->id, &zero);
}

/* Sybil defences.  Counting by scan keeps no second structure in sync with
 * the buckets; it runs only for IDs the table does not hold yet, and costs
 * at most 160 * (k + replacements) address compares. */

static bool subnet_exempt(const struct km_table *t, const struct km_addr *a)
{
	return !t->cfg.strict_subnets && km_addr_is_local(a);
}

static int count_subnet(const struct km_table_entry *arr, int n,
			const struct km_contact *c)
{
	int same = 0;

	for (int j = 0; j < n; j++)
		same += km_addr_same_subnet(&arr[j].c.addr, &c->addr) &&
			!km_id_eq(&arr[j].c.id, &c->id);
	return same;
}

/* Entries of bucket i, nodes and replacements, in c's subnet (c aside). */
static int bucket_subnet(const struct km_table *t, int i,
			 const struct km_contact *c)
{
	return count_subnet(nodes_of(t, i), t->b[i].n, c) +
	       count_subnet(repl_of(t, i), t->b[i].nrepl, c);
}

/* The checks that do not depend on the bucket: BEP 42 strict mode and the
 * table-wide subnet cap.  Counts what it rejects. */
static bool table_admits(struct km_table *t, const struct km_contact *c)
{
	int same = 0;

	if (t->cfg.bep42_strict && !km_bep42_id_valid(&c->id, &c->addr)) {
		t->stats.rejected_bep42++;
		return false;
	}
	if (subnet_exempt(t, &c->addr))
		return true;
	for (int i = 0; i < t->nbuckets && same < t->cfg.table_subnet_max; i++)
		same += bucket_subnet(t, i, c);
	if (same < t->cfg.table_subnet_max)
		return true;
	t->stats.rejected_subnet++;
	return false;
}

static bool bucket_admits(struct km_table *t, int i, const struct km_contact *c)
{
	if (subnet_exempt(t, &c->addr) ||
	    bucket_subnet(t, i, c) < t->cfg.bucket_subnet_max)
		return true;
	t->stats.rejected_subnet++;
	return false;
}

/* e moves to c's address with a clean slate: what it answered from the
 * old address says nothing of the new, so it is unconfirmed again. */
static void entry_move(struct km_table_entry *e, const struct km_contact *c)
{
	e->c.addr = c->addr;
	e->id_verified = km_bep42_id_valid(&c->id, &c->addr);
	e->failures = 0;
	e->last_reply = 0;
	e->rtt_ms = 0;
	e->ping_pending = false;
}

/* A known ID heard again.  A bad entry may move to the new address: it is
 * about to be replaced anyway, and this is how a node behind a rebinding NAT
 * comes back.  Otherwise a different address is ignored outright -- letting
 * it refresh timestamps would let anyone keep a dead entry looking alive. */
static enum km_offer_result update_known(struct km_table *t, int i, int j,
					 const struct km_contact *c,
					 enum km_seen_kind kind, uint32_t rtt_ms,
					 km_ms now)
{
	struct bucket *b = &t->b[i];
	struct km_table_entry e = nodes_of(t, i)[j];

	if (!km_addr_eq(&e.c.addr, &c->addr)) {
		if (!is_bad(t, &e) || !table_admits(t, c) ||
		    !bucket_admits(t, i, c))
			return KM_OFFER_REJECTED;
		entry_move(&e, c);
	}
	entry_seen(&e, kind, rtt_ms, now);
	slot_remove(nodes_of(t, i), &b->n, j);
	slot_insert(nodes_of(t, i), &b->n, &e);
	if (kind == KM_SEEN_REPLY)
		b->last_changed = now;
	return KM_OFFER_UPDATED;
}

/* Splits while the newcomer's bucket is the full last one and splitting
 * could still make room.  Returns the bucket the newcomer belongs in. */
static int make_room(struct km_table *t, const struct km_id *id)
{
	int i = bucket_of(t, id);

	while (i == t->nbuckets - 1 && t->b[i].n >= t->cfg.k &&
	       t->size < (size_t)t->cfg.max_nodes && split(t) == 0)
		i = bucket_of(t, id);
	return i;
}

/* The newcomer as an entry: taken out of the replacement cache if it was
 * waiting there (keeping its history), fresh otherwise.  A replacement
 * heard from a new address moves there, as a bad node does (see
 * update_known()): it is how a node behind a rebinding NAT keeps its
 * place in the queue, and it serves no one until it answers from there. */
static void candidate(struct km_table *t, int i, const struct km_contact *c,
		      km_ms now, struct km_table_entry *out)
{
	struct km_table_entry *repl = repl_of(t, i);
	int j = slot_find(repl, t->b[i].nrepl, &c->id);

	if (j < 0) {
		*out = (struct km_table_entry){
			.c = *c, .first_seen = now,
			.id_verified = km_bep42_id_valid(&c->id, &c->addr),
		};
		return;
	}
	*out = repl[j];
	slot_remove(repl, &t->b[i].nrepl, j);
	if (!km_addr_eq(&out->c.addr, &c->addr))
		entry_move(out, c);
}

static int find_bad(const struct km_table *t, int i)
{
	const struct km_table_entry *nodes = nodes_of(t, i);

	for (int j = 0; j < t->b[i].n; j++)
		if (is_bad(t, &nodes[j]))
			return j;
	return -1;
}

static void cache_put(struct km_table *t, int i, const struct km_table_entry *e)
{
	struct bucket *b = &t->b[i];

	if (b->nrepl >= t->cfg.replacements)
		slot_remove(repl_of(t, i), &b->nrepl, 0); /* the oldest */
	slot_insert(repl_of(t, i), &b->nrepl, e);
}

/* True if a should be pinged before b (NULL): an unverified ID first (BEP 42
 * preference: the slot a failed ping frees goes to a newcomer), then the
 * least recently seen. */
static bool ping_before(const struct km_table_entry *a,
			const struct km_table_entry *b)
{
	if (b == NULL)
		return true;
	if (a->id_verified != b->id_verified)
		return !a->id_verified;
	return a->last_seen < b->last_seen;
}

/* Asks for a ping of the first questionable node by ping_before(), but keeps
 * no more pings in flight than there are replacements waiting: each ping
 * can free at most one slot. */
static enum km_offer_result ask_ping(struct km_table *t, int i, km_ms now,
				     struct km_contact *to_ping)
{
	struct km_table_entry *nodes = nodes_of(t, i), *pick = NULL;
	int pending = 0;

	for (int j = 0; j < t->b[i].n; j++) {
		struct km_table_entry *e = &nodes[j];

		if (e->ping_pending)
			pending++;
		else if (km_table_state(t, e, now) == KM_ENTRY_QUESTIONABLE &&
			 ping_before(e, pick))
			pick = e;
	}
	if (pick == NULL || pending >= t->b[i].nrepl)
		return KM_OFFER_CACHED;
	pick->ping_pending = true;
	if (to_ping)
		*to_ping = pick->c;
	return KM_OFFER_PING;
}

/* Whether e, in bucket i, has been silent longer than its bucket's
 * revalidation period.  Near buckets hold the neighbours exact lookups
 * near us depend on, so they are checked every minute; the others every
 * two.  Without the far ones, a node dead since a crash stayed "good" --
 * and in our replies -- until a lookup happened to ask it: 150 s after half
 * of 1,000 nodes crashed, 2-7 lookups in 100 missed a live node that no
 * reply carried. */
static bool unheard_of_too_long(const struct km_table *t, int i,
				const struct km_table_entry *e, km_ms now)
{
	bool near = i >= t->nbuckets - KM_TABLE_NEAR_BUCKETS;
	km_ms period = near ? t->cfg.revalidate_ms : t->cfg.revalidate_far_ms;

	return period > 0 && e->last_seen + period <= now;
}

/* How urgently e wants a maintenance ping: 3 it failed a query (and is not
 * bad yet), 2 questionable, 1 unheard of too long (see
 * unheard_of_too_long()), 0 none. */
static int stale_rank(const struct km_table *t, int i,
		      const struct km_table_entry *e, km_ms now)
{
	enum km_entry_state st = km_table_state(t, e, now);

	if (e->ping_pending || st == KM_ENTRY_BAD)
		return 0;
	if (e->failures > 0)
		return 3;
	if (st == KM_ENTRY_QUESTIONABLE)
		return 2;
	return unheard_of_too_long(t, i, e, now) ? 1 : 0;
}

bool km_table_next_stale(struct km_table *t, km_ms now, struct km_contact *out)
{
	struct km_table_entry *pick = NULL;
	int best = 0;

	for (int i = 0; i < t->nbuckets; i++) {
		struct km_table_entry *nodes = nodes_of(t, i);

		for (int j = 0; j < t->b[i].n; j++) {
			struct km_table_entry *e = &nodes[j];
			int r = stale_rank(t, i, e, now);

			if (r > best || (r == best && r > 0 &&
					 e->last_seen < pick->last_seen)) {
				pick = e;
				best = r;
			}
		}
	}
	if (!pick)
		return false;
	pick->ping_pending = true;
	*out = pick->c;
	return true;
}

static enum km_offer_result offer_new(struct km_table *t,
				      const struct km_contact *c,
				      enum km_seen_kind kind, uint32_t rtt_ms,
				      km_ms now, struct km_contact *to_ping)
{
	int i, bad;
	struct bucket *b;
	struct km_table_entry e;

	if (!table_admits(t, c))
		return KM_OFFER_REJECTED;
	i = make_room(t, &c->id);
	b = &t->b[i];
	if (!bucket_admits(t, i, c))
		return KM_OFFER_REJECTED;
	candidate(t, i, c, now, &e);
	entry_seen(&e, kind, rtt_ms, now);
	if (b->n < t->cfg.k && t->size >= (size_t)t->cfg.max_nodes)
		t->stats.capped++;
	if (b->n < t->cfg.k && t->size < (size_t)t->cfg.max_nodes) {
		e.first_seen = now;
		slot_insert(nodes_of(t, i), &b->n, &e);
		t->size++;
		b->last_changed = now;
		count_added(t, i);
		return KM_OFFER_ADDED;
	}
	bad = find_bad(t, i);
	if (bad >= 0) {
		e.first_seen = now;
		slot_remove(nodes_of(t, i), &b->n, bad);
		slot_insert(nodes_of(t, i), &b->n, &e);
		b->last_changed = now;
		count_added(t, i);
		return KM_OFFER_ADDED;
	}
	if (t->cfg.replacements == 0)
		return KM_OFFER_REJECTED;
	cache_put(t, i, &e);
	return ask_ping(t, i, now, to_ping);
}

enum km_offer_result km_table_offer(struct km_table *t,
				    const struct km_contact *c,
				    enum km_seen_kind kind, uint32_t rtt_ms,
				    km_ms now, struct km_contact *to_ping)
{
	int i, j;

	if (!contact_usable(t, c))
		return KM_OFFER_REJECTED;
	i = bucket_of(t, &c->id);
	j = slot_find(nodes_of(t, i), t->b[i].n, &c->id);
	if (j >= 0)
		return update_known(t, i, j, c, kind, rtt_ms, now);
	return offer_new(t, c, kind, rtt_ms, now, to_ping);
}

/* Removes node j of bucket i and fills the slot from its cache.  If the
 * table was at max_nodes, other buckets may have had room but been held
 * back by the cap; the slot that just opened up can go to them instead. */
static void drop_node(struct km_table *t, int i, int j)
{
	bool was_capped = t->size >= (size_t)t->cfg.max_nodes;

	slot_remove(nodes_of(t, i), &t->b[i].n, j);
	t->size--;
	promote(t, i);
	for (int o = 0; was_capped && o < t->nbuckets; o++)
		promote(t, o);
}

void km_table_on_failure(struct km_table *t, const struct km_id *id, km_ms now)
{
	int i = bucket_of(t, id);
	struct bucket *b = &t->b[i];
	struct km_table_entry *nodes = nodes_of(t, i);
	int j = slot_find(nodes, b->n, id);

	if (j < 0) {
		/* A replacement that does not answer is no replacement. */
		j = slot_find(repl_of(t, i), b->nrepl, id);
		if (j >= 0)
			slot_remove(repl_of(t, i), &b->nrepl, j);
		return;
	}
	/* A query that fails now was sent a query timeout ago; an answer
	 * since (to a lookup's retry, say, or to the first try when the retry
	 * was lost) shows the node alive, so the lost datagram is no mark
	 * against it. */
	if (nodes[j].last_reply != 0 &&
	    now < nodes[j].last_reply + t->cfg.failure_grace_ms) {
		nodes[j].ping_pending = false;
		return;
	}
	if (nodes[j].failures < INT_MAX)
		nodes[j].failures++;
	nodes[j].ping_pending = false;
	if (!is_bad(t, &nodes[j]) || b->nrepl == 0)
		return;
	drop_node(t, i, j);
}

static void set_ping_pending(struct km_table *t, const struct km_id *id,
			     bool pending)
{
	int i = bucket_of(t, id);
	int j = slot_find(nodes_of(t, i), t->b[i].n, id);

	if (j >= 0)
		nodes_of(t, i)[j].ping_pending = pending;
}

void km_table_cancel_ping(struct km_table *t, const struct km_id *id)
{
	set_ping_pending(t, id, false);
}

void km_table_ping_sent(struct km_table *t, const struct km_id *id)
{
	set_ping_pending(t, id, true);
}

bool km_table_remove(struct km_table *t, const struct km_id *id)
{
	int i = bucket_of(t, id);
	struct bucket *b = &t->b[i];
	int j = slot_find(nodes_of(t, i), b->n, id);

	if (j >= 0) {
		drop_node(t, i, j);
		return true;
	}
	j = slot_find(repl_of(t, i), b->nrepl, id);
	if (j < 0)
		return false;
	slot_remove(repl_of(t, i), &b->nrepl, j);
	return true;
}

const struct km_table_entry *km_table_find(const struct km_table *t,
					   const struct km_id *id)
{
	int i = bucket_of(t, id);
	int j = slot_find(nodes_of(t, i), t->b[i].n, id);

	return j < 0 ? NULL : &nodes_of(t, i)[j];
}


static bool refresh_due(const struct km_table *t, int i, km_ms now)
{
	km_ms last = t->b[i].last_changed;

	return now >= last && now - last >= t->cfg.refresh_ms;
}

/* A random ID that bucket i would hold: for i below the last, it shares
 * exactly i bits with self (bit i flipped, the rest random); for the last,
 * it shares at least i bits. */
static void random_in_bucket(const struct km_table *t, int i,
			     struct km_rng *rng, struct km_id *out)
{
	struct km_id base = t->self;

	if (i == t->nbuckets - 1) {
		km_id_random_with_prefix(&base, i, rng, out);
		return;
	}
	base.b[i / 8] ^= (uint8_t)(0x80 >> (i % 8));
	km_id_random_with_prefix(&base, i + 1, rng, out);
}

size_t km_table_refresh_targets(struct km_table *t, km_ms now,
				struct km_rng *rng, struct km_id *out,
				size_t max)
{
	size_t w = 0;

	for (int i = 0; i < t->nbuckets && w < max; i++) {
		if (!refresh_due(t, i, now))
			continue;
		random_in_bucket(t, i, rng, &out[w++]);
		t->b[i].last_changed = now;
	}
	return w;
}

km_ms km_table_next_refresh(const struct km_table *t)
{
	km_ms next = UINT64_MAX;

	for (int i = 0; i < t->nbuckets; i++) {
		km_ms last = t->b[i].last_changed;
		km_ms due = last > UINT64_MAX - t->cfg.refresh_ms ?
				    UINT64_MAX : last + t->cfg.refresh_ms;

		if (due < next)
			next = due;
	}
	return next;
}

size_t km_table_mem(const struct km_table *t)
{
	return sizeof(*t) + (size_t)t->cap * slab_len(t) * sizeof(*t->slabs);
}
