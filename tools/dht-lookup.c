/* dht-lookup: finds the nodes closest to an ID, and prints them.
 *
 * With --bootstrap it is a short-lived node of its own: read-only (BEP 43),
 * so that it asks questions without ever entering anyone's routing table.
 * It joins through the bootstrap addresses, runs one lookup, prints and
 * exits.  With --control it asks a running dht-node over its control
 * socket instead.  Either way the output is the same. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "common/ctl_client.h"
#include "common/resolve.h"
#include "uv/node.h"
#include "proto/err.h"

#define PROG "dht-lookup"
#define VERSION "0.1.0"

/* Exit codes; --help lists them. */
enum {
	EXIT_FAIL = 1,      /* anything else: memory, sockets, libuv */
	EXIT_USAGE = 2,     /* bad option or malformed ID */
	EXIT_BOOTSTRAP = 3, /* a bootstrap did not resolve or did not answer */
	EXIT_CONTROL = 4,   /* the control socket failed or the node said no */
	EXIT_EMPTY = 5,     /* the lookup found no node */
};

#define K_MAX 64
#define PEERS_MAX 256
#define POLL_MS 20
#define LOOKUP_LIMIT_MS KM_SECONDS(60) /* a safety net; lookups end alone */
#define CONTROL_TIMEOUT_S 90
#define CONTROL_RESPONSE_MAX (1u << 20)

struct opts {
	const char *control;
	const char *boot_names[KM_NODE_MAX_BOOTSTRAP];
	struct km_addr boot[KM_NODE_MAX_BOOTSTRAP];
	size_t nboot;
	int k;
	bool k_set;
	unsigned families;  /* KM_TOOL_V4 | KM_TOOL_V6; 0: the default one */
	bool peers;
	bool json;
	bool verbose;
	km_ms join_timeout_ms;
	struct km_id target;
};

struct found_node {
	struct km_id id;
	struct km_id dist;  /* id XOR target: the sort key */
	char addr[KM_ADDR_STRLEN];
	uint32_t rtt_ms;
};

/* What a lookup found, from either source. */
struct outcome {
	struct found_node nodes[K_MAX];
	size_t nnodes;
	char peers[PEERS_MAX][KM_ADDR_STRLEN];
	size_t npeers;
	int rounds;
	unsigned queries;
	uint64_t elapsed_ms;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: " PROG " (--control PATH | --bootstrap HOST:PORT ...) [options] ID\n"
"       " PROG " (--control PATH | --bootstrap HOST:PORT ...) [options] --name TEXT\n"
"\n"
"Finds the k nodes closest to ID (40 hex characters) by XOR distance.\n"
"\n"
"  -c, --control PATH       ask the running node behind this control socket\n"
"  -b, --bootstrap HOST:PORT  join through HOST:PORT (or [IPv6]:PORT) as a\n"
"                           short-lived, read-only node (BEP 43); repeatable\n"
"  -n, --name TEXT          look up SHA-1(TEXT) instead of ID\n"
"  -k N                     how many nodes to find (1..%d; default 8)\n"
"  -f, --family 4|6|both    look up among IPv4 or IPv6 nodes, or both\n"
"                           (k per family, merged closest first).\n"
"                           Default: the family of the first --bootstrap,\n"
"                           or the node's default family with --control\n"
"  -p, --peers              get_peers instead of find_node; also print the\n"
"                           peers announced under ID\n"
"  -j, --json               print one JSON object instead of text\n"
"  -t, --timeout SEC        how long joining may take (default 10)\n"
"  -v, --verbose            log what the node does to stderr\n"
"  -h, --help               print this help\n"
"  -V, --version            print the version\n"
"\n"
"Output: one line per node, closest first, `ID IP:PORT rtt_ms`; with\n"
"--peers one `peer IP:PORT` line per peer; then a final line\n"
"`# rounds=R queries=Q elapsed_ms=T`.  --json prints\n"
"{\"target\",\"nodes\":[{\"id\",\"addr\",\"rtt_ms\"}],\"rounds\",\"queries\",\n"
"\"elapsed_ms\"} and, with --peers, \"peers\":[\"IP:PORT\",...].\n"
"\n"
"Exit status: 0 found nodes; 1 other failure; 2 bad usage or malformed ID;\n"
"3 a bootstrap address did not resolve or did not answer; 4 the control\n"
"socket failed or the node answered an error; 5 the lookup found no node.\n",
		K_MAX);
}

/* ---- Options ------------------------------------------------------------ */

static bool parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static int add_bootstrap(struct opts *o, const char *spec)
{
	if (o->nboot == KM_NODE_MAX_BOOTSTRAP) {
		fprintf(stderr, PROG ": at most %d --bootstrap addresses\n",
			KM_NODE_MAX_BOOTSTRAP);
		return EXIT_USAGE;
	}
	if (!km_tool_resolve(PROG, spec, KM_TOOL_ANY, &o->boot[o->nboot])) {
		fprintf(stderr, PROG ": cannot resolve bootstrap '%s' "
			"(want HOST:PORT)\n", spec);
		return EXIT_BOOTSTRAP;
	}
	o->boot_names[o->nboot++] = spec;
	return 0;
}

static int parse_target(struct opts *o, const char *id, const char *name)
{
	if (id && name) {
		fprintf(stderr, PROG ": give either ID or --name, not both\n");
		return EXIT_USAGE;
	}
	if (name) {
		km_id_sha1(name, strlen(name), &o->target);
		return 0;
	}
	if (!id) {
		fprintf(stderr, PROG ": missing ID (try --help)\n");
		return EXIT_USAGE;
	}
	if (!km_id_from_hex(id, &o->target)) {
		fprintf(stderr, PROG ": malformed ID '%s': want 40 hex "
			"characters\n", id);
		return EXIT_USAGE;
	}
	return 0;
}

static const struct option long_opts[] = {
	{ "control", required_argument, NULL, 'c' },
	{ "bootstrap", required_argument, NULL, 'b' },
	{ "name", required_argument, NULL, 'n' },
	{ "peers", no_argument, NULL, 'p' },
	{ "family", required_argument, NULL, 'f' },
	{ "json", no_argument, NULL, 'j' },
	{ "timeout", required_argument, NULL, 't' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Returns -1 to go on, or an exit status. */
static int parse_one(struct opts *o, int c, const char **name)
{
	long v;

	switch (c) {
	case 'c': o->control = optarg; return -1;
	case 'b': { int rc = add_bootstrap(o, optarg); return rc ? rc : -1; }
	case 'n': *name = optarg; return -1;
	case 'p': o->peers = true; return -1;
	case 'f':
		if (strcmp(optarg, "4") == 0)
			o->families = KM_TOOL_V4;
		else if (strcmp(optarg, "6") == 0)
			o->families = KM_TOOL_V6;
		else if (strcmp(optarg, "both") == 0)
			o->families = KM_TOOL_V4 | KM_TOOL_V6;
		else
			break;
		return -1;
	case 'j': o->json = true; return -1;
	case 'v': o->verbose = true; return -1;
	case 'h': usage(stdout); return 0;
	case 'V': printf(PROG " " VERSION "\n"); return 0;
	case 'k':
		if (!parse_int(optarg, 1, K_MAX, &v))
			break;
		o->k = (int)v;
		o->k_set = true;
		return -1;
	case 't':
		if (!parse_int(optarg, 1, 3600, &v))
			break;
		o->join_timeout_ms = KM_SECONDS(v);
		return -1;
	default:
		fprintf(stderr, "Try '" PROG " --help'.\n");
		return EXIT_USAGE;
	}
	fprintf(stderr, PROG ": bad value '%s' for -%c\n", optarg, c);
	return EXIT_USAGE;
}

/* Returns -1 when the options are good, or the status to exit with. */
static int parse_opts(struct opts *o, int argc, char **argv)
{
	const char *name = NULL;
	int c, rc;

	*o = (struct opts){ .k = 8, .join_timeout_ms = KM_SECONDS(10) };
	while ((c = getopt_long(argc, argv, "c:b:n:k:pf:jt:vhV", long_opts,
				NULL)) != -1)
		if ((rc = parse_one(o, c, &name)) >= 0)
			return rc;
	if (argc - optind > 1) {
		fprintf(stderr, PROG ": too many arguments\n");
		return EXIT_USAGE;
	}
	if ((rc = parse_target(o, optind < argc ? argv[optind] : NULL, name)))
		return rc;
	if (!o->control == !o->nboot) {
		fprintf(stderr, PROG ": give --control PATH or --bootstrap "
			"HOST:PORT (one of the two)\n");
		return EXIT_USAGE;
	}
	return -1;
}

/* ---- The outcome -------------------------------------------------------- */

static void outcome_add_node(struct outcome *out, const struct km_id *target,
			     const struct km_id *id, const char *addr,
			     uint32_t rtt_ms)
{
	struct found_node *f;

	if (out->nnodes == K_MAX)
		return;
	f = &out->nodes[out->nnodes++];
	f->id = *id;
	km_id_xor(id, target, &f->dist);
	snprintf(f->addr, sizeof(f->addr), "%s", addr);
	f->rtt_ms = rtt_ms;
}

static int cmp_found(const void *a, const void *b)
{
	const struct found_node *x = a, *y = b;

	return km_id_cmp(&x->dist, &y->dist);
}

/* Closest first, and no more than k per family looked in. */
static void outcome_finish(struct outcome *out, int k, int nfamilies)
{
	size_t max = (size_t)k * (size_t)(nfamilies > 1 ? nfamilies : 1);

	qsort(out->nodes, out->nnodes, sizeof(out->nodes[0]), cmp_found);
	if (out->nnodes > max)
		out->nnodes = max;
}

/* One lookup's numbers: rounds and time are the longest, queries add up. */
static void outcome_add_stats(struct outcome *out, int rounds,
			      unsigned queries, uint64_t elapsed_ms)
{
	if (rounds > out->rounds)
		out->rounds = rounds;
	out->queries += queries;
	if (elapsed_ms > out->elapsed_ms)
		out->elapsed_ms = elapsed_ms;
}

static int family_count(unsigned families)
{
	return (families & KM_TOOL_V4 ? 1 : 0) + (families & KM_TOOL_V6 ? 1 : 0);
}

static void print_text(const struct opts *o, const struct outcome *out)
{
	char hex[KM_ID_HEXLEN + 1];

	for (size_t i = 0; i < out->nnodes; i++) {
		km_id_to_hex(&out->nodes[i].id, hex);
		printf("%s %s %u\n", hex, out->nodes[i].addr,
		       (unsigned)out->nodes[i].rtt_ms);
	}
	for (size_t i = 0; o->peers && i < out->npeers; i++)
		printf("peer %s\n", out->peers[i]);
	printf("# rounds=%d queries=%u elapsed_ms=%llu", out->rounds,
	       out->queries, (unsigned long long)out->elapsed_ms);
	if (o->peers)
		printf(" peers=%zu", out->npeers);
	printf("\n");
}

static cJSON *json_nodes(const struct outcome *out)
{
	cJSON *arr = cJSON_CreateArray();
	char hex[KM_ID_HEXLEN + 1];

	for (size_t i = 0; arr && i < out->nnodes; i++) {
		cJSON *n = cJSON_CreateObject();

		if (!n || !cJSON_AddItemToArray(arr, n))
			break;
		km_id_to_hex(&out->nodes[i].id, hex);
		cJSON_AddStringToObject(n, "id", hex);
		cJSON_AddStringToObject(n, "addr", out->nodes[i].addr);
		cJSON_AddNumberToObject(n, "rtt_ms", out->nodes[i].rtt_ms);
	}
	return arr;
}

static cJSON *json_peers(const struct outcome *out)
{
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; arr && i < out->npeers; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(out->peers[i]));
	return arr;
}

static int print_json(const struct opts *o, const struct outcome *out)
{
	cJSON *root = cJSON_CreateObject();
	char hex[KM_ID_HEXLEN + 1];
	char *s = NULL;

	km_id_to_hex(&o->target, hex);
	if (root) {
		cJSON_AddStringToObject(root, "target", hex);
		cJSON_AddItemToObject(root, "nodes", json_nodes(out));
		cJSON_AddNumberToObject(root, "rounds", out->rounds);
		cJSON_AddNumberToObject(root, "queries", out->queries);
		cJSON_AddNumberToObject(root, "elapsed_ms",
					(double)out->elapsed_ms);
		if (o->peers)
			cJSON_AddItemToObject(root, "peers", json_peers(out));
		s = cJSON_PrintUnformatted(root);
	}
	cJSON_Delete(root);
	if (!s) {
		fprintf(stderr, PROG ": out of memory\n");
		return EXIT_FAIL;
	}
	printf("%s\n", s);
	cJSON_free(s);
	return 0;
}

static int report(const struct opts *o, const struct outcome *out)
{
	int rc = 0;

	if (o->json)
		rc = print_json(o, out);
	else
		print_text(o, out);
	if (rc)
		return rc;
	if (fflush(stdout) != 0) {
		fprintf(stderr, PROG ": writing stdout: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	if (out->nnodes == 0) {
		fprintf(stderr, PROG ": the lookup found no node\n");
		return EXIT_EMPTY;
	}
	return 0;
}

/* ---- --bootstrap: a short-lived, read-only node ------------------------- */

enum phase { JOINING, LOOKING, DONE };

static void on_timer(uv_timer_t *t);

struct run {
	const struct opts *o;
	struct outcome *out;
	uv_loop_t *loop;
	uv_timer_t timer;
	struct km_uv_node *node;
	enum phase phase;
	km_ms deadline;
	unsigned families;  /* looked up in: KM_TOOL_V4 | KM_TOOL_V6 */
	int pending;        /* lookups still running */
	int rc;
};

static void collect(struct run *r, const struct km_lookup *lk)
{
	struct km_lookup_result res[K_MAX];
	struct km_addr peers[PEERS_MAX];
	struct km_lookup_stats st = km_lookup_stats(lk);
	char addr[KM_ADDR_STRLEN];
	size_t n = km_lookup_results(lk, res, K_MAX);

	for (size_t i = 0; i < n; i++) {
		km_addr_format(&res[i].c.addr, addr, sizeof(addr));
		outcome_add_node(r->out, &r->o->target, &res[i].c.id, addr,
				 res[i].rtt_ms);
	}
	n = km_lookup_peers(lk, peers, PEERS_MAX);
	for (size_t i = 0; i < n && r->out->npeers < PEERS_MAX; i++)
		km_addr_format(&peers[i], r->out->peers[r->out->npeers++],
			       KM_ADDR_STRLEN);
	outcome_add_stats(r->out, st.rounds, st.queries,
			  st.finished > st.started ?
			  st.finished - st.started : 0);
}

/* Called from inside the node, which must not be stopped under its own
 * feet: the timer, fired at once, does the stopping. */
static void on_lookup_done(void *user, uint64_t lookup_id,
			   const struct km_lookup *lk)
{
	struct run *r = user;

	/* Matched by target too: the id is written by the same call that
	 * may, with no seeds, finish the lookup at once. */
	if (r->phase != LOOKING ||
	    !km_id_eq(km_lookup_target(lk), &r->o->target))
		return;
	collect(r, lk);
	if (--r->pending > 0)
		return;
	r->phase = DONE;
	uv_timer_start(&r->timer, on_timer, 0, 0);
}

static void on_log(void *user, enum km_log_level level, const char *msg)
{
	const struct run *r = user;
	static const char *const names[] = { "error", "warn", "info", "debug" };

	if (level == KM_LOG_ERROR || r->o->verbose)
		fprintf(stderr, PROG ": node %s: %s\n",
			(unsigned)level < 4 ? names[level] : "?", msg);
}

static const uint8_t tool_af[2][2] = {
	{ KM_TOOL_V4, KM_AF_INET4 }, { KM_TOOL_V6, KM_AF_INET6 },
};

/* Joined: every family to look in has a node in its table. */
static bool joined(struct run *r)
{
	struct km_node *n = km_uv_node_core(r->node);

	for (int i = 0; i < 2; i++) {
		struct km_dht *d = km_node_dht_of(n, tool_af[i][1]);

		if ((r->families & tool_af[i][0]) &&
		    (!d || km_table_size(km_dht_table(d)) == 0))
			return false;
	}
	return true;
}

static void shutdown_run(struct run *r)
{
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, NULL);
	km_uv_node_stop(r->node, NULL, NULL);
	r->node = NULL;
}

static void start_lookup(struct run *r, km_ms now)
{
	enum km_lookup_kind kind = r->o->peers ? KM_LOOKUP_GET_PEERS :
						  KM_LOOKUP_FIND_NODE;
	int rc = 0;

	r->phase = LOOKING;
	r->deadline = now + LOOKUP_LIMIT_MS;
	/* Counted first: a lookup may end inside the call that starts it. */
	r->pending = family_count(r->families);
	for (int i = 0; i < 2 && rc == 0; i++)
		if (r->families & tool_af[i][0])
			rc = km_node_lookup_in(km_uv_node_core(r->node),
					       tool_af[i][1], &r->o->target,
					       kind, NULL, now);
	if (rc < 0) {
		fprintf(stderr, PROG ": cannot start the lookup: %s\n",
			km_strerror(rc));
		r->rc = EXIT_FAIL;
		r->phase = DONE;
	}
}

static void join_failed(struct run *r)
{
	const struct opts *o = r->o;

	if (o->nboot == 1)
		fprintf(stderr, PROG ": bootstrap %s did not answer within "
			"%llu s\n", o->boot_names[0],
			(unsigned long long)(o->join_timeout_ms / 1000));
	else
		fprintf(stderr, PROG ": none of the %zu bootstrap addresses "
			"answered within %llu s\n", o->nboot,
			(unsigned long long)(o->join_timeout_ms / 1000));
	r->rc = EXIT_BOOTSTRAP;
}

static void on_timer(uv_timer_t *t)
{
	struct run *r = t->data;
	km_ms now = uv_now(r->loop);

	if (r->phase == JOINING && joined(r))
		start_lookup(r, now);
	if (r->phase != DONE && now >= r->deadline) {
		if (r->phase == JOINING)
			join_failed(r);
		else
			fprintf(stderr, PROG ": the lookup did not finish\n");
		r->rc = r->rc ? r->rc : EXIT_FAIL;
		r->phase = DONE;
	}
	if (r->phase == DONE)
		shutdown_run(r);
}

static bool is_loopback(const struct km_addr *a)
{
	static const uint8_t v6[16] = { [15] = 1 };

	if (a->family == KM_AF_INET4)
		return a->ip[0] == 127;
	return memcmp(a->ip, v6, sizeof(v6)) == 0;
}

static unsigned tool_family(uint8_t af)
{
	return af == KM_AF_INET6 ? KM_TOOL_V6 : KM_TOOL_V4;
}

/* The families to look in: --family, else the first bootstrap's. */
static unsigned lookup_families(const struct opts *o)
{
	return o->families ? o->families : tool_family(o->boot[0].family);
}

/* The node runs the families it looks in and those of its bootstrap
 * addresses: joining over IPv4 fills an IPv6 table too, through `want`. */
static void node_config(const struct opts *o, struct km_node_config *cfg)
{
	km_node_config_default(cfg);
	if (getrandom(cfg->dht.id.b, KM_ID_LEN, 0) != KM_ID_LEN)
		fprintf(stderr, PROG ": getrandom: %s\n", strerror(errno));
	cfg->dht.family = o->boot[0].family;
	cfg->dht.read_only = true;
	cfg->dht.lookup.k = o->k;
	memcpy(cfg->bootstrap, o->boot, o->nboot * sizeof(o->boot[0]));
	cfg->nbootstrap = o->nboot;
}

/* One address per family: loopback when the first bootstrap is on
 * loopback (a loopback node is reached from loopback), else the
 * wildcard. */
static size_t bind_addrs(const struct opts *o, struct km_addr *out)
{
	static const uint8_t v4_lo[4] = { 127, 0, 0, 1 }, v4_any[4] = { 0 };
	static const uint8_t v6_lo[16] = { [15] = 1 }, v6_any[16] = { 0 };
	bool lo = is_loopback(&o->boot[0]);
	unsigned families = lookup_families(o);
	size_t n = 0;

	for (size_t i = 0; i < o->nboot; i++)
		families |= tool_family(o->boot[i].family);
	/* The first bootstrap's family first: it is the default one. */
	if (o->boot[0].family == KM_AF_INET6 && (families & KM_TOOL_V6)) {
		km_addr_set_v6(&out[n++], lo ? v6_lo : v6_any, 0);
		families &= ~(unsigned)KM_TOOL_V6;
	}
	if (families & KM_TOOL_V4)
		km_addr_set_v4(&out[n++], lo ? v4_lo : v4_any, 0);
	if (families & KM_TOOL_V6)
		km_addr_set_v6(&out[n++], lo ? v6_lo : v6_any, 0);
	return n;
}

static const char *errstr(int rc)
{
	return rc <= KM_ERR_NOMEM ? km_strerror(rc) : uv_strerror(rc);
}

static int run_bootstrap(const struct opts *o, struct outcome *out)
{
	static const struct km_uv_hooks hooks = {
		.lookup_done = on_lookup_done, .log = on_log,
	};
	uv_loop_t loop;
	struct km_node_config cfg;
	struct km_addr binds[2];
	size_t nbinds = bind_addrs(o, binds);
	struct run r = { .o = o, .out = out, .loop = &loop, .phase = JOINING,
			 .families = lookup_families(o) };
	int rc;

	node_config(o, &cfg);
	if ((rc = uv_loop_init(&loop)) < 0) {
		fprintf(stderr, PROG ": uv_loop_init: %s\n", uv_strerror(rc));
		return EXIT_FAIL;
	}
	rc = km_uv_node_start(&loop, binds, nbinds, &cfg, NULL, 0, &hooks, &r,
			      &r.node);
	if (rc < 0) {
		fprintf(stderr, PROG ": cannot start a node: %s\n", errstr(rc));
		uv_loop_close(&loop);
		return EXIT_FAIL;
	}
	r.deadline = uv_now(&loop) + o->join_timeout_ms;
	uv_timer_init(&loop, &r.timer);
	r.timer.data = &r;
	uv_timer_start(&r.timer, on_timer, POLL_MS, POLL_MS);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) < 0)
		fprintf(stderr, PROG ": warning: handles left open\n");
	return r.rc;
}

/* ---- --control: ask a running node -------------------------------------- */

static char *control_ask(const char *path, const char *request)
{
	const char *why = NULL;
	char *line = NULL;
	int fd = km_ctl_connect(path);

	if (fd < 0) {
		fprintf(stderr, PROG ": cannot connect to %s: %s\n", path,
			strerror(errno));
		return NULL;
	}
	if (km_ctl_send_all(fd, request, strlen(request)) < 0)
		fprintf(stderr, PROG ": writing %s: %s\n", path, strerror(errno));
	else if (!(line = km_ctl_read_line(fd, CONTROL_RESPONSE_MAX,
					    km_ctl_now_ms() +
					    CONTROL_TIMEOUT_S * 1000LL, &why)))
		fprintf(stderr, PROG ": no answer from %s: %s\n", path, why);
	close(fd);
	return line;
}

static double json_num(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(v) && v->valuedouble >= 0 ? v->valuedouble : 0;
}

static bool parse_node(const cJSON *n, struct km_id *id, const char **addr,
		       uint32_t *rtt_ms)
{
	const cJSON *jid = cJSON_GetObjectItemCaseSensitive(n, "id");
	const cJSON *jaddr = cJSON_GetObjectItemCaseSensitive(n, "addr");
	double rtt = json_num(n, "rtt_ms");

	if (!cJSON_IsString(jid) || !km_id_from_hex(jid->valuestring, id) ||
	    !cJSON_IsString(jaddr) || strlen(jaddr->valuestring) >= KM_ADDR_STRLEN)
		return false;
	*addr = jaddr->valuestring;
	*rtt_ms = rtt < UINT32_MAX ? (uint32_t)rtt : UINT32_MAX;
	return true;
}

static bool parse_result(const cJSON *res, const struct km_id *target,
			 struct outcome *out)
{
	const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(res, "nodes");
	const cJSON *peers = cJSON_GetObjectItemCaseSensitive(res, "peers");
	const cJSON *jt = cJSON_GetObjectItemCaseSensitive(res, "target");
	const cJSON *it;
	struct km_id t;

	/* An answer about some other ID would be printed as if about ours. */
	if (!cJSON_IsArray(nodes) || (jt && (!cJSON_IsString(jt) ||
	    !km_id_from_hex(jt->valuestring, &t) || !km_id_eq(&t, target))))
		return false;
	cJSON_ArrayForEach(it, nodes) {
		struct km_id id;
		const char *addr;
		uint32_t rtt;

		if (!parse_node(it, &id, &addr, &rtt))
			return false;
		outcome_add_node(out, target, &id, addr, rtt);
	}
	cJSON_ArrayForEach(it, peers) {
		if (cJSON_IsString(it) && out->npeers < PEERS_MAX)
			snprintf(out->peers[out->npeers++], KM_ADDR_STRLEN, "%s",
				 it->valuestring);
	}
	outcome_add_stats(out, (int)json_num(res, "rounds"),
			  (unsigned)json_num(res, "queries"),
			  (uint64_t)json_num(res, "elapsed_ms"));
	return true;
}

static int parse_response(const char *path, const char *line,
			  const struct km_id *target, struct outcome *out)
{
	cJSON *root = cJSON_Parse(line);
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "ok");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
	int rc = 0;

	if (cJSON_IsFalse(ok)) {
		fprintf(stderr, PROG ": the node answered: %s\n",
			cJSON_IsString(err) ? err->valuestring : "an error");
		rc = EXIT_CONTROL;
	} else if (!cJSON_IsTrue(ok) ||
		   !parse_result(cJSON_GetObjectItemCaseSensitive(root, "result"),
				 target, out)) {
		fprintf(stderr, PROG ": malformed answer from %s\n", path);
		rc = EXIT_CONTROL;
	}
	cJSON_Delete(root);
	return rc;
}

/* One request; family is "", " ipv4" or " ipv6". */
static int control_lookup(const struct opts *o, const char *family,
			  struct outcome *out)
{
	char hex[KM_ID_HEXLEN + 1], request[80];
	char *line;
	int rc;

	km_id_to_hex(&o->target, hex);
	snprintf(request, sizeof(request), "%s %s%s\n",
		 o->peers ? "get-peers" : "lookup", hex, family);
	if (!(line = control_ask(o->control, request)))
		return EXIT_CONTROL;
	rc = parse_response(o->control, line, &o->target, out);
	free(line);
	return rc;
}

static int run_control(const struct opts *o, struct outcome *out)
{
	int rc = 0;

	if (!o->families)
		return control_lookup(o, "", out);
	if (o->families & KM_TOOL_V4)
		rc = control_lookup(o, " ipv4", out);
	if (rc == 0 && (o->families & KM_TOOL_V6))
		rc = control_lookup(o, " ipv6", out);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct outcome *out;
	int rc = parse_opts(&o, argc, argv);

	if (rc >= 0)
		return rc;
	if (!(out = calloc(1, sizeof(*out)))) {
		fprintf(stderr, PROG ": out of memory\n");
		return EXIT_FAIL;
	}
	rc = o.control ? run_control(&o, out) : run_bootstrap(&o, out);
	if (rc == 0) {
		outcome_finish(out, o.k, family_count(o.families));
		rc = report(&o, out);
	}
	free(out);
	return rc;
}
