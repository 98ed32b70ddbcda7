/* The node's NAT awareness: votes on its external address come in from
 * KRPC replies (BEP 42 `ip`) and from HELLOs (see nat.h); dial-back checks
 * (dialback.h) decide whether it is reachable.  This file is the node's
 * side of km_dialback, and sums the NAT modules' counters. */
#include <string.h>

#include "net/node_internal.h"
#include "proto/err.h"

void node_nat_observed(struct km_node *n, const struct km_addr *from,
		       const struct km_addr *seen, km_ms now)
{
	char addr[KM_ADDR_STRLEN];
	struct km_addr before = n->nat.external;

	if (!km_nat_vote(&n->nat, from, seen, now))
		return;
	km_addr_format(&n->nat.external, addr, sizeof(addr));
	/* Behind a symmetric NAT the port changes all the time: only a new
	 * IP is news at the default level. */
	node_log(n, km_addr_ip_eq(&before, &n->nat.external) ? KM_LOG_DEBUG
							       : KM_LOG_INFO,
		 "external address %s (%s)", addr,
		 km_nat_reach_name(km_nat_reachability(&n->nat)));
}

/* An accepting peer saw where our outbound connection came from.  Its
 * port is an ephemeral TCP port, so only the IP counts. */
void node_nat_hello_observed(struct km_node *n, struct link *l, km_ms now)
{
	struct km_addr seen = l->hello.observed;

	if (!l->outbound || seen.family == KM_AF_NONE)
		return;
	seen.port = 0;
	node_nat_observed(n, &l->remote, &seen, now);
}

struct km_nat *km_node_nat(struct km_node *n)
{
	return &n->nat;
}

/* ---- the node's side of km_dialback ---- */

/* l as the checks see it: where its peer sees us is what it dials, with
 * our listening port. */
static struct km_dialback_peer dialback_peer(const struct km_node *n,
					     const struct link *l)
{
	struct km_dialback_peer p = {
		.conn = l->conn,
		.remote = l->remote,
		.seen = l->hello.observed,
		.listen_port = l->hello.listen_port,
		.outbound = l->outbound,
		.relayed = l->relay_via != 0,
		.up_since = l->up_since,
	};

	p.seen.port = n->cfg.port;
	return p;
}

/* The link table in order, neighbours only; a cursor whose link has gone
 * ends the walk. */
static bool dialback_next(void *user, uint64_t *cursor,
			  struct km_dialback_peer *out)
{
	struct km_node *n = user;
	struct link *l = n->links;

	if (*cursor != 0) {
		l = link_find(n, *cursor);
		l = l ? l->hh.next : NULL;
	}
	while (l && !l->neighbour)
		l = l->hh.next;
	if (!l)
		return false;
	*cursor = l->conn;
	*out = dialback_peer(n, l);
	return true;
}

static uint64_t dialback_new_conn(void *user)
{
	return ((struct km_node *)user)->next_conn++;
}

static void dialback_connect(void *user, uint64_t conn, const struct km_addr *to)
{
	struct km_node *n = user;

	n->cb.tcp_connect(n->user, conn, to);
}

static void dialback_raw_send(void *user, uint64_t conn, const uint8_t *buf,
			      size_t len)
{
	struct km_node *n = user;

	n->cb.tcp_send(n->user, conn, buf, len);
}

static void dialback_close(void *user, uint64_t conn)
{
	struct km_node *n = user;

	n->cb.tcp_close(n->user, conn);
}

/* A private node's DHT is read-only (BEP 43), and so is one configured so
 * whatever the verdict. */
static void dialback_verdict(void *user, enum km_reach r, bool changed,
			     const char *why)
{
	struct km_node *n = user;
	bool ro = r == KM_REACH_PRIVATE || n->read_only_configured;

	n->cfg.dht.read_only = ro;
	for (unsigned i = 0; i < 2; i++)
		if (n->fam[i].dht)
			km_dht_set_read_only(n->fam[i].dht, ro);
	if (changed)
		node_log(n, KM_LOG_INFO, "reachability: %s (%s)%s",
			 km_nat_reach_name(r), why,
			 r == KM_REACH_PRIVATE ? ", read-only DHT node" : "");
}

static void dialback_keepalive(void *user, const struct km_addr *addr,
			       km_ms now)
{
	node_verify(user, addr, now);
}

static void dialback_log(void *user, const char *msg)
{
	node_log(user, KM_LOG_DEBUG, "%s", msg);
}

int node_nat_init(struct km_node *n, km_ms now)
{
	static const struct km_dialback_callbacks cb = {
		.send = link_send_by_conn,
		.next_neighbour = dialback_next,
		.new_conn = dialback_new_conn,
		.connect = dialback_connect,
		.raw_send = dialback_raw_send,
		.close = dialback_close,
		.verdict = dialback_verdict,
		.keepalive = dialback_keepalive,
		.log = dialback_log,
	};
	struct km_dialback_config dc = {
		.port = n->cfg.port,
		.timeout_ms = n->cfg.dialback_timeout_ms,
	};

	n->read_only_configured = n->cfg.dht.read_only;
	n->dialback = km_dialback_new(&dc, &cb, n, &n->nat, n->rng, now);
	return n->dialback ? 0 : KM_ERR_NOMEM;
}

/* DIAL_ME from a neighbour, DIAL_RESULT on an authenticated link, and
 * DIALBACK first on an inbound connection; after a DIALBACK the link has
 * done its work. */
bool node_nat_on_frame(struct km_node *n, struct link *l,
		       const struct km_frame *f, km_ms now)
{
	struct km_dialback_peer p = dialback_peer(n, l);
	bool fits = f->type == KM_FRAME_DIAL_RESULT ? l->state == LINK_UP
		  : f->type == KM_FRAME_DIAL_ME ? l->neighbour
		  : !l->outbound && l->state == LINK_HELLO_WAIT;

	if (!fits || km_dialback_on_frame(n->dialback, &p, f->type, f->payload,
					  f->len, now) < 0) {
		link_close(n, l, KM_BYE_PROTOCOL_ERROR,
			   km_frame_type_name(f->type), now);
		return false;
	}
	if (f->type != KM_FRAME_DIALBACK)
		return true;
	link_close(n, l, KM_BYE_NORMAL, "dial-back", now);
	return false;
}

bool node_nat_tcp_connected(struct km_node *n, uint64_t conn)
{
	return km_dialback_connected(n->dialback, conn);
}

void node_nat_tcp_closed(struct km_node *n, uint64_t conn)
{
	km_dialback_closed(n->dialback, conn);
}

bool node_nat_expecting(const struct km_node *n)
{
	return km_dialback_expecting(n->dialback);
}

/* An inbound link we did nothing to bring about reached our listening
 * port: punched links (our SYN opened the way), relayed ones and probes
 * prove nothing. */
void node_nat_inbound(struct km_node *n, struct link *l, km_ms now)
{
	struct km_dialback_peer p = dialback_peer(n, l);

	(void)now;
	if (!l->outbound && !l->punched && !l->relay_via && !l->probe)
		km_dialback_inbound(n->dialback, &l->remote, &p.seen);
}

void node_nat_unsolicited(struct km_node *n, const struct km_addr *from)
{
	km_dialback_unsolicited(n->dialback, from);
}

km_ms node_nat_tick(struct km_node *n, km_ms now)
{
	km_ms wake = node_punch_tick(n, now);

	wake = km_ms_earliest(wake, km_dialback_tick(n->dialback, now));
	node_rendezvous_tick(n);
	return wake;
}

/* The NAT modules' counters, in the shape control and metrics print. */
struct km_node_nat_stats km_node_nat_stats(const struct km_node *n)
{
	struct km_dialback_stats ds = km_dialback_stats(n->dialback);
	struct km_relay_stats rs = km_relay_stats(n->relay);
	struct km_punch_stats ps = km_punch_stats(n->punch);
	struct km_rendezvous_stats vs = km_rendezvous_stats(n->rendezvous);
	struct km_node_nat_stats st = {
		.dialbacks_asked = ds.asked,
		.dialbacks_ok = ds.ok,
		.dialbacks_failed = ds.failed,
		.dialbacks_served = ds.served,
		.dialbacks_busy = ds.busy,
		.dialbacks_undecided = ds.undecided,
		.dialback_probes = ds.probes,
		.inbound_proofs = ds.inbound_proofs,
		.krpc_proofs = ds.krpc_proofs,
		.keepalives = ds.keepalives,
		.punches_coordinated = ps.coordinated,
		.punches_ok = ps.ok,
		.punches_failed = ps.failed,
		.punch_attempts = ps.attempts,
		.relays_served = rs.served,
		.relays_refused = rs.refused,
		.relays_cut = rs.cut,
		.relay_bytes = rs.bytes,
		.relayed_links = rs.opened,
		.upgrade_attempts = ps.upgrades,
		.punches_asked = ps.asked,
		.rendezvous_sent = vs.sent,
		.relay_circuits = rs.circuits,
		.last_punch_ms = ps.last_punch_ms,
		.last_relay_ms = ps.last_relay_ms,
	};
	const struct link *l, *tmp;

	memcpy(st.dial_results, ds.results, sizeof(st.dial_results));
	HASH_ITER(hh, n->links, l, tmp)
		st.relayed_now += l->relay_via && l->neighbour;
	return st;
}
