/* The `status` answer: what the node is, its tables, its traffic, the
 * caps that bit, its neighbours, its NAT verdict and the last GOODBYE
 * (docs/CONTROL.md lists every key; tests/package/test_docs.py checks). */
#include "ops/status.h"

#include "dht/ratelimit.h"
#include "ops/json.h"

static void status_identity(cJSON *o, struct km_node *n, km_ms now, bool *ok)
{
	const struct km_node_config *cfg = km_node_config(n);
	km_ms started = km_node_started_at(n);

	km_json_id(o, "id", km_dht_id(km_node_dht(n)), ok);
	km_json_num(o, "port", cfg->port, ok);
	km_json_num(o, "uptime_s",
		    (double)(now > started ? (now - started) / 1000 : 0), ok);
	km_json_str(o, "family", km_json_family(cfg->dht.family), ok);
	km_json_num(o, "k", cfg->dht.table.k, ok);
	*ok = *ok && cJSON_AddBoolToObject(o, "read_only", cfg->dht.read_only);
}

/* "families", and the routing table size of each family and in all. */
static void status_families(cJSON *o, struct km_node *n,
			    const struct km_node_stats *st, bool *ok)
{
	cJSON *list = km_json_arr(o, "families", ok);
	const size_t *size = st->sum.table_size;

	for (int i = 0; i < 2 && *ok; i++)
		if (km_node_dht_of(n, km_json_families[i]))
			*ok = cJSON_AddItemToArray(list, cJSON_CreateString(
				km_json_family(km_json_families[i])));
	km_json_num(o, "routing_table_size4", (double)size[0], ok);
	km_json_num(o, "routing_table_size6", (double)size[1], ok);
	km_json_num(o, "routing_table_size", (double)(size[0] + size[1]), ok);
}

static void status_table(cJSON *o, const struct km_table *t, bool *ok)
{
	int buckets = km_table_bucket_count(t);
	int nonempty = 0;
	size_t replacements = 0;
	cJSON *sizes;

	km_json_num(o, "buckets", buckets, ok);
	sizes = km_json_arr(o, "bucket_sizes", ok);
	for (int b = 0; b < buckets && *ok; b++) {
		size_t size = km_table_bucket_size(t, b);

		nonempty += size > 0;
		replacements += km_table_replacement_count(t, b);
		*ok = cJSON_AddItemToArray(sizes,
					   cJSON_CreateNumber((double)size));
	}
	km_json_num(o, "buckets_nonempty", nonempty, ok);
	km_json_num(o, "replacements", (double)replacements, ok);
}

static void status_traffic(cJSON *o, const struct km_node_stats *st, bool *ok)
{
	km_json_num(o, "packets_in", (double)st->sum.dht.packets_in, ok);
	km_json_num(o, "packets_out", (double)st->sum.dht.packets_out, ok);
	km_json_num(o, "bytes_in", (double)st->sum.dht.bytes_in, ok);
	km_json_num(o, "bytes_out", (double)st->sum.dht.bytes_out, ok);
	km_json_num(o, "queries_in", (double)st->sum.dht.queries_in, ok);
	km_json_num(o, "unsolicited_queries", (double)st->sum.dht.unsolicited_in, ok);
	km_json_num(o, "replies_in", (double)st->sum.dht.replies_in, ok);
	km_json_num(o, "transactions", (double)st->sum.dht.transactions, ok);
}

static void status_errors(cJSON *o, const struct km_node_stats *st, bool *ok)
{
	cJSON *e = km_json_obj(o, "errors", ok);

	km_json_num(e, "malformed_in", (double)st->sum.dht.malformed_in, ok);
	km_json_num(e, "errors_in", (double)st->sum.dht.errors_in, ok);
	km_json_num(e, "errors_sent", (double)st->sum.dht.errors_sent, ok);
	km_json_num(e, "unmatched_replies", (double)st->sum.dht.unmatched_replies, ok);
	km_json_num(e, "timeouts", (double)st->sum.dht.timeouts, ok);
	km_json_num(e, "resent", (double)st->sum.dht.resent, ok);
	km_json_num(e, "tx_full", (double)st->sum.dht.tx_full, ok);
	km_json_num(e, "hellos_bad", (double)st->hellos_bad, ok);
}

static void status_activity(cJSON *o, const struct km_node_stats *st,
			    bool *ok)
{
	cJSON *l = km_json_obj(o, "lookups", ok);
	cJSON *ov;

	km_json_num(l, "started", (double)st->sum.dht.lookups_started, ok);
	km_json_num(l, "done", (double)st->sum.dht.lookups_done, ok);
	km_json_num(l, "running", (double)st->sum.dht.lookups, ok);
	ov = km_json_obj(o, "overlay", ok);
	km_json_num(ov, "links", (double)st->links, ok);
	km_json_num(ov, "links_in", (double)st->links_in, ok);
	km_json_num(ov, "links_out", (double)st->links_out, ok);
	km_json_num(ov, "hellos_ok", (double)st->hellos_ok, ok);
	km_json_num(ov, "auth_failed", (double)st->auth_failed, ok);
	km_json_num(ov, "auth_key_refused", (double)st->auth_key_refused, ok);
	km_json_num(ov, "pins", (double)st->pins, ok);
	km_json_num(ov, "peer_lists_in", (double)st->peer_lists_in, ok);
	km_json_num(ov, "peer_lists_out", (double)st->peer_lists_out, ok);
	km_json_num(ov, "bootstrap_krpc_fallbacks",
		(double)st->bootstrap_krpc_fallbacks, ok);
}

/* Every cap the node enforces, with its configured value and how often it
 * bit, so an operator can see a defence at work (docs/CONTROL.md).  now or
 * hit < 0: not tracked for this cap. */
static void limit_cap(cJSON *lim, const char *key, double limit, double now,
		      double hit, bool *ok)
{
	cJSON *o = km_json_obj(lim, key, ok);

	km_json_num(o, "limit", limit, ok);
	if (now >= 0)
		km_json_num(o, "now", now, ok);
	if (hit >= 0)
		km_json_num(o, "hit", hit, ok);
}

static void status_limits(cJSON *o, struct km_node *n, km_ms now, bool *ok)
{
	const struct km_node_config *nc = km_node_config(n);
	const struct km_dht_config *dc = &nc->dht;
	struct km_node_stats st = km_node_stats(n);
	struct km_peers_stats ps = km_peers_stats(km_dht_peers(km_node_dht(n)));
	const struct km_family_sums *sum = &st.sum;
	cJSON *lim = km_json_obj(o, "limits", ok), *r, *t, *a;

	r = km_json_obj(lim, "rate", ok);
	km_json_num(r, "qps", dc->rate.qps, ok);
	km_json_num(r, "burst", dc->rate.burst, ok);
	km_json_num(r, "ban_after_drops", dc->rate.ban_drops, ok);
	km_json_num(r, "ban_window_s", (double)dc->rate.ban_window_ms / 1000, ok);
	km_json_num(r, "ban_s", (double)dc->rate.ban_ms / 1000, ok);
	km_json_num(r, "limited", (double)sum->rate.limited, ok);
	km_json_num(r, "banned_drops", (double)sum->rate.banned_drops, ok);
	km_json_num(r, "bans_total", (double)sum->rate.bans, ok);
	km_json_num(r, "banned_now", (double)km_node_banned_now(n, now), ok);
	limit_cap(lim, "rate_sources", (double)dc->rate.max_entries,
		  (double)sum->rate.entries, (double)sum->rate.evictions, ok);
	a = km_json_obj(lim, "amplification", ok);
	km_json_num(a, "factor", dc->amplification, ok);
	km_json_num(a, "unverified_reply_bps", (double)dc->unverified_reply_bps, ok);
	km_json_num(a, "trimmed", (double)sum->dht.replies_trimmed, ok);
	km_json_num(a, "unsent", (double)sum->dht.replies_unsent, ok);
	limit_cap(lim, "transactions", (double)dc->max_transactions,
		  (double)sum->dht.transactions, (double)sum->dht.tx_full, ok);
	limit_cap(lim, "peers_stored", (double)dc->peers.max_total,
		  (double)ps.total, (double)ps.rejected_full, ok);
	t = km_json_obj(lim, "subnets", ok);
	km_json_num(t, "per_bucket", dc->table.bucket_subnet_max, ok);
	km_json_num(t, "per_table", dc->table.table_subnet_max, ok);
	*ok = *ok && cJSON_AddBoolToObject(t, "strict", dc->table.strict_subnets);
	km_json_num(t, "rejected", (double)sum->table.rejected_subnet, ok);
	t = km_json_obj(lim, "bep42", ok);
	*ok = *ok && cJSON_AddBoolToObject(t, "strict", dc->table.bep42_strict);
	km_json_num(t, "rejected", (double)sum->table.rejected_bep42, ok);
	limit_cap(lim, "table_nodes", dc->table.max_nodes,
		  (double)km_table_size(km_dht_table(km_node_dht(n))),
		  (double)sum->table.capped, ok);
	limit_cap(lim, "neighbours_in", (double)nc->cm.max_in,
		  (double)st.neighbours.in, (double)st.neighbours.refused_full, ok);
	limit_cap(lim, "neighbours_out", (double)nc->cm.max_out,
		  (double)st.neighbours.out, -1, ok);
	limit_cap(lim, "links_per_ip", (double)nc->cm.max_per_ip, -1,
		  (double)st.neighbours.refused_ip, ok);
	limit_cap(lim, "seen_cache", (double)nc->bcast.seen_max,
		  (double)st.bcast.seen_now, (double)st.bcast.seen_evicted, ok);
}

static void status_neighbours(cJSON *o, const struct km_node_stats *st,
			      bool *ok)
{
	cJSON *nb = km_json_obj(o, "neighbours", ok);
	cJSON *b;

	km_json_num(nb, "in", (double)st->neighbours.in, ok);
	km_json_num(nb, "out", (double)st->neighbours.out, ok);
	km_json_num(nb, "pending_in", (double)st->neighbours.pending_in, ok);
	km_json_num(nb, "pending_out", (double)st->neighbours.pending_out, ok);
	km_json_num(nb, "refused_ip", (double)st->neighbours.refused_ip, ok);
	km_json_num(nb, "refused_full", (double)st->neighbours.refused_full, ok);
	km_json_num(nb, "evicted", (double)st->neighbours.evicted, ok);
	km_json_num(nb, "refused_subnet", (double)st->neighbours.refused_subnet, ok);
	km_json_num(nb, "anchors", (double)st->neighbours.anchors, ok);
	km_json_num(nb, "duplicates", (double)st->neighbours.duplicates, ok);
	km_json_num(nb, "ping_timeouts", (double)st->ping_timeouts, ok);
	b = km_json_obj(o, "broadcast", ok);
	km_json_num(b, "originated", (double)st->bcast.originated, ok);
	km_json_num(b, "delivered", (double)st->bcast.delivered, ok);
	km_json_num(b, "duplicates", (double)st->bcast.duplicates, ok);
	km_json_num(b, "relayed", (double)st->bcast.relayed, ok);
	km_json_num(b, "ihave_sent", (double)st->bcast.ihave_sent, ok);
	km_json_num(b, "graft_sent", (double)st->bcast.graft_sent, ok);
	km_json_num(b, "prune_sent", (double)st->bcast.prune_sent, ok);
	km_json_num(b, "dropped", (double)st->bcast.dropped, ok);
	km_json_num(b, "forged", (double)st->bcast.forged, ok);
	km_json_num(b, "replayed", (double)st->bcast.replayed, ok);
	km_json_num(b, "rate_limited", (double)st->bcast.rate_limited, ok);
	km_json_num(b, "eager", (double)st->bcast.eager, ok);
	km_json_num(b, "lazy", (double)st->bcast.lazy, ok);
}

static void nat_counters(cJSON *o, struct km_node_nat_stats st, bool *ok)
{
	cJSON *d = km_json_obj(o, "nat", ok);

	km_json_num(d, "dialbacks_asked", (double)st.dialbacks_asked, ok);
	km_json_num(d, "dialbacks_ok", (double)st.dialbacks_ok, ok);
	km_json_num(d, "dialbacks_failed", (double)st.dialbacks_failed, ok);
	km_json_num(d, "dialbacks_served", (double)st.dialbacks_served, ok);
	km_json_num(d, "dialbacks_busy", (double)st.dialbacks_busy, ok);
	km_json_num(d, "dialbacks_undecided", (double)st.dialbacks_undecided, ok);
	km_json_num(d, "dialback_probes", (double)st.dialback_probes, ok);
	km_json_num(d, "inbound_proofs", (double)st.inbound_proofs, ok);
	km_json_num(d, "krpc_proofs", (double)st.krpc_proofs, ok);
	km_json_num(d, "results_connected",
		(double)st.dial_results[KM_DIAL_CONNECTED], ok);
	km_json_num(d, "results_refused", (double)st.dial_results[KM_DIAL_REFUSED],
		ok);
	km_json_num(d, "results_timed_out",
		(double)st.dial_results[KM_DIAL_TIMED_OUT], ok);
	km_json_num(d, "results_busy", (double)st.dial_results[KM_DIAL_BUSY], ok);
	km_json_num(d, "keepalives", (double)st.keepalives, ok);
	km_json_num(d, "punches_coordinated", (double)st.punches_coordinated, ok);
	km_json_num(d, "punch_attempts", (double)st.punch_attempts, ok);
	km_json_num(d, "punches_ok", (double)st.punches_ok, ok);
	km_json_num(d, "punches_failed", (double)st.punches_failed, ok);
	km_json_num(d, "relays_served", (double)st.relays_served, ok);
	km_json_num(d, "relays_refused", (double)st.relays_refused, ok);
	km_json_num(d, "relays_cut", (double)st.relays_cut, ok);
	km_json_num(d, "relay_bytes", (double)st.relay_bytes, ok);
	km_json_num(d, "relayed_links", (double)st.relayed_links, ok);
	km_json_num(d, "upgrade_attempts", (double)st.upgrade_attempts, ok);
	km_json_num(d, "punches_asked", (double)st.punches_asked, ok);
	km_json_num(d, "relay_circuits", (double)st.relay_circuits, ok);
	km_json_num(d, "relayed_now", (double)st.relayed_now, ok);
	km_json_num(d, "last_punch_ms", (double)st.last_punch_ms, ok);
	km_json_num(d, "last_relay_ms", (double)st.last_relay_ms, ok);
}

/* NAT awareness (net/nat.h): where peers see us, and whether they can
 * reach us there. */
static void status_nat(cJSON *o, struct km_node *n, bool *ok)
{
	const struct km_nat *nat = km_node_nat(n);
	const struct km_addr *ext = km_nat_external(nat);

	if (ext)
		km_json_addr(o, "external_addr", ext, ok);
	else
		*ok = *ok && cJSON_AddNullToObject(o, "external_addr");
	km_json_str(o, "reachability", km_nat_reach_name(km_nat_reachability(nat)), ok);
	nat_counters(o, km_node_nat_stats(n), ok);
}

/* "last_goodbye": why the last peer that said GOODBYE left, or null.  The
 * text is the peer's own words: cJSON escapes it (the decoder has already
 * refused text that is not UTF-8 or holds a NUL; such a GOODBYE shows its
 * code with "text": null). */
static void status_goodbye(cJSON *o, struct km_node *n, km_ms now, bool *ok)
{
	const struct km_node_goodbye *g = km_node_last_goodbye(n);
	cJSON *b;

	if (!g->any) {
		*ok = *ok && cJSON_AddNullToObject(o, "last_goodbye");
		return;
	}
	b = km_json_obj(o, "last_goodbye", ok);
	km_json_num(b, "code", g->reason, ok);
	km_json_str(b, "reason", km_msg_goodbye_reason_name(g->reason), ok);
	if (g->decoded)
		km_json_str(b, "text", g->text, ok);
	else
		*ok = *ok && cJSON_AddNullToObject(b, "text");
	km_json_addr(b, "from", &g->from, ok);
	if (g->authenticated)
		km_json_id(b, "id", &g->id, ok);
	else
		*ok = *ok && cJSON_AddNullToObject(b, "id");
	km_json_num(b, "age_s", (double)(now > g->at ? (now - g->at) / 1000 : 0),
		ok);
}

cJSON *km_status_json(struct km_node *n, km_ms now)
{
	struct km_dht *d = km_node_dht(n);
	struct km_node_stats st = km_node_stats(n);
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL;

	status_identity(o, n, now, &ok);
	status_families(o, n, &st, &ok);
	status_table(o, km_dht_table(d), &ok);
	status_traffic(o, &st, &ok);
	status_errors(o, &st, &ok);
	status_activity(o, &st, &ok);
	status_neighbours(o, &st, &ok);
	status_nat(o, n, &ok);
	status_goodbye(o, n, now, &ok);
	km_json_num(o, "peers_stored", (double)st.sum.peers.total, &ok);
	km_json_num(o, "peer_hashes", (double)st.sum.peers.hashes, &ok);
	km_json_num(o, "peers_rejected", (double)st.sum.peers.rejected_full, &ok);
	status_limits(o, n, now, &ok);
	return km_json_finish(o, ok);
}
