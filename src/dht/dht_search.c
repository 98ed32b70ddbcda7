/* Running lookups on behalf of the user and of the table itself: the join
 * lookup of our own ID, bucket refreshes, and get_peers + announce_peer. */
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "dht/dht_internal.h"
#include "proto/err.h"

/* Buckets refreshed per tick at most, so a long sleep does not burst. */
#define REFRESH_BATCH 8
/* Nodes an announce goes to: the k closest that gave tokens. */
#define ANNOUNCE_MAX 32
/* Other-family nodes verified per reply while the sibling table fills. */
#define SIBLING_FEED_MAX 8
/* How often a short table looks again: doubling from the first to the
 * last. */
#define SHORT_FIRST_MS KM_SECONDS(5)
#define SHORT_MAX_MS KM_MINUTES(5)
/* After a flash crowd (see look_again_near() and refresh_again()): the
 * shortest gap between two lookups of our own ID, doubling to the longest;
 * and when the table is first checked for growth after the join, the
 * checks doubling until the last. */
#define SELF_FIRST_MS KM_SECONDS(1)
#define SELF_SETTLE_MS KM_SECONDS(30)
#define SELF_MAX_MS KM_MINUTES(5)
#define REGROW_FIRST_MS KM_SECONDS(2)
#define REGROW_LAST_MS KM_MINUTES(2)

static void refresh_every_bucket(struct km_dht *d, km_ms now);

static struct search *search_find(struct km_dht *d, uint64_t id)
{
	struct search *s;

	DL_FOREACH(d->searches, s)
		if (s->id == id)
			return s;
	return NULL;
}

static void search_free(struct km_dht *d, struct search *s)
{
	DL_DELETE(d->searches, s);
	d->nsearches--;
	km_lookup_del(s->lk);
	free(s);
}

void dht_search_free_all(struct km_dht *d)
{
	struct search *s, *tmp;

	DL_FOREACH_SAFE(d->searches, s, tmp)
		search_free(d, s);
}

/* out[0..n) is a max-heap by distance to target: out[0] is the farthest
 * kept, so a closer contact replaces it in O(log n). */
static void heap_sift_down(const struct km_id *target, struct km_contact *out,
			   size_t n, size_t i)
{
	for (;;) {
		size_t far = i, l = 2 * i + 1, r = l + 1;
		struct km_contact tmp;

		if (l < n && km_id_cmp_distance(target, &out[l].id, &out[far].id) > 0)
			far = l;
		if (r < n && km_id_cmp_distance(target, &out[r].id, &out[far].id) > 0)
			far = r;
		if (far == i)
			return;
		tmp = out[i];
		out[i] = out[far];
		out[far] = tmp;
		i = far;
	}
}

/* The usable contacts a reply carries; when there are more than max, the max
 * closest to target.  A hostile reply can carry ~2,500 contacts: keeping
 * only the closest costs O(count log max) time and no memory beyond out. */
size_t dht_search_reply_contacts(struct km_dht *d, const struct km_krpc_msg *m,
				 enum km_family family, const struct km_id *target,
				 struct km_contact *out, size_t max)
{
	bool v4 = family == KM_AF_INET4;
	const uint8_t *list = v4 ? m->nodes : m->nodes6;
	size_t entry = v4 ? KM_COMPACT_NODE4_LEN : KM_COMPACT_NODE6_LEN;
	size_t count = list ? (v4 ? m->nodes_len : m->nodes6_len) / entry : 0;
	size_t n = 0;
	bool heap = false;
	struct km_contact c;

	if (max == 0)
		return 0;
	for (size_t i = 0; i < count; i++) {
		km_compact_node_read(list, i, family, &c);
		if (c.addr.port == 0 || km_id_eq(&c.id, &d->cfg.id))
			continue;
		if (n < max) {
			out[n++] = c; /* the common case: reply order kept */
			continue;
		}
		if (!heap) {
			for (size_t j = n / 2; j-- > 0;)
				heap_sift_down(target, out, n, j);
			heap = true;
		}
		if (km_id_cmp_distance(target, &c.id, &out[0].id) < 0) {
			out[0] = c;
			heap_sift_down(target, out, n, 0);
		}
	}
	return n;
}

/* BEP 32: a dual-stack node whose other table is still short of k nodes
 * asks for both families, and the other family's nodes go to the sibling
 * to verify.  Once that table has k nodes, its own lookups take over. */
static bool sibling_hungry(const struct km_dht *d)
{
	return d->sibling &&
	       km_table_size(d->sibling->table) < (size_t)d->sibling->cfg.table.k;
}

static void feed_sibling(struct km_dht *d, const struct km_krpc_msg *m,
			 km_ms now)
{
	struct km_contact c[SIBLING_FEED_MAX];
	struct km_dht *sib = d->sibling;
	size_t n;

	if (!sibling_hungry(d))
		return;
	n = dht_search_reply_contacts(sib, m, sib->cfg.family, &sib->cfg.id, c,
				      SIBLING_FEED_MAX);
	for (size_t i = 0; i < n; i++)
		if (!km_table_find(sib->table, &c[i].id))
			dht_ping(sib, &c[i], now);
}

static void send_announces(struct km_dht *d, const struct search *s, km_ms now)
{
	struct km_lookup_result res[ANNOUNCE_MAX];
	size_t n = km_lookup_results(s->lk, res, sizeof(res) / sizeof(res[0]));

	for (size_t i = 0; i < n; i++) {
		struct km_krpc_msg m;

		if (res[i].token_len == 0 || res[i].token_len > KM_KRPC_TOKEN_MAX)
			continue;
		km_krpc_init(&m, KM_KRPC_QUERY);
		m.method = KM_KRPC_ANNOUNCE_PEER;
		m.info_hash = *km_lookup_target(s->lk);
		m.port = s->port;
		m.implied_port = s->implied_port;
		memcpy(m.token, res[i].token, res[i].token_len);
		m.token_len = res[i].token_len;
		dht_send_query(d, &res[i].c, true, TX_ANNOUNCE, 0, &m, now);
	}
}

static void search_finish(struct km_dht *d, struct search *s, km_ms now)
{
	if (s->announce)
		send_announces(d, s, now);
	if (s->join)
		refresh_every_bucket(d, now);
	d->stats.lookups_done++;
	if (s->report && d->cb.lookup_done)
		d->cb.lookup_done(d->user, s->id, s->lk);
	search_free(d, s);
}

static void lookup_query(struct km_dht *d, const struct search *s,
			 struct km_krpc_msg *m)
{
	bool get_peers = km_lookup_kind(s->lk) == KM_LOOKUP_GET_PEERS;

	km_krpc_init(m, KM_KRPC_QUERY);
	m->method = get_peers ? KM_KRPC_GET_PEERS : KM_KRPC_FIND_NODE;
	if (get_peers)
		m->info_hash = *km_lookup_target(s->lk);
	else
		m->target = *km_lookup_target(s->lk);
	if (sibling_hungry(d))
		m->want = KM_WANT_N4 | KM_WANT_N6;
}

static void send_lookup_query(struct km_dht *d, struct search *s,
			      const struct km_contact *c, km_ms now)
{
	struct km_krpc_msg m;

	lookup_query(d, s, &m);
	if (dht_send_query(d, c, true, TX_LOOKUP, s->id, &m, now) < 0)
		km_lookup_on_timeout(s->lk, &c->id, now);
}

bool dht_search_resend(struct km_dht *d, const struct tx *tx)
{
	struct search *s = search_find(d, tx->lookup_id);
	struct km_krpc_msg m;

	if (!s || km_lookup_done(s->lk) ||
	    !km_lookup_wants_retry(s->lk, &tx->expect_id))
		return false;
	lookup_query(d, s, &m);
	memcpy(m.tid, tx->tid, sizeof(tx->tid));
	m.tid_len = sizeof(tx->tid);
	m.id = d->cfg.id;
	dht_send_msg(d, &tx->to, &m);
	return true;
}

/* Sends whatever the lookup wants sent and finishes it when it is done.
 * Returns false if it finished: s is freed then. */
static bool search_pump(struct km_dht *d, struct search *s, km_ms now)
{
	struct km_contact c;

	while (km_lookup_next_query(s->lk, now, &c))
		send_lookup_query(d, s, &c, now);
	if (!km_lookup_done(s->lk))
		return true;
	search_finish(d, s, now);
	return false;
}

/* The table's smoothed RTTs to the alpha closest seeds -- the first nodes
 * asked -- stand in for replies until the lookup has some of its own, so
 * even its first retry timeout fits the network rather than slow_ms. */
static void prime_rtt(struct km_dht *d, struct km_lookup *lk,
		      const struct km_contact *first, size_t n)
{
	for (size_t i = 0; i < n && i < (size_t)d->cfg.lookup.alpha; i++) {
		const struct km_table_entry *e = km_table_find(d->table,
							       &first[i].id);

		if (e)
			km_lookup_rtt_hint(lk, e->rtt_ms);
	}
}

/* from_table: the lookup starts from the table's nodes closest to target
 * as well as from seeds. */
static struct search *search_new(struct km_dht *d, const struct km_id *target,
				 enum km_lookup_kind kind,
				 const struct km_contact *seeds, size_t nseeds,
				 bool from_table, km_ms now)
{
	struct km_contact scratch[KM_DHT_SCRATCH_NODES];
	struct search *s;
	size_t n;

	if (d->nsearches >= d->cfg.max_lookups || !(s = calloc(1, sizeof(*s))))
		return NULL;
	s->lk = km_lookup_new(target, kind, &d->cfg.lookup, now);
	if (!s->lk) {
		free(s);
		return NULL;
	}
	s->id = d->next_lookup_id++;
	n = !from_table ? 0 :
	    km_table_closest(d->table, target,
			     d->cfg.lookup.max_candidates < KM_DHT_SCRATCH_NODES ?
			     d->cfg.lookup.max_candidates : KM_DHT_SCRATCH_NODES,
			     scratch);
	km_lookup_add(s->lk, scratch, n);
	prime_rtt(d, s->lk, scratch, n);
	if (seeds)
		km_lookup_add(s->lk, seeds, nseeds);
	DL_APPEND(d->searches, s);
	d->nsearches++;
	d->stats.lookups_started++;
	return s;
}

int km_dht_lookup(struct km_dht *d, const struct km_id *target,
		  enum km_lookup_kind kind, const struct km_contact *seeds,
		  size_t nseeds, uint64_t *lookup_id, km_ms now)
{
	struct search *s = search_new(d, target, kind, seeds, nseeds, true, now);

	if (!s)
		return KM_ERR_FULL;
	s->report = true;
	if (lookup_id)
		*lookup_id = s->id;
	search_pump(d, s, now);
	return 0;
}

int km_dht_announce(struct km_dht *d, const struct km_id *info_hash,
		    uint16_t port, bool implied_port, uint64_t *lookup_id,
		    km_ms now)
{
	struct search *s = search_new(d, info_hash, KM_LOOKUP_GET_PEERS, NULL, 0,
				      true, now);

	if (!s)
		return KM_ERR_FULL;
	s->report = true;
	s->announce = true;
	s->port = port;
	s->implied_port = implied_port;
	if (lookup_id)
		*lookup_id = s->id;
	search_pump(d, s, now);
	return 0;
}

void dht_search_on_reply(struct km_dht *d, const struct tx *tx,
			 const struct km_krpc_msg *m, km_ms now)
{
	struct search *s = search_find(d, tx->lookup_id);
	struct km_contact scratch[KM_DHT_SCRATCH_NODES];
	size_t n;

	if (!s)
		return; /* the lookup ended before this late reply */
	n = dht_search_reply_contacts(d, m, d->cfg.family, km_lookup_target(s->lk),
				      scratch, KM_DHT_SCRATCH_NODES);
	feed_sibling(d, m, now);
	if (m->values_count > 0)
		km_lookup_on_peers(s->lk, m->values, m->values_count);
	if (m->token_len > 0)
		km_lookup_on_token(s->lk, &tx->expect_id, m->token, m->token_len);
	/* The lookup knows the node by the ID we queried, whatever it says
	 * now. */
	km_lookup_on_reply(s->lk, &tx->expect_id, scratch, n, now);
	search_pump(d, s, now);
}

void dht_search_on_failure(struct km_dht *d, const struct tx *tx, km_ms now)
{
	struct search *s = search_find(d, tx->lookup_id);

	if (!s)
		return;
	km_lookup_on_timeout(s->lk, &tx->expect_id, now);
	search_pump(d, s, now);
}

/* Internal lookups (join, refresh) use at most half the lookup slots, so
 * the user's lookups always find room.  Returns false if there was none. */
static bool start_internal(struct km_dht *d, const struct km_id *target,
			   km_ms now)
{
	struct search *s;

	if (d->nsearches >= d->cfg.max_lookups / 2 + 1)
		return false;
	s = search_new(d, target, KM_LOOKUP_FIND_NODE, NULL, 0, true, now);
	if (!s)
		return false;
	search_pump(d, s, now);
	return true;
}

/* Notes the table as a lookup of our own ID finds it, for
 * look_again_near(), and when the next may run. */
static void self_lookup_started(struct km_dht *d, km_ms now)
{
	d->at_self = km_table_changes(d->table);
	if (!d->self_every)
		d->self_every = SELF_FIRST_MS;
	else if (d->self_every < SELF_MAX_MS)
		d->self_every *= 2;
	d->next_self = now + d->self_every;
}

/* When the refreshes hold every internal slot, the next tick tries again:
 * the reason to look stays counted until a lookup has started. */
static void look_up_self(struct km_dht *d, km_ms now)
{
	if (start_internal(d, &d->cfg.id, now))
		self_lookup_started(d, now);
}

/* Joining is a lookup of our own ID, which fills the buckets near us;
 * when it ends, refresh_every_bucket() fills the far ones. */
static void join(struct km_dht *d, km_ms now)
{
	struct search *s;

	d->joined = true;
	self_lookup_started(d, now);
	s = search_new(d, &d->cfg.id, KM_LOOKUP_FIND_NODE, NULL, 0, true,
		       now);
	if (!s)
		return;
	s->join = true;
	search_pump(d, s, now);
}

/* One lookup of a random ID in the range of every bucket but our own.
 * The first (at the end of the join) also starts refresh_again(). */
static void refresh_every_bucket(struct km_dht *d, km_ms now)
{
	int buckets = km_table_bucket_count(d->table);

	d->at_refresh = km_table_changes(d->table);
	d->size_at_refresh = km_table_size(d->table);
	if (!d->regrow_every) {
		d->regrow_every = REGROW_FIRST_MS;
		d->next_regrow = now + REGROW_FIRST_MS;
	}
	for (int i = 0; i < buckets - 1; i++) {
		struct km_id target;

		km_id_random_with_prefix(&d->cfg.id, i + 1, d->rng, &target);
		target.b[i / 8] ^= (uint8_t)(0x80 >> (i % 8));
		start_internal(d, &target, now);
	}
}

static void refresh_buckets(struct km_dht *d, km_ms now)
{
	struct km_id targets[REFRESH_BATCH];
	size_t n;

	if (now < km_table_next_refresh(d->table))
		return;
	n = km_table_refresh_targets(d->table, now, d->rng, targets,
				     REFRESH_BATCH);
	for (size_t i = 0; i < n; i++)
		start_internal(d, &targets[i], now);
}

/* A table short of k nodes, ours or the sibling's, may just have joined
 * before the network grew, and nobody need ever query us: a lookup of our
 * own ID runs again, with backoff, while it stays short.  With a hungry
 * sibling it also asks for the other family (see sibling_hungry()).
 * Returns when to look next, or 0. */
static km_ms look_again_while_short(struct km_dht *d, km_ms now)
{
	size_t size = km_table_size(d->table);

	if (!d->joined || size == 0 ||
	    (size >= (size_t)d->cfg.table.k && !sibling_hungry(d))) {
		d->short_every = 0;
		return 0;
	}
	if (!d->short_every) {
		d->short_every = SHORT_FIRST_MS;
		d->next_short_lookup = now + SHORT_FIRST_MS;
	}
	if (now >= d->next_short_lookup) {
		d->at_self = km_table_changes(d->table);
		start_internal(d, &d->cfg.id, now);
		if (d->short_every < SHORT_MAX_MS)
			d->short_every *= 2;
		d->next_short_lookup = now + d->short_every;
	}
	return d->next_short_lookup;
}

/* A node that joins while a crowd joins with it finds few nodes, and
 * its neighbours in ID space that join at the same moment find it no
 * more than it finds them: each one's lookup runs before the other is in
 * anyone's table.  Those who come later know both.  So we look our own ID
 * up again, at gaps doubling from SELF_FIRST_MS, for as long as each look
 * brought a node near us that we did not have: a lookup that finds closer
 * nodes than the last is a sign that the network around us is still
 * filling (libtorrent and geth look up their own ID again for the same
 * reason).  In a quiet network that costs one lookup after the join.
 * Once the gap has grown past SELF_SETTLE_MS it takes half a bucket of new
 * nodes near us to look again, and the gap stops at SELF_MAX_MS, so a
 * stream of made-up IDs near ours costs no more than one lookup every
 * SELF_MAX_MS.  Returns when the next is due, or 0 while there is no
 * reason for one. */
static km_ms look_again_near(struct km_dht *d, km_ms now)
{
	unsigned long want = d->self_every <= SELF_SETTLE_MS ? 1 :
			     (unsigned long)(d->cfg.table.k + 1) / 2;
	struct km_table_changes c = km_table_changes(d->table);

	if (!d->joined || c.added_near - d->at_self.added_near < want)
		return 0;
	if (now < d->next_self)
		return d->next_self;
	look_up_self(d, now);
	return 0;
}


/* Up to max seeds for a lookup from far bucket b: the nodes waiting in its
 * replacement cache, or its own nodes when none wait.  A bucket keeps its
 * oldest nodes (BEP 5 prefers them), so after a crowd everyone's buckets
 * point at its first joiners -- the very nodes that joined before there
 * was anyone to find, and may know nobody near them since.  The cache
 * holds who came later. */
static size_t far_seeds(const struct km_dht *d, int b, struct km_contact *out,
			size_t max)
{
	size_t n = 0, waiting = km_table_replacement_count(d->table, b);
	size_t size = km_table_bucket_size(d->table, b);

	for (size_t i = 0; i < waiting && n < max; i++)
		out[n++] = km_table_replacement_entry(d->table, b, i)->c;
	for (size_t i = 0; waiting == 0 && i < size && n < max; i++)
		out[n++] = km_table_bucket_entry(d->table, b, i)->c;
	return n;
}

/* A lookup of our own ID that starts from one random far bucket (see
 * far_seeds()) instead of from our nearest.  A crowd can leave two
 * interleaved halves whose near buckets each hold only their own members,
 * and early joiners that know only each other; a self-lookup that starts
 * among ours stays among them, while our far buckets, filled by whoever
 * asked us, hold nodes of both.  A table of few buckets -- such an early
 * joiner's -- has none beyond the near ones: then any but our own will
 * do, and it is the table that most needs this lookup (measured: 22 of
 * 10,000 nodes after a 10 s crowd had 3 buckets and were known to none of
 * their true neighbours). */
static void look_up_self_from_afar(struct km_dht *d, km_ms now)
{
	int far = km_table_bucket_count(d->table) - KM_TABLE_NEAR_BUCKETS;
	struct km_contact seeds[KM_DHT_SCRATCH_NODES];
	size_t n;
	struct search *s;

	if (far <= 0)
		far = km_table_bucket_count(d->table) - 1;
	if (far <= 0 || d->nsearches >= d->cfg.max_lookups / 2 + 1)
		return;
	n = far_seeds(d, (int)km_rng_below(d->rng, (uint64_t)far), seeds,
		      KM_DHT_SCRATCH_NODES);
	if (n == 0)
		return;
	s = search_new(d, &d->cfg.id, KM_LOOKUP_FIND_NODE, seeds, n, false, now);
	if (s)
		search_pump(d, s, now);
}

/* A node that joined early in a crowd may know no node near its own ID at
 * all: the nodes its join asked had only just joined themselves, and knew
 * next to nobody.  Nobody near it knows it either, so look_again_near()
 * never fires.  Only time can tell it that the network has grown around
 * it: so REGROW_FIRST_MS after the join's refresh, and again at doubling
 * intervals up to REGROW_LAST_MS, it looks itself up twice, from its
 * nearest nodes and from afar (look_up_self_from_afar()).  And the buckets
 * it has after the crowd are not the ones its last refresh knew (one then,
 * ten now): when as many nodes have entered the table since that refresh
 * as half what it held then, and at least k, every bucket is refreshed
 * again.  Six checks in all; then the buckets' own refresh_ms takes
 * over.  Returns when the next check is due, or 0. */
static km_ms refresh_again(struct km_dht *d, km_ms now)
{
	unsigned long added = km_table_changes(d->table).added -
			      d->at_refresh.added;
	size_t enough = d->size_at_refresh / 2;

	if (!d->next_regrow || now < d->next_regrow)
		return d->next_regrow;
	if (d->regrow_every > REGROW_LAST_MS) {
		d->next_regrow = 0;
		return 0;
	}
	look_up_self(d, now);
	look_up_self_from_afar(d, now);
	if (enough < (size_t)d->cfg.table.k)
		enough = (size_t)d->cfg.table.k;
	if (added >= enough)
		refresh_every_bucket(d, now);
	d->regrow_every *= 2;
	d->next_regrow = now + d->regrow_every;
	return d->next_regrow;
}

km_ms dht_search_tick(struct km_dht *d, km_ms now)
{
	struct search *s, *tmp;
	km_ms wake = km_table_next_refresh(d->table);

	if (!d->joined && km_table_size(d->table) > 0)
		join(d, now);
	if (d->joined)
		refresh_buckets(d, now);
	wake = km_ms_earliest(wake, look_again_while_short(d, now));
	wake = km_ms_earliest(wake, look_again_near(d, now));
	wake = km_ms_earliest(wake, refresh_again(d, now));
	DL_FOREACH_SAFE(d->searches, s, tmp) {
		km_lookup_tick(s->lk, now);
		/* After the pump: a retry it sent has a deadline of its own. */
		if (search_pump(d, s, now))
			wake = km_ms_earliest(wake, km_lookup_next_wake(s->lk));
	}
	return wake;
}
