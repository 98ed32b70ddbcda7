/* Overlay message bodies: the payloads of HELLO, PEER_LIST, PING, PONG,
 * MESSAGE, GOODBYE, IHAVE, GRAFT and PRUNE frames.
 *
 * Each body has an encoder that writes into a caller buffer and returns the
 * length written (or KM_ERR_BUF if cap is too small), and a decoder that
 * checks every length against the bytes actually present.  Decoders return 0
 * (PEER_LIST: the entry count) or a negative KM_ERR_* code and never read
 * past len.  All integers are big-endian.  Version and network checks are
 * policy and belong to the overlay (net), not here.  Byte layouts are in
 * docs/PROTOCOL.md. */
#ifndef KM_PROTO_MSG_H
#define KM_PROTO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"
#include "proto/frame.h"
#include "proto/node.h"

/* 2: HELLO carries a key and a nonce, AUTH proves the key, MESSAGE is
 * signed.  Version 1 peers are refused with GOODBYE BAD_VERSION. */
#define KM_PROTO_VERSION 2
#define KM_MSG_ID_LEN 20
/* Ed25519 (net/ident.h has the same numbers). */
#define KM_PUBKEY_LEN 32
#define KM_SIG_LEN 64
#define KM_NONCE_LEN 32

/* Largest encoded address: family + 16-byte IP + port. */
#define KM_WIRE_ADDR_MAX_LEN (1 + 16 + 2)

/* ---- HELLO ---- */

/* Known fields only: the decoder ignores bytes after the ones it knows, and
 * key and nonce are optional on the wire so that a version 1 HELLO still
 * decodes (and is then refused for its version, not as garbage). */
#define KM_HELLO_MIN_LEN (1 + 4 + KM_ID_LEN + 2 + 1 + 2)
#define KM_HELLO_MAX_LEN (1 + 4 + KM_ID_LEN + 2 + KM_WIRE_ADDR_MAX_LEN + \
			  KM_PUBKEY_LEN + KM_NONCE_LEN)

struct km_hello {
	uint8_t version;        /* KM_PROTO_VERSION when we send */
	uint32_t network;       /* peers on other networks say GOODBYE */
	struct km_id id;
	uint16_t listen_port;   /* where the sender accepts connections */
	struct km_addr observed; /* the receiver as the sender sees it;
				    family KM_AF_NONE if unknown */
	bool has_key;           /* version 2: the next two fields are set */
	uint8_t pubkey[KM_PUBKEY_LEN]; /* the sender's Ed25519 key */
	uint8_t nonce[KM_NONCE_LEN];   /* fresh per link: the challenge */
};

/* Errors: KM_ERR_INVAL (observed has a family other than 0, 4, 6), KM_ERR_BUF. */
int km_msg_hello_encode(uint8_t *out, size_t cap, const struct km_hello *h);
/* Errors: KM_ERR_TRUNCATED, KM_ERR_TYPE (bad address family). */
int km_msg_hello_decode(const uint8_t *in, size_t len, struct km_hello *h);

/* ---- AUTH ---- */

/* The body is one Ed25519 signature; docs/PROTOCOL.md says over what. */
#define KM_AUTH_LEN KM_SIG_LEN

/* ---- PEER_LIST ---- */

#define KM_PEER_LIST_MAX 64
#define KM_PEER_ENTRY_MAX_LEN (KM_ID_LEN + KM_WIRE_ADDR_MAX_LEN)
#define KM_PEER_LIST_MAX_LEN (2 + KM_PEER_LIST_MAX * KM_PEER_ENTRY_MAX_LEN)

struct km_peer {
	struct km_id id;
	struct km_addr addr; /* always IPv4 or IPv6 */
};

/* Errors: KM_ERR_TOO_MANY (n > KM_PEER_LIST_MAX), KM_ERR_INVAL (a peer
 * address that is not IPv4 or IPv6), KM_ERR_BUF. */
int km_msg_peer_list_encode(uint8_t *out, size_t cap, const struct km_peer *peers,
			    size_t n);
/* Decodes into peers[0..cap).  Returns the count, or KM_ERR_TOO_MANY (count
 * above KM_PEER_LIST_MAX or cap; checked before any entry is read),
 * KM_ERR_TRUNCATED, KM_ERR_TRAILING, KM_ERR_TYPE (family not 4 or 6). */
int km_msg_peer_list_decode(const uint8_t *in, size_t len, struct km_peer *peers,
			    size_t cap);

/* ---- PING and PONG ---- */

/* Both bodies are a u64 nonce; a PONG echoes the PING's. */
#define KM_PING_LEN 8

/* Errors: KM_ERR_BUF. */
int km_msg_ping_encode(uint8_t *out, size_t cap, uint64_t nonce);
/* Errors: KM_ERR_TRUNCATED, KM_ERR_TRAILING. */
int km_msg_ping_decode(const uint8_t *in, size_t len, uint64_t *nonce);

/* ---- DIAL_RESULT ---- */

/* The dialler's answer to DIAL_ME: the asker's nonce | result u8.  Only
 * KM_DIAL_REFUSED and KM_DIAL_TIMED_OUT are evidence of a NAT; a result
 * this build does not know decodes and counts for nothing. */
#define KM_DIAL_RESULT_LEN 9
enum km_dial_result {
	KM_DIAL_CONNECTED = 1, /* connected and sent DIALBACK */
	KM_DIAL_REFUSED = 2,   /* the connection failed before it was up */
	KM_DIAL_TIMED_OUT = 3, /* no connection within the dialler's 5 s */
	KM_DIAL_BUSY = 4,      /* not dialled: the dialler was at its cap */
};

/* Errors: KM_ERR_BUF. */
int km_msg_dial_result_encode(uint8_t *out, size_t cap, uint64_t nonce,
			      uint8_t result);
/* Errors: KM_ERR_TRUNCATED, KM_ERR_TRAILING. */
int km_msg_dial_result_decode(const uint8_t *in, size_t len, uint64_t *nonce,
			      uint8_t *result);

/* ---- MESSAGE ---- */

#define KM_MESSAGE_HEADER_LEN (KM_MSG_ID_LEN + KM_ID_LEN + 8 + 2 + \
			       KM_PUBKEY_LEN + KM_SIG_LEN)
/* The payload is the rest of the frame, so a MESSAGE fits a default-sized
 * frame exactly. */
#define KM_MESSAGE_PAYLOAD_MAX (KM_FRAME_MAX_DEFAULT - KM_MESSAGE_HEADER_LEN)

struct km_message {
	uint8_t id[KM_MSG_ID_LEN];     /* computed by the broadcast layer */
	struct km_id origin;
	uint64_t seq;
	uint16_t hops;
	uint8_t pubkey[KM_PUBKEY_LEN]; /* the origin's */
	uint8_t sig[KM_SIG_LEN];       /* by the origin; hops not covered */
	const uint8_t *payload;        /* decode: points into the input */
	size_t payload_len;
};

/* Errors: KM_ERR_TOO_LONG (payload_len > KM_MESSAGE_PAYLOAD_MAX), KM_ERR_BUF. */
int km_msg_message_encode(uint8_t *out, size_t cap, const struct km_message *m);
/* Errors: KM_ERR_TRUNCATED, KM_ERR_TOO_LONG.  m->payload is NULL when
 * payload_len is 0. */
int km_msg_message_decode(const uint8_t *in, size_t len, struct km_message *m);

/* ---- IHAVE and GRAFT ---- */

/* Both bodies are a list of message IDs: count u16 | count x 20 bytes.
 * IHAVE announces messages the sender can supply; GRAFT asks for them and
 * makes the link eager (an empty GRAFT only makes the link eager). */
#define KM_MSG_IDS_MAX 256
#define KM_MSG_IDS_MAX_LEN (2 + KM_MSG_IDS_MAX * KM_MSG_ID_LEN)

/* ids holds n IDs back to back.  Errors: KM_ERR_TOO_MANY (n >
 * KM_MSG_IDS_MAX), KM_ERR_BUF. */
int km_msg_ids_encode(uint8_t *out, size_t cap, const uint8_t *ids, size_t n);
/* Returns the count and points *ids at the first ID inside in (NULL when the
 * count is 0).  Errors: KM_ERR_TRUNCATED, KM_ERR_TOO_MANY (count above
 * KM_MSG_IDS_MAX; checked before the IDs), KM_ERR_TRAILING. */
int km_msg_ids_decode(const uint8_t *in, size_t len, const uint8_t **ids);

/* ---- PRUNE ---- */

/* The body is empty.  Errors: KM_ERR_TRAILING if it is not. */
int km_msg_prune_decode(const uint8_t *in, size_t len);

/* ---- GOODBYE ---- */

#define KM_GOODBYE_TEXT_MAX 255
#define KM_GOODBYE_MAX_LEN (1 + 1 + KM_GOODBYE_TEXT_MAX)

/* Why a peer hangs up.  Receivers must accept codes they do not know. */
enum km_goodbye_reason {
	KM_BYE_NORMAL = 0,
	KM_BYE_SHUTDOWN = 1,       /* the sender is exiting */
	KM_BYE_FULL = 2,           /* no free connection slots */
	KM_BYE_BAD_VERSION = 3,
	KM_BYE_WRONG_NETWORK = 4,
	KM_BYE_PROTOCOL_ERROR = 5, /* a malformed frame or body */
	KM_BYE_TIMEOUT = 6,        /* no PONG or no HELLO in time */
	KM_BYE_DUPLICATE = 7,      /* already connected to this node ID */
	KM_BYE_SELF = 8,           /* connected to ourselves */
	KM_BYE_AUTH = 9,           /* bad AUTH, or a key other than the
				      one pinned for this node ID */
};

struct km_goodbye {
	uint8_t reason;  /* enum km_goodbye_reason, or a newer code */
	char text[KM_GOODBYE_TEXT_MAX + 1]; /* UTF-8, NUL-terminated */
};

/* Errors: KM_ERR_TOO_LONG (text over 255 bytes), KM_ERR_INVAL (text not
 * UTF-8), KM_ERR_BUF. */
int km_msg_goodbye_encode(uint8_t *out, size_t cap, const struct km_goodbye *g);
/* Errors: KM_ERR_TRUNCATED (text length past the end), KM_ERR_TRAILING,
 * KM_ERR_SYNTAX (text not UTF-8, or contains NUL). */
int km_msg_goodbye_decode(const uint8_t *in, size_t len, struct km_goodbye *g);

/* "NORMAL", "SHUTDOWN", ...; "UNKNOWN" for codes this build does not know. */
const char *km_msg_goodbye_reason_name(uint8_t reason);

#endif
