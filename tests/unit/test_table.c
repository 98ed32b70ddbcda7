#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <string.h>

#include "dht/table.h"

#define T0 ((km_ms)1000)

static const struct km_id zero_id;

static struct km_contact contact(const struct km_id *id, uint16_t port)
{
	struct km_contact c = { .id = *id };
	uint8_t ip[4] = { 10, 0, (uint8_t)(port >> 8), (uint8_t)port };

	km_addr_set_v4(&c.addr, ip, port ? port : 1);
	return c;
}

/* With self = 0, a "far" ID has its top bit set and lands in bucket 0. */
static struct km_id far_id(int j)
{
	struct km_id id = { .b = { 0x80 } };

	id.b[19] = (uint8_t)j;
	return id;
}

/* far_id(j) as an lvalue, for the calls that take a pointer. */
#define FAR(j) (&(struct km_id){ .b = { [0] = 0x80, [19] = (j) } })

static struct km_contact far(int j)
{
	struct km_id id = far_id(j);

	return contact(&id, (uint16_t)(1000 + j));
}

static struct km_table *table_with(const struct km_table_config *cfg)
{
	struct km_table *t = km_table_new(&zero_id, cfg, T0);

	cr_assert_not_null(t);
	return t;
}

static enum km_offer_result offer(struct km_table *t, struct km_contact c,
				  enum km_seen_kind kind, km_ms now)
{
	struct km_contact ping;

	return km_table_offer(t, &c, kind, kind == KM_SEEN_REPLY ? 50 : 0, now,
			      &ping);
}

/* Fills bucket 0 with far(1)..far(8), all answering at T0, then offers
 * far(9), which splits the table once and is cached. */
static struct km_table *full_far_bucket(const struct km_table_config *cfg,
					enum km_seen_kind kind)
{
	struct km_table *t = table_with(cfg);

	for (int j = 1; j <= 8; j++)
		cr_assert_eq(offer(t, far(j), kind, T0), KM_OFFER_ADDED);
	return t;
}

/* ---- basics ---------------------------------------------------------- */

Test(table, invalid_configs_are_refused_and_del_of_null_is_a_no_op)
{
	struct km_table_config cfg;

	km_table_config_default(&cfg);
	cfg.k = 0;
	cr_assert_null(km_table_new(&zero_id, &cfg, T0));
	km_table_config_default(&cfg);
	cfg.bad_after_failures = 0;
	cr_assert_null(km_table_new(&zero_id, &cfg, T0));
	km_table_config_default(&cfg);
	cfg.replacements = -1;
	cr_assert_null(km_table_new(&zero_id, &cfg, T0));
	km_table_del(NULL);
}

Test(table, own_id_and_unusable_addresses_are_rejected)
{
	struct km_table *t = table_with(NULL);
	struct km_contact c = far(1);

	cr_assert(km_id_eq(km_table_self(t), &zero_id));
	cr_assert_eq(offer(t, contact(&zero_id, 7), KM_SEEN_REPLY, T0),
		     KM_OFFER_REJECTED);
	c.addr.family = KM_AF_NONE;
	cr_assert_eq(offer(t, c, KM_SEEN_REPLY, T0), KM_OFFER_REJECTED);
	c = far(1);
	c.addr.port = 0;
	cr_assert_eq(offer(t, c, KM_SEEN_REPLY, T0), KM_OFFER_REJECTED);
	c = far(1);
	c.addr.family = 5;
	cr_assert_eq(offer(t, c, KM_SEEN_REPLY, T0), KM_OFFER_REJECTED);
	cr_assert_eq(km_table_size(t), 0);
	km_table_del(t);
}

Test(table, a_known_id_from_another_address_keeps_its_old_address)
{
	struct km_table *t = table_with(NULL);
	struct km_contact c = far(1), moved = far(1);
	const struct km_table_entry *e;

	moved.addr.port = 9999;
	cr_assert_eq(offer(t, c, KM_SEEN_REPLY, T0), KM_OFFER_ADDED);
	cr_assert_eq(offer(t, moved, KM_SEEN_REPLY, T0 + 500), KM_OFFER_REJECTED);
	e = km_table_find(t, &c.id);
	cr_assert(km_addr_eq(&e->c.addr, &c.addr));
	cr_assert_eq(e->last_seen, T0, "a claim from elsewhere refreshes nothing");

	/* Once the entry is bad, the ID may come back from a new address. */
	km_table_on_failure(t, &c.id, T0 + 600);
	km_table_on_failure(t, &c.id, T0 + 700);
	cr_assert_eq(km_table_state(t, e, T0 + 700), KM_ENTRY_BAD);
	cr_assert_eq(offer(t, moved, KM_SEEN_QUERY, T0 + 800), KM_OFFER_UPDATED);
	e = km_table_find(t, &c.id);
	cr_assert(km_addr_eq(&e->c.addr, &moved.addr));
	cr_assert_eq(e->failures, 0);
	cr_assert_eq(km_table_state(t, e, T0 + 800), KM_ENTRY_QUESTIONABLE);
	km_table_del(t);
}

/* ---- node states (BEP 5) -------------------------------------------- */

Test(table, node_states_follow_bep5_with_literal_times)
{
	struct km_table *t = table_with(NULL);
	struct km_contact c = far(1);
	const struct km_table_entry *e;
	km_ms r = 2000, q = r + KM_MINUTES(20);

	cr_assert_eq(offer(t, c, KM_SEEN_QUERY, T0), KM_OFFER_ADDED);
	e = km_table_find(t, &c.id);
	cr_assert_eq(km_table_state(t, e, T0), KM_ENTRY_QUESTIONABLE,
		     "a node that never answered us is not good");
	cr_assert_eq(offer(t, c, KM_SEEN_REPLY, r), KM_OFFER_UPDATED);
	e = km_table_find(t, &c.id);
	cr_assert_eq(km_table_state(t, e, r), KM_ENTRY_GOOD);
	cr_assert_eq(km_table_state(t, e, r + KM_MINUTES(15) - 1), KM_ENTRY_GOOD);
	cr_assert_eq(km_table_state(t, e, r + KM_MINUTES(15)), KM_ENTRY_QUESTIONABLE);

	/* Answered once, and queried us recently: good again. */
	cr_assert_eq(offer(t, c, KM_SEEN_QUERY, q), KM_OFFER_UPDATED);
	e = km_table_find(t, &c.id);
	cr_assert_eq(km_table_state(t, e, q), KM_ENTRY_GOOD);
	cr_assert_eq(km_table_state(t, e, q + KM_MINUTES(15)), KM_ENTRY_QUESTIONABLE);

	km_table_on_failure(t, &c.id, q + KM_MINUTES(16));
	cr_assert_eq(km_table_state(t, e, q + KM_MINUTES(16)), KM_ENTRY_QUESTIONABLE);
	km_table_on_failure(t, &c.id, q + KM_MINUTES(17));
	cr_assert_eq(km_table_state(t, e, q + KM_MINUTES(17)), KM_ENTRY_BAD);
	cr_assert_eq(offer(t, c, KM_SEEN_REPLY, q + KM_MINUTES(18)), KM_OFFER_UPDATED);
	e = km_table_find(t, &c.id);
	cr_assert_eq(km_table_state(t, e, q + KM_MINUTES(18)), KM_ENTRY_GOOD);
	cr_assert_eq(e->failures, 0);
	km_table_del(t);
}

Test(table, replies_smooth_the_round_trip_time)
{
	struct km_table *t = table_with(NULL);
	struct km_contact c = far(1), ping;

	km_table_offer(t, &c, KM_SEEN_REPLY, 80, T0, &ping);
	cr_assert_eq(km_table_find(t, &c.id)->rtt_ms, 80);
	km_table_offer(t, &c, KM_SEEN_REPLY, 160, T0 + 1, &ping);
	cr_assert_eq(km_table_find(t, &c.id)->rtt_ms, 90);
	km_table_offer(t, &c, KM_SEEN_QUERY, 0, T0 + 2, &ping);
	cr_assert_eq(km_table_find(t, &c.id)->rtt_ms, 90);
	cr_assert_eq(km_table_find(t, &c.id)->last_query, T0 + 2);
	cr_assert_eq(km_table_find(t, &c.id)->last_reply, T0 + 1);
	km_table_del(t);
}

/* ---- eviction -------------------------------------------------------- */

/* far(1) is the least recently seen: the others queried us at T0 + 1000,
 * which also keeps them good 15 minutes after T0. */
static struct km_table *bucket_with_one_stale_node(void)
{
	struct km_table *t = full_far_bucket(NULL, KM_SEEN_REPLY);

	cr_assert_eq(offer(t, far(9), KM_SEEN_QUERY, T0), KM_OFFER_CACHED,
		     "a bucket of good nodes keeps the newcomer waiting");
	for (int j = 2; j <= 8; j++)
		cr_assert_eq(offer(t, far(j), KM_SEEN_QUERY, T0 + 1000),
			     KM_OFFER_UPDATED);
	return t;
}

#define LATER (T0 + KM_MINUTES(15) + 1)

/* Past 15 minutes far(1) is questionable, and the newcomer, heard again,
 * makes the table ask for it to be pinged. */
static struct km_table *stale_node_being_pinged(struct km_contact *ping)
{
	struct km_table *t = bucket_with_one_stale_node();
	struct km_contact c = far(9);

	cr_assert_eq(km_table_offer(t, &c, KM_SEEN_QUERY, 0, LATER, ping),
		     KM_OFFER_PING);
	cr_assert(km_id_eq(&ping->id, FAR(1)));
	cr_assert(km_table_find(t, &ping->id)->ping_pending);
	return t;
}

Test(table, a_questionable_node_is_pinged_and_replaced_after_two_failures)
{
	struct km_contact c = far(9), ping;
	struct km_table *t = stale_node_being_pinged(&ping);

	km_table_on_failure(t, &ping.id, LATER + 5000);
	cr_assert_not_null(km_table_find(t, &ping.id));
	cr_assert_not(km_table_find(t, &ping.id)->ping_pending);
	km_table_on_failure(t, &ping.id, LATER + 10000);
	cr_assert_null(km_table_find(t, &ping.id), "the bad node is gone");
	cr_assert_not_null(km_table_find(t, &c.id), "the newcomer took its slot");
	cr_assert_eq(km_table_replacement_count(t, 0), 0);
	cr_assert_eq(km_table_bucket_size(t, 0), 8);
	km_table_del(t);
}

Test(table, a_questionable_node_that_answers_the_ping_stays)
{
	struct km_contact c = far(9), ping;
	struct km_table *t = stale_node_being_pinged(&ping);

	cr_assert_eq(km_table_offer(t, &ping, KM_SEEN_REPLY, 40, LATER + 100,
				    NULL),
		     KM_OFFER_UPDATED);
	cr_assert_not(km_table_find(t, &ping.id)->ping_pending);
	cr_assert_eq(km_table_state(t, km_table_find(t, &ping.id), LATER + 100),
		     KM_ENTRY_GOOD);
	cr_assert_null(km_table_find(t, &c.id));
	cr_assert_eq(km_table_replacement_count(t, 0), 1,
		     "the newcomer is still waiting");
	km_table_del(t);
}

/* A joiner whose find_node to its bootstrap node was lost twice knew no one
 * else: skipping the bad node left it with no lookup to send, ever (dht-sim
 * broadcast, 3,000 nodes, seed 4: a node alone in its own component). */
Test(table, when_every_entry_is_bad_our_lookups_still_get_the_bad_ones)
{
	struct km_table *t = table_with(NULL);
	struct km_id only = far_id(1);
	struct km_contact out[4];

	cr_assert_eq(offer(t, far(1), KM_SEEN_REPLY, T0), KM_OFFER_ADDED);
	km_table_on_failure(t, &only, T0 + 20000);
	km_table_on_failure(t, &only, T0 + 40000);
	cr_assert_eq(km_table_state(t, km_table_find(t, &only), T0 + 40000),
		     KM_ENTRY_BAD);
	cr_assert_eq(km_table_closest(t, &zero_id, 4, out), 1,
		     "the bad node is all there is to ask");
	cr_assert(km_id_eq(&out[0].id, &only));
	cr_assert_eq(km_table_closest_served(t, &zero_id, NULL, 4, out), 0,
		     "but it is still served to no one");
	km_table_del(t);
}

Test(table, a_bad_entry_is_replaced_at_once_and_never_returned_as_closest)
{
	struct km_table *t = full_far_bucket(NULL, KM_SEEN_REPLY);
	struct km_id bad = far_id(3);
	struct km_contact out[16];
	size_t n;

	cr_assert_eq(offer(t, far(9), KM_SEEN_REPLY, T0), KM_OFFER_CACHED);
	cr_assert(km_table_remove(t, FAR(9)), "empty the cache");
	km_table_on_failure(t, &bad, 2000);
	km_table_on_failure(t, &bad, 3000);
	cr_assert_eq(km_table_state(t, km_table_find(t, &bad), 3000), KM_ENTRY_BAD,
		     "with nothing cached, the bad node stays for now");
	n = km_table_closest(t, &bad, 16, out);
	cr_assert_eq(n, 7);
	for (size_t i = 0; i < n; i++)
		cr_assert_not(km_id_eq(&out[i].id, &bad));

	cr_assert_eq(offer(t, far(10), KM_SEEN_QUERY, 4000), KM_OFFER_ADDED);
	cr_assert_null(km_table_find(t, &bad));
	cr_assert_eq(km_table_bucket_size(t, 0), 8);
	km_table_del(t);
}

Test(table, a_pending_ping_is_not_requested_twice)
{
	/* Nodes that only ever queried us are questionable from the start. */
	struct km_table *t = full_far_bucket(NULL, KM_SEEN_QUERY);
	struct km_contact a = far(20), b = far(21), ping;

	cr_assert_eq(km_table_offer(t, &a, KM_SEEN_QUERY, 0, 2000, &ping),
		     KM_OFFER_PING);
	cr_assert(km_id_eq(&ping.id, FAR(1)));
	cr_assert_eq(km_table_offer(t, &a, KM_SEEN_QUERY, 0, 3000, &ping),
		     KM_OFFER_CACHED,
		     "one replacement waiting, one ping already out");
	cr_assert_eq(km_table_offer(t, &b, KM_SEEN_QUERY, 0, 4000, &ping),
		     KM_OFFER_PING);
	cr_assert(km_id_eq(&ping.id, FAR(2)), "the next oldest, not far(1)");

	/* One failure clears the pending flag; far(1) may be asked again. */
	km_table_on_failure(t, FAR(1), 5000);
	cr_assert_eq(km_table_offer(t, &b, KM_SEEN_QUERY, 0, 6000, &ping),
		     KM_OFFER_PING);
	cr_assert(km_id_eq(&ping.id, FAR(1)));
	km_table_del(t);
}

/* ---- replacement cache ---------------------------------------------- */

Test(table, the_replacement_cache_is_bounded_and_promotes_the_most_recent_first)
{
	struct km_table_config cfg;
	struct km_table *t;

	km_table_config_default(&cfg);
	cfg.replacements = 3;
	t = full_far_bucket(&cfg, KM_SEEN_REPLY);
	for (int j = 9; j <= 14; j++)
		cr_assert_eq(offer(t, far(j), KM_SEEN_REPLY, T0 + j), KM_OFFER_CACHED);
	cr_assert_eq(km_table_replacement_count(t, 0), 3);
	/* Cache holds 12, 13, 14; hearing from 12 again makes it the freshest. */
	cr_assert_eq(offer(t, far(12), KM_SEEN_QUERY, T0 + 100), KM_OFFER_CACHED);
	cr_assert_eq(km_table_replacement_count(t, 0), 3);

	cr_assert(km_table_remove(t, FAR(1)));
	cr_assert_not_null(km_table_find(t, FAR(12)));
	cr_assert(km_table_remove(t, FAR(2)));
	cr_assert_not_null(km_table_find(t, FAR(14)));
	km_table_on_failure(t, FAR(3), 2000);
	km_table_on_failure(t, FAR(3), 3000);
	cr_assert_null(km_table_find(t, FAR(3)));
	cr_assert_not_null(km_table_find(t, FAR(13)));
	cr_assert_eq(km_table_replacement_count(t, 0), 0);
	cr_assert_eq(km_table_bucket_size(t, 0), 8);

	cr_assert(km_table_remove(t, FAR(4)));
	cr_assert_eq(km_table_bucket_size(t, 0), 7, "nothing left to promote");
	cr_assert_not(km_table_remove(t, FAR(4)));
	cr_assert_eq(km_table_size(t), 7);
	km_table_del(t);
}

Test(table, a_replacement_that_fails_is_dropped_from_the_cache)
{
	struct km_table *t = full_far_bucket(NULL, KM_SEEN_REPLY);

	cr_assert_eq(offer(t, far(9), KM_SEEN_QUERY, T0), KM_OFFER_CACHED);
	km_table_on_failure(t, FAR(9), 2000);
	cr_assert_eq(km_table_replacement_count(t, 0), 0);
	km_table_del(t);
}

Test(table, a_replacement_may_come_back_from_a_new_address_after_a_nat_rebinding)
{
	struct km_table *t = full_far_bucket(NULL, KM_SEEN_REPLY);
	struct km_contact moved = contact(FAR(9), 2009);
	const struct km_table_entry *e;

	cr_assert_eq(offer(t, far(9), KM_SEEN_REPLY, T0), KM_OFFER_CACHED);
	/* Its NAT gave it a new public address while it waited. */
	cr_assert_eq(offer(t, moved, KM_SEEN_QUERY, T0 + 100), KM_OFFER_CACHED);
	cr_assert_eq(km_table_replacement_count(t, 0), 1);
	km_table_on_failure(t, FAR(1), T0 + 200);
	km_table_on_failure(t, FAR(1), T0 + 300);
	e = km_table_find(t, FAR(9));
	cr_assert_not_null(e, "promoted into the slot far(1) left");
	cr_assert(km_addr_eq(&e->c.addr, &moved.addr));
	/* What it answered from the old address says nothing of the new. */
	cr_assert_eq(e->last_reply, 0);
	cr_assert_eq(km_table_state(t, e, T0 + 300), KM_ENTRY_QUESTIONABLE);
	km_table_del(t);
}

Test(table, only_nodes_that_answered_us_are_served_but_lookups_may_start_anywhere)
{
	struct km_table *t = table_with(NULL);
	struct km_contact out[4];

	cr_assert_eq(offer(t, far(1), KM_SEEN_QUERY, T0), KM_OFFER_ADDED);
	cr_assert_eq(offer(t, far(2), KM_SEEN_REPLY, T0), KM_OFFER_ADDED);
	cr_assert_eq(km_table_closest_served(t, FAR(1), NULL, 4, out), 1);
	cr_assert(km_id_eq(&out[0].id, FAR(2)));
	cr_assert_eq(km_table_closest(t, FAR(1), 4, out), 2,
		     "our own lookups may ask an unconfirmed node");
	cr_assert(km_id_eq(&out[0].id, FAR(1)));
	cr_assert_eq(offer(t, far(1), KM_SEEN_REPLY, T0 + 10), KM_OFFER_UPDATED);
	cr_assert_eq(km_table_closest_served(t, FAR(1), NULL, 4, out), 2);
	cr_assert(km_id_eq(&out[0].id, FAR(1)));
	/* A bad node is served by neither, confirmed or not. */
	km_table_on_failure(t, FAR(2), T0 + 20);
	km_table_on_failure(t, FAR(2), T0 + 30);
	cr_assert_eq(km_table_closest_served(t, FAR(1), NULL, 4, out), 1);
	km_table_del(t);
}

Test(table, the_all_zero_id_is_never_taken)
{
	struct km_id self = far_id(1);
	struct km_table *t = km_table_new(&self, NULL, T0);

	cr_assert_eq(offer(t, contact(&zero_id, 7), KM_SEEN_QUERY, T0),
		     KM_OFFER_REJECTED);
	cr_assert_eq(km_table_size(t), 0);
	km_table_del(t);
}

/* ---- splitting ------------------------------------------------------- */

static void assert_buckets_hold_their_range(const struct km_table *t)
{
	int last = km_table_bucket_count(t) - 1;

	for (int i = 0; i <= last; i++) {
		cr_assert_leq(km_table_bucket_size(t, i), 8);
		for (size_t j = 0; j < km_table_bucket_size(t, i); j++) {
			int cpl = km_id_cpl(&zero_id,
					    &km_table_bucket_entry(t, i, j)->c.id);

			cr_assert(i == last ? cpl >= last : cpl == i);
		}
	}
}

Test(table, only_the_bucket_holding_self_splits)
{
	struct km_table *t = table_with(NULL);
	struct km_prng p;
	struct km_rng rng;
	struct km_id id;

	km_prng_seed(&p, 1);
	rng = km_prng_rng(&p);
	for (int j = 0; j < 100; j++) {
		km_id_random(&rng, &id);
		id.b[0] |= 0x80;
		offer(t, contact(&id, (uint16_t)j), KM_SEEN_REPLY, T0);
	}
	cr_assert_eq(km_table_bucket_count(t), 2, "one split, then no more");
	cr_assert_eq(km_table_bucket_size(t, 0), 8);
	cr_assert_eq(km_table_bucket_size(t, 1), 0);

	for (int j = 0; j < 200; j++) {
		km_id_random_with_prefix(&zero_id, 1 + (int)km_rng_below(&rng, 20),
					 &rng, &id);
		offer(t, contact(&id, (uint16_t)j), KM_SEEN_REPLY, T0);
		assert_buckets_hold_their_range(t);
	}
	cr_assert_gt(km_table_bucket_count(t), 5);
	cr_assert_eq(km_table_bucket_size(t, 0), 8, "the far bucket never grew");
	cr_assert_eq(km_table_bucket_entry(t, 0, 8), NULL);
	cr_assert_eq(km_table_bucket_entry(t, 99, 0), NULL);
	km_table_del(t);
}

Test(table, splitting_stops_at_160_buckets)
{
	struct km_table_config cfg;
	struct km_table *t;
	struct km_id id;

	km_table_config_default(&cfg);
	cfg.k = 1;
	t = table_with(&cfg);
	for (int i = 0; i < KM_ID_BITS; i++) {
		id = zero_id;
		id.b[i / 8] = (uint8_t)(0x80 >> (i % 8));
		cr_assert_eq(offer(t, contact(&id, 1), KM_SEEN_REPLY, T0),
			     KM_OFFER_ADDED);
	}
	cr_assert_eq(km_table_bucket_count(t), KM_ID_BITS);
	cr_assert_eq(km_table_size(t), KM_ID_BITS);
	for (int i = 0; i < KM_ID_BITS; i++)
		cr_assert_eq(km_table_bucket_size(t, i), 1);
	id.b[19] = 3; /* shares 158 bits with self, like bucket 158's node */
	cr_assert_eq(offer(t, contact(&id, 1), KM_SEEN_REPLY, T0), KM_OFFER_CACHED);
	cr_assert_eq(km_table_bucket_count(t), KM_ID_BITS);
	km_table_del(t);
}

/* An ID sharing exactly cpl bits with self = 0, told apart by j. */
static struct km_contact at_cpl(int cpl, int j)
{
	struct km_id id = zero_id;

	id.b[cpl / 8] = (uint8_t)(0x80 >> (cpl % 8));
	id.b[19] |= (uint8_t)j;
	return contact(&id, (uint16_t)(cpl * 100 + j));
}

/* Under a cap of 5 with k = 4, the last bucket caches a node while full;
 * a removal elsewhere lifts the cap, and the next split must hand the
 * waiting node the room it opens, whichever half it lands in. */
static void split_promotes_a_node_cached_under_the_cap(int waiting_cpl)
{
	struct km_table_config cfg;
	struct km_table *t;
	struct km_contact waiting = at_cpl(waiting_cpl, 9), far0 = at_cpl(0, 1);

	km_table_config_default(&cfg);
	cfg.k = 4;
	cfg.max_nodes = 5;
	t = table_with(&cfg);
	cr_assert_eq(offer(t, far0, KM_SEEN_REPLY, T0), KM_OFFER_ADDED);
	cr_assert_eq(offer(t, at_cpl(3, 1), KM_SEEN_REPLY, T0), KM_OFFER_ADDED);
	cr_assert_eq(offer(t, at_cpl(3, 2), KM_SEEN_REPLY, T0), KM_OFFER_ADDED);
	cr_assert_eq(offer(t, at_cpl(5, 1), KM_SEEN_REPLY, T0), KM_OFFER_ADDED);
	cr_assert_eq(offer(t, at_cpl(5, 2), KM_SEEN_REPLY, T0), KM_OFFER_ADDED);
	cr_assert_eq(km_table_bucket_count(t), 2);
	cr_assert_eq(offer(t, waiting, KM_SEEN_REPLY, T0 + 1), KM_OFFER_CACHED,
		     "at the cap, the full last bucket cannot split");
	cr_assert(km_table_remove(t, &far0.id));
	cr_assert_null(km_table_find(t, &waiting.id));

	cr_assert_eq(offer(t, at_cpl(7, 1), KM_SEEN_REPLY, T0 + 2), KM_OFFER_CACHED);
	cr_assert_eq(km_table_bucket_count(t), 5);
	cr_assert_not_null(km_table_find(t, &waiting.id));
	cr_assert_eq(km_table_size(t), 5);
	km_table_del(t);
}

Test(table, a_split_promotes_nodes_that_waited_under_the_cap)
{
	split_promotes_a_node_cached_under_the_cap(3); /* stays in the old half */
	split_promotes_a_node_cached_under_the_cap(5); /* moves to the new half */
}

/* ---- the cap --------------------------------------------------------- */

Test(table, max_nodes_is_never_exceeded)
{
	struct km_table_config cfg;
	struct km_table *t;
	struct km_prng p;
	struct km_rng rng;
	struct km_id id;

	km_table_config_default(&cfg);
	cfg.max_nodes = 20;
	t = table_with(&cfg);
	km_prng_seed(&p, 2);
	rng = km_prng_rng(&p);
	for (int j = 0; j < 5000; j++) {
		size_t before = km_table_size(t);
		enum km_offer_result r;

		km_id_random_with_prefix(&zero_id, (int)km_rng_below(&rng, 12),
					 &rng, &id);
		r = offer(t, contact(&id, (uint16_t)j), KM_SEEN_REPLY, T0 + j);
		cr_assert_leq(km_table_size(t), 20);
		if (before == 20)
			cr_assert_neq(r, KM_OFFER_ADDED);
	}
	cr_assert_eq(km_table_size(t), 20);
	cr_assert_gt(km_table_stats(t).capped, 0, "status shows the cap biting");
	km_table_del(t);
}

/* ---- refresh --------------------------------------------------------- */

Test(table, buckets_untouched_for_15_minutes_yield_targets_in_their_range)
{
	struct km_table *t = table_with(NULL);
	struct km_prng p;
	struct km_rng rng;
	struct km_id id, out[200];
	km_ms due = T0 + KM_MINUTES(15);
	int nb, last, prev = -1;
	size_t n;

	km_prng_seed(&p, 3);
	rng = km_prng_rng(&p);
	for (int j = 0; j < 300; j++) {
		km_id_random(&rng, &id);
		offer(t, contact(&id, (uint16_t)j), KM_SEEN_REPLY, T0);
	}
	nb = km_table_bucket_count(t);
	last = nb - 1;
	cr_assert_gt(nb, 3);
	/* A reply from bucket 1's node at T0 + 10 min keeps it fresh. */
	cr_assert_eq(offer(t, km_table_bucket_entry(t, 1, 0)->c, KM_SEEN_REPLY,
			   T0 + KM_MINUTES(10)),
		     KM_OFFER_UPDATED);
	cr_assert_eq(km_table_next_refresh(t), due);
	cr_assert_eq(km_table_refresh_targets(t, due - 1, &rng, out, 200), 0);

	n = km_table_refresh_targets(t, due, &rng, out, 200);
	cr_assert_eq(n, (size_t)nb - 1);
	for (size_t i = 0; i < n; i++) {
		int cpl = km_id_cpl(&zero_id, &out[i]);
		int b = cpl < last ? cpl : last;

		cr_assert_gt(b, prev, "one target per bucket, in bucket order");
		cr_assert_neq(b, 1, "bucket 1 was touched 5 minutes ago");
		prev = b;
	}
	cr_assert_eq(km_table_refresh_targets(t, due, &rng, out, 200), 0,
		     "the buckets are marked refreshed");
	cr_assert_eq(km_table_next_refresh(t), T0 + KM_MINUTES(25));
	n = km_table_refresh_targets(t, T0 + KM_MINUTES(25), &rng, out, 200);
	cr_assert_eq(n, 1);
	cr_assert_eq(km_id_cpl(&zero_id, &out[0]), 1);
	cr_assert_eq(km_table_next_refresh(t), due + KM_MINUTES(15));

	cr_assert_eq(km_table_refresh_targets(t, due + KM_MINUTES(15), &rng, out, 2),
		     2, "at most max targets");
	km_table_del(t);
}

Test(table, refresh_targets_of_a_160_bucket_table_share_exactly_i_bits)
{
	struct km_table_config cfg;
	struct km_table *t;
	struct km_prng p;
	struct km_rng rng;
	struct km_id id, self, out[KM_ID_BITS];

	km_table_config_default(&cfg);
	cfg.k = 1;
	km_prng_seed(&p, 4);
	rng = km_prng_rng(&p);
	km_id_random(&rng, &self);
	t = km_table_new(&self, &cfg, T0);
	cr_assert_not_null(t);
	for (int i = 0; i < KM_ID_BITS; i++) {
		id = self;
		id.b[i / 8] ^= (uint8_t)(0x80 >> (i % 8));
		offer(t, contact(&id, 1), KM_SEEN_REPLY, T0);
	}
	cr_assert_eq(km_table_bucket_count(t), KM_ID_BITS);
	cr_assert_eq(km_table_refresh_targets(t, T0 + KM_MINUTES(15), &rng, out,
					      KM_ID_BITS),
		     KM_ID_BITS);
	for (int i = 0; i < KM_ID_BITS - 1; i++)
		cr_assert_eq(km_id_cpl(&self, &out[i]), i);
	cr_assert_geq(km_id_cpl(&self, &out[KM_ID_BITS - 1]), KM_ID_BITS - 1);
	km_table_del(t);
}

/* ---- closest, against brute force ----------------------------------- */

#define MANY 10000

struct many {
	struct km_table *t;
	struct km_id self;
	struct km_id ids[MANY];
	struct km_prng p;
	struct km_rng rng;
};

static struct many *fill_many(uint64_t seed)
{
	struct many *m = calloc(1, sizeof(*m));

	cr_assert_not_null(m);
	km_prng_seed(&m->p, seed);
	m->rng = km_prng_rng(&m->p);
	km_id_random(&m->rng, &m->self);
	m->t = km_table_new(&m->self, NULL, T0);
	cr_assert_not_null(m->t);
	for (int j = 0; j < MANY; j++) {
		km_id_random(&m->rng, &m->ids[j]);
		offer(m->t, contact(&m->ids[j], (uint16_t)(j + 1)), KM_SEEN_REPLY,
		      T0 + (km_ms)j);
	}
	cr_log_info("%d random nodes offered: %zu in the table, %d buckets",
		    MANY, km_table_size(m->t), km_table_bucket_count(m->t));
	return m;
}

static void many_free(struct many *m)
{
	km_table_del(m->t);
	free(m);
}

static size_t table_contents(const struct km_table *t, struct km_contact *out)
{
	size_t n = 0;

	for (int i = 0; i < km_table_bucket_count(t); i++)
		for (size_t j = 0; j < km_table_bucket_size(t, i); j++)
			out[n++] = km_table_bucket_entry(t, i, j)->c;
	return n;
}

static void sort_by_distance(struct km_contact *a, size_t n,
			     const struct km_id *target)
{
	for (size_t i = 1; i < n; i++) {
		struct km_contact x = a[i];
		size_t j = i;

		while (j > 0 && km_id_cmp_distance(target, &x.id, &a[j - 1].id) < 0) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = x;
	}
}

Test(table, closest_equals_a_brute_force_xor_sort_of_the_table)
{
	static const size_t ns[] = { 1, 3, 8, 20, 2000 };
	struct many *m = fill_many(42);
	size_t size = km_table_size(m->t);
	struct km_contact *all = calloc(size, sizeof(*all));
	struct km_contact *sorted = calloc(size, sizeof(*sorted));
	struct km_contact got[2000];
	struct km_id target;

	cr_assert_eq(table_contents(m->t, all), size);
	for (int q = 0; q < 1000; q++) {
		size_t want = ns[q % 5], n;

		/* Half uniform, half near self, where the deep buckets are. */
		km_id_random_with_prefix(&m->self,
					 q % 2 ? 0 : (int)km_rng_below(&m->rng, 24),
					 &m->rng, &target);
		memcpy(sorted, all, size * sizeof(*all));
		sort_by_distance(sorted, size, &target);
		n = km_table_closest(m->t, &target, want, got);
		cr_assert_eq(n, want < size ? want : size);
		for (size_t i = 0; i < n; i++) {
			const struct km_table_entry *e = km_table_find(m->t, &got[i].id);

			cr_assert_not_null(e);
			cr_assert(km_addr_eq(&e->c.addr, &got[i].addr));
			cr_assert(km_id_eq(&got[i].id, &sorted[i].id),
				  "query %d, n=%zu: rank %zu differs", q, want, i);
		}
	}
	cr_assert_eq(km_table_closest(m->t, &target, 0, got), 0);
	free(all);
	free(sorted);
	many_free(m);
}

/* What a reply carries: the asker, here the closest node to the target,
 * is left out and the next closest takes its place, so the answer still
 * holds n nodes the asker can use. */
Test(table, closest_served_leaves_the_asker_out_and_the_next_closest_takes_its_place)
{
	struct many *m = fill_many(44);
	size_t size = km_table_size(m->t);
	struct km_contact *all = calloc(size, sizeof(*all));
	struct km_contact got[8];

	cr_assert_eq(table_contents(m->t, all), size);
	for (size_t q = 0; q < size; q += 7) {
		struct km_id asker = all[q].id;
		struct km_contact sorted[9];
		size_t n;

		/* Checked against a brute-force sort by the test above. */
		n = km_table_closest_served(m->t, &asker, NULL, 9, sorted);
		cr_assert_eq(n, 9);
		cr_assert(km_id_eq(&sorted[0].id, &asker), "itself is closest");
		n = km_table_closest_served(m->t, &asker, &asker, 8, got);
		cr_assert_eq(n, 8);
		for (size_t i = 0; i < n; i++)
			cr_assert(km_id_eq(&got[i].id, &sorted[i + 1].id),
				  "asker %zu: rank %zu differs", q, i);
	}
	free(all);
	many_free(m);
}

Test(table, every_bucket_keeps_as_many_of_its_offered_nodes_as_it_can)
{
	struct many *m = fill_many(43);
	int last = km_table_bucket_count(m->t) - 1;
	size_t offered[KM_ID_BITS] = { 0 };

	for (int j = 0; j < MANY; j++) {
		int cpl = km_id_cpl(&m->self, &m->ids[j]);

		offered[cpl < last ? cpl : last]++;
	}
	for (int i = 0; i <= last; i++) {
		size_t want = offered[i] < 8 ? offered[i] : 8;

		cr_assert_eq(km_table_bucket_size(m->t, i), want,
			     "bucket %d: %zu offered", i, offered[i]);
	}
	cr_assert_eq(km_table_bucket_size(m->t, last), offered[last],
		     "the last bucket splits instead of turning nodes away");
	many_free(m);
}

/* ---- invariants under random operations ----------------------------- */

static void assert_consistent(const struct km_table *t, int k, int cap_repl,
			      size_t max_nodes)
{
	int last = km_table_bucket_count(t) - 1;
	size_t total = 0;

	for (int i = 0; i <= last; i++) {
		size_t n = km_table_bucket_size(t, i);

		cr_assert_leq(n, (size_t)k);
		cr_assert_leq(km_table_replacement_count(t, i), (size_t)cap_repl);
		if (n < (size_t)k && km_table_size(t) < max_nodes)
			cr_assert_eq(km_table_replacement_count(t, i), 0,
				     "bucket %d has room and a waiting node", i);
		for (size_t j = 0; j < n; j++) {
			const struct km_table_entry *e = km_table_bucket_entry(t, i, j);
			int cpl = km_id_cpl(km_table_self(t), &e->c.id);

			cr_assert(i == last ? cpl >= last : cpl == i);
			cr_assert_eq(km_table_find(t, &e->c.id), e, "no duplicates");
			if (j > 0)
				cr_assert_geq(e->last_seen,
					      km_table_bucket_entry(t, i, j - 1)->last_seen);
		}
		total += n;
	}
	cr_assert_eq(total, km_table_size(t));
	cr_assert_leq(total, max_nodes);
}

Test(table, random_operations_keep_the_table_consistent)
{
	struct km_table_config cfg;
	struct km_table *t;
	struct km_prng p;
	struct km_rng rng;
	struct km_id pool[300];
	km_ms now = T0;

	km_table_config_default(&cfg);
	cfg.k = 4;
	cfg.replacements = 2;
	cfg.max_nodes = 30;
	t = table_with(&cfg);
	km_prng_seed(&p, 5);
	rng = km_prng_rng(&p);
	for (int j = 0; j < 300; j++)
		km_id_random_with_prefix(&zero_id, (int)km_rng_below(&rng, 16),
					 &rng, &pool[j]);
	for (int step = 0; step < 20000; step++) {
		struct km_id *id = &pool[km_rng_below(&rng, 300)];
		uint64_t op = km_rng_below(&rng, 10);

		now += km_rng_below(&rng, 20000);
		if (op < 6)
			offer(t, contact(id, 7), op < 3 ? KM_SEEN_REPLY : KM_SEEN_QUERY,
			      now);
		else if (op < 9)
			km_table_on_failure(t, id, now);
		else
			km_table_remove(t, id);
		assert_consistent(t, 4, 2, 30);
	}
	km_table_del(t);
}

/* ---- maintenance order (km_table_next_stale) -------------------------- */

/* With k = 1 every offer to the full last bucket splits it: a node whose
 * ID has its top bit at position b lands in bucket b, so depth(b) gives
 * buckets 0..4, of which 2, 3 and 4 are the nearest three. */
static struct km_contact at_depth(int b)
{
	struct km_id id = { .b = { (uint8_t)(0x80 >> b) } };

	return contact(&id, (uint16_t)(2000 + b));
}

static struct km_table *five_buckets(km_ms revalidate_ms, km_ms far_ms)
{
	struct km_table_config cfg;
	struct km_table *t;

	km_table_config_default(&cfg);
	cfg.k = 1;
	cfg.revalidate_ms = revalidate_ms;
	cfg.revalidate_far_ms = far_ms;
	t = table_with(&cfg);
	for (int b = 0; b < 5; b++)
		cr_assert_eq(offer(t, at_depth(b), KM_SEEN_REPLY, T0 + (km_ms)b),
			     KM_OFFER_ADDED);
	cr_assert_eq(km_table_bucket_count(t), 5);
	return t;
}

Test(table, a_node_that_failed_a_query_is_pinged_first_even_while_good)
{
	struct km_table *t = full_far_bucket(NULL, KM_SEEN_REPLY);
	struct km_contact out;

	cr_assert_not(km_table_next_stale(t, T0 + 1000, &out),
		      "all good, none failed, none due for revalidation");
	km_table_on_failure(t, FAR(5), T0 + 1000);
	cr_assert(km_table_next_stale(t, T0 + 1001, &out));
	cr_assert(km_id_eq(&out.id, FAR(5)));
	cr_assert_not(km_table_next_stale(t, T0 + 1002, &out), "ping pending");
	/* The ping fails too: bad, and gone for the cached newcomer. */
	cr_assert_eq(offer(t, far(9), KM_SEEN_REPLY, T0 + 1500), KM_OFFER_CACHED);
	km_table_on_failure(t, FAR(5), T0 + 3000);
	cr_assert_null(km_table_find(t, FAR(5)));
	cr_assert_not_null(km_table_find(t, FAR(9)));
	km_table_del(t);
}

Test(table, a_failed_node_goes_before_questionable_ones)
{
	struct km_table *t = full_far_bucket(NULL, KM_SEEN_REPLY);
	km_ms later = T0 + KM_MINUTES(16); /* everyone is questionable */
	struct km_contact out;

	km_table_on_failure(t, FAR(7), later);
	cr_assert(km_table_next_stale(t, later, &out));
	cr_assert(km_id_eq(&out.id, FAR(7)));
	cr_assert(km_table_next_stale(t, later, &out));
	cr_assert(km_id_eq(&out.id, FAR(1)), "then the least recently seen");
	km_table_del(t);
}

Test(table, near_neighbours_are_revalidated_after_revalidate_ms_the_rest_after_revalidate_far_ms)
{
	struct km_table *t = five_buckets(KM_SECONDS(60), KM_MINUTES(2));
	struct km_contact out, d0 = at_depth(0), d1 = at_depth(1);
	struct km_contact d2 = at_depth(2), d3 = at_depth(3), d4 = at_depth(4);

	cr_assert_not(km_table_next_stale(t, T0 + KM_SECONDS(60) + 1, &out),
		      "depth 2 was last seen at T0 + 2");
	cr_assert(km_table_next_stale(t, T0 + KM_SECONDS(60) + 2, &out));
	cr_assert(km_id_eq(&out.id, &d2.id));
	cr_assert_not(km_table_next_stale(t, T0 + KM_SECONDS(60) + 2, &out));
	cr_assert(km_table_next_stale(t, T0 + KM_SECONDS(61), &out));
	cr_assert(km_id_eq(&out.id, &d3.id));
	cr_assert(km_table_next_stale(t, T0 + KM_SECONDS(61), &out));
	cr_assert(km_id_eq(&out.id, &d4.id));
	cr_assert_not(km_table_next_stale(t, T0 + KM_MINUTES(2) - 1, &out),
		      "buckets 0 and 1 wait revalidate_far_ms");
	cr_assert(km_table_next_stale(t, T0 + KM_MINUTES(2), &out));
	cr_assert(km_id_eq(&out.id, &d0.id));
	cr_assert_not(km_table_next_stale(t, T0 + KM_MINUTES(2), &out),
		      "depth 1 was last seen at T0 + 1");
	cr_assert(km_table_next_stale(t, T0 + KM_MINUTES(2) + 1, &out));
	cr_assert(km_id_eq(&out.id, &d1.id));
	/* An answer resets the clock. */
	cr_assert_eq(km_table_offer(t, &d3, KM_SEEN_REPLY, 30, T0 + KM_MINUTES(3),
				    NULL),
		     KM_OFFER_UPDATED);
	cr_assert_not(km_table_next_stale(t, T0 + KM_MINUTES(4) - 1, &out));
	cr_assert(km_table_next_stale(t, T0 + KM_MINUTES(4), &out));
	cr_assert(km_id_eq(&out.id, &d3.id));
	km_table_del(t);
}

Test(table, revalidation_periods_of_0_turn_revalidation_off)
{
	struct km_table *t = five_buckets(0, 0);
	struct km_contact out;

	cr_assert_not(km_table_next_stale(t, T0 + KM_MINUTES(14), &out));
	km_table_del(t);
}

Test(table, a_failure_within_the_grace_after_a_reply_is_not_counted)
{
	struct km_table_config cfg;
	struct km_table *t;

	km_table_config_default(&cfg);
	cr_assert_eq(cfg.failure_grace_ms, 0, "off by default: km_dht sets it");
	cfg.failure_grace_ms = 2000;
	t = full_far_bucket(&cfg, KM_SEEN_REPLY); /* replies at T0 */
	km_table_on_failure(t, FAR(3), T0 + 1999);
	cr_assert_eq(km_table_find(t, FAR(3))->failures, 0,
		     "the query went out before the reply at T0");
	km_table_on_failure(t, FAR(3), T0 + 2000);
	cr_assert_eq(km_table_find(t, FAR(3))->failures, 1);
	km_table_on_failure(t, FAR(3), T0 + 3000);
	cr_assert_eq(km_table_state(t, km_table_find(t, FAR(3)), T0 + 3000),
		     KM_ENTRY_BAD);
	km_table_del(t);
}
