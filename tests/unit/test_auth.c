/* The authenticated handshake, played against a km_node by the test as a
 * raw TCP peer: HELLO with key and nonce, AUTH over both nonces, key pinning
 * per node ID, and what happens to impersonators and replayed handshakes.
 * The transcript is rebuilt here from docs/PROTOCOL.md, so these tests also
 * check the spec. */
#include <criterion/criterion.h>
#include <string.h>

#include "dht/dht.h"
#include "dht/table.h"
#include "net/ident.h"
#include "net/node.h"
#include "net/pins.h"
#include "proto/err.h"
#include "proto/frame.h"
#include "proto/krpc.h"
#include "proto/msg.h"
#include "proto/wire.h"

#define OUT_MAX 16384
#define CONNS 8

/* What the node sent on each connection, and which ones it closed. */
struct wire {
	uint8_t out[CONNS][OUT_MAX];
	size_t len[CONNS];
	bool closed[CONNS];
};

/* The datagrams the node sent lately, so that a test can answer a query. */
#define SENT_MAX 8
static struct sent {
	struct km_addr to;
	uint8_t buf[512];
	size_t len;
} sent[SENT_MAX];
static size_t nsent;

static void w_udp(void *user, const struct km_addr *to, const uint8_t *buf,
		  size_t len)
{
	struct sent *s = &sent[nsent++ % SENT_MAX];

	s->to = *to;
	s->len = len < sizeof(s->buf) ? len : sizeof(s->buf);
	memcpy(s->buf, buf, s->len);
}
static void w_connect(void *user, uint64_t conn, const struct km_addr *to) {}

static void w_send(void *user, uint64_t conn, const uint8_t *buf, size_t len)
{
	struct wire *w = user;

	cr_assert_lt(conn, CONNS);
	cr_assert_leq(w->len[conn] + len, OUT_MAX);
	memcpy(w->out[conn] + w->len[conn], buf, len);
	w->len[conn] += len;
}

static void w_close(void *user, uint64_t conn)
{
	struct wire *w = user;

	w->closed[conn] = true;
}

static const struct km_node_callbacks wire_cb = {
	.udp_send = w_udp, .tcp_connect = w_connect,
	.tcp_send = w_send, .tcp_close = w_close,
};

static struct km_prng prng;
static struct km_rng rng;

static struct km_node *node_new(struct wire *w)
{
	struct km_node_config cfg;

	km_prng_seed(&prng, 5);
	rng = km_prng_rng(&prng);
	km_node_config_default(&cfg);
	km_id_random(&rng, &cfg.dht.id);
	cfg.port = 7000;
	cfg.seed = true;
	cfg.cm.max_out = 0;
	return km_node_new(&cfg, &wire_cb, w, &rng, 1000);
}

/* The n-th frame the node sent on conn, or false. */
static bool sent_frame(const struct wire *w, uint64_t conn, int nth,
		       struct km_frame *f)
{
	size_t off = 0, used;

	for (int i = 0; off < w->len[conn]; i++) {
		cr_assert_eq(km_frame_decode(w->out[conn] + off,
					     w->len[conn] - off, 0, f, &used), 0);
		if (i == nth)
			return true;
		off += used;
	}
	return false;
}

static uint8_t goodbye_reason(const struct wire *w, uint64_t conn)
{
	struct km_frame f;
	struct km_goodbye g;

	for (int i = 0; sent_frame(w, conn, i, &f); i++)
		if (f.type == KM_FRAME_GOODBYE) {
			cr_assert_eq(km_msg_goodbye_decode(f.payload, f.len, &g), 0);
			return g.reason;
		}
	return 0xff;
}

/* A peer as the test plays it. */
struct peer {
	struct km_id id;
	struct km_ident key;
	uint8_t nonce[KM_NONCE_LEN];
};

static struct peer peer_make(uint8_t id_byte, uint8_t key_byte)
{
	struct peer p;
	uint8_t seed[KM_IDENT_SEED_LEN];

	memset(p.id.b, id_byte, sizeof(p.id.b));
	memset(seed, key_byte, sizeof(seed));
	cr_assert_eq(km_ident_from_seed(&p.key, seed), 0);
	km_rng_fill(&rng, p.nonce, sizeof(p.nonce));
	return p;
}

static void feed(struct km_node *n, uint64_t conn, uint8_t type,
		 const uint8_t *body, size_t len, km_ms now)
{
	uint8_t buf[KM_FRAME_HEADER_LEN + 512];
	int fl = km_frame_encode(buf, sizeof(buf), type, body, len);

	cr_assert_gt(fl, 0);
	km_node_tcp_recv(n, conn, buf, (size_t)fl, now);
}

static int hello_body(const struct peer *p, uint8_t *out, size_t cap)
{
	struct km_hello h = { .version = KM_PROTO_VERSION,
			      .network = KM_NETWORK_ID_DEFAULT,
			      .listen_port = 0, .has_key = true };

	h.id = p->id;
	memcpy(h.pubkey, p->key.pub, KM_PUBKEY_LEN);
	memcpy(h.nonce, p->nonce, KM_NONCE_LEN);
	return km_msg_hello_encode(out, cap, &h);
}

/* docs/PROTOCOL.md, "AUTH": what the signer signs. */
static void transcript(uint8_t out[156], const uint8_t *signer_id,
		       const uint8_t *signer_key, const uint8_t *signer_nonce,
		       const uint8_t *verifier_id, const uint8_t *verifier_nonce)
{
	memcpy(out, "kadmesh auth v2", 16);
	km_wire_put_u32(out + 16, KM_NETWORK_ID_DEFAULT);
	memcpy(out + 20, signer_id, 20);
	memcpy(out + 40, signer_key, 32);
	memcpy(out + 72, signer_nonce, 32);
	memcpy(out + 104, verifier_id, 20);
	memcpy(out + 124, verifier_nonce, 32);
}

/* The node's HELLO on conn (its first frame). */
static struct km_hello node_hello(const struct wire *w, uint64_t conn)
{
	struct km_frame f;
	struct km_hello h;

	cr_assert(sent_frame(w, conn, 0, &f));
	cr_assert_eq(f.type, KM_FRAME_HELLO);
	cr_assert_eq(km_msg_hello_decode(f.payload, f.len, &h), 0);
	cr_assert(h.has_key);
	return h;
}

/* Sends our HELLO, reads the node's, and answers with AUTH signed by
 * signer (normally p->key); the AUTH body is left in sig. */
static void handshake_sig(struct km_node *n, struct wire *w, uint64_t conn,
			  const struct peer *p, const struct km_ident *signer,
			  km_ms now, uint8_t sig[static KM_SIG_LEN])
{
	uint8_t body[KM_HELLO_MAX_LEN], tbs[156];
	int len = hello_body(p, body, sizeof(body));
	struct km_hello theirs;

	feed(n, conn, KM_FRAME_HELLO, body, (size_t)len, now);
	theirs = node_hello(w, conn);
	transcript(tbs, p->id.b, p->key.pub, p->nonce, theirs.id.b, theirs.nonce);
	cr_assert_eq(km_ident_sign(signer, tbs, sizeof(tbs), sig), 0);
	feed(n, conn, KM_FRAME_AUTH, sig, KM_SIG_LEN, now);
}

static void handshake(struct km_node *n, struct wire *w, uint64_t conn,
		      const struct peer *p, const struct km_ident *signer,
		      km_ms now)
{
	uint8_t sig[KM_SIG_LEN];

	handshake_sig(n, w, conn, p, signer, now, sig);
}

/* The node said GOODBYE reason on conn, closed it, and has no neighbour. */
static void assert_refused(struct km_node *n, const struct wire *w,
			   uint64_t conn, uint8_t reason)
{
	cr_assert(w->closed[conn]);
	cr_assert_eq(goodbye_reason(w, conn), reason);
	cr_assert_eq(km_node_neighbours(n, NULL, 0), 0);
}

static uint64_t accept_from(struct km_node *n, uint8_t last_octet, km_ms now)
{
	struct km_addr a;
	uint8_t ip[4] = { 10, 0, last_octet, 1 };
	uint64_t conn;

	km_addr_set_v4(&a, ip, 40000);
	conn = km_node_tcp_accepted(n, &a, now);
	cr_assert_gt(conn, 0);
	cr_assert_lt(conn, CONNS);
	return conn;
}

Test(auth, an_honest_peer_and_the_node_prove_their_keys_to_each_other)
{
	static struct wire w;
	struct km_node *n = node_new(&w);
	struct peer p = peer_make(0x11, 0x21);
	uint64_t c = accept_from(n, 1, 1000);
	struct km_hello theirs;
	struct km_frame f;
	uint8_t tbs[156];

	handshake(n, &w, c, &p, &p.key, 1000);
	theirs = node_hello(&w, c);
	/* The node's AUTH signs our nonce with the key in its HELLO. */
	cr_assert(sent_frame(&w, c, 1, &f));
	cr_assert_eq(f.type, KM_FRAME_AUTH);
	cr_assert_eq(f.len, KM_SIG_LEN);
	transcript(tbs, theirs.id.b, theirs.pubkey, theirs.nonce, p.id.b, p.nonce);
	cr_assert(km_ident_verify(theirs.pubkey, tbs, sizeof(tbs), f.payload));
	cr_assert(sent_frame(&w, c, 2, &f));
	cr_assert_eq(f.type, KM_FRAME_PEER_LIST, "after AUTH, not before");
	cr_assert_not(w.closed[c]);
	cr_assert_eq(km_node_stats(n).hellos_ok, 1);
	cr_assert_eq(km_node_neighbours(n, NULL, 0), 1);
	km_node_del(n);
}

Test(auth, a_hello_with_a_stolen_node_id_and_another_key_is_refused)
{
	static struct wire w;
	struct km_node *n = node_new(&w);
	struct peer real = peer_make(0x11, 0x21);
	struct peer thief = peer_make(0x11, 0x66); /* same ID, its own key */
	uint64_t c1 = accept_from(n, 1, 1000), c2;

	handshake(n, &w, c1, &real, &real.key, 1000);
	cr_assert_not(w.closed[c1]);
	km_node_tcp_closed(n, c1, 1100); /* the real node goes away */
	c2 = accept_from(n, 2, 1200);
	/* The thief signs correctly -- with its own key. */
	handshake(n, &w, c2, &thief, &thief.key, 1200);
	assert_refused(n, &w, c2, KM_BYE_AUTH);
	cr_assert_eq(km_node_stats(n).auth_key_refused, 1);
	km_node_del(n);
}

Test(auth, a_key_that_does_not_sign_the_nonce_is_refused)
{
	static struct wire w;
	struct km_node *n = node_new(&w);
	struct peer p = peer_make(0x11, 0x21);
	struct peer other = peer_make(0x12, 0x22);
	uint64_t c = accept_from(n, 1, 1000);

	/* Presents p's public key but holds only other's private key. */
	handshake(n, &w, c, &p, &other.key, 1000);
	assert_refused(n, &w, c, KM_BYE_AUTH);
	cr_assert_eq(km_node_stats(n).auth_failed, 1);
	cr_assert_eq(km_node_stats(n).hellos_ok, 0);
	km_node_del(n);
}

Test(auth, a_replayed_hello_and_auth_are_refused)
{
	static struct wire w;
	struct km_node *n = node_new(&w);
	struct peer p = peer_make(0x11, 0x21);
	uint64_t c1 = accept_from(n, 1, 1000), c2;
	uint8_t hello[KM_HELLO_MAX_LEN], sig[KM_SIG_LEN];
	int hlen = hello_body(&p, hello, sizeof(hello));
	struct km_hello theirs;

	/* A recorded session: HELLO and AUTH as the real peer sent them. */
	handshake_sig(n, &w, c1, &p, &p.key, 1000, sig);
	theirs = node_hello(&w, c1);
	cr_assert_not(w.closed[c1]);
	km_node_tcp_closed(n, c1, 1100);
	/* Played back byte for byte on a new connection. */
	c2 = accept_from(n, 2, 1200);
	feed(n, c2, KM_FRAME_HELLO, hello, (size_t)hlen, 1200);
	cr_assert_neq(memcmp(node_hello(&w, c2).nonce, theirs.nonce,
			     KM_NONCE_LEN), 0, "a fresh nonce per link");
	feed(n, c2, KM_FRAME_AUTH, sig, sizeof(sig), 1200);
	assert_refused(n, &w, c2, KM_BYE_AUTH);
	cr_assert_eq(km_node_stats(n).auth_failed, 1);
	km_node_del(n);
}

Test(auth, nothing_but_auth_is_accepted_between_hello_and_auth)
{
	static struct wire w;
	struct km_node *n = node_new(&w);
	struct peer p = peer_make(0x11, 0x21);
	uint64_t c = accept_from(n, 1, 1000);
	uint8_t body[KM_HELLO_MAX_LEN], ping[KM_PING_LEN] = { 0 };
	int len = hello_body(&p, body, sizeof(body));

	feed(n, c, KM_FRAME_HELLO, body, (size_t)len, 1000);
	feed(n, c, KM_FRAME_PING, ping, sizeof(ping), 1000);
	assert_refused(n, &w, c, KM_BYE_PROTOCOL_ERROR);
	km_node_del(n);
}

Test(auth, a_hello_without_a_key_is_refused_as_an_old_version)
{
	static struct wire w;
	struct km_node *n = node_new(&w);
	struct peer p = peer_make(0x11, 0x21);
	uint64_t c = accept_from(n, 1, 1000);
	uint8_t body[KM_HELLO_MAX_LEN];
	int len = hello_body(&p, body, sizeof(body));

	feed(n, c, KM_FRAME_HELLO, body,
	     (size_t)len - KM_PUBKEY_LEN - KM_NONCE_LEN, 1000);
	assert_refused(n, &w, c, KM_BYE_BAD_VERSION);
	km_node_del(n);
}

Test(auth, pins_keep_the_first_key_and_forget_the_least_recently_used)
{
	struct km_pins *p = km_pins_new(2);
	struct km_id a = { .b = { 1 } }, b = { .b = { 2 } }, c = { .b = { 3 } };
	uint8_t k1[KM_PUBKEY_LEN] = { 1 }, k2[KM_PUBKEY_LEN] = { 2 };

	cr_assert_eq(km_pins_check(p, &a, k1, 10), 0);
	cr_assert_eq(km_pins_check(p, &a, k2, 11), KM_ERR_AUTH);
	cr_assert_eq(km_pins_check(p, &b, k2, 12), 0);
	cr_assert_eq(km_pins_check(p, &a, k1, 13), 0); /* a is used again */
	cr_assert_eq(km_pins_check(p, &c, k1, 14), 0); /* b goes */
	cr_assert_eq(km_pins_count(p), 2);
	cr_assert_null(km_pins_find(p, &b));
	cr_assert_not_null(km_pins_find(p, &a));
	km_pins_del(p);
	km_pins_del(NULL);
}

Test(auth, ed25519_signatures_fail_on_any_changed_byte)
{
	uint8_t seed[KM_IDENT_SEED_LEN] = { 9 }, msg[40] = { 1, 2, 3 };
	uint8_t sig[KM_SIG_LEN];
	struct km_ident k;

	cr_assert_eq(km_ident_from_seed(&k, seed), 0);
	cr_assert_eq(km_ident_sign(&k, msg, sizeof(msg), sig), 0);
	cr_assert(km_ident_verify(k.pub, msg, sizeof(msg), sig));
	msg[39] ^= 1;
	cr_assert_not(km_ident_verify(k.pub, msg, sizeof(msg), sig));
	msg[39] ^= 1;
	sig[0] ^= 1;
	cr_assert_not(km_ident_verify(k.pub, msg, sizeof(msg), sig));
}

/* id pings the node from ip:6881, so its DHT files id as a live node. */
/* A node at ip with ID id pings n, and answers n's ping back if n sends
 * one (it does when the node wins a slot in its table), so that n files
 * and confirms it: only confirmed nodes are served. */
static void pinged_by(struct km_node *n, const struct km_id *id,
		      const uint8_t ip[static 4], km_ms now)
{
	struct km_krpc_msg q, r;
	struct km_addr from;
	uint8_t pkt[128];
	bool answered = false;
	int len;

	km_krpc_init(&q, KM_KRPC_QUERY);
	q.method = KM_KRPC_PING;
	q.id = *id;
	q.tid[0] = 'p';
	q.tid_len = 1;
	len = km_krpc_encode(&q, pkt, sizeof(pkt));
	cr_assert_gt(len, 0);
	km_addr_set_v4(&from, ip, 6881);
	nsent = 0;
	km_node_udp_recv(n, &from, pkt, (size_t)len, now);
	for (size_t i = 0; i < nsent && i < SENT_MAX && !answered; i++) {
		if (!km_addr_eq(&sent[i].to, &from) ||
		    km_krpc_decode(sent[i].buf, sent[i].len, &q) < 0 ||
		    q.type != KM_KRPC_QUERY)
			continue;
		km_krpc_init(&r, KM_KRPC_RESPONSE);
		memcpy(r.tid, q.tid, q.tid_len);
		r.tid_len = q.tid_len;
		r.id = *id;
		len = km_krpc_encode(&r, pkt, sizeof(pkt));
		cr_assert_gt(len, 0);
		km_node_udp_recv(n, &from, pkt, (size_t)len, now + 10);
		answered = true;
	}
}

/* The table's nodes other than except, closest to it first, by brute
 * force (all are live here); returns how many were written (at most max). */
static size_t closest_others(const struct km_table *t, const struct km_id *except,
			     struct km_id *out, size_t max)
{
	struct km_id all[256];
	size_t n = 0;

	for (int b = 0; b < km_table_bucket_count(t); b++)
		for (size_t i = 0; i < km_table_bucket_size(t, b) && n < 256; i++) {
			struct km_id id = km_table_bucket_entry(t, b, i)->c.id;
			size_t pos = n++;

			while (pos > 0 && km_id_cmp_distance(except, &id, &all[pos - 1]) < 0) {
				all[pos] = all[pos - 1];
				pos--;
			}
			all[pos] = id;
		}
	/* except itself, if there, is all[0]: at distance 0. */
	if (n > 0 && km_id_eq(&all[0], except))
		memmove(all, all + 1, --n * sizeof(*all));
	n = n < max ? n : max;
	memcpy(out, all, n * sizeof(*out));
	return n;
}

/* A newcomer's PEER_LIST starts with the nodes closest to its own ID, the
 * ones it most needs to meet: the 16 closest other than itself.  It used
 * to be the 16 closest, the newcomer among them, then dropped: 15. */
Test(auth, a_newcomers_peer_list_names_the_16_nodes_closest_to_it_other_than_itself)
{
	static struct wire w;
	struct km_node *n = node_new(&w);
	struct peer p = peer_make(0x11, 0x21);
	struct km_id newcomer, want[16];
	struct km_peer got[KM_PEER_LIST_MAX];
	struct km_frame f;
	uint64_t c;
	int count;

	newcomer = p.id;
	pinged_by(n, &newcomer, (const uint8_t[4]){ 10, 0, 1, 1 }, 1000);
	for (uint8_t i = 0; i < 40; i++) {
		struct km_id id;

		km_id_random(&rng, &id);
		pinged_by(n, &id, (const uint8_t[4]){ 10, 1, i, 1 }, 1000);
	}
	cr_assert_not_null(km_table_find(km_dht_table(km_node_dht(n)), &newcomer));
	cr_assert_gt(km_table_size(km_dht_table(km_node_dht(n))), 16 + 1,
		     "table: %zu", km_table_size(km_dht_table(km_node_dht(n))));
	memset(want, 0, sizeof(want));
	cr_assert_eq(closest_others(km_dht_table(km_node_dht(n)), &newcomer,
				    want, 16), 16);
	c = accept_from(n, 1, 1100);
	handshake(n, &w, c, &p, &p.key, 1100);
	cr_assert(sent_frame(&w, c, 2, &f));
	cr_assert_eq(f.type, KM_FRAME_PEER_LIST);
	count = km_msg_peer_list_decode(f.payload, f.len, got, KM_PEER_LIST_MAX);
	cr_assert_gt(count, 0);
	for (int i = 0; i < 16; i++) {
		bool listed = false;

		for (int j = 0; j < count; j++)
			listed |= km_id_eq(&got[j].id, &want[i]);
		cr_assert(listed, "the %d-th closest node is not in the list", i + 1);
	}
	for (int j = 0; j < count; j++)
		cr_assert(!km_id_eq(&got[j].id, &newcomer));
	km_node_del(n);
}
