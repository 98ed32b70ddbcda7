/* The control protocol: sessions, line framing and command dispatch.
 *
 * Each session owns one fixed line buffer, so a client costs at most
 * KM_CONTROL_LINE_MAX bytes however it behaves.  One request per session is
 * served at a time: lookups answer later, from km_control_lookup_done(), and
 * a complete line that arrives meanwhile is refused with "busy" rather than
 * queued, because serving it from inside lookup_done would re-enter the DHT
 * from its own callback.  cJSON builds every response, so whatever a
 * hostile peer put in an address or a request comes out escaped. */
#include "ops/control.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "ops/metrics.h"
#include "proto/base64.h"
#include "proto/msg.h"
#include "proto/err.h"

#define MAX_ARGS 8
/* How much of a bad command name an error message echoes back. */
#define ECHO_MAX 40
/* A lookup returns k nodes (8) and the peers it heard (256 by default). */
#define RESULTS_MAX 256
#define PEERS_MAX 1024
/* Neighbours listed by `peers`: max_in + max_out stay well below. */
#define NEIGHBOURS_MAX 1024

enum pending_kind { PENDING_NONE, PENDING_LOOKUP, PENDING_ANNOUNCE };

struct session {
	uint64_t id;
	enum pending_kind pending;
	bool have_lookup_id;      /* false while km_node_lookup() runs */
	uint64_t lookup_id;
	uint16_t announce_port;
	bool subscribed;          /* delivered messages stream to it */
	uint8_t family;           /* of the pending lookup; KM_AF_NONE: default */
	size_t len;
	char line[KM_CONTROL_LINE_MAX];
};

struct km_control {
	struct km_node *node;
	struct km_control_callbacks cb;
	void *user;
	struct session *sessions[KM_CONTROL_MAX_SESSIONS];
	uint64_t next_id;
	/* The session whose lookup is being started: a lookup with nobody to
	 * ask ends inside km_node_lookup(), before its id is known here. */
	struct session *starting;
};

struct command {
	const char *name;
	void (*run)(struct km_control *c, struct session *s, int argc,
		    char **argv, km_ms now);
	int min_args, max_args;   /* not counting the command itself */
	const char *usage;
	const char *help;
};

static const struct command commands[];

/* Responses */

static void write_json(struct km_control *c, struct session *s, cJSON *root)
{
	static const char oom[] = "{\"ok\":false,\"error\":\"out of memory\"}\n";
	char *txt = root ? cJSON_PrintUnformatted(root) : NULL;
	size_t n = txt ? strlen(txt) : 0;
	char *line = txt ? malloc(n + 1) : NULL;

	if (line) {
		memcpy(line, txt, n);
		line[n] = '\n';
		c->cb.write(c->user, s->id, line, n + 1);
	} else {
		c->cb.write(c->user, s->id, oom, sizeof(oom) - 1);
	}
	free(line);
	cJSON_free(txt);
	cJSON_Delete(root);
}

/* Takes ownership of result; NULL means building it ran out of memory. */
static void respond_ok(struct km_control *c, struct session *s, cJSON *result)
{
	cJSON *root = cJSON_CreateObject();

	if (!result || !root || !cJSON_AddTrueToObject(root, "ok") ||
	    !cJSON_AddItemToObject(root, "result", result)) {
		cJSON_Delete(result);
		cJSON_Delete(root);
		root = NULL;
	}
	write_json(c, s, root);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void respond_error(struct km_control *c, struct session *s,
			  const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	cJSON *root = cJSON_CreateObject();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!root || !cJSON_AddFalseToObject(root, "ok") ||
	    !cJSON_AddStringToObject(root, "error", msg)) {
		cJSON_Delete(root);
		root = NULL;
	}
	write_json(c, s, root);
}

/* JSON builders.  cJSON signals running out of memory by returning NULL
 * from every add; one flag per response keeps the builders straight-line,
 * and a builder that failed returns NULL so the client hears about it. */

static void put_num(cJSON *o, const char *key, double v, bool *ok)
{
	*ok = *ok && cJSON_AddNumberToObject(o, key, v);
}

static void put_str(cJSON *o, const char *key, const char *v, bool *ok)
{
	*ok = *ok && cJSON_AddStringToObject(o, key, v);
}

static cJSON *put_obj(cJSON *o, const char *key, bool *ok)
{
	cJSON *child = *ok ? cJSON_AddObjectToObject(o, key) : NULL;

	*ok = child != NULL;
	return child;
}

static cJSON *put_arr(cJSON *o, const char *key, bool *ok)
{
	cJSON *child = *ok ? cJSON_AddArrayToObject(o, key) : NULL;

	*ok = child != NULL;
	return child;
}

static cJSON *finish(cJSON *o, bool ok)
{
	if (ok && o)
		return o;
	cJSON_Delete(o);
	return NULL;
}

static void put_id(cJSON *o, const char *key, const struct km_id *id,
		   bool *ok)
{
	char hex[KM_ID_HEXLEN + 1];

	km_id_to_hex(id, hex);
	put_str(o, key, hex, ok);
}

static void put_addr(cJSON *o, const char *key, const struct km_addr *a,
		     bool *ok)
{
	char buf[KM_ADDR_STRLEN];

	if (km_addr_format(a, buf, sizeof(buf)) < 0)
		strcpy(buf, "-");
	put_str(o, key, buf, ok);
}

static const char *family_name(uint8_t family)
{
	return family == KM_AF_INET6 ? "ipv6" : "ipv4";
}

static const uint8_t families[2] = { KM_AF_INET4, KM_AF_INET6 };

static void status_identity(cJSON *o, struct km_node *n, km_ms now, bool *ok)
{
	const struct km_node_config *cfg = km_node_config(n);
	km_ms started = km_node_started_at(n);

	put_id(o, "id", km_dht_id(km_node_dht(n)), ok);
	put_num(o, "port", cfg->port, ok);
	put_num(o, "uptime_s", (double)(now > started ? (now - started) / 1000 : 0),
		ok);
	put_str(o, "family", family_name(cfg->dht.family), ok);
	put_num(o, "k", cfg->dht.table.k, ok);
	*ok = *ok && cJSON_AddBoolToObject(o, "read_only", cfg->dht.read_only);
}

/* "families", and the routing table size of each family and in all. */
static void status_families(cJSON *o, struct km_node *n, bool *ok)
{
	cJSON *list = put_arr(o, "families", ok);
	size_t total = 0;

	for (int i = 0; i < 2; i++) {
		struct km_dht *d = km_node_dht_of(n, families[i]);
		size_t size = d ? km_table_size(km_dht_table(d)) : 0;

		if (d && *ok)
			*ok = cJSON_AddItemToArray(list,
				cJSON_CreateString(family_name(families[i])));
		put_num(o, i == 0 ? "routing_table_size4" :
				    "routing_table_size6", (double)size, ok);
		total += size;
	}
	put_num(o, "routing_table_size", (double)total, ok);
}

static void status_table(cJSON *o, const struct km_table *t, bool *ok)
{
	int buckets = km_table_bucket_count(t);
	int nonempty = 0;
	size_t replacements = 0;
	cJSON *sizes;

	put_num(o, "buckets", buckets, ok);
	sizes = put_arr(o, "bucket_sizes", ok);
	for (int b = 0; b < buckets && *ok; b++) {
		size_t size = km_table_bucket_size(t, b);

		nonempty += size > 0;
		replacements += km_table_replacement_count(t, b);
		*ok = cJSON_AddItemToArray(sizes,
					   cJSON_CreateNumber((double)size));
	}
	put_num(o, "buckets_nonempty", nonempty, ok);
	put_num(o, "replacements", (double)replacements, ok);
}

static void status_traffic(cJSON *o, const struct km_node_stats *st, bool *ok)
{
	put_num(o, "packets_in", (double)st->dht.packets_in, ok);
	put_num(o, "packets_out", (double)st->dht.packets_out, ok);
	put_num(o, "bytes_in", (double)st->dht.bytes_in, ok);
	put_num(o, "bytes_out", (double)st->dht.bytes_out, ok);
	put_num(o, "queries_in", (double)st->dht.queries_in, ok);
	put_num(o, "unsolicited_queries", (double)st->dht.unsolicited_in, ok);
	put_num(o, "replies_in", (double)st->dht.replies_in, ok);
	put_num(o, "transactions", (double)st->dht.transactions, ok);
}

static void status_errors(cJSON *o, const struct km_node_stats *st, bool *ok)
{
	cJSON *e = put_obj(o, "errors", ok);

	put_num(e, "malformed_in", (double)st->dht.malformed_in, ok);
	put_num(e, "errors_in", (double)st->dht.errors_in, ok);
	put_num(e, "errors_sent", (double)st->dht.errors_sent, ok);
	put_num(e, "unmatched_replies", (double)st->dht.unmatched_replies, ok);
	put_num(e, "timeouts", (double)st->dht.timeouts, ok);
	put_num(e, "resent", (double)st->dht.resent, ok);
	put_num(e, "tx_full", (double)st->dht.tx_full, ok);
	put_num(e, "hellos_bad", (double)st->hellos_bad, ok);
}

static void status_activity(cJSON *o, const struct km_node_stats *st,
			    bool *ok)
{
	cJSON *l = put_obj(o, "lookups", ok);
	cJSON *ov;

	put_num(l, "started", (double)st->dht.lookups_started, ok);
	put_num(l, "done", (double)st->dht.lookups_done, ok);
	put_num(l, "running", (double)st->dht.lookups, ok);
	ov = put_obj(o, "overlay", ok);
	put_num(ov, "links", (double)st->links, ok);
	put_num(ov, "links_in", (double)st->links_in, ok);
	put_num(ov, "links_out", (double)st->links_out, ok);
	put_num(ov, "hellos_ok", (double)st->hellos_ok, ok);
	put_num(ov, "auth_failed", (double)st->auth_failed, ok);
	put_num(ov, "auth_key_refused", (double)st->auth_key_refused, ok);
	put_num(ov, "pins", (double)st->pins, ok);
	put_num(ov, "peer_lists_in", (double)st->peer_lists_in, ok);
	put_num(ov, "peer_lists_out", (double)st->peer_lists_out, ok);
	put_num(ov, "bootstrap_krpc_fallbacks",
		(double)st->bootstrap_krpc_fallbacks, ok);
}

/* Every cap the node enforces, with its configured value and how often it
 * bit, so an operator can see a defence at work (docs/CONTROL.md).  now or
 * hit < 0: not tracked for this cap. */
static void limit_cap(cJSON *lim, const char *key, double limit, double now,
		      double hit, bool *ok)
{
	cJSON *o = put_obj(lim, key, ok);

	put_num(o, "limit", limit, ok);
	if (now >= 0)
		put_num(o, "now", now, ok);
	if (hit >= 0)
		put_num(o, "hit", hit, ok);
}

/* The defence counters of every family's km_dht, summed. */
struct limit_counts {
	struct km_ratelimit_stats rs;
	struct km_table_stats ts;
	size_t banned_now, transactions;
	unsigned long tx_full, trimmed, unsent;
};

static void limit_counts(struct km_node *n, km_ms now, struct limit_counts *c)
{
	*c = (struct limit_counts){ 0 };
	for (int i = 0; i < 2; i++) {
		struct km_dht *d = km_node_dht_of(n, families[i]);
		const struct km_ratelimit *rl;
		struct km_ratelimit_stats rs;
		struct km_table_stats ts;
		struct km_dht_stats ds;

		if (!d)
			continue;
		rl = km_dht_ratelimit(d);
		rs = km_ratelimit_stats(rl);
		ts = km_table_stats(km_dht_table(d));
		ds = km_dht_stats(d);
		c->rs.limited += rs.limited;
		c->rs.banned_drops += rs.banned_drops;
		c->rs.bans += rs.bans;
		c->rs.evictions += rs.evictions;
		c->rs.entries += rs.entries;
		c->ts.rejected_subnet += ts.rejected_subnet;
		c->ts.rejected_bep42 += ts.rejected_bep42;
		c->ts.capped += ts.capped;
		c->banned_now += km_ratelimit_banned_now(rl, now);
		c->transactions += ds.transactions;
		c->tx_full += ds.tx_full;
		c->trimmed += ds.replies_trimmed;
		c->unsent += ds.replies_unsent;
	}
}

static void status_limits(cJSON *o, struct km_node *n, km_ms now, bool *ok)
{
	const struct km_node_config *nc = km_node_config(n);
	const struct km_dht_config *dc = &nc->dht;
	struct km_node_stats st = km_node_stats(n);
	struct km_peers_stats ps = km_peers_stats(km_dht_peers(km_node_dht(n)));
	struct limit_counts lc;
	cJSON *lim = put_obj(o, "limits", ok), *r, *t, *a;

	limit_counts(n, now, &lc);
	r = put_obj(lim, "rate", ok);
	put_num(r, "qps", dc->rate.qps, ok);
	put_num(r, "burst", dc->rate.burst, ok);
	put_num(r, "ban_after_drops", dc->rate.ban_drops, ok);
	put_num(r, "ban_window_s", (double)dc->rate.ban_window_ms / 1000, ok);
	put_num(r, "ban_s", (double)dc->rate.ban_ms / 1000, ok);
	put_num(r, "limited", (double)lc.rs.limited, ok);
	put_num(r, "banned_drops", (double)lc.rs.banned_drops, ok);
	put_num(r, "bans_total", (double)lc.rs.bans, ok);
	put_num(r, "banned_now", (double)lc.banned_now, ok);
	limit_cap(lim, "rate_sources", (double)dc->rate.max_entries,
		  (double)lc.rs.entries, (double)lc.rs.evictions, ok);
	a = put_obj(lim, "amplification", ok);
	put_num(a, "factor", dc->amplification, ok);
	put_num(a, "unverified_reply_bps", (double)dc->unverified_reply_bps, ok);
	put_num(a, "trimmed", (double)lc.trimmed, ok);
	put_num(a, "unsent", (double)lc.unsent, ok);
	limit_cap(lim, "transactions", (double)dc->max_transactions,
		  (double)lc.transactions, (double)lc.tx_full, ok);
	limit_cap(lim, "peers_stored", (double)dc->peers.max_total,
		  (double)ps.total, (double)ps.rejected_full, ok);
	t = put_obj(lim, "subnets", ok);
	put_num(t, "per_bucket", dc->table.bucket_subnet_max, ok);
	put_num(t, "per_table", dc->table.table_subnet_max, ok);
	*ok = *ok && cJSON_AddBoolToObject(t, "strict", dc->table.strict_subnets);
	put_num(t, "rejected", (double)lc.ts.rejected_subnet, ok);
	t = put_obj(lim, "bep42", ok);
	*ok = *ok && cJSON_AddBoolToObject(t, "strict", dc->table.bep42_strict);
	put_num(t, "rejected", (double)lc.ts.rejected_bep42, ok);
	limit_cap(lim, "table_nodes", dc->table.max_nodes,
		  (double)km_table_size(km_dht_table(km_node_dht(n))),
		  (double)lc.ts.capped, ok);
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
	cJSON *nb = put_obj(o, "neighbours", ok);
	cJSON *b;

	put_num(nb, "in", (double)st->neighbours.in, ok);
	put_num(nb, "out", (double)st->neighbours.out, ok);
	put_num(nb, "pending_in", (double)st->neighbours.pending_in, ok);
	put_num(nb, "pending_out", (double)st->neighbours.pending_out, ok);
	put_num(nb, "refused_ip", (double)st->neighbours.refused_ip, ok);
	put_num(nb, "refused_full", (double)st->neighbours.refused_full, ok);
	put_num(nb, "evicted", (double)st->neighbours.evicted, ok);
	put_num(nb, "refused_subnet", (double)st->neighbours.refused_subnet, ok);
	put_num(nb, "anchors", (double)st->neighbours.anchors, ok);
	put_num(nb, "duplicates", (double)st->neighbours.duplicates, ok);
	put_num(nb, "ping_timeouts", (double)st->ping_timeouts, ok);
	b = put_obj(o, "broadcast", ok);
	put_num(b, "originated", (double)st->bcast.originated, ok);
	put_num(b, "delivered", (double)st->bcast.delivered, ok);
	put_num(b, "duplicates", (double)st->bcast.duplicates, ok);
	put_num(b, "relayed", (double)st->bcast.relayed, ok);
	put_num(b, "ihave_sent", (double)st->bcast.ihave_sent, ok);
	put_num(b, "graft_sent", (double)st->bcast.graft_sent, ok);
	put_num(b, "prune_sent", (double)st->bcast.prune_sent, ok);
	put_num(b, "dropped", (double)st->bcast.dropped, ok);
	put_num(b, "forged", (double)st->bcast.forged, ok);
	put_num(b, "replayed", (double)st->bcast.replayed, ok);
	put_num(b, "rate_limited", (double)st->bcast.rate_limited, ok);
	put_num(b, "eager", (double)st->bcast.eager, ok);
	put_num(b, "lazy", (double)st->bcast.lazy, ok);
}

static void nat_counters(cJSON *o, struct km_node_nat_stats st, bool *ok)
{
	cJSON *d = put_obj(o, "nat", ok);

	put_num(d, "dialbacks_asked", (double)st.dialbacks_asked, ok);
	put_num(d, "dialbacks_ok", (double)st.dialbacks_ok, ok);
	put_num(d, "dialbacks_failed", (double)st.dialbacks_failed, ok);
	put_num(d, "dialbacks_served", (double)st.dialbacks_served, ok);
	put_num(d, "dialbacks_busy", (double)st.dialbacks_busy, ok);
	put_num(d, "dialbacks_undecided", (double)st.dialbacks_undecided, ok);
	put_num(d, "dialback_probes", (double)st.dialback_probes, ok);
	put_num(d, "inbound_proofs", (double)st.inbound_proofs, ok);
	put_num(d, "krpc_proofs", (double)st.krpc_proofs, ok);
	put_num(d, "results_connected",
		(double)st.dial_results[KM_DIAL_CONNECTED], ok);
	put_num(d, "results_refused", (double)st.dial_results[KM_DIAL_REFUSED],
		ok);
	put_num(d, "results_timed_out",
		(double)st.dial_results[KM_DIAL_TIMED_OUT], ok);
	put_num(d, "results_busy", (double)st.dial_results[KM_DIAL_BUSY], ok);
	put_num(d, "keepalives", (double)st.keepalives, ok);
	put_num(d, "punches_coordinated", (double)st.punches_coordinated, ok);
	put_num(d, "punch_attempts", (double)st.punch_attempts, ok);
	put_num(d, "punches_ok", (double)st.punches_ok, ok);
	put_num(d, "punches_failed", (double)st.punches_failed, ok);
	put_num(d, "relays_served", (double)st.relays_served, ok);
	put_num(d, "relays_refused", (double)st.relays_refused, ok);
	put_num(d, "relays_cut", (double)st.relays_cut, ok);
	put_num(d, "relay_bytes", (double)st.relay_bytes, ok);
	put_num(d, "relayed_links", (double)st.relayed_links, ok);
	put_num(d, "upgrade_attempts", (double)st.upgrade_attempts, ok);
	put_num(d, "punches_asked", (double)st.punches_asked, ok);
	put_num(d, "relay_circuits", (double)st.relay_circuits, ok);
	put_num(d, "relayed_now", (double)st.relayed_now, ok);
	put_num(d, "last_punch_ms", (double)st.last_punch_ms, ok);
	put_num(d, "last_relay_ms", (double)st.last_relay_ms, ok);
}

/* NAT awareness (net/nat.h): where peers see us, and whether they can
 * reach us there. */
static void status_nat(cJSON *o, struct km_node *n, bool *ok)
{
	const struct km_nat *nat = km_node_nat(n);
	const struct km_addr *ext = km_nat_external(nat);

	if (ext)
		put_addr(o, "external_addr", ext, ok);
	else
		*ok = *ok && cJSON_AddNullToObject(o, "external_addr");
	put_str(o, "reachability", km_reach_name(km_nat_reachability(nat)), ok);
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
	b = put_obj(o, "last_goodbye", ok);
	put_num(b, "code", g->reason, ok);
	put_str(b, "reason", km_goodbye_reason_name(g->reason), ok);
	if (g->decoded)
		put_str(b, "text", g->text, ok);
	else
		*ok = *ok && cJSON_AddNullToObject(b, "text");
	put_addr(b, "from", &g->from, ok);
	if (g->authenticated)
		put_id(b, "id", &g->id, ok);
	else
		*ok = *ok && cJSON_AddNullToObject(b, "id");
	put_num(b, "age_s", (double)(now > g->at ? (now - g->at) / 1000 : 0),
		ok);
}

static cJSON *json_status(struct km_node *n, km_ms now)
{
	struct km_dht *d = km_node_dht(n);
	struct km_node_stats st = km_node_stats(n);
	struct km_peers_stats ps = { 0 };
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL;

	for (int i = 0; i < 2; i++) {
		struct km_dht *f = km_node_dht_of(n, families[i]);
		struct km_peers_stats p;

		if (!f)
			continue;
		p = km_peers_stats(km_dht_peers(f));
		ps.total += p.total;
		ps.hashes += p.hashes;
		ps.rejected_full += p.rejected_full;
	}
	status_identity(o, n, now, &ok);
	status_families(o, n, &ok);
	status_table(o, km_dht_table(d), &ok);
	status_traffic(o, &st, &ok);
	status_errors(o, &st, &ok);
	status_activity(o, &st, &ok);
	status_neighbours(o, &st, &ok);
	status_nat(o, n, &ok);
	status_goodbye(o, n, now, &ok);
	put_num(o, "peers_stored", (double)ps.total, &ok);
	put_num(o, "peer_hashes", (double)ps.hashes, &ok);
	put_num(o, "peers_rejected", (double)ps.rejected_full, &ok);
	status_limits(o, n, now, &ok);
	return finish(o, ok);
}

static const char *state_name(enum km_node_state st)
{
	switch (st) {
	case KM_NODE_GOOD: return "good";
	case KM_NODE_QUESTIONABLE: return "questionable";
	default: return "bad";
	}
}

static bool table_entry(cJSON *list, const struct km_table *t,
			const struct km_table_entry *e, int bucket, km_ms now)
{
	/* Adding to an array fails only for a NULL item: nothing leaks. */
	cJSON *o = cJSON_CreateObject();
	bool ok = cJSON_AddItemToArray(list, o);
	km_ms age = now > e->last_seen ? now - e->last_seen : 0;

	put_id(o, "id", &e->c.id, &ok);
	put_addr(o, "addr", &e->c.addr, &ok);
	put_str(o, "state", state_name(km_table_state(t, e, now)), &ok);
	put_num(o, "last_seen_s", (double)(age / 1000), &ok);
	put_num(o, "rtt_ms", e->rtt_ms, &ok);
	put_num(o, "bucket", bucket, &ok);
	put_num(o, "failures", e->failures, &ok);
	return ok;
}

/* IPv4 entries first, then IPv6; bucket 0 first within each. */
static cJSON *json_table(struct km_node *n, km_ms now)
{
	cJSON *list = cJSON_CreateArray();
	bool ok = list != NULL;

	for (int f = 0; ok && f < 2; f++) {
		struct km_dht *d = km_node_dht_of(n, families[f]);
		const struct km_table *t = d ? km_dht_table(d) : NULL;
		int buckets = t ? km_table_bucket_count(t) : 0;

		for (int b = 0; ok && b < buckets; b++)
			for (size_t i = 0; ok && i < km_table_bucket_size(t, b);
			     i++)
				ok = table_entry(list, t,
						 km_table_bucket_entry(t, b, i),
						 b, now);
	}
	return finish(list, ok);
}

static bool neighbour_entry(cJSON *list, const struct km_neighbour *nb,
			    km_ms now)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = cJSON_AddItemToArray(list, o);

	put_id(o, "id", &nb->id, &ok);
	put_addr(o, "addr", &nb->addr, &ok);
	put_str(o, "direction", nb->outbound ? "out" : "in", &ok);
	put_num(o, "age_s", (double)((now > nb->since ? now - nb->since : 0) /
				     1000), &ok);
	put_num(o, "rtt_ms", nb->rtt_ms, &ok);
	put_num(o, "bytes_in", (double)nb->bytes_in, &ok);
	put_num(o, "bytes_out", (double)nb->bytes_out, &ok);
	put_num(o, "msgs_in", (double)nb->frames_in, &ok);
	put_num(o, "msgs_out", (double)nb->frames_out, &ok);
	ok = ok && cJSON_AddBoolToObject(o, "eager", nb->eager);
	put_str(o, "via", km_via_name(nb->via), &ok);
	return ok;
}

static cJSON *json_neighbours(struct km_node *n, km_ms now)
{
	struct km_neighbour *nb = malloc(NEIGHBOURS_MAX * sizeof(*nb));
	size_t count = nb ? km_node_neighbours(n, nb, NEIGHBOURS_MAX) : 0;
	cJSON *list = nb ? cJSON_CreateArray() : NULL;
	bool ok = list != NULL;

	if (count > NEIGHBOURS_MAX)
		count = NEIGHBOURS_MAX;
	for (size_t i = 0; ok && i < count; i++)
		ok = neighbour_entry(list, &nb[i], now);
	free(nb);
	return finish(list, ok);
}

/* The lookup's results, closest first (its contract, but the output
 * promises the order, so it is checked here: insertion sort is linear on
 * sorted input). */
static size_t lookup_results(const struct km_lookup *lk,
			     struct km_lookup_result *res)
{
	const struct km_id *target = km_lookup_target(lk);
	size_t n = km_lookup_results(lk, res, RESULTS_MAX);

	for (size_t i = 1; i < n; i++) {
		struct km_lookup_result tmp = res[i];
		size_t j = i;

		for (; j > 0 && km_id_cmp_distance(target, &res[j - 1].c.id,
						   &tmp.c.id) > 0; j--)
			res[j] = res[j - 1];
		res[j] = tmp;
	}
	return n;
}

/* Adds "nodes"; with only_tokens, just those that gave an announce token. */
static void put_nodes(cJSON *o, const struct km_lookup *lk, bool only_tokens,
		      bool *ok)
{
	struct km_lookup_result *res = malloc(RESULTS_MAX * sizeof(*res));
	size_t n = res ? lookup_results(lk, res) : 0;
	cJSON *list = put_arr(o, "nodes", ok);

	*ok = *ok && res;
	for (size_t i = 0; *ok && i < n; i++) {
		cJSON *node;

		if (only_tokens && res[i].token_len == 0)
			continue;
		node = cJSON_CreateObject();
		*ok = node && cJSON_AddItemToArray(list, node);
		put_id(node, "id", &res[i].c.id, ok);
		put_addr(node, "addr", &res[i].c.addr, ok);
		put_num(node, "rtt_ms", res[i].rtt_ms, ok);
	}
	free(res);
}

static void put_peers(cJSON *o, const struct km_lookup *lk, bool *ok)
{
	struct km_addr *peers = malloc(PEERS_MAX * sizeof(*peers));
	size_t n = peers ? km_lookup_peers(lk, peers, PEERS_MAX) : 0;
	cJSON *list = put_arr(o, "peers", ok);

	*ok = *ok && peers;
	for (size_t i = 0; *ok && i < n; i++) {
		char buf[KM_ADDR_STRLEN];

		if (km_addr_format(&peers[i], buf, sizeof(buf)) < 0)
			continue;
		*ok = cJSON_AddItemToArray(list, cJSON_CreateString(buf));
	}
	free(peers);
}

static void put_lookup_stats(cJSON *o, const struct km_lookup *lk, bool *ok)
{
	struct km_lookup_stats st = km_lookup_stats(lk);
	km_ms elapsed = st.finished > st.started ? st.finished - st.started : 0;

	put_num(o, "rounds", st.rounds, ok);
	put_num(o, "queries", st.queries, ok);
	put_num(o, "elapsed_ms", (double)elapsed, ok);
}

static cJSON *json_lookup(const struct km_lookup *lk)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL;

	put_id(o, "target", km_lookup_target(lk), &ok);
	put_nodes(o, lk, false, &ok);
	if (km_lookup_kind(lk) == KM_LOOKUP_GET_PEERS)
		put_peers(o, lk, &ok);
	put_lookup_stats(o, lk, &ok);
	return finish(o, ok);
}

static cJSON *json_announce(const struct km_lookup *lk, uint16_t port)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL;

	put_id(o, "target", km_lookup_target(lk), &ok);
	put_num(o, "port", port, &ok);
	put_nodes(o, lk, true, &ok);
	put_lookup_stats(o, lk, &ok);
	return finish(o, ok);
}

/* Sessions */

static struct session **session_slot(struct km_control *c, uint64_t id)
{
	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++)
		if (c->sessions[i] && c->sessions[i]->id == id)
			return &c->sessions[i];
	return NULL;
}

static void session_free(struct km_control *c, struct session *s)
{
	struct session **slot = session_slot(c, s->id);

	if (c->starting == s)
		c->starting = NULL;
	*slot = NULL;
	free(s);
}

struct km_control *km_control_new(struct km_node *node,
				  const struct km_control_callbacks *cb,
				  void *user)
{
	struct km_control *c;

	if (!node || !cb || !cb->write || !cb->close)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->node = node;
	c->cb = *cb;
	c->user = user;
	c->next_id = 1;
	return c;
}

void km_control_del(struct km_control *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++)
		free(c->sessions[i]);
	free(c);
}

uint64_t km_control_open(struct km_control *c)
{
	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++) {
		struct session *s;

		if (c->sessions[i])
			continue;
		s = malloc(sizeof(*s));
		if (!s)
			return 0;
		memset(s, 0, offsetof(struct session, line));
		s->id = c->next_id++;
		c->sessions[i] = s;
		return s->id;
	}
	return 0;
}

void km_control_closed(struct km_control *c, uint64_t session)
{
	struct session **slot = session_slot(c, session);

	/* A lookup still running for it finds nobody in lookup_done. */
	if (slot)
		session_free(c, *slot);
}

bool km_control_pending(const struct km_control *c, uint64_t session)
{
	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++)
		if (c->sessions[i] && c->sessions[i]->id == session)
			return c->sessions[i]->pending != PENDING_NONE ||
			       c->sessions[i]->subscribed;
	return false;
}

/* Broadcast */

static cJSON *json_message(const struct km_message *m)
{
	cJSON *o = cJSON_CreateObject();
	char *b64 = malloc(KM_BASE64_LEN(m->payload_len) + 1);
	struct km_id id, origin;
	bool ok = o && b64;

	memcpy(id.b, m->id, KM_ID_LEN);
	memcpy(origin.b, m->origin, KM_ID_LEN);
	put_str(o, "event", "message", &ok);
	put_id(o, "id", &id, &ok);
	put_id(o, "origin", &origin, &ok);
	put_num(o, "hops", m->hops, &ok);
	put_num(o, "size", (double)m->payload_len, &ok);
	if (ok)
		km_base64_encode(m->payload, m->payload_len, b64);
	put_str(o, "payload_b64", b64, &ok);
	free(b64);
	return finish(o, ok);
}

void km_control_deliver(struct km_control *c, const struct km_message *m)
{
	cJSON *event = NULL;

	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++) {
		struct session *s = c->sessions[i];

		if (!s || !s->subscribed)
			continue;
		if (!event && !(event = json_message(m)))
			return;
		/* write_json frees what it prints: each session gets a copy. */
		write_json(c, s, cJSON_Duplicate(event, true));
	}
	cJSON_Delete(event);
}

/* Line handling */

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Splits line in place on blanks; returns the argument count, or -1 if
 * there are more than max. */
static int split_args(char *line, char **argv, int max)
{
	int argc = 0;

	for (char *p = line; *p;) {
		if (is_blank(*p)) {
			*p++ = '\0';
			continue;
		}
		if (argc == max)
			return -1;
		argv[argc++] = p;
		while (*p && !is_blank(*p))
			p++;
	}
	return argc;
}

/* A printable, bounded copy of untrusted text for an error message. */
static void echo_safe(const char *in, char out[static ECHO_MAX + 4])
{
	size_t i;

	for (i = 0; in[i] && i < ECHO_MAX; i++)
		out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
	strcpy(out + i, in[i] ? "..." : "");
}

static const struct command *command_find(const char *name)
{
	for (const struct command *cmd = commands; cmd->name; cmd++)
		if (strcmp(cmd->name, name) == 0)
			return cmd;
	return NULL;
}

static void handle_line(struct km_control *c, struct session *s, char *line,
			size_t len, km_ms now)
{
	char *argv[MAX_ARGS];
	char echo[ECHO_MAX + 4];
	const struct command *cmd;
	int argc;

	if (memchr(line, '\0', len)) {
		respond_error(c, s, "request contains a NUL byte");
		return;
	}
	argc = split_args(line, argv, MAX_ARGS);
	if (argc == 0)
		return; /* a blank line is not a request */
	if (s->pending != PENDING_NONE) {
		respond_error(c, s, "busy: the previous request has not been "
			      "answered yet");
		return;
	}
	if (argc < 0) {
		respond_error(c, s, "too many arguments");
		return;
	}
	cmd = command_find(argv[0]);
	echo_safe(argv[0], echo);
	if (!cmd)
		respond_error(c, s, "unknown command '%s' (try 'help')", echo);
	else if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args)
		respond_error(c, s, "usage: %s", cmd->usage);
	else
		cmd->run(c, s, argc - 1, argv + 1, now);
}

/* Serves every complete line in the buffer and keeps the partial rest. */
static void drain_lines(struct km_control *c, struct session *s, km_ms now)
{
	size_t start = 0;
	char *nl;

	while ((nl = memchr(s->line + start, '\n', s->len - start))) {
		size_t len = (size_t)(nl - (s->line + start));

		*nl = '\0';
		if (len > 0 && s->line[start + len - 1] == '\r')
			s->line[start + --len] = '\0';
		handle_line(c, s, s->line + start, len, now);
		start = (size_t)(nl - s->line) + 1;
	}
	memmove(s->line, s->line + start, s->len - start);
	s->len -= start;
}

void km_control_recv(struct km_control *c, uint64_t session,
		     const uint8_t *buf, size_t len, km_ms now)
{
	struct session **slot = session_slot(c, session);
	struct session *s = slot ? *slot : NULL;

	while (s && len > 0) {
		size_t n = KM_CONTROL_LINE_MAX - s->len;

		n = len < n ? len : n;
		memcpy(s->line + s->len, buf, n);
		s->len += n;
		buf += n;
		len -= n;
		drain_lines(c, s, now);
		if (s->len == KM_CONTROL_LINE_MAX) {
			respond_error(c, s, "request line longer than %d bytes",
				      KM_CONTROL_LINE_MAX - 1);
			session_free(c, s);
			c->cb.close(c->user, session);
			return;
		}
	}
}

/* Lookups */

static struct session *waiting_session(struct km_control *c,
				       uint64_t lookup_id)
{
	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++) {
		struct session *s = c->sessions[i];

		if (s && s->pending != PENDING_NONE && s->have_lookup_id &&
		    s->lookup_id == lookup_id)
			return s;
	}
	if (c->starting && c->starting->pending != PENDING_NONE)
		return c->starting;
	return NULL;
}

bool km_control_lookup_done(struct km_control *c, uint64_t lookup_id,
			    const struct km_lookup *lk)
{
	struct session *s = waiting_session(c, lookup_id);
	bool announce;

	if (!s)
		return false;
	announce = s->pending == PENDING_ANNOUNCE;
	s->pending = PENDING_NONE;
	if (announce)
		respond_ok(c, s, json_announce(lk, s->announce_port));
	else
		respond_ok(c, s, json_lookup(lk));
	return true;
}

/* Marks s as waiting, starts the lookup, and notes its id unless it has
 * already ended (and been answered) inside the call. */
static void start_lookup(struct km_control *c, struct session *s,
			 const struct km_id *target, enum km_lookup_kind kind,
			 bool announce, km_ms now)
{
	uint64_t id = 0;
	int rc;

	s->pending = announce ? PENDING_ANNOUNCE : PENDING_LOOKUP;
	s->have_lookup_id = false;
	c->starting = s;
	if (announce)
		rc = km_node_announce_in(c->node, s->family, target,
					 s->announce_port, &id, now);
	else
		rc = km_node_lookup_in(c->node, s->family, target, kind, &id,
				       now);
	c->starting = NULL;
	if (rc < 0) {
		s->pending = PENDING_NONE;
		respond_error(c, s, "%s", rc == KM_ERR_FULL ?
			      "too many lookups running; try again later" :
			      rc == KM_ERR_INVAL ?
			      "this node does not run that address family" :
			      km_strerror(rc));
		return;
	}
	s->lookup_id = id;
	s->have_lookup_id = true;
}

/* Commands */

static bool parse_id(struct km_control *c, struct session *s, const char *hex,
		     struct km_id *out)
{
	if (km_id_from_hex(hex, out))
		return true;
	respond_error(c, s, "malformed ID: expected %d hex characters",
		      KM_ID_HEXLEN);
	return false;
}

static bool parse_port(struct km_control *c, struct session *s,
		       const char *str, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; str[i] >= '0' && str[i] <= '9' && i < 6; i++)
		v = v * 10 + (unsigned long)(str[i] - '0');
	if (i == 0 || str[i] != '\0' || v == 0 || v > 65535) {
		respond_error(c, s, "bad port: expected a number from 1 to "
			      "65535");
		return false;
	}
	*out = (uint16_t)v;
	return true;
}

/* An optional last argument "ipv4" or "ipv6" picks the lookup's family;
 * returns the arguments left, or -1 after answering an error. */
static int parse_family(struct km_control *c, struct session *s, int argc,
			char **argv)
{
	s->family = KM_AF_NONE;
	if (argc == 0)
		return 0;
	if (strcmp(argv[argc - 1], "ipv4") == 0)
		s->family = KM_AF_INET4;
	else if (strcmp(argv[argc - 1], "ipv6") == 0)
		s->family = KM_AF_INET6;
	else
		return argc;
	return argc - 1;
}

static void cmd_status(struct km_control *c, struct session *s, int argc,
		       char **argv, km_ms now)
{
	cJSON *st = json_status(c->node, now);
	size_t subscribers = 0;

	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++)
		subscribers += c->sessions[i] && c->sessions[i]->subscribed;
	if (st && !cJSON_AddNumberToObject(st, "subscribers",
					   (double)subscribers)) {
		cJSON_Delete(st);
		st = NULL;
	}
	respond_ok(c, s, st);
}

static void cmd_table(struct km_control *c, struct session *s, int argc,
		      char **argv, km_ms now)
{
	respond_ok(c, s, json_table(c->node, now));
}

static void cmd_lookup(struct km_control *c, struct session *s, int argc,
		       char **argv, km_ms now)
{
	struct km_id target;

	if (parse_family(c, s, argc, argv) != 1) {
		respond_error(c, s, "usage: lookup ID [ipv4|ipv6]");
		return;
	}
	if (parse_id(c, s, argv[0], &target))
		start_lookup(c, s, &target, KM_LOOKUP_FIND_NODE, false, now);
}

static void cmd_get_peers(struct km_control *c, struct session *s, int argc,
			  char **argv, km_ms now)
{
	struct km_id target;

	if (parse_family(c, s, argc, argv) != 1) {
		respond_error(c, s, "usage: get-peers ID [ipv4|ipv6]");
		return;
	}
	if (parse_id(c, s, argv[0], &target))
		start_lookup(c, s, &target, KM_LOOKUP_GET_PEERS, false, now);
}

static void cmd_announce(struct km_control *c, struct session *s, int argc,
			 char **argv, km_ms now)
{
	struct km_id target;

	argc = parse_family(c, s, argc, argv);
	if (argc < 1 || argc > 2) {
		respond_error(c, s, "usage: announce ID [PORT] [ipv4|ipv6]");
		return;
	}
	if (!parse_id(c, s, argv[0], &target))
		return;
	s->announce_port = km_node_config(c->node)->port;
	if (argc == 2 && !parse_port(c, s, argv[1], &s->announce_port))
		return;
	start_lookup(c, s, &target, KM_LOOKUP_GET_PEERS, true, now);
}

static void cmd_punch(struct km_control *c, struct session *s, int argc,
		      char **argv, km_ms now)
{
	struct km_id id;
	int rc;

	if (!parse_id(c, s, argv[0], &id))
		return;
	rc = km_node_punch(c->node, &id, now);
	if (rc < 0)
		respond_error(c, s, rc == KM_ERR_FULL ? "no neighbour to ask"
				   : "cannot punch to that node");
	else
		respond_ok(c, s, cJSON_CreateObject());
}

static void cmd_peers(struct km_control *c, struct session *s, int argc,
		      char **argv, km_ms now)
{
	respond_ok(c, s, json_neighbours(c->node, now));
}

static void cmd_broadcast(struct km_control *c, struct session *s, int argc,
			  char **argv, km_ms now)
{
	/* The request line bounds the base64, so this is at most ~3 KiB. */
	size_t cap = strlen(argv[0]) / 4 * 3 + 1;
	uint8_t *payload = malloc(cap), id[KM_MSG_ID_LEN];
	int len = payload ? km_base64_decode(argv[0], payload, cap) : KM_ERR_NOMEM;
	cJSON *o;
	struct km_id mid;
	bool ok;

	int rc = len;

	if (len >= 0)
		rc = km_node_broadcast(c->node, payload, (size_t)len, id, now);
	free(payload);
	if (rc < 0)
		len = rc;
	if (len < 0) {
		respond_error(c, s, "%s", len == KM_ERR_SYNTAX ?
			      "payload is not base64" : km_strerror(len));
		return;
	}
	o = cJSON_CreateObject();
	ok = o != NULL;
	memcpy(mid.b, id, KM_ID_LEN);
	put_id(o, "id", &mid, &ok);
	put_num(o, "size", len, &ok);
	respond_ok(c, s, finish(o, ok));
}

static void cmd_subscribe(struct km_control *c, struct session *s, int argc,
			  char **argv, km_ms now)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddTrueToObject(o, "subscribed");

	s->subscribed = true;
	respond_ok(c, s, finish(o, ok));
}

static void cmd_metrics(struct km_control *c, struct session *s, int argc,
			char **argv, km_ms now)
{
	char *text = km_metrics_render(c->node, now);
	cJSON *o = text ? cJSON_CreateObject() : NULL;

	if (o && !cJSON_AddStringToObject(o, "text", text)) {
		cJSON_Delete(o);
		o = NULL;
	}
	free(text);
	respond_ok(c, s, o);
}

static void cmd_help(struct km_control *c, struct session *s, int argc,
		     char **argv, km_ms now)
{
	cJSON *list = cJSON_CreateArray();
	bool ok = list != NULL;

	for (const struct command *cmd = commands; ok && cmd->name; cmd++) {
		cJSON *o = cJSON_CreateObject();

		ok = o && cJSON_AddItemToArray(list, o) &&
		     cJSON_AddStringToObject(o, "command", cmd->name) &&
		     cJSON_AddStringToObject(o, "usage", cmd->usage) &&
		     cJSON_AddStringToObject(o, "help", cmd->help);
	}
	if (!ok) {
		cJSON_Delete(list);
		list = NULL;
	}
	respond_ok(c, s, list);
}

static const struct command commands[] = {
	{ "status", cmd_status, 0, 0, "status",
	  "identity, uptime, routing table size and traffic counters" },
	{ "table", cmd_table, 0, 0, "table",
	  "every routing table entry" },
	{ "lookup", cmd_lookup, 1, 2, "lookup ID [ipv4|ipv6]",
	  "the k nodes closest to ID, by an iterative find_node (in the "
	  "node's default family unless one is named)" },
	{ "get-peers", cmd_get_peers, 1, 2, "get-peers ID [ipv4|ipv6]",
	  "like lookup, with get_peers, plus the peers announced under ID" },
	{ "announce", cmd_announce, 1, 3, "announce ID [PORT] [ipv4|ipv6]",
	  "announce this node under ID (PORT defaults to the node's port)" },
	{ "peers", cmd_peers, 0, 0, "peers",
	  "the overlay neighbours: id, addr, direction, age, rtt, traffic" },
	{ "punch", cmd_punch, 1, 1, "punch ID",
	  "ask our neighbours to act as rendezvous for a hole-punched link "
	  "to node ID" },
	{ "broadcast", cmd_broadcast, 1, 1, "broadcast BASE64",
	  "send the base64-decoded payload to every node" },
	{ "subscribe", cmd_subscribe, 0, 0, "subscribe",
	  "stream every delivered broadcast message as an event line" },
	{ "metrics", cmd_metrics, 0, 0, "metrics",
	  "counters and gauges in the Prometheus text format, as \"text\"" },
	{ "help", cmd_help, 0, 0, "help", "this list" },
	{ NULL, NULL, 0, 0, NULL, NULL },
};
