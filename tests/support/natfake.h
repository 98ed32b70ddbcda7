/* The fake node that the NAT module tests (test_relay.c, test_punch.c)
 * drive their module against: links 1..4 are neighbours whose peers have
 * IDs 0x11, 0x22, 0x33, 0x44 and listen at 10.0.0.<link>:7000+<link>, and
 * every frame the module sends is recorded. */
#ifndef KM_TEST_NATFAKE_H
#define KM_TEST_NATFAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "proto/msg.h"

#define NATFAKE_SENT_MAX 512
#define NATFAKE_BODY_KEPT 64   /* the start of each body: its ID, or a
				* one-entry PEER_LIST */

struct natfake_sent {
	uint64_t conn;
	uint8_t type;
	uint8_t body[NATFAKE_BODY_KEPT];
	size_t len;            /* the whole body's */
};

struct natfake {
	struct natfake_sent sent[NATFAKE_SENT_MAX];
	int nsent;             /* frames past NATFAKE_SENT_MAX are counted only */
	uint64_t gone_link;    /* sending on it fails, as on a closed link */
	uint64_t no_port;      /* its peer has no listening port */
};

extern struct natfake natfake;

void natfake_reset(void);
struct km_id natfake_id(uint64_t link);
struct km_peer natfake_peer(uint64_t link);
/* The modules' send and neighbour callbacks. */
bool natfake_send(void *user, uint64_t conn, uint8_t type,
		  const uint8_t *body, size_t len);
bool natfake_neighbour(void *user, const struct km_id *id, uint64_t *conn,
		       struct km_peer *peer);
/* The last frame of type sent on conn, or NULL. */
const struct natfake_sent *natfake_sent_to(uint64_t conn, uint8_t type);
/* Whether s's body starts with the ID of link's peer. */
bool natfake_names(const struct natfake_sent *s, uint64_t link);
/* The one entry of the PEER_LIST body of the last frame of type on conn;
 * false if there is none. */
bool natfake_entry(uint64_t conn, uint8_t type, struct km_peer *out);

#endif
