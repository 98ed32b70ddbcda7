/* Bencode (BEP 3) without allocation.
 *
 * The decoder works like jsmn: one pass over the input fills a caller-owned
 * array of nodes in document order, each naming its type and where its bytes
 * are.  Nothing is copied; strings point back into the input by offset, so the
 * input must outlive the nodes.  Work is O(input) and memory is the caller's
 * array plus a fixed stack of KM_BENCODE_DEPTH_MAX entries, so hostile input
 * (10,000 nested lists, absurd lengths) costs nothing extra.
 *
 * The encoder writes into a caller buffer and keeps the first error, so a
 * caller can emit a whole message and check once in km_bencode_finish(). */
#ifndef KM_PROTO_BENCODE_H
#define KM_PROTO_BENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KM_BENCODE_DEPTH_DEFAULT 32
#define KM_BENCODE_DEPTH_MAX 64     /* hard cap on lim->max_depth */
#define KM_BENCODE_INPUT_MAX UINT32_MAX /* offsets are 32-bit */

enum km_btype { KM_BNONE = 0, KM_BINT, KM_BSTR, KM_BLIST, KM_BDICT };

struct km_bnode {
	uint8_t type;       /* enum km_btype */
	uint32_t start;     /* offset of the value's first byte in the input */
	uint32_t len;       /* raw length, through the closing 'e' */
	/* Index of the node after this value and all its descendants: the next
	 * sibling, or the first node past the parent.  0 while a container is
	 * still open (only seen after a failed parse, see *used). */
	uint32_t next;
	union {
		int64_t i;                       /* KM_BINT */
		struct {
			uint32_t off;            /* first byte of the string */
			uint32_t len;
		} s;                             /* KM_BSTR */
		uint32_t count;                  /* KM_BLIST, KM_BDICT: direct
						  * children, keys and values
						  * both counted */
	} u;
};

struct km_bencode_limits {
	unsigned max_depth;  /* open containers allowed, 1..KM_BENCODE_DEPTH_MAX */
	bool strict_order;   /* reject dict keys not strictly ascending */
};

/* max_depth 32, strict key order. */
void km_bencode_limits_default(struct km_bencode_limits *lim);

/* Parses exactly one value filling all of buf.  lim NULL means the defaults.
 * Returns the number of nodes used (>= 1), or:
 *   KM_ERR_TRUNCATED  the input ended inside a value (including empty input)
 *   KM_ERR_SYNTAX     a byte that cannot start or continue a value: leading
 *                     zeros ("i03e", "03:abc"), "i-0e", "ie", "i-e", a
 *                     length without ':', an 'e' where a dict value belongs
 *   KM_ERR_RANGE      an integer outside int64, or a string length that
 *                     cannot fit in 32 bits (no input we accept is that long);
 *                     a shorter length past the end of input is TRUNCATED
 *   KM_ERR_TYPE       a dict key that is not a string
 *   KM_ERR_UNSORTED   with strict_order, a key not above the previous one
 *   KM_ERR_TOO_DEEP   more than lim->max_depth open containers
 *   KM_ERR_TOO_MANY   more nodes than max_nodes
 *   KM_ERR_TRAILING   bytes after the value
 *   KM_ERR_TOO_LONG   len > KM_BENCODE_INPUT_MAX
 *   KM_ERR_INVAL      lim->max_depth outside 1..KM_BENCODE_DEPTH_MAX
 * Without strict_order, repeated keys are kept and lookups see the first. */
int km_bencode_parse(const uint8_t *buf, size_t len, struct km_bnode *nodes,
		     size_t max_nodes, const struct km_bencode_limits *lim);

/* The same, and *used reports how many nodes were written, also on failure.
 * After a failure, strings and integers written are complete, and containers
 * still open have next == 0: enough to salvage fields that precede the error
 * (KRPC uses it to answer a broken query with its own transaction id). */
int km_bencode_parse_partial(const uint8_t *buf, size_t len,
			     struct km_bnode *nodes, size_t max_nodes,
			     const struct km_bencode_limits *lim, size_t *used);

/* Index of the value stored under key in the dict at nodes[dict] (the first
 * one if repeated), KM_ERR_NOT_FOUND, or KM_ERR_TYPE if nodes[dict] is not a
 * dict.  Linear in the dict's size. */
int km_bencode_dict_get(const uint8_t *buf, const struct km_bnode *nodes,
			int dict, const char *key);

/* Walking containers: children of nodes[c] are i = km_bencode_first(c) while
 * i < nodes[c].next, stepping with i = nodes[i].next.  In a dict the
 * children alternate key, value. */
static inline int km_bencode_first(int container)
{
	return container + 1;
}

/* Typed getters: 0, or KM_ERR_TYPE if nodes[i] has another type. */
int km_bencode_int(const struct km_bnode *nodes, int i, int64_t *out);
int km_bencode_str(const uint8_t *buf, const struct km_bnode *nodes, int i,
		   const uint8_t **p, size_t *len);

/* True if nodes[i] is a string equal to the NUL-terminated s. */
bool km_bencode_str_eq(const uint8_t *buf, const struct km_bnode *nodes, int i,
		       const char *s);

/* Encoder. */
#define KM_BENCODE_WRITER_DEPTH KM_BENCODE_DEPTH_DEFAULT

struct km_bencode_writer {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int err;            /* first error, sticky */
	unsigned depth;     /* open containers */
	bool done;          /* a complete top-level value was written */
	struct km_bencode_open {
		bool dict;
		bool want_value; /* dict: a key was written, its value is due */
		bool has_key;
		size_t key_off;  /* last key, in buf, for the order check */
		size_t key_len;
	} open[KM_BENCODE_WRITER_DEPTH];
};

void km_bencode_writer_init(struct km_bencode_writer *w, uint8_t *buf, size_t cap);
void km_bencode_put_int(struct km_bencode_writer *w, int64_t v);
void km_bencode_put_str(struct km_bencode_writer *w, const void *p, size_t len);
void km_bencode_put_cstr(struct km_bencode_writer *w, const char *s);
void km_bencode_begin_list(struct km_bencode_writer *w);
void km_bencode_begin_dict(struct km_bencode_writer *w);
/* Keys must come in strictly ascending byte order. */
void km_bencode_put_key(struct km_bencode_writer *w, const void *p, size_t len);
void km_bencode_put_ckey(struct km_bencode_writer *w, const char *key);
void km_bencode_end(struct km_bencode_writer *w);

/* Length written, or the first error:
 *   KM_ERR_BUF       the buffer (or INT_MAX) was too small
 *   KM_ERR_UNSORTED  a dict key not above the previous key
 *   KM_ERR_TOO_DEEP  more than KM_BENCODE_WRITER_DEPTH open containers
 *   KM_ERR_INVAL     unbalanced begin/end, a value where a key is due or
 *                    the reverse, no value or a second top-level value */
int km_bencode_finish(struct km_bencode_writer *w);

#endif
