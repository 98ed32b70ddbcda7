/* The node's side of finding a rendezvous (rendezvous.h has the protocol
 * and owns the state): neighbours coming and going, our reachability, the
 * private nodes heard of going to the connection manager, and asking a
 * rendezvous for the private nodes it wants. */
#include <string.h>

#include "net/node_internal.h"
#include "proto/err.h"

static bool am_private(const struct km_node *n)
{
	return km_nat_reachability(&n->nat) == KM_REACH_PRIVATE;
}

static void rendezvous_learned(void *user, const struct km_peer *peer,
			       uint64_t via, km_ms now)
{
	struct km_node *n = user;
	struct km_contact c;

	c.id = peer->id;
	c.addr = peer->addr;
	km_connmgr_private_add(n->cm, &c, via, now);
}

int node_rendezvous_init(struct km_node *n)
{
	static const struct km_rendezvous_callbacks cb = {
		.send = link_send_by_conn,
		.learned = rendezvous_learned,
	};

	n->rendezvous = km_rendezvous_new(&cb, n);
	return n->rendezvous ? 0 : KM_ERR_NOMEM;
}

/* A new neighbour hears that we are private.  Out of memory, it is only
 * not tracked: it would not hear our reachability change. */
void node_rendezvous_up(struct km_node *n, struct link *l, km_ms now)
{
	struct km_peer p = link_endpoint(l);

	(void)now;
	km_rendezvous_up(n->rendezvous, l->conn, &p, l->relay_via != 0);
}

void node_rendezvous_gone(struct km_node *n, struct link *l, km_ms now)
{
	(void)now;
	if (n->rendezvous)
		km_rendezvous_gone(n->rendezvous, l->conn);
}

/* Our reachability changed to or from private (a vote or a dial-back
 * check): every neighbour hears it. */
void node_rendezvous_tick(struct km_node *n)
{
	km_rendezvous_set_private(n->rendezvous, am_private(n));
}

bool node_rendezvous_on_frame(struct km_node *n, struct link *l,
			      const struct km_frame *f, km_ms now)
{
	if (l->neighbour && km_rendezvous_on_frame(n->rendezvous, l->conn,
						   f->type, f->payload, f->len,
						   now) == 0)
		return true;
	link_close(n, l, KM_BYE_PROTOCOL_ERROR, km_frame_type_name(f->type), now);
	return false;
}

/* Asks a rendezvous for the private nodes the connection manager wants.
 * Both private nodes of a pair know of the other; only the lower ID asks. */
void node_rendezvous_fill(struct km_node *n, km_ms now)
{
	struct km_contact c;
	uint64_t via;

	if (!n->cb.tcp_punch || !am_private(n))
		return;
	while (km_connmgr_next_punch(n->cm, true, now, &c, &via)) {
		struct link *r = link_find(n, via);

		if (r && r->neighbour)
			km_punch_ask(n->punch, r->conn, &c.id, KM_PUNCH_PRIVATE);
	}
}
