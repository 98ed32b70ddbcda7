/* A node's identity as it travels on the wire: a 160-bit ID and an address.
 *
 * The XOR metric and everything else Kademlia does with IDs lives in
 * dht/id.h; proto only needs the bytes. */
#ifndef KM_PROTO_NODE_H
#define KM_PROTO_NODE_H

#include <stdint.h>

#include "proto/addr.h"

#define KM_ID_LEN 20
#define KM_ID_BITS 160
#define KM_ID_HEXLEN 40

struct km_id {
	uint8_t b[KM_ID_LEN];
};

/* A node we can talk to: its ID and its UDP address. */
struct km_contact {
	struct km_id id;
	struct km_addr addr;
};

#endif
