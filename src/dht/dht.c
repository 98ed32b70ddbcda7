/* The DHT node: transactions, dispatch and timers.  Query handling lives in
 * dht_server.c and lookups in dht_search.c. */
#include "dht/dht.h"

#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "dht/dht_internal.h"
#include "proto/err.h"

#define PEER_EXPIRY_EVERY_MS KM_MINUTES(1)
/* One questionable node pinged per interval: slow enough to cost nothing,
 * fast enough to find a whole table's dead nodes within minutes. */
#define MAINTENANCE_EVERY_MS KM_SECONDS(1)
/* The longest a node that asked to join and heard nothing back waits
 * before it serves what it has anyway (see dht_awaiting()). */
#define AWAIT_MAX_MS KM_SECONDS(30)

void km_dht_config_default(struct km_dht_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->family = KM_AF_INET4;
	km_table_config_default(&cfg->table);
	km_lookup_config_default(&cfg->lookup);
	km_peers_config_default(&cfg->peers);
	/* Two tries of 2 s fit the lookup's 4 s timeout: one lost datagram
	 * then costs a retry instead of a node missing from the result. */
	cfg->query_timeout_ms = KM_SECONDS(2);
	/* A query failing now went out a timeout ago: an answer since then
	 * (to a lookup's other try) outweighs it. */
	cfg->table.failure_grace_ms = cfg->query_timeout_ms;
	cfg->max_transactions = 2048;
	cfg->max_lookups = 64;
	km_ratelimit_config_default(&cfg->rate);
	cfg->amplification = 3;
	cfg->unverified_reply_bps = 256 * 1024;
}

static bool config_valid(const struct km_dht_config *cfg)
{
	return (cfg->family == KM_AF_INET4 || cfg->family == KM_AF_INET6) &&
	       cfg->query_timeout_ms > 0 && cfg->max_transactions > 0 &&
	       cfg->max_lookups > 0;
}

/* The rate limiter's hash key.  The first `previous` token secret is
 * random and never makes a token anyone sees, so it can key the index
 * without another draw from rng: a draw would shift every later random
 * choice, and with it every simulated run of a given seed. */
static uint64_t index_key(const struct km_tokens *t)
{
	uint64_t key;

	memcpy(&key, t->previous, sizeof(key));
	return key;
}

struct km_dht *km_dht_new(const struct km_dht_config *cfg,
			  const struct km_dht_callbacks *cb, void *user,
			  struct km_rng *rng, km_ms now)
{
	struct km_dht *d;

	if (!config_valid(cfg) || !cb || !cb->send)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->cfg = *cfg;
	d->cb = *cb;
	d->user = user;
	d->rng = rng;
	d->table = km_table_new(&cfg->id, &cfg->table, now);
	d->peers = km_peers_new(&cfg->peers);
	d->rl = km_ratelimit_new(&cfg->rate);
	if (!d->table || !d->peers || !d->rl) {
		km_dht_del(d);
		return NULL;
	}
	km_tokens_init(&d->tokens, rng, now);
	km_ratelimit_set_key(d->rl, index_key(&d->tokens));
	km_contacted_init(&d->contacted, km_rng_mix64(index_key(&d->tokens)), now);
	d->budget_refilled = now;
	d->unverified_budget = cfg->unverified_reply_bps;
	d->next_lookup_id = 1;
	d->next_peer_expiry = now + PEER_EXPIRY_EVERY_MS;
	return d;
}

static void tx_free(struct km_dht *d, struct tx *tx)
{
	HASH_DEL(d->tx_by_tid, tx);
	DL_DELETE(d->tx_queue, tx);
	d->ntx--;
	free(tx);
}

void km_dht_del(struct km_dht *d)
{
	struct tx *tx, *tmp;

	if (!d)
		return;
	DL_FOREACH_SAFE(d->tx_queue, tx, tmp)
		tx_free(d, tx);
	dht_search_free_all(d);
	if (d->sibling && d->sibling->sibling == d)
		d->sibling->sibling = NULL;
	km_table_del(d->table);
	km_peers_del(d->peers);
	km_ratelimit_del(d->rl);
	free(d);
}

void km_dht_set_read_only(struct km_dht *d, bool read_only)
{
	d->cfg.read_only = read_only;
}

void km_dht_set_sibling(struct km_dht *d, struct km_dht *other_family)
{
	d->sibling = other_family;
	if (other_family)
		other_family->sibling = d;
}

void dht_send_msg(struct km_dht *d, const struct km_addr *to,
		  struct km_krpc_msg *m)
{
	/* On the stack, not in the node: 2 KiB a node is 200 MiB for a
	 * simulated 100,000, for a buffer that lives one call. */
	uint8_t out[KM_DHT_SEND_BUF];
	int len;

	memcpy(m->v, KM_KRPC_CLIENT_V, KM_KRPC_CLIENT_V_LEN);
	m->v_len = KM_KRPC_CLIENT_V_LEN;
	m->ro = d->cfg.read_only && m->type == KM_KRPC_QUERY;
	len = km_krpc_encode(m, out, sizeof(out));
	if (len < 0)
		return; /* our own message does not fit: a bug, never a crash */
	if (m->type != KM_KRPC_QUERY &&
	    !dht_guard_reply(d, to, m, out, sizeof(out), &len))
		return;
	d->stats.packets_out++;
	d->stats.bytes_out += (unsigned long)len;
	d->cb.send(d->user, to, out, (size_t)len);
}

static struct tx *tx_new(struct km_dht *d)
{
	struct tx *tx = calloc(1, sizeof(*tx)), *clash;

	if (!tx)
		return NULL;
	do {
		km_rng_fill(d->rng, tx->tid, sizeof(tx->tid));
		HASH_FIND(hh, d->tx_by_tid, tx->tid, sizeof(tx->tid), clash);
	} while (clash);
	return tx;
}

int dht_send_query(struct km_dht *d, const struct km_contact *to, bool id_known,
		   enum tx_kind kind, uint64_t lookup_id, struct km_krpc_msg *m,
		   km_ms now)
{
	struct tx *tx;

	if (d->ntx >= d->cfg.max_transactions || !(tx = tx_new(d))) {
		d->stats.tx_full++;
		return KM_ERR_FULL;
	}
	tx->kind = kind;
	tx->to = to->addr;
	tx->expect_id = to->id;
	tx->id_known = id_known;
	tx->lookup_id = lookup_id;
	tx->sent = now;
	tx->deadline = now + d->cfg.query_timeout_ms;
	HASH_ADD(hh, d->tx_by_tid, tid, sizeof(tx->tid), tx);
	DL_APPEND(d->tx_queue, tx);
	d->ntx++;

	memcpy(m->tid, tx->tid, sizeof(tx->tid));
	m->tid_len = sizeof(tx->tid);
	m->id = d->cfg.id;
	km_contacted_note(&d->contacted, &to->addr, now);
	dht_send_msg(d, &to->addr, m);
	return 0;
}

void dht_ping(struct km_dht *d, const struct km_contact *c, km_ms now)
{
	struct km_krpc_msg m;

	km_krpc_init(&m, KM_KRPC_QUERY);
	m.method = KM_KRPC_PING;
	/* Unsent, it would be awaited forever: the table asks for no second
	 * ping of a node whose first is pending. */
	if (dht_send_query(d, c, true, TX_PING, 0, &m, now) < 0)
		km_table_cancel_ping(d->table, &c->id);
}

void dht_offer(struct km_dht *d, const struct km_contact *c,
	       enum km_seen_kind kind, uint32_t rtt_ms, km_ms now)
{
	struct km_contact to_ping;

	if (c->addr.family != d->cfg.family)
		return;
	switch (km_table_offer(d->table, c, kind, rtt_ms, now, &to_ping)) {
	case KM_OFFER_PING:
		dht_ping(d, &to_ping, now);
		break;
	case KM_OFFER_ADDED:
		/* A node that entered by its query is served only once it
		 * has answered one of ours: asked at once, it is served
		 * within a round trip, not once maintenance (a ping a
		 * second) has come round to it.  One ping for one query
		 * that won a slot: no amplification. */
		if (kind == KM_SEEN_QUERY) {
			km_table_ping_sent(d->table, &c->id);
			dht_ping(d, c, now);
		}
		break;
	default:
		break;
	}
}

/* A node that has asked to join (a bootstrap, a saved contact, a LAN
 * peer) and has had no answer yet is not part of any network.  Until it
 * is, it files none of the nodes that query it, and so hands none out:
 * all it could hand out are nodes that found it -- newcomers that
 * bootstrapped from it -- and if its own join query was lost, it and they
 * would form an island that every later joiner through any of them
 * enlarges, and that no lookup of the main network enters (measured: the
 * lost join query of node 17 of a 2,000-node flash crowd left 63% of
 * lookups exact at the end, docs/BENCHMARKS.md).  Its newcomers now know
 * only it, and look again through it once it has joined (their tables are
 * short).  After AWAIT_MAX_MS it stops waiting: a seed whose own seed is
 * dead must serve in the end. */
bool dht_awaiting(const struct km_dht *d, km_ms now)
{
	return d->awaiting && !d->answered && now < d->awaiting_until;
}

static void verify_query(const struct km_dht *d, struct km_krpc_msg *m)
{
	km_krpc_init(m, KM_KRPC_QUERY);
	m->method = KM_KRPC_FIND_NODE;
	m->target = d->cfg.id;
}

/* A join query that went unanswered is sent once more, as a lookup's is:
 * one lost datagram should not leave a joiner alone for the driver's
 * whole retry interval (see dht_awaiting()). */
static void resend_verify(struct km_dht *d, const struct tx *tx)
{
	struct km_krpc_msg m;

	verify_query(d, &m);
	memcpy(m.tid, tx->tid, sizeof(tx->tid));
	m.tid_len = sizeof(tx->tid);
	m.id = d->cfg.id;
	dht_send_msg(d, &tx->to, &m);
}

int km_dht_ping_addr(struct km_dht *d, const struct km_addr *addr, km_ms now)
{
	struct km_contact c = { .addr = *addr };
	struct km_krpc_msg m;

	if (!d->awaiting && !d->answered) {
		d->awaiting = true;
		d->awaiting_until = now + AWAIT_MAX_MS;
	}
	verify_query(d, &m);
	return dht_send_query(d, &c, false, TX_VERIFY, 0, &m, now);
}

/* The address we asked answered under another ID: the node we knew there
 * is gone (a restart draws a new ID, a NAT may hand its port to someone
 * else), so its entry goes, as libtorrent evicts it.  The answer is
 * evidence for neither ID, so it credits no one: not the old ID, which did
 * not answer, and not the new, which we never asked. */
static void reply_under_other_id(struct km_dht *d, const struct tx *tx,
				 km_ms now)
{
	const struct km_table_entry *e = km_table_find(d->table, &tx->expect_id);

	if (!e || km_addr_eq(&e->c.addr, &tx->to))
		km_table_remove(d->table, &tx->expect_id);
	if (tx->kind == TX_LOOKUP)
		dht_search_on_failure(d, tx, now);
}

static void handle_reply(struct km_dht *d, const struct km_addr *from,
			 const struct km_krpc_msg *m, km_ms now)
{
	struct tx *tx = NULL;

	if (m->tid_len == KM_DHT_TID_LEN)
		HASH_FIND(hh, d->tx_by_tid, m->tid, KM_DHT_TID_LEN, tx);
	/* A reply must come from where the query went; anything else is a
	 * stale packet or a spoofing attempt. */
	if (!tx || !km_addr_eq(&tx->to, from)) {
		d->stats.unmatched_replies++;
		return;
	}
	if (m->type == KM_KRPC_RESPONSE) {
		struct km_contact c = { .id = m->id, .addr = *from };

		d->stats.replies_in++;
		km_ratelimit_verify(d->rl, from, now);
		if (tx->kind == TX_VERIFY || tx->kind == TX_LOOKUP)
			d->answered = true;
		if (m->has_ip && d->cb.observed)
			d->cb.observed(d->user, from, &m->ip, now);
		if (tx->id_known && !km_id_eq(&m->id, &tx->expect_id)) {
			reply_under_other_id(d, tx, now);
		} else {
			dht_offer(d, &c, KM_SEEN_REPLY,
				  (uint32_t)(now - tx->sent), now);
			if (tx->kind == TX_LOOKUP)
				dht_search_on_reply(d, tx, m, now);
		}
	} else {
		d->stats.errors_in++;
		/* Every DHT node answers ping.  An error instead (some peers
		 * send 203 for whatever they dislike) is a failed ping: the
		 * table awaits an outcome before it pings the node again. */
		if (tx->kind == TX_PING)
			km_table_on_failure(d->table, &tx->expect_id, now);
		if (tx->kind == TX_LOOKUP)
			dht_search_on_failure(d, tx, now);
	}
	tx_free(d, tx);
}

void km_dht_note_contacted(struct km_dht *d, const struct km_addr *addr,
			   km_ms now)
{
	km_contacted_note(&d->contacted, addr, now);
}

/* A query from an IP we have not talked to lately got through any NAT in
 * front of us unasked (see the unsolicited callback). */
static void judge_query(struct km_dht *d, const struct km_addr *from,
			km_ms now)
{
	if (km_contacted_maybe(&d->contacted, from, now))
		return;
	d->stats.unsolicited_in++;
	if (d->cb.unsolicited)
		d->cb.unsolicited(d->user, from, now);
}

static void receive(struct km_dht *d, const struct km_addr *from,
		    const uint8_t *buf, size_t len, km_ms now)
{
	struct km_krpc_msg m;
	int rc;

	rc = km_krpc_decode(buf, len, &m);
	if (!dht_guard_receive(d, from, &m, rc, now))
		return;
	d->in_len = len;
	d->in_now = now;
	if (rc < 0) {
		d->stats.malformed_in++;
		if (m.type == KM_KRPC_QUERY && m.tid_len > 0 && !d->cfg.read_only)
			dht_server_send_error(d, from, &m, KM_KRPC_ERR_PROTOCOL,
					      km_strerror(rc));
		d->in_len = 0;
		return;
	}
	if (m.type == KM_KRPC_QUERY) {
		judge_query(d, from, now);
		dht_server_handle_query(d, from, &m, now);
	} else {
		handle_reply(d, from, &m, now);
	}
	d->in_len = 0;
}

void km_dht_receive(struct km_dht *d, const struct km_addr *from,
		    const uint8_t *buf, size_t len, km_ms now)
{
	d->stats.packets_in++;
	d->stats.bytes_in += len;
	/* Unread: a banned source costs no decoding. */
	if (!km_ratelimit_banned(d->rl, from, now))
		receive(d, from, buf, len, now);
	/* Whatever it was (our answer, if any, went there too), a datagram
	 * from an IP keeps a NAT's mapping for it open as ours do. */
	km_contacted_note(&d->contacted, from, now);
}

/* A lookup's retry goes out as a transaction of its own, one RTO after the
 * first try: while it is pending, the first try running out says nothing
 * the retry will not say better.  Failing the node then cut the retry's
 * window short (a lookup left out a node whose first datagram was lost and
 * whose retry was answered after the first try's 2 s), and counted a
 * table failure for a query still out.  The queue is in deadline order,
 * so the retry, sent later, is behind tx. */
static bool superseded(const struct tx *tx)
{
	for (const struct tx *o = tx->next; o; o = o->next)
		if (o->kind == TX_LOOKUP && o->lookup_id == tx->lookup_id &&
		    km_id_eq(&o->expect_id, &tx->expect_id))
			return true;
	return false;
}

/* Sends tx's query once more, if it is a first try that may have one: a
 * lookup's (when the lookup still wants it) or a join query's (see
 * resend_verify()).  Same tid, so a late answer to the first try counts. */
static bool resend(struct km_dht *d, struct tx *tx, km_ms now)
{
	if (tx->resent)
		return false;
	if (tx->kind == TX_VERIFY)
		resend_verify(d, tx);
	else if (tx->kind != TX_LOOKUP || !dht_search_resend(d, tx))
		return false;
	tx->resent = true;
	tx->deadline = now + d->cfg.query_timeout_ms;
	DL_DELETE(d->tx_queue, tx);
	DL_APPEND(d->tx_queue, tx);
	d->stats.resent++;
	return true;
}

static void expire_transactions(struct km_dht *d, km_ms now)
{
	while (d->tx_queue && d->tx_queue->deadline <= now) {
		struct tx *tx = d->tx_queue;

		if (tx->kind == TX_LOOKUP && superseded(tx)) {
			tx_free(d, tx);
			continue;
		}
		if (resend(d, tx, now))
			continue;
		d->stats.timeouts++;
		if (tx->id_known)
			km_table_on_failure(d->table, &tx->expect_id, now);
		if (tx->kind == TX_LOOKUP)
			dht_search_on_failure(d, tx, now);
		tx_free(d, tx);
	}
}

km_ms km_dht_tick(struct km_dht *d, km_ms now)
{
	km_ms wake;

	expire_transactions(d, now);
	km_tokens_tick(&d->tokens, d->rng, now);
	if (now >= d->next_peer_expiry) {
		km_peers_expire(d->peers, now);
		d->next_peer_expiry = now + PEER_EXPIRY_EVERY_MS;
	}
	if (now >= d->next_maintenance) {
		struct km_contact stale;

		if (km_table_next_stale(d->table, now, &stale))
			dht_ping(d, &stale, now);
		d->next_maintenance = now + MAINTENANCE_EVERY_MS;
	}
	wake = dht_search_tick(d, now);
	wake = km_ms_earliest(wake, d->next_maintenance);
	wake = km_ms_earliest(wake, d->tx_queue ? d->tx_queue->deadline : 0);
	wake = km_ms_earliest(wake, km_tokens_next_rotation(&d->tokens));
	wake = km_ms_earliest(wake, d->next_peer_expiry);
	return wake;
}

const struct km_id *km_dht_id(const struct km_dht *d)
{
	return &d->cfg.id;
}

const struct km_table *km_dht_table(const struct km_dht *d)
{
	return d->table;
}

const struct km_ratelimit *km_dht_ratelimit(const struct km_dht *d)
{
	return d->rl;
}

const struct km_peers *km_dht_peers(const struct km_dht *d)
{
	return d->peers;
}

struct km_dht_stats km_dht_stats(const struct km_dht *d)
{
	struct km_dht_stats s = d->stats;

	s.transactions = d->ntx;
	s.lookups = d->nsearches;
	return s;
}

/* uthash's bucket array and table header, which the handles point into. */
static size_t tx_index_bytes(const struct km_dht *d)
{
	const UT_hash_table *tbl = d->tx_by_tid ? d->tx_by_tid->hh.tbl : NULL;

	if (!tbl)
		return 0;
	return sizeof(*tbl) + tbl->num_buckets * sizeof(UT_hash_bucket);
}

struct km_dht_mem km_dht_mem(const struct km_dht *d)
{
	struct km_dht_mem m = {
		.node = sizeof(*d),
		.table = km_table_mem(d->table),
		.ratelimit = km_ratelimit_mem(d->rl),
		.transactions = d->ntx * sizeof(struct tx) + tx_index_bytes(d),
		.lookups = d->nsearches * sizeof(struct search),
		.peers = km_peers_mem(d->peers),
	};

	m.total = m.node + m.table + m.ratelimit + m.transactions + m.lookups;
	return m;
}
