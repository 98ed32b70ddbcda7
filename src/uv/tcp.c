/* TCP for the driver: the connections the core names by id, their reads,
 * bounded write queues, graceful and forced closes, accepts, dials and the
 * hole-punching socket that shares the listener's port. */
#define _GNU_SOURCE /* struct mmsghdr in node_internal.h */
#include "uv/node_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uv/addr.h"

static struct conn *conn_new(struct km_uv_node *u)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		km_uv_node_say(u, KM_LOG_ERROR, "out of memory for a connection");
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
		km_node_tcp_closed(u->node, c->id, km_uv_node_now(u));
		km_uv_node_kick(u);
	}
	free(c);
	km_uv_node_conn_gone(u);
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
	c->linger_until = km_uv_node_now(c->u) + linger;
	if (c->connecting || uv_shutdown(&c->shutdown_req, s, on_shutdown) < 0)
		conn_close(c, false);
}

/* Force-closes links whose graceful close has taken too long; returns the
 * earliest linger deadline still pending, or UINT64_MAX. */
km_ms km_uv_tcp_sweep_lingering(struct km_uv_node *u, km_ms now)
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
			 (size_t)n, km_uv_node_now(u));
	km_uv_node_kick(u);
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
		km_uv_node_say(c->u, KM_LOG_INFO, "link %llu: peer reads too slowly "
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

void km_uv_tcp_send(void *user, uint64_t id, const uint8_t *buf,
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

void km_uv_tcp_close(void *user, uint64_t id)
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
	km_node_tcp_connected(u->node, c->id, km_uv_node_now(u));
	km_uv_node_kick(u);
}

/* A socket bound to our listening address and port (SO_REUSEPORT, which
 * the listener has too), so that our NAT maps the connection to the port
 * the peer was told: the two sides' SYNs then meet as a TCP simultaneous
 * open.  Returns the fd or a negative errno. */
static int punch_socket(struct km_uv_node *u, uint8_t family)
{
	struct sock_pair *sp = km_uv_node_pair_for(u, family);
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

void km_uv_tcp_punch(void *user, uint64_t id, const struct km_addr *to)
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
		km_uv_node_say(u, KM_LOG_DEBUG, "punch socket: %s", uv_strerror(rc));
		conn_close(c, true);
	}
}

/* A node listening on one address connects from it too: its peers then
 * see (and dial back, and tell others) the address it listens on, not
 * whichever one the kernel would pick. */
static int bind_like_listener(struct km_uv_node *u, struct conn *c,
			      uint8_t family)
{
	struct sock_pair *sp = km_uv_node_pair_for(u, family);
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

void km_uv_tcp_connect(void *user, uint64_t id, const struct km_addr *to)
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

static bool peer_addr(struct conn *c, struct km_addr *out)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	return uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 &&
	       km_uv_addr_from_sockaddr((struct sockaddr *)&ss, out);
}

void km_uv_tcp_on_connection(uv_stream_t *server, int status)
{
	struct km_uv_node *u = ((struct sock_pair *)server->data)->u;
	struct km_addr remote;
	struct conn *c;
	uint64_t id;

	if (status < 0) {
		km_uv_node_say(u, KM_LOG_WARN, "accept: %s", uv_strerror(status));
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
	id = km_node_tcp_accepted(u->node, &remote, km_uv_node_now(u));
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
	km_uv_node_kick(u);
}

/* The node is stopping and the GOODBYEs had their chance. */
void km_uv_tcp_close_all(struct km_uv_node *u)
{
	struct conn *c, *tmp;

	HASH_ITER(hh, u->conns, c, tmp)
		conn_close(c, false);
}

/* The node is stopping: every link flushes its GOODBYE for up to linger. */
void km_uv_tcp_shutdown_all(struct km_uv_node *u, km_ms linger)
{
	struct conn *c, *tmp;

	HASH_ITER(hh, u->conns, c, tmp)
		conn_shutdown(c, linger);
}
