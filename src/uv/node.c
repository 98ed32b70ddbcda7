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
 * UDP in bulk: libuv reads up to RECV_BATCH datagrams per recvmmsg call,
 * and the replies the core sends while it handles them are gathered and
 * leave in one sendmmsg when the batch ends, so a busy node makes two
 * system calls per batch rather than two per query. */
#define _GNU_SOURCE /* sendmmsg */
#include "uv/node.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uthash.h>

#include "uv/addr.h"
#include "proto/err.h"

#define UDP_RCVBUF (4 * 1024 * 1024) /* absorbs bursts of lookup replies */
#define UDP_QUEUE_CAP (1024 * 1024)  /* bytes waiting for the socket */
#define CONN_WRITE_CAP (256 * 1024)  /* bytes in flight per connection */
#define MAX_CONNS 1024               /* open TCP handles, closing included */
#define LINGER_MS 2000               /* a closing link may flush this long */
#define STOP_LINGER_MS 1000          /* GOODBYEs get this long at shutdown */
#define BIND_ATTEMPTS 8
#define MAX_SLEEP_MS 60000
#define RNG_POOL 256
/* libuv hands recvmmsg one 64 KiB chunk per datagram, at most 20; pages a
 * datagram never touches stay unmapped. */
#define UDP_CHUNK (64 * 1024)
#define RECV_BATCH 20
#define SEND_BATCH 32
#define SEND_MAX 1500 /* larger datagrams skip the batch */

/* Replies gathered while a batch of datagrams is being handled. */
struct send_batch {
	struct mmsghdr msg[SEND_BATCH];
	struct iovec iov[SEND_BATCH];
	struct sockaddr_storage to[SEND_BATCH];
	uint8_t buf[SEND_BATCH][SEND_MAX];
	size_t n;
	bool open; /* inside a recvmmsg batch: gather, do not send */
};

struct os_rng {
	uint8_t pool[RNG_POOL];
	size_t avail; /* unused bytes at the end of pool */
};

struct conn {
	uint64_t id; /* 0 until the node names it */
	uv_tcp_t tcp;
	struct km_uv_node *u;
	size_t queued;       /* bytes handed to uv_write, not yet written */
	km_ms linger_until;  /* a graceful close turns forced then; 0 = none */
	bool hashed;
	bool connecting;
	bool closing;        /* the node has forgotten this link */
	bool notify;         /* tell the node from the close callback */
	uv_connect_t connect_req;
	uv_shutdown_t shutdown_req;
	UT_hash_handle hh;
};

struct write_req {
	uv_write_t req;
	struct conn *c;
	size_t len;
	uint8_t data[];
};

struct udp_req {
	uv_udp_send_t req;
	struct km_uv_node *u;
	size_t len;
	uint8_t data[];
};

/* One UDP socket and one TCP listener on the same port.  There is one pair
 * per address family, each with its own km_dht behind it (BEP 32). */
struct sock_pair {
	uv_udp_t udp;
	uv_tcp_t listener;
	enum km_family family;
	struct km_uv_node *u;
	struct send_batch out;
};

struct km_uv_node {
	uv_loop_t *loop;
	struct sock_pair socks[2];
	size_t nsocks;
	uv_timer_t timer;
	struct km_node *node;
	struct os_rng osrng;
	struct km_rng rng;
	struct conn *conns;     /* by id, closing ones included */
	struct conn *accepting; /* accepted, not yet named by the node */
	size_t nconns;
	size_t udp_queued;
	struct km_uv_hooks hooks;
	void *user;
	uint16_t port;
	int handles; /* open handles; the last close frees u */
	bool kicked;
	bool stopping;
	void (*done)(void *user);
	void *done_user;
	uint8_t *udp_buf; /* RECV_BATCH chunks of UDP_CHUNK */
	uint8_t tcp_buf[65536];
};

static void on_timer(uv_timer_t *t);

/* --- randomness -------------------------------------------------------- */

static void getrandom_all(uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		/* Without randomness, tokens and transaction ids turn
		 * guessable; refusing to run is the only safe answer. */
		if (n < 0)
			abort();
		p += n;
		len -= (size_t)n;
	}
}

/* Draws from a small pool so that the core's many 2- and 8-byte requests
 * do not cost a system call each; used bytes are wiped. */
static void os_rng_fill(void *ctx, void *buf, size_t len)
{
	struct os_rng *r = ctx;
	uint8_t *src;

	if (len > RNG_POOL / 2) {
		getrandom_all(buf, len);
		return;
	}
	if (r->avail < len) {
		getrandom_all(r->pool, RNG_POOL);
		r->avail = RNG_POOL;
	}
	src = r->pool + RNG_POOL - r->avail;
	memcpy(buf, src, len);
	memset(src, 0, len);
	r->avail -= len;
}

/* --- logging and the timer -------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void say(struct km_uv_node *u, enum km_log_level level,
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

static km_ms now_ms(struct km_uv_node *u)
{
	return uv_now(u->loop);
}

/* Asks for a tick on the next turn of the loop. */
static void kick(struct km_uv_node *u)
{
	if (u->kicked || u->stopping)
		return;
	u->kicked = true;
	uv_timer_start(&u->timer, on_timer, 0, 0);
}

/* --- connections ------------------------------------------------------- */

static void handle_closed(struct km_uv_node *u);
static void timer_closed(uv_handle_t *h);

static struct conn *conn_new(struct km_uv_node *u)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		say(u, KM_LOG_ERROR, "out of memory for a connection");
		return NULL;
	}
	c->u = u;
	uv_tcp_init(u->loop, &c->tcp);
	uv_tcp_nodelay(&c->tcp, 1); /* frames are small and latency-bound */
	c->tcp.data = c;
	u->handles++;
	u->nconns++;
	return c;
}

static void conn_hash(struct conn *c, uint64_t id)
{
	c->id = id;
	c->hashed = true;
	HASH_ADD(hh, c->u->conns, id, sizeof(c->id), c);
}

/* The node may name a connection it is being told about (accepted) and send
 * on it before km_node_tcp_accepted() returns; the unknown id then belongs
 * to the connection being accepted. */
static struct conn *conn_find(struct km_uv_node *u, uint64_t id)
{
	struct conn *c;

	HASH_FIND(hh, u->conns, &id, sizeof(id), c);
	if (!c && u->accepting && !u->accepting->hashed && id != 0) {
		c = u->accepting;
		conn_hash(c, id);
	}
	return c;
}

static void on_conn_close(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct km_uv_node *u = c->u;

	if (c->hashed)
		HASH_DEL(u->conns, c);
	u->nconns--;
	if (c->notify && !u->stopping) {
		km_node_tcp_closed(u->node, c->id, now_ms(u));
		kick(u);
	}
	free(c);
	if (u->stopping && u->nconns == 0 &&
	    !uv_is_closing((uv_handle_t *)&u->timer))
		uv_close((uv_handle_t *)&u->timer, timer_closed);
	handle_closed(u);
}

/* Closes at once, dropping unwritten bytes.  notify: the node still thinks
 * the link is open and must hear that it closed. */
static void conn_close(struct conn *c, bool notify)
{
	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	c->notify = notify && !c->closing;
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, on_conn_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	conn_close(req->handle->data, false);
}

/* Closes once queued writes (a GOODBYE, say) have gone out, or at
 * linger_until, whichever comes first. */
static void conn_shutdown(struct conn *c, km_ms linger)
{
	uv_stream_t *s = (uv_stream_t *)&c->tcp;

	if (c->closing)
		return;
	c->closing = true;
	uv_read_stop(s);
	c->linger_until = now_ms(c->u) + linger;
	if (c->connecting || uv_shutdown(&c->shutdown_req, s, on_shutdown) < 0)
		conn_close(c, false);
}

/* Force-closes links whose graceful close has taken too long; returns the
 * earliest linger deadline still pending, or UINT64_MAX. */
static km_ms sweep_lingering(struct km_uv_node *u, km_ms now)
{
	struct conn *c, *tmp;
	km_ms next = UINT64_MAX;

	HASH_ITER(hh, u->conns, c, tmp) {
		if (!c->linger_until || uv_is_closing((uv_handle_t *)&c->tcp))
			continue;
		if (c->linger_until <= now)
			conn_close(c, false);
		else if (c->linger_until < next)
			next = c->linger_until;
	}
	return next;
}

static void on_tcp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;

	/* One buffer serves every connection: libuv hands it straight to
	 * on_tcp_read, and the core copies what it keeps. */
	*buf = uv_buf_init((char *)c->u->tcp_buf, sizeof(c->u->tcp_buf));
}

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct km_uv_node *u = c->u;

	if (n == 0 || c->closing || u->stopping)
		return;
	if (n < 0) {
		conn_close(c, true);
		return;
	}
	km_node_tcp_recv(u->node, c->id, (const uint8_t *)buf->base,
			 (size_t)n, now_ms(u));
	kick(u);
}

static void on_write(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct conn *c = w->c;

	c->queued -= w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED)
		conn_close(c, true);
}

/* Queues what uv_try_write could not write.  A peer that does not read
 * must not make us buffer without bound: past the cap it is cut off. */
static void conn_queue(struct conn *c, const uint8_t *buf, size_t len)
{
	struct write_req *w;
	uv_buf_t b;

	if (c->queued + len > CONN_WRITE_CAP) {
		/* Rare and worth an operator's eye: info, not debug. */
		say(c->u, KM_LOG_INFO, "link %llu: peer reads too slowly "
		    "(write queue full), closing",
		    (unsigned long long)c->id);
		conn_close(c, true);
		return;
	}
	w = malloc(sizeof(*w) + len);
	if (!w) {
		conn_close(c, true);
		return;
	}
	memcpy(w->data, buf, len);
	w->c = c;
	w->len = len;
	b = uv_buf_init((char *)w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
		free(w);
		conn_close(c, true);
		return;
	}
	c->queued += len;
}

/* --- the node's callbacks ---------------------------------------------- */

static void node_tcp_send(void *user, uint64_t id, const uint8_t *buf,
			  size_t len)
{
	struct km_uv_node *u = user;
	struct conn *c = conn_find(u, id);

	if (!c || c->closing || len == 0)
		return;
	if (c->queued == 0 && !c->connecting) {
		uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
		int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);

		if (n < 0 && n != UV_EAGAIN) {
			conn_close(c, true);
			return;
		}
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		}
		if (len == 0)
			return;
	}
	conn_queue(c, buf, len);
}

static void node_tcp_close(void *user, uint64_t id)
{
	struct conn *c = conn_find(user, id);

	if (c)
		conn_shutdown(c, LINGER_MS);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->handle->data;
	struct km_uv_node *u = c->u;

	c->connecting = false;
	if (c->closing || u->stopping)
		return;
	if (status < 0 ||
	    uv_read_start(req->handle, on_tcp_alloc, on_tcp_read) < 0) {
		conn_close(c, true);
		return;
	}
	km_node_tcp_connected(u->node, c->id, now_ms(u));
	kick(u);
}

static struct sock_pair *pair_for(struct km_uv_node *u, uint8_t family)
{
	for (size_t i = 0; i < u->nsocks; i++)
		if (u->socks[i].family == family)
			return &u->socks[i];
	return NULL;
}

/* A socket bound to our listening address and port (SO_REUSEPORT, which
 * the listener has too), so that our NAT maps the connection to the port
 * the peer was told: the two sides' SYNs then meet as a TCP simultaneous
 * open.  Returns the fd or a negative errno. */
static int punch_socket(struct km_uv_node *u, uint8_t family)
{
	struct sock_pair *sp = pair_for(u, family);
	struct sockaddr_storage local;
	int len = sizeof(local), one = 1, fd;

	if (!sp || uv_tcp_getsockname(&sp->listener, (struct sockaddr *)&local,
				      &len) < 0)
		return -EAFNOSUPPORT;
	fd = socket(local.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (family == KM_AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&local, (socklen_t)len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void node_tcp_punch(void *user, uint64_t id, const struct km_addr *to)
{
	struct km_uv_node *u = user;
	struct sockaddr_storage ss;
	struct conn *c = conn_new(u);
	int fd, rc;

	if (!c)
		return;
	conn_hash(c, id);
	c->connecting = true;
	fd = rc = punch_socket(u, to->family);
	if (fd >= 0 && (rc = uv_tcp_open(&c->tcp, fd)) < 0)
		close(fd);
	if (rc >= 0)
		rc = km_uv_addr_to_sockaddr(to, &ss);
	if (rc >= 0)
		rc = uv_tcp_connect(&c->connect_req, &c->tcp,
				    (const struct sockaddr *)&ss, on_connect);
	if (rc < 0) {
		say(u, KM_LOG_DEBUG, "punch socket: %s", uv_strerror(rc));
		conn_close(c, true);
	}
}

/* A node listening on one address connects from it too: its peers then
 * see (and dial back, and tell others) the address it listens on, not
 * whichever one the kernel would pick. */
static int bind_like_listener(struct km_uv_node *u, struct conn *c,
			      uint8_t family)
{
	struct sock_pair *sp = pair_for(u, family);
	struct sockaddr_storage local;
	struct km_addr a;
	int len = sizeof(local);
	static const uint8_t zero[16];

	if (!sp || uv_tcp_getsockname(&sp->listener, (struct sockaddr *)&local,
				      &len) < 0 ||
	    !km_uv_addr_from_sockaddr((struct sockaddr *)&local, &a) ||
	    memcmp(a.ip, zero, km_addr_ip_len(&a)) == 0)
		return 0;
	a.port = 0;
	km_uv_addr_to_sockaddr(&a, &local);
	return uv_tcp_bind(&c->tcp, (struct sockaddr *)&local, 0);
}

static void node_tcp_connect(void *user, uint64_t id, const struct km_addr *to)
{
	struct km_uv_node *u = user;
	struct sockaddr_storage ss;
	struct conn *c = conn_new(u);
	int rc;

	/* Without a handle there is no way to report the failure later; the
	 * node's handshake timeout will give up on the link. */
	if (!c)
		return;
	conn_hash(c, id);
	c->connecting = true;
	rc = bind_like_listener(u, c, to->family);
	if (rc >= 0)
		rc = km_uv_addr_to_sockaddr(to, &ss);
	if (rc >= 0)
		rc = uv_tcp_connect(&c->connect_req, &c->tcp,
				    (const struct sockaddr *)&ss, on_connect);
	if (rc < 0)
		conn_close(c, true);
}


static void on_udp_sent(uv_udp_send_t *req, int status)
{
	struct udp_req *r = (struct udp_req *)req;

	r->u->udp_queued -= r->len;
	free(r);
}

/* The socket's buffer was full: queue a copy, up to UDP_QUEUE_CAP bytes.
 * Past that the datagram is dropped, as the network might have. */
static void udp_queue(struct sock_pair *sp, const struct sockaddr *sa,
		      const uint8_t *buf, size_t len)
{
	struct km_uv_node *u = sp->u;
	struct udp_req *r;
	uv_buf_t b;

	if (u->udp_queued + len > UDP_QUEUE_CAP)
		return;
	r = malloc(sizeof(*r) + len);
	if (!r)
		return;
	memcpy(r->data, buf, len);
	r->u = u;
	r->len = len;
	b = uv_buf_init((char *)r->data, (unsigned)len);
	if (uv_udp_send(&r->req, &sp->udp, &b, 1, sa, on_udp_sent) < 0) {
		free(r);
		return;
	}
	u->udp_queued += len;
}

/* Sends the gathered replies with one sendmmsg; what the socket does not
 * take goes through libuv's queue, like any datagram that meets EAGAIN. */
static void batch_flush(struct sock_pair *sp)
{
	struct send_batch *b = &sp->out;
	size_t done = 0;
	uv_os_fd_t fd;

	if (b->n > 0 && sp->u->udp_queued == 0 &&
	    uv_fileno((uv_handle_t *)&sp->udp, &fd) == 0) {
		while (done < b->n) {
			int n = sendmmsg(fd, b->msg + done,
					 (unsigned)(b->n - done), 0);

			if (n <= 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			done += (size_t)n;
		}
	}
	for (; done < b->n; done++)
		udp_queue(sp, (const struct sockaddr *)&b->to[done], b->buf[done],
			  b->iov[done].iov_len);
	b->n = 0;
}

static void batch_add(struct sock_pair *sp, const struct sockaddr_storage *ss,
		      const uint8_t *buf, size_t len)
{
	struct send_batch *b = &sp->out;
	size_t i = b->n++;

	memcpy(b->buf[i], buf, len);
	b->to[i] = *ss;
	b->iov[i] = (struct iovec){ .iov_base = b->buf[i], .iov_len = len };
	b->msg[i].msg_hdr = (struct msghdr){
		.msg_name = &b->to[i],
		.msg_namelen = ss->ss_family == AF_INET6 ?
			sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
		.msg_iov = &b->iov[i], .msg_iovlen = 1 };
	if (b->n == SEND_BATCH)
		batch_flush(sp);
}

static void node_udp_send(void *user, const struct km_addr *to,
			  const uint8_t *buf, size_t len)
{
	struct km_uv_node *u = user;
	struct sock_pair *sp = pair_for(u, to->family);
	struct sockaddr_storage ss;
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int rc;

	if (!sp || uv_is_closing((uv_handle_t *)&sp->udp) ||
	    km_uv_addr_to_sockaddr(to, &ss) < 0)
		return;
	if (sp->out.open && len <= SEND_MAX) {
		batch_add(sp, &ss, buf, len);
		return;
	}
	rc = uv_udp_try_send(&sp->udp, &b, 1, (const struct sockaddr *)&ss);
	if (rc == UV_EAGAIN)
		udp_queue(sp, (const struct sockaddr *)&ss, buf, len);
	else if (rc < 0)
		say(u, KM_LOG_DEBUG, "udp send: %s", uv_strerror(rc));
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
	.udp_send = node_udp_send,
	.tcp_connect = node_tcp_connect,
	.tcp_send = node_tcp_send,
	.tcp_close = node_tcp_close,
	.tcp_punch = node_tcp_punch,
	.save_state = node_save_state,
	.lookup_done = node_lookup_done,
	.log = node_log,
};

/* --- events from the sockets ------------------------------------------- */

static void on_udp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct sock_pair *sp = h->data;

	/* libuv calls back once per datagram and once more at the end of the
	 * batch, always before the next alloc, so one buffer serves all. */
	*buf = uv_buf_init((char *)sp->u->udp_buf, UDP_CHUNK * RECV_BATCH);
}

static void on_udp_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
			const struct sockaddr *addr, unsigned flags)
{
	struct sock_pair *sp = h->data;
	struct km_uv_node *u = sp->u;
	struct km_addr from;

	/* n == 0 with no address: the socket ran dry or a recvmmsg batch
	 * ended; either way the replies gathered so far can go.  A partial
	 * datagram was over 64 KiB and cannot be KRPC. */
	if (n == 0 && !addr) {
		sp->out.open = false;
		batch_flush(sp);
		return;
	}
	if (flags & UV_UDP_MMSG_CHUNK)
		sp->out.open = true;
	if (n <= 0 || !addr || (flags & UV_UDP_PARTIAL) || u->stopping)
		return;
	if (!km_uv_addr_from_sockaddr(addr, &from))
		return;
	km_node_udp_recv(u->node, &from, (const uint8_t *)buf->base,
			 (size_t)n, now_ms(u));
	kick(u);
}

static bool peer_addr(struct conn *c, struct km_addr *out)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	return uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 &&
	       km_uv_addr_from_sockaddr((struct sockaddr *)&ss, out);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct km_uv_node *u = ((struct sock_pair *)server->data)->u;
	struct km_addr remote;
	struct conn *c;
	uint64_t id;

	if (status < 0) {
		say(u, KM_LOG_WARN, "accept: %s", uv_strerror(status));
		return;
	}
	c = conn_new(u);
	if (!c)
		return;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || u->stopping ||
	    u->nconns > MAX_CONNS || !peer_addr(c, &remote)) {
		conn_close(c, false);
		return;
	}
	u->accepting = c;
	id = km_node_tcp_accepted(u->node, &remote, now_ms(u));
	u->accepting = NULL;
	if (id == 0) {
		conn_close(c, false);
	} else {
		if (!c->hashed)
			conn_hash(c, id);
		if (!c->closing &&
		    uv_read_start((uv_stream_t *)&c->tcp, on_tcp_alloc,
				  on_tcp_read) < 0)
			conn_close(c, true);
	}
	kick(u);
}

static void on_timer(uv_timer_t *t)
{
	struct km_uv_node *u = t->data;
	km_ms now = now_ms(u), next, linger;
	struct conn *c, *tmp;

	if (u->stopping) { /* the GOODBYEs had their chance */
		HASH_ITER(hh, u->conns, c, tmp)
			conn_close(c, false);
		return;
	}
	u->kicked = false;
	next = km_node_tick(u->node, now);
	if (next == 0) /* the core has nothing scheduled */
		next = UINT64_MAX;
	linger = sweep_lingering(u, now);
	if (linger < next)
		next = linger;
	next = next > now ? next - now : 1;
	uv_timer_start(&u->timer, on_timer,
		       next > MAX_SLEEP_MS ? MAX_SLEEP_MS : next, 0);
}

/* --- start and stop ---------------------------------------------------- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Binds TCP first, so that port 0 picks a port free for TCP, then UDP to
 * the same number.  An IPv6 socket is IPv6 only, so that IPv4 stays with
 * the IPv4 socket and its routing table. */
static int try_bind(const struct km_addr *bind_to, int *tfd, int *ufd,
		    uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1, rcvbuf = UDP_RCVBUF;
	int len = km_uv_addr_to_sockaddr(bind_to, &ss);
	struct km_addr bound;
	bool v6 = bind_to->family == KM_AF_INET6;

	if (len < 0)
		return len;
	*tfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*tfd < 0)
		return -errno;
	setsockopt(*tfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((v6 && setsockopt(*tfd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			      sizeof(one)) < 0) ||
	    bind(*tfd, (struct sockaddr *)&ss, (socklen_t)len) < 0 ||
	    getsockname(*tfd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	/* After bind, so that port 0 never lands on another node's port:
	 * hole punching binds a second socket to this port (node_tcp_punch). */
	setsockopt(*tfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	*ufd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*ufd < 0 ||
	    (v6 && setsockopt(*ufd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			      sizeof(one)) < 0) ||
	    bind(*ufd, (struct sockaddr *)&ss, sl) < 0)
		return -errno;
	/* Best effort: the kernel caps it at net.core.rmem_max. */
	setsockopt(*ufd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	km_uv_addr_from_sockaddr((struct sockaddr *)&ss, &bound);
	*port = bound.port;
	return 0;
}

static void close_fds(int fds[][2], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		close_fd(&fds[i][0]);
		close_fd(&fds[i][1]);
	}
}

/* Every address on one port number: the first picks it (when asked for
 * port 0), the others follow.  Port 0: if a later socket finds the number
 * taken, start over with another. */
static int bind_all(const struct km_addr *binds, size_t nbinds, int fds[][2],
		    uint16_t *port)
{
	int rc = KM_ERR_INVAL;

	for (int attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
		*port = binds[0].port;
		for (size_t i = 0; i < nbinds; i++) {
			struct km_addr a = binds[i];

			a.port = *port;
			rc = try_bind(&a, &fds[i][0], &fds[i][1], port);
			if (rc < 0)
				break;
		}
		if (rc == 0)
			return 0;
		close_fds(fds, nbinds);
		if (rc != -EADDRINUSE || binds[0].port != 0)
			break;
	}
	return rc;
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
		rc = uv_listen((uv_stream_t *)&sp->listener, 128, on_connection);
	if (rc == 0)
		rc = uv_udp_recv_start(&sp->udp, on_udp_alloc, on_udp_recv);
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
			close_fds(&fds[i], 1);
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
	u->rng = (struct km_rng){ .fill = os_rng_fill, .ctx = &u->osrng };
	rc = bind_all(binds, nbinds, fds, &u->port);
	if (rc < 0) {
		uv_node_free(u);
		return rc;
	}
	cfg->port = u->port;
	u->node = km_node_new(cfg, &node_callbacks, u, &u->rng, uv_now(loop));
	if (!u->node) {
		close_fds(fds, nbinds);
		uv_node_free(u);
		return KM_ERR_NOMEM;
	}
	rc = open_pairs(u, binds, nbinds, fds);
	if (rc < 0)
		return rc;
	km_node_start(u->node, saved, nsaved, uv_now(loop));
	kick(u);
	*out = u;
	return 0;
}

struct km_node *km_uv_node_core(struct km_uv_node *u)
{
	return u->node;
}

void km_uv_node_kick(struct km_uv_node *u)
{
	kick(u);
}

uint16_t km_uv_node_port(const struct km_uv_node *u)
{
	return u->port;
}

void km_uv_node_stop(struct km_uv_node *u, void (*done)(void *user),
		     void *user)
{
	struct conn *c, *tmp;

	if (u->stopping)
		return;
	u->done = done;
	u->done_user = user;
	/* GOODBYEs and the final save go out while the sockets still work. */
	km_node_stop(u->node, now_ms(u));
	u->stopping = true;
	close_sockets(u);
	HASH_ITER(hh, u->conns, c, tmp)
		conn_shutdown(c, STOP_LINGER_MS);
	if (u->nconns == 0)
		uv_close((uv_handle_t *)&u->timer, timer_closed);
	else
		uv_timer_start(&u->timer, on_timer, STOP_LINGER_MS, 0);
}
