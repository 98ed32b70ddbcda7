#include "vnet.h"

#include <stdlib.h>
#include <string.h>

#include "proto/krpc.h"

/* An event: a datagram in flight, or (data == NULL) a node's timer.  A
 * timer event whose gen no longer matches its node's is stale: the node was
 * ticked since and armed a newer one. */
struct packet {
	km_ms at;
	uint64_t seq;        /* FIFO among equal times: determinism */
	struct km_addr from, to;
	size_t len;
	uint8_t *data;
	size_t node;
	uint64_t gen;
};

/* fam[0] is IPv4 (10.x.y.z), fam[1] IPv6 (fd00::x:y:z); a node runs one
 * or both.  dht points at the first one it runs. */
struct vfamily {
	struct km_dht *dht;
	struct km_addr addr;
	struct vnode *node;
};

struct vnode {
	struct km_dht *dht;
	struct km_addr addr;
	struct vfamily fam[2];
	km_ms wake;
	uint64_t gen;
	bool dead;
	size_t index;
	struct vnet *net;
};

struct vnet {
	struct vnode *nodes;
	size_t n;
	struct km_prng prng;
	struct km_rng rng;
	km_ms now;
	struct packet *heap;
	size_t heap_len, heap_cap;
	uint64_t seq;
	unsigned loss_permille;
	struct vnet_lookup *waiting;   /* the lookup vnet_lookup waits for */
	uint64_t waiting_id;
	struct km_addr capture_to;     /* vnet_exchange: grab replies to this */
	uint8_t *capture_buf;
	size_t capture_cap, capture_len;
};

static void tick_node(struct vnet *v, struct vnode *node);

/* A query of the node's own (the ping that confirms a newcomer) is no
 * reply. */
static bool is_query(const uint8_t *buf, size_t len)
{
	struct km_krpc_msg m;

	return km_krpc_decode(buf, len, &m) >= 0 && m.type == KM_KRPC_QUERY;
}

static bool packet_before(const struct packet *a, const struct packet *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(struct vnet *v, struct packet p)
{
	size_t i;

	if (v->heap_len == v->heap_cap) {
		v->heap_cap = v->heap_cap ? v->heap_cap * 2 : 1024;
		v->heap = realloc(v->heap, v->heap_cap * sizeof(*v->heap));
	}
	i = v->heap_len++;
	while (i > 0 && packet_before(&p, &v->heap[(i - 1) / 2])) {
		v->heap[i] = v->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	v->heap[i] = p;
}

static struct packet heap_pop(struct vnet *v)
{
	struct packet top = v->heap[0], last = v->heap[--v->heap_len];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= v->heap_len)
			break;
		if (c + 1 < v->heap_len && packet_before(&v->heap[c + 1], &v->heap[c]))
			c++;
		if (!packet_before(&v->heap[c], &last))
			break;
		v->heap[i] = v->heap[c];
		i = c;
	}
	if (v->heap_len > 0)
		v->heap[i] = last;
	return top;
}

static size_t addr_index(const struct km_addr *a)
{
	const uint8_t *ip = a->family == KM_AF_INET6 ? a->ip + 12 : a->ip;

	return ((size_t)ip[1] << 16 | (size_t)ip[2] << 8 | ip[3]) - 1;
}

static unsigned fam_index(uint8_t family)
{
	return family == KM_AF_INET6 ? 1 : 0;
}

static bool vnet_owns(const struct km_addr *a)
{
	return a->family == KM_AF_INET6 ? a->ip[0] == 0xfd : a->ip[0] == 10;
}

static void on_send(void *user, const struct km_addr *to, const uint8_t *buf,
		    size_t len)
{
	struct vfamily *f = user;
	struct vnode *node = f->node;
	struct vnet *v = node->net;
	struct packet p = { .from = f->addr, .to = *to, .len = len };

	if (v->capture_buf && km_addr_eq(to, &v->capture_to)) {
		if (v->capture_len == 0 && len <= v->capture_cap &&
		    !is_query(buf, len)) {
			memcpy(v->capture_buf, buf, len);
			v->capture_len = len;
		}
		return;
	}
	if (v->loss_permille && km_rng_below(&v->rng, 1000) < v->loss_permille)
		return;
	p.at = v->now + 10 + km_rng_below(&v->rng, 90);
	p.seq = v->seq++;
	p.data = malloc(len);
	memcpy(p.data, buf, len);
	heap_push(v, p);
}

static void on_lookup_done(void *user, uint64_t id, const struct km_lookup *lk)
{
	struct vnet *v = ((struct vfamily *)user)->node->net;
	struct vnet_lookup *out = v->waiting;

	if (!out || id != v->waiting_id)
		return;
	out->done = true;
	out->nresults = km_lookup_results(lk, out->results, 32);
	out->npeers = km_lookup_peers(lk, out->peers, 64);
	out->stats = km_lookup_stats(lk);
}

static void family_new(struct vnet *v, struct vnode *node, unsigned f,
		       const struct km_dht_config *c)
{
	static const struct km_dht_callbacks cb = {
		.send = on_send, .lookup_done = on_lookup_done,
	};
	size_t i = node->index + 1;
	uint8_t ip[16] = { 0 };
	struct km_dht_config dc = *c;

	node->fam[f].node = node;
	if (f == 0) {
		ip[0] = 10;
		ip[1] = (uint8_t)(i >> 16);
		ip[2] = (uint8_t)(i >> 8);
		ip[3] = (uint8_t)i;
		km_addr_set_v4(&node->fam[f].addr, ip, 6881);
	} else {
		ip[0] = 0xfd;
		ip[13] = (uint8_t)(i >> 16);
		ip[14] = (uint8_t)(i >> 8);
		ip[15] = (uint8_t)i;
		km_addr_set_v6(&node->fam[f].addr, ip, 6881);
	}
	dc.family = f == 0 ? KM_AF_INET4 : KM_AF_INET6;
	node->fam[f].dht = km_dht_new(&dc, &cb, &node->fam[f], &v->rng, v->now);
}

struct vnet *vnet_new_families(size_t n, uint64_t seed,
			       const struct km_dht_config *cfg, bool v4,
			       bool v6)
{
	struct vnet *v = calloc(1, sizeof(*v));

	km_prng_seed(&v->prng, seed);
	v->rng = km_prng_rng(&v->prng);
	v->n = n;
	v->now = 1000;
	v->nodes = calloc(n, sizeof(*v->nodes));
	for (size_t i = 0; i < n; i++) {
		struct vnode *node = &v->nodes[i];
		struct km_dht_config c;
		unsigned first = v4 ? 0 : 1;

		if (cfg)
			c = *cfg;
		else
			km_dht_config_default(&c);
		km_id_random(&v->rng, &c.id);
		node->net = v;
		node->index = i;
		if (v4)
			family_new(v, node, 0, &c);
		if (v6)
			family_new(v, node, 1, &c);
		if (v4 && v6)
			km_dht_set_sibling(node->fam[0].dht, node->fam[1].dht);
		node->dht = node->fam[first].dht;
		node->addr = node->fam[first].addr;
		tick_node(v, node);
	}
	return v;
}

struct vnet *vnet_new(size_t n, uint64_t seed, const struct km_dht_config *cfg)
{
	bool v6 = cfg && cfg->family == KM_AF_INET6;

	return vnet_new_families(n, seed, cfg, !v6, v6);
}

void vnet_del(struct vnet *v)
{
	for (size_t i = 0; i < v->n; i++)
		for (unsigned f = 0; f < 2; f++)
			km_dht_del(v->nodes[i].fam[f].dht);
	while (v->heap_len > 0)
		free(heap_pop(v).data);
	free(v->heap);
	free(v->nodes);
	free(v);
}

struct km_dht *vnet_node(struct vnet *v, size_t i) { return v->nodes[i].dht; }
const struct km_addr *vnet_addr(const struct vnet *v, size_t i) { return &v->nodes[i].addr; }
struct km_dht *vnet_node_in(struct vnet *v, size_t i, enum km_family family)
{
	return v->nodes[i].fam[fam_index(family)].dht;
}
const struct km_addr *vnet_addr_in(const struct vnet *v, size_t i,
				   enum km_family family)
{
	return &v->nodes[i].fam[fam_index(family)].addr;
}
size_t vnet_size(const struct vnet *v) { return v->n; }
km_ms vnet_now(const struct vnet *v) { return v->now; }
struct km_rng *vnet_rng(struct vnet *v) { return &v->rng; }

static void tick_node(struct vnet *v, struct vnode *node)
{
	struct packet timer = { .node = node->index, .gen = ++node->gen };

	node->wake = 0;
	for (unsigned f = 0; f < 2; f++)
		if (node->fam[f].dht)
			node->wake = km_ms_earliest(node->wake,
				km_dht_tick(node->fam[f].dht, v->now));
	timer.at = node->wake > v->now ? node->wake : v->now + 1;
	timer.seq = v->seq++;
	heap_push(v, timer);
}

static void deliver(struct vnet *v, struct packet *p)
{
	size_t i = addr_index(&p->to);

	if (!p->data) {
		struct vnode *node = &v->nodes[p->node];

		if (p->gen == node->gen && !node->dead)
			tick_node(v, node);
		return;
	}
	if (vnet_owns(&p->to) && i < v->n && !v->nodes[i].dead &&
	    v->nodes[i].fam[fam_index(p->to.family)].dht) {
		km_dht_receive(v->nodes[i].fam[fam_index(p->to.family)].dht,
			       &p->from, p->data, p->len, v->now);
		tick_node(v, &v->nodes[i]);
	}
	free(p->data);
}

void vnet_set_loss(struct vnet *v, unsigned permille)
{
	v->loss_permille = permille;
}

void vnet_set_dead(struct vnet *v, size_t i, bool dead)
{
	v->nodes[i].dead = dead;
	if (!dead)
		tick_node(v, &v->nodes[i]);
}

void vnet_run_until(struct vnet *v, km_ms until)
{
	while (v->heap_len > 0 && v->heap[0].at <= until &&
	       !(v->waiting && v->waiting->done)) {
		struct packet p = heap_pop(v);

		if (p.at > v->now)
			v->now = p.at;
		deliver(v, &p);
	}
	if (v->now < until && !(v->waiting && v->waiting->done))
		v->now = until;
}

void vnet_join(struct vnet *v, size_t i, size_t via)
{
	km_dht_ping_addr(v->nodes[i].dht, &v->nodes[via].addr, v->now);
	tick_node(v, &v->nodes[i]);
}

void vnet_join_in(struct vnet *v, size_t i, size_t via, enum km_family family)
{
	unsigned f = fam_index(family);

	km_dht_ping_addr(v->nodes[i].fam[f].dht, &v->nodes[via].fam[f].addr,
			 v->now);
	tick_node(v, &v->nodes[i]);
}

bool vnet_lookup(struct vnet *v, size_t from, const struct km_id *target,
		 enum km_lookup_kind kind, struct vnet_lookup *out, km_ms limit)
{
	return vnet_lookup_in(v, from, v->nodes[from].addr.family, target,
			      kind, out, limit);
}

bool vnet_lookup_in(struct vnet *v, size_t from, enum km_family family,
		    const struct km_id *target, enum km_lookup_kind kind,
		    struct vnet_lookup *out, km_ms limit)
{
	memset(out, 0, sizeof(*out));
	v->waiting = out;
	if (km_dht_lookup(v->nodes[from].fam[fam_index(family)].dht, target,
			  kind, NULL, 0, &v->waiting_id, v->now) < 0) {
		v->waiting = NULL;
		return false;
	}
	tick_node(v, &v->nodes[from]);
	if (!out->done)
		vnet_run_until(v, v->now + limit);
	v->waiting = NULL;
	return out->done;
}

static const struct km_id *sort_target;

static int by_distance(const void *a, const void *b)
{
	return km_id_cmp_distance(sort_target, a, b);
}

size_t vnet_true_closest(const struct vnet *v, const struct km_id *target,
			 size_t except, size_t k, struct km_id *out)
{
	struct km_id *all = malloc(v->n * sizeof(*all));
	size_t live = 0;

	for (size_t i = 0; i < v->n; i++)
		if (!v->nodes[i].dead && i != except)
			all[live++] = *km_dht_id(v->nodes[i].dht);
	sort_target = target;
	qsort(all, live, sizeof(*all), by_distance);
	if (k > live)
		k = live;
	memcpy(out, all, k * sizeof(*out));
	free(all);
	return k;
}

size_t vnet_exchange(struct vnet *v, size_t i, const struct km_addr *from,
		     const uint8_t *pkt, size_t len, uint8_t *buf, size_t cap)
{
	v->capture_to = *from;
	v->capture_buf = buf;
	v->capture_cap = cap;
	v->capture_len = 0;
	km_dht_receive(v->nodes[i].fam[fam_index(from->family)].dht ?
		       v->nodes[i].fam[fam_index(from->family)].dht :
		       v->nodes[i].dht, from, pkt, len, v->now);
	v->capture_buf = NULL;
	return v->capture_len;
}

bool vnet_same_ids(const struct km_lookup_result *r, size_t nr,
		   const struct km_id *truth, size_t nt)
{
	if (nr != nt)
		return false;
	for (size_t i = 0; i < nt; i++)
		if (!km_id_eq(&r[i].c.id, &truth[i]))
			return false;
	return true;
}
