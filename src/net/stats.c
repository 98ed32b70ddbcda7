#include "net/stats.h"

const km_ms km_lookup_hist_bounds[KM_LOOKUP_HIST_N] = { KM_LOOKUP_HIST_BOUNDS };

void km_stats_observe_lookup(struct km_lookup_hist *h, km_ms ms)
{
	size_t i = 0;

	while (i < KM_LOOKUP_HIST_N && ms > km_lookup_hist_bounds[i])
		i++;
	h->le[i]++;
	h->count++;
	h->sum_ms += ms;
}

void km_stats_add_dht(struct km_dht_stats *sum, const struct km_dht_stats *s)
{
	sum->packets_in += s->packets_in;
	sum->packets_out += s->packets_out;
	sum->bytes_in += s->bytes_in;
	sum->bytes_out += s->bytes_out;
	sum->queries_in += s->queries_in;
	sum->replies_in += s->replies_in;
	sum->errors_in += s->errors_in;
	sum->malformed_in += s->malformed_in;
	sum->errors_sent += s->errors_sent;
	sum->unmatched_replies += s->unmatched_replies;
	sum->unsolicited_in += s->unsolicited_in;
	sum->timeouts += s->timeouts;
	sum->resent += s->resent;
	sum->tx_full += s->tx_full;
	sum->lookups_started += s->lookups_started;
	sum->lookups_done += s->lookups_done;
	sum->replies_trimmed += s->replies_trimmed;
	sum->replies_unsent += s->replies_unsent;
	sum->transactions += s->transactions;
	sum->lookups += s->lookups;
}

void km_stats_add_rate(struct km_ratelimit_stats *sum,
		       const struct km_ratelimit_stats *s)
{
	sum->limited += s->limited;
	sum->banned_drops += s->banned_drops;
	sum->bans += s->bans;
	sum->evictions += s->evictions;
	sum->entries += s->entries;
}

void km_stats_add_table(struct km_table_stats *sum,
			const struct km_table_stats *s)
{
	sum->rejected_subnet += s->rejected_subnet;
	sum->rejected_bep42 += s->rejected_bep42;
	sum->capped += s->capped;
}

void km_stats_add_peers(struct km_peers_stats *sum,
			const struct km_peers_stats *s)
{
	sum->hashes += s->hashes;
	sum->total += s->total;
	sum->rejected_full += s->rejected_full;
	sum->expired += s->expired;
}

void km_stats_add_family(struct km_family_sums *sum, unsigned family_index,
			 const struct km_dht *d)
{
	struct km_dht_stats ds = km_dht_stats(d);
	struct km_ratelimit_stats rs = km_ratelimit_stats(km_dht_ratelimit(d));
	struct km_table_stats ts = km_table_stats(km_dht_table(d));
	struct km_peers_stats ps = km_peers_stats(km_dht_peers(d));

	km_stats_add_dht(&sum->dht, &ds);
	km_stats_add_rate(&sum->rate, &rs);
	km_stats_add_table(&sum->table, &ts);
	km_stats_add_peers(&sum->peers, &ps);
	sum->table_size[family_index] += km_table_size(km_dht_table(d));
}
