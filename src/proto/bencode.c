#include "proto/bencode.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "proto/err.h"

/* Decoder. */

struct frame {
	uint32_t node;     /* the open container */
	uint32_t last_key; /* dicts: index of the previous key, 0 = none yet */
};

struct parser {
	const uint8_t *buf;
	size_t len;
	size_t pos;
	struct km_bnode *nodes;
	size_t max;
	size_t n;
	bool strict;
	unsigned max_depth;
	unsigned depth;
	struct frame stack[KM_BENCODE_DEPTH_MAX];
};

void km_bencode_limits_default(struct km_bencode_limits *lim)
{
	lim->max_depth = KM_BENCODE_DEPTH_DEFAULT;
	lim->strict_order = true;
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static struct frame *top(struct parser *p)
{
	return p->depth ? &p->stack[p->depth - 1] : NULL;
}

/* Appends a node for the value starting at p->pos and counts it as a child
 * of the open container. */
static int add_node(struct parser *p, enum km_btype type)
{
	struct km_bnode *nd;
	struct frame *f = top(p);

	if (p->n >= p->max)
		return KM_ERR_TOO_MANY;
	nd = &p->nodes[p->n];
	memset(nd, 0, sizeof(*nd));
	nd->type = type;
	nd->start = (uint32_t)p->pos;
	if (f)
		p->nodes[f->node].u.count++;
	return (int)p->n++;
}

/* Scalars are complete when added, so they end here and `next` is known. */
static void finish_node(struct parser *p, int idx, size_t end)
{
	p->nodes[idx].len = (uint32_t)(end - p->nodes[idx].start);
	p->nodes[idx].next = (uint32_t)p->n;
	p->pos = end;
}

/* Reads the digits of an integer magnitude no larger than limit, starting at
 * *i, with no leading zeros. */
static int read_digits(const struct parser *p, size_t *i, uint64_t limit,
		       uint64_t *out)
{
	uint64_t v = 0;

	if (*i >= p->len)
		return KM_ERR_TRUNCATED;
	if (!is_digit(p->buf[*i]))
		return KM_ERR_SYNTAX;
	if (p->buf[*i] == '0') {
		(*i)++;
		if (*i < p->len && is_digit(p->buf[*i]))
			return KM_ERR_SYNTAX;
		*out = 0;
		return 0;
	}
	while (*i < p->len && is_digit(p->buf[*i])) {
		unsigned d = p->buf[*i] - '0';

		if (v > (limit - d) / 10)
			return KM_ERR_RANGE;
		v = v * 10 + d;
		(*i)++;
	}
	*out = v;
	return 0;
}

static int parse_int(struct parser *p)
{
	size_t i = p->pos + 1;
	bool neg = i < p->len && p->buf[i] == '-';
	uint64_t mag;
	int rc, idx;

	i += neg;
	if (neg && i < p->len && p->buf[i] == '0')
		return KM_ERR_SYNTAX; /* "i-0e" and "i-01e" */
	rc = read_digits(p, &i, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &mag);
	if (rc < 0)
		return rc;
	if (i >= p->len)
		return KM_ERR_TRUNCATED;
	if (p->buf[i] != 'e')
		return KM_ERR_SYNTAX;
	if ((idx = add_node(p, KM_BINT)) < 0)
		return idx;
	if (!neg)
		p->nodes[idx].u.i = (int64_t)mag;
	else
		p->nodes[idx].u.i = mag > INT64_MAX ? INT64_MIN : -(int64_t)mag;
	finish_node(p, idx, i + 1);
	return idx;
}

static int parse_str(struct parser *p)
{
	size_t i = p->pos;
	uint64_t slen;
	int rc, idx;

	rc = read_digits(p, &i, UINT32_MAX, &slen);
	if (rc < 0)
		return rc;
	if (i >= p->len)
		return KM_ERR_TRUNCATED;
	if (p->buf[i] != ':')
		return KM_ERR_SYNTAX;
	i++;
	if (slen > p->len - i)
		return KM_ERR_TRUNCATED;
	if ((idx = add_node(p, KM_BSTR)) < 0)
		return idx;
	p->nodes[idx].u.s.off = (uint32_t)i;
	p->nodes[idx].u.s.len = (uint32_t)slen;
	finish_node(p, idx, i + slen);
	return idx;
}

static int open_container(struct parser *p, enum km_btype type)
{
	int idx;

	if (p->depth >= p->max_depth)
		return KM_ERR_TOO_DEEP;
	if ((idx = add_node(p, type)) < 0)
		return idx;
	p->stack[p->depth].node = (uint32_t)idx;
	p->stack[p->depth].last_key = 0;
	p->depth++;
	p->pos++;
	return idx;
}

static int close_container(struct parser *p)
{
	struct frame *f = top(p);
	struct km_bnode *nd = &p->nodes[f->node];

	if (nd->type == KM_BDICT && nd->u.count % 2)
		return KM_ERR_SYNTAX; /* a key without its value */
	p->pos++;
	nd->len = (uint32_t)(p->pos - nd->start);
	nd->next = (uint32_t)p->n;
	p->depth--;
	return 0;
}

static int str_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;

	if (c)
		return c;
	return (alen > blen) - (alen < blen);
}

static int parse_key(struct parser *p)
{
	struct frame *f = top(p);
	const struct km_bnode *k, *prev;
	uint8_t c = p->buf[p->pos];
	int idx;

	if (c == 'i' || c == 'l' || c == 'd')
		return KM_ERR_TYPE;
	if ((idx = parse_str(p)) < 0)
		return idx;
	k = &p->nodes[idx];
	if (p->strict && f->last_key) {
		prev = &p->nodes[f->last_key];
		if (str_cmp(p->buf + k->u.s.off, k->u.s.len,
			    p->buf + prev->u.s.off, prev->u.s.len) <= 0)
			return KM_ERR_UNSORTED;
	}
	f->last_key = (uint32_t)idx;
	return idx;
}

static int parse_value(struct parser *p)
{
	uint8_t c = p->buf[p->pos];

	if (c == 'i')
		return parse_int(p);
	if (c == 'l')
		return open_container(p, KM_BLIST);
	if (c == 'd')
		return open_container(p, KM_BDICT);
	if (is_digit(c))
		return parse_str(p);
	return KM_ERR_SYNTAX;
}

/* Consumes one item: a scalar, a container's opening, or its closing 'e'. */
static int step(struct parser *p)
{
	struct frame *f = top(p);

	if (p->pos >= p->len)
		return KM_ERR_TRUNCATED;
	if (!f)
		return parse_value(p);
	if (p->buf[p->pos] == 'e')
		return close_container(p);
	if (p->nodes[f->node].type == KM_BDICT && p->nodes[f->node].u.count % 2 == 0)
		return parse_key(p);
	return parse_value(p);
}

int km_bencode_parse_partial(const uint8_t *buf, size_t len,
			     struct km_bnode *nodes, size_t max_nodes,
			     const struct km_bencode_limits *lim, size_t *used)
{
	struct km_bencode_limits def;
	struct parser p = { .buf = buf, .len = len, .nodes = nodes };
	int rc;

	*used = 0;
	if (!lim) {
		km_bencode_limits_default(&def);
		lim = &def;
	}
	if (lim->max_depth < 1 || lim->max_depth > KM_BENCODE_DEPTH_MAX)
		return KM_ERR_INVAL;
	if (len > KM_BENCODE_INPUT_MAX)
		return KM_ERR_TOO_LONG;
	p.max = max_nodes < INT_MAX ? max_nodes : INT_MAX;
	p.strict = lim->strict_order;
	p.max_depth = lim->max_depth;
	do {
		rc = step(&p);
	} while (rc >= 0 && p.depth > 0);
	*used = p.n;
	if (rc < 0)
		return rc;
	if (p.pos != len)
		return KM_ERR_TRAILING;
	return (int)p.n;
}

int km_bencode_parse(const uint8_t *buf, size_t len, struct km_bnode *nodes,
		     size_t max_nodes, const struct km_bencode_limits *lim)
{
	size_t used;

	return km_bencode_parse_partial(buf, len, nodes, max_nodes, lim, &used);
}

/* Lookups. */

static bool node_str_eq(const uint8_t *buf, const struct km_bnode *nd,
			const char *s, size_t slen)
{
	return nd->type == KM_BSTR && nd->u.s.len == slen &&
	       memcmp(buf + nd->u.s.off, s, slen) == 0;
}

int km_bencode_dict_get(const uint8_t *buf, const struct km_bnode *nodes,
			int dict, const char *key)
{
	size_t klen = strlen(key);
	uint32_t k;

	if (nodes[dict].type != KM_BDICT)
		return KM_ERR_TYPE;
	/* Keys are strings, so each value sits right after its key. */
	for (k = (uint32_t)dict + 1; k < nodes[dict].next; k = nodes[k + 1].next)
		if (node_str_eq(buf, &nodes[k], key, klen))
			return (int)k + 1;
	return KM_ERR_NOT_FOUND;
}

int km_bencode_int(const struct km_bnode *nodes, int i, int64_t *out)
{
	if (nodes[i].type != KM_BINT)
		return KM_ERR_TYPE;
	*out = nodes[i].u.i;
	return 0;
}

int km_bencode_str(const uint8_t *buf, const struct km_bnode *nodes, int i,
		   const uint8_t **p, size_t *len)
{
	if (nodes[i].type != KM_BSTR)
		return KM_ERR_TYPE;
	*p = buf + nodes[i].u.s.off;
	*len = nodes[i].u.s.len;
	return 0;
}

bool km_bencode_str_eq(const uint8_t *buf, const struct km_bnode *nodes, int i,
		       const char *s)
{
	return node_str_eq(buf, &nodes[i], s, strlen(s));
}

/* Encoder. */

void km_bencode_writer_init(struct km_bencode_writer *w, uint8_t *buf, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	/* finish() returns an int. */
	w->cap = cap < INT_MAX ? cap : INT_MAX;
}

static void fail(struct km_bencode_writer *w, int err)
{
	if (!w->err)
		w->err = err;
}

static void put_bytes(struct km_bencode_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (n > w->cap - w->len) {
		fail(w, KM_ERR_BUF);
		return;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

/* Checks that a value may start here and records that it did. */
static bool value_allowed(struct km_bencode_writer *w)
{
	if (w->err)
		return false;
	if (w->depth == 0) {
		if (w->done)
			fail(w, KM_ERR_INVAL);
		return !w->err;
	}
	if (w->open[w->depth - 1].dict) {
		if (!w->open[w->depth - 1].want_value) {
			fail(w, KM_ERR_INVAL);
			return false;
		}
		w->open[w->depth - 1].want_value = false;
	}
	return true;
}

static void scalar_done(struct km_bencode_writer *w)
{
	if (w->depth == 0)
		w->done = true;
}

void km_bencode_put_int(struct km_bencode_writer *w, int64_t v)
{
	char tmp[24];
	int n;

	if (!value_allowed(w))
		return;
	n = snprintf(tmp, sizeof(tmp), "i%" PRId64 "e", v);
	put_bytes(w, tmp, (size_t)n);
	scalar_done(w);
}

/* "<len>:" then the bytes.  Digits by hand: snprintf was a tenth of a
 * node's CPU time per reply, which writes some ten strings. */
static void put_raw_str(struct km_bencode_writer *w, const void *p, size_t len)
{
	char tmp[24];
	size_t i = sizeof(tmp), v = len;

	tmp[--i] = ':';
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	put_bytes(w, tmp + i, sizeof(tmp) - i);
	put_bytes(w, p, len);
}

void km_bencode_put_str(struct km_bencode_writer *w, const void *p, size_t len)
{
	if (!value_allowed(w))
		return;
	put_raw_str(w, p, len);
	scalar_done(w);
}

void km_bencode_put_cstr(struct km_bencode_writer *w, const char *s)
{
	km_bencode_put_str(w, s, strlen(s));
}

static void begin(struct km_bencode_writer *w, bool dict)
{
	if (!value_allowed(w))
		return;
	if (w->depth >= KM_BENCODE_WRITER_DEPTH) {
		fail(w, KM_ERR_TOO_DEEP);
		return;
	}
	put_bytes(w, dict ? "d" : "l", 1);
	if (w->err)
		return;
	memset(&w->open[w->depth], 0, sizeof(w->open[0]));
	w->open[w->depth].dict = dict;
	w->depth++;
}

void km_bencode_begin_list(struct km_bencode_writer *w)
{
	begin(w, false);
}

void km_bencode_begin_dict(struct km_bencode_writer *w)
{
	begin(w, true);
}

void km_bencode_put_key(struct km_bencode_writer *w, const void *p, size_t len)
{
	struct km_bencode_open *f = w->depth ? &w->open[w->depth - 1] : NULL;
	size_t key_off;

	if (w->err)
		return;
	if (!f || !f->dict || f->want_value) {
		fail(w, KM_ERR_INVAL);
		return;
	}
	if (f->has_key && str_cmp(p, len, w->buf + f->key_off, f->key_len) <= 0) {
		fail(w, KM_ERR_UNSORTED);
		return;
	}
	put_raw_str(w, p, len);
	if (w->err)
		return;
	/* The key's bytes are the last len bytes written. */
	key_off = w->len - len;
	f->has_key = true;
	f->key_off = key_off;
	f->key_len = len;
	f->want_value = true;
}

void km_bencode_put_ckey(struct km_bencode_writer *w, const char *key)
{
	km_bencode_put_key(w, key, strlen(key));
}

void km_bencode_end(struct km_bencode_writer *w)
{
	struct km_bencode_open *f = w->depth ? &w->open[w->depth - 1] : NULL;

	if (w->err)
		return;
	if (!f || (f->dict && f->want_value)) {
		fail(w, KM_ERR_INVAL);
		return;
	}
	put_bytes(w, "e", 1);
	if (w->err)
		return;
	if (--w->depth == 0)
		w->done = true;
}

int km_bencode_finish(struct km_bencode_writer *w)
{
	if (w->err)
		return w->err;
	if (w->depth > 0 || !w->done)
		return KM_ERR_INVAL;
	return (int)w->len;
}
