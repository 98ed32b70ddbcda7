/* km_node's dial-back check with a fake driver: neighbours are asked to
 * dial us; a DIALBACK makes us public, failed dials from two neighbours
 * make us private and read-only (BEP 43), anything less decides nothing;
 * and we dial back for a neighbour that asks, and say how it went. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/ident.h"
#include "net/node.h"
#include "proto/err.h"
#include "proto/krpc.h"
#include "proto/msg.h"
#include "proto/wire.h"

#define CONNS 16
#define QUERIES 256 /* the start pings 64 saved contacts, and then some */
#define OUT_MAX 16384

struct fake {
	uint64_t conns[CONNS];    /* every tcp_connect, in order */
	struct km_addr dials[CONNS]; /* ... and where each went */
	int nconns;
	struct km_krpc_msg queries[QUERIES]; /* every KRPC query sent */
	struct km_addr query_to[QUERIES];
	int nqueries;
	uint64_t last_conn;
	struct km_addr last_dial;
	int connects, closes;
	uint8_t sent[1 << 18];    /* bytes sent on any connection */
	size_t nsent;
	uint8_t out[CONNS][OUT_MAX]; /* ... and per connection */
	size_t len[CONNS];
};

static void fake_udp(void *user, const struct km_addr *to, const uint8_t *buf,
		     size_t len)
{
	struct fake *f = user;
	struct km_krpc_msg m;

	if (km_krpc_decode(buf, len, &m) == 0 && m.type == KM_KRPC_QUERY &&
	    f->nqueries < QUERIES) {
		f->query_to[f->nqueries] = *to;
		f->queries[f->nqueries++] = m;
	}
}

static void fake_connect(void *user, uint64_t conn, const struct km_addr *to)
{
	struct fake *f = user;

	f->connects++;
	if (f->nconns < CONNS) {
		f->dials[f->nconns] = *to;
		f->conns[f->nconns++] = conn;
	}
	f->last_conn = conn;
	f->last_dial = *to;
}

static void fake_send(void *user, uint64_t conn, const uint8_t *buf, size_t len)
{
	struct fake *f = user;

	if (f->nsent + len <= sizeof(f->sent)) {
		memcpy(f->sent + f->nsent, buf, len);
		f->nsent += len;
	}
	if (conn < CONNS && f->len[conn] + len <= OUT_MAX) {
		memcpy(f->out[conn] + f->len[conn], buf, len);
		f->len[conn] += len;
	}
}

static void fake_close(void *user, uint64_t conn)
{
	((struct fake *)user)->closes++;
}

static void fake_punch(void *user, uint64_t conn, const struct km_addr *to)
{
	fake_connect(user, conn, to);
}

static const struct km_node_callbacks fake_cb = {
	.udp_send = fake_udp, .tcp_connect = fake_connect,
	.tcp_send = fake_send, .tcp_close = fake_close,
	.tcp_punch = fake_punch,
};

static struct km_prng prng;
static struct km_rng rng;
static struct fake f;
static struct km_node *n;
static uint8_t peer_ip[4] = { 127, 0, 0, 9 };

static void feed(uint64_t conn, uint8_t type, const uint8_t *body, size_t len,
		 km_ms now)
{
	uint8_t buf[1024];
	int w = km_frame_encode(buf, sizeof(buf), type, body, len);

	cr_assert_gt(w, 0);
	km_node_tcp_recv(n, conn, buf, (size_t)w, now);
}

static void feed_nonce(uint64_t conn, uint8_t type, uint64_t nonce, km_ms now)
{
	uint8_t body[KM_PING_LEN];

	km_msg_ping_encode(body, sizeof(body), nonce);
	feed(conn, type, body, sizeof(body), now);
}

/* The last frame of type in what the node sent; its nonce. */
static bool sent_nonce(uint8_t type, uint64_t *nonce)
{
	bool found = false;

	for (size_t i = 0; i + KM_FRAME_HEADER_LEN <= f.nsent;) {
		struct km_frame fr;
		size_t used;

		if (km_frame_decode(f.sent + i, f.nsent - i, 0, &fr, &used) < 0)
			break;
		if (fr.type == type &&
		    km_msg_ping_decode(fr.payload, fr.len, nonce) == 0)
			found = true;
		i += used;
	}
	return found;
}

/* The node's HELLO on conn. */
static struct km_hello node_hello(uint64_t conn)
{
	size_t off = 0, used;
	struct km_frame fr;
	struct km_hello h = { 0 }; /* cr_assert_fail is not noreturn to clang */

	while (off < f.len[conn]) {
		cr_assert_eq(km_frame_decode(f.out[conn] + off, f.len[conn] - off,
					     0, &fr, &used), 0);
		if (fr.type == KM_FRAME_HELLO) {
			cr_assert_eq(km_msg_hello_decode(fr.payload, fr.len, &h), 0);
			return h;
		}
		off += used;
	}
	cr_assert_fail("no HELLO on conn %llu", (unsigned long long)conn);
	return h;
}

/* Plays a peer with ID id_byte... through HELLO and AUTH (docs/PROTOCOL.md,
 * "AUTH") on conn. */
/* Where the fake peers see the node. */
static const uint8_t us_ip[4] = { 192, 0, 2, 77 };

static void handshake(uint64_t conn, uint8_t id_byte, uint16_t listen_port,
		      km_ms now)
{
	struct km_hello h = { .version = KM_PROTO_VERSION,
			      .network = KM_NETWORK_ID_DEFAULT,
			      .listen_port = listen_port, .has_key = true };
	uint8_t body[KM_HELLO_MAX_LEN], seed[KM_IDENT_SEED_LEN], tbs[156];
	uint8_t sig[KM_SIG_LEN];
	struct km_ident key;
	struct km_hello theirs;
	int len;

	memset(seed, id_byte, sizeof(seed));
	cr_assert_eq(km_ident_from_seed(&key, seed), 0);
	memset(h.id.b, id_byte, sizeof(h.id.b));
	memcpy(h.pubkey, key.pub, KM_PUBKEY_LEN);
	memset(h.nonce, id_byte ^ 0x5a, KM_NONCE_LEN);
	/* Like every kadmesh peer, it says where it sees us. */
	km_addr_set_v4(&h.observed, us_ip, 50000);
	len = km_msg_hello_encode(body, sizeof(body), &h);
	feed(conn, KM_FRAME_HELLO, body, (size_t)len, now);
	theirs = node_hello(conn);
	memcpy(tbs, "kadmesh auth v2", 16);
	km_wire_put_u32(tbs + 16, KM_NETWORK_ID_DEFAULT);
	memcpy(tbs + 20, h.id.b, 20);
	memcpy(tbs + 40, key.pub, 32);
	memcpy(tbs + 72, h.nonce, 32);
	memcpy(tbs + 104, theirs.id.b, 20);
	memcpy(tbs + 124, theirs.nonce, 32);
	cr_assert_eq(km_ident_sign(&key, tbs, sizeof(tbs), sig), 0);
	feed(conn, KM_FRAME_AUTH, sig, sizeof(sig), now);
}

/* The state file's contacts, for the node that node_with_neighbour()
 * starts. */
static const struct km_contact *saved_at_start;
static size_t nsaved_at_start;

/* Answers every KRPC query sent to ip:6881 as the node with ID id_byte...,
 * which puts it in the routing table. */
static void answer_queries_to(const uint8_t ip[4], uint8_t id_byte, km_ms now)
{
	for (int j = 0; j < f.nqueries; j++) {
		struct km_krpc_msg r;
		uint8_t buf[512];
		int len;

		if (memcmp(f.query_to[j].ip, ip, 4) != 0 ||
		    f.query_to[j].port != 6881)
			continue;
		km_krpc_init(&r, KM_KRPC_RESPONSE);
		memcpy(r.tid, f.queries[j].tid, f.queries[j].tid_len);
		r.tid_len = f.queries[j].tid_len;
		memset(r.id.b, id_byte, KM_ID_LEN);
		len = km_krpc_encode(&r, buf, sizeof(buf));
		cr_assert_gt(len, 0);
		km_node_udp_recv(n, &f.query_to[j], buf, (size_t)len, now);
	}
}

/* A node joined through seeds at ips (IDs 0x70..., 0x71..., ...) the way
 * every node joins: each seed link ends after its PEER_LIST, and the
 * seeds, verified over KRPC, are picked from the table and dialled at
 * 1001; conns[i] is the dial to ips[i], not yet connected. */
static void node_joined_through(const uint8_t (*ips)[4], int count,
				uint64_t *conns)
{
	struct km_node_config cfg;
	uint8_t empty[4];
	int len = km_msg_peer_list_encode(empty, sizeof(empty), NULL, 0);

	memset(&f, 0, sizeof(f));
	km_prng_seed(&prng, 3);
	rng = km_prng_rng(&prng);
	km_node_config_default(&cfg);
	km_id_random(&rng, &cfg.dht.id);
	cfg.port = 7000;
	for (int i = 0; i < count; i++)
		km_addr_set_v4(&cfg.bootstrap[i], ips[i], 6881);
	cfg.nbootstrap = (size_t)count;
	n = km_node_new(&cfg, &fake_cb, &f, &rng, 1);
	cr_assert_not_null(n);
	km_node_start(n, saved_at_start, nsaved_at_start, 1);
	cr_assert_eq(f.nconns, count);
	cr_assert_gt(len, 0);
	for (int i = 0; i < count; i++) {
		km_node_tcp_connected(n, f.conns[i], 1);
		handshake(f.conns[i], (uint8_t)(0x70 + i), 6881, 1);
		answer_queries_to(ips[i], (uint8_t)(0x70 + i), 1);
		feed(f.conns[i], KM_FRAME_PEER_LIST, empty, (size_t)len, 1);
	}
	km_node_tick(n, 1001);
	cr_assert_eq(f.nconns, 2 * count, "every seed picked and dialled");
	for (int k = count; k < 2 * count; k++)
		for (int i = 0; i < count; i++)
			if (memcmp(f.dials[k].ip, ips[i], 4) == 0)
				conns[i] = f.conns[k];
	f.nqueries = 0;
}

/* The dial conn connects and its peer, ID id_byte..., completes the
 * handshake: a neighbour. */
static void link_up(uint64_t conn, uint8_t id_byte, km_ms now)
{
	km_node_tcp_connected(n, conn, now);
	handshake(conn, id_byte, 6881, now);
}

/* A node whose seed has become its neighbour (ID 0x70...), asked to dial
 * back; returns the neighbour link's conn. */
static uint64_t node_with_neighbour(void)
{
	uint64_t conn;

	node_joined_through((const uint8_t (*)[4])peer_ip, 1, &conn);
	link_up(conn, 0x70, 1001);
	/* Asked once the link has been up a second. */
	km_node_tick(n, 2001);
	return conn;
}

static void teardown(void)
{
	km_node_del(n);
	n = NULL;
}

TestSuite(node_nat, .fini = teardown);

static void node_with_neighbours(const uint8_t (*ips)[4], int count,
				 uint64_t *conns);
static void feed_result(uint64_t conn, uint64_t nonce, uint8_t result,
			km_ms now);
static const uint8_t two_subnets[3][4];

Test(node_nat, a_neighbour_is_asked_to_dial_back_once_its_link_is_stable)
{
	uint64_t nonce;

	node_with_neighbour();
	cr_assert(sent_nonce(KM_FRAME_DIAL_ME, &nonce));
	cr_assert_eq(km_node_nat_stats(n).dialbacks_asked, 1);
}

Test(node_nat, one_silent_neighbour_proves_nothing)
{
	node_with_neighbour();
	km_node_tick(n, 2001 + KM_SECONDS(8));
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_UNKNOWN);
	cr_assert_not(km_node_config(n)->dht.read_only);
	cr_assert_eq(km_node_nat_stats(n).dialbacks_failed, 0);
	cr_assert_eq(km_node_nat_stats(n).dialbacks_undecided, 1);
}

Test(node_nat, a_dialback_with_our_nonce_makes_the_node_public)
{
	struct km_addr from;
	uint64_t nonce, in;

	node_with_neighbour();
	cr_assert(sent_nonce(KM_FRAME_DIAL_ME, &nonce));
	km_addr_set_v4(&from, peer_ip, 40000);
	in = km_node_tcp_accepted(n, &from, 2100);
	cr_assert_neq(in, 0);
	feed_nonce(in, KM_FRAME_DIALBACK, nonce ^ 1, 2101);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_UNKNOWN,
		     "a wrong nonce proves nothing");
	cr_assert_null(km_nat_external(km_node_nat(n)));
	in = km_node_tcp_accepted(n, &from, 2102);
	feed_nonce(in, KM_FRAME_DIALBACK, nonce, 2103);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PUBLIC);
	cr_assert_not(km_node_config(n)->dht.read_only);
	cr_assert_not_null(km_nat_external(km_node_nat(n)),
			   "the verdict comes with the address it is about");
	cr_assert_eq(km_nat_external(km_node_nat(n))->ip[3], us_ip[3]);
	km_node_tick(n, 2001 + KM_SECONDS(8));
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PUBLIC);
}

Test(node_nat, we_dial_back_only_the_askers_own_ip_at_its_listening_port)
{
	uint64_t conn = node_with_neighbour(), nonce = 0;
	int connects = f.connects;

	feed_nonce(conn, KM_FRAME_DIAL_ME, 0xabcdef, 3000);
	cr_assert_eq(f.connects, connects + 1);
	cr_assert_eq(f.last_dial.port, 6881);
	cr_assert_eq(memcmp(f.last_dial.ip, peer_ip, 4), 0);
	f.nsent = 0;
	km_node_tcp_connected(n, f.last_conn, 3001);
	cr_assert(sent_nonce(KM_FRAME_DIALBACK, &nonce));
	cr_assert_eq(nonce, 0xabcdef);
	cr_assert_eq(km_node_nat_stats(n).dialbacks_served, 1);
}

Test(node_nat, dialbacks_for_others_are_capped_and_time_out)
{
	uint64_t conn = node_with_neighbour();
	int connects = f.connects, closes;

	for (int i = 0; i < 20; i++)
		feed_nonce(conn, KM_FRAME_DIAL_ME, (uint64_t)i, 3000);
	cr_assert_eq(f.connects, connects + 4);
	closes = f.closes;
	km_node_tick(n, 3000 + KM_SECONDS(5));
	cr_assert_eq(f.closes, closes + 4);
}

/* Counts frames of type in what the node sent. */
static int sent_count(uint8_t type)
{
	int count = 0;

	for (size_t i = 0; i + KM_FRAME_HEADER_LEN <= f.nsent;) {
		struct km_frame fr;
		size_t used;

		if (km_frame_decode(f.sent + i, f.nsent - i, 0, &fr, &used) < 0)
			break;
		count += fr.type == type;
		i += used;
	}
	return count;
}

/* The node from node_with_neighbour() plus an inbound neighbour with ID
 * 0x88... from ip; returns that link's conn. */
static uint64_t neighbour_from(struct km_id *id, const uint8_t ip[4])
{
	struct km_addr from;
	uint64_t conn;

	km_addr_set_v4(&from, ip, 50000);
	conn = km_node_tcp_accepted(n, &from, 2500);
	cr_assert_neq(conn, 0);
	memset(id->b, 0x88, KM_ID_LEN);
	handshake(conn, 0x88, 6999, 2501);
	f.nsent = 0;
	return conn;
}

static uint64_t second_neighbour(struct km_id *id)
{
	static const uint8_t ip[4] = { 127, 0, 0, 10 };

	return neighbour_from(id, ip);
}

Test(node_nat, a_rendezvous_tells_both_sides_about_each_other)
{
	uint64_t x = node_with_neighbour();
	struct km_id y;

	second_neighbour(&y);
	feed(x, KM_FRAME_PUNCH_REQ, y.b, KM_ID_LEN, 3000);
	cr_assert_eq(sent_count(KM_FRAME_PUNCH_GO), 2);
	cr_assert_eq(km_node_nat_stats(n).punches_coordinated, 1);
}

Test(node_nat, a_relay_forwards_data_and_cuts_a_circuit_over_its_rate)
{
	uint64_t x = node_with_neighbour();
	static uint8_t data[KM_ID_LEN + 8192];
	struct km_id y;

	second_neighbour(&y);
	feed(x, KM_FRAME_RELAY_REQ, y.b, KM_ID_LEN, 3000);
	cr_assert_eq(sent_count(KM_FRAME_RELAY_OPEN), 2);
	memcpy(data, y.b, KM_ID_LEN);
	feed(x, KM_FRAME_RELAY_DATA, data, KM_ID_LEN + 5, 3001);
	cr_assert_eq(sent_count(KM_FRAME_RELAY_DATA), 1);
	cr_assert_eq(km_node_nat_stats(n).relay_bytes, 5);
	/* 64 KiB per second at most: the ninth 8 KiB chunk is too many. */
	for (int i = 0; i < 9; i++) {
		uint8_t frame[KM_FRAME_HEADER_LEN + sizeof(data)];
		int w = km_frame_encode(frame, sizeof(frame), KM_FRAME_RELAY_DATA,
					data, sizeof(data));

		km_node_tcp_recv(n, x, frame, (size_t)w, 3002);
	}
	cr_assert_eq(km_node_nat_stats(n).relays_cut, 1);
	cr_assert_eq(sent_count(KM_FRAME_RELAY_CLOSE), 2);
}

Test(node_nat, relay_frames_before_hello_are_a_protocol_error)
{
	struct km_addr from;
	uint64_t conn;
	uint8_t ip[4] = { 127, 0, 0, 11 };
	uint8_t id[KM_ID_LEN] = { 0 };

	node_with_neighbour();
	km_addr_set_v4(&from, ip, 50001);
	conn = km_node_tcp_accepted(n, &from, 3000);
	f.nsent = 0;
	feed(conn, KM_FRAME_RELAY_REQ, id, sizeof(id), 3001);
	cr_assert_eq(sent_count(KM_FRAME_GOODBYE), 1);
	cr_assert_eq(km_node_nat_stats(n).relays_served, 0);
}

/* ---- deciding to punch: REACH and RENDEZVOUS ---------------------------- */

static void feed_reach(uint64_t conn, uint8_t v, km_ms now)
{
	feed(conn, KM_FRAME_REACH, &v, 1, now);
}

/* The entries of the last RENDEZVOUS the node sent, or -1. */
static int last_rendezvous(struct km_peer *peers)
{
	int count = -1;

	for (size_t i = 0; i + KM_FRAME_HEADER_LEN <= f.nsent;) {
		struct km_frame fr;
		size_t used;

		if (km_frame_decode(f.sent + i, f.nsent - i, 0, &fr, &used) < 0)
			break;
		if (fr.type == KM_FRAME_RENDEZVOUS)
			count = km_msg_peer_list_decode(fr.payload, fr.len, peers, 16);
		i += used;
	}
	return count;
}

Test(node_nat, a_rendezvous_tells_private_neighbours_about_each_other)
{
	uint64_t x = node_with_neighbour(), y_conn;
	struct km_peer peers[16];
	struct km_id y;

	y_conn = second_neighbour(&y);
	feed_reach(x, 1, 3000);
	cr_assert_eq(sent_count(KM_FRAME_RENDEZVOUS), 0, "no other private node yet");
	feed_reach(y_conn, 1, 3001);
	cr_assert_eq(sent_count(KM_FRAME_RENDEZVOUS), 2, "one to each of them");
	cr_assert_eq(last_rendezvous(peers), 1);
	cr_assert_eq(peers[0].addr.port, 6881, "the listening port, for PUNCH_GO");
	f.nsent = 0;
	feed_reach(x, 1, 3002);
	cr_assert_eq(sent_count(KM_FRAME_RENDEZVOUS), 0, "told once");
}

Test(node_nat, bad_reach_and_rendezvous_frames_close_the_link)
{
	uint64_t x = node_with_neighbour();
	uint8_t two[2] = { 1, 1 };

	f.nsent = 0;
	feed(x, KM_FRAME_REACH, two, 2, 3000);
	cr_assert_eq(sent_count(KM_FRAME_GOODBYE), 1);
	km_node_del(n);
	x = node_with_neighbour();
	f.nsent = 0;
	feed_reach(x, 7, 3000);
	cr_assert_eq(sent_count(KM_FRAME_GOODBYE), 1);
	km_node_del(n);
	x = node_with_neighbour();
	f.nsent = 0;
	feed(x, KM_FRAME_RENDEZVOUS, two, 2, 3000);
	cr_assert_eq(sent_count(KM_FRAME_GOODBYE), 1);
}

/* A private node (two neighbours' dials failed) whose rendezvous x lists
 * one private node with ID id_byte...; returns x. */
static uint64_t private_node_told_of(uint8_t id_byte, km_ms *now)
{
	uint64_t c[2], x, nonce;
	struct km_peer p;
	uint8_t body[64];
	int len;

	node_with_neighbours(two_subnets, 2, c);
	x = c[0];
	cr_assert(sent_nonce(KM_FRAME_DIAL_ME, &nonce));
	feed_result(c[0], nonce, KM_DIAL_TIMED_OUT, 7000);
	feed_result(c[1], nonce, KM_DIAL_TIMED_OUT, 7000);
	*now = 2001 + KM_SECONDS(8);
	km_node_tick(n, *now);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PRIVATE);
	cr_assert_geq(sent_count(KM_FRAME_REACH), 1, "it says it is private");
	memset(p.id.b, id_byte, KM_ID_LEN);
	km_addr_set_v4(&p.addr, (uint8_t[4]){ 198, 18, 2, 2 }, 7001);
	len = km_msg_peer_list_encode(body, sizeof(body), &p, 1);
	f.nsent = 0;
	feed(x, KM_FRAME_RENDEZVOUS, body, (size_t)len, *now);
	*now += KM_SECONDS(2);
	km_node_tick(n, *now);
	return x;
}

Test(node_nat, a_private_node_asks_its_rendezvous_to_punch_to_a_higher_private_id)
{
	km_ms now;

	private_node_told_of(0xff, &now);
	cr_assert_eq(sent_count(KM_FRAME_PUNCH_REQ), 1);
	cr_assert_eq(km_node_nat_stats(n).punches_asked, 1);
	km_node_tick(n, now + KM_SECONDS(5));
	cr_assert_eq(sent_count(KM_FRAME_PUNCH_REQ), 1, "backed off");
}

Test(node_nat, a_private_node_leaves_the_ask_to_a_lower_private_id)
{
	km_ms now;

	private_node_told_of(0x00, &now);
	cr_assert_eq(sent_count(KM_FRAME_PUNCH_REQ), 0);
}

/* ---- scope: a LAN dial-back proves nothing about the Internet ----------- */

Test(node_nat, an_internet_neighbour_rechecks_what_a_lan_dialback_proved)
{
	static const uint8_t ips[3][4] = {
		{ 10, 1, 0, 5 }, { 203, 0, 113, 9 }, { 198, 51, 100, 7 } };
	struct km_addr from;
	uint64_t nonce, in, c[3];

	/* Joined through a LAN peer: a LAN-only node asks its LAN. */
	node_joined_through(ips, 1, c);
	link_up(c[0], 0x70, 1001);
	km_node_tick(n, 2001);
	cr_assert(sent_nonce(KM_FRAME_DIAL_ME, &nonce));
	km_addr_set_v4(&from, ips[0], 40000);
	in = km_node_tcp_accepted(n, &from, 2100);
	feed_nonce(in, KM_FRAME_DIALBACK, nonce, 2101);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PUBLIC);

	f.nsent = 0;
	/* Then two Internet peers link up. */
	for (int i = 1; i < 3; i++) {
		struct km_addr at;

		km_addr_set_v4(&at, ips[i], 50000);
		c[i] = km_node_tcp_accepted(n, &at, 2500);
		cr_assert_neq(c[i], 0);
		handshake(c[i], (uint8_t)(0x70 + i), 6881, 2500);
	}
	km_node_tick(n, 3600);
	cr_assert_eq(sent_count(KM_FRAME_DIAL_ME), 2, "only the Internet ones");
	cr_assert(sent_nonce(KM_FRAME_DIAL_ME, &nonce));
	in = km_node_tcp_accepted(n, &from, 3700);
	feed_nonce(in, KM_FRAME_DIALBACK, nonce, 3701);
	feed_result(c[1], nonce, KM_DIAL_TIMED_OUT, 8600);
	feed_result(c[2], nonce, KM_DIAL_TIMED_OUT, 8600);
	km_node_tick(n, 3600 + KM_SECONDS(8));
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PRIVATE,
		     "the LAN's dial-back did not count");
	cr_assert_eq(km_node_nat_stats(n).dialbacks_failed, 1);
}

Test(node_nat, dht_ctl_punch_asks_every_neighbour_to_be_the_rendezvous)
{
	struct km_id y, far;

	node_with_neighbour();
	second_neighbour(&y);
	memset(far.b, 0x99, KM_ID_LEN);
	cr_assert_eq(km_node_punch(n, &far, 3000), 0);
	cr_assert_eq(sent_count(KM_FRAME_PUNCH_REQ), 2);
	f.nsent = 0;
	cr_assert_eq(km_node_punch(n, &y, 3001), 0, "linked already");
	cr_assert_eq(sent_count(KM_FRAME_PUNCH_REQ), 0);
	cr_assert_eq(km_node_punch(n, km_dht_id(km_node_dht(n)), 3002),
		     KM_ERR_INVAL);
}

/* ---- evidence: results from distinct neighbours ------------------------- */

/* A node with an outbound neighbour at each of ips (IDs 0x70, 0x71, ...),
 * each asked to dial back; their conns go to conns[]. */
static void node_with_neighbours(const uint8_t (*ips)[4], int count,
				 uint64_t *conns)
{
	node_joined_through(ips, count, conns);
	for (int i = 0; i < count; i++)
		link_up(conns[i], (uint8_t)(0x70 + i), 1001);
	km_node_tick(n, 2001);
	cr_assert_eq(km_node_nat_stats(n).dialbacks_asked, (unsigned long)count);
}

static void feed_result(uint64_t conn, uint64_t nonce, uint8_t result,
			km_ms now)
{
	uint8_t body[KM_DIAL_RESULT_LEN];

	km_msg_dial_result_encode(body, sizeof(body), nonce, result);
	feed(conn, KM_FRAME_DIAL_RESULT, body, sizeof(body), now);
}

static const uint8_t two_subnets[3][4] = {
	{ 203, 0, 113, 9 }, { 198, 51, 100, 7 }, { 203, 0, 113, 10 } };

/* A check that asked count neighbours, each answering with results[i] (0:
 * nothing), run past its deadline. */
static void check_with_results(const uint8_t (*ips)[4], int count,
			       const uint8_t *results)
{
	uint64_t c[3], nonce;

	node_with_neighbours(ips, count, c);
	cr_assert(sent_nonce(KM_FRAME_DIAL_ME, &nonce));
	for (int i = 0; i < count; i++)
		if (results[i])
			feed_result(c[i], nonce, results[i], 7000 + i);
	km_node_tick(n, 2001 + KM_SECONDS(8));
}

Test(node_nat, failed_dials_from_two_neighbours_make_the_node_private_and_read_only)
{
	static const uint8_t results[] = { KM_DIAL_TIMED_OUT, KM_DIAL_REFUSED };

	check_with_results(two_subnets, 2, results);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PRIVATE);
	cr_assert(km_node_config(n)->dht.read_only);
	cr_assert_eq(km_node_nat_stats(n).dialbacks_failed, 1);
	cr_assert_eq(km_node_nat_stats(n).dial_results[KM_DIAL_TIMED_OUT], 1);
}

Test(node_nat, a_private_verdict_adopts_the_address_that_was_dialled)
{
	static const uint8_t results[] = { KM_DIAL_TIMED_OUT, KM_DIAL_REFUSED };
	struct km_addr at;

	check_with_results(two_subnets, 2, results);
	km_addr_set_v4(&at, us_ip, 7000);
	cr_assert_not_null(km_nat_external(km_node_nat(n)));
	cr_assert(km_addr_eq(km_nat_external(km_node_nat(n)), &at));
}

Test(node_nat, one_failed_dial_and_one_busy_dialler_prove_nothing)
{
	static const uint8_t results[] = { KM_DIAL_TIMED_OUT, KM_DIAL_BUSY };

	check_with_results(two_subnets, 2, results);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_UNKNOWN);
	cr_assert_not(km_node_config(n)->dht.read_only);
	cr_assert_eq(km_node_nat_stats(n).dialbacks_undecided, 1);
}

Test(node_nat, two_failures_from_one_subnet_do_not_count_where_there_are_two)
{
	static const uint8_t results[] = { KM_DIAL_TIMED_OUT, KM_DIAL_BUSY,
					   KM_DIAL_TIMED_OUT };

	/* Three voters adopt an external address, so reachability follows
	 * the votes; the check itself must decide nothing. */
	check_with_results(two_subnets, 3, results);
	cr_assert_eq(km_node_nat_stats(n).dialbacks_undecided, 1,
		     "203.0/16 twice, and 198.51/16 never dialled");
	cr_assert_eq(km_node_nat_stats(n).dialbacks_failed, 0);
	cr_assert_not(km_node_config(n)->dht.read_only);
}

Test(node_nat, two_failures_from_one_subnet_count_where_there_is_only_one)
{
	static const uint8_t one_subnet[2][4] = { { 203, 0, 113, 9 },
						  { 203, 0, 113, 10 } };
	static const uint8_t results[] = { KM_DIAL_TIMED_OUT, KM_DIAL_TIMED_OUT };

	check_with_results(one_subnet, 2, results);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PRIVATE);
}

Test(node_nat, a_result_with_another_nonce_or_from_another_link_counts_for_nothing)
{
	uint64_t c[2], nonce;

	node_with_neighbours(two_subnets, 2, c);
	cr_assert(sent_nonce(KM_FRAME_DIAL_ME, &nonce));
	feed_result(c[0], nonce, KM_DIAL_TIMED_OUT, 7000);
	feed_result(c[0], nonce, KM_DIAL_TIMED_OUT, 7001);
	feed_result(c[1], nonce ^ 1, KM_DIAL_TIMED_OUT, 7002);
	km_node_tick(n, 2001 + KM_SECONDS(8));
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_UNKNOWN);
}

/* ---- the dialler's answer ----------------------------------------------- */

/* The last DIAL_RESULT the node sent: its nonce and result, or false. */
static bool sent_result(uint64_t *nonce, uint8_t *result)
{
	bool found = false;

	for (size_t i = 0; i + KM_FRAME_HEADER_LEN <= f.nsent;) {
		struct km_frame fr;
		size_t used;

		if (km_frame_decode(f.sent + i, f.nsent - i, 0, &fr, &used) < 0)
			break;
		if (fr.type == KM_FRAME_DIAL_RESULT)
			found = km_msg_dial_result_decode(fr.payload, fr.len, nonce,
							  result) == 0;
		i += used;
	}
	return found;
}

Test(node_nat, the_dialler_answers_every_dial_me_with_a_result)
{
	uint64_t conn = node_with_neighbour(), nonce = 0, dial;
	uint8_t result = 0;

	f.nsent = 0;
	feed_nonce(conn, KM_FRAME_DIAL_ME, 11, 3000);
	km_node_tcp_connected(n, f.last_conn, 3001);
	cr_assert(sent_result(&nonce, &result));
	cr_assert_eq(nonce, 11);
	cr_assert_eq(result, KM_DIAL_CONNECTED);

	feed_nonce(conn, KM_FRAME_DIAL_ME, 12, 3002);
	km_node_tcp_closed(n, f.last_conn, 3003);
	cr_assert(sent_result(&nonce, &result));
	cr_assert_eq(nonce, 12);
	cr_assert_eq(result, KM_DIAL_REFUSED);

	feed_nonce(conn, KM_FRAME_DIAL_ME, 13, 3004);
	dial = f.last_conn;
	km_node_tick(n, 3004 + KM_SECONDS(5));
	cr_assert(sent_result(&nonce, &result));
	cr_assert_eq(nonce, 13);
	cr_assert_eq(result, KM_DIAL_TIMED_OUT);
	km_node_tcp_closed(n, dial, 9000);
	cr_assert(sent_result(&nonce, &result));
	cr_assert_eq(result, KM_DIAL_TIMED_OUT, "one answer per dial");

	for (uint64_t i = 20; i < 24; i++)
		feed_nonce(conn, KM_FRAME_DIAL_ME, i, 10000);
	feed_nonce(conn, KM_FRAME_DIAL_ME, 99, 10001);
	cr_assert(sent_result(&nonce, &result));
	cr_assert_eq(nonce, 99);
	cr_assert_eq(result, KM_DIAL_BUSY);
	cr_assert_eq(km_node_nat_stats(n).dialbacks_busy, 1);
}

/* ---- caps yield to the dial-back while a check waits ------------------- */

Test(node_nat, while_a_check_waits_the_per_ip_cap_lets_its_dialback_in)
{
	static const uint8_t lan[4] = { 10, 1, 0, 5 };
	struct km_addr from;
	uint64_t nonce, in, other;

	node_with_neighbour();
	cr_assert(sent_nonce(KM_FRAME_DIAL_ME, &nonce));
	km_addr_set_v4(&from, lan, 40000);
	for (int i = 0; i < 4; i++)
		cr_assert_neq(km_node_tcp_accepted(n, &from, 2100), 0);
	other = km_node_tcp_accepted(n, &from, 2101);
	cr_assert_neq(other, 0, "over the per-IP cap, but a check waits");
	in = km_node_tcp_accepted(n, &from, 2102);
	cr_assert_neq(in, 0);
	feed(other, KM_FRAME_HELLO, (const uint8_t *)"x", 1, 2103);
	cr_assert_eq(km_node_nat_stats(n).dialback_probes, 2);
	feed_nonce(in, KM_FRAME_DIALBACK, nonce, 2104);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PUBLIC);
	cr_assert_eq(km_node_tcp_accepted(n, &from, 2105), 0,
		     "no check waits: the cap holds again");
}

/* ---- unsolicited inbound proves public --------------------------------- */

/* A node with a global neighbour (so its network is global) that then
 * accepts an inbound neighbour from ip. */
static void inbound_neighbour_from(const uint8_t ip[4])
{
	struct km_id y;

	memcpy(peer_ip, (uint8_t[4]){ 203, 0, 113, 9 }, 4);
	node_with_neighbour();
	memcpy(peer_ip, (uint8_t[4]){ 127, 0, 0, 9 }, 4);
	neighbour_from(&y, ip);
}

Test(node_nat, an_unsolicited_inbound_link_proves_the_node_public)
{
	inbound_neighbour_from((uint8_t[4]){ 198, 51, 100, 7 });
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PUBLIC);
	cr_assert_eq(km_node_nat_stats(n).inbound_proofs, 1);
}

Test(node_nat, an_inbound_link_from_a_narrower_scope_proves_nothing)
{
	inbound_neighbour_from((uint8_t[4]){ 10, 1, 0, 5 });
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_UNKNOWN);
	cr_assert_eq(km_node_nat_stats(n).inbound_proofs, 0);
}

/* ---- an unsolicited KRPC query proves our UDP port open ---------------- */

/* A KRPC ping from ip:port, which the node's DHT never sent to. */
static void krpc_query_from(const uint8_t ip[4], uint16_t port, km_ms now)
{
	static const char ping[] =
		"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
	struct km_addr from;

	km_addr_set_v4(&from, ip, port);
	km_node_udp_recv(n, &from, (const uint8_t *)ping, sizeof(ping) - 1, now);
}

/* A node whose only neighbour is on the Internet, before any verdict. */
static void node_with_internet_neighbour(void)
{
	memcpy(peer_ip, (uint8_t[4]){ 203, 0, 113, 9 }, 4);
	node_with_neighbour();
	memcpy(peer_ip, (uint8_t[4]){ 127, 0, 0, 9 }, 4);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_UNKNOWN);
}

Test(node_nat, an_unsolicited_krpc_query_makes_an_unknown_node_public_at_its_udp_port)
{
	struct km_addr at;

	node_with_internet_neighbour();
	krpc_query_from((uint8_t[4]){ 198, 51, 100, 7 }, 6881, 2100);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PUBLIC);
	cr_assert_eq(km_node_nat_stats(n).krpc_proofs, 1);
	/* Where the neighbour sees us, at the port the query reached. */
	km_addr_set_v4(&at, us_ip, 7000);
	cr_assert_not_null(km_nat_external(km_node_nat(n)),
			   "the verdict comes with the address it is about");
	cr_assert(km_addr_eq(km_nat_external(km_node_nat(n)), &at));
	cr_assert_not(km_node_config(n)->dht.read_only);
}

Test(node_nat, an_unsolicited_krpc_query_from_a_narrower_scope_proves_nothing)
{
	node_with_internet_neighbour();
	krpc_query_from((uint8_t[4]){ 10, 1, 0, 5 }, 6881, 2100);
	krpc_query_from((uint8_t[4]){ 127, 0, 0, 5 }, 6881, 2101);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_UNKNOWN);
	cr_assert_null(km_nat_external(km_node_nat(n)));
	cr_assert_eq(km_node_nat_stats(n).krpc_proofs, 0);
}

Test(node_nat, a_krpc_query_from_an_ip_our_dht_pinged_proves_nothing)
{
	static const uint8_t ip[4] = { 198, 51, 100, 7 };
	struct km_addr to;

	node_with_internet_neighbour();
	km_addr_set_v4(&to, ip, 6881);
	cr_assert_eq(km_dht_ping_addr(km_node_dht(n), &to, 2050), 0);
	krpc_query_from(ip, 40000, 2100);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_UNKNOWN);
	cr_assert_eq(km_node_nat_stats(n).krpc_proofs, 0);
}

/* A restart: the state file's contacts talked to our previous process,
 * whose NAT mappings may still be open.  More of them than the node pings
 * when it starts (64), so that most are heard from before it sends them
 * anything. */
Test(node_nat, a_krpc_query_from_a_contact_of_our_previous_process_proves_nothing)
{
	static struct km_contact saved[256];

	for (int i = 0; i < 256; i++) {
		saved[i].id.b[0] = (uint8_t)i;
		km_addr_set_v4(&saved[i].addr,
			       (uint8_t[4]){ 198, 51, 101, (uint8_t)i }, 6881);
	}
	saved_at_start = saved;
	nsaved_at_start = 256;
	node_with_internet_neighbour();
	for (int i = 0; i < 256; i++)
		krpc_query_from(saved[i].addr.ip, 6881, 2100 + (km_ms)i);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_UNKNOWN);
	cr_assert_eq(km_node_nat_stats(n).krpc_proofs, 0);
	krpc_query_from((uint8_t[4]){ 198, 51, 100, 7 }, 6881, 2500);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PUBLIC,
		     "a stranger's query still counts");
}

Test(node_nat, an_unsolicited_krpc_query_does_not_overturn_failed_dial_backs)
{
	static const uint8_t results[] = { KM_DIAL_TIMED_OUT, KM_DIAL_REFUSED };

	check_with_results(two_subnets, 2, results);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PRIVATE);
	krpc_query_from((uint8_t[4]){ 192, 0, 2, 200 }, 6881, 12000);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PRIVATE,
		     "the dial-backs tested our TCP port; a query only UDP");
	cr_assert(km_node_config(n)->dht.read_only);
	cr_assert_eq(km_node_nat_stats(n).krpc_proofs, 0);
}

Test(node_nat, a_later_check_overrules_the_krpc_proof_with_failed_dials)
{
	static const uint8_t results[] = { KM_DIAL_TIMED_OUT, KM_DIAL_REFUSED };
	uint64_t c[2], nonce;

	node_with_neighbours(two_subnets, 2, c);
	krpc_query_from((uint8_t[4]){ 192, 0, 2, 200 }, 6881, 2100);
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PUBLIC);
	cr_assert(sent_nonce(KM_FRAME_DIAL_ME, &nonce));
	for (int i = 0; i < 2; i++)
		feed_result(c[i], nonce, results[i], 7000 + i);
	km_node_tick(n, 2001 + KM_SECONDS(8));
	cr_assert_eq(km_nat_reachability(km_node_nat(n)), KM_REACH_PRIVATE,
		     "the check that was running goes on and decides");
}

/* ---- re-checks back off from 1 min to 10 min --------------------------- */

/* Ticks from *now to until in 5 s steps, answering the node's PINGs on
 * conn so that the neighbour stays. */
static void live_until(uint64_t conn, km_ms *now, km_ms until)
{
	uint64_t nonce;

	while (*now < until) {
		*now = *now + KM_SECONDS(5) < until ? *now + KM_SECONDS(5) : until;
		f.nsent = 0;
		km_node_tick(n, *now);
		if (sent_nonce(KM_FRAME_PING, &nonce))
			feed_nonce(conn, KM_FRAME_PONG, nonce, *now);
	}
}

Test(node_nat, checks_repeat_after_1_2_4_8_then_every_10_minutes)
{
	static const km_ms gaps[] = { 1, 2, 4, 8, 10, 10 };
	km_ms end = 2001 + KM_SECONDS(8), now = 2001;
	uint64_t conn = node_with_neighbour();

	live_until(conn, &now, end);
	for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
		km_ms next = end + KM_MINUTES(gaps[i]);
		unsigned long asked = km_node_nat_stats(n).dialbacks_asked;

		live_until(conn, &now, next - 1);
		cr_assert_eq(km_node_nat_stats(n).dialbacks_asked, asked,
			     "check %zu too early", i);
		km_node_tick(n, next);
		cr_assert_eq(km_node_nat_stats(n).dialbacks_asked, asked + 1,
			     "check %zu not at %lld min", i, (long long)gaps[i]);
		now = next;
		end = next + KM_SECONDS(8);
		live_until(conn, &now, end);
	}
}
