/* LAN discovery on a libuv loop: the multicast socket and timer that drive
 * a km_lan (lan.h) for a running km_uv_node.  Nodes heard on the LAN are
 * handed to the node's DHT to verify (km_dht_ping_addr); once they answer
 * they are ordinary contacts, and the connection manager links to them. */
#ifndef KM_UV_LAN_H
#define KM_UV_LAN_H

#include <uv.h>

#include "uv/node.h"

struct km_uv_lan;

/* Binds KM_LAN_PORT (shared with other nodes on the host), joins
 * KM_LAN_GROUP4 and starts announcing.  Returns 0 or a negative UV_E*
 * code with nothing left open. */
int km_uv_lan_start(uv_loop_t *loop, struct km_uv_node *node,
		    struct km_uv_lan **out);

/* Closes the socket and timer; frees l once they are closed.  NULL is a
 * no-op.  Call before stopping the node. */
void km_uv_lan_stop(struct km_uv_lan *l);

/* Tells the node's NAT logic (nat.h) the host's interface addresses. */
void km_uv_nat_learn_local(struct km_uv_node *node);

#endif
