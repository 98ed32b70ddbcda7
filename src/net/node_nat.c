/* The node's NAT awareness: votes on its external address come in from
 * KRPC replies (BEP 42 `ip`) and from HELLOs (see nat.h). */
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
		 km_reach_name(km_nat_reachability(&n->nat)));
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

/* ---- dial-back checks ---------------------------------------------------
 *
 * DIAL_ME (nonce) asks a neighbour to connect to our listening port at the
 * IP it sees us at; the first frame on that connection is DIALBACK (nonce),
 * and the dialler tells us how it went with DIAL_RESULT (nonce, result).
 * The dialler connects only to the asker's own IP (never a third party) and
 * runs at most DIALERS_MAX such connections at once, each for at most
 * DIAL_MS.  One dial that did not arrive proves nothing (the dialler may be
 * busy, a cap may refuse it, a packet may be lost): only failed dials from
 * two distinct neighbours make us private.  A node found unreachable turns
 * read-only (BEP 43) and keeps its NAT mappings open with UDP pings to a
 * few neighbours, its rendezvous points.  Checks repeat with a backoff, 1
 * min doubling to 10 min, so that no verdict stands unchecked for long. */

#define DIAL_MS KM_SECONDS(5)
#define RECHECK_FIRST_MS KM_MINUTES(1)
#define RECHECK_MAX_MS KM_MINUTES(10)
#define KEEPALIVE_MS KM_SECONDS(20)
#define KEEPALIVE_PEERS 3
#define STABLE_MS KM_SECONDS(1)

void node_nat_init(struct km_node *n, km_ms now)
{
	memset(&n->ns, 0, sizeof(n->ns));
	n->ns.ro_configured = n->cfg.dht.read_only;
	n->ns.next_check = now;
	n->ns.backoff = RECHECK_FIRST_MS;
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

/* The /16 (IPv6: /32) of an address, as nat.c groups voters. */
static bool same_16(const struct km_addr *a, const struct km_addr *b)
{
	size_t len = a->family == KM_AF_INET6 ? 4 : 2;

	return a->family == b->family && memcmp(a->ip, b->ip, len) == 0;
}

static struct dial_ask *ask_of(struct node_nat_state *s, uint64_t conn)
{
	for (int i = 0; i < s->asked; i++)
		if (s->asks[i].conn == conn)
			return &s->asks[i];
	return NULL;
}

/* The address a dial-back from the IP from was aimed at: what the asked
 * neighbour at that IP sees us at, or else what any asked one does. */
static const struct km_addr *dialled(const struct node_nat_state *s,
				     const struct km_addr *from)
{
	const struct km_addr *any = NULL;

	for (int i = 0; i < s->asked; i++) {
		const struct dial_ask *a = &s->asks[i];

		if (a->seen.family == KM_AF_NONE)
			continue;
		if (km_addr_ip_eq(&a->remote, from))
			return &a->seen;
		any = any ? any : &a->seen;
	}
	return any;
}

static bool prefix_asked(const struct node_nat_state *s,
			 const struct km_addr *a)
{
	for (int i = 0; i < s->asked; i++)
		if (same_16(&s->asks[i].remote, a))
			return true;
	return false;
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

/* The address l's peer sees us at (what it dials), with our listening
 * port; family KM_AF_NONE if its HELLO did not say. */
static struct km_addr seen_at(const struct km_node *n, const struct link *l)
{
	struct km_addr a = l->hello.observed;

	a.port = n->cfg.port;
	return a;
}

static void ask(struct km_node *n, struct link *l)
{
	struct node_nat_state *s = &n->ns;
	struct dial_ask *a = &s->asks[s->asked++];

	a->conn = l->conn;
	a->remote = l->remote;
	a->seen = seen_at(n, l);
	a->result = 0;
	s->st.dialbacks_asked++;
	send_nonce(n, l, KM_FRAME_DIAL_ME, s->nonce);
}

/* Asks askable neighbours not asked yet, one per /16 first (so that two
 * failures can come from two subnets), then any; returns when a link that
 * is not stable yet will be. */
static km_ms ask_more(struct km_node *n, enum km_scope scope, km_ms now)
{
	struct node_nat_state *s = &n->ns;
	struct link *l, *tmp;
	km_ms wake = 0;

	for (int pass = 0; pass < 2; pass++)
		HASH_ITER(hh, n->links, l, tmp) {
			if (!askable(n, l, scope, now)) {
				if (l->neighbour && now < l->up_since + STABLE_MS)
					wake = km_ms_earliest(wake, l->up_since + STABLE_MS);
				continue;
			}
			if (s->asked >= DIALBACK_ASK || ask_of(s, l->conn) ||
			    (pass == 0 && prefix_asked(s, &l->remote)))
				continue;
			if (s->deadline == 0) {
				s->nonce = km_rng_u64(n->rng);
				s->deadline = now + n->cfg.dialback_timeout_ms;
				s->scope = scope;
			}
			ask(n, l);
		}
	return wake;
}

/* Starts a check when one is due, and asks neighbours that came up since
 * it started; returns when to look again (0: nothing to wait for). */
static km_ms start_check(struct km_node *n, km_ms now)
{
	struct node_nat_state *s = &n->ns;
	enum km_scope scope = network_scope(n);
	km_ms wake;

	/* The last verdict came from a narrower network: check again now. */
	if (s->deadline == 0 && s->scope != KM_SCOPE_NONE && scope > s->scope)
		s->next_check = now;
	if (n->cfg.port == 0 || (s->deadline == 0 && now < s->next_check))
		return s->deadline ? s->deadline : s->next_check;
	if (s->deadline == 0)
		s->asked = 0;
	else if (scope != s->scope)
		return s->deadline;
	wake = ask_more(n, scope, now);
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

/* The check (if any) is over: the next one follows the backoff, which
 * starts over whenever the verdict changes. */
static void check_over(struct km_node *n, bool changed, km_ms now)
{
	struct node_nat_state *s = &n->ns;

	if (changed)
		s->backoff = RECHECK_FIRST_MS;
	s->deadline = 0;
	s->next_check = now + s->backoff;
	s->backoff = s->backoff * 2 < RECHECK_MAX_MS ? s->backoff * 2
						     : RECHECK_MAX_MS;
}

/* A verdict about the address at (see km_nat_set_dialback); returns true
 * if the verdict changed. */
static bool set_verdict(struct km_node *n, enum km_reach r,
			const struct km_addr *at, const char *why)
{
	enum km_reach before = km_nat_reachability(&n->nat);

	if (!km_nat_set_dialback(&n->nat, r, at))
		return false;
	set_read_only(n, r == KM_REACH_PRIVATE);
	if (before != r)
		node_log(n, KM_LOG_INFO, "reachability: %s (%s)%s",
			 km_reach_name(r), why,
			 r == KM_REACH_PRIVATE ? ", read-only DHT node" : "");
	return before != r;
}

/* A verdict needs an address to be about: adopted, or the one given. */
static bool has_address(const struct km_node *n, const struct km_addr *at)
{
	return km_nat_external(&n->nat) || (at && at->family != KM_AF_NONE);
}

/* A check's verdict: the check is over. */
static void verdict(struct km_node *n, enum km_reach r,
		    const struct km_addr *at, const char *why, km_ms now)
{
	check_over(n, set_verdict(n, r, at, why), now);
}

/* Failed dials from two distinct neighbours, from two /16s when the ones
 * we asked span more than one, prove we are unreachable; returns the first
 * of them (what it dialled is the address found unreachable), or NULL. */
static const struct dial_ask *proven_private(const struct node_nat_state *s)
{
	const struct dial_ask *first = NULL;
	bool spread = false;

	for (int i = 1; i < s->asked; i++)
		spread = spread || !same_16(&s->asks[i].remote, &s->asks[0].remote);
	for (int i = 0; i < s->asked; i++) {
		const struct dial_ask *a = &s->asks[i];

		if (a->result != KM_DIAL_REFUSED && a->result != KM_DIAL_TIMED_OUT)
			continue;
		if (!first)
			first = a;
		else if (spread ? !same_16(&a->remote, &first->remote)
				: !km_addr_ip_eq(&a->remote, &first->remote))
			return first;
	}
	return NULL;
}

/* The deadline passed with no DIALBACK. */
static void check_ended(struct km_node *n, km_ms now)
{
	const struct dial_ask *a = proven_private(&n->ns);

	if (a && has_address(n, &a->seen)) {
		n->ns.st.dialbacks_failed++;
		verdict(n, KM_REACH_PRIVATE, &a->seen, "dial-backs failed", now);
		return;
	}
	n->ns.st.dialbacks_undecided++;
	node_log(n, KM_LOG_DEBUG, "reachability check: too little evidence");
	check_over(n, false, now);
}

bool node_nat_expecting(const struct km_node *n)
{
	return n->ns.deadline != 0 && n->ns.probes < PROBES_MAX;
}

/* Unsolicited traffic from `from` reached us at `at`: we are public, if
 * it came from the network's scope and no verdict says so already;
 * returns whether it counted. */
static bool unsolicited_proof(struct km_node *n, const struct km_addr *from,
			      const struct km_addr *at, const char *why)
{
	enum km_scope scope = network_scope(n);

	if (km_addr_scope(from) < scope || !has_address(n, at) ||
	    km_nat_reachability(&n->nat) == KM_REACH_PUBLIC)
		return false;
	if (n->ns.deadline == 0)
		n->ns.scope = scope;
	set_verdict(n, KM_REACH_PUBLIC, at, why);
	return true;
}

/* An inbound link we did nothing to bring about reached our listening
 * port from the network's scope: we are reachable.  Punched links (our
 * SYN opened the way) and relayed ones prove nothing.  The dial-back
 * checks go on as scheduled: they confirm the verdict, or overturn it
 * with evidence of their own. */
void node_nat_inbound(struct km_node *n, struct link *l, km_ms now)
{
	struct km_addr at = seen_at(n, l);

	(void)now;
	if (!l->outbound && !l->punched && !l->relay_via && !l->probe &&
	    unsolicited_proof(n, &l->remote, &at, "inbound connection"))
		n->ns.st.inbound_proofs++;
}

/* Where a neighbour of the network's scope sees us, with our port: the
 * address an unsolicited query was most likely sent to; family
 * KM_AF_NONE if no such neighbour said. */
static struct km_addr udp_seen_at(const struct km_node *n, enum km_scope scope)
{
	const struct link *l, *tmp;
	struct km_addr none = { .family = KM_AF_NONE };

	HASH_ITER(hh, n->links, l, tmp)
		if (l->neighbour && !l->relay_via &&
		    km_addr_scope(&l->remote) == scope &&
		    l->hello.observed.family != KM_AF_NONE)
			return seen_at(n, l);
	return none;
}

/* A KRPC query from an IP our DHT had not sent to, nor heard from, for at
 * least 5 minutes (dht/contacted.h) reached our UDP port: nothing of ours
 * opened a NAT mapping for it, so the port is open to anyone who knows it.
 * The rules are node_nat_inbound's, and one more: it never overturns a
 * dial-back verdict of `private`.  That verdict is about our TCP port,
 * which a query says nothing about; a NAT that filters UDP by endpoint
 * only (full cone) but forwards no TCP would otherwise flip us public and
 * back at every check. */
void node_nat_unsolicited(struct km_node *n, const struct km_addr *from)
{
	struct km_addr at = udp_seen_at(n, network_scope(n));

	if (n->cfg.port != 0 && km_nat_dialback(&n->nat) != KM_REACH_PRIVATE &&
	    unsolicited_proof(n, from, &at, "unsolicited KRPC query"))
		n->ns.st.krpc_proofs++;
}

static struct dialer *dialer_find(struct km_node *n, uint64_t conn)
{
	for (size_t i = 0; i < DIALERS_MAX; i++)
		if (conn != 0 && n->ns.dialers[i].conn == conn)
			return &n->ns.dialers[i];
	return NULL;
}

static void send_result(struct km_node *n, uint64_t asker, uint64_t nonce,
			uint8_t result)
{
	struct link *l = link_find(n, asker);
	uint8_t body[KM_DIAL_RESULT_LEN];

	if (!l)
		return; /* the asker left */
	km_dial_result_encode(body, sizeof(body), nonce, result);
	link_send_frame(n, l, KM_FRAME_DIAL_RESULT, body, sizeof(body));
}

static void dial_for(struct km_node *n, const struct link *l, uint64_t nonce,
		     km_ms now)
{
	struct dialer *d = NULL;
	struct km_addr to = l->remote;

	for (size_t i = 0; !d && i < DIALERS_MAX; i++)
		if (n->ns.dialers[i].conn == 0)
			d = &n->ns.dialers[i];
	if (!d || l->hello.listen_port == 0) {
		n->ns.st.dialbacks_busy++;
		send_result(n, l->conn, nonce, KM_DIAL_BUSY);
		return;
	}
	to.port = l->hello.listen_port;
	d->conn = n->next_conn++;
	d->nonce = nonce;
	d->asker = l->conn;
	d->deadline = now + DIAL_MS;
	n->ns.st.dialbacks_served++;
	n->cb.tcp_connect(n->user, d->conn, &to);
}

/* Frees the slot first: closing may call back into node_nat_tcp_closed. */
static void dialer_done(struct km_node *n, struct dialer *d, uint8_t result,
			bool close)
{
	uint64_t conn = d->conn;

	d->conn = 0;
	if (close)
		n->cb.tcp_close(n->user, conn);
	send_result(n, d->asker, d->nonce, result);
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
	dialer_done(n, d, KM_DIAL_CONNECTED, true);
	return true;
}

/* Closed before it connected: the dial failed. */
void node_nat_tcp_closed(struct km_node *n, uint64_t conn)
{
	struct dialer *d = dialer_find(n, conn);

	if (d)
		dialer_done(n, d, KM_DIAL_REFUSED, false);
}

/* A neighbour we asked says how its dial went. */
static bool on_result(struct km_node *n, struct link *l,
		      const struct km_frame *f, km_ms now)
{
	struct dial_ask *a;
	uint64_t nonce;
	uint8_t result;

	if (km_dial_result_decode(f->payload, f->len, &nonce, &result) < 0) {
		link_close(n, l, KM_BYE_PROTOCOL_ERROR, "DIAL_RESULT", now);
		return false;
	}
	if (result < sizeof(n->ns.st.dial_results) / sizeof(unsigned long))
		n->ns.st.dial_results[result]++;
	if (n->ns.deadline != 0 && nonce == n->ns.nonce &&
	    (a = ask_of(&n->ns, l->conn)) && a->result == 0)
		a->result = result;
	return true;
}

bool node_nat_on_frame(struct km_node *n, struct link *l,
		       const struct km_frame *f, km_ms now)
{
	uint64_t nonce;

	if (f->type == KM_FRAME_DIAL_RESULT && l->state == LINK_UP)
		return on_result(n, l, f, now);
	if (f->type == KM_FRAME_DIAL_RESULT ||
	    km_ping_decode(f->payload, f->len, &nonce) < 0 ||
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
	    km_addr_scope(&l->remote) >= n->ns.scope &&
	    has_address(n, dialled(&n->ns, &l->remote))) {
		n->ns.st.dialbacks_ok++;
		verdict(n, KM_REACH_PUBLIC, dialled(&n->ns, &l->remote),
			"dial-back arrived", now);
	}
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
		check_ended(n, now);
	wake = km_ms_earliest(wake, start_check(n, now));
	for (size_t i = 0; i < DIALERS_MAX; i++) {
		struct dialer *d = &s->dialers[i];

		if (d->conn != 0 && now >= d->deadline)
			dialer_done(n, d, KM_DIAL_TIMED_OUT, true);
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
	node_rendezvous_tick(n);
	return wake;
}

struct km_node_nat_stats km_node_nat_stats(const struct km_node *n)
{
	struct km_node_nat_stats st = n->ns.st;
	struct km_relay_stats rs = km_relay_stats(n->relay);
	struct km_punch_stats ps = km_punch_stats(n->punch);
	const struct link *l, *tmp;

	st.relays_served = rs.served;
	st.relays_refused = rs.refused;
	st.relays_cut = rs.cut;
	st.relay_bytes = rs.bytes;
	st.relayed_links = rs.opened;
	st.relay_circuits = rs.circuits;
	st.punches_coordinated = ps.coordinated;
	st.punches_ok = ps.ok;
	st.punches_failed = ps.failed;
	st.punch_attempts = ps.attempts;
	st.upgrade_attempts = ps.upgrades;
	st.last_punch_ms = ps.last_punch_ms;
	st.last_relay_ms = ps.last_relay_ms;
	HASH_ITER(hh, n->links, l, tmp)
		st.relayed_now += l->relay_via && l->neighbour;
	return st;
}
