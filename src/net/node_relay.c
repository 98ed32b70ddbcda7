/* The node's side of relayed links (relay.h has the protocol and owns the
 * circuits): links to a neighbour's ID for R, and the relayed links that
 * are the node's own -- opened on RELAY_OPEN, fed by RELAY_DATA, ended by
 * RELAY_CLOSE or when the link to R goes. */
#include <string.h>

#include "dht/id.h"
#include "net/node_internal.h"
#include "proto/err.h"

static bool relay_neighbour(void *user, const struct km_id *id, uint64_t *conn,
			    struct km_peer *peer)
{
	struct link *l = link_by_peer(user, id, PEER_NEIGHBOUR, 0);

	if (!l)
		return false;
	*conn = l->conn;
	*peer = link_endpoint(l);
	return true;
}

/* The side with the lower ID dials: it sends HELLO first. */
static int relay_open(void *user, uint64_t via, const struct km_peer *peer,
		      km_ms now)
{
	struct km_node *n = user;
	struct km_id id = peer->id;
	struct link *l;
	bool dialler;

	if (km_id_eq(&id, km_dht_id(n->dht)) ||
	    link_by_peer(n, &id, PEER_NEIGHBOUR, 0) ||
	    link_by_peer(n, &id, PEER_RELAYED, via))
		return 1;
	dialler = km_id_cmp(km_dht_id(n->dht), &id) < 0;
	if (!(l = link_open(n, &peer->addr, dialler, &id, now)))
		return KM_ERR_FULL;
	l->relay_via = via;
	l->relay_peer = id;
	l->next_upgrade = now + KM_PUNCH_UPGRADE_MS;
	if (dialler)
		link_on_connected(n, l, now);
	return 0;
}

static bool relay_data(void *user, uint64_t via, const struct km_id *id,
		       const uint8_t *buf, size_t len, km_ms now)
{
	struct km_node *n = user;
	struct link *l = link_by_peer(n, id, PEER_RELAYED, via);

	if (!l)
		return false;
	link_on_bytes(n, l, buf, len, now);
	return true;
}

static void relay_closed(void *user, uint64_t via, const struct km_id *id,
			 km_ms now)
{
	struct km_node *n = user;
	struct link *l = link_by_peer(n, id, PEER_RELAYED, via);

	if (l) {
		l->relay_via = 0; /* nothing to tell: R ended it */
		link_on_closed(n, l, now);
	}
}

int node_relay_init(struct km_node *n)
{
	static const struct km_relay_callbacks cb = {
		.send = link_send_by_conn,
		.neighbour = relay_neighbour,
		.open = relay_open,
		.data = relay_data,
		.closed = relay_closed,
	};

	n->relay = km_relay_new(&cb, n);
	return n->relay ? 0 : KM_ERR_NOMEM;
}

void node_relay_ask(struct km_node *n, uint64_t rendezvous,
		    const struct km_id *id)
{
	struct link *r = link_find(n, rendezvous);

	if (r && r->neighbour && !link_by_peer(n, id, PEER_NEIGHBOUR, 0))
		km_relay_ask(n->relay, rendezvous, id);
}

void node_relay_write(struct km_node *n, struct link *l, const uint8_t *buf,
		      size_t len)
{
	km_relay_write(n->relay, l->relay_via, &l->relay_peer, buf, len);
}

void node_relay_close(struct km_node *n, struct link *l)
{
	km_relay_end(n->relay, l->relay_via, &l->relay_peer);
}

/* A link went: as R, its circuits end; as an end, the links it carried. */
void node_relay_link_gone(struct km_node *n, struct link *gone, km_ms now)
{
	struct link *l, *tmp;

	if (!n->relay)
		return; /* km_node_new failing half-way */
	km_relay_link_gone(n->relay, gone->conn);
	HASH_ITER(hh, n->links, l, tmp)
		if (l != gone && l->relay_via == gone->conn) {
			l->relay_via = 0; /* nothing to tell: R is gone */
			link_on_closed(n, l, now);
		}
}

bool node_relay_on_frame(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now)
{
	struct km_peer from = link_endpoint(l);

	if (l->neighbour && km_relay_on_frame(n->relay, l->conn, &from, f->type,
					      f->payload, f->len, now) == 0)
		return true;
	link_close(n, l, KM_BYE_PROTOCOL_ERROR, km_frame_type_name(f->type), now);
	return false;
}
