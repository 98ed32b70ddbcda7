/* Overlay links: the TCP side of a node.  For now a link carries the join
 * handshake of the original design -- HELLO both ways, then PEER_LIST from
 * the side that was contacted -- plus PING/PONG and GOODBYE. */
#include <stdlib.h>
#include <string.h>

#include "dht/id.h"
#include "net/node_internal.h"
#include "proto/err.h"

/* An established link with no traffic for this long is closed: until the
 * connection manager keeps neighbours, links only serve the handshake. */
#define LINK_IDLE_MS KM_MINUTES(2)
#define NO_GOODBYE (-1)

struct link *link_find(struct km_node *n, uint64_t conn)
{
	struct link *l;

	HASH_FIND(hh, n->links, &conn, sizeof(conn), l);
	return l;
}

struct link *link_open(struct km_node *n, const struct km_addr *remote,
		       bool outbound, km_ms now)
{
	struct link *l;

	if (n->nlinks >= n->cfg.max_links || !(l = calloc(1, sizeof(*l))))
		return NULL;
	l->conn = n->next_conn++;
	l->outbound = outbound;
	l->bootstrap = -1;
	l->remote = *remote;
	l->state = outbound ? LINK_CONNECTING : LINK_HELLO_WAIT;
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

static void link_free(struct km_node *n, struct link *l, km_ms now)
{
	/* A bootstrap link that ends before its PEER_LIST arrived has failed,
	 * whatever the reason: fall back to KRPC. */
	if (l->bootstrap >= 0)
		node_bootstrap_failed(n, l->bootstrap, now);
	HASH_DEL(n->links, l);
	n->nlinks--;
	km_frame_decoder_free(&l->dec);
	free(l);
}

static void send_frame(struct km_node *n, struct link *l, uint8_t type,
		       const uint8_t *payload, size_t len)
{
	uint8_t buf[KM_FRAME_HEADER_LEN + KM_PEER_LIST_MAX_LEN];
	int w = km_frame_encode(buf, sizeof(buf), type, payload, len);

	if (w > 0)
		n->cb.tcp_send(n->user, l->conn, buf, (size_t)w);
}

static void send_hello(struct km_node *n, struct link *l)
{
	struct km_hello h = {
		.version = KM_PROTO_VERSION,
		.network = n->cfg.network_id,
		.listen_port = n->cfg.port,
		.observed = l->remote,
	};
	uint8_t body[KM_HELLO_MAX_LEN];
	int len;

	memcpy(h.id, km_dht_id(n->dht)->b, KM_NODE_ID_LEN);
	len = km_hello_encode(body, sizeof(body), &h);
	if (len > 0)
		send_frame(n, l, KM_FRAME_HELLO, body, (size_t)len);
}

void link_close(struct km_node *n, struct link *l, int reason,
		const char *text, km_ms now)
{
	if (reason != NO_GOODBYE && l->state != LINK_CONNECTING) {
		struct km_goodbye g = { .reason = (uint8_t)reason };
		uint8_t body[KM_GOODBYE_MAX_LEN];
		int len;

		strncpy(g.text, text, KM_GOODBYE_TEXT_MAX);
		len = km_goodbye_encode(body, sizeof(body), &g);
		if (len > 0)
			send_frame(n, l, KM_FRAME_GOODBYE, body, (size_t)len);
	}
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
		if (memcmp(peers[i].id, c->id.b, KM_ID_LEN) == 0 &&
		    peers[i].addr.family == c->addr.family)
			return true;
	return false;
}

static size_t add_peer(struct km_peer *peers, size_t count,
		       const struct km_contact *c, const struct km_hello *asker)
{
	if (count >= KM_PEER_LIST_MAX || contains(peers, count, c) ||
	    memcmp(c->id.b, asker->id, KM_ID_LEN) == 0)
		return count;
	memcpy(peers[count].id, c->id.b, KM_ID_LEN);
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
	struct km_id target;
	size_t found;

	memcpy(target.b, asker->id, KM_ID_LEN);
	found = km_table_closest(t, &target, PEER_LIST_CLOSEST, close);
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
	int len = km_peer_list_encode(body, sizeof(body), peers, count);

	if (len > 0) {
		send_frame(n, l, KM_FRAME_PEER_LIST, body, (size_t)len);
		n->stats.peer_lists_out++;
	}
}

/* The peer's UDP side is at its TCP address with its listening port. */
static void verify_peer(struct km_node *n, const struct link *l, km_ms now)
{
	struct km_addr udp = l->remote;

	if (l->hello.listen_port == 0)
		return;
	udp.port = l->hello.listen_port;
	node_verify(n, &udp, now);
}

static int hello_refusal(const struct km_node *n, const struct km_hello *h)
{
	if (h->version != KM_PROTO_VERSION)
		return KM_BYE_BAD_VERSION;
	if (h->network != n->cfg.network_id)
		return KM_BYE_WRONG_NETWORK;
	if (memcmp(h->id, km_dht_id(n->dht)->b, KM_ID_LEN) == 0)
		return KM_BYE_SELF;
	return -1;
}

static bool on_hello(struct km_node *n, struct link *l,
		     const struct km_frame *f, km_ms now)
{
	int refusal;

	if (l->state != LINK_HELLO_WAIT ||
	    km_hello_decode(f->payload, f->len, &l->hello) < 0) {
		n->stats.hellos_bad++;
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, "bad HELLO", now);
		return false;
	}
	refusal = hello_refusal(n, &l->hello);
	if (refusal >= 0) {
		n->stats.hellos_bad++;
		link_close(n, l, refusal, km_goodbye_reason_name((uint8_t)refusal), now);
		return false;
	}
	n->stats.hellos_ok++;
	l->state = LINK_UP;
	verify_peer(n, l, now);
	if (!l->outbound) {
		send_hello(n, l);
		send_peer_list(n, l);
	}
	return true;
}

static bool on_peer_list(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now)
{
	struct km_peer peers[KM_PEER_LIST_MAX];
	int count = km_peer_list_decode(f->payload, f->len, peers, KM_PEER_LIST_MAX);

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
	link_close(n, l, KM_BYE_NORMAL, "joined", now);
	return false;
}

static bool on_ping(struct km_node *n, struct link *l, const struct km_frame *f,
		    km_ms now)
{
	uint64_t nonce;
	uint8_t body[KM_PING_LEN];

	if (km_ping_decode(f->payload, f->len, &nonce) < 0) {
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, "bad PING", now);
		return false;
	}
	km_ping_encode(body, sizeof(body), nonce);
	send_frame(n, l, KM_FRAME_PONG, body, sizeof(body));
	return true;
}

static bool on_goodbye(struct km_node *n, struct link *l,
		       const struct km_frame *f, km_ms now)
{
	struct km_goodbye g;

	if (km_goodbye_decode(f->payload, f->len, &g) == 0)
		node_log(n, KM_LOG_DEBUG, "link %llu: GOODBYE %s: %s",
			 (unsigned long long)l->conn,
			 km_goodbye_reason_name(g.reason), g.text);
	link_close(n, l, NO_GOODBYE, "", now);
	return false;
}

/* Returns false once l has been closed and freed. */
static bool handle_frame(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now)
{
	if (l->state != LINK_UP && f->type != KM_FRAME_HELLO &&
	    f->type != KM_FRAME_GOODBYE) {
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, "HELLO first", now);
		return false;
	}
	l->deadline = now + LINK_IDLE_MS;
	switch (f->type) {
	case KM_FRAME_HELLO: return on_hello(n, l, f, now);
	case KM_FRAME_PEER_LIST: return on_peer_list(n, l, f, now);
	case KM_FRAME_PING: return on_ping(n, l, f, now);
	case KM_FRAME_GOODBYE: return on_goodbye(n, l, f, now);
	default: return true; /* PONG, MESSAGE: not used yet */
	}
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
		if (rc == 1 && !handle_frame(n, l, &f, now))
			return;
	}
}

km_ms links_tick(struct km_node *n, km_ms now)
{
	struct link *l, *tmp;
	km_ms wake = 0;

	HASH_ITER(hh, n->links, l, tmp) {
		if (l->deadline <= now) {
			link_close(n, l, KM_BYE_TIMEOUT, "timeout", now);
			continue;
		}
		if (wake == 0 || l->deadline < wake)
			wake = l->deadline;
	}
	return wake;
}
