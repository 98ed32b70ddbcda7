/* The NAT module tests' fake node (natfake.h). */
#include "natfake.h"

#include <string.h>

#include "dht/id.h"

struct natfake natfake;

void natfake_reset(void)
{
	memset(&natfake, 0, sizeof(natfake));
}

struct km_id natfake_id(uint64_t link)
{
	struct km_id id;

	memset(&id, 0, sizeof(id));
	id.b[0] = (uint8_t)(link * 0x11);
	return id;
}

struct km_peer natfake_peer(uint64_t link)
{
	struct km_peer p;
	uint8_t ip[4] = { 10, 0, 0, (uint8_t)link };
	struct km_id id = natfake_id(link);

	p.id = id;
	km_addr_set_v4(&p.addr, ip,
		       link == natfake.no_port ? 0 : (uint16_t)(7000 + link));
	return p;
}

bool natfake_send(void *user, uint64_t conn, uint8_t type,
		  const uint8_t *body, size_t len)
{
	struct natfake_sent *s;

	(void)user;
	if (conn == natfake.gone_link)
		return false;
	if (natfake.nsent++ >= NATFAKE_SENT_MAX)
		return true;
	s = &natfake.sent[natfake.nsent - 1];
	s->conn = conn;
	s->type = type;
	memcpy(s->body, body, len < NATFAKE_BODY_KEPT ? len : NATFAKE_BODY_KEPT);
	s->len = len;
	return true;
}

bool natfake_neighbour(void *user, const struct km_id *id, uint64_t *conn,
		       struct km_peer *peer)
{
	(void)user;
	for (uint64_t l = 1; l <= 4; l++) {
		struct km_id known = natfake_id(l);

		if (km_id_eq(&known, id)) {
			*conn = l;
			*peer = natfake_peer(l);
			return true;
		}
	}
	return false;
}

const struct natfake_sent *natfake_sent_to(uint64_t conn, uint8_t type)
{
	int kept = natfake.nsent < NATFAKE_SENT_MAX ? natfake.nsent
						    : NATFAKE_SENT_MAX;

	for (int i = kept - 1; i >= 0; i--)
		if (natfake.sent[i].conn == conn && natfake.sent[i].type == type)
			return &natfake.sent[i];
	return NULL;
}

bool natfake_names(const struct natfake_sent *s, uint64_t link)
{
	struct km_id id = natfake_id(link);

	return s && s->len >= KM_ID_LEN && memcmp(s->body, id.b, KM_ID_LEN) == 0;
}

bool natfake_entry(uint64_t conn, uint8_t type, struct km_peer *out)
{
	const struct natfake_sent *s = natfake_sent_to(conn, type);

	return s && s->len <= NATFAKE_BODY_KEPT &&
	       km_msg_peer_list_decode(s->body, s->len, out, 1) == 1;
}
