#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/bencode.h"
#include "proto/err.h"

#define NODES 256

static struct km_bnode nodes[NODES];

static int parse_mode(const char *s, size_t len, bool strict)
{
	struct km_bencode_limits lim;

	km_bencode_limits_default(&lim);
	lim.strict_order = strict;
	return km_bencode_parse((const uint8_t *)s, len, nodes, NODES, &lim);
}

static int parse(const char *s)
{
	return parse_mode(s, strlen(s), true);
}

static void expect_str(const char *doc, int i, const char *want)
{
	const uint8_t *p;
	size_t len;

	cr_assert_eq(km_bencode_str((const uint8_t *)doc, nodes, i, &p, &len), 0);
	cr_assert_eq(len, strlen(want));
	cr_assert_eq(memcmp(p, want, len), 0);
}

/* Re-encodes the value at nodes[i] with the writer; returns the next index. */
static uint32_t reencode(const uint8_t *buf, uint32_t i, struct km_bencode_writer *w)
{
	const struct km_bnode *nd = &nodes[i];
	uint32_t c;
	bool key = true;

	switch (nd->type) {
	case KM_BINT:
		km_bencode_put_int(w, nd->u.i);
		return nd->next;
	case KM_BSTR:
		km_bencode_put_str(w, buf + nd->u.s.off, nd->u.s.len);
		return nd->next;
	}
	if (nd->type == KM_BDICT)
		km_bencode_begin_dict(w);
	else
		km_bencode_begin_list(w);
	for (c = (uint32_t)km_bencode_first((int)i); c < nd->next; key = !key) {
		if (nd->type == KM_BDICT && key) {
			km_bencode_put_key(w, buf + nodes[c].u.s.off, nodes[c].u.s.len);
			c = nodes[c].next;
		} else {
			c = reencode(buf, c, w);
		}
	}
	km_bencode_end(w);
	return nd->next;
}

static void expect_round_trip(const char *s)
{
	uint8_t out[1024];
	struct km_bencode_writer w;
	int n;

	cr_assert_gt(parse(s), 0, "%s", s);
	km_bencode_writer_init(&w, out, sizeof(out));
	reencode((const uint8_t *)s, 0, &w);
	n = km_bencode_finish(&w);
	cr_assert_eq(n, (int)strlen(s), "%s: %d", s, n);
	cr_assert_eq(memcmp(out, s, (size_t)n), 0, "%s", s);
}

Test(bencode, the_canonical_examples_from_bep_3_decode)
{
	const char *d = "d3:cow3:moo4:spam4:eggse";
	int i;

	cr_assert_eq(parse("4:spam"), 1);
	cr_assert_eq(nodes[0].type, KM_BSTR);
	expect_str("4:spam", 0, "spam");
	cr_assert_eq(parse("i3e"), 1);
	cr_assert_eq(nodes[0].u.i, 3);
	cr_assert_eq(parse("i-3e"), 1);
	cr_assert_eq(nodes[0].u.i, -3);
	cr_assert_eq(parse("i0e"), 1);
	cr_assert_eq(nodes[0].u.i, 0);
	cr_assert_eq(parse("0:"), 1);
	cr_assert_eq(nodes[0].u.s.len, 0);

	cr_assert_eq(parse("l4:spam4:eggse"), 3);
	cr_assert_eq(nodes[0].type, KM_BLIST);
	cr_assert_eq(nodes[0].u.count, 2);
	expect_str("l4:spam4:eggse", 1, "spam");
	expect_str("l4:spam4:eggse", 2, "eggs");

	cr_assert_eq(parse(d), 5);
	cr_assert_eq(nodes[0].type, KM_BDICT);
	cr_assert_eq(nodes[0].u.count, 4);
	i = km_bencode_dict_get((const uint8_t *)d, nodes, 0, "spam");
	cr_assert_eq(i, 4);
	expect_str(d, i, "eggs");
	cr_assert_eq(km_bencode_dict_get((const uint8_t *)d, nodes, 0, "moo"),
		     KM_ERR_NOT_FOUND);

	d = "d4:spaml1:a1:bee";
	cr_assert_eq(parse(d), 5);
	i = km_bencode_dict_get((const uint8_t *)d, nodes, 0, "spam");
	cr_assert_eq(nodes[i].type, KM_BLIST);
	cr_assert_eq(nodes[i].u.count, 2);
}

Test(bencode, nodes_record_raw_extent_and_next_sibling)
{
	const char *s = "ld1:ai1eel1:xei5ee";

	cr_assert_eq(parse(s), 7);
	/* 0 list, 1 dict, 2 "a", 3 1, 4 list, 5 "x", 6 5 */
	cr_assert_eq(nodes[0].next, 7);
	cr_assert_eq(nodes[1].next, 4);
	cr_assert_eq(nodes[1].start, 1);
	cr_assert_eq(nodes[1].len, 8);
	cr_assert_eq(nodes[2].next, 3);
	cr_assert_eq(nodes[4].next, 6);
	cr_assert_eq(nodes[4].start, 9);
	cr_assert_eq(nodes[4].len, 5);
	cr_assert_eq(nodes[6].u.i, 5);
	cr_assert_eq(nodes[0].u.count, 3);
	cr_assert_eq(nodes[0].len, strlen(s));
}

Test(bencode, values_round_trip_through_the_writer_byte_for_byte)
{
	expect_round_trip("4:spam");
	expect_round_trip("i-9223372036854775808e");
	expect_round_trip("i9223372036854775807e");
	expect_round_trip("le");
	expect_round_trip("de");
	expect_round_trip("l4:spam4:eggse");
	expect_round_trip("d3:cow3:moo4:spam4:eggse");
	expect_round_trip("d4:spaml1:a1:bee");
	expect_round_trip("d0:i0e1:ai1e2:abi2e1:bd1:xlleleeee");
	expect_round_trip("llllleeeei42e0:de1:ee");
}

Test(bencode, int64_limits_are_accepted_and_overflow_is_a_range_error)
{
	cr_assert_eq(parse("i9223372036854775807e"), 1);
	cr_assert_eq(nodes[0].u.i, INT64_MAX);
	cr_assert_eq(parse("i-9223372036854775808e"), 1);
	cr_assert_eq(nodes[0].u.i, INT64_MIN);
	cr_assert_eq(parse("i9223372036854775808e"), KM_ERR_RANGE);
	cr_assert_eq(parse("i-9223372036854775809e"), KM_ERR_RANGE);
	cr_assert_eq(parse("i99999999999999999999999999999e"), KM_ERR_RANGE);
}

Test(bencode, malformed_integers_are_syntax_errors)
{
	const char *bad[] = { "i03e", "i00e", "i-0e", "i-03e", "ie", "i-e",
			      "i+1e", "i 1e", "i1x", "i1-e", "i--1e", "ixe" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse(bad[i]), KM_ERR_SYNTAX, "%s", bad[i]);
}

Test(bencode, malformed_strings_and_stray_bytes_are_syntax_errors)
{
	const char *bad[] = { "03:abc", "00:", "4spam", "4x:spam", ":", "-1:a",
			      "x", "e", " i1e", "d1:ae", "d1:a1:b1:ce",
			      "l4:spamx", "dxe" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse(bad[i]), KM_ERR_SYNTAX, "%s", bad[i]);
}

Test(bencode, bytes_after_the_top_value_are_trailing)
{
	cr_assert_eq(parse("i1ei2e"), KM_ERR_TRAILING);
	cr_assert_eq(parse("4:spamx"), KM_ERR_TRAILING);
	cr_assert_eq(parse("lee"), KM_ERR_TRAILING);
	cr_assert_eq(parse("dee"), KM_ERR_TRAILING);
	cr_assert_eq(parse_mode("i1e\0", 4, true), KM_ERR_TRAILING);
}

Test(bencode, dict_keys_that_are_not_strings_are_type_errors)
{
	cr_assert_eq(parse("di1ei2ee"), KM_ERR_TYPE);
	cr_assert_eq(parse("dl1:aei1ee"), KM_ERR_TYPE);
	cr_assert_eq(parse("dd1:ai1eei1ee"), KM_ERR_TYPE);
	cr_assert_eq(parse("d1:ai1ei2ei3ee"), KM_ERR_TYPE);
}

Test(bencode, strict_mode_rejects_unsorted_and_repeated_keys)
{
	cr_assert_eq(parse("d1:bi1e1:ai2ee"), KM_ERR_UNSORTED);
	cr_assert_eq(parse("d1:ai1e1:ai2ee"), KM_ERR_UNSORTED);
	cr_assert_eq(parse("d2:abi1e1:ai2ee"), KM_ERR_UNSORTED);
	cr_assert_eq(parse("d1:ad1:bi1e1:ai2eee"), KM_ERR_UNSORTED);
	/* Raw byte order: shorter first, then bytes unsigned. */
	cr_assert_eq(parse("d1:ai1e2:abi2e1:\xffi3ee"), 7);
	/* Order is per dict: a nested dict starts over. */
	cr_assert_eq(parse("d1:bd1:ai1ee1:ci2ee"), 7);
}

Test(bencode, lenient_mode_accepts_unsorted_keys_and_lookups_see_the_first)
{
	const char *s = "d1:bi1e1:ai2e1:bi3ee";
	int i;

	cr_assert_eq(parse_mode(s, strlen(s), false), 7);
	i = km_bencode_dict_get((const uint8_t *)s, nodes, 0, "b");
	cr_assert_eq(nodes[i].u.i, 1);
	i = km_bencode_dict_get((const uint8_t *)s, nodes, 0, "a");
	cr_assert_eq(nodes[i].u.i, 2);
}

Test(bencode, nesting_ten_thousand_deep_is_too_deep_without_recursion)
{
	enum { N = 10000 };
	char *s = malloc(2 * N + 1);

	cr_assert_not_null(s);
	memset(s, 'l', N);
	cr_assert_eq(parse_mode(s, N, true), KM_ERR_TOO_DEEP);
	memset(s + N, 'e', N);
	cr_assert_eq(parse_mode(s, 2 * N, true), KM_ERR_TOO_DEEP);
	memset(s, 'd', N);
	cr_assert_eq(parse_mode(s, N, true), KM_ERR_TYPE); /* "dd": key must be a string */
	free(s);
}

Test(bencode, depth_limit_counts_open_containers)
{
	char s[2 * KM_BENCODE_DEPTH_MAX + 2];
	struct km_bencode_limits lim = { .max_depth = 32, .strict_order = true };

	memset(s, 'l', 32);
	memset(s + 32, 'e', 32);
	cr_assert_eq(km_bencode_parse((uint8_t *)s, 64, nodes, NODES, &lim), 32);
	memset(s, 'l', 33);
	memset(s + 33, 'e', 33);
	cr_assert_eq(km_bencode_parse((uint8_t *)s, 66, nodes, NODES, &lim), KM_ERR_TOO_DEEP);
	lim.max_depth = 2;
	cr_assert_eq(km_bencode_parse((uint8_t *)"lli1eee", 7, nodes, NODES, &lim), 3);
	cr_assert_eq(km_bencode_parse((uint8_t *)"llleee", 6, nodes, NODES, &lim),
		     KM_ERR_TOO_DEEP);
	lim.max_depth = 0;
	cr_assert_eq(km_bencode_parse((uint8_t *)"i1e", 3, nodes, NODES, &lim), KM_ERR_INVAL);
	lim.max_depth = KM_BENCODE_DEPTH_MAX + 1;
	cr_assert_eq(km_bencode_parse((uint8_t *)"i1e", 3, nodes, NODES, &lim), KM_ERR_INVAL);
}

Test(bencode, more_values_than_nodes_is_too_many)
{
	const uint8_t *s = (const uint8_t *)"li1ei2ei3ee";

	cr_assert_eq(km_bencode_parse(s, 11, nodes, 3, NULL), KM_ERR_TOO_MANY);
	cr_assert_eq(km_bencode_parse(s, 11, nodes, 4, NULL), 4);
	cr_assert_eq(km_bencode_parse(s, 11, nodes, 0, NULL), KM_ERR_TOO_MANY);
}

Test(bencode, absurd_string_lengths_are_range_errors_and_long_ones_truncated)
{
	cr_assert_eq(parse("99999999999999999999:x"), KM_ERR_RANGE);
	cr_assert_eq(parse("4294967296:x"), KM_ERR_RANGE);
	cr_assert_eq(parse("4294967295:x"), KM_ERR_TRUNCATED);
	cr_assert_eq(parse("100:x"), KM_ERR_TRUNCATED);
	cr_assert_eq(parse("l99999999999999999999:xe"), KM_ERR_RANGE);
	cr_assert_eq(parse("l2:xe"), KM_ERR_TRUNCATED);
}

Test(bencode, every_proper_prefix_of_a_valid_value_is_truncated)
{
	const char *valid[] = {
		"i-123e", "i0e", "10:0123456789", "0:",
		"d3:cow3:moo4:spam4:eggse", "d4:spaml1:a1:bee",
		"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
		"lli1eedeld0:leeee",
	};

	for (size_t v = 0; v < sizeof(valid) / sizeof(valid[0]); v++) {
		size_t len = strlen(valid[v]);

		cr_assert_gt(parse(valid[v]), 0);
		for (size_t cut = 0; cut < len; cut++) {
			cr_assert_eq(parse_mode(valid[v], cut, true), KM_ERR_TRUNCATED,
				     "%s cut at %zu", valid[v], cut);
			cr_assert_eq(parse_mode(valid[v], cut, false), KM_ERR_TRUNCATED);
		}
	}
}

Test(bencode, a_failed_parse_reports_the_nodes_it_completed)
{
	const char *s = "d1:t2:aa1:yl1:q";
	size_t used;
	int rc;

	rc = km_bencode_parse_partial((const uint8_t *)s, strlen(s), nodes, NODES,
				      NULL, &used);
	cr_assert_eq(rc, KM_ERR_TRUNCATED);
	cr_assert_eq(used, 6);
	cr_assert_eq(nodes[0].next, 0); /* still open */
	expect_str(s, 2, "aa");
	cr_assert_eq(nodes[2].next, 3);
	cr_assert_eq(nodes[4].type, KM_BLIST);
	cr_assert_eq(nodes[4].next, 0);
	expect_str(s, 5, "q");
}

Test(bencode, typed_getters_reject_the_wrong_type)
{
	const uint8_t *s = (const uint8_t *)"d1:ai1e1:b1:xe";
	const uint8_t *p;
	size_t len;
	int64_t v;

	cr_assert_eq(parse((const char *)s), 5);
	cr_assert_eq(km_bencode_int(nodes, 2, &v), 0);
	cr_assert_eq(v, 1);
	cr_assert_eq(km_bencode_int(nodes, 4, &v), KM_ERR_TYPE);
	cr_assert_eq(km_bencode_str(s, nodes, 2, &p, &len), KM_ERR_TYPE);
	cr_assert_eq(km_bencode_str(s, nodes, 4, &p, &len), 0);
	cr_assert(km_bencode_str_eq(s, nodes, 4, "x"));
	cr_assert_not(km_bencode_str_eq(s, nodes, 4, "xy"));
	cr_assert_not(km_bencode_str_eq(s, nodes, 2, "1"));
	cr_assert_eq(km_bencode_dict_get(s, nodes, 4, "a"), KM_ERR_TYPE);
	cr_assert_eq(parse("li1ee"), 2);
	cr_assert_eq(km_bencode_dict_get((const uint8_t *)"li1ee", nodes, 0, "a"), KM_ERR_TYPE);
}

static int write_sample(uint8_t *out, size_t cap)
{
	struct km_bencode_writer w;

	km_bencode_writer_init(&w, out, cap);
	km_bencode_begin_dict(&w);
	km_bencode_put_ckey(&w, "cow");
	km_bencode_put_cstr(&w, "moo");
	km_bencode_put_ckey(&w, "n");
	km_bencode_put_int(&w, -42);
	km_bencode_put_ckey(&w, "spam");
	km_bencode_begin_list(&w);
	km_bencode_put_cstr(&w, "a");
	km_bencode_put_str(&w, "\0b", 2);
	km_bencode_end(&w);
	km_bencode_end(&w);
	return km_bencode_finish(&w);
}

Test(bencode, writer_produces_canonical_bencode)
{
	static const char want[] = "d3:cow3:moo1:ni-42e4:spaml1:a2:\0bee";
	uint8_t out[64];
	int n = write_sample(out, sizeof(out));

	cr_assert_eq(n, (int)sizeof(want) - 1);
	cr_assert_eq(memcmp(out, want, sizeof(want) - 1), 0);
	cr_assert_eq(parse_mode((char *)out, (size_t)n, true), 9);
}

Test(bencode, writer_reports_overflow_at_every_short_size)
{
	uint8_t out[64];
	int full = write_sample(out, sizeof(out));

	for (int cap = 0; cap < full; cap++)
		cr_assert_eq(write_sample(out, (size_t)cap), KM_ERR_BUF, "cap %d", cap);
	cr_assert_eq(write_sample(out, (size_t)full), full);
}

Test(bencode, writer_rejects_unsorted_and_repeated_keys)
{
	uint8_t out[64];
	struct km_bencode_writer w;

	km_bencode_writer_init(&w, out, sizeof(out));
	km_bencode_begin_dict(&w);
	km_bencode_put_ckey(&w, "b");
	km_bencode_put_int(&w, 1);
	km_bencode_put_ckey(&w, "a");
	km_bencode_put_int(&w, 2);
	km_bencode_end(&w);
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_UNSORTED);

	km_bencode_writer_init(&w, out, sizeof(out));
	km_bencode_begin_dict(&w);
	km_bencode_put_ckey(&w, "a");
	km_bencode_put_int(&w, 1);
	km_bencode_put_ckey(&w, "a");
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_UNSORTED);

	/* A nested dict has its own order; the outer one resumes after it. */
	km_bencode_writer_init(&w, out, sizeof(out));
	km_bencode_begin_dict(&w);
	km_bencode_put_ckey(&w, "m");
	km_bencode_begin_dict(&w);
	km_bencode_put_ckey(&w, "z");
	km_bencode_put_int(&w, 1);
	km_bencode_end(&w);
	km_bencode_put_ckey(&w, "ma");
	km_bencode_put_int(&w, 2);
	km_bencode_end(&w);
	cr_assert_eq(km_bencode_finish(&w), (int)strlen("d1:md1:zi1ee2:mai2ee"));
}

Test(bencode, writer_rejects_nesting_past_its_depth)
{
	uint8_t out[256];
	struct km_bencode_writer w;

	km_bencode_writer_init(&w, out, sizeof(out));
	for (int i = 0; i < KM_BENCODE_WRITER_DEPTH; i++)
		km_bencode_begin_list(&w);
	for (int i = 0; i < KM_BENCODE_WRITER_DEPTH; i++)
		km_bencode_end(&w);
	cr_assert_eq(km_bencode_finish(&w), 2 * KM_BENCODE_WRITER_DEPTH);

	km_bencode_writer_init(&w, out, sizeof(out));
	for (int i = 0; i <= KM_BENCODE_WRITER_DEPTH; i++)
		km_bencode_begin_list(&w);
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_TOO_DEEP);
}

Test(bencode, writer_rejects_unbalanced_or_misplaced_items_and_errors_stick)
{
	uint8_t out[64];
	struct km_bencode_writer w;

	km_bencode_writer_init(&w, out, sizeof(out));
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_INVAL); /* nothing written */

	km_bencode_writer_init(&w, out, sizeof(out));
	km_bencode_end(&w);
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_INVAL);

	km_bencode_writer_init(&w, out, sizeof(out));
	km_bencode_begin_list(&w);
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_INVAL);

	km_bencode_writer_init(&w, out, sizeof(out));
	km_bencode_begin_dict(&w);
	km_bencode_put_int(&w, 1); /* a value where a key is due */
	km_bencode_end(&w);
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_INVAL);

	km_bencode_writer_init(&w, out, sizeof(out));
	km_bencode_begin_dict(&w);
	km_bencode_put_ckey(&w, "a");
	km_bencode_end(&w); /* the key has no value */
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_INVAL);

	km_bencode_writer_init(&w, out, sizeof(out));
	km_bencode_begin_list(&w);
	km_bencode_put_ckey(&w, "a"); /* keys only in dicts */
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_INVAL);

	km_bencode_writer_init(&w, out, sizeof(out));
	km_bencode_put_int(&w, 1);
	km_bencode_put_int(&w, 2); /* a second top-level value */
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_INVAL);

	/* The first error wins over later ones. */
	km_bencode_writer_init(&w, out, 4);
	km_bencode_begin_dict(&w);
	km_bencode_put_ckey(&w, "abcdef");
	km_bencode_end(&w);
	km_bencode_end(&w);
	cr_assert_eq(km_bencode_finish(&w), KM_ERR_BUF);
}

/* Deterministic xorshift, so failures reproduce. */
static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

Test(bencode, mutated_messages_never_crash_and_results_stay_in_bounds)
{
	static const char seed[] =
		"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e"
		"1:q9:find_node1:t2:aa1:y1:qe";
	uint8_t buf[sizeof(seed)];
	uint32_t rng = 12345;

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = sizeof(seed) - 1;
		int rc;

		memcpy(buf, seed, len);
		for (int k = 0; k < 1 + (int)(next_rand(&rng) % 4); k++)
			buf[next_rand(&rng) % len] = (uint8_t)next_rand(&rng);
		len -= next_rand(&rng) % 3 == 0 ? next_rand(&rng) % len : 0;
		rc = parse_mode((char *)buf, len, iter % 2);
		if (rc <= 0)
			continue;
		for (int i = 0; i < rc; i++) {
			cr_assert_leq((size_t)nodes[i].start + nodes[i].len, len);
			cr_assert_gt(nodes[i].next, (uint32_t)i);
			cr_assert_leq(nodes[i].next, (uint32_t)rc);
		}
	}
}
