/* What a node's state costs: the rate limiter grows with the sources it
 * hears and stops at its cap, its compact index finds every source again,
 * and a node in a small network stays well under the 64 KiB of issue 6. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dht/ratelimit.h"
#include "dht/table.h"
#include "vnet.h"

#define T0 KM_SECONDS(100)

static struct km_addr source(uint32_t i, bool v6)
{
	struct km_addr a;
	uint8_t ip4[4] = { 198, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };
	uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8 };

	if (!v6) {
		km_addr_set_v4(&a, ip4, 6881);
		return a;
	}
	memcpy(ip6 + 12, &i, sizeof(i));
	km_addr_set_v6(&a, ip6, 6881);
	return a;
}

static struct km_ratelimit *limiter(size_t max_entries)
{
	struct km_ratelimit_config cfg;
	struct km_ratelimit *rl;

	km_ratelimit_config_default(&cfg);
	cfg.max_entries = max_entries;
	rl = km_ratelimit_new(&cfg);
	cr_assert_not_null(rl);
	km_ratelimit_set_key(rl, 0x0123456789abcdefULL);
	return rl;
}

Test(mem, a_fresh_limiter_holds_no_memory_per_source)
{
	struct km_ratelimit *rl = limiter(4096);

	cr_expect_leq(km_ratelimit_mem(rl), 256);
	km_ratelimit_del(rl);
}

Test(mem, the_limiter_grows_with_its_sources_and_stops_at_its_cap)
{
	struct km_ratelimit *rl = limiter(4096);
	size_t at_300, at_cap;

	for (uint32_t i = 0; i < 300; i++) {
		struct km_addr a = source(i, false);

		km_ratelimit_query(rl, &a, T0);
	}
	at_300 = km_ratelimit_mem(rl);
	cr_log_info("rate limiter: %zu bytes for 300 sources", at_300);
	cr_expect_leq(at_300, 300 * 48 * 3 / 2 + 4096, "%zu bytes", at_300);
	for (uint32_t i = 300; i < 100000; i++) {
		struct km_addr a = source(i, i % 2);

		km_ratelimit_query(rl, &a, T0 + i);
	}
	at_cap = km_ratelimit_mem(rl);
	cr_log_info("rate limiter: %zu bytes at its cap of 4096", at_cap);
	cr_expect_eq(km_ratelimit_stats(rl).entries, 4096);
	cr_expect_leq(at_cap, 4096 * 48 + 8192 * 4 + 256, "%zu bytes", at_cap);
	for (uint32_t i = 0; i < 10000; i++) {
		struct km_addr a = source(200000 + i, false);

		km_ratelimit_verify(rl, &a, T0 + 100000 + i);
	}
	cr_expect_eq(km_ratelimit_mem(rl), at_cap, "no growth past the cap");
	km_ratelimit_del(rl);
}

static int newest_first(const void *a, const void *b)
{
	km_ms x = *(const km_ms *)a, y = *(const km_ms *)b;

	return (x < y) - (x > y);
}

/* The nth largest of v (touch times are distinct, so this is exact). */
static km_ms nth_newest(const km_ms *v, size_t len, size_t n)
{
	static km_ms sorted[4096];

	memcpy(sorted, v, len * sizeof(*v));
	qsort(sorted, len, sizeof(*sorted), newest_first);
	return sorted[n - 1];
}

/* A model of the limiter's memory: a source is remembered iff it is among
 * the max most recently touched.  Every touch here is a verify, so
 * "remembered" is km_ratelimit_verified(). */
Test(mem, the_index_finds_exactly_the_most_recent_sources_through_growth_and_eviction)
{
	enum { POOL = 3000, MAX = 1000, STEPS = 30000 };
	static km_ms last[POOL];
	struct km_ratelimit *rl = limiter(MAX);
	uint64_t x = 7;
	km_ms oldest_kept;

	memset(last, 0, sizeof(last));
	for (km_ms step = 1; step <= STEPS; step++) {
		uint32_t i;
		struct km_addr a;

		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		/* Skewed: a hot few hundred and a long tail, so that both
		 * hits and evictions happen all the time. */
		i = (uint32_t)((x >> 33) % ((x >> 20) & 1 ? 400 : POOL));
		a = source(i, i % 3 == 0);
		km_ratelimit_verify(rl, &a, T0 + step);
		last[i] = step;
		if (step % 1000 != 0)
			continue;
		oldest_kept = nth_newest(last, POOL, MAX);
		for (uint32_t j = 0; j < POOL; j++) {
			struct km_addr b = source(j, j % 3 == 0);

			cr_assert_eq(km_ratelimit_verified(rl, &b),
				     last[j] && last[j] >= oldest_kept,
				     "source %u at step %llu", j,
				     (unsigned long long)step);
		}
	}
	km_ratelimit_del(rl);
}

Test(mem, a_node_in_a_network_of_300_holds_under_64_kib_and_most_far_less)
{
	struct vnet *v = vnet_new(300, 11, NULL);
	size_t most = 0, sum = 0;

	for (size_t i = 1; i < vnet_size(v); i++) {
		vnet_join(v, i, (i * 7919) % i);
		vnet_run_until(v, vnet_now(v) + 200);
	}
	vnet_run_until(v, vnet_now(v) + KM_MINUTES(20));
	for (size_t i = 0; i < 20; i++) {
		struct vnet_lookup out;
		struct km_id target;

		km_id_random(vnet_rng(v), &target);
		vnet_lookup(v, (i * 13) % vnet_size(v), &target,
			    KM_LOOKUP_FIND_NODE, &out, KM_SECONDS(30));
	}
	for (size_t i = 0; i < vnet_size(v); i++) {
		struct km_dht_mem m = km_dht_mem(vnet_node(v, i));

		cr_expect_eq(m.total, m.node + m.table + m.ratelimit +
			     m.transactions + m.lookups);
		sum += m.total;
		most = m.total > most ? m.total : most;
	}
	cr_log_info("300 nodes: %zu bytes per node on average, %zu at most",
		    sum / vnet_size(v), most);
	cr_expect_leq(most, 64 * 1024, "the issue's bound");
	cr_expect_leq(sum / vnet_size(v), 32 * 1024);
	vnet_del(v);
}

Test(mem, a_flood_from_100000_spoofed_sources_costs_a_node_at_most_the_caps)
{
	struct vnet *v = vnet_new(2, 5, NULL);
	struct km_dht_mem m;
	uint8_t q[200], buf[2048];
	static const char query[] =
		"d1:ad2:id20:abcdefghij01234567896:target20:"
		"ABCDEFGHIJ0123456789e1:q9:find_node1:t2:aa1:y1:qe";

	memcpy(q, query, sizeof(query) - 1);
	for (uint32_t i = 0; i < 100000; i++) {
		struct km_addr a = source(i, false);

		vnet_exchange(v, 0, &a, q, sizeof(query) - 1, buf, sizeof(buf));
	}
	m = km_dht_mem(vnet_node(v, 0));
	cr_log_info("after the flood: rate limiter %zu bytes, table %zu",
		    m.ratelimit, m.table);
	cr_expect_eq(km_ratelimit_stats(km_dht_ratelimit(vnet_node(v, 0))).entries,
		     4096);
	cr_expect_leq(m.ratelimit, 4096 * 48 + 8192 * 4 + 256);
	cr_expect_leq(m.total, 400 * 1024);
	vnet_del(v);
}

/* The sources' 32-bit clock moves its epoch every 2^30 ms or so: a ban,
 * tokens and the drop window must come through that unchanged. */
Test(mem, bans_and_tokens_survive_months_of_uptime)
{
	struct km_ratelimit *rl = limiter(64);
	struct km_addr abuser = source(1, false), other = source(2, true);
	km_ms t = T0;

	for (int day = 0; day < 120; day += 5) {
		t = T0 + (km_ms)day * 24 * KM_MINUTES(60);
		for (int i = 0; i < 400; i++)
			km_ratelimit_query(rl, &abuser, t);
		cr_assert(km_ratelimit_banned(rl, &abuser, t), "day %d", day);
		cr_assert_eq(km_ratelimit_banned_now(rl, t + KM_MINUTES(9)), 1);
		cr_assert(km_ratelimit_banned(rl, &abuser, t + KM_MINUTES(9)));
		cr_assert_not(km_ratelimit_banned(rl, &abuser, t + KM_MINUTES(10)));
		cr_assert_eq(km_ratelimit_query(rl, &abuser, t + KM_MINUTES(10)),
			     KM_RL_PASS);
		km_ratelimit_verify(rl, &other, t);
		cr_assert(km_ratelimit_verified(rl, &other));
	}
	cr_expect_eq(km_ratelimit_stats(rl).bans, 24);
	km_ratelimit_del(rl);
}

Test(mem, a_ban_running_when_the_epoch_moves_keeps_its_end)
{
	struct km_ratelimit *rl = limiter(64);
	struct km_addr abuser = source(1, false);
	km_ms t = T0 + ((km_ms)1 << 31) - KM_MINUTES(1);

	km_ratelimit_query(rl, &abuser, T0); /* sets the epoch */
	for (int i = 0; i < 400; i++)
		km_ratelimit_query(rl, &abuser, t);
	cr_assert(km_ratelimit_banned(rl, &abuser, t));
	/* The first query past 2^31 ms moves the epoch. */
	cr_expect_eq(km_ratelimit_query(rl, &abuser, t + KM_MINUTES(9)),
		     KM_RL_BANNED);
	cr_expect(km_ratelimit_banned(rl, &abuser, t + KM_MINUTES(10) - 1));
	cr_expect_eq(km_ratelimit_query(rl, &abuser, t + KM_MINUTES(10)),
		     KM_RL_PASS);
	km_ratelimit_del(rl);
}
