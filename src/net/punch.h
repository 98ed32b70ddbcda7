/* Hole punching through a rendezvous neighbour R, with no I/O
 * (docs/PROTOCOL.md).
 *
 * A sends PUNCH_REQ (B's node ID) to its neighbours.  A neighbour R with a
 * link to B sends PUNCH_GO to both at once, each naming the other: node ID
 * and external endpoint (the IP R sees the link come from, and the HELLO's
 * listening port, which a port-preserving NAT keeps).  Each side then
 * sends a UDP probe (a KRPC find_node, which opens its NAT's UDP mapping)
 * and dials the other from its own listening port, so that the two SYNs
 * cross in the NATs and meet as a TCP simultaneous open.  A failed attempt
 * is retried after 1, 2, 4 ... s until KM_PUNCH_TIMEOUT_MS; then the punch
 * gives up and the node asks R for a relay (relay.h).
 *
 * km_punch owns the punches running now and the punch counters.  The node
 * hands it PUNCH_REQ and PUNCH_GO from neighbours, tells it when a link
 * comes up or ends, and runs km_punch_tick(); through the callbacks it
 * sends frames, dials (link, UDP probe and simultaneous open are the
 * node's), and hears when a punch gives up.  Shared by node_punch.c (the
 * node's side) and tests/unit/test_punch.c. */
#ifndef KM_NET_PUNCH_H
#define KM_NET_PUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "proto/msg.h"

#define KM_PUNCHES_MAX 4           /* punches running at once */
#define KM_PUNCH_TIMEOUT_MS KM_SECONDS(12)
#define KM_PUNCH_RETRY_MS KM_SECONDS(1)
/* A relayed link asks its relay for a punch this often, to become direct
 * (the node keeps the time on the link). */
#define KM_PUNCH_UPGRADE_MS KM_SECONDS(15)

struct km_punch_callbacks {
	/* Sends a frame on link conn; false if there is no such link. */
	bool (*send)(void *user, uint64_t conn, uint8_t type,
		     const uint8_t *body, size_t len);
	/* The first authenticated link to id, if it is a neighbour's: its
	 * conn, and its peer as PUNCH_GO names it (ID, IP we see, listening
	 * port; port 0: it has none).  False: no such neighbour. */
	bool (*neighbour)(void *user, const struct km_id *id, uint64_t *conn,
			  struct km_peer *peer);
	/* Whether a PUNCH_GO naming id should start a punch: the node can
	 * punch, id is not us, and no direct link to id is up. */
	bool (*wanted)(void *user, const struct km_id *id);
	/* One attempt: a new outbound link to id at addr, and the UDP probe
	 * to addr.  Returns the link's conn, or 0 if no link slot was free
	 * (the probe still goes; the attempt is retried). */
	uint64_t (*dial)(void *user, const struct km_id *id,
			 const struct km_addr *addr, km_ms now);
	/* Then the simultaneous open on that link.  It may close the link at
	 * once (km_punch_link_gone): the punch knows its conn by then. */
	void (*connect)(void *user, uint64_t conn, const struct km_addr *addr);
	/* The punch to id, started by a PUNCH_GO on link rendezvous, gave
	 * up: the node asks that rendezvous for a relay. */
	void (*gave_up)(void *user, uint64_t rendezvous, const struct km_id *id,
			km_ms now);
	/* A debug line; may be NULL. */
	void (*log)(void *user, const char *msg);
};

struct km_punch_stats {
	unsigned long coordinated; /* as rendezvous: PUNCH_GO pairs */
	unsigned long ok, failed;
	unsigned long attempts;    /* TCP simultaneous opens tried */
	unsigned long upgrades;    /* punches asked for a relayed link */
	unsigned long asked;       /* ... for a private node, on our own accord */
	km_ms last_punch_ms;       /* PUNCH_GO to punched link up, last */
	km_ms last_relay_ms;       /* PUNCH_GO to relayed link up, last */
};

struct km_punch;

struct km_punch *km_punch_new(const struct km_punch_callbacks *cb,
			      void *user);
void km_punch_del(struct km_punch *p); /* NULL is a no-op */

/* PUNCH_REQ or PUNCH_GO from a neighbour on link conn, whose peer is from
 * (as PUNCH_GO would name it).  Returns 0, or KM_ERR_TRUNCATED,
 * KM_ERR_TRAILING, KM_ERR_TOO_MANY or KM_ERR_TYPE for a malformed body:
 * the node closes the link as a protocol error. */
int km_punch_on_frame(struct km_punch *p, uint64_t conn,
		      const struct km_peer *from, uint8_t type,
		      const uint8_t *body, size_t len, km_ms now);

/* Why the node asks for a punch, for the counters. */
enum km_punch_why {
	KM_PUNCH_OPERATOR, /* dht-ctl punch: not counted */
	KM_PUNCH_UPGRADE,  /* to replace a relayed link: upgrades */
	KM_PUNCH_PRIVATE,  /* to a private node the connection manager
			    * wants: asked */
};

/* Asks the neighbour on link via to be the rendezvous for a punch to id
 * (PUNCH_REQ). */
void km_punch_ask(struct km_punch *p, uint64_t via, const struct km_id *id,
		  enum km_punch_why why);

/* Whether a punch to id is running. */
bool km_punch_running(const struct km_punch *p, const struct km_id *id);

/* A link to id became a neighbour.  Returns true if a punch made it (then
 * the link counts as punched).  A relayed link only ends the wait that
 * the last punch to give up started. */
bool km_punch_link_up(struct km_punch *p, uint64_t conn, const struct km_id *id,
		      bool outbound, bool relayed, km_ms now);
/* Link conn ended: a punch attempt on it failed, and is retried later. */
void km_punch_link_gone(struct km_punch *p, uint64_t conn, km_ms now);

/* Retries and gives up what is due; returns the next wake time (0: none). */
km_ms km_punch_tick(struct km_punch *p, km_ms now);

struct km_punch_stats km_punch_stats(const struct km_punch *p);

#endif
