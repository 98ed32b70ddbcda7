/* The baseline: the original design's full mesh, where every peer holds a
 * connection to every other and a broadcast is one message per peer.
 *
 * The connection counts are computed, not simulated: N-1 per peer and
 * N(N-1)/2 in total is arithmetic, and the JSON says so in their names.
 * The broadcasts are simulated, over the same per-pair RTTs and the same
 * loss model as the overlay's links (tools/sim/broadcast.c): the origin
 * writes the message to each peer's TCP connection at once; the frame
 * arrives after the pair's one-way delay, or, when the wire loses it, after
 * TCP resends it, max(200 ms, 2 RTT) later.  Coverage, copies and latency
 * are counted from those deliveries. */
#include <stdbool.h>
#include <stdlib.h>

#include "scenarios.h"

/* One-way delays are at most 150 ms, a resend adds at most 600: every
 * delivery fits in the histogram, which gives exact percentiles without
 * keeping every sample. */
#define LAT_HIST_MS 1000

struct mesh_stats {
	unsigned long long hist[LAT_HIST_MS + 1], deliveries, lost;
	double cov_min, cov_sum;
	unsigned long long copies;
	km_ms worst;
};

/* When the frame the origin writes to peer j at time 0 is delivered. */
static km_ms arrival(struct sim *s, size_t origin, size_t j, bool *lost)
{
	km_ms one_way = sim_rtt_ms(s, origin, j) / 2;

	*lost = s->opt.loss > 0 && sim_uniform(s) < s->opt.loss;
	return *lost ? one_way + (one_way * 4 > 200 ? one_way * 4 : 200) :
		       one_way;
}

static void broadcast_once(struct sim *s, struct mesh_stats *st)
{
	size_t origin = (size_t)sim_pick(s, s->n), reached = 0;
	double cov;

	for (size_t j = 0; j < s->n; j++) {
		km_ms at;
		bool lost;

		if (j == origin)
			continue;
		at = arrival(s, origin, j, &lost);
		st->lost += lost;
		if (at > SCENARIO_SETTLE_MS)
			continue; /* too late, as in broadcast.c */
		reached++;
		st->copies++; /* TCP hands the message up once */
		st->hist[at < LAT_HIST_MS ? at : LAT_HIST_MS]++;
		st->deliveries++;
		if (at > st->worst)
			st->worst = at;
	}
	cov = (double)reached / (double)(s->n - 1);
	st->cov_sum += cov;
	if (cov < st->cov_min)
		st->cov_min = cov;
}

static double p99(const struct mesh_stats *st)
{
	unsigned long long seen = 0;

	for (size_t ms = 0; ms <= LAT_HIST_MS; ms++) {
		seen += st->hist[ms];
		if ((double)seen >= 0.99 * (double)st->deliveries)
			return (double)ms;
	}
	return LAT_HIST_MS;
}

int scenario_mesh(const struct sim_options *opt, struct report *r, FILE *out)
{
	struct sim s = { .opt = *opt, .n = opt->nodes };
	size_t n = opt->nodes, b = opt->broadcasts ? opt->broadcasts : 1;
	double total = (double)n * (double)(n - 1) / 2.0;
	struct mesh_stats *st = calloc(1, sizeof(*st));

	if (!st)
		return -1;
	st->cov_min = 1;
	km_prng_seed(&s.world, opt->seed ^ 0x5157u);
	for (size_t i = 0; i < b; i++)
		broadcast_once(&s, st);
	report_set(r, R_MESH_CONNECTIONS_PER_NODE, (double)(n - 1));
	report_set(r, R_MESH_CONNECTIONS_TOTAL, total);
	report_set(r, R_BROADCAST_COVERAGE_MIN, st->cov_min);
	report_set(r, R_BROADCAST_COVERAGE_MEAN, st->cov_sum / (double)b);
	report_set(r, R_BROADCAST_COPIES_PER_NODE,
		   (double)st->copies / ((double)b * (double)(n - 1)));
	report_set(r, R_BROADCAST_HOPS_MAX, st->deliveries ? 1 : 0);
	report_set(r, R_BROADCAST_LATENCY_MS_P99, p99(st));
	report_set(r, R_BROADCAST_MESSAGES, (double)(n - 1));
	fprintf(out, "full mesh (computed): %zu connections per node, %.0f in "
		"total (N(N-1)/2)\n", n - 1, total);
	fprintf(out, "broadcast (simulated, same RTTs and loss as the overlay): "
		"%zu broadcasts of %zu messages, one hop each; coverage min "
		"%.4f%%; %llu frames lost and resent; latency p99 %.0f ms, worst "
		"%lld ms\n", b, n - 1, 100 * st->cov_min, st->lost, p99(st),
		(long long)st->worst);
	free(st);
	return 0;
}
