/* What the node counts about itself, for the operator surface (ops/) to
 * print: the counting happens here, in the core, where the events are, and
 * so does every sum over the two address families, so that the formatters
 * (status, metrics, the library) only format.  Shared by node.c, which
 * fills struct km_node_stats (net/node.h), and ops/. */
#ifndef KM_NET_STATS_H
#define KM_NET_STATS_H

#include <stddef.h>

#include "dht/dht.h"
#include "dht/peers.h"
#include "dht/ratelimit.h"
#include "dht/table.h"

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

void km_stats_observe_lookup(struct km_lookup_hist *h, km_ms ms);

/* Every family's km_dht counters, summed over the families the node runs. */
struct km_family_sums {
	struct km_dht_stats dht;
	struct km_ratelimit_stats rate;  /* the flood limiter */
	struct km_table_stats table;     /* the table's admission caps */
	struct km_peers_stats peers;     /* the get_peers store */
	size_t table_size[2];            /* routing table entries: IPv4, IPv6 */
};

/* Adds d's counters; family_index is 0 for IPv4, 1 for IPv6. */
void km_stats_add_family(struct km_family_sums *sum, unsigned family_index,
			 const struct km_dht *d);

/* The pieces, each adding every member of its struct. */
void km_stats_add_dht(struct km_dht_stats *sum, const struct km_dht_stats *s);
void km_stats_add_rate(struct km_ratelimit_stats *sum,
		       const struct km_ratelimit_stats *s);
void km_stats_add_table(struct km_table_stats *sum,
			const struct km_table_stats *s);
void km_stats_add_peers(struct km_peers_stats *sum,
			const struct km_peers_stats *s);

#endif
