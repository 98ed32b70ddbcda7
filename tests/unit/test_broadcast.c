#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dht/id.h"
#include "net/broadcast.h"
#include "overlaysim.h"
#include "proto/err.h"
#include "proto/wire.h"

/* ---- One km_bcast and a record of what it did ---- */

#define MAX_SENT 600

struct sent {
	uint64_t peer;
	uint8_t type;
	uint8_t body[KM_MSG_IDS_MAX_LEN + 64];
	size_t len;
};

struct rig {
	struct km_prng prng;
	struct km_rng rng;
	struct km_bcast *b;
	struct sent sent[MAX_SENT];
	size_t nsent;
	unsigned delivered;
	struct km_message last;
};

static void rig_send(void *user, uint64_t peer, uint8_t type,
		     const uint8_t *body, size_t len)
{
	struct rig *r = user;
	struct sent *s = &r->sent[r->nsent++];

	cr_assert_leq(r->nsent, MAX_SENT);
	s->peer = peer;
	s->type = type;
	s->len = len; /* the body is kept only as far as it fits */
	if (len)
		memcpy(s->body, body, len < sizeof(s->body) ? len : sizeof(s->body));
}

static void rig_deliver(void *user, const struct km_message *m)
{
	struct rig *r = user;

	r->delivered++;
	r->last = *m;
	r->last.payload = NULL;
}

/* Origin o's key: a seed made of o, so tests can sign as anyone. */
static struct km_ident origin_key(uint8_t o)
{
	uint8_t seed[KM_IDENT_SEED_LEN];
	struct km_ident k;

	memset(seed, o, sizeof(seed));
	cr_assert_eq(km_ident_from_seed(&k, seed), 0);
	return k;
}

/* A node with peers 1..npeers up at t = 1000. */
static struct rig *rig_new(const struct km_bcast_config *cfg, unsigned npeers)
{
	static const struct km_bcast_callbacks cb = { rig_send, rig_deliver };
	struct rig *r = calloc(1, sizeof(*r));
	struct km_id self = { .b = { 0xaa } };
	struct km_ident key = origin_key(0xaa);

	cr_assert_not_null(r);
	km_prng_seed(&r->prng, 1);
	r->rng = km_prng_rng(&r->prng);
	r->b = km_bcast_new(&self, &key, cfg, &cb, r, &r->rng, 1000);
	cr_assert_not_null(r->b);
	for (unsigned i = 1; i <= npeers; i++)
		cr_assert_eq(km_bcast_peer_up(r->b, i, 1000), 0);
	return r;
}

static void rig_del(struct rig *r)
{
	km_bcast_del(r->b);
	free(r);
}

static size_t count_type(const struct rig *r, uint8_t type)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nsent; i++)
		n += r->sent[i].type == type;
	return n;
}

static const struct sent *find_sent(const struct rig *r, uint64_t peer,
				    uint8_t type)
{
	for (size_t i = 0; i < r->nsent; i++)
		if (r->sent[i].peer == peer && r->sent[i].type == type)
			return &r->sent[i];
	return NULL;
}

/* A well-formed, signed MESSAGE body from origin `o` with sequence seq. */
static size_t make_msg(uint8_t *out, uint8_t o, uint64_t seq, uint16_t hops,
		       uint8_t id[static KM_MSG_ID_LEN])
{
	struct km_message m = { .seq = seq, .hops = hops, .origin = { { o } },
				.payload = (const uint8_t *)"ping", .payload_len = 4 };
	struct km_ident k = origin_key(o);

	cr_assert_eq(km_bcast_sign(&m, &k), 0);
	memcpy(id, m.id, KM_MSG_ID_LEN);
	return (size_t)km_msg_message_encode(out, KM_MESSAGE_HEADER_LEN + 4, &m);
}

static int feed_msg(struct rig *r, uint64_t peer, uint8_t o, uint64_t seq,
		    km_ms now, uint8_t id[static KM_MSG_ID_LEN])
{
	uint8_t body[KM_MESSAGE_HEADER_LEN + 4];
	size_t len = make_msg(body, o, seq, 3, id);

	return km_bcast_on_frame(r->b, peer, KM_FRAME_MESSAGE, body, len, now);
}

static int feed_ids(struct rig *r, uint64_t peer, uint8_t type,
		    const uint8_t *ids, size_t n, km_ms now)
{
	uint8_t body[KM_MSG_IDS_MAX_LEN];
	int len = km_msg_ids_encode(body, sizeof(body), ids, n);

	cr_assert_geq(len, 0);
	return km_bcast_on_frame(r->b, peer, type, body, (size_t)len, now);
}

static struct km_bcast_config cfg_default(void)
{
	struct km_bcast_config c;

	km_bcast_config_default(&c);
	return c;
}

/* ---- Eager push, PRUNE, IHAVE ---- */

Test(broadcast, a_published_message_is_delivered_locally_and_pushed_in_full_to_every_peer)
{
	struct rig *r = rig_new(NULL, 3);
	uint8_t id[KM_MSG_ID_LEN];
	struct km_message m;

	cr_assert_eq(km_bcast_publish(r->b, (const uint8_t *)"hi", 2, id, 1000), 0);
	cr_assert_eq(r->delivered, 1);
	cr_assert_eq(r->last.hops, 0);
	cr_assert_eq(memcmp(r->last.id, id, KM_MSG_ID_LEN), 0);
	cr_assert_eq(r->nsent, 3);
	for (uint64_t p = 1; p <= 3; p++) {
		const struct sent *s = find_sent(r, p, KM_FRAME_MESSAGE);

		cr_assert_not_null(s);
		cr_assert_eq(km_msg_message_decode(s->body, s->len, &m), 0);
		cr_assert_eq(m.hops, 1, "the origin's copy has crossed one link");
		cr_assert_eq(memcmp(m.id, id, KM_MSG_ID_LEN), 0);
		cr_assert_eq(m.payload_len, 2);
	}
	cr_assert_eq(km_bcast_stats(r->b).originated, 1);
	rig_del(r);
}

Test(broadcast, a_received_message_is_relayed_to_all_but_its_sender_with_one_more_hop)
{
	struct rig *r = rig_new(NULL, 3);
	uint8_t id[KM_MSG_ID_LEN];
	struct km_message m;

	cr_assert_eq(feed_msg(r, 2, 7, 1, 1000, id), 0);
	cr_assert_eq(r->delivered, 1);
	cr_assert_eq(r->last.hops, 3);
	cr_assert_eq(r->nsent, 2);
	cr_assert_null(find_sent(r, 2, KM_FRAME_MESSAGE));
	cr_assert_eq(km_msg_message_decode(find_sent(r, 1, KM_FRAME_MESSAGE)->body,
					   r->sent[0].len, &m), 0);
	cr_assert_eq(m.hops, 4);
	cr_assert_eq(km_bcast_stats(r->b).relayed, 2);
	rig_del(r);
}

Test(broadcast, a_duplicate_is_answered_with_prune_and_its_sender_becomes_lazy)
{
	struct rig *r = rig_new(NULL, 3);
	uint8_t id[KM_MSG_ID_LEN];

	cr_assert_eq(feed_msg(r, 1, 7, 1, 1000, id), 0);
	r->nsent = 0;
	cr_assert_eq(feed_msg(r, 3, 7, 1, 1010, id), 0);
	cr_assert_eq(r->delivered, 1, "delivered once");
	cr_assert_eq(r->nsent, 1);
	cr_assert_eq(r->sent[0].peer, 3);
	cr_assert_eq(r->sent[0].type, KM_FRAME_PRUNE);
	cr_assert_eq(r->sent[0].len, 0);
	cr_assert_not(km_bcast_peer_eager(r->b, 3));
	cr_assert(km_bcast_peer_eager(r->b, 1));
	cr_assert_eq(km_bcast_stats(r->b).duplicates, 1);
	cr_assert_eq(km_bcast_stats(r->b).prune_sent, 1);
	rig_del(r);
}

Test(broadcast, prune_makes_a_peer_lazy_and_it_then_gets_batched_ihave_after_the_flush_delay)
{
	struct rig *r = rig_new(NULL, 2);
	uint8_t a[KM_MSG_ID_LEN], b[KM_MSG_ID_LEN];
	const struct sent *s;

	cr_assert_eq(km_bcast_on_frame(r->b, 2, KM_FRAME_PRUNE, NULL, 0, 1000), 0);
	cr_assert_not(km_bcast_peer_eager(r->b, 2));
	cr_assert_eq(km_bcast_publish(r->b, (const uint8_t *)"a", 1, a, 1000), 0);
	cr_assert_eq(km_bcast_publish(r->b, (const uint8_t *)"b", 1, b, 1020), 0);
	cr_assert_eq(count_type(r, KM_FRAME_MESSAGE), 2, "only peer 1 gets payloads");
	cr_assert_null(find_sent(r, 2, KM_FRAME_MESSAGE));
	cr_assert_eq(km_bcast_tick(r->b, 1049), 1050, "the first ID waits 50 ms");
	cr_assert_eq(count_type(r, KM_FRAME_IHAVE), 0);
	km_bcast_tick(r->b, 1050);
	cr_assert_eq(count_type(r, KM_FRAME_IHAVE), 1, "one frame for both IDs");
	s = find_sent(r, 2, KM_FRAME_IHAVE);
	cr_assert_eq(s->len, 2 + 2 * KM_MSG_ID_LEN);
	cr_assert_eq(memcmp(s->body + 2, a, KM_MSG_ID_LEN), 0);
	cr_assert_eq(memcmp(s->body + 22, b, KM_MSG_ID_LEN), 0);
	rig_del(r);
}

Test(broadcast, an_ihave_batch_goes_out_at_once_when_it_reaches_the_cap)
{
	struct rig *r = rig_new(NULL, 1);
	uint8_t id[KM_MSG_ID_LEN];
	uint8_t p[4];

	km_bcast_on_frame(r->b, 1, KM_FRAME_PRUNE, NULL, 0, 1000);
	for (unsigned i = 0; i < KM_MSG_IDS_MAX; i++) {
		km_wire_put_u32(p, i);
		cr_assert_eq(count_type(r, KM_FRAME_IHAVE), 0);
		cr_assert_eq(km_bcast_publish(r->b, p, sizeof(p), id, 1000), 0);
	}
	cr_assert_eq(count_type(r, KM_FRAME_IHAVE), 1);
	cr_assert_eq(r->sent[0].len, KM_MSG_IDS_MAX_LEN);
	cr_assert_eq(km_bcast_stats(r->b).ihave_sent, 1);
	rig_del(r);
}

Test(broadcast, ihave_goes_to_lazy_fanout_random_lazy_peers_only)
{
	struct km_bcast_config c = cfg_default();
	struct rig *r;
	uint8_t id[KM_MSG_ID_LEN];

	c.lazy_fanout = 3;
	r = rig_new(&c, 10);
	for (uint64_t p = 2; p <= 10; p++)
		km_bcast_on_frame(r->b, p, KM_FRAME_PRUNE, NULL, 0, 1000);
	cr_assert_eq(km_bcast_publish(r->b, (const uint8_t *)"x", 1, id, 1000), 0);
	km_bcast_tick(r->b, 1050);
	cr_assert_eq(count_type(r, KM_FRAME_MESSAGE), 1);
	cr_assert_eq(count_type(r, KM_FRAME_IHAVE), 3);
	cr_assert_null(find_sent(r, 1, KM_FRAME_IHAVE), "not to the eager peer");
	rig_del(r);
}

/* ---- GRAFT ---- */

Test(broadcast, a_payload_missing_after_ihave_is_grafted_after_ihave_timeout)
{
	struct rig *r = rig_new(NULL, 2);
	uint8_t body[KM_MESSAGE_HEADER_LEN + 4], id[KM_MSG_ID_LEN];
	size_t len = make_msg(body, 7, 9, 2, id);
	const struct sent *s;

	km_bcast_on_frame(r->b, 2, KM_FRAME_PRUNE, NULL, 0, 1000);
	cr_assert_eq(feed_ids(r, 2, KM_FRAME_IHAVE, id, 1, 1000), 0);
	cr_assert_eq(km_bcast_tick(r->b, 1000), 2000);
	cr_assert_eq(km_bcast_tick(r->b, 1999), 2000);
	cr_assert_eq(r->nsent, 0);
	km_bcast_tick(r->b, 2000);
	cr_assert_eq(r->nsent, 1);
	s = find_sent(r, 2, KM_FRAME_GRAFT);
	cr_assert_not_null(s);
	cr_assert_eq(s->len, 22);
	cr_assert_eq(memcmp(s->body + 2, id, KM_MSG_ID_LEN), 0);
	cr_assert(km_bcast_peer_eager(r->b, 2), "grafting makes the link eager");
	/* The payload comes back: delivered, pushed on, no second GRAFT. */
	cr_assert_eq(km_bcast_on_frame(r->b, 2, KM_FRAME_MESSAGE, body, len, 2100), 0);
	cr_assert_eq(r->delivered, 1);
	cr_assert_not_null(find_sent(r, 1, KM_FRAME_MESSAGE));
	km_bcast_tick(r->b, 5000);
	cr_assert_eq(count_type(r, KM_FRAME_GRAFT), 1);
	rig_del(r);
}

Test(broadcast, a_graft_is_answered_with_the_cached_payload_and_makes_the_link_eager)
{
	struct rig *r = rig_new(NULL, 2);
	uint8_t id[KM_MSG_ID_LEN];
	struct km_message m;
	const struct sent *s;

	km_bcast_on_frame(r->b, 2, KM_FRAME_PRUNE, NULL, 0, 1000);
	cr_assert_eq(feed_msg(r, 1, 7, 1, 1000, id), 0);
	r->nsent = 0;
	cr_assert_eq(feed_ids(r, 2, KM_FRAME_GRAFT, id, 1, 1100), 0);
	cr_assert(km_bcast_peer_eager(r->b, 2));
	s = find_sent(r, 2, KM_FRAME_MESSAGE);
	cr_assert_not_null(s);
	cr_assert_eq(km_msg_message_decode(s->body, s->len, &m), 0);
	cr_assert_eq(memcmp(m.id, id, KM_MSG_ID_LEN), 0);
	cr_assert_eq(m.hops, 4);
	rig_del(r);
}

Test(broadcast, an_unanswered_graft_moves_on_to_the_next_announcer)
{
	struct rig *r = rig_new(NULL, 3);
	uint8_t id[KM_MSG_ID_LEN] = { 0x42 };

	cr_assert_eq(feed_ids(r, 2, KM_FRAME_IHAVE, id, 1, 1000), 0);
	cr_assert_eq(feed_ids(r, 3, KM_FRAME_IHAVE, id, 1, 1010), 0);
	km_bcast_tick(r->b, 2000);
	cr_assert_not_null(find_sent(r, 2, KM_FRAME_GRAFT));
	cr_assert_null(find_sent(r, 3, KM_FRAME_GRAFT));
	km_bcast_tick(r->b, 3000);
	cr_assert_not_null(find_sent(r, 3, KM_FRAME_GRAFT));
	cr_assert_eq(km_bcast_tick(r->b, 4000), 0, "nobody left to ask: forgotten");
	cr_assert_eq(km_bcast_stats(r->b).graft_sent, 2);
	rig_del(r);
}

Test(broadcast, a_message_arriving_by_graft_and_by_eager_push_is_delivered_once)
{
	struct rig *r = rig_new(NULL, 3);
	uint8_t id[KM_MSG_ID_LEN];
	uint8_t body[KM_MESSAGE_HEADER_LEN + 4];
	size_t len = make_msg(body, 7, 5, 2, id);

	cr_assert_eq(feed_ids(r, 2, KM_FRAME_IHAVE, id, 1, 1000), 0);
	km_bcast_tick(r->b, 2000); /* GRAFT to 2 */
	cr_assert_eq(km_bcast_on_frame(r->b, 1, KM_FRAME_MESSAGE, body, len, 2010), 0);
	cr_assert_eq(km_bcast_on_frame(r->b, 2, KM_FRAME_MESSAGE, body, len, 2020), 0);
	cr_assert_eq(r->delivered, 1);
	cr_assert_eq(km_bcast_stats(r->b).duplicates, 1);
	cr_assert_not_null(find_sent(r, 2, KM_FRAME_PRUNE));
	rig_del(r);
}

Test(broadcast, an_ihave_for_a_message_already_delivered_is_ignored)
{
	struct rig *r = rig_new(NULL, 2);
	uint8_t id[KM_MSG_ID_LEN];

	cr_assert_eq(feed_msg(r, 1, 7, 1, 1000, id), 0);
	r->nsent = 0;
	cr_assert_eq(feed_ids(r, 2, KM_FRAME_IHAVE, id, 1, 1000), 0);
	km_bcast_tick(r->b, 9000);
	cr_assert_eq(count_type(r, KM_FRAME_GRAFT), 0);
	rig_del(r);
}

/* ---- Links going away ---- */

Test(broadcast, peer_down_forgets_the_peer_and_losing_an_eager_one_grafts_lazy_peers)
{
	struct rig *r = rig_new(NULL, 4);
	uint8_t id[KM_MSG_ID_LEN];

	for (uint64_t p = 2; p <= 4; p++)
		km_bcast_on_frame(r->b, p, KM_FRAME_PRUNE, NULL, 0, 1000);
	km_bcast_peer_down(r->b, 3, 1000);
	cr_assert_eq(r->nsent, 0, "a lazy peer leaving needs no repair");
	cr_assert_eq(km_bcast_stats(r->b).lazy, 2);
	km_bcast_peer_down(r->b, 1, 1000);
	cr_assert_eq(count_type(r, KM_FRAME_GRAFT), 2, "every lazy peer left");
	cr_assert_eq(r->sent[0].len, 2, "an empty GRAFT: just be eager");
	cr_assert(km_bcast_peer_eager(r->b, 2));
	cr_assert(km_bcast_peer_eager(r->b, 4));
	cr_assert_eq(km_bcast_stats(r->b).eager, 2);
	r->nsent = 0;
	cr_assert_eq(km_bcast_publish(r->b, (const uint8_t *)"x", 1, id, 1100), 0);
	cr_assert_null(find_sent(r, 1, KM_FRAME_MESSAGE));
	cr_assert_null(find_sent(r, 3, KM_FRAME_MESSAGE));
	cr_assert_eq(count_type(r, KM_FRAME_MESSAGE), 2);
	/* A frame from a peer that is down still delivers, changing nothing. */
	cr_assert_eq(feed_msg(r, 3, 8, 1, 1200, id), 0);
	cr_assert_eq(r->delivered, 2);
	cr_assert_eq(km_bcast_stats(r->b).eager + km_bcast_stats(r->b).lazy, 2);
	rig_del(r);
}

Test(broadcast, peers_beyond_max_peers_are_refused)
{
	struct km_bcast_config c = cfg_default();
	struct rig *r;

	c.max_peers = 2;
	r = rig_new(&c, 2);
	cr_assert_eq(km_bcast_peer_up(r->b, 1, 1000), 0, "repeat: no-op");
	cr_assert_eq(km_bcast_peer_up(r->b, 3, 1000), KM_ERR_FULL);
	km_bcast_peer_down(r->b, 1, 1000);
	cr_assert_eq(km_bcast_peer_up(r->b, 3, 1000), 0);
	rig_del(r);
}

/* ---- Caps and expiry ---- */

Test(broadcast, the_seen_cache_forgets_its_oldest_entry_past_its_cap)
{
	struct km_bcast_config c = cfg_default();
	struct rig *r;
	uint8_t id[KM_MSG_ID_LEN];

	c.seen_max = 4;
	r = rig_new(&c, 1);
	for (uint64_t seq = 1; seq <= 5; seq++)
		cr_assert_eq(feed_msg(r, 1, 7, seq, 1000, id), 0);
	cr_assert_eq(feed_msg(r, 1, 7, 5, 1000, id), 0);
	cr_assert_eq(r->delivered, 5, "the newest is still remembered");
	cr_assert_eq(feed_msg(r, 1, 7, 1, 1000, id), 0);
	cr_assert_eq(r->delivered, 5, "forgotten, but the replay window holds");
	cr_assert_eq(km_bcast_stats(r->b).replayed, 1);
	cr_assert_eq(km_bcast_stats(r->b).seen_evicted, 1, "the cap bit once");
	cr_assert_leq(km_bcast_stats(r->b).seen_now, 4);
	rig_del(r);
}

Test(broadcast, seen_entries_expire_after_seen_ttl)
{
	struct km_bcast_config c = cfg_default();
	struct rig *r;
	uint8_t id[KM_MSG_ID_LEN];

	c.seen_ttl_ms = 5000;
	c.cache_ttl_ms = 2000;
	r = rig_new(&c, 1);
	cr_assert_eq(feed_msg(r, 1, 7, 1, 1000, id), 0);
	cr_assert_eq(km_bcast_tick(r->b, 1000), 3000, "the payload expires first");
	cr_assert_eq(km_bcast_tick(r->b, 3000), 6000, "then the ID");
	cr_assert_eq(feed_msg(r, 1, 7, 1, 5999, id), 0);
	cr_assert_eq(r->delivered, 1);
	km_bcast_tick(r->b, 6000);
	cr_assert_eq(km_bcast_tick(r->b, 6000), 0, "nothing left to wake for");
	cr_assert_eq(feed_msg(r, 1, 7, 1, 6000, id), 0);
	cr_assert_eq(r->delivered, 1, "expired, but still a replay");
	cr_assert_eq(km_bcast_stats(r->b).replayed, 1);
	rig_del(r);
}

Test(broadcast, the_payload_cache_is_capped_in_bytes_and_expires)
{
	struct km_bcast_config c = cfg_default();
	struct rig *r;
	uint8_t a[KM_MSG_ID_LEN], b[KM_MSG_ID_LEN];

	c.cache_max_bytes = KM_MESSAGE_HEADER_LEN + 4; /* one message */
	c.cache_ttl_ms = 2000;
	r = rig_new(&c, 2);
	cr_assert_eq(feed_msg(r, 1, 7, 1, 1000, a), 0);
	cr_assert_eq(feed_msg(r, 1, 7, 2, 1000, b), 0);
	r->nsent = 0;
	cr_assert_eq(feed_ids(r, 2, KM_FRAME_GRAFT, a, 1, 1100), 0);
	cr_assert_eq(r->nsent, 0, "a was pushed out by b");
	cr_assert_eq(feed_ids(r, 2, KM_FRAME_GRAFT, b, 1, 1100), 0);
	cr_assert_eq(r->nsent, 1);
	cr_assert_eq(feed_ids(r, 2, KM_FRAME_GRAFT, b, 1, 3000), 0);
	cr_assert_eq(r->nsent, 1, "b expired");
	rig_del(r);
}

Test(broadcast, announced_but_missing_ids_are_capped)
{
	struct km_bcast_config c = cfg_default();
	struct rig *r;
	uint8_t ids[10 * KM_MSG_ID_LEN] = { 0 };

	c.missing_max = 4;
	r = rig_new(&c, 1);
	for (int i = 0; i < 10; i++)
		ids[i * KM_MSG_ID_LEN] = (uint8_t)(i + 1);
	cr_assert_eq(feed_ids(r, 1, KM_FRAME_IHAVE, ids, 10, 1000), 0);
	km_bcast_tick(r->b, 2000);
	cr_assert_eq(count_type(r, KM_FRAME_GRAFT), 4);
	cr_assert_eq(km_bcast_stats(r->b).dropped, 6);
	rig_del(r);
}

/* ---- Hostile input ---- */

Test(broadcast, malformed_frames_are_rejected_with_the_right_error)
{
	struct rig *r = rig_new(NULL, 2);
	uint8_t body[KM_MESSAGE_HEADER_LEN + 4], id[KM_MSG_ID_LEN];
	size_t len = make_msg(body, 7, 1, 1, id);

	cr_assert_eq(km_bcast_on_frame(r->b, 1, KM_FRAME_MESSAGE, body, 49, 1000),
		     KM_ERR_TRUNCATED);
	body[KM_MESSAGE_HEADER_LEN] ^= 1; /* payload no longer matches the ID */
	cr_assert_eq(km_bcast_on_frame(r->b, 1, KM_FRAME_MESSAGE, body, len, 1000),
		     KM_ERR_CHECKSUM);
	cr_assert_eq(km_bcast_on_frame(r->b, 1, KM_FRAME_IHAVE,
				       (uint8_t[]){ 0, 2, 0 }, 3, 1000),
		     KM_ERR_TRUNCATED);
	cr_assert_eq(km_bcast_on_frame(r->b, 1, KM_FRAME_GRAFT,
				       (uint8_t[]){ 0xff, 0xff }, 2, 1000),
		     KM_ERR_TOO_MANY);
	cr_assert_eq(km_bcast_on_frame(r->b, 1, KM_FRAME_GRAFT,
				       (uint8_t[]){ 0, 0, 1 }, 3, 1000),
		     KM_ERR_TRAILING);
	cr_assert_eq(km_bcast_on_frame(r->b, 1, KM_FRAME_PRUNE,
				       (uint8_t[]){ 0 }, 1, 1000),
		     KM_ERR_TRAILING);
	cr_assert_eq(km_bcast_on_frame(r->b, 1, KM_FRAME_HELLO, body, len, 1000),
		     KM_ERR_UNKNOWN_TYPE);
	cr_assert_eq(r->delivered, 0);
	cr_assert_eq(r->nsent, 0);
	cr_assert(km_bcast_peer_eager(r->b, 1), "no state changed");
	cr_assert_eq(km_bcast_stats(r->b).dropped, 6);
	rig_del(r);
}

Test(broadcast, handles_exactly_the_four_broadcast_frame_types)
{
	int n = 0;

	for (int t = 0; t < 256; t++)
		n += km_bcast_handles((uint8_t)t);
	cr_assert_eq(n, 4);
	cr_assert(km_bcast_handles(KM_FRAME_MESSAGE));
	cr_assert(km_bcast_handles(KM_FRAME_IHAVE));
	cr_assert(km_bcast_handles(KM_FRAME_GRAFT));
	cr_assert(km_bcast_handles(KM_FRAME_PRUNE));
}

Test(broadcast, publish_refuses_a_payload_over_the_message_limit)
{
	struct rig *r = rig_new(NULL, 1);
	uint8_t *big = calloc(1, KM_MESSAGE_PAYLOAD_MAX + 1);
	uint8_t id[KM_MSG_ID_LEN];

	cr_assert_eq(km_bcast_publish(r->b, big, KM_MESSAGE_PAYLOAD_MAX + 1, id, 1000),
		     KM_ERR_TOO_LONG);
	cr_assert_eq(km_bcast_publish(r->b, big, KM_MESSAGE_PAYLOAD_MAX, id, 1000), 0);
	cr_assert_eq(r->sent[0].type, KM_FRAME_MESSAGE);
	free(big);
	rig_del(r);
}

Test(broadcast, del_of_null_is_a_no_op)
{
	km_bcast_del(NULL);
}

/* ---- Simulated overlays ---- */

/* The knobs from the environment (see the by-hand test at the end). */
static struct km_bcast_config cfg_tuned(void)
{
	struct km_bcast_config bc = cfg_default();

	if (getenv("KM_T"))
		bc.ihave_timeout_ms = strtoul(getenv("KM_T"), NULL, 10);
	if (getenv("KM_F"))
		bc.lazy_fanout = (unsigned)strtoul(getenv("KM_F"), NULL, 10);
	if (getenv("KM_R"))
		bc.repair_grafts = (unsigned)strtoul(getenv("KM_R"), NULL, 10);
	return bc;
}

static struct osim *overlay_with(size_t n, unsigned out, uint64_t seed,
				 const struct km_bcast_config *bc)
{
	struct osim_config c = { .n = n, .out = out, .lat_min = 20,
				 .lat_max = 300, .seed = seed, .bcast = bc };
	struct osim *s = osim_new(&c);

	cr_assert_not_null(s);
	return s;
}

static struct osim *overlay(size_t n, unsigned out, uint64_t seed)
{
	struct km_bcast_config bc = cfg_tuned();

	return overlay_with(n, out, seed, &bc);
}

static unsigned long grafts(struct osim *s)
{
	unsigned long n = 0;

	for (size_t i = 0; i < osim_size(s); i++)
		if (osim_alive(s, i))
			n += km_bcast_stats(osim_bcast(s, i)).graft_sent;
	return n;
}

static void kill_quarter(struct osim *s, struct km_prng *pick)
{
	for (size_t killed = 0; killed < osim_size(s) / 4;) {
		size_t i = km_prng_next(pick) % osim_size(s);

		if (osim_alive(s, i)) {
			osim_kill(s, i);
			killed++;
		}
	}
	osim_run_until(s, osim_now(s) + KM_SECONDS(5));
}

static void print_report(const char *what, const struct osim_report *r)
{
	printf("%-18s coverage %zu/%zu  copies/node %.3f  hops max %u mean %.2f  "
	       "last %llu ms  control/payload %.3f\n",
	       what, r->reached, r->live, r->copies_per_node, r->hops_max,
	       r->hops_mean, (unsigned long long)r->last_delivery,
	       r->payload_bytes ? (double)r->control_bytes / (double)r->payload_bytes
				: 0.0);
}

/* Sends `count` 1 KiB broadcasts from random live origins, asserting that
 * each reaches every live node exactly once, and sums the later ones. */
static void broadcasts(struct osim *s, struct km_prng *pick, unsigned count,
		       const char *label, struct osim_report *sum)
{
	uint8_t payload[1024];

	*sum = (struct osim_report){ 0 };
	for (unsigned k = 0; k < count; k++) {
		struct osim_report r;
		size_t origin;

		do
			origin = km_prng_next(pick) % osim_size(s);
		while (!osim_alive(s, origin));
		memset(payload, (int)k, sizeof(payload));
		cr_assert_eq(osim_broadcast(s, origin, payload, sizeof(payload),
					    KM_SECONDS(20), &r), 0);
		cr_assert_eq(r.reached, r.live, "%s %u: %zu of %zu reached", label,
			     k, r.reached, r.live);
		cr_assert_eq(r.repeated, 0, "%s %u: delivered twice", label, k);
		if (getenv("KM_OVERLAY_VERBOSE"))
			print_report("  one message", &r);
		if (k == 0) {
			char what[64];

			snprintf(what, sizeof(what), "%s first", label);
			print_report(what, &r);
			continue;
		}
		sum->live = r.live;
		sum->reached += r.reached;
		sum->copies_per_node += r.copies_per_node / (count - 1);
		sum->hops_mean += r.hops_mean / (count - 1);
		if (r.hops_max > sum->hops_max)
			sum->hops_max = r.hops_max;
		if (r.last_delivery > sum->last_delivery)
			sum->last_delivery = r.last_delivery;
		sum->payload_bytes += r.payload_bytes;
		sum->control_bytes += r.control_bytes;
	}
	sum->reached /= count - 1;
	print_report(label, sum);
}

Test(broadcast, on_1000_nodes_with_out_degree_8_every_message_reaches_everyone_once_at_1_2_copies)
{
	struct osim *s = overlay(1000, 8, 42);
	struct km_prng pick;
	struct osim_report sum;

	km_prng_seed(&pick, 7);
	printf("1000 nodes, out-degree 8: plain flooding would cost %.2f copies/node\n",
	       osim_flood_copies(s));
	broadcasts(s, &pick, 20, "1000 later 19", &sum);
	cr_assert_leq(sum.copies_per_node, 1.2);
	cr_assert_leq(sum.hops_max, 2 * log2(1000.0));
	cr_assert_leq((double)sum.control_bytes / (double)sum.payload_bytes, 0.15);
	osim_del(s);
}

Test(broadcast, after_a_quarter_of_the_nodes_die_broadcasts_still_reach_every_survivor)
{
	struct osim *s = overlay(1000, 8, 43);
	struct km_prng pick;
	struct osim_report sum;

	km_prng_seed(&pick, 8);
	broadcasts(s, &pick, 3, "1000 before churn", &sum);
	kill_quarter(s, &pick);
	broadcasts(s, &pick, 10, "750 after churn", &sum);
	cr_assert_leq(sum.copies_per_node, 1.2);
	cr_assert_leq(sum.hops_max, 2 * log2(750.0));
	osim_del(s);
}

/* The paper's Plumtree: no repair grafts, IHAVE to every lazy peer.  The
 * tree then heals through IHAVE timeouts and GRAFT alone. */
Test(broadcast, with_ihave_to_every_lazy_peer_churn_is_repaired_by_graft_alone)
{
	struct km_bcast_config bc = cfg_default();
	struct osim *s;
	struct km_prng pick;
	struct osim_report sum;
	unsigned long before;

	bc.lazy_fanout = 0;
	bc.repair_grafts = 0;
	s = overlay_with(1000, 8, 43, &bc);
	km_prng_seed(&pick, 8);
	broadcasts(s, &pick, 3, "paper before", &sum);
	kill_quarter(s, &pick);
	before = grafts(s);
	broadcasts(s, &pick, 5, "paper after churn", &sum);
	cr_assert_gt(grafts(s), before);
	osim_del(s);
}

Test(broadcast, three_nodes_in_a_full_mesh_each_deliver_every_broadcast_once)
{
	struct osim *s = overlay(3, 2, 1);
	struct km_prng pick;
	struct osim_report sum;

	km_prng_seed(&pick, 9);
	broadcasts(s, &pick, 5, "3 nodes", &sum);
	osim_del(s);
}

/* By hand, not in the suite:
 *   KM_OVERLAY_N=10000 build/tests/test_broadcast --filter 'broadcast/by_hand*'
 * runs the 1,000-node scenario at any size, with 25% churn at the end.
 * KM_OVERLAY_VERBOSE=1 prints every message; KM_T, KM_F and KM_R override
 * ihave_timeout_ms, lazy_fanout and repair_grafts for tuning. */
Test(broadcast, by_hand_a_large_overlay_meets_the_efficiency_target)
{
	const char *env = getenv("KM_OVERLAY_N");
	size_t n = env ? (size_t)strtoul(env, NULL, 10) : 0;
	struct osim *s;
	struct km_prng pick;
	struct osim_report sum;

	if (n < 10)
		cr_skip_test("set KM_OVERLAY_N to run");
	s = overlay(n, 8, 44);
	km_prng_seed(&pick, 10);
	printf("%zu nodes, out-degree 8: plain flooding would cost %.2f copies/node, "
	       "2*log2(N) = %.1f\n", n, osim_flood_copies(s), 2 * log2((double)n));
	broadcasts(s, &pick, 20, "large later 19", &sum);
	kill_quarter(s, &pick);
	broadcasts(s, &pick, 10, "large after churn", &sum);
	osim_del(s);
}

/* ---- Signatures, replay window, per-origin rate ---- */

static int feed_signed(struct rig *r, uint8_t o, uint64_t seq, km_ms now)
{
	uint8_t id[KM_MSG_ID_LEN];

	return feed_msg(r, 1, o, seq, now, id);
}

Test(broadcast, a_message_signed_with_a_key_other_than_the_pinned_one_is_forged)
{
	struct rig *r = rig_new(NULL, 2);
	struct km_id seven = { .b = { 7 } };
	struct km_ident eight = origin_key(8);

	cr_assert_eq(km_bcast_pin(r->b, &seven, eight.pub, 1000), 0);
	cr_assert_eq(km_bcast_pin(r->b, &seven, origin_key(7).pub, 1000),
		     KM_ERR_AUTH, "a pin is not overwritten");
	cr_assert_eq(feed_signed(r, 7, 1, 1000), KM_ERR_AUTH);
	cr_assert_eq(r->delivered, 0);
	cr_assert_eq(count_type(r, KM_FRAME_MESSAGE), 0, "not relayed either");
	cr_assert_eq(km_bcast_stats(r->b).forged, 1);
	rig_del(r);
}

Test(broadcast, a_tampered_payload_or_signature_is_never_delivered)
{
	struct rig *r = rig_new(NULL, 2);
	uint8_t body[KM_MESSAGE_HEADER_LEN + 4], id[KM_MSG_ID_LEN];
	size_t len = make_msg(body, 7, 1, 1, id);
	struct km_message m;

	/* A new payload with a matching ID, under the old signature. */
	cr_assert_eq(km_msg_message_decode(body, len, &m), 0);
	m.payload = (const uint8_t *)"pong";
	{
		struct km_ident k = origin_key(7);
		uint8_t sig[KM_SIG_LEN];

		memcpy(sig, m.sig, KM_SIG_LEN);
		cr_assert_eq(km_bcast_sign(&m, &k), 0); /* for the new ID */
		memcpy(m.sig, sig, KM_SIG_LEN);
	}
	cr_assert_eq(km_msg_message_encode(body, sizeof(body), &m), (int)len);
	cr_assert_eq(km_bcast_on_frame(r->b, 1, KM_FRAME_MESSAGE, body, len,
				       1000), KM_ERR_AUTH);
	/* The genuine message with one bit of its signature flipped. */
	len = make_msg(body, 7, 2, 1, id);
	body[KM_MESSAGE_HEADER_LEN - 1] ^= 1;
	cr_assert_eq(km_bcast_on_frame(r->b, 1, KM_FRAME_MESSAGE, body, len,
				       1000), KM_ERR_AUTH);
	cr_assert_eq(r->delivered, 0);
	cr_assert_eq(km_bcast_stats(r->b).forged, 2);
	rig_del(r);
}

Test(broadcast, the_replay_window_takes_reordering_and_refuses_old_numbers)
{
	struct rig *r = rig_new(NULL, 1);

	cr_assert_eq(feed_signed(r, 7, 100, 1000), 0);
	cr_assert_eq(feed_signed(r, 7, 90, 1000), 0, "late but in the window");
	cr_assert_eq(feed_signed(r, 7, 36, 1000), 0); /* 100 - 64 */
	cr_assert_eq(r->delivered, 2);
	cr_assert_eq(feed_signed(r, 7, 200, 1000), 0);
	cr_assert_eq(feed_signed(r, 7, 137, 1000), 0); /* 200 - 63 */
	cr_assert_eq(feed_signed(r, 7, 136, 1000), 0);
	cr_assert_eq(r->delivered, 4);
	cr_assert_eq(km_bcast_stats(r->b).replayed, 2);
	rig_del(r);
}

Test(broadcast, each_origin_is_rate_limited_by_its_own_token_bucket)
{
	struct km_bcast_config c = cfg_default();
	struct rig *r;

	c.origin_rate = 2;
	c.origin_burst = 5;
	r = rig_new(&c, 1);
	for (uint64_t seq = 1; seq <= 8; seq++)
		cr_assert_eq(feed_signed(r, 7, seq, 1000), 0);
	cr_assert_eq(r->delivered, 5, "the burst, then nothing");
	cr_assert_eq(km_bcast_stats(r->b).rate_limited, 3);
	cr_assert_eq(feed_signed(r, 8, 1, 1000), 0);
	cr_assert_eq(r->delivered, 6, "another origin has its own bucket");
	cr_assert_eq(feed_signed(r, 7, 9, 1499), 0);
	cr_assert_eq(r->delivered, 6, "refilled by 0.998 of a message");
	cr_assert_eq(feed_signed(r, 7, 10, 1500), 0);
	cr_assert_eq(r->delivered, 7, "2 per second: one more after 500 ms");
	rig_del(r);
}

/* Every node's deliveries so far. */
static unsigned long delivered_total(struct osim *s)
{
	unsigned long n = 0;

	for (size_t i = 0; i < osim_size(s); i++)
		n += km_bcast_stats(osim_bcast(s, i)).delivered;
	return n;
}

/* Offers body to every node, as if from a stranger (link id 1000). */
static void inject_everywhere(struct osim *s, const struct km_message *m)
{
	uint8_t body[KM_MESSAGE_HEADER_LEN + 64];
	int len = km_msg_message_encode(body, sizeof(body), m);

	cr_assert_gt(len, 0);
	for (size_t i = 0; i < osim_size(s); i++)
		cr_assert_eq(km_bcast_on_frame(osim_bcast(s, i), 1000,
					       KM_FRAME_MESSAGE, body,
					       (size_t)len, osim_now(s)),
			     KM_ERR_AUTH, "node %zu", i);
}

Test(broadcast, forged_and_tampered_broadcasts_reach_none_of_10_nodes)
{
	struct osim_config oc = { .n = 10, .out = 3, .lat_min = 5,
				  .lat_max = 20, .seed = 9 };
	struct osim *s = osim_new(&oc);
	struct osim_report rep;
	struct km_ident thief = origin_key(0x77), real;
	struct km_message m = { .seq = 1ULL << 40, .hops = 1,
				.payload = (const uint8_t *)"forged",
				.payload_len = 6 };
	uint8_t sig[KM_SIG_LEN];
	unsigned long before;

	cr_assert_not_null(s);
	/* Node 3 speaks once, so everyone knows its key. */
	cr_assert_eq(osim_broadcast(s, 3, (const uint8_t *)"genuine", 7, 3000,
				    &rep), 0);
	cr_assert_eq(rep.reached, rep.live);
	before = delivered_total(s);
	/* 1. In node 3's name, signed with the thief's own key. */
	m.origin = *osim_id(s, 3);
	cr_assert_eq(km_bcast_sign(&m, &thief), 0);
	inject_everywhere(s, &m);
	/* 2. Node 3's genuine signature over "pay 10", payload now "pay 99"
	 * (the ID recomputed to match). */
	osim_node_key(osim_id(s, 3), &real);
	m.payload = (const uint8_t *)"pay 10";
	m.seq++;
	cr_assert_eq(km_bcast_sign(&m, &real), 0);
	memcpy(sig, m.sig, sizeof(sig));
	m.payload = (const uint8_t *)"pay 99";
	cr_assert_eq(km_bcast_sign(&m, &thief), 0);
	memcpy(m.pubkey, real.pub, KM_PUBKEY_LEN);
	memcpy(m.sig, sig, sizeof(sig));
	inject_everywhere(s, &m);
	/* 3. A stranger's name with a made-up signature. */
	memset(m.origin.b, 0x55, KM_ID_LEN);
	memset(m.sig, 0x5a, KM_SIG_LEN);
	cr_assert_eq(km_bcast_sign(&m, &thief), 0);
	m.sig[7] ^= 0x10;
	inject_everywhere(s, &m);
	osim_run_until(s, osim_now(s) + 5000);
	cr_assert_eq(delivered_total(s), before, "something forged got through");
	for (size_t i = 0; i < osim_size(s); i++)
		cr_assert_eq(km_bcast_stats(osim_bcast(s, i)).forged, 3);
	osim_del(s);
}
