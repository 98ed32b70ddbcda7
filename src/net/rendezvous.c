/* Finding a rendezvous: REACH to our neighbours, RENDEZVOUS about the
 * private ones (rendezvous.h). */
#include "net/rendezvous.h"

#include <stdlib.h>
#include <string.h>

#include "proto/err.h"
#include "proto/frame.h"

struct neighbour {
	uint64_t conn;
	struct km_peer peer;      /* as PUNCH_GO names it */
	bool relayed;
	bool is_private;          /* it sent REACH (1) */
};

/* The neighbours in the order of their conn ids, which is the order the
 * node opened their links in. */
struct km_rendezvous {
	struct km_rendezvous_callbacks cb;
	void *user;
	struct neighbour *nb;
	size_t count, cap;
	bool told_private;        /* what our neighbours last heard */
	unsigned long sent;
};

struct km_rendezvous *km_rendezvous_new(const struct km_rendezvous_callbacks *cb,
					void *user)
{
	struct km_rendezvous *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->cb = *cb;
	r->user = user;
	return r;
}

void km_rendezvous_del(struct km_rendezvous *r)
{
	if (!r)
		return;
	free(r->nb);
	free(r);
}

static void send_reach(struct km_rendezvous *r, uint64_t conn)
{
	uint8_t v = r->told_private;

	r->cb.send(r->user, conn, KM_FRAME_REACH, &v, 1);
}

/* Where conn is, or would go. */
static size_t position(const struct km_rendezvous *r, uint64_t conn)
{
	size_t i = r->count;

	while (i > 0 && r->nb[i - 1].conn >= conn)
		i--;
	return i;
}

static struct neighbour *find(struct km_rendezvous *r, uint64_t conn)
{
	size_t i = position(r, conn);

	return i < r->count && r->nb[i].conn == conn ? &r->nb[i] : NULL;
}

int km_rendezvous_up(struct km_rendezvous *r, uint64_t conn,
		     const struct km_peer *peer, bool relayed)
{
	size_t i = position(r, conn);

	if (i < r->count && r->nb[i].conn == conn)
		return 0;
	if (r->count == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct neighbour *nb = realloc(r->nb, cap * sizeof(*nb));

		if (!nb)
			return KM_ERR_NOMEM;
		r->nb = nb;
		r->cap = cap;
	}
	memmove(&r->nb[i + 1], &r->nb[i], (r->count - i) * sizeof(*r->nb));
	r->count++;
	r->nb[i] = (struct neighbour){ .conn = conn, .peer = *peer,
				       .relayed = relayed };
	if (r->told_private)
		send_reach(r, conn);
	return 0;
}

void km_rendezvous_gone(struct km_rendezvous *r, uint64_t conn)
{
	size_t i = position(r, conn);

	if (i == r->count || r->nb[i].conn != conn)
		return;
	memmove(&r->nb[i], &r->nb[i + 1], (r->count - i - 1) * sizeof(*r->nb));
	r->count--;
}

void km_rendezvous_set_private(struct km_rendezvous *r, bool private_now)
{
	if (private_now == r->told_private)
		return;
	r->told_private = private_now;
	for (size_t i = 0; i < r->count; i++)
		send_reach(r, r->nb[i].conn);
}

/* A private neighbour we can coordinate punches to: a direct link, and a
 * listening port to name in PUNCH_GO. */
static bool rendezvous_for(const struct neighbour *e)
{
	return e->is_private && !e->relayed && e->peer.addr.port != 0;
}

static void send_rendezvous(struct km_rendezvous *r, uint64_t conn,
			    const struct km_peer *peers, size_t count)
{
	uint8_t body[2 + KM_RENDEZVOUS_MAX * KM_PEER_ENTRY_MAX_LEN];
	int len;

	if (count == 0)
		return;
	len = km_msg_peer_list_encode(body, sizeof(body), peers, count);
	if (len > 0) {
		r->cb.send(r->user, conn, KM_FRAME_RENDEZVOUS, body, (size_t)len);
		r->sent++;
	}
}

/* Neighbour about turned private: it hears which other private nodes we
 * can reach, and they hear about it. */
static void advertise(struct km_rendezvous *r, const struct neighbour *about)
{
	struct km_peer peers[KM_RENDEZVOUS_MAX];
	size_t count = 0;

	for (size_t i = 0; i < r->count; i++) {
		const struct neighbour *e = &r->nb[i];

		if (e == about || !rendezvous_for(e))
			continue;
		send_rendezvous(r, e->conn, &about->peer, 1);
		if (count < KM_RENDEZVOUS_MAX)
			peers[count++] = e->peer;
	}
	send_rendezvous(r, about->conn, peers, count);
}

static void on_reach(struct km_rendezvous *r, uint64_t conn, bool private_now)
{
	struct neighbour *e = find(r, conn);
	bool was;

	if (!e)
		return;
	was = rendezvous_for(e);
	e->is_private = private_now;
	if (!was && rendezvous_for(e))
		advertise(r, e);
}

int km_rendezvous_on_frame(struct km_rendezvous *r, uint64_t conn,
			   uint8_t type, const uint8_t *body, size_t len,
			   km_ms now)
{
	struct km_peer peers[KM_RENDEZVOUS_MAX];
	int count;

	if (type == KM_FRAME_REACH) {
		if (len != 1)
			return len < 1 ? KM_ERR_TRUNCATED : KM_ERR_TRAILING;
		if (body[0] > 1)
			return KM_ERR_RANGE;
		on_reach(r, conn, body[0] == 1);
		return 0;
	}
	count = km_msg_peer_list_decode(body, len, peers, KM_RENDEZVOUS_MAX);
	if (count < 0)
		return count;
	for (int i = 0; i < count; i++)
		r->cb.learned(r->user, &peers[i], conn, now);
	return 0;
}

struct km_rendezvous_stats km_rendezvous_stats(const struct km_rendezvous *r)
{
	struct km_rendezvous_stats st = { .sent = r->sent };

	for (size_t i = 0; i < r->count; i++)
		st.private_now += r->nb[i].is_private;
	return st;
}
