/* Neighbours: the node's links as the connection manager keeps them, and
 * broadcast over them.  The connection manager decides (connmgr.c), the
 * links act (link.c), and km_bcast sees each neighbour come and go. */
#include <stdlib.h>
#include <string.h>

#include "net/node_internal.h"
#include "proto/err.h"

static void on_bcast_send(void *user, uint64_t peer, uint8_t type,
			  const uint8_t *body, size_t len)
{
	struct km_node *n = user;
	struct link *l = link_find(n, peer);

	if (l && l->neighbour)
		link_send_frame(n, l, type, body, len);
}

static void on_bcast_deliver(void *user, const struct km_message *m)
{
	struct km_node *n = user;

	if (n->cb.deliver)
		n->cb.deliver(n->user, m);
}

int node_neighbours_init(struct km_node *n, km_ms now)
{
	static const struct km_bcast_callbacks bcast_cb = {
		.send = on_bcast_send,
		.deliver = on_bcast_deliver,
	};
	const struct km_id *self = km_dht_id(n->dht);

	if (n->cfg.ping_interval_ms == 0 || n->cfg.pings_missed_max < 1)
		return KM_ERR_INVAL;
	n->cm = km_connmgr_new(self, &n->cfg.cm, n->rng);
	n->bcast = km_bcast_new(self, &n->ident, &n->cfg.bcast, &bcast_cb, n,
				n->rng, now);
	return n->cm && n->bcast ? 0 : KM_ERR_NOMEM;
}

void node_neighbours_free(struct km_node *n)
{
	km_bcast_del(n->bcast);
	km_connmgr_del(n->cm);
	n->bcast = NULL;
	n->cm = NULL;
}

void node_neighbours_up(struct km_node *n, struct link *l, km_ms now)
{
	char addr[KM_ADDR_STRLEN];

	l->neighbour = true;
	l->up_since = now;
	l->next_ping = now + n->cfg.ping_interval_ms;
	/* Without room in km_bcast the link still serves as a neighbour for
	 * joining; it just carries no broadcast. */
	km_bcast_peer_up(n->bcast, l->conn, now);
	km_addr_format(&l->remote, addr, sizeof(addr));
	node_log(n, KM_LOG_DEBUG, "neighbour %s up (%s)", addr,
		 l->outbound ? "out" : "in");
}

/* Broadcast messages from l's peer are signed with the key it proved. */
void node_neighbours_pin(struct km_node *n, struct link *l, km_ms now)
{
	struct km_id id = link_peer_id(l);

	km_bcast_pin(n->bcast, &id, l->hello.pubkey, now);
}

/* Called for every link that ends, neighbour or not. */
void node_neighbours_lost(struct km_node *n, struct link *l, km_ms now)
{
	if (!n->cm)
		return; /* km_node_new failing half-way */
	km_connmgr_closed(n->cm, l->conn, now);
	/* Leaving: no point repairing the tree. */
	if (l->neighbour && !n->stopping)
		km_bcast_peer_down(n->bcast, l->conn, now);
	l->neighbour = false;
}

/* Dials what the connection manager asks for. */
static void fill(struct km_node *n, km_ms now)
{
	const struct km_table *t = km_dht_table(n->dht);
	struct km_contact c;

	while (km_connmgr_next_dial(n->cm, t, now, &c)) {
		struct link *l = link_open(n, &c.addr, true, &c.id, now);

		if (!l)
			break; /* at max_links: the next fill tries again */
		n->cb.tcp_connect(n->user, l->conn, &c.addr);
	}
	node_rendezvous_fill(n, now);
}

km_ms node_neighbours_tick(struct km_node *n, km_ms now)
{
	km_ms wake;

	if (n->stopping)
		return 0;
	fill(n, now);
	wake = km_bcast_tick(n->bcast, now);
	return km_ms_earliest(wake, km_connmgr_wake(n->cm));
}

int km_node_broadcast(struct km_node *n, const uint8_t *payload, size_t len,
		      uint8_t id[static KM_MSG_ID_LEN], km_ms now)
{
	if (n->stopping)
		return KM_ERR_INVAL;
	return km_bcast_publish(n->bcast, payload, len, id, now);
}

size_t km_node_neighbours(const struct km_node *n, struct km_neighbour *out,
			  size_t max)
{
	const struct link *l, *tmp;
	size_t count = 0;

	HASH_ITER(hh, n->links, l, tmp) {
		struct km_neighbour *nb;

		if (!l->neighbour || count++ >= max)
			continue;
		nb = &out[count - 1];
		nb->id = link_peer_id(l);
		nb->addr = l->remote;
		nb->outbound = l->outbound;
		nb->eager = km_bcast_peer_eager(n->bcast, l->conn);
		nb->via = l->relay_via ? KM_VIA_RELAY
			: l->punched ? KM_VIA_PUNCHED : KM_VIA_DIRECT;
		nb->since = l->up_since;
		nb->rtt_ms = l->rtt_ms;
		nb->bytes_in = l->bytes_in;
		nb->bytes_out = l->bytes_out;
		nb->frames_in = l->frames_in;
		nb->frames_out = l->frames_out;
	}
	return count;
}
