/* The baseline: the original design's full mesh, where every peer holds a
 * connection to every other and a broadcast is one message per peer.
 *
 * Nothing here needs simulating to be counted -- N(N-1)/2 connections is
 * arithmetic -- but the latency a broadcast sees is measured over the same
 * per-pair RTTs the other scenarios use, from opt.broadcasts random
 * origins. */
#include <stdlib.h>

#include "scenarios.h"

int scenario_mesh(const struct sim_options *opt, struct report *r, FILE *out)
{
	struct sim s = { .opt = *opt, .n = opt->nodes };
	size_t n = opt->nodes, b = opt->broadcasts ? opt->broadcasts : 1;
	double total = (double)n * (double)(n - 1) / 2.0, max_lat = 0, p99 = 0;
	/* One-way delays are whole milliseconds up to 150: a histogram gives
	 * the exact percentile without keeping every sample. */
	unsigned long long hist[151] = { 0 }, count = 0, seen = 0;

	km_prng_seed(&s.world, opt->seed ^ 0x5157u);
	for (size_t i = 0; i < b; i++) {
		size_t origin = (size_t)sim_pick(&s, n);
		double worst = 0;

		for (size_t j = 0; j < n; j++) {
			uint32_t one_way;

			if (j == origin)
				continue;
			one_way = sim_rtt_ms(&s, origin, j) / 2;
			hist[one_way]++;
			count++;
			if (one_way > worst)
				worst = one_way;
		}
		if (worst > max_lat)
			max_lat = worst;
	}
	for (size_t ms = 0; ms < 151 && count; ms++) {
		seen += hist[ms];
		if ((double)seen >= 0.99 * (double)count) {
			p99 = (double)ms;
			break;
		}
	}
	report_set(r, R_CONNECTIONS_PER_NODE_MAX, (double)(n - 1));
	report_set(r, R_CONNECTIONS_TOTAL, total);
	report_set(r, R_BROADCAST_MESSAGES, (double)(n - 1));
	report_set(r, R_BROADCAST_COPIES_PER_NODE, 1);
	report_set(r, R_BROADCAST_COVERAGE_MIN, 1);
	report_set(r, R_BROADCAST_COVERAGE_MEAN, 1);
	report_set(r, R_BROADCAST_HOPS_MAX, n > 1 ? 1 : 0);
	report_set(r, R_BROADCAST_LATENCY_MS_P99, p99);
	fprintf(out, "full mesh: %zu connections per node, %.0f in total "
		"(N(N-1)/2); a broadcast is %zu messages, one hop, reaching the "
		"last peer after %.0f ms at worst (p99 %.0f ms) over %zu broadcasts\n",
		n - 1, total, n - 1, max_lat, p99, b);
	return 0;
}
