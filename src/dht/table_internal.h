/* Private to the routing table: its storage, shared by table.c (offers,
 * failures, splits, maintenance) and table_view.c (what the table answers:
 * the closest contacts, sizes, counters, bucket contents). */
#ifndef KM_DHT_TABLE_INTERNAL_H
#define KM_DHT_TABLE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "dht/id.h"
#include "dht/table.h"

/* Each bucket owns one slab of k + replacements entries: its nodes first,
 * then its replacement cache.  Both are kept in ascending last_seen order, so
 * index 0 is the least recently seen and the end is the most recent. */
struct bucket {
	int n;              /* nodes in use */
	int nrepl;          /* replacement cache entries in use */
	km_ms last_changed; /* node added, or a reply from one of its nodes */
};

struct km_table {
	struct km_id self;
	struct km_table_config cfg;
	int nbuckets;
	int cap; /* buckets the slab storage has room for */
	size_t size;
	struct km_table_entry *slabs;
	struct km_table_stats stats;
	struct km_table_changes changes;
	struct bucket b[KM_ID_BITS];
};

static inline size_t slab_len(const struct km_table *t)
{
	return (size_t)t->cfg.k + (size_t)t->cfg.replacements;
}

static inline struct km_table_entry *nodes_of(const struct km_table *t, int i)
{
	return t->slabs + (size_t)i * slab_len(t);
}

static inline struct km_table_entry *repl_of(const struct km_table *t, int i)
{
	return nodes_of(t, i) + t->cfg.k;
}

static inline bool is_bad(const struct km_table *t, const struct km_table_entry *e)
{
	return e->failures >= t->cfg.bad_after_failures;
}

/* The bucket id belongs in: its common prefix with us, the last bucket
 * holding everything beyond. */
static inline int bucket_of(const struct km_table *t, const struct km_id *id)
{
	int cpl = km_id_cpl(&t->self, id);

	return cpl < t->nbuckets - 1 ? cpl : t->nbuckets - 1;
}

#endif
