/* Drives a km_node from a libuv loop: the daemon's and dht-lookup's driver.
 *
 * It binds one UDP socket and one TCP listener per address family on the
 * same port (IPv6 sockets are IPv6-only), feeds the
 * core every datagram, connection and byte, runs its timer from uv_now(),
 * and draws randomness from the OS.  It is the only place, with the other
 * files in src/uv and tools/, where kadmesh touches sockets or the clock. */
#ifndef KM_UV_NODE_H
#define KM_UV_NODE_H

#include <uv.h>

#include "net/node.h"

struct km_uv_node;

/* What the program wants to hear about; every member may be NULL. */
struct km_uv_hooks {
	void (*lookup_done)(void *user, uint64_t lookup_id,
			    const struct km_lookup *lk);
	/* The routing table snapshot to persist; NULL disables saving. */
	void (*save_state)(void *user, const uint8_t *buf, size_t len);
	void (*log)(void *user, enum km_log_level level, const char *msg);
	/* A broadcast message reached this node for the first time. */
	void (*deliver)(void *user, const struct km_message *m);
};

/* Binds UDP and TCP on each of binds[0..nbinds) (one or two addresses, at
 * most one per family, all on one port number; port 0 in binds[0] picks a
 * free one, and cfg->port is then set to it), runs a routing table for
 * each family bound (cfg->families is set; cfg->dht.family stays the
 * default if bound, else becomes binds[0]'s), starts the core with the
 * saved contacts, and returns 0, or a negative UV_E* / KM_ERR_* code with
 * nothing left open. */
int km_uv_node_start(uv_loop_t *loop, const struct km_addr *binds,
		     size_t nbinds, struct km_node_config *cfg,
		     const struct km_contact *saved, size_t nsaved,
		     const struct km_uv_hooks *hooks, void *user,
		     struct km_uv_node **out);

struct km_node *km_uv_node_core(struct km_uv_node *u);
uint16_t km_uv_node_port(const struct km_uv_node *u);

/* Runs the core's timers on the next turn of the loop: for a program that
 * called into the core (km_node_broadcast, say) outside the driver. */
void km_uv_node_kick(struct km_uv_node *u);

/* Sends GOODBYE on every link, saves state, closes every handle, and then
 * calls done (which may be NULL) and frees u. */
void km_uv_node_stop(struct km_uv_node *u, void (*done)(void *user),
		     void *user);

#endif
