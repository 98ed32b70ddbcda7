#include "proto/msg.h"

#include <stdbool.h>
#include <string.h>

#include "proto/err.h"
#include "proto/wire.h"

/* Turns a finished writer into the encoder's return value. */
static int written(const struct km_wire_writer *w)
{
	return w->overflow ? KM_ERR_BUF : (int)w->off;
}

/* Addresses travel as family u8 | IP (0, 4 or 16 bytes by family) | port. */
static int write_addr(struct km_wire_writer *w, const struct km_addr *a)
{
	if (a->family != KM_AF_NONE && a->family != KM_AF_INET4 &&
	    a->family != KM_AF_INET6)
		return KM_ERR_INVAL;
	km_wire_write_u8(w, a->family);
	km_wire_write(w, a->ip, km_addr_ip_len(a));
	km_wire_write_u16(w, a->port);
	return 0;
}

static int read_addr(struct km_wire_reader *r, struct km_addr *a, bool allow_none)
{
	memset(a, 0, sizeof(*a));
	a->family = km_wire_read_u8(r);
	if (r->short_read)
		return KM_ERR_TRUNCATED;
	if (a->family != KM_AF_INET4 && a->family != KM_AF_INET6 &&
	    !(allow_none && a->family == KM_AF_NONE))
		return KM_ERR_TYPE;
	km_wire_read_copy(r, a->ip, km_addr_ip_len(a));
	a->port = km_wire_read_u16(r);
	return r->short_read ? KM_ERR_TRUNCATED : 0;
}

int km_msg_hello_encode(uint8_t *out, size_t cap, const struct km_hello *h)
{
	struct km_wire_writer w;
	int rv;

	km_wire_writer_init(&w, out, cap);
	km_wire_write_u8(&w, h->version);
	km_wire_write_u32(&w, h->network);
	km_wire_write(&w, h->id.b, KM_ID_LEN);
	km_wire_write_u16(&w, h->listen_port);
	rv = write_addr(&w, &h->observed);
	if (h->has_key) {
		km_wire_write(&w, h->pubkey, KM_PUBKEY_LEN);
		km_wire_write(&w, h->nonce, KM_NONCE_LEN);
	}
	return rv < 0 ? rv : written(&w);
}

/* Bytes after the known fields are a later version's additions: skipped. */
int km_msg_hello_decode(const uint8_t *in, size_t len, struct km_hello *h)
{
	struct km_wire_reader r;
	int rv;

	km_wire_reader_init(&r, in, len);
	h->version = km_wire_read_u8(&r);
	h->network = km_wire_read_u32(&r);
	km_wire_read_copy(&r, h->id.b, KM_ID_LEN);
	h->listen_port = km_wire_read_u16(&r);
	rv = read_addr(&r, &h->observed, true);
	h->has_key = rv == 0 && km_wire_left(&r) >= KM_PUBKEY_LEN + KM_NONCE_LEN;
	if (h->has_key) {
		km_wire_read_copy(&r, h->pubkey, KM_PUBKEY_LEN);
		km_wire_read_copy(&r, h->nonce, KM_NONCE_LEN);
	}
	return rv;
}

int km_msg_peer_list_encode(uint8_t *out, size_t cap, const struct km_peer *peers,
			    size_t n)
{
	struct km_wire_writer w;
	int rv;

	if (n > KM_PEER_LIST_MAX)
		return KM_ERR_TOO_MANY;
	km_wire_writer_init(&w, out, cap);
	km_wire_write_u16(&w, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		if (peers[i].addr.family == KM_AF_NONE)
			return KM_ERR_INVAL;
		km_wire_write(&w, peers[i].id.b, KM_ID_LEN);
		rv = write_addr(&w, &peers[i].addr);
		if (rv < 0)
			return rv;
	}
	return written(&w);
}

int km_msg_peer_list_decode(const uint8_t *in, size_t len, struct km_peer *peers,
			    size_t cap)
{
	struct km_wire_reader r;
	uint16_t n;
	int rv;

	km_wire_reader_init(&r, in, len);
	n = km_wire_read_u16(&r);
	if (r.short_read)
		return KM_ERR_TRUNCATED;
	if (n > KM_PEER_LIST_MAX || n > cap)
		return KM_ERR_TOO_MANY;
	for (size_t i = 0; i < n; i++) {
		km_wire_read_copy(&r, peers[i].id.b, KM_ID_LEN);
		rv = read_addr(&r, &peers[i].addr, false);
		if (rv < 0)
			return rv;
	}
	return km_wire_left(&r) ? KM_ERR_TRAILING : (int)n;
}

int km_msg_ping_encode(uint8_t *out, size_t cap, uint64_t nonce)
{
	struct km_wire_writer w;

	km_wire_writer_init(&w, out, cap);
	km_wire_write_u64(&w, nonce);
	return written(&w);
}

int km_msg_ping_decode(const uint8_t *in, size_t len, uint64_t *nonce)
{
	struct km_wire_reader r;

	km_wire_reader_init(&r, in, len);
	*nonce = km_wire_read_u64(&r);
	if (r.short_read)
		return KM_ERR_TRUNCATED;
	return km_wire_left(&r) ? KM_ERR_TRAILING : 0;
}

int km_msg_dial_result_encode(uint8_t *out, size_t cap, uint64_t nonce,
			      uint8_t result)
{
	struct km_wire_writer w;

	km_wire_writer_init(&w, out, cap);
	km_wire_write_u64(&w, nonce);
	km_wire_write_u8(&w, result);
	return written(&w);
}

int km_msg_dial_result_decode(const uint8_t *in, size_t len, uint64_t *nonce,
			      uint8_t *result)
{
	struct km_wire_reader r;

	km_wire_reader_init(&r, in, len);
	*nonce = km_wire_read_u64(&r);
	*result = km_wire_read_u8(&r);
	if (r.short_read)
		return KM_ERR_TRUNCATED;
	return km_wire_left(&r) ? KM_ERR_TRAILING : 0;
}

int km_msg_message_encode(uint8_t *out, size_t cap, const struct km_message *m)
{
	struct km_wire_writer w;

	if (m->payload_len > KM_MESSAGE_PAYLOAD_MAX)
		return KM_ERR_TOO_LONG;
	km_wire_writer_init(&w, out, cap);
	km_wire_write(&w, m->id, KM_MSG_ID_LEN);
	km_wire_write(&w, m->origin.b, KM_ID_LEN);
	km_wire_write_u64(&w, m->seq);
	km_wire_write_u16(&w, m->hops);
	km_wire_write(&w, m->pubkey, KM_PUBKEY_LEN);
	km_wire_write(&w, m->sig, KM_SIG_LEN);
	km_wire_write(&w, m->payload, m->payload_len);
	return written(&w);
}

int km_msg_message_decode(const uint8_t *in, size_t len, struct km_message *m)
{
	struct km_wire_reader r;

	km_wire_reader_init(&r, in, len);
	km_wire_read_copy(&r, m->id, KM_MSG_ID_LEN);
	km_wire_read_copy(&r, m->origin.b, KM_ID_LEN);
	m->seq = km_wire_read_u64(&r);
	m->hops = km_wire_read_u16(&r);
	km_wire_read_copy(&r, m->pubkey, KM_PUBKEY_LEN);
	km_wire_read_copy(&r, m->sig, KM_SIG_LEN);
	if (r.short_read)
		return KM_ERR_TRUNCATED;
	m->payload_len = km_wire_left(&r);
	if (m->payload_len > KM_MESSAGE_PAYLOAD_MAX)
		return KM_ERR_TOO_LONG;
	m->payload = km_wire_read(&r, m->payload_len);
	return 0;
}

int km_msg_ids_encode(uint8_t *out, size_t cap, const uint8_t *ids, size_t n)
{
	struct km_wire_writer w;

	if (n > KM_MSG_IDS_MAX)
		return KM_ERR_TOO_MANY;
	km_wire_writer_init(&w, out, cap);
	km_wire_write_u16(&w, (uint16_t)n);
	km_wire_write(&w, ids, n * KM_MSG_ID_LEN);
	return written(&w);
}

int km_msg_ids_decode(const uint8_t *in, size_t len, const uint8_t **ids)
{
	struct km_wire_reader r;
	uint16_t n;

	*ids = NULL;
	km_wire_reader_init(&r, in, len);
	n = km_wire_read_u16(&r);
	if (r.short_read)
		return KM_ERR_TRUNCATED;
	if (n > KM_MSG_IDS_MAX)
		return KM_ERR_TOO_MANY;
	if (n > 0)
		*ids = km_wire_read(&r, (size_t)n * KM_MSG_ID_LEN);
	if (r.short_read)
		return KM_ERR_TRUNCATED;
	return km_wire_left(&r) ? KM_ERR_TRAILING : (int)n;
}

int km_msg_prune_decode(const uint8_t *in, size_t len)
{
	(void)in;
	return len ? KM_ERR_TRAILING : 0;
}

/* Length of the UTF-8 sequence led by b, or 0 if b cannot lead one. */
static size_t utf8_seq_len(uint8_t b)
{
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		return 2;
	if (b >= 0xe0 && b <= 0xef)
		return 3;
	if (b >= 0xf0 && b <= 0xf4)
		return 4;
	return 0;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, surrogates or code points
 * above U+10FFFF.  GOODBYE text ends up in logs, so it must be clean. */
static bool utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		n = utf8_seq_len(s[i]);
		if (n == 0 || n > len - i)
			return false;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		/* Second-byte limits that rule out the remaining bad forms. */
		if ((s[i] == 0xe0 && s[i + 1] < 0xa0) ||
		    (s[i] == 0xed && s[i + 1] > 0x9f) ||
		    (s[i] == 0xf0 && s[i + 1] < 0x90) ||
		    (s[i] == 0xf4 && s[i + 1] > 0x8f))
			return false;
		i += n;
	}
	return true;
}

int km_msg_goodbye_encode(uint8_t *out, size_t cap, const struct km_goodbye *g)
{
	struct km_wire_writer w;
	size_t n = strnlen(g->text, sizeof(g->text));

	if (n > KM_GOODBYE_TEXT_MAX)
		return KM_ERR_TOO_LONG;
	if (!utf8_valid((const uint8_t *)g->text, n))
		return KM_ERR_INVAL;
	km_wire_writer_init(&w, out, cap);
	km_wire_write_u8(&w, g->reason);
	km_wire_write_u8(&w, (uint8_t)n);
	km_wire_write(&w, g->text, n);
	return written(&w);
}

int km_msg_goodbye_decode(const uint8_t *in, size_t len, struct km_goodbye *g)
{
	struct km_wire_reader r;
	uint8_t n;

	km_wire_reader_init(&r, in, len);
	memset(g, 0, sizeof(*g));
	g->reason = km_wire_read_u8(&r);
	n = km_wire_read_u8(&r);
	km_wire_read_copy(&r, g->text, n);
	if (r.short_read)
		return KM_ERR_TRUNCATED;
	if (km_wire_left(&r))
		return KM_ERR_TRAILING;
	if (memchr(g->text, '\0', n) || !utf8_valid((const uint8_t *)g->text, n))
		return KM_ERR_SYNTAX;
	return 0;
}

static const char *const goodbye_names[] = {
	[KM_BYE_NORMAL] = "NORMAL",
	[KM_BYE_SHUTDOWN] = "SHUTDOWN",
	[KM_BYE_FULL] = "FULL",
	[KM_BYE_BAD_VERSION] = "BAD_VERSION",
	[KM_BYE_WRONG_NETWORK] = "WRONG_NETWORK",
	[KM_BYE_PROTOCOL_ERROR] = "PROTOCOL_ERROR",
	[KM_BYE_TIMEOUT] = "TIMEOUT",
	[KM_BYE_DUPLICATE] = "DUPLICATE",
	[KM_BYE_SELF] = "SELF",
	[KM_BYE_AUTH] = "AUTH",
};

const char *km_msg_goodbye_reason_name(uint8_t reason)
{
	if (reason >= sizeof(goodbye_names) / sizeof(goodbye_names[0]) ||
	    !goodbye_names[reason])
		return "UNKNOWN";
	return goodbye_names[reason];
}
