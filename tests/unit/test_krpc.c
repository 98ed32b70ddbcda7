#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/err.h"
#include "proto/krpc.h"

#define LIT(s) (const uint8_t *)(s), sizeof(s) - 1

static struct km_krpc_msg m;
static uint8_t out[KM_KRPC_MAX_PACKET + 64];

/* A packet assembled from pieces, for cases too long to write literally. */
static uint8_t pkt[KM_KRPC_MAX_PACKET + 64];
static size_t pkt_len;

static void put(const void *p, size_t n)
{
	cr_assert_leq(pkt_len + n, sizeof(pkt));
	memcpy(pkt + pkt_len, p, n);
	pkt_len += n;
}

static void puts_(const char *s)
{
	put(s, strlen(s));
}

/* A bencoded string of n copies of byte c. */
static void put_filled_str(size_t n, uint8_t c)
{
	char hdr[24];

	snprintf(hdr, sizeof(hdr), "%zu:", n);
	puts_(hdr);
	cr_assert_leq(pkt_len + n, sizeof(pkt));
	memset(pkt + pkt_len, c, n);
	pkt_len += n;
}

static int decode(const uint8_t *p, size_t len)
{
	return km_krpc_decode(p, len, &m);
}

static int decode_str(const char *s)
{
	return decode((const uint8_t *)s, strlen(s));
}

static struct km_id id_of(const char *s20)
{
	struct km_id id;

	cr_assert_eq(strlen(s20), KM_ID_LEN);
	memcpy(id.b, s20, KM_ID_LEN);
	return id;
}

static void expect_id(const struct km_id *id, const char *s20)
{
	cr_assert_eq(memcmp(id->b, s20, KM_ID_LEN), 0);
}

static void expect_tid(const char *tid)
{
	cr_assert_eq(m.tid_len, strlen(tid));
	cr_assert_eq(memcmp(m.tid, tid, m.tid_len), 0);
}

static struct km_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	const uint8_t ip[4] = { a, b, c, d };
	struct km_addr addr;

	km_addr_set_v4(&addr, ip, port);
	return addr;
}

static struct km_addr v6(uint8_t last, uint16_t port)
{
	uint8_t ip[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	struct km_addr addr;

	ip[15] = last;
	km_addr_set_v6(&addr, ip, port);
	return addr;
}

/* BEP 5's examples, byte for byte. */

Test(krpc, the_bep_5_ping_query_and_response_decode)
{
	cr_assert_eq(decode(LIT("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")), 0);
	cr_assert_eq(m.type, KM_KRPC_QUERY);
	cr_assert_eq(m.method, KM_KRPC_PING);
	cr_assert_str_eq(m.method_name, "ping");
	expect_tid("aa");
	expect_id(&m.id, "abcdefghij0123456789");
	cr_assert(m.has_id);
	cr_assert_eq(m.v_len, 0);
	cr_assert_not(m.has_ip);
	cr_assert_not(m.ro);

	cr_assert_eq(decode(LIT("d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re")), 0);
	cr_assert_eq(m.type, KM_KRPC_RESPONSE);
	expect_tid("aa");
	expect_id(&m.id, "mnopqrstuvwxyz123456");
	cr_assert_null(m.nodes);
	cr_assert_eq(m.values_count, 0);
	cr_assert_eq(m.token_len, 0);
}

Test(krpc, the_bep_5_find_node_and_get_peers_queries_decode)
{
	cr_assert_eq(decode(LIT("d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e"
				"1:q9:find_node1:t2:aa1:y1:qe")), 0);
	cr_assert_eq(m.method, KM_KRPC_FIND_NODE);
	expect_id(&m.id, "abcdefghij0123456789");
	expect_id(&m.target, "mnopqrstuvwxyz123456");
	cr_assert_eq(m.want, 0);

	cr_assert_eq(decode(LIT("d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e"
				"1:q9:get_peers1:t2:aa1:y1:qe")), 0);
	cr_assert_eq(m.method, KM_KRPC_GET_PEERS);
	expect_id(&m.info_hash, "mnopqrstuvwxyz123456");
}

Test(krpc, the_bep_5_get_peers_response_with_values_decodes)
{
	cr_assert_eq(decode(LIT("d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth"
				"6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re")), 0);
	cr_assert_eq(m.type, KM_KRPC_RESPONSE);
	cr_assert_eq(m.token_len, 8);
	cr_assert_eq(memcmp(m.token, "aoeusnth", 8), 0);
	cr_assert_eq(m.values_count, 2);
	cr_assert_eq(m.values[0].family, KM_AF_INET4);
	cr_assert_eq(memcmp(m.values[0].ip, "axje", 4), 0);
	cr_assert_eq(m.values[0].port, ('.' << 8) | 'u');
	cr_assert_eq(memcmp(m.values[1].ip, "idht", 4), 0);
}

/* The BEP writes "def456..." for a node list; 9 bytes is not a whole number
 * of 26-byte entries, so the examples are rejected -- with their tid. */
Test(krpc, the_bep_5_placeholder_node_lists_are_rejected_as_syntax)
{
	cr_assert_eq(decode(LIT("d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e"
				"1:t2:aa1:y1:re")), KM_ERR_SYNTAX);
	cr_assert_eq(m.type, KM_KRPC_RESPONSE);
	expect_tid("aa");
	cr_assert_eq(decode(LIT("d1:rd2:id20:abcdefghij01234567895:nodes9:def456..."
				"5:token8:aoeusnthe1:t2:aa1:y1:re")), KM_ERR_SYNTAX);
}

Test(krpc, the_bep_5_announce_peer_query_decodes)
{
	cr_assert_eq(decode(LIT("d1:ad2:id20:abcdefghij012345678912:implied_porti1e"
				"9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe"
				"1:q13:announce_peer1:t2:aa1:y1:qe")), 0);
	cr_assert_eq(m.method, KM_KRPC_ANNOUNCE_PEER);
	cr_assert(m.implied_port);
	cr_assert_eq(m.port, 6881);
	expect_id(&m.info_hash, "mnopqrstuvwxyz123456");
	cr_assert_eq(m.token_len, 8);
}

Test(krpc, the_bep_5_error_decodes)
{
	cr_assert_eq(decode(LIT("d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee")), 0);
	cr_assert_eq(m.type, KM_KRPC_ERROR);
	cr_assert_eq(m.error_code, KM_KRPC_ERR_GENERIC);
	cr_assert_str_eq(m.error_msg, "A Generic Error Ocurred");
	expect_tid("aa");
}

/* Encoding reproduces the BEP's bytes, which proves the key order. */

static void expect_encoding(const struct km_krpc_msg *msg, const uint8_t *want, size_t len)
{
	int n = km_krpc_encode(msg, out, sizeof(out));

	cr_assert_eq(n, (int)len, "%d != %zu", n, len);
	cr_assert_eq(memcmp(out, want, len), 0, "%.*s", n, out);
}

static void query(enum km_krpc_method method)
{
	km_krpc_init(&m, KM_KRPC_QUERY);
	m.method = method;
	memcpy(m.tid, "aa", 2);
	m.tid_len = 2;
	m.id = id_of("abcdefghij0123456789");
}

Test(krpc, encoding_reproduces_the_bep_5_queries)
{
	query(KM_KRPC_PING);
	expect_encoding(&m, LIT("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"));

	query(KM_KRPC_FIND_NODE);
	m.target = id_of("mnopqrstuvwxyz123456");
	expect_encoding(&m, LIT("d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e"
				"1:q9:find_node1:t2:aa1:y1:qe"));

	query(KM_KRPC_ANNOUNCE_PEER);
	m.implied_port = true;
	m.info_hash = id_of("mnopqrstuvwxyz123456");
	m.port = 6881;
	memcpy(m.token, "aoeusnth", 8);
	m.token_len = 8;
	expect_encoding(&m, LIT("d1:ad2:id20:abcdefghij012345678912:implied_porti1e"
				"9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe"
				"1:q13:announce_peer1:t2:aa1:y1:qe"));
}

Test(krpc, encoding_reproduces_the_bep_5_responses_and_error)
{
	km_krpc_init(&m, KM_KRPC_RESPONSE);
	memcpy(m.tid, "aa", 2);
	m.tid_len = 2;
	m.id = id_of("abcdefghij0123456789");
	memcpy(m.token, "aoeusnth", 8);
	m.token_len = 8;
	km_compact_peer_read((const uint8_t *)"axje.u", 6, &m.values[0]);
	km_compact_peer_read((const uint8_t *)"idhtnm", 6, &m.values[1]);
	m.values_count = 2;
	expect_encoding(&m, LIT("d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth"
				"6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re"));

	km_krpc_init(&m, KM_KRPC_ERROR);
	memcpy(m.tid, "aa", 2);
	m.tid_len = 2;
	m.error_code = 201;
	strcpy(m.error_msg, "A Generic Error Ocurred");
	expect_encoding(&m, LIT("d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"));
}

Test(krpc, kadmesh_sends_its_client_version_in_v)
{
	query(KM_KRPC_PING);
	memcpy(m.v, KM_KRPC_CLIENT_V, KM_KRPC_CLIENT_V_LEN);
	m.v_len = KM_KRPC_CLIENT_V_LEN;
	expect_encoding(&m, LIT("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa"
				"1:v4:KM\x00\x01" "1:y1:qe"));
	cr_assert_eq(decode(out, sizeof("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa"
					"1:v4:KM\x00\x01" "1:y1:qe") - 1), 0);
	cr_assert_eq(m.v_len, 4);
	cr_assert_eq(memcmp(m.v, "KM\x00\x01", 4), 0);
}

/* Round trips: encode, decode, compare. */

static struct km_krpc_msg sent;
static uint8_t in[sizeof(out)];

/* Decodes from a copy: m's node lists then point into `in`, so the next
 * round trip may encode from them into `out` (which must not overlap). */
static void round_trip(void)
{
	int n;

	sent = m;
	n = km_krpc_encode(&sent, out, sizeof(out));
	cr_assert_gt(n, 0, "encode: %s", km_strerror(n));
	memcpy(in, out, (size_t)n);
	cr_assert_eq(km_krpc_decode(in, (size_t)n, &m), 0, "decode %.*s", n, in);
	cr_assert_eq(m.type, sent.type);
	cr_assert_eq(m.tid_len, sent.tid_len);
	cr_assert_eq(memcmp(m.tid, sent.tid, m.tid_len), 0);
	cr_assert_eq(m.v_len, sent.v_len);
	cr_assert_eq(m.ro, sent.ro);
	cr_assert_eq(m.has_ip, sent.has_ip);
	if (m.has_ip)
		cr_assert(km_addr_eq(&m.ip, &sent.ip));
	cr_assert_eq(memcmp(m.id.b, sent.id.b, KM_ID_LEN), 0);
}

static void tid(const char *t)
{
	memcpy(m.tid, t, strlen(t));
	m.tid_len = strlen(t);
}

Test(krpc, every_query_round_trips_with_its_arguments)
{
	query(KM_KRPC_PING);
	m.ro = true;
	round_trip();
	cr_assert_eq(m.method, KM_KRPC_PING);

	query(KM_KRPC_FIND_NODE);
	m.target = id_of("ttttttttttttttttttt1");
	m.want = KM_WANT_N4 | KM_WANT_N6;
	round_trip();
	expect_id(&m.target, "ttttttttttttttttttt1");
	cr_assert_eq(m.want, KM_WANT_N4 | KM_WANT_N6);

	query(KM_KRPC_GET_PEERS);
	m.info_hash = id_of("hhhhhhhhhhhhhhhhhhh2");
	m.want = KM_WANT_N6;
	m.ro = true;
	memcpy(m.tid, "\x00\xff\x10\x01", 4);
	m.tid_len = 4;
	round_trip();
	expect_id(&m.info_hash, "hhhhhhhhhhhhhhhhhhh2");
	cr_assert_eq(m.want, KM_WANT_N6);

	query(KM_KRPC_ANNOUNCE_PEER);
	m.info_hash = id_of("hhhhhhhhhhhhhhhhhhh3");
	m.port = 51413;
	memcpy(m.token, "\x01\x02\x03\x04", 4);
	m.token_len = 4;
	round_trip();
	cr_assert_eq(m.port, 51413);
	cr_assert_not(m.implied_port);
	cr_assert_eq(m.token_len, 4);

	m.implied_port = true;
	m.port = 0;
	round_trip();
	cr_assert(m.implied_port);
	cr_assert_eq(m.port, 0);
}

Test(krpc, responses_round_trip_with_nodes_nodes6_values_token_and_ip)
{
	uint8_t nodes[3 * KM_COMPACT_NODE4_LEN], nodes6[2 * KM_COMPACT_NODE6_LEN];
	struct km_contact c, back;

	for (int i = 0; i < 3; i++) {
		memset(c.id.b, 'a' + i, KM_ID_LEN);
		c.addr = v4(10, 0, 0, (uint8_t)i, (uint16_t)(6881 + i));
		cr_assert_eq(km_compact_node_write(&c, nodes + i * KM_COMPACT_NODE4_LEN,
						   KM_COMPACT_NODE4_LEN), KM_COMPACT_NODE4_LEN);
	}
	for (int i = 0; i < 2; i++) {
		memset(c.id.b, 'x' + i, KM_ID_LEN);
		c.addr = v6((uint8_t)i, (uint16_t)(1000 + i));
		cr_assert_eq(km_compact_node_write(&c, nodes6 + i * KM_COMPACT_NODE6_LEN,
						   KM_COMPACT_NODE6_LEN), KM_COMPACT_NODE6_LEN);
	}
	km_krpc_init(&m, KM_KRPC_RESPONSE);
	tid("r1");
	m.id = id_of("responder-id-0000001");
	m.nodes = nodes;
	m.nodes_len = sizeof(nodes);
	m.nodes6 = nodes6;
	m.nodes6_len = sizeof(nodes6);
	memcpy(m.token, "tok", 3);
	m.token_len = 3;
	m.values[0] = v4(1, 2, 3, 4, 5);
	m.values[1] = v6(9, 65535);
	m.values_count = 2;
	m.has_ip = true;
	m.ip = v4(203, 0, 113, 7, 40000);
	memcpy(m.v, KM_KRPC_CLIENT_V, KM_KRPC_CLIENT_V_LEN);
	m.v_len = KM_KRPC_CLIENT_V_LEN;
	round_trip();

	cr_assert_eq(m.nodes_len, sizeof(nodes));
	cr_assert_eq(memcmp(m.nodes, nodes, sizeof(nodes)), 0);
	cr_assert_eq(m.nodes6_len, sizeof(nodes6));
	km_compact_node_read(m.nodes, 2, KM_AF_INET4, &back);
	cr_assert_eq(back.id.b[0], 'c');
	cr_assert(km_addr_eq(&back.addr, &(struct km_addr){ 0 }) == false);
	cr_assert_eq(back.addr.port, 6883);
	km_compact_node_read(m.nodes6, 1, KM_AF_INET6, &back);
	cr_assert_eq(back.id.b[19], 'y');
	cr_assert(km_addr_eq(&back.addr, &(struct km_addr){ 0 }) == false);
	c.addr = v6(1, 1001);
	cr_assert(km_addr_eq(&back.addr, &c.addr));
	cr_assert_eq(m.token_len, 3);
	cr_assert_eq(m.values_count, 2);
	cr_assert(km_addr_eq(&m.values[0], &sent.values[0]));
	cr_assert(km_addr_eq(&m.values[1], &sent.values[1]));

	m.has_ip = true;
	m.ip = v6(42, 443);
	m.nodes = NULL;
	m.nodes_len = 0;
	round_trip();
	cr_assert_null(m.nodes);
}

Test(krpc, errors_201_to_204_round_trip)
{
	for (int code = 201; code <= 204; code++) {
		km_krpc_init(&m, KM_KRPC_ERROR);
		tid("e!");
		m.error_code = code;
		snprintf(m.error_msg, sizeof(m.error_msg), "error %d", code);
		round_trip();
		cr_assert_eq(m.error_code, code);
		cr_assert_str_eq(m.error_msg, sent.error_msg);
	}
}

/* Tolerance of what real peers send. */

static void begin_response(void)
{
	pkt_len = 0;
	puts_("d1:rd2:id20:abcdefghij0123456789");
}

static void end_response(void)
{
	puts_("e1:t2:aa1:y1:re");
}

Test(krpc, a_response_with_200_nodes_decodes)
{
	begin_response();
	puts_("5:nodes");
	put_filled_str(200 * KM_COMPACT_NODE4_LEN, 'n');
	end_response();
	cr_assert_eq(decode(pkt, pkt_len), 0);
	cr_assert_eq(m.nodes_len / KM_COMPACT_NODE4_LEN, 200);
}

Test(krpc, a_packet_of_64_kib_is_accepted_and_one_byte_more_is_not)
{
	const char *tail = "e1:t2:aa1:y1:re";
	size_t room;

	begin_response();
	puts_("5:nodes");
	put_filled_str(2000 * KM_COMPACT_NODE4_LEN, 'n');
	/* Pad with an unknown key to exactly KM_KRPC_MAX_PACKET bytes; the
	 * pad is 5 digits long, so its header is "NNNNN:". */
	puts_("1:z");
	room = KM_KRPC_MAX_PACKET - pkt_len - strlen(tail);
	put_filled_str(room - 6, 'p');
	puts_(tail);
	cr_assert_eq(pkt_len, KM_KRPC_MAX_PACKET);
	cr_assert_eq(decode(pkt, pkt_len), 0);
	cr_assert_eq(m.nodes_len, 2000 * KM_COMPACT_NODE4_LEN);
	cr_assert_eq(decode(pkt, pkt_len + 1), KM_ERR_TOO_LONG);
}

Test(krpc, unknown_keys_at_every_level_are_ignored)
{
	cr_assert_eq(decode(LIT("d1:ad2:id20:abcdefghij01234567895:extrali1ed1:xleee"
				"6:target20:mnopqrstuvwxyz1234564:zzzzi7ee"
				"1:bi0e1:q9:find_node1:t2:aa4:unk_d1:kdee1:y1:q2:zzle" "e")), 0);
	cr_assert_eq(m.method, KM_KRPC_FIND_NODE);
	expect_id(&m.target, "mnopqrstuvwxyz123456");

	cr_assert_eq(decode(LIT("d1:rd2:id20:abcdefghij01234567891:pi1e7:samplesle"
				"5:token2:tke1:t2:aa1:v4:UT\x01\x02" "1:y1:r3:zzz3:zzze")), 0);
	cr_assert_eq(m.type, KM_KRPC_RESPONSE);
	cr_assert_eq(m.token_len, 2);
	cr_assert_eq(m.v_len, 4);
}

Test(krpc, unsorted_keys_from_peers_are_accepted)
{
	cr_assert_eq(decode(LIT("d1:y1:q1:t2:aa1:q4:ping1:ad2:id20:abcdefghij0123456789ee")), 0);
	cr_assert_eq(m.method, KM_KRPC_PING);
	expect_tid("aa");
}

Test(krpc, values_beyond_the_cap_are_dropped_and_counted)
{
	begin_response();
	puts_("6:valuesl");
	for (int i = 0; i < 300; i++)
		put_filled_str(i % 2 ? KM_COMPACT_PEER4_LEN : KM_COMPACT_PEER6_LEN, (uint8_t)i);
	puts_("e");
	end_response();
	cr_assert_eq(decode(pkt, pkt_len), 0);
	cr_assert_eq(m.values_count, KM_KRPC_VALUES_MAX);
	cr_assert_eq(m.values_dropped, 300 - KM_KRPC_VALUES_MAX);
	cr_assert_eq(m.values[0].family, KM_AF_INET6);
	cr_assert_eq(m.values[1].family, KM_AF_INET4);
}

Test(krpc, a_packet_with_more_items_than_the_decoder_holds_is_too_many)
{
	begin_response();
	puts_("6:valuesl");
	for (int i = 0; i < KM_KRPC_ITEMS_MAX; i++)
		put_filled_str(KM_COMPACT_PEER4_LEN, 'v');
	puts_("e");
	end_response();
	cr_assert_eq(decode(pkt, pkt_len), KM_ERR_TOO_MANY);
}

/* Malformed input. */

static const uint8_t *find_bytes(const uint8_t *p, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(p + i, needle, n) == 0)
			return p + i;
	return NULL;
}

/* For each valid packet, every proper prefix fails, and tid (and type) are
 * filled exactly when the prefix holds the whole `t` value. */
static void expect_prefixes_fail(const uint8_t *p, size_t len, const char *t,
				 enum km_krpc_type type)
{
	char key[48];
	const uint8_t *at;
	size_t t_end;

	snprintf(key, sizeof(key), "1:t%zu:%s", strlen(t), t);
	at = find_bytes(p, len, key);
	cr_assert_not_null(at);
	t_end = (size_t)(at - p) + strlen(key);
	cr_assert_eq(decode(p, len), 0);
	for (size_t cut = 0; cut < len; cut++) {
		cr_assert_lt(decode(p, cut), 0, "cut %zu", cut);
		if (cut >= t_end) {
			expect_tid(t);
			cr_assert_eq(m.type, type, "cut %zu", cut);
		} else {
			cr_assert_eq(m.tid_len, 0, "cut %zu", cut);
		}
	}
}

Test(krpc, every_valid_packet_truncated_at_every_byte_fails_with_tid_once_known)
{
	uint8_t nodes[2 * KM_COMPACT_NODE4_LEN];
	uint8_t copy[1024];
	int n;

	expect_prefixes_fail(LIT("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"),
			     "aa", KM_KRPC_QUERY);
	expect_prefixes_fail(LIT("d1:ad2:id20:abcdefghij012345678912:implied_porti1e"
				 "9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe"
				 "1:q13:announce_peer1:t2:aa1:y1:qe"), "aa", KM_KRPC_QUERY);
	expect_prefixes_fail(LIT("d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth"
				 "6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re"), "aa",
			     KM_KRPC_RESPONSE);
	expect_prefixes_fail(LIT("d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"), "aa",
			     KM_KRPC_ERROR);

	memset(nodes, 'n', sizeof(nodes));
	km_krpc_init(&m, KM_KRPC_RESPONSE);
	tid("xyz");
	m.nodes = nodes;
	m.nodes_len = sizeof(nodes);
	m.has_ip = true;
	m.ip = v4(1, 2, 3, 4, 5);
	m.ro = true;
	memcpy(m.v, KM_KRPC_CLIENT_V, KM_KRPC_CLIENT_V_LEN);
	m.v_len = KM_KRPC_CLIENT_V_LEN;
	n = km_krpc_encode(&m, copy, sizeof(copy));
	cr_assert_gt(n, 0);
	expect_prefixes_fail(copy, (size_t)n, "xyz", KM_KRPC_RESPONSE);

	query(KM_KRPC_GET_PEERS);
	tid("q7");
	m.want = KM_WANT_N4 | KM_WANT_N6;
	n = km_krpc_encode(&m, copy, sizeof(copy));
	cr_assert_gt(n, 0);
	expect_prefixes_fail(copy, (size_t)n, "q7", KM_KRPC_QUERY);
}

struct bad_case {
	const char *pkt;
	int err;
};

static void expect_errors(const struct bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(decode_str(cases[i].pkt), cases[i].err, "%s: %s",
			     cases[i].pkt, km_strerror(decode_str(cases[i].pkt)));
}

#define ID20 "20:abcdefghij0123456789"
#define IH20 "20:mnopqrstuvwxyz123456"

Test(krpc, fields_of_the_wrong_type_are_type_errors)
{
	static const struct bad_case cases[] = {
		{ "li1ee", KM_ERR_TYPE },
		{ "4:spam", KM_ERR_TYPE },
		{ "d1:ad2:idi5ee1:q4:ping1:t2:aa1:y1:qe", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "9:info_hash" IH20 "4:port4:6881" "5:token1:xe"
		  "1:q13:announce_peer1:t2:aa1:y1:qe", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "12:implied_port1:1" "9:info_hash" IH20 "4:porti1e"
		  "5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "9:info_hash" IH20 "4:porti1e" "5:tokeni1ee"
		  "1:q13:announce_peer1:t2:aa1:y1:qe", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "6:targeti1ee1:q9:find_node1:t2:aa1:y1:qe", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "6:target" IH20 "4:want2:n4e1:q9:find_node1:t2:aa1:y1:qe",
		  KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "6:target" IH20 "4:wantli4eee1:q9:find_node1:t2:aa1:y1:qe",
		  KM_ERR_TYPE },
		{ "d1:ali1ee1:q4:ping1:t2:aa1:y1:qe", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "e1:qi1e1:t2:aa1:y1:qe", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "e1:q4:ping1:ti1e1:y1:qe", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "e1:q4:ping1:t2:aa1:yi1ee", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "e1:q4:ping1:t2:aa1:vi1e1:y1:qe", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "e2:ipi1e1:q4:ping1:t2:aa1:y1:qe", KM_ERR_TYPE },
		{ "d1:ad2:id" ID20 "e1:q4:ping2:ro1:11:t2:aa1:y1:qe", KM_ERR_TYPE },
		{ "d1:r4:spam1:t2:aa1:y1:re", KM_ERR_TYPE },
		{ "d1:rd2:id" ID20 "5:nodesi1ee1:t2:aa1:y1:re", KM_ERR_TYPE },
		{ "d1:rd2:id" ID20 "6:nodes6le" "e1:t2:aa1:y1:re", KM_ERR_TYPE },
		{ "d1:rd2:id" ID20 "6:values6:axje.ue1:t2:aa1:y1:re", KM_ERR_TYPE },
		{ "d1:rd2:id" ID20 "6:valuesli1eee1:t2:aa1:y1:re", KM_ERR_TYPE },
		{ "d1:rd2:id" ID20 "5:tokenlee1:t2:aa1:y1:re", KM_ERR_TYPE },
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(krpc, fixed_size_fields_of_the_wrong_length_are_syntax_errors)
{
	static const struct bad_case cases[] = {
		{ "d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe", KM_ERR_SYNTAX },
		{ "d1:ad2:id21:abcdefghij0123456789Xe1:q4:ping1:t2:aa1:y1:qe", KM_ERR_SYNTAX },
		{ "d1:ad2:id" ID20 "6:target3:abce1:q9:find_node1:t2:aa1:y1:qe", KM_ERR_SYNTAX },
		{ "d1:ad2:id" ID20 "9:info_hash0:e1:q9:get_peers1:t2:aa1:y1:qe", KM_ERR_SYNTAX },
		{ "d1:rd2:id" ID20 "5:nodes27:aaaaaaaaaaaaaaaaaaaaaaaaaaae1:t2:aa1:y1:re",
		  KM_ERR_SYNTAX },
		{ "d1:rd2:id" ID20 "6:nodes626:aaaaaaaaaaaaaaaaaaaaaaaaaae1:t2:aa1:y1:re",
		  KM_ERR_SYNTAX },
		{ "d1:rd2:id" ID20 "6:valuesl7:abcdefgee1:t2:aa1:y1:re", KM_ERR_SYNTAX },
		{ "d1:rd2:id" ID20 "e2:ip5:abcde1:t2:aa1:y1:re", KM_ERR_SYNTAX },
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(krpc, missing_envelope_and_required_fields_are_reported)
{
	static const struct bad_case cases[] = {
		{ "de", KM_ERR_MISSING },
		{ "d1:ad2:id" ID20 "e1:q4:ping1:y1:qe", KM_ERR_MISSING },
		{ "d1:ad2:id" ID20 "e1:q4:ping1:t0:1:y1:qe", KM_ERR_MISSING },
		{ "d1:ad2:id" ID20 "e1:q4:ping1:t2:aae", KM_ERR_MISSING },
		{ "d1:ad2:id" ID20 "e1:t2:aa1:y1:qe", KM_ERR_MISSING },
		{ "d1:q4:ping1:t2:aa1:y1:qe", KM_ERR_MISSING },
		{ "d1:ade1:q4:ping1:t2:aa1:y1:qe", KM_ERR_MISSING },
		{ "d1:ad2:id" ID20 "e1:q9:find_node1:t2:aa1:y1:qe", KM_ERR_MISSING },
		{ "d1:ad2:id" ID20 "e1:q9:get_peers1:t2:aa1:y1:qe", KM_ERR_MISSING },
		{ "d1:ad2:id" ID20 "4:porti1e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
		  KM_ERR_MISSING },
		{ "d1:ad2:id" ID20 "9:info_hash" IH20 "5:token1:xe"
		  "1:q13:announce_peer1:t2:aa1:y1:qe", KM_ERR_MISSING },
		{ "d1:ad2:id" ID20 "9:info_hash" IH20 "4:porti1ee"
		  "1:q13:announce_peer1:t2:aa1:y1:qe", KM_ERR_MISSING },
		{ "d1:ad2:id" ID20 "9:info_hash" IH20 "4:porti1e5:token0:e"
		  "1:q13:announce_peer1:t2:aa1:y1:qe", KM_ERR_MISSING },
		{ "d1:t2:aa1:y1:re", KM_ERR_MISSING },
		{ "d1:rde1:t2:aa1:y1:re", KM_ERR_MISSING },
		{ "d1:t2:aa1:y1:ee", KM_ERR_MISSING },
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(krpc, limits_on_lengths_and_numbers_are_enforced)
{
	static const struct bad_case cases[] = {
		{ "d1:ad2:id" ID20 "e1:q4:ping1:t33:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1:y1:qe",
		  KM_ERR_TOO_LONG },
		{ "d1:ad2:id" ID20 "e1:q4:ping1:t2:aa1:v17:aaaaaaaaaaaaaaaaa1:y1:qe",
		  KM_ERR_TOO_LONG },
		{ "d1:ad2:id" ID20 "e1:q33:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1:t2:aa1:y1:qe",
		  KM_ERR_TOO_LONG },
		{ "d1:rd2:id" ID20 "5:token65:"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "e1:t2:aa1:y1:re", KM_ERR_TOO_LONG },
		{ "d1:ad2:id" ID20 "9:info_hash" IH20 "4:porti0e5:token1:xe"
		  "1:q13:announce_peer1:t2:aa1:y1:qe", KM_ERR_RANGE },
		{ "d1:ad2:id" ID20 "9:info_hash" IH20 "4:porti65536e5:token1:xe"
		  "1:q13:announce_peer1:t2:aa1:y1:qe", KM_ERR_RANGE },
		{ "d1:ad2:id" ID20 "9:info_hash" IH20 "4:porti-1e5:token1:xe"
		  "1:q13:announce_peer1:t2:aa1:y1:qe", KM_ERR_RANGE },
		{ "d1:ad2:id" ID20 "e1:q4:ping1:t2:aa1:y1:xe", KM_ERR_UNKNOWN_TYPE },
		{ "d1:ad2:id" ID20 "e1:q4:ping1:t2:aa1:y2:qqe", KM_ERR_UNKNOWN_TYPE },
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
	cr_assert_eq(decode_str("d1:ad2:id" ID20 "e1:q4:ping1:t32:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				"1:y1:qe"), 0);
	cr_assert_eq(m.tid_len, KM_KRPC_TID_MAX);
}

Test(krpc, implied_port_makes_the_port_optional)
{
	cr_assert_eq(decode_str("d1:ad2:id" ID20 "12:implied_porti1e9:info_hash" IH20
				"5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe"), 0);
	cr_assert(m.implied_port);
	cr_assert_eq(m.port, 0);
	cr_assert_eq(decode_str("d1:ad2:id" ID20 "12:implied_porti1e9:info_hash" IH20
				"4:porti0e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe"), 0);
	cr_assert_eq(m.port, 0);
	cr_assert_eq(decode_str("d1:ad2:id" ID20 "12:implied_porti0e9:info_hash" IH20
				"4:porti9e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe"), 0);
	cr_assert_not(m.implied_port);
	cr_assert_eq(m.port, 9);
}

Test(krpc, want_recognises_n4_and_n6_and_ignores_the_rest)
{
	cr_assert_eq(decode_str("d1:ad2:id" ID20 "9:info_hash" IH20 "4:wantl2:n62:xx0:2:n4ee"
				"1:q9:get_peers1:t2:aa1:y1:qe"), 0);
	cr_assert_eq(m.want, KM_WANT_N4 | KM_WANT_N6);
	cr_assert_eq(decode_str("d1:ad2:id" ID20 "9:info_hash" IH20 "4:wantlee"
				"1:q9:get_peers1:t2:aa1:y1:qe"), 0);
	cr_assert_eq(m.want, 0);
}

Test(krpc, an_unknown_method_decodes_with_its_name_and_a_checked_id)
{
	cr_assert_eq(decode_str("d1:ad2:id" ID20 "1:xi1ee1:q4:vote1:t2:aa1:y1:qe"), 0);
	cr_assert_eq(m.method, KM_KRPC_UNKNOWN_METHOD);
	cr_assert_str_eq(m.method_name, "vote");
	expect_id(&m.id, "abcdefghij0123456789");
	cr_assert(m.has_id);

	/* Its id is optional, and has_id says whether there was one: an
	 * absent id must not pass for the all-zero one. */
	cr_assert_eq(decode_str("d1:ade1:q4:vote1:t2:aa1:y1:qe"), 0);
	cr_assert_eq(m.method, KM_KRPC_UNKNOWN_METHOD);
	cr_assert_not(m.has_id);

	cr_assert_eq(decode_str("d1:ad2:id3:abce1:q4:vote1:t2:aa1:y1:qe"), KM_ERR_SYNTAX);
	cr_assert_str_eq(m.method_name, "vote");
	expect_tid("aa");

	/* The name is for logs: control bytes are replaced. */
	cr_assert_eq(decode(LIT("d1:ade1:q4:a\x00\n\xff" "1:t2:aa1:y1:qe")), 0);
	cr_assert_str_eq(m.method_name, "a???");
}

Test(krpc, error_lists_of_the_wrong_shape_are_rejected)
{
	static const struct bad_case cases[] = {
		{ "d1:ele1:t2:aa1:y1:ee", KM_ERR_MISSING },
		{ "d1:eli201ee1:t2:aa1:y1:ee", KM_ERR_MISSING },
		{ "d1:el3:2013:msge1:t2:aa1:y1:ee", KM_ERR_TYPE },
		{ "d1:eli201ei5ee1:t2:aa1:y1:ee", KM_ERR_TYPE },
		{ "d1:eli201elee1:t2:aa1:y1:ee", KM_ERR_TYPE },
		{ "d1:ed1:ai1ee1:t2:aa1:y1:ee", KM_ERR_TYPE },
		{ "d1:e3:bad1:t2:aa1:y1:ee", KM_ERR_TYPE },
		{ "d1:eli99999999999e3:msge1:t2:aa1:y1:ee", KM_ERR_RANGE },
	};
	char big[256];

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
	snprintf(big, sizeof(big), "d1:eli201e129:%0129de1:t2:aa1:y1:ee", 0);
	cr_assert_eq(decode_str(big), KM_ERR_TOO_LONG);
	snprintf(big, sizeof(big), "d1:eli201e128:%0128de1:t2:aa1:y1:ee", 0);
	cr_assert_eq(decode_str(big), 0);
	cr_assert_eq(strlen(m.error_msg), KM_KRPC_ERRMSG_MAX);

	/* Extra items are tolerated. */
	cr_assert_eq(decode_str("d1:eli203e3:bad4:morei1ee1:t2:aa1:y1:ee"), 0);
	cr_assert_eq(m.error_code, KM_KRPC_ERR_PROTOCOL);
	cr_assert_str_eq(m.error_msg, "bad");
}

Test(krpc, a_broken_packet_without_y_is_typed_by_its_body)
{
	cr_assert_eq(decode_str("d1:rd2:id3:abce1:t2:aa1:y1:re"), KM_ERR_SYNTAX);
	cr_assert_eq(m.type, KM_KRPC_RESPONSE);
	cr_assert_eq(decode_str("d1:rd2:id" ID20 "e1:t2:aae"), KM_ERR_MISSING);
	cr_assert_eq(m.type, KM_KRPC_RESPONSE);
	expect_tid("aa");
	cr_assert_eq(decode_str("d1:eli201e1:xe1:t2:aa1:y1:xe"), KM_ERR_UNKNOWN_TYPE);
	cr_assert_eq(m.type, KM_KRPC_ERROR);
	cr_assert_eq(decode_str("d1:t2:aa1:y1:q1:zi"), KM_ERR_TRUNCATED);
	cr_assert_eq(m.type, KM_KRPC_QUERY);
	expect_tid("aa");
}

/* Encoder and compact helpers. */

Test(krpc, the_encoder_rejects_messages_it_cannot_express)
{
	uint8_t nodes[27] = { 0 };

	query(KM_KRPC_PING);
	m.tid_len = 0;
	cr_assert_eq(km_krpc_encode(&m, out, sizeof(out)), KM_ERR_INVAL);
	m.tid_len = KM_KRPC_TID_MAX + 1;
	cr_assert_eq(km_krpc_encode(&m, out, sizeof(out)), KM_ERR_INVAL);

	query(KM_KRPC_UNKNOWN_METHOD);
	cr_assert_eq(km_krpc_encode(&m, out, sizeof(out)), KM_ERR_INVAL);
	strcpy(m.method_name, "vote");
	cr_assert_gt(km_krpc_encode(&m, out, sizeof(out)), 0);
	cr_assert_eq(km_krpc_decode(out, strlen("d1:ad2:id" ID20 "e1:q4:vote1:t2:aa1:y1:qe"), &m), 0);
	cr_assert_str_eq(m.method_name, "vote");

	query(KM_KRPC_ANNOUNCE_PEER); /* no token */
	cr_assert_eq(km_krpc_encode(&m, out, sizeof(out)), KM_ERR_INVAL);

	query(KM_KRPC_PING);
	m.has_ip = true; /* with no family */
	cr_assert_eq(km_krpc_encode(&m, out, sizeof(out)), KM_ERR_INVAL);

	km_krpc_init(&m, KM_KRPC_RESPONSE);
	tid("aa");
	m.nodes = nodes;
	m.nodes_len = sizeof(nodes);
	cr_assert_eq(km_krpc_encode(&m, out, sizeof(out)), KM_ERR_INVAL);
	m.nodes_len = 0;
	m.values_count = 1; /* values[0] has no family */
	cr_assert_eq(km_krpc_encode(&m, out, sizeof(out)), KM_ERR_INVAL);
}

Test(krpc, the_encoder_reports_a_short_buffer_at_every_size)
{
	int full;

	query(KM_KRPC_FIND_NODE);
	m.want = KM_WANT_N4;
	m.ro = true;
	full = km_krpc_encode(&m, out, sizeof(out));
	cr_assert_gt(full, 0);
	for (int cap = 0; cap < full; cap++)
		cr_assert_eq(km_krpc_encode(&m, out, (size_t)cap), KM_ERR_BUF);
	cr_assert_eq(km_krpc_encode(&m, out, (size_t)full), full);
}

Test(krpc, compact_helpers_round_trip_and_check_their_inputs)
{
	struct km_contact c = { .id = id_of("01234567890123456789"), .addr = v6(7, 8080) };
	struct km_contact back;
	struct km_addr a;
	uint8_t buf[KM_COMPACT_NODE6_LEN];

	cr_assert_eq(km_compact_node_write(&c, buf, sizeof(buf)), KM_COMPACT_NODE6_LEN);
	km_compact_node_read(buf, 0, KM_AF_INET6, &back);
	cr_assert(km_addr_eq(&back.addr, &c.addr));
	cr_assert_eq(memcmp(back.id.b, c.id.b, KM_ID_LEN), 0);
	cr_assert_eq(buf[KM_COMPACT_NODE6_LEN - 2], 8080 >> 8);
	cr_assert_eq(km_compact_node_write(&c, buf, KM_COMPACT_NODE6_LEN - 1), KM_ERR_BUF);
	c.addr = v4(192, 0, 2, 1, 6881);
	cr_assert_eq(km_compact_node_write(&c, buf, sizeof(buf)), KM_COMPACT_NODE4_LEN);
	cr_assert_eq(memcmp(buf + KM_ID_LEN, "\xc0\x00\x02\x01\x1a\xe1", 6), 0);
	c.addr.family = KM_AF_NONE;
	cr_assert_eq(km_compact_node_write(&c, buf, sizeof(buf)), KM_ERR_INVAL);

	a = v4(1, 2, 3, 4, 65535);
	cr_assert_eq(km_compact_peer_write(&a, buf, 6), 6);
	cr_assert_eq(km_compact_peer_write(&a, buf, 5), KM_ERR_BUF);
	cr_assert(km_compact_peer_read(buf, 6, &a));
	cr_assert_eq(a.port, 65535);
	cr_assert_not(km_compact_peer_read(buf, 7, &a));
	cr_assert_not(km_compact_peer_read(buf, 0, &a));
}

Test(krpc, method_names_cover_every_method)
{
	cr_assert_str_eq(km_krpc_method_name(KM_KRPC_PING), "ping");
	cr_assert_str_eq(km_krpc_method_name(KM_KRPC_FIND_NODE), "find_node");
	cr_assert_str_eq(km_krpc_method_name(KM_KRPC_GET_PEERS), "get_peers");
	cr_assert_str_eq(km_krpc_method_name(KM_KRPC_ANNOUNCE_PEER), "announce_peer");
	cr_assert_str_eq(km_krpc_method_name(KM_KRPC_UNKNOWN_METHOD), "unknown");
	cr_assert_str_eq(km_krpc_method_name((enum km_krpc_method)99), "unknown");
}

/* Deterministic xorshift, so failures reproduce. */
static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

Test(krpc, mutated_packets_never_crash_and_what_decodes_stays_in_bounds)
{
	static const char seed[] =
		"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:"
		"mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnth4:wantl2:n42:n6ee"
		"1:q13:announce_peer1:t2:aa1:y1:qe";
	uint8_t buf[sizeof(seed)];
	uint32_t rng = 777;

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = sizeof(seed) - 1;

		memcpy(buf, seed, len);
		for (int k = 0; k < 1 + (int)(next_rand(&rng) % 4); k++)
			buf[next_rand(&rng) % len] = (uint8_t)next_rand(&rng);
		if (decode(buf, len) < 0)
			continue;
		cr_assert_leq(m.tid_len, KM_KRPC_TID_MAX);
		cr_assert_leq(m.token_len, KM_KRPC_TOKEN_MAX);
		cr_assert_lt(strlen(m.method_name), sizeof(m.method_name));
		cr_assert_leq(m.nodes_len, len);
	}
}
