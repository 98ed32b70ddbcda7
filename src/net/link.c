/* Overlay links: the TCP side of a node.  Every link starts with the join
 * handshake -- HELLO both ways (each with the sender's key and a fresh
 * nonce), AUTH both ways (each side signs the other's nonce), then
 * PEER_LIST from the side that was contacted -- and the connection manager then decides whether it stays as
 * a neighbour (pinged, carrying broadcast frames) or closes.  A contacted
 * node that is full sends PEER_LIST and GOODBYE FULL instead of its HELLO,
 * so a newcomer can still join through it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dht/id.h"
#include "net/node_internal.h"
#include "proto/err.h"
#include "proto/wire.h"

/* Contacts handed out in one PEER_LIST: the closest to the newcomer, then
 * a few random ones so newcomers do not all learn the same corner. */
#define PEER_LIST_CLOSEST 16
#define PEER_LIST_RANDOM 8
/* A link that is up but not a neighbour (it only waits for its PEER_LIST)
 * gets this long between frames. */
#define LINK_IDLE_MS KM_SECONDS(30)
#define NO_GOODBYE (-1)
/* Frames up to this size are built on the stack and sent in one piece. */
#define SMALL_FRAME (KM_FRAME_HEADER_LEN + KM_PEER_LIST_MAX_LEN)

/* What AUTH signs (docs/PROTOCOL.md): context | network | signer's ID, key
 * and nonce | verifier's ID and nonce. */
static const char auth_context[16] = "kadmesh auth v2";
#define AUTH_TBS_LEN (16 + 4 + 2 * KM_ID_LEN + KM_PUBKEY_LEN + \
		      2 * KM_NONCE_LEN)

struct link *link_find(struct km_node *n, uint64_t conn)
{
	struct link *l;

	HASH_FIND(hh, n->links, &conn, sizeof(conn), l);
	return l;
}

struct km_id link_peer_id(const struct link *l)
{
	return l->hello.id;
}

static bool link_matches(const struct link *l, const struct km_id *id,
			 unsigned want, uint64_t via)
{
	if (want & PEER_RELAYED)
		return l->relay_via != 0 && (via == 0 || l->relay_via == via) &&
		       km_id_eq(&l->relay_peer, id);
	if (((want & PEER_UP) && l->state != LINK_UP) ||
	    ((want & PEER_NEIGHBOUR) && !l->neighbour))
		return false;
	return km_id_eq(&l->hello.id, id);
}

struct link *link_by_peer(struct km_node *n, const struct km_id *id,
			  unsigned want, uint64_t via)
{
	struct link *l, *tmp;

	HASH_ITER(hh, n->links, l, tmp)
		if (link_matches(l, id, want, via))
			return l;
	return NULL;
}

struct link *link_open(struct km_node *n, const struct km_addr *remote,
		       bool outbound, const struct km_id *id, km_ms now)
{
	struct link *l;

	if (n->nlinks >= n->cfg.max_links ||
	    km_connmgr_opened(n->cm, n->next_conn, remote, outbound, id, now) < 0)
		return NULL;
	if (!(l = calloc(1, sizeof(*l)))) {
		km_connmgr_closed(n->cm, n->next_conn, now);
		return NULL;
	}
	l->conn = n->next_conn++;
	l->outbound = outbound;
	l->bootstrap = -1;
	l->remote = *remote;
	l->state = outbound ? LINK_CONNECTING : LINK_HELLO_WAIT;
	/* From the rng, never reused: a recorded AUTH answers an old nonce. */
	km_rng_fill(n->rng, l->nonce, sizeof(l->nonce));
	l->deadline = now + n->cfg.handshake_timeout_ms;
	km_frame_decoder_init(&l->dec, 0);
	HASH_ADD(hh, n->links, conn, sizeof(l->conn), l);
	n->nlinks++;
	if (outbound)
		n->stats.links_out++;
	else
		n->stats.links_in++;
	return l;
}

/* Not known to the connection manager: its first frame is DIALBACK, or it
 * is closed like the connection the caps would have refused. */
struct link *link_open_probe(struct km_node *n, const struct km_addr *remote,
			     km_ms now)
{
	struct link *l;

	if (!node_nat_expecting(n) || !(l = calloc(1, sizeof(*l))))
		return NULL;
	l->conn = n->next_conn++;
	l->bootstrap = -1;
	l->remote = *remote;
	l->state = LINK_HELLO_WAIT;
	l->probe = true;
	l->deadline = now + n->cfg.handshake_timeout_ms;
	km_frame_decoder_init(&l->dec, 0);
	HASH_ADD(hh, n->links, conn, sizeof(l->conn), l);
	n->nlinks++;
	km_dialback_probe_opened(n->dialback);
	return l;
}

/* A bootstrap link that ends before its PEER_LIST arrived has failed,
 * whatever the reason: fall back to KRPC. */
static void bootstrap_gone(struct km_node *n, struct link *l, km_ms now)
{
	if (l->bootstrap >= 0)
		node_bootstrap_failed(n, l->bootstrap, now);
}

static void verify_peer(struct km_node *n, struct link *l, km_ms now);

/* Who hears about a link's life, in this order: here and nowhere else. */
typedef void link_event(struct km_node *n, struct link *l, km_ms now);

/* Its AUTH verified, before the connection manager sees it. */
static link_event *const on_authenticated[] = {
	node_nat_hello_observed, node_punch_hello, node_nat_inbound,
	verify_peer, node_neighbours_pin,
};
/* It became a neighbour. */
static link_event *const on_neighbour_up[] = {
	node_neighbours_up, node_punch_link_up, node_rendezvous_up,
};
/* It ended, whatever it was (still in the link table while they hear). */
static link_event *const on_gone[] = {
	bootstrap_gone, node_punch_link_gone, node_relay_link_gone,
	node_rendezvous_gone, node_neighbours_lost,
};

#define TELL(list, n, l, now) \
	for (size_t i_ = 0; i_ < sizeof(list) / sizeof(list[0]); i_++) \
		list[i_](n, l, now)

static void link_free(struct km_node *n, struct link *l, km_ms now)
{
	TELL(on_gone, n, l, now);
	HASH_DEL(n->links, l);
	n->nlinks--;
	if (l->probe)
		km_dialback_probe_closed(n->dialback);
	km_frame_decoder_free(&l->dec);
	free(l);
}

/* A relayed link's bytes travel inside RELAY_DATA frames (node_relay.c). */
static void link_write(struct km_node *n, struct link *l, const uint8_t *buf,
		       size_t len)
{
	if (l->relay_via)
		node_relay_write(n, l, buf, len);
	else
		n->cb.tcp_send(n->user, l->conn, buf, len);
}

/* Large frames (MESSAGE) go out as header and body, not copied. */
void link_send_frame(struct km_node *n, struct link *l, uint8_t type,
		     const uint8_t *payload, size_t len)
{
	uint8_t buf[SMALL_FRAME];
	int w;

	if (len <= SMALL_FRAME - KM_FRAME_HEADER_LEN) {
		w = km_frame_encode(buf, sizeof(buf), type, payload, len);
		if (w > 0)
			link_write(n, l, buf, (size_t)w);
	} else {
		w = km_frame_write_header(buf, type, len);
		if (w > 0) {
			link_write(n, l, buf, (size_t)w);
			link_write(n, l, payload, len);
		}
	}
	if (w > 0) {
		l->frames_out++;
		l->bytes_out += KM_FRAME_HEADER_LEN + len;
	}
}

bool link_send_by_conn(void *n, uint64_t conn, uint8_t type,
		       const uint8_t *body, size_t len)
{
	struct link *l = link_find(n, conn);

	if (!l)
		return false;
	link_send_frame(n, l, type, body, len);
	return true;
}

struct km_peer link_endpoint(const struct link *l)
{
	struct km_peer p;

	p.id = l->hello.id;
	p.addr = l->remote;
	p.addr.port = l->hello.listen_port;
	return p;
}

static void send_hello(struct km_node *n, struct link *l)
{
	struct km_hello h = {
		.version = KM_PROTO_VERSION,
		.network = n->cfg.network_id,
		.listen_port = n->cfg.port,
		.observed = l->remote,
		.has_key = true,
	};
	uint8_t body[KM_HELLO_MAX_LEN];
	int len;

	h.id = *km_dht_id(n->dht);
	memcpy(h.pubkey, n->ident.pub, KM_PUBKEY_LEN);
	memcpy(h.nonce, l->nonce, KM_NONCE_LEN);
	len = km_msg_hello_encode(body, sizeof(body), &h);
	if (len > 0)
		link_send_frame(n, l, KM_FRAME_HELLO, body, (size_t)len);
}

void link_close(struct km_node *n, struct link *l, int reason,
		const char *text, km_ms now)
{
	if (reason != NO_GOODBYE && l->state != LINK_CONNECTING) {
		struct km_goodbye g = { .reason = (uint8_t)reason };
		uint8_t body[KM_GOODBYE_MAX_LEN];
		int len;

		strncpy(g.text, text, KM_GOODBYE_TEXT_MAX);
		len = km_msg_goodbye_encode(body, sizeof(body), &g);
		if (len > 0)
			link_send_frame(n, l, KM_FRAME_GOODBYE, body, (size_t)len);
	}
	if (l->relay_via)
		node_relay_close(n, l);
	else
		n->cb.tcp_close(n->user, l->conn);
	link_free(n, l, now);
}

void link_on_closed(struct km_node *n, struct link *l, km_ms now)
{
	link_free(n, l, now);
}

void link_on_connected(struct km_node *n, struct link *l, km_ms now)
{
	l->state = LINK_HELLO_WAIT;
	l->deadline = now + n->cfg.handshake_timeout_ms;
	send_hello(n, l);
}

/* A dual-stack node is listed once per family, with the same ID. */
static bool contains(const struct km_peer *peers, size_t n,
		     const struct km_contact *c)
{
	for (size_t i = 0; i < n; i++)
		if (km_id_eq(&peers[i].id, &c->id) &&
		    peers[i].addr.family == c->addr.family)
			return true;
	return false;
}

static size_t add_peer(struct km_peer *peers, size_t count,
		       const struct km_contact *c, const struct km_hello *asker)
{
	if (count >= KM_PEER_LIST_MAX || contains(peers, count, c) ||
	    km_id_eq(&c->id, &asker->id))
		return count;
	peers[count].id = c->id;
	peers[count].addr = c->addr;
	return count + 1;
}

/* From one table: the newcomer's closest known nodes, plus a few random
 * ones. */
static size_t add_from_table(struct km_node *n, const struct km_table *t,
			     const struct km_hello *asker,
			     struct km_peer *peers, size_t count)
{
	struct km_contact close[PEER_LIST_CLOSEST];
	size_t found;

	/* Served nodes only, the newcomer itself left out: it would be the
	 * closest. */
	found = km_table_closest_served(t, &asker->id, &asker->id,
					PEER_LIST_CLOSEST, close);
	for (size_t i = 0; i < found; i++)
		count = add_peer(peers, count, &close[i], asker);
	for (int i = 0; i < PEER_LIST_RANDOM; i++) {
		int bucket = (int)km_rng_below(n->rng, (uint64_t)km_table_bucket_count(t));
		size_t size = km_table_bucket_size(t, bucket);

		if (size > 0)
			count = add_peer(peers, count,
					 &km_table_bucket_entry(t, bucket,
						km_rng_below(n->rng, size))->c,
					 asker);
	}
	return count;
}

/* Both families' tables, so that a dual-stack newcomer fills both. */
static size_t build_peer_list(struct km_node *n, const struct km_hello *asker,
			      struct km_peer *peers)
{
	static const uint8_t families[2] = { KM_AF_INET4, KM_AF_INET6 };
	size_t count = 0;

	for (int i = 0; i < 2; i++) {
		struct km_dht *d = node_dht_for(n, families[i]);

		if (d)
			count = add_from_table(n, km_dht_table(d), asker, peers,
					       count);
	}
	return count;
}

static void send_peer_list(struct km_node *n, struct link *l)
{
	struct km_peer peers[KM_PEER_LIST_MAX];
	uint8_t body[KM_PEER_LIST_MAX_LEN];
	size_t count = build_peer_list(n, &l->hello, peers);
	int len = km_msg_peer_list_encode(body, sizeof(body), peers, count);

	if (len > 0) {
		link_send_frame(n, l, KM_FRAME_PEER_LIST, body, (size_t)len);
		n->stats.peer_lists_out++;
	}
}

/* The peer's UDP side is at its TCP address with its listening port. */
static void verify_peer(struct km_node *n, struct link *l, km_ms now)
{
	struct km_addr udp = l->remote;

	if (l->hello.listen_port == 0)
		return;
	udp.port = l->hello.listen_port;
	node_verify(n, &udp, now);
}

static int hello_refusal(const struct km_node *n, const struct km_hello *h)
{
	if (h->version != KM_PROTO_VERSION || !h->has_key)
		return KM_BYE_BAD_VERSION;
	if (h->network != n->cfg.network_id)
		return KM_BYE_WRONG_NETWORK;
	if (km_id_eq(&h->id, km_dht_id(n->dht)))
		return KM_BYE_SELF;
	return -1;
}

/* Closes the other link the connection manager gave up for l. */
static void close_other(struct km_node *n, uint64_t conn, int reason,
			const char *text, km_ms now)
{
	struct link *other = link_find(n, conn);

	if (other)
		link_close(n, other, reason, text, now);
}

/* The HELLO was fine: the connection manager decides what the link is. */
static bool admit(struct km_node *n, struct link *l, km_ms now)
{
	struct km_id id = link_peer_id(l);
	uint64_t other = 0;
	enum km_cm_verdict v;

	v = km_connmgr_hello(n->cm, l->conn, &id, now, &other);
	if (v == KM_CM_DUPLICATE) {
		link_close(n, l, KM_BYE_DUPLICATE, "already connected", now);
		return false;
	}
	if (v == KM_CM_FULL) {
		/* Authenticated, so the peer list may go out. */
		send_peer_list(n, l);
		link_close(n, l, KM_BYE_FULL, "no free inbound slot", now);
		return false;
	}
	if (v == KM_CM_REPLACE)
		close_other(n, other, KM_BYE_DUPLICATE, "already connected", now);
	else if (v == KM_CM_EVICT)
		close_other(n, other, KM_BYE_FULL, "evicted for diversity", now);
	l->state = LINK_UP;
	l->join_only = v == KM_CM_JOIN_ONLY;
	if (!l->outbound)
		send_peer_list(n, l);
	if (!l->join_only)
		TELL(on_neighbour_up, n, l, now);
	return true;
}

static void auth_tbs(uint8_t out[static AUTH_TBS_LEN], uint32_t network,
		     const struct km_id *signer_id, const uint8_t *signer_key,
		     const uint8_t *signer_nonce, const struct km_id *verifier_id,
		     const uint8_t *verifier_nonce)
{
	uint8_t *p = out;

	memcpy(p, auth_context, sizeof(auth_context));
	p += sizeof(auth_context);
	km_wire_put_u32(p, network);
	p += 4;
	memcpy(p, signer_id->b, KM_ID_LEN);
	p += KM_ID_LEN;
	memcpy(p, signer_key, KM_PUBKEY_LEN);
	p += KM_PUBKEY_LEN;
	memcpy(p, signer_nonce, KM_NONCE_LEN);
	p += KM_NONCE_LEN;
	memcpy(p, verifier_id->b, KM_ID_LEN);
	p += KM_ID_LEN;
	memcpy(p, verifier_nonce, KM_NONCE_LEN);
}

static void send_auth(struct km_node *n, struct link *l)
{
	uint8_t tbs[AUTH_TBS_LEN], sig[KM_AUTH_LEN];

	auth_tbs(tbs, n->cfg.network_id, km_dht_id(n->dht), n->ident.pub,
		 l->nonce, &l->hello.id, l->hello.nonce);
	if (km_ident_sign(&n->ident, tbs, sizeof(tbs), sig) == 0)
		link_send_frame(n, l, KM_FRAME_AUTH, sig, sizeof(sig));
}

static bool on_hello(struct km_node *n, struct link *l,
		     const struct km_frame *f, km_ms now)
{
	int refusal;

	if (l->state != LINK_HELLO_WAIT ||
	    km_msg_hello_decode(f->payload, f->len, &l->hello) < 0) {
		n->stats.hellos_bad++;
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, "bad HELLO", now);
		return false;
	}
	refusal = hello_refusal(n, &l->hello);
	if (refusal >= 0) {
		n->stats.hellos_bad++;
		link_close(n, l, refusal, km_msg_goodbye_reason_name((uint8_t)refusal), now);
		return false;
	}
	if (!l->outbound)
		send_hello(n, l);
	send_auth(n, l);
	l->state = LINK_AUTH_WAIT;
	return true;
}

/* The peer signed our nonce with the key in its HELLO, and that key is the
 * one pinned for its node ID (or the first one seen). */
static bool on_auth(struct km_node *n, struct link *l,
		    const struct km_frame *f, km_ms now)
{
	uint8_t tbs[AUTH_TBS_LEN];
	struct km_id id;
	int rv;

	if (l->state != LINK_AUTH_WAIT || f->len != KM_AUTH_LEN) {
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, "bad AUTH", now);
		return false;
	}
	auth_tbs(tbs, n->cfg.network_id, &l->hello.id, l->hello.pubkey,
		 l->hello.nonce, km_dht_id(n->dht), l->nonce);
	if (!km_ident_verify(l->hello.pubkey, tbs, sizeof(tbs), f->payload)) {
		n->stats.auth_failed++;
		link_close(n, l, KM_BYE_AUTH, "signature does not verify", now);
		return false;
	}
	id = link_peer_id(l);
	rv = km_pins_check(n->pins, &id, l->hello.pubkey, now);
	if (rv == KM_ERR_AUTH) {
		n->stats.auth_key_refused++;
		link_close(n, l, KM_BYE_AUTH, "not the key pinned for this ID",
			   now);
		return false;
	}
	if (rv < 0) {
		link_close(n, l, KM_BYE_FULL, "out of memory", now);
		return false;
	}
	n->stats.hellos_ok++;
	TELL(on_authenticated, n, l, now);
	return admit(n, l, now);
}

static bool on_peer_list(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now)
{
	struct km_peer peers[KM_PEER_LIST_MAX];
	int count = km_msg_peer_list_decode(f->payload, f->len, peers, KM_PEER_LIST_MAX);

	/* Only from an authenticated peer; a full one sends it before its
	 * GOODBYE, so it can arrive when the link is not a neighbour. */
	if (l->state != LINK_UP || !l->outbound || count < 0) {
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, "bad PEER_LIST", now);
		return false;
	}
	n->stats.peer_lists_in++;
	/* Nothing enters the routing table until it answers over KRPC. */
	for (int i = 0; i < count; i++)
		node_verify(n, &peers[i].addr, now);
	if (l->bootstrap >= 0) {
		node_bootstrap_succeeded(n, l->bootstrap);
		l->bootstrap = -1;
	}
	/* A neighbour stays; a full node's GOODBYE comes next. */
	if (l->state != LINK_UP || !l->join_only)
		return true;
	link_close(n, l, KM_BYE_NORMAL, "joined", now);
	return false;
}

static bool on_ping(struct km_node *n, struct link *l, const struct km_frame *f,
		    km_ms now)
{
	uint64_t nonce;
	uint8_t body[KM_PING_LEN];

	if (km_msg_ping_decode(f->payload, f->len, &nonce) < 0) {
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, "bad PING", now);
		return false;
	}
	km_msg_ping_encode(body, sizeof(body), nonce);
	link_send_frame(n, l, KM_FRAME_PONG, body, sizeof(body));
	return true;
}

static bool on_pong(struct km_node *n, struct link *l, const struct km_frame *f,
		    km_ms now)
{
	uint64_t nonce;

	if (km_msg_ping_decode(f->payload, f->len, &nonce) < 0) {
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, "bad PONG", now);
		return false;
	}
	/* Only the answer to our last PING counts: a peer cannot keep a
	 * dead link alive with PONGs it makes up. */
	if (l->pings_unanswered > 0 && nonce == l->ping_nonce) {
		l->pings_unanswered = 0;
		l->rtt_ms = (uint32_t)(now - l->ping_sent);
	}
	return true;
}

static bool on_broadcast(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now)
{
	int rc;

	if (!l->neighbour)
		return true; /* a link that is closing anyway */
	rc = km_bcast_on_frame(n->bcast, l->conn, f->type, f->payload, f->len,
			       now);
	if (rc < 0 && rc != KM_ERR_NOMEM) {
		char text[64];

		snprintf(text, sizeof(text), "bad %s: %s",
			 km_frame_type_name(f->type), km_strerror(rc));
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, text, now);
		return false;
	}
	return true;
}

/* Kept for operators: why the last peer left is often the first thing
 * asked when a node is lonely.  The text is the peer's, so it stays data:
 * the decoder has checked it is UTF-8 without NUL. */
static void remember_goodbye(struct km_node *n, const struct link *l,
			     const struct km_frame *f,
			     const struct km_goodbye *g, bool decoded,
			     km_ms now)
{
	struct km_node_goodbye *b = &n->last_goodbye;

	memset(b, 0, sizeof(*b));
	b->any = true;
	b->decoded = decoded;
	b->reason = decoded ? g->reason : f->len > 0 ? f->payload[0] : 0;
	if (decoded)
		memcpy(b->text, g->text, sizeof(b->text));
	b->from = l->remote;
	b->authenticated = l->state == LINK_UP;
	if (b->authenticated)
		b->id = link_peer_id(l);
	b->at = now;
}

const struct km_node_goodbye *km_node_last_goodbye(const struct km_node *n)
{
	return &n->last_goodbye;
}

static bool on_goodbye(struct km_node *n, struct link *l,
		       const struct km_frame *f, km_ms now)
{
	struct km_goodbye g;
	bool decoded = km_msg_goodbye_decode(f->payload, f->len, &g) == 0;

	if (decoded)
		node_log(n, KM_LOG_DEBUG, "link %llu: GOODBYE %s: %s",
			 (unsigned long long)l->conn,
			 km_msg_goodbye_reason_name(g.reason), g.text);
	remember_goodbye(n, l, f, &g, decoded, now);
	link_close(n, l, NO_GOODBYE, "", now);
	return false;
}

/* Frame types to handlers: adding a frame type is one line here plus its
 * handler.  A handler returns false once it has closed (and freed) l. */
enum {
	ROUTE_HANDSHAKE = 1,  /* also before the link is up */
	ROUTE_OWN_CHECKS = 2, /* checks the link's state itself, and does not
			       * count as activity on an idle link */
};

static const struct frame_route {
	uint8_t first, last;  /* frame types, inclusive */
	unsigned flags;
	bool (*on)(struct km_node *, struct link *, const struct km_frame *,
		   km_ms);
} routes[] = {
	{ KM_FRAME_HELLO, KM_FRAME_HELLO, ROUTE_HANDSHAKE, on_hello },
	{ KM_FRAME_PEER_LIST, KM_FRAME_PEER_LIST, ROUTE_HANDSHAKE, on_peer_list },
	{ KM_FRAME_PING, KM_FRAME_PING, 0, on_ping },
	{ KM_FRAME_PONG, KM_FRAME_PONG, 0, on_pong },
	{ KM_FRAME_MESSAGE, KM_FRAME_MESSAGE, 0, on_broadcast },
	{ KM_FRAME_GOODBYE, KM_FRAME_GOODBYE, ROUTE_HANDSHAKE, on_goodbye },
	{ KM_FRAME_IHAVE, KM_FRAME_PRUNE, 0, on_broadcast },
	{ KM_FRAME_AUTH, KM_FRAME_AUTH, ROUTE_HANDSHAKE, on_auth },
	{ KM_FRAME_DIAL_ME, KM_FRAME_DIALBACK, ROUTE_OWN_CHECKS, node_nat_on_frame },
	{ KM_FRAME_PUNCH_REQ, KM_FRAME_PUNCH_GO, ROUTE_OWN_CHECKS, node_punch_on_frame },
	{ KM_FRAME_RELAY_REQ, KM_FRAME_RELAY_CLOSE, ROUTE_OWN_CHECKS, node_relay_on_frame },
	{ KM_FRAME_REACH, KM_FRAME_RENDEZVOUS, ROUTE_OWN_CHECKS, node_rendezvous_on_frame },
	{ KM_FRAME_DIAL_RESULT, KM_FRAME_DIAL_RESULT, ROUTE_OWN_CHECKS, node_nat_on_frame },
};

static const struct frame_route *route_of(uint8_t type)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (type >= routes[i].first && type <= routes[i].last)
			return &routes[i];
	return NULL;
}

/* Returns false once l has been closed and freed. */
static bool handle_frame(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now)
{
	const struct frame_route *r = route_of(f->type);

	if (l->probe && f->type != KM_FRAME_DIALBACK) {
		link_close(n, l, NO_GOODBYE, "over the caps", now);
		return false;
	}
	if (r && (r->flags & ROUTE_OWN_CHECKS))
		return r->on(n, l, f, now);
	if (l->state != LINK_UP && !(r && (r->flags & ROUTE_HANDSHAKE))) {
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, "HELLO first", now);
		return false;
	}
	l->deadline = now + LINK_IDLE_MS;
	if (r)
		return r->on(n, l, f, now);
	/* The decoder knows it, but this build has no use for it here. */
	link_close(n, l, KM_BYE_PROTOCOL_ERROR, "unexpected frame type", now);
	return false;
}

void link_on_bytes(struct km_node *n, struct link *l, const uint8_t *buf,
		   size_t len, km_ms now)
{
	while (len > 0) {
		struct km_frame f;
		size_t used = 0;
		int rc = km_frame_decoder_feed(&l->dec, buf, len, &used, &f);

		if (rc < 0) {
			link_close(n, l, KM_BYE_PROTOCOL_ERROR, km_strerror(rc), now);
			return;
		}
		buf += used;
		len -= used;
		l->bytes_in += used;
		if (rc == 1) {
			l->frames_in++;
			if (!handle_frame(n, l, &f, now))
				return;
		}
	}
}

/* Heartbeat: a PING every ping_interval_ms; a neighbour that leaves
 * pings_missed_max of them unanswered is dead.  Returns false once l has
 * been closed. */
static bool ping_due(struct km_node *n, struct link *l, km_ms now)
{
	uint8_t body[KM_PING_LEN];

	if (now < l->next_ping)
		return true;
	if (l->pings_unanswered >= n->cfg.pings_missed_max) {
		n->stats.ping_timeouts++;
		link_close(n, l, KM_BYE_TIMEOUT, "no PONG", now);
		return false;
	}
	l->ping_nonce = km_rng_u64(n->rng);
	l->ping_sent = now;
	l->pings_unanswered++;
	l->next_ping = now + n->cfg.ping_interval_ms;
	km_msg_ping_encode(body, sizeof(body), l->ping_nonce);
	link_send_frame(n, l, KM_FRAME_PING, body, sizeof(body));
	return true;
}

km_ms link_tick_all(struct km_node *n, km_ms now)
{
	struct link *l, *tmp;
	km_ms wake = 0;

	HASH_ITER(hh, n->links, l, tmp) {
		if (l->neighbour) {
			if (ping_due(n, l, now))
				wake = km_ms_earliest(wake, l->next_ping);
			continue;
		}
		if (l->deadline <= now) {
			link_close(n, l, KM_BYE_TIMEOUT, "timeout", now);
			continue;
		}
		wake = km_ms_earliest(wake, l->deadline);
	}
	return wake;
}
