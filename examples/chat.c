/* A tiny chat over kadmesh broadcast: every line typed on stdin reaches
 * every node of the network, and every line from elsewhere is printed as
 * "<first 8 hex of the sender's ID>: <text>".
 *
 *   chat 127.0.0.1:7000 seed                 # the first one starts a network
 *   chat 127.0.0.1:0 127.0.0.1:7000          # others join through it
 *
 * It prints "port N" once listening and "neighbours N" when that changes.
 * End of input leaves the network (GOODBYE) and exits. */
#define _POSIX_C_SOURCE 200809L /* uv.h needs POSIX types under -std=c11 */
#include <kadmesh_uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct chat {
	struct kadmesh *node;
	uv_stream_t *in;
	uv_timer_t timer;
	size_t neighbours;
	char line[1024];
	size_t len;
};

static void on_message(void *user, const struct kadmesh_message *m)
{
	struct chat *c = user;

	if (memcmp(m->origin, kadmesh_id(c->node), KADMESH_ID_LEN) == 0)
		return; /* our own line, delivered back to us */
	printf("%02x%02x%02x%02x: ", m->origin[0], m->origin[1], m->origin[2],
	       m->origin[3]);
	for (size_t i = 0; i < m->len; i++) /* no terminal escapes from afar */
		putchar(m->payload[i] >= 0x20 && m->payload[i] < 0x7f ?
				m->payload[i] : '?');
	putchar('\n');
	fflush(stdout);
}

static void on_poll(uv_timer_t *t)
{
	struct chat *c = t->data;
	size_t n = kadmesh_neighbour_count(c->node);

	if (n != c->neighbours) {
		c->neighbours = n;
		printf("neighbours %zu\n", n);
		fflush(stdout);
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct chat *c = h->data;

	buf->base = c->line + c->len;
	buf->len = sizeof(c->line) - c->len;
}

/* Sends every complete line; a line longer than the buffer goes in pieces. */
static void send_lines(struct chat *c)
{
	char *nl;

	while ((nl = memchr(c->line, '\n', c->len)) || c->len == sizeof(c->line)) {
		size_t n = nl ? (size_t)(nl - c->line) : c->len;
		int rc = kadmesh_broadcast(c->node, c->line, n, NULL);

		if (rc < 0)
			fprintf(stderr, "chat: broadcast: %s\n", kadmesh_strerror(rc));
		n += nl ? 1 : 0;
		memmove(c->line, c->line + n, c->len - n);
		c->len -= n;
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct chat *c = s->data;

	if (nread > 0) {
		c->len += (size_t)nread;
		send_lines(c);
	} else if (nread < 0) { /* EOF or error: leave */
		uv_close((uv_handle_t *)s, NULL);
		uv_close((uv_handle_t *)&c->timer, NULL);
		kadmesh_stop(c->node, NULL, NULL);
	}
}

static uv_stream_t *open_stdin(uv_loop_t *loop, struct chat *c)
{
	static union { uv_tty_t tty; uv_pipe_t pipe; } h;

	uv_handle_type t = uv_guess_handle(0);

	if (t == UV_TTY)
		uv_tty_init(loop, &h.tty, 0, 1);
	else if (t != UV_NAMED_PIPE || uv_pipe_init(loop, &h.pipe, 0) < 0 || uv_pipe_open(&h.pipe, 0) < 0)
		return NULL;
	h.pipe.data = c;
	return (uv_stream_t *)&h;
}

int main(int argc, char **argv)
{
	static struct chat c;
	struct kadmesh_callbacks cb = { .message = on_message };
	struct kadmesh_config cfg;
	const char *boot[1];
	uv_loop_t *loop = uv_default_loop();
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: chat BIND_IP:PORT seed|BOOTSTRAP_IP:PORT\n");
		return 2;
	}
	kadmesh_config_default(&cfg);
	cfg.seed = strcmp(argv[2], "seed") == 0;
	if (!cfg.seed) {
		boot[0] = argv[2];
		cfg.bootstrap = boot;
		cfg.nbootstrap = 1;
	}
	rc = kadmesh_uv_start(loop, argv[1], &cfg, &cb, &c, &c.node);
	if (rc < 0 || !(c.in = open_stdin(loop, &c))) {
		fprintf(stderr, "chat: %s\n", rc < 0 ? kadmesh_strerror(rc) :
			"stdin must be a terminal or a pipe");
		return 1;
	}
	printf("port %u\n", kadmesh_port(c.node));
	fflush(stdout);
	uv_timer_init(loop, &c.timer);
	c.timer.data = &c;
	uv_timer_start(&c.timer, on_poll, 100, 100);
	uv_read_start(c.in, on_alloc, on_read);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	return 0;
}
