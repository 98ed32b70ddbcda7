/* What the files that wire modules into the node offer node.c and
 * link.c: their constructors, the handlers in link.c's frame
 * route table, the hooks in its lists of who hears about a link's life,
 * and their timers.  Shared by node.c, link.c and those files
 * (node_neighbours.c, node_nat.c, node_punch.c, node_relay.c,
 * node_rendezvous.c), which call each other only through what is here. */
#ifndef KM_NET_NODE_HOOKS_H
#define KM_NET_NODE_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "proto/frame.h"

struct km_node;
struct link;

/* node_neighbours.c: the connection manager and broadcast, wired in. */
int node_neighbours_init(struct km_node *n, km_ms now);
void node_neighbours_free(struct km_node *n);
km_ms node_neighbours_tick(struct km_node *n, km_ms now);
/* These three hear of links through link.c's lists. */
void node_neighbours_up(struct km_node *n, struct link *l, km_ms now);
void node_neighbours_pin(struct km_node *n, struct link *l, km_ms now);
void node_neighbours_lost(struct km_node *n, struct link *l, km_ms now);

/* node_nat.c: external address votes, and the node's side of km_dialback
 * (dialback.h). */
void node_nat_observed(struct km_node *n, const struct km_addr *from,
		       const struct km_addr *seen, km_ms now);
void node_nat_hello_observed(struct km_node *n, struct link *l, km_ms now);
int node_nat_init(struct km_node *n, km_ms now);
bool node_nat_on_frame(struct km_node *n, struct link *l,
		       const struct km_frame *f, km_ms now);
bool node_nat_tcp_connected(struct km_node *n, uint64_t conn);
void node_nat_tcp_closed(struct km_node *n, uint64_t conn);
/* True while a check waits for its dial-back (caps yield to probes). */
bool node_nat_expecting(const struct km_node *n);
/* An authenticated inbound link: unsolicited, it proves us public. */
void node_nat_inbound(struct km_node *n, struct link *l, km_ms now);
/* A KRPC query from an IP our DHT had not talked to: our UDP port is open. */
void node_nat_unsolicited(struct km_node *n, const struct km_addr *from);
km_ms node_nat_tick(struct km_node *n, km_ms now);

/* node_punch.c: the node's side of km_punch (punch.h). */
int node_punch_init(struct km_node *n);
bool node_punch_on_frame(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now);
void node_punch_link_up(struct km_node *n, struct link *l, km_ms now);
void node_punch_hello(struct km_node *n, struct link *l, km_ms now);
void node_punch_link_gone(struct km_node *n, struct link *l, km_ms now);
km_ms node_punch_tick(struct km_node *n, km_ms now);

/* node_rendezvous.c: the node's side of km_rendezvous (rendezvous.h). */
int node_rendezvous_init(struct km_node *n);
void node_rendezvous_up(struct km_node *n, struct link *l, km_ms now);
void node_rendezvous_gone(struct km_node *n, struct link *l, km_ms now);
void node_rendezvous_tick(struct km_node *n);
bool node_rendezvous_on_frame(struct km_node *n, struct link *l,
			      const struct km_frame *f, km_ms now);
void node_rendezvous_fill(struct km_node *n, km_ms now);

/* node_relay.c: the node's side of km_relay (relay.h). */
int node_relay_init(struct km_node *n);
bool node_relay_on_frame(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now);
void node_relay_ask(struct km_node *n, uint64_t rendezvous,
		    const struct km_id *id);
void node_relay_write(struct km_node *n, struct link *l, const uint8_t *buf,
		      size_t len);
void node_relay_close(struct km_node *n, struct link *l);
void node_relay_link_gone(struct km_node *n, struct link *l, km_ms now);

#endif
