/* dht-sim's engine: a discrete-event world of km_dht nodes.
 *
 * Every node is an unmodified km_dht.  The world owns a virtual clock, one
 * event heap and a seeded PRNG, and nothing else decides anything: the same
 * seed replays the same run, event for event.  Datagrams are the encoded
 * KRPC bytes the nodes send; each travels for half the round-trip time of
 * its pair of nodes (20-300 ms, fixed per pair by a hash of the pair and the
 * seed) and is lost with probability `loss`.  Node i lives at 10.a.b.c:6881
 * with a, b the low and middle bytes of i + 1 and c its high byte + 1 (so
 * the nodes spread over 256 /16s), and an address names its node without
 * a lookup table.
 *
 * Scenarios (scenarios.c) drive the world through sim_at() actions and read
 * the results through the lookup_done hook. */
#ifndef KM_SIM_SIM_H
#define KM_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/dht.h"
#include "dht/rng.h"

enum sim_scenario { SIM_LOOKUP, SIM_BROADCAST, SIM_CHURN, SIM_MESH };

struct sim_options {
	size_t nodes;
	uint64_t seed;
	enum sim_scenario scenario;
	int k, alpha, max_out;
	double loss, dead, churn;
	double session_median_s; /* lookup: Weibull(0.5) sessions; 0 = none */
	size_t lookups, broadcasts;
	size_t payload;        /* broadcast payload bytes: 1024 */
	km_ms join_over_ms;    /* the joins spread over this: 1,000 s */
	km_ms settle_ms;       /* then the network settles this long: 30 s */
	size_t lose_join;      /* this joiner's join query is lost; 0 = none */
	bool json;
	bool progress;         /* stderr is a terminal */
	bool timing;           /* report wall time, RSS and heap bytes */
};

enum sim_node_state {
	SIM_OFF,   /* not joined yet */
	SIM_LIVE,
	SIM_DEAD,  /* crashed: silent, packets to it vanish */
	SIM_GONE,  /* left politely */
};

struct sim;

struct sim_node {
	struct km_dht *dht;
	struct sim *sim;
	km_ms timer_at;        /* the pending timer event, 0 if none */
	uint32_t via;          /* the node it last joined through */
	uint8_t state;         /* enum sim_node_state */
	uint16_t gen;          /* newcomers in this slot so far: the port's
				  offset from 6881, so a leaver's contacts
				  reach nobody */
};

typedef void (*sim_action)(struct sim *s, uint32_t arg);

struct sim {
	struct sim_options opt;
	struct sim_node *nodes;
	size_t n;
	struct km_prng prng;   /* the nodes' randomness */
	struct km_rng rng;
	struct km_prng world;  /* the world's own choices: loss, picks */
	km_ms now;
	struct sim_event *heap;
	size_t heap_len, heap_cap;
	uint64_t seq;
	unsigned long packets, packets_lost;
	unsigned long replaced; /* nodes that left and had a newcomer */
	bool join_lost;        /* --lose-join has taken its datagram */
	/* Called for every user lookup that ends; may be NULL. */
	void (*lookup_done)(struct sim *s, size_t node, uint64_t id,
			    const struct km_lookup *lk);
	void *scenario;        /* the running scenario's state */
	double heap_baseline;  /* allocator bytes in use before sim_new */
};

/* NULL on allocation failure. */
struct sim *sim_new(const struct sim_options *opt);
void sim_del(struct sim *s);

uint32_t sim_rtt_ms(const struct sim *s, size_t a, size_t b);
void sim_addr(size_t i, struct km_addr *out);
/* Node i's address now: sim_addr()'s, with the port moved on by its
 * generation. */
void sim_node_addr(const struct sim *s, size_t i, struct km_addr *out);
/* The node index of a simulated address, or SIZE_MAX (also for the address
 * of a node that has left its slot to a newcomer). */
size_t sim_addr_index(const struct sim *s, const struct km_addr *a);
/* Uniform in [0, n) from the world's generator. */
uint64_t sim_pick(struct sim *s, uint64_t n);
double sim_uniform(struct sim *s);

/* Runs action(s, arg) at virtual time at. */
void sim_at(struct sim *s, km_ms at, sim_action action, uint32_t arg);
/* Processes events until none is left before `until` (or the heap is empty,
 * when until is 0). */
void sim_run_until(struct sim *s, km_ms until);
/* Re-arms node i's timer after something changed it from outside. */
void sim_poke(struct sim *s, size_t i);

/* Node i comes up and joins through node via (find_node of its own ID). */
void sim_join(struct sim *s, size_t i, size_t via);
/* Node i stops answering; its pending timer is dropped. */
void sim_crash(struct sim *s, size_t i);
/* Node i's slot goes to a newcomer with a fresh ID and the next port, not
 * yet joined (SIM_OFF).  -1 on allocation failure. */
int sim_replace(struct sim *s, size_t i);

/* The k closest live nodes to target by brute force, not counting node
 * `except`; writes their IDs closest first and returns how many. */
size_t sim_true_closest(const struct sim *s, const struct km_id *target,
			size_t except, size_t k, struct km_id *out);

/* Allocator bytes in use now, mmap()ed chunks included (glibc's
 * mallinfo2). */
double sim_heap_bytes(void);
/* Bytes the simulator holds for itself: the node array (32 bytes a node),
 * the event heap (48 bytes an event, at its high-water capacity) and the
 * datagrams in flight; writes how many events and datagrams are queued. */
double sim_own_bytes(const struct sim *s, size_t *events, size_t *dgrams);
/* Bytes the nodes' state holds: in use now less the baseline and the
 * simulator's own. */
double sim_dht_bytes(const struct sim *s);

/* Percentiles over a sorted array of doubles: p in [0, 1]. */
double sim_percentile(const double *sorted, size_t n, double p);
void sim_sort(double *v, size_t n);

/* Human-readable progress on stderr when opt.progress. */
void sim_progress(const struct sim *s, const char *what, size_t done,
		  size_t total);

#endif
