#include "overlaysim.h"

#include <stdlib.h>
#include <string.h>

#include "dht/id.h"
#include "proto/frame.h"

/* A frame in flight (body != NULL or type != 0), or a node's timer. */
struct event {
	km_ms at;
	uint64_t seq;           /* FIFO among equal times: determinism */
	uint32_t from, to;      /* a timer uses `to` only */
	uint8_t type;           /* 0 for a timer or a link-down notice */
	bool down;              /* `to` notices its link to `from` is gone */
	size_t len;
	uint8_t *body;
};

struct link {
	uint32_t peer;
	km_ms lat;
	km_ms last;             /* latest arrival queued: TCP keeps order */
};

struct onode {
	struct osim *sim;
	uint32_t index;
	bool dead;
	struct km_id id;
	struct km_bcast *b;
	struct link *links;
	size_t nlinks, cap;
	km_ms armed;            /* earliest timer event queued, 0 if none */
	unsigned got;           /* deliveries of the message being measured */
	uint16_t hops;
	km_ms got_at;
};

struct osim {
	struct osim_config cfg;
	struct km_bcast_config bcfg;
	struct onode *nodes;
	struct km_prng prng;
	struct km_rng rng;
	km_ms now;
	struct event *heap;
	size_t heap_len, heap_cap;
	uint64_t seq;
	/* The message osim_broadcast is measuring. */
	uint8_t cur[KM_MSG_ID_LEN];
	bool measuring;
	unsigned long copies, payload_bytes, control_bytes;
	km_ms last_delivery, cur_start;
};

/* ---- The event queue: a binary min-heap on (at, seq) ---- */

static bool before(const struct event *a, const struct event *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void sift_up(struct event *h, size_t i, struct event e)
{
	for (; i > 0 && before(&e, &h[(i - 1) / 2]); i = (i - 1) / 2)
		h[i] = h[(i - 1) / 2];
	h[i] = e;
}

static void sift_down(struct event *h, size_t len, struct event e)
{
	size_t i = 0, c;

	while ((c = 2 * i + 1) < len) {
		if (c + 1 < len && before(&h[c + 1], &h[c]))
			c++;
		if (!before(&h[c], &e))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = e;
}

static void push(struct osim *s, struct event e)
{
	if (s->heap_len == s->heap_cap) {
		s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 4096;
		s->heap = realloc(s->heap, s->heap_cap * sizeof(*s->heap));
		if (!s->heap)
			abort(); /* a test harness: nothing sensible to do */
	}
	e.seq = s->seq++;
	sift_up(s->heap, s->heap_len++, e);
}

static struct event pop(struct osim *s)
{
	struct event top = s->heap[0];

	if (--s->heap_len > 0)
		sift_down(s->heap, s->heap_len, s->heap[s->heap_len]);
	return top;
}

/* ---- Nodes ---- */

/* After every call into a node: queue its next timer if it is earlier than
 * the one already queued.  Later queued timers then fire early, which is
 * harmless (a tick does only what is due). */
static void arm(struct onode *nd)
{
	struct osim *s = nd->sim;
	km_ms w = km_bcast_tick(nd->b, s->now);

	if (w == 0 || (nd->armed != 0 && nd->armed <= w))
		return;
	if (w < s->now)
		w = s->now;
	nd->armed = w;
	push(s, (struct event){ .at = w, .to = nd->index });
}

static struct link *find_link(const struct onode *nd, uint32_t peer)
{
	for (size_t i = 0; i < nd->nlinks; i++)
		if (nd->links[i].peer == peer)
			return &nd->links[i];
	return NULL;
}

/* When a frame sent now on l arrives: a lost segment is resent after an
 * RTO of max(200 ms, 2 RTT), and TCP delivers in order. */
static km_ms arrival(struct osim *s, struct link *l)
{
	km_ms at = s->now + l->lat;

	if (s->cfg.loss > 0 &&
	    (double)km_rng_below(&s->rng, 1000000) < s->cfg.loss * 1e6)
		at += l->lat * 4 > 200 ? l->lat * 4 : 200;
	if (at < l->last)
		at = l->last;
	l->last = at;
	return at;
}

static void on_send(void *user, uint64_t peer, uint8_t type,
		    const uint8_t *body, size_t len)
{
	struct onode *nd = user;
	struct osim *s = nd->sim;
	struct link *l = find_link(nd, (uint32_t)peer);
	struct event e = { .from = nd->index, .to = (uint32_t)peer,
			   .type = type, .len = len };

	if (!l)
		return; /* the link is gone */
	if (type == KM_FRAME_MESSAGE)
		s->payload_bytes += KM_FRAME_HEADER_LEN + len;
	else
		s->control_bytes += KM_FRAME_HEADER_LEN + len;
	e.at = arrival(s, l);
	if (len) {
		if (!(e.body = malloc(len)))
			abort();
		memcpy(e.body, body, len);
	}
	push(s, e);
}

static void on_deliver(void *user, const struct km_message *m)
{
	struct onode *nd = user;
	struct osim *s = nd->sim;

	if (!s->measuring || memcmp(m->id, s->cur, KM_MSG_ID_LEN) != 0)
		return;
	if (!nd->got++)
		nd->got_at = s->now - s->cur_start;
	nd->hops = m->hops;
	s->last_delivery = s->now;
}

static bool linked(const struct onode *a, uint32_t b)
{
	return a->index == b || find_link(a, b) != NULL;
}

static void add_half(struct onode *nd, uint32_t peer, km_ms lat)
{
	if (nd->nlinks == nd->cap) {
		nd->cap = nd->cap ? nd->cap * 2 : 16;
		nd->links = realloc(nd->links, nd->cap * sizeof(*nd->links));
		if (!nd->links)
			abort();
	}
	nd->links[nd->nlinks++] = (struct link){ .peer = peer, .lat = lat };
}

/* Node u dials cfg.out distinct random others it is not yet linked to. */
static void dial(struct osim *s, struct onode *u)
{
	km_ms span = s->cfg.lat_max - s->cfg.lat_min + 1;

	/* In a small network the others may all be linked already. */
	for (unsigned k = 0; k < s->cfg.out && u->nlinks + 1 < s->cfg.n;) {
		uint32_t v = (uint32_t)km_rng_below(&s->rng, s->cfg.n);
		km_ms lat;

		if (linked(u, v))
			continue;
		lat = s->cfg.lat_min + km_rng_below(&s->rng, span);
		add_half(u, v, lat);
		add_half(&s->nodes[v], u->index, lat);
		k++;
	}
}

/* Derived from the ID, not drawn from the rng, so that keys do not change
 * the simulated runs; fine for a simulation, never for a real node. */
void osim_node_key(const struct km_id *id, struct km_ident *key)
{
	uint8_t seed[KM_IDENT_SEED_LEN] = { 0 };

	memcpy(seed, id->b, KM_ID_LEN);
	if (km_ident_from_seed(key, seed) < 0)
		abort();
}

struct osim *osim_new(const struct osim_config *cfg)
{
	static const struct km_bcast_callbacks cb = { on_send, on_deliver };
	struct osim *s;

	if (cfg->n < 2 || (!cfg->edges && (cfg->out >= cfg->n ||
					    cfg->lat_max < cfg->lat_min)))
		return NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	s->cfg = *cfg;
	if (cfg->bcast)
		s->bcfg = *cfg->bcast;
	else
		km_bcast_config_default(&s->bcfg);
	km_prng_seed(&s->prng, cfg->seed);
	s->rng = km_prng_rng(&s->prng);
	s->now = cfg->start ? cfg->start : 1;
	if (!(s->nodes = calloc(cfg->n, sizeof(*s->nodes)))) {
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < cfg->n; i++) {
		struct onode *nd = &s->nodes[i];
		struct km_id id;
		struct km_ident key;

		km_id_random(&s->rng, &id);
		osim_node_key(&id, &key);
		*nd = (struct onode){ .sim = s, .index = (uint32_t)i, .id = id };
		nd->b = km_bcast_new(&id, &key, &s->bcfg, &cb, nd, &s->rng, s->now);
		if (!nd->b)
			abort();
	}
	for (size_t i = 0; i < cfg->n && !cfg->edges; i++)
		dial(s, &s->nodes[i]);
	for (size_t e = 0; e < cfg->nedges; e++) {
		const struct osim_edge *ed = &cfg->edges[e];

		if (ed->a >= cfg->n || ed->b >= cfg->n || ed->a == ed->b ||
		    linked(&s->nodes[ed->a], ed->b))
			continue;
		add_half(&s->nodes[ed->a], ed->b, ed->lat);
		add_half(&s->nodes[ed->b], ed->a, ed->lat);
	}
	for (size_t i = 0; i < cfg->n; i++)
		for (size_t k = 0; k < s->nodes[i].nlinks; k++)
			km_bcast_peer_up(s->nodes[i].b, s->nodes[i].links[k].peer,
					 s->now);
	return s;
}

void osim_del(struct osim *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->heap_len; i++)
		free(s->heap[i].body);
	for (size_t i = 0; i < s->cfg.n; i++) {
		km_bcast_del(s->nodes[i].b);
		free(s->nodes[i].links);
	}
	free(s->heap);
	free(s->nodes);
	free(s);
}

size_t osim_size(const struct osim *s) { return s->cfg.n; }
km_ms osim_now(const struct osim *s) { return s->now; }
bool osim_alive(const struct osim *s, size_t i) { return !s->nodes[i].dead; }
struct km_bcast *osim_bcast(struct osim *s, size_t i) { return s->nodes[i].b; }
const struct km_id *osim_id(const struct osim *s, size_t i) { return &s->nodes[i].id; }

static void drop_link(struct onode *nd, uint32_t peer)
{
	for (size_t i = 0; i < nd->nlinks; i++) {
		if (nd->links[i].peer == peer) {
			nd->links[i] = nd->links[--nd->nlinks];
			return;
		}
	}
}

void osim_kill(struct osim *s, size_t i)
{
	struct onode *u = &s->nodes[i];

	if (u->dead)
		return;
	u->dead = true;
	for (size_t k = 0; k < u->nlinks; k++) {
		struct onode *v = &s->nodes[u->links[k].peer];

		drop_link(v, u->index);
		km_bcast_peer_down(v->b, u->index, s->now);
		arm(v);
	}
	u->nlinks = 0;
}

void osim_kill_silent(struct osim *s, size_t i, km_ms detect_min,
		      km_ms detect_span)
{
	struct onode *u = &s->nodes[i];

	if (u->dead)
		return;
	u->dead = true;
	for (size_t k = 0; k < u->nlinks; k++) {
		km_ms at = s->now + detect_min +
			   (detect_span ? km_rng_below(&s->rng, detect_span) : 0);

		push(s, (struct event){ .at = at, .from = u->index,
					.to = u->links[k].peer, .down = true });
	}
	u->nlinks = 0;
}

void osim_link(struct osim *s, size_t a, size_t b, km_ms lat)
{
	struct onode *u = &s->nodes[a], *v = &s->nodes[b];

	if (a == b || u->dead || v->dead || linked(u, v->index))
		return;
	add_half(u, v->index, lat);
	add_half(v, u->index, lat);
	km_bcast_peer_up(u->b, v->index, s->now);
	km_bcast_peer_up(v->b, u->index, s->now);
	arm(u);
	arm(v);
}

void osim_unlink(struct osim *s, size_t a, size_t b)
{
	struct onode *u = &s->nodes[a], *v = &s->nodes[b];

	if (!find_link(u, v->index))
		return;
	drop_link(u, v->index);
	drop_link(v, u->index);
	km_bcast_peer_down(u->b, v->index, s->now);
	km_bcast_peer_down(v->b, u->index, s->now);
	arm(u);
	arm(v);
}

size_t osim_degree(const struct osim *s, size_t i)
{
	return s->nodes[i].nlinks;
}

bool osim_delivered(const struct osim *s, size_t i, km_ms *after,
		    unsigned *hops)
{
	const struct onode *nd = &s->nodes[i];

	if (!nd->got)
		return false;
	*after = nd->got_at;
	*hops = nd->hops;
	return true;
}

/* A neighbour's death, noticed late (osim_kill_silent). */
static void notice_down(struct osim *s, struct onode *nd, uint32_t peer)
{
	if (!find_link(nd, peer))
		return;
	drop_link(nd, peer);
	km_bcast_peer_down(nd->b, peer, s->now);
	if (s->cfg.link_down)
		s->cfg.link_down(s->cfg.user, nd->index, peer);
	arm(nd);
}

static void handle(struct osim *s, struct event *e)
{
	struct onode *nd = &s->nodes[e->to];

	if (nd->dead)
		return;
	if (e->down) {
		notice_down(s, nd, e->from);
		return;
	}
	if (e->type && s->nodes[e->from].dead)
		return;
	if (e->type == 0) {
		if (e->at != nd->armed)
			return; /* superseded by an earlier timer */
		nd->armed = 0;
	} else {
		if (s->measuring && e->type == KM_FRAME_MESSAGE &&
		    e->len >= KM_MSG_ID_LEN &&
		    memcmp(e->body, s->cur, KM_MSG_ID_LEN) == 0)
			s->copies++;
		km_bcast_on_frame(nd->b, e->from, e->type, e->body, e->len,
				  s->now);
	}
	arm(nd);
}

void osim_run_until(struct osim *s, km_ms until)
{
	while (s->heap_len > 0 && s->heap[0].at <= until) {
		struct event e = pop(s);

		s->now = e.at;
		handle(s, &e);
		free(e.body);
	}
	if (s->now < until)
		s->now = until;
}

static void report(const struct osim *s, km_ms start, struct osim_report *r)
{
	unsigned long hops_sum = 0;

	*r = (struct osim_report){ .copies = s->copies,
				   .payload_bytes = s->payload_bytes,
				   .control_bytes = s->control_bytes };
	for (size_t i = 0; i < s->cfg.n; i++) {
		const struct onode *nd = &s->nodes[i];

		if (nd->dead)
			continue;
		r->live++;
		r->reached += nd->got > 0;
		r->repeated += nd->got > 1;
		if (nd->got && nd->hops > r->hops_max)
			r->hops_max = nd->hops;
		hops_sum += nd->got ? nd->hops : 0;
	}
	if (r->live > 1)
		r->copies_per_node = (double)r->copies / (double)(r->live - 1);
	if (r->reached > 1)
		r->hops_mean = (double)hops_sum / (double)(r->reached - 1);
	r->last_delivery = s->last_delivery - start;
}

int osim_broadcast(struct osim *s, size_t origin, const uint8_t *payload,
		   size_t len, km_ms settle, struct osim_report *r)
{
	struct onode *o = &s->nodes[origin];
	km_ms start = s->now;
	int rv;

	for (size_t i = 0; i < s->cfg.n; i++)
		s->nodes[i].got = 0;
	s->copies = s->payload_bytes = s->control_bytes = 0;
	s->last_delivery = start;
	/* The ID is only known once published, and the origin delivers to
	 * itself inside publish: count that delivery by hand. */
	s->measuring = false;
	rv = km_bcast_publish(o->b, payload, len, s->cur, s->now);
	if (rv < 0)
		return rv;
	o->got = 1;
	o->hops = 0;
	o->got_at = 0;
	s->cur_start = start;
	s->measuring = true;
	arm(o);
	osim_run_until(s, start + settle);
	s->measuring = false;
	report(s, start, r);
	return 0;
}

double osim_flood_copies(const struct osim *s)
{
	size_t live = 0, deg = 0;

	for (size_t i = 0; i < s->cfg.n; i++) {
		if (s->nodes[i].dead)
			continue;
		live++;
		deg += s->nodes[i].nlinks;
	}
	return live > 1 ? (double)(deg - (live - 1)) / (double)(live - 1) : 0;
}
