/* km_punch without a node: literal timestamps, and fake callbacks that
 * record the frames it sends, the links it dials and the punches it gives
 * up.  As the rendezvous it names each side to the other; as a side it
 * dials, retries after 1, 2, 4 s, and falls back to a relay when its time
 * is up. */
#include <criterion/criterion.h>
#include <string.h>

#include "dht/id.h"
#include "natfake.h"
#include "net/punch.h"
#include "proto/err.h"
#include "proto/frame.h"

/* The rest of the fake node (links, sends: natfake.h). */
static struct fake {
	bool unwanted;             /* wanted() answers false */
	uint64_t next_conn;        /* dial() hands these out; 0: no slot */
	int dials, connects;
	uint64_t connected;
	struct km_addr dialled;
	bool close_at_once;        /* connect() fails the link at once */
	int gave_up;
	uint64_t gave_up_via;
	struct km_id gave_up_id;
	int logs;
} f;

static struct km_punch *p;

static bool fake_wanted(void *user, const struct km_id *id)
{
	return !f.unwanted;
}

static uint64_t fake_dial(void *user, const struct km_id *id,
			  const struct km_addr *addr, km_ms now)
{
	f.dials++;
	f.dialled = *addr;
	return f.next_conn ? f.next_conn++ : 0;
}

static void fake_connect(void *user, uint64_t conn, const struct km_addr *addr)
{
	f.connects++;
	f.connected = conn;
	if (f.close_at_once)
		km_punch_link_gone(p, conn, 5000);
}

static void fake_gave_up(void *user, uint64_t via, const struct km_id *id,
			 km_ms now)
{
	f.gave_up++;
	f.gave_up_via = via;
	f.gave_up_id = *id;
}

static void fake_log(void *user, const char *msg)
{
	f.logs++;
}

static const struct km_punch_callbacks cb = {
	.send = natfake_send, .neighbour = natfake_neighbour, .wanted = fake_wanted,
	.dial = fake_dial, .connect = fake_connect, .gave_up = fake_gave_up,
	.log = fake_log,
};

static void setup(void)
{
	memset(&f, 0, sizeof(f));
	natfake_reset();
	f.next_conn = 100;
	p = km_punch_new(&cb, &f);
	cr_assert_not_null(p);
}

static void teardown(void)
{
	km_punch_del(p);
}

TestSuite(punch, .init = setup, .fini = teardown);

static int req(uint64_t from_conn, uint64_t about, km_ms now)
{
	struct km_id id = natfake_id(about);
	struct km_peer from = natfake_peer(from_conn);

	return km_punch_on_frame(p, from_conn, &from, KM_FRAME_PUNCH_REQ, id.b,
				 KM_ID_LEN, now);
}

/* PUNCH_GO from the rendezvous on link 1, naming the node at 10.0.0.9. */
static int go(km_ms now)
{
	uint8_t body[2 + KM_PEER_ENTRY_MAX_LEN];
	struct km_peer b = natfake_peer(9), from = natfake_peer(1);
	int len = km_msg_peer_list_encode(body, sizeof(body), &b, 1);

	return km_punch_on_frame(p, 1, &from, KM_FRAME_PUNCH_GO, body,
				 (size_t)len, now);
}

static struct km_peer go_names(uint64_t conn)
{
	struct km_peer pe;

	cr_assert(natfake_entry(conn, KM_FRAME_PUNCH_GO, &pe),
		  "PUNCH_GO on link %llu", (unsigned long long)conn);
	return pe;
}

Test(punch, a_rendezvous_sends_punch_go_to_both_naming_each_other)
{
	struct km_peer a, b, want_a = natfake_peer(1), want_b = natfake_peer(2);

	cr_assert_eq(req(1, 2, 1000), 0);
	a = go_names(1);
	b = go_names(2);
	cr_assert(km_id_eq(&a.id, &want_b.id));
	cr_assert(km_addr_eq(&a.addr, &want_b.addr));
	cr_assert(km_id_eq(&b.id, &want_a.id));
	cr_assert(km_addr_eq(&b.addr, &want_a.addr));
	cr_assert_eq(km_punch_stats(p).coordinated, 1);
}

Test(punch, a_rendezvous_names_no_one_without_a_listening_port)
{
	natfake.no_port = 2;
	req(1, 2, 1000);
	req(2, 3, 1000);
	req(1, 9, 1000); /* not a neighbour */
	req(1, 1, 1000); /* the asker itself */
	cr_assert_eq(natfake.nsent, 0);
	cr_assert_eq(km_punch_stats(p).coordinated, 0);
}

Test(punch, a_punch_go_dials_the_named_endpoint_and_opens_it_simultaneously)
{
	struct km_peer b = natfake_peer(9);
	struct km_id id = natfake_id(9);

	cr_assert_eq(go(1000), 0);
	cr_assert_eq(f.dials, 1);
	cr_assert(km_addr_eq(&f.dialled, &b.addr));
	cr_assert_eq(f.connects, 1);
	cr_assert_eq(f.connected, 100);
	cr_assert(km_punch_running(p, &id));
	cr_assert_eq(km_punch_stats(p).attempts, 1);
	cr_assert_eq(km_punch_tick(p, 1000), 1000 + KM_PUNCH_TIMEOUT_MS);
}

Test(punch, a_punch_go_the_node_does_not_want_or_runs_already_starts_nothing)
{
	f.unwanted = true;
	go(1000);
	cr_assert_eq(f.dials, 0);
	f.unwanted = false;
	go(1000);
	go(1001);
	cr_assert_eq(f.dials, 1);
}

Test(punch, a_failed_attempt_is_retried_after_1_then_2_then_4_seconds)
{
	go(1000);
	km_punch_link_gone(p, 100, 1500);
	cr_assert_eq(km_punch_tick(p, 1500), 2500);
	km_punch_tick(p, 2500);
	cr_assert_eq(f.dials, 2);
	km_punch_link_gone(p, 101, 2600);
	cr_assert_eq(km_punch_tick(p, 2600), 4600);
	km_punch_tick(p, 4600);
	km_punch_link_gone(p, 102, 4700);
	cr_assert_eq(km_punch_tick(p, 4700), 8700);
}

Test(punch, with_no_link_slot_the_attempt_is_retried_a_second_later)
{
	f.next_conn = 0;
	go(1000);
	cr_assert_eq(f.connects, 0, "no link to open on");
	cr_assert_eq(km_punch_tick(p, 1000), 2000);
}

Test(punch, a_link_that_fails_inside_the_connect_call_is_retried)
{
	f.close_at_once = true;
	go(1000);
	cr_assert_eq(km_punch_tick(p, 5000), 6000,
		     "the punch saw its link fail, and waits to retry");
}

Test(punch, a_punch_out_of_time_gives_up_and_asks_its_rendezvous_for_a_relay)
{
	struct km_id id = natfake_id(9), relayed = natfake_id(9);

	go(1000);
	km_punch_link_gone(p, 100, 2000);
	km_punch_tick(p, 1000 + KM_PUNCH_TIMEOUT_MS);
	cr_assert_eq(f.gave_up, 1);
	cr_assert_eq(f.gave_up_via, 1);
	cr_assert(km_id_eq(&f.gave_up_id, &id));
	cr_assert_not(km_punch_running(p, &id));
	cr_assert_eq(km_punch_stats(p).failed, 1);
	cr_assert_not(km_punch_link_up(p, 200, &relayed, true, true, 16000));
	cr_assert_eq(km_punch_stats(p).last_relay_ms, 15000,
		     "from PUNCH_GO to the relayed link");
}

Test(punch, an_attempt_still_running_at_the_deadline_is_not_given_up)
{
	go(1000);
	km_punch_tick(p, 1000 + KM_PUNCH_TIMEOUT_MS);
	cr_assert_eq(f.gave_up, 0);
}

Test(punch, the_punched_link_coming_up_ends_the_punch)
{
	struct km_id id = natfake_id(9);

	go(1000);
	cr_assert(km_punch_link_up(p, 100, &id, true, false, 1300));
	cr_assert_eq(km_punch_stats(p).ok, 1);
	cr_assert_eq(km_punch_stats(p).last_punch_ms, 300);
	cr_assert_not(km_punch_running(p, &id));
}

Test(punch, an_inbound_link_is_the_other_sides_syn_and_counts_as_punched)
{
	struct km_id id = natfake_id(9);

	go(1000);
	cr_assert(km_punch_link_up(p, 555, &id, false, false, 1300));
	cr_assert_eq(km_punch_stats(p).ok, 1);
}

Test(punch, an_outbound_link_dialled_the_usual_way_makes_the_punch_moot)
{
	struct km_id id = natfake_id(9);

	go(1000);
	cr_assert_not(km_punch_link_up(p, 555, &id, true, false, 1300));
	cr_assert_eq(km_punch_stats(p).ok, 0);
	cr_assert_not(km_punch_running(p, &id));
}

Test(punch, at_most_so_many_punches_run_at_once)
{
	uint8_t body[2 + KM_PEER_ENTRY_MAX_LEN];
	struct km_peer from = natfake_peer(1);

	for (uint64_t i = 0; i < KM_PUNCHES_MAX + 1; i++) {
		struct km_peer b = natfake_peer(20 + i);
		int len = km_msg_peer_list_encode(body, sizeof(body), &b, 1);

		km_punch_on_frame(p, 1, &from, KM_FRAME_PUNCH_GO, body,
				  (size_t)len, 1000);
	}
	cr_assert_eq(f.dials, KM_PUNCHES_MAX);
}

Test(punch, asking_for_a_punch_sends_punch_req_and_counts_it_by_why)
{
	struct km_id id = natfake_id(9);

	km_punch_ask(p, 3, &id, KM_PUNCH_OPERATOR);
	km_punch_ask(p, 3, &id, KM_PUNCH_UPGRADE);
	km_punch_ask(p, 3, &id, KM_PUNCH_PRIVATE);
	km_punch_ask(p, 3, &id, KM_PUNCH_PRIVATE);
	cr_assert_eq(natfake.nsent, 4);
	cr_assert_eq(natfake.sent[1].type, KM_FRAME_PUNCH_REQ);
	cr_assert_eq(natfake.sent[1].conn, 3);
	cr_assert_arr_eq(natfake.sent[1].body, id.b, KM_ID_LEN);
	cr_assert_eq(km_punch_stats(p).upgrades, 1);
	cr_assert_eq(km_punch_stats(p).asked, 2);
}

Test(punch, malformed_bodies_are_errors)
{
	struct km_peer from = natfake_peer(1);
	uint8_t body[KM_ID_LEN + 1] = { 0 };

	cr_assert_eq(km_punch_on_frame(p, 1, &from, KM_FRAME_PUNCH_REQ, body,
				       KM_ID_LEN - 1, 1000), KM_ERR_TRUNCATED);
	cr_assert_eq(km_punch_on_frame(p, 1, &from, KM_FRAME_PUNCH_REQ, body,
				       KM_ID_LEN + 1, 1000), KM_ERR_TRAILING);
	cr_assert_lt(km_punch_on_frame(p, 1, &from, KM_FRAME_PUNCH_GO, body, 3,
				       1000), 0);
	cr_assert_eq(natfake.nsent + f.dials, 0);
}
