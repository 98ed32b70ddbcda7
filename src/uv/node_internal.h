/* Private to src/uv: the libuv driver's state, shared by node.c (the timer,
 * the node's callbacks, start and stop), tcp.c, udp.c, bind.c and rng.c.
 * Each includer defines _GNU_SOURCE first, for struct mmsghdr. */
#ifndef KM_UV_NODE_INTERNAL_H
#define KM_UV_NODE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uthash.h>
#include <uv.h>

#include "uv/node.h"

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

struct km_uv_rng {
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
	struct km_uv_rng osrng;
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

/* node.c */
void km_uv_node_say(struct km_uv_node *u, enum km_log_level level,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
km_ms km_uv_node_now(struct km_uv_node *u);
struct sock_pair *km_uv_node_pair_for(struct km_uv_node *u, uint8_t family);
/* A connection's handle has closed (u->nconns already counts it out). */
void km_uv_node_conn_gone(struct km_uv_node *u);

/* tcp.c: the node's TCP callbacks, the listener's, and the sweeps. */
void km_uv_tcp_send(void *user, uint64_t id, const uint8_t *buf, size_t len);
void km_uv_tcp_close(void *user, uint64_t id);
void km_uv_tcp_connect(void *user, uint64_t id, const struct km_addr *to);
void km_uv_tcp_punch(void *user, uint64_t id, const struct km_addr *to);
void km_uv_tcp_on_connection(uv_stream_t *server, int status);
/* Force-closes links whose graceful close took too long; returns the
 * earliest linger deadline still pending, or UINT64_MAX. */
km_ms km_uv_tcp_sweep_lingering(struct km_uv_node *u, km_ms now);
void km_uv_tcp_close_all(struct km_uv_node *u);
void km_uv_tcp_shutdown_all(struct km_uv_node *u, km_ms linger);

/* udp.c */
void km_uv_udp_send(void *user, const struct km_addr *to, const uint8_t *buf,
		    size_t len);
int km_uv_udp_start(struct sock_pair *sp);

/* bind.c: binds every address on one port number (see km_uv_node_start);
 * returns 0 with fds[i] = { tcp, udp }, or a negative errno / KM_ERR_*. */
int km_uv_bind_all(const struct km_addr *binds, size_t nbinds, int fds[][2],
		   uint16_t *port);
void km_uv_bind_close_fds(int fds[][2], size_t n);

/* rng.c: a km_rng fill function over getrandom(2); ctx is a km_uv_rng. */
void km_uv_rng_fill(void *ctx, void *buf, size_t len);

#endif
