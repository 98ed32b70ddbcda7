/* km_node's join logic with a fake driver: overlay first, KRPC as the
 * fallback, retries with backoff, and rejoining when the table dies. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/node.h"
#include "proto/krpc.h"

struct fake {
	int connects;
	uint64_t last_conn;
	int find_nodes_to_bootstrap;
	int udp_sent;
	struct km_krpc_msg last_query;
	struct km_addr last_to;
	struct km_addr bootstrap;
};

static void fake_udp(void *user, const struct km_addr *to, const uint8_t *buf,
		     size_t len)
{
	struct fake *f = user;

	f->udp_sent++;
	f->last_to = *to;
	cr_assert_eq(km_krpc_decode(buf, len, &f->last_query), 0);
	if (km_addr_eq(to, &f->bootstrap) &&
	    f->last_query.method == KM_KRPC_FIND_NODE)
		f->find_nodes_to_bootstrap++;
}

static void fake_connect(void *user, uint64_t conn, const struct km_addr *to)
{
	struct fake *f = user;

	f->connects++;
	f->last_conn = conn;
}

static void fake_send(void *user, uint64_t conn, const uint8_t *buf, size_t len) {}
static void fake_close(void *user, uint64_t conn) {}

static const struct km_node_callbacks fake_cb = {
	.udp_send = fake_udp, .tcp_connect = fake_connect,
	.tcp_send = fake_send, .tcp_close = fake_close,
};

static struct km_prng prng;
static struct km_rng rng;

static struct km_node *node_with_bootstrap(struct fake *f, km_ms now)
{
	struct km_node_config cfg;
	uint8_t ip[4] = { 127, 0, 0, 9 };

	km_prng_seed(&prng, 11);
	rng = km_prng_rng(&prng);
	km_node_config_default(&cfg);
	km_id_random(&rng, &cfg.dht.id);
	cfg.port = 7000;
	cfg.cm.max_out = 0; /* joining only: no neighbours dialled */
	km_addr_set_v4(&cfg.bootstrap[0], ip, 6881);
	cfg.nbootstrap = 1;
	f->bootstrap = cfg.bootstrap[0];
	return km_node_new(&cfg, &fake_cb, f, &rng, now);
}

/* Answers the last query as the node at f->last_to with ID id. */
static void answer_last(struct km_node *n, struct fake *f, uint8_t id_byte,
			km_ms now)
{
	struct km_krpc_msg r;
	uint8_t buf[512];
	int len;

	km_krpc_init(&r, KM_KRPC_RESPONSE);
	memcpy(r.tid, f->last_query.tid, f->last_query.tid_len);
	r.tid_len = f->last_query.tid_len;
	memset(r.id.b, id_byte, KM_ID_LEN);
	len = km_krpc_encode(&r, buf, sizeof(buf));
	cr_assert_gt(len, 0);
	km_node_udp_recv(n, &f->last_to, buf, (size_t)len, now);
}

Test(node, a_bootstrap_without_overlay_gets_find_node_over_krpc)
{
	struct fake f = { 0 };
	struct km_node *n = node_with_bootstrap(&f, 1000);

	km_node_start(n, NULL, 0, 1000);
	cr_assert_eq(f.connects, 1, "HELLO goes over TCP first");
	km_node_tcp_closed(n, f.last_conn, 1010); /* connection refused */
	cr_assert_eq(f.find_nodes_to_bootstrap, 1);
	cr_assert(km_id_eq(&f.last_query.target, km_dht_id(km_node_dht(n))),
		  "the fallback asks for our own ID");
	cr_assert_eq(km_node_stats(n).bootstrap_krpc_fallbacks, 1);
	km_node_del(n);
}

Test(node, a_silent_bootstrap_is_retried_with_backoff_and_jitter)
{
	struct fake f = { 0 };
	struct km_node *n = node_with_bootstrap(&f, 1000);
	km_ms t = 1000, retry_at = 0;

	km_node_start(n, NULL, 0, t);
	km_node_tcp_closed(n, f.last_conn, t);
	for (t = 1000; t <= 3000 && f.connects == 1; t += 10)
		km_node_tick(n, t);
	retry_at = t - 10;
	cr_assert_eq(f.connects, 2, "no retry within 2 s");
	/* First retry: 1 s base, jittered to 0.5-1.5 s. */
	cr_assert(retry_at >= 1500 && retry_at <= 2500, "retried at %llu",
		  (unsigned long long)retry_at);
	km_node_del(n);
}

Test(node, a_table_that_loses_every_node_rejoins_through_the_bootstrap)
{
	struct fake f = { 0 };
	struct km_node *n = node_with_bootstrap(&f, 1000);
	km_ms t;
	int connects;

	km_node_start(n, NULL, 0, 1000);
	km_node_tcp_closed(n, f.last_conn, 1000);
	answer_last(n, &f, 0x42, 1100); /* the bootstrap answers over KRPC */
	km_node_tick(n, 1100);
	cr_assert_eq(km_table_size(km_dht_table(km_node_dht(n))), 1);
	/* From now on nobody answers: after the table's maintenance pings
	 * fail the node is bad, and the node must start over. */
	connects = f.connects;
	for (t = 1100; t < 1100 + KM_MINUTES(20) && f.connects == connects; t += 500)
		km_node_tick(n, t);
	cr_assert_gt(f.connects, connects, "never rejoined");
	cr_assert_eq(km_table_usable(km_dht_table(km_node_dht(n)), t), 0);
	km_node_del(n);
}

/* The node's stats sum every family's counters; a one-family node's sum is
 * its one DHT's counters, member for member (a member left out of the sum
 * read 0 in `status` whatever the DHT did, as `resent` once did). */
Test(node, a_one_family_nodes_stats_are_its_dhts_counters_member_for_member)
{
	struct fake f = { 0 };
	struct km_node *n = node_with_bootstrap(&f, 1000);
	struct km_dht_stats d, summed;
	struct km_id target;

	km_node_start(n, NULL, 0, 1000);
	km_node_tcp_closed(n, f.last_conn, 1010); /* KRPC fallback */
	answer_last(n, &f, 0x55, 1020);          /* the bootstrap, now known */
	memset(target.b, 0x50, KM_ID_LEN);
	cr_assert_eq(km_node_lookup(n, &target, KM_LOOKUP_FIND_NODE, NULL,
				    1100), 0);
	for (km_ms t = 1100; t < 10000; t += 100)
		km_node_tick(n, t);          /* and then silent */
	d = km_dht_stats(km_node_dht(n));
	summed = km_node_stats(n).sum.dht;
	cr_assert_gt(d.timeouts, 0);
	cr_assert_eq(memcmp(&summed, &d, sizeof(d)), 0);
	km_node_del(n);
}
