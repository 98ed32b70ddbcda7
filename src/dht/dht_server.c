/* Answering KRPC queries: ping, find_node, get_peers and announce_peer. */
#include <string.h>

#include "dht/dht_internal.h"
#include "proto/err.h"

void dht_server_send_error(struct km_dht *d, const struct km_addr *to,
			   const struct km_krpc_msg *q, int code, const char *msg)
{
	struct km_krpc_msg e;

	km_krpc_init(&e, KM_KRPC_ERROR);
	memcpy(e.tid, q->tid, q->tid_len);
	e.tid_len = q->tid_len;
	e.error_code = code;
	strncpy(e.error_msg, msg, KM_KRPC_ERRMSG_MAX);
	d->stats.errors_sent++;
	dht_send_msg(d, to, &e);
}

static void reply_init(struct km_dht *d, struct km_krpc_msg *r,
		       const struct km_krpc_msg *q, const struct km_addr *from)
{
	km_krpc_init(r, KM_KRPC_RESPONSE);
	memcpy(r->tid, q->tid, q->tid_len);
	r->tid_len = q->tid_len;
	r->id = d->cfg.id;
	/* BEP 42: tell the requester how we see it. */
	r->has_ip = true;
	r->ip = *from;
}

/* Writes the k closest contacts of d's table to target, the asker left
 * out, as compact node info into buf, and returns the bytes written.  Only
 * nodes that have answered us go out (BEP 5's "good nodes"): one that
 * merely sent us a query may have forged its source address, and serving
 * it would let anyone plant contacts -- reflection targets -- in other
 * nodes' lookups.  With the asker among them, a reply carried only k - 1
 * nodes it could use: in a 20-node swarm, the one slot that could name a
 * node from the other half of the ID space, which the asker's full far
 * bucket left out. */
static size_t closest_compact(const struct km_dht *d, const struct km_id *target,
			      const struct km_id *asker, uint8_t *buf,
			      size_t cap)
{
	struct km_contact c[KM_DHT_SEND_BUF / KM_COMPACT_NODE4_LEN];
	size_t k = (size_t)d->cfg.table.k, n, used = 0;

	if (k > sizeof(c) / sizeof(c[0]))
		k = sizeof(c) / sizeof(c[0]);
	n = km_table_closest_served(d->table, target, asker, k, c);
	for (size_t i = 0; i < n; i++) {
		int w = km_compact_node_write(&c[i], buf + used, cap - used);

		if (w < 0)
			break;
		used += (size_t)w;
	}
	return used;
}

/* Fills `nodes` and/or `nodes6` as BEP 32 asks: the requester's own family
 * by default, or whatever `want` names, taken from the sibling table when it
 * is the other family. */
static void add_closest_nodes(struct km_dht *d, struct km_krpc_msg *r,
			      const struct km_krpc_msg *q,
			      const struct km_addr *from,
			      const struct km_id *target,
			      uint8_t buf4[static 256], uint8_t buf6[static 512])
{
	int want = q->want;
	struct km_dht *v4 = d->cfg.family == KM_AF_INET4 ? d : d->sibling;
	struct km_dht *v6 = d->cfg.family == KM_AF_INET6 ? d : d->sibling;

	if (!want)
		want = from->family == KM_AF_INET6 ? KM_WANT_N6 : KM_WANT_N4;
	if ((want & KM_WANT_N4) && v4) {
		r->nodes = buf4;
		r->nodes_len = closest_compact(v4, target, &q->id, buf4, 256);
	}
	if ((want & KM_WANT_N6) && v6) {
		r->nodes6 = buf6;
		r->nodes6_len = closest_compact(v6, target, &q->id, buf6, 512);
	}
}

static void answer_ping(struct km_dht *d, const struct km_addr *from,
			const struct km_krpc_msg *q)
{
	struct km_krpc_msg r;

	reply_init(d, &r, q, from);
	dht_send_msg(d, from, &r);
}

static void answer_find_node(struct km_dht *d, const struct km_addr *from,
			     const struct km_krpc_msg *q)
{
	struct km_krpc_msg r;
	uint8_t buf4[256], buf6[512];

	reply_init(d, &r, q, from);
	add_closest_nodes(d, &r, q, from, &q->target, buf4, buf6);
	dht_send_msg(d, from, &r);
}

static void answer_get_peers(struct km_dht *d, const struct km_addr *from,
			     const struct km_krpc_msg *q, km_ms now)
{
	struct km_krpc_msg r;
	uint8_t buf4[256], buf6[512];
	enum km_family fam = from->family;

	reply_init(d, &r, q, from);
	km_tokens_make(&d->tokens, from, r.token);
	r.token_len = KM_TOKEN_LEN;
	r.values_count = km_peers_get(d->peers, &q->info_hash, fam, r.values,
				      KM_DHT_REPLY_VALUES_MAX, now);
	/* Nodes go along with values too, so the requester's lookup can still
	 * converge on the closest nodes, which is where announces land. */
	add_closest_nodes(d, &r, q, from, &q->info_hash, buf4, buf6);
	dht_send_msg(d, from, &r);
}

static void answer_announce(struct km_dht *d, const struct km_addr *from,
			    const struct km_krpc_msg *q, km_ms now)
{
	struct km_krpc_msg r;
	struct km_addr peer = *from;

	if (!km_tokens_check(&d->tokens, from, q->token, q->token_len)) {
		dht_server_send_error(d, from, q, KM_KRPC_ERR_PROTOCOL, "bad token");
		return;
	}
	if (!q->implied_port)
		peer.port = q->port;
	if (km_peers_add(d->peers, &q->info_hash, &peer, now) < 0) {
		dht_server_send_error(d, from, q, KM_KRPC_ERR_SERVER, "peer store full");
		return;
	}
	reply_init(d, &r, q, from);
	dht_send_msg(d, from, &r);
}

void dht_server_handle_query(struct km_dht *d, const struct km_addr *from,
			     struct km_krpc_msg *m, km_ms now)
{
	d->stats.queries_in++;
	if (d->cfg.read_only)
		return; /* BEP 43: a read-only node does not answer */
	if (!m->ro && m->has_id && !dht_awaiting(d, now)) {
		/* BEP 43: read-only queriers stay out of routing tables, and
		 * a query without an ID (an unknown method's may lack one) has
		 * nothing to file; nor do we file anyone before we have
		 * joined (dht_awaiting()). */
		struct km_contact c = { .id = m->id, .addr = *from };

		dht_offer(d, &c, KM_SEEN_QUERY, 0, now);
	}
	switch (m->method) {
	case KM_KRPC_PING:
		answer_ping(d, from, m);
		break;
	case KM_KRPC_FIND_NODE:
		answer_find_node(d, from, m);
		break;
	case KM_KRPC_GET_PEERS:
		answer_get_peers(d, from, m, now);
		break;
	case KM_KRPC_ANNOUNCE_PEER:
		answer_announce(d, from, m, now);
		break;
	default:
		dht_server_send_error(d, from, m, KM_KRPC_ERR_METHOD, "Method Unknown");
		break;
	}
}
