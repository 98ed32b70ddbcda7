#include "dht/lookup.h"

#include <stdlib.h>
#include <string.h>

/* A candidate moves NEW -> IN_FLIGHT -> (RETRY -> SLOW ->) ANSWERED or
 * FAILED.  Only IN_FLIGHT holds one of the alpha slots; RETRY waits to be
 * asked again, SLOW for an answer to either try. */
enum cand_state {
	CAND_NEW, CAND_IN_FLIGHT, CAND_RETRY, CAND_SLOW, CAND_ANSWERED,
	CAND_FAILED
};

/* The shortlist starts this long and doubles up to max_candidates: a
 * lookup in a small network, or from a small table, needs a fraction of
 * the 128 x 152 bytes, and the DHT starts several at once (a refresh of
 * every bucket). */
#define FIRST_CANDS 16

struct cand {
	struct km_contact c;
	enum cand_state state;
	int round;
	km_ms sent;      /* first try: the reported RTT and timeout_ms count from it */
	km_ms last_sent; /* the latest try: the retry timeout counts from it */
	km_ms learned;   /* when it entered the list */
	int tries;
	uint32_t rtt_ms;
	size_t token_len;
	uint8_t token[KM_LOOKUP_TOKEN_MAX];
};

struct km_lookup {
	struct km_id target;
	enum km_lookup_kind kind;
	struct km_lookup_config cfg;
	struct cand *cands; /* sorted by XOR distance to target, closest first */
	size_t ncands, cap; /* cap grows to max_candidates as needed */
	int in_flight;      /* candidates in CAND_IN_FLIGHT */
	bool finished;      /* done was observed; the shortlist is frozen */
	uint32_t srtt, rttvar; /* RFC 6298 estimator over replies; srtt 0 = none */
	struct km_addr *peers;
	size_t npeers;
	struct km_lookup_stats stats;
};

void km_lookup_config_default(struct km_lookup_config *cfg)
{
	*cfg = (struct km_lookup_config){
		.k = 8,
		.alpha = 3,
		.slow_ms = 1000,
		.timeout_ms = 4000,
		.rto_min_ms = 200,
		.burst = true,
		.max_candidates = 128,
		.max_peers = 256,
	};
}

/* Out-of-range settings are raised to the smallest that still work, so a
 * bad config cannot make the lookup stall or overflow its arrays. */
static void config_sanitize(struct km_lookup_config *cfg)
{
	if (cfg->k < 1)
		cfg->k = 1;
	if (cfg->alpha < 1)
		cfg->alpha = 1;
	if (cfg->max_candidates < (size_t)cfg->k)
		cfg->max_candidates = (size_t)cfg->k;
	if (cfg->timeout_ms < cfg->slow_ms)
		cfg->timeout_ms = cfg->slow_ms;
	if (cfg->rto_min_ms > cfg->slow_ms)
		cfg->rto_min_ms = cfg->slow_ms;
}

struct km_lookup *km_lookup_new(const struct km_id *target,
				enum km_lookup_kind kind,
				const struct km_lookup_config *cfg, km_ms now)
{
	struct km_lookup *lk = calloc(1, sizeof(*lk));

	if (!lk)
		return NULL;
	lk->target = *target;
	lk->kind = kind;
	if (cfg)
		lk->cfg = *cfg;
	else
		km_lookup_config_default(&lk->cfg);
	config_sanitize(&lk->cfg);
	lk->stats.started = now;
	lk->cap = lk->cfg.max_candidates < FIRST_CANDS ? lk->cfg.max_candidates
						       : FIRST_CANDS;
	lk->cands = calloc(lk->cap, sizeof(*lk->cands));
	if (kind == KM_LOOKUP_GET_PEERS && lk->cfg.max_peers > 0)
		lk->peers = calloc(lk->cfg.max_peers, sizeof(*lk->peers));
	if (!lk->cands || (kind == KM_LOOKUP_GET_PEERS && lk->cfg.max_peers > 0 &&
			   !lk->peers)) {
		km_lookup_del(lk);
		return NULL;
	}
	return lk;
}

void km_lookup_del(struct km_lookup *lk)
{
	if (!lk)
		return;
	free(lk->cands);
	free(lk->peers);
	free(lk);
}

const struct km_id *km_lookup_target(const struct km_lookup *lk)
{
	return &lk->target;
}

enum km_lookup_kind km_lookup_kind(const struct km_lookup *lk)
{
	return lk->kind;
}

/* Index of the first candidate not closer to the target than id.  XOR with
 * the target is a bijection, so equal distance means the same ID. */
static size_t lower_bound(const struct km_lookup *lk, const struct km_id *id)
{
	size_t lo = 0, hi = lk->ncands;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (km_id_cmp_distance(&lk->target, &lk->cands[mid].c.id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct cand *find(const struct km_lookup *lk, const struct km_id *id)
{
	size_t i = lower_bound(lk, id);

	if (i < lk->ncands && km_id_eq(&lk->cands[i].c.id, id))
		return &lk->cands[i];
	return NULL;
}

static bool waiting(const struct cand *c)
{
	return c->state == CAND_IN_FLIGHT || c->state == CAND_RETRY ||
	       c->state == CAND_SLOW;
}

/* How long a try may go unanswered before the node is asked again (the
 * first try) or given up on (the retry, after twice as long): srtt + 4
 * rttvar over the replies this lookup has had, as TCP does it (RFC 6298),
 * within [rto_min_ms, slow_ms]; slow_ms until the first reply.  A dead
 * node among the k closest then costs about three RTOs, not timeout_ms;
 * one lost datagram costs one RTO and a retry. */
static km_ms rto(const struct km_lookup *lk)
{
	km_ms r;

	if (lk->srtt == 0)
		return lk->cfg.slow_ms;
	r = (km_ms)lk->srtt + 4 * (km_ms)lk->rttvar;
	if (r < lk->cfg.rto_min_ms)
		r = lk->cfg.rto_min_ms;
	return r < lk->cfg.slow_ms ? r : lk->cfg.slow_ms;
}

static void rtt_sample(struct km_lookup *lk, uint32_t r)
{
	uint32_t dev;

	if (r == 0)
		r = 1;
	if (lk->srtt == 0) {
		lk->srtt = r;
		lk->rttvar = r / 2;
		return;
	}
	dev = r > lk->srtt ? r - lk->srtt : lk->srtt - r;
	lk->rttvar = (3 * lk->rttvar + dev) / 4;
	lk->srtt = (7 * lk->srtt + r) / 8;
}

static bool usable_addr(const struct km_addr *a)
{
	return (a->family == KM_AF_INET4 || a->family == KM_AF_INET6) &&
	       a->port != 0;
}

/* Makes room for a candidate that would sit at index pos in a full list.
 * The farthest candidate we are not waiting on goes; one we are waiting on
 * stays, since its answer still counts.  False if the newcomer is farther
 * than everything that could go. */
static bool make_room(struct km_lookup *lk, size_t pos)
{
	size_t i = lk->ncands;

	while (i > pos && waiting(&lk->cands[i - 1]))
		i--;
	if (i == pos)
		return false;
	i--;
	memmove(&lk->cands[i], &lk->cands[i + 1],
		(lk->ncands - i - 1) * sizeof(*lk->cands));
	lk->ncands--;
	return true;
}

/* Doubles the shortlist's room, up to max_candidates.  False if it is
 * there already, or memory ran out: then the list counts as full. */
static bool grow(struct km_lookup *lk)
{
	size_t cap = lk->cap * 2;
	struct cand *p;

	if (lk->cap >= lk->cfg.max_candidates)
		return false;
	if (cap > lk->cfg.max_candidates)
		cap = lk->cfg.max_candidates;
	p = realloc(lk->cands, cap * sizeof(*p));
	if (!p)
		return false;
	lk->cands = p;
	lk->cap = cap;
	return true;
}

static void insert(struct km_lookup *lk, const struct km_contact *c, int round,
		   km_ms now)
{
	size_t pos;
	struct cand *slot;

	if (!usable_addr(&c->addr))
		return;
	pos = lower_bound(lk, &c->id);
	if (pos < lk->ncands && km_id_eq(&lk->cands[pos].c.id, &c->id))
		return;
	if (lk->ncands == lk->cap && !grow(lk) && !make_room(lk, pos))
		return;
	slot = &lk->cands[pos];
	memmove(slot + 1, slot, (lk->ncands - pos) * sizeof(*slot));
	lk->ncands++;
	memset(slot, 0, sizeof(*slot));
	slot->c = *c;
	slot->state = CAND_NEW;
	slot->round = round;
	slot->learned = now;
}

void km_lookup_add(struct km_lookup *lk, const struct km_contact *nodes,
		   size_t n)
{
	if (lk->finished)
		return;
	for (size_t i = 0; i < n; i++)
		insert(lk, &nodes[i], 1, lk->stats.started);
}

/* The k closest candidates that have not failed have all answered.  With
 * fewer than k such candidates, all of them have.  An empty list counts as
 * done: there is nobody left to ask. */
static bool is_done(const struct km_lookup *lk)
{
	int seen = 0;

	for (size_t i = 0; i < lk->ncands && seen < lk->cfg.k; i++) {
		enum cand_state s = lk->cands[i].state;

		if (s == CAND_FAILED)
			continue;
		if (s != CAND_ANSWERED)
			return false;
		seen++;
	}
	return true;
}

bool km_lookup_done(const struct km_lookup *lk)
{
	return lk->finished || is_done(lk);
}

/* Records the moment the lookup is first seen done.  From then on the list
 * is frozen: a late reply may still mark its sender answered, but adds no
 * new candidates, so a finished lookup never reopens under its owner. */
static void observe_done(struct km_lookup *lk, km_ms now)
{
	if (lk->finished || !is_done(lk))
		return;
	lk->finished = true;
	lk->stats.finished = now;
}

/* The closest candidate not yet asked, unless k candidates closer than it
 * have already answered: it could never make the result, and the same
 * holds for everything behind it.  *rank is how many candidates that have
 * not failed are closer than it; *settled tells whether the closest of
 * those has answered. */
static struct cand *next_candidate(struct km_lookup *lk, int *rank,
				   bool *settled)
{
	int answered = 0;

	*rank = 0;
	*settled = false;
	for (size_t i = 0; i < lk->ncands && answered < lk->cfg.k; i++) {
		struct cand *c = &lk->cands[i];

		if (c->state == CAND_NEW)
			return c;
		if (c->state == CAND_FAILED)
			continue;
		if (*rank == 0)
			*settled = c->state == CAND_ANSWERED;
		(*rank)++;
		if (c->state == CAND_ANSWERED)
			answered++;
	}
	return NULL;
}

static struct cand *retry_candidate(struct km_lookup *lk)
{
	for (size_t i = 0; i < lk->ncands; i++)
		if (lk->cands[i].state == CAND_RETRY)
			return &lk->cands[i];
	return NULL;
}

/* Beyond the alpha slots, a candidate among the k closest that have not
 * failed is asked at once when the lookup has converged: the closest
 * candidate has answered, so nothing closer is on its way and the k
 * closest are mostly final.  The lookup cannot end before they answer, and
 * asking them together rather than alpha at a time saves the rounds each
 * would wait for a slot (the Kademlia paper's last step, "query the k
 * closest not yet queried", without waiting for a round to come back
 * empty).  Measured at 2,000 nodes: median 730 -> 632 ms, no more
 * queries; asking the k closest at once always (not only once converged)
 * gave 402 ms but twice the queries. */
static bool may_burst(const struct km_lookup *lk, int rank, bool settled)
{
	return lk->cfg.burst && rank < lk->cfg.k && settled;
}

static void ask(struct km_lookup *lk, struct cand *c, km_ms now,
		struct km_contact *out)
{
	c->last_sent = now;
	c->tries++;
	lk->stats.queries++;
	*out = c->c;
}

bool km_lookup_next_query(struct km_lookup *lk, km_ms now,
			  struct km_contact *out)
{
	struct cand *c;
	int rank;
	bool settled;

	observe_done(lk, now);
	if (lk->finished)
		return false;
	c = retry_candidate(lk);
	if (c) {
		c->state = CAND_SLOW;
		lk->stats.retries++;
		ask(lk, c, now, out);
		return true;
	}
	c = next_candidate(lk, &rank, &settled);
	if (!c || (lk->in_flight >= lk->cfg.alpha &&
		   !may_burst(lk, rank, settled)))
		return false;
	c->state = CAND_IN_FLIGHT;
	c->sent = now;
	lk->in_flight++;
	if (c->round > lk->stats.rounds)
		lk->stats.rounds = c->round;
	ask(lk, c, now, out);
	return true;
}

static uint32_t elapsed(km_ms since, km_ms now)
{
	km_ms d = now > since ? now - since : 0;

	return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* Accepts a reply from a candidate we asked: one in flight, one marked slow
 * (a late answer is why we keep them), and one already failed -- its
 * answer is as good as any, and the node is evidently alive after all.  A
 * node we never asked, or one that already answered, is ignored, so a
 * stranger cannot inject candidates or inflate the round count. */
void km_lookup_on_reply(struct km_lookup *lk, const struct km_id *from,
			const struct km_contact *nodes, size_t n, km_ms now)
{
	struct cand *c = find(lk, from);
	int round;

	if (!c || c->state == CAND_NEW || c->state == CAND_ANSWERED)
		return;
	if (c->state == CAND_IN_FLIGHT)
		lk->in_flight--;
	c->state = CAND_ANSWERED;
	c->rtt_ms = elapsed(c->sent, now);
	if (c->tries == 1) /* Karn: a retried query's RTT is ambiguous */
		rtt_sample(lk, c->rtt_ms);
	lk->stats.replies++;
	round = c->round;
	if (!lk->finished) {
		/* c may move as the list shifts; round was copied above. */
		for (size_t i = 0; i < n; i++)
			insert(lk, &nodes[i], round + 1, now);
	}
	observe_done(lk, now);
}

static bool has_peer(const struct km_lookup *lk, const struct km_addr *a)
{
	for (size_t i = 0; i < lk->npeers; i++)
		if (km_addr_eq(&lk->peers[i], a))
			return true;
	return false;
}

void km_lookup_rtt_hint(struct km_lookup *lk, uint32_t rtt_ms)
{
	if (rtt_ms > 0)
		rtt_sample(lk, rtt_ms);
}

void km_lookup_on_peers(struct km_lookup *lk, const struct km_addr *peers,
			size_t n)
{
	if (!lk->peers)
		return;
	for (size_t i = 0; i < n && lk->npeers < lk->cfg.max_peers; i++) {
		if (usable_addr(&peers[i]) && !has_peer(lk, &peers[i]))
			lk->peers[lk->npeers++] = peers[i];
	}
}

/* A token is only worth keeping from a node we asked: announce_peer goes
 * back to exactly the nodes that answered. */
void km_lookup_on_token(struct km_lookup *lk, const struct km_id *from,
			const uint8_t *token, size_t len)
{
	struct cand *c = find(lk, from);

	if (!c || c->state == CAND_NEW || len > KM_LOOKUP_TOKEN_MAX)
		return;
	memcpy(c->token, token, len);
	c->token_len = len;
}

static void fail(struct km_lookup *lk, struct cand *c)
{
	if (c->state == CAND_IN_FLIGHT)
		lk->in_flight--;
	c->state = CAND_FAILED;
	lk->stats.timeouts++;
}

void km_lookup_on_timeout(struct km_lookup *lk, const struct km_id *from,
			  km_ms now)
{
	struct cand *c = find(lk, from);

	if (c && waiting(c))
		fail(lk, c);
	observe_done(lk, now);
}

/* When c's current try runs out: the first try after one RTO, the retry
 * after two (TCP's backoff, RFC 6298 5.5: the RTO is an estimate from
 * other nodes' replies, and the retry must outlast this node's own RTT if
 * the first try was lost -- without the backoff, a live node slower than
 * the RTO failed whenever one datagram was lost), and either by timeout_ms
 * after the first. */
static km_ms cand_deadline(const struct km_lookup *lk, const struct cand *c)
{
	km_ms fail = c->sent + lk->cfg.timeout_ms;
	km_ms next = c->last_sent + (km_ms)c->tries * rto(lk);

	return next < fail ? next : fail;
}

void km_lookup_tick(struct km_lookup *lk, km_ms now)
{
	for (size_t i = 0; i < lk->ncands; i++) {
		struct cand *c = &lk->cands[i];

		if (!waiting(c) || c->state == CAND_RETRY ||
		    now < cand_deadline(lk, c))
			continue;
		if (c->tries >= 2 || lk->finished ||
		    now >= c->sent + lk->cfg.timeout_ms) {
			fail(lk, c);
		} else {
			if (c->state == CAND_IN_FLIGHT)
				lk->in_flight--;
			c->state = CAND_RETRY;
		}
	}
	observe_done(lk, now);
}

km_ms km_lookup_next_wake(const struct km_lookup *lk)
{
	km_ms wake = 0;

	for (size_t i = 0; i < lk->ncands; i++) {
		const struct cand *c = &lk->cands[i];
		km_ms t;

		if (!waiting(c))
			continue;
		/* A retry not yet handed out is due now, and fails by
		 * timeout_ms at the latest. */
		t = c->state == CAND_RETRY ? c->sent + lk->cfg.timeout_ms
					   : cand_deadline(lk, c);
		if (t == 0)
			t = 1; /* 0 is reserved for "nothing in flight" */
		if (wake == 0 || t < wake)
			wake = t;
	}
	return wake;
}

bool km_lookup_wants_retry(const struct km_lookup *lk, const struct km_id *id)
{
	const struct cand *c = find(lk, id);

	return c && c->state == CAND_IN_FLIGHT;
}

size_t km_lookup_results(const struct km_lookup *lk,
			 struct km_lookup_result *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < lk->ncands && n < max && n < (size_t)lk->cfg.k; i++) {
		const struct cand *c = &lk->cands[i];

		if (c->state != CAND_ANSWERED)
			continue;
		out[n].c = c->c;
		out[n].rtt_ms = c->rtt_ms;
		out[n].learned = c->learned;
		out[n].answered = c->sent + c->rtt_ms;
		out[n].token_len = c->token_len;
		memcpy(out[n].token, c->token, c->token_len);
		n++;
	}
	return n;
}

size_t km_lookup_peers(const struct km_lookup *lk, struct km_addr *out,
		       size_t max)
{
	size_t n = lk->npeers < max ? lk->npeers : max;

	if (n > 0)
		memcpy(out, lk->peers, n * sizeof(*out));
	return n;
}

struct km_lookup_stats km_lookup_stats(const struct km_lookup *lk)
{
	return lk->stats;
}
