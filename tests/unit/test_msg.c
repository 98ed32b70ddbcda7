#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/err.h"
#include "proto/msg.h"

static const uint8_t v4[4] = { 192, 0, 2, 7 };
static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x42 };

static void fill_id(uint8_t id[static 20], uint8_t seed)
{
	for (int i = 0; i < 20; i++)
		id[i] = (uint8_t)(seed + i);
}

/* Exact-size heap copy, so that a read past the end is an ASan report. */
static uint8_t *heap_copy(const uint8_t *src, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	cr_assert_not_null(p);
	if (len)
		memcpy(p, src, len);
	return p;
}

static struct km_hello sample_hello(int family)
{
	struct km_hello h = { .version = KM_PROTO_VERSION, .network = 0xdeadbeef,
			      .listen_port = 6881 };

	fill_id(h.id.b, 1);
	if (family == 4)
		km_addr_set_v4(&h.observed, v4, 40000);
	else if (family == 6)
		km_addr_set_v6(&h.observed, v6, 40001);
	return h;
}

static void assert_hello_eq(const struct km_hello *a, const struct km_hello *b)
{
	cr_assert_eq(a->version, b->version);
	cr_assert_eq(a->network, b->network);
	cr_assert_eq(memcmp(a->id.b, b->id.b, 20), 0);
	cr_assert_eq(a->listen_port, b->listen_port);
	cr_assert(km_addr_eq(&a->observed, &b->observed));
	cr_assert_eq(a->has_key, b->has_key);
	if (a->has_key) {
		cr_assert_eq(memcmp(a->pubkey, b->pubkey, KM_PUBKEY_LEN), 0);
		cr_assert_eq(memcmp(a->nonce, b->nonce, KM_NONCE_LEN), 0);
	}
}

static struct km_hello keyed_hello(int family)
{
	struct km_hello h = sample_hello(family);

	h.has_key = true;
	memset(h.pubkey, 0xab, KM_PUBKEY_LEN);
	memset(h.nonce, 0xcd, KM_NONCE_LEN);
	return h;
}

Test(msg, hello_carries_key_and_nonce_right_after_the_address)
{
	struct km_hello in = keyed_hello(4), out;
	uint8_t buf[KM_HELLO_MAX_LEN];
	int n = km_msg_hello_encode(buf, sizeof(buf), &in);

	cr_assert_eq(n, 34 + KM_PUBKEY_LEN + KM_NONCE_LEN);
	cr_assert_eq(buf[34], 0xab);
	cr_assert_eq(buf[34 + KM_PUBKEY_LEN], 0xcd);
	cr_assert_eq(km_msg_hello_decode(buf, (size_t)n, &out), 0);
	assert_hello_eq(&in, &out);
	/* Cut inside the key: decodes as a keyless (version 1 style) HELLO. */
	cr_assert_eq(km_msg_hello_decode(buf, (size_t)n - 1, &out), 0);
	cr_assert_not(out.has_key);
}

Test(msg, hello_round_trips_with_ipv4_ipv6_and_unknown_observed_address)
{
	const int families[] = { 4, 6, 0 };
	const int lens[] = { 34, KM_HELLO_MAX_LEN - KM_PUBKEY_LEN - KM_NONCE_LEN,
			     KM_HELLO_MIN_LEN };
	uint8_t buf[KM_HELLO_MAX_LEN];
	struct km_hello in, out;

	for (int i = 0; i < 3; i++) {
		in = sample_hello(families[i]);
		cr_assert_eq(km_msg_hello_encode(buf, sizeof(buf), &in), lens[i]);
		cr_assert_eq(km_msg_hello_decode(buf, (size_t)lens[i], &out), 0);
		assert_hello_eq(&in, &out);
	}
}

Test(msg, hello_encoding_matches_the_documented_layout)
{
	struct km_hello h = sample_hello(4);
	uint8_t buf[64];
	const uint8_t want[34] = {
		2, 0xde, 0xad, 0xbe, 0xef,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
		0x1a, 0xe1,               /* 6881 */
		4, 192, 0, 2, 7, 0x9c, 0x40, /* 192.0.2.7:40000 */
	};

	cr_assert_eq(km_msg_hello_encode(buf, sizeof(buf), &h), 34);
	cr_assert_eq(memcmp(buf, want, sizeof(want)), 0);
}

Test(msg, hello_decoder_ignores_bytes_appended_by_later_versions)
{
	struct km_hello in = keyed_hello(6), out;
	uint8_t buf[KM_HELLO_MAX_LEN + 40];
	int n = km_msg_hello_encode(buf, sizeof(buf), &in);

	cr_assert_eq(n, KM_HELLO_MAX_LEN);
	memset(buf + n, 0x5a, 40); /* whatever version 3 adds */
	in.version = 3;
	buf[0] = 3;
	cr_assert_eq(km_msg_hello_decode(buf, sizeof(buf), &out), 0);
	assert_hello_eq(&in, &out);
}

Test(msg, hello_with_a_bad_address_family_is_rejected_both_ways)
{
	struct km_hello h = sample_hello(4), out;
	uint8_t buf[KM_HELLO_MAX_LEN];
	int n = km_msg_hello_encode(buf, sizeof(buf), &h);

	buf[27] = 5; /* family byte */
	cr_assert_eq(km_msg_hello_decode(buf, (size_t)n, &out), KM_ERR_TYPE);
	h.observed.family = 5;
	cr_assert_eq(km_msg_hello_encode(buf, sizeof(buf), &h), KM_ERR_INVAL);
}

static size_t sample_peers(struct km_peer *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		fill_id(p[i].id.b, (uint8_t)(i * 3));
		if (i % 2)
			km_addr_set_v6(&p[i].addr, v6, (uint16_t)(1000 + i));
		else
			km_addr_set_v4(&p[i].addr, v4, (uint16_t)(2000 + i));
	}
	return n;
}

static void assert_peers_round_trip(size_t n)
{
	/* Zeroed: for n = 0 the encoder is handed the array with nothing
	 * written to it. */
	struct km_peer in[KM_PEER_LIST_MAX] = { 0 }, out[KM_PEER_LIST_MAX];
	uint8_t buf[KM_PEER_LIST_MAX_LEN];
	int len;

	sample_peers(in, n);
	len = km_msg_peer_list_encode(buf, sizeof(buf), in, n);
	cr_assert_gt(len, 0);
	cr_assert_eq(km_msg_peer_list_decode(buf, (size_t)len, out, KM_PEER_LIST_MAX), (int)n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(memcmp(in[i].id.b, out[i].id.b, 20), 0);
		cr_assert(km_addr_eq(&in[i].addr, &out[i].addr));
	}
}

Test(msg, peer_list_round_trips_empty_mixed_and_full_lists)
{
	assert_peers_round_trip(0);
	assert_peers_round_trip(1);
	assert_peers_round_trip(2);
	assert_peers_round_trip(KM_PEER_LIST_MAX);
}

Test(msg, peer_list_count_past_the_cap_is_rejected_before_reading_entries)
{
	struct km_peer out[4];

	/* 65 declared, no entries present: the count alone condemns it. */
	cr_assert_eq(km_msg_peer_list_decode((uint8_t[]){ 0, 65 }, 2, out, 4), KM_ERR_TOO_MANY);
	cr_assert_eq(km_msg_peer_list_decode((uint8_t[]){ 0xff, 0xff }, 2, out, 4),
		     KM_ERR_TOO_MANY);
	/* Within the protocol cap but beyond the caller's array. */
	cr_assert_eq(km_msg_peer_list_decode((uint8_t[]){ 0, 5 }, 2, out, 4), KM_ERR_TOO_MANY);
}

Test(msg, peer_list_count_not_matching_the_bytes_is_truncated_or_trailing)
{
	struct km_peer in[3], out[3];
	uint8_t buf[KM_PEER_LIST_MAX_LEN + 1];
	int len = km_msg_peer_list_encode(buf, sizeof(buf), in, sample_peers(in, 3));

	buf[1] = 4; /* claims one more than is there */
	cr_assert_eq(km_msg_peer_list_decode(buf, (size_t)len, out, 3), KM_ERR_TOO_MANY);
	cr_assert_eq(km_msg_peer_list_decode(buf, (size_t)len, (struct km_peer[4]){ 0 }, 4),
		     KM_ERR_TRUNCATED);
	buf[1] = 2; /* claims one fewer */
	cr_assert_eq(km_msg_peer_list_decode(buf, (size_t)len, out, 3), KM_ERR_TRAILING);
	buf[1] = 3;
	buf[len] = 0;
	cr_assert_eq(km_msg_peer_list_decode(buf, (size_t)len + 1, out, 3), KM_ERR_TRAILING);
}

Test(msg, peer_list_entries_with_a_bad_family_are_rejected)
{
	struct km_peer in[1], out[1];
	uint8_t buf[64];
	int len = km_msg_peer_list_encode(buf, sizeof(buf), in, sample_peers(in, 1));
	const uint8_t bad[] = { 0, 7, 16, 255 };

	for (size_t i = 0; i < sizeof(bad); i++) {
		buf[2 + 20] = bad[i];
		cr_assert_eq(km_msg_peer_list_decode(buf, (size_t)len, out, 1), KM_ERR_TYPE);
	}
}

Test(msg, peer_list_encoder_rejects_too_many_and_addressless_peers)
{
	struct km_peer p[KM_PEER_LIST_MAX + 1];
	uint8_t buf[KM_PEER_LIST_MAX_LEN + 64];

	sample_peers(p, KM_PEER_LIST_MAX + 1);
	cr_assert_eq(km_msg_peer_list_encode(buf, sizeof(buf), p, KM_PEER_LIST_MAX + 1),
		     KM_ERR_TOO_MANY);
	p[0].addr.family = KM_AF_NONE;
	cr_assert_eq(km_msg_peer_list_encode(buf, sizeof(buf), p, 1), KM_ERR_INVAL);
	p[0].addr.family = 9;
	cr_assert_eq(km_msg_peer_list_encode(buf, sizeof(buf), p, 1), KM_ERR_INVAL);
}

Test(msg, ping_and_pong_carry_a_big_endian_nonce)
{
	uint8_t buf[9];
	uint64_t nonce;

	cr_assert_eq(km_msg_ping_encode(buf, sizeof(buf), 0x0102030405060708ull), 8);
	cr_assert_eq(memcmp(buf, (uint8_t[]){ 1, 2, 3, 4, 5, 6, 7, 8 }, 8), 0);
	cr_assert_eq(km_msg_ping_decode(buf, 8, &nonce), 0);
	cr_assert_eq(nonce, 0x0102030405060708ull);
	cr_assert_eq(km_msg_ping_decode(buf, 9, &nonce), KM_ERR_TRAILING);
}

Test(msg, a_dial_result_is_the_nonce_then_one_result_byte)
{
	uint8_t buf[10];
	uint64_t nonce;
	uint8_t result;

	cr_assert_eq(km_msg_dial_result_encode(buf, sizeof(buf),
					       0x0102030405060708ull,
					       KM_DIAL_TIMED_OUT), KM_DIAL_RESULT_LEN);
	cr_assert_eq(memcmp(buf, (uint8_t[]){ 1, 2, 3, 4, 5, 6, 7, 8, 3 }, 9), 0);
	cr_assert_eq(km_msg_dial_result_decode(buf, 9, &nonce, &result), 0);
	cr_assert_eq(nonce, 0x0102030405060708ull);
	cr_assert_eq(result, KM_DIAL_TIMED_OUT);
	cr_assert_eq(km_msg_dial_result_decode(buf, 10, &nonce, &result),
		     KM_ERR_TRAILING);
	cr_assert_eq(km_msg_dial_result_encode(buf, 8, 1, 1), KM_ERR_BUF);
}

static struct km_message sample_message(const uint8_t *payload, size_t len)
{
	struct km_message m = { .seq = 0x1122334455667788ull, .hops = 3,
				.payload = payload, .payload_len = len };

	fill_id(m.id, 100);
	fill_id(m.origin.b, 200);
	return m;
}

Test(msg, message_round_trips_and_points_the_payload_into_the_input)
{
	const uint8_t payload[] = "hello, mesh";
	struct km_message in = sample_message(payload, sizeof(payload)), out;
	uint8_t buf[256];
	int n = km_msg_message_encode(buf, sizeof(buf), &in);

	cr_assert_eq(n, KM_MESSAGE_HEADER_LEN + (int)sizeof(payload));
	cr_assert_eq(km_msg_message_decode(buf, (size_t)n, &out), 0);
	cr_assert_eq(memcmp(out.id, in.id, 20), 0);
	cr_assert_eq(memcmp(out.origin.b, in.origin.b, 20), 0);
	cr_assert_eq(out.seq, in.seq);
	cr_assert_eq(out.hops, in.hops);
	cr_assert_eq(out.payload, buf + KM_MESSAGE_HEADER_LEN);
	cr_assert_eq(out.payload_len, sizeof(payload));
}

Test(msg, message_payload_fills_a_default_frame_and_no_more)
{
	size_t max = KM_MESSAGE_PAYLOAD_MAX;
	uint8_t *payload = calloc(1, max + 1), *buf = malloc(KM_FRAME_MAX_DEFAULT + 1);
	struct km_message in = sample_message(payload, max), out;

	cr_assert_eq(km_msg_message_encode(buf, KM_FRAME_MAX_DEFAULT, &in), KM_FRAME_MAX_DEFAULT);
	cr_assert_eq(km_msg_message_decode(buf, KM_FRAME_MAX_DEFAULT, &out), 0);
	cr_assert_eq(out.payload_len, max);
	in.payload_len = max + 1;
	cr_assert_eq(km_msg_message_encode(buf, KM_FRAME_MAX_DEFAULT + 1, &in), KM_ERR_TOO_LONG);
	cr_assert_eq(km_msg_message_decode(buf, KM_FRAME_MAX_DEFAULT + 1, &out), KM_ERR_TOO_LONG);
	in = sample_message(NULL, 0);
	cr_assert_eq(km_msg_message_encode(buf, 256, &in), KM_MESSAGE_HEADER_LEN);
	cr_assert_eq(km_msg_message_decode(buf, KM_MESSAGE_HEADER_LEN, &out), 0);
	cr_assert_eq(out.payload_len, 0);
	free(payload);
	free(buf);
}

Test(msg, goodbye_round_trips_reason_and_utf8_text)
{
	struct km_goodbye in = { .reason = KM_BYE_WRONG_NETWORK, .text = "r\xc3\xa9seau 42" };
	struct km_goodbye out;
	uint8_t buf[KM_GOODBYE_MAX_LEN];
	int n = km_msg_goodbye_encode(buf, sizeof(buf), &in);

	cr_assert_eq(n, 2 + (int)strlen(in.text));
	cr_assert_eq(buf[0], KM_BYE_WRONG_NETWORK);
	cr_assert_eq(buf[1], strlen(in.text));
	cr_assert_eq(km_msg_goodbye_decode(buf, (size_t)n, &out), 0);
	cr_assert_eq(out.reason, in.reason);
	cr_assert_str_eq(out.text, in.text);
}

Test(msg, goodbye_text_of_255_bytes_fits_and_256_does_not)
{
	struct km_goodbye in = { .reason = KM_BYE_NORMAL }, out;
	uint8_t buf[KM_GOODBYE_MAX_LEN];

	memset(in.text, 'x', KM_GOODBYE_TEXT_MAX);
	cr_assert_eq(km_msg_goodbye_encode(buf, sizeof(buf), &in), KM_GOODBYE_MAX_LEN);
	cr_assert_eq(km_msg_goodbye_decode(buf, sizeof(buf), &out), 0);
	cr_assert_eq(strlen(out.text), KM_GOODBYE_TEXT_MAX);
	in.text[KM_GOODBYE_TEXT_MAX] = 'x'; /* no NUL left in the array */
	cr_assert_eq(km_msg_goodbye_encode(buf, sizeof(buf), &in), KM_ERR_TOO_LONG);
}

Test(msg, goodbye_text_length_past_the_remaining_bytes_is_truncated)
{
	struct km_goodbye g;

	cr_assert_eq(km_msg_goodbye_decode((uint8_t[]){ 1, 5, 'a', 'b' }, 4, &g), KM_ERR_TRUNCATED);
	cr_assert_eq(km_msg_goodbye_decode((uint8_t[]){ 1, 255 }, 2, &g), KM_ERR_TRUNCATED);
	cr_assert_eq(km_msg_goodbye_decode((uint8_t[]){ 1, 1, 'a', 'b' }, 4, &g), KM_ERR_TRAILING);
}

Test(msg, goodbye_text_that_is_not_utf8_is_rejected)
{
	static const char *const bad[] = {
		"\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xc3", "\xe2\x82", "\x80",
	};
	struct km_goodbye g = { 0 };
	uint8_t buf[8];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strlen(bad[i]);

		buf[0] = 0;
		buf[1] = (uint8_t)n;
		memcpy(buf + 2, bad[i], n);
		cr_assert_eq(km_msg_goodbye_decode(buf, n + 2, &g), KM_ERR_SYNTAX, "case %zu", i);
		strcpy(g.text, bad[i]);
		cr_assert_eq(km_msg_goodbye_encode(buf, sizeof(buf), &g), KM_ERR_INVAL);
	}
	cr_assert_eq(km_msg_goodbye_decode((uint8_t[]){ 0, 2, 'a', 0 }, 4, &g), KM_ERR_SYNTAX);
	cr_assert_eq(km_msg_goodbye_decode((uint8_t[]){ 0, 4, 0xf0, 0x9f, 0x91, 0x8b }, 6, &g), 0);
}

Test(msg, goodbye_reasons_have_names_and_unknown_codes_do_not_crash)
{
	cr_assert_str_eq(km_msg_goodbye_reason_name(KM_BYE_NORMAL), "NORMAL");
	cr_assert_str_eq(km_msg_goodbye_reason_name(KM_BYE_DUPLICATE), "DUPLICATE");
	cr_assert_str_eq(km_msg_goodbye_reason_name(KM_BYE_SELF), "SELF");
	cr_assert_str_eq(km_msg_goodbye_reason_name(200), "UNKNOWN");
	for (int r = 0; r < 256; r++)
		cr_assert_not_null(km_msg_goodbye_reason_name((uint8_t)r));
}

static const uint8_t sample_ids[3 * KM_MSG_ID_LEN] = { 1, [20] = 2, [40] = 3 };

Test(msg, ihave_and_graft_ids_match_the_documented_layout_and_point_into_the_input)
{
	uint8_t buf[2 + 3 * KM_MSG_ID_LEN];
	const uint8_t *ids;

	cr_assert_eq(km_msg_ids_encode(buf, sizeof(buf), sample_ids, 3), 62);
	cr_assert_eq(buf[0], 0);
	cr_assert_eq(buf[1], 3);
	cr_assert_eq(memcmp(buf + 2, sample_ids, sizeof(sample_ids)), 0);
	cr_assert_eq(km_msg_ids_decode(buf, sizeof(buf), &ids), 3);
	cr_assert_eq(ids, buf + 2);
}

Test(msg, an_empty_id_list_is_two_zero_bytes)
{
	uint8_t buf[2];
	const uint8_t *ids = buf;

	cr_assert_eq(km_msg_ids_encode(buf, sizeof(buf), NULL, 0), 2);
	cr_assert_eq(buf[0] | buf[1], 0);
	cr_assert_eq(km_msg_ids_decode(buf, 2, &ids), 0);
	cr_assert_null(ids);
}

Test(msg, id_lists_over_the_cap_or_not_matching_their_count_are_rejected)
{
	static uint8_t big[KM_MSG_IDS_MAX_LEN + KM_MSG_ID_LEN];
	static const uint8_t src[(KM_MSG_IDS_MAX + 1) * KM_MSG_ID_LEN];
	const uint8_t *ids;

	cr_assert_eq(km_msg_ids_encode(big, sizeof(big), src, KM_MSG_IDS_MAX),
		     KM_MSG_IDS_MAX_LEN);
	cr_assert_eq(km_msg_ids_decode(big, KM_MSG_IDS_MAX_LEN, &ids),
		     KM_MSG_IDS_MAX);
	cr_assert_eq(km_msg_ids_encode(big, sizeof(big), src, KM_MSG_IDS_MAX + 1),
		     KM_ERR_TOO_MANY);
	/* A count of 257 is refused before the IDs are looked at. */
	cr_assert_eq(km_msg_ids_decode((uint8_t[]){ 1, 1 }, 2, &ids),
		     KM_ERR_TOO_MANY);
	cr_assert_eq(km_msg_ids_decode((uint8_t[]){ 0, 1, 9 }, 3, &ids),
		     KM_ERR_TRUNCATED);
	cr_assert_eq(km_msg_ids_decode((uint8_t[]){ 0, 0, 9 }, 3, &ids),
		     KM_ERR_TRAILING);
}

Test(msg, prune_body_is_empty)
{
	cr_assert_eq(km_msg_prune_decode(NULL, 0), 0);
	cr_assert_eq(km_msg_prune_decode((uint8_t[]){ 0 }, 1), KM_ERR_TRAILING);
}

/* ---- Sweeps over every body ---- */

/* Each body as a pair of closures over a fixed sample, so one loop can
 * sweep them all. */
static int enc_hello4(uint8_t *out, size_t cap)
{
	struct km_hello h = sample_hello(4);

	return km_msg_hello_encode(out, cap, &h);
}

static int enc_hello6(uint8_t *out, size_t cap)
{
	struct km_hello h = sample_hello(6);

	return km_msg_hello_encode(out, cap, &h);
}

static int dec_hello(const uint8_t *in, size_t len)
{
	struct km_hello h;

	return km_msg_hello_decode(in, len, &h);
}

static int enc_peers(uint8_t *out, size_t cap)
{
	struct km_peer p[5];

	return km_msg_peer_list_encode(out, cap, p, sample_peers(p, 5));
}

static int dec_peers(const uint8_t *in, size_t len)
{
	struct km_peer p[KM_PEER_LIST_MAX];

	return km_msg_peer_list_decode(in, len, p, KM_PEER_LIST_MAX);
}

static int enc_ping(uint8_t *out, size_t cap)
{
	return km_msg_ping_encode(out, cap, 77);
}

static int dec_ping(const uint8_t *in, size_t len)
{
	uint64_t nonce;

	return km_msg_ping_decode(in, len, &nonce);
}

static int enc_dial_result(uint8_t *out, size_t cap)
{
	return km_msg_dial_result_encode(out, cap, 77, KM_DIAL_BUSY);
}

static int dec_dial_result(const uint8_t *in, size_t len)
{
	uint64_t nonce;
	uint8_t result;

	return km_msg_dial_result_decode(in, len, &nonce, &result);
}

static int enc_message(uint8_t *out, size_t cap)
{
	struct km_message m = sample_message((const uint8_t *)"xyz", 3);

	return km_msg_message_encode(out, cap, &m);
}

static int dec_message(const uint8_t *in, size_t len)
{
	struct km_message m;

	return km_msg_message_decode(in, len, &m);
}

static int enc_goodbye(uint8_t *out, size_t cap)
{
	struct km_goodbye g = { .reason = KM_BYE_FULL, .text = "full" };

	return km_msg_goodbye_encode(out, cap, &g);
}

static int dec_goodbye(const uint8_t *in, size_t len)
{
	struct km_goodbye g;

	return km_msg_goodbye_decode(in, len, &g);
}

static int enc_ids(uint8_t *out, size_t cap)
{
	return km_msg_ids_encode(out, cap, sample_ids, 3);
}

static int dec_ids(const uint8_t *in, size_t len)
{
	const uint8_t *ids;

	return km_msg_ids_decode(in, len, &ids);
}

static const struct body {
	const char *name;
	int (*encode)(uint8_t *out, size_t cap);
	int (*decode)(const uint8_t *in, size_t len);
	bool payload_is_rest; /* MESSAGE: only the header can be truncated */
} bodies[] = {
	{ "hello4", enc_hello4, dec_hello, false },
	{ "hello6", enc_hello6, dec_hello, false },
	{ "peer_list", enc_peers, dec_peers, false },
	{ "ping", enc_ping, dec_ping, false },
	{ "dial_result", enc_dial_result, dec_dial_result, false },
	{ "message", enc_message, dec_message, true },
	{ "goodbye", enc_goodbye, dec_goodbye, false },
	{ "ihave_graft", enc_ids, dec_ids, false },
};

#define N_BODIES (sizeof(bodies) / sizeof(bodies[0]))

Test(msg, every_body_truncated_at_every_byte_is_rejected_as_truncated)
{
	uint8_t buf[KM_PEER_LIST_MAX_LEN];

	for (size_t i = 0; i < N_BODIES; i++) {
		const struct body *b = &bodies[i];
		int len = b->encode(buf, sizeof(buf));
		size_t must = b->payload_is_rest ? KM_MESSAGE_HEADER_LEN : (size_t)len;

		cr_assert_gt(len, 0, "%s", b->name);
		cr_assert_geq(b->decode(buf, (size_t)len), 0, "%s", b->name);
		for (size_t cut = 0; cut < must; cut++) {
			uint8_t *p = heap_copy(buf, cut);

			cr_assert_eq(b->decode(p, cut), KM_ERR_TRUNCATED,
				     "%s cut at %zu", b->name, cut);
			free(p);
		}
	}
}

Test(msg, every_encoder_reports_a_short_buffer_instead_of_overflowing)
{
	uint8_t buf[KM_PEER_LIST_MAX_LEN];

	for (size_t i = 0; i < N_BODIES; i++) {
		const struct body *b = &bodies[i];
		int len = b->encode(buf, sizeof(buf));

		for (size_t cap = 0; cap < (size_t)len; cap++) {
			uint8_t *p = malloc(cap ? cap : 1);

			cr_assert_eq(b->encode(p, cap), KM_ERR_BUF, "%s cap %zu",
				     b->name, cap);
			free(p);
		}
	}
}
