/* Flood and amplification defences: the per-source limiter by itself, and
 * a real km_dht facing a flooder. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <string.h>

#include "dht/ratelimit.h"
#include "proto/krpc.h"
#include "vnet.h"

#define T0 KM_SECONDS(100)

static struct km_addr ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
			  uint16_t port)
{
	struct km_addr addr;
	uint8_t ip[4] = { a, b, c, d };

	km_addr_set_v4(&addr, ip, port);
	return addr;
}

static struct km_ratelimit *limiter(void)
{
	struct km_ratelimit_config cfg;
	struct km_ratelimit *rl;

	km_ratelimit_config_default(&cfg);
	rl = km_ratelimit_new(&cfg);
	cr_assert_not_null(rl);
	return rl;
}

Test(ratelimit, a_source_gets_its_burst_then_qps_tokens_a_second)
{
	struct km_ratelimit *rl = limiter();
	struct km_addr a = ip4(192, 0, 2, 1, 1000);
	int passed = 0;

	for (int i = 0; i < 100; i++)
		passed += km_ratelimit_query(rl, &a, T0) == KM_RL_PASS;
	cr_expect_eq(passed, 40);
	passed = 0;
	for (int i = 0; i < 100; i++)
		passed += km_ratelimit_query(rl, &a, T0 + KM_SECONDS(1)) == KM_RL_PASS;
	cr_expect_eq(passed, 20);
	cr_expect_eq(km_ratelimit_stats(rl).bans, 0, "160 drops are no abuse");
	km_ratelimit_del(rl);
}

Test(ratelimit, a_public_ip_is_one_source_whatever_its_port)
{
	struct km_ratelimit *rl = limiter();
	int passed = 0;

	for (int i = 0; i < 100; i++) {
		struct km_addr a = ip4(192, 0, 2, 1, (uint16_t)(1000 + i));

		passed += km_ratelimit_query(rl, &a, T0) == KM_RL_PASS;
	}
	cr_expect_eq(passed, 40);
	km_ratelimit_del(rl);
}

Test(ratelimit, local_addresses_are_limited_per_port)
{
	struct km_ratelimit *rl = limiter();
	int passed = 0;

	for (int i = 0; i < 100; i++) {
		struct km_addr a = ip4(127, 0, 0, 1, (uint16_t)(1000 + i));

		passed += km_ratelimit_query(rl, &a, T0) == KM_RL_PASS;
	}
	cr_expect_eq(passed, 100);
	km_ratelimit_del(rl);
}

Test(ratelimit, an_abuser_is_banned_and_the_ban_expires)
{
	struct km_ratelimit *rl = limiter();
	struct km_addr a = ip4(192, 0, 2, 1, 1000);

	for (int i = 0; i < 240; i++)
		km_ratelimit_query(rl, &a, T0);
	cr_expect_eq(km_ratelimit_stats(rl).bans, 1);
	cr_expect(km_ratelimit_banned(rl, &a, T0 + KM_MINUTES(9)));
	cr_expect_eq(km_ratelimit_query(rl, &a, T0 + KM_MINUTES(9)), KM_RL_BANNED);
	cr_expect_eq(km_ratelimit_banned_now(rl, T0 + KM_MINUTES(9)), 1);
	cr_expect_not(km_ratelimit_banned(rl, &a, T0 + KM_MINUTES(10)));
	cr_expect_eq(km_ratelimit_query(rl, &a, T0 + KM_MINUTES(10)), KM_RL_PASS);
	km_ratelimit_del(rl);
}

Test(ratelimit, the_table_forgets_the_least_recently_active_source_at_its_cap)
{
	struct km_ratelimit_config cfg;
	struct km_ratelimit *rl;
	struct km_addr keep = ip4(198, 51, 100, 1, 1);

	km_ratelimit_config_default(&cfg);
	cfg.max_entries = 100;
	rl = km_ratelimit_new(&cfg);
	km_ratelimit_verify(rl, &keep, T0);
	for (int i = 0; i < 10000; i++) {
		struct km_addr a = ip4(203, 0, (uint8_t)(i >> 8), (uint8_t)i, 1);

		km_ratelimit_query(rl, &a, T0 + (km_ms)i);
		if (i % 50 == 0) /* keep stays active */
			km_ratelimit_verify(rl, &keep, T0 + (km_ms)i);
	}
	cr_expect_eq(km_ratelimit_stats(rl).entries, 100);
	cr_expect_eq(km_ratelimit_stats(rl).evictions, 10001 - 100);
	cr_expect(km_ratelimit_verified(rl, &keep));
	km_ratelimit_del(rl);
}

/* A find_node query with transaction id i. */
static size_t find_node(uint8_t *buf, size_t cap, unsigned i)
{
	char tid[5];
	int n;

	snprintf(tid, sizeof(tid), "%04x", i & 0xffff);
	n = snprintf((char *)buf, cap,
		     "d1:ad2:id20:abcdefghij01234567896:target20:"
		     "ABCDEFGHIJ0123456789e1:q9:find_node1:t4:%s1:y1:qe", tid);
	return (size_t)n;
}

Test(flood, a_flooder_is_banned_and_another_source_is_still_answered)
{
	struct vnet *v = vnet_new(40, 9, NULL);
	struct km_addr flooder = ip4(192, 0, 2, 66, 4000);
	struct km_addr honest = ip4(198, 51, 100, 7, 4000);
	uint8_t q[200], buf[2048];
	unsigned answered = 0;
	struct km_ratelimit_stats st;

	for (size_t i = 1; i < vnet_size(v); i++)
		vnet_join(v, i, 0);
	vnet_run_until(v, vnet_now(v) + KM_SECONDS(30));
	for (unsigned i = 0; i < 100000; i++) {
		size_t len = find_node(q, sizeof(q), i);

		answered += vnet_exchange(v, 0, &flooder, q, len, buf,
					  sizeof(buf)) > 0;
	}
	st = km_ratelimit_stats(km_dht_ratelimit(vnet_node(v, 0)));
	cr_log_info("flood (sans-IO): %u of 100000 answered, %lu limited, "
		    "%lu dropped while banned", answered, st.limited,
		    st.banned_drops);
	cr_expect_leq(answered, 40);
	cr_expect_eq(st.bans, 1);
	for (unsigned i = 0; i < 20; i++) {
		size_t len = find_node(q, sizeof(q), i);

		cr_expect_gt(vnet_exchange(v, 0, &honest, q, len, buf,
					   sizeof(buf)), 0);
	}
	vnet_del(v);
}

Test(flood, a_reply_to_an_unverified_source_is_at_most_three_times_the_query)
{
	struct vnet *v = vnet_new(60, 10, NULL);
	struct km_addr stranger = ip4(192, 0, 2, 77, 4000);
	uint8_t q[200], buf[2048];
	struct km_krpc_msg r;
	size_t len, n;

	for (size_t i = 1; i < vnet_size(v); i++)
		vnet_join(v, i, 0);
	vnet_run_until(v, vnet_now(v) + KM_SECONDS(30));
	len = find_node(q, sizeof(q), 1);
	n = vnet_exchange(v, 0, &stranger, q, len, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_expect_leq(n, 3 * len);
	cr_assert_eq(km_krpc_decode(buf, n, &r), 0);
	cr_expect_gt(r.nodes_len, 0, "trimmed, not emptied");
	cr_expect_eq(km_dht_stats(vnet_node(v, 0)).replies_trimmed, 1);
	vnet_del(v);
}
