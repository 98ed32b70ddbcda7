/* Shared by the throughput bench programs (km-bench-load, -fill, -ceiling):
 * raw UDP sockets, KRPC query templates and the clock.  These are bench
 * tools, not part of the node: they talk to sockets directly, with
 * sendmmsg/recvmmsg, so that the measuring side costs as little as it can. */
#ifndef KM_BENCH_H
#define KM_BENCH_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_BATCH 64
#define BENCH_PKT 1500 /* queries and the replies the fakes send */
/* Replies can be long: bittorrent-dht sends its whole table in find_node. */
#define BENCH_REPLY_MAX 16384
#define BENCH_ID_LEN 20
#define BENCH_RCVBUF (4 * 1024 * 1024)

enum bench_method { BENCH_PING, BENCH_FIND_NODE, BENCH_GET_PEERS };

/* Microseconds on CLOCK_MONOTONIC. */
uint64_t bench_now_us(void);

/* Parses numeric "A.B.C.D:PORT"; prints an error naming prog on failure. */
bool bench_parse_addr(const char *prog, const char *s, struct sockaddr_in *out);

/* A non-blocking UDP socket bound to addr, with a large receive buffer;
 * returns the fd or -1 after printing why. */
int bench_udp_socket(const char *prog, const struct sockaddr_in *addr);

bool bench_parse_method(const char *s, enum bench_method *out);
const char *bench_method_name(enum bench_method m);

/* Writes a KRPC query: our id, a 4-byte tid and, for find_node and
 * get_peers, a 20-byte target.  Returns the length. */
size_t bench_query(uint8_t *out, enum bench_method m,
		   const uint8_t id[static BENCH_ID_LEN],
		   const uint8_t tid[static 4],
		   const uint8_t target[static BENCH_ID_LEN]);

/* Finds the transaction id of a bencoded message without decoding the rest:
 * the top-level "1:t" key followed by "<len>:".  Returns its length (1..32)
 * and sets *tid, or -1.  Good enough for the ceiling and the filler, which
 * only ever see the queries we send. */
int bench_find_tid(const uint8_t *buf, size_t len, const uint8_t **tid);

/* A splitmix64 step: cheap randomness for targets and ids. */
uint64_t bench_rand(uint64_t *state);
void bench_rand_bytes(uint64_t *state, uint8_t *out, size_t len);

/* The sum of utime and stime of pid, in microseconds, or -1. */
long long bench_proc_cpu_us(int pid);

/* RcvbufErrors from the Udp: line of /proc/net/snmp, or -1. */
long long bench_rcvbuf_errors(void);

#endif
