/* Unsolicited KRPC queries (issue 13): the record of whom a node has
 * talked to lately (dht/contacted.h), and km_dht's unsolicited callback,
 * which fires for a query from an IP that no datagram of ours could have
 * opened a NAT mapping for.  Its errors must go one way only: a query from
 * an IP we talked to never fires it, whatever fills the record. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <string.h>

#include "dht/contacted.h"
#include "dht/dht.h"
#include "vnet.h"

#define T0 KM_SECONDS(100)
#define WINDOW KM_CONTACTED_WINDOW_MS

static struct km_addr v4(uint32_t i, uint16_t port)
{
	struct km_addr a;
	uint8_t ip[4] = { (uint8_t)(i >> 24), (uint8_t)(i >> 16),
			  (uint8_t)(i >> 8), (uint8_t)i };

	km_addr_set_v4(&a, ip, port);
	return a;
}

static struct km_addr v6(uint32_t i, uint16_t port)
{
	struct km_addr a;
	uint8_t ip[16] = { 0x20, 0x01, 0x0d, 0xb8 };

	memcpy(ip + 12, &i, sizeof(i));
	km_addr_set_v6(&a, ip, port);
	return a;
}

/* ---- the record ---------------------------------------------------------- */

Test(contacted, an_ip_we_noted_is_contacted_from_any_port_and_others_are_not)
{
	struct km_contacted c;
	struct km_addr to = v4(0xc6336407, 6881), other = v4(0xc6336408, 6881);
	struct km_addr same_ip = v4(0xc6336407, 40000);

	km_contacted_init(&c, 42, T0);
	cr_assert_not(km_contacted_maybe(&c, &to, T0));
	km_contacted_note(&c, &to, T0);
	cr_assert(km_contacted_maybe(&c, &to, T0 + 1));
	cr_assert(km_contacted_maybe(&c, &same_ip, T0 + 1),
		  "a NAT lets in any port of an IP we sent to");
	cr_assert_not(km_contacted_maybe(&c, &other, T0 + 1));
}

Test(contacted, an_ip_is_remembered_for_a_window_after_its_last_datagram)
{
	struct km_contacted c;
	struct km_addr a = v4(0xcb007109, 6881), b = v4(0xcb00710a, 6881);

	km_contacted_init(&c, 7, T0);
	km_contacted_note(&c, &a, T0 + WINDOW - 1);
	/* Rotations in between (b's datagrams) must not cut a's window. */
	km_contacted_note(&c, &b, T0 + WINDOW);
	cr_assert(km_contacted_maybe(&c, &a, T0 + 2 * WINDOW - 2));
	km_contacted_note(&c, &b, T0 + 2 * WINDOW);
	cr_assert_not(km_contacted_maybe(&c, &a, T0 + 2 * WINDOW),
		      "two rotations later it is gone");
	cr_assert(km_contacted_maybe(&c, &b, T0 + 3 * WINDOW - 1));
}

Test(contacted, entries_age_out_after_two_windows_of_silence)
{
	struct km_contacted c;
	struct km_addr a = v4(0xcb007109, 6881);

	km_contacted_init(&c, 7, T0);
	km_contacted_note(&c, &a, T0 + WINDOW / 2);
	cr_assert(km_contacted_maybe(&c, &a, T0 + WINDOW / 2 + WINDOW - 1));
	cr_assert_not(km_contacted_maybe(&c, &a, T0 + 2 * WINDOW + 1));
}

Test(contacted, the_families_are_told_apart)
{
	struct km_contacted c;
	struct km_addr a4 = v4(0x01020304, 1), a6 = v6(0x01020304, 1);

	km_contacted_init(&c, 9, T0);
	km_contacted_note(&c, &a4, T0);
	cr_assert(km_contacted_maybe(&c, &a4, T0));
	cr_assert_not(km_contacted_maybe(&c, &a6, T0));
}

/* The safe direction: however many destinations fill the filters, every
 * one of them still reads as contacted for its window.  Only the other
 * way, IPs never contacted reading as contacted, grows with the load. */
Test(contacted, a_flood_of_distinct_destinations_never_makes_a_false_proof)
{
	static const size_t load[] = { 100, 1000, 100000 };
	struct km_contacted c;
	km_ms t = T0;

	km_contacted_init(&c, 0x0123456789abcdefULL, T0);
	for (size_t l = 0; l < sizeof(load) / sizeof(load[0]); l++) {
		size_t wrong = 0, probes = 10000;

		t += 2 * WINDOW; /* a fresh start for each load */
		for (uint32_t i = 0; i < load[l]; i++) {
			struct km_addr a = i % 2 ? v6(i, 6881) : v4(i, 6881);

			km_contacted_note(&c, &a, t + i % 1000);
		}
		for (uint32_t i = 0; i < load[l]; i++) {
			struct km_addr a = i % 2 ? v6(i, 1) : v4(i, 1);

			cr_assert(km_contacted_maybe(&c, &a, t + 1000),
				  "IP %u of %zu forgotten", i, load[l]);
		}
		for (uint32_t i = 0; i < probes; i++) {
			struct km_addr a = v4(0x80000000u + i, 6881);

			wrong += km_contacted_maybe(&c, &a, t + 1000);
		}
		cr_log_info("contacted: %zu IPs noted: %zu of %zu others look "
			    "contacted (a proof missed, never a false one)",
			    load[l], wrong, probes);
		if (load[l] == 100)
			cr_expect_leq(wrong, probes / 1000,
				      "a lightly loaded record misses few proofs");
	}
	cr_expect_eq(sizeof(c), 2 * KM_CONTACTED_BITS / 8 + 24,
		     "fixed and small: %zu bytes", sizeof(c));
}

/* ---- km_dht's unsolicited callback --------------------------------------- */

static struct {
	int fired;
	struct km_addr from;
	km_ms at;
	size_t sent;
} seen;

static void on_send(void *user, const struct km_addr *to, const uint8_t *buf,
		    size_t len)
{
	seen.sent++;
}

static void on_unsolicited(void *user, const struct km_addr *from, km_ms now)
{
	seen.fired++;
	seen.from = *from;
	seen.at = now;
}

static struct km_prng prng;
static struct km_rng rng;
static struct km_dht *d;

static void node(bool read_only)
{
	static const struct km_dht_callbacks cb = {
		.send = on_send, .unsolicited = on_unsolicited,
	};
	struct km_dht_config cfg;

	memset(&seen, 0, sizeof(seen));
	km_prng_seed(&prng, 1);
	rng = km_prng_rng(&prng);
	km_dht_config_default(&cfg);
	km_id_random(&rng, &cfg.id);
	cfg.read_only = read_only;
	d = km_dht_new(&cfg, &cb, NULL, &rng, T0);
	cr_assert_not_null(d);
}

static void teardown(void)
{
	km_dht_del(d);
	d = NULL;
}

TestSuite(unsolicited, .fini = teardown);

static const char ping[] = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
static const char ro_ping[] =
	"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:aa1:y1:qe";

static void query_from(const struct km_addr *from, const char *q, km_ms now)
{
	km_dht_receive(d, from, (const uint8_t *)q, strlen(q), now);
}

Test(unsolicited, a_query_from_an_ip_we_never_sent_to_fires_the_callback)
{
	struct km_addr from = v4(0xc6336407, 6881);

	node(false);
	query_from(&from, ping, T0 + 5);
	cr_assert_eq(seen.fired, 1);
	cr_assert(km_addr_eq(&seen.from, &from));
	cr_assert_eq(seen.at, T0 + 5);
	cr_assert_eq(km_dht_stats(d).unsolicited_in, 1);
	query_from(&from, ping, T0 + 6);
	cr_assert_eq(seen.fired, 1, "we answered it: it is no stranger now");
}

Test(unsolicited, a_query_from_any_port_of_an_ip_we_sent_to_does_not)
{
	struct km_addr to = v4(0xc6336407, 6881), from = v4(0xc6336407, 51413);

	node(false);
	cr_assert_eq(km_dht_ping_addr(d, &to, T0), 0);
	query_from(&from, ping, T0 + KM_SECONDS(100));
	cr_assert_eq(seen.fired, 0);
	cr_assert_eq(km_dht_stats(d).unsolicited_in, 0);
}

Test(unsolicited, a_query_fires_again_once_our_last_datagram_has_aged_out)
{
	struct km_addr to = v4(0xc6336407, 6881);

	node(false);
	cr_assert_eq(km_dht_ping_addr(d, &to, T0), 0);
	km_dht_tick(d, T0 + KM_SECONDS(10)); /* the ping times out */
	query_from(&to, ping, T0 + 2 * WINDOW + 1);
	cr_assert_eq(seen.fired, 1,
		     "no NAT keeps a mapping open through 10 silent minutes");
}

Test(unsolicited, replies_errors_and_malformed_queries_fire_nothing)
{
	static const char reply[] =
		"d1:rd2:id20:abcdefghij0123456789e1:t4:zzzz1:y1:re";
	static const char bad[] = "d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe";
	struct km_addr a = v4(0xc6336407, 6881), b = v4(0xc6336408, 6881);

	node(false);
	query_from(&a, reply, T0);
	query_from(&b, bad, T0);
	cr_assert_eq(seen.fired, 0);
}

Test(unsolicited, a_read_only_node_and_read_only_queriers_count_too)
{
	struct km_addr a = v4(0xc6336407, 6881), b = v4(0xc6336408, 6881);

	node(true);
	query_from(&a, ping, T0);
	cr_assert_eq(seen.fired, 1, "unanswered, but it arrived");
	cr_assert_eq(seen.sent, 0, "BEP 43: a read-only node answers nothing");
	query_from(&a, ping, T0 + KM_SECONDS(30));
	cr_assert_eq(seen.fired, 1,
		     "its datagrams keep a NAT mapping open like ours would");
	query_from(&b, ro_ping, T0);
	cr_assert_eq(seen.fired, 2, "a BEP 43 `ro` querier reached us as well");
}

/* On a virtual network: the seed hears the joiner's first query unasked;
 * the joiner hears nothing unasked from the seed, which only ever talks
 * to it after it spoke first. */
Test(unsolicited, a_joiner_is_unsolicited_to_its_seed_and_never_the_other_way)
{
	struct vnet *v = vnet_new(2, 3, NULL);

	vnet_join(v, 1, 0);
	vnet_run_until(v, vnet_now(v) + KM_SECONDS(60));
	cr_assert_eq(km_dht_stats(vnet_node(v, 0)).unsolicited_in, 1);
	cr_assert_eq(km_dht_stats(vnet_node(v, 1)).unsolicited_in, 0);
	cr_assert_gt(km_dht_stats(vnet_node(v, 1)).queries_in, 0,
		     "the seed does query the joiner (its table pings it)");
	vnet_del(v);
}

/* The same through km_dht's send path: a node that has pinged 2,000
 * distinct IPs (its transaction cap) hears a query from each of them, at
 * another port, and takes none for unsolicited. */
Test(unsolicited, a_node_that_sent_to_2000_ips_takes_none_of_their_queries_for_unsolicited)
{
	node(false);
	for (uint32_t i = 0; i < 2000; i++) {
		struct km_addr to = v4(0xc6000000u + i * 7919, 6881);

		cr_assert_eq(km_dht_ping_addr(d, &to, T0 + i), 0);
	}
	for (uint32_t i = 0; i < 2000; i++) {
		struct km_addr from = v4(0xc6000000u + i * 7919, 1024 + i);

		query_from(&from, ping, T0 + KM_SECONDS(3));
	}
	cr_assert_eq(km_dht_stats(d).queries_in, 2000);
	cr_assert_eq(seen.fired, 0);
}
