/* The event loop of the simulated world: datagrams, timers and actions. */
#include "sim.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ev_kind { EV_TIMER, EV_DGRAM, EV_ACTION };

/* One event.  Ties in time are broken by seq, the order of scheduling, so a
 * run never depends on how the heap happens to arrange equal keys. */
struct sim_event {
	km_ms at;
	uint64_t seq;
	uint8_t kind;
	uint16_t gen;      /* datagram: the receiver's generation when sent */
	uint32_t node;     /* timer: its node; datagram: receiver; action: arg */
	uint32_t from;     /* datagram: sender */
	uint32_t len;
	union {
		uint8_t *data;
		sim_action action;
	} u;
};

static bool before(const struct sim_event *a, const struct sim_event *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void push(struct sim *s, struct sim_event e)
{
	size_t i;

	if (s->heap_len == s->heap_cap) {
		size_t cap = s->heap_cap ? s->heap_cap * 2 : 4096;
		struct sim_event *h = realloc(s->heap, cap * sizeof(*h));

		if (!h) {
			fprintf(stderr, "dht-sim: out of memory (event heap)\n");
			exit(1);
		}
		s->heap = h;
		s->heap_cap = cap;
	}
	e.seq = s->seq++;
	i = s->heap_len++;
	while (i > 0 && before(&e, &s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = e;
}

static struct sim_event pop(struct sim *s)
{
	struct sim_event top = s->heap[0], last = s->heap[--s->heap_len];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->heap_len)
			break;
		if (c + 1 < s->heap_len && before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->heap_len > 0)
		s->heap[i] = last;
	return top;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint32_t sim_rtt_ms(const struct sim *s, size_t a, size_t b)
{
	uint64_t lo = a < b ? a : b, hi = a < b ? b : a;

	return 20 + (uint32_t)(mix64(s->opt.seed ^ mix64(lo << 32 | hi)) % 281);
}

void sim_addr(size_t i, struct km_addr *out)
{
	/* The low byte of i + 1 varies fastest and picks the /16, so that
	 * the nodes spread over 256 /16s and ~N/256 /24s, as on the
	 * Internet, and the connection manager's per-/16 cap bites only as
	 * it would there. */
	uint8_t ip[4] = { 10, (uint8_t)(i + 1), (uint8_t)((i + 1) >> 8),
			  (uint8_t)(((i + 1) >> 16) + 1) };

	km_addr_set_v4(out, ip, 6881);
}

void sim_node_addr(const struct sim *s, size_t i, struct km_addr *out)
{
	sim_addr(i, out);
	out->port = (uint16_t)(out->port + s->nodes[i].gen);
}

size_t sim_addr_index(const struct sim *s, const struct km_addr *a)
{
	size_t i;

	if (a->family != KM_AF_INET4 || a->ip[0] != 10 || a->port < 6881)
		return SIZE_MAX;
	if (a->ip[3] == 0)
		return SIZE_MAX;
	i = ((size_t)(a->ip[3] - 1) << 16 | (size_t)a->ip[2] << 8 | a->ip[1]);
	if (i < 1 || i > s->n || a->port - 6881 != s->nodes[i - 1].gen)
		return SIZE_MAX; /* no such node, or one that has left */
	return i - 1;
}

uint64_t sim_pick(struct sim *s, uint64_t n)
{
	struct km_rng r = km_prng_rng(&s->world);

	return km_rng_below(&r, n);
}

double sim_uniform(struct sim *s)
{
	return (double)(km_prng_next(&s->world) >> 11) / 9007199254740992.0;
}

void sim_at(struct sim *s, km_ms at, sim_action action, uint32_t arg)
{
	push(s, (struct sim_event){ .at = at, .kind = EV_ACTION, .node = arg,
				    .u.action = action });
}

/* Ticks node i and keeps exactly one live timer event for it: a new event
 * only when the node wants to wake earlier than the one already queued. An
 * event found later than the node's timer_at is stale and skipped. */
static void tick(struct sim *s, size_t i)
{
	struct sim_node *nd = &s->nodes[i];
	km_ms wake = km_dht_tick(nd->dht, s->now);

	if (wake <= s->now)
		wake = s->now + 1;
	if (nd->timer_at && nd->timer_at <= wake && nd->timer_at > s->now)
		return;
	nd->timer_at = wake;
	push(s, (struct sim_event){ .at = wake, .kind = EV_TIMER,
				    .node = (uint32_t)i });
}

void sim_poke(struct sim *s, size_t i)
{
	if (s->nodes[i].state == SIM_LIVE)
		tick(s, i);
}

static void on_send(void *user, const struct km_addr *to, const uint8_t *buf,
		    size_t len)
{
	struct sim_node *nd = user;
	struct sim *s = nd->sim;
	size_t from = (size_t)(nd - s->nodes), dst = sim_addr_index(s, to);
	struct sim_event e = { .kind = EV_DGRAM, .from = (uint32_t)from,
			       .len = (uint32_t)len };

	s->packets++;
	/* A joiner's first datagram is its join query (sim_join()). */
	if (!s->join_lost && s->opt.lose_join && from == s->opt.lose_join) {
		s->join_lost = true;
		s->packets_lost++;
		return;
	}
	if (dst == SIZE_MAX || (s->opt.loss > 0 && sim_uniform(s) < s->opt.loss)) {
		s->packets_lost++;
		return;
	}
	e.node = (uint32_t)dst;
	e.gen = s->nodes[dst].gen;
	e.at = s->now + sim_rtt_ms(s, from, dst) / 2;
	e.u.data = malloc(len);
	if (!e.u.data) {
		fprintf(stderr, "dht-sim: out of memory (packet)\n");
		exit(1);
	}
	memcpy(e.u.data, buf, len);
	push(s, e);
}

static void on_lookup_done(void *user, uint64_t id, const struct km_lookup *lk)
{
	struct sim_node *nd = user;
	struct sim *s = nd->sim;

	if (s->lookup_done)
		s->lookup_done(s, (size_t)(nd - s->nodes), id, lk);
}

static void config(const struct sim *s, struct km_dht_config *c)
{
	km_dht_config_default(c);
	c->family = KM_AF_INET4;
	c->table.k = s->opt.k;
	c->lookup.k = s->opt.k;
	c->lookup.alpha = s->opt.alpha;
}

struct sim *sim_new(const struct sim_options *opt)
{
	static const struct km_dht_callbacks cb = {
		.send = on_send, .lookup_done = on_lookup_done,
	};
	struct sim *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->heap_baseline = sim_heap_bytes();
	s->opt = *opt;
	s->n = opt->nodes;
	km_prng_seed(&s->prng, opt->seed);
	km_prng_seed(&s->world, opt->seed ^ 0x5157u);
	s->rng = km_prng_rng(&s->prng);
	s->now = 1000;
	s->nodes = calloc(s->n, sizeof(*s->nodes));
	if (!s->nodes) {
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < s->n; i++) {
		struct km_dht_config c;

		config(s, &c);
		km_id_random(&s->rng, &c.id);
		s->nodes[i].sim = s;
		s->nodes[i].dht = km_dht_new(&c, &cb, &s->nodes[i], &s->rng, s->now);
		if (!s->nodes[i].dht) {
			sim_del(s);
			return NULL;
		}
	}
	return s;
}

void sim_del(struct sim *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		km_dht_del(s->nodes[i].dht);
	while (s->heap_len > 0) {
		struct sim_event e = pop(s);

		if (e.kind == EV_DGRAM)
			free(e.u.data);
	}
	free(s->heap);
	free(s->nodes);
	free(s);
}

static void run_event(struct sim *s, struct sim_event *e)
{
	struct sim_node *nd;

	switch (e->kind) {
	case EV_ACTION:
		e->u.action(s, e->node);
		return;
	case EV_TIMER:
		nd = &s->nodes[e->node];
		if (nd->state == SIM_LIVE && nd->timer_at == e->at) {
			nd->timer_at = 0;
			tick(s, e->node);
		}
		return;
	case EV_DGRAM:
		nd = &s->nodes[e->node];
		if (nd->state == SIM_LIVE && nd->gen == e->gen) {
			struct km_addr from;

			sim_node_addr(s, e->from, &from);
			km_dht_receive(nd->dht, &from, e->u.data, e->len, s->now);
			tick(s, e->node);
		}
		free(e->u.data);
		return;
	}
}

void sim_run_until(struct sim *s, km_ms until)
{
	while (s->heap_len > 0 && (until == 0 || s->heap[0].at <= until)) {
		struct sim_event e = pop(s);

		if (e.at > s->now)
			s->now = e.at;
		run_event(s, &e);
	}
	if (until > s->now)
		s->now = until;
}

void sim_join(struct sim *s, size_t i, size_t via)
{
	struct km_addr a;

	s->nodes[i].state = SIM_LIVE;
	s->nodes[i].via = (uint32_t)via;
	if (via != i) {
		sim_node_addr(s, via, &a);
		km_dht_ping_addr(s->nodes[i].dht, &a, s->now);
	}
	tick(s, i);
}

void sim_crash(struct sim *s, size_t i)
{
	s->nodes[i].state = SIM_DEAD;
	s->nodes[i].timer_at = 0;
}

int sim_replace(struct sim *s, size_t i)
{
	static const struct km_dht_callbacks cb = {
		.send = on_send, .lookup_done = on_lookup_done,
	};
	struct km_dht_config c;
	struct km_dht *d;

	config(s, &c);
	km_id_random(&s->rng, &c.id);
	d = km_dht_new(&c, &cb, &s->nodes[i], &s->rng, s->now);
	if (!d)
		return -1;
	km_dht_del(s->nodes[i].dht);
	s->nodes[i].dht = d;
	s->nodes[i].gen++;
	s->nodes[i].state = SIM_OFF;
	s->nodes[i].timer_at = 0;
	return 0;
}

/* Insertion into a sorted top-k: the brute force is O(N k) per target,
 * which at 100,000 nodes is still milliseconds. */
size_t sim_true_closest(const struct sim *s, const struct km_id *target,
			size_t except, size_t k, struct km_id *out)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++) {
		const struct km_id *id;
		size_t j;

		if (i == except || s->nodes[i].state != SIM_LIVE)
			continue;
		id = km_dht_id(s->nodes[i].dht);
		if (n == k && km_id_cmp_distance(target, id, &out[k - 1]) >= 0)
			continue;
		j = n < k ? n++ : k - 1;
		while (j > 0 && km_id_cmp_distance(target, id, &out[j - 1]) < 0) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = *id;
	}
	return n;
}

double sim_heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	/* Chunks of 128 KiB and more are mmap()ed and counted apart. */
	return (double)mi.uordblks + (double)mi.hblkhd;
}

double sim_own_bytes(const struct sim *s, size_t *events, size_t *dgrams)
{
	double own = (double)(s->heap_cap * sizeof(*s->heap)) +
		     (double)(s->n * sizeof(*s->nodes));

	*events = s->heap_len;
	*dgrams = 0;
	for (size_t i = 0; i < s->heap_len; i++) {
		if (s->heap[i].kind == EV_DGRAM) {
			own += (double)s->heap[i].len;
			++*dgrams;
		}
	}
	return own;
}

double sim_dht_bytes(const struct sim *s)
{
	size_t events, dgrams;

	return sim_heap_bytes() - s->heap_baseline -
	       sim_own_bytes(s, &events, &dgrams);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void sim_sort(double *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_double);
}

/* Nearest-rank percentile: the smallest value with at least p of the
 * sample at or below it. */
double sim_percentile(const double *sorted, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)(p * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

void sim_progress(const struct sim *s, const char *what, size_t done,
		  size_t total)
{
	if (!s->opt.progress)
		return;
	fprintf(stderr, "\r%-12s %zu/%zu  (virtual %.1f s)   ", what, done, total,
		(double)s->now / 1000.0);
	if (done == total)
		fputc('\n', stderr);
	fflush(stderr);
}
