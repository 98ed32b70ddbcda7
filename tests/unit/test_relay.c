/* km_relay without a node: literal timestamps, and fake callbacks that
 * record every frame it sends and stand in for the node's links.  As R it
 * opens circuits between neighbours within its limits, forwards data with
 * the sender's ID, and cuts what exceeds them; as an end it opens, feeds
 * and closes the node's relayed links through the callbacks. */
#include <criterion/criterion.h>
#include <string.h>

#include "dht/id.h"
#include "natfake.h"
#include "net/relay.h"
#include "proto/err.h"
#include "proto/frame.h"

/* The rest of the fake node (links, sends: natfake.h). */
static struct fake {
	int open_rc;               /* what open() answers */
	int opens;
	struct km_peer opened;
	uint64_t own_via;          /* a relayed link of ours: via, peer ID */
	struct km_id own_peer;
	size_t delivered;
	int closed;
} f;

static struct km_relay *r;

static int fake_open(void *user, uint64_t via, const struct km_peer *peer,
		     km_ms now)
{
	f.opens++;
	f.opened = *peer;
	return f.open_rc;
}

static bool fake_data(void *user, uint64_t via, const struct km_id *id,
		      const uint8_t *buf, size_t len, km_ms now)
{
	if (via != f.own_via || !km_id_eq(id, &f.own_peer))
		return false;
	f.delivered += len;
	return true;
}

static void fake_closed(void *user, uint64_t via, const struct km_id *id,
			km_ms now)
{
	if (via == f.own_via && km_id_eq(id, &f.own_peer))
		f.closed++;
}

static const struct km_relay_callbacks cb = {
	.send = natfake_send, .neighbour = natfake_neighbour, .open = fake_open,
	.data = fake_data, .closed = fake_closed,
};

static void setup(void)
{
	memset(&f, 0, sizeof(f));
	natfake_reset();
	r = km_relay_new(&cb, &f);
	cr_assert_not_null(r);
}

static void teardown(void)
{
	km_relay_del(r);
}

TestSuite(relay, .init = setup, .fini = teardown);

/* A frame with an ID body, from the neighbour on link conn. */
static int frame_about(uint64_t conn, uint8_t type, uint64_t about,
		       const uint8_t *data, size_t len, km_ms now)
{
	uint8_t body[KM_ID_LEN + 256];
	struct km_id id = natfake_id(about);
	struct km_peer from = natfake_peer(conn);

	memcpy(body, id.b, KM_ID_LEN);
	if (len)
		memcpy(body + KM_ID_LEN, data, len);
	return km_relay_on_frame(r, conn, &from, type, body, KM_ID_LEN + len,
				 now);
}

/* The one-entry PEER_LIST a RELAY_OPEN on conn carries. */
static struct km_peer open_names(uint64_t conn)
{
	struct km_peer p;

	cr_assert(natfake_entry(conn, KM_FRAME_RELAY_OPEN, &p),
		  "RELAY_OPEN to link %llu", (unsigned long long)conn);
	return p;
}

Test(relay, a_request_opens_a_circuit_that_names_each_side_to_the_other)
{
	struct km_peer a, b, want_a = natfake_peer(1), want_b = natfake_peer(2);

	cr_assert_eq(frame_about(1, KM_FRAME_RELAY_REQ, 2, NULL, 0, 1000), 0);
	a = open_names(1);
	b = open_names(2);
	cr_assert(km_id_eq(&a.id, &want_b.id));
	cr_assert(km_addr_eq(&a.addr, &want_b.addr));
	cr_assert(km_id_eq(&b.id, &want_a.id));
	cr_assert(km_addr_eq(&b.addr, &want_a.addr));
	cr_assert_eq(km_relay_stats(r).served, 1);
	cr_assert_eq(km_relay_stats(r).circuits, 1);
}

Test(relay, a_request_for_no_neighbour_or_for_the_asker_itself_opens_nothing)
{
	frame_about(1, KM_FRAME_RELAY_REQ, 9, NULL, 0, 1000);
	frame_about(1, KM_FRAME_RELAY_REQ, 1, NULL, 0, 1000);
	cr_assert_eq(natfake.nsent, 0);
	cr_assert_eq(km_relay_stats(r).circuits, 0);
}

Test(relay, a_repeated_request_keeps_the_one_circuit)
{
	frame_about(1, KM_FRAME_RELAY_REQ, 2, NULL, 0, 1000);
	frame_about(1, KM_FRAME_RELAY_REQ, 2, NULL, 0, 1001);
	cr_assert_eq(natfake.nsent, 2);
	cr_assert_eq(km_relay_stats(r).served, 1);
}

Test(relay, requests_beyond_the_circuit_cap_are_refused)
{
	/* 1-2, 1-3, 1-4, 2-3 fill the four slots; 2-4 is one too many. */
	frame_about(1, KM_FRAME_RELAY_REQ, 2, NULL, 0, 1000);
	frame_about(1, KM_FRAME_RELAY_REQ, 3, NULL, 0, 1000);
	frame_about(1, KM_FRAME_RELAY_REQ, 4, NULL, 0, 1000);
	frame_about(2, KM_FRAME_RELAY_REQ, 3, NULL, 0, 1000);
	frame_about(2, KM_FRAME_RELAY_REQ, 4, NULL, 0, 1000);
	cr_assert_eq(km_relay_stats(r).served, KM_RELAY_CIRCUITS_MAX);
	cr_assert_eq(km_relay_stats(r).refused, 1);
	cr_assert_eq(natfake.nsent, 2 * KM_RELAY_CIRCUITS_MAX, "no RELAY_OPEN for 2-4");
}

Test(relay, data_is_forwarded_to_the_other_side_with_the_senders_id)
{
	const struct natfake_sent *s;

	frame_about(1, KM_FRAME_RELAY_REQ, 2, NULL, 0, 1000);
	cr_assert_eq(frame_about(1, KM_FRAME_RELAY_DATA, 2,
				 (const uint8_t *)"hello", 5, 1001), 0);
	s = natfake_sent_to(2, KM_FRAME_RELAY_DATA);
	cr_assert(natfake_names(s, 1), "B hears it came from A");
	cr_assert_eq(s->len, KM_ID_LEN + 5);
	cr_assert_arr_eq(s->body + KM_ID_LEN, "hello", 5);
	cr_assert_eq(km_relay_stats(r).bytes, 5);
}

Test(relay, data_with_no_circuit_goes_nowhere)
{
	frame_about(1, KM_FRAME_RELAY_DATA, 2, (const uint8_t *)"x", 1, 1000);
	cr_assert_eq(natfake.nsent, 0);
	cr_assert_eq(km_relay_stats(r).bytes, 0);
}

static void cut_expected(void)
{
	cr_assert(natfake_names(natfake_sent_to(1, KM_FRAME_RELAY_CLOSE), 2));
	cr_assert(natfake_names(natfake_sent_to(2, KM_FRAME_RELAY_CLOSE), 1));
	cr_assert_eq(km_relay_stats(r).cut, 1);
	cr_assert_eq(km_relay_stats(r).circuits, 0);
}

static uint8_t big[200];

/* A circuit 1-2 opened at 1000, sent up to (not over) its rate at 1000. */
static void at_the_rate(void)
{
	frame_about(1, KM_FRAME_RELAY_REQ, 2, NULL, 0, 1000);
	for (size_t i = 0; i < KM_RELAY_RATE_BYTES / sizeof(big); i++)
		frame_about(1, KM_FRAME_RELAY_DATA, 2, big, sizeof(big), 1000);
	cr_assert_eq(km_relay_stats(r).cut, 0, "at the rate, not over it");
}

Test(relay, a_circuit_over_its_rate_is_cut_and_both_sides_hear_it)
{
	at_the_rate();
	frame_about(1, KM_FRAME_RELAY_DATA, 2, big, sizeof(big), 1999);
	cut_expected();
}

Test(relay, the_rate_is_per_second)
{
	at_the_rate();
	frame_about(1, KM_FRAME_RELAY_DATA, 2, big, sizeof(big), 2000);
	cr_assert_eq(km_relay_stats(r).cut, 0);
	cr_assert_eq(km_relay_stats(r).circuits, 1);
}

Test(relay, a_circuit_is_cut_when_its_time_is_up)
{
	frame_about(1, KM_FRAME_RELAY_REQ, 2, NULL, 0, 1000);
	frame_about(2, KM_FRAME_RELAY_DATA, 1, (const uint8_t *)"x", 1,
		    1000 + KM_RELAY_DURATION_MS - 1);
	cr_assert_eq(km_relay_stats(r).cut, 0);
	frame_about(2, KM_FRAME_RELAY_DATA, 1, (const uint8_t *)"x", 1,
		    1000 + KM_RELAY_DURATION_MS);
	cut_expected();
}

Test(relay, a_relay_close_from_one_side_ends_the_circuit_and_tells_the_other)
{
	frame_about(1, KM_FRAME_RELAY_REQ, 2, NULL, 0, 1000);
	frame_about(2, KM_FRAME_RELAY_CLOSE, 1, NULL, 0, 1001);
	cr_assert(natfake_names(natfake_sent_to(1, KM_FRAME_RELAY_CLOSE), 2));
	cr_assert_null(natfake_sent_to(2, KM_FRAME_RELAY_CLOSE), "it knows");
	cr_assert_eq(km_relay_stats(r).circuits, 0);
	cr_assert_eq(km_relay_stats(r).cut, 0);
}

Test(relay, a_link_that_ends_ends_its_circuits_and_the_other_side_hears)
{
	frame_about(1, KM_FRAME_RELAY_REQ, 2, NULL, 0, 1000);
	frame_about(3, KM_FRAME_RELAY_REQ, 4, NULL, 0, 1000);
	natfake.gone_link = 2;
	km_relay_link_gone(r, 2);
	cr_assert(natfake_names(natfake_sent_to(1, KM_FRAME_RELAY_CLOSE), 2));
	cr_assert_null(natfake_sent_to(3, KM_FRAME_RELAY_CLOSE));
	cr_assert_eq(km_relay_stats(r).circuits, 1);
}

Test(relay, a_relay_open_asks_the_node_to_open_its_relayed_link)
{
	uint8_t body[2 + KM_PEER_ENTRY_MAX_LEN];
	struct km_peer b = natfake_peer(3), from = natfake_peer(1);
	int len = km_msg_peer_list_encode(body, sizeof(body), &b, 1);

	cr_assert_eq(km_relay_on_frame(r, 1, &from, KM_FRAME_RELAY_OPEN, body,
				       (size_t)len, 1000), 0);
	cr_assert_eq(f.opens, 1);
	cr_assert(km_id_eq(&f.opened.id, &b.id));
	cr_assert(km_addr_eq(&f.opened.addr, &b.addr));
	cr_assert_eq(km_relay_stats(r).opened, 1);
	cr_assert_eq(natfake.nsent, 0);
}

Test(relay, a_relay_open_the_node_cannot_take_is_closed_and_one_it_needs_not_is_ignored)
{
	uint8_t body[2 + KM_PEER_ENTRY_MAX_LEN];
	struct km_peer b = natfake_peer(3), from = natfake_peer(1);
	int len = km_msg_peer_list_encode(body, sizeof(body), &b, 1);

	f.open_rc = 1;
	km_relay_on_frame(r, 1, &from, KM_FRAME_RELAY_OPEN, body, (size_t)len,
			  1000);
	cr_assert_eq(natfake.nsent, 0);
	f.open_rc = KM_ERR_FULL;
	km_relay_on_frame(r, 1, &from, KM_FRAME_RELAY_OPEN, body, (size_t)len,
			  1000);
	cr_assert(natfake_names(natfake_sent_to(1, KM_FRAME_RELAY_CLOSE), 3));
	cr_assert_eq(km_relay_stats(r).opened, 0);
}

Test(relay, data_and_close_for_the_nodes_own_relayed_link_go_to_the_node)
{
	f.own_via = 1;
	f.own_peer = natfake_id(3);
	frame_about(1, KM_FRAME_RELAY_DATA, 3, (const uint8_t *)"abc", 3, 1000);
	cr_assert_eq(f.delivered, 3);
	frame_about(1, KM_FRAME_RELAY_CLOSE, 3, NULL, 0, 1001);
	cr_assert_eq(f.closed, 1);
	cr_assert_eq(natfake.nsent, 0);
}

Test(relay, a_relayed_links_bytes_go_out_in_chunks_to_the_relay)
{
	static uint8_t stream[KM_RELAY_CHUNK + 10];
	struct km_id id = natfake_id(3);

	km_relay_write(r, 1, &id, stream, sizeof(stream));
	cr_assert_eq(natfake.nsent, 2);
	cr_assert_eq(natfake.sent[0].len, KM_ID_LEN + KM_RELAY_CHUNK);
	cr_assert_eq(natfake.sent[1].len, KM_ID_LEN + 10);
	cr_assert(natfake_names(&natfake.sent[1], 3));
	km_relay_ask(r, 1, &id);
	cr_assert(natfake_names(natfake_sent_to(1, KM_FRAME_RELAY_REQ), 3));
	km_relay_end(r, 1, &id);
	cr_assert(natfake_names(natfake_sent_to(1, KM_FRAME_RELAY_CLOSE), 3));
}

Test(relay, malformed_bodies_are_errors)
{
	struct km_peer from = natfake_peer(1);
	uint8_t body[KM_ID_LEN + 1] = { 0 };

	cr_assert_eq(km_relay_on_frame(r, 1, &from, KM_FRAME_RELAY_REQ, body,
				       KM_ID_LEN - 1, 1000), KM_ERR_TRUNCATED);
	cr_assert_eq(km_relay_on_frame(r, 1, &from, KM_FRAME_RELAY_CLOSE, body,
				       KM_ID_LEN + 1, 1000), KM_ERR_TRAILING);
	cr_assert_eq(km_relay_on_frame(r, 1, &from, KM_FRAME_RELAY_DATA, body,
				       KM_ID_LEN - 1, 1000), KM_ERR_TRUNCATED);
	cr_assert_lt(km_relay_on_frame(r, 1, &from, KM_FRAME_RELAY_OPEN, body,
				       3, 1000), 0);
	cr_assert_eq(natfake.nsent, 0);
	cr_assert_eq(f.opens, 0);
}
