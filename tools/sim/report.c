#include "report.h"

#include <math.h>

static const char *const names[R_COUNT] = {
	[R_LOOKUP_SUCCESS_RATE] = "lookup_success_rate",
	[R_LOOKUP_ROUNDS_MEDIAN] = "lookup_rounds_median",
	[R_LOOKUP_ROUNDS_P90] = "lookup_rounds_p90",
	[R_LOOKUP_LATENCY_MS_MEDIAN] = "lookup_latency_ms_median",
	[R_LOOKUP_LATENCY_MS_P99] = "lookup_latency_ms_p99",
	[R_LOOKUP_MESSAGES_MEAN] = "lookup_messages_mean",
	[R_LOOKUP_FLOOR_MS_MEDIAN] = "lookup_floor_ms_median",
	[R_LOOKUP_FLOOR_MS_P99] = "lookup_floor_ms_p99",
	[R_LOOKUP_FOUND_MS_MEDIAN] = "lookup_found_ms_median",
	[R_LOOKUP_EAGER_MS_MEDIAN] = "lookup_eager_ms_median",
	[R_LOOKUP_TAIL_MS_MEDIAN] = "lookup_tail_ms_median",
	[R_LOOKUP_TAIL_MS_P99] = "lookup_tail_ms_p99",
	[R_BROADCAST_COVERAGE_MIN] = "broadcast_coverage_min",
	[R_BROADCAST_COVERAGE_MEAN] = "broadcast_coverage_mean",
	[R_BROADCAST_COPIES_PER_NODE] = "broadcast_copies_per_node",
	[R_BROADCAST_CONTROL_BYTES_RATIO] = "broadcast_control_bytes_ratio",
	[R_BROADCAST_HOPS_MAX] = "broadcast_hops_max",
	[R_BROADCAST_LATENCY_MS_P99] = "broadcast_latency_ms_p99",
	[R_BROADCAST_MESSAGES] = "broadcast_messages",
	[R_FLOOD_COPIES_PER_NODE] = "flood_copies_per_node",
	[R_REPAIR_MS] = "repair_ms",
	[R_CONNECTIONS_PER_NODE_MAX] = "connections_per_node_max",
	[R_CONNECTIONS_TOTAL] = "connections_total",
	[R_OVERLAY_COMPONENTS] = "overlay_components",
	/* The mesh's are arithmetic (N-1, N(N-1)/2), and named so. */
	[R_MESH_CONNECTIONS_PER_NODE] = "connections_per_node_computed",
	[R_MESH_CONNECTIONS_TOTAL] = "connections_total_computed",
	[R_TABLE_CONTACTS_MEAN] = "table_contacts_mean",
	[R_TABLE_CONTACTS_MAX] = "table_contacts_max",
	[R_DHT_STATE_BYTES_PER_NODE] = "dht_state_bytes_per_node",
	[R_PACKETS] = "packets",
	[R_PEAK_RSS_MB] = "peak_rss_mb",
	[R_WALL_S] = "wall_s",
};

void report_set(struct report *r, enum report_key k, double v)
{
	r->has[k] = true;
	r->v[k] = v;
}

/* Integers print as integers; the rest with six significant digits, which
 * printf renders the same way on every run. */
static void print_value(double v, FILE *out)
{
	if (v == floor(v) && fabs(v) < 1e15)
		fprintf(out, "%.0f", v);
	else
		fprintf(out, "%.6g", v);
}

void report_json(const struct report *r, size_t nodes, unsigned long long seed,
		 const char *scenario, FILE *out)
{
	fprintf(out, "{\"nodes\":%zu,\"seed\":%llu,\"scenario\":\"%s\"", nodes,
		seed, scenario);
	for (int k = 0; k < R_COUNT; k++) {
		if (!r->has[k])
			continue;
		fprintf(out, ",\"%s\":", names[k]);
		print_value(r->v[k], out);
	}
	fputs("}\n", out);
}

struct target {
	enum report_key key;
	const char *what;
	bool at_most;        /* the measurement must be <= limit (else >=) */
	double limit;
	size_t at_nodes;     /* the N the issue sets it at; 0 = any */
	bool needs_dead;     /* set with 10% dead contacts */
};

static const struct target targets[] = {
	{ R_LOOKUP_SUCCESS_RATE, "lookup success >= 99.5% (10,000 nodes, k=8, alpha=3)",
	  false, 0.995, 10000, false },
	{ R_LOOKUP_ROUNDS_MEDIAN, "lookup rounds median <= 4", true, 4, 10000, false },
	{ R_LOOKUP_ROUNDS_P90, "lookup rounds p90 <= 5", true, 5, 10000, false },
	{ R_LOOKUP_ROUNDS_MEDIAN, "lookup rounds median <= 5 (4 at 10,000, plus one)",
	  true, 5, 100000, false },
	{ R_LOOKUP_LATENCY_MS_MEDIAN, "lookup latency median <= 300 ms (10% dead)",
	  true, 300, 10000, true },
	{ R_LOOKUP_LATENCY_MS_P99, "lookup latency p99 < 1000 ms (10% dead)",
	  true, 999.999, 10000, true },
	{ R_BROADCAST_COVERAGE_MIN, "broadcast coverage >= 99.9% in every broadcast",
	  false, 0.999, 10000, false },
	{ R_BROADCAST_COPIES_PER_NODE, "payload copies per node <= 1.2", true, 1.2,
	  10000, false },
	{ R_BROADCAST_CONTROL_BYTES_RATIO, "control bytes <= 15% of payload bytes",
	  true, 0.15, 10000, false },
	{ R_OVERLAY_COMPONENTS, "overlay in one piece (connected components)",
	  true, 1, 0, false },
	{ R_DHT_STATE_BYTES_PER_NODE, "DHT state per node <= 64 KiB", true, 65536, 0,
	  false },
	{ R_PEAK_RSS_MB, "peak RSS <= 8 GiB (100,000 nodes)", true, 8192, 0, false },
};

void report_targets(const struct report *r, size_t nodes, double dead,
		    FILE *out)
{
	fputs("targets:\n", out);
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		const struct target *t = &targets[i];
		bool ok;

		if (!r->has[t->key])
			continue;
		ok = t->at_most ? r->v[t->key] <= t->limit : r->v[t->key] >= t->limit;
		fprintf(out, "  %-6s %-56s measured ", ok ? "[ok]" : "[MISS]",
			t->what);
		print_value(r->v[t->key], out);
		if (t->at_nodes && t->at_nodes != nodes)
			fprintf(out, "  (set for %zu nodes; this run has %zu)",
				t->at_nodes, nodes);
		if (t->needs_dead && dead < 0.1)
			fputs("  (set with --dead 0.1)", out);
		fputc('\n', out);
	}
	if (r->has[R_BROADCAST_HOPS_MAX]) {
		double limit = 2 * log2((double)nodes);
		bool ok = r->v[R_BROADCAST_HOPS_MAX] <= limit;

		fprintf(out, "  %-6s max hops <= 2 log2(N) = %-36.1f measured %.0f\n",
			ok ? "[ok]" : "[MISS]", limit, r->v[R_BROADCAST_HOPS_MAX]);
	}
}
