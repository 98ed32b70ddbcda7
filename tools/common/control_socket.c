/* The control socket on libuv: one uv_pipe_t listener, one per client.
 *
 * Every client handle is freed only in its close callback, and
 * km_control_closed() is called from there too, never from inside one of
 * km_control's own callbacks (which must not re-enter it). */
#include "common/control_socket.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <utlist.h>

#include "proto/err.h"

#define BACKLOG 16

struct client {
	uv_pipe_t pipe;
	struct km_uv_control *u;
	uint64_t session;        /* 0 once km_control no longer knows it */
	size_t queued;           /* response bytes not yet written */
	bool finishing;          /* shut down; closes when writes are out */
	bool eof;                /* the client will send nothing more */
	struct client *prev, *next;
	char rbuf[KM_CONTROL_LINE_MAX];
};

struct write_req {
	uv_write_t req;
	struct client *cl;
	size_t len;
	char data[];
};

struct km_uv_control {
	uv_loop_t *loop;
	uv_pipe_t listener;
	struct km_control *ctl;
	struct client *clients;
	int handles;             /* open: the listener and every client */
	bool stopping;
	bool listening;          /* the socket file at path is ours */
	char *path;
};

static void handle_closed(struct km_uv_control *u)
{
	if (--u->handles > 0 || !u->stopping)
		return;
	free(u->path);
	free(u);
}

static void on_client_close(uv_handle_t *h)
{
	struct client *cl = h->data;
	struct km_uv_control *u = cl->u;

	if (cl->session && u->ctl)
		km_control_closed(u->ctl, cl->session);
	DL_DELETE(u->clients, cl);
	free(cl);
	handle_closed(u);
}

static bool client_closing(const struct client *cl)
{
	return cl->finishing || uv_is_closing((const uv_handle_t *)&cl->pipe);
}

/* Closes at once; queued writes and a pending shutdown are cancelled. */
static void client_drop(struct client *cl)
{
	if (!uv_is_closing((uv_handle_t *)&cl->pipe))
		uv_close((uv_handle_t *)&cl->pipe, on_client_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct client *cl = req->data;

	free(req);
	client_drop(cl);
}

/* Closes once queued writes have gone out. */
static void client_finish(struct client *cl)
{
	uv_shutdown_t *req;

	if (client_closing(cl))
		return;
	uv_read_stop((uv_stream_t *)&cl->pipe);
	req = malloc(sizeof(*req));
	if (!req || uv_shutdown(req, (uv_stream_t *)&cl->pipe, on_shutdown) < 0) {
		free(req);
		client_drop(cl);
		return;
	}
	req->data = cl;
	cl->finishing = true;
}

static struct client *client_find(struct km_uv_control *u, uint64_t session)
{
	struct client *cl;

	DL_FOREACH(u->clients, cl)
		if (cl->session == session)
			return cl;
	return NULL;
}

/* A client that half-closed is finished once nothing is left to answer. */
static void client_check_eof(struct client *cl)
{
	if (cl->eof && !km_control_pending(cl->u->ctl, cl->session))
		client_finish(cl);
}

static void on_write(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct client *cl = w->cl;

	cl->queued -= w->len;
	free(w);
	if (status < 0)
		client_drop(cl);
	else if (!client_closing(cl) && cl->u->ctl)
		client_check_eof(cl);
}

static void ctl_write(void *user, uint64_t session, const char *buf, size_t len)
{
	struct client *cl = client_find(user, session);
	struct write_req *w;
	uv_buf_t b;

	if (!cl || client_closing(cl))
		return;
	if (cl->queued + len > KM_UV_CONTROL_WRITE_MAX ||
	    !(w = malloc(sizeof(*w) + len))) {
		client_drop(cl);
		return;
	}
	memcpy(w->data, buf, len);
	w->cl = cl;
	w->len = len;
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&cl->pipe, &b, 1, on_write) < 0) {
		free(w);
		client_drop(cl);
		return;
	}
	cl->queued += len;
}

static void ctl_close(void *user, uint64_t session)
{
	struct client *cl = client_find(user, session);

	if (!cl)
		return;
	cl->session = 0; /* km_control has already forgotten it */
	client_finish(cl);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *cl = h->data;

	*buf = uv_buf_init(cl->rbuf, sizeof(cl->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct client *cl = s->data;
	struct km_uv_control *u = cl->u;

	if (nread > 0) {
		km_control_recv(u->ctl, cl->session, (const uint8_t *)buf->base,
				(size_t)nread, uv_now(u->loop));
	} else if (nread == UV_EOF) {
		uv_read_stop(s);
		cl->eof = true;
		client_check_eof(cl);
	} else if (nread < 0) {
		client_drop(cl);
	}
}

/* At the session cap the client hears why before it is closed. */
static void refuse(struct client *cl)
{
	static char msg[] = "{\"ok\":false,\"error\":\"too many control "
			    "clients\"}\n";
	uv_buf_t b = uv_buf_init(msg, sizeof(msg) - 1);

	uv_try_write((uv_stream_t *)&cl->pipe, &b, 1);
	client_drop(cl);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct km_uv_control *u = server->data;
	struct client *cl;

	if (status < 0 || u->stopping || !(cl = calloc(1, sizeof(*cl))))
		return;
	cl->u = u;
	uv_pipe_init(u->loop, &cl->pipe, 0);
	cl->pipe.data = cl;
	DL_APPEND(u->clients, cl);
	u->handles++;
	if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0) {
		client_drop(cl);
		return;
	}
	cl->session = km_control_open(u->ctl);
	if (!cl->session)
		refuse(cl);
	else if (uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) < 0)
		client_drop(cl);
}

/* Removes a socket file nobody answers on: a daemon killed with SIGKILL
 * leaves one behind.  Anything else at path is left alone. */
static int clear_stale(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return UV_ENAMETOOLONG;
	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return UV_EEXIST;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return UV_EMFILE;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0)
		return UV_EADDRINUSE;
	return unlink(path) < 0 ? UV_EACCES : 0;
}

/* Binds with umask 0177 so the socket is 0600 from its first moment. */
static int listen_on(struct km_uv_control *u)
{
	mode_t old = umask(0177);
	int rc = uv_pipe_bind(&u->listener, u->path);

	umask(old);
	if (rc < 0)
		return rc;
	rc = uv_listen((uv_stream_t *)&u->listener, BACKLOG, on_connection);
	if (rc < 0)
		unlink(u->path);
	return rc;
}

int km_uv_control_start(uv_loop_t *loop, const char *path,
			struct km_node *node, struct km_uv_control **out)
{
	static const struct km_control_callbacks cb = {
		.write = ctl_write, .close = ctl_close,
	};
	struct km_uv_control *u = calloc(1, sizeof(*u));
	int rc;

	if (!u || !(u->path = strdup(path)) ||
	    !(u->ctl = km_control_new(node, &cb, u))) {
		rc = KM_ERR_NOMEM;
		goto fail;
	}
	if ((rc = clear_stale(path)) < 0)
		goto fail;
	u->loop = loop;
	uv_pipe_init(loop, &u->listener, 0);
	u->listener.data = u;
	u->handles = 1;
	if ((rc = listen_on(u)) < 0) {
		km_uv_control_stop(u);
		return rc;
	}
	u->listening = true;
	*out = u;
	return 0;
fail:
	if (u) {
		km_control_del(u->ctl);
		free(u->path);
	}
	free(u);
	return rc;
}

struct km_control *km_uv_control_core(struct km_uv_control *u)
{
	return u->ctl;
}

static void on_listener_close(uv_handle_t *h)
{
	handle_closed(h->data);
}

void km_uv_control_stop(struct km_uv_control *u)
{
	struct client *cl;

	if (!u || u->stopping)
		return;
	u->stopping = true;
	DL_FOREACH(u->clients, cl) {
		cl->session = 0;
		client_drop(cl);
	}
	km_control_del(u->ctl);
	u->ctl = NULL;
	if (u->listening)
		unlink(u->path);
	uv_close((uv_handle_t *)&u->listener, on_listener_close);
}
