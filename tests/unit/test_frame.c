#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dht/rng.h"
#include "proto/err.h"
#include "proto/frame.h"

/* Input is handed to the decoder in exact-size heap copies, so that any
 * read past the end is an AddressSanitizer report, not a silent pass. */
static uint8_t *heap_copy(const uint8_t *src, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	cr_assert_not_null(p);
	if (len)
		memcpy(p, src, len);
	return p;
}

/* A stream of frames of assorted types and sizes, payload bytes from a
 * seeded generator.  Sizes include 0, 1, the allocation step and the max. */
#define N_FRAMES 9
static const uint32_t stream_sizes[N_FRAMES] = {
	0, 1, 8, 255, 256, 257, 5000, 0, KM_FRAME_MAX_DEFAULT,
};

struct stream {
	uint8_t *buf;
	size_t len;
	size_t offsets[N_FRAMES]; /* where each frame's payload starts */
};

static void stream_build(struct stream *s)
{
	struct km_prng p;
	size_t cap = N_FRAMES * KM_FRAME_HEADER_LEN + 2 * KM_FRAME_MAX_DEFAULT;
	int n;

	km_prng_seed(&p, 42);
	s->buf = malloc(cap);
	s->len = 0;
	cr_assert_not_null(s->buf);
	for (size_t i = 0; i < N_FRAMES; i++) {
		uint8_t type = (uint8_t)(KM_FRAME_HELLO + i % 6);
		uint8_t *payload = s->buf + s->len + KM_FRAME_HEADER_LEN;

		for (uint32_t k = 0; k < stream_sizes[i]; k++)
			payload[k] = (uint8_t)km_prng_next(&p);
		n = km_frame_write_header(s->buf + s->len, type, stream_sizes[i]);
		cr_assert_eq(n, KM_FRAME_HEADER_LEN);
		s->offsets[i] = s->len + KM_FRAME_HEADER_LEN;
		s->len += KM_FRAME_HEADER_LEN + stream_sizes[i];
	}
}

static void assert_frame_is(const struct stream *s, size_t i, const struct km_frame *f)
{
	cr_assert_eq(f->type, KM_FRAME_HELLO + i % 6, "frame %zu type", i);
	cr_assert_eq(f->len, stream_sizes[i], "frame %zu length", i);
	cr_assert_not_null(f->payload);
	cr_assert_eq(memcmp(f->payload, s->buf + s->offsets[i], f->len), 0,
		     "frame %zu payload", i);
}

/* Feeds one chunk completely and checks each frame it yields against the
 * stream.  Returns the updated count of frames seen. */
static size_t feed_chunk(struct km_frame_decoder *dec, const struct stream *s,
			 const uint8_t *chunk, size_t len, size_t seen)
{
	uint8_t *copy = heap_copy(chunk, len);
	size_t off = 0, used;
	struct km_frame f;
	int rv;

	do {
		rv = km_frame_decoder_feed(dec, copy + off, len - off, &used, &f);
		cr_assert_geq(rv, 0, "feed failed: %s", km_strerror(rv));
		off += used;
		if (rv == 1) {
			cr_assert_lt(seen, (size_t)N_FRAMES);
			assert_frame_is(s, seen++, &f);
		}
	} while (rv == 1);
	cr_assert_eq(off, len);
	free(copy);
	return seen;
}

/* Splits the stream into chunks of 1..max_chunk bytes (seeded). */
static void decode_in_chunks(const struct stream *s, uint64_t seed, size_t max_chunk)
{
	struct km_frame_decoder dec;
	struct km_prng p;
	size_t off = 0, seen = 0, n;

	km_prng_seed(&p, seed);
	km_frame_decoder_init(&dec, 0);
	while (off < s->len) {
		n = 1 + (size_t)(km_prng_next(&p) % max_chunk);
		if (n > s->len - off)
			n = s->len - off;
		seen = feed_chunk(&dec, s, s->buf + off, n, seen);
		off += n;
	}
	cr_assert_eq(seen, (size_t)N_FRAMES);
	cr_assert_eq(km_frame_decoder_finish(&dec), 0);
	cr_assert_leq(dec.buf_cap, (size_t)KM_FRAME_MAX_DEFAULT);
	km_frame_decoder_free(&dec);
}

Test(frame, decoder_yields_same_frames_for_any_chunking)
{
	struct stream s;

	stream_build(&s);
	decode_in_chunks(&s, 1, 1);          /* one byte at a time */
	decode_in_chunks(&s, 2, s.len);      /* mostly huge chunks */
	decode_in_chunks(&s, 3, s.len + 1);
	for (uint64_t seed = 10; seed < 20; seed++)
		decode_in_chunks(&s, seed, 7);
	for (uint64_t seed = 20; seed < 30; seed++)
		decode_in_chunks(&s, seed, 4096);
	free(s.buf);
}

Test(frame, decoder_yields_every_frame_from_one_giant_chunk)
{
	struct km_frame_decoder dec;
	struct stream s;

	stream_build(&s);
	km_frame_decoder_init(&dec, 0);
	cr_assert_eq(feed_chunk(&dec, &s, s.buf, s.len, 0), (size_t)N_FRAMES);
	cr_assert_eq(km_frame_decoder_finish(&dec), 0);
	km_frame_decoder_free(&dec);
	free(s.buf);
}

Test(frame, encode_writes_type_then_big_endian_length_then_payload)
{
	const uint8_t payload[3] = { 0xaa, 0xbb, 0xcc };
	const uint8_t want[8] = { 5, 0, 0, 0, 3, 0xaa, 0xbb, 0xcc };
	uint8_t out[8];

	cr_assert_eq(km_frame_encode(out, sizeof(out), KM_FRAME_MESSAGE, payload, 3), 8);
	cr_assert_eq(memcmp(out, want, 8), 0);
	cr_assert_eq(km_frame_encode(out, 5, KM_FRAME_PING, NULL, 0), 5);
	cr_assert_eq(memcmp(out, (uint8_t[]){ 3, 0, 0, 0, 0 }, 5), 0);
}

Test(frame, encode_rejects_short_buffers_unknown_types_and_huge_lengths)
{
	uint8_t out[16], payload[8] = { 0 };

	for (size_t cap = 0; cap < 13; cap++)
		cr_assert_eq(km_frame_encode(out, cap, KM_FRAME_PING, payload, 8),
			     KM_ERR_BUF);
	cr_assert_eq(km_frame_encode(out, sizeof(out), 0, payload, 8), KM_ERR_UNKNOWN_TYPE);
	cr_assert_eq(km_frame_encode(out, sizeof(out), 200, payload, 8), KM_ERR_UNKNOWN_TYPE);
	cr_assert_eq(km_frame_encode(out, sizeof(out), KM_FRAME_PING, payload, SIZE_MAX),
		     KM_ERR_TOO_LONG);
	cr_assert_eq(km_frame_write_header(out, KM_FRAME_PING, (size_t)UINT32_MAX + 1),
		     KM_ERR_TOO_LONG);
	cr_assert_eq(km_frame_write_header(out, KM_FRAME_PING, UINT32_MAX), 5);
	cr_assert_eq(memcmp(out, (uint8_t[]){ 3, 0xff, 0xff, 0xff, 0xff }, 5), 0);
}

Test(frame, type_table_knows_exactly_the_defined_types)
{
	int known = 0;

	for (int t = 0; t < 256; t++)
		known += km_frame_type_known((uint8_t)t);
	cr_assert_eq(known, 21);
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_HELLO), "HELLO");
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_GOODBYE), "GOODBYE");
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_IHAVE), "IHAVE");
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_GRAFT), "GRAFT");
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_PRUNE), "PRUNE");
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_DIAL_ME), "DIAL_ME");
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_DIALBACK), "DIALBACK");
	cr_assert_str_eq(km_frame_type_name(0), "UNKNOWN");
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_AUTH), "AUTH");
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_REACH), "REACH");
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_RENDEZVOUS), "RENDEZVOUS");
	cr_assert_str_eq(km_frame_type_name(KM_FRAME_DIAL_RESULT), "DIAL_RESULT");
	cr_assert_str_eq(km_frame_type_name(11), "UNKNOWN");
}

Test(frame, one_shot_decode_points_into_the_buffer_and_reports_the_next_start)
{
	uint8_t buf[] = { 3, 0, 0, 0, 2, 0x11, 0x22, 4, 0, 0, 0, 0 };
	struct km_frame f;
	size_t used;

	cr_assert_eq(km_frame_decode(buf, sizeof(buf), 0, &f, &used), 0);
	cr_assert_eq(f.type, KM_FRAME_PING);
	cr_assert_eq(f.len, 2);
	cr_assert_eq(f.payload, buf + 5);
	cr_assert_eq(used, 7);
	cr_assert_eq(km_frame_decode(buf + 7, 5, 0, &f, &used), 0);
	cr_assert_eq(f.type, KM_FRAME_PONG);
	cr_assert_eq(f.len, 0);
	cr_assert_eq(used, 5);
}

Test(frame, one_shot_decode_rejects_every_truncation_and_bad_header)
{
	const uint8_t good[] = { 6, 0, 0, 0, 3, 1, 2, 3 };
	struct km_frame f;
	size_t used;

	for (size_t len = 0; len < sizeof(good); len++) {
		uint8_t *p = heap_copy(good, len);

		cr_assert_eq(km_frame_decode(p, len, 0, &f, &used), KM_ERR_TRUNCATED,
			     "cut at %zu", len);
		cr_assert_eq(used, 0);
		free(p);
	}
	cr_assert_eq(km_frame_decode((uint8_t[]){ 11 }, 1, 0, &f, &used),
		     KM_ERR_UNKNOWN_TYPE);
	cr_assert_eq(km_frame_decode(good, sizeof(good), 2, &f, &used), KM_ERR_TOO_LONG);
	cr_assert_eq(km_frame_decode((uint8_t[]){ 1, 0xff, 0xff, 0xff, 0xff }, 5, 0,
				     &f, &used), KM_ERR_TOO_LONG);
}

/* Feeds bytes one at a time and returns how many were taken before the
 * first non-zero result. */
static size_t feed_bytewise(struct km_frame_decoder *dec, const uint8_t *in,
			    size_t len, int *rv)
{
	struct km_frame f;
	size_t used, i;

	for (i = 0; i < len; i++) {
		*rv = km_frame_decoder_feed(dec, in + i, 1, &used, &f);
		cr_assert_eq(used, 1);
		if (*rv != 0)
			return i + 1;
	}
	return i;
}

Test(frame, decoder_rejects_unknown_type_on_the_first_byte)
{
	struct km_frame_decoder dec;
	const uint8_t in[] = { 0x7f, 0, 0, 0, 0 };
	struct km_frame f;
	size_t used;

	km_frame_decoder_init(&dec, 0);
	cr_assert_eq(km_frame_decoder_feed(&dec, in, sizeof(in), &used, &f),
		     KM_ERR_UNKNOWN_TYPE);
	cr_assert_eq(used, 1);
	km_frame_decoder_free(&dec);
}

Test(frame, decoder_rejects_an_unknown_type_at_the_start_of_a_later_frame)
{
	struct km_frame_decoder dec;
	const uint8_t in[] = { KM_FRAME_PING, 0, 0, 0, 1, 0xee, 0, 0, 0, 0, 0 };
	struct km_frame f;
	size_t used;

	km_frame_decoder_init(&dec, 0);
	cr_assert_eq(km_frame_decoder_feed(&dec, in, sizeof(in), &used, &f), 1);
	cr_assert_eq(used, 6);
	cr_assert_eq(km_frame_decoder_feed(&dec, in + 6, sizeof(in) - 6, &used, &f),
		     KM_ERR_UNKNOWN_TYPE);
	cr_assert_eq(used, 1);
	km_frame_decoder_free(&dec);
}

Test(frame, decoder_rejects_a_4GiB_length_after_exactly_five_bytes_without_allocating)
{
	struct km_frame_decoder dec;
	const uint8_t in[] = { KM_FRAME_MESSAGE, 0xff, 0xff, 0xff, 0xff, 0, 0 };
	int rv = 0;

	km_frame_decoder_init(&dec, 0);
	cr_assert_eq(feed_bytewise(&dec, in, sizeof(in), &rv), 5);
	cr_assert_eq(rv, KM_ERR_TOO_LONG);
	cr_assert_null(dec.buf);
	cr_assert_eq(dec.buf_cap, 0);
	km_frame_decoder_free(&dec);
}

Test(frame, decoder_accepts_exactly_max_and_rejects_one_more)
{
	struct km_frame_decoder dec;
	uint8_t in[5 + 100] = { KM_FRAME_PING, 0, 0, 0, 100 };
	struct km_frame f;
	size_t used;

	km_frame_decoder_init(&dec, 100);
	cr_assert_eq(km_frame_decoder_feed(&dec, in, sizeof(in), &used, &f), 1);
	cr_assert_eq(f.len, 100);
	cr_assert_leq(dec.buf_cap, 100);
	in[4] = 101;
	cr_assert_eq(km_frame_decoder_feed(&dec, in, sizeof(in), &used, &f),
		     KM_ERR_TOO_LONG);
	cr_assert_eq(used, 5);
	km_frame_decoder_free(&dec);
}

Test(frame, decoder_stays_in_the_error_state_after_an_error)
{
	struct km_frame_decoder dec;
	const uint8_t bad[] = { 0 };
	const uint8_t good[] = { KM_FRAME_PING, 0, 0, 0, 0 };
	struct km_frame f;
	size_t used;

	km_frame_decoder_init(&dec, 0);
	cr_assert_eq(km_frame_decoder_feed(&dec, bad, 1, &used, &f), KM_ERR_UNKNOWN_TYPE);
	cr_assert_eq(km_frame_decoder_feed(&dec, good, 5, &used, &f), KM_ERR_UNKNOWN_TYPE);
	cr_assert_eq(used, 0);
	cr_assert_eq(km_frame_decoder_finish(&dec), KM_ERR_UNKNOWN_TYPE);
	km_frame_decoder_free(&dec);
}

Test(frame, finish_mid_frame_reports_truncation_at_every_position)
{
	const uint8_t frame[] = { KM_FRAME_GOODBYE, 0, 0, 0, 3, 'b', 'y', 'e' };
	struct km_frame_decoder dec;
	int rv = 0;

	for (size_t cut = 1; cut < sizeof(frame); cut++) {
		km_frame_decoder_init(&dec, 0);
		cr_assert_eq(feed_bytewise(&dec, frame, cut, &rv), cut);
		cr_assert_eq(rv, 0);
		cr_assert_eq(km_frame_decoder_finish(&dec), KM_ERR_TRUNCATED, "cut %zu", cut);
		cr_assert_eq(km_frame_decoder_finish(&dec), KM_ERR_TRUNCATED);
		km_frame_decoder_free(&dec);
	}
}

Test(frame, finish_between_frames_and_on_an_empty_stream_succeeds)
{
	const uint8_t frame[] = { KM_FRAME_PONG, 0, 0, 0, 0 };
	struct km_frame_decoder dec;
	struct km_frame f;
	size_t used;

	km_frame_decoder_init(&dec, 0);
	cr_assert_eq(km_frame_decoder_finish(&dec), 0);
	cr_assert_eq(km_frame_decoder_feed(&dec, frame, 5, &used, &f), 1);
	cr_assert_eq(f.len, 0);
	cr_assert_not_null(f.payload);
	cr_assert_eq(km_frame_decoder_feed(&dec, NULL, 0, &used, &f), 0);
	cr_assert_eq(used, 0);
	cr_assert_eq(km_frame_decoder_finish(&dec), 0);
	km_frame_decoder_free(&dec);
}

Test(frame, decoder_free_twice_and_free_after_init_are_harmless)
{
	struct km_frame_decoder dec;

	km_frame_decoder_init(&dec, 0);
	km_frame_decoder_free(&dec);
	km_frame_decoder_free(&dec);
}

/* One frame of type t with a payload of len bytes (zeros), decoded whole. */
static void feed_one(struct km_frame_decoder *dec, uint8_t t, uint32_t len)
{
	uint8_t *in = calloc(1, KM_FRAME_HEADER_LEN + (size_t)len);
	struct km_frame f;
	size_t used;

	cr_assert_not_null(in);
	in[0] = t;
	in[1] = (uint8_t)(len >> 24);
	in[2] = (uint8_t)(len >> 16);
	in[3] = (uint8_t)(len >> 8);
	in[4] = (uint8_t)len;
	cr_assert_eq(km_frame_decoder_feed(dec, in, KM_FRAME_HEADER_LEN + len,
					   &used, &f), 1);
	cr_assert_eq(f.len, len);
	free(in);
}

Test(frame, decoder_gives_back_a_big_buffer_at_the_next_small_frame)
{
	struct km_frame_decoder dec;

	km_frame_decoder_init(&dec, 0);
	feed_one(&dec, KM_FRAME_MESSAGE, 60000);
	cr_assert_geq(dec.buf_cap, 60000);
	feed_one(&dec, KM_FRAME_PING, 8);
	cr_assert_leq(dec.buf_cap, 4096, "an idle link keeps %zu bytes",
		      dec.buf_cap);
	feed_one(&dec, KM_FRAME_PONG, 0);
	cr_assert_leq(dec.buf_cap, 4096);
	km_frame_decoder_free(&dec);
}

Test(frame, decoder_keeps_a_small_buffer_across_small_frames)
{
	struct km_frame_decoder dec;
	const uint8_t *buf;

	km_frame_decoder_init(&dec, 0);
	feed_one(&dec, KM_FRAME_MESSAGE, 1100);
	buf = dec.buf;
	feed_one(&dec, KM_FRAME_PING, 8);
	feed_one(&dec, KM_FRAME_MESSAGE, 1000);
	cr_assert_eq(dec.buf, buf, "no reallocation below the keep size");
	km_frame_decoder_free(&dec);
}
