/* Deciding to punch (docs/PROTOCOL.md, "Finding a rendezvous").
 *
 * A private node cannot be dialled and, being read-only (BEP 43), is in no
 * one's routing table.  It dials public nodes itself, so the only pairs
 * that cannot link without help are two private nodes.  Each says what it
 * is: REACH (1) to each neighbour, when the link comes up and whenever its
 * reachability changes.  A neighbour R that hears it keeps a direct link
 * to that private node, so R can coordinate punches to it.  R then sends
 * RENDEZVOUS (a PEER_LIST body of at most RENDEZVOUS_MAX private nodes,
 * each with the endpoint PUNCH_GO would name) to the newly private
 * neighbour, listing its other private neighbours, and tells each of those
 * about the new one.  The connection manager keeps what it hears
 * (connmgr.h) and, when the routing table has no one left to dial, picks a
 * private node; the lower ID of the two sends PUNCH_REQ to that rendezvous,
 * and the punch (node_punch.c) and the relay fallback (node_relay.c) run
 * as for `dht-ctl punch`. */
#include <string.h>

#include "net/node_internal.h"
#include "proto/err.h"

#define RENDEZVOUS_MAX 16      /* entries in one RENDEZVOUS frame */

static bool am_private(const struct km_node *n)
{
	return km_nat_reachability(&n->nat) == KM_REACH_PRIVATE;
}

static void send_reach(struct km_node *n, struct link *l)
{
	uint8_t v = n->ns.told_private;

	link_send_frame(n, l, KM_FRAME_REACH, &v, 1);
}

/* A private neighbour we can coordinate punches to: a direct link, and a
 * listening port to name in PUNCH_GO. */
static bool rendezvous_for(const struct link *l)
{
	return l->neighbour && l->peer_private && !l->relay_via &&
	       l->hello.listen_port != 0;
}

static void send_rendezvous(struct km_node *n, struct link *to,
			    const struct km_peer *peers, size_t count)
{
	uint8_t body[2 + RENDEZVOUS_MAX * KM_PEER_ENTRY_MAX_LEN];
	int len;

	if (count == 0)
		return;
	len = km_peer_list_encode(body, sizeof(body), peers, count);
	if (len > 0) {
		link_send_frame(n, to, KM_FRAME_RENDEZVOUS, body, (size_t)len);
		n->ns.st.rendezvous_sent++;
	}
}

/* A new neighbour hears that we are private. */
void node_rendezvous_up(struct km_node *n, struct link *l, km_ms now)
{
	(void)now;
	if (n->ns.told_private)
		send_reach(n, l);
}

/* Our reachability changed to or from private (a vote or a dial-back
 * check): every neighbour hears it. */
void node_rendezvous_tick(struct km_node *n)
{
	struct link *l, *tmp;

	if (am_private(n) == n->ns.told_private)
		return;
	n->ns.told_private = am_private(n);
	HASH_ITER(hh, n->links, l, tmp)
		if (l->neighbour)
			send_reach(n, l);
}

/* Neighbour l turned private: it hears which other private nodes we can
 * reach, and they hear about it. */
static void advertise(struct km_node *n, struct link *about)
{
	struct km_peer one, peers[RENDEZVOUS_MAX];
	struct link *l, *tmp;
	size_t count = 0;

	one = link_endpoint(about);
	HASH_ITER(hh, n->links, l, tmp) {
		if (l == about || !rendezvous_for(l))
			continue;
		send_rendezvous(n, l, &one, 1);
		if (count < RENDEZVOUS_MAX)
			peers[count++] = link_endpoint(l);
	}
	send_rendezvous(n, about, peers, count);
}

static void on_reach(struct km_node *n, struct link *l, bool private_now)
{
	bool was = rendezvous_for(l);

	l->peer_private = private_now;
	if (!was && rendezvous_for(l))
		advertise(n, l);
}

static void on_rendezvous(struct km_node *n, struct link *r,
			  const struct km_peer *peers, size_t count, km_ms now)
{
	for (size_t i = 0; i < count; i++) {
		struct km_contact c;

		memcpy(c.id.b, peers[i].id, KM_ID_LEN);
		c.addr = peers[i].addr;
		km_connmgr_private_add(n->cm, &c, r->conn, now);
	}
}

bool node_rendezvous_on_frame(struct km_node *n, struct link *l,
			      const struct km_frame *f, km_ms now)
{
	struct km_peer peers[RENDEZVOUS_MAX];
	int count;

	if (!l->neighbour)
		goto bad;
	if (f->type == KM_FRAME_REACH) {
		if (f->len != 1 || f->payload[0] > 1)
			goto bad;
		on_reach(n, l, f->payload[0] == 1);
		return true;
	}
	count = km_peer_list_decode(f->payload, f->len, peers, RENDEZVOUS_MAX);
	if (count < 0)
		goto bad;
	on_rendezvous(n, l, peers, (size_t)count, now);
	return true;
bad:
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

		if (!r || !r->neighbour)
			continue;
		km_punch_ask(n->punch, r->conn, &c.id);
		n->ns.st.punches_asked++;
	}
}
