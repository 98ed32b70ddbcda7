/* What the routing table answers, without changing it: the closest
 * contacts to a target (for our lookups, and the ones served to others),
 * sizes, counters, and bucket contents for status and tests. */
#include "dht/table.h"
#include "dht/table_internal.h"

#include <string.h>

/* Adds c to out[0..got) if it is among the n closest so far; out stays
 * sorted by distance.  Returns the new count. */
static size_t keep_closest(struct km_contact *out, size_t got, size_t n,
			   const struct km_id *target,
			   const struct km_contact *c)
{
	size_t pos = got, keep;

	while (pos > 0 && km_id_cmp_distance(target, &c->id, &out[pos - 1].id) < 0)
		pos--;
	if (pos >= n)
		return got;
	keep = got < n ? got : n - 1;
	memmove(&out[pos + 1], &out[pos], (keep - pos) * sizeof(*out));
	out[pos] = *c;
	return keep + 1;
}

/* Which entries closest() may return: live ones (not bad, and their last
 * query did not fail), live ones that have answered us, or any -- and
 * never `except` (NULL: no exception). */
enum pick_kind { PICK_ANY, PICK_LIVE, PICK_SERVED };

struct pick {
	enum pick_kind kind;
	const struct km_id *except;
};

static bool pickable(const struct km_table *t, const struct km_table_entry *e,
		     const struct pick *pick)
{
	if (pick->except && km_id_eq(&e->c.id, pick->except))
		return false;
	if (pick->kind == PICK_ANY)
		return true;
	if (is_bad(t, e) || e->failures != 0)
		return false;
	return pick->kind == PICK_LIVE || km_table_confirmed(e);
}

static size_t collect(const struct km_table *t, int i, const struct pick *pick,
		      const struct km_id *target, size_t n,
		      struct km_contact *out, size_t got)
{
	const struct km_table_entry *nodes = nodes_of(t, i);

	for (int j = 0; j < t->b[i].n; j++)
		if (pickable(t, &nodes[j], pick))
			got = keep_closest(out, got, n, target, &nodes[j].c);
	return got;
}

/* Visits buckets nearest-first and stops as soon as no farther bucket can
 * improve the answer.  With c the target's bucket: every node in bucket c
 * shares more than c bits with the target; every node in buckets above c
 * shares exactly c bits (so those come next, as one group); and a node in
 * bucket i < c shares exactly i bits, so those follow in descending i.
 * A typical query reads one or two buckets, not the whole table. */
static size_t closest(const struct km_table *t, const struct pick *pick,
		      const struct km_id *target, size_t n,
		      struct km_contact *out)
{
	int c = bucket_of(t, target);
	size_t got;

	if (n == 0)
		return 0;
	got = collect(t, c, pick, target, n, out, 0);
	if (got < n)
		for (int i = c + 1; i < t->nbuckets; i++)
			got = collect(t, i, pick, target, n, out, got);
	for (int i = c - 1; i >= 0 && got < n; i--)
		got = collect(t, i, pick, target, n, out, got);
	return got;
}

size_t km_table_closest_served(const struct km_table *t,
			       const struct km_id *target,
			       const struct km_id *except, size_t n,
			       struct km_contact *out)
{
	struct pick served = { .kind = PICK_SERVED, .except = except };

	return closest(t, &served, target, n, out);
}

size_t km_table_closest(const struct km_table *t, const struct km_id *target,
			size_t n, struct km_contact *out)
{
	struct pick live = { .kind = PICK_LIVE }, any = { .kind = PICK_ANY };
	size_t got = closest(t, &live, target, n, out);

	/* A bad node is never dropped without a replacement, so a table this
	 * small may hold nothing else: a joiner whose find_node to its only
	 * node was lost twice marked it bad and, skipping it, would never send
	 * another query nor be found.  Asking a bad node is all it has left,
	 * and an answer clears its failures. */
	if (got == 0)
		got = closest(t, &any, target, n, out);
	return got;
}

size_t km_table_size(const struct km_table *t)
{
	return t->size;
}

struct km_table_changes km_table_changes(const struct km_table *t)
{
	return t->changes;
}

struct km_table_stats km_table_stats(const struct km_table *t)
{
	return t->stats;
}

size_t km_table_usable(const struct km_table *t, km_ms now)
{
	size_t usable = 0;

	for (int i = 0; i < t->nbuckets; i++) {
		const struct km_table_entry *nodes = nodes_of(t, i);

		for (int j = 0; j < t->b[i].n; j++)
			usable += km_table_state(t, &nodes[j], now) != KM_ENTRY_BAD;
	}
	return usable;
}

int km_table_bucket_count(const struct km_table *t)
{
	return t->nbuckets;
}

size_t km_table_bucket_size(const struct km_table *t, int bucket)
{
	if (bucket < 0 || bucket >= t->nbuckets)
		return 0;
	return (size_t)t->b[bucket].n;
}

const struct km_table_entry *km_table_bucket_entry(const struct km_table *t,
						   int bucket, size_t i)
{
	if (bucket < 0 || bucket >= t->nbuckets || i >= (size_t)t->b[bucket].n)
		return NULL;
	return &nodes_of(t, bucket)[i];
}

size_t km_table_replacement_count(const struct km_table *t, int bucket)
{
	if (bucket < 0 || bucket >= t->nbuckets)
		return 0;
	return (size_t)t->b[bucket].nrepl;
}

const struct km_table_entry *km_table_replacement_entry(const struct km_table *t,
							int bucket, size_t i)
{
	if (bucket < 0 || bucket >= t->nbuckets || i >= (size_t)t->b[bucket].nrepl)
		return NULL;
	return &repl_of(t, bucket)[i];
}
