/* Hole punching through a rendezvous neighbour R (docs/PROTOCOL.md).
 *
 * A sends PUNCH_REQ (B's node ID) to its neighbours.  A neighbour R with a
 * link to B sends PUNCH_GO to both at once, each naming the other: node ID
 * and external endpoint (the IP R sees the link come from, and the HELLO's
 * listening port, which a port-preserving NAT keeps).  Each side then
 * sends a UDP probe (a KRPC find_node, which opens its NAT's UDP mapping)
 * and dials the other from its own listening port, so that the two SYNs
 * cross in the NATs and meet as a TCP simultaneous open.  A failed attempt
 * is retried after 1, 2, 4 ... s until PUNCH_TIMEOUT_MS. */
#include <string.h>

#include "dht/id.h"
#include "net/node_internal.h"
#include "proto/err.h"

#define PUNCH_TIMEOUT_MS KM_SECONDS(12)
#define PUNCH_RETRY_MS KM_SECONDS(1)
#define PUNCH_ASK_MAX 8        /* neighbours asked to be the rendezvous */

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
		link_send_frame(n, l, KM_FRAME_PUNCH_REQ, id->b, KM_ID_LEN);
		asked++;
	}
	return asked > 0 ? 0 : KM_ERR_FULL;
}

/* PUNCH_GO's and RELAY_OPEN's body: a PEER_LIST body with one entry,
 * about's ID and external endpoint (its IP as we see it, its listening
 * port). */
void node_send_endpoint(struct km_node *n, struct link *to, uint8_t type,
			const struct link *about)
{
	struct km_peer p = link_endpoint(about);
	uint8_t body[2 + KM_PEER_ENTRY_MAX_LEN];
	int len;

	len = km_peer_list_encode(body, sizeof(body), &p, 1);
	if (len > 0)
		link_send_frame(n, to, type, body, (size_t)len);
}

static void on_req(struct km_node *n, struct link *a, const struct km_id *id)
{
	struct link *b = link_by_peer(n, id, PEER_UP, 0);

	if (!b || b == a || !b->neighbour || b->hello.listen_port == 0 ||
	    a->hello.listen_port == 0)
		return;
	node_send_endpoint(n, a, KM_FRAME_PUNCH_GO, b);
	node_send_endpoint(n, b, KM_FRAME_PUNCH_GO, a);
	n->ns.st.punches_coordinated++;
}

static struct punch *punch_find(struct km_node *n, const struct km_id *id)
{
	for (size_t i = 0; i < PUNCHES_MAX; i++) {
		struct punch *p = &n->ns.punches[i];

		if (p->addr.family != KM_AF_NONE && km_id_eq(&p->id, id))
			return p;
	}
	return NULL;
}

/* Punches are rare: each step is worth a debug line. */
static void punch_log(struct km_node *n, const struct punch *p,
		      const char *what)
{
	char addr[KM_ADDR_STRLEN];

	km_addr_format(&p->addr, addr, sizeof(addr));
	node_log(n, KM_LOG_DEBUG, "punch to %02x%02x%02x%02x at %s: %s (attempt %d)",
		 p->id.b[0], p->id.b[1], p->id.b[2], p->id.b[3], addr, what,
		 p->attempts);
}

static void attempt(struct km_node *n, struct punch *p, km_ms now)
{
	struct link *l = link_open(n, &p->addr, true, &p->id, now);

	p->attempts++;
	punch_log(n, p, l ? "connecting" : "no link slot");
	p->next_try = 0;
	n->ns.st.punch_attempts++;
	node_verify(n, &p->addr, now); /* the UDP probe */
	if (!l) {
		p->next_try = now + PUNCH_RETRY_MS;
		return;
	}
	l->punched = true;
	p->conn = l->conn;
	n->cb.tcp_punch(n->user, l->conn, &p->addr);
}

static void on_go(struct km_node *n, const struct link *r,
		  const struct km_peer *peer, km_ms now)
{
	struct punch *p;
	struct link *existing;
	struct km_id id;

	memcpy(id.b, peer->id, KM_ID_LEN);
	existing = link_by_peer(n, &id, PEER_UP, 0);
	if (!n->cb.tcp_punch || (existing && !existing->relay_via) ||
	    punch_find(n, &id) ||
	    km_id_eq(&id, km_dht_id(n->dht)))
		return;
	p = NULL;
	for (size_t i = 0; !p && i < PUNCHES_MAX; i++)
		if (n->ns.punches[i].addr.family == KM_AF_NONE)
			p = &n->ns.punches[i];
	if (!p)
		return;
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->addr = peer->addr;
	p->deadline = now + PUNCH_TIMEOUT_MS;
	p->started = now;
	p->rendezvous = r->conn;
	attempt(n, p, now);
}

bool node_punch_on_frame(struct km_node *n, struct link *l,
			 const struct km_frame *f, km_ms now)
{
	struct km_peer peer;

	if (!l->neighbour)
		goto bad;
	if (f->type == KM_FRAME_PUNCH_REQ) {
		struct km_id id;

		if (f->len != KM_ID_LEN)
			goto bad;
		memcpy(id.b, f->payload, KM_ID_LEN);
		on_req(n, l, &id);
		return true;
	}
	if (km_peer_list_decode(f->payload, f->len, &peer, 1) != 1)
		goto bad;
	on_go(n, l, &peer, now);
	return true;
bad:
	link_close(n, l, KM_BYE_PROTOCOL_ERROR, km_frame_type_name(f->type), now);
	return false;
}

void node_punch_link_up(struct km_node *n, struct link *l, km_ms now)
{
	struct km_id id;
	struct punch *p;

	/* A relayed link leaves a punch running: if it succeeds, it
	 * replaces the relayed link (node_punch_hello). */
	if (l->relay_via) {
		if (n->ns.relay_asked)
			n->ns.st.last_relay_ms = now - n->ns.relay_asked;
		n->ns.relay_asked = 0;
		return;
	}
	memcpy(id.b, l->hello.id, KM_ID_LEN);
	p = punch_find(n, &id);
	if (!p)
		return;
	/* Our SYN or theirs (inbound), the punch made it: neither NAT lets an
	 * unsolicited connection in.  A link we dialled the usual way only
	 * makes the punch moot. */
	if (l->conn != p->conn && l->outbound) {
		punch_log(n, p, "moot: linked another way");
		memset(p, 0, sizeof(*p));
		return;
	}
	n->ns.st.last_punch_ms = now - p->started;
	l->punched = true;
	n->ns.st.punches_ok++;
	punch_log(n, p, "link up");
	memset(p, 0, sizeof(*p));
}

void node_punch_link_gone(struct km_node *n, struct link *l, km_ms now)
{
	for (size_t i = 0; i < PUNCHES_MAX; i++) {
		struct punch *p = &n->ns.punches[i];
		km_ms backoff;

		if (p->addr.family == KM_AF_NONE || p->conn != l->conn)
			continue;
		p->conn = 0;
		backoff = PUNCH_RETRY_MS << (p->attempts < 4 ? p->attempts - 1 : 3);
		p->next_try = now + backoff;
		punch_log(n, p, "failed");
	}
}

/* A punched link to a node we reach through a relay replaces the relayed
 * one, before the connection manager would refuse it as a duplicate. */
void node_punch_hello(struct km_node *n, struct link *l, km_ms now)
{
	struct link *v;
	struct km_id id;

	if (!l->punched)
		return;
	memcpy(id.b, l->hello.id, KM_ID_LEN);
	while ((v = link_by_peer(n, &id, PEER_RELAYED, 0)))
		link_close(n, v, KM_BYE_NORMAL, "upgraded to direct", now);
}

/* Relayed links keep asking their relay for a punch: only the side with
 * the lower ID (the relay's dialler) asks, KM_NODE_UPGRADE_MS after the
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
		    punch_find(n, &l->relay_peer))
			continue;
		if (now >= l->next_upgrade && (r = link_find(n, l->relay_via))) {
			link_send_frame(n, r, KM_FRAME_PUNCH_REQ, l->relay_peer.b,
					KM_ID_LEN);
			n->ns.st.upgrade_attempts++;
			l->next_upgrade = now + KM_NODE_UPGRADE_MS;
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
			l->next_upgrade = now + KM_NODE_UPGRADE_MS;
}

km_ms node_punch_tick(struct km_node *n, km_ms now)
{
	km_ms wake = upgrades(n, now);

	for (size_t i = 0; i < PUNCHES_MAX; i++) {
		struct punch *p = &n->ns.punches[i];

		if (p->addr.family == KM_AF_NONE)
			continue;
		if (now >= p->deadline && p->conn == 0) {
			n->ns.st.punches_failed++;
			punch_log(n, p, "gave up, asking for a relay");
			n->ns.relay_asked = p->started;
			node_relay_ask(n, p->rendezvous, &p->id);
			upgrade_later(n, &p->id, now);
			memset(p, 0, sizeof(*p));
			continue;
		}
		if (p->next_try != 0 && now >= p->next_try) {
			if (now >= p->deadline) {
				p->next_try = 0;
				continue;
			}
			attempt(n, p, now);
		}
		wake = km_ms_earliest(wake, p->next_try);
		wake = km_ms_earliest(wake, p->deadline);
	}
	return wake;
}

const char *km_via_name(enum km_via via)
{
	switch (via) {
	case KM_VIA_PUNCHED: return "punched";
	case KM_VIA_RELAY: return "relay";
	default: return "direct";
	}
}
