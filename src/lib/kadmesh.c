/* The public API (include/kadmesh.h, kadmesh_uv.h): a thin skin over km_node and
 * km_uv_node that converts struct sockaddr and plain byte arrays to the
 * core's types, so that none of the internal headers leak out. */
#include "kadmesh.h"
#include "kadmesh_uv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include "ops/logrep.h"
#include "net/node.h"
#include "uv/addr.h"
#include "uv/node.h"
#include "proto/err.h"

_Static_assert(KADMESH_ID_LEN == KM_ID_LEN, "ID sizes agree");
_Static_assert(KADMESH_PAYLOAD_MAX == KM_MESSAGE_PAYLOAD_MAX,
	       "payload caps agree");
_Static_assert(KADMESH_KEY_SEED_LEN == KM_IDENT_SEED_LEN, "key seeds agree");
_Static_assert((int)KADMESH_LOG_DEBUG == (int)KM_LOG_DEBUG,
	       "log levels agree");
_Static_assert(KADMESH_ERR_NOMEM == KM_ERR_NOMEM &&
	       KADMESH_ERR_INVAL == KM_ERR_INVAL &&
	       KADMESH_ERR_FULL == KM_ERR_FULL &&
	       KADMESH_ERR_TOO_LONG == KM_ERR_TOO_LONG, "error codes agree");

#define RESULT_MAX 64 /* nodes or peers handed to lookup_done at most */
#define LOG_REPEAT_WINDOW_MS 60000 /* see kadmesh_callbacks.log */

struct kadmesh {
	struct kadmesh_callbacks cb;
	void *user;
	struct km_node *node;        /* sans-IO mode */
	struct km_uv_node *uv;       /* libuv mode */
	uv_loop_t *loop;
	kadmesh_ms now;              /* sans-IO: the latest time fed in */
	struct km_rng rng;
	struct km_id id;
	struct km_logrep logrep;     /* collapses repeats before cb.log */
	uv_timer_t log_timer;        /* libuv mode: reports a count on time */
	bool log_timer_on;
	void (*stop_done)(void *user);
	void *stop_user;
};

const char *kadmesh_version(void)
{
	return KADMESH_VERSION;
}

const char *kadmesh_strerror(int code)
{
	return code <= KM_ERR_NOMEM ? km_strerror(code) : uv_strerror(code);
}

void kadmesh_config_default(struct kadmesh_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
}

static struct km_node *core(const struct kadmesh *k)
{
	return k->uv ? km_uv_node_core(k->uv) : k->node;
}

static kadmesh_ms now_of(const struct kadmesh *k)
{
	return k->loop ? uv_now(k->loop) : k->now;
}

/* --- conversions ------------------------------------------------------- */

static void peer_from(struct kadmesh_peer *p, const struct km_id *id,
		      const struct km_addr *a)
{
	memset(p, 0, sizeof(*p));
	if (id)
		memcpy(p->id, id->b, KADMESH_ID_LEN);
	int len = km_uv_addr_to_sockaddr(a, &p->addr);
	p->addrlen = len > 0 ? (socklen_t)len : 0;
}

static bool addr_from(const struct sockaddr *sa, struct km_addr *out)
{
	return sa && km_uv_addr_from_sockaddr(sa, out);
}

/* --- callbacks from the core ------------------------------------------- */

static void on_udp_send(void *user, const struct km_addr *to,
			const uint8_t *buf, size_t len)
{
	struct kadmesh *k = user;
	struct sockaddr_storage ss;
	int sl = km_uv_addr_to_sockaddr(to, &ss);

	if (sl > 0)
		k->cb.udp_send(k->user, (struct sockaddr *)&ss, (socklen_t)sl,
			       buf, len);
}

static void on_tcp_connect(void *user, uint64_t conn, const struct km_addr *to)
{
	struct kadmesh *k = user;
	struct sockaddr_storage ss;
	int sl = km_uv_addr_to_sockaddr(to, &ss);

	if (sl > 0)
		k->cb.tcp_connect(k->user, conn, (struct sockaddr *)&ss,
				  (socklen_t)sl);
	else
		km_node_tcp_closed(k->node, conn, k->now);
}

static void on_tcp_send(void *user, uint64_t conn, const uint8_t *buf,
			size_t len)
{
	struct kadmesh *k = user;

	k->cb.tcp_send(k->user, conn, buf, len);
}

static void on_tcp_close(void *user, uint64_t conn)
{
	struct kadmesh *k = user;

	k->cb.tcp_close(k->user, conn);
}

static void on_lookup_done(void *user, uint64_t lookup_id,
			   const struct km_lookup *lk)
{
	struct kadmesh *k = user;
	struct km_lookup_result res[RESULT_MAX];
	struct km_addr addrs[RESULT_MAX];
	struct kadmesh_peer nodes[RESULT_MAX], peers[RESULT_MAX];
	struct kadmesh_result r;
	size_t i;

	if (!k->cb.lookup_done)
		return;
	r.target = km_lookup_target(lk)->b;
	r.nnodes = km_lookup_results(lk, res, RESULT_MAX);
	r.npeers = km_lookup_peers(lk, addrs, RESULT_MAX);
	r.nnodes = r.nnodes < RESULT_MAX ? r.nnodes : RESULT_MAX;
	r.npeers = r.npeers < RESULT_MAX ? r.npeers : RESULT_MAX;
	for (i = 0; i < r.nnodes; i++)
		peer_from(&nodes[i], &res[i].c.id, &res[i].c.addr);
	for (i = 0; i < r.npeers; i++)
		peer_from(&peers[i], NULL, &addrs[i]);
	r.nodes = nodes;
	r.peers = peers;
	k->cb.lookup_done(k->user, lookup_id, &r);
}

static void on_deliver(void *user, const struct km_message *m)
{
	struct kadmesh *k = user;
	struct kadmesh_message out = {
		.id = m->id, .origin = m->origin.b, .payload = m->payload,
		.len = m->payload_len, .hops = m->hops,
	};

	if (k->cb.message)
		k->cb.message(k->user, &out);
}

static void log_out(void *user, enum km_log_level level, const char *msg)
{
	struct kadmesh *k = user;

	k->cb.log(k->user, (enum kadmesh_log_level)level, msg);
}

static void on_log_timer(uv_timer_t *t)
{
	struct kadmesh *k = t->data;
	kadmesh_ms now = uv_now(k->loop);
	kadmesh_ms when = km_logrep_tick(&k->logrep, now);

	if (when)
		uv_timer_start(t, on_log_timer, when - now, 0);
}

static void on_log(void *user, enum km_log_level level, const char *msg)
{
	struct kadmesh *k = user;
	kadmesh_ms now = now_of(k), when;

	if (!k->cb.log)
		return;
	km_logrep_log(&k->logrep, level, msg, now);
	when = km_logrep_tick(&k->logrep, now);
	if (k->log_timer_on && when &&
	    !uv_is_active((uv_handle_t *)&k->log_timer))
		uv_timer_start(&k->log_timer, on_log_timer, when - now, 0);
}

static void rng_fill(void *ctx, void *buf, size_t len)
{
	struct kadmesh *k = ctx;

	k->cb.random(k->user, buf, len);
}

/* --- construction ------------------------------------------------------ */

static bool is_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

/* Fills the core's config from the public one; false on a bad address. */
static bool node_config(const struct kadmesh_config *in, const struct km_id *id,
			struct km_node_config *cfg)
{
	km_node_config_default(cfg);
	cfg->dht.id = *id;
	if (in->network_id)
		cfg->network_id = in->network_id;
	cfg->seed = in->seed;
	cfg->has_key = in->has_key;
	if (in->has_key)
		memcpy(cfg->key_seed, in->key_seed, KADMESH_KEY_SEED_LEN);
	if (in->nbootstrap > KM_NODE_MAX_BOOTSTRAP)
		return false;
	for (size_t i = 0; i < in->nbootstrap; i++)
		if (!km_addr_parse(in->bootstrap[i], &cfg->bootstrap[i]))
			return false;
	cfg->nbootstrap = in->nbootstrap;
	return cfg->seed || cfg->nbootstrap > 0;
}

static void pick_id(struct kadmesh *k, const struct kadmesh_config *cfg)
{
	if (!is_zero(cfg->id, KADMESH_ID_LEN))
		memcpy(k->id.b, cfg->id, KADMESH_ID_LEN);
	else if (k->cb.random)
		k->cb.random(k->user, k->id.b, KADMESH_ID_LEN);
	else if (getrandom(k->id.b, KADMESH_ID_LEN, 0) != KADMESH_ID_LEN)
		abort(); /* no randomness, no safe identity */
}

static struct kadmesh *alloc(const struct kadmesh_callbacks *cb, void *user)
{
	struct kadmesh *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	k->cb = *cb;
	k->user = user;
	km_logrep_init(&k->logrep, LOG_REPEAT_WINDOW_MS, log_out, k);
	return k;
}

struct kadmesh *kadmesh_new(const struct kadmesh_config *cfg,
			    const struct kadmesh_callbacks *cb, void *user,
			    uint16_t port, kadmesh_ms now)
{
	static const struct km_node_callbacks core_cb = {
		.udp_send = on_udp_send, .tcp_connect = on_tcp_connect,
		.tcp_send = on_tcp_send, .tcp_close = on_tcp_close,
		.lookup_done = on_lookup_done, .log = on_log,
		.deliver = on_deliver,
	};
	struct km_node_config ncfg;
	struct kadmesh *k;

	if (!cb->udp_send || !cb->tcp_connect || !cb->tcp_send ||
	    !cb->tcp_close || !cb->random || !(k = alloc(cb, user)))
		return NULL;
	pick_id(k, cfg);
	k->now = now;
	k->rng = (struct km_rng){ .fill = rng_fill, .ctx = k };
	if (!node_config(cfg, &k->id, &ncfg)) {
		free(k);
		return NULL;
	}
	ncfg.port = port;
	k->node = km_node_new(&ncfg, &core_cb, k, &k->rng, now);
	if (!k->node) {
		free(k);
		return NULL;
	}
	km_node_start(k->node, NULL, 0, now);
	return k;
}

void kadmesh_del(struct kadmesh *k)
{
	if (!k)
		return;
	km_node_del(k->node);
	km_logrep_flush(&k->logrep);
	free(k);
}

int kadmesh_uv_start(struct uv_loop_s *loop, const char *bind,
		     const struct kadmesh_config *cfg,
		     const struct kadmesh_callbacks *cb, void *user,
		     struct kadmesh **out)
{
	static const struct km_uv_hooks hooks = {
		.lookup_done = on_lookup_done, .log = on_log,
		.deliver = on_deliver,
	};
	struct km_node_config ncfg;
	struct km_addr b;
	struct kadmesh *k;
	int rc;

	if (!km_addr_parse(bind, &b))
		return KM_ERR_INVAL;
	if (!(k = alloc(cb, user)))
		return KM_ERR_NOMEM;
	pick_id(k, cfg);
	k->loop = loop;
	if (!node_config(cfg, &k->id, &ncfg)) {
		free(k);
		return KM_ERR_INVAL;
	}
	rc = km_uv_node_start(loop, &b, 1, &ncfg, NULL, 0, &hooks, k, &k->uv);
	if (rc < 0) {
		free(k);
		return rc;
	}
	/* Unreferenced: a pending count never keeps the loop alive. */
	uv_timer_init(loop, &k->log_timer);
	uv_unref((uv_handle_t *)&k->log_timer);
	k->log_timer.data = k;
	k->log_timer_on = true;
	*out = k;
	return 0;
}

static void log_timer_closed(uv_handle_t *h)
{
	struct kadmesh *k = h->data;
	void (*done)(void *) = k->stop_done;
	void *done_user = k->stop_user;

	free(k);
	if (done)
		done(done_user);
}

static void uv_stopped(void *user)
{
	struct kadmesh *k = user;

	km_logrep_flush(&k->logrep);
	k->log_timer_on = false;
	uv_close((uv_handle_t *)&k->log_timer, log_timer_closed);
}

void kadmesh_stop(struct kadmesh *k, void (*done)(void *user), void *user)
{
	if (!k->uv) {
		km_node_stop(k->node, k->now);
		if (done)
			done(user);
		return;
	}
	/* The driver frees itself once its handles close; k goes then. */
	k->stop_done = done;
	k->stop_user = user;
	km_uv_node_stop(k->uv, uv_stopped, k);
}

/* --- sans-IO input ------------------------------------------------------ */

void kadmesh_udp_recv(struct kadmesh *k, const struct sockaddr *from,
		      const uint8_t *buf, size_t len, kadmesh_ms now)
{
	struct km_addr a;

	k->now = now;
	if (addr_from(from, &a))
		km_node_udp_recv(k->node, &a, buf, len, now);
}

uint64_t kadmesh_tcp_accepted(struct kadmesh *k, const struct sockaddr *from,
			      kadmesh_ms now)
{
	struct km_addr a;

	k->now = now;
	return addr_from(from, &a) ? km_node_tcp_accepted(k->node, &a, now) : 0;
}

void kadmesh_tcp_connected(struct kadmesh *k, uint64_t conn, kadmesh_ms now)
{
	k->now = now;
	km_node_tcp_connected(k->node, conn, now);
}

void kadmesh_tcp_recv(struct kadmesh *k, uint64_t conn, const uint8_t *buf,
		      size_t len, kadmesh_ms now)
{
	k->now = now;
	km_node_tcp_recv(k->node, conn, buf, len, now);
}

void kadmesh_tcp_closed(struct kadmesh *k, uint64_t conn, kadmesh_ms now)
{
	k->now = now;
	km_node_tcp_closed(k->node, conn, now);
}

kadmesh_ms kadmesh_tick(struct kadmesh *k, kadmesh_ms now)
{
	kadmesh_ms next, log_next;

	k->now = now;
	next = km_node_tick(k->node, now);
	log_next = km_logrep_tick(&k->logrep, now);
	if (log_next && (!next || log_next < next))
		next = log_next;
	return next;
}

/* --- requests ---------------------------------------------------------- */

/* In libuv mode the driver's timer must learn about the new work. */
static int done_request(struct kadmesh *k, int rc)
{
	if (k->uv)
		km_uv_node_kick(k->uv);
	return rc;
}

int kadmesh_lookup(struct kadmesh *k, const struct kadmesh_lookup *req,
		   uint64_t *lookup_id)
{
	struct km_node *n = core(k);
	struct km_id t;
	uint64_t id, *out = lookup_id ? lookup_id : &id;

	memcpy(t.b, req->target, KADMESH_ID_LEN);
	switch (req->kind) {
	case KADMESH_FIND_NODE:
		return done_request(k, km_node_lookup(n, &t, KM_LOOKUP_FIND_NODE,
						      out, now_of(k)));
	case KADMESH_GET_PEERS:
		return done_request(k, km_node_lookup(n, &t, KM_LOOKUP_GET_PEERS,
						      out, now_of(k)));
	case KADMESH_ANNOUNCE:
		return done_request(k, km_node_announce(n, &t, req->port, out,
							now_of(k)));
	}
	return KADMESH_ERR_INVAL;
}

static int lookup_of(struct kadmesh *k, enum kadmesh_lookup_kind kind,
		     const uint8_t target[KADMESH_ID_LEN], uint16_t port,
		     uint64_t *lookup_id)
{
	struct kadmesh_lookup req = { .kind = kind, .port = port };

	memcpy(req.target, target, KADMESH_ID_LEN);
	return kadmesh_lookup(k, &req, lookup_id);
}

int kadmesh_find_node(struct kadmesh *k, const uint8_t target[KADMESH_ID_LEN],
		      uint64_t *lookup_id)
{
	return lookup_of(k, KADMESH_FIND_NODE, target, 0, lookup_id);
}

int kadmesh_get_peers(struct kadmesh *k,
		      const uint8_t info_hash[KADMESH_ID_LEN],
		      uint64_t *lookup_id)
{
	return lookup_of(k, KADMESH_GET_PEERS, info_hash, 0, lookup_id);
}

int kadmesh_announce(struct kadmesh *k, const uint8_t info_hash[KADMESH_ID_LEN],
		     uint16_t port, uint64_t *lookup_id)
{
	return lookup_of(k, KADMESH_ANNOUNCE, info_hash, port, lookup_id);
}

int kadmesh_broadcast(struct kadmesh *k, const void *payload, size_t len,
		      uint8_t msg_id[KADMESH_ID_LEN])
{
	uint8_t id[KADMESH_ID_LEN];

	return done_request(k, km_node_broadcast(core(k), payload, len,
						 msg_id ? msg_id : id,
						 now_of(k)));
}

/* --- state ------------------------------------------------------------- */

const uint8_t *kadmesh_id(const struct kadmesh *k)
{
	return k->id.b;
}

uint16_t kadmesh_port(const struct kadmesh *k)
{
	return k->uv ? km_uv_node_port(k->uv) : km_node_config(k->node)->port;
}

size_t kadmesh_routing_table_size(const struct kadmesh *k)
{
	return km_table_size(km_dht_table(km_node_dht(core(k))));
}

size_t kadmesh_neighbour_count(const struct kadmesh *k)
{
	struct km_node_stats s = km_node_stats(core(k));

	return s.neighbours.in + s.neighbours.out;
}
