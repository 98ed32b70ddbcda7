/* External address voting and reachability (net/nat.h), with literal
 * timestamps: a quorum of distinct voters adopts an address, a liar cannot
 * move it, and the verdict follows our own interface addresses. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/nat.h"

static struct km_nat nat;

static void setup(void)
{
	km_nat_init(&nat);
}

TestSuite(nat, .init = setup);

static struct km_addr ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
			  uint16_t port)
{
	struct km_addr addr;
	uint8_t ip[4] = { a, b, c, d };

	km_addr_set_v4(&addr, ip, port);
	return addr;
}

static bool vote(struct km_addr voter, struct km_addr seen, km_ms now)
{
	return km_nat_vote(&nat, &voter, &seen, now);
}

static const struct km_addr *ext(void)
{
	return km_nat_external(&nat);
}

Test(nat, nothing_is_adopted_before_three_voters_agree)
{
	struct km_addr seen = ip4(198, 51, 100, 7, 4000);

	cr_assert_not(km_nat_vote(&nat, &(struct km_addr){ 0 }, &seen, 0));
	cr_assert_not(vote(ip4(1, 1, 0, 1, 1), seen, 1));
	cr_assert_not(vote(ip4(2, 2, 0, 1, 1), seen, 2));
	cr_assert_null(ext());
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_UNKNOWN);
	cr_assert(vote(ip4(3, 3, 0, 1, 1), seen, 3));
	cr_assert(km_addr_eq(ext(), &seen));
}

Test(nat, one_voter_repeating_itself_counts_once)
{
	struct km_addr seen = ip4(198, 51, 100, 7, 4000);

	for (int i = 0; i < 10; i++)
		vote(ip4(1, 1, 0, 1, (uint16_t)(i + 1)), seen, (km_ms)i);
	cr_assert_null(ext());
}

Test(nat, one_liar_cannot_move_the_adopted_address)
{
	struct km_addr good = ip4(198, 51, 100, 7, 4000);
	struct km_addr lie = ip4(203, 0, 113, 9, 4000);

	for (uint8_t i = 1; i <= 3; i++)
		vote(ip4(i, i, 0, 1, 1), good, i);
	for (km_ms t = 10; t < 20; t++)
		cr_assert_not(vote(ip4(9, 9, 0, 1, 1), lie, t));
	cr_assert(km_addr_eq(ext(), &good));
}

Test(nat, liars_from_one_subnet_weigh_as_one_voter)
{
	struct km_addr good = ip4(198, 51, 100, 7, 4000);
	struct km_addr lie = ip4(203, 0, 113, 9, 4000);

	for (uint8_t i = 1; i <= 3; i++)
		vote(ip4(i, i, 0, 1, 1), good, i);
	/* Many hosts, one /16: outnumbering by IP is not enough. */
	for (uint8_t i = 1; i <= 10; i++)
		vote(ip4(9, 9, 0, i, 1), lie, 10 + i);
	cr_assert(km_addr_eq(ext(), &good));
}

Test(nat, voters_on_one_subnet_still_count_when_there_is_no_other)
{
	struct km_addr seen = ip4(198, 51, 100, 7, 4000);

	for (uint8_t i = 1; i <= 3; i++)
		vote(ip4(10, 0, 0, i, 1), seen, i);
	cr_assert(km_addr_eq(ext(), &seen));
}

Test(nat, a_real_change_of_address_wins_once_the_majority_moves)
{
	struct km_addr old = ip4(198, 51, 100, 7, 4000);
	struct km_addr now = ip4(198, 51, 100, 8, 4000);

	for (uint8_t i = 1; i <= 3; i++)
		vote(ip4(i, i, 0, 1, 1), old, i);
	vote(ip4(1, 1, 0, 1, 1), now, 10);
	vote(ip4(2, 2, 0, 1, 1), now, 11);
	cr_assert(km_addr_eq(ext(), &old), "2 of 3 is no quorum");
	cr_assert(vote(ip4(4, 4, 0, 1, 1), now, 12));
	cr_assert(km_addr_eq(ext(), &now));
}

Test(nat, votes_expire)
{
	struct km_addr seen = ip4(198, 51, 100, 7, 4000);

	vote(ip4(1, 1, 0, 1, 1), seen, 0);
	vote(ip4(2, 2, 0, 1, 1), seen, 0);
	cr_assert_not(vote(ip4(3, 3, 0, 1, 1), seen,
				  KM_NAT_VOTE_TTL_MS));
	cr_assert_null(ext());
}

Test(nat, the_port_comes_from_udp_reports_only)
{
	struct km_addr udp = ip4(198, 51, 100, 7, 4000);
	struct km_addr tcp = ip4(198, 51, 100, 7, 0);

	vote(ip4(1, 1, 0, 1, 1), tcp, 1);
	vote(ip4(2, 2, 0, 1, 1), udp, 2);
	vote(ip4(3, 3, 0, 1, 1), tcp, 3);
	cr_assert_eq(ext()->port, 4000);
}

Test(nat, a_flood_of_voters_keeps_memory_bounded)
{
	struct km_addr lie = ip4(203, 0, 113, 9, 4000);

	for (unsigned i = 0; i < 10000; i++)
		vote(ip4((uint8_t)(i >> 8), (uint8_t)i, 1, 1, 1), lie, i);
	cr_assert(km_addr_eq(ext(), &lie));
	cr_assert_eq(nat.votes_in, 10000);
}

Test(nat, an_address_of_our_own_is_public_and_any_other_private)
{
	struct km_addr seen = ip4(198, 51, 100, 7, 4000);
	struct km_addr local = ip4(198, 51, 100, 7, 0);

	for (uint8_t i = 1; i <= 3; i++)
		vote(ip4(i, i, 0, 1, 1), seen, i);
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_PRIVATE);
	km_nat_set_local(&nat, &local, 1);
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_PUBLIC);
	cr_assert(km_nat_set_dialback(&nat, KM_REACH_PRIVATE, NULL));
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_PRIVATE);
	cr_assert_str_eq(km_nat_reach_name(KM_REACH_PRIVATE), "private");
}

Test(nat, a_dial_back_verdict_adopts_its_address_when_the_votes_have_none)
{
	struct km_addr at = ip4(192, 0, 2, 2, 7000);

	cr_assert_not(km_nat_set_dialback(&nat, KM_REACH_PUBLIC, NULL),
		      "no verdict without an address");
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_UNKNOWN);
	cr_assert_null(km_nat_external(&nat));
	cr_assert(km_nat_set_dialback(&nat, KM_REACH_PUBLIC, &at));
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_PUBLIC);
	cr_assert(km_addr_eq(km_nat_external(&nat), &at));
}

Test(nat, a_dial_back_verdict_keeps_the_address_the_votes_adopted)
{
	struct km_addr seen = ip4(198, 51, 100, 7, 4000);
	struct km_addr at = ip4(192, 0, 2, 2, 7000);

	for (uint8_t i = 1; i <= 3; i++)
		vote(ip4(i, i, 0, 1, 1), seen, i);
	cr_assert(km_nat_set_dialback(&nat, KM_REACH_PRIVATE, &at));
	cr_assert(km_addr_eq(km_nat_external(&nat), &seen));
}

static enum km_scope scope_of(const char *ip)
{
	struct km_addr a;

	cr_assert(km_addr_parse(ip, &a), "%s", ip);
	return km_nat_scope(&a);
}

Test(nat, addresses_are_loopback_private_or_global)
{
	const char *lo[] = { "127.0.0.1:1", "127.9.9.9:1", "[::1]:1" };
	const char *priv[] = { "10.1.0.2:1", "172.16.0.1:1", "172.31.255.255:1",
			       "192.168.1.1:1", "100.64.0.1:1", "100.127.0.1:1",
			       "169.254.3.4:1", "[fd00::1]:1", "[fe80::1]:1",
			       "[::ffff:10.0.0.1]:1" };
	const char *global[] = { "203.0.113.2:1", "172.32.0.1:1", "172.15.0.1:1",
				 "100.128.0.1:1", "100.63.0.1:1", "8.8.8.8:1",
				 "[2001:db8::1]:1", "[::ffff:8.8.8.8]:1" };

	for (size_t i = 0; i < sizeof(lo) / sizeof(lo[0]); i++)
		cr_assert_eq(scope_of(lo[i]), KM_SCOPE_LOOPBACK, "%s", lo[i]);
	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++)
		cr_assert_eq(scope_of(priv[i]), KM_SCOPE_PRIVATE, "%s", priv[i]);
	for (size_t i = 0; i < sizeof(global) / sizeof(global[0]); i++)
		cr_assert_eq(scope_of(global[i]), KM_SCOPE_GLOBAL, "%s", global[i]);
	cr_assert_eq(km_nat_scope(&(struct km_addr){ 0 }), KM_SCOPE_NONE);
	cr_assert(KM_SCOPE_LOOPBACK < KM_SCOPE_PRIVATE &&
		  KM_SCOPE_PRIVATE < KM_SCOPE_GLOBAL, "ordered narrowest first");
}
