/* The node's side of hole punching (punch.h has the protocol and owns the
 * punches): `dht-ctl punch`, the links a punch opens, relayed links that
 * keep asking for a punch to become direct, and the punched link that
 * replaces a relayed one. */
#include <stdio.h>
#include <string.h>

#include "dht/id.h"
#include "net/node_internal.h"
#include "proto/err.h"

#define PUNCH_ASK_MAX 8        /* neighbours asked to be the rendezvous */

static bool punch_neighbour(void *user, const struct km_id *id, uint64_t *conn,
			    struct km_peer *peer)
{
	struct link *l = link_by_peer(user, id, PEER_UP, 0);

	if (!l || !l->neighbour)
		return false;
	*conn = l->conn;
	*peer = link_endpoint(l);
	return true;
}

static bool punch_wanted(void *user, const struct km_id *id)
{
	struct km_node *n = user;
	struct link *existing = link_by_peer(n, id, PEER_UP, 0);

	return n->cb.tcp_punch && (!existing || existing->relay_via) &&
	       !km_id_eq(id, km_dht_id(n->dht));
}

static uint64_t punch_dial(void *user, const struct km_id *id,
			   const struct km_addr *addr, km_ms now)
{
	struct km_node *n = user;
	struct link *l = link_open(n, addr, true, id, now);

	node_verify(n, addr, now); /* the UDP probe */
	if (!l)
		return 0;
	l->punched = true;
	return l->conn;
}

static void punch_connect(void *user, uint64_t conn, const struct km_addr *addr)
{
	struct km_node *n = user;

	n->cb.tcp_punch(n->user, conn, addr);
}

static void upgrade_later(struct km_node *n, const struct km_id *id, km_ms now);

static void punch_gave_up(void *user, uint64_t rendezvous,
			  const struct km_id *id, km_ms now)
{
	node_relay_ask(user, rendezvous, id);
	upgrade_later(user, id, now);
}

static void punch_log(void *user, const char *msg)
{
	node_log(user, KM_LOG_DEBUG, "%s", msg);
}

int node_punch_init(struct km_node *n)
{
	static const struct km_punch_callbacks cb = {
		.send = link_send_by_conn,
		.neighbour = punch_neighbour,
		.wanted = punch_wanted,
		.dial = punch_dial,
		.connect = punch_connect,
		.gave_up = punch_gave_up,
		.log = punch_log,
	};

	n->punch = km_punch_new(&cb, n);
	return n->punch ? 0 : KM_ERR_NOMEM;
}

int km_node_punch(struct km_node *n, const struct km_id *id, km_ms now)
{
	struct link *l, *tmp;
	int asked = 0;

	(void)now;
	if (!n->cb.tcp_punch || km_id_eq(id, km_dht_id(n->dht)))
		return KM_ERR_INVAL;
	if (link_by_peer(n, id, PEER_UP, 0))
		return 0;
	HASH_ITER(hh, n->links, l, tmp) {
		if (!l->neighbour || asked >= PUNCH_ASK_MAX)
			continue;
		km_punch_ask(n->punch, l->conn, id, KM_PUNCH_OPERATOR);
		asked++;
	}
	return asked > 0 ? 0 : KM_ERR_FULL;
}

bool node_punch_on_frame(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now)
{
	struct km_peer from = link_endpoint(l);

	if (l->neighbour && km_punch_on_frame(n->punch, l->conn, &from, f->type,
					      f->payload, f->len, now) == 0)
		return true;
	link_close(n, l, KM_BYE_PROTOCOL_ERROR, km_frame_type_name(f->type), now);
	return false;
}

void node_punch_link_up(struct km_node *n, struct link *l, km_ms now)
{
	struct km_id id = link_peer_id(l);

	if (km_punch_link_up(n->punch, l->conn, &id, l->outbound,
			     l->relay_via != 0, now))
		l->punched = true;
}

void node_punch_link_gone(struct km_node *n, struct link *l, km_ms now)
{
	if (n->punch)
		km_punch_link_gone(n->punch, l->conn, now);
}

void node_punch_hello(struct km_node *n, struct link *l, km_ms now)
{
	struct km_id id = link_peer_id(l);
	struct link *v;

	if (!l->punched)
		return;
	while ((v = link_by_peer(n, &id, PEER_RELAYED, 0)))
		link_close(n, v, KM_BYE_NORMAL, "upgraded to direct", now);
}

/* Relayed links keep asking their relay for a punch: only the side with
 * the lower ID (the relay's dialler) asks, KM_PUNCH_UPGRADE_MS after the
 * last round ended (see upgrade_later).  Rounds must not follow each
 * other closely: a NAT gives a new connection from a source port the
 * mapping that source already has (Linux's masquerade does), so one
 * round's SYNs keep alive the mapping an earlier round got, and rounds
 * chained back to back (two askers drifting apart) would keep a stale
 * mapping -- from before the NAT turned port-preserving, say -- forever. */
static km_ms upgrades(struct km_node *n, km_ms now)
{
	struct link *l, *tmp;
	km_ms wake = 0;

	HASH_ITER(hh, n->links, l, tmp) {
		struct link *r;

		if (!l->relay_via || l->state != LINK_UP ||
		    km_id_cmp(km_dht_id(n->dht), &l->relay_peer) > 0 ||
		    km_punch_running(n->punch, &l->relay_peer))
			continue;
		if (now >= l->next_upgrade && (r = link_find(n, l->relay_via))) {
			km_punch_ask(n->punch, r->conn, &l->relay_peer,
				     KM_PUNCH_UPGRADE);
			l->next_upgrade = now + KM_PUNCH_UPGRADE_MS;
		}
		wake = km_ms_earliest(wake, l->next_upgrade);
	}
	return wake;
}

/* A round for a relayed link ended: the next one waits a full period. */
static void upgrade_later(struct km_node *n, const struct km_id *id, km_ms now)
{
	struct link *l, *tmp;

	HASH_ITER(hh, n->links, l, tmp)
		if (l->relay_via && km_id_eq(&l->relay_peer, id))
			l->next_upgrade = now + KM_PUNCH_UPGRADE_MS;
}

km_ms node_punch_tick(struct km_node *n, km_ms now)
{
	km_ms wake = upgrades(n, now);

	return km_ms_earliest(wake, km_punch_tick(n->punch, now));
}

const char *km_via_name(enum km_via via)
{
	switch (via) {
	case KM_VIA_PUNCHED: return "punched";
	case KM_VIA_RELAY: return "relay";
	default: return "direct";
	}
}
