/* The libuv driver for km_node: sockets, the clock and the OS's randomness.
 *
 * Ownership follows libuv: every handle lives in memory that only its close
 * callback frees, and u itself is freed when its last handle has closed.
 * The core is never called back from inside one of its own callbacks: a
 * connection that fails while the node is talking to us is closed, and the
 * node hears about it from the close callback, on a later turn of the loop.
 *
 * Timers: instead of running km_node_tick() after every datagram, an event
 * "kicks" the one timer to fire at once, so a burst of events read in one
 * poll costs one tick, which then re-arms the timer for whatever the core
 * asks for.
 *
 * The driver's files: node.c (this: the timer, the node's callbacks, start
 * and stop), tcp.c, udp.c, bind.c and rng.c; node_internal.h holds the
 * state they share.
 *
 * UDP in bulk: libuv reads up to RECV_BATCH datagrams per recvmmsg call,
 * and the replies the core sends while it handles them are gathered and
 * leave in one sendmmsg when the batch ends, so a busy node makes two
 * system calls per batch rather than two per query. */
#define _GNU_SOURCE /* sendmmsg */
#define _GNU_SOURCE /* struct mmsghdr in node_internal.h */
#include "uv/node_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/err.h"

static void on_timer(uv_timer_t *t);
static void timer_closed(uv_handle_t *h);

/* --- logging, the clock and the timer ---------------------------------- */

void km_uv_node_say(struct km_uv_node *u, enum km_log_level level,
		const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!u->hooks.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	u->hooks.log(u->user, level, msg);
}

km_ms km_uv_node_now(struct km_uv_node *u)
{
	return uv_now(u->loop);
}

/* Asks for a tick on the next turn of the loop. */
void km_uv_node_kick(struct km_uv_node *u)
{
	if (u->kicked || u->stopping)
		return;
	u->kicked = true;
	uv_timer_start(&u->timer, on_timer, 0, 0);
}

struct sock_pair *km_uv_node_pair_for(struct km_uv_node *u, uint8_t family)
{
	for (size_t i = 0; i < u->nsocks; i++)
		if (u->socks[i].family == family)
			return &u->socks[i];
	return NULL;
}

static void node_save_state(void *user, const uint8_t *buf, size_t len)
{
	struct km_uv_node *u = user;

	if (u->hooks.save_state)
		u->hooks.save_state(u->user, buf, len);
}

static void node_lookup_done(void *user, uint64_t lookup_id,
			     const struct km_lookup *lk)
{
	struct km_uv_node *u = user;

	if (u->hooks.lookup_done)
		u->hooks.lookup_done(u->user, lookup_id, lk);
}

static void node_log(void *user, enum km_log_level level, const char *msg)
{
	struct km_uv_node *u = user;

	if (u->hooks.log)
		u->hooks.log(u->user, level, msg);
}

static void node_deliver(void *user, const struct km_message *m)
{
	struct km_uv_node *u = user;

	if (u->hooks.deliver)
		u->hooks.deliver(u->user, m);
}

static const struct km_node_callbacks node_callbacks = {
	.deliver = node_deliver,
	.udp_send = km_uv_udp_send,
	.tcp_connect = km_uv_tcp_connect,
	.tcp_send = km_uv_tcp_send,
	.tcp_close = km_uv_tcp_close,
	.tcp_punch = km_uv_tcp_punch,
	.save_state = node_save_state,
	.lookup_done = node_lookup_done,
	.log = node_log,
};

/* --- the timer, start and stop ----------------------------------------- */

static void on_timer(uv_timer_t *t)
{
	struct km_uv_node *u = t->data;
	km_ms now = km_uv_node_now(u), next, linger;

	if (u->stopping) { /* the GOODBYEs had their chance */
		km_uv_tcp_close_all(u);
		return;
	}
	u->kicked = false;
	next = km_node_tick(u->node, now);
	if (next == 0) /* the core has nothing scheduled */
		next = UINT64_MAX;
	linger = km_uv_tcp_sweep_lingering(u, now);
	if (linger < next)
		next = linger;
	next = next > now ? next - now : 1;
	uv_timer_start(&u->timer, on_timer,
		       next > MAX_SLEEP_MS ? MAX_SLEEP_MS : next, 0);
}

static void uv_node_free(struct km_uv_node *u)
{
	if (u)
		free(u->udp_buf);
	free(u);
}

static void handle_closed(struct km_uv_node *u)
{
	void (*done)(void *) = u->done;
	void *done_user = u->done_user;

	if (--u->handles > 0)
		return;
	km_node_del(u->node);
	uv_node_free(u);
	if (done)
		done(done_user);
}

static void pair_closed(uv_handle_t *h)
{
	handle_closed(((struct sock_pair *)h->data)->u);
}

static void timer_closed(uv_handle_t *h)
{
	handle_closed(h->data);
}

/* A connection's handle has closed: the last one of a stopping node lets
 * the timer go, and the last handle of all frees u. */
void km_uv_node_conn_gone(struct km_uv_node *u)
{
	if (u->stopping && u->nconns == 0 &&
	    !uv_is_closing((uv_handle_t *)&u->timer))
		uv_close((uv_handle_t *)&u->timer, timer_closed);
	handle_closed(u);
}

static void close_sockets(struct km_uv_node *u)
{
	for (size_t i = 0; i < u->nsocks; i++) {
		struct sock_pair *sp = &u->socks[i];

		uv_udp_recv_stop(&sp->udp);
		uv_close((uv_handle_t *)&sp->udp, pair_closed);
		uv_close((uv_handle_t *)&sp->listener, pair_closed);
	}
}

/* Adopts the bound sockets into libuv.  On failure the handles are closing
 * (and free u when done); fds not yet adopted are closed here. */
static int open_pair(struct km_uv_node *u, uint8_t family, int tfd, int ufd)
{
	struct sock_pair *sp = &u->socks[u->nsocks++];
	int rc;

	sp->u = u;
	sp->family = family;
	/* AF_UNSPEC: no socket yet, uv_udp_open adopts ours. */
	uv_udp_init_ex(u->loop, &sp->udp, AF_UNSPEC | UV_UDP_RECVMMSG);
	uv_tcp_init(u->loop, &sp->listener);
	sp->udp.data = sp->listener.data = sp;
	u->handles += 2;
	rc = uv_udp_open(&sp->udp, ufd);
	if (rc < 0)
		close(ufd);
	if (uv_tcp_open(&sp->listener, tfd) < 0) {
		close(tfd);
		rc = rc < 0 ? rc : KM_ERR_INVAL;
	}
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&sp->listener, 128, km_uv_tcp_on_connection);
	if (rc == 0)
		rc = km_uv_udp_start(sp);
	return rc;
}

static void start_failed(struct km_uv_node *u)
{
	u->stopping = true;
	close_sockets(u);
	uv_close((uv_handle_t *)&u->timer, timer_closed);
}

/* At most one address per family; the node runs exactly those families,
 * and its default family must be one of them (else the first address's). */
static bool binds_valid(const struct km_addr *binds, size_t nbinds,
			struct km_node_config *cfg)
{
	unsigned families = 0;

	if (nbinds == 0 || nbinds > 2)
		return false;
	for (size_t i = 0; i < nbinds; i++) {
		unsigned f = binds[i].family == KM_AF_INET4 ? KM_NODE_IPV4 :
			     binds[i].family == KM_AF_INET6 ? KM_NODE_IPV6 : 0;

		if (!f || (families & f))
			return false;
		families |= f;
	}
	cfg->families = families;
	if (cfg->dht.family != binds[0].family &&
	    (nbinds < 2 || cfg->dht.family != binds[1].family))
		cfg->dht.family = binds[0].family;
	return true;
}

/* Adopts every bound pair; on failure u is stopping (see start_failed). */
static int open_pairs(struct km_uv_node *u, const struct km_addr *binds,
		      size_t nbinds, int fds[][2])
{
	int rc = 0;

	uv_timer_init(u->loop, &u->timer);
	u->timer.data = u;
	u->handles = 1;
	for (size_t i = 0; i < nbinds; i++) {
		if (rc == 0)
			rc = open_pair(u, binds[i].family, fds[i][0], fds[i][1]);
		else
			km_uv_bind_close_fds(&fds[i], 1);
	}
	if (rc < 0)
		start_failed(u);
	return rc;
}

int km_uv_node_start(uv_loop_t *loop, const struct km_addr *binds,
		     size_t nbinds, struct km_node_config *cfg,
		     const struct km_contact *saved, size_t nsaved,
		     const struct km_uv_hooks *hooks, void *user,
		     struct km_uv_node **out)
{
	struct km_uv_node *u;
	int fds[2][2] = { { -1, -1 }, { -1, -1 } }, rc;

	*out = NULL;
	if (!binds_valid(binds, nbinds, cfg))
		return KM_ERR_INVAL;
	u = calloc(1, sizeof(*u));
	if (u)
		u->udp_buf = malloc(UDP_CHUNK * RECV_BATCH);
	if (!u || !u->udp_buf) {
		uv_node_free(u);
		return KM_ERR_NOMEM;
	}
	u->loop = loop;
	u->user = user;
	if (hooks)
		u->hooks = *hooks;
	u->rng = (struct km_rng){ .fill = km_uv_rng_fill, .ctx = &u->osrng };
	rc = km_uv_bind_all(binds, nbinds, fds, &u->port);
	if (rc < 0) {
		uv_node_free(u);
		return rc;
	}
	cfg->port = u->port;
	u->node = km_node_new(cfg, &node_callbacks, u, &u->rng, uv_now(loop));
	if (!u->node) {
		km_uv_bind_close_fds(fds, nbinds);
		uv_node_free(u);
		return KM_ERR_NOMEM;
	}
	rc = open_pairs(u, binds, nbinds, fds);
	if (rc < 0)
		return rc;
	km_node_start(u->node, saved, nsaved, uv_now(loop));
	km_uv_node_kick(u);
	*out = u;
	return 0;
}

struct km_node *km_uv_node_core(struct km_uv_node *u)
{
	return u->node;
}


uint16_t km_uv_node_port(const struct km_uv_node *u)
{
	return u->port;
}

void km_uv_node_stop(struct km_uv_node *u, void (*done)(void *user),
		     void *user)
{
	if (u->stopping)
		return;
	u->done = done;
	u->done_user = user;
	/* GOODBYEs and the final save go out while the sockets still work. */
	km_node_stop(u->node, km_uv_node_now(u));
	u->stopping = true;
	close_sockets(u);
	km_uv_tcp_shutdown_all(u, STOP_LINGER_MS);
	if (u->nconns == 0)
		uv_close((uv_handle_t *)&u->timer, timer_closed);
	else
		uv_timer_start(&u->timer, on_timer, STOP_LINGER_MS, 0);
}
