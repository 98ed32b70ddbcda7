/* Every overlay message body (HELLO, PEER_LIST, PING/PONG, MESSAGE,
 * GOODBYE, IHAVE/GRAFT, PRUNE, DIAL_RESULT).  The first input byte picks the body; the rest
 * is decoded.  Whatever decodes must encode again, and the encoding must
 * decode to the same fields: a decoder that accepts something the encoder
 * cannot say (or says differently) is a bug too. */
#include <string.h>

#include "fuzz.h"
#include "proto/err.h"
#include "proto/msg.h"

static uint8_t out[KM_FRAME_MAX_DEFAULT];

static void hello(const uint8_t *in, size_t len)
{
	struct km_hello h, h2;
	int n;

	if (km_msg_hello_decode(in, len, &h) < 0)
		return;
	n = km_msg_hello_encode(out, sizeof(out), &h);
	FUZZ_ASSERT(n > 0);
	FUZZ_ASSERT(km_msg_hello_decode(out, (size_t)n, &h2) == 0);
	FUZZ_ASSERT(h.version == h2.version && h.network == h2.network &&
		    memcmp(h.id.b, h2.id.b, KM_ID_LEN) == 0 &&
		    h.listen_port == h2.listen_port &&
		    km_addr_eq(&h.observed, &h2.observed) &&
		    h.has_key == h2.has_key);
	FUZZ_ASSERT(!h.has_key ||
		    (memcmp(h.pubkey, h2.pubkey, KM_PUBKEY_LEN) == 0 &&
		     memcmp(h.nonce, h2.nonce, KM_NONCE_LEN) == 0));
}

static void peer_list(const uint8_t *in, size_t len)
{
	static struct km_peer p[KM_PEER_LIST_MAX], p2[KM_PEER_LIST_MAX];
	int n = km_msg_peer_list_decode(in, len, p, KM_PEER_LIST_MAX), w;

	if (n < 0)
		return;
	FUZZ_ASSERT(n <= KM_PEER_LIST_MAX);
	w = km_msg_peer_list_encode(out, sizeof(out), p, (size_t)n);
	FUZZ_ASSERT(w >= 0 && (size_t)w == len && memcmp(out, in, len) == 0);
	FUZZ_ASSERT(km_msg_peer_list_decode(out, (size_t)w, p2, KM_PEER_LIST_MAX) == n);
}

static void ping(const uint8_t *in, size_t len)
{
	uint64_t nonce, again;
	int w;

	if (km_msg_ping_decode(in, len, &nonce) < 0)
		return;
	w = km_msg_ping_encode(out, sizeof(out), nonce);
	FUZZ_ASSERT(w == KM_PING_LEN && memcmp(out, in, len) == 0);
	FUZZ_ASSERT(km_msg_ping_decode(out, (size_t)w, &again) == 0 && again == nonce);
}

static void dial_result(const uint8_t *in, size_t len)
{
	uint64_t nonce, nonce2;
	uint8_t result, result2;
	int w;

	if (km_msg_dial_result_decode(in, len, &nonce, &result) < 0)
		return;
	w = km_msg_dial_result_encode(out, sizeof(out), nonce, result);
	FUZZ_ASSERT(w == KM_DIAL_RESULT_LEN && memcmp(out, in, len) == 0);
	FUZZ_ASSERT(km_msg_dial_result_decode(out, (size_t)w, &nonce2, &result2) == 0 &&
		    nonce2 == nonce && result2 == result);
}

static void message(const uint8_t *in, size_t len)
{
	struct km_message m;
	int w;

	if (km_msg_message_decode(in, len, &m) < 0)
		return;
	FUZZ_ASSERT(m.payload_len <= KM_MESSAGE_PAYLOAD_MAX);
	FUZZ_ASSERT(m.payload_len == 0 || m.payload + m.payload_len <= in + len);
	w = km_msg_message_encode(out, sizeof(out), &m);
	FUZZ_ASSERT(w >= 0 && (size_t)w == len && memcmp(out, in, len) == 0);
}

static void goodbye(const uint8_t *in, size_t len)
{
	struct km_goodbye g;
	int w;

	if (km_msg_goodbye_decode(in, len, &g) < 0)
		return;
	FUZZ_ASSERT(strlen(g.text) <= KM_GOODBYE_TEXT_MAX);
	w = km_msg_goodbye_encode(out, sizeof(out), &g);
	FUZZ_ASSERT(w >= 0 && (size_t)w == len && memcmp(out, in, len) == 0);
}

/* IHAVE and GRAFT share this body. */
static void msg_ids(const uint8_t *in, size_t len)
{
	const uint8_t *ids;
	int n = km_msg_ids_decode(in, len, &ids), w;

	if (n < 0)
		return;
	FUZZ_ASSERT(n <= KM_MSG_IDS_MAX && (n == 0 || ids + (size_t)n * KM_MSG_ID_LEN <= in + len));
	w = km_msg_ids_encode(out, sizeof(out), ids, (size_t)n);
	FUZZ_ASSERT(w >= 0 && (size_t)w == len && memcmp(out, in, len) == 0);
}

static void prune(const uint8_t *in, size_t len)
{
	FUZZ_ASSERT((km_msg_prune_decode(in, len) == 0) == (len == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static void (*const body[])(const uint8_t *, size_t) = {
		hello, peer_list, ping, message, goodbye, msg_ids, prune,
		dial_result,
	};

	if (size < 1)
		return 0;
	body[data[0] % (sizeof(body) / sizeof(body[0]))](data + 1, size - 1);
	return 0;
}
