/* The connection manager's policy, with literal timestamps and a seeded
 * random source: whom it dials, whom it refuses, which of two links to one
 * node survives, and when it tries again. */
#include <criterion/criterion.h>
#include <string.h>

#include "dht/id.h"
#include "net/connmgr.h"
#include "proto/err.h"

static struct km_prng prng;
static struct km_rng rng;
static struct km_id self; /* all zero */

static void setup(void)
{
	km_prng_seed(&prng, 5);
	rng = km_prng_rng(&prng);
	memset(&self, 0, sizeof(self));
}

TestSuite(connmgr, .init = setup);

static struct km_id id_with(uint8_t first, uint8_t last)
{
	struct km_id id;

	memset(&id, 0, sizeof(id));
	id.b[0] = first;
	id.b[19] = last;
	return id;
}

static struct km_addr ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	struct km_addr addr;
	uint8_t ip[4] = { a, b, c, d };

	km_addr_set_v4(&addr, ip, 6881);
	return addr;
}

static void add(struct km_table *t, const struct km_id *id,
		const struct km_addr *addr, km_ms now)
{
	struct km_contact c = { .id = *id, .addr = *addr }, ping;

	cr_assert_eq(km_table_offer(t, &c, KM_SEEN_REPLY, 10, now, &ping),
		     KM_OFFER_ADDED);
}

static struct km_connmgr *cm_new(size_t max_out, size_t max_in)
{
	struct km_connmgr_config cfg;

	km_connmgr_config_default(&cfg);
	cfg.max_out = max_out;
	cfg.max_in = max_in;
	return km_connmgr_new(&self, &cfg, &rng);
}

/* Dials everything the manager asks for; returns how many. */
static size_t dial_all(struct km_connmgr *cm, const struct km_table *t,
		       km_ms now, uint64_t *next_conn, struct km_contact *out)
{
	struct km_contact c;
	size_t n = 0;

	while (km_connmgr_next_dial(cm, t, now, &c)) {
		cr_assert_eq(km_connmgr_opened(cm, (*next_conn)++, &c.addr, true,
					       &c.id, now), 0);
		if (out)
			out[n] = c;
		n++;
	}
	return n;
}

Test(connmgr, dials_go_to_distinct_subnets_before_a_second_one_in_a_subnet)
{
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_connmgr *cm = cm_new(3, 8);
	struct km_contact got[8];
	uint64_t conn = 1;

	/* Five nodes in 10.0.0.0/24, one each in two other /24s. */
	for (uint8_t i = 0; i < 5; i++) {
		struct km_id id = id_with(0x80, i + 1);
		struct km_addr a = ip4(10, 0, 0, i + 1);

		add(t, &id, &a, 1);
	}
	for (uint8_t i = 0; i < 2; i++) {
		struct km_id id = id_with(0x80, i + 10);
		struct km_addr a = ip4(10, 0, i + 1, 1);

		add(t, &id, &a, 1);
	}
	cr_assert_eq(dial_all(cm, t, 100, &conn, got), 3, "max_out is 3");
	for (size_t i = 0; i < 3; i++)
		for (size_t j = i + 1; j < 3; j++)
			cr_assert(memcmp(got[i].addr.ip, got[j].addr.ip, 3) != 0,
				  "two dials into one /24");
	cr_assert_eq(km_connmgr_counts(cm).pending_out, 3);
	cr_assert_eq(km_connmgr_wake(cm), 0, "outbound is full");
	km_connmgr_del(cm);
	km_table_del(t);
}

Test(connmgr, dials_spread_over_buckets_when_every_node_shares_a_subnet)
{
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_connmgr *cm = cm_new(4, 8);
	struct km_contact got[8];
	uint64_t conn = 1;
	int per_bucket[3] = { 0 };

	/* Eight nodes at XOR distance 1xxx (bucket 0), eight at 01xx
	 * (bucket 1), two at 001x: the table splits into three buckets. */
	for (uint8_t i = 0; i < 18; i++) {
		uint8_t first = i < 8 ? 0x80 : i < 16 ? 0x40 : 0x20;
		struct km_id id = id_with(first, i + 1);
		struct km_addr a = ip4(127, 0, 0, 1);

		a.port = (uint16_t)(7000 + i);
		add(t, &id, &a, 1);
	}
	cr_assert_eq(km_table_bucket_count(t), 3);
	cr_assert_eq(dial_all(cm, t, 100, &conn, got), 4);
	for (size_t i = 0; i < 4; i++)
		per_bucket[km_id_cpl(&self, &got[i].id) < 2 ?
			   km_id_cpl(&self, &got[i].id) : 2]++;
	for (int b = 0; b < 3; b++)
		cr_assert(per_bucket[b] >= 1 && per_bucket[b] <= 2,
			  "bucket %d got %d of 4 dials", b, per_bucket[b]);
	km_connmgr_del(cm);
	km_table_del(t);
}

Test(connmgr, inbound_links_from_one_ip_are_capped_except_on_loopback)
{
	struct km_connmgr *cm = cm_new(8, 32);
	struct km_addr remote = ip4(192, 0, 2, 7), lo = ip4(127, 0, 0, 1);
	struct km_connmgr_config cfg;
	uint64_t conn = 1;

	for (int i = 0; i < 4; i++)
		cr_assert_eq(km_connmgr_opened(cm, conn++, &remote, false, NULL, 1), 0);
	cr_assert_eq(km_connmgr_opened(cm, conn++, &remote, false, NULL, 1),
		     KM_ERR_FULL, "the fifth from one IP");
	for (int i = 0; i < 20; i++)
		cr_assert_eq(km_connmgr_opened(cm, conn++, &lo, false, NULL, 1), 0);
	cr_assert_eq(km_connmgr_counts(cm).refused_ip, 1);
	km_connmgr_del(cm);

	km_connmgr_config_default(&cfg);
	cfg.max_per_ip = 2;
	cfg.cap_loopback = true;
	cm = km_connmgr_new(&self, &cfg, &rng);
	cr_assert_eq(km_connmgr_opened(cm, 1, &lo, false, NULL, 1), 0);
	cr_assert_eq(km_connmgr_opened(cm, 2, &lo, false, NULL, 1), 0);
	cr_assert_eq(km_connmgr_opened(cm, 3, &lo, false, NULL, 1), KM_ERR_FULL);
	km_connmgr_closed(cm, 1, 2);
	cr_assert_eq(km_connmgr_opened(cm, 4, &lo, false, NULL, 2), 0,
		     "a closed link frees its slot");
	km_connmgr_del(cm);
}

/* Opens an inbound link from addr and completes its HELLO. */
static enum km_cm_verdict inbound(struct km_connmgr *cm, uint64_t conn,
				  struct km_addr addr, uint8_t id_byte, km_ms now,
				  uint64_t *other)
{
	struct km_id id = id_with(0x80, id_byte);

	cr_assert_eq(km_connmgr_opened(cm, conn, &addr, false, NULL, now), 0);
	return km_connmgr_hello(cm, conn, &id, now, other);
}

Test(connmgr, a_full_inbound_set_answers_full_and_never_exceeds_max_in)
{
	struct km_connmgr *cm = cm_new(8, 3);
	uint64_t other = 0;

	for (uint8_t i = 1; i <= 3; i++)
		cr_assert_eq(inbound(cm, i, ip4(127, 0, 0, 1), i, 1000, &other),
			     KM_CM_ACCEPT);
	cr_assert_eq(inbound(cm, 4, ip4(127, 0, 0, 1), 4, 1000, &other),
		     KM_CM_FULL, "same /24 as everyone: no eviction");
	cr_assert_eq(km_connmgr_counts(cm).in, 3);
	cr_assert(km_connmgr_closed(cm, 2, 1100));
	km_connmgr_closed(cm, 4, 1100);
	cr_assert_eq(inbound(cm, 5, ip4(127, 0, 0, 1), 5, 1200, &other),
		     KM_CM_ACCEPT, "a slot freed up");
	km_connmgr_del(cm);
}

Test(connmgr, a_newcomer_from_a_new_subnet_evicts_the_youngest_of_a_crowd)
{
	struct km_connmgr *cm = cm_new(8, 3);
	uint64_t other = 0;

	cr_assert_eq(inbound(cm, 1, ip4(10, 0, 0, 1), 1, 1000, &other), KM_CM_ACCEPT);
	cr_assert_eq(inbound(cm, 2, ip4(10, 0, 0, 2), 2, 2000, &other), KM_CM_ACCEPT);
	cr_assert_eq(inbound(cm, 3, ip4(10, 9, 0, 1), 3, 3000, &other), KM_CM_ACCEPT);
	cr_assert_eq(inbound(cm, 4, ip4(172, 16, 0, 1), 4, 4000, &other),
		     KM_CM_EVICT);
	cr_assert_eq(other, 2, "the youngest in the crowded 10.0.0/24");
	km_connmgr_closed(cm, 2, 4000);
	cr_assert_eq(km_connmgr_counts(cm).in, 3);
	km_connmgr_del(cm);
}

Test(connmgr, long_lived_neighbours_are_protected_from_eviction)
{
	struct km_connmgr *cm = cm_new(8, 2);
	uint64_t other = 0;

	cr_assert_eq(inbound(cm, 1, ip4(10, 0, 0, 1), 1, 1000, &other), KM_CM_ACCEPT);
	cr_assert_eq(inbound(cm, 2, ip4(10, 0, 0, 2), 2, 1000, &other), KM_CM_ACCEPT);
	/* Both have been up for 60 s: a newcomer from anywhere is FULL. */
	cr_assert_eq(inbound(cm, 3, ip4(172, 16, 0, 1), 3, 61000, &other),
		     KM_CM_FULL);
	cr_assert_eq(km_connmgr_counts(cm).evicted, 0);
	km_connmgr_del(cm);
}

/* Two managers, a (ID 0x10..) and b (ID 0x80..), dial each other at once. */
Test(connmgr, of_two_simultaneous_links_both_ends_keep_the_one_the_lower_id_opened)
{
	struct km_id ida = id_with(0x10, 0), idb = id_with(0x80, 0);
	struct km_connmgr_config cfg;
	struct km_connmgr *a, *b;
	struct km_addr addr = ip4(127, 0, 0, 1);
	uint64_t other = 0;

	km_connmgr_config_default(&cfg);
	a = km_connmgr_new(&ida, &cfg, &rng);
	b = km_connmgr_new(&idb, &cfg, &rng);
	/* Link 1: a -> b; link 2: b -> a.  Each end names them 1 and 2. */
	km_connmgr_opened(a, 1, &addr, true, &idb, 10);
	km_connmgr_opened(b, 1, &addr, false, NULL, 10);
	km_connmgr_opened(b, 2, &addr, true, &ida, 10);
	km_connmgr_opened(a, 2, &addr, false, NULL, 10);
	/* a hears on its inbound link first, b on its outbound link first. */
	cr_assert_eq(km_connmgr_hello(a, 2, &idb, 20, &other), KM_CM_ACCEPT);
	cr_assert_eq(km_connmgr_hello(a, 1, &idb, 21, &other), KM_CM_REPLACE);
	cr_assert_eq(other, 2, "a drops the link b opened");
	cr_assert_eq(km_connmgr_hello(b, 2, &ida, 20, &other), KM_CM_ACCEPT);
	cr_assert_eq(km_connmgr_hello(b, 1, &ida, 21, &other), KM_CM_REPLACE);
	cr_assert_eq(other, 2, "b drops the link it opened itself");
	km_connmgr_closed(a, 2, 22);
	km_connmgr_closed(b, 2, 22);
	cr_assert(km_connmgr_is_neighbour(a, 1) && km_connmgr_is_neighbour(b, 1));
	/* A third link from b is a plain duplicate. */
	km_connmgr_opened(a, 3, &addr, false, NULL, 30);
	cr_assert_eq(km_connmgr_hello(a, 3, &idb, 30, &other), KM_CM_DUPLICATE);
	km_connmgr_del(a);
	km_connmgr_del(b);
}

Test(connmgr, a_failed_dial_is_retried_only_after_its_backoff)
{
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_connmgr *cm = cm_new(1, 8);
	struct km_id id = id_with(0x80, 1);
	struct km_addr a = ip4(10, 0, 0, 1);
	struct km_contact c;
	km_ms t_retry = 0;
	uint64_t conn = 1;

	add(t, &id, &a, 1);
	cr_assert_eq(dial_all(cm, t, 1000, &conn, NULL), 1);
	km_connmgr_closed(cm, 1, 1000); /* connection refused */
	/* The base is 2 s, jittered to 1-3 s. */
	for (km_ms now = 1000; now <= 5000; now += 10) {
		if (km_connmgr_next_dial(cm, t, now, &c)) {
			t_retry = now;
			break;
		}
	}
	cr_assert(t_retry >= 2000 && t_retry <= 4010, "retried at %llu",
		  (unsigned long long)t_retry);
	km_connmgr_del(cm);
	km_table_del(t);
}

Test(connmgr, backoff_doubles_up_to_its_cap_with_half_to_one_and_a_half_jitter)
{
	struct km_connmgr_config cfg;

	km_connmgr_config_default(&cfg);
	for (int f = 1; f <= 20; f++) {
		km_ms base = cfg.backoff_base_ms << (f - 1 < 10 ? f - 1 : 10);

		if (base > cfg.backoff_max_ms)
			base = cfg.backoff_max_ms;
		for (int i = 0; i < 50; i++) {
			km_ms d = km_connmgr_backoff(&cfg, f, &rng);

			cr_assert(d >= base / 2 && d < base + base / 2,
				  "failure %d: %llu ms", f, (unsigned long long)d);
		}
	}
}

Test(connmgr, a_lost_neighbour_makes_the_next_dial_due_at_once)
{
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_connmgr *cm = cm_new(2, 8);
	uint64_t conn = 1, other;
	struct km_contact c;

	for (uint8_t i = 0; i < 3; i++) {
		struct km_id id = id_with(0x80, i + 1);
		struct km_addr a = ip4(10, 0, i, 1);

		add(t, &id, &a, 1);
	}
	cr_assert_eq(dial_all(cm, t, 1000, &conn, NULL), 2);
	for (uint64_t i = 1; i <= 2; i++) {
		struct km_id id = id_with(0x80, (uint8_t)i);

		cr_assert_eq(km_connmgr_hello(cm, i, &id, 1000, &other), KM_CM_ACCEPT);
	}
	cr_assert_eq(km_connmgr_counts(cm).out, 2);
	cr_assert(!km_connmgr_next_dial(cm, t, 1001, &c));
	cr_assert(km_connmgr_closed(cm, 1, 1500));
	cr_assert(km_connmgr_next_dial(cm, t, 1500, &c));
	cr_assert_eq(c.id.b[19], 3, "the one node not linked and not backing off");
	km_connmgr_del(cm);
	km_table_del(t);
}

/* Every joiner dials its seed by address.  Kept as a neighbour, that link
 * made the seed everyone's: in a 20-node swarm it had 19 inbound links and
 * could dial no one, and its slots went to the first joiners, not to the
 * picks of the table that spread links over buckets and subnets. */
Test(connmgr, a_seed_dialled_by_address_is_a_way_in_and_may_be_picked_later)
{
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_connmgr *cm = cm_new(8, 8);
	struct km_id seed = id_with(0x80, 1);
	struct km_addr a = ip4(10, 0, 0, 1);
	struct km_contact c;
	uint64_t other;

	cr_assert_eq(km_connmgr_opened(cm, 1, &a, true, NULL, 1000), 0);
	cr_assert_eq(km_connmgr_hello(cm, 1, &seed, 1000, &other),
		     KM_CM_JOIN_ONLY, "outbound slots are free, yet the seed "
		     "link ends after its PEER_LIST");
	cr_assert_eq(km_connmgr_counts(cm).out, 0);
	cr_assert(!km_connmgr_closed(cm, 1, 1010));
	add(t, &seed, &a, 1010);
	cr_assert(km_connmgr_next_dial(cm, t, 1010, &c),
		  "leaving a seed after the join is no failure to back off");
	cr_assert(km_id_eq(&c.id, &seed));
	km_connmgr_del(cm);
	km_table_del(t);
}

/* A joiner whose full bucket left its seed in the replacement cache, and
 * whose table holds only nodes that refuse it (--max-in 0), must still
 * reach the seed: in tools/bench/neighbour-mem one client of 20 never did. */
Test(connmgr, when_every_table_entry_is_backing_off_the_replacements_are_tried)
{
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_connmgr *cm = cm_new(1, 8);
	struct km_contact c, ping, seed = { .id = id_with(0x80, 99) };
	uint64_t conn = 1, other;
	bool seed_dialled = false;

	for (uint8_t i = 0; i < 8; i++) {
		struct km_id id = id_with(0x80, i + 1);
		struct km_addr a = ip4(10, 0, i, 1);

		add(t, &id, &a, 1);
	}
	seed.addr = ip4(10, 9, 0, 1);
	cr_assert_eq(km_table_offer(t, &seed, KM_SEEN_REPLY, 10, 1, &ping),
		     KM_OFFER_CACHED, "bucket 0 is full");
	for (km_ms now = 1000; now < 20000 && !seed_dialled; now += 100) {
		if (!km_connmgr_next_dial(cm, t, now, &c))
			continue;
		seed_dialled = km_id_eq(&c.id, &seed.id);
		cr_assert_eq(km_connmgr_opened(cm, conn, &c.addr, true, &c.id,
					       now), 0);
		cr_assert_eq(km_connmgr_hello(cm, conn, &c.id, now, &other),
			     KM_CM_ACCEPT);
		km_connmgr_closed(cm, conn++, now); /* GOODBYE FULL */
	}
	cr_assert(seed_dialled, "the seed in the replacement cache was never "
		  "dialled");
	km_connmgr_del(cm);
	km_table_del(t);
}

/* Opens an inbound link from addr and hands it a HELLO from id. */
static enum km_cm_verdict inbound_hello(struct km_connmgr *cm, uint64_t conn,
					struct km_addr addr, uint8_t id_last,
					km_ms now)
{
	struct km_id id = id_with(0x40, id_last);
	uint64_t other;

	cr_assert_eq(km_connmgr_opened(cm, conn, &addr, false, NULL, now), 0);
	return km_connmgr_hello(cm, conn, &id, now, &other);
}

Test(connmgr, neighbours_per_16_are_capped_inbound_and_outbound)
{
	struct km_connmgr_config cfg;
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_connmgr *cm;
	struct km_contact got[4];
	uint64_t conn = 100;

	km_connmgr_config_default(&cfg);
	cfg.max_per_16 = 2;
	cfg.max_out = 4;
	cm = km_connmgr_new(&self, &cfg, &rng);
	cr_assert_eq(inbound_hello(cm, 1, ip4(10, 1, 0, 1), 1, 1000), KM_CM_ACCEPT);
	cr_assert_eq(inbound_hello(cm, 2, ip4(10, 1, 9, 2), 2, 1000), KM_CM_ACCEPT);
	cr_assert_eq(inbound_hello(cm, 3, ip4(10, 1, 200, 3), 3, 1000), KM_CM_FULL);
	cr_assert_eq(inbound_hello(cm, 4, ip4(10, 2, 0, 1), 4, 1000), KM_CM_ACCEPT);
	cr_assert_eq(km_connmgr_counts(cm).refused_subnet, 1);
	/* The table offers 10.1/16 (full) and one node elsewhere. */
	for (uint8_t i = 0; i < 3; i++) {
		struct km_id id = id_with(0x80, i + 1);
		struct km_addr a = ip4(10, 1, 50 + i, 1);

		add(t, &id, &a, 1000);
	}
	{
		struct km_id id = id_with(0x81, 9);
		struct km_addr a = ip4(10, 3, 0, 1);

		add(t, &id, &a, 1000);
	}
	cr_assert_eq(dial_all(cm, t, 1000, &conn, got), 1);
	cr_assert_eq(got[0].addr.ip[1], 3, "never a third in 10.1/16");
	km_connmgr_del(cm);
	km_table_del(t);
}

Test(connmgr, old_nodes_take_the_anchor_slots_before_fresh_ones)
{
	struct km_connmgr_config cfg;
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_connmgr *cm;
	struct km_contact got[8];
	km_ms now = KM_MINUTES(30);
	uint64_t conn = 1, other;
	size_t old = 0;

	km_connmgr_config_default(&cfg);
	cfg.max_out = 4;
	cm = km_connmgr_new(&self, &cfg, &rng);
	/* Two old nodes sharing one /24, six fresh ones in six /24s. */
	for (uint8_t i = 0; i < 2; i++) {
		struct km_id id = id_with(0x80, i + 1);
		struct km_addr a = ip4(10, 9, 9, i + 1);

		add(t, &id, &a, 1000);
	}
	for (uint8_t i = 0; i < 6; i++) {
		struct km_id id = id_with(0x80 | (uint8_t)(i << 2), i + 10);
		struct km_addr a = ip4(10, 20 + i, 0, 1);

		add(t, &id, &a, now - KM_MINUTES(1));
	}
	cr_assert_eq(dial_all(cm, t, now, &conn, got), 4);
	cr_assert_eq(got[0].addr.ip[1], 9, "the first dial is an anchor");
	cr_assert_eq(got[1].addr.ip[1], 9, "and so is the second, group or not");
	for (size_t i = 0; i < 4; i++) {
		old += got[i].addr.ip[1] == 9;
		cr_assert_eq(km_connmgr_hello(cm, i + 1, &got[i].id, now, &other),
			     KM_CM_ACCEPT);
	}
	cr_assert_eq(old, 2, "then diversity again");
	cr_assert_eq(km_connmgr_counts(cm).anchors, 2);
	km_connmgr_del(cm);
	km_table_del(t);
}

/* A private node learned from rendezvous link via. */
static void private_add(struct km_connmgr *cm, uint8_t first, uint64_t via,
			km_ms now)
{
	struct km_contact c = { .id = id_with(first, 1),
				.addr = ip4(198, 51, 100, first) };

	km_connmgr_private_add(cm, &c, via, now);
}

/* Lets next_dial look at the (empty) table, so the manager knows it has
 * no one else to dial. */
static void table_dry(struct km_connmgr *cm, struct km_table *t, km_ms now)
{
	struct km_contact c;

	cr_assert_not(km_connmgr_next_dial(cm, t, now, &c));
}

Test(connmgr, a_private_node_is_punched_to_only_when_the_table_has_no_one_left)
{
	struct km_connmgr *cm = cm_new(8, 8);
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_contact c;
	uint64_t via = 0;

	private_add(cm, 0x40, 77, 1000);
	cr_assert_not(km_connmgr_next_punch(cm, true, 1000, &c, &via),
		      "the table has not been looked at yet");
	table_dry(cm, t, 1000);
	cr_assert(km_connmgr_next_punch(cm, true, 1000, &c, &via));
	cr_assert(km_id_eq(&c.id, &(struct km_id){ .b = { 0x40, [19] = 1 } }));
	cr_assert_eq(via, 77);
	cr_assert_eq(km_connmgr_counts(cm).punch_asks, 1);
	km_table_del(t);
	km_connmgr_del(cm);
}

Test(connmgr, asks_back_off_and_stop_once_the_node_is_linked)
{
	struct km_connmgr *cm = cm_new(8, 8);
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_contact c;
	uint64_t via;

	private_add(cm, 0x40, 77, 1000);
	table_dry(cm, t, 1000);
	cr_assert(km_connmgr_next_punch(cm, true, 1000, &c, &via));
	cr_assert_not(km_connmgr_next_punch(cm, true, 1000 + KM_SECONDS(29), &c, &via));
	cr_assert(km_connmgr_next_punch(cm, true, 1000 + KM_SECONDS(30), &c, &via));
	/* The second ask waits twice as long. */
	cr_assert_not(km_connmgr_next_punch(cm, true, 1000 + KM_SECONDS(89), &c, &via));
	cr_assert_eq(km_connmgr_opened(cm, 5, &c.addr, true, &c.id,
				       1000 + KM_SECONDS(89)), 0);
	cr_assert_not(km_connmgr_next_punch(cm, true, 1000 + KM_SECONDS(95), &c, &via),
		      "linked: nothing to punch");
	km_table_del(t);
	km_connmgr_del(cm);
}

Test(connmgr, of_two_private_nodes_only_the_lower_id_asks)
{
	struct km_connmgr *cm;
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_contact c;
	uint64_t via;

	self.b[0] = 0x50;
	cm = cm_new(8, 8);
	private_add(cm, 0x40, 77, 1000);
	table_dry(cm, t, 1000);
	cr_assert_not(km_connmgr_next_punch(cm, true, 1000, &c, &via));
	cr_assert(km_connmgr_next_punch(cm, false, 1000, &c, &via));
	km_table_del(t);
	km_connmgr_del(cm);
}

Test(connmgr, private_nodes_are_forgotten_with_their_rendezvous_and_capped)
{
	struct km_connmgr *cm = cm_new(8, 8);
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_addr r = ip4(203, 0, 113, 2);
	struct km_contact c;
	uint64_t via;

	cr_assert_eq(km_connmgr_opened(cm, 77, &r, true, NULL, 1000), 0);
	private_add(cm, 0x40, 77, 1000);
	cr_assert_eq(km_connmgr_counts(cm).privates, 1);
	km_connmgr_closed(cm, 77, 1001);
	cr_assert_eq(km_connmgr_counts(cm).privates, 0);
	table_dry(cm, t, 1001);
	cr_assert_not(km_connmgr_next_punch(cm, true, 1001, &c, &via));
	for (int i = 0; i < 3 * KM_CM_PRIVATE_MAX; i++)
		private_add(cm, (uint8_t)(i + 1), 78, 2000 + (km_ms)i);
	cr_assert_eq(km_connmgr_counts(cm).privates, KM_CM_PRIVATE_MAX);
	km_table_del(t);
	km_connmgr_del(cm);
}

Test(connmgr, unanswered_asks_count_against_max_out)
{
	struct km_connmgr *cm = cm_new(2, 8);
	struct km_table *t = km_table_new(&self, NULL, 1);
	struct km_contact c;
	uint64_t via;

	for (uint8_t i = 1; i <= 4; i++)
		private_add(cm, (uint8_t)(0x40 + i), 77, 1000);
	table_dry(cm, t, 1000);
	cr_assert(km_connmgr_next_punch(cm, true, 1000, &c, &via));
	cr_assert(km_connmgr_next_punch(cm, true, 1000, &c, &via));
	cr_assert_not(km_connmgr_next_punch(cm, true, 1000, &c, &via));
	km_table_del(t);
	km_connmgr_del(cm);
}
