#include "proto/krpc.h"

#include <limits.h>
#include <string.h>

#include "proto/bencode.h"
#include "proto/err.h"

static const char *const method_names[] = {
	[KM_KRPC_UNKNOWN_METHOD] = "unknown",
	[KM_KRPC_PING] = "ping",
	[KM_KRPC_FIND_NODE] = "find_node",
	[KM_KRPC_GET_PEERS] = "get_peers",
	[KM_KRPC_ANNOUNCE_PEER] = "announce_peer",
};

#define METHOD_COUNT (sizeof(method_names) / sizeof(method_names[0]))

const char *km_krpc_method_name(enum km_krpc_method m)
{
	if ((unsigned)m >= METHOD_COUNT)
		return method_names[KM_KRPC_UNKNOWN_METHOD];
	return method_names[m];
}

void km_krpc_init(struct km_krpc_msg *m, enum km_krpc_type type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
}

/* Decoding.  A parsed packet is a buffer plus its bencode nodes; the getters
 * below return 1 (found), 0 (absent) or a negative KM_ERR_*. */

struct doc {
	const uint8_t *buf;
	const struct km_bnode *n;
};

static int find(const struct doc *d, int dict, const char *key)
{
	int i = km_bencode_dict_get(d->buf, d->n, dict, key);

	return i == KM_ERR_NOT_FOUND ? 0 : i;
}

static int get_str(const struct doc *d, int dict, const char *key,
		   const uint8_t **p, size_t *len)
{
	int i = find(d, dict, key);

	if (i <= 0)
		return i;
	if (km_bencode_str(d->buf, d->n, i, p, len) < 0)
		return KM_ERR_TYPE;
	return 1;
}

/* A string of at most max bytes, copied into out. */
static int get_bytes(const struct doc *d, int dict, const char *key,
		     uint8_t *out, size_t max, size_t *len)
{
	const uint8_t *p;
	int rc = get_str(d, dict, key, &p, len);

	if (rc <= 0)
		return rc;
	if (*len > max)
		return KM_ERR_TOO_LONG;
	if (*len)
		memcpy(out, p, *len);
	return 1;
}

/* A node id or info hash: exactly 20 bytes. */
static int get_id(const struct doc *d, int dict, const char *key, struct km_id *out)
{
	const uint8_t *p;
	size_t len;
	int rc = get_str(d, dict, key, &p, &len);

	if (rc <= 0)
		return rc;
	if (len != KM_ID_LEN)
		return KM_ERR_SYNTAX;
	memcpy(out->b, p, KM_ID_LEN);
	return 1;
}

static int need_id(const struct doc *d, int dict, const char *key, struct km_id *out)
{
	int rc = get_id(d, dict, key, out);

	return rc == 0 ? KM_ERR_MISSING : rc;
}

static int get_int(const struct doc *d, int dict, const char *key, int64_t *v)
{
	int i = find(d, dict, key);

	if (i <= 0)
		return i;
	return km_bencode_int(d->n, i, v) < 0 ? KM_ERR_TYPE : 1;
}

/* Method names and error messages end up in logs: keep them printable. */
static void copy_printable(char *dst, const uint8_t *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
	dst[len] = '\0';
}

/* The envelope: t and y, walked without lookups so that it also works on the
 * nodes a failed parse left behind.  The first occurrence of a key wins, as
 * in km_bencode_dict_get().  Without a usable y, the type is guessed from the
 * body (r or e) so that a broken response is not answered as a query. */
struct envelope {
	int t_err;  /* 1 seen, 0 absent, or the error */
	int y_err;
	bool saw_r, saw_e;
};

static int read_tid(const struct doc *d, int i, struct km_krpc_msg *m)
{
	const struct km_bnode *nd = &d->n[i];

	if (nd->type != KM_BSTR)
		return KM_ERR_TYPE;
	if (nd->u.s.len == 0)
		return KM_ERR_MISSING;
	if (nd->u.s.len > KM_KRPC_TID_MAX)
		return KM_ERR_TOO_LONG;
	memcpy(m->tid, d->buf + nd->u.s.off, nd->u.s.len);
	m->tid_len = nd->u.s.len;
	return 1;
}

static int read_type(const struct doc *d, int i, struct km_krpc_msg *m)
{
	if (d->n[i].type != KM_BSTR)
		return KM_ERR_TYPE;
	if (km_bencode_str_eq(d->buf, d->n, i, "q"))
		m->type = KM_KRPC_QUERY;
	else if (km_bencode_str_eq(d->buf, d->n, i, "r"))
		m->type = KM_KRPC_RESPONSE;
	else if (km_bencode_str_eq(d->buf, d->n, i, "e"))
		m->type = KM_KRPC_ERROR;
	else
		return KM_ERR_UNKNOWN_TYPE;
	return 1;
}

static void read_envelope(const struct doc *d, size_t used, struct km_krpc_msg *m,
			  struct envelope *env)
{
	size_t k = 1, v;

	memset(env, 0, sizeof(*env));
	while ((v = k + 1) < used) {
		if (!env->t_err && km_bencode_str_eq(d->buf, d->n, (int)k, "t"))
			env->t_err = read_tid(d, (int)v, m);
		else if (!env->y_err && km_bencode_str_eq(d->buf, d->n, (int)k, "y"))
			env->y_err = read_type(d, (int)v, m);
		else if (km_bencode_str_eq(d->buf, d->n, (int)k, "r"))
			env->saw_r = true;
		else if (km_bencode_str_eq(d->buf, d->n, (int)k, "e"))
			env->saw_e = true;
		k = d->n[v].next;
		if (k == 0) /* a container the failed parse left open */
			break;
	}
	if (env->y_err != 1 && (env->saw_r || env->saw_e))
		m->type = env->saw_r ? KM_KRPC_RESPONSE : KM_KRPC_ERROR;
}

static int check_envelope(const struct envelope *env)
{
	if (env->t_err < 0)
		return env->t_err;
	if (env->t_err == 0)
		return KM_ERR_MISSING;
	if (env->y_err < 0)
		return env->y_err;
	return env->y_err == 0 ? KM_ERR_MISSING : 0;
}

/* Top-level v, ip (BEP 42) and ro (BEP 43), on any message type. */
static int decode_extras(const struct doc *d, struct km_krpc_msg *m)
{
	const uint8_t *p;
	size_t len;
	int64_t ro;
	int rc;

	rc = get_bytes(d, 0, "v", m->v, KM_KRPC_V_MAX, &m->v_len);
	if (rc < 0)
		return rc;
	rc = get_str(d, 0, "ip", &p, &len);
	if (rc < 0)
		return rc;
	if (rc > 0 && !(m->has_ip = km_compact_peer_read(p, len, &m->ip)))
		return KM_ERR_SYNTAX;
	rc = get_int(d, 0, "ro", &ro);
	if (rc < 0)
		return rc;
	m->ro = rc > 0 && ro != 0;
	return 0;
}

/* BEP 32: a list of strings; unknown ones are for other extensions. */
static int decode_want(const struct doc *d, int args, struct km_krpc_msg *m)
{
	int w = find(d, args, "want");

	if (w <= 0)
		return w;
	if (d->n[w].type != KM_BLIST)
		return KM_ERR_TYPE;
	for (uint32_t i = (uint32_t)km_bencode_first(w); i < d->n[w].next; i = d->n[i].next) {
		if (d->n[i].type != KM_BSTR)
			return KM_ERR_TYPE;
		if (km_bencode_str_eq(d->buf, d->n, (int)i, "n4"))
			m->want |= KM_WANT_N4;
		else if (km_bencode_str_eq(d->buf, d->n, (int)i, "n6"))
			m->want |= KM_WANT_N6;
	}
	return 0;
}

/* BEP 5: with implied_port set the port is ignored, so it may be absent or
 * out of range; it is kept only when valid. */
static int decode_announce(const struct doc *d, int a, struct km_krpc_msg *m)
{
	int64_t implied = 0, port = 0;
	int rc, has_port;

	if ((rc = need_id(d, a, "info_hash", &m->info_hash)) < 0)
		return rc;
	if ((rc = get_int(d, a, "implied_port", &implied)) < 0)
		return rc;
	m->implied_port = implied != 0;
	if ((has_port = get_int(d, a, "port", &port)) < 0)
		return has_port;
	if (!m->implied_port && !has_port)
		return KM_ERR_MISSING;
	if (port >= 1 && port <= 65535)
		m->port = (uint16_t)port;
	else if (!m->implied_port)
		return KM_ERR_RANGE;
	rc = get_bytes(d, a, "token", m->token, KM_KRPC_TOKEN_MAX, &m->token_len);
	if (rc < 0)
		return rc;
	return m->token_len ? 0 : KM_ERR_MISSING;
}

static int decode_args(const struct doc *d, int a, struct km_krpc_msg *m)
{
	int rc = get_id(d, a, "id", &m->id);

	if (rc < 0)
		return rc;
	if (rc == 0 && m->method != KM_KRPC_UNKNOWN_METHOD)
		return KM_ERR_MISSING;
	m->has_id = rc > 0;
	switch (m->method) {
	case KM_KRPC_FIND_NODE:
		if ((rc = need_id(d, a, "target", &m->target)) < 0)
			return rc;
		return decode_want(d, a, m);
	case KM_KRPC_GET_PEERS:
		if ((rc = need_id(d, a, "info_hash", &m->info_hash)) < 0)
			return rc;
		return decode_want(d, a, m);
	case KM_KRPC_ANNOUNCE_PEER:
		return decode_announce(d, a, m);
	default:
		return 0;
	}
}

static int decode_query(const struct doc *d, struct km_krpc_msg *m)
{
	const uint8_t *q;
	size_t len;
	int a, rc = get_str(d, 0, "q", &q, &len);

	if (rc <= 0)
		return rc ? rc : KM_ERR_MISSING;
	if (len > KM_KRPC_METHOD_MAX)
		return KM_ERR_TOO_LONG;
	copy_printable(m->method_name, q, len);
	for (size_t i = 1; i < METHOD_COUNT; i++)
		if (strlen(method_names[i]) == len && memcmp(method_names[i], q, len) == 0)
			m->method = (enum km_krpc_method)i;
	if ((a = find(d, 0, "a")) <= 0)
		return a ? a : KM_ERR_MISSING;
	if (d->n[a].type != KM_BDICT)
		return KM_ERR_TYPE;
	return decode_args(d, a, m);
}

/* A compact node list: one string, a whole number of entries. */
static int get_nodes(const struct doc *d, int r, const char *key, size_t entry,
		     const uint8_t **p, size_t *len)
{
	int rc = get_str(d, r, key, p, len);

	if (rc <= 0)
		return rc;
	return *len % entry ? KM_ERR_SYNTAX : 1;
}

static int decode_values(const struct doc *d, int r, struct km_krpc_msg *m)
{
	const uint8_t *p;
	size_t len;
	int v = find(d, r, "values");

	if (v <= 0)
		return v;
	if (d->n[v].type != KM_BLIST)
		return KM_ERR_TYPE;
	for (uint32_t i = (uint32_t)km_bencode_first(v); i < d->n[v].next; i = d->n[i].next) {
		if (km_bencode_str(d->buf, d->n, (int)i, &p, &len) < 0)
			return KM_ERR_TYPE;
		if (len != KM_COMPACT_PEER4_LEN && len != KM_COMPACT_PEER6_LEN)
			return KM_ERR_SYNTAX;
		if (m->values_count < KM_KRPC_VALUES_MAX)
			km_compact_peer_read(p, len, &m->values[m->values_count++]);
		else
			m->values_dropped++;
	}
	return 0;
}

static int decode_response(const struct doc *d, struct km_krpc_msg *m)
{
	int rc, r = find(d, 0, "r");

	if (r <= 0)
		return r ? r : KM_ERR_MISSING;
	if (d->n[r].type != KM_BDICT)
		return KM_ERR_TYPE;
	if ((rc = need_id(d, r, "id", &m->id)) < 0)
		return rc;
	m->has_id = true;
	rc = get_nodes(d, r, "nodes", KM_COMPACT_NODE4_LEN, &m->nodes, &m->nodes_len);
	if (rc < 0)
		return rc;
	rc = get_nodes(d, r, "nodes6", KM_COMPACT_NODE6_LEN, &m->nodes6, &m->nodes6_len);
	if (rc < 0)
		return rc;
	rc = get_bytes(d, r, "token", m->token, KM_KRPC_TOKEN_MAX, &m->token_len);
	if (rc < 0)
		return rc;
	return decode_values(d, r, m);
}

/* e = [code, message]; further items are ignored. */
static int decode_error(const struct doc *d, struct km_krpc_msg *m)
{
	const uint8_t *msg;
	size_t len;
	int64_t code;
	int e = find(d, 0, "e"), c;

	if (e <= 0)
		return e ? e : KM_ERR_MISSING;
	if (d->n[e].type != KM_BLIST)
		return KM_ERR_TYPE;
	if (d->n[e].u.count < 2)
		return KM_ERR_MISSING;
	c = km_bencode_first(e);
	if (km_bencode_int(d->n, c, &code) < 0 ||
	    km_bencode_str(d->buf, d->n, (int)d->n[c].next, &msg, &len) < 0)
		return KM_ERR_TYPE;
	if (code < INT_MIN || code > INT_MAX)
		return KM_ERR_RANGE;
	if (len > KM_KRPC_ERRMSG_MAX)
		return KM_ERR_TOO_LONG;
	m->error_code = (int)code;
	copy_printable(m->error_msg, msg, len);
	return 0;
}

static int decode_body(const struct doc *d, struct km_krpc_msg *m)
{
	int rc = decode_extras(d, m);

	if (rc < 0)
		return rc;
	switch (m->type) {
	case KM_KRPC_QUERY: return decode_query(d, m);
	case KM_KRPC_RESPONSE: return decode_response(d, m);
	default: return decode_error(d, m);
	}
}

int km_krpc_decode(const uint8_t *buf, size_t len, struct km_krpc_msg *m)
{
	struct km_bnode nodes[KM_KRPC_ITEMS_MAX];
	/* Real peers do not all sort their keys; being strict buys nothing. */
	struct km_bencode_limits lim = {
		.max_depth = KM_BENCODE_DEPTH_DEFAULT, .strict_order = false,
	};
	struct doc d = { buf, nodes };
	struct envelope env;
	size_t used;
	int prc, rc;

	km_krpc_init(m, KM_KRPC_QUERY);
	if (len > KM_KRPC_MAX_PACKET)
		return KM_ERR_TOO_LONG;
	prc = km_bencode_parse_partial(buf, len, nodes, KM_KRPC_ITEMS_MAX, &lim, &used);
	if (used == 0)
		return prc < 0 ? prc : KM_ERR_SYNTAX;
	if (nodes[0].type != KM_BDICT)
		return KM_ERR_TYPE;
	read_envelope(&d, used, m, &env);
	if (prc < 0)
		return prc;
	if ((rc = check_envelope(&env)) < 0)
		return rc;
	return decode_body(&d, m);
}

/* Encoding. */

static void put_want(struct km_bencode_writer *w, int want)
{
	km_bencode_put_ckey(w, "want");
	km_bencode_begin_list(w);
	if (want & KM_WANT_N4)
		km_bencode_put_cstr(w, "n4");
	if (want & KM_WANT_N6)
		km_bencode_put_cstr(w, "n6");
	km_bencode_end(w);
}

static void put_id(struct km_bencode_writer *w, const char *key, const struct km_id *id)
{
	km_bencode_put_ckey(w, key);
	km_bencode_put_str(w, id->b, KM_ID_LEN);
}

/* Keys in ascending order: id, implied_port, info_hash, port, target,
 * token, want. */
static void put_args(struct km_bencode_writer *w, const struct km_krpc_msg *m)
{
	enum km_krpc_method meth = m->method;
	bool announce = meth == KM_KRPC_ANNOUNCE_PEER;

	km_bencode_begin_dict(w);
	put_id(w, "id", &m->id);
	if (announce && m->implied_port) {
		km_bencode_put_ckey(w, "implied_port");
		km_bencode_put_int(w, 1);
	}
	if (announce || meth == KM_KRPC_GET_PEERS)
		put_id(w, "info_hash", &m->info_hash);
	if (announce) {
		km_bencode_put_ckey(w, "port");
		km_bencode_put_int(w, m->port);
	}
	if (meth == KM_KRPC_FIND_NODE)
		put_id(w, "target", &m->target);
	if (announce) {
		km_bencode_put_ckey(w, "token");
		km_bencode_put_str(w, m->token, m->token_len);
	}
	if (m->want && (meth == KM_KRPC_FIND_NODE || meth == KM_KRPC_GET_PEERS))
		put_want(w, m->want);
	km_bencode_end(w);
}

static void put_values(struct km_bencode_writer *w, const struct km_krpc_msg *m)
{
	uint8_t peer[KM_COMPACT_PEER6_LEN];
	int n;

	km_bencode_put_ckey(w, "values");
	km_bencode_begin_list(w);
	for (size_t i = 0; i < m->values_count; i++) {
		/* encodable() checked every family. */
		n = km_compact_peer_write(&m->values[i], peer, sizeof(peer));
		km_bencode_put_str(w, peer, n > 0 ? (size_t)n : 0);
	}
	km_bencode_end(w);
}

/* Keys in ascending order: id, nodes, nodes6, token, values. */
static void put_response(struct km_bencode_writer *w, const struct km_krpc_msg *m)
{
	km_bencode_begin_dict(w);
	put_id(w, "id", &m->id);
	if (m->nodes) {
		km_bencode_put_ckey(w, "nodes");
		km_bencode_put_str(w, m->nodes, m->nodes_len);
	}
	if (m->nodes6) {
		km_bencode_put_ckey(w, "nodes6");
		km_bencode_put_str(w, m->nodes6, m->nodes6_len);
	}
	if (m->token_len) {
		km_bencode_put_ckey(w, "token");
		km_bencode_put_str(w, m->token, m->token_len);
	}
	if (m->values_count)
		put_values(w, m);
	km_bencode_end(w);
}

static void put_error(struct km_bencode_writer *w, const struct km_krpc_msg *m)
{
	km_bencode_put_ckey(w, "e");
	km_bencode_begin_list(w);
	km_bencode_put_int(w, m->error_code);
	km_bencode_put_str(w, m->error_msg, strnlen(m->error_msg, KM_KRPC_ERRMSG_MAX));
	km_bencode_end(w);
}

static bool values_encodable(const struct km_krpc_msg *m)
{
	for (size_t i = 0; i < m->values_count; i++)
		if (km_addr_ip_len(&m->values[i]) == 0)
			return false;
	return true;
}

static bool encodable(const struct km_krpc_msg *m)
{
	if (m->tid_len == 0 || m->tid_len > KM_KRPC_TID_MAX ||
	    m->v_len > KM_KRPC_V_MAX || m->token_len > KM_KRPC_TOKEN_MAX ||
	    m->values_count > KM_KRPC_VALUES_MAX)
		return false;
	if (m->has_ip && km_addr_ip_len(&m->ip) == 0)
		return false;
	switch (m->type) {
	case KM_KRPC_QUERY:
		if (m->method == KM_KRPC_UNKNOWN_METHOD)
			return m->method_name[0] != '\0';
		return (unsigned)m->method < METHOD_COUNT &&
		       (m->method != KM_KRPC_ANNOUNCE_PEER || m->token_len > 0);
	case KM_KRPC_RESPONSE:
		return m->nodes_len % KM_COMPACT_NODE4_LEN == 0 &&
		       m->nodes6_len % KM_COMPACT_NODE6_LEN == 0 &&
		       (m->nodes || !m->nodes_len) && (m->nodes6 || !m->nodes6_len) &&
		       values_encodable(m);
	case KM_KRPC_ERROR:
		return true;
	}
	return false;
}

static void put_ip(struct km_bencode_writer *w, const struct km_addr *ip)
{
	uint8_t peer[KM_COMPACT_PEER6_LEN];
	int n = km_compact_peer_write(ip, peer, sizeof(peer));

	km_bencode_put_ckey(w, "ip");
	km_bencode_put_str(w, peer, n > 0 ? (size_t)n : 0);
}

static const char *method_wire_name(const struct km_krpc_msg *m)
{
	if (m->method == KM_KRPC_UNKNOWN_METHOD)
		return m->method_name;
	return method_names[m->method];
}

/* Top-level keys in ascending order: a, e, ip, q, r, ro, t, v, y. */
int km_krpc_encode(const struct km_krpc_msg *m, uint8_t *out, size_t cap)
{
	static const char *const y[] = { "q", "r", "e" };
	struct km_bencode_writer w;

	if (!encodable(m))
		return KM_ERR_INVAL;
	km_bencode_writer_init(&w, out, cap);
	km_bencode_begin_dict(&w);
	if (m->type == KM_KRPC_QUERY) {
		km_bencode_put_ckey(&w, "a");
		put_args(&w, m);
	}
	if (m->type == KM_KRPC_ERROR)
		put_error(&w, m);
	if (m->has_ip)
		put_ip(&w, &m->ip);
	if (m->type == KM_KRPC_QUERY) {
		km_bencode_put_ckey(&w, "q");
		km_bencode_put_str(&w, method_wire_name(m),
				   strnlen(method_wire_name(m), KM_KRPC_METHOD_MAX));
	}
	if (m->type == KM_KRPC_RESPONSE) {
		km_bencode_put_ckey(&w, "r");
		put_response(&w, m);
	}
	if (m->ro) {
		km_bencode_put_ckey(&w, "ro");
		km_bencode_put_int(&w, 1);
	}
	km_bencode_put_ckey(&w, "t");
	km_bencode_put_str(&w, m->tid, m->tid_len);
	if (m->v_len) {
		km_bencode_put_ckey(&w, "v");
		km_bencode_put_str(&w, m->v, m->v_len);
	}
	km_bencode_put_ckey(&w, "y");
	km_bencode_put_cstr(&w, y[m->type]);
	km_bencode_end(&w);
	return km_bencode_finish(&w);
}
