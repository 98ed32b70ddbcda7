/* Helpers shared by the bench programs; see bench.h. */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

bool bench_parse_addr(const char *prog, const char *s, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		goto bad;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &out->sin_addr) != 1)
		goto bad;
	out->sin_port = htons((uint16_t)port);
	return true;
bad:
	fprintf(stderr, "%s: bad address '%s' (want A.B.C.D:PORT)\n", prog, s);
	return false;
}

int bench_udp_socket(const char *prog, const struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int buf = BENCH_RCVBUF;

	if (fd < 0) {
		fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof(ip));
		fprintf(stderr, "%s: bind %s:%u: %s\n", prog, ip,
			ntohs(addr->sin_port), strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static const char *const method_names[] = { "ping", "find_node", "get_peers" };

bool bench_parse_method(const char *s, enum bench_method *out)
{
	for (size_t i = 0; i < sizeof(method_names) / sizeof(*method_names); i++)
		if (strcmp(s, method_names[i]) == 0) {
			*out = (enum bench_method)i;
			return true;
		}
	return false;
}

const char *bench_method_name(enum bench_method m)
{
	return method_names[m];
}

static uint8_t *put(uint8_t *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

static uint8_t *put_bytes(uint8_t *p, const uint8_t *b, size_t n)
{
	memcpy(p, b, n);
	return p + n;
}

size_t bench_query(uint8_t *out, enum bench_method m,
		   const uint8_t id[static BENCH_ID_LEN],
		   const uint8_t tid[static 4],
		   const uint8_t target[static BENCH_ID_LEN])
{
	uint8_t *p = put(out, "d1:ad2:id20:");

	p = put_bytes(p, id, BENCH_ID_LEN);
	if (m == BENCH_FIND_NODE)
		p = put_bytes(put(p, "6:target20:"), target, BENCH_ID_LEN);
	else if (m == BENCH_GET_PEERS)
		p = put_bytes(put(p, "9:info_hash20:"), target, BENCH_ID_LEN);
	p = put(p, m == BENCH_PING ? "e1:q4:ping" :
		   m == BENCH_FIND_NODE ? "e1:q9:find_node" : "e1:q9:get_peers");
	p = put_bytes(put(p, "1:t4:"), tid, 4);
	p = put(p, "1:y1:qe");
	return (size_t)(p - out);
}

int bench_find_tid(const uint8_t *buf, size_t len, const uint8_t **tid)
{
	/* Keys before "t" are "a", "ip", "q", "r" or "e": skipping them needs a
	 * decoder, but the queries and replies we meet put "1:t" after a
	 * complete value, so a search from the back is unambiguous enough
	 * for a fixed-reply server. */
	for (size_t i = len; i-- > 3;) {
		size_t n = 0, j;

		if (memcmp(buf + i - 3, "1:t", 3) != 0)
			continue;
		for (j = i; j < len && j < i + 3 && buf[j] >= '0' && buf[j] <= '9'; j++)
			n = n * 10 + (size_t)(buf[j] - '0');
		if (j == i || j >= len || buf[j] != ':' || n == 0 || n > 32 ||
		    j + 1 + n > len)
			continue;
		*tid = buf + j + 1;
		return (int)n;
	}
	return -1;
}

uint64_t bench_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void bench_rand_bytes(uint64_t *state, uint8_t *out, size_t len)
{
	while (len > 0) {
		uint64_t r = bench_rand(state);
		size_t n = len < sizeof(r) ? len : sizeof(r);

		memcpy(out, &r, n);
		out += n;
		len -= n;
	}
}

long long bench_proc_cpu_us(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces; fields resume after its ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)((ut + st) * 1000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

long long bench_rcvbuf_errors(void)
{
	char line[1024], keys[1024] = "";
	FILE *f = fopen("/proc/net/snmp", "r");
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Udp:", 4) != 0)
			continue;
		if (!keys[0]) {
			memcpy(keys, line, sizeof(keys));
			continue;
		}
		/* The header names the columns; find RcvbufErrors' index. */
		int col = 0, want = -1;
		for (char *k = strtok(keys, " \n"); k; k = strtok(NULL, " \n"), col++)
			if (strcmp(k, "RcvbufErrors") == 0)
				want = col;
		col = 0;
		for (char *t = strtok(line, " \n"); t; t = strtok(NULL, " \n"), col++)
			if (col == want)
				v = atoll(t);
		break;
	}
	fclose(f);
	return v;
}
