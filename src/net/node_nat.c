/* The node's NAT awareness: votes on its external address come in from
 * KRPC replies (BEP 42 `ip`) and from HELLOs (see nat.h). */
#include <string.h>

#include "net/node_internal.h"
#include "proto/err.h"

void node_observed(struct km_node *n, const struct km_addr *from,
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
		 km_reach_name(km_nat_reachability(&n->nat)));
}

/* An accepting peer saw where our outbound connection came from.  Its
 * port is an ephemeral TCP port, so only the IP counts. */
void node_hello_observed(struct km_node *n, const struct link *l, km_ms now)
{
	struct km_addr seen = l->hello.observed;

	if (!l->outbound || seen.family == KM_AF_NONE)
		return;
	seen.port = 0;
	node_observed(n, &l->remote, &seen, now);
}

struct km_nat *km_node_nat(struct km_node *n)
{
	return &n->nat;
}

/* ---- dial-back checks ---------------------------------------------------
 *
 * DIAL_ME (nonce) asks a neighbour to connect to our listening port at the
 * IP it sees us at; the first frame on that connection is DIALBACK (nonce).
 * The dialler connects only to the asker's own IP (never a third party) and
 * runs at most DIALERS_MAX such connections at once, each for at most
 * DIAL_MS.  A node found unreachable turns read-only (BEP 43) and keeps its
 * NAT mappings open with UDP pings to a few neighbours, its rendezvous
 * points. */

#define DIAL_MS KM_SECONDS(5)
#define RECHECK_MS KM_MINUTES(10)
#define KEEPALIVE_MS KM_SECONDS(20)
#define KEEPALIVE_PEERS 3
#define STABLE_MS KM_SECONDS(1)

void node_nat_init(struct km_node *n, km_ms now)
{
	memset(&n->ns, 0, sizeof(n->ns));
	n->ns.ro_configured = n->cfg.dht.read_only;
	n->ns.next_check = now;
}

static void send_nonce(struct km_node *n, struct link *l, uint8_t type,
		       uint64_t nonce)
{
	uint8_t body[KM_PING_LEN];

	km_ping_encode(body, sizeof(body), nonce);
	link_send_frame(n, l, type, body, sizeof(body));
}

/* The network's scope: the widest of our direct neighbours' addresses and
 * our adopted external one.  A node behind a NAT whose first neighbours
 * are on its LAN sees it grow to global once an Internet peer links up. */
static enum km_scope network_scope(const struct km_node *n)
{
	const struct km_addr *ext = km_nat_external(&n->nat);
	enum km_scope s = ext ? km_addr_scope(ext) : KM_SCOPE_NONE;
	const struct link *l, *tmp;

	HASH_ITER(hh, n->links, l, tmp)
		if (l->neighbour && !l->relay_via && km_addr_scope(&l->remote) > s)
			s = km_addr_scope(&l->remote);
	return s;
}

/* Any neighbour can dial, even one behind a NAT (it reaches a public node),
 * but only one from the network's scope proves anything (see km_scope).
 * Only links up for STABLE_MS are asked: a link closed at once as a
 * duplicate of another would lose the request. */
static bool askable(const struct km_node *n, const struct link *l,
		    enum km_scope scope, km_ms now)
{
	return l->neighbour && l->hello.listen_port != 0 &&
	       now >= l->up_since + STABLE_MS && !l->relay_via &&
	       km_addr_scope(&l->remote) == scope;
}

/* Starts a check when one is due and a neighbour can be asked; returns
 * when to look again (0: nothing to wait for). */
static km_ms start_check(struct km_node *n, km_ms now)
{
	struct node_nat_state *s = &n->ns;
	enum km_scope scope = network_scope(n);
	struct link *l, *tmp;
	km_ms wake = 0;

	/* The last verdict came from a narrower network: check again now. */
	if (s->deadline == 0 && s->scope != KM_SCOPE_NONE && scope > s->scope)
		s->next_check = now;
	if (s->deadline != 0 || now < s->next_check || n->cfg.port == 0)
		return s->deadline ? s->deadline : s->next_check;
	HASH_ITER(hh, n->links, l, tmp) {
		if (!askable(n, l, scope, now)) {
			if (l->neighbour && now < l->up_since + STABLE_MS)
				wake = km_ms_earliest(wake, l->up_since + STABLE_MS);
			continue;
		}
		if (s->deadline == 0) {
			s->nonce = km_rng_u64(n->rng);
			s->asked = 0;
			s->deadline = now + n->cfg.dialback_timeout_ms;
			s->next_check = now + RECHECK_MS;
			s->scope = scope;
		}
		if (s->asked >= DIALBACK_ASK)
			break;
		s->asked++;
		s->st.dialbacks_asked++;
		send_nonce(n, l, KM_FRAME_DIAL_ME, s->nonce);
	}
	return s->deadline ? s->deadline : wake;
}

static void set_read_only(struct km_node *n, bool ro)
{
	ro = ro || n->ns.ro_configured;
	n->cfg.dht.read_only = ro;
	for (unsigned i = 0; i < 2; i++)
		if (n->fam[i].dht)
			km_dht_set_read_only(n->fam[i].dht, ro);
}

static void verdict(struct km_node *n, enum km_reach r)
{
	enum km_reach before = km_nat_reachability(&n->nat);

	n->ns.deadline = 0;
	if (r == KM_REACH_PUBLIC)
		n->ns.st.dialbacks_ok++;
	else
		n->ns.st.dialbacks_failed++;
	km_nat_set_dialback(&n->nat, r);
	set_read_only(n, r == KM_REACH_PRIVATE);
	if (before != r)
		node_log(n, KM_LOG_INFO, "reachability: %s%s", km_reach_name(r),
			 r == KM_REACH_PRIVATE ? " (read-only DHT node)" : "");
}

static struct dialer *dialer_find(struct km_node *n, uint64_t conn)
{
	for (size_t i = 0; i < DIALERS_MAX; i++)
		if (conn != 0 && n->ns.dialers[i].conn == conn)
			return &n->ns.dialers[i];
	return NULL;
}

static void dial_for(struct km_node *n, const struct link *l, uint64_t nonce,
		     km_ms now)
{
	struct dialer *d = NULL;
	struct km_addr to = l->remote;

	for (size_t i = 0; !d && i < DIALERS_MAX; i++)
		if (n->ns.dialers[i].conn == 0)
			d = &n->ns.dialers[i];
	if (!d || l->hello.listen_port == 0)
		return; /* busy: the asker hears nothing and tries elsewhere */
	to.port = l->hello.listen_port;
	d->conn = n->next_conn++;
	d->nonce = nonce;
	d->deadline = now + DIAL_MS;
	n->ns.st.dialbacks_served++;
	n->cb.tcp_connect(n->user, d->conn, &to);
}

bool node_nat_tcp_connected(struct km_node *n, uint64_t conn)
{
	struct dialer *d = dialer_find(n, conn);
	uint8_t buf[KM_FRAME_HEADER_LEN + KM_PING_LEN];
	uint8_t body[KM_PING_LEN];
	int w;

	if (!d)
		return false;
	km_ping_encode(body, sizeof(body), d->nonce);
	w = km_frame_encode(buf, sizeof(buf), KM_FRAME_DIALBACK, body,
			    sizeof(body));
	if (w > 0)
		n->cb.tcp_send(n->user, conn, buf, (size_t)w);
	n->cb.tcp_close(n->user, conn);
	d->conn = 0;
	return true;
}

void node_nat_tcp_closed(struct km_node *n, uint64_t conn)
{
	struct dialer *d = dialer_find(n, conn);

	if (d)
		d->conn = 0;
}

bool node_nat_on_frame(struct km_node *n, struct link *l,
		       const struct km_frame *f, km_ms now)
{
	uint64_t nonce;

	if (km_ping_decode(f->payload, f->len, &nonce) < 0 ||
	    (f->type == KM_FRAME_DIAL_ME && !l->neighbour) ||
	    (f->type == KM_FRAME_DIALBACK &&
	     (l->outbound || l->state != LINK_HELLO_WAIT))) {
		link_close(n, l, KM_BYE_PROTOCOL_ERROR,
			   km_frame_type_name(f->type), now);
		return false;
	}
	if (f->type == KM_FRAME_DIAL_ME) {
		dial_for(n, l, nonce, now);
		return true;
	}
	if (n->ns.deadline != 0 && nonce == n->ns.nonce &&
	    km_addr_scope(&l->remote) >= n->ns.scope)
		verdict(n, KM_REACH_PUBLIC);
	link_close(n, l, KM_BYE_NORMAL, "dial-back", now);
	return false;
}

/* UDP pings to a few outbound neighbours keep our NAT's mappings open. */
static void keepalives(struct km_node *n, km_ms now)
{
	struct link *l, *tmp;
	int sent = 0;

	HASH_ITER(hh, n->links, l, tmp) {
		struct km_addr udp = l->remote;

		if (sent >= KEEPALIVE_PEERS)
			break;
		if (!l->neighbour || !l->outbound || l->hello.listen_port == 0)
			continue;
		udp.port = l->hello.listen_port;
		node_verify(n, &udp, now);
		n->ns.st.keepalives++;
		sent++;
	}
}

km_ms node_nat_tick(struct km_node *n, km_ms now)
{
	struct node_nat_state *s = &n->ns;
	km_ms wake = node_punch_tick(n, now);

	if (s->deadline != 0 && now >= s->deadline)
		verdict(n, KM_REACH_PRIVATE);
	wake = km_ms_earliest(wake, start_check(n, now));
	for (size_t i = 0; i < DIALERS_MAX; i++) {
		struct dialer *d = &s->dialers[i];

		if (d->conn != 0 && now >= d->deadline) {
			n->cb.tcp_close(n->user, d->conn);
			d->conn = 0;
		}
		if (d->conn != 0)
			wake = km_ms_earliest(wake, d->deadline);
	}
	if (km_nat_reachability(&n->nat) == KM_REACH_PRIVATE) {
		if (now >= s->next_keepalive) {
			keepalives(n, now);
			s->next_keepalive = now + KEEPALIVE_MS;
		}
		wake = km_ms_earliest(wake, s->next_keepalive);
	}
	node_reach_tick(n);
	return wake;
}

struct km_node_nat_stats km_node_nat_stats(const struct km_node *n)
{
	struct km_node_nat_stats st = n->ns.st;
	const struct link *l, *tmp;

	for (size_t i = 0; i < RELAY_CIRCUITS_MAX; i++)
		st.relay_circuits += n->ns.circuits[i].conn[0] != 0;
	HASH_ITER(hh, n->links, l, tmp)
		st.relayed_now += l->relay_via && l->neighbour;
	return st;
}
