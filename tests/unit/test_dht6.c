/* BEP 32 on the virtual network: IPv6-only nodes, dual-stack nodes with one
 * table per family, `nodes6` and `want` both ways, and IPv6 compact peers. */
#include <criterion/criterion.h>
#include <string.h>

#include "dht/dht.h"
#include "proto/krpc.h"
#include "vnet.h"

#define K 8

/* Every node joins family through node 0; `skip` (if < n) joins only
 * over IPv4. */
static void join_all(struct vnet *v, enum km_family family, size_t skip)
{
	for (size_t i = 1; i < vnet_size(v); i++) {
		if (i == skip)
			continue;
		vnet_join_in(v, i, 0, family);
		vnet_run_until(v, vnet_now(v) + 50);
	}
}

static void expect_true_closest(struct vnet *v, size_t from,
				enum km_family family, int lookups)
{
	for (int i = 0; i < lookups; i++) {
		struct km_id target, truth[K];
		struct vnet_lookup res;

		km_id_random(vnet_rng(v), &target);
		cr_assert(vnet_lookup_in(v, from, family, &target,
					 KM_LOOKUP_FIND_NODE, &res,
					 KM_SECONDS(30)));
		vnet_true_closest(v, &target, from, K, truth);
		cr_assert(vnet_same_ids(res.results, res.nresults, truth, K),
			  "lookup %d from node %zu missed the true closest", i,
			  from);
		for (size_t j = 0; j < res.nresults; j++)
			cr_assert_eq(res.results[j].c.addr.family, family);
	}
}

Test(dht6, ipv6_only_nodes_find_the_true_k_closest_through_nodes6)
{
	struct km_dht_config cfg;
	struct vnet *v;

	km_dht_config_default(&cfg);
	cfg.family = KM_AF_INET6;
	v = vnet_new(100, 6, &cfg);
	cr_assert_eq(vnet_addr(v, 0)->family, KM_AF_INET6);
	join_all(v, KM_AF_INET6, SIZE_MAX);
	vnet_run_until(v, vnet_now(v) + KM_SECONDS(60));
	expect_true_closest(v, 42, KM_AF_INET6, 20);
	vnet_del(v);
}

static struct km_krpc_msg ask(struct vnet *v, const struct km_addr *from,
			      const char *query, uint8_t *buf)
{
	struct km_krpc_msg r;
	size_t n = vnet_exchange(v, 0, from, (const uint8_t *)query,
				 strlen(query), buf, 2048);

	cr_assert_gt(n, 0, "no reply to %s", query);
	cr_assert_eq(km_krpc_decode(buf, n, &r), 0);
	cr_assert_eq(r.type, KM_KRPC_RESPONSE);
	return r;
}

/* Read-only (BEP 43), so that the asker stays out of the table. */
#define FIND_NODE(want)                                                   \
	"d1:ad2:id20:abcdefghij01234567896:target20:ABCDEFGHIJ0123456789" \
	want "e1:q9:find_node2:roi1e1:t2:aa1:y1:qe"

Test(dht6, want_picks_nodes_nodes6_or_both_and_the_default_is_the_askers_family)
{
	struct km_dht_config cfg;
	struct vnet *v;
	struct km_addr from4, from6;
	uint8_t ip4[4] = { 192, 0, 2, 1 }, ip6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	uint8_t buf[2048];
	struct km_krpc_msg r;

	/* Full answers to strangers: this is about `want`; the amplification
	 * cap that would trim them has its own tests (test_flood.c). */
	km_dht_config_default(&cfg);
	cfg.amplification = 0;
	v = vnet_new_families(30, 9, &cfg, true, true);
	join_all(v, KM_AF_INET4, SIZE_MAX);
	join_all(v, KM_AF_INET6, SIZE_MAX);
	vnet_run_until(v, vnet_now(v) + KM_SECONDS(60));
	km_addr_set_v4(&from4, ip4, 4000);
	km_addr_set_v6(&from6, ip6, 4000);

	r = ask(v, &from4, FIND_NODE(""), buf);
	cr_assert_eq(r.nodes_len, K * KM_COMPACT_NODE4_LEN);
	cr_assert_null(r.nodes6);
	r = ask(v, &from6, FIND_NODE(""), buf);
	cr_assert_null(r.nodes);
	cr_assert_eq(r.nodes6_len, K * KM_COMPACT_NODE6_LEN);
	r = ask(v, &from4, FIND_NODE("4:wantl2:n42:n6e"), buf);
	cr_assert_eq(r.nodes_len, K * KM_COMPACT_NODE4_LEN);
	cr_assert_eq(r.nodes6_len, K * KM_COMPACT_NODE6_LEN);
	r = ask(v, &from4, FIND_NODE("4:wantl2:n6e"), buf);
	cr_assert_null(r.nodes);
	cr_assert_eq(r.nodes6_len, K * KM_COMPACT_NODE6_LEN);
	for (size_t i = 0; i < r.nodes6_len / KM_COMPACT_NODE6_LEN; i++) {
		struct km_contact c;

		km_compact_node_read(r.nodes6, i, KM_AF_INET6, &c);
		cr_assert_eq(c.addr.ip[0], 0xfd, "nodes6 holds IPv6 nodes");
	}
	vnet_del(v);
}

Test(dht6, want_from_an_ipv4_only_node_gets_no_nodes6)
{
	struct vnet *v = vnet_new(10, 3, NULL);
	struct km_addr from4;
	uint8_t ip4[4] = { 192, 0, 2, 1 }, buf[2048];
	struct km_krpc_msg r;

	join_all(v, KM_AF_INET4, SIZE_MAX);
	vnet_run_until(v, vnet_now(v) + KM_SECONDS(10));
	km_addr_set_v4(&from4, ip4, 4000);
	r = ask(v, &from4, FIND_NODE("4:wantl2:n42:n6e"), buf);
	cr_assert_gt(r.nodes_len, 0);
	cr_assert_null(r.nodes6);
	vnet_del(v);
}

Test(dht6, a_dual_stack_node_joined_over_ipv4_fills_its_ipv6_table_through_want)
{
	struct vnet *v = vnet_new_families(60, 11, NULL, true, true);
	size_t late = 59;
	const struct km_table *t6;

	join_all(v, KM_AF_INET4, SIZE_MAX);
	join_all(v, KM_AF_INET6, late); /* node 59 never joins over IPv6 */
	vnet_run_until(v, vnet_now(v) + KM_SECONDS(60));
	t6 = km_dht_table(vnet_node_in(v, late, KM_AF_INET6));
	cr_assert_geq(km_table_size(t6), K, "IPv6 table has %zu nodes",
		      km_table_size(t6));
	expect_true_closest(v, late, KM_AF_INET6, 10);
	vnet_del(v);
}

Test(dht6, a_peer_announced_over_ipv6_comes_back_as_an_18_byte_compact_peer)
{
	struct km_dht_config cfg;
	struct vnet *v;
	struct vnet_lookup res;
	struct km_id ih;
	bool found = false;

	km_dht_config_default(&cfg);
	cfg.family = KM_AF_INET6;
	v = vnet_new(40, 17, &cfg);
	join_all(v, KM_AF_INET6, SIZE_MAX);
	vnet_run_until(v, vnet_now(v) + KM_SECONDS(60));
	km_id_sha1("kadmesh ipv6 swarm", 18, &ih);
	cr_assert_eq(km_dht_announce(vnet_node(v, 5), &ih, 7777, false, NULL,
				     vnet_now(v)), 0);
	vnet_run_until(v, vnet_now(v) + KM_SECONDS(20));
	cr_assert(vnet_lookup(v, 30, &ih, KM_LOOKUP_GET_PEERS, &res,
			      KM_SECONDS(30)));
	for (size_t i = 0; i < res.npeers; i++) {
		cr_assert_eq(res.peers[i].family, KM_AF_INET6);
		found |= km_addr_ip_eq(&res.peers[i], vnet_addr(v, 5)) &&
			 res.peers[i].port == 7777;
	}
	cr_assert(found, "the IPv6 peer was not returned by get_peers");
	vnet_del(v);
}

static bool has_bytes(const uint8_t *buf, size_t len, const char *s)
{
	size_t sl = strlen(s);

	for (size_t i = 0; i + sl <= len; i++)
		if (memcmp(buf + i, s, sl) == 0)
			return true;
	return false;
}

Test(dht6, ipv6_compact_peers_round_trip_in_get_peers_values)
{
	struct km_krpc_msg m, back;
	uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 }, out[512];
	int n;

	km_krpc_init(&m, KM_KRPC_RESPONSE);
	m.tid_len = 2;
	memcpy(m.tid, "aa", 2);
	m.values_count = 1;
	km_addr_set_v6(&m.values[0], ip6, 51413);
	n = km_krpc_encode(&m, out, sizeof(out));
	cr_assert_gt(n, 0);
	cr_assert(has_bytes(out, (size_t)n, "6:valuesl18:"),
		  "values carries one 18-byte string");
	cr_assert_eq(km_krpc_decode(out, (size_t)n, &back), 0);
	cr_assert_eq(back.values_count, 1);
	cr_assert(km_addr_eq(&back.values[0], &m.values[0]));
}
