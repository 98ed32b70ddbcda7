/* Whom we have recently exchanged datagrams with, by IP, so that a query
 * from anyone else can be told apart as unsolicited (issue 13): it reached
 * our UDP port without a NAT mapping of ours to let it in.
 *
 * An address-dependent filtering NAT (RFC 4787; most home routers) lets in
 * datagrams from any port of an IP we sent to, and a mapping stays open
 * while traffic flows either way, so the record is keyed by IP alone and
 * takes every datagram in or out.  It is two generations of a Bloom filter:
 * new entries go into the current one; every KM_CONTACTED_WINDOW_MS the
 * older is cleared and becomes the current one.  An IP is thus remembered
 * for between one and two windows after its last datagram: at least as
 * long as RFC 4787 recommends a mapping to live (REQ-5: no less than
 * 2 min, 5 min recommended; Linux conntrack keeps a UDP stream 120 s, an
 * unanswered one 30 s).
 *
 * Memory is fixed (2 x 512 bytes).  A full filter or a collision makes an
 * IP look contacted when it was not: that costs a proof, never makes a
 * false one.  The hash is keyed, so that no one can aim collisions without
 * knowing the key (and a collision only withholds a proof anyway). */
#ifndef KM_DHT_CONTACTED_H
#define KM_DHT_CONTACTED_H

#include <stdbool.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"

#define KM_CONTACTED_BITS 4096          /* per generation */
#define KM_CONTACTED_HASHES 3
#define KM_CONTACTED_WINDOW_MS KM_MINUTES(5)

/* Embedded in its owner; all fields private. */
struct km_contacted {
	uint64_t bits[2][KM_CONTACTED_BITS / 64];
	unsigned current;         /* index of the generation filled now */
	uint64_t key;
	km_ms rotated_at;
};

void km_contacted_init(struct km_contacted *c, uint64_t key, km_ms now);

/* A datagram went to a, or came from it. */
void km_contacted_note(struct km_contacted *c, const struct km_addr *a,
		       km_ms now);

/* False only if no datagram went to or came from a's IP for at least the
 * last window; true (perhaps wrongly) otherwise. */
bool km_contacted_maybe(struct km_contacted *c, const struct km_addr *a,
			km_ms now);

#endif
