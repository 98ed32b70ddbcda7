/* Flood and amplification defences around the KRPC server: per-source
 * query limits (ratelimit.c) on the way in, and on the way out a cap on
 * what a reply to an unverified source may cost the network.
 *
 * Why: UDP source addresses are forged for free.  A node that answers a
 * 100-byte find_node with 400 bytes is a 4x amplifier pointed at whoever
 * the forger names.  A source that has answered one of our queries (by
 * transaction id, so it saw our packet) is a real endpoint; until then a
 * reply carries at most `amplification` times the query's bytes, and all
 * such replies together at most unverified_reply_bps. */
#include "dht/bep42.h"
#include "dht/dht_internal.h"

bool dht_guard_receive(struct km_dht *d, const struct km_addr *from,
		       const struct km_krpc_msg *m, int decode_rc, km_ms now)
{
	/* Well-formed replies and errors pass: they are matched against our
	 * own transactions.  Queries, and anything that does not decode, cost
	 * a token, so garbage floods earn bans too. */
	if (decode_rc >= 0 && m->type != KM_KRPC_QUERY)
		return true;
	return km_ratelimit_query(d->rl, from, now) == KM_RL_PASS;
}

/* Drops enough trailing values or nodes to shed `excess` bytes (a little
 * more: bencode length prefixes shrink too).  False if nothing is left to
 * drop. */
static bool trim(struct km_krpc_msg *m, size_t excess)
{
	if (m->values_count > 0) {
		size_t n = excess / 8 + 1; /* a compact peer costs 8 or 21 */

		m->values_count -= n < m->values_count ? n : m->values_count;
		return true;
	}
	if (m->nodes6_len > 0) {
		size_t n = (excess / KM_COMPACT_NODE6_LEN + 1) * KM_COMPACT_NODE6_LEN;

		m->nodes6_len -= n < m->nodes6_len ? n : m->nodes6_len;
		return true;
	}
	if (m->nodes_len > 0) {
		size_t n = (excess / KM_COMPACT_NODE4_LEN + 1) * KM_COMPACT_NODE4_LEN;

		m->nodes_len -= n < m->nodes_len ? n : m->nodes_len;
		return true;
	}
	return false;
}

static bool within_budget(struct km_dht *d, size_t len, km_ms now)
{
	uint64_t rate = d->cfg.unverified_reply_bps;
	km_ms dt = now > d->budget_refilled ? now - d->budget_refilled : 0;

	if (rate == 0)
		return true;
	if (dt > KM_SECONDS(1))
		dt = KM_SECONDS(1); /* the bucket holds one second's worth */
	d->unverified_budget += dt * rate / 1000;
	if (d->unverified_budget > rate)
		d->unverified_budget = rate;
	d->budget_refilled = now;
	if (d->unverified_budget < len)
		return false;
	d->unverified_budget -= len;
	return true;
}

bool dht_guard_reply(struct km_dht *d, const struct km_addr *to,
		     struct km_krpc_msg *m, uint8_t *out, size_t out_cap, int *len)
{
	size_t cap = d->in_len * d->cfg.amplification;
	bool trimmed = false;

	/* Local addresses are exempt, as from the subnet caps: a forger that
	 * can put packets on our LAN or loopback is not an amplification
	 * threat to the Internet. */
	if (d->in_len == 0 || d->cfg.amplification == 0 ||
	    km_addr_is_local(to) || km_ratelimit_verified(d->rl, to))
		return true;
	while ((size_t)*len > cap && trim(m, (size_t)*len - cap)) {
		trimmed = true;
		*len = km_krpc_encode(m, out, out_cap);
		if (*len < 0)
			break;
	}
	d->stats.replies_trimmed += trimmed;
	if (*len < 0 || (size_t)*len > cap ||
	    !within_budget(d, (size_t)*len, d->in_now)) {
		d->stats.replies_unsent++;
		return false;
	}
	return true;
}
