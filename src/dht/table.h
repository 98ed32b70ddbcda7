/* The Kademlia routing table, as BEP 5 describes it, with no I/O.
 *
 * Buckets are indexed by common-prefix length with our own ID: bucket i
 * holds nodes whose ID shares exactly i leading bits with ours, and the last
 * bucket holds everything at or beyond its index.  Only that last bucket --
 * the one covering our own ID -- ever splits, which is the same tree BEP 5
 * draws, stored as an array.
 *
 * Node states follow BEP 5:
 *   good          answered one of our queries within good_ms, or answered
 *                 at some time and sent us a query within good_ms;
 *   questionable  no such activity for good_ms, or never answered us;
 *   bad           failed to answer bad_after_failures queries in a row.
 *
 * A node heard only through its own queries may sit in the table, but it
 * is unconfirmed until it answers one of ours: a query proves nothing about
 * its source address, which anyone can forge.  Only confirmed, non-bad
 * nodes are served to others (km_table_closest_served(), for find_node
 * and get_peers replies, as jech/dht and libtorrent do); our own lookups
 * may start from any non-bad node (km_table_closest()), and asking one is
 * how it gets confirmed.
 *
 * When a full bucket is offered a new node, a bad entry is replaced at once.
 * Otherwise the newcomer waits in the bucket's replacement cache and, if the
 * bucket has a questionable entry, the table asks its owner to ping the
 * least-recently-seen one (KM_OFFER_PING).  The owner reports the outcome
 * with km_table_offer(..., KM_SEEN_REPLY, ...) or km_table_on_failure();
 * a node that goes bad is replaced from the cache.  Old, responsive nodes
 * therefore always win over newcomers.
 *
 * Sybil and eclipse defences (go-ethereum's p2p/discover numbers): at most
 * bucket_subnet_max nodes from one /24 (IPv6: /64) in a bucket and at most
 * table_subnet_max in the whole table, replacement caches included.
 * Loopback and private addresses are exempt unless strict_subnets is set.
 * BEP 42: an entry whose ID matches its IP is "verified"; verified
 * replacements are promoted first and unverified nodes are pinged first,
 * which prefers them without ever evicting a responsive node, and
 * bep42_strict rejects unverified IDs from public IPs outright.  */
#ifndef KM_DHT_TABLE_H
#define KM_DHT_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "dht/rng.h"

struct km_table_config {
	int k;                  /* bucket size; BEP 5 uses 8 */
	int replacements;       /* replacement cache size per bucket */
	int max_nodes;          /* cap on entries across all buckets */
	int bad_after_failures; /* consecutive failures that make a node bad */
	km_ms good_ms;          /* activity window for "good": 15 min */
	km_ms refresh_ms;       /* a bucket untouched this long is refreshed */
	km_ms revalidate_ms;    /* near neighbours unheard of this long are
				   pinged: 1 min; 0 = never */
	km_ms revalidate_far_ms; /* all other nodes unheard of this long are
				    pinged: 2 min; 0 = never */
	km_ms failure_grace_ms; /* a failure this soon after a reply is not
				   counted: 0 (km_dht sets its query
				   timeout, 2 s) */
	int bucket_subnet_max;  /* entries per /24 or /64 in a bucket: 2 */
	int table_subnet_max;   /* entries per /24 or /64 in the table: 10 */
	bool strict_subnets;    /* caps apply to local addresses too */
	bool bep42_strict;      /* reject public IPs whose ID fails BEP 42 */
};

/* How often the defences said no. */
struct km_table_stats {
	unsigned long rejected_subnet; /* a subnet cap was full */
	unsigned long rejected_bep42;  /* bep42_strict and the ID did not match */
	unsigned long capped;          /* a bucket had room but max_nodes did not */
};

/* k=8, replacements=8, max_nodes=1280 (160 buckets of 8),
 * bad_after_failures=2, good_ms=15 min, refresh_ms=15 min, revalidate_ms=1 min,
 * revalidate_far_ms=2 min,
 * failure_grace_ms=0, subnet caps 2 and 10 with local addresses exempt,
 * BEP 42 preferred but not required. */
void km_table_config_default(struct km_table_config *cfg);

enum km_entry_state { KM_ENTRY_GOOD, KM_ENTRY_QUESTIONABLE, KM_ENTRY_BAD };

struct km_table_entry {
	struct km_contact c;
	km_ms first_seen;   /* when it entered the table */
	km_ms last_seen;    /* any valid message from it */
	km_ms last_reply;   /* last answer to our query; 0 = never answered */
	km_ms last_query;   /* last query it sent us; 0 = never */
	int failures;       /* consecutive unanswered queries */
	bool ping_pending;  /* the table asked for a ping and awaits the result */
	uint32_t rtt_ms;    /* smoothed round-trip time; 0 = unknown */
	bool id_verified;   /* BEP 42 holds (always for local addresses) */
};

/* How we heard from a node. */
enum km_seen_kind {
	KM_SEEN_QUERY, /* it sent us a valid query */
	KM_SEEN_REPLY, /* it answered a query of ours */
};

enum km_offer_result {
	KM_OFFER_UPDATED,  /* already present; timestamps refreshed */
	KM_OFFER_ADDED,    /* inserted into a bucket */
	KM_OFFER_CACHED,   /* bucket full of good nodes; kept as a replacement */
	KM_OFFER_PING,     /* cached, and *to_ping must be pinged now */
	KM_OFFER_REJECTED, /* our own ID, an unusable address, a known ID from
			      another address, a subnet cap, BEP 42 strict,
			      or no room and no cache */
};

/* Buckets whose nodes km_table_next_stale() revalidates every
 * revalidate_ms, and whose newcomers km_table_changes() counts as near: the
 * one covering our own ID and the ones just before it, which hold our
 * closest neighbours -- the nodes an exact lookup near us must be told of.
 * dht_search.c starts its self-lookups from afar outside them. */
#define KM_TABLE_NEAR_BUCKETS 3

/* Nodes that have entered a bucket since the table was made (added, or
 * promoted from a replacement cache; a node replacing a bad one counts):
 * all of them, and those that entered one of the three buckets nearest our
 * own ID.  Monotonic: the owner compares two readings to see how much the
 * table changed in between. */
struct km_table_changes {
	unsigned long added;
	unsigned long added_near;
};

struct km_table;

/* Returns NULL on allocation failure or an invalid cfg (k or replacements
 * outside 1..1024 / 0..1024, negative max_nodes, bad_after_failures < 1).
 * cfg may be NULL for the defaults.  Timestamps are taken as > 0: an entry
 * field of 0 means "never". */
struct km_table *km_table_new(const struct km_id *self,
			      const struct km_table_config *cfg, km_ms now);
void km_table_del(struct km_table *t); /* NULL is a no-op */

const struct km_id *km_table_self(const struct km_table *t);

/* Tells the table we heard from c.  rtt_ms is 0 when unknown (queries).
 * The all-zero ID is rejected.  A known ID seen at a different address
 * keeps its old address: an ID does not move just because someone claims it
 * from elsewhere, so such a message refreshes nothing and returns
 * KM_OFFER_REJECTED -- unless the entry is bad or waits in the replacement
 * cache, in which case it takes the new address with a clean slate
 * (unconfirmed): a node behind a rebinding NAT comes back that way.
 * KM_OFFER_PING is returned only while the bucket has fewer pings pending
 * than replacements waiting; a node already pending is never asked for
 * twice, so the owner must report each ping's outcome (a REPLY offer or
 * km_table_on_failure) for the node to be considered again. */
enum km_offer_result km_table_offer(struct km_table *t,
				    const struct km_contact *c,
				    enum km_seen_kind kind, uint32_t rtt_ms,
				    km_ms now, struct km_contact *to_ping);

/* A query we sent to id went unanswered.  Not counted if the node has
 * answered within failure_grace_ms: the query was sent before that answer.
 * After bad_after_failures of these in a row the node is bad, and is replaced from the replacement cache if
 * one is waiting (the most recently seen).  A bad node with no replacement
 * stays until any newcomer takes its slot.  A cached replacement that fails
 * is dropped from the cache. */
void km_table_on_failure(struct km_table *t, const struct km_id *id, km_ms now);

/* The ping the table asked for (KM_OFFER_PING, km_table_next_stale) could
 * not be sent, the transaction table being full, say: the node is no
 * longer awaited, and counts no failure, so it may be asked for again. */
void km_table_cancel_ping(struct km_table *t, const struct km_id *id);

/* The owner pings id of its own accord (to confirm a node heard only by
 * its query, say): the table awaits the outcome as for KM_OFFER_PING, and
 * asks for no other ping of it meanwhile. */
void km_table_ping_sent(struct km_table *t, const struct km_id *id);

/* Removes id from its bucket or replacement cache (for example after
 * GOODBYE); true if found.  A freed slot is filled from the cache. */
bool km_table_remove(struct km_table *t, const struct km_id *id);

/* Entry pointers from km_table_find() and km_table_bucket_entry() stay valid
 * only until the next call that changes the table.  NULL if absent. */
const struct km_table_entry *km_table_find(const struct km_table *t,
					   const struct km_id *id);

enum km_entry_state km_table_state(const struct km_table *t,
				   const struct km_table_entry *e, km_ms now);

/* Whether e has ever answered a query of ours (and not moved since). */
static inline bool km_table_confirmed(const struct km_table_entry *e)
{
	return e->last_reply != 0;
}

/* Up to n non-bad contacts closest to target by XOR, closest first, or,
 * when every entry is bad, bad ones.  Returns how many were written.  For
 * our own lookups, which may ask unconfirmed nodes: asking is how they get
 * confirmed. */
size_t km_table_closest(const struct km_table *t, const struct km_id *target,
			size_t n, struct km_contact *out);

/* Confirmed, live contacts only (not bad, last query not failed, and they
 * have answered one of our queries), with no fallback: what we hand to
 * others in replies and peer lists.  except (NULL for none) is left out:
 * the asker, which has no use for its own contact -- among the n closest
 * it would take the place of a node the asker may not know. */
size_t km_table_closest_served(const struct km_table *t,
			       const struct km_id *target,
			       const struct km_id *except, size_t n,
			       struct km_contact *out);

size_t km_table_size(const struct km_table *t);     /* entries in buckets */
struct km_table_stats km_table_stats(const struct km_table *t);
struct km_table_changes km_table_changes(const struct km_table *t);
/* Entries that are not bad: O(size), for occasional checks. */
size_t km_table_usable(const struct km_table *t, km_ms now);
int km_table_bucket_count(const struct km_table *t);
size_t km_table_bucket_size(const struct km_table *t, int bucket);
const struct km_table_entry *km_table_bucket_entry(const struct km_table *t,
						   int bucket, size_t i);
size_t km_table_replacement_count(const struct km_table *t, int bucket);
/* The i-th node waiting in a bucket's replacement cache, or NULL; valid
 * like km_table_bucket_entry()'s. */
const struct km_table_entry *km_table_replacement_entry(const struct km_table *t,
							int bucket, size_t i);

/* Active maintenance, as jech/dht and libtorrent do it: finds the node
 * that most wants a ping and has none pending, marks its ping pending,
 * writes it to *out and returns true.  First come nodes that failed a
 * query (a lookup's timeout, say) but are not bad yet, so a dead node
 * is confirmed bad and replaced within seconds; then questionable nodes;
 * then nodes not heard from for revalidate_ms in the KM_TABLE_NEAR_BUCKETS
 * buckets nearest our own ID (go-ethereum's revalidation; they hold the
 * neighbours exact lookups near us depend on) or for revalidate_far_ms in
 * the others.  Least recently seen first within each.  The owner pings it and reports the outcome as for KM_OFFER_PING.
 * Without this a dead node that no newcomer competes with would be handed
 * out forever. */
bool km_table_next_stale(struct km_table *t, km_ms now, struct km_contact *out);

/* Fills out with one random target for each bucket untouched (no node added,
 * no reply from a node in it) for refresh_ms, and marks those buckets as
 * refreshed at now.  Returns how many targets were written (at most max). */
size_t km_table_refresh_targets(struct km_table *t, km_ms now,
				struct km_rng *rng, struct km_id *out,
				size_t max);

/* When the next bucket becomes due for refresh. */
km_ms km_table_next_refresh(const struct km_table *t);

/* Bytes the table has allocated, itself included. */
size_t km_table_mem(const struct km_table *t);

#endif
