/* What a node knows of each broadcast origin (docs/PROTOCOL.md, *Broadcast*):
 * its Ed25519 key, pinned on first use; the sequence numbers it has
 * accepted, as the top one and a window of the 64 below it; and its token
 * bucket.  Bounded: at max entries the origin heard from least recently is
 * forgotten, pin, window and bucket together.  Owned by km_bcast
 * (broadcast.c); no I/O. */
#ifndef KM_NET_ORIGINS_H
#define KM_NET_ORIGINS_H

#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "proto/msg.h"

struct km_origins_config {
	size_t max;          /* origins remembered */
	unsigned rate;       /* messages a second per origin, sustained */
	unsigned burst;      /* ... and in a burst */
};

enum km_origin_verdict {
	KM_ORIGIN_OK,
	KM_ORIGIN_FORGED,       /* not the pinned key, or a bad signature */
	KM_ORIGIN_REPLAYED,     /* seq at or below the window */
	KM_ORIGIN_RATE_LIMITED, /* over the origin's bucket */
	KM_ORIGIN_NOMEM,
};

struct km_origins;

struct km_origins *km_origins_new(const struct km_origins_config *cfg);
void km_origins_del(struct km_origins *os); /* NULL is a no-op */

/* Pins pubkey for origin.  Returns 0, KM_ERR_AUTH (another key is pinned)
 * or KM_ERR_NOMEM. */
int km_origins_pin(struct km_origins *os, const struct km_id *origin,
		   const uint8_t pubkey[static KM_PUBKEY_LEN], km_ms now);

/* Checks m: its key against the pin, its signature over tbs[0..tbs_len),
 * then its sequence number and the origin's rate.  Only an accepted
 * message pins the key, marks the sequence number and spends a token. */
enum km_origin_verdict km_origins_check(struct km_origins *os,
					const struct km_message *m,
					const uint8_t *tbs, size_t tbs_len,
					km_ms now);

#endif
