/* What a scenario measured, printed for people and as one JSON line. */
#ifndef KM_SIM_REPORT_H
#define KM_SIM_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The JSON keys, in output order.  Each is printed only when set. */
enum report_key {
	R_LOOKUP_SUCCESS_RATE,
	R_LOOKUP_ROUNDS_MEDIAN,
	R_LOOKUP_ROUNDS_P90,
	R_LOOKUP_LATENCY_MS_MEDIAN,
	R_LOOKUP_LATENCY_MS_P99,
	R_LOOKUP_MESSAGES_MEAN,
	R_LOOKUP_FLOOR_MS_MEDIAN,
	R_LOOKUP_FLOOR_MS_P99,
	R_LOOKUP_FOUND_MS_MEDIAN,
	R_LOOKUP_EAGER_MS_MEDIAN,
	R_LOOKUP_TAIL_MS_MEDIAN,
	R_LOOKUP_TAIL_MS_P99,
	R_BROADCAST_COVERAGE_MIN,
	R_BROADCAST_COVERAGE_MEAN,
	R_BROADCAST_COPIES_PER_NODE,
	R_BROADCAST_CONTROL_BYTES_RATIO,
	R_BROADCAST_HOPS_MAX,
	R_BROADCAST_LATENCY_MS_P99,
	R_BROADCAST_MESSAGES,
	R_FLOOD_COPIES_PER_NODE,
	R_REPAIR_MS,
	R_CONNECTIONS_PER_NODE_MAX,
	R_CONNECTIONS_TOTAL,
	R_OVERLAY_COMPONENTS,
	R_MESH_CONNECTIONS_PER_NODE,
	R_MESH_CONNECTIONS_TOTAL,
	R_TABLE_CONTACTS_MEAN,
	R_TABLE_CONTACTS_MAX,
	R_DHT_STATE_BYTES_PER_NODE,
	R_PACKETS,
	R_PEAK_RSS_MB,
	R_WALL_S,
	R_COUNT
};

struct report {
	bool has[R_COUNT];
	double v[R_COUNT];
};

void report_set(struct report *r, enum report_key k, double v);

/* One line per target the issue sets, beside the measured value. */
void report_targets(const struct report *r, size_t nodes, double dead,
		    FILE *out);

/* The last line of --json output.  wall_s and peak_rss_mb vary from run to
 * run; everything else is a function of the options and the seed. */
void report_json(const struct report *r, size_t nodes, unsigned long long seed,
		 const char *scenario, FILE *out);

#endif
