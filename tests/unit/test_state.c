#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dht/id.h"
#include "dht/state.h"
#include "proto/err.h"

/* A snapshot with n contacts, every third one IPv6, all fields distinct. */
static void make_contacts(struct km_contact *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t ip[16];

		memset(&c[i], 0, sizeof(c[i]));
		for (size_t j = 0; j < KM_ID_LEN; j++)
			c[i].id.b[j] = (uint8_t)(i * 7 + j);
		for (size_t j = 0; j < sizeof(ip); j++)
			ip[j] = (uint8_t)(i + j + 1);
		if (i % 3 == 2)
			km_addr_set_v6(&c[i].addr, ip, (uint16_t)(1000 + i));
		else
			km_addr_set_v4(&c[i].addr, ip, (uint16_t)(60000 + i));
	}
}

static struct km_id self_id(void)
{
	struct km_id id;

	memset(id.b, 0xab, sizeof(id.b));
	return id;
}

static int encode_n(size_t n, uint8_t *buf, size_t cap)
{
	struct km_contact *c = calloc(n ? n : 1, sizeof(*c));
	struct km_id self = self_id();
	int len;

	make_contacts(c, n);
	len = km_state_encode(&self, c, n, buf, cap);
	free(c);
	return len;
}

static int decode(const uint8_t *buf, size_t len, size_t *n)
{
	static struct km_contact out[KM_STATE_MAX_ENTRIES];
	struct km_id self;

	return km_state_decode(buf, len, &self, out, KM_STATE_MAX_ENTRIES, n);
}

Test(state, a_snapshot_round_trips_with_both_families)
{
	struct km_contact in[10], out[10];
	struct km_id self = self_id(), self2;
	uint8_t buf[1024];
	size_t n;
	int len;

	make_contacts(in, 10);
	len = km_state_encode(&self, in, 10, buf, sizeof(buf));
	cr_assert_eq(len, 27 + 7 * 27 + 3 * 39 + 4);
	cr_assert_eq(km_state_decode(buf, (size_t)len, &self2, out, 10, &n), 0);
	cr_assert_eq(n, 10);
	cr_assert(km_id_eq(&self, &self2));
	for (size_t i = 0; i < n; i++) {
		cr_assert(km_id_eq(&in[i].id, &out[i].id));
		cr_assert(km_addr_eq(&in[i].addr, &out[i].addr));
	}
}

Test(state, an_empty_table_round_trips)
{
	uint8_t buf[64];
	size_t n = 99;
	int len = encode_n(0, buf, sizeof(buf));

	cr_assert_eq(len, KM_STATE_HEADER_LEN + KM_STATE_CHECKSUM_LEN);
	cr_assert_eq(decode(buf, (size_t)len, &n), 0);
	cr_assert_eq(n, 0);
}

Test(state, the_largest_snapshot_fits_km_state_max_len)
{
	uint8_t *buf = malloc(KM_STATE_MAX_LEN);
	size_t n;
	int len = encode_n(KM_STATE_MAX_ENTRIES, buf, KM_STATE_MAX_LEN);

	cr_assert_gt(len, 0);
	cr_assert_eq(decode(buf, (size_t)len, &n), 0);
	cr_assert_eq(n, KM_STATE_MAX_ENTRIES);
	free(buf);
}

Test(state, encode_refuses_short_buffers_and_too_many_entries)
{
	uint8_t buf[1024];
	int len = encode_n(10, buf, sizeof(buf));

	cr_assert_eq(encode_n(10, buf, (size_t)len - 1), KM_ERR_BUF);
	cr_assert_eq(encode_n(10, buf, (size_t)len), len);
	cr_assert_eq(encode_n(KM_STATE_MAX_ENTRIES + 1, buf, sizeof(buf)),
		     KM_ERR_TOO_MANY);
}

Test(state, encode_refuses_a_contact_without_an_address_family)
{
	struct km_contact c = { 0 };
	struct km_id self = self_id();
	uint8_t buf[128];

	cr_assert_eq(km_state_encode(&self, &c, 1, buf, sizeof(buf)),
		     KM_ERR_INVAL);
}

Test(state, every_truncation_is_rejected_as_truncated)
{
	uint8_t buf[1024];
	size_t n;
	int len = encode_n(10, buf, sizeof(buf));

	for (int cut = 0; cut < len; cut++) {
		cr_assert_eq(decode(buf, (size_t)cut, &n), KM_ERR_TRUNCATED,
			     "cut at %d", cut);
		cr_assert_eq(n, 0);
	}
}

Test(state, every_single_bit_flip_is_caught)
{
	uint8_t buf[1024];
	size_t n;
	int len = encode_n(10, buf, sizeof(buf));

	for (int bit = 0; bit < len * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_lt(decode(buf, (size_t)len, &n), 0, "bit %d", bit);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	cr_assert_eq(decode(buf, (size_t)len, &n), 0);
}

Test(state, a_flipped_address_byte_is_reported_as_a_checksum_mismatch)
{
	uint8_t buf[1024];
	size_t n;
	int len = encode_n(3, buf, sizeof(buf));

	buf[KM_STATE_HEADER_LEN + KM_ID_LEN + 1] ^= 1; /* first IP byte */
	cr_assert_eq(decode(buf, (size_t)len, &n), KM_ERR_CHECKSUM);
}

Test(state, wrong_magic_and_wrong_version_are_named)
{
	uint8_t buf[1024];
	size_t n;
	int len = encode_n(2, buf, sizeof(buf));

	buf[0] = 'X';
	cr_assert_eq(decode(buf, (size_t)len, &n), KM_ERR_UNKNOWN_TYPE);
	buf[0] = 'K';
	buf[4] = KM_STATE_VERSION + 1;
	cr_assert_eq(decode(buf, (size_t)len, &n), KM_ERR_VERSION);
}

Test(state, a_count_over_the_cap_is_rejected_before_reading_entries)
{
	uint8_t buf[64];
	size_t n;
	int len = encode_n(0, buf, sizeof(buf));

	buf[25] = 0xff;
	buf[26] = 0xff;
	cr_assert_eq(decode(buf, (size_t)len, &n), KM_ERR_TOO_MANY);
}

Test(state, a_count_over_the_callers_array_is_a_buffer_error)
{
	struct km_contact out[2];
	struct km_id self;
	uint8_t buf[1024];
	size_t n;
	int len = encode_n(3, buf, sizeof(buf));

	cr_assert_eq(km_state_decode(buf, (size_t)len, &self, out, 2, &n),
		     KM_ERR_BUF);
}

Test(state, an_unknown_family_and_trailing_bytes_are_rejected)
{
	uint8_t buf[1024];
	size_t n;
	int len = encode_n(1, buf, sizeof(buf));

	buf[len] = 0;
	cr_assert_eq(decode(buf, (size_t)len + 1, &n), KM_ERR_TRAILING);
	buf[KM_STATE_HEADER_LEN + KM_ID_LEN] = 5;
	cr_assert_eq(decode(buf, (size_t)len, &n), KM_ERR_RANGE);
}
