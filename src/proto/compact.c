/* BEP 5's compact formats: node info (an ID, then an address and port) and
 * peer info (an address and port), big-endian. */
#include "proto/compact.h"

#include <string.h>

#include "proto/err.h"

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

int km_compact_peer_write(const struct km_addr *a, uint8_t *out, size_t cap)
{
	size_t iplen = km_addr_ip_len(a);

	if (iplen == 0)
		return KM_ERR_INVAL;
	if (cap < iplen + 2)
		return KM_ERR_BUF;
	memcpy(out, a->ip, iplen);
	put_be16(out + iplen, a->port);
	return (int)iplen + 2;
}

bool km_compact_peer_read(const uint8_t *p, size_t len, struct km_addr *out)
{
	if (len == KM_COMPACT_PEER4_LEN)
		km_addr_set_v4(out, p, get_be16(p + 4));
	else if (len == KM_COMPACT_PEER6_LEN)
		km_addr_set_v6(out, p, get_be16(p + 16));
	else
		return false;
	return true;
}

int km_compact_node_write(const struct km_contact *c, uint8_t *out, size_t cap)
{
	int n;

	if (km_addr_ip_len(&c->addr) == 0)
		return KM_ERR_INVAL;
	if (cap < KM_ID_LEN)
		return KM_ERR_BUF;
	n = km_compact_peer_write(&c->addr, out + KM_ID_LEN, cap - KM_ID_LEN);
	if (n < 0)
		return n;
	memcpy(out, c->id.b, KM_ID_LEN);
	return KM_ID_LEN + n;
}

void km_compact_node_read(const uint8_t *list, size_t i, enum km_family family,
			  struct km_contact *out)
{
	bool v6 = family == KM_AF_INET6;
	size_t size = v6 ? KM_COMPACT_NODE6_LEN : KM_COMPACT_NODE4_LEN;
	const uint8_t *p = list + i * size;

	memcpy(out->id.b, p, KM_ID_LEN);
	km_compact_peer_read(p + KM_ID_LEN, size - KM_ID_LEN, &out->addr);
}
