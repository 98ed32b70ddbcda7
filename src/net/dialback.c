/* Dial-back checks, the dials we make for others, and keepalives
 * (dialback.h). */
#include "net/dialback.h"

#include <stdlib.h>
#include <string.h>

#include "proto/err.h"
#include "proto/frame.h"
#include "proto/msg.h"

#define DIAL_MS KM_SECONDS(5)
#define RECHECK_FIRST_MS KM_MINUTES(1)
#define RECHECK_MAX_MS KM_MINUTES(10)
#define KEEPALIVE_MS KM_SECONDS(20)
#define KEEPALIVE_PEERS 3
#define STABLE_MS KM_SECONDS(1)

struct dialer {
	uint64_t conn;            /* 0: a free slot */
	uint64_t nonce;
	uint64_t asker;           /* conn of the asker's link, for DIAL_RESULT */
	km_ms deadline;
};

struct dial_ask {
	uint64_t conn;            /* the neighbour's link */
	struct km_addr remote;
	struct km_addr seen;      /* where it sees us (its HELLO), our port */
	uint8_t result;           /* enum km_dial_result; 0: none yet */
};

struct km_dialback {
	struct km_dialback_config cfg;
	struct km_dialback_callbacks cb;
	void *user;
	struct km_nat *nat;       /* the node's: verdicts go there */
	struct km_rng *rng;
	uint64_t nonce;           /* ours, for the check running now */
	struct dial_ask asks[KM_DIALBACK_ASK];
	int asked;                /* neighbours asked in this check */
	km_ms deadline;           /* 0: no check running */
	enum km_scope scope;      /* of the last verdict's evidence (nat.h) */
	km_ms next_check;
	km_ms backoff;            /* until the check after next_check */
	int probes;               /* links let in over the caps, now */
	km_ms next_keepalive;
	struct dialer dialers[KM_DIALERS_MAX];
	struct km_dialback_stats st;
};

struct km_dialback *km_dialback_new(const struct km_dialback_config *cfg,
				    const struct km_dialback_callbacks *cb,
				    void *user, struct km_nat *nat,
				    struct km_rng *rng, km_ms now)
{
	struct km_dialback *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->cfg = *cfg;
	d->cb = *cb;
	d->user = user;
	d->nat = nat;
	d->rng = rng;
	d->next_check = now;
	d->backoff = RECHECK_FIRST_MS;
	return d;
}

void km_dialback_del(struct km_dialback *d)
{
	free(d);
}

static void send_nonce(struct km_dialback *d, uint64_t conn, uint8_t type,
		       uint64_t nonce)
{
	uint8_t body[KM_PING_LEN];

	km_msg_ping_encode(body, sizeof(body), nonce);
	d->cb.send(d->user, conn, type, body, sizeof(body));
}

/* The network's scope: the widest of our direct neighbours' addresses and
 * our adopted external one.  A node behind a NAT whose first neighbours
 * are on its LAN sees it grow to global once an Internet peer links up. */
static enum km_scope network_scope(const struct km_dialback *d)
{
	const struct km_addr *ext = km_nat_external(d->nat);
	enum km_scope s = ext ? km_nat_scope(ext) : KM_SCOPE_NONE;
	struct km_dialback_peer p;
	uint64_t cursor = 0;

	while (d->cb.next_neighbour(d->user, &cursor, &p))
		if (!p.relayed && km_nat_scope(&p.remote) > s)
			s = km_nat_scope(&p.remote);
	return s;
}

/* The /16 (IPv6: /32) of an address, as nat.c groups voters. */
static bool same_16(const struct km_addr *a, const struct km_addr *b)
{
	size_t len = a->family == KM_AF_INET6 ? 4 : 2;

	return a->family == b->family && memcmp(a->ip, b->ip, len) == 0;
}

static struct dial_ask *ask_of(struct km_dialback *d, uint64_t conn)
{
	for (int i = 0; i < d->asked; i++)
		if (d->asks[i].conn == conn)
			return &d->asks[i];
	return NULL;
}

/* The address a dial-back from the IP from was aimed at: what the asked
 * neighbour at that IP sees us at, or else what any asked one does. */
static const struct km_addr *dialled(const struct km_dialback *d,
				     const struct km_addr *from)
{
	const struct km_addr *any = NULL;

	for (int i = 0; i < d->asked; i++) {
		const struct dial_ask *a = &d->asks[i];

		if (a->seen.family == KM_AF_NONE)
			continue;
		if (km_addr_ip_eq(&a->remote, from))
			return &a->seen;
		any = any ? any : &a->seen;
	}
	return any;
}

static bool prefix_asked(const struct km_dialback *d, const struct km_addr *a)
{
	for (int i = 0; i < d->asked; i++)
		if (same_16(&d->asks[i].remote, a))
			return true;
	return false;
}

static bool askable(const struct km_dialback_peer *p, enum km_scope scope,
		    km_ms now)
{
	return p->listen_port != 0 && now >= p->up_since + STABLE_MS &&
	       !p->relayed && km_nat_scope(&p->remote) == scope;
}

static void ask(struct km_dialback *d, const struct km_dialback_peer *p)
{
	struct dial_ask *a = &d->asks[d->asked++];

	a->conn = p->conn;
	a->remote = p->remote;
	a->seen = p->seen;
	a->result = 0;
	d->st.asked++;
	send_nonce(d, p->conn, KM_FRAME_DIAL_ME, d->nonce);
}

/* Whether p is to be asked in this pass: one per /16 first (so that two
 * failures can come from two subnets), then any. */
static bool to_ask(struct km_dialback *d, const struct km_dialback_peer *p,
		   int pass)
{
	return d->asked < KM_DIALBACK_ASK && !ask_of(d, p->conn) &&
	       !(pass == 0 && prefix_asked(d, &p->remote));
}

/* Asks askable neighbours not asked yet; returns when a link that is not
 * stable yet will be. */
static km_ms ask_more(struct km_dialback *d, enum km_scope scope, km_ms now)
{
	struct km_dialback_peer p;
	km_ms wake = 0;

	for (int pass = 0; pass < 2; pass++) {
		uint64_t cursor = 0;

		while (d->cb.next_neighbour(d->user, &cursor, &p)) {
			if (!askable(&p, scope, now)) {
				if (now < p.up_since + STABLE_MS)
					wake = km_ms_earliest(wake, p.up_since + STABLE_MS);
				continue;
			}
			if (!to_ask(d, &p, pass))
				continue;
			if (d->deadline == 0) {
				d->nonce = km_rng_u64(d->rng);
				d->deadline = now + d->cfg.timeout_ms;
				d->scope = scope;
			}
			ask(d, &p);
		}
	}
	return wake;
}

/* Starts a check when one is due, and asks neighbours that came up since
 * it started; returns when to look again (0: nothing to wait for). */
static km_ms start_check(struct km_dialback *d, km_ms now)
{
	enum km_scope scope = network_scope(d);
	km_ms wake;

	/* The last verdict came from a narrower network: check again now. */
	if (d->deadline == 0 && d->scope != KM_SCOPE_NONE && scope > d->scope)
		d->next_check = now;
	if (d->cfg.port == 0 || (d->deadline == 0 && now < d->next_check))
		return d->deadline ? d->deadline : d->next_check;
	if (d->deadline == 0)
		d->asked = 0;
	else if (scope != d->scope)
		return d->deadline;
	wake = ask_more(d, scope, now);
	return d->deadline ? d->deadline : wake;
}

/* The check (if any) is over: the next one follows the backoff, which
 * starts over whenever the verdict changes. */
static void check_over(struct km_dialback *d, bool changed, km_ms now)
{
	if (changed)
		d->backoff = RECHECK_FIRST_MS;
	d->deadline = 0;
	d->next_check = now + d->backoff;
	d->backoff = d->backoff * 2 < RECHECK_MAX_MS ? d->backoff * 2
						     : RECHECK_MAX_MS;
}

/* A verdict about the address at (see km_nat_set_dialback); returns true
 * if the verdict changed. */
static bool set_verdict(struct km_dialback *d, enum km_reach r,
			const struct km_addr *at, const char *why)
{
	enum km_reach before = km_nat_reachability(d->nat);

	if (!km_nat_set_dialback(d->nat, r, at))
		return false;
	d->cb.verdict(d->user, r, before != r, why);
	return before != r;
}

/* A verdict needs an address to be about: adopted, or the one given. */
static bool has_address(const struct km_dialback *d, const struct km_addr *at)
{
	return km_nat_external(d->nat) || (at && at->family != KM_AF_NONE);
}

/* A check's verdict: the check is over. */
static void verdict(struct km_dialback *d, enum km_reach r,
		    const struct km_addr *at, const char *why, km_ms now)
{
	check_over(d, set_verdict(d, r, at, why), now);
}

/* Failed dials from two distinct neighbours, from two /16s when the ones
 * we asked span more than one, prove we are unreachable; returns the first
 * of them (what it dialled is the address found unreachable), or NULL. */
static const struct dial_ask *proven_private(const struct km_dialback *d)
{
	const struct dial_ask *first = NULL;
	bool spread = false;

	for (int i = 1; i < d->asked; i++)
		spread = spread || !same_16(&d->asks[i].remote, &d->asks[0].remote);
	for (int i = 0; i < d->asked; i++) {
		const struct dial_ask *a = &d->asks[i];

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
static void check_ended(struct km_dialback *d, km_ms now)
{
	const struct dial_ask *a = proven_private(d);

	if (a && has_address(d, &a->seen)) {
		d->st.failed++;
		verdict(d, KM_REACH_PRIVATE, &a->seen, "dial-backs failed", now);
		return;
	}
	d->st.undecided++;
	if (d->cb.log)
		d->cb.log(d->user, "reachability check: too little evidence");
	check_over(d, false, now);
}

bool km_dialback_expecting(const struct km_dialback *d)
{
	return d->deadline != 0 && d->probes < KM_PROBES_MAX;
}

void km_dialback_probe_opened(struct km_dialback *d)
{
	d->probes++;
	d->st.probes++;
}

void km_dialback_probe_closed(struct km_dialback *d)
{
	d->probes--;
}

/* Unsolicited traffic from `from` reached us at `at`: we are public, if
 * it came from the network's scope and no verdict says so already;
 * returns whether it counted.  The checks go on as scheduled: they
 * confirm the verdict, or overturn it with evidence of their own. */
static bool unsolicited_proof(struct km_dialback *d, const struct km_addr *from,
			      const struct km_addr *at, const char *why)
{
	enum km_scope scope = network_scope(d);

	if (km_nat_scope(from) < scope || !has_address(d, at) ||
	    km_nat_reachability(d->nat) == KM_REACH_PUBLIC)
		return false;
	if (d->deadline == 0)
		d->scope = scope;
	set_verdict(d, KM_REACH_PUBLIC, at, why);
	return true;
}

void km_dialback_inbound(struct km_dialback *d, const struct km_addr *from,
			 const struct km_addr *at)
{
	if (unsolicited_proof(d, from, at, "inbound connection"))
		d->st.inbound_proofs++;
}

/* Where a neighbour of the network's scope sees us, with our port: the
 * address an unsolicited query was most likely sent to; family
 * KM_AF_NONE if no such neighbour said. */
static struct km_addr udp_seen_at(const struct km_dialback *d,
				  enum km_scope scope)
{
	struct km_dialback_peer p;
	struct km_addr none = { .family = KM_AF_NONE };
	uint64_t cursor = 0;

	while (d->cb.next_neighbour(d->user, &cursor, &p))
		if (!p.relayed && km_nat_scope(&p.remote) == scope &&
		    p.seen.family != KM_AF_NONE)
			return p.seen;
	return none;
}

/* The rules are km_dialback_inbound's, and one more: a query never
 * overturns a dial-back verdict of `private`.  That verdict is about our
 * TCP port, which a query says nothing about; a NAT that filters UDP by
 * endpoint only (full cone) but forwards no TCP would otherwise flip us
 * public and back at every check. */
void km_dialback_unsolicited(struct km_dialback *d, const struct km_addr *from)
{
	struct km_addr at = udp_seen_at(d, network_scope(d));

	if (d->cfg.port != 0 && km_nat_dialback(d->nat) != KM_REACH_PRIVATE &&
	    unsolicited_proof(d, from, &at, "unsolicited KRPC query"))
		d->st.krpc_proofs++;
}

/* ---- dialling back for others ---- */

static struct dialer *dialer_find(struct km_dialback *d, uint64_t conn)
{
	for (size_t i = 0; i < KM_DIALERS_MAX; i++)
		if (conn != 0 && d->dialers[i].conn == conn)
			return &d->dialers[i];
	return NULL;
}

static void send_result(struct km_dialback *d, uint64_t asker, uint64_t nonce,
			uint8_t result)
{
	uint8_t body[KM_DIAL_RESULT_LEN];

	km_msg_dial_result_encode(body, sizeof(body), nonce, result);
	d->cb.send(d->user, asker, KM_FRAME_DIAL_RESULT, body, sizeof(body));
}

/* Only to the asker's own IP, at its listening port. */
static void dial_for(struct km_dialback *d, const struct km_dialback_peer *p,
		     uint64_t nonce, km_ms now)
{
	struct dialer *x = NULL;
	struct km_addr to = p->remote;

	for (size_t i = 0; !x && i < KM_DIALERS_MAX; i++)
		if (d->dialers[i].conn == 0)
			x = &d->dialers[i];
	if (!x || p->listen_port == 0) {
		d->st.busy++;
		send_result(d, p->conn, nonce, KM_DIAL_BUSY);
		return;
	}
	to.port = p->listen_port;
	x->conn = d->cb.new_conn(d->user);
	x->nonce = nonce;
	x->asker = p->conn;
	x->deadline = now + DIAL_MS;
	d->st.served++;
	d->cb.connect(d->user, x->conn, &to);
}

/* Frees the slot first: closing may call back into km_dialback_closed. */
static void dialer_done(struct km_dialback *d, struct dialer *x,
			uint8_t result, bool close)
{
	uint64_t conn = x->conn;

	x->conn = 0;
	if (close)
		d->cb.close(d->user, conn);
	send_result(d, x->asker, x->nonce, result);
}

bool km_dialback_connected(struct km_dialback *d, uint64_t conn)
{
	struct dialer *x = dialer_find(d, conn);
	uint8_t buf[KM_FRAME_HEADER_LEN + KM_PING_LEN];
	uint8_t body[KM_PING_LEN];
	int w;

	if (!x)
		return false;
	km_msg_ping_encode(body, sizeof(body), x->nonce);
	w = km_frame_encode(buf, sizeof(buf), KM_FRAME_DIALBACK, body,
			    sizeof(body));
	if (w > 0)
		d->cb.raw_send(d->user, conn, buf, (size_t)w);
	dialer_done(d, x, KM_DIAL_CONNECTED, true);
	return true;
}

/* Closed before it connected: the dial failed. */
void km_dialback_closed(struct km_dialback *d, uint64_t conn)
{
	struct dialer *x = dialer_find(d, conn);

	if (x)
		dialer_done(d, x, KM_DIAL_REFUSED, false);
}

/* ---- frames ---- */

/* A neighbour we asked says how its dial went. */
static int on_result(struct km_dialback *d, const struct km_dialback_peer *p,
		     const uint8_t *body, size_t len)
{
	struct dial_ask *a;
	uint64_t nonce;
	uint8_t result;
	int rc = km_msg_dial_result_decode(body, len, &nonce, &result);

	if (rc < 0)
		return rc;
	if (result < sizeof(d->st.results) / sizeof(d->st.results[0]))
		d->st.results[result]++;
	if (d->deadline != 0 && nonce == d->nonce &&
	    (a = ask_of(d, p->conn)) && a->result == 0)
		a->result = result;
	return 0;
}

/* Our dial-back arrived, from the network's scope: we are reachable at
 * what the neighbour at its IP sees us at. */
static void on_dialback(struct km_dialback *d, const struct km_dialback_peer *p,
			uint64_t nonce, km_ms now)
{
	if (d->deadline != 0 && nonce == d->nonce &&
	    km_nat_scope(&p->remote) >= d->scope &&
	    has_address(d, dialled(d, &p->remote))) {
		d->st.ok++;
		verdict(d, KM_REACH_PUBLIC, dialled(d, &p->remote),
			"dial-back arrived", now);
	}
}

int km_dialback_on_frame(struct km_dialback *d,
			 const struct km_dialback_peer *from, uint8_t type,
			 const uint8_t *body, size_t len, km_ms now)
{
	uint64_t nonce;
	int rc;

	if (type == KM_FRAME_DIAL_RESULT)
		return on_result(d, from, body, len);
	rc = km_msg_ping_decode(body, len, &nonce);
	if (rc < 0)
		return rc;
	if (type == KM_FRAME_DIAL_ME)
		dial_for(d, from, nonce, now);
	else
		on_dialback(d, from, nonce, now);
	return 0;
}

/* ---- timers ---- */

/* UDP pings to a few outbound neighbours keep our NAT's mappings open. */
static void keepalives(struct km_dialback *d, km_ms now)
{
	struct km_dialback_peer p;
	uint64_t cursor = 0;
	int sent = 0;

	while (sent < KEEPALIVE_PEERS &&
	       d->cb.next_neighbour(d->user, &cursor, &p)) {
		struct km_addr udp = p.remote;

		if (!p.outbound || p.listen_port == 0)
			continue;
		udp.port = p.listen_port;
		d->cb.keepalive(d->user, &udp, now);
		d->st.keepalives++;
		sent++;
	}
}

static km_ms dialers_tick(struct km_dialback *d, km_ms now)
{
	km_ms wake = 0;

	for (size_t i = 0; i < KM_DIALERS_MAX; i++) {
		struct dialer *x = &d->dialers[i];

		if (x->conn != 0 && now >= x->deadline)
			dialer_done(d, x, KM_DIAL_TIMED_OUT, true);
		if (x->conn != 0)
			wake = km_ms_earliest(wake, x->deadline);
	}
	return wake;
}

km_ms km_dialback_tick(struct km_dialback *d, km_ms now)
{
	km_ms wake;

	if (d->deadline != 0 && now >= d->deadline)
		check_ended(d, now);
	wake = start_check(d, now);
	wake = km_ms_earliest(wake, dialers_tick(d, now));
	if (km_nat_reachability(d->nat) == KM_REACH_PRIVATE) {
		if (now >= d->next_keepalive) {
			keepalives(d, now);
			d->next_keepalive = now + KEEPALIVE_MS;
		}
		wake = km_ms_earliest(wake, d->next_keepalive);
	}
	return wake;
}

struct km_dialback_stats km_dialback_stats(const struct km_dialback *d)
{
	return d->st;
}
