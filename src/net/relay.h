/* Relayed links, with no I/O: when punching fails (a symmetric NAT picks a
 * new port for each destination), a rendezvous R carries the link's bytes.
 *
 * A sends RELAY_REQ (B's ID) to R.  R, within its limits, opens a circuit
 * and sends RELAY_OPEN to both, each naming the other (a one-entry
 * PEER_LIST body).  Each side then runs an ordinary link over the circuit:
 * its bytes travel as RELAY_DATA (peer ID | bytes) on the link to R, which
 * forwards them with the sender's ID.  The side with the lower node ID
 * acts as the dialler and sends HELLO first.  RELAY_CLOSE (peer ID) ends
 * it, from either side or from R.  Like libp2p's circuit relay v2, R caps
 * the number of circuits, their duration, their bytes and their rate, and
 * cuts a circuit that exceeds them.
 *
 * km_relay owns the circuits this node relays as R, and the counters of
 * both roles.  The node hands it every relay frame from a neighbour
 * (km_relay_on_frame) and tells it when a link ends; it names links by the
 * node's conn ids and asks the node, through callbacks, for a neighbour by
 * ID and for what to do with the relayed links that are the node's own.
 * Frames go out through the send callback.  Shared by node_relay.c (the
 * node's side) and tests/unit/test_relay.c. */
#ifndef KM_NET_RELAY_H
#define KM_NET_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "proto/msg.h"

#define KM_RELAY_CIRCUITS_MAX 4
#define KM_RELAY_DURATION_MS KM_MINUTES(10)
#define KM_RELAY_BYTES_MAX (4u << 20)     /* per circuit, both ways */
#define KM_RELAY_RATE_BYTES (64u << 10)   /* per circuit per second */
/* RELAY_DATA carries at most this much of a relayed link's bytes. */
#define KM_RELAY_CHUNK (16 * 1024)

struct km_relay_callbacks {
	/* Sends a frame on link conn; false if there is no such link. */
	bool (*send)(void *user, uint64_t conn, uint8_t type,
		     const uint8_t *body, size_t len);
	/* The neighbour link to id: its conn, and its peer as RELAY_OPEN
	 * names it (ID, IP we see, listening port).  False: none. */
	bool (*neighbour)(void *user, const struct km_id *id, uint64_t *conn,
			  struct km_peer *peer);
	/* RELAY_OPEN from R (link via): open our relayed link to peer.
	 * Returns 0 when opened, 1 when there is nothing to do (linked
	 * already, or peer is us), and <0 when we cannot (R hears
	 * RELAY_CLOSE). */
	int (*open)(void *user, uint64_t via, const struct km_peer *peer,
		    km_ms now);
	/* Bytes for our relayed link to id through via; false if we have no
	 * such link (the frame is then one to forward as R). */
	bool (*data)(void *user, uint64_t via, const struct km_id *id,
		     const uint8_t *buf, size_t len, km_ms now);
	/* RELAY_CLOSE for our relayed link to id through via, if any. */
	void (*closed)(void *user, uint64_t via, const struct km_id *id,
		       km_ms now);
};

struct km_relay_stats {
	unsigned long served;    /* circuits opened as R */
	unsigned long refused;   /* ... refused at the circuit cap */
	unsigned long cut;       /* ... cut at a limit */
	unsigned long bytes;     /* bytes relayed for others */
	unsigned long opened;    /* our links that went via a relay */
	size_t circuits;         /* circuits we relay now (gauge) */
};

struct km_relay;

struct km_relay *km_relay_new(const struct km_relay_callbacks *cb,
			      void *user);
void km_relay_del(struct km_relay *r); /* NULL is a no-op */

/* A relay frame (RELAY_REQ to RELAY_CLOSE) from a neighbour on link conn,
 * whose peer is from (as RELAY_OPEN would name it).  Returns 0, or
 * KM_ERR_TRUNCATED, KM_ERR_TRAILING, KM_ERR_TOO_MANY or KM_ERR_TYPE for a
 * malformed body: the node closes the link as a protocol error. */
int km_relay_on_frame(struct km_relay *r, uint64_t conn,
		      const struct km_peer *from, uint8_t type,
		      const uint8_t *body, size_t len, km_ms now);

/* Link conn ended: the circuits through it end, and the other side of
 * each hears RELAY_CLOSE. */
void km_relay_link_gone(struct km_relay *r, uint64_t conn);

/* As an end: asks R (link via) to relay us to id. */
void km_relay_ask(struct km_relay *r, uint64_t via, const struct km_id *id);
/* Sends our relayed link's bytes to id through via, as RELAY_DATA. */
void km_relay_write(struct km_relay *r, uint64_t via, const struct km_id *id,
		    const uint8_t *buf, size_t len);
/* Ends our relayed link to id through via (RELAY_CLOSE). */
void km_relay_end(struct km_relay *r, uint64_t via, const struct km_id *id);

struct km_relay_stats km_relay_stats(const struct km_relay *r);

#endif
