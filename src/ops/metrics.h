/* Prometheus text exposition of a node's counters and gauges.
 *
 * `dht-ctl metrics` (the control command `metrics`) returns this text; it
 * follows https://prometheus.io/docs/instrumenting/exposition_formats/:
 * one HELP and one TYPE line per metric family, then its samples. */
#ifndef KM_OPS_METRICS_H
#define KM_OPS_METRICS_H

#include <stddef.h>

#include "proto/ms.h"

struct km_node;

/* The exposition text, NUL-terminated, in a malloc'd buffer the caller
 * frees; NULL when memory runs out. */
char *km_metrics_render(struct km_node *n, km_ms now);

#endif
