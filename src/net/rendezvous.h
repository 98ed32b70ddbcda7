/* Finding a rendezvous (docs/PROTOCOL.md), with no I/O.
 *
 * A private node cannot be dialled and, being read-only (BEP 43), is in no
 * one's routing table.  It dials public nodes itself, so the only pairs
 * that cannot link without help are two private nodes.  Each says what it
 * is: REACH (1) to each neighbour, when the link comes up and whenever its
 * reachability changes.  A neighbour R that hears it keeps a direct link
 * to that private node, so R can coordinate punches to it.  R then sends
 * RENDEZVOUS (a PEER_LIST body of at most KM_RENDEZVOUS_MAX private nodes,
 * each with the endpoint PUNCH_GO would name) to the newly private
 * neighbour, listing its other private neighbours, and tells each of those
 * about the new one.  The connection manager keeps what it hears
 * (connmgr.h) and, when the routing table has no one left to dial, picks a
 * private node; the lower ID of the two sends PUNCH_REQ to that rendezvous,
 * and the punch (punch.h) and the relay fallback (relay.h) run as for
 * `dht-ctl punch`.
 *
 * km_rendezvous owns what our neighbours last heard from us, which of them
 * said they are private, and its counter.  The node tells it when a
 * neighbour comes and goes and what our reachability is, and hands it
 * REACH and RENDEZVOUS frames; frames go out through send, and the private
 * nodes it hears of through learned.  Shared by node_rendezvous.c (the
 * node's side) and tests/unit/test_rendezvous.c. */
#ifndef KM_NET_RENDEZVOUS_H
#define KM_NET_RENDEZVOUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "proto/msg.h"

#define KM_RENDEZVOUS_MAX 16      /* entries in one RENDEZVOUS frame */

struct km_rendezvous_callbacks {
	/* Sends a frame on link conn; false if there is no such link. */
	bool (*send)(void *user, uint64_t conn, uint8_t type,
		     const uint8_t *body, size_t len);
	/* The neighbour on link via can coordinate punches to peer. */
	void (*learned)(void *user, const struct km_peer *peer, uint64_t via,
			km_ms now);
};

struct km_rendezvous_stats {
	unsigned long sent;       /* RENDEZVOUS frames sent */
	size_t private_now;       /* neighbours that said they are private */
};

struct km_rendezvous;

struct km_rendezvous *km_rendezvous_new(const struct km_rendezvous_callbacks *cb,
					void *user);
void km_rendezvous_del(struct km_rendezvous *r); /* NULL is a no-op */

/* A neighbour came up on link conn: its peer as PUNCH_GO names it (port
 * 0: no listening port), and whether the link is relayed (then it cannot
 * be a rendezvous's direct link).  It hears REACH (1) if we are private.
 * Returns 0 or KM_ERR_NOMEM (then it is not tracked, and hears nothing
 * more from us). */
int km_rendezvous_up(struct km_rendezvous *r, uint64_t conn,
		     const struct km_peer *peer, bool relayed);
/* Link conn ended (a neighbour or not). */
void km_rendezvous_gone(struct km_rendezvous *r, uint64_t conn);

/* Our reachability: if it turned to or from private, every neighbour
 * hears REACH. */
void km_rendezvous_set_private(struct km_rendezvous *r, bool private_now);

/* REACH or RENDEZVOUS from the neighbour on link conn.  Returns 0, or
 * KM_ERR_RANGE (REACH other than 0 or 1), KM_ERR_TRUNCATED,
 * KM_ERR_TRAILING, KM_ERR_TOO_MANY or KM_ERR_TYPE for a malformed body:
 * the node closes the link as a protocol error. */
int km_rendezvous_on_frame(struct km_rendezvous *r, uint64_t conn,
			   uint8_t type, const uint8_t *body, size_t len,
			   km_ms now);

struct km_rendezvous_stats km_rendezvous_stats(const struct km_rendezvous *r);

#endif
