/* What the node counts about itself, for the operator surface (ops/) to
 * print: kept here, in the core, so that the counting happens where the
 * events do and the formatters only format. */
#ifndef KM_NET_STATS_H
#define KM_NET_STATS_H

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

extern const km_ms km_lookup_hist_bounds[KM_LOOKUP_HIST_N];

void km_lookup_hist_observe(struct km_lookup_hist *h, km_ms ms);

#endif
