/* The peer store: who announced themselves under which info-hash.
 *
 * Announcements expire after ttl_ms (30 minutes, as BEP 5 clients do), and
 * the store is capped per info-hash, in info-hashes, and in total, so a
 * flood of announce_peer queries costs a bounded amount of memory.  When a
 * swarm is full, the peer that announced least recently makes room. */
#ifndef KM_DHT_PEERS_H
#define KM_DHT_PEERS_H

#include <stdbool.h>
#include <stddef.h>

#include "dht/id.h"
#include "proto/ms.h"

struct km_peers_config {
	size_t max_per_hash;  /* 100 */
	size_t max_hashes;    /* 4096 */
	size_t max_total;     /* 32768 */
	km_ms ttl_ms;         /* 30 min */
};

void km_peers_config_default(struct km_peers_config *cfg);

struct km_peers_stats {
	size_t hashes;
	size_t total;
	unsigned long rejected_full; /* announcements refused at a cap */
	unsigned long expired;
};

struct km_peers;

struct km_peers *km_peers_new(const struct km_peers_config *cfg);
void km_peers_del(struct km_peers *s); /* NULL is a no-op */

/* Records that peer announced under info_hash.  Returns 0, or KM_ERR_FULL
 * when a global cap stops a new info-hash or a new peer. */
int km_peers_add(struct km_peers *s, const struct km_id *info_hash,
		 const struct km_addr *peer, km_ms now);

/* Up to max unexpired peers of the given family (most recent first). */
size_t km_peers_get(const struct km_peers *s, const struct km_id *info_hash,
		    enum km_family family, struct km_addr *out, size_t max,
		    km_ms now);

/* Drops expired announcements. */
void km_peers_expire(struct km_peers *s, km_ms now);

struct km_peers_stats km_peers_stats(const struct km_peers *s);

/* Bytes the store has allocated, itself included. */
size_t km_peers_mem(const struct km_peers *s);

#endif
