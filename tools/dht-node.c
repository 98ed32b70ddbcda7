/* dht-node: a kadmesh node as a daemon.
 *
 * One libuv loop drives the core through km_uv_node (UDP and TCP on one
 * port) and serves the control socket.  The state directory keeps the node
 * ID, the routing table snapshot and, by default, the control socket. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <uv.h>

#include "common/identity.h"
#include "common/log.h"
#include "common/resolve.h"
#include "dht/id.h"
#include "dht/state.h"
#include "common/fs.h"
#include "uv/lan.h"
#include "uv/node.h"
#include "proto/err.h"

/* The control server lands on its own branch; until it is merged this
 * program runs without a control socket.  This is its one call site. */
#if defined(__has_include)
#if __has_include("common/control_socket.h")
#include "common/control_socket.h"
#define HAVE_UV_CONTROL 1
#endif
#endif

struct km_uv_control;

#define PROG "dht-node"
#define VERSION "0.1.0"

struct opts {
	long port;
	const char *bind[2];
	size_t nbind;
	bool seed;
	const char *boot_spec[KM_NODE_MAX_BOOTSTRAP];
	struct km_addr boot[KM_NODE_MAX_BOOTSTRAP];
	size_t nboot;
	const char *state_dir;
	const char *control;
	long k, alpha;
	long save_interval;
	long save_interval_ms;   /* 0 = use save_interval */
	bool strict_subnets, bep42_strict;
	long rate_qps, rate_burst, ban_time;
	long max_out, max_in, max_per_ip, max_per_16, ping_interval;
	bool cap_loopback;
	bool no_lan;
	enum km_log_level level;
};

/* Long options without a short form. */
enum {
	OPT_MAX_PER_IP = 256,
	OPT_CAP_LOOPBACK,
	OPT_PING_INTERVAL,
	OPT_STRICT_SUBNETS,
	OPT_BEP42_STRICT,
	OPT_RATE_LIMIT,
	OPT_RATE_BURST,
	OPT_BAN_TIME,
	OPT_SAVE_INTERVAL_MS,
	OPT_MAX_PER_16,
	OPT_NO_LAN,
};

struct daemon {
	uv_loop_t loop;
	bool has_key;                   /* DIR/key was loaded or created */
	uint8_t key[KM_IDENT_SEED_LEN];
	uv_signal_t sigs[2];
	struct km_uv_node *node;
	struct km_uv_control *control; /* NULL without a control socket */
	struct km_uv_lan *lan;         /* NULL with --no-lan */
	const char *state_dir;
	char control_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool stopping;
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " [OPTIONS]\n"
"Runs a kadmesh node: KRPC over UDP and the overlay over TCP, on one port.\n"
"\n"
"  -p, --port N            UDP and TCP port; 0 picks a free one (default 0)\n"
"  -b, --bind ADDR         IPv4 or IPv6 address to listen on; give it twice\n"
"                          (one of each family) for both.  Default: 0.0.0.0\n"
"                          and ::, one routing table per family (BEP 32),\n"
"                          or IPv4 only if the host has no IPv6\n"
"  -s, --seed              start a new network: no bootstrap needed\n"
"  -B, --bootstrap H:P     join through this node: HOST:PORT or\n"
"                          [IPv6]:PORT (repeatable, up to %d; names are\n"
"                          resolved to a family the node listens on)\n"
"  -d, --state-dir DIR     keep the node ID (DIR/id), its Ed25519 key\n"
"                          (DIR/key, mode 0600), the routing table\n"
"                          (DIR/nodes.dat) and the control socket\n"
"                          (DIR/control.sock) here; created 0700 if missing.\n"
"                          With saved nodes the node rejoins by itself.\n"
"                          Without it: a random ID, an ephemeral key and\n"
"                          nothing saved\n"
"  -c, --control PATH      control socket (default DIR/control.sock with\n"
"                          --state-dir, otherwise none: no control socket)\n"
"  -k N                    bucket and lookup result size (default 8)\n"
"  -a, --alpha N           parallel queries per lookup (default 3)\n"
"  -S, --save-interval SECS\n"
"                          save the routing table this often (default 60)\n"
"      --save-interval-ms MS\n"
"                          the same in milliseconds (for crash tests)\n"
"      --strict-subnets    apply the subnet caps (2 per bucket, 10 per\n"
"                          table from one /24 or /64) to loopback and\n"
"                          private addresses too\n"
"      --bep42-strict      refuse nodes on public IPs whose ID does not\n"
"                          match their IP (BEP 42); default: prefer them\n"
"      --rate-limit QPS    KRPC queries a second per source; 0 disables\n"
"                          the limit (default 20)\n"
"      --rate-burst N      queries a source may save up (default 40)\n"
"      --ban-time SECS     ban for a source that keeps flooding past its\n"
"                          limit (200 drops in 10 s; default 600)\n"
"  -O, --max-out N         overlay neighbours to dial (default 8)\n"
"  -I, --max-in N          overlay neighbours to accept (default 32)\n"
"      --max-per-ip N      connections accepted from one IP address\n"
"                          (default 4; 0 = no cap)\n"
"      --max-per-16 N      overlay neighbours per IPv4 /16 or IPv6 /32\n"
"                          (default 4; 0 = no cap)\n"
"      --cap-loopback      apply --max-per-ip and --max-per-16 to loopback\n"
"                          addresses too\n"
"                          (exempt by default, for local test networks)\n"
"      --ping-interval MS  PING each neighbour every MS milliseconds\n"
"                          (default 15000); 3 missed PONGs drop it\n"
"      --no-lan            no LAN discovery (on by default: announces on\n"
"                          multicast 239.192.152.143:6771 and links to the\n"
"                          nodes it hears; with it a node needs nothing\n"
"                          else to join)\n"
"  -l, --log-level LEVEL   error, warn, info or debug (default info)\n"
"  -h, --help              this help\n"
"  -V, --version           print the version\n"
"\n"
"Once listening it prints `ready id=<40 hex> port=<N> control=<path|none>`\n"
"on stdout.  SIGINT or SIGTERM: GOODBYE to overlay peers, save, exit 0.\n",
		KM_NODE_MAX_BOOTSTRAP);
}

static const struct option long_opts[] = {
	{ "port", required_argument, NULL, 'p' },
	{ "bind", required_argument, NULL, 'b' },
	{ "seed", no_argument, NULL, 's' },
	{ "bootstrap", required_argument, NULL, 'B' },
	{ "state-dir", required_argument, NULL, 'd' },
	{ "control", required_argument, NULL, 'c' },
	{ "alpha", required_argument, NULL, 'a' },
	{ "save-interval", required_argument, NULL, 'S' },
	{ "save-interval-ms", required_argument, NULL, OPT_SAVE_INTERVAL_MS },
	{ "strict-subnets", no_argument, NULL, OPT_STRICT_SUBNETS },
	{ "bep42-strict", no_argument, NULL, OPT_BEP42_STRICT },
	{ "rate-limit", required_argument, NULL, OPT_RATE_LIMIT },
	{ "rate-burst", required_argument, NULL, OPT_RATE_BURST },
	{ "ban-time", required_argument, NULL, OPT_BAN_TIME },
	{ "max-out", required_argument, NULL, 'O' },
	{ "max-in", required_argument, NULL, 'I' },
	{ "max-per-ip", required_argument, NULL, OPT_MAX_PER_IP },
	{ "cap-loopback", no_argument, NULL, OPT_CAP_LOOPBACK },
	{ "ping-interval", required_argument, NULL, OPT_PING_INTERVAL },
	{ "max-per-16", required_argument, NULL, OPT_MAX_PER_16 },
	{ "no-lan", no_argument, NULL, OPT_NO_LAN },
	{ "log-level", required_argument, NULL, 'l' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static bool add_bootstrap(struct opts *o, const char *spec)
{
	if (o->nboot == KM_NODE_MAX_BOOTSTRAP) {
		fprintf(stderr, PROG ": at most %d --bootstrap addresses\n",
			KM_NODE_MAX_BOOTSTRAP);
		return false;
	}
	o->boot_spec[o->nboot++] = spec;
	return true;
}

static bool add_bind(struct opts *o, const char *addr)
{
	if (o->nbind == 2) {
		fprintf(stderr, PROG ": at most 2 --bind addresses, one IPv4 "
			"and one IPv6\n");
		return false;
	}
	o->bind[o->nbind++] = addr;
	return true;
}

/* Returns 0 to go on, 1 after --help/--version, -1 on a bad option. */
static int parse_one(struct opts *o, int c)
{
	switch (c) {
	case 'p': return km_tool_parse_long(PROG, "--port", optarg, 0, 65535, &o->port) ? 0 : -1;
	case 'b': return add_bind(o, optarg) ? 0 : -1;
	case 's': o->seed = true; return 0;
	case OPT_NO_LAN: o->no_lan = true; return 0;
	case 'B': return add_bootstrap(o, optarg) ? 0 : -1;
	case 'd': o->state_dir = optarg; return 0;
	case 'c': o->control = optarg; return 0;
	case 'k': return km_tool_parse_long(PROG, "-k", optarg, 1, 64, &o->k) ? 0 : -1;
	case 'a': return km_tool_parse_long(PROG, "--alpha", optarg, 1, 16, &o->alpha) ? 0 : -1;
	case 'S': return km_tool_parse_long(PROG, "--save-interval", optarg, 1, 86400, &o->save_interval) ? 0 : -1;
	case OPT_SAVE_INTERVAL_MS: return km_tool_parse_long(PROG, "--save-interval-ms", optarg, 1, 86400000, &o->save_interval_ms) ? 0 : -1;
	case OPT_STRICT_SUBNETS: o->strict_subnets = true; return 0;
	case OPT_BEP42_STRICT: o->bep42_strict = true; return 0;
	case OPT_RATE_LIMIT: return km_tool_parse_long(PROG, "--rate-limit", optarg, 0, 1000000, &o->rate_qps) ? 0 : -1;
	case OPT_RATE_BURST: return km_tool_parse_long(PROG, "--rate-burst", optarg, 1, 1000000, &o->rate_burst) ? 0 : -1;
	case OPT_BAN_TIME: return km_tool_parse_long(PROG, "--ban-time", optarg, 0, 86400, &o->ban_time) ? 0 : -1;
	case 'O': return km_tool_parse_long(PROG, "--max-out", optarg, 0, 256, &o->max_out) ? 0 : -1;
	case 'I': return km_tool_parse_long(PROG, "--max-in", optarg, 0, 1024, &o->max_in) ? 0 : -1;
	case OPT_MAX_PER_IP: return km_tool_parse_long(PROG, "--max-per-ip", optarg, 0, 1024, &o->max_per_ip) ? 0 : -1;
	case OPT_MAX_PER_16: return km_tool_parse_long(PROG, "--max-per-16", optarg, 0, 1024, &o->max_per_16) ? 0 : -1;
	case OPT_CAP_LOOPBACK: o->cap_loopback = true; return 0;
	case OPT_PING_INTERVAL: return km_tool_parse_long(PROG, "--ping-interval", optarg, 100, 3600000, &o->ping_interval) ? 0 : -1;
	case 'l':
		if (km_tool_log_level_parse(optarg, &o->level))
			return 0;
		fprintf(stderr, PROG ": --log-level: '%s' is not error, warn, "
			"info or debug\n", optarg);
		return -1;
	case 'h': usage(stdout); return 1;
	case 'V': printf(PROG " (kadmesh) " VERSION "\n"); return 1;
	default:
		fprintf(stderr, "Try '" PROG " --help'.\n");
		return -1;
	}
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	int c, rc;

	*o = (struct opts){ .k = 8, .alpha = 3, .save_interval = 60,
			    .rate_qps = 20, .rate_burst = 40, .ban_time = 600,
			    .max_out = 8, .max_in = 32, .max_per_ip = 4,
			    .max_per_16 = 4,
			    .ping_interval = 15000, .level = KM_LOG_INFO };
	while ((c = getopt_long(argc, argv, "p:b:sB:d:c:k:a:S:O:I:l:hV", long_opts,
				NULL)) != -1) {
		rc = parse_one(o, c);
		if (rc != 0)
			return rc;
	}
	if (o->max_out + o->max_in == 0) {
		fprintf(stderr, PROG ": --max-out and --max-in cannot both be 0\n");
		return -1;
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* --bind addresses, one per family; none means both wildcards. */
static bool bind_addresses(const struct opts *o, struct km_addr *out,
			   size_t *n)
{
	static const char *const wildcards[2] = { "0.0.0.0", "::" };
	const char *const *names = o->nbind ? o->bind : wildcards;

	*n = o->nbind ? o->nbind : 2;
	for (size_t i = 0; i < *n; i++) {
		if (!km_addr_parse_ip(names[i], &out[i])) {
			fprintf(stderr, PROG ": --bind: '%s' is not an IP "
				"address\n", names[i]);
			return false;
		}
		out[i].port = (uint16_t)o->port;
	}
	if (*n == 2 && out[0].family == out[1].family) {
		fprintf(stderr, PROG ": --bind: give at most one address per "
			"family\n");
		return false;
	}
	return true;
}

/* Bootstrap names resolve to a family the node listens on. */
static bool resolve_bootstraps(struct opts *o, const struct km_addr *binds,
			       size_t nbinds)
{
	unsigned families = 0;

	for (size_t i = 0; i < nbinds; i++)
		families |= binds[i].family == KM_AF_INET6 ? KM_TOOL_V6 :
							    KM_TOOL_V4;
	for (size_t i = 0; i < o->nboot; i++)
		if (!km_tool_resolve(PROG, o->boot_spec[i], families,
				     &o->boot[i]))
			return false;
	return true;
}

static void node_config(const struct opts *o, const struct km_id *id,
			struct km_node_config *cfg)
{
	km_node_config_default(cfg);
	cfg->dht.id = *id;
	/* Lookups default to the family the node joins through. */
	cfg->dht.family = o->nboot ? o->boot[0].family : KM_AF_INET4;
	cfg->dht.table.k = (int)o->k;
	cfg->dht.lookup.k = (int)o->k;
	cfg->dht.lookup.alpha = (int)o->alpha;
	memcpy(cfg->bootstrap, o->boot, o->nboot * sizeof(o->boot[0]));
	cfg->nbootstrap = o->nboot;
	cfg->seed = o->seed;
	cfg->save_interval_ms = o->save_interval_ms ? (km_ms)o->save_interval_ms :
				KM_SECONDS(o->save_interval);
	cfg->dht.table.strict_subnets = o->strict_subnets;
	cfg->dht.table.bep42_strict = o->bep42_strict;
	cfg->dht.rate.qps = (unsigned)o->rate_qps;
	cfg->dht.rate.burst = (unsigned)o->rate_burst;
	cfg->dht.rate.ban_ms = KM_SECONDS(o->ban_time);
	cfg->cm.max_out = (size_t)o->max_out;
	cfg->cm.max_in = (size_t)o->max_in;
	cfg->cm.max_per_ip = (size_t)o->max_per_ip;
	cfg->cm.max_per_16 = (size_t)o->max_per_16;
	cfg->cm.cap_loopback = o->cap_loopback;
	cfg->ping_interval_ms = (km_ms)o->ping_interval;
	/* Room for every neighbour plus handshakes in progress. */
	cfg->max_links = cfg->cm.max_out + cfg->cm.max_in + 32;
}

/* --- hooks from the node ------------------------------------------------ */

static void on_save_state(void *user, const uint8_t *buf, size_t len)
{
	struct daemon *d = user;

	if (d->state_dir)
		km_tool_state_save(d->state_dir, buf, len);
}

static void on_lookup_done(void *user, uint64_t lookup_id,
			   const struct km_lookup *lk)
{
#ifdef HAVE_UV_CONTROL
	struct daemon *d = user;

	if (d->control)
		km_control_lookup_done(km_uv_control_core(d->control),
				       lookup_id, lk);
#endif
}

static void on_deliver(void *user, const struct km_message *m)
{
	struct daemon *d = user;

	/* A message this node broadcast from a control request is delivered
	 * outside the driver's loop turn: let the core's timers run soon. */
	if (d->node)
		km_uv_node_kick(d->node);
#ifdef HAVE_UV_CONTROL
	if (d->control)
		km_control_deliver(km_uv_control_core(d->control), m);
#endif
}

static const struct km_uv_hooks hooks = {
	.lookup_done = on_lookup_done,
	.deliver = on_deliver,
	.save_state = on_save_state,
	.log = km_tool_log_hook,
};

/* --- control socket --------------------------------------------------- */

static bool control_path(const struct opts *o, struct daemon *d)
{
	int n;

	if (o->control)
		n = snprintf(d->control_path, sizeof(d->control_path), "%s",
			     o->control);
	else if (o->state_dir)
		n = snprintf(d->control_path, sizeof(d->control_path),
			     "%s/control.sock", o->state_dir);
	else
		return true;
	if (n < 0 || (size_t)n >= sizeof(d->control_path)) {
		fprintf(stderr, PROG ": control socket path longer than %zu "
			"bytes; use --control\n", sizeof(d->control_path) - 1);
		return false;
	}
	return true;
}

static int control_start(struct daemon *d)
{
	if (!d->control_path[0])
		return 0;
#ifdef HAVE_UV_CONTROL
	return km_uv_control_start(&d->loop, d->control_path,
				   km_uv_node_core(d->node),
				   &d->control);
#else
	km_tool_log(KM_LOG_WARN, "built without the control server; "
		    "no control socket");
	d->control_path[0] = '\0';
	return 0;
#endif
}

static void control_stop(struct daemon *d)
{
#ifdef HAVE_UV_CONTROL
	km_uv_control_stop(d->control);
#endif
	d->control = NULL;
}

/* --- lifecycle ------------------------------------------------------------ */

static void on_stopped(void *user)
{
	struct daemon *d = user;

	d->node = NULL;
	km_tool_log(KM_LOG_INFO, "stopped");
}

static void shutdown_daemon(struct daemon *d)
{
	if (d->stopping)
		return;
	d->stopping = true;
	for (size_t i = 0; i < 2; i++)
		uv_close((uv_handle_t *)&d->sigs[i], NULL);
	control_stop(d);
	km_uv_lan_stop(d->lan);
	d->lan = NULL;
	if (d->node)
		km_uv_node_stop(d->node, on_stopped, d);
}

static void on_signal(uv_signal_t *h, int signum)
{
	km_tool_log(KM_LOG_INFO, "%s: shutting down", strsignal(signum));
	shutdown_daemon(h->data);
}

static void watch_signals(struct daemon *d)
{
	static const int signums[2] = { SIGINT, SIGTERM };

	for (size_t i = 0; i < 2; i++) {
		uv_signal_init(&d->loop, &d->sigs[i]);
		d->sigs[i].data = d;
		uv_signal_start(&d->sigs[i], on_signal, signums[i]);
	}
}

static void print_ready(struct daemon *d, const struct km_id *id)
{
	char hex[KM_ID_HEXLEN + 1];

	km_id_to_hex(id, hex);
	printf("ready id=%s port=%u control=%s\n", hex,
	       km_uv_node_port(d->node),
	       d->control_path[0] ? d->control_path : "none");
	fflush(stdout);
}

/* Identity (ID and key) and saved contacts; a state dir is optional.
 * Without one, the node draws an ephemeral key from the OS rng. */
static bool load_state(const struct opts *o, struct daemon *d, struct km_id *id,
		       struct km_contact *saved, size_t *nsaved)
{
	int rc;

	*nsaved = 0;
	if (!o->state_dir) {
		km_tool_random_id(id);
		return true;
	}
	rc = km_uv_fs_mkdir_private(o->state_dir);
	if (rc == 0)
		rc = km_tool_identity_load(o->state_dir, id);
	if (rc == 0)
		rc = km_tool_key_load(o->state_dir, id, d->key);
	d->has_key = rc == 0;
	if (rc < 0) {
		fprintf(stderr, PROG ": --state-dir %s: %s\n", o->state_dir,
			strerror(-rc));
		return false;
	}
	km_tool_log_set_id(id);
	km_tool_state_load(o->state_dir, id, saved, nsaved);
	return true;
}

/* LAN discovery is best effort: without it the node still runs. */
static void lan_start(struct daemon *d, const struct opts *o)
{
	int rc;

	km_uv_nat_learn_local(d->node);
	if (o->no_lan)
		return;
	rc = km_uv_lan_start(&d->loop, d->node, &d->lan);
	if (rc < 0)
		km_tool_log(KM_LOG_WARN, "LAN discovery off: %s", uv_strerror(rc));
}

/* Without --bind the node tries both families, and runs IPv4 alone on a
 * host without IPv6. */
static int start_node(struct daemon *d, const struct opts *o,
		      struct km_addr *binds, size_t nbinds,
		      struct km_node_config *cfg,
		      const struct km_contact *saved, size_t nsaved)
{
	int rc = km_uv_node_start(&d->loop, binds, nbinds, cfg, saved, nsaved,
				  &hooks, d, &d->node);

	if (rc < 0 && o->nbind == 0 && nbinds == 2 &&
	    (rc == UV_EAFNOSUPPORT || rc == UV_EADDRNOTAVAIL)) {
		km_tool_log(KM_LOG_WARN, "no IPv6 here (%s): IPv4 only",
			    uv_strerror(rc));
		rc = km_uv_node_start(&d->loop, binds, 1, cfg, saved, nsaved,
				      &hooks, d, &d->node);
	}
	return rc;
}

/* Broadcast sequence numbers start at the wall clock in ms, shifted left by
 * 20: a restarted node counts on from above its old numbers (so peers'
 * replay windows accept it) unless it sent over a million messages per ms. */
static uint64_t wall_clock_seq(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0; /* random start */
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 20;
}

static int run(struct daemon *d, struct opts *o, const struct km_id *id,
	       const struct km_contact *saved, size_t nsaved)
{
	struct km_node_config cfg;
	struct km_addr binds[2];
	size_t nbinds;
	int rc;

	if (!bind_addresses(o, binds, &nbinds) ||
	    !resolve_bootstraps(o, binds, nbinds) || !control_path(o, d))
		return 2;
	node_config(o, id, &cfg);
	cfg.has_key = d->has_key;
	memcpy(cfg.key_seed, d->key, sizeof(cfg.key_seed));
	cfg.bcast.seq_start = wall_clock_seq();
	uv_loop_init(&d->loop);
	km_tool_log_attach(&d->loop, KM_TOOL_LOG_WINDOW_MS);
	rc = start_node(d, o, binds, nbinds, &cfg, saved, nsaved);
	if (rc < 0) {
		fprintf(stderr, PROG ": cannot listen on port %ld: %s\n",
			o->port, rc <= -200 ? km_strerror(rc) : uv_strerror(rc));
	} else if ((rc = control_start(d)) < 0) {
		fprintf(stderr, PROG ": control socket %s: %s\n",
			d->control_path, uv_strerror(rc));
		km_uv_node_stop(d->node, on_stopped, d);
	} else {
		lan_start(d, o);
		watch_signals(d);
		km_tool_log(KM_LOG_INFO, "listening on port %u with %zu saved "
			    "nodes", cfg.port, nsaved);
		print_ready(d, id);
	}
	uv_run(&d->loop, UV_RUN_DEFAULT);
	km_tool_log_detach();
	uv_run(&d->loop, UV_RUN_DEFAULT); /* the logger's timer closes */
	km_tool_log_flush();
	uv_loop_close(&d->loop);
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static struct km_contact saved[KM_STATE_MAX_ENTRIES];
	struct daemon d = { 0 };
	struct opts o;
	struct km_id id;
	size_t nsaved;
	int rc = parse_opts(&o, argc, argv);

	if (rc != 0)
		return rc < 0 ? 2 : 0;
	km_tool_log_init(o.level);
	if (!load_state(&o, &d, &id, saved, &nsaved))
		return 1;
	km_tool_log_set_id(&id);
	if (!o.seed && o.nboot == 0 && nsaved == 0 && o.no_lan) {
		fprintf(stderr, PROG ": nothing to join: use --seed, --bootstrap, "
			"a --state-dir with saved nodes, or LAN discovery (no "
			"--no-lan)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	d.state_dir = o.state_dir;
	return run(&d, &o, &id, saved, nsaved);
}
