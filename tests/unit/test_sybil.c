/* Eclipse and Sybil resistance in the routing table: subnet caps and
 * BEP 42 node IDs. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <string.h>

#include "dht/bep42.h"
#include "dht/table.h"

#define T0 ((km_ms)1000)

static const struct km_id zero_id;

static struct km_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	struct km_addr addr;
	uint8_t ip[4] = { a, b, c, d };

	km_addr_set_v4(&addr, ip, 6881);
	return addr;
}

static struct km_table *strict_table(void)
{
	struct km_table_config cfg;
	struct km_table *t;

	km_table_config_default(&cfg);
	cfg.strict_subnets = true;
	t = km_table_new(&zero_id, &cfg, T0);
	cr_assert_not_null(t);
	return t;
}

static struct km_id id_from(struct km_prng *p)
{
	struct km_id id;
	struct km_rng rng = km_prng_rng(p);

	km_id_random(&rng, &id);
	return id;
}

/* Entries, nodes and replacements, whose IP starts with a.b.c. */
static size_t held_from(const struct km_table *t, uint8_t a, uint8_t b,
			uint8_t c)
{
	struct km_addr net = v4(a, b, c, 0);
	size_t n = 0;

	for (int i = 0; i < km_table_bucket_count(t); i++)
		for (size_t j = 0; j < km_table_bucket_size(t, i); j++)
			n += km_addr_same_subnet(&km_table_bucket_entry(t, i, j)->c.addr,
						 &net);
	return n;
}

Test(sybil, a_thousand_ids_from_one_slash_24_get_at_most_ten_entries)
{
	struct km_table *t = strict_table();
	struct km_prng p;
	int added = 0;

	km_prng_seed(&p, 1);
	for (int i = 0; i < 1000; i++) {
		struct km_contact c = { .id = id_from(&p),
					.addr = v4(127, 0, 0, (uint8_t)i) };

		c.addr.port = (uint16_t)(1000 + i);
		added += km_table_offer(t, &c, KM_SEEN_REPLY, 10, T0 + (km_ms)i,
					NULL) == KM_OFFER_ADDED;
	}
	cr_expect_leq(added, 10);
	cr_expect_leq(held_from(t, 127, 0, 0), 10);
	cr_expect_geq(held_from(t, 127, 0, 0), 1, "the cap is a cap, not a ban");
	cr_log_info("sybil: %d of 1000 admitted, %zu held", added,
		    held_from(t, 127, 0, 0));
	cr_expect_geq(km_table_stats(t).rejected_subnet, 980);
	km_table_del(t);
}

Test(sybil, a_bucket_holds_at_most_two_nodes_from_one_slash_24)
{
	struct km_table *t = strict_table();

	for (int i = 0; i < 8; i++) {
		struct km_contact c = { .id = { .b = { 0x80, [19] = (uint8_t)i } },
					.addr = v4(203, 0, 113, (uint8_t)i) };

		km_table_offer(t, &c, KM_SEEN_REPLY, 10, T0, NULL);
	}
	cr_expect_eq(km_table_bucket_size(t, 0), 2);
	cr_expect_eq(km_table_stats(t).rejected_subnet, 6);
	km_table_del(t);
}

Test(sybil, other_subnets_still_fill_the_bucket)
{
	struct km_table *t = strict_table();

	for (int i = 0; i < 8; i++) {
		struct km_contact c = { .id = { .b = { 0x80, [19] = (uint8_t)i } },
					.addr = v4(203, 0, (uint8_t)i, 1) };

		cr_expect_eq(km_table_offer(t, &c, KM_SEEN_REPLY, 10, T0, NULL),
			     KM_OFFER_ADDED);
	}
	km_table_del(t);
}

Test(sybil, loopback_and_private_addresses_are_exempt_by_default)
{
	struct km_table *t = km_table_new(&zero_id, NULL, T0);
	struct km_prng p;

	km_prng_seed(&p, 2);
	for (int i = 0; i < 100; i++) {
		struct km_contact c = { .id = id_from(&p),
					.addr = v4(127, 0, 0, 1) };

		c.addr.port = (uint16_t)(1000 + i);
		km_table_offer(t, &c, KM_SEEN_REPLY, 10, T0, NULL);
	}
	cr_expect_gt(km_table_size(t), 10);
	cr_expect_eq(km_table_stats(t).rejected_subnet, 0);
	km_table_del(t);
}

Test(sybil, a_bad_node_cannot_move_into_a_full_subnet)
{
	struct km_table *t = strict_table();
	struct km_contact a = { .id = { .b = { 0x80, [19] = 1 } },
				.addr = v4(203, 0, 113, 1) };
	struct km_contact b = { .id = { .b = { 0x80, [19] = 2 } },
				.addr = v4(203, 0, 113, 2) };
	struct km_contact c = { .id = { .b = { 0x80, [19] = 3 } },
				.addr = v4(198, 51, 100, 3) };

	km_table_offer(t, &a, KM_SEEN_REPLY, 10, T0, NULL);
	km_table_offer(t, &b, KM_SEEN_REPLY, 10, T0, NULL);
	km_table_offer(t, &c, KM_SEEN_REPLY, 10, T0, NULL);
	km_table_on_failure(t, &c.id, T0 + 1);
	km_table_on_failure(t, &c.id, T0 + 2);
	c.addr = v4(203, 0, 113, 3);
	cr_expect_eq(km_table_offer(t, &c, KM_SEEN_REPLY, 10, T0 + 3, NULL),
		     KM_OFFER_REJECTED);
	km_table_del(t);
}

/* The examples in BEP 42: IP, rand, and the ID prefix (21 bits) and last
 * byte a conforming node uses. */
static const struct {
	uint8_t ip[4];
	uint8_t rand;
	uint8_t prefix[3];
} bep42_vectors[] = {
	{ { 124, 31, 75, 21 }, 1, { 0x5f, 0xbf, 0xbf } },
	{ { 21, 75, 31, 124 }, 86, { 0x5a, 0x3c, 0xe9 } },
	{ { 65, 23, 51, 170 }, 22, { 0xa5, 0xd4, 0x32 } },
	{ { 84, 124, 73, 14 }, 65, { 0x1b, 0x03, 0x21 } },
	{ { 43, 213, 53, 83 }, 90, { 0xe5, 0x6f, 0x6c } },
};

Test(bep42, generated_ids_match_the_examples_in_the_bep)
{
	struct km_prng p;
	struct km_rng rng;

	km_prng_seed(&p, 3);
	rng = km_prng_rng(&p);
	for (size_t i = 0; i < sizeof(bep42_vectors) / sizeof(bep42_vectors[0]); i++) {
		struct km_addr a;
		struct km_id id;

		km_addr_set_v4(&a, bep42_vectors[i].ip, 1);
		km_bep42_make_id(&a, bep42_vectors[i].rand, &rng, &id);
		cr_expect_eq(id.b[0], bep42_vectors[i].prefix[0], "vector %zu", i);
		cr_expect_eq(id.b[1], bep42_vectors[i].prefix[1], "vector %zu", i);
		cr_expect_eq(id.b[2] & 0xf8, bep42_vectors[i].prefix[2] & 0xf8,
			     "vector %zu", i);
		cr_expect_eq(id.b[19] & 7, bep42_vectors[i].rand & 7);
		cr_expect(km_bep42_id_valid(&id, &a), "vector %zu", i);
	}
}

Test(bep42, the_example_ids_verify_and_a_changed_prefix_does_not)
{
	for (size_t i = 0; i < sizeof(bep42_vectors) / sizeof(bep42_vectors[0]); i++) {
		struct km_addr a;
		struct km_id id = { .b = { bep42_vectors[i].prefix[0],
					   bep42_vectors[i].prefix[1],
					   bep42_vectors[i].prefix[2] } };

		id.b[19] = bep42_vectors[i].rand;
		km_addr_set_v4(&a, bep42_vectors[i].ip, 1);
		cr_expect(km_bep42_id_valid(&id, &a), "vector %zu", i);
		id.b[2] ^= 0x08; /* bit 20, the last one checked */
		cr_expect_not(km_bep42_id_valid(&id, &a), "vector %zu", i);
		id.b[2] ^= 0x0c; /* back, then flip bit 21: not checked */
		cr_expect(km_bep42_id_valid(&id, &a), "vector %zu", i);
	}
}

Test(bep42, crc32c_matches_the_standard_check_value)
{
	cr_expect_eq(km_bep42_crc32c((const uint8_t *)"123456789", 9), 0xe3069283u);
}

Test(bep42, local_addresses_are_recognised)
{
	struct km_addr six = { .family = KM_AF_INET6 };

	cr_expect(km_addr_is_local(&(struct km_addr){ .family = KM_AF_INET4,
						      .ip = { 192, 168, 1, 1 } }));
	cr_expect(km_addr_is_local(&(struct km_addr){ .family = KM_AF_INET4,
						      .ip = { 172, 20, 1, 1 } }));
	cr_expect_not(km_addr_is_local(&(struct km_addr){ .family = KM_AF_INET4,
							  .ip = { 172, 32, 1, 1 } }));
	cr_expect_not(km_addr_is_local(&(struct km_addr){ .family = KM_AF_INET4,
							  .ip = { 8, 8, 8, 8 } }));
	six.ip[15] = 1;
	cr_expect(km_addr_is_local(&six));
	six.ip[0] = 0x20;
	six.ip[1] = 0x01;
	cr_expect_not(km_addr_is_local(&six));
	six.ip[0] = 0xfd;
	cr_expect(km_addr_is_local(&six));
}

Test(bep42, strict_mode_rejects_unverified_ids_from_public_ips_only)
{
	struct km_table_config cfg;
	struct km_table *t;
	struct km_prng p;
	struct km_rng rng;
	struct km_contact good = { .addr = v4(124, 31, 75, 21) };
	struct km_contact bad = { .id = { .b = { 0x80, 1 } },
				  .addr = v4(124, 31, 76, 21) };
	struct km_contact local = { .id = { .b = { 0x80, 2 } },
				    .addr = v4(10, 1, 2, 3) };

	km_prng_seed(&p, 4);
	rng = km_prng_rng(&p);
	km_bep42_make_id(&good.addr, 5, &rng, &good.id);
	km_table_config_default(&cfg);
	cfg.bep42_strict = true;
	t = km_table_new(&zero_id, &cfg, T0);
	cr_expect_eq(km_table_offer(t, &good, KM_SEEN_REPLY, 1, T0, NULL),
		     KM_OFFER_ADDED);
	cr_expect_eq(km_table_offer(t, &bad, KM_SEEN_REPLY, 1, T0, NULL),
		     KM_OFFER_REJECTED);
	cr_expect_eq(km_table_offer(t, &local, KM_SEEN_REPLY, 1, T0, NULL),
		     KM_OFFER_ADDED);
	cr_expect_eq(km_table_stats(t).rejected_bep42, 1);
	cr_expect(km_table_find(t, &good.id)->id_verified);
	km_table_del(t);
}

/* Bucket 0 (IDs starting with bit 1) full of 8 nodes from distinct public
 * subnets, none BEP 42 verified, answering at T0. */
static struct km_table *full_public_bucket(void)
{
	struct km_table *t = km_table_new(&zero_id, NULL, T0);

	for (int i = 0; i < 8; i++) {
		struct km_contact c = { .id = { .b = { 0x80, [19] = (uint8_t)i } },
					.addr = v4(8, 8, (uint8_t)i, 8) };

		km_table_offer(t, &c, KM_SEEN_REPLY, 10, T0, NULL);
	}
	return t;
}

/* A verified ID in bucket 0: keep generating until the top bit is set. */
static struct km_contact verified_far(struct km_rng *rng, uint8_t last)
{
	struct km_contact c = { .addr = v4(124, 31, 75, last) };

	do
		km_bep42_make_id(&c.addr, last, rng, &c.id);
	while (!(c.id.b[0] & 0x80));
	return c;
}

Test(bep42, a_verified_newcomer_never_evicts_a_responsive_node)
{
	struct km_table *t = full_public_bucket();
	struct km_prng p;
	struct km_rng rng;
	struct km_contact v, ping;

	km_prng_seed(&p, 5);
	rng = km_prng_rng(&p);
	v = verified_far(&rng, 1);
	/* Our ID is 0 and the newcomer is far, so no split helps. */
	cr_expect_neq(km_table_offer(t, &v, KM_SEEN_REPLY, 10, T0 + 1, &ping),
		      KM_OFFER_ADDED);
	cr_expect_null(km_table_find(t, &v.id));
	cr_expect_eq(km_table_bucket_size(t, 0), 8);
	km_table_del(t);
}

Test(bep42, a_verified_replacement_is_promoted_before_a_newer_unverified_one)
{
	struct km_table *t = full_public_bucket();
	struct km_prng p;
	struct km_rng rng;
	struct km_contact v, u = { .id = { .b = { 0x80, 0x55 } },
				   .addr = v4(9, 9, 9, 9) };
	struct km_id victim = { .b = { 0x80, [19] = 0 } };

	km_prng_seed(&p, 6);
	rng = km_prng_rng(&p);
	v = verified_far(&rng, 2);
	km_table_offer(t, &v, KM_SEEN_QUERY, 0, T0 + 1, NULL);
	km_table_offer(t, &u, KM_SEEN_QUERY, 0, T0 + 2, NULL);
	cr_assert_eq(km_table_replacement_count(t, 0), 2);
	km_table_on_failure(t, &victim, T0 + 3);
	km_table_on_failure(t, &victim, T0 + 4);
	cr_expect_not_null(km_table_find(t, &v.id));
	cr_expect_null(km_table_find(t, &u.id));
	km_table_del(t);
}

Test(sybil, a_grown_table_still_holds_at_most_ten_from_one_slash_24)
{
	struct km_table *t = strict_table();
	struct km_prng p;
	int added = 0;

	km_prng_seed(&p, 7);
	/* Honest nodes, one per /24, IDs near ours so the table splits deep. */
	for (int i = 0; i < 2000; i++) {
		struct km_contact c = { .id = id_from(&p),
					.addr = v4(60, (uint8_t)(i >> 8),
						   (uint8_t)i, 1) };

		c.id.b[0] = 0;
		c.id.b[1] &= 0x0f;
		km_table_offer(t, &c, KM_SEEN_REPLY, 10, T0, NULL);
	}
	for (int i = 0; i < 1000; i++) {
		struct km_contact c = { .id = id_from(&p),
					.addr = v4(127, 0, 0, (uint8_t)i) };

		c.id.b[0] = 0;
		c.addr.port = (uint16_t)(1000 + i);
		added += km_table_offer(t, &c, KM_SEEN_REPLY, 10, T0 + 1,
					NULL) == KM_OFFER_ADDED;
	}
	cr_log_info("sybil (grown table, %d buckets): %d of 1000 admitted",
		    km_table_bucket_count(t), added);
	cr_expect_leq(held_from(t, 127, 0, 0), 10);
	cr_expect_gt(held_from(t, 127, 0, 0), 2);
	km_table_del(t);
}
