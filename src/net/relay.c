/* Relayed links: the circuits we relay as R, and the frames of an end
 * (relay.h). */
#include "net/relay.h"

#include <stdlib.h>
#include <string.h>

#include "dht/id.h"
#include "proto/err.h"
#include "proto/frame.h"

struct circuit {
	uint64_t conn[2];         /* the two links; conn[0] == 0: a free slot */
	struct km_id id[2];
	km_ms opened;
	uint64_t bytes;
	km_ms window;             /* start of the current second */
	uint32_t window_bytes;
};

struct km_relay {
	struct km_relay_callbacks cb;
	void *user;
	struct circuit circuits[KM_RELAY_CIRCUITS_MAX];
	struct km_relay_stats st;
};

struct km_relay *km_relay_new(const struct km_relay_callbacks *cb, void *user)
{
	struct km_relay *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->cb = *cb;
	r->user = user;
	return r;
}

void km_relay_del(struct km_relay *r)
{
	free(r);
}

static void send_id(struct km_relay *r, uint64_t conn, uint8_t type,
		    const struct km_id *id)
{
	r->cb.send(r->user, conn, type, id->b, KM_ID_LEN);
}

void km_relay_ask(struct km_relay *r, uint64_t via, const struct km_id *id)
{
	send_id(r, via, KM_FRAME_RELAY_REQ, id);
}

void km_relay_end(struct km_relay *r, uint64_t via, const struct km_id *id)
{
	send_id(r, via, KM_FRAME_RELAY_CLOSE, id);
}

void km_relay_write(struct km_relay *r, uint64_t via, const struct km_id *id,
		    const uint8_t *buf, size_t len)
{
	uint8_t *chunk = malloc(KM_ID_LEN + KM_RELAY_CHUNK);

	if (!chunk)
		return;
	memcpy(chunk, id->b, KM_ID_LEN);
	while (len > 0) {
		size_t part = len < KM_RELAY_CHUNK ? len : KM_RELAY_CHUNK;

		memcpy(chunk + KM_ID_LEN, buf, part);
		r->cb.send(r->user, via, KM_FRAME_RELAY_DATA, chunk,
			   KM_ID_LEN + part);
		buf += part;
		len -= part;
	}
	free(chunk);
}

/* ---- as R ---- */

/* The circuit from link conn to the peer called peer, and conn's side. */
static struct circuit *circuit_find(struct km_relay *r, uint64_t conn,
				    const struct km_id *peer, int *side)
{
	for (size_t i = 0; i < KM_RELAY_CIRCUITS_MAX; i++) {
		struct circuit *c = &r->circuits[i];

		for (int s = 0; s < 2; s++)
			if (c->conn[0] && c->conn[s] == conn &&
			    km_id_eq(&c->id[1 - s], peer)) {
				*side = s;
				return c;
			}
	}
	return NULL;
}

static struct circuit *circuit_free_slot(struct km_relay *r)
{
	for (size_t i = 0; i < KM_RELAY_CIRCUITS_MAX; i++)
		if (!r->circuits[i].conn[0])
			return &r->circuits[i];
	return NULL;
}

/* RELAY_OPEN's body: a PEER_LIST body with one entry. */
static void send_open(struct km_relay *r, uint64_t conn,
		      const struct km_peer *about)
{
	uint8_t body[2 + KM_PEER_ENTRY_MAX_LEN];
	int len = km_msg_peer_list_encode(body, sizeof(body), about, 1);

	if (len > 0)
		r->cb.send(r->user, conn, KM_FRAME_RELAY_OPEN, body, (size_t)len);
}

static void on_req(struct km_relay *r, uint64_t a, const struct km_peer *pa,
		   const struct km_id *id, km_ms now)
{
	struct km_peer pb;
	struct circuit *c;
	uint64_t b;
	int side;

	if (!r->cb.neighbour(r->user, id, &b, &pb) || b == a ||
	    circuit_find(r, a, id, &side))
		return;
	if (!(c = circuit_free_slot(r))) {
		r->st.refused++;
		return;
	}
	memset(c, 0, sizeof(*c));
	c->conn[0] = a;
	c->conn[1] = b;
	c->id[0] = pa->id;
	c->id[1] = pb.id;
	c->opened = c->window = now;
	send_open(r, a, &pb);
	send_open(r, b, pa);
	r->st.served++;
}

/* Both sides hear RELAY_CLOSE, but the one at index except (-1: none). */
static void circuit_end(struct km_relay *r, struct circuit *c, int except)
{
	for (int s = 0; s < 2; s++)
		if (s != except)
			send_id(r, c->conn[s], KM_FRAME_RELAY_CLOSE, &c->id[1 - s]);
	memset(c, 0, sizeof(*c));
}

static bool within_limits(struct circuit *c, size_t len, km_ms now)
{
	if (now - c->window >= KM_SECONDS(1)) {
		c->window = now;
		c->window_bytes = 0;
	}
	c->bytes += len;
	c->window_bytes += (uint32_t)len;
	return now - c->opened < KM_RELAY_DURATION_MS &&
	       c->bytes <= KM_RELAY_BYTES_MAX &&
	       c->window_bytes <= KM_RELAY_RATE_BYTES;
}

static void forward(struct km_relay *r, uint64_t from,
		    const struct km_id *to_id, const uint8_t *data, size_t len,
		    km_ms now)
{
	int side;
	struct circuit *c = circuit_find(r, from, to_id, &side);
	uint8_t *buf;

	if (!c)
		return;
	if (!within_limits(c, len, now)) {
		r->st.cut++;
		circuit_end(r, c, -1);
		return;
	}
	if (!(buf = malloc(KM_ID_LEN + len)))
		return;
	memcpy(buf, c->id[side].b, KM_ID_LEN);
	memcpy(buf + KM_ID_LEN, data, len);
	if (r->cb.send(r->user, c->conn[1 - side], KM_FRAME_RELAY_DATA, buf,
		       KM_ID_LEN + len))
		r->st.bytes += len;
	free(buf);
}

void km_relay_link_gone(struct km_relay *r, uint64_t conn)
{
	for (size_t i = 0; i < KM_RELAY_CIRCUITS_MAX; i++) {
		struct circuit *c = &r->circuits[i];

		if (c->conn[0] && (c->conn[0] == conn || c->conn[1] == conn))
			circuit_end(r, c, c->conn[0] == conn ? 0 : 1);
	}
}

/* ---- frames ---- */

static void on_open(struct km_relay *r, uint64_t via,
		    const struct km_peer *peer, km_ms now)
{
	struct km_id id = peer->id;
	int rc = r->cb.open(r->user, via, peer, now);

	if (rc < 0)
		km_relay_end(r, via, &id);
	else if (rc == 0)
		r->st.opened++;
}

static void on_close(struct km_relay *r, uint64_t conn, const struct km_id *id,
		     km_ms now)
{
	int side;
	struct circuit *c = circuit_find(r, conn, id, &side);

	if (c)
		circuit_end(r, c, side);
	r->cb.closed(r->user, conn, id, now);
}

int km_relay_on_frame(struct km_relay *r, uint64_t conn,
		      const struct km_peer *from, uint8_t type,
		      const uint8_t *body, size_t len, km_ms now)
{
	struct km_peer peer;
	struct km_id id;
	int rc;

	if (type == KM_FRAME_RELAY_OPEN) {
		rc = km_msg_peer_list_decode(body, len, &peer, 1);
		if (rc < 0)
			return rc;
		if (rc != 1)
			return KM_ERR_TRUNCATED;
		on_open(r, conn, &peer, now);
		return 0;
	}
	if (len < KM_ID_LEN)
		return KM_ERR_TRUNCATED;
	if (type != KM_FRAME_RELAY_DATA && len != KM_ID_LEN)
		return KM_ERR_TRAILING;
	memcpy(id.b, body, KM_ID_LEN);
	if (type == KM_FRAME_RELAY_REQ)
		on_req(r, conn, from, &id, now);
	else if (type == KM_FRAME_RELAY_CLOSE)
		on_close(r, conn, &id, now);
	else if (!r->cb.data(r->user, conn, &id, body + KM_ID_LEN,
			     len - KM_ID_LEN, now))
		forward(r, conn, &id, body + KM_ID_LEN, len - KM_ID_LEN, now);
	return 0;
}

struct km_relay_stats km_relay_stats(const struct km_relay *r)
{
	struct km_relay_stats st = r->st;

	st.circuits = 0;
	for (size_t i = 0; i < KM_RELAY_CIRCUITS_MAX; i++)
		st.circuits += r->circuits[i].conn[0] != 0;
	return st;
}
