/* Private to dht.c, dht_server.c and dht_search.c. */
#ifndef KM_DHT_DHT_INTERNAL_H
#define KM_DHT_DHT_INTERNAL_H

#include <uthash.h>

#include "dht/contacted.h"
#include "dht/dht.h"
#include "dht/tokens.h"
#include "proto/krpc.h"

#define KM_DHT_TID_LEN 4
/* The most values a reply of ours carries: keeps it near one MTU. */
#define KM_DHT_REPLY_VALUES_MAX 50
#define KM_DHT_SEND_BUF 2048
/* Contacts taken from one reply, and seeds taken from the table: the
 * closest this many to the target.  A lookup keeps no more candidates than
 * max_candidates (128 by default) anyway.  The scratch they are parsed into
 * is 5 KiB on the stack of the call that needs it, not in every node: a
 * full 64 KiB reply's worth of contacts would be ~100 KiB. */
#define KM_DHT_SCRATCH_NODES 128

enum tx_kind {
	TX_PING,     /* a table ping before eviction */
	TX_VERIFY,   /* find_node(self) to an address we want to know */
	TX_LOOKUP,   /* find_node or get_peers for a running lookup */
	TX_ANNOUNCE, /* announce_peer */
};

/* A query of ours that awaits a reply. */
struct tx {
	uint8_t tid[KM_DHT_TID_LEN];
	enum tx_kind kind;
	struct km_addr to;
	struct km_id expect_id;   /* valid when id_known */
	bool id_known;
	bool resent;              /* TX_LOOKUP, TX_VERIFY: the one retry has
				     been sent */
	uint64_t lookup_id;       /* TX_LOOKUP */
	km_ms sent, deadline;
	UT_hash_handle hh;
	struct tx *prev, *next;   /* send order, which is deadline order */
};

struct search {
	uint64_t id;
	struct km_lookup *lk;
	bool report;              /* user lookups call lookup_done */
	bool join;                /* the self-lookup run when joining */
	bool announce;
	bool implied_port;
	uint16_t port;
	struct search *prev, *next;
};

struct km_dht {
	struct km_dht_config cfg;
	struct km_dht_callbacks cb;
	void *user;
	struct km_rng *rng;
	struct km_dht *sibling;

	struct km_table *table;
	struct km_peers *peers;
	struct km_tokens tokens;
	struct km_contacted contacted; /* whom we talked to lately, by IP */

	struct tx *tx_by_tid;
	struct tx *tx_queue;
	size_t ntx;

	struct search *searches;
	size_t nsearches;
	uint64_t next_lookup_id;

	bool joined;              /* the self-lookup after joining has run */
	/* See dht_awaiting(): we have asked to join (km_dht_ping_addr) and
	 * had no answer yet, until awaiting_until. */
	bool awaiting, answered;
	km_ms awaiting_until;
	km_ms next_short_lookup;  /* see look_again_while_short() */
	km_ms short_every;
	/* After a flash crowd (dht_search.c): the table as it was at the last
	 * lookup of our own ID and at the last refresh of every bucket, and
	 * when each may run again. */
	struct km_table_changes at_self, at_refresh;
	size_t size_at_refresh;
	km_ms self_every, next_self;
	km_ms regrow_every, next_regrow;
	km_ms next_peer_expiry;
	km_ms next_maintenance;   /* next ping of a questionable node */
	struct km_dht_stats stats;
	struct km_ratelimit *rl;
	size_t in_len;            /* the query being answered, for dht_guard */
	km_ms in_now;
	uint64_t unverified_budget; /* bytes, refilled at unverified_reply_bps */
	km_ms budget_refilled;
};

/* dht.c */
void dht_send_msg(struct km_dht *d, const struct km_addr *to,
		  struct km_krpc_msg *m);
int dht_send_query(struct km_dht *d, const struct km_contact *to, bool id_known,
		   enum tx_kind kind, uint64_t lookup_id, struct km_krpc_msg *m,
		   km_ms now);
void dht_ping(struct km_dht *d, const struct km_contact *c, km_ms now);
void dht_offer(struct km_dht *d, const struct km_contact *c,
	       enum km_seen_kind kind, uint32_t rtt_ms, km_ms now);
bool dht_awaiting(const struct km_dht *d, km_ms now);

/* dht_server.c */
void dht_server_handle_query(struct km_dht *d, const struct km_addr *from,
			     struct km_krpc_msg *m, km_ms now);
void dht_server_send_error(struct km_dht *d, const struct km_addr *to,
			   const struct km_krpc_msg *q, int code, const char *msg);

/* dht_guard.c */
bool dht_guard_receive(struct km_dht *d, const struct km_addr *from,
		       const struct km_krpc_msg *m, int decode_rc, km_ms now);
/* out holds m encoded, *len bytes; m may be trimmed and re-encoded there. */
bool dht_guard_reply(struct km_dht *d, const struct km_addr *to,
		     struct km_krpc_msg *m, uint8_t *out, size_t cap, int *len);

/* dht_search.c */
void dht_search_on_reply(struct km_dht *d, const struct tx *tx,
			 const struct km_krpc_msg *m, km_ms now);
void dht_search_on_failure(struct km_dht *d, const struct tx *tx, km_ms now);
bool dht_search_resend(struct km_dht *d, const struct tx *tx);
km_ms dht_search_tick(struct km_dht *d, km_ms now);
void dht_search_free_all(struct km_dht *d);
/* The reply's usable nodes of `family` (nodes or nodes6), minus d itself
 * and port 0; when there are more than max, the max closest to target. */
size_t dht_search_reply_contacts(struct km_dht *d, const struct km_krpc_msg *m,
				 enum km_family family, const struct km_id *target,
				 struct km_contact *out, size_t max);

#endif
