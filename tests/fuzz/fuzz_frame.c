/* The overlay frame decoder, both ways: km_frame_decode on the whole input,
 * and the incremental decoder fed in chunks whose sizes come from the input
 * itself, so the fuzzer explores every way frames can be split.  Both must
 * agree on the first frame. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct km_frame_decoder dec;
	struct km_frame f, g;
	size_t used, off = 1;
	uint8_t chunk;
	int rc, first = -1;

	if (size < 1)
		return 0;
	chunk = data[0] ? data[0] : 1;
	rc = km_frame_decode(data + 1, size - 1, 4096, &f, &used);
	if (rc == 0)
		FUZZ_ASSERT(used == KM_FRAME_HEADER_LEN + f.len && used <= size - 1);
	km_frame_decoder_init(&dec, 4096);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk, c = 0;
		int r = km_frame_decoder_feed(&dec, data + off, n, &c, &g);

		FUZZ_ASSERT(c <= n);
		if (r < 0)
			break;
		if (r == 1 && first < 0) {
			first = 1;
			FUZZ_ASSERT(rc == 0 && g.type == f.type && g.len == f.len &&
				    memcmp(g.payload, f.payload, f.len) == 0);
		}
		if (r == 0 && c == 0)
			break;
		off += c;
	}
	km_frame_decoder_finish(&dec);
	km_frame_decoder_free(&dec);
	return 0;
}
