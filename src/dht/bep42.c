#include "dht/bep42.h"

#include <string.h>

uint32_t km_bep42_crc32c(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	/* Bitwise: BEP 42 hashes 4 or 8 bytes, so a table buys nothing. */
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

/* The crc BEP 42 derives from ip and r. */
static uint32_t bep42_crc(const struct km_addr *ip, uint8_t r)
{
	static const uint8_t mask4[4] = { 0x03, 0x0f, 0x3f, 0xff };
	static const uint8_t mask6[8] = { 0x01, 0x03, 0x07, 0x0f,
					  0x1f, 0x3f, 0x7f, 0xff };
	const uint8_t *mask = ip->family == KM_AF_INET4 ? mask4 : mask6;
	size_t n = ip->family == KM_AF_INET4 ? 4 : 8;
	uint8_t buf[8];

	for (size_t i = 0; i < n; i++)
		buf[i] = ip->ip[i] & mask[i];
	buf[0] |= (uint8_t)((r & 7) << 5);
	return km_bep42_crc32c(buf, n);
}

void km_bep42_make_id(const struct km_addr *ip, uint8_t r, struct km_rng *rng,
		      struct km_id *out)
{
	uint32_t crc = bep42_crc(ip, r);

	km_rng_fill(rng, out->b, sizeof(out->b));
	out->b[0] = (uint8_t)(crc >> 24);
	out->b[1] = (uint8_t)(crc >> 16);
	out->b[2] = (uint8_t)(((crc >> 8) & 0xf8) | (out->b[2] & 7));
	out->b[19] = (uint8_t)((out->b[19] & 0xf8) | (r & 7));
}

bool km_bep42_id_valid(const struct km_id *id, const struct km_addr *ip)
{
	uint32_t crc;

	if (km_addr_is_local(ip))
		return true;
	crc = bep42_crc(ip, id->b[19]);
	return id->b[0] == (uint8_t)(crc >> 24) &&
	       id->b[1] == (uint8_t)(crc >> 16) &&
	       (id->b[2] & 0xf8) == (uint8_t)((crc >> 8) & 0xf8);
}
