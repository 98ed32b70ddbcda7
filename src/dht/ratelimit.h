/* Per-source rate limits for incoming KRPC queries, with temporary bans,
 * and the record of which sources are verified (have answered us).
 *
 * Each source has a token bucket: `qps` tokens a second, at most `burst`
 * saved up; a query costs one token, and a query that finds none is
 * dropped.  A source with `ban_drops` drops inside one `ban_window_ms` is
 * banned for `ban_ms`: everything it sends is dropped unread.
 *
 * A source is an IP address -- except for loopback and private addresses,
 * where it is the IP and port, because there many honest nodes share one
 * host (a demo, a test, a LAN behind one NAT'd peer) and an attacker has no
 * cheap supply of such addresses anyway.
 *
 * The table is bounded: at max_entries the least recently active source is
 * forgotten (its tokens, ban and verification with it).  Its memory grows
 * with the sources actually heard from, half as much again at a time, up to
 * max_entries x 48 bytes plus the index (224 KiB at the default 4096); a
 * node that hears from 300 sources holds about 16 KiB.  Nothing here does
 * I/O; time comes in as `now`. */
#ifndef KM_DHT_RATELIMIT_H
#define KM_DHT_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "proto/ms.h"

/* The largest max_entries km_ratelimit_new() accepts. */
#define KM_RATELIMIT_MAX_ENTRIES ((1u << 24) - 1)

struct km_ratelimit_config {
	unsigned qps;          /* tokens per second; 0 disables the limit: 20 */
	unsigned burst;        /* bucket size: 40 */
	unsigned ban_drops;    /* drops in one window that earn a ban: 200 */
	km_ms ban_window_ms;   /* 10 s; at most 2^30 ms (12 days) */
	km_ms ban_ms;          /* how long a ban lasts: 10 min; at most 2^30 ms */
	size_t max_entries;    /* sources remembered: 4096 */
};

void km_ratelimit_config_default(struct km_ratelimit_config *cfg);

struct km_ratelimit_stats {
	unsigned long limited;   /* queries dropped: no token */
	unsigned long banned_drops; /* packets dropped from banned sources */
	unsigned long bans;      /* bans imposed, total */
	unsigned long evictions; /* sources forgotten at max_entries */
	size_t entries;          /* sources remembered now */
};

enum km_rl_verdict { KM_RL_PASS, KM_RL_LIMITED, KM_RL_BANNED };

struct km_ratelimit;

/* NULL on allocation failure or an invalid config (burst 0 with qps > 0,
 * burst above 4,294,967, max_entries 0 or above KM_RATELIMIT_MAX_ENTRIES). */
struct km_ratelimit *km_ratelimit_new(const struct km_ratelimit_config *cfg);
void km_ratelimit_del(struct km_ratelimit *rl); /* NULL is a no-op */

/* Keys the hash of the source index with a secret (random) value, so that
 * a flooder cannot choose addresses that collide.  Without it the key is 0. */
void km_ratelimit_set_key(struct km_ratelimit *rl, uint64_t key);

/* Bytes this limiter has allocated now, itself included. */
size_t km_ratelimit_mem(const struct km_ratelimit *rl);

/* True if from is banned now; costs no token.  For any packet. */
bool km_ratelimit_banned(struct km_ratelimit *rl, const struct km_addr *from,
			 km_ms now);

/* A query from `from`: takes a token, or says why not. */
enum km_rl_verdict km_ratelimit_query(struct km_ratelimit *rl,
				      const struct km_addr *from, km_ms now);

/* from answered one of our queries: it is a real endpoint, not a spoofed
 * victim, so replies to it need no amplification limit. */
void km_ratelimit_verify(struct km_ratelimit *rl, const struct km_addr *from,
			 km_ms now);
bool km_ratelimit_verified(const struct km_ratelimit *rl,
			   const struct km_addr *from);

/* Sources banned at now: O(entries), for status. */
size_t km_ratelimit_banned_now(const struct km_ratelimit *rl, km_ms now);
struct km_ratelimit_stats km_ratelimit_stats(const struct km_ratelimit *rl);
const struct km_ratelimit_config *km_ratelimit_config(const struct km_ratelimit *rl);

#endif
