/* A Mainline DHT node (BEP 5) as a state machine with no I/O.
 *
 * Bytes come in through km_dht_receive(), time through km_dht_tick(), and
 * randomness through the km_rng given at creation.  Datagrams go out through
 * the send callback, and km_dht_tick() returns when it next wants to run.
 * One km_dht serves one address family, as BEP 32 asks: a dual-stack host
 * runs two and links them with km_dht_set_sibling() so that `want` can be
 * answered with both `nodes` and `nodes6`.
 *
 * Everything a peer sends is hostile until validated: malformed queries get
 * error 203, unknown methods 204, and nothing costs more than a bounded
 * amount of memory (transactions, lookups, peers and the table are capped). */
#ifndef KM_DHT_DHT_H
#define KM_DHT_DHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "dht/lookup.h"
#include "dht/peers.h"
#include "dht/ratelimit.h"
#include "dht/rng.h"
#include "dht/table.h"

struct km_dht;

struct km_dht_config {
	struct km_id id;
	enum km_family family;          /* KM_AF_INET4 or KM_AF_INET6 */
	struct km_table_config table;
	struct km_lookup_config lookup;
	struct km_peers_config peers;
	bool read_only;                 /* BEP 43: send ro=1, answer nothing */
	km_ms query_timeout_ms;         /* one try of a query: 2 s; lookup
					 * queries get a second try */
	size_t max_transactions;        /* queries awaiting replies: 2048 */
	size_t max_lookups;             /* lookups running at once: 64 */
	struct km_ratelimit_config rate;/* per-source query limits and bans */
	/* Amplification defence: a reply to a source that never answered us
	 * is trimmed (nodes, values) to at most `amplification` times the
	 * query's size, or dropped; and all such replies share a budget of
	 * unverified_reply_bps bytes a second (0 = no budget). */
	unsigned amplification;         /* 3 */
	size_t unverified_reply_bps;    /* 256 KiB/s */
};

/* Defaults everywhere; the caller must still set id and family. */
void km_dht_config_default(struct km_dht_config *cfg);

struct km_dht_callbacks {
	/* Sends one datagram.  buf is only valid during the call. */
	void (*send)(void *user, const struct km_addr *to, const uint8_t *buf,
		     size_t len);
	/* A lookup started with km_dht_lookup()/km_dht_announce() ended.  lk
	 * is valid only during the call.  May be NULL. */
	void (*lookup_done)(void *user, uint64_t lookup_id,
			    const struct km_lookup *lk);
	/* A reply from `from` says it sees us at `seen` (BEP 42 `ip`); for
	 * NAT awareness (net/nat.h).  May be NULL. */
	void (*observed)(void *user, const struct km_addr *from,
			 const struct km_addr *seen, km_ms now);
	/* A well-formed query within the rate limits came from an IP that no
	 * datagram of ours went to, and none came from, for at least the last
	 * 5 minutes (dht/contacted.h): nothing of ours opened a NAT mapping
	 * for it, so our UDP port is open to whoever knows it.  It fires
	 * whether or not we are read-only, and for queriers that are (BEP 43
	 * `ro`): the datagram arrived either way.  A forged source proves as
	 * much, since it got through too.  May be NULL. */
	void (*unsolicited)(void *user, const struct km_addr *from, km_ms now);
};

struct km_dht_stats {
	unsigned long packets_in, packets_out;
	unsigned long bytes_in, bytes_out;
	unsigned long queries_in, replies_in, errors_in;
	unsigned long malformed_in;     /* could not be decoded */
	unsigned long errors_sent;      /* 203/204 answers */
	unsigned long unmatched_replies;/* no such transaction, or wrong sender */
	unsigned long unsolicited_in;   /* queries from IPs not talked to lately */
	unsigned long timeouts;
	unsigned long resent;           /* lookup and join queries sent a
					   second time */
	unsigned long tx_full;          /* queries not sent: transaction cap */
	unsigned long lookups_started, lookups_done;
	unsigned long replies_trimmed;  /* cut down for an unverified source */
	unsigned long replies_unsent;   /* dropped: too big even when trimmed,
					   or over the unverified budget */
	size_t transactions;            /* pending now */
	size_t lookups;                 /* running now */
};

/* Returns NULL if cfg is invalid or memory runs out.  rng must outlive the
 * node. */
struct km_dht *km_dht_new(const struct km_dht_config *cfg,
			  const struct km_dht_callbacks *cb, void *user,
			  struct km_rng *rng, km_ms now);
void km_dht_del(struct km_dht *d); /* NULL is a no-op */

void km_dht_set_sibling(struct km_dht *d, struct km_dht *other_family);

/* Feeds one datagram that arrived from `from`. */
void km_dht_receive(struct km_dht *d, const struct km_addr *from,
		    const uint8_t *buf, size_t len, km_ms now);

/* Runs whatever is due (timeouts, lookups, bucket refresh, table pings,
 * token rotation, peer expiry) and returns the time it next wants to run. */
km_ms km_dht_tick(struct km_dht *d, km_ms now);

/* Asks addr, whose ID we may not know, for the nodes closest to our own ID.
 * This is how a node joins through any Mainline node, and how contacts
 * learned elsewhere (PEER_LIST, a state file) are verified: nothing enters
 * the routing table until it has answered.  Returns 0 or KM_ERR_FULL. */
int km_dht_ping_addr(struct km_dht *d, const struct km_addr *addr, km_ms now);

/* Starts a lookup of target, seeded from the routing table plus `seeds`
 * (contacts learned out of band, e.g. from PEER_LIST; may be NULL).
 * Returns 0 and writes its id, or KM_ERR_FULL when max_lookups are running.
 * The lookup_done callback reports the end; with no seeds at all the lookup
 * ends at once. */
int km_dht_lookup(struct km_dht *d, const struct km_id *target,
		  enum km_lookup_kind kind, const struct km_contact *seeds,
		  size_t nseeds, uint64_t *lookup_id, km_ms now);

/* A get_peers lookup that then announces us under info_hash (port, or the
 * source port of our UDP socket when implied_port) to the closest nodes
 * that gave tokens.  port is sent even with implied_port, for receivers
 * that ignore implied_port.  lookup_done fires once the announces are
 * sent. */
int km_dht_announce(struct km_dht *d, const struct km_id *info_hash,
		    uint16_t port, bool implied_port, uint64_t *lookup_id,
		    km_ms now);

/* Datagrams may have gone to addr, or come from it, lately without this
 * km_dht seeing them: a previous process on the same port talked to the
 * contacts a restart brings back, and our NAT may keep those mappings
 * open for minutes.  A query from addr's IP is not unsolicited until the
 * record forgets it again (5 to 10 minutes, dht/contacted.h). */
void km_dht_note_contacted(struct km_dht *d, const struct km_addr *addr,
			   km_ms now);

/* BEP 43: a node found to be unreachable turns read-only at run time. */
void km_dht_set_read_only(struct km_dht *d, bool read_only);

const struct km_id *km_dht_id(const struct km_dht *d);
const struct km_table *km_dht_table(const struct km_dht *d);
const struct km_peers *km_dht_peers(const struct km_dht *d);
struct km_dht_stats km_dht_stats(const struct km_dht *d);
const struct km_ratelimit *km_dht_ratelimit(const struct km_dht *d);

/* Bytes a node has allocated, part by part, as requested from malloc (the
 * allocator's own overhead comes on top). */
struct km_dht_mem {
	size_t node;         /* struct km_dht itself */
	size_t table;        /* routing table and replacement caches */
	size_t ratelimit;    /* per-source limits, bans and verification */
	size_t transactions; /* queries awaiting replies, and their index */
	size_t lookups;      /* running lookups' records (not their shortlists) */
	size_t peers;        /* the peer store: announced peers */
	size_t total;        /* all of the above but peers */
};

struct km_dht_mem km_dht_mem(const struct km_dht *d);

#endif
