/* The public API in sans-IO mode: two nodes whose packets, connections and
 * clock are all supplied by the test, as an embedding program would. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "kadmesh.h"

#define NODES 2
#define QMAX 4096
#define PAIRS 16

enum ev_kind { EV_UDP, EV_CONNECT, EV_DATA, EV_CLOSE };

struct ev {
	enum ev_kind kind;
	int from, to;
	uint64_t conn; /* the sender's id for the connection */
	uint8_t buf[2048];
	size_t len;
};

struct pair { int a, b; uint64_t ca, cb; };

struct world {
	struct kadmesh *node[NODES];
	struct sockaddr_in addr[NODES];
	struct ev q[QMAX];
	size_t head, tail;
	struct pair pairs[PAIRS];
	size_t npairs;
	kadmesh_ms now;
	uint64_t rng;
	int delivered[NODES], lookups_done;
	size_t last_nnodes;
	char last_text[64];
};

static struct world W;

static int who(void *user) { return (int)((struct sockaddr_in *)user - W.addr); }

static int node_at(const struct sockaddr *sa)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

	for (int i = 0; i < NODES; i++)
		if (in->sin_addr.s_addr == W.addr[i].sin_addr.s_addr)
			return i;
	return -1;
}

static struct ev *push(enum ev_kind kind, int from, int to, uint64_t conn,
		       const uint8_t *buf, size_t len)
{
	cr_assert_lt(W.tail - W.head, QMAX - 1);
	cr_assert_leq(len, sizeof(W.q[0].buf));
	struct ev *e = &W.q[W.tail++ % QMAX];
	*e = (struct ev){ .kind = kind, .from = from, .to = to, .conn = conn,
			  .len = len };
	if (len)
		memcpy(e->buf, buf, len);
	return e;
}

/* The other end of (node, conn); false when it is gone. */
static bool peer_of(int node, uint64_t conn, int *peer, uint64_t *pconn)
{
	for (size_t i = 0; i < W.npairs; i++) {
		struct pair *p = &W.pairs[i];
		if (p->a == node && p->ca == conn) {
			*peer = p->b, *pconn = p->cb;
			return true;
		}
		if (p->b == node && p->cb == conn) {
			*peer = p->a, *pconn = p->ca;
			return true;
		}
	}
	return false;
}

static void udp_send(void *u, const struct sockaddr *to, socklen_t l,
		     const uint8_t *buf, size_t len)
{
	int dst = node_at(to);

	if (dst >= 0)
		push(EV_UDP, who(u), dst, 0, buf, len);
}

static void tcp_connect(void *u, uint64_t conn, const struct sockaddr *to,
			socklen_t l)
{
	push(EV_CONNECT, who(u), node_at(to), conn, NULL, 0);
}

static void tcp_send(void *u, uint64_t conn, const uint8_t *buf, size_t len)
{
	while (len > 0) { /* a TCP stream may arrive in any pieces */
		size_t n = len < 2048 ? len : 2048;
		push(EV_DATA, who(u), -1, conn, buf, n);
		buf += n, len -= n;
	}
}

static void tcp_close(void *u, uint64_t conn)
{
	push(EV_CLOSE, who(u), -1, conn, NULL, 0);
}

static void fill(void *u, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len--) { /* splitmix-ish: deterministic, well spread */
		W.rng = W.rng * 6364136223846793005ull + 1442695040888963407ull;
		*p++ = (uint8_t)(W.rng >> 56);
	}
}

static void message(void *u, const struct kadmesh_message *m)
{
	int i = who(u);

	W.delivered[i]++;
	snprintf(W.last_text, sizeof(W.last_text), "%.*s", (int)m->len,
		 (const char *)m->payload);
}

static void lookup_done(void *u, uint64_t id, const struct kadmesh_result *r)
{
	W.lookups_done++;
	W.last_nnodes = r->nnodes;
}

static void deliver(struct ev *e)
{
	int peer;
	uint64_t pconn;

	if (e->kind == EV_UDP) {
		kadmesh_udp_recv(W.node[e->to], (struct sockaddr *)&W.addr[e->from],
				 e->buf, e->len, W.now);
	} else if (e->kind == EV_CONNECT) {
		struct sockaddr_in from = W.addr[e->from];
		from.sin_port = htons(40000);
		uint64_t c = kadmesh_tcp_accepted(W.node[e->to],
						  (struct sockaddr *)&from, W.now);
		if (!c) {
			kadmesh_tcp_closed(W.node[e->from], e->conn, W.now);
			return;
		}
		cr_assert_lt(W.npairs, PAIRS);
		W.pairs[W.npairs++] = (struct pair){ e->from, e->to, e->conn, c };
		kadmesh_tcp_connected(W.node[e->from], e->conn, W.now);
	} else if (peer_of(e->from, e->conn, &peer, &pconn)) {
		if (e->kind == EV_DATA)
			kadmesh_tcp_recv(W.node[peer], pconn, e->buf, e->len, W.now);
		else
			kadmesh_tcp_closed(W.node[peer], pconn, W.now);
	}
}

/* Runs the world in 10 ms steps until done() or max_ms pass. */
static bool run_until(bool (*done)(void), kadmesh_ms max_ms)
{
	for (kadmesh_ms end = W.now + max_ms; W.now < end; W.now += 10) {
		while (W.head != W.tail)
			deliver(&W.q[W.head++ % QMAX]);
		if (done())
			return true;
		for (int i = 0; i < NODES; i++)
			kadmesh_tick(W.node[i], W.now);
	}
	return false;
}

static bool linked(void)
{
	return kadmesh_neighbour_count(W.node[0]) == 1 &&
	       kadmesh_neighbour_count(W.node[1]) == 1;
}
static bool both_delivered(void) { return W.delivered[0] && W.delivered[1]; }
static bool looked_up(void) { return W.lookups_done > 0; }
static bool two_looked_up(void) { return W.lookups_done >= 2; }

static void setup(void)
{
	static const struct kadmesh_callbacks cb = {
		.udp_send = udp_send, .tcp_connect = tcp_connect,
		.tcp_send = tcp_send, .tcp_close = tcp_close, .random = fill,
		.message = message, .lookup_done = lookup_done,
	};
	const char *boot[] = { "10.0.0.1:7000" };
	struct kadmesh_config cfg;

	memset(&W, 0, sizeof(W));
	W.now = 1000;
	for (int i = 0; i < NODES; i++) {
		W.addr[i].sin_family = AF_INET;
		W.addr[i].sin_port = htons(7000);
		W.addr[i].sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)i);
		kadmesh_config_default(&cfg);
		cfg.seed = i == 0;
		cfg.bootstrap = i ? boot : NULL;
		cfg.nbootstrap = i ? 1 : 0;
		W.node[i] = kadmesh_new(&cfg, &cb, &W.addr[i], 7000, W.now);
		cr_assert_not_null(W.node[i]);
	}
}

static void teardown(void)
{
	for (int i = 0; i < NODES; i++)
		kadmesh_del(W.node[i]);
}

TestSuite(api, .init = setup, .fini = teardown);

Test(api, two_sans_io_nodes_link_and_a_broadcast_reaches_both)
{
	cr_assert(run_until(linked, 20000), "the nodes became neighbours");
	cr_assert_eq(kadmesh_broadcast(W.node[0], "hello", 5, NULL), 0);
	cr_assert(run_until(both_delivered, 5000));
	cr_assert_str_eq(W.last_text, "hello");
	cr_assert_eq(kadmesh_routing_table_size(W.node[1]), 1);
}

Test(api, a_lookup_reports_the_other_node_through_lookup_done)
{
	uint8_t target[KADMESH_ID_LEN] = { 0x42 };
	uint64_t id = 0;

	cr_assert(run_until(linked, 20000));
	cr_assert_eq(kadmesh_find_node(W.node[1], target, &id), 0);
	cr_assert_neq(id, 0);
	cr_assert(run_until(looked_up, 20000));
	cr_assert_eq(W.last_nnodes, 1);
}

Test(api, kadmesh_lookup_runs_each_kind_and_refuses_an_unknown_one)
{
	struct kadmesh_lookup req = { .kind = KADMESH_FIND_NODE,
				      .target = { 0x42 } };
	uint64_t id = 0;

	cr_assert(run_until(linked, 20000));
	cr_assert_eq(kadmesh_lookup(W.node[1], &req, &id), 0);
	cr_assert_neq(id, 0);
	cr_assert(run_until(looked_up, 20000));
	cr_assert_eq(W.last_nnodes, 1);
	W.lookups_done = 0;
	req.kind = KADMESH_GET_PEERS;
	cr_assert_eq(kadmesh_lookup(W.node[1], &req, NULL), 0);
	req.kind = KADMESH_ANNOUNCE;
	req.port = 6881;
	cr_assert_eq(kadmesh_lookup(W.node[1], &req, NULL), 0);
	cr_assert(run_until(two_looked_up, 20000));
	req.kind = (enum kadmesh_lookup_kind)7;
	cr_assert_eq(kadmesh_lookup(W.node[1], &req, NULL), KADMESH_ERR_INVAL);
}

Test(api, a_payload_over_the_cap_is_refused_with_its_own_code)
{
	static uint8_t big[KADMESH_PAYLOAD_MAX + 1];

	cr_assert_eq(kadmesh_broadcast(W.node[0], big, sizeof(big), NULL),
		     KADMESH_ERR_TOO_LONG);
	cr_assert_eq(kadmesh_broadcast(W.node[0], big, KADMESH_PAYLOAD_MAX,
				       NULL), 0);
	cr_assert_str_neq(kadmesh_strerror(KADMESH_ERR_TOO_LONG),
			  kadmesh_strerror(KADMESH_ERR_INVAL));
}

Test(api, a_config_without_seed_or_bootstrap_is_refused)
{
	static const struct kadmesh_callbacks cb = {
		.udp_send = udp_send, .tcp_connect = tcp_connect,
		.tcp_send = tcp_send, .tcp_close = tcp_close, .random = fill,
	};
	const char *bad[] = { "not an address" };
	struct kadmesh_config cfg;

	kadmesh_config_default(&cfg);
	cr_assert_null(kadmesh_new(&cfg, &cb, &W.addr[0], 7000, W.now));
	cfg.bootstrap = bad;
	cfg.nbootstrap = 1;
	cr_assert_null(kadmesh_new(&cfg, &cb, &W.addr[0], 7000, W.now));
	cr_assert_str_eq(kadmesh_version(), KADMESH_VERSION);
	cr_assert_not_null(kadmesh_strerror(-201));
}

/* --- the log callback collapses repeats ---------------------------------- */

/* A lone node whose bootstrap address refuses every connection: each retry
 * logs the same debug line, which the callback must see once a window. */
static struct {
	uint64_t refused[64];
	size_t nrefused, attempts;
	char lines[32][600];
	size_t nlines;
} L;

static void refuse_connect(void *u, uint64_t conn, const struct sockaddr *to,
			   socklen_t l)
{
	L.attempts++;
	if (L.nrefused < 64)
		L.refused[L.nrefused++] = conn;
}

static void ignore_udp(void *u, const struct sockaddr *to, socklen_t l,
		       const uint8_t *buf, size_t len) {}
static void ignore_tcp(void *u, uint64_t conn, const uint8_t *buf,
		       size_t len) {}
static void ignore_close(void *u, uint64_t conn) {}

static void log_line(void *u, enum kadmesh_log_level level, const char *msg)
{
	if (L.nlines < 32)
		snprintf(L.lines[L.nlines++], sizeof(L.lines[0]), "%s", msg);
}

static size_t lines_with(const char *needle)
{
	size_t n = 0;

	for (size_t i = 0; i < L.nlines; i++)
		n += strstr(L.lines[i], needle) != NULL;
	return n;
}

Test(api_log, a_retry_that_fails_again_and_again_is_logged_once_a_minute)
{
	static const struct kadmesh_callbacks cb = {
		.udp_send = ignore_udp, .tcp_connect = refuse_connect,
		.tcp_send = ignore_tcp, .tcp_close = ignore_close,
		.random = fill, .log = log_line,
	};
	const char *boot[] = { "10.0.0.9:7000" };
	struct kadmesh_config cfg;
	struct kadmesh *k;
	kadmesh_ms now = 1000, next = 1000;

	memset(&L, 0, sizeof(L));
	kadmesh_config_default(&cfg);
	cfg.bootstrap = boot;
	cfg.nbootstrap = 1;
	k = kadmesh_new(&cfg, &cb, NULL, 7000, now);
	cr_assert_not_null(k);
	/* Ten virtual minutes, waking only when the node asks to. */
	while (now < 1000 + 600000) {
		for (size_t i = 0; i < L.nrefused; i++)
			kadmesh_tcp_closed(k, L.refused[i], now);
		L.nrefused = 0;
		next = kadmesh_tick(k, now);
		cr_assert_gt(next, 0);
		now = next > now ? next : now + 1;
	}
	kadmesh_del(k);
	cr_assert_gt(L.attempts, 12, "the node kept retrying (%zu)", L.attempts);
	cr_assert_eq(lines_with("no overlay answer"), L.nlines);
	cr_assert_geq(lines_with("(repeated"), 1);
	cr_assert_leq(L.nlines, 12, "%zu lines for %zu retries", L.nlines,
		      L.attempts);
}
