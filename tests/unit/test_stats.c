/* The sums over address families (net/stats.c) that status, metrics and
 * the library print: every member of each counter struct is added.  The
 * structs hold only unsigned long and size_t members, so adding a struct
 * whose every byte is 1 to itself must give one whose every byte is 2; a
 * member forgotten in the sum stays at 1s and shows. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/stats.h"

_Static_assert(sizeof(unsigned long) == sizeof(size_t),
	       "the byte-pattern check needs equal member sizes");

Test(stats, every_dht_counter_is_summed)
{
	struct km_dht_stats sum, one, two;

	memset(&sum, 1, sizeof(sum));
	memset(&one, 1, sizeof(one));
	memset(&two, 2, sizeof(two));
	km_stats_add_dht(&sum, &one);
	cr_assert_eq(memcmp(&sum, &two, sizeof(sum)), 0);
}

Test(stats, every_rate_limiter_table_and_peer_store_counter_is_summed)
{
	struct km_ratelimit_stats r, r1, r2;
	struct km_table_stats t, t1, t2;
	struct km_peers_stats p, p1, p2;

	memset(&r, 1, sizeof(r)), memset(&r1, 1, sizeof(r1));
	memset(&r2, 2, sizeof(r2));
	memset(&t, 1, sizeof(t)), memset(&t1, 1, sizeof(t1));
	memset(&t2, 2, sizeof(t2));
	memset(&p, 1, sizeof(p)), memset(&p1, 1, sizeof(p1));
	memset(&p2, 2, sizeof(p2));
	km_stats_add_rate(&r, &r1);
	km_stats_add_table(&t, &t1);
	km_stats_add_peers(&p, &p1);
	cr_assert_eq(memcmp(&r, &r2, sizeof(r)), 0);
	cr_assert_eq(memcmp(&t, &t2, sizeof(t)), 0);
	cr_assert_eq(memcmp(&p, &p2, sizeof(p)), 0);
}

Test(stats, a_lookup_duration_lands_in_the_first_bucket_that_holds_it)
{
	struct km_lookup_hist h = { 0 };

	km_stats_observe_lookup(&h, 50);
	km_stats_observe_lookup(&h, 51);
	km_stats_observe_lookup(&h, 20000);
	cr_assert_eq(h.le[0], 1);
	cr_assert_eq(h.le[1], 1);
	cr_assert_eq(h.le[KM_LOOKUP_HIST_N], 1);
	cr_assert_eq(h.count, 3);
	cr_assert_eq(h.sum_ms, 20101);
}
