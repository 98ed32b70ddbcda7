/* Habits of other Mainline DHT implementations that kadmesh tolerates (see
 * "Tolerance of real peers" in docs/PROTOCOL.md; the interop test runs the
 * real thing, webtorrent's bittorrent-dht).  One km_dht talks to foreign
 * peers played by the test: each query it sends is answered the way that
 * peer would, with replies built by the codec and no `v`. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht.h"
#include "net/node.h"
#include "proto/krpc.h"
#include "sent.h"

#define T0 KM_SECONDS(1000)
#define PEERS 2500 /* 2,500 x 26 bytes of `nodes`: a 64 KiB reply */

static struct km_prng prng;
static struct km_rng rng;

static size_t nhandled;

static struct km_contact peers[PEERS + 1]; /* peer i is 10.0.x.y, i >= 1 */
static bool finished;
static struct km_lookup_result results[32];
static size_t nresults;

/* How a foreign peer answers one query. */
enum habit { ANSWER, ERROR_203, ERROR_204, SILENT };

static void on_lookup_done(void *user, uint64_t id, const struct km_lookup *lk)
{
	finished = true;
	nresults = km_lookup_results(lk, results, 32);
}

static void setup(void)
{
	km_prng_seed(&prng, 11);
	rng = km_prng_rng(&prng);
	nsent = nhandled = nresults = 0;
	finished = false;
	for (uint32_t i = 1; i <= PEERS; i++) {
		uint8_t ip[4] = { 10, 0, (uint8_t)(i >> 8), (uint8_t)i };

		km_id_random(&rng, &peers[i].id);
		km_addr_set_v4(&peers[i].addr, ip, 6881);
	}
}

TestSuite(habits, .init = setup);

static struct km_dht *new_dht(void)
{
	static const struct km_dht_callbacks cb = {
		.send = sent_record, .lookup_done = on_lookup_done,
	};
	struct km_dht_config cfg;
	struct km_dht *d;

	km_dht_config_default(&cfg);
	memset(cfg.id.b, 0x5a, KM_ID_LEN);
	d = km_dht_new(&cfg, &cb, NULL, &rng, T0);
	cr_assert_not_null(d);
	return d;
}

/* The peer a datagram went to, from its address. */
static const struct km_contact *peer_at(const struct km_addr *a)
{
	size_t i = (size_t)a->ip[2] << 8 | a->ip[3];

	cr_assert(i >= 1 && i <= PEERS && km_addr_eq(a, &peers[i].addr));
	return &peers[i];
}

static int encode_to_packet(const struct km_krpc_msg *m, uint8_t *pkt)
{
	int len = km_krpc_encode(m, pkt, KM_KRPC_MAX_PACKET);

	cr_assert_gt(len, 0);
	return len;
}

/* from answers q: a response (with the given nodes, and a token for
 * get_peers), or an error. */
static void answer(struct km_dht *d, const struct km_krpc_msg *q,
		   const struct km_contact *from, enum habit h,
		   const uint8_t *nodes, size_t nodes_len, km_ms now)
{
	static uint8_t pkt[KM_KRPC_MAX_PACKET];
	struct km_krpc_msg r;

	km_krpc_init(&r, h == ANSWER ? KM_KRPC_RESPONSE : KM_KRPC_ERROR);
	memcpy(r.tid, q->tid, q->tid_len);
	r.tid_len = q->tid_len;
	r.id = from->id;
	r.nodes = nodes;
	r.nodes_len = nodes_len;
	if (q->method == KM_KRPC_GET_PEERS) {
		memcpy(r.token, "tok", 3);
		r.token_len = 3;
	}
	r.error_code = h == ERROR_203 ? 203 : 204;
	strcpy(r.error_msg, "not today");
	km_dht_receive(d, &from->addr, pkt, (size_t)encode_to_packet(&r, pkt),
		       now);
}

static void decode_query(size_t i, struct km_krpc_msg *q)
{
	cr_assert_eq(km_krpc_decode(sent[i].buf, sent[i].len, q), 0);
	cr_assert_eq(q->type, KM_KRPC_QUERY);
}

/* Answers everything d has sent since the last call, each peer by its
 * habit (habit_of may be NULL: everyone answers, with no nodes). */
static void answer_all(struct km_dht *d, enum habit (*habit_of)(size_t peer),
		       km_ms now)
{
	while (nhandled < nsent) {
		struct km_krpc_msg q;
		size_t i = nhandled++;
		const struct km_contact *p = peer_at(&sent[i].to);
		enum habit h = habit_of ? habit_of((size_t)(p - peers)) : ANSWER;

		decode_query(i, &q);
		if (h != SILENT)
			answer(d, &q, p, h, NULL, 0, now);
	}
	nsent = nhandled = 0;
}

static size_t run_until_finished(struct km_dht *d,
				 enum habit (*habit_of)(size_t), km_ms now)
{
	km_ms end = now + KM_SECONDS(60);

	for (; !finished && now < end; now += 100) {
		answer_all(d, habit_of, now);
		km_dht_tick(d, now);
	}
	cr_assert(finished, "the lookup never ended");
	return nresults;
}

static struct km_id sort_target;

static int by_distance(const void *a, const void *b)
{
	return km_id_cmp_distance(&sort_target,
				  &((const struct km_contact *)a)->id,
				  &((const struct km_contact *)b)->id);
}

Test(habits, a_reply_carrying_a_whole_64_kib_table_without_v_feeds_the_lookup)
{
	static uint8_t nodes[PEERS * KM_COMPACT_NODE4_LEN];
	static struct km_contact truth[PEERS];
	struct km_dht *d = new_dht();
	struct km_krpc_msg q;
	struct km_id target;

	km_id_random(&rng, &target);
	cr_assert_eq(km_dht_lookup(d, &target, KM_LOOKUP_FIND_NODE, &peers[1], 1,
				   NULL, T0), 0);
	cr_assert_eq(nsent, 1);
	decode_query(0, &q);
	nsent = 0;
	/* Peer 1 sends its whole table, as bittorrent-dht does: all the
	 * other peers, in one packet of nearly 64 KiB. */
	for (size_t i = 2; i <= PEERS; i++)
		km_compact_node_write(&peers[i], nodes + (i - 2) * KM_COMPACT_NODE4_LEN,
				      KM_COMPACT_NODE4_LEN);
	answer(d, &q, &peers[1], ANSWER, nodes,
	       (PEERS - 1) * KM_COMPACT_NODE4_LEN, T0 + 10);
	cr_assert_gt(nsent, 0, "no query went to the nodes in the reply");

	run_until_finished(d, NULL, T0 + 20);
	memcpy(truth, &peers[1], PEERS * sizeof(truth[0]));
	sort_target = target;
	qsort(truth, PEERS, sizeof(truth[0]), by_distance);
	cr_assert_eq(nresults, 8);
	for (size_t i = 0; i < 8; i++)
		cr_assert(km_id_eq(&results[i].c.id, &truth[i].id),
			  "result %zu is not the %zuth closest of 2,500", i, i);
	cr_assert_not_null(km_table_find(km_dht_table(d), &peers[1].id),
			   "a reply without v kept its sender out of the table");
	km_dht_del(d);
}

static enum habit mixed(size_t peer)
{
	static const enum habit h[] = { ANSWER, ERROR_203, ERROR_204, SILENT,
					ANSWER };
	return h[peer];
}

Test(habits, errors_of_any_code_or_silence_fail_just_that_query)
{
	struct km_dht *d = new_dht();
	struct km_id target;
	struct km_dht_stats st;

	km_id_random(&rng, &target);
	/* Peer 1 answers with error 203, peer 2 with 204 (what BEP 5 asks
	 * for an unknown method), peer 3 not at all, peer 4 properly. */
	cr_assert_eq(km_dht_lookup(d, &target, KM_LOOKUP_FIND_NODE, &peers[1], 4,
				   NULL, T0), 0);
	run_until_finished(d, mixed, T0);
	cr_assert_eq(nresults, 1);
	cr_assert(km_id_eq(&results[0].c.id, &peers[4].id));
	/* The lookup gives up on the silent peer after three RTOs, before its
	 * transactions time out (2 s): let them. */
	km_dht_tick(d, T0 + KM_SECONDS(10));
	st = km_dht_stats(d);
	cr_assert_geq(st.errors_in, 2);
	cr_assert_geq(st.timeouts, 1);
	cr_assert_eq(st.malformed_in, 0);
	km_dht_del(d);
}

static enum habit errors_only(size_t peer)
{
	return ERROR_203;
}

Test(habits, a_node_that_answers_table_pings_with_errors_goes_bad)
{
	struct km_dht *d = new_dht();
	const struct km_table_entry *e;
	struct km_krpc_msg q;
	int pings = 0;
	km_ms now;

	cr_assert_eq(km_dht_ping_addr(d, &peers[1].addr, T0), 0);
	decode_query(0, &q);
	nsent = 0;
	answer(d, &q, &peers[1], ANSWER, NULL, 0, T0);
	cr_assert_not_null(km_table_find(km_dht_table(d), &peers[1].id));
	/* From now on peer 1 answers everything with 203.  Once the node is
	 * questionable (15 min), maintenance pings it; the errors must count
	 * as failed pings, or its ping would stay pending forever. */
	for (now = T0; now < T0 + KM_MINUTES(20); now += 500) {
		for (size_t i = 0; i < nsent; i++) {
			decode_query(i, &q);
			pings += q.method == KM_KRPC_PING;
		}
		answer_all(d, errors_only, now);
		km_dht_tick(d, now);
	}
	e = km_table_find(km_dht_table(d), &peers[1].id);
	cr_assert_not_null(e);
	cr_assert_geq(pings, 2);
	cr_assert_eq(km_table_state(km_dht_table(d), e, now), KM_ENTRY_BAD);
	km_dht_del(d);
}

/* Sends d an announce_peer from peer 1 with the token d just gave it. */
static void announce_to(struct km_dht *d, const struct km_id *ih,
			uint16_t port, bool implied, km_ms now)
{
	static uint8_t pkt[KM_KRPC_MAX_PACKET];
	struct km_krpc_msg q, r;

	km_krpc_init(&q, KM_KRPC_QUERY);
	memcpy(q.tid, "gp", 2);
	q.tid_len = 2;
	q.id = peers[1].id;
	q.method = KM_KRPC_GET_PEERS;
	q.info_hash = *ih;
	km_dht_receive(d, &peers[1].addr, pkt, (size_t)encode_to_packet(&q, pkt),
		       now);
	/* The reply comes last: its query put peer 1 in the table the first
	 * time, and a ping to confirm it went out first. */
	cr_assert_geq(nsent, 1);
	cr_assert_eq(km_krpc_decode(sent[nsent - 1].buf, sent[nsent - 1].len,
				    &r), 0);
	cr_assert_eq(r.type, KM_KRPC_RESPONSE);
	nsent = 0;
	q.method = KM_KRPC_ANNOUNCE_PEER;
	q.port = port;
	q.implied_port = implied;
	memcpy(q.token, r.token, r.token_len);
	q.token_len = r.token_len;
	km_dht_receive(d, &peers[1].addr, pkt, (size_t)encode_to_packet(&q, pkt),
		       now);
	cr_assert_eq(nsent, 1);
	cr_assert_eq(km_krpc_decode(sent[0].buf, sent[0].len, &r), 0);
	cr_assert_eq(r.type, KM_KRPC_RESPONSE);
	nsent = 0;
}

Test(habits, an_announce_with_implied_port_stores_the_source_port)
{
	struct km_dht *d = new_dht();
	struct km_addr got[4];
	struct km_id a, b;

	km_id_sha1("a", 1, &a);
	km_id_sha1("b", 1, &b);
	/* bittorrent-dht sends implied_port=1 with port 0; others a stale
	 * port.  Either way the source port wins. */
	announce_to(d, &a, 0, true, T0);
	announce_to(d, &b, 4000, true, T0);
	cr_assert_eq(km_peers_get(km_dht_peers(d), &a, KM_AF_INET4, got, 4, T0), 1);
	cr_assert(km_addr_eq(&got[0], &peers[1].addr));
	cr_assert_eq(km_peers_get(km_dht_peers(d), &b, KM_AF_INET4, got, 4, T0), 1);
	cr_assert(km_addr_eq(&got[0], &peers[1].addr));
	km_dht_del(d);
}

static void ignore_tcp_connect(void *user, uint64_t conn,
			       const struct km_addr *to)
{
}

static void ignore_tcp_send(void *user, uint64_t conn, const uint8_t *buf,
			    size_t len)
{
}

static void ignore_tcp_close(void *user, uint64_t conn)
{
}

static void node_lookup_done(void *user, uint64_t id,
			     const struct km_lookup *lk)
{
	finished = true;
}

Test(habits, an_implied_port_announce_still_names_our_port_for_peers_that_ignore_it)
{
	static const struct km_node_callbacks cb = {
		.udp_send = sent_record, .tcp_connect = ignore_tcp_connect,
		.tcp_send = ignore_tcp_send, .tcp_close = ignore_tcp_close,
		.lookup_done = node_lookup_done,
	};
	struct km_node_config cfg;
	struct km_node *n;
	struct km_krpc_msg q;
	struct km_id ih;
	bool announced = false;

	km_node_config_default(&cfg);
	memset(cfg.dht.id.b, 0x5a, KM_ID_LEN);
	cfg.port = 6881;
	cfg.seed = true;
	n = km_node_new(&cfg, &cb, NULL, &rng, T0);
	cr_assert_not_null(n);
	km_node_start(n, NULL, 0, T0);
	cr_assert_eq(km_dht_ping_addr(km_node_dht(n), &peers[1].addr, T0), 0);
	km_id_sha1("swarm", 5, &ih);
	for (km_ms now = T0; now < T0 + KM_SECONDS(30) && !announced; now += 100) {
		/* Peer 1 answers, with a token, whatever is not the announce. */
		for (size_t i = 0; i < nsent; i++) {
			static uint8_t pkt[KM_KRPC_MAX_PACKET];
			struct km_krpc_msg r;

			decode_query(i, &q);
			if (q.method == KM_KRPC_ANNOUNCE_PEER) {
				announced = true;
				break;
			}
			km_krpc_init(&r, KM_KRPC_RESPONSE);
			memcpy(r.tid, q.tid, q.tid_len);
			r.tid_len = q.tid_len;
			r.id = peers[1].id;
			memcpy(r.token, "tok", 3);
			r.token_len = 3;
			km_node_udp_recv(n, &peers[1].addr, pkt,
					 (size_t)encode_to_packet(&r, pkt), now);
		}
		if (!announced)
			nsent = 0;
		if (now == T0 + 1000)
			cr_assert_eq(km_node_announce(n, &ih, 0, NULL, now), 0);
		km_node_tick(n, now);
	}
	cr_assert(announced, "no announce_peer was sent");
	cr_assert(q.implied_port);
	cr_assert_eq(q.port, 6881);
	km_node_del(n);
}
