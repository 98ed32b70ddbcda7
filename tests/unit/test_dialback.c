/* km_dialback without a node: literal timestamps, a seeded random source,
 * a real km_nat, and fake callbacks that stand in for the neighbours and
 * record what it sends, dials and decides.  Neighbours are asked once
 * their links are stable; a DIALBACK with our nonce makes us public,
 * failed dials from two subnets private; we dial back for others within a
 * cap; a private node keeps its NAT mappings open. */
#include <criterion/criterion.h>
#include <string.h>

#include "natfake.h"
#include "net/dialback.h"
#include "proto/err.h"
#include "proto/frame.h"
#include "proto/msg.h"

#define PEERS 8
#define PORT 6881

static struct fake {
	struct km_dialback_peer peers[PEERS];
	int npeers;
	uint64_t next_conn;
	int connects;
	uint64_t connected;
	struct km_addr dialled;
	bool fail_at_once;          /* connect() fails the dial at once */
	int raw_sends, closes;
	uint8_t raw[64];
	size_t raw_len;
	int verdicts;
	enum km_reach last;
	bool changed;
	int keepalives;
	struct km_addr kept[PEERS];
} f;

static struct km_dialback *d;
static struct km_nat nat;
static struct km_prng prng;
static struct km_rng rng;

static bool fake_next(void *user, uint64_t *cursor,
		      struct km_dialback_peer *out)
{
	int i = 0;

	if (*cursor != 0) {
		while (i < f.npeers && f.peers[i].conn != *cursor)
			i++;
		i++;
	}
	if (i >= f.npeers)
		return false;
	*out = f.peers[i];
	*cursor = out->conn;
	return true;
}

static uint64_t fake_new_conn(void *user)
{
	return f.next_conn++;
}

static void fake_connect(void *user, uint64_t conn, const struct km_addr *to)
{
	f.connects++;
	f.connected = conn;
	f.dialled = *to;
	if (f.fail_at_once)
		km_dialback_closed(d, conn);
}

static void fake_raw_send(void *user, uint64_t conn, const uint8_t *buf,
			  size_t len)
{
	f.raw_sends++;
	cr_assert_leq(len, sizeof(f.raw));
	memcpy(f.raw, buf, len);
	f.raw_len = len;
}

static void fake_close(void *user, uint64_t conn)
{
	f.closes++;
}

static void fake_verdict(void *user, enum km_reach r, bool changed,
			 const char *why)
{
	f.verdicts++;
	f.last = r;
	f.changed = changed;
}

static void fake_keepalive(void *user, const struct km_addr *addr, km_ms now)
{
	if (f.keepalives < PEERS)
		f.kept[f.keepalives] = *addr;
	f.keepalives++;
}

static const struct km_dialback_callbacks cb = {
	.send = natfake_send, .next_neighbour = fake_next,
	.new_conn = fake_new_conn, .connect = fake_connect,
	.raw_send = fake_raw_send, .close = fake_close,
	.verdict = fake_verdict, .keepalive = fake_keepalive,
};

static void setup(void)
{
	struct km_dialback_config cfg = { .port = PORT, .timeout_ms = 8000 };

	memset(&f, 0, sizeof(f));
	natfake_reset();
	f.next_conn = 100;
	km_nat_init(&nat);
	km_prng_seed(&prng, 7);
	rng = km_prng_rng(&prng);
	d = km_dialback_new(&cfg, &cb, NULL, &nat, &rng, 0);
	cr_assert_not_null(d);
}

static void teardown(void)
{
	km_dialback_del(d);
}

TestSuite(dialback, .init = setup, .fini = teardown);

/* A neighbour on link conn at 10.<net>.0.<host>, listening at 7000, that
 * sees us at 10.200.0.1 (a LAN) and came up at up_since. */
static struct km_dialback_peer *neighbour(uint64_t conn, uint8_t net,
					  uint8_t host, km_ms up_since)
{
	struct km_dialback_peer *p = &f.peers[f.npeers++];
	uint8_t ip[4] = { 10, net, 0, host }, us[4] = { 10, 200, 0, 1 };

	memset(p, 0, sizeof(*p));
	p->conn = conn;
	km_addr_set_v4(&p->remote, ip, 40000);
	km_addr_set_v4(&p->seen, us, PORT);
	p->listen_port = 7000;
	p->outbound = true;
	p->up_since = up_since;
	return p;
}

/* The nonce of the DIAL_ME sent on link conn; fails if none was. */
static uint64_t asked_nonce(uint64_t conn)
{
	const struct natfake_sent *s = natfake_sent_to(conn, KM_FRAME_DIAL_ME);
	uint64_t nonce;

	cr_assert_not_null(s, "DIAL_ME on link %llu", (unsigned long long)conn);
	cr_assert_eq(km_msg_ping_decode(s->body, s->len, &nonce), 0);
	return nonce;
}

static int nonce_frame(const struct km_dialback_peer *from, uint8_t type,
		       uint64_t nonce, km_ms now)
{
	uint8_t body[KM_PING_LEN];

	km_msg_ping_encode(body, sizeof(body), nonce);
	return km_dialback_on_frame(d, from, type, body, sizeof(body), now);
}

static int result(const struct km_dialback_peer *from, uint64_t nonce,
		  uint8_t r, km_ms now)
{
	uint8_t body[KM_DIAL_RESULT_LEN];

	km_msg_dial_result_encode(body, sizeof(body), nonce, r);
	return km_dialback_on_frame(d, from, KM_FRAME_DIAL_RESULT, body,
				    sizeof(body), now);
}

/* The result in the last DIAL_RESULT on link conn, or -1. */
static int result_heard(uint64_t conn)
{
	const struct natfake_sent *s = natfake_sent_to(conn, KM_FRAME_DIAL_RESULT);
	uint64_t nonce;
	uint8_t r;

	if (!s || km_msg_dial_result_decode(s->body, s->len, &nonce, &r) < 0)
		return -1;
	return r;
}

Test(dialback, a_neighbour_is_asked_once_its_link_has_been_up_a_second)
{
	neighbour(1, 1, 1, 0);
	cr_assert_eq(km_dialback_tick(d, 500), 1000, "wakes when it is stable");
	cr_assert_eq(natfake.nsent, 0);
	cr_assert_eq(km_dialback_tick(d, 1000), 1000 + 8000, "the verdict");
	asked_nonce(1);
	cr_assert_eq(km_dialback_stats(d).asked, 1);
	cr_assert(km_dialback_expecting(d));
}

Test(dialback, one_neighbour_per_subnet_is_asked_first)
{
	neighbour(1, 1, 1, 0);
	neighbour(2, 1, 2, 0);
	neighbour(3, 2, 1, 0);
	neighbour(4, 3, 1, 0);
	km_dialback_tick(d, 1000);
	cr_assert_eq(km_dialback_stats(d).asked, KM_DIALBACK_ASK);
	cr_assert_null(natfake_sent_to(2, KM_FRAME_DIAL_ME),
		       "10.1/16 was asked already");
}

Test(dialback, a_dialback_with_our_nonce_makes_us_public)
{
	struct km_dialback_peer probe;

	neighbour(1, 1, 1, 0);
	km_dialback_tick(d, 1000);
	probe = f.peers[0];
	probe.conn = 50;
	cr_assert_eq(nonce_frame(&probe, KM_FRAME_DIALBACK, asked_nonce(1) + 1,
				 1100), 0);
	cr_assert_eq(f.verdicts, 0, "another nonce proves nothing");
	nonce_frame(&probe, KM_FRAME_DIALBACK, asked_nonce(1), 1200);
	cr_assert_eq(f.verdicts, 1);
	cr_assert_eq(f.last, KM_REACH_PUBLIC);
	cr_assert(f.changed);
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_PUBLIC);
	cr_assert_eq(km_nat_external(&nat)->ip[1], 200, "what was dialled");
	cr_assert_eq(km_dialback_stats(d).ok, 1);
	cr_assert_not(km_dialback_expecting(d), "the check is over");
	cr_assert_eq(km_dialback_tick(d, 1200), 1200 + 60000,
		     "the next check in a minute");
}

static void two_failures(uint8_t second_net)
{
	uint64_t nonce;

	neighbour(1, 1, 1, 0);
	neighbour(2, second_net, 2, 0);
	km_dialback_tick(d, 1000);
	nonce = asked_nonce(1);
	result(&f.peers[0], nonce, KM_DIAL_REFUSED, 1100);
	result(&f.peers[1], nonce, KM_DIAL_TIMED_OUT, 1200);
	km_dialback_tick(d, 9000);
}

Test(dialback, failed_dials_from_two_subnets_make_us_private)
{
	two_failures(2);
	cr_assert_eq(f.last, KM_REACH_PRIVATE);
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_PRIVATE);
	cr_assert_eq(km_dialback_stats(d).failed, 1);
	cr_assert_eq(km_dialback_stats(d).results[KM_DIAL_REFUSED], 1);
	cr_assert_eq(km_dialback_stats(d).results[KM_DIAL_TIMED_OUT], 1);
}

Test(dialback, two_failures_from_one_subnet_count_where_there_is_only_one)
{
	two_failures(1);
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_PRIVATE);
}

Test(dialback, one_failure_and_one_busy_dialler_prove_nothing)
{
	uint64_t nonce;

	neighbour(1, 1, 1, 0);
	neighbour(2, 2, 2, 0);
	km_dialback_tick(d, 1000);
	nonce = asked_nonce(1);
	result(&f.peers[0], nonce, KM_DIAL_REFUSED, 1100);
	result(&f.peers[1], nonce, KM_DIAL_BUSY, 1200);
	cr_assert_eq(km_dialback_tick(d, 9000), 9000 + 60000);
	cr_assert_eq(f.verdicts, 0);
	cr_assert_eq(km_dialback_stats(d).undecided, 1);
	km_dialback_tick(d, 69000);
	cr_assert_eq(km_dialback_tick(d, 77000), 77000 + 120000,
		     "then two minutes");
}

Test(dialback, we_dial_back_the_askers_own_ip_at_its_listening_port)
{
	struct km_dialback_peer *p = neighbour(1, 1, 1, 0);
	uint64_t nonce;

	cr_assert_eq(nonce_frame(p, KM_FRAME_DIAL_ME, 42, 1000), 0);
	cr_assert_eq(f.connects, 1);
	cr_assert(km_addr_ip_eq(&f.dialled, &p->remote));
	cr_assert_eq(f.dialled.port, 7000);
	cr_assert(km_dialback_connected(d, f.connected));
	cr_assert_eq(f.raw_len, KM_FRAME_HEADER_LEN + KM_PING_LEN);
	cr_assert_eq(km_msg_ping_decode(f.raw + KM_FRAME_HEADER_LEN, KM_PING_LEN,
					&nonce), 0);
	cr_assert_eq(nonce, 42);
	cr_assert_eq(f.closes, 1);
	cr_assert_eq(result_heard(1), KM_DIAL_CONNECTED);
	cr_assert_not(km_dialback_connected(d, f.connected), "done with it");
}

Test(dialback, dials_for_others_are_capped_and_time_out)
{
	struct km_dialback_peer *p = neighbour(1, 1, 1, 0);

	for (int i = 0; i < KM_DIALERS_MAX; i++)
		nonce_frame(p, KM_FRAME_DIAL_ME, (uint64_t)i, 1000);
	cr_assert_eq(result_heard(1), -1);
	nonce_frame(p, KM_FRAME_DIAL_ME, 99, 1000);
	cr_assert_eq(result_heard(1), KM_DIAL_BUSY);
	cr_assert_eq(km_dialback_stats(d).busy, 1);
	cr_assert_eq(km_dialback_tick(d, 1000), 6000);
	km_dialback_tick(d, 6000);
	cr_assert_eq(result_heard(1), KM_DIAL_TIMED_OUT);
	cr_assert_eq(f.closes, KM_DIALERS_MAX);
	cr_assert_eq(km_dialback_stats(d).served, KM_DIALERS_MAX);
}

Test(dialback, a_dial_that_fails_inside_the_connect_call_is_refused)
{
	struct km_dialback_peer *p = neighbour(1, 1, 1, 0);

	f.fail_at_once = true;
	nonce_frame(p, KM_FRAME_DIAL_ME, 5, 1000);
	cr_assert_eq(result_heard(1), KM_DIAL_REFUSED);
	cr_assert_eq(km_dialback_tick(d, 1000), 9000,
		     "no dial left to time out, only the check's verdict");
}

Test(dialback, a_private_node_keeps_its_mappings_open_through_three_outbound_neighbours)
{
	struct km_addr at;

	neighbour(1, 1, 1, 0);
	neighbour(2, 2, 1, 0)->outbound = false;
	neighbour(3, 3, 1, 0);
	neighbour(4, 4, 1, 0)->listen_port = 0;
	neighbour(5, 5, 1, 0);
	neighbour(6, 6, 1, 0);
	at = f.peers[0].seen;
	cr_assert(km_nat_set_dialback(&nat, KM_REACH_PRIVATE, &at));
	km_dialback_tick(d, 0);
	cr_assert_eq(f.keepalives, 3);
	cr_assert_eq(f.kept[1].ip[1], 3, "not the inbound one");
	cr_assert_eq(f.kept[2].ip[1], 5, "not the one with no port");
	cr_assert_eq(f.kept[0].port, 7000);
	km_dialback_tick(d, 19999);
	cr_assert_eq(f.keepalives, 3);
	km_dialback_tick(d, 20000);
	cr_assert_eq(f.keepalives, 6);
}

Test(dialback, an_unsolicited_inbound_link_proves_us_public_unless_from_a_narrower_scope)
{
	uint8_t lan[4] = { 192, 168, 1, 5 }, net[4] = { 198, 51, 100, 7 };
	struct km_addr from, at = neighbour(1, 1, 1, 0)->seen;

	f.peers[0].remote.ip[0] = 100; /* 100.1.0.1: global */
	km_addr_set_v4(&from, lan, 5000);
	km_dialback_inbound(d, &from, &at);
	cr_assert_eq(f.verdicts, 0);
	km_addr_set_v4(&from, net, 5000);
	km_dialback_inbound(d, &from, &at);
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_PUBLIC);
	cr_assert_eq(km_dialback_stats(d).inbound_proofs, 1);
}

Test(dialback, an_unsolicited_krpc_query_does_not_overturn_a_private_verdict)
{
	uint8_t ip[4] = { 10, 9, 9, 9 };
	struct km_addr from;

	km_addr_set_v4(&from, ip, 6881);
	two_failures(2);
	km_dialback_unsolicited(d, &from);
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_PRIVATE);
	cr_assert_eq(km_dialback_stats(d).krpc_proofs, 0);
}

Test(dialback, an_unsolicited_krpc_query_makes_an_unknown_node_public)
{
	uint8_t ip[4] = { 10, 9, 9, 9 };
	struct km_addr from;

	neighbour(1, 1, 1, 0);
	km_addr_set_v4(&from, ip, 6881);
	km_dialback_unsolicited(d, &from);
	cr_assert_eq(km_nat_reachability(&nat), KM_REACH_PUBLIC);
	cr_assert_eq(km_nat_external(&nat)->port, PORT, "our UDP port");
	cr_assert_eq(km_dialback_stats(d).krpc_proofs, 1);
}

Test(dialback, only_so_many_probes_are_let_in_while_a_check_waits)
{
	cr_assert_not(km_dialback_expecting(d), "no check running");
	neighbour(1, 1, 1, 0);
	km_dialback_tick(d, 1000);
	for (int i = 0; i < KM_PROBES_MAX; i++) {
		cr_assert(km_dialback_expecting(d));
		km_dialback_probe_opened(d);
	}
	cr_assert_not(km_dialback_expecting(d));
	km_dialback_probe_closed(d);
	cr_assert(km_dialback_expecting(d));
	cr_assert_eq(km_dialback_stats(d).probes, KM_PROBES_MAX);
}

Test(dialback, malformed_bodies_are_errors)
{
	struct km_dialback_peer *p = neighbour(1, 1, 1, 0);
	uint8_t body[KM_DIAL_RESULT_LEN + 1] = { 0 };

	cr_assert_lt(km_dialback_on_frame(d, p, KM_FRAME_DIAL_ME, body, 7, 1000), 0);
	cr_assert_lt(km_dialback_on_frame(d, p, KM_FRAME_DIALBACK, body, 9, 1000), 0);
	cr_assert_lt(km_dialback_on_frame(d, p, KM_FRAME_DIAL_RESULT, body,
					  KM_DIAL_RESULT_LEN + 1, 1000), 0);
	cr_assert_eq(f.connects + natfake.nsent, 0);
}
