/* km-bench-load: keeps a window of KRPC queries in flight against one
 * server and counts the valid replies per second.
 *
 * A reply counts only when it decodes (km_krpc_decode), is a response,
 * carries the transaction id of a query still in flight, and has what the
 * method promises: find_node 8 IPv4 nodes, get_peers a token plus 8 nodes
 * or values.  Queries go out with sendmmsg and replies come in with
 * recvmmsg, so the generator's own cost per query stays small; its CPU use
 * is printed so that a run where it, not the server, was the bottleneck
 * shows as one. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "proto/err.h"
#include "proto/krpc.h"

#define PROG "km-bench-load"
#define MAX_WINDOW 4096
#define FULL_NODES (8 * KM_COMPACT_NODE4_LEN)

struct slot {
	uint16_t gen;
	bool busy;
	uint64_t sent_us;
};

struct counts {
	unsigned long long replies, short_replies, unmatched, lost, sent;
};

struct load {
	int fd;
	struct sockaddr_in to;
	enum bench_method method;
	int window;
	uint64_t timeout_us;
	uint8_t id[BENCH_ID_LEN];
	uint64_t rng;
	struct slot slots[MAX_WINDOW];
	struct counts c;
	/* Outgoing batch. */
	uint8_t out[BENCH_BATCH][128];
	struct iovec out_iov[BENCH_BATCH];
	struct mmsghdr out_msg[BENCH_BATCH];
	int nout;
	/* Incoming batch. */
	uint8_t in[BENCH_BATCH][BENCH_REPLY_MAX];
	struct iovec in_iov[BENCH_BATCH];
	struct mmsghdr in_msg[BENCH_BATCH];
	struct km_krpc_msg m; /* large; decoded into, one reply at a time */
};

static void flush(struct load *l)
{
	int done = 0;

	while (done < l->nout) {
		int n = sendmmsg(l->fd, l->out_msg + done,
				 (unsigned)(l->nout - done), 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* EAGAIN: the send buffer is full; the queries count
			 * as lost when their slots time out. */
			break;
		}
		done += n;
	}
	l->nout = 0;
}

static void issue(struct load *l, int i, uint64_t now)
{
	struct slot *s = &l->slots[i];
	uint8_t tid[4], target[BENCH_ID_LEN];
	int k = l->nout;

	if (k == BENCH_BATCH) {
		flush(l);
		k = 0;
	}
	s->gen++;
	s->busy = true;
	s->sent_us = now;
	tid[0] = (uint8_t)(i >> 8);
	tid[1] = (uint8_t)i;
	tid[2] = (uint8_t)(s->gen >> 8);
	tid[3] = (uint8_t)s->gen;
	bench_rand_bytes(&l->rng, target, sizeof(target));
	l->out_iov[k].iov_len = bench_query(l->out[k], l->method, l->id, tid,
					    target);
	l->nout++;
	l->c.sent++;
}

static bool payload_ok(const struct load *l)
{
	const struct km_krpc_msg *m = &l->m;

	switch (l->method) {
	case BENCH_PING:
		return true;
	case BENCH_FIND_NODE:
		return m->nodes_len >= FULL_NODES;
	case BENCH_GET_PEERS:
		return m->token_len > 0 &&
		       (m->nodes_len >= FULL_NODES || m->values_count > 0);
	}
	return false;
}

/* Returns the slot a reply answers, or -1. */
static int match(struct load *l, const uint8_t *buf, size_t len)
{
	int i, rc = km_krpc_decode(buf, len, &l->m);

	if (rc < 0 && l->c.unmatched == 0) /* once: says why replies fail */
		fprintf(stderr, PROG ": undecodable reply: %s\n", km_strerror(rc));
	if (rc < 0 || l->m.type != KM_KRPC_RESPONSE || l->m.tid_len != 4)
		return -1;
	i = l->m.tid[0] << 8 | l->m.tid[1];
	if (i >= l->window || !l->slots[i].busy ||
	    l->slots[i].gen != (uint16_t)(l->m.tid[2] << 8 | l->m.tid[3]))
		return -1;
	return i;
}

static void on_batch(struct load *l, int n, uint64_t now)
{
	for (int k = 0; k < n; k++) {
		int i = -1;

		/* A truncated reply cannot be checked: it does not count. */
		if (!(l->in_msg[k].msg_hdr.msg_flags & MSG_TRUNC))
			i = match(l, l->in[k], l->in_msg[k].msg_len);
		if (i < 0) {
			l->c.unmatched++;
			continue;
		}
		l->slots[i].busy = false;
		if (payload_ok(l))
			l->c.replies++;
		else
			l->c.short_replies++;
		issue(l, i, now);
	}
	flush(l);
}

/* Re-issues queries that got no answer in time. */
static void expire(struct load *l, uint64_t now)
{
	for (int i = 0; i < l->window; i++)
		if (l->slots[i].busy && now - l->slots[i].sent_us > l->timeout_us) {
			l->c.lost++;
			issue(l, i, now);
		}
	flush(l);
}

static void run(struct load *l, uint64_t until)
{
	uint64_t now = bench_now_us(), next_expiry = now + l->timeout_us / 4;

	for (int i = 0; i < l->window; i++)
		if (!l->slots[i].busy)
			issue(l, i, now);
	flush(l);
	while ((now = bench_now_us()) < until) {
		int n = recvmmsg(l->fd, l->in_msg, BENCH_BATCH, MSG_DONTWAIT, NULL);

		if (n > 0) {
			on_batch(l, n, now);
		} else {
			struct pollfd p = { .fd = l->fd, .events = POLLIN };

			poll(&p, 1, 5);
		}
		if (now >= next_expiry) {
			expire(l, now);
			next_expiry = now + l->timeout_us / 4;
		}
	}
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " --to A.B.C.D:PORT [OPTIONS]\n"
"Keeps a window of KRPC queries in flight and prints one line of results:\n"
"method window replies rps short lost unmatched server_us_per_reply\n"
"load_cpu rcvbuf_errors, as key=value pairs.\n"
"\n"
"  -t, --to ADDR        the server (numeric IPv4:port)\n"
"  -f, --from ADDR      local address (default 127.0.0.2:0)\n"
"  -m, --method M       ping, find_node or get_peers (default find_node)\n"
"  -w, --window N       queries in flight, 1..%d (default 256)\n"
"  -d, --duration SECS  measured time (default 2)\n"
"  -W, --warmup SECS    unmeasured time first (default 0.5)\n"
"  -T, --timeout MS     a query unanswered this long is lost (default 250)\n"
"  -p, --pid PID        the server's process, for CPU per reply\n"
"  -s, --seed N         seeds our id and the targets (default 1)\n"
"  -h, --help           this help\n", MAX_WINDOW);
}

static const struct option long_opts[] = {
	{ "to", required_argument, NULL, 't' },
	{ "from", required_argument, NULL, 'f' },
	{ "method", required_argument, NULL, 'm' },
	{ "window", required_argument, NULL, 'w' },
	{ "duration", required_argument, NULL, 'd' },
	{ "warmup", required_argument, NULL, 'W' },
	{ "timeout", required_argument, NULL, 'T' },
	{ "pid", required_argument, NULL, 'p' },
	{ "seed", required_argument, NULL, 's' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct opts {
	const char *to, *from;
	enum bench_method method;
	long window, timeout_ms, pid, seed;
	double duration, warmup;
};

static bool parse_num(const char *opt, const char *s, double lo, double hi,
		      double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || *end || end == s || *out < lo || *out > hi) {
		fprintf(stderr, PROG ": %s wants a number in %g..%g, not '%s'\n",
			opt, lo, hi, s);
		return false;
	}
	return true;
}

/* Returns 0 to go on, 1 after --help, -1 on a bad option. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	double v;
	int c;

	while ((c = getopt_long(argc, argv, "t:f:m:w:d:W:T:p:s:h", long_opts,
				NULL)) != -1) {
		switch (c) {
		case 't': o->to = optarg; break;
		case 'f': o->from = optarg; break;
		case 'm':
			if (!bench_parse_method(optarg, &o->method)) {
				fprintf(stderr, PROG ": unknown method '%s'\n", optarg);
				return -1;
			}
			break;
		case 'w': if (!parse_num("--window", optarg, 1, MAX_WINDOW, &v)) return -1;
			o->window = (long)v; break;
		case 'd': if (!parse_num("--duration", optarg, 0.1, 3600, &o->duration)) return -1;
			break;
		case 'W': if (!parse_num("--warmup", optarg, 0, 3600, &o->warmup)) return -1;
			break;
		case 'T': if (!parse_num("--timeout", optarg, 1, 60000, &v)) return -1;
			o->timeout_ms = (long)v; break;
		case 'p': if (!parse_num("--pid", optarg, 1, 1 << 30, &v)) return -1;
			o->pid = (long)v; break;
		case 's': if (!parse_num("--seed", optarg, 0, 1e15, &v)) return -1;
			o->seed = (long)v; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc || !o->to) {
		fprintf(stderr, PROG ": %s\n", optind < argc ?
			"unexpected argument" : "--to is required");
		return -1;
	}
	return 0;
}

static void setup_batches(struct load *l)
{
	for (int k = 0; k < BENCH_BATCH; k++) {
		l->out_iov[k].iov_base = l->out[k];
		l->out_msg[k].msg_hdr = (struct msghdr){
			.msg_name = &l->to, .msg_namelen = sizeof(l->to),
			.msg_iov = &l->out_iov[k], .msg_iovlen = 1 };
		l->in_iov[k] = (struct iovec){ l->in[k], sizeof(l->in[k]) };
		l->in_msg[k].msg_hdr = (struct msghdr){
			.msg_iov = &l->in_iov[k], .msg_iovlen = 1 };
	}
}

static void report(const struct load *l, const struct opts *o, double secs,
		   long long server_us, double load_cpu, long long drops)
{
	printf("method=%s window=%d replies=%llu rps=%.0f short=%llu lost=%llu "
	       "unmatched=%llu server_us_per_reply=%.2f load_cpu=%.2f "
	       "rcvbuf_errors=%lld\n",
	       bench_method_name(l->method), l->window, l->c.replies,
	       (double)l->c.replies / secs, l->c.short_replies, l->c.lost,
	       l->c.unmatched,
	       server_us >= 0 && l->c.replies ?
		       (double)server_us / (double)l->c.replies : -1.0,
	       load_cpu / secs, drops);
}

int main(int argc, char **argv)
{
	struct opts o = { .from = "127.0.0.2:0", .method = BENCH_FIND_NODE,
			  .window = 256, .timeout_ms = 250, .seed = 1,
			  .duration = 2, .warmup = 0.5 };
	struct sockaddr_in from;
	struct load *l;
	long long cpu0 = -1, cpu1 = -1, drops0;
	double lcpu0;
	uint64_t t0, t1;
	int rc = parse_opts(argc, argv, &o);

	if (rc != 0)
		return rc > 0 ? 0 : 2;
	l = calloc(1, sizeof(*l));
	if (!l || !bench_parse_addr(PROG, o.to, &l->to) ||
	    !bench_parse_addr(PROG, o.from, &from))
		return 2;
	l->fd = bench_udp_socket(PROG, &from);
	if (l->fd < 0)
		return 1;
	l->method = o.method;
	l->window = (int)o.window;
	l->timeout_us = (uint64_t)o.timeout_ms * 1000;
	l->rng = (uint64_t)o.seed;
	bench_rand_bytes(&l->rng, l->id, sizeof(l->id));
	setup_batches(l);

	run(l, bench_now_us() + (uint64_t)(o.warmup * 1e6));
	memset(&l->c, 0, sizeof(l->c));
	drops0 = bench_rcvbuf_errors();
	if (o.pid)
		cpu0 = bench_proc_cpu_us((int)o.pid);
	lcpu0 = cpu_s();
	t0 = bench_now_us();
	run(l, t0 + (uint64_t)(o.duration * 1e6));
	t1 = bench_now_us();
	if (o.pid)
		cpu1 = bench_proc_cpu_us((int)o.pid);
	report(l, &o, (double)(t1 - t0) / 1e6,
	       cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1, cpu_s() - lcpu0,
	       bench_rcvbuf_errors() - drops0);
	close(l->fd);
	free(l);
	return 0;
}
