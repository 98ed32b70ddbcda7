/* A kadmesh node with no I/O: the DHT plus the TCP overlay's handshake.
 *
 * km_node composes km_dht (UDP, KRPC) with the overlay links (TCP, framed
 * HELLO / PEER_LIST / PING / PONG / GOODBYE) and the join logic: HELLO to
 * each bootstrap address first, KRPC find_node as the fallback for
 * addresses that do not speak the overlay, retries with backoff and jitter,
 * and rejoining from saved nodes when the routing table empties.
 *
 * A dual-stack node runs one km_dht per address family (BEP 32), with the
 * same node ID, linked as siblings so that `want` is answered from both.
 * UDP is dispatched by the sender's family; bootstrap addresses, PEER_LIST
 * entries and saved contacts are verified on the table of their family.
 *
 * Like km_dht it never touches a socket or a clock.  The driver (src/uv/
 * in the daemon, the simulator elsewhere) feeds it events and carries out
 * what the callbacks ask.  TCP connections are named by 64-bit ids that the
 * node hands out. */
#ifndef KM_NET_NODE_H
#define KM_NET_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/dht.h"
#include "net/ident.h"
#include "net/broadcast.h"
#include "net/connmgr.h"
#include "net/stats.h"
#include "net/nat.h"

#define KM_NODE_MAX_BOOTSTRAP 16
#define KM_NETWORK_ID_DEFAULT 0x6b6d3031u /* "km01" */

enum km_log_level { KM_LOG_ERROR, KM_LOG_WARN, KM_LOG_INFO, KM_LOG_DEBUG };

/* km_node_config.families */
enum { KM_NODE_IPV4 = 1, KM_NODE_IPV6 = 2 };

struct km_node_config {
	/* id, k, alpha, read_only... for every family's km_dht.  dht.family
	 * is the default family: the one km_node_lookup() and
	 * km_node_announce() use. */
	struct km_dht_config dht;
	/* KM_NODE_IPV4 | KM_NODE_IPV6: the families to run, each with its own
	 * routing table.  0 means just dht.family. */
	unsigned families;
	uint32_t network_id;
	uint16_t port;                  /* our UDP and TCP port, once bound */
	struct km_addr bootstrap[KM_NODE_MAX_BOOTSTRAP];
	size_t nbootstrap;
	bool seed;                      /* starts a network: no bootstrap */
	size_t max_links;               /* overlay connections at once: 64 */
	km_ms handshake_timeout_ms;     /* HELLO must arrive within: 5 s */
	km_ms save_interval_ms;         /* routing table snapshot: 60 s */
	/* Neighbours and broadcast (connmgr.h, broadcast.h). */
	struct km_connmgr_config cm;
	struct km_bcast_config bcast;
	km_ms ping_interval_ms;         /* PING each neighbour this often: 15 s */
	int pings_missed_max;           /* unanswered PINGs before it is dead: 3 */
	km_ms dialback_timeout_ms;      /* reachability check verdict: 8 s */
	/* The node's Ed25519 key (net/ident.h).  Without one (has_key
	 * false) the node makes an ephemeral key from its km_rng. */
	bool has_key;
	uint8_t key_seed[KM_IDENT_SEED_LEN];
	size_t pins_max;                /* node ID -> key pins kept: 4096 */
};

void km_node_config_default(struct km_node_config *cfg);

struct km_node_callbacks {
	void (*udp_send)(void *user, const struct km_addr *to,
			 const uint8_t *buf, size_t len);
	/* Starts a TCP connect to `to` for link `conn`; the driver answers
	 * with km_node_tcp_connected() or km_node_tcp_closed(). */
	void (*tcp_connect)(void *user, uint64_t conn, const struct km_addr *to);
	void (*tcp_send)(void *user, uint64_t conn, const uint8_t *buf,
			 size_t len);
	/* Closes after pending writes flush; no km_node_tcp_closed() follows. */
	void (*tcp_close)(void *user, uint64_t conn);
	/* The routing table snapshot to persist (see km_state_encode()). */
	void (*save_state)(void *user, const uint8_t *buf, size_t len);
	void (*lookup_done)(void *user, uint64_t lookup_id,
			    const struct km_lookup *lk);
	void (*log)(void *user, enum km_log_level level, const char *msg);
	/* A broadcast message reached this node for the first time (also
	 * one it sent itself); may be NULL. */
	void (*deliver)(void *user, const struct km_message *m);
	/* Like tcp_connect, but from our own listening port, for a TCP
	 * simultaneous open through NATs (hole punching); may be NULL. */
	void (*tcp_punch)(void *user, uint64_t conn, const struct km_addr *to);
};

struct km_node_stats {
	struct km_family_sums sum;              /* both families' DHTs */
	unsigned long links_in, links_out;      /* accepted / opened, total */
	unsigned long hellos_ok, hellos_bad;
	unsigned long auth_failed;              /* AUTH did not verify */
	unsigned long auth_key_refused;         /* key other than the pinned one */
	size_t pins;                            /* node ID -> key pins held */
	unsigned long peer_lists_in, peer_lists_out;
	unsigned long bootstrap_krpc_fallbacks;
	size_t links;                           /* open now */
	struct km_cm_counts neighbours;         /* in, out, pending... */
	struct km_bcast_stats bcast;
	unsigned long ping_timeouts;            /* neighbours dropped as dead */
	struct km_lookup_hist lookup_ms;        /* finished lookups' durations */
};

/* NAT awareness: dial-back checks and keepalives (net/nat.h). */
struct km_node_nat_stats {
	unsigned long dialbacks_asked;   /* DIAL_ME sent */
	unsigned long dialbacks_ok;      /* our checks that found us reachable */
	unsigned long dialbacks_failed;  /* ... and unreachable */
	unsigned long dialbacks_served;  /* connections made for others */
	unsigned long dialbacks_busy;    /* DIAL_ME answered busy (at the cap) */
	unsigned long dialbacks_undecided; /* our checks with too little evidence */
	unsigned long dial_results[5];   /* DIAL_RESULTs heard, by result 1-4 */
	unsigned long dialback_probes;   /* connections let in over the caps */
	unsigned long inbound_proofs;    /* unsolicited inbound that made us public */
	unsigned long krpc_proofs;       /* ... unsolicited KRPC queries */
	unsigned long keepalives;        /* UDP pings to keep mappings open */
	unsigned long punches_coordinated; /* as rendezvous: PUNCH_GO pairs */
	unsigned long punches_ok, punches_failed;
	unsigned long punch_attempts;    /* TCP simultaneous opens tried */
	unsigned long relays_served;     /* circuits opened as the relay */
	unsigned long relays_refused;    /* ... refused at a limit */
	unsigned long relays_cut;        /* ... cut at a limit */
	unsigned long relay_bytes;       /* bytes relayed for others */
	unsigned long relayed_links;     /* our links that went via a relay */
	unsigned long upgrade_attempts;  /* punches asked for a relayed link */
	unsigned long punches_asked;     /* PUNCH_REQ sent on our own accord */
	unsigned long rendezvous_sent;   /* RENDEZVOUS frames sent */
	size_t relay_circuits;           /* circuits we relay now (gauge) */
	size_t relayed_now;              /* our links via a relay now (gauge) */
	km_ms last_punch_ms;             /* PUNCH_GO to punched link up, last */
	km_ms last_relay_ms;             /* PUNCH_GO to relayed link up, last */
};

enum km_via { KM_VIA_DIRECT, KM_VIA_PUNCHED, KM_VIA_RELAY };

/* One neighbour, for `dht-ctl peers`. */
struct km_neighbour {
	struct km_id id;
	struct km_addr addr;     /* the TCP peer address */
	bool outbound;
	bool eager;              /* on the broadcast tree */
	enum km_via via;
	km_ms since;             /* when its HELLO arrived */
	uint32_t rtt_ms;         /* last PING round trip; 0 = none yet */
	uint64_t bytes_in, bytes_out, frames_in, frames_out;
};

struct km_node;

struct km_node *km_node_new(const struct km_node_config *cfg,
			    const struct km_node_callbacks *cb, void *user,
			    struct km_rng *rng, km_ms now);
void km_node_del(struct km_node *n); /* NULL is a no-op */

/* Starts joining: saved contacts (from a state file) are verified over
 * KRPC, and every bootstrap address gets HELLO. */
void km_node_start(struct km_node *n, const struct km_contact *saved,
		   size_t nsaved, km_ms now);

/* Orderly shutdown: GOODBYE on every link, then a final save_state. */
void km_node_stop(struct km_node *n, km_ms now);

void km_node_udp_recv(struct km_node *n, const struct km_addr *from,
		      const uint8_t *buf, size_t len, km_ms now);

/* An inbound connection; returns the id the node gives it, or 0 to refuse
 * (the driver then closes it). */
uint64_t km_node_tcp_accepted(struct km_node *n, const struct km_addr *remote,
			      km_ms now);
void km_node_tcp_connected(struct km_node *n, uint64_t conn, km_ms now);
void km_node_tcp_recv(struct km_node *n, uint64_t conn, const uint8_t *buf,
		      size_t len, km_ms now);
/* The peer closed, or the connection failed. */
void km_node_tcp_closed(struct km_node *n, uint64_t conn, km_ms now);

/* Runs timers; returns when it next wants to run. */
km_ms km_node_tick(struct km_node *n, km_ms now);

/* Lookups and announces in the default family, reported through
 * lookup_done.  Lookup ids are unique across families. */
int km_node_lookup(struct km_node *n, const struct km_id *target,
		   enum km_lookup_kind kind, uint64_t *lookup_id, km_ms now);
int km_node_announce(struct km_node *n, const struct km_id *info_hash,
		     uint16_t port, uint64_t *lookup_id, km_ms now);

/* Broadcasts payload to every node (delivered here too); writes the
 * message ID.  Returns 0, KM_ERR_TOO_LONG or KM_ERR_NOMEM. */
int km_node_broadcast(struct km_node *n, const uint8_t *payload, size_t len,
		      uint8_t id[static KM_MSG_ID_LEN], km_ms now);

/* Writes up to max neighbours; returns how many there are in all. */
size_t km_node_neighbours(const struct km_node *n, struct km_neighbour *out,
			  size_t max);

/* The same in the given family; KM_AF_NONE means the default one.  Returns
 * KM_ERR_INVAL for a family the node does not run. */
int km_node_lookup_in(struct km_node *n, enum km_family family,
		      const struct km_id *target, enum km_lookup_kind kind,
		      uint64_t *lookup_id, km_ms now);
int km_node_announce_in(struct km_node *n, enum km_family family,
			const struct km_id *info_hash, uint16_t port,
			uint64_t *lookup_id, km_ms now);

/* The default family's DHT (never NULL). */
struct km_dht *km_node_dht(struct km_node *n);
/* The DHT of one family, or NULL if the node does not run that family. */
struct km_dht *km_node_dht_of(struct km_node *n, enum km_family family);
/* External address and reachability (the driver sets local addresses). */
struct km_nat *km_node_nat(struct km_node *n);
struct km_node_nat_stats km_node_nat_stats(const struct km_node *n);
/* Asks our neighbours to act as rendezvous for a punched link to id.
 * Returns 0, KM_ERR_INVAL (no tcp_punch, or that is us) or KM_ERR_FULL. */
int km_node_punch(struct km_node *n, const struct km_id *id, km_ms now);
/* "direct", "punched", "relay". */
const char *km_via_name(enum km_via via);
const struct km_node_config *km_node_config(const struct km_node *n);

/* The last GOODBYE a peer sent, for operators (`dht-ctl status`). */
struct km_node_goodbye {
	bool any;                 /* false: none received yet */
	bool decoded;             /* false: a malformed body (e.g. its text
				     not UTF-8): reason only, no text */
	uint8_t reason;           /* may be a code this build does not know */
	char text[KM_GOODBYE_TEXT_MAX + 1]; /* UTF-8, NUL-terminated */
	struct km_addr from;
	bool authenticated;       /* the link was up: id is proven */
	struct km_id id;
	km_ms at;
};
const struct km_node_goodbye *km_node_last_goodbye(const struct km_node *n);
struct km_node_stats km_node_stats(const struct km_node *n);
/* Sources the flood limiters of both families ban at now. */
size_t km_node_banned_now(const struct km_node *n, km_ms now);
km_ms km_node_started_at(const struct km_node *n);

#endif
