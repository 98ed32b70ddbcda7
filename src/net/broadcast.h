/* Broadcast over the overlay: Plumtree (Leitao, Pereira, Rodrigues,
 * "Epidemic Broadcast Trees", SRDS 2007), with no I/O.
 *
 * Every neighbour starts as an eager peer: a new MESSAGE is pushed to it in
 * full.  A node that receives a payload it has already seen answers with
 * PRUNE, and the sender moves it to its lazy set; after a few messages the
 * eager links form a spanning tree and each node receives each payload about
 * once.  Lazy peers are told only the message IDs (IHAVE, batched).  When an
 * IHAVE announces a message whose payload does not arrive within
 * ihave_timeout_ms, the node sends GRAFT to the announcer, which sends the
 * payload and makes the link eager again: that is how the tree repairs itself
 * after a neighbour dies.
 *
 * Neighbours are named by the overlay's link ids (uint64_t).  Frames go out
 * through the send callback; messages reach the application exactly once
 * through deliver.  The seen-cache and the payload cache are bounded in
 * entries and bytes, and entries expire.
 *
 * Two departures from the paper keep control traffic low on dense overlays
 * (degree ~16 with --max-out 8): IHAVE goes to lazy_fanout random lazy peers
 * per message rather than to all of them, and when an eager peer goes down
 * the node at once sends an empty GRAFT ("make this link eager") to
 * repair_grafts random lazy peers, so the tree heals before the next message
 * instead of through IHAVE timeouts.  docs/PROTOCOL.md has the details and
 * the measured figures.
 *
 * Driving it: after any call, km_bcast_tick(b, now) runs what is due and
 * returns the next wake time.  Hop counts: the origin sends hops = 1 and each
 * relay sends the received count + 1, so a delivered message's hops is the
 * number of links it crossed (0 at the origin). */
#ifndef KM_NET_BROADCAST_H
#define KM_NET_BROADCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "net/ident.h"
#include "dht/rng.h"
#include "proto/msg.h"

struct km_bcast_config {
	size_t seen_max;          /* message IDs remembered: 65536 */
	km_ms seen_ttl_ms;        /* how long an ID is remembered: 10 min */
	size_t cache_max_bytes;   /* payloads kept to answer GRAFT: 16 MiB */
	km_ms cache_ttl_ms;       /* how long a payload is kept: 60 s */
	km_ms ihave_timeout_ms;   /* wait for the payload before GRAFT: 1 s */
	km_ms ihave_flush_ms;     /* IHAVE batching delay: 50 ms */
	size_t max_peers;         /* neighbours tracked: 256 */
	size_t missing_max;       /* announced, not yet received IDs: 4096 */
	unsigned lazy_fanout;     /* lazy peers sent each IHAVE: 4; 0 = all */
	unsigned repair_grafts;   /* lazy peers grafted when an eager one
				     goes down: 4 */
	/* Per origin (signed broadcasts): origins remembered with their key,
	 * replay window and token bucket: 4096; messages per second and
	 * burst each origin may send through this node: 50 and 200. */
	size_t origins_max;
	unsigned origin_rate;
	unsigned origin_burst;
	/* First sequence number this node publishes; 0 = random.  The daemon
	 * derives it from the wall clock so that restarts count upwards. */
	uint64_t seq_start;
};

void km_bcast_config_default(struct km_bcast_config *cfg);

struct km_bcast_callbacks {
	/* Sends one frame (a KM_FRAME_* type and its body) to a neighbour. */
	void (*send)(void *user, uint64_t peer, uint8_t type,
		     const uint8_t *body, size_t len);
	/* A message reached this node for the first time. */
	void (*deliver)(void *user, const struct km_message *m);
};

struct km_bcast_stats {
	unsigned long originated;
	unsigned long delivered;     /* handed to the application */
	unsigned long duplicates;    /* payload copies received beyond the first */
	unsigned long relayed;       /* payload copies sent on */
	unsigned long ihave_sent, graft_sent, prune_sent;
	/* Frame bytes (5-byte header included): MESSAGE vs IHAVE/GRAFT/PRUNE. */
	unsigned long payload_bytes_in, control_bytes_in;
	unsigned long payload_bytes_out, control_bytes_out;
	unsigned long dropped;       /* malformed or over a cap */
	unsigned long forged;        /* bad signature, or not the origin's key */
	unsigned long replayed;      /* seq outside the origin's window */
	unsigned long rate_limited;  /* over the origin's token bucket */
	size_t eager, lazy;          /* peers in each set now */
	unsigned long seen_evicted;  /* IDs forgotten early at seen_max */
	size_t seen_now;             /* IDs remembered now */
};

struct km_bcast;

/* ident is the key this node signs its messages with (copied). */
struct km_bcast *km_bcast_new(const struct km_id *self,
			      const struct km_ident *ident,
			      const struct km_bcast_config *cfg,
			      const struct km_bcast_callbacks *cb, void *user,
			      struct km_rng *rng, km_ms now);
void km_bcast_del(struct km_bcast *b); /* NULL is a no-op */

/* A neighbour link came up (eager) or went away.  peer_up returns 0,
 * KM_ERR_FULL (max_peers reached; the link then carries no broadcast) or
 * KM_ERR_NOMEM; a repeated peer_up is a no-op.  Frames from a peer that is
 * not up are still delivered and relayed, but change no link state. */
int km_bcast_peer_up(struct km_bcast *b, uint64_t peer, km_ms now);
void km_bcast_peer_down(struct km_bcast *b, uint64_t peer, km_ms now);

/* True if peer is up and in the eager set (for `peers` and tests). */
bool km_bcast_peer_eager(const struct km_bcast *b, uint64_t peer);

/* Pins origin's key, as learned from an authenticated link.  Returns 0,
 * KM_ERR_AUTH (another key is pinned) or KM_ERR_NOMEM. */
int km_bcast_pin(struct km_bcast *b, const struct km_id *origin,
		 const uint8_t pubkey[static KM_PUBKEY_LEN], km_ms now);

/* Fills m->id (from origin, seq and payload), m->pubkey and m->sig with
 * origin key k, as km_bcast_publish() does; for tests and tools that build
 * MESSAGEs themselves.  Returns 0 or KM_ERR_NOMEM. */
int km_bcast_sign(struct km_message *m, const struct km_ident *k);

/* Originates a message: ID = SHA-1(origin | seq u64 big-endian | payload);
 * seq starts at a random value so that a restarted node does not reuse IDs.
 * Delivers it locally too (hops 0), writes its ID, and returns 0,
 * KM_ERR_TOO_LONG (len > KM_MESSAGE_PAYLOAD_MAX) or KM_ERR_NOMEM. */
int km_bcast_publish(struct km_bcast *b, const uint8_t *payload, size_t len,
		     uint8_t id[static KM_MSG_ID_LEN], km_ms now);

/* A MESSAGE, IHAVE, GRAFT or PRUNE frame from a neighbour.  Returns 0, or a
 * negative KM_ERR_* for a malformed body (the caller then says GOODBYE):
 * KM_ERR_TRUNCATED, KM_ERR_TRAILING, KM_ERR_TOO_LONG, KM_ERR_TOO_MANY (an ID
 * list over KM_MSG_IDS_MAX), KM_ERR_CHECKSUM (a MESSAGE whose ID is not the
 * hash of its origin, seq and payload), KM_ERR_AUTH (a MESSAGE whose
 * signature does not verify, or signed by a key other than the one pinned
 * for its origin: never delivered or relayed), KM_ERR_UNKNOWN_TYPE (not a
 * broadcast frame).  KM_ERR_NOMEM means the frame was dropped. */
int km_bcast_on_frame(struct km_bcast *b, uint64_t peer, uint8_t type,
		      const uint8_t *body, size_t len, km_ms now);

/* True for the frame types km_bcast_on_frame() handles. */
bool km_bcast_handles(uint8_t type);

/* Runs timers (IHAVE flushes, GRAFTs, expiry); returns the next wake time,
 * or 0 if none. */
km_ms km_bcast_tick(struct km_bcast *b, km_ms now);

struct km_bcast_stats km_bcast_stats(const struct km_bcast *b);

#endif
