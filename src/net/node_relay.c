/* Relayed links: when punching fails (a symmetric NAT picks a new port for
 * each destination), the rendezvous R carries the link's bytes.
 *
 * A sends RELAY_REQ (B's ID) to R.  R, within its limits, opens a circuit
 * and sends RELAY_OPEN to both, each naming the other (a one-entry
 * PEER_LIST body).  Each side then runs an ordinary link over the circuit:
 * its bytes travel as RELAY_DATA (peer ID | bytes) on the link to R, which
 * forwards them with the sender's ID.  The side with the lower node ID
 * acts as the dialler and sends HELLO first.  RELAY_CLOSE (peer ID) ends
 * it, from either side or from R.  Like libp2p's circuit relay v2, R caps
 * the number of circuits, their duration, their bytes and their rate, and
 * cuts a circuit that exceeds them. */
#include <stdlib.h>
#include <string.h>

#include "dht/id.h"
#include "net/node_internal.h"
#include "proto/err.h"

#define DATA_CHUNK (16 * 1024)

static void send_id(struct km_node *n, struct link *l, uint8_t type,
		    const struct km_id *id)
{
	link_send_frame(n, l, type, id->b, KM_ID_LEN);
}

void node_relay_ask(struct km_node *n, uint64_t rendezvous,
		    const struct km_id *id)
{
	struct link *r = link_find(n, rendezvous);

	if (r && r->neighbour && !link_by_peer(n, id, PEER_NEIGHBOUR, 0))
		send_id(n, r, KM_FRAME_RELAY_REQ, id);
}

/* ---- as R ---- */

static struct circuit *circuit_find(struct km_node *n, uint64_t conn,
				    const struct km_id *peer, int *side)
{
	for (size_t i = 0; i < RELAY_CIRCUITS_MAX; i++) {
		struct circuit *c = &n->ns.circuits[i];

		for (int s = 0; s < 2; s++)
			if (c->conn[0] && c->conn[s] == conn &&
			    km_id_eq(&c->id[1 - s], peer)) {
				*side = s;
				return c;
			}
	}
	return NULL;
}

static void on_req(struct km_node *n, struct link *a, const struct km_id *id,
		   km_ms now)
{
	struct link *b = link_by_peer(n, id, PEER_NEIGHBOUR, 0);
	struct circuit *c = NULL;
	int side;

	if (!b || b == a || circuit_find(n, a->conn, id, &side))
		return;
	for (size_t i = 0; !c && i < RELAY_CIRCUITS_MAX; i++)
		if (!n->ns.circuits[i].conn[0])
			c = &n->ns.circuits[i];
	if (!c) {
		n->ns.st.relays_refused++;
		return;
	}
	memset(c, 0, sizeof(*c));
	c->conn[0] = a->conn;
	c->conn[1] = b->conn;
	memcpy(c->id[0].b, a->hello.id, KM_ID_LEN);
	memcpy(c->id[1].b, b->hello.id, KM_ID_LEN);
	c->opened = c->window = now;
	node_send_endpoint(n, a, KM_FRAME_RELAY_OPEN, b);
	node_send_endpoint(n, b, KM_FRAME_RELAY_OPEN, a);
	n->ns.st.relays_served++;
}

static void circuit_end(struct km_node *n, struct circuit *c, int except)
{
	for (int s = 0; s < 2; s++) {
		struct link *l = link_find(n, c->conn[s]);

		if (s != except && l)
			send_id(n, l, KM_FRAME_RELAY_CLOSE, &c->id[1 - s]);
	}
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
	return now - c->opened < RELAY_DURATION_MS &&
	       c->bytes <= RELAY_BYTES_MAX && c->window_bytes <= RELAY_RATE_BYTES;
}

static void forward(struct km_node *n, struct link *from,
		    const struct km_id *to_id, const uint8_t *data, size_t len,
		    km_ms now)
{
	int side;
	struct circuit *c = circuit_find(n, from->conn, to_id, &side);
	struct link *to;
	uint8_t *buf;

	if (!c)
		return;
	to = link_find(n, c->conn[1 - side]);
	if (!to || !within_limits(c, len, now)) {
		n->ns.st.relays_cut += to != NULL;
		circuit_end(n, c, -1);
		return;
	}
	buf = malloc(KM_ID_LEN + len);
	if (!buf)
		return;
	memcpy(buf, c->id[side].b, KM_ID_LEN);
	memcpy(buf + KM_ID_LEN, data, len);
	link_send_frame(n, to, KM_FRAME_RELAY_DATA, buf, KM_ID_LEN + len);
	n->ns.st.relay_bytes += len;
	free(buf);
}

/* ---- as an end of a relayed link ---- */

static void on_open(struct km_node *n, struct link *r,
		    const struct km_peer *peer, km_ms now)
{
	struct km_id id;
	struct link *l;
	bool dialler;

	memcpy(id.b, peer->id, KM_ID_LEN);
	if (km_id_eq(&id, km_dht_id(n->dht)) || link_by_peer(n, &id, PEER_NEIGHBOUR, 0) ||
	    link_by_peer(n, &id, PEER_RELAYED, r->conn))
		return;
	dialler = km_id_cmp(km_dht_id(n->dht), &id) < 0;
	l = link_open(n, &peer->addr, dialler, &id, now);
	if (!l) {
		send_id(n, r, KM_FRAME_RELAY_CLOSE, &id);
		return;
	}
	l->relay_via = r->conn;
	l->relay_peer = id;
	l->next_upgrade = now + KM_NODE_UPGRADE_MS;
	n->ns.st.relayed_links++;
	if (dialler)
		link_on_connected(n, l, now);
}

void node_relay_write(struct km_node *n, struct link *l, const uint8_t *buf,
		      size_t len)
{
	struct link *r = link_find(n, l->relay_via);
	uint8_t *chunk;

	if (!r || !(chunk = malloc(KM_ID_LEN + DATA_CHUNK)))
		return;
	memcpy(chunk, l->relay_peer.b, KM_ID_LEN);
	while (len > 0) {
		size_t part = len < DATA_CHUNK ? len : DATA_CHUNK;

		memcpy(chunk + KM_ID_LEN, buf, part);
		link_send_frame(n, r, KM_FRAME_RELAY_DATA, chunk, KM_ID_LEN + part);
		buf += part;
		len -= part;
	}
	free(chunk);
}

void node_relay_close(struct km_node *n, struct link *l)
{
	struct link *r = link_find(n, l->relay_via);

	if (r)
		send_id(n, r, KM_FRAME_RELAY_CLOSE, &l->relay_peer);
}

/* A link went: as R, its circuits end; as an end, the links it carried. */
void node_relay_link_gone(struct km_node *n, struct link *gone, km_ms now)
{
	struct link *l, *tmp;

	for (size_t i = 0; i < RELAY_CIRCUITS_MAX; i++) {
		struct circuit *c = &n->ns.circuits[i];

		if (c->conn[0] && (c->conn[0] == gone->conn || c->conn[1] == gone->conn))
			circuit_end(n, c, c->conn[0] == gone->conn ? 0 : 1);
	}
	HASH_ITER(hh, n->links, l, tmp)
		if (l != gone && l->relay_via == gone->conn) {
			l->relay_via = 0; /* nothing to tell: R is gone */
			link_on_closed(n, l, now);
		}
}

bool node_relay_on_frame(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now)
{
	struct km_peer peer;
	struct km_id id;
	struct link *v;

	if (!l->neighbour || (f->type != KM_FRAME_RELAY_OPEN && f->len < KM_ID_LEN) ||
	    ((f->type == KM_FRAME_RELAY_REQ || f->type == KM_FRAME_RELAY_CLOSE) &&
	     f->len != KM_ID_LEN))
		goto bad;
	if (f->type == KM_FRAME_RELAY_OPEN) {
		if (km_peer_list_decode(f->payload, f->len, &peer, 1) != 1)
			goto bad;
		on_open(n, l, &peer, now);
		return true;
	}
	memcpy(id.b, f->payload, KM_ID_LEN);
	if (f->type == KM_FRAME_RELAY_REQ) {
		on_req(n, l, &id, now);
		return true;
	}
	v = link_by_peer(n, &id, PEER_RELAYED, l->conn);
	if (f->type == KM_FRAME_RELAY_CLOSE) {
		int side;
		struct circuit *c = circuit_find(n, l->conn, &id, &side);

		if (c)
			circuit_end(n, c, side);
		if (v) {
			v->relay_via = 0;
			link_on_closed(n, v, now);
		}
		return true;
	}
	if (v) /* RELAY_DATA for a link of ours */
		link_on_bytes(n, v, f->payload + KM_ID_LEN, f->len - KM_ID_LEN, now);
	else
		forward(n, l, &id, f->payload + KM_ID_LEN, f->len - KM_ID_LEN, now);
	return true;
bad:
	link_close(n, l, KM_BYE_PROTOCOL_ERROR, km_frame_type_name(f->type), now);
	return false;
}
