/* Bootstrapping the network and the lookup scenario. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scenarios.h"

/* The nodes join one after another, spread evenly over --join-over
 * (opt.join_over_ms) of virtual time, each through a random node that
 * joined before it, and then the network settles for --settle.
 *
 * Why the default is a fixed 1,000 s whatever N is: a join takes a few
 * seconds, and two nodes that join at once next to each other in ID space
 * may not learn of each other from their own self-lookups (each one's runs
 * before the other is in anyone's table).  The chance that a joiner has
 * such a neighbour is (joins running at once) x k / N, and joins running at
 * once grow as N / window: so a fixed window keeps that chance about the
 * same at every N.  Real networks grow far slower than 1,000 s for 100,000
 * nodes; a short --join-over is a flash crowd, which the nodes' own
 * refreshes must repair (see dht_search.c). */

/* A lookup starts every LOOKUP_GAP_MS: some overlap, no stampede. */
#define LOOKUP_GAP_MS 20
#define LOOKUP_LIMIT_MS KM_SECONDS(60)
#define MAX_K 64

/* As km_node does: a node that has not heard from its bootstrap node a
 * while after asking it (the query or the reply was lost) asks another.
 * "Heard from" means the bootstrap node is in its table, not merely that
 * the table is non-empty: a node whose join was lost may still be found by
 * a later joiner, and if it stopped there the two would form an island
 * that no lookup ever leaves (measured: with 1% loss, 10,000 nodes split
 * into components of 5,164 and ~4,800). */
#define JOIN_RETRY_MS KM_SECONDS(5)

static void act_join_check(struct sim *s, uint32_t i)
{
	const struct km_id *via = km_dht_id(s->nodes[s->nodes[i].via].dht);

	if (s->nodes[i].state != SIM_LIVE ||
	    km_table_find(km_dht_table(s->nodes[i].dht), via))
		return;
	sim_join(s, i, (size_t)sim_pick(s, i));
	sim_at(s, s->now + JOIN_RETRY_MS, act_join_check, i);
}

static void act_leave(struct sim *s, uint32_t i);

/* --session-median: session lengths follow a Weibull distribution of shape
 * 0.5 with that median, the heavy tail KAD and Mainline measurements show
 * (many short sessions, a few very long ones).  The median of Weibull(k,
 * lambda) is lambda (ln 2)^(1/k), so lambda = median / (ln 2)^2. */
static km_ms session_length(struct sim *s)
{
	double lambda = s->opt.session_median_s / (M_LN2 * M_LN2);
	double e = -log(1.0 - sim_uniform(s));

	return (km_ms)(1000.0 * lambda * e * e) + 1;
}

static void start_session(struct sim *s, uint32_t i)
{
	if (s->opt.session_median_s > 0)
		sim_at(s, s->now + session_length(s), act_leave, i);
}

static void act_join(struct sim *s, uint32_t i)
{
	size_t via = i > 0 ? (size_t)sim_pick(s, i) : i;

	start_session(s, i);
	sim_join(s, i, via);
	if (i > 0)
		sim_at(s, s->now + JOIN_RETRY_MS, act_join_check, i);
	if ((i + 1) % 1000 == 0 || i + 1 == s->n)
		sim_progress(s, "joining", i + 1, s->n);
}

void scenario_bootstrap(struct sim *s, FILE *out)
{
	km_ms start = s->now, over = s->opt.join_over_ms;
	km_ms settle = s->opt.settle_ms;
	unsigned long packets = s->packets;

	for (size_t i = 0; i < s->n; i++)
		sim_at(s, start + (km_ms)i * over / s->n, act_join, (uint32_t)i);
	sim_run_until(s, start + over + settle);
	fprintf(out, "bootstrap: %zu nodes joined over %.0f s of virtual time "
		"(+%.0f s to settle), %lu packets\n", s->n, (double)over / 1000.0,
		(double)settle / 1000.0, s->packets - packets);
}

/* Routing-table contacts: the state a kadmesh node keeps about others,
 * where a full-mesh peer keeps a connection to each. */
static void measure_tables(struct sim *s, struct report *r, FILE *out)
{
	size_t max = 0, sum = 0, live = 0;

	for (size_t i = 0; i < s->n; i++) {
		size_t n;

		if (s->nodes[i].state != SIM_LIVE)
			continue;
		n = km_table_size(km_dht_table(s->nodes[i].dht));
		sum += n;
		live++;
		if (n > max)
			max = n;
	}
	report_set(r, R_TABLE_CONTACTS_MEAN, live ? (double)(long)(10.0 * (double)sum / (double)live) / 10 : 0);
	report_set(r, R_TABLE_CONTACTS_MAX, (double)max);
	fprintf(out, "routing tables: %.1f contacts per node on average, %zu at "
		"most (UDP: no connection per contact)\n",
		live ? (double)sum / (double)live : 0.0, max);
}

/* What the nodes' state is made of, as km_dht_mem() accounts for it: the
 * bytes requested from malloc, part by part, averaged over the nodes. */
static double print_breakdown(const struct sim *s, FILE *out)
{
	double node = 0, table = 0, rl = 0, tx = 0, lk = 0, total = 0;
	double n = (double)s->n;

	for (size_t i = 0; i < s->n; i++) {
		struct km_dht_mem m = km_dht_mem(s->nodes[i].dht);

		node += (double)m.node;
		table += (double)m.table;
		rl += (double)m.ratelimit;
		tx += (double)m.transactions;
		lk += (double)m.lookups;
		total += (double)m.total;
	}
	fprintf(out, "memory per node, accounted: %.0f bytes = node %.0f + routing "
		"table %.0f + rate limiter %.0f + transactions %.0f + lookups %.0f\n",
		total / n, node / n, table / n, rl / n, tx / n, lk / n);
	return total / n;
}

void scenario_measure_state(struct sim *s, struct report *r, FILE *out)
{
	double per_node = sim_dht_bytes(s) / (double)s->n;
	double accounted, own;
	size_t events, dgrams;

	measure_tables(s, r, out);
	accounted = print_breakdown(s, out);
	own = sim_own_bytes(s, &events, &dgrams);
	fprintf(out, "simulator's own: %.1f MiB (node array, event heap, %zu events "
		"queued of which %zu datagrams)\n", own / 1048576.0, events, dgrams);
	if (per_node <= 0 || !s->opt.timing)
		return;
	report_set(r, R_DHT_STATE_BYTES_PER_NODE, (double)(long)per_node);
	fprintf(out, "memory: %.0f bytes of DHT state per node (heap in use, less "
		"the simulator's own; %.0f more than accounted: the allocator's "
		"overhead and lookups' shortlists)\n", per_node, per_node - accounted);
}

size_t scenario_kill(struct sim *s, double fraction)
{
	size_t want = (size_t)(fraction * (double)s->n + 0.5), killed = 0;

	while (killed < want) {
		size_t i = (size_t)sim_pick(s, s->n);

		if (s->nodes[i].state != SIM_LIVE)
			continue;
		sim_crash(s, i);
		killed++;
	}
	return killed;
}

static size_t pick_live(struct sim *s)
{
	for (;;) {
		size_t i = (size_t)sim_pick(s, s->n);

		if (s->nodes[i].state == SIM_LIVE)
			return i;
	}
}

/* A node whose session ends leaves without a word, and a newcomer takes
 * its place (a fresh ID at a new address) and joins through a random live
 * node, so N stays constant.  A node silenced by --dead has left already. */
static void act_leave(struct sim *s, uint32_t i)
{
	size_t via;

	if (s->nodes[i].state != SIM_LIVE)
		return;
	sim_crash(s, i);
	if (sim_replace(s, i) < 0) {
		fprintf(stderr, "dht-sim: out of memory (newcomer)\n");
		exit(1);
	}
	s->replaced++;
	via = pick_live(s);
	start_session(s, i);
	sim_join(s, i, via);
	s->nodes[i].via = (uint32_t)via;
	sim_at(s, s->now + JOIN_RETRY_MS, act_join_check, i);
}

struct lookup_rec {
	uint32_t node;
	uint64_t id;
	struct km_id target;
	bool started, done, ok;
	int rounds;
	unsigned queries;
	km_ms latency;
	uint32_t floor_ms; /* the slowest RTT from the origin to the truth */
	km_ms found;       /* the last of the result was learned this late */
	km_ms tail;        /* from the result's last answer to the end */
	km_ms eager;       /* had each result node been asked once learned */
};

struct lookup_run {
	struct lookup_rec *recs;
	size_t n, started, done, first_pending;
};

static void act_lookup(struct sim *s, uint32_t j)
{
	struct lookup_run *run = s->scenario;
	struct lookup_rec *rec = &run->recs[j];
	struct km_id target;
	size_t from = pick_live(s);

	for (size_t b = 0; b < sizeof(target.b); b += 8) {
		uint64_t x = km_prng_next(&s->world);

		memcpy(target.b + b, &x, sizeof(target.b) - b < 8 ?
		       sizeof(target.b) - b : 8);
	}
	rec->node = (uint32_t)from;
	rec->target = target;
	/* Started before the call: a lookup with no seeds ends inside it. */
	rec->started = true;
	run->started++;
	if (km_dht_lookup(s->nodes[from].dht, &target, KM_LOOKUP_FIND_NODE, NULL,
			  0, &rec->id, s->now) < 0) {
		rec->started = false; /* counts as a failure */
		run->started--;
	}
	sim_poke(s, from);
}

static bool same_ids(const struct km_lookup_result *res, size_t nres,
		     const struct km_id *truth, size_t ntruth)
{
	if (nres != ntruth)
		return false;
	for (size_t i = 0; i < nres; i++)
		if (!km_id_eq(&res[i].c.id, &truth[i]))
			return false;
	return true;
}

/* No exact lookup ends before it has heard from every one of the true k
 * closest: the largest RTT from the origin to them is a floor under its
 * latency, whatever the algorithm. */
static uint32_t latency_floor(const struct sim *s, size_t from,
			      const struct km_id *truth, size_t ntruth)
{
	uint32_t worst = 0;

	for (size_t i = 0; i < s->n; i++) {
		const struct km_id *id = km_dht_id(s->nodes[i].dht);

		for (size_t t = 0; t < ntruth; t++) {
			uint32_t rtt;

			if (!km_id_eq(id, &truth[t]))
				continue;
			rtt = sim_rtt_ms(s, from, i);
			if (rtt > worst)
				worst = rtt;
		}
	}
	return worst;
}

/* Where a lookup's time went: finding the nodes of its result (rounds),
 * then waiting for their answers, then -- the tail -- for candidates that
 * are slower or dead (a dead one among the closest costs three RTOs).
 * eager is when it could have ended had each node of the result been asked
 * the moment the lookup learned of it, with no wait for a slot: what the
 * rounds leave, whatever the scheduling. */
static void split_latency(struct lookup_rec *rec,
			  const struct km_lookup_result *res, size_t nres,
			  const struct km_lookup_stats *st)
{
	km_ms learned = st->started, answered = st->started;
	km_ms eager = st->started;

	for (size_t i = 0; i < nres; i++) {
		if (res[i].learned > learned)
			learned = res[i].learned;
		if (res[i].learned + res[i].rtt_ms > eager)
			eager = res[i].learned + res[i].rtt_ms;
		if (res[i].answered > answered)
			answered = res[i].answered;
	}
	rec->found = learned - st->started;
	rec->eager = eager - st->started;
	rec->tail = st->finished > answered ? st->finished - answered : 0;
}

static void on_lookup_done(struct sim *s, size_t node, uint64_t id,
			   const struct km_lookup *lk)
{
	struct lookup_run *run = s->scenario;
	struct km_lookup_result res[MAX_K];
	struct km_id truth[MAX_K];
	struct km_lookup_stats st = km_lookup_stats(lk);
	size_t k = (size_t)s->opt.k, nres, ntruth;

	for (size_t j = run->first_pending; j < run->n; j++) {
		struct lookup_rec *rec = &run->recs[j];

		if (!rec->started || rec->done || rec->node != node || rec->id != id)
			continue;
		nres = km_lookup_results(lk, res, k);
		ntruth = sim_true_closest(s, &rec->target, node, k, truth);
		rec->done = true;
		rec->ok = same_ids(res, nres, truth, ntruth);
		rec->floor_ms = latency_floor(s, node, truth, ntruth);
		rec->rounds = st.rounds;
		rec->queries = st.queries;
		rec->latency = st.finished - st.started;
		split_latency(rec, res, nres, &st);
		run->done++;
		while (run->first_pending < run->n &&
		       (run->recs[run->first_pending].done ||
			!run->recs[run->first_pending].started))
			run->first_pending++;
		if (run->done % 100 == 0)
			sim_progress(s, "lookups", run->done, run->n);
		return;
	}
}

/* Runs opt.lookups lookups from random live nodes to random targets and
 * reports on them.  Shared with the churn scenario. */
void scenario_run_lookups(struct sim *s, struct report *r, FILE *out);

void scenario_run_lookups(struct sim *s, struct report *r, FILE *out)
{
	struct lookup_run run = { .n = s->opt.lookups };
	double *rounds, *lat, *floors, *found, *tail, *eager, queries = 0;
	size_t ok = 0, done = 0;
	km_ms start = s->now;

	if (run.n == 0)
		return;
	run.recs = calloc(run.n, sizeof(*run.recs));
	rounds = calloc(run.n, sizeof(*rounds));
	lat = calloc(run.n, sizeof(*lat));
	floors = calloc(run.n, sizeof(*floors));
	found = calloc(run.n, sizeof(*found));
	tail = calloc(run.n, sizeof(*tail));
	eager = calloc(run.n, sizeof(*eager));
	if (!run.recs || !rounds || !lat || !floors || !found || !tail ||
	    !eager) {
		fprintf(stderr, "dht-sim: out of memory\n");
		exit(1);
	}
	s->scenario = &run;
	s->lookup_done = on_lookup_done;
	for (size_t j = 0; j < run.n; j++)
		sim_at(s, start + (km_ms)j * LOOKUP_GAP_MS, act_lookup, (uint32_t)j);
	sim_run_until(s, start + (km_ms)run.n * LOOKUP_GAP_MS + LOOKUP_LIMIT_MS);
	s->lookup_done = NULL;
	s->scenario = NULL;

	for (size_t j = 0; j < run.n; j++) {
		struct lookup_rec *rec = &run.recs[j];

		if (!rec->done)
			continue;
		ok += rec->ok;
		rounds[done] = rec->rounds;
		lat[done] = (double)rec->latency;
		floors[done] = rec->floor_ms;
		found[done] = (double)rec->found;
		tail[done] = (double)rec->tail;
		eager[done] = (double)rec->eager;
		queries += rec->queries;
		done++;
	}
	sim_sort(rounds, done);
	sim_sort(lat, done);
	sim_sort(floors, done);
	sim_sort(found, done);
	sim_sort(tail, done);
	sim_sort(eager, done);
	report_set(r, R_LOOKUP_SUCCESS_RATE, (double)ok / (double)run.n);
	report_set(r, R_LOOKUP_FLOOR_MS_MEDIAN, sim_percentile(floors, done, 0.5));
	report_set(r, R_LOOKUP_FLOOR_MS_P99, sim_percentile(floors, done, 0.99));
	report_set(r, R_LOOKUP_FOUND_MS_MEDIAN, sim_percentile(found, done, 0.5));
	report_set(r, R_LOOKUP_EAGER_MS_MEDIAN, sim_percentile(eager, done, 0.5));
	report_set(r, R_LOOKUP_TAIL_MS_MEDIAN, sim_percentile(tail, done, 0.5));
	report_set(r, R_LOOKUP_TAIL_MS_P99, sim_percentile(tail, done, 0.99));
	report_set(r, R_LOOKUP_ROUNDS_MEDIAN, sim_percentile(rounds, done, 0.5));
	report_set(r, R_LOOKUP_ROUNDS_P90, sim_percentile(rounds, done, 0.9));
	report_set(r, R_LOOKUP_LATENCY_MS_MEDIAN, sim_percentile(lat, done, 0.5));
	report_set(r, R_LOOKUP_LATENCY_MS_P99, sim_percentile(lat, done, 0.99));
	report_set(r, R_LOOKUP_MESSAGES_MEAN, done ? queries / (double)done : 0);
	fprintf(out, "lookups: %zu run, %zu finished, %zu found exactly the true "
		"%d closest live nodes (%.2f%%)\n", run.n, done, ok, s->opt.k,
		100.0 * (double)ok / (double)run.n);
	fprintf(out, "  rounds median %.0f, p90 %.0f; latency median %.0f ms, "
		"p99 %.0f ms; queries per lookup %.1f\n",
		sim_percentile(rounds, done, 0.5), sim_percentile(rounds, done, 0.9),
		sim_percentile(lat, done, 0.5), sim_percentile(lat, done, 0.99),
		done ? queries / (double)done : 0);
	fprintf(out, "  floor: the slowest RTT to the true %d closest is median "
		"%.0f ms, p99 %.0f ms (no exact lookup ends sooner)\n", s->opt.k,
		sim_percentile(floors, done, 0.5), sim_percentile(floors, done, 0.99));
	fprintf(out, "  where the time goes: the last of the result learned at "
		"median %.0f ms; after its last answer, the wait for slower or "
		"dead candidates is median %.0f ms, p99 %.0f ms; asking each node "
		"of the result once learned would end at median %.0f ms\n",
		sim_percentile(found, done, 0.5), sim_percentile(tail, done, 0.5),
		sim_percentile(tail, done, 0.99), sim_percentile(eager, done, 0.5));
	free(floors);
	free(found);
	free(tail);
	free(eager);
	free(run.recs);
	free(rounds);
	free(lat);
}

int scenario_lookup(struct sim *s, struct report *r, FILE *out)
{
	scenario_bootstrap(s, out);
	scenario_measure_state(s, r, out);
	if (s->opt.dead > 0) {
		size_t killed = scenario_kill(s, s->opt.dead);

		fprintf(out, "dead: %zu nodes (%.1f%%) went silent after bootstrap\n",
			killed, 100.0 * (double)killed / (double)s->n);
	}
	s->replaced = 0;
	scenario_run_lookups(s, r, out);
	if (s->opt.session_median_s > 0)
		fprintf(out, "sessions: Weibull, shape 0.5, median %.0f s; %lu "
			"nodes left and were replaced while the lookups ran\n",
			s->opt.session_median_s, s->replaced);
	return 0;
}
