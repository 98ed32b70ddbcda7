/* A virtual network of km_dht nodes for tests: no sockets, no clock.
 *
 * Each node gets the address 10.x.y.z:6881 derived from its index (or
 * [fd00::x:y:z]:6881 for IPv6; vnet_new_families() gives each node a
 * km_dht per family, linked as siblings, as BEP 32 does), every
 * datagram is delivered after a deterministic pseudo-random latency, and
 * packets to dead nodes vanish.  Time jumps from event to event, so a
 * minute of network life takes milliseconds. */
#ifndef KM_TEST_VNET_H
#define KM_TEST_VNET_H

#include <stdbool.h>
#include <stddef.h>

#include "dht/dht.h"
#include "dht/rng.h"

struct vnet_lookup {
	bool done;
	struct km_lookup_result results[32];
	size_t nresults;
	struct km_addr peers[64];
	size_t npeers;
	struct km_lookup_stats stats;
};

struct vnet;

/* n nodes with IDs from the seeded generator; cfg may be NULL.  The nodes
 * run cfg->family (IPv4 without cfg). */
struct vnet *vnet_new(size_t n, uint64_t seed, const struct km_dht_config *cfg);
/* The same with the families chosen: both makes dual-stack nodes. */
struct vnet *vnet_new_families(size_t n, uint64_t seed,
			       const struct km_dht_config *cfg, bool v4,
			       bool v6);
void vnet_del(struct vnet *v);

/* Node i's first family's DHT and address (IPv4 if it runs IPv4). */
struct km_dht *vnet_node(struct vnet *v, size_t i);
const struct km_addr *vnet_addr(const struct vnet *v, size_t i);
/* A given family's; the DHT is NULL if node i does not run it. */
struct km_dht *vnet_node_in(struct vnet *v, size_t i, enum km_family family);
const struct km_addr *vnet_addr_in(const struct vnet *v, size_t i,
				   enum km_family family);
size_t vnet_size(const struct vnet *v);
km_ms vnet_now(const struct vnet *v);
struct km_rng *vnet_rng(struct vnet *v);
void vnet_set_dead(struct vnet *v, size_t i, bool dead);
/* Drops this many datagrams in a thousand, at random. */
void vnet_set_loss(struct vnet *v, unsigned permille);

/* Delivers packets and runs timers until virtual time `until`. */
void vnet_run_until(struct vnet *v, km_ms until);

/* Node i joins through node `via` (KRPC find_node of its own ID), in its
 * first family or in the one given. */
void vnet_join(struct vnet *v, size_t i, size_t via);
void vnet_join_in(struct vnet *v, size_t i, size_t via, enum km_family family);

/* Runs a lookup from node `from` to completion (or `limit` ms) and fills
 * out.  Returns false if it could not start or did not finish. */
bool vnet_lookup(struct vnet *v, size_t from, const struct km_id *target,
		 enum km_lookup_kind kind, struct vnet_lookup *out, km_ms limit);
bool vnet_lookup_in(struct vnet *v, size_t from, enum km_family family,
		    const struct km_id *target, enum km_lookup_kind kind,
		    struct vnet_lookup *out, km_ms limit);

/* The k closest live node IDs to target, by brute force, leaving out node
 * `except` (the one looking: a lookup never returns its own node). */
size_t vnet_true_closest(const struct vnet *v, const struct km_id *target,
			 size_t except, size_t k, struct km_id *out);

/* Whether a lookup's results are exactly these IDs, in this order (as
 * vnet_true_closest gives them). */
bool vnet_same_ids(const struct km_lookup_result *r, size_t nr,
		   const struct km_id *truth, size_t nt);

/* Injects a raw datagram to node i from addr, and returns the first reply
 * node i sends back to that address (copied to buf), or 0 if none.  Its
 * own queries to that address (a ping to confirm a newcomer) are dropped. */
size_t vnet_exchange(struct vnet *v, size_t i, const struct km_addr *from,
		     const uint8_t *pkt, size_t len, uint8_t *buf, size_t cap);

#endif
