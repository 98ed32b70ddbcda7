/* The connection manager: which overlay links a node keeps, with no I/O.
 *
 * It decides; the node acts.  The node tells it about every TCP link it
 * opens, every HELLO that completes a handshake and every link that ends,
 * and asks it whom to dial next.  The policy:
 *
 *  - Outbound: up to max_out neighbours from the routing table, chosen one
 *    at a time for diversity -- first a /24 (IPv4) or /64 (IPv6) group no
 *    neighbour is in yet, then the bucket (XOR-distance range) with the
 *    fewest outbound neighbours, then at random -- as Bitcoin Core spreads
 *    outbound peers over netgroups and Ethereum's discv4 over buckets.  A
 *    node that failed or left is tried again only after an exponential
 *    backoff with +-50% jitter.
 *  - Inbound: up to max_in.  When full, a newcomer from a /24 group that no
 *    inbound neighbour shares may evict the youngest unprotected neighbour
 *    of the most crowded group; otherwise it is told FULL (the node sends
 *    it a PEER_LIST first, so it can still join).  Neighbours up for
 *    protect_ms or longer are never evicted: a link only grows old by
 *    answering every PING and sending no bad frame.
 *  - One link per node ID.  When two nodes dial each other at once, both
 *    keep the link opened by the lower ID, so they agree without talking.
 *  - At most max_per_ip links (any state) from one IP address; loopback
 *    is exempt unless cap_loopback, since tests run whole networks on
 *    127.0.0.1.
 *  - At most max_per_16 neighbours (in and out together) per /16 (IPv4)
 *    or /32 (IPv6), loopback exempt unless cap_loopback: an attacker with
 *    one provider's block cannot fill the neighbour set.  Over the cap an
 *    inbound link is told FULL and an outbound one only joins.
 *  - Anchors: until anchor_slots outbound neighbours are nodes that have
 *    been in the routing table for anchor_age_ms or longer, such old
 *    nodes are dialled before any younger one, as Bitcoin Core keeps
 *    anchor connections: a flood of fresh Sybil nodes cannot take every
 *    outbound slot.
 *
 *  - Private nodes (not publicly reachable: they cannot be dialled) are
 *    learned from neighbours that keep a link to them and offer to be
 *    their rendezvous (the RENDEZVOUS frame).  When the routing table has
 *    no one left to dial and outbound has room, the node asks such a
 *    rendezvous to coordinate a hole punch (relay as the fallback).  Each
 *    ask backs that node off (30 s, doubling, up to backoff_max_ms), and at
 *    most KM_CM_PRIVATE_MAX such nodes are remembered, each only while the
 *    link to its rendezvous lasts.
 *
 * In a network small enough to fit within the bounds every node dials
 * every other one and the duplicate rule leaves one link per pair: the
 * full mesh. */
#ifndef KM_NET_CONNMGR_H
#define KM_NET_CONNMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "dht/rng.h"
#include "dht/table.h"

struct km_connmgr_config {
	size_t max_out;          /* outbound neighbours: 8 */
	size_t max_in;           /* inbound neighbours: 32 */
	size_t max_per_ip;       /* links from one IP address: 4 */
	bool cap_loopback;       /* apply max_per_ip to 127/8 and ::1: no */
	km_ms backoff_base_ms;   /* first retry delay: 2 s */
	km_ms backoff_max_ms;    /* longest retry delay: 5 min */
	km_ms protect_ms;        /* neighbours this old are not evicted: 60 s */
	km_ms fill_interval_ms;  /* how often to look for candidates: 1 s */
	size_t backoff_max;      /* node IDs remembered with a backoff: 1024 */
	size_t max_per_16;       /* neighbours per /16 (IPv6 /32): 4; 0 = any */
	size_t anchor_slots;     /* outbound slots for old nodes: 2 */
	km_ms anchor_age_ms;     /* "old": in the table this long: 10 min */
};

void km_connmgr_config_default(struct km_connmgr_config *cfg);

#define KM_CM_PRIVATE_MAX 64     /* private nodes remembered */
#define KM_CM_PUNCH_BACKOFF_MS KM_SECONDS(30) /* first wait after an ask */

/* What to do with a link whose HELLO has just arrived. */
enum km_cm_verdict {
	KM_CM_ACCEPT,    /* a neighbour now */
	KM_CM_REPLACE,   /* a neighbour now; close *other (DUPLICATE) */
	KM_CM_EVICT,     /* a neighbour now; close *other (FULL) to make room */
	KM_CM_DUPLICATE, /* close this link (DUPLICATE) */
	KM_CM_FULL,      /* inbound: PEER_LIST, then close this link (FULL) */
	KM_CM_JOIN_ONLY, /* a seed dialled by address, or outbound beyond
			    max_out: take the PEER_LIST, then close it
			    (NORMAL) */
};

struct km_cm_counts {
	size_t in, out;                 /* neighbours now (HELLO done) */
	size_t pending_in, pending_out; /* links still in their handshake */
	unsigned long dials, refused_ip, refused_full, evicted, duplicates;
	unsigned long refused_subnet;   /* links over max_per_16 */
	size_t anchors;                 /* outbound links to old nodes now */
	size_t privates;                /* private nodes known (rendezvous) */
	unsigned long punch_asks;       /* rendezvous asked to punch for us */
};

struct km_connmgr;

/* NULL on allocation failure or max_out + max_in == 0. */
struct km_connmgr *km_connmgr_new(const struct km_id *self,
				  const struct km_connmgr_config *cfg,
				  struct km_rng *rng);
void km_connmgr_del(struct km_connmgr *cm); /* NULL is a no-op */

/* A link was opened: an accepted connection (id NULL), a dial that
 * km_connmgr_next_dial() chose, or a bootstrap dial (id NULL).  Returns 0,
 * KM_ERR_FULL (inbound over the per-IP cap: close it without a word) or
 * KM_ERR_NOMEM. */
int km_connmgr_opened(struct km_connmgr *cm, uint64_t conn,
		      const struct km_addr *remote, bool outbound,
		      const struct km_id *id, km_ms now);

/* The link's HELLO arrived from node id.  *other is set for REPLACE and
 * EVICT.  A link the manager does not know gets KM_CM_DUPLICATE. */
enum km_cm_verdict km_connmgr_hello(struct km_connmgr *cm, uint64_t conn,
				    const struct km_id *id, km_ms now,
				    uint64_t *other);

/* The link ended, for whatever reason.  Returns true if it was a
 * neighbour.  An outbound link that never came up, or a neighbour lost
 * within protect_ms, puts its node ID on backoff. */
bool km_connmgr_closed(struct km_connmgr *cm, uint64_t conn, km_ms now);

/* The next node to dial, if fewer than max_out outbound links are open or
 * pending and the table offers one that is not linked and not backing off.
 * Looks at the table at most every fill_interval_ms, or at once after a
 * neighbour was lost. */
bool km_connmgr_next_dial(struct km_connmgr *cm, const struct km_table *t,
			  km_ms now, struct km_contact *out);

/* Neighbour link `via` keeps a link to private node c and can be its
 * rendezvous.  A node already known is updated; at the cap, the entry
 * advertised longest ago makes room. */
void km_connmgr_private_add(struct km_connmgr *cm, const struct km_contact *c,
			    uint64_t via, km_ms now);

/* A private node to punch to and the rendezvous link to ask, when
 * outbound has room (asks still unanswered count as pending), the last
 * next_dial() found no one in the table, and the node is neither linked
 * nor backing off.  With higher_only, only nodes whose ID is above ours
 * (two private nodes: the lower ID asks, the other waits for PUNCH_GO).
 * The pick is backed off before it is returned. */
bool km_connmgr_next_punch(struct km_connmgr *cm, bool higher_only, km_ms now,
			   struct km_contact *out, uint64_t *via);

/* When next_dial() is worth calling again; 0 when outbound is full. */
km_ms km_connmgr_wake(const struct km_connmgr *cm);

/* True if conn is a neighbour (its HELLO was accepted). */
bool km_connmgr_is_neighbour(const struct km_connmgr *cm, uint64_t conn);

struct km_cm_counts km_connmgr_counts(const struct km_connmgr *cm);

/* The delay before retrying a node after `failures` failures in a row:
 * base * 2^(failures-1), capped, then scaled by a jitter factor in
 * [0.5, 1.5).  Exposed for tests. */
km_ms km_connmgr_backoff(const struct km_connmgr_config *cfg, int failures,
			 struct km_rng *rng);

#endif
