#include "dht/id.h"

#include <openssl/sha.h>
#include <string.h>

bool km_id_eq(const struct km_id *a, const struct km_id *b)
{
	return memcmp(a->b, b->b, KM_ID_LEN) == 0;
}

void km_id_xor(const struct km_id *a, const struct km_id *b, struct km_id *out)
{
	for (int i = 0; i < KM_ID_LEN; i++)
		out->b[i] = a->b[i] ^ b->b[i];
}

int km_id_cmp(const struct km_id *a, const struct km_id *b)
{
	return memcmp(a->b, b->b, KM_ID_LEN);
}

int km_id_cmp_distance(const struct km_id *target, const struct km_id *a,
		       const struct km_id *b)
{
	for (int i = 0; i < KM_ID_LEN; i++) {
		uint8_t da = a->b[i] ^ target->b[i];
		uint8_t db = b->b[i] ^ target->b[i];

		if (da != db)
			return da < db ? -1 : 1;
	}
	return 0;
}

int km_id_cpl(const struct km_id *a, const struct km_id *b)
{
	for (int i = 0; i < KM_ID_LEN; i++) {
		uint8_t x = a->b[i] ^ b->b[i];

		if (x)
			return i * 8 + __builtin_clz((unsigned)x) - 24;
	}
	return KM_ID_BITS;
}

bool km_id_bit(const struct km_id *id, int i)
{
	return (id->b[i / 8] >> (7 - i % 8)) & 1;
}

void km_id_to_hex(const struct km_id *id, char out[static KM_ID_HEXLEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < KM_ID_LEN; i++) {
		out[2 * i] = digits[id->b[i] >> 4];
		out[2 * i + 1] = digits[id->b[i] & 15];
	}
	out[KM_ID_HEXLEN] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool km_id_from_hex(const char *hex, struct km_id *out)
{
	struct km_id id;

	for (int i = 0; i < KM_ID_LEN; i++) {
		int hi = hex_value(hex[2 * i]);
		int lo = hi < 0 ? -1 : hex_value(hex[2 * i + 1]);

		if (lo < 0)
			return false;
		id.b[i] = (uint8_t)(hi << 4 | lo);
	}
	if (hex[KM_ID_HEXLEN] != '\0')
		return false;
	*out = id;
	return true;
}

void km_id_random_with_prefix(const struct km_id *base, int bits,
			      struct km_rng *rng, struct km_id *out)
{
	struct km_id r;

	km_rng_fill(rng, r.b, KM_ID_LEN);
	if (bits < 0)
		bits = 0;
	if (bits > KM_ID_BITS)
		bits = KM_ID_BITS;
	for (int i = 0; i < KM_ID_LEN; i++) {
		int keep = bits - i * 8; /* leading bits of this byte to keep */
		uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));

		out->b[i] = (uint8_t)((base->b[i] & mask) | (r.b[i] & ~mask));
	}
}

void km_id_random(struct km_rng *rng, struct km_id *out)
{
	km_rng_fill(rng, out->b, KM_ID_LEN);
}

void km_id_sha1(const void *data, size_t len, struct km_id *out)
{
	SHA1(data, len, out->b);
}
