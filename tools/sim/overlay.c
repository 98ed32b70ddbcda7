#include "overlay.h"

#include <stdio.h>
#include <stdlib.h>

#include "net/connmgr.h"

/* A link the connection managers know; conn id = its index. */
struct olink {
	uint32_t a, b;          /* a dialed b */
	bool up;
};

struct onlinks {
	uint32_t *v;            /* indexes into ov->links, up or not */
	size_t n, cap;
};

struct overlay {
	struct sim *w;
	struct osim *os;
	struct km_connmgr **cm;
	struct onlinks *mine;
	struct olink *links;
	size_t nlinks, cap;
	unsigned long failed;
	/* Nodes that lost an outbound link and should dial again. */
	uint32_t *redial;
	size_t nredial;
	bool *queued;
};

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	*cap = *cap ? *cap * 2 : 16;
	if (!(p = realloc(p, *cap * size))) {
		fputs("dht-sim: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

static size_t add_link(struct overlay *ov, uint32_t a, uint32_t b)
{
	size_t e = ov->nlinks++;

	ov->links = grow(ov->links, &ov->cap, ov->nlinks, sizeof(*ov->links));
	ov->links[e] = (struct olink){ .a = a, .b = b };
	for (int side = 0; side < 2; side++) {
		struct onlinks *m = &ov->mine[side ? b : a];

		m->v = grow(m->v, &m->cap, m->n + 1, sizeof(*m->v));
		m->v[m->n++] = (uint32_t)e;
	}
	return e;
}

static void forget(struct overlay *ov, uint32_t node, size_t e)
{
	struct onlinks *m = &ov->mine[node];

	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i] == e) {
			m->v[i] = m->v[--m->n];
			return;
		}
	}
}

static void queue_redial(struct overlay *ov, uint32_t node)
{
	if (ov->queued[node])
		return;
	ov->queued[node] = true;
	ov->redial[ov->nredial++] = node;
}

/* Link e ends for both ends' connection managers (and the overlay, if it
 * was up); a dialer that lost a neighbour will dial again. */
static void close_link(struct overlay *ov, size_t e, km_ms now)
{
	struct olink *l = &ov->links[e];
	bool was_up = l->up;

	l->up = false;
	km_connmgr_closed(ov->cm[l->a], e, now);
	km_connmgr_closed(ov->cm[l->b], e, now);
	forget(ov, l->a, e);
	forget(ov, l->b, e);
	if (was_up && ov->os)
		osim_unlink(ov->os, l->a, l->b);
	if (was_up)
		queue_redial(ov, l->a);
}

/* One end's verdict on the other's HELLO; false if the link is closed. */
static bool verdict(struct overlay *ov, size_t e, uint32_t self,
		    uint32_t peer, km_ms now)
{
	uint64_t other = 0;
	const struct km_id *id = km_dht_id(ov->w->nodes[peer].dht);

	switch (km_connmgr_hello(ov->cm[self], e, id, now, &other)) {
	case KM_CM_ACCEPT:
		return true;
	case KM_CM_REPLACE:
	case KM_CM_EVICT:
		close_link(ov, (size_t)other, now);
		return true;
	default:
		close_link(ov, e, now);
		return false;
	}
}

static void dial(struct overlay *ov, uint32_t a, km_ms now)
{
	struct km_contact c;
	const struct km_table *t = km_dht_table(ov->w->nodes[a].dht);

	while (km_connmgr_next_dial(ov->cm[a], t, now, &c)) {
		size_t b = sim_addr_index(ov->w, &c.addr), e;
		struct km_addr aa;

		if (b == SIZE_MAX)
			break; /* not a simulated node: cannot happen */
		e = add_link(ov, a, (uint32_t)b);
		km_connmgr_opened(ov->cm[a], e, &c.addr, true, &c.id, now);
		sim_addr(a, &aa);
		if (ov->w->nodes[b].state != SIM_LIVE || !ov->cm[b] ||
		    km_connmgr_opened(ov->cm[b], e, &aa, false, NULL, now) < 0) {
			ov->failed++;
			km_connmgr_closed(ov->cm[a], e, now);
			forget(ov, a, e);
			forget(ov, (uint32_t)b, e);
			continue;
		}
		if (!verdict(ov, e, (uint32_t)b, a, now) ||
		    !verdict(ov, e, a, (uint32_t)b, now))
			continue;
		ov->links[e].up = true;
		if (ov->os)
			osim_link(ov->os, a, b, sim_rtt_ms(ov->w, a, b) / 2);
	}
}

static void run_redials(struct overlay *ov, km_ms now)
{
	while (ov->nredial > 0) {
		uint32_t a = ov->redial[--ov->nredial];

		ov->queued[a] = false;
		if (ov->w->nodes[a].state == SIM_LIVE)
			dial(ov, a, now);
	}
}

static void on_link_down(void *user, size_t node, size_t peer)
{
	struct overlay *ov = user;
	struct onlinks *m = &ov->mine[node];
	km_ms now = osim_now(ov->os);

	for (size_t i = 0; i < m->n; i++) {
		struct olink *l = &ov->links[m->v[i]];

		if (l->up && (l->a == peer || l->b == peer)) {
			size_t e = m->v[i];

			/* The dead end's manager is gone with it: only this
			 * end closes, and redials if it was the dialer. */
			l->up = false;
			km_connmgr_closed(ov->cm[node], e, now);
			forget(ov, (uint32_t)node, e);
			if (l->a == node)
				queue_redial(ov, (uint32_t)node);
			break;
		}
	}
	run_redials(ov, now);
}

static struct osim *make_osim(struct overlay *ov,
			      const struct km_bcast_config *bc)
{
	struct osim_edge *edges = calloc(ov->nlinks + 1, sizeof(*edges));
	struct osim_config cfg = {
		.n = ov->w->n, .seed = ov->w->opt.seed ^ 0x6f76u, .bcast = bc,
		.edges = edges, .loss = ov->w->opt.loss, .start = ov->w->now,
		.link_down = on_link_down, .user = ov,
	};
	struct osim *os;

	if (!edges)
		return NULL;
	for (size_t e = 0; e < ov->nlinks; e++) {
		const struct olink *l = &ov->links[e];

		if (l->up)
			edges[cfg.nedges++] = (struct osim_edge){
				l->a, l->b, sim_rtt_ms(ov->w, l->a, l->b) / 2 };
	}
	os = osim_new(&cfg);
	free(edges);
	return os;
}

struct overlay *overlay_new(struct sim *w, const struct km_bcast_config *bc)
{
	struct overlay *ov = calloc(1, sizeof(*ov));
	struct km_connmgr_config cfg;

	if (!ov)
		return NULL;
	ov->w = w;
	ov->cm = calloc(w->n, sizeof(*ov->cm));
	ov->mine = calloc(w->n, sizeof(*ov->mine));
	ov->redial = calloc(w->n, sizeof(*ov->redial));
	ov->queued = calloc(w->n, sizeof(*ov->queued));
	if (!ov->cm || !ov->mine || !ov->redial || !ov->queued) {
		overlay_del(ov);
		return NULL;
	}
	km_connmgr_config_default(&cfg);
	cfg.max_out = (size_t)w->opt.max_out;
	for (size_t i = 0; i < w->n; i++) {
		if (w->nodes[i].state != SIM_LIVE)
			continue;
		ov->cm[i] = km_connmgr_new(km_dht_id(w->nodes[i].dht), &cfg,
					   &w->rng);
		if (!ov->cm[i]) {
			overlay_del(ov);
			return NULL;
		}
	}
	for (size_t i = 0; i < w->n; i++)
		if (ov->cm[i])
			dial(ov, (uint32_t)i, w->now);
	run_redials(ov, w->now); /* dialers whose link was replaced */
	if (!(ov->os = make_osim(ov, bc))) {
		overlay_del(ov);
		return NULL;
	}
	return ov;
}

void overlay_del(struct overlay *ov)
{
	if (!ov)
		return;
	osim_del(ov->os);
	for (size_t i = 0; ov->cm && i < ov->w->n; i++)
		km_connmgr_del(ov->cm[i]);
	for (size_t i = 0; ov->mine && i < ov->w->n; i++)
		free(ov->mine[i].v);
	free(ov->cm);
	free(ov->mine);
	free(ov->links);
	free(ov->redial);
	free(ov->queued);
	free(ov);
}

struct osim *overlay_osim(struct overlay *ov) { return ov->os; }

unsigned long overlay_failed_dials(const struct overlay *ov)
{
	return ov->failed;
}

static uint32_t root(uint32_t *up, uint32_t i)
{
	while (up[i] != i)
		i = up[i] = up[up[i]];
	return i;
}

size_t overlay_components(const struct overlay *ov)
{
	uint32_t *up = malloc(ov->w->n * sizeof(*up));
	size_t comps = 0;

	if (!up)
		return 0;
	for (size_t i = 0; i < ov->w->n; i++)
		up[i] = (uint32_t)i;
	for (size_t e = 0; e < ov->nlinks; e++) {
		const struct olink *l = &ov->links[e];

		if (l->up && osim_alive(ov->os, l->a) && osim_alive(ov->os, l->b))
			up[root(up, l->a)] = root(up, l->b);
	}
	for (size_t i = 0; i < ov->w->n; i++)
		comps += osim_alive(ov->os, i) && root(up, (uint32_t)i) == i;
	free(up);
	return comps;
}

size_t overlay_links(const struct overlay *ov, size_t *max_per_node)
{
	size_t total = 0, max = 0;

	for (size_t i = 0; i < ov->w->n; i++) {
		size_t d = osim_degree(ov->os, i);

		total += d;
		if (d > max)
			max = d;
	}
	*max_per_node = max;
	return total / 2;
}
