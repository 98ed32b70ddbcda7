/* Prometheus text for `dht-ctl metrics`: a snapshot of km_node_stats and
 * the routing tables, written into one growing buffer. */
#include "ops/metrics.h"
#include "proto/msg.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "dht/ratelimit.h"
#include "net/node.h"

/* Two families of 160 buckets at ~80 bytes a line stay far below this. */
#define METRICS_MAX (256 * 1024)

struct out {
	char *buf;
	size_t len, cap;
	bool failed;
};

__attribute__((format(printf, 2, 3)))
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	while (!o->failed) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		char *bigger = o->cap * 2 <= METRICS_MAX ?
			realloc(o->buf, o->cap * 2) : NULL;
		o->failed = n < 0 || !bigger;
		if (bigger) {
			o->buf = bigger;
			o->cap *= 2;
		}
	}
}

static void family(struct out *o, const char *name, const char *type,
		   const char *help)
{
	put(o, "# HELP kadmesh_%s %s\n# TYPE kadmesh_%s %s\n", name, help, name,
	    type);
}

static void sample(struct out *o, const char *name, const char *labels,
		   double v)
{
	put(o, "kadmesh_%s%s%s%s %.16g\n", name, labels[0] ? "{" : "", labels,
	    labels[0] ? "}" : "", v);
}

/* One labelled value of a metric family. */
struct lv {
	const char *labels;
	double v;
};

#define LV(labels, v) { labels, (double)(v) }
#define METRIC(o, name, type, help, ...)                                    \
	metric(o, name, type, help, (const struct lv[]){ __VA_ARGS__ },     \
	       sizeof((const struct lv[]){ __VA_ARGS__ }) / sizeof(struct lv))

static void metric(struct out *o, const char *name, const char *type,
		   const char *help, const struct lv *lv, size_t n)
{
	family(o, name, type, help);
	for (size_t i = 0; i < n; i++)
		sample(o, name, lv[i].labels, lv[i].v);
}

static void krpc(struct out *o, const struct km_dht_stats *d)
{
	METRIC(o, "krpc_packets_received_total", "counter",
	       "KRPC datagrams received, by kind.",
	       LV("kind=\"query\"", d->queries_in),
	       LV("kind=\"reply\"", d->replies_in),
	       LV("kind=\"error\"", d->errors_in),
	       LV("kind=\"malformed\"", d->malformed_in));
	METRIC(o, "krpc_packets_sent_total", "counter", "KRPC datagrams sent.",
	       LV("", d->packets_out));
	METRIC(o, "krpc_bytes_total", "counter", "KRPC bytes, by direction.",
	       LV("direction=\"in\"", d->bytes_in),
	       LV("direction=\"out\"", d->bytes_out));
	METRIC(o, "krpc_timeouts_total", "counter",
	       "KRPC queries that went unanswered.", LV("", d->timeouts));
	METRIC(o, "krpc_transactions", "gauge",
	       "KRPC queries waiting for an answer.", LV("", d->transactions));
}

static void overlay(struct out *o, const struct km_node_stats *s)
{
	const struct km_bcast_stats *b = &s->bcast;
	const struct km_cm_counts *nb = &s->neighbours;

	METRIC(o, "overlay_bytes_total", "counter",
	       "Overlay broadcast frame bytes, by direction and type.",
	       LV("direction=\"in\",type=\"message\"", b->payload_bytes_in),
	       LV("direction=\"in\",type=\"control\"", b->control_bytes_in),
	       LV("direction=\"out\",type=\"message\"", b->payload_bytes_out),
	       LV("direction=\"out\",type=\"control\"", b->control_bytes_out));
	METRIC(o, "overlay_frames_sent_total", "counter",
	       "Overlay control frames sent, by type.",
	       LV("type=\"ihave\"", b->ihave_sent),
	       LV("type=\"graft\"", b->graft_sent),
	       LV("type=\"prune\"", b->prune_sent),
	       LV("type=\"peer_list\"", s->peer_lists_out));
	METRIC(o, "broadcasts_total", "counter", "Broadcast messages, by event.",
	       LV("event=\"originated\"", b->originated),
	       LV("event=\"delivered\"", b->delivered),
	       LV("event=\"duplicate\"", b->duplicates),
	       LV("event=\"relayed\"", b->relayed));
	METRIC(o, "neighbours", "gauge",
	       "Overlay neighbours, by direction and state.",
	       LV("direction=\"in\",state=\"up\"", nb->in),
	       LV("direction=\"out\",state=\"up\"", nb->out),
	       LV("direction=\"in\",state=\"handshake\"", nb->pending_in),
	       LV("direction=\"out\",state=\"handshake\"", nb->pending_out));
	METRIC(o, "links", "gauge", "Open overlay TCP connections.",
	       LV("", s->links));
}

static void drops(struct out *o, const struct km_node_stats *s)
{
	METRIC(o, "dropped_total", "counter",
	       "Inputs refused or dropped, by reason (caps and bad input).",
	       LV("reason=\"krpc_malformed\"", s->sum.dht.malformed_in),
	       LV("reason=\"krpc_unmatched_reply\"", s->sum.dht.unmatched_replies),
	       LV("reason=\"krpc_transaction_cap\"", s->sum.dht.tx_full),
	       LV("reason=\"broadcast_bad_or_over_cap\"", s->bcast.dropped),
	       LV("reason=\"hello_bad\"", s->hellos_bad),
	       LV("reason=\"connection_per_ip_cap\"", s->neighbours.refused_ip),
	       LV("reason=\"connection_table_full\"", s->neighbours.refused_full),
	       LV("reason=\"neighbour_per_16_cap\"", s->neighbours.refused_subnet),
	       LV("reason=\"neighbour_ping_timeout\"", s->ping_timeouts),
	       LV("reason=\"rate_limited\"", s->sum.rate.limited),
	       LV("reason=\"banned_source\"", s->sum.rate.banned_drops),
	       LV("reason=\"subnet_cap\"", s->sum.table.rejected_subnet),
	       LV("reason=\"bep42_id_mismatch\"", s->sum.table.rejected_bep42),
	       LV("reason=\"amplification_cap\"", s->sum.dht.replies_unsent),
	       LV("reason=\"auth_failed\"", s->auth_failed),
	       LV("reason=\"auth_key_not_pinned\"", s->auth_key_refused),
	       LV("reason=\"broadcast_forged\"", s->bcast.forged),
	       LV("reason=\"broadcast_replayed\"", s->bcast.replayed),
	       LV("reason=\"broadcast_rate_limited\"", s->bcast.rate_limited));
	METRIC(o, "rate_limit_bans_total", "counter",
	       "Sources banned for flooding, total.", LV("", s->sum.rate.bans));
}

/* NAT traversal: dial-back checks, hole punching, relaying. */
static void nat(struct out *o, struct km_node *n)
{
	struct km_node_nat_stats st = km_node_nat_stats(n);
	enum km_reach r = km_nat_reachability(km_node_nat(n));

	METRIC(o, "reachability", "gauge",
	       "1 for the node's reachability verdict, 0 for the others.",
	       LV("state=\"public\"", r == KM_REACH_PUBLIC),
	       LV("state=\"private\"", r == KM_REACH_PRIVATE),
	       LV("state=\"unknown\"", r == KM_REACH_UNKNOWN));
	METRIC(o, "dialback_checks_total", "counter",
	       "Our reachability checks, by result.",
	       LV("result=\"reachable\"", st.dialbacks_ok),
	       LV("result=\"unreachable\"", st.dialbacks_failed),
	       LV("result=\"undecided\"", st.dialbacks_undecided));
	METRIC(o, "dial_results_total", "counter",
	       "DIAL_RESULTs heard from the neighbours we asked, by result.",
	       LV("result=\"connected\"", st.dial_results[KM_DIAL_CONNECTED]),
	       LV("result=\"refused\"", st.dial_results[KM_DIAL_REFUSED]),
	       LV("result=\"timed_out\"", st.dial_results[KM_DIAL_TIMED_OUT]),
	       LV("result=\"busy\"", st.dial_results[KM_DIAL_BUSY]));
	METRIC(o, "inbound_proofs_total", "counter",
	       "Unsolicited inbound connections that proved us reachable.",
	       LV("", st.inbound_proofs));
	METRIC(o, "krpc_proofs_total", "counter",
	       "Unsolicited KRPC queries that proved our UDP port reachable.",
	       LV("", st.krpc_proofs));
	METRIC(o, "punch_requests_total", "counter",
	       "PUNCH_REQ sent, by reason.",
	       LV("reason=\"auto\"", st.punches_asked),
	       LV("reason=\"upgrade\"", st.upgrade_attempts));
	METRIC(o, "punch_attempts_total", "counter",
	       "TCP simultaneous opens tried.", LV("", st.punch_attempts));
	METRIC(o, "punch_total", "counter", "Hole punches, by result.",
	       LV("result=\"success\"", st.punches_ok),
	       LV("result=\"failure\"", st.punches_failed));
	METRIC(o, "punches_coordinated_total", "counter",
	       "Punches coordinated as the rendezvous (PUNCH_GO pairs).",
	       LV("", st.punches_coordinated));
	METRIC(o, "relay_circuits", "gauge",
	       "Circuits relayed for others now.", LV("", st.relay_circuits));
	METRIC(o, "relay_total", "counter",
	       "Circuits as the relay, by result.",
	       LV("result=\"opened\"", st.relays_served),
	       LV("result=\"refused\"", st.relays_refused),
	       LV("result=\"cut\"", st.relays_cut));
	METRIC(o, "relay_bytes_total", "counter",
	       "Link bytes relayed for others.", LV("", st.relay_bytes));
	METRIC(o, "relayed_links", "gauge",
	       "Our neighbour links that go through a relay now.",
	       LV("", st.relayed_now));
	METRIC(o, "relayed_links_total", "counter",
	       "Our links opened through a relay.", LV("", st.relayed_links));
}

static void lookups(struct out *o, const struct km_node_stats *s)
{
	const struct km_lookup_hist *h = &s->lookup_ms;
	unsigned long cum = 0;
	char le[48];

	METRIC(o, "lookups_started_total", "counter", "Lookups started.",
	       LV("", s->sum.dht.lookups_started));
	METRIC(o, "lookups_running", "gauge", "Lookups running now.",
	       LV("", s->sum.dht.lookups));
	family(o, "lookup_duration_seconds", "histogram",
	       "How long finished lookups took.");
	for (int i = 0; i <= KM_LOOKUP_HIST_N; i++) {
		cum += h->le[i];
		if (i < KM_LOOKUP_HIST_N)
			snprintf(le, sizeof(le), "le=\"%g\"",
				 (double)km_lookup_hist_bounds[i] / 1000);
		else
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		sample(o, "lookup_duration_seconds_bucket", le, (double)cum);
	}
	sample(o, "lookup_duration_seconds_sum", "", (double)h->sum_ms / 1000);
	sample(o, "lookup_duration_seconds_count", "", (double)h->count);
}

static void table(struct out *o, struct km_node *n)
{
	static const uint8_t fams[2] = { KM_AF_INET4, KM_AF_INET6 };
	static const char *names[2] = { "ipv4", "ipv6" };
	char labels[48];

	family(o, "routing_table_bucket_nodes", "gauge",
	       "Nodes in each routing table bucket, by bucket index.");
	for (int f = 0; f < 2; f++) {
		struct km_dht *d = km_node_dht_of(n, fams[f]);
		const struct km_table *t = d ? km_dht_table(d) : NULL;

		for (int b = 0; t && b < km_table_bucket_count(t); b++) {
			snprintf(labels, sizeof(labels),
				 "family=\"%s\",bucket=\"%d\"", names[f], b);
			sample(o, "routing_table_bucket_nodes", labels,
			       (double)km_table_bucket_size(t, b));
		}
	}
}

char *km_metrics_render(struct km_node *n, km_ms now)
{
	struct km_node_stats s = km_node_stats(n);
	struct out o = { .buf = malloc(8192), .cap = 8192 };

	if (!o.buf)
		return NULL;
	METRIC(&o, "uptime_seconds", "gauge", "Seconds since the node started.",
	       LV("", (double)(now - km_node_started_at(n)) / 1000));
	krpc(&o, &s.sum.dht);
	overlay(&o, &s);
	drops(&o, &s);
	lookups(&o, &s);
	nat(&o, n);
	table(&o, n);
	if (o.failed) {
		free(o.buf);
		return NULL;
	}
	return o.buf;
}
