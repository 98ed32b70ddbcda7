/* Dial-back checks: is our listening port reachable?  With no I/O.
 *
 * DIAL_ME (nonce) asks a neighbour to connect to our listening port at the
 * IP it sees us at; the first frame on that connection is DIALBACK (nonce),
 * and the dialler tells us how it went with DIAL_RESULT (nonce, result).
 * We ask up to KM_DIALBACK_ASK neighbours, from distinct /16s first.  One
 * DIALBACK carrying our nonce proves we are reachable.  One dial that did
 * not arrive proves nothing (the dialler may be busy, a cap may refuse it,
 * a packet may be lost): only failed dials (refused, timed out) from two
 * distinct neighbours, in distinct /16s where the askable ones span
 * several, make us private; anything less decides nothing.  Any neighbour
 * can dial, even one behind a NAT (it reaches a public node), but only one
 * from the network's scope proves anything (see km_scope in nat.h), and
 * only links up for a second are asked: a link closed at once as a
 * duplicate of another would lose the request.
 *
 * We dial back for others too: only to the asker's own IP (never a third
 * party), at most KM_DIALERS_MAX at once, each for at most 5 s.  A node
 * found unreachable turns read-only (BEP 43) and keeps its NAT mappings
 * open with UDP pings to a few outbound neighbours, its rendezvous points.
 * Checks repeat with a backoff, 1 min doubling to 10 min, so that no
 * verdict stands unchecked for long.  Unsolicited traffic -- an inbound
 * link, or a KRPC query from an IP our DHT had not talked to -- proves us
 * public between checks.
 *
 * km_dialback owns the check running now, the dials it makes for others
 * and the counters; its verdicts go into the node's km_nat (nat.h), which
 * also holds the external address votes.  The node hands it the three
 * frames (after its own checks of the link's state), the fate of the
 * connections it dials, and unsolicited traffic, and runs km_dialback_tick.
 * It sees the node's neighbours through next_neighbour, and acts through
 * the other callbacks.  Shared by node_nat.c (the node's side) and
 * tests/unit/test_dialback.c. */
#ifndef KM_NET_DIALBACK_H
#define KM_NET_DIALBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "dht/rng.h"
#include "net/nat.h"
#include "proto/ms.h"

#define KM_DIALBACK_ASK 3    /* neighbours asked in one check */
#define KM_DIALERS_MAX 4     /* dials for others at once */
/* Inbound connections let in over the caps while a check runs, until their
 * first frame shows whether they are the dial-back. */
#define KM_PROBES_MAX 4

struct km_dialback_config {
	uint16_t port;           /* our listening port; 0: no checks */
	km_ms timeout_ms;        /* a check's verdict is due after this */
};

/* A neighbour, or the link a frame came on, as the checks see it. */
struct km_dialback_peer {
	uint64_t conn;
	struct km_addr remote;   /* its TCP address */
	struct km_addr seen;     /* where it sees us (its HELLO), with our
				    port; family KM_AF_NONE: it did not say */
	uint16_t listen_port;    /* its; 0: none */
	bool outbound;
	bool relayed;
	km_ms up_since;
};

struct km_dialback_callbacks {
	/* Sends a frame on link conn; false if there is no such link. */
	bool (*send)(void *user, uint64_t conn, uint8_t type,
		     const uint8_t *body, size_t len);
	/* The node's neighbours, in the order of their links: *cursor 0
	 * starts; fills out and moves *cursor on; false after the last. */
	bool (*next_neighbour)(void *user, uint64_t *cursor,
			       struct km_dialback_peer *out);
	/* A dial for a neighbour: a fresh connection id (not a link), then
	 * the TCP connect, answered with km_dialback_connected() or
	 * km_dialback_closed(), maybe from inside connect itself. */
	uint64_t (*new_conn)(void *user);
	void (*connect)(void *user, uint64_t conn, const struct km_addr *to);
	/* Bytes on, and the end of, such a connection. */
	void (*raw_send)(void *user, uint64_t conn, const uint8_t *buf,
			 size_t len);
	void (*close)(void *user, uint64_t conn);
	/* A verdict went into km_nat (changed: our reachability differs from
	 * before): the node turns read-only or back, and logs a change. */
	void (*verdict)(void *user, enum km_reach r, bool changed,
			const char *why);
	/* A UDP ping to addr, to keep our NAT's mapping open. */
	void (*keepalive)(void *user, const struct km_addr *addr, km_ms now);
	/* A debug line; may be NULL. */
	void (*log)(void *user, const char *msg);
};

struct km_dialback_stats {
	unsigned long asked;      /* DIAL_ME sent */
	unsigned long ok;         /* our checks that found us reachable */
	unsigned long failed;     /* ... and unreachable */
	unsigned long served;     /* connections made for others */
	unsigned long busy;       /* DIAL_ME answered busy (at the cap) */
	unsigned long undecided;  /* our checks with too little evidence */
	unsigned long results[5]; /* DIAL_RESULTs heard, by result 1-4 */
	unsigned long probes;     /* connections let in over the caps */
	unsigned long inbound_proofs; /* unsolicited inbound made us public */
	unsigned long krpc_proofs;    /* ... unsolicited KRPC queries */
	unsigned long keepalives;     /* UDP pings to keep mappings open */
};

struct km_dialback;

/* The first check is due at now.  Returns NULL when out of memory. */
struct km_dialback *km_dialback_new(const struct km_dialback_config *cfg,
				    const struct km_dialback_callbacks *cb,
				    void *user, struct km_nat *nat,
				    struct km_rng *rng, km_ms now);
void km_dialback_del(struct km_dialback *d); /* NULL is a no-op */

/* DIAL_ME or DIAL_RESULT from a neighbour, or DIALBACK as the first frame
 * of an inbound connection, on from's link; the node has checked that the
 * link may carry it.  Returns 0, or KM_ERR_TRUNCATED or KM_ERR_TRAILING
 * for a malformed body: the node closes the link as a protocol error.
 * After a DIALBACK the node closes the link normally: its work is done. */
int km_dialback_on_frame(struct km_dialback *d,
			 const struct km_dialback_peer *from, uint8_t type,
			 const uint8_t *body, size_t len, km_ms now);

/* A connection we dialled for a neighbour connected (returns false if conn
 * is not one of those), or closed before it did. */
bool km_dialback_connected(struct km_dialback *d, uint64_t conn);
void km_dialback_closed(struct km_dialback *d, uint64_t conn);

/* True while a check waits for its dial-back, and fewer than
 * KM_PROBES_MAX connections are let in over the caps for it. */
bool km_dialback_expecting(const struct km_dialback *d);
/* Such a connection was let in, or has ended. */
void km_dialback_probe_opened(struct km_dialback *d);
void km_dialback_probe_closed(struct km_dialback *d);

/* Unsolicited traffic: an authenticated inbound link we did nothing to
 * bring about, from `from`, that reached us at `at`; or a KRPC query from
 * an IP our DHT had not talked to (dht/contacted.h), which reached our UDP
 * port.  Either proves us public if it came from the network's scope. */
void km_dialback_inbound(struct km_dialback *d, const struct km_addr *from,
			 const struct km_addr *at);
void km_dialback_unsolicited(struct km_dialback *d, const struct km_addr *from);

/* Starts, asks for, and ends checks, times out dials, sends keepalives;
 * returns the next wake time (0: none). */
km_ms km_dialback_tick(struct km_dialback *d, km_ms now);

struct km_dialback_stats km_dialback_stats(const struct km_dialback *d);

#endif
