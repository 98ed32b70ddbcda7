/* KRPC, the Mainline DHT's message layer (BEP 5), with the extensions
 * kadmesh speaks: BEP 32 (IPv6: nodes6, want), BEP 42 (the `ip` field that
 * tells a requester its external address) and BEP 43 (`ro`, read-only).
 *
 * Decoding never allocates: compact node lists point into the caller's
 * buffer, which must outlive the decoded message.  Everything else is copied
 * into fixed-size fields, and anything that does not fit is an error, not a
 * truncation -- except `values`, whose surplus is dropped and counted,
 * because real peers send long peer lists and the first few hundred are as
 * good as the rest.
 *
 * Real peers differ; the decoder tolerates: replies with more nodes than
 * asked for, no `v` field, unknown keys anywhere (ignored), and packets up
 * to KM_KRPC_MAX_PACKET. */
#ifndef KM_PROTO_KRPC_H
#define KM_PROTO_KRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"
#include "proto/compact.h"
#include "proto/node.h"

#define KM_KRPC_MAX_PACKET 65536
#define KM_KRPC_TID_MAX 32       /* transaction ids are 2-4 bytes in practice */
#define KM_KRPC_TOKEN_MAX 64
#define KM_KRPC_V_MAX 16         /* BEP 20 style: 2 bytes client + 2 version */
#define KM_KRPC_METHOD_MAX 32
#define KM_KRPC_ERRMSG_MAX 128
#define KM_KRPC_VALUES_MAX 256   /* peers kept from one get_peers reply */

/* What kadmesh puts in `v`: "KM" plus a 2-byte version (BEP 20 style). */
#define KM_KRPC_CLIENT_V "KM\x00\x01"
#define KM_KRPC_CLIENT_V_LEN 4

/* Bencode items (strings, integers, lists, dicts) one packet may hold.  The
 * decoder's node array lives on the stack (24 bytes each); a packet with more
 * items fails with KM_ERR_TOO_MANY.  `nodes` is one string, so only `values`
 * lists of ~1000 peers or hostile packets reach this. */
#define KM_KRPC_ITEMS_MAX 1024

enum km_krpc_type { KM_KRPC_QUERY, KM_KRPC_RESPONSE, KM_KRPC_ERROR };

enum km_krpc_method {
	KM_KRPC_UNKNOWN_METHOD = 0, /* a query we do not implement: answer 204 */
	KM_KRPC_PING,
	KM_KRPC_FIND_NODE,
	KM_KRPC_GET_PEERS,
	KM_KRPC_ANNOUNCE_PEER,
};

/* BEP 5 error codes. */
enum km_krpc_error {
	KM_KRPC_ERR_GENERIC = 201,
	KM_KRPC_ERR_SERVER = 202,
	KM_KRPC_ERR_PROTOCOL = 203, /* malformed packet, invalid arguments, bad token */
	KM_KRPC_ERR_METHOD = 204,   /* method unknown */
};

/* BEP 32 `want` flags. */
enum { KM_WANT_N4 = 1, KM_WANT_N6 = 2 };

struct km_krpc_msg {
	enum km_krpc_type type;
	uint8_t tid[KM_KRPC_TID_MAX];
	size_t tid_len;

	/* Top-level extras, on any message type. */
	uint8_t v[KM_KRPC_V_MAX]; /* client version; v_len 0 = absent */
	size_t v_len;
	bool has_ip;              /* BEP 42: how the sender sees the receiver */
	struct km_addr ip;
	bool ro;                  /* BEP 43: the querier is read-only */

	/* Queries: the method, plus its name for unknown methods (logs). */
	enum km_krpc_method method;
	char method_name[KM_KRPC_METHOD_MAX + 1];

	/* Query arguments ("a") or response values ("r"). */
	struct km_id id;          /* required in queries and responses */
	bool has_id;              /* false only for an unknown method's query
				     sent without one: id is zero then */
	struct km_id target;      /* find_node */
	struct km_id info_hash;   /* get_peers, announce_peer */
	uint16_t port;            /* announce_peer */
	bool implied_port;        /* announce_peer: use the source port */
	uint8_t token[KM_KRPC_TOKEN_MAX];
	size_t token_len;         /* 0 = absent */
	int want;                 /* KM_WANT_* bits; 0 = absent */

	/* Responses: compact node info, pointing into the decoded buffer.
	 * Lengths are validated multiples of 26 and 38. */
	const uint8_t *nodes;
	size_t nodes_len;
	const uint8_t *nodes6;
	size_t nodes6_len;
	/* Compact peers from get_peers `values` (6 or 18 bytes each). */
	struct km_addr values[KM_KRPC_VALUES_MAX];
	size_t values_count;
	size_t values_dropped;    /* well-formed peers beyond the cap */

	/* Errors ("e"). */
	int error_code;
	char error_msg[KM_KRPC_ERRMSG_MAX + 1];
};

/* Resets m to an empty message of the given type. */
void km_krpc_init(struct km_krpc_msg *m, enum km_krpc_type type);

/* Decodes one UDP payload.  Returns 0, or a negative KM_ERR_* naming the
 * first problem.  Even on failure, m->type and m->tid/tid_len are filled
 * whenever the packet got that far, so that a query can be answered with
 * error 203 and its own transaction id. */
int km_krpc_decode(const uint8_t *buf, size_t len, struct km_krpc_msg *m);

/* Encodes m with dict keys sorted as bencode requires.  For responses,
 * nodes/nodes6 are copied from the pointers in m, which must not point into
 * out.  Returns the length
 * written, or KM_ERR_BUF / KM_ERR_INVAL. */
int km_krpc_encode(const struct km_krpc_msg *m, uint8_t *out, size_t cap);

const char *km_krpc_method_name(enum km_krpc_method m);

#endif
