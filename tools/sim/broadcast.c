/* The broadcast and churn scenarios: km_bcast over the overlay that the
 * connection managers build from the routing tables (overlay.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "overlay.h"
#include "scenarios.h"

/* SCENARIO_SETTLE_MS is ~10 hops of <= 150 ms, a lost segment's RTO, and
 * an IHAVE timeout. */
#define SETTLE_MS SCENARIO_SETTLE_MS
/* After churn: a broadcast every SERIES_GAP_MS for SERIES_MS. */
#define SERIES_GAP_MS SETTLE_MS
#define SERIES_MS KM_SECONDS(150)
/* A crashed neighbour is noticed after 3 missed PINGs, 15 s apart. */
#define DETECT_MIN_MS KM_SECONDS(45)
#define DETECT_SPAN_MS KM_SECONDS(15)
#define LAT_HIST_MS 60000
/* Lookups run twice after churn: at once (SERIES_MS after the crash), and
 * once km_dht's table maintenance has had LOOKUP_REPAIR_MS to ping the dead
 * out of the routing tables; the JSON keys are the second. */
#define LOOKUP_REPAIR_MS KM_MINUTES(15)
/* Coverage of survivors from which the network counts as repaired. */
#define REPAIRED 0.99

struct bstats {
	size_t count;               /* broadcasts measured */
	double cov_min, cov_sum;
	double copies;              /* after the first broadcast */
	size_t copies_n;
	unsigned long payload_bytes, control_bytes;
	unsigned hops_max;
	unsigned long *lat_hist;    /* LAT_HIST_MS + 1 buckets */
	unsigned long lat_n;
};

static void bstats_init(struct bstats *st)
{
	*st = (struct bstats){ .cov_min = 1 };
	if (!(st->lat_hist = calloc(LAT_HIST_MS + 1, sizeof(*st->lat_hist)))) {
		fputs("dht-sim: out of memory\n", stderr);
		exit(1);
	}
}

static size_t pick_alive(struct sim *w, struct osim *os)
{
	for (;;) {
		size_t i = (size_t)sim_pick(w, w->n);

		if (osim_alive(os, i))
			return i;
	}
}

/* One broadcast from a random live node; returns its coverage. */
static double broadcast_once(struct sim *w, struct osim *os, bool first,
			     struct bstats *st)
{
	uint8_t *payload = malloc(w->opt.payload);
	struct osim_report r;
	double cov;

	if (!payload) {
		fputs("dht-sim: out of memory\n", stderr);
		exit(1);
	}
	for (size_t i = 0; i < w->opt.payload; i++)
		payload[i] = (uint8_t)sim_pick(w, 256);
	osim_broadcast(os, pick_alive(w, os), payload, w->opt.payload,
		       SETTLE_MS, &r);
	free(payload);
	cov = r.live ? (double)r.reached / (double)r.live : 0;
	st->count++;
	st->cov_sum += cov;
	if (cov < st->cov_min)
		st->cov_min = cov;
	if (r.hops_max > st->hops_max)
		st->hops_max = r.hops_max;
	if (!first) {
		st->copies += r.copies_per_node;
		st->copies_n++;
		st->payload_bytes += r.payload_bytes;
		st->control_bytes += r.control_bytes;
	}
	for (size_t i = 0; i < w->n; i++) {
		km_ms after;
		unsigned hops;

		if (osim_alive(os, i) && osim_delivered(os, i, &after, &hops)) {
			st->lat_hist[after < LAT_HIST_MS ? after : LAT_HIST_MS]++;
			st->lat_n++;
		}
	}
	return cov;
}

static double lat_p99(const struct bstats *st)
{
	unsigned long seen = 0;

	for (size_t ms = 0; ms <= LAT_HIST_MS; ms++) {
		seen += st->lat_hist[ms];
		if ((double)seen >= 0.99 * (double)st->lat_n)
			return (double)ms;
	}
	return LAT_HIST_MS;
}

static double round6(double v) { return round(v * 1e6) / 1e6; }

static void bstats_report(const struct bstats *st, struct report *r,
			  FILE *out, const char *what)
{
	double copies = st->copies_n ? st->copies / (double)st->copies_n : 0;
	double ratio = st->payload_bytes ?
		(double)st->control_bytes / (double)st->payload_bytes : 0;

	report_set(r, R_BROADCAST_COVERAGE_MIN, round6(st->cov_min));
	report_set(r, R_BROADCAST_COVERAGE_MEAN,
		   round6(st->count ? st->cov_sum / (double)st->count : 0));
	report_set(r, R_BROADCAST_COPIES_PER_NODE, round6(copies));
	report_set(r, R_BROADCAST_CONTROL_BYTES_RATIO, round6(ratio));
	report_set(r, R_BROADCAST_HOPS_MAX, st->hops_max);
	report_set(r, R_BROADCAST_LATENCY_MS_P99, lat_p99(st));
	fprintf(out, "%s: %zu broadcasts; coverage min %.4f%%, mean %.4f%%; "
		"payload copies per node %.3f (after the first); control bytes "
		"%.1f%% of payload bytes; max hops %u; latency p99 %.0f ms\n",
		what, st->count, 100 * st->cov_min,
		st->count ? 100 * st->cov_sum / (double)st->count : 0, copies,
		100 * ratio, st->hops_max, lat_p99(st));
}

static void report_links(struct sim *w, struct overlay *ov, struct report *r,
			 FILE *out)
{
	size_t max, total = overlay_links(ov, &max);
	size_t comps = overlay_components(ov);
	struct osim *os = overlay_osim(ov);
	double flood = osim_flood_copies(os);

	report_set(r, R_CONNECTIONS_PER_NODE_MAX, (double)max);
	report_set(r, R_CONNECTIONS_TOTAL, (double)total);
	report_set(r, R_OVERLAY_COMPONENTS, (double)comps);
	report_set(r, R_FLOOD_COPIES_PER_NODE, round6(flood));
	fprintf(out, "overlay: %zu TCP links (out-degree <= %d, chosen by "
		"km_connmgr from each routing table), %zu at most on one node, "
		"%zu connected component(s); flooding on it would cost %.2f "
		"payload copies per node\n", total, w->opt.max_out, max,
		comps, flood);
}

static struct overlay *build(struct sim *w, struct report *r, FILE *out)
{
	struct overlay *ov;

	scenario_bootstrap(w, out);
	scenario_measure_state(w, r, out);
	if (!(ov = overlay_new(w, NULL))) {
		fputs("dht-sim: out of memory building the overlay\n", stderr);
		return NULL;
	}
	return ov;
}

int scenario_broadcast(struct sim *w, struct report *r, FILE *out)
{
	struct overlay *ov = build(w, r, out);
	struct osim *os;
	struct bstats st;

	if (!ov)
		return -1;
	os = overlay_osim(ov);
	report_links(w, ov, r, out);
	bstats_init(&st);
	for (size_t b = 0; b < w->opt.broadcasts; b++) {
		broadcast_once(w, os, b == 0, &st);
		if ((b + 1) % 10 == 0)
			sim_progress(w, "broadcasts", b + 1, w->opt.broadcasts);
	}
	bstats_report(&st, r, out, "broadcast");
	free(st.lat_hist);
	overlay_del(ov);
	return 0;
}

/* Kills opt.churn of the nodes in both worlds at once. */
static size_t churn(struct sim *w, struct osim *os)
{
	size_t killed = scenario_kill(w, w->opt.churn);

	for (size_t i = 0; i < w->n; i++)
		if (w->nodes[i].state != SIM_LIVE && osim_alive(os, i))
			osim_kill_silent(os, i, DETECT_MIN_MS, DETECT_SPAN_MS);
	return killed;
}

int scenario_churn(struct sim *w, struct report *r, FILE *out)
{
	struct overlay *ov = build(w, r, out);
	struct osim *os;
	struct bstats warm, series, after;
	struct report soon = { 0 };
	km_ms t0;
	long long repaired = -1; /* the first of the last run of good ones */
	size_t killed;

	if (!ov)
		return -1;
	os = overlay_osim(ov);
	report_links(w, ov, r, out);
	bstats_init(&warm);
	bstats_init(&series);
	bstats_init(&after);
	/* A few broadcasts first, so that the trees have formed. */
	for (int b = 0; b < 5; b++)
		broadcast_once(w, os, b == 0, &warm);
	sim_run_until(w, osim_now(os));
	t0 = osim_now(os);
	killed = churn(w, os);
	fprintf(out, "churn: %zu nodes (%.1f%%) crashed at once; neighbours "
		"notice after %d-%d s (missed PINGs)\n", killed,
		100.0 * (double)killed / (double)w->n, (int)(DETECT_MIN_MS / 1000),
		(int)((DETECT_MIN_MS + DETECT_SPAN_MS) / 1000));
	fputs("coverage after churn (ms since the crash, share of survivors "
	      "reached):\n", out);
	while (osim_now(os) - t0 < SERIES_MS) {
		km_ms at = osim_now(os) - t0;
		double cov;

		sim_run_until(w, osim_now(os));
		cov = broadcast_once(w, os, false, &series);
		fprintf(out, "  series %lld %.6f\n", (long long)at, cov);
		if (cov < REPAIRED)
			repaired = -1;
		else if (repaired < 0)
			repaired = at;
		osim_run_until(os, t0 + at + SERIES_GAP_MS);
	}
	if (repaired >= 0) {
		report_set(r, R_REPAIR_MS, (double)repaired);
		fprintf(out, "repair: every broadcast from %lld ms after the crash "
			"on reached >= 99%% of survivors\n", repaired);
	} else {
		fputs("repair: the last broadcast still reached < 99% of "
		      "survivors\n", out);
	}
	fprintf(out, "overlay dials that failed (dead contacts): %lu\n",
		overlay_failed_dials(ov));
	sim_run_until(w, osim_now(os));
	fprintf(out, "lookups %lld s after the crash:\n",
		(long long)((w->now - t0) / 1000));
	scenario_run_lookups(w, &soon, out);
	sim_run_until(w, t0 + LOOKUP_REPAIR_MS);
	fprintf(out, "lookups %lld s after the crash (tables repaired):\n",
		(long long)((w->now - t0) / 1000));
	scenario_run_lookups(w, r, out);
	if (r->has[R_LOOKUP_SUCCESS_RATE])
		fprintf(out, "  target: lookups after churn >= 99%% successful: "
			"measured %.2f%% at %lld s, %.2f%% at %lld s [%s]\n",
			100 * soon.v[R_LOOKUP_SUCCESS_RATE],
			(long long)(SERIES_MS / 1000),
			100 * r->v[R_LOOKUP_SUCCESS_RATE],
			(long long)(LOOKUP_REPAIR_MS / 1000),
			r->v[R_LOOKUP_SUCCESS_RATE] >= 0.99 ? "ok" : "MISS");
	osim_run_until(os, w->now);
	for (size_t b = 0; b < w->opt.broadcasts; b++)
		broadcast_once(w, os, false, &after);
	bstats_report(&after, r, out, "broadcast after repair");
	fprintf(out, "  target: >= 99%% of survivors get every broadcast after "
		"repair: measured min %.2f%% [%s]\n", 100 * after.cov_min,
		after.cov_min >= 0.99 ? "ok" : "MISS");
	report_links(w, ov, r, out);
	free(warm.lat_hist);
	free(series.lat_hist);
	free(after.lat_hist);
	overlay_del(ov);
	return 0;
}
