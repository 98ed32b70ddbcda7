/* The iterative Kademlia lookup, as a state machine with no I/O.
 *
 * The owner seeds it with contacts from the routing table, then loops:
 *
 *   while (km_lookup_next_query(lk, now, &c))  send a query to c;
 *   ... on a reply:   km_lookup_on_reply(lk, &from, nodes, n, now);
 *   ... on a timeout: km_lookup_on_timeout(lk, &from, now);
 *   ... when woken:   km_lookup_tick(lk, now);
 *   until km_lookup_done(lk).
 *
 * At most alpha queries count as in flight, except that once the closest
 * candidate has answered, the rest of the k closest are asked at once
 * (burst).  A query unanswered after one RTO -- srtt + 4 rttvar over this
 * lookup's replies, within [rto_min_ms, slow_ms], slow_ms before the first
 * reply -- frees its slot and is asked once more (next_query hands the
 * retry out, without a slot); the node has failed when the retry goes two
 * more RTOs unanswered, or after timeout_ms in any case (the owner may also
 * report a failure earlier with km_lookup_on_timeout).  A late reply to
 * either try still counts until the lookup is done.  The lookup ends when the k
 * closest candidates that have not failed have all answered and none is
 * still waiting to be asked -- that is, no closer candidate is left.
 *
 * Rounds: a seed has round 1, and a node learned from a reply by a node of
 * round r has round r + 1.  km_lookup_stats().rounds is the highest round
 * of any node queried. */
#ifndef KM_DHT_LOOKUP_H
#define KM_DHT_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "dht/id.h"
#include "proto/ms.h"

#define KM_LOOKUP_TOKEN_MAX 64

enum km_lookup_kind { KM_LOOKUP_FIND_NODE, KM_LOOKUP_GET_PEERS };

struct km_lookup_config {
	int k;                 /* result size: 8 */
	int alpha;             /* parallel queries: 3 */
	km_ms slow_ms;         /* the most a try waits before the retry: 1000 ms */
	km_ms timeout_ms;      /* gives up on the node: 4000 ms */
	km_ms rto_min_ms;      /* the least a try waits: 200 ms */
	bool burst;            /* once converged, ask the k closest at once: true */
	size_t max_candidates; /* shortlist cap; farthest dropped: 128 */
	size_t max_peers;      /* get_peers values kept: 256 */
};

void km_lookup_config_default(struct km_lookup_config *cfg);

struct km_lookup_result {
	struct km_contact c;
	uint32_t rtt_ms;
	km_ms learned;  /* when the lookup first heard of it (a seed: started) */
	km_ms answered; /* when its answer came */
	uint8_t token[KM_LOOKUP_TOKEN_MAX]; /* get_peers only */
	size_t token_len;
};

struct km_lookup_stats {
	int rounds;
	unsigned queries;   /* queries handed out by next_query */
	unsigned replies;
	unsigned timeouts;
	unsigned retries;   /* second tries, counted in queries too */
	km_ms started, finished; /* finished = 0 while running */
};

struct km_lookup;

/* cfg may be NULL for the defaults.  Settings out of range are raised to
 * the least that works: k and alpha to 1, max_candidates to k, timeout_ms
 * to slow_ms.  Returns NULL on allocation failure. */
struct km_lookup *km_lookup_new(const struct km_id *target,
				enum km_lookup_kind kind,
				const struct km_lookup_config *cfg, km_ms now);
void km_lookup_del(struct km_lookup *lk); /* NULL is a no-op */

const struct km_id *km_lookup_target(const struct km_lookup *lk);
enum km_lookup_kind km_lookup_kind(const struct km_lookup *lk);

/* Adds seed candidates (round 1).  Duplicates are ignored. */
void km_lookup_add(struct km_lookup *lk, const struct km_contact *nodes,
		   size_t n);

/* If a slot is free and an unqueried candidate remains, writes the closest
 * such candidate to *out, marks it in flight and returns true. */
bool km_lookup_next_query(struct km_lookup *lk, km_ms now,
			  struct km_contact *out);

/* from answered; nodes are the contacts its reply carried (any number). A
 * reply from a node we did not query, or a second reply, is ignored; a late
 * one from a node already timed out counts.  Contacts without a usable
 * address (KM_AF_NONE, port 0) are skipped. */
void km_lookup_on_reply(struct km_lookup *lk, const struct km_id *from,
			const struct km_contact *nodes, size_t n, km_ms now);

/* An RTT to one of the seeds measured before (the routing table's), to
 * prime the estimator that sets the retry timeout. */
void km_lookup_rtt_hint(struct km_lookup *lk, uint32_t rtt_ms);

/* get_peers extras, reported alongside on_reply. Peers beyond max_peers and
 * tokens longer than KM_LOOKUP_TOKEN_MAX are dropped, and so is a token from
 * a node we did not query. */
void km_lookup_on_peers(struct km_lookup *lk, const struct km_addr *peers,
			size_t n);
void km_lookup_on_token(struct km_lookup *lk, const struct km_id *from,
			const uint8_t *token, size_t len);

/* The query to from has failed. */
void km_lookup_on_timeout(struct km_lookup *lk, const struct km_id *from,
			  km_ms now);

/* Applies the retry timeout and timeout_ms to queries in flight. */
void km_lookup_tick(struct km_lookup *lk, km_ms now);

/* When km_lookup_tick next has work; 0 if nothing is in flight. */
km_ms km_lookup_next_wake(const struct km_lookup *lk);

/* Once a call has seen the lookup done it stays done: later replies still
 * mark their senders answered, but no call adds candidates. */
bool km_lookup_done(const struct km_lookup *lk);

/* The up-to-k closest candidates that answered, closest first. */
size_t km_lookup_results(const struct km_lookup *lk,
			 struct km_lookup_result *out, size_t max);

/* Distinct peers collected by get_peers. */
size_t km_lookup_peers(const struct km_lookup *lk, struct km_addr *out,
		       size_t max);

struct km_lookup_stats km_lookup_stats(const struct km_lookup *lk);

/* True while the lookup waits for id's first try and has not yet decided
 * to ask again by itself (it does so after one RTO, see slow_ms): an owner
 * whose transactions resend on their own should not add a third try. */
bool km_lookup_wants_retry(const struct km_lookup *lk, const struct km_id *id);

#endif
