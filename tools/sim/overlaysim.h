/* An in-memory overlay of km_bcast instances for tests and the simulator:
 * no sockets, no clock.
 *
 * Node i is link id i to its neighbours.  Each node dials `out` distinct
 * random others; links are bidirectional, so the mean degree is about
 * 2 * out.  Every link gets a fixed one-way latency drawn from
 * [lat_min, lat_max], so frames on a link arrive in order, as on TCP.  An
 * event queue (a binary heap ordered by time, then by sequence number)
 * carries frames and timers; time jumps from event to event.  Everything
 * comes from one seeded PRNG, so a run repeats exactly. */
#ifndef KM_SIM_OVERLAYSIM_H
#define KM_SIM_OVERLAYSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/broadcast.h"

/* A link of a graph the caller chose (dht-sim: the connection manager's). */
struct osim_edge {
	uint32_t a, b;
	km_ms lat;                /* one-way latency */
};

struct osim_config {
	size_t n;                 /* nodes */
	unsigned out;             /* links each node dials */
	km_ms lat_min, lat_max;   /* one-way link latency */
	uint64_t seed;
	const struct km_bcast_config *bcast; /* NULL: km_bcast_config_default */
	/* Optional.  edges: use this graph instead of random dials (out and
	 * lat_* are then ignored).  loss: a frame is lost on the wire with
	 * this probability and TCP resends it after max(200 ms, 2 RTT),
	 * holding up the frames behind it.  start: the initial virtual time
	 * (default 1).  link_down: called when a node notices that a link is
	 * gone (osim_kill_silent), after km_bcast_peer_down. */
	const struct osim_edge *edges;
	size_t nedges;
	double loss;
	km_ms start;
	void (*link_down)(void *user, size_t node, size_t peer);
	void *user;
};

/* What one broadcast did, counted over live nodes. */
struct osim_report {
	size_t live;               /* live nodes, the origin included */
	size_t reached;            /* live nodes that delivered it */
	size_t repeated;           /* live nodes that delivered it twice or more */
	unsigned long copies;      /* MESSAGE frames of it received */
	double copies_per_node;    /* copies / (live - 1) */
	unsigned hops_max;
	double hops_mean;
	km_ms last_delivery;       /* ms after publishing */
	unsigned long payload_bytes; /* MESSAGE frame bytes sent (any message) */
	unsigned long control_bytes; /* IHAVE, GRAFT and PRUNE frame bytes sent */
};

struct osim;

/* NULL if the configuration is impossible (out >= n) or memory runs out.
 * With out >= n - 1 the result is the full mesh. */
struct osim *osim_new(const struct osim_config *cfg);
void osim_del(struct osim *s); /* NULL is a no-op */

size_t osim_size(const struct osim *s);
km_ms osim_now(const struct osim *s);
bool osim_alive(const struct osim *s, size_t i);
struct km_bcast *osim_bcast(struct osim *s, size_t i);
const struct km_id *osim_id(const struct osim *s, size_t i);

/* Node id's signing key in the simulation (derived from the ID, so that
 * tests can also sign as a node: to tamper, not to forge). */
void osim_node_key(const struct km_id *id, struct km_ident *key);

/* Node i dies: its frames in flight are lost and every neighbour gets
 * km_bcast_peer_down for it. */
void osim_kill(struct osim *s, size_t i);

/* Node i crashes silently: its frames in flight are lost, and each
 * neighbour notices only after detect_min plus a random part of
 * detect_span ms (as after missed PINGs), when it gets km_bcast_peer_down
 * and cfg.link_down is called. */
void osim_kill_silent(struct osim *s, size_t i, km_ms detect_min,
		      km_ms detect_span);

/* Opens a link between live nodes a and b (both get km_bcast_peer_up), or
 * closes one (both get km_bcast_peer_down).  No-ops when already so. */
void osim_link(struct osim *s, size_t a, size_t b, km_ms lat);
void osim_unlink(struct osim *s, size_t a, size_t b);

size_t osim_degree(const struct osim *s, size_t i);

/* For the message last measured by osim_broadcast: whether node i
 * delivered it, and when (ms after publishing) and after how many hops. */
bool osim_delivered(const struct osim *s, size_t i, km_ms *after,
		    unsigned *hops);

/* Delivers frames and runs timers up to virtual time `until`. */
void osim_run_until(struct osim *s, km_ms until);

/* Publishes a payload at `origin`, runs `settle` ms, and reports on that
 * message.  Returns 0 or the km_bcast_publish error. */
int osim_broadcast(struct osim *s, size_t origin, const uint8_t *payload,
		   size_t len, km_ms settle, struct osim_report *r);

/* Payload copies per live node that plain flooding would cost on the
 * current graph: every node sends to all its live neighbours but the one it
 * heard from, so (sum of degrees - (live - 1)) / (live - 1). */
double osim_flood_copies(const struct osim *s);

#endif
