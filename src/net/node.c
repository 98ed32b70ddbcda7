/* The node: composition of the DHT and the overlay, joining and rejoining,
 * and periodic snapshots of the routing table. */
#include "net/node.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/node_internal.h"
#include "dht/state.h"
#include "proto/err.h"

#define BACKOFF_BASE_MS KM_SECONDS(1)
#define BACKOFF_MAX_MS KM_SECONDS(60)
#define REJOIN_CHECK_MS KM_SECONDS(5)
#define SAVED_MAX 2048
/* Saved contacts verified at once when (re)joining. */
#define REJOIN_BATCH 64

void km_node_config_default(struct km_node_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	km_dht_config_default(&cfg->dht);
	cfg->network_id = KM_NETWORK_ID_DEFAULT;
	cfg->max_links = 64;
	cfg->handshake_timeout_ms = KM_SECONDS(5);
	cfg->save_interval_ms = KM_SECONDS(60);
	km_connmgr_config_default(&cfg->cm);
	km_bcast_config_default(&cfg->bcast);
	cfg->ping_interval_ms = KM_SECONDS(15);
	cfg->pings_missed_max = 3;
	cfg->dialback_timeout_ms = KM_SECONDS(8);
}

void node_log(struct km_node *n, enum km_log_level level, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!n->cb.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n->cb.log(n->user, level, msg);
}

static void on_dht_send(void *user, const struct km_addr *to,
			const uint8_t *buf, size_t len)
{
	struct km_node *n = ((struct node_family *)user)->n;

	n->cb.udp_send(n->user, to, buf, len);
}

/* Each km_dht numbers its lookups from 1; the node's id adds the family
 * index as the low bit. */
static uint64_t node_lookup_id(const struct node_family *f, uint64_t dht_id)
{
	return dht_id * 2 + f->index;
}

static void on_dht_lookup_done(void *user, uint64_t id,
			       const struct km_lookup *lk)
{
	struct node_family *f = user;
	struct km_node *n = f->n;
	struct km_lookup_stats st = km_lookup_stats(lk);

	km_stats_observe_lookup(&n->stats.lookup_ms,
			       st.finished > st.started ?
			       st.finished - st.started : 0);
	if (n->cb.lookup_done)
		n->cb.lookup_done(n->user, node_lookup_id(f, id), lk);
}

static unsigned family_index(uint8_t family)
{
	return family == KM_AF_INET6 ? 1 : 0;
}

struct km_dht *node_dht_for(struct km_node *n, uint8_t family)
{
	if (family != KM_AF_INET4 && family != KM_AF_INET6)
		return NULL;
	return n->fam[family_index(family)].dht;
}

void node_verify(struct km_node *n, const struct km_addr *addr, km_ms now)
{
	struct km_dht *d = node_dht_for(n, addr->family);

	if (d)
		km_dht_ping_addr(d, addr, now);
}

static unsigned config_families(const struct km_node_config *cfg)
{
	if (cfg->families)
		return cfg->families;
	return cfg->dht.family == KM_AF_INET6 ? KM_NODE_IPV6 : KM_NODE_IPV4;
}

static void on_dht_observed(void *user, const struct km_addr *from,
			    const struct km_addr *seen, km_ms now)
{
	struct node_family *f = user;

	node_nat_observed(f->n, from, seen, now);
}

static void on_dht_unsolicited(void *user, const struct km_addr *from,
			       km_ms now)
{
	node_nat_unsolicited(((struct node_family *)user)->n, from);
}

/* One km_dht per family asked for, siblings when there are two; the
 * default family falls back to whichever runs. */
static int families_new(struct km_node *n, km_ms now)
{
	static const struct km_dht_callbacks dht_cb = {
		.send = on_dht_send,
		.lookup_done = on_dht_lookup_done,
		.observed = on_dht_observed,
		.unsolicited = on_dht_unsolicited,
	};
	static const uint8_t af[2] = { KM_AF_INET4, KM_AF_INET6 };
	unsigned want = config_families(&n->cfg);

	if (want & ~(unsigned)(KM_NODE_IPV4 | KM_NODE_IPV6))
		return KM_ERR_INVAL;
	for (unsigned i = 0; i < 2; i++) {
		struct km_dht_config dc = n->cfg.dht;

		n->fam[i].n = n;
		n->fam[i].index = i;
		if (!(want & (1u << i)))
			continue;
		dc.family = af[i];
		n->fam[i].dht = km_dht_new(&dc, &dht_cb, &n->fam[i], n->rng, now);
		if (!n->fam[i].dht)
			return KM_ERR_NOMEM;
	}
	if (n->fam[0].dht && n->fam[1].dht)
		km_dht_set_sibling(n->fam[0].dht, n->fam[1].dht);
	n->dht = node_dht_for(n, n->cfg.dht.family);
	if (!n->dht)
		n->dht = n->fam[0].dht ? n->fam[0].dht : n->fam[1].dht;
	if (!n->dht)
		return KM_ERR_INVAL;
	n->cfg.dht.family = n->dht == n->fam[0].dht ? KM_AF_INET4 : KM_AF_INET6;
	n->cfg.families = want;
	return 0;
}

static void families_del(struct km_node *n)
{
	for (unsigned i = 0; i < 2; i++) {
		km_dht_del(n->fam[i].dht);
		n->fam[i].dht = NULL;
	}
}

/* The key is an input like the rng: the daemon loads it from DIR/key; a
 * node given none (tests, the simulator) draws an ephemeral one. */
static int ident_init(struct km_node *n)
{
	uint8_t seed[KM_IDENT_SEED_LEN];
	int rv;

	if (n->cfg.has_key)
		memcpy(seed, n->cfg.key_seed, sizeof(seed));
	else
		km_rng_fill(n->rng, seed, sizeof(seed));
	rv = km_ident_from_seed(&n->ident, seed);
	if (rv < 0)
		return rv;
	n->pins = km_pins_new(n->cfg.pins_max);
	return n->pins ? 0 : KM_ERR_NOMEM;
}

/* What km_node_new made, in reverse; each is NULL if it was not. */
static void modules_del(struct km_node *n)
{
	km_rendezvous_del(n->rendezvous);
	km_punch_del(n->punch);
	km_relay_del(n->relay);
	km_dialback_del(n->dialback);
	node_neighbours_free(n);
	families_del(n);
	km_pins_del(n->pins);
}

struct km_node *km_node_new(const struct km_node_config *cfg,
			    const struct km_node_callbacks *cb, void *user,
			    struct km_rng *rng, km_ms now)
{
	struct km_node *n;

	if (!cb->udp_send || !cb->tcp_connect || !cb->tcp_send || !cb->tcp_close ||
	    cfg->nbootstrap > KM_NODE_MAX_BOOTSTRAP)
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->cfg = *cfg;
	n->cb = *cb;
	n->user = user;
	n->rng = rng;
	n->started_at = now;
	n->next_conn = 1;
	km_nat_init(&n->nat);
	if (ident_init(n) < 0 || families_new(n, now) < 0 ||
	    node_neighbours_init(n, now) < 0 || node_nat_init(n, now) < 0 ||
	    node_relay_init(n) < 0 || node_punch_init(n) < 0 ||
	    node_rendezvous_init(n) < 0) {
		modules_del(n);
		free(n);
		return NULL;
	}
	for (size_t i = 0; i < cfg->nbootstrap; i++)
		n->bootstrap[i].addr = cfg->bootstrap[i];
	n->nbootstrap = cfg->nbootstrap;
	n->next_save = now + cfg->save_interval_ms;
	n->next_rejoin_check = now + REJOIN_CHECK_MS;
	return n;
}

void km_node_del(struct km_node *n)
{
	struct link *l, *tmp;

	if (!n)
		return;
	HASH_ITER(hh, n->links, l, tmp) {
		l->bootstrap = -1;
		link_on_closed(n, l, 0);
	}
	modules_del(n);
	free(n->saved);
	free(n);
}

static void remember_saved(struct km_node *n, const struct km_contact *c,
			   size_t count)
{
	struct km_contact *copy;

	if (count > SAVED_MAX)
		count = SAVED_MAX;
	copy = malloc((count ? count : 1) * sizeof(*copy));
	if (!copy)
		return; /* keep the older list: rejoining with it still works */
	memcpy(copy, c, count * sizeof(*copy));
	free(n->saved);
	n->saved = copy;
	n->nsaved = count;
}

static void verify_saved(struct km_node *n, km_ms now)
{
	size_t count = n->nsaved < REJOIN_BATCH ? n->nsaved : REJOIN_BATCH;

	for (size_t i = 0; i < count; i++) {
		size_t pick = n->nsaved <= REJOIN_BATCH
				      ? i : km_rng_below(n->rng, n->nsaved);

		node_verify(n, &n->saved[pick].addr, now);
	}
}

static void bootstrap_try(struct km_node *n, int i, km_ms now)
{
	struct bootstrap *b = &n->bootstrap[i];
	struct link *l;

	b->in_progress = true;
	b->attempts++;
	b->next_try = 0;
	l = link_open(n, &b->addr, true, NULL, now);
	if (!l) {
		node_bootstrap_failed(n, i, now);
		return;
	}
	l->bootstrap = i;
	n->cb.tcp_connect(n->user, l->conn, &b->addr);
}

/* Exponential backoff with +-50% jitter, so that nodes restarted together
 * do not knock on the same seed in lockstep. */
static km_ms backoff(struct km_node *n, int attempts)
{
	km_ms delay = BACKOFF_BASE_MS;

	for (int i = 1; i < attempts && delay < BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	return delay / 2 + km_rng_below(n->rng, delay);
}

void node_bootstrap_failed(struct km_node *n, int i, km_ms now)
{
	struct bootstrap *b = &n->bootstrap[i];
	char addr[KM_ADDR_STRLEN];

	b->in_progress = false;
	/* No overlay there (or no answer): it may still be a plain Mainline
	 * node, which answers find_node over UDP on the same port. */
	n->stats.bootstrap_krpc_fallbacks++;
	node_verify(n, &b->addr, now);
	b->next_try = now + backoff(n, b->attempts);
	km_addr_format(&b->addr, addr, sizeof(addr));
	node_log(n, KM_LOG_DEBUG, "bootstrap %s: no overlay answer, tried KRPC",
		 addr);
}

void node_bootstrap_succeeded(struct km_node *n, int i)
{
	n->bootstrap[i].in_progress = false;
	n->bootstrap[i].attempts = 0;
	n->bootstrap[i].next_try = 0;
}

void km_node_start(struct km_node *n, const struct km_contact *saved,
		   size_t nsaved, km_ms now)
{
	/* Our previous process's NAT mappings to them may be open still: a
	 * query from one of them proves nothing about our port. */
	for (size_t i = 0; i < nsaved; i++) {
		struct km_dht *d = node_dht_for(n, saved[i].addr.family);

		if (d)
			km_dht_note_contacted(d, &saved[i].addr, now);
	}
	if (nsaved > 0) {
		remember_saved(n, saved, nsaved);
		verify_saved(n, now);
		/* Saved nodes count as having joined before: if none of them
		 * answers, the rejoin check keeps trying. */
		n->ever_joined = true;
	}
	for (size_t i = 0; i < n->nbootstrap; i++)
		bootstrap_try(n, (int)i, now);
}

/* Collects one table's usable contacts after out[0..count). */
static size_t table_contacts_of(const struct km_table *t,
				struct km_contact *out, size_t count,
				size_t max, km_ms now)
{
	for (int b = 0; b < km_table_bucket_count(t); b++) {
		for (size_t i = 0; i < km_table_bucket_size(t, b) && count < max; i++) {
			const struct km_table_entry *e = km_table_bucket_entry(t, b, i);

			if (km_table_state(t, e, now) != KM_ENTRY_BAD)
				out[count++] = e->c;
		}
	}
	return count;
}

/* Both tables' usable contacts: the snapshot to save, and the list to
 * rejoin from if the tables ever empty. */
static size_t table_contacts(struct km_node *n, struct km_contact *out,
			     size_t max, km_ms now)
{
	size_t count = 0;

	for (unsigned i = 0; i < 2; i++)
		if (n->fam[i].dht)
			count = table_contacts_of(km_dht_table(n->fam[i].dht),
						  out, count, max, now);
	return count;
}

/* Usable nodes in every family's routing table. */
static size_t tables_usable(struct km_node *n, km_ms now)
{
	size_t usable = 0;

	for (unsigned i = 0; i < 2; i++)
		if (n->fam[i].dht)
			usable += km_table_usable(km_dht_table(n->fam[i].dht),
						  now);
	return usable;
}

static void save_state(struct km_node *n, km_ms now)
{
	struct km_contact *c = malloc(SAVED_MAX * sizeof(*c));
	size_t cap = 64 + SAVED_MAX * (KM_ID_LEN + 1 + 16 + 2);
	uint8_t *buf = malloc(cap);
	size_t count;
	int len;

	if (!c || !buf)
		goto out;
	count = table_contacts(n, c, SAVED_MAX, now);
	if (count > 0) {
		remember_saved(n, c, count);
	} else {
		/* An empty table (just restarted, or cut off) must not
		 * overwrite the nodes we would rejoin from: save those. */
		count = n->nsaved < SAVED_MAX ? n->nsaved : SAVED_MAX;
		if (count > 0)
			memcpy(c, n->saved, count * sizeof(*c));
	}
	len = km_state_encode(km_dht_id(n->dht), c, count, buf, cap);
	if (len > 0 && n->cb.save_state)
		n->cb.save_state(n->user, buf, (size_t)len);
out:
	free(c);
	free(buf);
}

void km_node_stop(struct km_node *n, km_ms now)
{
	struct link *l, *tmp;

	n->stopping = true;
	HASH_ITER(hh, n->links, l, tmp) {
		l->bootstrap = -1; /* leaving: no fallbacks */
		link_close(n, l, KM_BYE_SHUTDOWN, "node shutting down", now);
	}
	save_state(n, now);
}

void km_node_udp_recv(struct km_node *n, const struct km_addr *from,
		      const uint8_t *buf, size_t len, km_ms now)
{
	struct km_dht *d = node_dht_for(n, from->family);

	if (!n->stopping && d)
		km_dht_receive(d, from, buf, len, now);
}

uint64_t km_node_tcp_accepted(struct km_node *n, const struct km_addr *remote,
			      km_ms now)
{
	struct link *l;

	if (n->stopping)
		return 0;
	/* While a check waits, the caps must not refuse its dial-back. */
	if (!(l = link_open(n, remote, false, NULL, now)) &&
	    !(l = link_open_probe(n, remote, now)))
		return 0;
	return l->conn;
}

void km_node_tcp_connected(struct km_node *n, uint64_t conn, km_ms now)
{
	struct link *l = link_find(n, conn);

	if (l)
		link_on_connected(n, l, now);
	else
		node_nat_tcp_connected(n, conn);
}

void km_node_tcp_recv(struct km_node *n, uint64_t conn, const uint8_t *buf,
		      size_t len, km_ms now)
{
	struct link *l = link_find(n, conn);

	if (l)
		link_on_bytes(n, l, buf, len, now);
}

void km_node_tcp_closed(struct km_node *n, uint64_t conn, km_ms now)
{
	struct link *l = link_find(n, conn);

	if (l)
		link_on_closed(n, l, now);
	else
		node_nat_tcp_closed(n, conn);
}

static bool bootstrap_pending(const struct km_node *n)
{
	for (size_t i = 0; i < n->nbootstrap; i++)
		if (n->bootstrap[i].in_progress || n->bootstrap[i].next_try)
			return true;
	return false;
}

static bool bootstrap_due(const struct km_node *n, km_ms now)
{
	for (size_t i = 0; i < n->nbootstrap; i++)
		if (n->bootstrap[i].next_try && now >= n->bootstrap[i].next_try)
			return true;
	return false;
}

/* Retries bootstrap addresses while the table has no usable node, and
 * starts over from saved nodes and the bootstrap list if it loses them all
 * later.  Dead nodes stay in a table as "bad" until something replaces
 * them, so "usable" is what counts, not the table's size.  Checked every
 * REJOIN_CHECK_MS and when a retry is due, not on every packet. */
static void check_join(struct km_node *n, km_ms now)
{
	bool empty;

	if (now < n->next_rejoin_check && !bootstrap_due(n, now))
		return;
	empty = tables_usable(n, now) == 0;
	for (size_t i = 0; i < n->nbootstrap; i++) {
		struct bootstrap *b = &n->bootstrap[i];

		if (b->next_try && now >= b->next_try) {
			if (empty)
				bootstrap_try(n, (int)i, now);
			else
				b->next_try = 0;
		}
	}
	if (!empty)
		n->ever_joined = true;
	else if (n->ever_joined && now >= n->next_rejoin_check &&
		 !bootstrap_pending(n)) {
		node_log(n, KM_LOG_WARN, "no usable node in the routing table: rejoining");
		verify_saved(n, now);
		for (size_t i = 0; i < n->nbootstrap; i++)
			bootstrap_try(n, (int)i, now);
	}
	if (now >= n->next_rejoin_check)
		n->next_rejoin_check = now + REJOIN_CHECK_MS;
}

km_ms km_node_tick(struct km_node *n, km_ms now)
{
	km_ms wake = 0;

	for (unsigned i = 0; i < 2; i++)
		if (n->fam[i].dht)
			wake = km_ms_earliest(wake, km_dht_tick(n->fam[i].dht, now));
	wake = km_ms_earliest(wake, link_tick_all(n, now));
	wake = km_ms_earliest(wake, node_neighbours_tick(n, now));
	wake = km_ms_earliest(wake, node_nat_tick(n, now));
	check_join(n, now);
	if (now >= n->next_save) {
		save_state(n, now);
		n->next_save = now + n->cfg.save_interval_ms;
	}
	wake = km_ms_earliest(wake, n->next_save);
	for (size_t i = 0; i < n->nbootstrap; i++)
		wake = km_ms_earliest(wake, n->bootstrap[i].next_try);
	wake = km_ms_earliest(wake, n->next_rejoin_check);
	return wake;
}

static struct node_family *family_for(struct km_node *n, enum km_family family)
{
	if (family == KM_AF_NONE)
		family = n->cfg.dht.family;
	if (!node_dht_for(n, family))
		return NULL;
	return &n->fam[family_index(family)];
}

int km_node_lookup_in(struct km_node *n, enum km_family family,
		      const struct km_id *target, enum km_lookup_kind kind,
		      uint64_t *lookup_id, km_ms now)
{
	struct node_family *f = family_for(n, family);
	uint64_t id = 0;
	int rc;

	if (!f)
		return KM_ERR_INVAL;
	rc = km_dht_lookup(f->dht, target, kind, NULL, 0, &id, now);
	if (rc == 0 && lookup_id)
		*lookup_id = node_lookup_id(f, id);
	return rc;
}

int km_node_announce_in(struct km_node *n, enum km_family family,
			const struct km_id *info_hash, uint16_t port,
			uint64_t *lookup_id, km_ms now)
{
	struct node_family *f = family_for(n, family);
	uint64_t id = 0;
	int rc;

	if (!f)
		return KM_ERR_INVAL;
	rc = km_dht_announce(f->dht, info_hash, port ? port : n->cfg.port,
			     port == 0, &id, now);
	if (rc == 0 && lookup_id)
		*lookup_id = node_lookup_id(f, id);
	return rc;
}

int km_node_lookup(struct km_node *n, const struct km_id *target,
		   enum km_lookup_kind kind, uint64_t *lookup_id, km_ms now)
{
	return km_node_lookup_in(n, KM_AF_NONE, target, kind, lookup_id, now);
}

/* Port 0 announces our UDP source port with implied_port.  Some clients
 * ignore implied_port, so `port` still names our own port for them. */
int km_node_announce(struct km_node *n, const struct km_id *info_hash,
		     uint16_t port, uint64_t *lookup_id, km_ms now)
{
	return km_node_announce_in(n, KM_AF_NONE, info_hash, port, lookup_id,
				   now);
}

struct km_dht *km_node_dht(struct km_node *n)
{
	return n->dht;
}

struct km_dht *km_node_dht_of(struct km_node *n, enum km_family family)
{
	return node_dht_for(n, family);
}

const struct km_node_config *km_node_config(const struct km_node *n)
{
	return &n->cfg;
}

struct km_node_stats km_node_stats(const struct km_node *n)
{
	struct km_node_stats s = n->stats;

	memset(&s.sum, 0, sizeof(s.sum));
	for (unsigned i = 0; i < 2; i++)
		if (n->fam[i].dht)
			km_stats_add_family(&s.sum, i, n->fam[i].dht);
	s.links = n->nlinks;
	s.neighbours = km_connmgr_counts(n->cm);
	s.bcast = km_bcast_stats(n->bcast);
	s.pins = km_pins_count(n->pins);
	return s;
}

size_t km_node_banned_now(const struct km_node *n, km_ms now)
{
	size_t banned = 0;

	for (unsigned i = 0; i < 2; i++)
		if (n->fam[i].dht)
			banned += km_ratelimit_banned_now(
				km_dht_ratelimit(n->fam[i].dht), now);
	return banned;
}

km_ms km_node_started_at(const struct km_node *n)
{
	return n->started_at;
}
