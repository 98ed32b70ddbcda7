#include "proto/frame.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "proto/err.h"
#include "proto/wire.h"

/* The known types.  New ones (broadcast control, NAT punch/relay) go here
 * and in enum km_frame_type; nothing else needs to change. */
static const struct {
	uint8_t type;
	const char *name;
} frame_types[] = {
	{ KM_FRAME_HELLO, "HELLO" },
	{ KM_FRAME_PEER_LIST, "PEER_LIST" },
	{ KM_FRAME_PING, "PING" },
	{ KM_FRAME_PONG, "PONG" },
	{ KM_FRAME_MESSAGE, "MESSAGE" },
	{ KM_FRAME_GOODBYE, "GOODBYE" },
	{ KM_FRAME_IHAVE, "IHAVE" },
	{ KM_FRAME_GRAFT, "GRAFT" },
	{ KM_FRAME_PRUNE, "PRUNE" },
	{ KM_FRAME_AUTH, "AUTH" },
	{ KM_FRAME_DIAL_ME, "DIAL_ME" },
	{ KM_FRAME_DIALBACK, "DIALBACK" },
	{ KM_FRAME_PUNCH_REQ, "PUNCH_REQ" },
	{ KM_FRAME_PUNCH_GO, "PUNCH_GO" },
	{ KM_FRAME_RELAY_REQ, "RELAY_REQ" },
	{ KM_FRAME_RELAY_OPEN, "RELAY_OPEN" },
	{ KM_FRAME_RELAY_DATA, "RELAY_DATA" },
	{ KM_FRAME_RELAY_CLOSE, "RELAY_CLOSE" },
	{ KM_FRAME_REACH, "REACH" },
	{ KM_FRAME_RENDEZVOUS, "RENDEZVOUS" },
	{ KM_FRAME_DIAL_RESULT, "DIAL_RESULT" },
};

#define N_FRAME_TYPES (sizeof(frame_types) / sizeof(frame_types[0]))

/* Smallest buffer the decoder allocates, so that a run of tiny frames does
 * not cause a run of tiny allocations. */
#define DECODER_MIN_ALLOC 256
/* Most a decoder keeps between frames.  Every overlay link has one, so a
 * single 64 KiB MESSAGE must not pin 64 KiB to the link for its lifetime
 * (docs/BENCHMARKS.md, "Memory per neighbour"). */
#define DECODER_KEEP 4096

const char *km_frame_type_name(uint8_t type)
{
	for (size_t i = 0; i < N_FRAME_TYPES; i++)
		if (frame_types[i].type == type)
			return frame_types[i].name;
	return "UNKNOWN";
}

bool km_frame_type_known(uint8_t type)
{
	for (size_t i = 0; i < N_FRAME_TYPES; i++)
		if (frame_types[i].type == type)
			return true;
	return false;
}

int km_frame_write_header(uint8_t out[static KM_FRAME_HEADER_LEN], uint8_t type,
			  size_t len)
{
	if (!km_frame_type_known(type))
		return KM_ERR_UNKNOWN_TYPE;
	if (len > UINT32_MAX)
		return KM_ERR_TOO_LONG;
	out[0] = type;
	km_wire_put_u32(out + 1, (uint32_t)len);
	return KM_FRAME_HEADER_LEN;
}

int km_frame_encode(uint8_t *out, size_t cap, uint8_t type,
		    const uint8_t *payload, size_t len)
{
	uint8_t hdr[KM_FRAME_HEADER_LEN];
	int rv;

	/* The total is returned as an int, so it must fit one. */
	if (len > (size_t)INT_MAX - KM_FRAME_HEADER_LEN)
		return KM_ERR_TOO_LONG;
	rv = km_frame_write_header(hdr, type, len);
	if (rv < 0)
		return rv;
	if (cap < KM_FRAME_HEADER_LEN + len)
		return KM_ERR_BUF;
	memcpy(out, hdr, KM_FRAME_HEADER_LEN);
	if (len > 0)
		memcpy(out + KM_FRAME_HEADER_LEN, payload, len);
	return (int)(KM_FRAME_HEADER_LEN + len);
}

int km_frame_decode(const uint8_t *buf, size_t len, uint32_t max,
		    struct km_frame *out, size_t *consumed)
{
	uint32_t plen;

	*consumed = 0;
	if (max == 0)
		max = KM_FRAME_MAX_DEFAULT;
	if (len < 1)
		return KM_ERR_TRUNCATED;
	if (!km_frame_type_known(buf[0]))
		return KM_ERR_UNKNOWN_TYPE;
	if (len < KM_FRAME_HEADER_LEN)
		return KM_ERR_TRUNCATED;
	plen = km_wire_get_u32(buf + 1);
	if (plen > max)
		return KM_ERR_TOO_LONG;
	if (len - KM_FRAME_HEADER_LEN < plen)
		return KM_ERR_TRUNCATED;
	*out = (struct km_frame){ .type = buf[0], .len = plen,
				  .payload = buf + KM_FRAME_HEADER_LEN };
	*consumed = KM_FRAME_HEADER_LEN + (size_t)plen;
	return 0;
}

void km_frame_decoder_init(struct km_frame_decoder *dec, uint32_t max_payload)
{
	*dec = (struct km_frame_decoder){
		.max_payload = max_payload ? max_payload : KM_FRAME_MAX_DEFAULT,
	};
}

void km_frame_decoder_free(struct km_frame_decoder *dec)
{
	free(dec->buf);
	dec->buf = NULL;
	dec->buf_cap = 0;
}

/* The buffer size for a payload of need bytes: grown by doubling; and a
 * buffer over DECODER_KEEP, left by an earlier big frame, shrinks at the
 * next frame that fits in DECODER_KEEP (on an idle link, the next PING). */
static size_t buffer_size(const struct km_frame_decoder *dec, size_t need)
{
	size_t cap = dec->buf_cap;

	if (need <= cap && (cap <= DECODER_KEEP || need > DECODER_KEEP))
		return cap;
	cap = need > cap ? cap * 2 : 0;
	if (cap < DECODER_MIN_ALLOC)
		cap = DECODER_MIN_ALLOC;
	if (cap < need)
		cap = need;
	if (cap > dec->max_payload)
		cap = dec->max_payload;
	return cap;
}

/* Makes room for need (<= max_payload) bytes.  The old contents are never
 * needed: this only runs between frames. */
static int reserve(struct km_frame_decoder *dec, size_t need)
{
	size_t cap = buffer_size(dec, need);
	uint8_t *p;

	if (cap == dec->buf_cap)
		return 0;
	p = malloc(cap);
	if (!p)
		return KM_ERR_NOMEM;
	free(dec->buf);
	dec->buf = p;
	dec->buf_cap = cap;
	return 0;
}

/* Takes one header byte and checks each field as soon as it is complete. */
static int take_header_byte(struct km_frame_decoder *dec, uint8_t b)
{
	dec->hdr[dec->hdr_got++] = b;
	if (dec->hdr_got == 1 && !km_frame_type_known(b))
		return KM_ERR_UNKNOWN_TYPE;
	if (dec->hdr_got < KM_FRAME_HEADER_LEN)
		return 0;
	dec->len = km_wire_get_u32(dec->hdr + 1);
	dec->got = 0;
	if (dec->len > dec->max_payload)
		return KM_ERR_TOO_LONG;
	return reserve(dec, dec->len);
}

/* Copies as much of in[off..len) as the current payload still needs. */
static size_t take_payload(struct km_frame_decoder *dec, const uint8_t *in,
			   size_t off, size_t len)
{
	size_t n = len - off;

	if (n > dec->len - dec->got)
		n = dec->len - dec->got;
	if (n > 0) {
		memcpy(dec->buf + dec->got, in + off, n);
		dec->got += (uint32_t)n;
	}
	return n;
}

static void emit(struct km_frame_decoder *dec, struct km_frame *out)
{
	/* A zero-length payload may come before any allocation; point it at
	 * the header so that payload is never NULL. */
	*out = (struct km_frame){ .type = dec->hdr[0], .len = dec->len,
				  .payload = dec->buf ? dec->buf : dec->hdr };
	dec->hdr_got = 0;
	dec->len = 0;
	dec->got = 0;
}

int km_frame_decoder_feed(struct km_frame_decoder *dec, const uint8_t *in,
			  size_t len, size_t *consumed, struct km_frame *out)
{
	size_t off = 0;
	int rv;

	*consumed = 0;
	if (dec->err)
		return dec->err;
	while (dec->hdr_got < KM_FRAME_HEADER_LEN && off < len) {
		rv = take_header_byte(dec, in[off++]);
		if (rv < 0) {
			*consumed = off;
			return dec->err = rv;
		}
	}
	if (dec->hdr_got == KM_FRAME_HEADER_LEN)
		off += take_payload(dec, in, off, len);
	*consumed = off;
	if (dec->hdr_got < KM_FRAME_HEADER_LEN || dec->got < dec->len)
		return 0;
	emit(dec, out);
	return 1;
}

int km_frame_decoder_finish(struct km_frame_decoder *dec)
{
	if (dec->err)
		return dec->err;
	if (dec->hdr_got > 0)
		dec->err = KM_ERR_TRUNCATED;
	return dec->err;
}
