/* The node's core: struct km_node and struct link, node.c's helpers and
 * link.c's link API.  Shared by node.c and link.c, and by the
 * files that wire modules into the node (node_neighbours.c, node_nat.c,
 * node_punch.c, node_relay.c, node_rendezvous.c), which act on links.
 * What those files offer back is in node_hooks.h. */
#ifndef KM_NET_NODE_INTERNAL_H
#define KM_NET_NODE_INTERNAL_H

#include <uthash.h>

#include "net/broadcast.h"
#include "net/connmgr.h"
#include "net/dialback.h"
#include "net/nat.h"
#include "net/node.h"
#include "net/node_hooks.h"
#include "net/pins.h"
#include "net/punch.h"
#include "net/relay.h"
#include "net/rendezvous.h"
#include "proto/frame.h"
#include "proto/msg.h"

enum link_state {
	LINK_CONNECTING, /* outbound, TCP connect in progress */
	LINK_HELLO_WAIT, /* waiting for the peer's HELLO */
	LINK_AUTH_WAIT,  /* HELLO in, our AUTH out, waiting for the peer's */
	LINK_UP,         /* HELLO and AUTH exchanged: authenticated */
};

struct link {
	uint64_t conn;
	bool outbound;
	int bootstrap;            /* index into bootstrap[], or -1 */
	struct km_addr remote;
	enum link_state state;
	struct km_hello hello;    /* the peer's, from LINK_AUTH_WAIT on */
	uint8_t nonce[KM_NONCE_LEN]; /* our challenge on this link */
	struct km_frame_decoder dec;
	km_ms deadline;           /* handshake must finish by then */
	/* Neighbours (see connmgr.h) stay up and are pinged. */
	bool neighbour;
	bool join_only;           /* close once the PEER_LIST is in */
	km_ms up_since;
	km_ms next_ping;
	km_ms ping_sent;
	uint64_t ping_nonce;
	int pings_unanswered;
	uint32_t rtt_ms;          /* last PING's round trip; 0 = none yet */
	uint64_t bytes_in, bytes_out, frames_in, frames_out;
	bool punched;             /* opened by hole punching (punch.h) */
	bool probe;               /* let in over the caps during a check */
	uint64_t relay_via;       /* relayed: the conn of the link to R, or 0 */
	struct km_id relay_peer;  /* relayed: the peer's ID, as R knows it */
	km_ms next_upgrade;       /* relayed: next punch to replace it */
	UT_hash_handle hh;
};

struct bootstrap {
	struct km_addr addr;
	int attempts;
	km_ms next_try;           /* 0 = not scheduled */
	bool in_progress;
};

/* One address family's DHT; the km_dht callbacks get this as user, so
 * that lookup ids can be told apart by family. */
struct node_family {
	struct km_node *n;
	struct km_dht *dht;       /* NULL: the node does not run this family */
	unsigned index;           /* 0 IPv4, 1 IPv6 */
};

struct km_node {
	struct km_node_config cfg;
	struct km_node_callbacks cb;
	void *user;
	struct km_rng *rng;
	struct km_ident ident;
	struct km_pins *pins;     /* node ID -> key, trust on first use */
	struct km_dht *dht;       /* the default family's, never NULL */
	struct node_family fam[2];
	struct km_node_stats stats;
	km_ms started_at;

	struct link *links;
	size_t nlinks;
	struct km_connmgr *cm;
	struct km_bcast *bcast;
	uint64_t next_conn;

	struct bootstrap bootstrap[KM_NODE_MAX_BOOTSTRAP];
	size_t nbootstrap;
	struct km_contact *saved; /* the last known contacts, for rejoining */
	size_t nsaved;
	bool ever_joined;
	km_ms next_save;
	km_ms next_rejoin_check;
	bool stopping;
	/* NAT traversal: modules that own their state (node_nat.c,
	 * node_relay.c, node_punch.c and node_rendezvous.c wire them in). */
	struct km_nat nat;        /* external address, reachability */
	bool read_only_configured; /* read-only whatever the verdict */
	struct km_dialback *dialback; /* checks, dials for others, keepalives */
	struct km_relay *relay;   /* circuits as R, relayed links' frames */
	struct km_punch *punch;   /* punches running, coordinating them */
	struct km_rendezvous *rendezvous; /* REACH, private neighbours */
	struct km_node_goodbye last_goodbye; /* link.c */
};

/* node.c */
void node_log(struct km_node *n, enum km_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void node_bootstrap_failed(struct km_node *n, int index, km_ms now);
void node_bootstrap_succeeded(struct km_node *n, int index);
/* The DHT of family, or NULL; node_verify() pings addr on it if any. */
struct km_dht *node_dht_for(struct km_node *n, uint8_t family);
void node_verify(struct km_node *n, const struct km_addr *addr, km_ms now);

/* link.c */
struct link *link_open(struct km_node *n, const struct km_addr *remote,
		       bool outbound, const struct km_id *id, km_ms now);
/* An inbound connection over the caps, let in while a check runs; its
 * first frame must be DIALBACK. */
struct link *link_open_probe(struct km_node *n, const struct km_addr *remote,
			     km_ms now);
struct link *link_find(struct km_node *n, uint64_t conn);
/* The node ID its HELLO gave (meaningful from LINK_AUTH_WAIT on). */
struct km_id link_peer_id(const struct link *l);
/* What link_by_peer asks of the link to a peer, or-ed. */
enum {
	PEER_UP = 1,        /* authenticated; matched on its HELLO's ID */
	PEER_NEIGHBOUR = 2, /* a neighbour; matched on its HELLO's ID */
	PEER_RELAYED = 4,   /* relayed, via the link `via` (0: any); matched
			     * on the ID its relay knows it by */
};
/* The first link to the peer id that is all of want, or NULL. */
struct link *link_by_peer(struct km_node *n, const struct km_id *id,
			  unsigned want, uint64_t via);
void link_close(struct km_node *n, struct link *l, int reason,
		const char *text, km_ms now);
void link_on_connected(struct km_node *n, struct link *l, km_ms now);
void link_on_bytes(struct km_node *n, struct link *l, const uint8_t *buf,
		   size_t len, km_ms now);
void link_on_closed(struct km_node *n, struct link *l, km_ms now);
km_ms link_tick_all(struct km_node *n, km_ms now);
void link_send_frame(struct km_node *n, struct link *l, uint8_t type,
		     const uint8_t *payload, size_t len);
/* l's peer as PUNCH_GO, RELAY_OPEN and RENDEZVOUS name it: its ID, the IP
 * we see it at, its listening port. */
struct km_peer link_endpoint(const struct link *l);
/* The NAT modules' send callback: a frame on link conn, if it exists. */
bool link_send_by_conn(void *n, uint64_t conn, uint8_t type,
		       const uint8_t *body, size_t len);

#endif
