/* dht-sim: a deterministic discrete-event simulation of a kadmesh network.
 *
 * It runs the unmodified sans-IO core (km_dht: routing table, lookups, KRPC
 * over encoded packets) on a virtual clock with a seeded PRNG, so the same
 * --seed gives byte-identical output (apart from the wall-time and memory
 * figures, which --no-timing leaves out).  See docs/BENCHMARKS.md. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "sim/report.h"
#include "sim/scenarios.h"
#include "sim/sim.h"

#define MAX_NODES 1000000

static const char *const scenario_names[] = {
	[SIM_LOOKUP] = "lookup", [SIM_BROADCAST] = "broadcast",
	[SIM_CHURN] = "churn", [SIM_MESH] = "mesh",
};

static void usage(FILE *f)
{
	fputs("usage: dht-sim --nodes N --seed S --scenario lookup|broadcast|churn|mesh\n"
	      "               [--k 8] [--alpha 3] [--max-out 8] [--loss 0.01]\n"
	      "               [--dead 0.1] [--churn 0.3] [--lookups 1000]\n"
	      "               [--session-median SECONDS]\n"
	      "               [--broadcasts 100] [--payload 1024] [--join-over 1000]\n"
	      "               [--settle 30] [--lose-join I] [--json] [--no-timing]\n"
	      "\n"
	      "Simulates N kadmesh nodes -- the real km_dht code over a virtual network\n"
	      "with per-pair RTTs of 20-300 ms and packet loss -- and measures one\n"
	      "scenario:\n"
	      "  lookup     bootstrap, silence --dead of the nodes, then --lookups random\n"
	      "             lookups; success = exactly the true k closest live nodes\n"
	      "  broadcast  build the overlay, then --broadcasts from random origins\n"
	      "  churn      kill --churn of the nodes at once; lookups and broadcasts after\n"
	      "  mesh       the original full-mesh design at the same N, as a baseline:\n"
	      "             connections computed, broadcasts simulated over the same RTTs\n"
	      "\n"
	      "  -n, --nodes N         number of nodes (2..1000000)\n"
	      "  -s, --seed S          PRNG seed; the same seed replays the same run\n"
	      "  -S, --scenario NAME   lookup, broadcast, churn or mesh\n"
	      "      --k K             bucket size and lookup result size (default 8)\n"
	      "      --alpha A         lookup parallelism (default 3)\n"
	      "      --max-out D       overlay out-degree (default 8)\n"
	      "      --loss P          packet loss probability (default 0.01)\n"
	      "      --dead F          lookup: fraction silenced after bootstrap (default 0)\n"
	      "      --churn F         churn: fraction killed at once (default 0.3)\n"
	      "      --lookups L       lookups to run (default 1000)\n"
	      "      --session-median SECONDS\n"
	      "                        lookup: nodes come and go all along, with\n"
	      "                        Weibull (shape 0.5) sessions of this median;\n"
	      "                        a leaver is replaced by a newcomer (default:\n"
	      "                        none)\n"
	      "      --broadcasts B    broadcasts to send (default 100)\n"
	      "      --payload BYTES   broadcast payload size (default 1024)\n"
	      "      --join-over SECONDS  the nodes join one after another, evenly\n"
	      "                        over this much virtual time (default 1000);\n"
	      "                        a few seconds make a flash crowd\n"
	      "      --settle SECONDS  then the network settles this long before the\n"
	      "                        scenario measures anything (default 30)\n"
	      "      --lose-join I     node I's join query is lost, as --loss may\n"
	      "                        lose any (they join in order from node 0,\n"
	      "                        which asks no one; default: none)\n"
	      "      --json            end with one JSON object on its own line\n"
	      "      --no-timing       leave out wall_s, peak_rss_mb and heap figures,\n"
	      "                        so that the whole output repeats byte for byte\n"
	      "  -h, --help            this text\n"
	      "\n"
	      "Progress goes to stderr when it is a terminal.\n", f);
}

static int parse_size(const char *opt, const char *arg, size_t lo, size_t hi,
		      size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < lo || v > hi) {
		fprintf(stderr, "dht-sim: --%s must be an integer in %zu..%zu, not "
			"'%s'\n", opt, lo, hi, arg);
		return -1;
	}
	*out = (size_t)v;
	return 0;
}

static int parse_fraction(const char *opt, const char *arg, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= 0 && v <= 1)) {
		fprintf(stderr, "dht-sim: --%s must be a fraction in 0..1, not '%s'\n",
			opt, arg);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_scenario(const char *arg, enum sim_scenario *out)
{
	for (size_t i = 0; i < sizeof(scenario_names) / sizeof(scenario_names[0]); i++) {
		if (strcmp(arg, scenario_names[i]) == 0) {
			*out = (enum sim_scenario)i;
			return 0;
		}
	}
	fprintf(stderr, "dht-sim: unknown scenario '%s' (lookup, broadcast, churn "
		"or mesh)\n", arg);
	return -1;
}

enum { O_K = 256, O_ALPHA, O_MAX_OUT, O_LOSS, O_DEAD, O_CHURN, O_LOOKUPS,
       O_BROADCASTS, O_PAYLOAD, O_JOIN_OVER, O_SETTLE, O_JSON, O_NO_TIMING,
       O_SESSION_MEDIAN, O_LOSE_JOIN };

/* Longest --join-over or --settle: about 11.5 days of virtual time. */
#define MAX_SECONDS 1000000

static int parse_args(int argc, char **argv, struct sim_options *o)
{
	static const struct option longopts[] = {
		{ "nodes", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "scenario", required_argument, NULL, 'S' },
		{ "k", required_argument, NULL, O_K },
		{ "alpha", required_argument, NULL, O_ALPHA },
		{ "max-out", required_argument, NULL, O_MAX_OUT },
		{ "loss", required_argument, NULL, O_LOSS },
		{ "dead", required_argument, NULL, O_DEAD },
		{ "churn", required_argument, NULL, O_CHURN },
		{ "lookups", required_argument, NULL, O_LOOKUPS },
		{ "session-median", required_argument, NULL, O_SESSION_MEDIAN },
		{ "broadcasts", required_argument, NULL, O_BROADCASTS },
		{ "payload", required_argument, NULL, O_PAYLOAD },
		{ "join-over", required_argument, NULL, O_JOIN_OVER },
		{ "settle", required_argument, NULL, O_SETTLE },
		{ "lose-join", required_argument, NULL, O_LOSE_JOIN },
		{ "json", no_argument, NULL, O_JSON },
		{ "no-timing", no_argument, NULL, O_NO_TIMING },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool have_nodes = false, have_seed = false, have_scenario = false;
	size_t v;
	int c;

	while ((c = getopt_long(argc, argv, "n:s:S:h", longopts, NULL)) != -1) {
		int rc = 0;

		switch (c) {
		case 'n':
			rc = parse_size("nodes", optarg, 2, MAX_NODES, &o->nodes);
			have_nodes = true;
			break;
		case 's':
			rc = parse_size("seed", optarg, 0, SIZE_MAX, &v);
			o->seed = v;
			have_seed = true;
			break;
		case 'S':
			rc = parse_scenario(optarg, &o->scenario);
			have_scenario = true;
			break;
		case O_K:
			rc = parse_size("k", optarg, 1, 64, &v);
			o->k = (int)v;
			break;
		case O_ALPHA:
			rc = parse_size("alpha", optarg, 1, 64, &v);
			o->alpha = (int)v;
			break;
		case O_MAX_OUT:
			rc = parse_size("max-out", optarg, 1, 256, &v);
			o->max_out = (int)v;
			break;
		case O_LOSS: rc = parse_fraction("loss", optarg, &o->loss); break;
		case O_DEAD: rc = parse_fraction("dead", optarg, &o->dead); break;
		case O_CHURN: rc = parse_fraction("churn", optarg, &o->churn); break;
		case O_LOOKUPS:
			rc = parse_size("lookups", optarg, 0, 10000000, &o->lookups);
			break;
		case O_SESSION_MEDIAN:
			rc = parse_size("session-median", optarg, 1, 100000000, &v);
			o->session_median_s = (double)v;
			break;
		case O_BROADCASTS:
			rc = parse_size("broadcasts", optarg, 0, 1000000, &o->broadcasts);
			break;
		case O_PAYLOAD:
			rc = parse_size("payload", optarg, 1, 60000, &o->payload);
			break;
		case O_JOIN_OVER:
			rc = parse_size("join-over", optarg, 0, MAX_SECONDS, &v);
			o->join_over_ms = KM_SECONDS(v);
			break;
		case O_SETTLE:
			rc = parse_size("settle", optarg, 0, MAX_SECONDS, &v);
			o->settle_ms = KM_SECONDS(v);
			break;
		case O_LOSE_JOIN:
			rc = parse_size("lose-join", optarg, 1, MAX_NODES,
					&o->lose_join);
			break;
		case O_JSON: o->json = true; break;
		case O_NO_TIMING: o->timing = false; break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (rc < 0)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "dht-sim: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!have_nodes || !have_seed || !have_scenario) {
		fprintf(stderr, "dht-sim: --nodes, --seed and --scenario are required "
			"(see --help)\n");
		return -1;
	}
	if (o->session_median_s > 0 && o->scenario != SIM_LOOKUP) {
		fprintf(stderr, "dht-sim: --session-median is for --scenario lookup\n");
		return -1;
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double peak_rss_mb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

static int run(const struct sim_options *o, struct report *r)
{
	struct sim *s;
	int rc;

	if (o->scenario == SIM_MESH)
		return scenario_mesh(o, r, stdout);
	s = sim_new(o);
	if (!s) {
		fprintf(stderr, "dht-sim: out of memory for %zu nodes\n", o->nodes);
		return -1;
	}
	switch (o->scenario) {
	case SIM_LOOKUP:
		rc = scenario_lookup(s, r, stdout);
		break;
	case SIM_BROADCAST:
		rc = scenario_broadcast(s, r, stdout);
		break;
	default:
		rc = scenario_churn(s, r, stdout);
		break;
	}
	report_set(r, R_PACKETS, (double)s->packets);
	sim_del(s);
	return rc;
}

int main(int argc, char **argv)
{
	struct sim_options o = {
		.k = 8, .alpha = 3, .max_out = 8, .loss = 0.01, .churn = 0.3,
		.lookups = 1000, .broadcasts = 100, .payload = 1024,
		.join_over_ms = KM_SECONDS(1000), .settle_ms = KM_SECONDS(30),
		.timing = true,
	};
	struct report r = { 0 };
	double t0 = now_s();

	if (parse_args(argc, argv, &o) < 0)
		return 2;
	o.progress = isatty(STDERR_FILENO);
	printf("dht-sim: scenario %s, %zu nodes, seed %llu, k %d, alpha %d, "
	       "max-out %d, loss %g, dead %g, churn %g\n",
	       scenario_names[o.scenario], o.nodes, (unsigned long long)o.seed,
	       o.k, o.alpha, o.max_out, o.loss, o.dead, o.churn);
	if (run(&o, &r) < 0)
		return 1;
	if (o.timing) {
		report_set(&r, R_PEAK_RSS_MB, (double)(long)peak_rss_mb());
		report_set(&r, R_WALL_S, (double)(long)((now_s() - t0) * 100) / 100);
		printf("wall %.2f s, peak RSS %.0f MiB\n", r.v[R_WALL_S],
		       r.v[R_PEAK_RSS_MB]);
	}
	report_targets(&r, o.nodes, o.dead, stdout);
	if (o.json)
		report_json(&r, o.nodes, (unsigned long long)o.seed,
			    scenario_names[o.scenario], stdout);
	return 0;
}
