/* km-bench-ceiling: the fastest KRPC responder this machine allows, as the
 * yardstick for the others.  It reads queries with recvmmsg and answers
 * each with one fixed find_node-sized reply (8 nodes and a token, so it is
 * a valid answer to ping, find_node and get_peers alike), only the
 * transaction id copied in, and sends the batch with sendmmsg. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define PROG "km-bench-ceiling"
#define NODES 8
#define NODE_LEN 26

struct ceiling {
	int fd;
	uint8_t head[512], tail[16];
	size_t head_len, tail_len;
	uint8_t in[BENCH_BATCH][BENCH_PKT];
	uint8_t out[BENCH_BATCH][640];
	struct sockaddr_in from[BENCH_BATCH];
	struct iovec in_iov[BENCH_BATCH], out_iov[BENCH_BATCH];
	struct mmsghdr in_msg[BENCH_BATCH], out_msg[BENCH_BATCH];
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* "d2:ip6:<6>1:rd2:id20:<id>5:nodes208:<nodes>5:token8:<8>e1:t" + tid
 * + "1:y1:re": keys in bencode order, the same shape kadmesh sends. */
static void build_template(struct ceiling *c)
{
	uint8_t *p = c->head;
	uint64_t rng = 42;

	p += sprintf((char *)p, "d2:ip6:");
	memset(p, 1, 6);
	p += 6;
	p += sprintf((char *)p, "1:rd2:id20:");
	bench_rand_bytes(&rng, p, BENCH_ID_LEN);
	p += BENCH_ID_LEN;
	p += sprintf((char *)p, "5:nodes%d:", NODES * NODE_LEN);
	for (int i = 0; i < NODES; i++, p += NODE_LEN) {
		bench_rand_bytes(&rng, p, BENCH_ID_LEN);
		memcpy(p + 20, "\x7f\x00\x01\x01\x1a\xe1", 6);
		p[23] = (uint8_t)(i + 1);
	}
	p += sprintf((char *)p, "5:token8:");
	bench_rand_bytes(&rng, p, 8);
	p += 8;
	p += sprintf((char *)p, "e1:t");
	c->head_len = (size_t)(p - c->head);
	memcpy(c->tail, "1:y1:re", 7);
	c->tail_len = 7;
}

static size_t answer(const struct ceiling *c, const uint8_t *q, size_t qlen,
		     uint8_t *out)
{
	const uint8_t *tid;
	int n = bench_find_tid(q, qlen, &tid);
	uint8_t *p = out;

	if (n < 0)
		return 0;
	memcpy(p, c->head, c->head_len);
	p += c->head_len;
	p += sprintf((char *)p, "%d:", n);
	memcpy(p, tid, (size_t)n);
	p += n;
	memcpy(p, c->tail, c->tail_len);
	return (size_t)(p - out) + c->tail_len;
}

static void serve(struct ceiling *c)
{
	for (int k = 0; k < BENCH_BATCH; k++) {
		c->in_iov[k] = (struct iovec){ c->in[k], sizeof(c->in[k]) };
		c->in_msg[k].msg_hdr = (struct msghdr){
			.msg_name = &c->from[k], .msg_namelen = sizeof(c->from[k]),
			.msg_iov = &c->in_iov[k], .msg_iovlen = 1 };
	}
	while (!stop) {
		int n, m = 0;

		for (int k = 0; k < BENCH_BATCH; k++)
			c->in_msg[k].msg_hdr.msg_namelen = sizeof(c->from[k]);
		/* Blocks for the first datagram, then takes what is there. */
		n = recvmmsg(c->fd, c->in_msg, BENCH_BATCH, MSG_WAITFORONE, NULL);
		if (n < 0)
			continue; /* EINTR (a signal) or EAGAIN */
		for (int k = 0; k < n; k++) {
			size_t len = answer(c, c->in[k], c->in_msg[k].msg_len,
					    c->out[m]);

			if (len == 0)
				continue;
			c->out_iov[m] = (struct iovec){ c->out[m], len };
			c->out_msg[m].msg_hdr = (struct msghdr){
				.msg_name = &c->from[k],
				.msg_namelen = sizeof(c->from[k]),
				.msg_iov = &c->out_iov[m], .msg_iovlen = 1 };
			m++;
		}
		for (int done = 0; done < m;) {
			int s = sendmmsg(c->fd, c->out_msg + done,
					 (unsigned)(m - done), 0);

			if (s < 0)
				break; /* full: dropped, as a network would */
			done += s;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bind", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *bind_to = "127.0.0.1:0";
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct ceiling *c;
	int o;

	while ((o = getopt_long(argc, argv, "b:h", opts, NULL)) != -1) {
		if (o == 'b') {
			bind_to = optarg;
		} else {
			fprintf(o == 'h' ? stdout : stderr,
				"usage: " PROG " [-b|--bind A.B.C.D:PORT]\n"
				"Answers every KRPC query with a fixed reply "
				"(8 nodes, a token)\nusing recvmmsg/sendmmsg; "
				"prints `ready port=N`; SIGTERM stops it.\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument\n");
		return 2;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !bench_parse_addr(PROG, bind_to, &sa))
		return 2;
	c->fd = bench_udp_socket(PROG, &sa);
	if (c->fd < 0)
		return 1;
	/* Blocking from here: recvmmsg sleeps in the kernel, as a server's
	 * event loop would, rather than spinning. */
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
	build_template(c);
	getsockname(c->fd, (struct sockaddr *)&sa, &sl);
	/* No SA_RESTART: the signal must interrupt recvmmsg. */
	sigaction(SIGTERM, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	sigaction(SIGINT, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	printf("ready port=%u\n", ntohs(sa.sin_port));
	fflush(stdout);
	serve(c);
	close(c->fd);
	free(c);
	return 0;
}
