#include "dht/state.h"

#include <string.h>

#include "dht/id.h"
#include "proto/err.h"

static const uint8_t magic[4] = { 'K', 'M', 'S', 'T' };

static size_t entry_len(uint8_t family)
{
	return KM_ID_LEN + 1 + (family == KM_AF_INET6 ? 16 : 4) + 2;
}

static void checksum(const uint8_t *buf, size_t len,
		     uint8_t out[static KM_STATE_CHECKSUM_LEN])
{
	struct km_id digest;

	km_id_sha1(buf, len, &digest);
	memcpy(out, digest.b, KM_STATE_CHECKSUM_LEN);
}

static uint8_t *put_entry(uint8_t *p, const struct km_contact *c)
{
	size_t iplen = km_addr_ip_len(&c->addr);

	memcpy(p, c->id.b, KM_ID_LEN);
	p += KM_ID_LEN;
	*p++ = c->addr.family;
	memcpy(p, c->addr.ip, iplen);
	p += iplen;
	*p++ = (uint8_t)(c->addr.port >> 8);
	*p++ = (uint8_t)c->addr.port;
	return p;
}

int km_state_encode(const struct km_id *self, const struct km_contact *c,
		    size_t n, uint8_t *buf, size_t cap)
{
	size_t need = KM_STATE_HEADER_LEN + KM_STATE_CHECKSUM_LEN;
	uint8_t *p = buf;

	if (n > KM_STATE_MAX_ENTRIES)
		return KM_ERR_TOO_MANY;
	for (size_t i = 0; i < n; i++) {
		if (c[i].addr.family != KM_AF_INET4 &&
		    c[i].addr.family != KM_AF_INET6)
			return KM_ERR_INVAL;
		need += entry_len(c[i].addr.family);
	}
	if (need > cap)
		return KM_ERR_BUF;
	memcpy(p, magic, sizeof(magic));
	p += sizeof(magic);
	*p++ = KM_STATE_VERSION;
	memcpy(p, self->b, KM_ID_LEN);
	p += KM_ID_LEN;
	*p++ = (uint8_t)(n >> 8);
	*p++ = (uint8_t)n;
	for (size_t i = 0; i < n; i++)
		p = put_entry(p, &c[i]);
	checksum(buf, (size_t)(p - buf), p);
	return (int)need;
}

/* Reads one entry at buf[*off] and advances *off past it. */
static int get_entry(const uint8_t *buf, size_t len, size_t *off,
		     struct km_contact *c)
{
	const uint8_t *p = buf + *off;
	const uint8_t *ip = p + KM_ID_LEN + 1;
	uint8_t family;
	size_t iplen;
	uint16_t port;

	if (len - *off < KM_ID_LEN + 1)
		return KM_ERR_TRUNCATED;
	family = p[KM_ID_LEN];
	if (family != KM_AF_INET4 && family != KM_AF_INET6)
		return KM_ERR_RANGE;
	if (len - *off < entry_len(family))
		return KM_ERR_TRUNCATED;
	iplen = family == KM_AF_INET6 ? 16 : 4;
	port = (uint16_t)(ip[iplen] << 8 | ip[iplen + 1]);
	if (family == KM_AF_INET6)
		km_addr_set_v6(&c->addr, ip, port);
	else
		km_addr_set_v4(&c->addr, ip, port);
	memcpy(c->id.b, p, KM_ID_LEN);
	*off += entry_len(family);
	return 0;
}

static int check_header(const uint8_t *buf, size_t len, size_t max,
			size_t *count)
{
	if (len < KM_STATE_HEADER_LEN)
		return KM_ERR_TRUNCATED;
	if (memcmp(buf, magic, sizeof(magic)) != 0)
		return KM_ERR_UNKNOWN_TYPE;
	if (buf[4] != KM_STATE_VERSION)
		return KM_ERR_VERSION;
	*count = (size_t)buf[25] << 8 | buf[26];
	if (*count > KM_STATE_MAX_ENTRIES)
		return KM_ERR_TOO_MANY;
	if (*count > max)
		return KM_ERR_BUF;
	return 0;
}

int km_state_decode(const uint8_t *buf, size_t len, struct km_id *self,
		    struct km_contact *out, size_t max, size_t *n)
{
	uint8_t sum[KM_STATE_CHECKSUM_LEN];
	size_t count, off = KM_STATE_HEADER_LEN;
	int rc;

	*n = 0;
	rc = check_header(buf, len, max, &count);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < count; i++) {
		rc = get_entry(buf, len, &off, &out[i]);
		if (rc < 0)
			return rc;
	}
	if (len - off < KM_STATE_CHECKSUM_LEN)
		return KM_ERR_TRUNCATED;
	if (len - off > KM_STATE_CHECKSUM_LEN)
		return KM_ERR_TRAILING;
	checksum(buf, off, sum);
	if (memcmp(sum, buf + off, KM_STATE_CHECKSUM_LEN) != 0)
		return KM_ERR_CHECKSUM;
	memcpy(self->b, buf + 5, KM_ID_LEN);
	*n = count;
	return 0;
}
