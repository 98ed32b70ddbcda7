/* The answers of `table`, `peers`, `lookup`, `get_peers` and `announce`,
 * and the event line a subscriber gets for each broadcast message. */
#include "ops/answers.h"

#include <stdlib.h>
#include <string.h>

#include "ops/json.h"
#include "proto/base64.h"
#include "proto/msg.h"

/* A lookup returns k nodes (8) and the peers it heard (256 by default). */
#define RESULTS_MAX 256
#define PEERS_MAX 1024
/* Neighbours listed by `peers`: max_in + max_out stay well below. */
#define NEIGHBOURS_MAX 1024

static const char *state_name(enum km_entry_state st)
{
	switch (st) {
	case KM_ENTRY_GOOD: return "good";
	case KM_ENTRY_QUESTIONABLE: return "questionable";
	default: return "bad";
	}
}

static bool table_entry(cJSON *list, const struct km_table *t,
			const struct km_table_entry *e, int bucket, km_ms now)
{
	/* Adding to an array fails only for a NULL item: nothing leaks. */
	cJSON *o = cJSON_CreateObject();
	bool ok = cJSON_AddItemToArray(list, o);
	km_ms age = now > e->last_seen ? now - e->last_seen : 0;

	km_json_id(o, "id", &e->c.id, &ok);
	km_json_addr(o, "addr", &e->c.addr, &ok);
	km_json_str(o, "state", state_name(km_table_state(t, e, now)), &ok);
	km_json_num(o, "last_seen_s", (double)(age / 1000), &ok);
	km_json_num(o, "rtt_ms", e->rtt_ms, &ok);
	km_json_num(o, "bucket", bucket, &ok);
	km_json_num(o, "failures", e->failures, &ok);
	return ok;
}

/* IPv4 entries first, then IPv6; bucket 0 first within each. */
cJSON *km_answer_table(struct km_node *n, km_ms now)
{
	cJSON *list = cJSON_CreateArray();
	bool ok = list != NULL;

	for (int f = 0; ok && f < 2; f++) {
		struct km_dht *d = km_node_dht_of(n, km_json_families[f]);
		const struct km_table *t = d ? km_dht_table(d) : NULL;
		int buckets = t ? km_table_bucket_count(t) : 0;

		for (int b = 0; ok && b < buckets; b++)
			for (size_t i = 0; ok && i < km_table_bucket_size(t, b);
			     i++)
				ok = table_entry(list, t,
						 km_table_bucket_entry(t, b, i),
						 b, now);
	}
	return km_json_finish(list, ok);
}

static bool neighbour_entry(cJSON *list, const struct km_neighbour *nb,
			    km_ms now)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = cJSON_AddItemToArray(list, o);

	km_json_id(o, "id", &nb->id, &ok);
	km_json_addr(o, "addr", &nb->addr, &ok);
	km_json_str(o, "direction", nb->outbound ? "out" : "in", &ok);
	km_json_num(o, "age_s", (double)((now > nb->since ? now - nb->since : 0) /
				     1000), &ok);
	km_json_num(o, "rtt_ms", nb->rtt_ms, &ok);
	km_json_num(o, "bytes_in", (double)nb->bytes_in, &ok);
	km_json_num(o, "bytes_out", (double)nb->bytes_out, &ok);
	km_json_num(o, "msgs_in", (double)nb->frames_in, &ok);
	km_json_num(o, "msgs_out", (double)nb->frames_out, &ok);
	ok = ok && cJSON_AddBoolToObject(o, "eager", nb->eager);
	km_json_str(o, "via", km_via_name(nb->via), &ok);
	return ok;
}

cJSON *km_answer_neighbours(struct km_node *n, km_ms now)
{
	struct km_neighbour *nb = malloc(NEIGHBOURS_MAX * sizeof(*nb));
	size_t count = nb ? km_node_neighbours(n, nb, NEIGHBOURS_MAX) : 0;
	cJSON *list = nb ? cJSON_CreateArray() : NULL;
	bool ok = list != NULL;

	if (count > NEIGHBOURS_MAX)
		count = NEIGHBOURS_MAX;
	for (size_t i = 0; ok && i < count; i++)
		ok = neighbour_entry(list, &nb[i], now);
	free(nb);
	return km_json_finish(list, ok);
}

/* The lookup's results, closest first (its contract, but the output
 * promises the order, so it is checked here: insertion sort is linear on
 * sorted input). */
static size_t lookup_results(const struct km_lookup *lk,
			     struct km_lookup_result *res)
{
	const struct km_id *target = km_lookup_target(lk);
	size_t n = km_lookup_results(lk, res, RESULTS_MAX);

	for (size_t i = 1; i < n; i++) {
		struct km_lookup_result tmp = res[i];
		size_t j = i;

		for (; j > 0 && km_id_cmp_distance(target, &res[j - 1].c.id,
						   &tmp.c.id) > 0; j--)
			res[j] = res[j - 1];
		res[j] = tmp;
	}
	return n;
}

/* Adds "nodes"; with only_tokens, just those that gave an announce token. */
static void put_nodes(cJSON *o, const struct km_lookup *lk, bool only_tokens,
		      bool *ok)
{
	struct km_lookup_result *res = malloc(RESULTS_MAX * sizeof(*res));
	size_t n = res ? lookup_results(lk, res) : 0;
	cJSON *list = km_json_arr(o, "nodes", ok);

	*ok = *ok && res;
	for (size_t i = 0; *ok && i < n; i++) {
		cJSON *node;

		if (only_tokens && res[i].token_len == 0)
			continue;
		node = cJSON_CreateObject();
		*ok = node && cJSON_AddItemToArray(list, node);
		km_json_id(node, "id", &res[i].c.id, ok);
		km_json_addr(node, "addr", &res[i].c.addr, ok);
		km_json_num(node, "rtt_ms", res[i].rtt_ms, ok);
	}
	free(res);
}

static void put_peers(cJSON *o, const struct km_lookup *lk, bool *ok)
{
	struct km_addr *peers = malloc(PEERS_MAX * sizeof(*peers));
	size_t n = peers ? km_lookup_peers(lk, peers, PEERS_MAX) : 0;
	cJSON *list = km_json_arr(o, "peers", ok);

	*ok = *ok && peers;
	for (size_t i = 0; *ok && i < n; i++) {
		char buf[KM_ADDR_STRLEN];

		if (km_addr_format(&peers[i], buf, sizeof(buf)) < 0)
			continue;
		*ok = cJSON_AddItemToArray(list, cJSON_CreateString(buf));
	}
	free(peers);
}

static void put_lookup_stats(cJSON *o, const struct km_lookup *lk, bool *ok)
{
	struct km_lookup_stats st = km_lookup_stats(lk);
	km_ms elapsed = st.finished > st.started ? st.finished - st.started : 0;

	km_json_num(o, "rounds", st.rounds, ok);
	km_json_num(o, "queries", st.queries, ok);
	km_json_num(o, "elapsed_ms", (double)elapsed, ok);
}

cJSON *km_answer_lookup(const struct km_lookup *lk)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL;

	km_json_id(o, "target", km_lookup_target(lk), &ok);
	put_nodes(o, lk, false, &ok);
	if (km_lookup_kind(lk) == KM_LOOKUP_GET_PEERS)
		put_peers(o, lk, &ok);
	put_lookup_stats(o, lk, &ok);
	return km_json_finish(o, ok);
}

cJSON *km_answer_announce(const struct km_lookup *lk, uint16_t port)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL;

	km_json_id(o, "target", km_lookup_target(lk), &ok);
	km_json_num(o, "port", port, &ok);
	put_nodes(o, lk, true, &ok);
	put_lookup_stats(o, lk, &ok);
	return km_json_finish(o, ok);
}

cJSON *km_answer_message(const struct km_message *m)
{
	cJSON *o = cJSON_CreateObject();
	char *b64 = malloc(KM_BASE64_LEN(m->payload_len) + 1);
	struct km_id id;
	bool ok = o && b64;

	memcpy(id.b, m->id, KM_ID_LEN);
	km_json_str(o, "event", "message", &ok);
	km_json_id(o, "id", &id, &ok);
	km_json_id(o, "origin", &m->origin, &ok);
	km_json_num(o, "hops", m->hops, &ok);
	km_json_num(o, "size", (double)m->payload_len, &ok);
	if (ok)
		km_base64_encode(m->payload, m->payload_len, b64);
	km_json_str(o, "payload_b64", b64, &ok);
	free(b64);
	return km_json_finish(o, ok);
}
