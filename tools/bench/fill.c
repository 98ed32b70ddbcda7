/* km-bench-fill: fills a DHT server's routing table with fake nodes, so
 * that every find_node reply it gives carries a full 8 nodes.
 *
 * Each fake node is a UDP socket on its own loopback address 127.B.C.1
 * (a distinct /24 each, so per-subnet limits do not bite), with an id that
 * shares exactly i/per-bucket leading bits with the server's: bucket by
 * bucket, the way a real network fills a table.  Every fake node pings the
 * server, so the server hears of it, and answers every query the server
 * sends it (ping, find_node with no nodes, get_peers with a token), so the
 * server finds it alive and keeps it.  It runs until SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "proto/krpc.h"

#define PROG "km-bench-fill"
#define MAX_FAKES 4096
#define REPING_US 5000000 /* keeps the fake nodes fresh in the table */

struct fake {
	int fd;
	uint8_t id[BENCH_ID_LEN];
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Asks the server for its id with a ping from fd; waits up to 5 s. */
static bool learn_id(int fd, const struct sockaddr_in *to,
		     uint8_t id[static BENCH_ID_LEN])
{
	uint8_t q[128], buf[BENCH_PKT], mine[BENCH_ID_LEN] = { 1 };
	struct km_krpc_msg *m = malloc(sizeof(*m));
	bool ok = false;

	for (int tries = 0; m && !ok && tries < 50; tries++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		size_t len = bench_query(q, BENCH_PING, mine,
					 (const uint8_t *)"idq0", mine);
		ssize_t n;

		sendto(fd, q, len, 0, (const struct sockaddr *)to, sizeof(*to));
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0 && km_krpc_decode(buf, (size_t)n, m) == 0 &&
		    m->type == KM_KRPC_RESPONSE) {
			memcpy(id, m->id.b, BENCH_ID_LEN);
			ok = true;
		}
	}
	free(m);
	return ok;
}

/* An id with exactly `cpl` leading bits in common with server's. */
static void id_at(const uint8_t server[static BENCH_ID_LEN], int cpl,
		  uint64_t *rng, uint8_t out[static BENCH_ID_LEN])
{
	int byte = cpl / 8, bit = 7 - cpl % 8;
	uint8_t keep = (uint8_t)(0xff00 >> (cpl % 8));

	bench_rand_bytes(rng, out, BENCH_ID_LEN);
	memcpy(out, server, (size_t)byte);
	out[byte] = (uint8_t)((server[byte] & keep) | (out[byte] & ~keep));
	out[byte] ^= (uint8_t)(((out[byte] ^ ~server[byte]) & (1u << bit)));
}

static size_t reply(const uint8_t *q, size_t qlen, const uint8_t *id,
		    uint8_t *out)
{
	const uint8_t *tid;
	int n = bench_find_tid(q, qlen, &tid);
	int len;

	if (n < 0)
		return 0;
	len = sprintf((char *)out, "d1:rd2:id20:");
	memcpy(out + len, id, BENCH_ID_LEN);
	len += BENCH_ID_LEN;
	len += sprintf((char *)out + len, "5:nodes0:5:token4:fill");
	len += sprintf((char *)out + len, "e1:t%d:", n);
	memcpy(out + len, tid, (size_t)n);
	len += n;
	len += sprintf((char *)out + len, "1:y1:re");
	return (size_t)len;
}

static void ping_all(struct fake *f, int n, const struct sockaddr_in *to,
		     uint64_t *rng)
{
	for (int i = 0; i < n; i++) {
		uint8_t q[128], tid[4], target[BENCH_ID_LEN];
		size_t len;

		bench_rand_bytes(rng, tid, sizeof(tid));
		bench_rand_bytes(rng, target, sizeof(target));
		/* find_node, not ping: some servers only learn nodes from
		 * queries that go through their full handling path. */
		len = bench_query(q, BENCH_FIND_NODE, f[i].id, tid, target);
		sendto(f[i].fd, q, len, 0, (const struct sockaddr *)to,
		       sizeof(*to));
	}
}

static void serve(struct fake *f, int n, const struct sockaddr_in *to,
		  uint64_t *rng)
{
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	uint64_t next_ping = 0;

	for (int i = 0; p && i < n; i++)
		p[i] = (struct pollfd){ .fd = f[i].fd, .events = POLLIN };
	while (p && !stop) {
		uint64_t now = bench_now_us();

		if (now >= next_ping) {
			ping_all(f, n, to, rng);
			next_ping = now + REPING_US;
		}
		if (poll(p, (nfds_t)n, 200) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			uint8_t in[BENCH_PKT], out[256];
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t len;
			size_t olen;

			if (!(p[i].revents & POLLIN))
				continue;
			while ((len = recvfrom(f[i].fd, in, sizeof(in), 0,
					       (struct sockaddr *)&from, &fl)) > 0) {
				/* Replies to our pings end in "1:y1:re": skip. */
				if (len > 6 && memcmp(in + len - 6, "y1:re", 5) == 0)
					continue;
				olen = reply(in, (size_t)len, f[i].id, out);
				if (olen)
					sendto(f[i].fd, out, olen, 0,
					       (struct sockaddr *)&from, fl);
				fl = sizeof(from);
			}
		}
	}
	free(p);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "per-bucket", required_argument, NULL, 'k' },
		{ "net", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long count = 160, per_bucket = 8, net = 100;
	const char *to_s = NULL;
	struct sockaddr_in to, sa = { .sin_family = AF_INET };
	uint8_t server[BENCH_ID_LEN];
	uint64_t rng = 7;
	struct fake *f;
	int o;

	while ((o = getopt_long(argc, argv, "t:n:k:N:h", opts, NULL)) != -1) {
		switch (o) {
		case 't': to_s = optarg; break;
		case 'n': count = strtol(optarg, NULL, 10); break;
		case 'k': per_bucket = strtol(optarg, NULL, 10); break;
		case 'N': net = strtol(optarg, NULL, 10); break;
		default:
			fprintf(o == 'h' ? stdout : stderr,
"usage: " PROG " --to A.B.C.D:PORT [-n|--count N (160)]\n"
"       [-k|--per-bucket K (8)] [-N|--net B (100)]\n"
"Fake nodes on 127.B.C.1 (B from --net up) fill the server's routing\n"
"table, K per bucket, and keep answering it; prints `filled N id=HEX`\n"
"once started; SIGTERM stops it.\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (!to_s || optind < argc || count < 1 || count > MAX_FAKES ||
	    per_bucket < 1 || net < 1 || net + count / 250 > 254) {
		fprintf(stderr, PROG ": need --to; --count 1..%d, --per-bucket "
			">= 1, --net 1..254\n", MAX_FAKES);
		return 2;
	}
	if (!bench_parse_addr(PROG, to_s, &to))
		return 2;
	f = calloc((size_t)count, sizeof(*f));
	for (long i = 0; f && i < count; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "127.%ld.%ld.1", net + i / 250, i % 250);
		inet_pton(AF_INET, ip, &sa.sin_addr);
		f[i].fd = bench_udp_socket(PROG, &sa);
		if (f[i].fd < 0)
			return 1;
	}
	if (!f || !learn_id(f[0].fd, &to, server)) {
		fprintf(stderr, PROG ": no answer from %s\n", to_s);
		return 1;
	}
	for (long i = 0; i < count; i++)
		id_at(server, (int)(i / per_bucket) % 152, &rng, f[i].id);
	sigaction(SIGTERM, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	sigaction(SIGINT, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	printf("filled %ld id=", count);
	for (int i = 0; i < BENCH_ID_LEN; i++)
		printf("%02x", server[i]);
	printf("\n");
	fflush(stdout);
	serve(f, (int)count, &to, &rng);
	for (long i = 0; i < count; i++)
		close(f[i].fd);
	free(f);
	return 0;
}
