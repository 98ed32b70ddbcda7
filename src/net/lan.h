/* LAN discovery with no I/O, in the style of BEP 14 (Local Service
 * Discovery): nodes announce themselves to a multicast group and contact
 * every node of their network they hear, so a LAN forms a network with no
 * bootstrap address and no internet.
 *
 * The announce is one small HTTP-like datagram (layout in docs/PROTOCOL.md):
 *
 *   KM-SEARCH * HTTP/1.1\r\n
 *   Host: 239.192.152.143:6771\r\n
 *   Port: 6881\r\n
 *   Network: 6b6d3031\r\n
 *   Node: <40 hex digits>\r\n
 *   \r\n
 *
 * Announces go out at start and then at doubling intervals up to a minute;
 * hearing a node for the first time also brings the next announce forward
 * (at most one a second), so a node that starts later is answered quickly.
 * A node heard again is reported at most once per KM_LAN_RECONTACT_MS, and
 * the memory of who was heard is capped. */
#ifndef KM_NET_LAN_H
#define KM_NET_LAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/addr.h"
#include "proto/ms.h"

#define KM_LAN_GROUP4 "239.192.152.143"
#define KM_LAN_PORT 6771
#define KM_LAN_MSG_MAX 256
#define KM_LAN_SEEN_MAX 64
#define KM_LAN_FIRST_MS KM_SECONDS(1)
#define KM_LAN_MAX_MS KM_MINUTES(1)
#define KM_LAN_ANSWER_GAP_MS KM_SECONDS(1)
#define KM_LAN_RECONTACT_MS KM_SECONDS(30)

struct km_lan_announce {
	uint32_t network;
	struct km_id id;
	uint16_t port;    /* UDP and TCP port of the node */
};

/* Returns the length written or KM_ERR_BUF. */
int km_lan_encode(char *out, size_t cap, const struct km_lan_announce *a);
/* Returns 0, or KM_ERR_SYNTAX (not an announce, a bad header, a missing
 * Port/Network/Node) or KM_ERR_TOO_LONG (over KM_LAN_MSG_MAX bytes). */
int km_lan_decode(const uint8_t *buf, size_t len, struct km_lan_announce *a);

struct km_lan_seen {
	struct km_id id;
	struct km_addr addr;  /* family KM_AF_NONE: a free slot */
	km_ms reported;
};

struct km_lan_stats {
	unsigned long sent, received, malformed, foreign, reported;
};

/* Embedded in its owner; fields private apart from stats. */
struct km_lan {
	struct km_lan_announce self;
	km_ms next;           /* next announce */
	km_ms interval;
	km_ms last_sent;
	struct km_lan_seen seen[KM_LAN_SEEN_MAX];
	struct km_lan_stats stats;
};

void km_lan_init(struct km_lan *l, const struct km_lan_announce *self,
		 km_ms now);

/* If an announce is due, writes it to out and returns its length; else
 * returns 0.  *wake says when to call again. */
int km_lan_tick(struct km_lan *l, km_ms now, char *out, size_t cap,
		km_ms *wake);

/* A datagram from the group.  Returns true and writes the node's address
 * (from's IP, the announced port) when it is a node of our network to
 * contact now. */
bool km_lan_recv(struct km_lan *l, const struct km_addr *from,
		 const uint8_t *buf, size_t len, km_ms now,
		 struct km_addr *contact);

#endif
