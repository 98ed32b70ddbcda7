/* The bencode parser on whole and partial input, with strict and lax key
 * order (the first input byte picks the limits). */
#include "fuzz.h"
#include "proto/bencode.h"

#define NODES 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct km_bnode nodes[NODES];
	struct km_bencode_limits lim;
	size_t used = 0;
	int n;

	if (size < 1)
		return 0;
	km_bencode_limits_default(&lim);
	lim.strict_order = data[0] & 1;
	lim.max_depth = 1 + (data[0] >> 1) % KM_BENCODE_DEPTH_MAX;
	n = km_bencode_parse(data + 1, size - 1, nodes, NODES, &lim);
	FUZZ_ASSERT(n <= NODES);
	for (int i = 0; i < n; i++)
		FUZZ_ASSERT(nodes[i].start + nodes[i].len <= size - 1 &&
			    nodes[i].next <= (uint32_t)n);
	n = km_bencode_parse_partial(data + 1, size - 1, nodes, NODES, &lim, &used);
	FUZZ_ASSERT(n <= NODES && used <= NODES);
	return 0;
}
