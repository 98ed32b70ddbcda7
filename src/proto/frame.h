/* Overlay frames: `type u8 | length u32 big-endian | payload`.
 *
 * The TCP overlay is a byte stream, so frames arrive split and glued in any
 * way.  km_frame_decoder reassembles them in the style of wireguard-tools'
 * config_read_init/_line/_finish: init once, feed chunks as they come, and
 * call finish at end of stream.  Hostile peers are the norm: the decoder
 * rejects an unknown type on its first byte and an oversized length on the
 * fifth, before it allocates anything, and never holds more than max_payload
 * bytes.  The byte layout is specified in docs/PROTOCOL.md. */
#ifndef KM_PROTO_FRAME_H
#define KM_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KM_FRAME_HEADER_LEN 5
#define KM_FRAME_MAX_DEFAULT (64 * 1024)

/* Frame types.  To add one: add it here and to the table in frame.c. */
enum km_frame_type {
	KM_FRAME_HELLO = 1,
	KM_FRAME_PEER_LIST = 2,
	KM_FRAME_PING = 3,
	KM_FRAME_PONG = 4,
	KM_FRAME_MESSAGE = 5,
	KM_FRAME_GOODBYE = 6,
	KM_FRAME_IHAVE = 7,     /* broadcast: IDs of messages the sender has */
	KM_FRAME_GRAFT = 8,     /* broadcast: send these, and push to me */
	KM_FRAME_PRUNE = 9,     /* broadcast: stop pushing to me */
	KM_FRAME_AUTH = 10,     /* handshake: signature over both nonces */
	/* NAT traversal (net/nat.h); numbered from 16 to leave room. */
	KM_FRAME_DIAL_ME = 16,  /* connect to my listening port, say nonce */
	KM_FRAME_DIALBACK = 17, /* first frame of that connection: the nonce */
	KM_FRAME_PUNCH_REQ = 18,/* to a rendezvous: link me to this node ID */
	KM_FRAME_PUNCH_GO = 19, /* from it: connect to this peer now */
	KM_FRAME_RELAY_REQ = 20,  /* to a rendezvous: relay me to this node ID */
	KM_FRAME_RELAY_OPEN = 21, /* from it: a relayed link to this peer */
	KM_FRAME_RELAY_DATA = 22, /* peer ID | bytes of the relayed stream */
	KM_FRAME_RELAY_CLOSE = 23,/* peer ID: the relayed link is gone */
	KM_FRAME_REACH = 24,      /* u8: 1 = I am not publicly reachable */
	KM_FRAME_RENDEZVOUS = 25, /* private nodes I can coordinate punches for */
	KM_FRAME_DIAL_RESULT = 26,/* how the dial a DIAL_ME asked for went */
};

/* A frame whose payload points into someone else's buffer. */
struct km_frame {
	uint8_t type;
	uint32_t len;
	const uint8_t *payload; /* never NULL, even when len == 0 */
};

/* True if type is one this build understands. */
bool km_frame_type_known(uint8_t type);

/* "HELLO", "PEER_LIST", ...; "UNKNOWN" for unknown types. */
const char *km_frame_type_name(uint8_t type);

/* Writes the 5-byte header for a payload of len bytes that the caller builds
 * in place right after it.  Returns KM_FRAME_HEADER_LEN, KM_ERR_UNKNOWN_TYPE
 * or KM_ERR_TOO_LONG (len does not fit the u32 length field). */
int km_frame_write_header(uint8_t out[static KM_FRAME_HEADER_LEN], uint8_t type,
			  size_t len);

/* Writes header and payload (payload may be NULL if len is 0).  Returns the
 * bytes written, KM_ERR_UNKNOWN_TYPE, KM_ERR_TOO_LONG (the frame would not
 * fit the u32 length or an int) or KM_ERR_BUF (cap too small). */
int km_frame_encode(uint8_t *out, size_t cap, uint8_t type,
		    const uint8_t *payload, size_t len);

/* Decodes the frame at the start of a complete buffer, without copying:
 * out->payload points into buf.  Bytes after the frame are left alone;
 * *consumed says where the next one starts.  max == 0 means
 * KM_FRAME_MAX_DEFAULT.  Returns 0, KM_ERR_UNKNOWN_TYPE, KM_ERR_TOO_LONG
 * (length > max) or KM_ERR_TRUNCATED (buf ends inside the frame). */
int km_frame_decode(const uint8_t *buf, size_t len, uint32_t max,
		    struct km_frame *out, size_t *consumed);

/* Incremental decoder.  All fields are private. */
struct km_frame_decoder {
	uint32_t max_payload;
	int err;                /* 0, or the sticky error */
	uint8_t hdr[KM_FRAME_HEADER_LEN];
	uint8_t hdr_got;        /* header bytes seen of the current frame */
	uint32_t len;           /* payload length, once the header is complete */
	uint32_t got;           /* payload bytes seen */
	uint8_t *buf;           /* grown on demand, never beyond max_payload */
	size_t buf_cap;
};

/* max_payload == 0 means KM_FRAME_MAX_DEFAULT.  Allocates nothing. */
void km_frame_decoder_init(struct km_frame_decoder *dec, uint32_t max_payload);
void km_frame_decoder_free(struct km_frame_decoder *dec);

/* Consumes bytes from in[0..len) up to the end of the next frame.
 *
 * Returns 1 when *out holds a frame; out->payload is valid until the next
 * call on dec.  Returns 0 when every byte was consumed without completing a
 * frame.  *consumed is set in every case, so feed the rest (in + *consumed)
 * again until it returns 0.  Errors: KM_ERR_UNKNOWN_TYPE (detected on the
 * type byte), KM_ERR_TOO_LONG (detected on the last header byte, before any
 * allocation), KM_ERR_NOMEM.  After an error every later call returns the
 * same error and consumes nothing. */
int km_frame_decoder_feed(struct km_frame_decoder *dec, const uint8_t *in,
			  size_t len, size_t *consumed, struct km_frame *out);

/* End of stream.  Returns 0 if the stream ended between frames,
 * KM_ERR_TRUNCATED if it ended inside one (this is then sticky too), or the
 * earlier sticky error. */
int km_frame_decoder_finish(struct km_frame_decoder *dec);

#endif
