/* Prometheus text exposition of a node's counters and gauges.
 *
 * `dht-ctl metrics` (the control command `metrics`) returns this text; it
 * follows https://prometheus.io/docs/instrumenting/exposition_formats/:
 * one HELP and one TYPE line per metric family, then its samples. */
#ifndef KM_NET_METRICS_H
#define KM_NET_METRICS_H

#include <stddef.h>

#include "dht/contact.h"

/* Upper bounds of the lookup duration histogram, in milliseconds; one
 * more bucket (+Inf) catches the rest. */
#define KM_LOOKUP_HIST_BOUNDS 50, 100, 250, 500, 1000, 2500, 5000, 10000
#define KM_LOOKUP_HIST_N 8

struct km_lookup_hist {
	unsigned long le[KM_LOOKUP_HIST_N + 1]; /* not cumulative; [N]: +Inf */
	unsigned long count;
	km_ms sum_ms;
};

void km_lookup_hist_observe(struct km_lookup_hist *h, km_ms ms);

struct km_node;

/* The exposition text, NUL-terminated, in a malloc'd buffer the caller
 * frees; NULL when memory runs out. */
char *km_metrics_render(struct km_node *n, km_ms now);

#endif
