/* kadmesh: a peer-to-peer discovery node (Kademlia DHT + a TCP overlay
 * that carries broadcasts), as an embeddable library.
 *
 * Two ways to run a node:
 *
 *   - You own the sockets and the clock (sans-IO, like jech/dht or
 *     ngtcp2): kadmesh_new() with the udp_send / tcp_* / random callbacks
 *     filled in, then feed it every datagram, TCP event and the time with
 *     kadmesh_udp_recv(), kadmesh_tcp_*() and kadmesh_tick().  The node never
 *     touches a socket, a clock or a random source by itself.
 *
 *   - The bundled libuv driver owns them: kadmesh_uv_start() in
 *     <kadmesh_uv.h> binds UDP and TCP on one port and runs the node on
 *     your uv_loop_t.  This header is the sans-IO contract and needs no
 *     libuv.
 *
 * Either way, lookups, announces and broadcasts are started with the calls
 * below, and results and messages arrive through the callbacks.  Every
 * function that can fail returns 0 (or a non-negative value) on success
 * and a negative KADMESH_ERR_* code otherwise; each function's comment lists
 * the codes it can return, and kadmesh_strerror() names any of them.  A
 * node is not thread-safe: call it from one thread (the loop's, with the
 * driver).
 *
 * Link with `pkg-config --cflags --libs kadmesh`, or in CMake
 * find_package(kadmesh) and target_link_libraries(app kadmesh::kadmesh). */
#ifndef KADMESH_H
#define KADMESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KADMESH_API __attribute__((visibility("default")))
#else
#define KADMESH_API
#endif

#define KADMESH_VERSION_MAJOR 0
#define KADMESH_VERSION_MINOR 1
#define KADMESH_VERSION_PATCH 0
#define KADMESH_VERSION "0.1.0"

#define KADMESH_ID_LEN 20          /* node IDs, info-hashes, message IDs */
#define KADMESH_PAYLOAD_MAX 65390  /* the largest broadcast payload */
#define KADMESH_KEY_SEED_LEN 32    /* an Ed25519 private key seed */

/* Error codes, all below -200 so that libuv's UV_E* codes (small negative
 * errno values, which kadmesh_uv_start() passes through) never collide. */
#define KADMESH_ERR_NOMEM (-201)    /* an allocation failed */
#define KADMESH_ERR_INVAL (-202)    /* an argument out of its range, or the
				       node is stopping */
#define KADMESH_ERR_FULL (-204)     /* a bounded table is at its cap: too
				       many lookups running, say */
#define KADMESH_ERR_TOO_LONG (-211) /* a payload over KADMESH_PAYLOAD_MAX */

/* Milliseconds on a monotonic clock of your choosing (sans-IO mode). */
typedef uint64_t kadmesh_ms;

enum kadmesh_log_level {
	KADMESH_LOG_ERROR, KADMESH_LOG_WARN, KADMESH_LOG_INFO, KADMESH_LOG_DEBUG
};

struct kadmesh_config {
	uint8_t id[KADMESH_ID_LEN]; /* all zero: a random ID */
	/* The Ed25519 key that authenticates links and signs broadcasts;
	 * without one (has_key false) the node makes an ephemeral key.  Peers
	 * pin a key per node ID: keep the ID and the key together. */
	bool has_key;
	uint8_t key_seed[KADMESH_KEY_SEED_LEN];
	uint32_t network_id;        /* 0: the default network ("km01") */
	bool seed;                  /* start a network: no bootstrap needed */
	/* Numeric "IP:PORT" or "[IPv6]:PORT" strings; at most 16. */
	const char *const *bootstrap;
	size_t nbootstrap;
};

/* One node met in a lookup, or one peer found by get_peers (id all zero). */
struct kadmesh_peer {
	uint8_t id[KADMESH_ID_LEN];
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct kadmesh_result {
	const uint8_t *target;          /* KADMESH_ID_LEN bytes */
	const struct kadmesh_peer *nodes; /* the closest that answered */
	size_t nnodes;
	const struct kadmesh_peer *peers; /* get_peers / announce: holders */
	size_t npeers;
};

struct kadmesh_message {
	const uint8_t *id;              /* KADMESH_ID_LEN bytes */
	const uint8_t *origin;          /* the sender's node ID */
	const uint8_t *payload;         /* arbitrary bytes, not NUL-terminated */
	size_t len;
	unsigned hops;
};

/* Every member may be NULL, except that sans-IO mode needs udp_send,
 * tcp_connect, tcp_send, tcp_close and random.  The pointers passed to a
 * callback are valid only during the call. */
struct kadmesh_callbacks {
	/* Sans-IO mode: what to send, and where.  TCP connections are named
	 * by ids the node hands out; answer tcp_connect with
	 * kadmesh_tcp_connected() or kadmesh_tcp_closed(). */
	void (*udp_send)(void *user, const struct sockaddr *to, socklen_t tolen,
			 const uint8_t *buf, size_t len);
	void (*tcp_connect)(void *user, uint64_t conn, const struct sockaddr *to,
			    socklen_t tolen);
	void (*tcp_send)(void *user, uint64_t conn, const uint8_t *buf,
			 size_t len);
	void (*tcp_close)(void *user, uint64_t conn);
	void (*random)(void *user, void *buf, size_t len);
	/* Both modes. */
	void (*lookup_done)(void *user, uint64_t lookup,
			    const struct kadmesh_result *r);
	/* A broadcast reached this node (one it sent itself too). */
	void (*message)(void *user, const struct kadmesh_message *m);
	/* One line of text, no newline, every level (filter it yourself).
	 * A line may quote a peer (a GOODBYE's text), so control characters
	 * (bytes below 0x20, and 0x7f) arrive as \xNN; lines are at most
	 * 2047 bytes.  Repeats are collapsed: a line with the same level and text as the
	 * one passed on before, within a minute of it, is held back and
	 * counted; the count then comes as one line "<text> (repeated N
	 * times)" when a different line arrives, when the minute ends, or
	 * when the node goes (kadmesh_stop in libuv mode, kadmesh_del).  A
	 * flood lasting longer gives one such line a minute.  In sans-IO
	 * mode "the minute ends" is seen by kadmesh_tick, which asks to be
	 * called then. */
	void (*log)(void *user, enum kadmesh_log_level level, const char *msg);
};

struct kadmesh;

KADMESH_API const char *kadmesh_version(void);
/* Never NULL: an unknown code gets a generic text. */
KADMESH_API const char *kadmesh_strerror(int code);
KADMESH_API void kadmesh_config_default(struct kadmesh_config *cfg);

/* Sans-IO mode.  Returns NULL on a bad config or allocation failure. */
KADMESH_API struct kadmesh *kadmesh_new(const struct kadmesh_config *cfg,
					const struct kadmesh_callbacks *cb,
					void *user, uint16_t port,
					kadmesh_ms now);
/* Sends no GOODBYE; call kadmesh_stop() first for an orderly leave.  NULL
 * is a no-op.  Not for a node from kadmesh_uv_start(). */
KADMESH_API void kadmesh_del(struct kadmesh *k);
KADMESH_API void kadmesh_udp_recv(struct kadmesh *k, const struct sockaddr *from,
				  const uint8_t *buf, size_t len,
				  kadmesh_ms now);
/* Returns the connection's id, or 0: refused, close it. */
KADMESH_API uint64_t kadmesh_tcp_accepted(struct kadmesh *k,
					  const struct sockaddr *from,
					  kadmesh_ms now);
KADMESH_API void kadmesh_tcp_connected(struct kadmesh *k, uint64_t conn,
				       kadmesh_ms now);
KADMESH_API void kadmesh_tcp_recv(struct kadmesh *k, uint64_t conn,
				  const uint8_t *buf, size_t len,
				  kadmesh_ms now);
KADMESH_API void kadmesh_tcp_closed(struct kadmesh *k, uint64_t conn,
				    kadmesh_ms now);
/* Runs timers; returns when to call it next (0: no timer wanted). */
KADMESH_API kadmesh_ms kadmesh_tick(struct kadmesh *k, kadmesh_ms now);

/* GOODBYE to every neighbour, then done (may be NULL).  In libuv mode it
 * also closes the sockets and frees k before calling done. */
KADMESH_API void kadmesh_stop(struct kadmesh *k, void (*done)(void *user),
			      void *user);

enum kadmesh_lookup_kind {
	KADMESH_FIND_NODE, /* the k closest nodes to target */
	KADMESH_GET_PEERS, /* those, and the peers announced under target */
	KADMESH_ANNOUNCE,  /* get_peers, then announce_peer to the closest */
};

struct kadmesh_lookup {
	enum kadmesh_lookup_kind kind;
	uint8_t target[KADMESH_ID_LEN]; /* a node ID or an info-hash */
	uint16_t port; /* KADMESH_ANNOUNCE: the port to announce; 0 announces
			  the port our packets come from (BEP 5 implied_port) */
};

/* Starts a lookup; it reports through lookup_done, and *lookup (may be
 * NULL) gets its id.  Returns 0, KADMESH_ERR_INVAL (an unknown kind, or the
 * node is stopping) or KADMESH_ERR_FULL (too many lookups running). */
KADMESH_API int kadmesh_lookup(struct kadmesh *k,
			       const struct kadmesh_lookup *req,
			       uint64_t *lookup);
/* kadmesh_lookup() of one kind, as one call each; same codes. */
KADMESH_API int kadmesh_find_node(struct kadmesh *k,
				  const uint8_t target[KADMESH_ID_LEN],
				  uint64_t *lookup);
KADMESH_API int kadmesh_get_peers(struct kadmesh *k,
				  const uint8_t info_hash[KADMESH_ID_LEN],
				  uint64_t *lookup);
KADMESH_API int kadmesh_announce(struct kadmesh *k,
				 const uint8_t info_hash[KADMESH_ID_LEN],
				 uint16_t port, uint64_t *lookup);
/* Sends payload to every node; msg_id (may be NULL) gets its ID.  Returns
 * 0, KADMESH_ERR_TOO_LONG, KADMESH_ERR_INVAL (the node is stopping) or
 * KADMESH_ERR_NOMEM. */
KADMESH_API int kadmesh_broadcast(struct kadmesh *k, const void *payload,
				  size_t len, uint8_t msg_id[KADMESH_ID_LEN]);

KADMESH_API const uint8_t *kadmesh_id(const struct kadmesh *k);
KADMESH_API uint16_t kadmesh_port(const struct kadmesh *k);
KADMESH_API size_t kadmesh_routing_table_size(const struct kadmesh *k);
KADMESH_API size_t kadmesh_neighbour_count(const struct kadmesh *k);

#ifdef __cplusplus
}
#endif

#endif
