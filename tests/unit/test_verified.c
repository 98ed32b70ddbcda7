/* Only verified nodes are served: a contact goes out in our find_node and
 * get_peers replies only once it has answered a query of ours, a reply
 * under another ID than the one we asked credits no one, and a node whose
 * own join has not been answered files (and so serves) no one.  One km_dht talks
 * to peers played by the test, which sees every datagram it sends. */
#include <criterion/criterion.h>
#include <string.h>

#include "dht/dht.h"
#include "proto/krpc.h"
#include "sent.h"

#define T0 KM_SECONDS(1000)
#define PEERS 8

static struct km_prng prng;
static struct km_rng rng;

static struct km_contact peers[PEERS + 1]; /* peer i is 10.0.0.i:6881 */
static bool finished;
static struct km_lookup_result results[32];
static size_t nresults;

static void on_lookup_done(void *user, uint64_t id, const struct km_lookup *lk)
{
	finished = true;
	nresults = km_lookup_results(lk, results, 32);
}

static void setup(void)
{
	km_prng_seed(&prng, 13);
	rng = km_prng_rng(&prng);
	nsent = nresults = 0;
	finished = false;
	for (uint8_t i = 1; i <= PEERS; i++) {
		uint8_t ip[4] = { 10, 0, 0, i };

		km_id_random(&rng, &peers[i].id);
		km_addr_set_v4(&peers[i].addr, ip, 6881);
	}
}

TestSuite(verified, .init = setup);

static struct km_dht *dht_with(size_t max_transactions)
{
	static const struct km_dht_callbacks cb = {
		.send = sent_record, .lookup_done = on_lookup_done,
	};
	struct km_dht_config cfg;
	struct km_dht *d;

	km_dht_config_default(&cfg);
	memset(cfg.id.b, 0x5a, KM_ID_LEN);
	cfg.max_transactions = max_transactions;
	d = km_dht_new(&cfg, &cb, NULL, &rng, T0);
	cr_assert_not_null(d);
	return d;
}

static void receive(struct km_dht *d, const struct km_addr *from,
		    const struct km_krpc_msg *m, km_ms now)
{
	uint8_t pkt[KM_KRPC_MAX_PACKET];
	int len = km_krpc_encode(m, pkt, sizeof(pkt));

	cr_assert_gt(len, 0);
	km_dht_receive(d, from, pkt, (size_t)len, now);
}

/* Peer p sends d a query; ro makes it a BEP 43 read-only one, which keeps
 * the asker itself out of d's table.  Returns d's reply, decoded into r
 * (its node list points into reply_buf). */
static void query_from(struct km_dht *d, const struct km_contact *p,
		       enum km_krpc_method method, const struct km_id *target,
		       bool ro, km_ms now, struct km_krpc_msg *r)
{
	static uint8_t reply_buf[2048];
	struct km_krpc_msg q;

	km_krpc_init(&q, KM_KRPC_QUERY);
	memcpy(q.tid, "qq", 2);
	q.tid_len = 2;
	q.id = p->id;
	q.method = method;
	q.ro = ro;
	if (method == KM_KRPC_FIND_NODE)
		q.target = *target;
	if (method == KM_KRPC_GET_PEERS)
		q.info_hash = *target;
	nsent = 0;
	receive(d, &p->addr, &q, now);
	/* The reply, and, when the query put p in the table, our ping to
	 * confirm it. */
	cr_assert_geq(nsent, 1, "a reply");
	memcpy(reply_buf, sent[nsent - 1].buf, sent[nsent - 1].len);
	cr_assert_eq(km_krpc_decode(reply_buf, sent[nsent - 1].len, r), 0);
	cr_assert_eq(r->type, KM_KRPC_RESPONSE);
	nsent = 0;
}

static bool nodes_hold(const struct km_krpc_msg *r, const struct km_id *id)
{
	for (size_t i = 0; i < r->nodes_len / KM_COMPACT_NODE4_LEN; i++) {
		struct km_contact c;

		km_compact_node_read(r->nodes, i, KM_AF_INET4, &c);
		if (km_id_eq(&c.id, id))
			return true;
	}
	return false;
}

/* Whether `asker`'s find_node and get_peers for p's own ID get p back. */
static bool served(struct km_dht *d, const struct km_contact *asker,
		   const struct km_contact *p, km_ms now)
{
	struct km_krpc_msg r;
	bool in_find_node, in_get_peers;

	query_from(d, asker, KM_KRPC_FIND_NODE, &p->id, true, now, &r);
	in_find_node = nodes_hold(&r, &p->id);
	query_from(d, asker, KM_KRPC_GET_PEERS, &p->id, true, now, &r);
	in_get_peers = nodes_hold(&r, &p->id);
	cr_assert_eq(in_find_node, in_get_peers);
	return in_find_node;
}

/* from answers datagram s that d sent, under the given ID. */
static void answer_sent(struct km_dht *d, const struct sent *s,
			const struct km_addr *from, const struct km_id *id,
			km_ms now)
{
	struct km_krpc_msg q, r;

	cr_assert(km_addr_eq(&s->to, from));
	cr_assert_eq(km_krpc_decode(s->buf, s->len, &q), 0);
	cr_assert_eq(q.type, KM_KRPC_QUERY);
	km_krpc_init(&r, KM_KRPC_RESPONSE);
	memcpy(r.tid, q.tid, q.tid_len);
	r.tid_len = q.tid_len;
	r.id = *id;
	receive(d, from, &r, now);
}

/* from answers the i-th datagram d sent, under the given ID. */
static void answer_as(struct km_dht *d, size_t i, const struct km_addr *from,
		      const struct km_id *id, km_ms now)
{
	cr_assert_lt(i, nsent);
	answer_sent(d, &sent[i], from, id, now);
}

/* The index of the first datagram d sent to a, or -1. */
static int sent_to(const struct km_addr *a)
{
	for (size_t i = 0; i < nsent; i++)
		if (km_addr_eq(&sent[i].to, a))
			return (int)i;
	return -1;
}

/* d learns p the verified way: find_node to its address, and an answer. */
static void verify(struct km_dht *d, const struct km_contact *p, km_ms now)
{
	nsent = 0;
	cr_assert_eq(km_dht_ping_addr(d, &p->addr, now), 0);
	answer_as(d, 0, &p->addr, &p->id, now);
	nsent = 0;
}

/* How many pings d sent to a since nsent was reset. */
static int pings_to(const struct km_addr *a)
{
	int n = 0;

	for (size_t i = 0; i < nsent; i++) {
		struct km_krpc_msg m;

		n += km_addr_eq(&sent[i].to, a) &&
		     km_krpc_decode(sent[i].buf, sent[i].len, &m) == 0 &&
		     m.type == KM_KRPC_QUERY && m.method == KM_KRPC_PING;
	}
	return n;
}

Test(verified, a_node_that_enters_the_table_by_its_query_is_asked_at_once)
{
	struct km_dht *d = dht_with(2048);
	struct km_krpc_msg q;
	int i;

	/* Not a ping a second later, when maintenance comes round to it:
	 * in a network just formed every table is full of such nodes, and
	 * none of them would be served for many seconds. */
	km_krpc_init(&q, KM_KRPC_QUERY);
	memcpy(q.tid, "qq", 2);
	q.tid_len = 2;
	q.id = peers[1].id;
	q.method = KM_KRPC_PING;
	nsent = 0;
	receive(d, &peers[1].addr, &q, T0);
	cr_assert_eq(pings_to(&peers[1].addr), 1);
	i = sent_to(&peers[1].addr);
	answer_as(d, (size_t)i, &peers[1].addr, &peers[1].id, T0 + 30);
	cr_assert(served(d, &peers[2], &peers[1], T0 + 40));
	/* Its next query adds nothing, and costs no second ping. */
	nsent = 0;
	receive(d, &peers[1].addr, &q, T0 + 50);
	cr_assert_eq(pings_to(&peers[1].addr), 0);
	km_dht_del(d);
}

Test(verified, a_node_heard_only_by_its_query_is_served_once_it_answers_ours)
{
	struct km_dht *d = dht_with(2048);
	const struct km_table_entry *e;
	struct km_krpc_msg r;
	int i;

	/* Peer 1 pings us under its ID and goes quiet: it may sit in the
	 * table, but nobody has seen it answer, so it is not handed out. */
	query_from(d, &peers[1], KM_KRPC_PING, NULL, false, T0, &r);
	e = km_table_find(km_dht_table(d), &peers[1].id);
	cr_assert_not_null(e, "it may sit in the table");
	cr_assert_eq(km_table_state(km_dht_table(d), e, T0), KM_ENTRY_QUESTIONABLE);
	cr_assert_not(served(d, &peers[2], &peers[1], T0 + 500));
	cr_assert_not(served(d, &peers[2], &peers[1], T0 + 2000));

	/* Maintenance asks it; once it answers, it is good and served. */
	nsent = 0;
	km_dht_tick(d, T0 + 2000);
	i = sent_to(&peers[1].addr);
	cr_assert_geq(i, 0, "maintenance pings the unverified node");
	answer_as(d, (size_t)i, &peers[1].addr, &peers[1].id, T0 + 2050);
	e = km_table_find(km_dht_table(d), &peers[1].id);
	cr_assert_eq(km_table_state(km_dht_table(d), e, T0 + 2050), KM_ENTRY_GOOD);
	cr_assert(served(d, &peers[2], &peers[1], T0 + 2100));
	km_dht_del(d);
}

Test(verified, a_node_that_never_answers_is_never_served)
{
	struct km_dht *d = dht_with(2048);
	struct km_krpc_msg r;
	int pings = 0;

	query_from(d, &peers[1], KM_KRPC_PING, NULL, false, T0, &r);
	for (km_ms now = T0; now < T0 + KM_SECONDS(10); now += 100) {
		nsent = 0;
		km_dht_tick(d, now);
		pings += pings_to(&peers[1].addr);
		cr_assert_not(served(d, &peers[2], &peers[1], now),
			      "served at T0 + %llu ms",
			      (unsigned long long)(now - T0));
	}
	cr_assert_geq(pings, 1, "asked by maintenance");
	cr_assert_eq(km_table_state(km_dht_table(d),
				    km_table_find(km_dht_table(d), &peers[1].id),
				    T0 + KM_SECONDS(10)),
		     KM_ENTRY_BAD, "and bad once it failed twice");
	km_dht_del(d);
}

Test(verified, a_node_that_answered_us_is_served_at_once)
{
	struct km_dht *d = dht_with(2048);

	verify(d, &peers[1], T0);
	cr_assert(served(d, &peers[2], &peers[1], T0 + 1));
	km_dht_del(d);
}

Test(verified, a_ping_answered_under_a_new_id_evicts_the_old_entry_and_credits_no_one)
{
	struct km_dht *d = dht_with(2048);
	struct km_contact restarted = peers[1];
	km_ms now = T0 + KM_MINUTES(2);
	int i;

	km_id_random(&rng, &restarted.id);
	verify(d, &peers[1], T0);
	/* A minute unheard, our nearest neighbour gets a revalidation ping;
	 * the process at its address has restarted with a new ID. */
	km_dht_tick(d, now);
	i = sent_to(&peers[1].addr);
	cr_assert_geq(i, 0, "the old entry is pinged");
	answer_as(d, (size_t)i, &restarted.addr, &restarted.id, now + 50);
	cr_assert_null(km_table_find(km_dht_table(d), &peers[1].id),
		       "the old ID is gone from that address");
	cr_assert_null(km_table_find(km_dht_table(d), &restarted.id),
		       "a reply under another ID credits no one");
	cr_assert_not(served(d, &peers[2], &peers[1], now + 100));
	cr_assert_not(served(d, &peers[2], &restarted, now + 100));
	km_dht_del(d);
}

Test(verified, a_lookup_does_not_credit_a_reply_under_a_new_id_to_the_old_one)
{
	struct km_dht *d = dht_with(2048);
	struct km_contact seeds[3] = { peers[1], peers[2], peers[3] };
	struct km_id target, new_id;
	km_ms now = T0;

	km_id_random(&rng, &target);
	km_id_random(&rng, &new_id);
	cr_assert_eq(km_dht_lookup(d, &target, KM_LOOKUP_FIND_NODE, seeds, 3,
				   NULL, now), 0);
	cr_assert_eq(nsent, 3);
	for (size_t i = 0; i < 3; i++) {
		bool p1 = km_addr_eq(&sent[i].to, &peers[1].addr);
		const struct km_contact *p = p1 ? &peers[1] :
			km_addr_eq(&sent[i].to, &peers[2].addr) ? &peers[2] :
								  &peers[3];

		answer_as(d, i, &p->addr, p1 ? &new_id : &p->id, now + 10);
	}
	for (; !finished && now < T0 + KM_SECONDS(30); now += 100)
		km_dht_tick(d, now);
	cr_assert(finished);
	cr_assert_eq(nresults, 2, "peers 2 and 3 only, not %zu", nresults);
	for (size_t i = 0; i < nresults; i++) {
		cr_assert_not(km_id_eq(&results[i].c.id, &peers[1].id),
			      "the old ID was credited with the reply");
		cr_assert_not(km_id_eq(&results[i].c.id, &new_id));
	}
	cr_assert_null(km_table_find(km_dht_table(d), &new_id));
	km_dht_del(d);
}

Test(verified, a_query_with_no_id_never_puts_the_zero_id_in_the_table)
{
	struct km_dht *d = dht_with(2048);
	static const struct km_id zero;
	/* An unknown method may come without arguments we understand; BEP 5
	 * still answers it with 204, but its sender has no ID to file. */
	const char q[] = "d1:ad6:target20:abcdefghij0123456789e"
			 "1:q6:frobit1:t2:bb1:y1:qe";

	km_dht_receive(d, &peers[1].addr, (const uint8_t *)q, sizeof(q) - 1, T0);
	cr_assert_eq(nsent, 1, "answered with an error");
	cr_assert_null(km_table_find(km_dht_table(d), &zero));
	cr_assert_eq(km_table_size(km_dht_table(d)), 0);
	km_dht_del(d);
}

Test(verified, a_ping_that_could_not_be_sent_is_not_left_pending)
{
	struct km_dht *d = dht_with(1);
	struct km_krpc_msg r;
	const struct km_table_entry *e;
	struct km_id target;

	/* A lookup holds the one transaction slot when peer 1 enters the
	 * table by its query, and our ping to confirm it finds no slot. */
	km_id_random(&rng, &target);
	cr_assert_eq(km_dht_lookup(d, &target, KM_LOOKUP_FIND_NODE, &peers[2],
				   1, NULL, T0), 0);
	query_from(d, &peers[1], KM_KRPC_PING, NULL, false, T0, &r);
	cr_assert_geq(km_dht_stats(d).tx_full, 1, "no slot, no ping");
	e = km_table_find(km_dht_table(d), &peers[1].id);
	cr_assert_not_null(e);
	cr_assert_not(e->ping_pending, "a ping never sent is not awaited");
	/* Once the slot is free again, the node is pinged after all. */
	nsent = 0;
	for (km_ms now = T0; now <= T0 + KM_SECONDS(10); now += 100)
		km_dht_tick(d, now);
	cr_assert_geq(pings_to(&peers[1].addr), 1, "pinged once a slot was free");
	km_dht_del(d);
}

/* ---- a node that has not joined yet ------------------------------------ */

Test(verified, a_node_whose_join_is_unanswered_files_none_of_its_queriers)
{
	struct km_dht *d = dht_with(2048);
	struct sent join;
	struct km_krpc_msg r;

	/* Our join query to peer 1 is out; peer 2 bootstraps from us before
	 * peer 1 has answered.  Had our query been lost, filing peer 2 would
	 * make us and whoever joins through us an island. */
	nsent = 0;
	cr_assert_eq(km_dht_ping_addr(d, &peers[1].addr, T0), 0);
	join = sent[0];
	query_from(d, &peers[2], KM_KRPC_FIND_NODE, &peers[2].id, false,
		   T0 + 100, &r);
	cr_assert_eq(r.nodes_len, 0, "answered, with no nodes");
	cr_assert_null(km_table_find(km_dht_table(d), &peers[2].id),
		       "filed before we joined");
	cr_assert_eq(km_table_size(km_dht_table(d)), 0);

	/* Once peer 1 has answered, we are in the network: peer 2's next
	 * query files it as usual. */
	answer_sent(d, &join, &peers[1].addr, &peers[1].id, T0 + 200);
	query_from(d, &peers[2], KM_KRPC_FIND_NODE, &peers[2].id, false,
		   T0 + 300, &r);
	cr_assert_not_null(km_table_find(km_dht_table(d), &peers[2].id));
	km_dht_del(d);
}

Test(verified, a_join_query_that_goes_unanswered_is_sent_once_more)
{
	struct km_dht *d = dht_with(2048);
	struct km_krpc_msg first, again;

	nsent = 0;
	cr_assert_eq(km_dht_ping_addr(d, &peers[1].addr, T0), 0);
	cr_assert_eq(km_krpc_decode(sent[0].buf, sent[0].len, &first), 0);
	nsent = 0;
	km_dht_tick(d, T0 + KM_SECONDS(2));
	cr_assert_eq(sent_to(&peers[1].addr), 0, "asked again after a timeout");
	cr_assert_eq(km_krpc_decode(sent[0].buf, sent[0].len, &again), 0);
	cr_assert_eq(again.method, KM_KRPC_FIND_NODE);
	cr_assert_eq(memcmp(again.tid, first.tid, first.tid_len), 0,
		     "the same transaction: a late answer to either counts");
	answer_as(d, 0, &peers[1].addr, &peers[1].id, T0 + KM_SECONDS(2) + 50);
	cr_assert_not_null(km_table_find(km_dht_table(d), &peers[1].id));
	/* Once is enough: a second silence is the driver's to retry. */
	nsent = 0;
	cr_assert_eq(km_dht_ping_addr(d, &peers[2].addr, T0 + KM_SECONDS(3)), 0);
	nsent = 0;
	km_dht_tick(d, T0 + KM_SECONDS(5));
	cr_assert_eq(sent_to(&peers[2].addr), 0);
	nsent = 0;
	km_dht_tick(d, T0 + KM_SECONDS(7));
	cr_assert_eq(sent_to(&peers[2].addr), -1);
	km_dht_del(d);
}

Test(verified, a_node_stops_waiting_for_its_join_after_thirty_seconds)
{
	struct km_dht *d = dht_with(2048);
	struct km_krpc_msg r;

	/* Its seed is dead, but others found it: in the end it serves. */
	cr_assert_eq(km_dht_ping_addr(d, &peers[1].addr, T0), 0);
	query_from(d, &peers[2], KM_KRPC_PING, NULL, false,
		   T0 + KM_SECONDS(29), &r);
	cr_assert_null(km_table_find(km_dht_table(d), &peers[2].id));
	query_from(d, &peers[2], KM_KRPC_PING, NULL, false,
		   T0 + KM_SECONDS(30), &r);
	cr_assert_not_null(km_table_find(km_dht_table(d), &peers[2].id));
	km_dht_del(d);
}
