/* External address voting and the reachability verdict (see nat.h). */
#include <string.h>

#include "net/nat.h"

void km_nat_init(struct km_nat *nat)
{
	memset(nat, 0, sizeof(*nat));
}

void km_nat_set_local(struct km_nat *nat, const struct km_addr *local,
		      size_t n)
{
	nat->nlocal = n < KM_NAT_LOCAL_MAX ? n : KM_NAT_LOCAL_MAX;
	memcpy(nat->local, local, nat->nlocal * sizeof(*local));
}

static bool unspecified(const struct km_addr *a)
{
	static const uint8_t zero[16];
	size_t len = km_addr_ip_len(a);

	return len == 0 || memcmp(a->ip, zero, len) == 0;
}

/* The voter's subnet: a /16 for IPv4, a /32 for IPv6. */
static bool same_prefix(const struct km_addr *a, const struct km_addr *b)
{
	size_t len = a->family == KM_AF_INET6 ? 4 : 2;

	return a->family == b->family && memcmp(a->ip, b->ip, len) == 0;
}

static bool active(const struct km_nat_vote *v, km_ms now)
{
	return v->voter.family != KM_AF_NONE && now - v->at < KM_NAT_VOTE_TTL_MS;
}

/* The voter's slot: its old vote, a free or expired slot, or the oldest. */
static struct km_nat_vote *slot_for(struct km_nat *nat,
				    const struct km_addr *voter, km_ms now)
{
	struct km_nat_vote *best = &nat->votes[0];

	for (size_t i = 0; i < KM_NAT_VOTERS_MAX; i++) {
		struct km_nat_vote *v = &nat->votes[i];

		if (v->voter.family != KM_AF_NONE && km_addr_ip_eq(&v->voter, voter))
			return v;
		if (!active(v, now))
			best = v;
		else if (active(best, now) && v->at < best->at)
			best = v;
	}
	return best;
}

/* True if an earlier active vote (index < i) came from v's prefix and
 * (when seen is given) voted for seen: each prefix counts once. */
static bool prefix_counted(const struct km_nat *nat, size_t i,
			   const struct km_addr *seen, km_ms now)
{
	for (size_t j = 0; j < i; j++) {
		const struct km_nat_vote *w = &nat->votes[j];

		if (active(w, now) &&
		    same_prefix(&w->voter, &nat->votes[i].voter) &&
		    (!seen || km_addr_ip_eq(&w->seen, seen)))
			return true;
	}
	return false;
}

/* How many voters (or prefixes, when by_prefix) back seen's IP. */
static size_t support(const struct km_nat *nat, const struct km_addr *seen,
		      bool by_prefix, km_ms now)
{
	size_t count = 0;

	for (size_t i = 0; i < KM_NAT_VOTERS_MAX; i++) {
		const struct km_nat_vote *v = &nat->votes[i];

		if (!active(v, now) || !km_addr_ip_eq(&v->seen, seen))
			continue;
		if (!by_prefix || !prefix_counted(nat, i, seen, now))
			count++;
	}
	return count;
}

static size_t electorate(const struct km_nat *nat, bool by_prefix, km_ms now)
{
	size_t count = 0;

	for (size_t i = 0; i < KM_NAT_VOTERS_MAX; i++)
		if (active(&nat->votes[i], now) &&
		    (!by_prefix || !prefix_counted(nat, i, NULL, now)))
			count++;
	return count;
}

/* The latest UDP-reported port among the votes for ip, or 0. */
static uint16_t latest_port(const struct km_nat *nat, const struct km_addr *ip,
			    km_ms now)
{
	const struct km_nat_vote *best = NULL;

	for (size_t i = 0; i < KM_NAT_VOTERS_MAX; i++) {
		const struct km_nat_vote *v = &nat->votes[i];

		if (active(v, now) && v->seen.port != 0 &&
		    km_addr_ip_eq(&v->seen, ip) && (!best || v->at >= best->at))
			best = v;
	}
	return best ? best->seen.port : 0;
}

/* The IP with a quorum and a strict majority, if there is one. */
static const struct km_addr *winner(const struct km_nat *nat, km_ms now)
{
	bool by_prefix = electorate(nat, true, now) >= KM_NAT_QUORUM;
	size_t total = electorate(nat, by_prefix, now);

	for (size_t i = 0; i < KM_NAT_VOTERS_MAX; i++) {
		const struct km_nat_vote *v = &nat->votes[i];
		size_t s;

		if (!active(v, now))
			continue;
		s = support(nat, &v->seen, by_prefix, now);
		if (s >= KM_NAT_QUORUM && 2 * s > total)
			return &v->seen;
	}
	return NULL;
}

bool km_nat_vote(struct km_nat *nat, const struct km_addr *voter,
		 const struct km_addr *seen, km_ms now)
{
	struct km_nat_vote *v;
	const struct km_addr *win;
	struct km_addr next;

	if (unspecified(voter) || unspecified(seen))
		return false;
	nat->votes_in++;
	v = slot_for(nat, voter, now);
	v->voter = *voter;
	v->seen = *seen;
	v->at = now;
	win = winner(nat, now);
	if (!win)
		return false; /* no verdict: keep what we had */
	next = *win;
	next.port = latest_port(nat, win, now);
	if (km_addr_eq(&next, &nat->external))
		return false;
	nat->external = next;
	nat->changes++;
	return true;
}

bool km_nat_set_dialback(struct km_nat *nat, enum km_reach r,
			 const struct km_addr *at)
{
	bool none = nat->external.family == KM_AF_NONE;

	if (r != KM_REACH_UNKNOWN && none && (!at || unspecified(at)))
		return false;
	if (r != KM_REACH_UNKNOWN && none) {
		nat->external = *at;
		nat->changes++;
	}
	nat->dialback = r;
	return true;
}

const struct km_addr *km_nat_external(const struct km_nat *nat)
{
	return nat->external.family == KM_AF_NONE ? NULL : &nat->external;
}

static bool is_local(const struct km_nat *nat, const struct km_addr *a)
{
	for (size_t i = 0; i < nat->nlocal; i++)
		if (km_addr_ip_eq(&nat->local[i], a))
			return true;
	return false;
}

enum km_reach km_nat_reachability(const struct km_nat *nat)
{
	if (nat->dialback != KM_REACH_UNKNOWN)
		return nat->dialback;
	if (!km_nat_external(nat))
		return KM_REACH_UNKNOWN;
	return is_local(nat, &nat->external) ? KM_REACH_PUBLIC : KM_REACH_PRIVATE;
}

enum km_reach km_nat_dialback(const struct km_nat *nat)
{
	return nat->dialback;
}

static enum km_scope scope4(const uint8_t *ip)
{
	if (ip[0] == 127)
		return KM_SCOPE_LOOPBACK;
	if (ip[0] == 10 || (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
	    (ip[0] == 192 && ip[1] == 168) || (ip[0] == 169 && ip[1] == 254) ||
	    (ip[0] == 100 && (ip[1] & 0xc0) == 64))
		return KM_SCOPE_PRIVATE;
	return KM_SCOPE_GLOBAL;
}

enum km_scope km_nat_scope(const struct km_addr *a)
{
	static const uint8_t lo6[16] = { [15] = 1 };
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (a->family == KM_AF_INET4)
		return scope4(a->ip);
	if (a->family != KM_AF_INET6)
		return KM_SCOPE_NONE;
	if (memcmp(a->ip, lo6, 16) == 0)
		return KM_SCOPE_LOOPBACK;
	if (memcmp(a->ip, mapped, 12) == 0)
		return scope4(a->ip + 12);
	if ((a->ip[0] & 0xfe) == 0xfc || (a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80))
		return KM_SCOPE_PRIVATE;
	return KM_SCOPE_GLOBAL;
}

const char *km_nat_reach_name(enum km_reach r)
{
	switch (r) {
	case KM_REACH_PUBLIC: return "public";
	case KM_REACH_PRIVATE: return "private";
	default: return "unknown";
	}
}
