/* km_rendezvous without a node: fake callbacks record the frames it sends
 * (natfake.h) and the private nodes it passes on.  Neighbours hear REACH
 * when we turn private or back; a neighbour that turns private hears which
 * other private neighbours we can coordinate punches for, and they hear
 * about it. */
#include <criterion/criterion.h>
#include <string.h>

#include "natfake.h"
#include "net/rendezvous.h"
#include "proto/err.h"
#include "proto/frame.h"

static struct {
	int learned;
	struct km_peer last;
	uint64_t via;
} f;

static struct km_rendezvous *r;

static void fake_learned(void *user, const struct km_peer *peer, uint64_t via,
			 km_ms now)
{
	f.learned++;
	f.last = *peer;
	f.via = via;
}

static const struct km_rendezvous_callbacks cb = {
	.send = natfake_send, .learned = fake_learned,
};

static void setup(void)
{
	memset(&f, 0, sizeof(f));
	natfake_reset();
	r = km_rendezvous_new(&cb, NULL);
	cr_assert_not_null(r);
}

static void teardown(void)
{
	km_rendezvous_del(r);
}

TestSuite(rendezvous, .init = setup, .fini = teardown);

static void up(uint64_t link, bool relayed)
{
	struct km_peer p = natfake_peer(link);

	cr_assert_eq(km_rendezvous_up(r, link, &p, relayed), 0);
}

static int reach(uint64_t link, uint8_t v)
{
	return km_rendezvous_on_frame(r, link, KM_FRAME_REACH, &v, 1, 1000);
}

static int reach_heard(uint64_t link)
{
	const struct natfake_sent *s = natfake_sent_to(link, KM_FRAME_REACH);

	return s ? s->body[0] : -1;
}

/* The private nodes a RENDEZVOUS on link names, as link numbers. */
static size_t rendezvous_names(uint64_t link, uint64_t *out, size_t max)
{
	const struct natfake_sent *s = natfake_sent_to(link, KM_FRAME_RENDEZVOUS);
	struct km_peer peers[KM_RENDEZVOUS_MAX];
	int count;

	if (!s)
		return 0;
	count = km_msg_peer_list_decode(s->body, s->len, peers, KM_RENDEZVOUS_MAX);
	cr_assert_geq(count, 0);
	for (int i = 0; i < count && (size_t)i < max; i++)
		out[i] = peers[i].id.b[0] / 0x11;
	return (size_t)count;
}

Test(rendezvous, neighbours_hear_reach_only_when_we_turn_private_or_back)
{
	up(1, false);
	up(2, false);
	km_rendezvous_set_private(r, false);
	cr_assert_eq(natfake.nsent, 0, "public is what they assume");
	km_rendezvous_set_private(r, true);
	cr_assert_eq(reach_heard(1), 1);
	cr_assert_eq(reach_heard(2), 1);
	km_rendezvous_set_private(r, true);
	cr_assert_eq(natfake.nsent, 2);
	km_rendezvous_set_private(r, false);
	cr_assert_eq(reach_heard(1), 0);
	cr_assert_eq(natfake.nsent, 4);
}

Test(rendezvous, a_new_neighbour_hears_that_we_are_private)
{
	km_rendezvous_set_private(r, true);
	up(3, false);
	cr_assert_eq(reach_heard(3), 1);
}

Test(rendezvous, a_neighbour_that_is_gone_hears_nothing_more)
{
	up(1, false);
	up(2, false);
	km_rendezvous_gone(r, 1);
	km_rendezvous_set_private(r, true);
	cr_assert_eq(reach_heard(1), -1);
	cr_assert_eq(reach_heard(2), 1);
}

Test(rendezvous, a_neighbour_turning_private_hears_of_the_others_and_they_of_it)
{
	uint64_t names[4];

	up(1, false);
	up(2, false);
	up(3, false);
	reach(1, 1);
	cr_assert_null(natfake_sent_to(1, KM_FRAME_RENDEZVOUS), "no one to name");
	reach(3, 1);
	cr_assert_eq(rendezvous_names(3, names, 4), 1);
	cr_assert_eq(names[0], 1);
	cr_assert_eq(rendezvous_names(1, names, 4), 1);
	cr_assert_eq(names[0], 3);
	cr_assert_null(natfake_sent_to(2, KM_FRAME_RENDEZVOUS), "2 is public");
	cr_assert_eq(km_rendezvous_stats(r).sent, 2);
	cr_assert_eq(km_rendezvous_stats(r).private_now, 2);
}

Test(rendezvous, a_neighbour_saying_private_again_is_not_advertised_again)
{
	up(1, false);
	up(2, false);
	reach(1, 1);
	reach(2, 1);
	reach(2, 1);
	cr_assert_eq(km_rendezvous_stats(r).sent, 2);
}

Test(rendezvous, relayed_neighbours_and_those_without_a_port_are_no_ones_rendezvous)
{
	natfake.no_port = 2;
	up(1, true);
	up(2, false);
	up(3, false);
	reach(1, 1);
	reach(2, 1);
	reach(3, 1);
	cr_assert_eq(km_rendezvous_stats(r).sent, 0);
	cr_assert_eq(km_rendezvous_stats(r).private_now, 3);
}

Test(rendezvous, the_private_nodes_a_rendezvous_names_are_passed_on_with_it)
{
	struct km_peer peers[2] = { natfake_peer(7), natfake_peer(8) };
	uint8_t body[2 + 2 * KM_PEER_ENTRY_MAX_LEN];
	int len = km_msg_peer_list_encode(body, sizeof(body), peers, 2);

	up(1, false);
	cr_assert_eq(km_rendezvous_on_frame(r, 1, KM_FRAME_RENDEZVOUS, body,
					    (size_t)len, 1000), 0);
	cr_assert_eq(f.learned, 2);
	cr_assert_eq(f.via, 1);
	cr_assert(km_id_eq(&f.last.id, &peers[1].id));
	cr_assert(km_addr_eq(&f.last.addr, &peers[1].addr));
}

Test(rendezvous, malformed_reach_and_rendezvous_are_errors)
{
	uint8_t two[2] = { 1, 1 };

	up(1, false);
	cr_assert_eq(reach(1, 2), KM_ERR_RANGE);
	cr_assert_eq(km_rendezvous_on_frame(r, 1, KM_FRAME_REACH, two, 2, 1000),
		     KM_ERR_TRAILING);
	cr_assert_eq(km_rendezvous_on_frame(r, 1, KM_FRAME_REACH, two, 0, 1000),
		     KM_ERR_TRUNCATED);
	cr_assert_lt(km_rendezvous_on_frame(r, 1, KM_FRAME_RENDEZVOUS, two, 2,
					    1000), 0);
	cr_assert_eq(f.learned, 0);
	cr_assert_eq(km_rendezvous_stats(r).private_now, 0);
}

Test(rendezvous, neighbours_are_kept_in_the_order_of_their_links)
{
	uint64_t names[4];

	up(3, false);
	up(1, false);
	up(2, false);
	reach(3, 1);
	reach(1, 1);
	reach(2, 1);
	cr_assert_eq(rendezvous_names(2, names, 4), 2);
	cr_assert_eq(names[0], 1);
	cr_assert_eq(names[1], 3);
}
