#include "net/broadcast.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "net/ident.h"
#include "net/origins.h"
#include "proto/err.h"
#include "proto/wire.h"

/* Announcers remembered per missing message: GRAFT tries them in order. */
#define MISSING_SOURCES 4
/* Where the hop count sits in an encoded MESSAGE body. */
#define HOPS_OFFSET (KM_MSG_ID_LEN + KM_ID_LEN + 8)
#define SEQ_OFFSET (KM_MSG_ID_LEN + KM_ID_LEN)

struct peer {
	uint64_t id;
	bool eager;
	uint16_t n_ihave, cap_ihave;
	uint8_t *ihave;   /* IDs waiting for the next IHAVE, back to back */
	km_ms flush_at;   /* when they go out; meaningful if n_ihave > 0 */
};

/* A message this node has delivered.  Entries sit in the hash in insertion
 * order, and every entry lives seen_ttl_ms, so the head is always the next
 * to expire.  body is the MESSAGE as this node relays it (hops already
 * incremented), kept for GRAFTs while it is in the payload cache. */
struct seen {
	uint8_t id[KM_MSG_ID_LEN];
	km_ms expires;
	uint8_t *body;
	size_t len;
	km_ms body_expires;
	struct seen *cnext, *cprev; /* payload cache, oldest first */
	UT_hash_handle hh;
};

/* A message announced by IHAVE whose payload has not arrived. */
struct missing {
	uint8_t id[KM_MSG_ID_LEN];
	uint64_t from[MISSING_SOURCES];
	unsigned n;
	km_ms graft_at;
	UT_hash_handle hh;
};

struct km_bcast {
	struct km_id self;
	struct km_bcast_config cfg;
	struct km_bcast_callbacks cb;
	void *user;
	struct km_rng *rng;
	struct km_ident ident;
	uint64_t seq;
	struct km_origins *origins; /* keys, replay windows, rates */
	struct peer *peers;
	uint32_t *pick;       /* scratch for random choices, peers_cap long */
	size_t npeers, peers_cap;
	struct seen *seen;
	size_t nseen;
	struct seen *chead, *ctail;
	size_t cache_bytes;
	struct missing *missing;
	size_t nmissing;
	struct km_bcast_stats st;
};

void km_bcast_config_default(struct km_bcast_config *cfg)
{
	*cfg = (struct km_bcast_config){
		.seen_max = 65536,
		.seen_ttl_ms = KM_MINUTES(10),
		.cache_max_bytes = 16 << 20,
		.cache_ttl_ms = KM_SECONDS(60),
		.ihave_timeout_ms = 1000,
		.ihave_flush_ms = 50,
		.max_peers = 256,
		.missing_max = 4096,
		.lazy_fanout = 4,
		.repair_grafts = 4,
		.origins_max = 4096,
		.origin_rate = 50,
		.origin_burst = 200,
	};
}

struct km_bcast *km_bcast_new(const struct km_id *self,
			      const struct km_ident *ident,
			      const struct km_bcast_config *cfg,
			      const struct km_bcast_callbacks *cb, void *user,
			      struct km_rng *rng, km_ms now)
{
	struct km_bcast *b = calloc(1, sizeof(*b));

	(void)now;
	if (!b)
		return NULL;
	b->self = *self;
	if (cfg)
		b->cfg = *cfg;
	else
		km_bcast_config_default(&b->cfg);
	b->origins = km_origins_new(&(struct km_origins_config){
		.max = b->cfg.origins_max, .rate = b->cfg.origin_rate,
		.burst = b->cfg.origin_burst });
	if (!b->origins) {
		free(b);
		return NULL;
	}
	b->cb = *cb;
	b->user = user;
	b->rng = rng;
	/* Random, so that a restarted node does not reuse its old IDs; the top
	 * bit is left clear so the counter cannot wrap in practice. */
	b->seq = b->cfg.seq_start ? b->cfg.seq_start : km_rng_u64(rng) >> 1;
	b->ident = *ident;
	return b;
}

static void seen_drop(struct km_bcast *b, struct seen *e);

void km_bcast_del(struct km_bcast *b)
{
	struct missing *m, *mt;

	if (!b)
		return;
	while (b->seen)
		seen_drop(b, b->seen);
	HASH_ITER(hh, b->missing, m, mt) {
		HASH_DEL(b->missing, m);
		free(m);
	}
	km_origins_del(b->origins);
	for (size_t i = 0; i < b->npeers; i++)
		free(b->peers[i].ihave);
	free(b->peers);
	free(b->pick);
	free(b);
}

/* ---- Peers ---- */

static struct peer *peer_find(struct km_bcast *b, uint64_t id)
{
	for (size_t i = 0; i < b->npeers; i++)
		if (b->peers[i].id == id)
			return &b->peers[i];
	return NULL;
}

bool km_bcast_peer_eager(const struct km_bcast *b, uint64_t peer)
{
	const struct peer *p = peer_find((struct km_bcast *)b, peer);

	return p && p->eager;
}

static int peers_grow(struct km_bcast *b)
{
	size_t cap = b->peers_cap ? b->peers_cap * 2 : 8;
	struct peer *np;
	uint32_t *pick;

	if (cap > b->cfg.max_peers)
		cap = b->cfg.max_peers;
	np = realloc(b->peers, cap * sizeof(*np));
	if (!np)
		return KM_ERR_NOMEM;
	b->peers = np;
	pick = realloc(b->pick, cap * sizeof(*pick));
	if (!pick)
		return KM_ERR_NOMEM;
	b->pick = pick;
	b->peers_cap = cap;
	return 0;
}

int km_bcast_peer_up(struct km_bcast *b, uint64_t peer, km_ms now)
{
	int rv;

	(void)now;
	if (peer_find(b, peer))
		return 0;
	if (b->npeers >= b->cfg.max_peers)
		return KM_ERR_FULL;
	if (b->npeers == b->peers_cap && (rv = peers_grow(b)) < 0)
		return rv;
	b->peers[b->npeers++] = (struct peer){ .id = peer, .eager = true };
	return 0;
}

static void send_frame(struct km_bcast *b, uint64_t peer, uint8_t type,
		       const uint8_t *body, size_t len)
{
	if (type == KM_FRAME_MESSAGE)
		b->st.payload_bytes_out += KM_FRAME_HEADER_LEN + len;
	else
		b->st.control_bytes_out += KM_FRAME_HEADER_LEN + len;
	b->cb.send(b->user, peer, type, body, len);
}

/* Picks up to k of the peers in the given set (eager or lazy), leaving
 * out *except if not NULL, uniformly at random; k == 0 means all.  The
 * choice is in b->pick[0..return). */
static size_t pick_peers(struct km_bcast *b, bool eager, const uint64_t *except,
			 unsigned k)
{
	size_t n = 0;

	for (size_t i = 0; i < b->npeers; i++)
		if (b->peers[i].eager == eager &&
		    !(except && b->peers[i].id == *except))
			b->pick[n++] = (uint32_t)i;
	if (k == 0 || k >= n)
		return n;
	/* Partial Fisher-Yates: the first k slots become a random k-subset. */
	for (size_t i = 0; i < k; i++) {
		size_t j = i + (size_t)km_rng_below(b->rng, n - i);
		uint32_t t = b->pick[i];

		b->pick[i] = b->pick[j];
		b->pick[j] = t;
	}
	return k;
}

static void send_graft(struct km_bcast *b, struct peer *p, const uint8_t *id)
{
	uint8_t body[2 + KM_MSG_ID_LEN];
	int len = km_msg_ids_encode(body, sizeof(body), id, id ? 1 : 0);

	p->eager = true;
	b->st.graft_sent++;
	send_frame(b, p->id, KM_FRAME_GRAFT, body, (size_t)len);
}

/* An eager link broke, so part of the tree may now be cut off from us.
 * Rather than wait for the next message's IHAVE timeouts, make a few lazy
 * links eager at once; any redundancy this adds is pruned again by the
 * duplicates of the next message. */
static void repair(struct km_bcast *b)
{
	size_t n = pick_peers(b, false, NULL, b->cfg.repair_grafts);

	if (b->cfg.repair_grafts == 0)
		return;
	for (size_t i = 0; i < n; i++)
		send_graft(b, &b->peers[b->pick[i]], NULL);
}

void km_bcast_peer_down(struct km_bcast *b, uint64_t peer, km_ms now)
{
	struct peer *p = peer_find(b, peer);
	bool was_eager;

	(void)now;
	if (!p)
		return;
	was_eager = p->eager;
	free(p->ihave);
	*p = b->peers[--b->npeers];
	/* Missing entries may still name this peer: the GRAFT timer skips
	 * announcers that are no longer up. */
	if (was_eager)
		repair(b);
}

/* ---- The seen-cache and the payload cache ---- */

static void cache_unlink(struct km_bcast *b, struct seen *e)
{
	if (!e->body)
		return;
	if (e->cprev)
		e->cprev->cnext = e->cnext;
	else
		b->chead = e->cnext;
	if (e->cnext)
		e->cnext->cprev = e->cprev;
	else
		b->ctail = e->cprev;
	b->cache_bytes -= e->len;
	free(e->body);
	e->body = NULL;
	e->cnext = e->cprev = NULL;
}

static void seen_drop(struct km_bcast *b, struct seen *e)
{
	cache_unlink(b, e);
	HASH_DEL(b->seen, e);
	b->nseen--;
	free(e);
}

/* Both caches drop what has expired, then their oldest entries while over
 * a cap.  Entries are appended with the same TTL, so oldest = first due. */
static void expire_seen(struct km_bcast *b, km_ms now, size_t max)
{
	while (b->seen && (b->seen->expires <= now || b->nseen > max)) {
		if (b->seen->expires > now)
			b->st.seen_evicted++; /* the cap bit, not the clock */
		seen_drop(b, b->seen);
	}
}

static void expire_cache(struct km_bcast *b, km_ms now)
{
	while (b->chead && (b->chead->body_expires <= now ||
			    b->cache_bytes > b->cfg.cache_max_bytes))
		cache_unlink(b, b->chead);
}

static struct seen *seen_find(struct km_bcast *b, const uint8_t *id)
{
	struct seen *e;

	HASH_FIND(hh, b->seen, id, KM_MSG_ID_LEN, e);
	return e;
}

static struct seen *seen_add(struct km_bcast *b, const uint8_t *id, km_ms now)
{
	struct seen *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	/* Make room first, so the new entry is never the one evicted. */
	expire_seen(b, now, b->cfg.seen_max ? b->cfg.seen_max - 1 : 0);
	memcpy(e->id, id, KM_MSG_ID_LEN);
	e->expires = now + b->cfg.seen_ttl_ms;
	HASH_ADD(hh, b->seen, id, KM_MSG_ID_LEN, e);
	b->nseen++;
	return e;
}

/* Takes ownership of body: keeps it for GRAFTs, or frees it if it can
 * never fit. */
static void cache_put(struct km_bcast *b, struct seen *e, uint8_t *body,
		      size_t len, km_ms now)
{
	if (len > b->cfg.cache_max_bytes || b->cfg.cache_ttl_ms == 0) {
		free(body);
		return;
	}
	e->body = body;
	e->len = len;
	e->body_expires = now + b->cfg.cache_ttl_ms;
	e->cprev = b->ctail;
	if (b->ctail)
		b->ctail->cnext = e;
	else
		b->chead = e;
	b->ctail = e;
	b->cache_bytes += len;
	expire_cache(b, now);
}

/* ---- Missing messages (announced, not received) ---- */

static void missing_drop(struct km_bcast *b, struct missing *m)
{
	HASH_DEL(b->missing, m);
	b->nmissing--;
	free(m);
}

static void missing_note(struct km_bcast *b, const uint8_t *id, uint64_t from,
			 km_ms now)
{
	struct missing *m;

	HASH_FIND(hh, b->missing, id, KM_MSG_ID_LEN, m);
	if (!m) {
		if (b->nmissing >= b->cfg.missing_max ||
		    !(m = calloc(1, sizeof(*m)))) {
			b->st.dropped++;
			return;
		}
		memcpy(m->id, id, KM_MSG_ID_LEN);
		m->graft_at = now + b->cfg.ihave_timeout_ms;
		HASH_ADD(hh, b->missing, id, KM_MSG_ID_LEN, m);
		b->nmissing++;
	}
	for (unsigned i = 0; i < m->n; i++)
		if (m->from[i] == from)
			return;
	if (m->n < MISSING_SOURCES)
		m->from[m->n++] = from;
}

/* The payload did not come in time: GRAFT the next announcer still up.
 * Returns false once nobody is left to ask. */
static bool missing_graft(struct km_bcast *b, struct missing *m, km_ms now)
{
	while (m->n > 0) {
		struct peer *p = peer_find(b, m->from[0]);

		m->n--;
		memmove(m->from, m->from + 1, m->n * sizeof(m->from[0]));
		if (p) {
			send_graft(b, p, m->id);
			m->graft_at = now + b->cfg.ihave_timeout_ms;
			return true;
		}
	}
	return false;
}

/* ---- Sending on ---- */

static void ihave_flush(struct km_bcast *b, struct peer *p)
{
	uint8_t body[KM_MSG_IDS_MAX_LEN];
	int len = km_msg_ids_encode(body, sizeof(body), p->ihave, p->n_ihave);

	p->n_ihave = 0;
	b->st.ihave_sent++;
	send_frame(b, p->id, KM_FRAME_IHAVE, body, (size_t)len);
}

static void ihave_queue(struct km_bcast *b, struct peer *p, const uint8_t *id,
			km_ms now)
{
	if (p->n_ihave == p->cap_ihave) {
		uint16_t cap = p->cap_ihave ? (uint16_t)(p->cap_ihave * 2) : 4;
		uint8_t *n;

		if (cap > KM_MSG_IDS_MAX)
			cap = KM_MSG_IDS_MAX;
		n = realloc(p->ihave, (size_t)cap * KM_MSG_ID_LEN);
		if (!n) {
			b->st.dropped++;
			return;
		}
		p->ihave = n;
		p->cap_ihave = cap;
	}
	if (p->n_ihave == 0)
		p->flush_at = now + b->cfg.ihave_flush_ms;
	memcpy(p->ihave + (size_t)p->n_ihave++ * KM_MSG_ID_LEN, id, KM_MSG_ID_LEN);
	if (p->n_ihave == KM_MSG_IDS_MAX)
		ihave_flush(b, p);
}

/* Pushes body (a MESSAGE ready to send) to every eager peer but `from`, and
 * announces its ID to lazy_fanout of the lazy ones. */
static void relay(struct km_bcast *b, const uint8_t *body, size_t len,
		  const uint64_t *from, km_ms now)
{
	size_t n = pick_peers(b, true, from, 0);

	for (size_t i = 0; i < n; i++) {
		b->st.relayed++;
		send_frame(b, b->peers[b->pick[i]].id, KM_FRAME_MESSAGE, body, len);
	}
	n = pick_peers(b, false, from, b->cfg.lazy_fanout);
	for (size_t i = 0; i < n; i++)
		ihave_queue(b, &b->peers[b->pick[i]], body, now);
}

/* The bytes an origin signs: context | id | origin | seq | payload.  The
 * message ID is the SHA-1 of everything after the ID, so one buffer serves
 * both; the hop count is left out because relays change it. */
static const char sig_context[16] = "kadmesh msg v2";
#define TBS_HASHED (16 + KM_MSG_ID_LEN)
#define TBS_HEAD (TBS_HASHED + KM_ID_LEN + 8)

static uint8_t *message_tbs(const struct km_message *m, struct km_id *id)
{
	uint8_t *buf = malloc(TBS_HEAD + m->payload_len);

	if (!buf)
		return NULL;
	memcpy(buf, sig_context, sizeof(sig_context));
	memcpy(buf + TBS_HASHED, m->origin.b, KM_ID_LEN);
	km_wire_put_u64(buf + TBS_HASHED + KM_ID_LEN, m->seq);
	if (m->payload_len)
		memcpy(buf + TBS_HEAD, m->payload, m->payload_len);
	km_id_sha1(buf + TBS_HASHED, TBS_HEAD - TBS_HASHED + m->payload_len, id);
	memcpy(buf + 16, id->b, KM_MSG_ID_LEN);
	return buf;
}

/* Returns 0 to accept, KM_ERR_AUTH for a forgery, KM_ERR_FULL to drop
 * quietly (replayed or over the origin's rate), KM_ERR_NOMEM. */
static int check_origin(struct km_bcast *b, const struct km_message *m,
			const uint8_t *tbs, km_ms now)
{
	/* Nobody else may speak in our name (our own key is never evicted). */
	if (km_id_eq(&m->origin, &b->self) &&
	    memcmp(m->pubkey, b->ident.pub, KM_PUBKEY_LEN) != 0) {
		b->st.forged++;
		return KM_ERR_AUTH;
	}
	switch (km_origins_check(b->origins, m, tbs, TBS_HEAD + m->payload_len,
				 now)) {
	case KM_ORIGIN_OK:
		return 0;
	case KM_ORIGIN_FORGED:
		b->st.forged++;
		return KM_ERR_AUTH;
	case KM_ORIGIN_REPLAYED:
		b->st.replayed++;
		return KM_ERR_FULL;
	case KM_ORIGIN_RATE_LIMITED:
		b->st.rate_limited++;
		return KM_ERR_FULL;
	case KM_ORIGIN_NOMEM:
		break;
	}
	return KM_ERR_NOMEM;
}

int km_bcast_pin(struct km_bcast *b, const struct km_id *origin,
		 const uint8_t pubkey[static KM_PUBKEY_LEN], km_ms now)
{
	return km_origins_pin(b->origins, origin, pubkey, now);
}

/* A new message: remember it, hand it up, pass it on, keep it for GRAFTs.
 * body is the encoded MESSAGE to send on (owned by the callee from here). */
static int accept_new(struct km_bcast *b, const struct km_message *m,
		  uint8_t *body, size_t len, const uint64_t *from, km_ms now)
{
	struct seen *e = seen_add(b, m->id, now);
	struct missing *mi;

	if (!e) {
		free(body);
		return KM_ERR_NOMEM;
	}
	HASH_FIND(hh, b->missing, m->id, KM_MSG_ID_LEN, mi);
	if (mi)
		missing_drop(b, mi);
	b->st.delivered++;
	b->cb.deliver(b->user, m);
	relay(b, body, len, from, now);
	cache_put(b, e, body, len, now);
	return 0;
}

int km_bcast_sign(struct km_message *m, const struct km_ident *k)
{
	struct km_id h;
	uint8_t *tbs;
	int rv;

	memcpy(m->pubkey, k->pub, KM_PUBKEY_LEN);
	if (!(tbs = message_tbs(m, &h)))
		return KM_ERR_NOMEM;
	memcpy(m->id, h.b, KM_MSG_ID_LEN);
	rv = km_ident_sign(k, tbs, TBS_HEAD + m->payload_len, m->sig);
	free(tbs);
	return rv;
}

int km_bcast_publish(struct km_bcast *b, const uint8_t *payload, size_t len,
		     uint8_t id[static KM_MSG_ID_LEN], km_ms now)
{
	struct km_message m = { .seq = b->seq++, .hops = 1, .payload = payload,
				.payload_len = len };
	uint8_t *body;
	int blen, rv;

	if (len > KM_MESSAGE_PAYLOAD_MAX)
		return KM_ERR_TOO_LONG;
	m.origin = b->self;
	if ((rv = km_bcast_sign(&m, &b->ident)) < 0)
		return rv;
	memcpy(id, m.id, KM_MSG_ID_LEN);
	if (!(body = malloc(KM_MESSAGE_HEADER_LEN + len)))
		return KM_ERR_NOMEM;
	blen = km_msg_message_encode(body, KM_MESSAGE_HEADER_LEN + len, &m);
	m.hops = 0;
	b->st.originated++;
	return accept_new(b, &m, body, (size_t)blen, NULL, now);
}

/* ---- Frames in ---- */

static int on_message(struct km_bcast *b, struct peer *p, uint64_t from,
		      const uint8_t *in, size_t len, km_ms now)
{
	struct km_message m;
	struct km_id h;
	uint8_t *body, *tbs;
	int rv = km_msg_message_decode(in, len, &m);

	if (rv < 0)
		return rv;
	if (seen_find(b, m.id)) {
		/* A second copy: the link is redundant for this tree.  PRUNE
		 * even if we thought the link lazy already: the sender does
		 * not, or it would not have pushed. */
		b->st.duplicates++;
		if (p) {
			p->eager = false;
			b->st.prune_sent++;
			send_frame(b, p->id, KM_FRAME_PRUNE, NULL, 0);
		}
		return 0;
	}
	if (!(tbs = message_tbs(&m, &h)))
		return KM_ERR_NOMEM;
	rv = memcmp(h.b, m.id, KM_MSG_ID_LEN) != 0 ? KM_ERR_CHECKSUM :
	     check_origin(b, &m, tbs, now);
	free(tbs);
	if (rv == KM_ERR_FULL)
		return 0; /* dropped and counted, but the link did no wrong */
	if (rv < 0)
		return rv;
	/* The first copy came over this link, so it is part of the tree. */
	if (p)
		p->eager = true;
	if (!(body = malloc(len)))
		return KM_ERR_NOMEM;
	memcpy(body, in, len);
	km_wire_put_u16(body + HOPS_OFFSET,
			m.hops == UINT16_MAX ? UINT16_MAX : (uint16_t)(m.hops + 1));
	return accept_new(b, &m, body, len, &from, now);
}

static int on_ihave(struct km_bcast *b, struct peer *p, const uint8_t *in,
		    size_t len, km_ms now)
{
	const uint8_t *ids;
	int n = km_msg_ids_decode(in, len, &ids);

	if (n < 0 || !p)
		return n < 0 ? n : 0;
	for (int i = 0; i < n; i++) {
		const uint8_t *id = ids + (size_t)i * KM_MSG_ID_LEN;

		if (!seen_find(b, id))
			missing_note(b, id, p->id, now);
	}
	return 0;
}

static int on_graft(struct km_bcast *b, struct peer *p, const uint8_t *in,
		    size_t len)
{
	const uint8_t *ids;
	int n = km_msg_ids_decode(in, len, &ids);

	if (n < 0 || !p)
		return n < 0 ? n : 0;
	p->eager = true;
	for (int i = 0; i < n; i++) {
		struct seen *e = seen_find(b, ids + (size_t)i * KM_MSG_ID_LEN);

		if (e && e->body) {
			b->st.relayed++;
			send_frame(b, p->id, KM_FRAME_MESSAGE, e->body, e->len);
		}
	}
	return 0;
}

static int on_prune(struct km_bcast *b, struct peer *p, const uint8_t *in,
		    size_t len)
{
	int rv = km_msg_prune_decode(in, len);

	if (rv == 0 && p)
		p->eager = false;
	return rv;
}

bool km_bcast_handles(uint8_t type)
{
	return type == KM_FRAME_MESSAGE || type == KM_FRAME_IHAVE ||
	       type == KM_FRAME_GRAFT || type == KM_FRAME_PRUNE;
}

int km_bcast_on_frame(struct km_bcast *b, uint64_t peer, uint8_t type,
		      const uint8_t *body, size_t len, km_ms now)
{
	struct peer *p = peer_find(b, peer);
	int rv;

	if (!km_bcast_handles(type))
		return KM_ERR_UNKNOWN_TYPE;
	/* Expired entries must not answer a GRAFT or suppress a message, even
	 * if the driver has not ticked since they expired. */
	expire_seen(b, now, b->cfg.seen_max);
	expire_cache(b, now);
	if (type == KM_FRAME_MESSAGE)
		b->st.payload_bytes_in += KM_FRAME_HEADER_LEN + len;
	else
		b->st.control_bytes_in += KM_FRAME_HEADER_LEN + len;
	switch (type) {
	case KM_FRAME_MESSAGE: rv = on_message(b, p, peer, body, len, now); break;
	case KM_FRAME_IHAVE: rv = on_ihave(b, p, body, len, now); break;
	case KM_FRAME_GRAFT: rv = on_graft(b, p, body, len); break;
	default: rv = on_prune(b, p, body, len); break;
	}
	if (rv < 0)
		b->st.dropped++;
	return rv;
}

/* ---- Timers ---- */

km_ms km_bcast_tick(struct km_bcast *b, km_ms now)
{
	struct missing *m, *mt;
	km_ms next = 0;

	expire_seen(b, now, b->cfg.seen_max);
	expire_cache(b, now);
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = &b->peers[i];

		if (p->n_ihave > 0 && p->flush_at <= now)
			ihave_flush(b, p);
		if (p->n_ihave > 0)
			next = km_ms_earliest(next, p->flush_at);
	}
	HASH_ITER(hh, b->missing, m, mt) {
		if (m->graft_at <= now && !missing_graft(b, m, now)) {
			missing_drop(b, m);
			continue;
		}
		next = km_ms_earliest(next, m->graft_at);
	}
	if (b->seen)
		next = km_ms_earliest(next, b->seen->expires);
	if (b->chead)
		next = km_ms_earliest(next, b->chead->body_expires);
	return next;
}

struct km_bcast_stats km_bcast_stats(const struct km_bcast *b)
{
	struct km_bcast_stats st = b->st;

	st.seen_now = b->nseen;
	st.eager = st.lazy = 0;
	for (size_t i = 0; i < b->npeers; i++) {
		if (b->peers[i].eager)
			st.eager++;
		else
			st.lazy++;
	}
	return st;
}
