/* KRPC: any datagram must decode without harm, and a message that decodes
 * must survive encode -> decode -> encode with identical bytes the second
 * time (the first encoding may differ from the input: unknown keys are
 * dropped and values are capped). */
#include <string.h>

#include "fuzz.h"
#include "proto/krpc.h"

static uint8_t out1[KM_KRPC_MAX_PACKET], out2[KM_KRPC_MAX_PACKET];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct km_krpc_msg m, m2;
	int n1, n2;

	if (km_krpc_decode(data, size, &m) < 0)
		return 0;
	FUZZ_ASSERT(m.tid_len <= KM_KRPC_TID_MAX && m.token_len <= KM_KRPC_TOKEN_MAX);
	FUZZ_ASSERT(m.values_count <= KM_KRPC_VALUES_MAX);
	FUZZ_ASSERT(m.nodes_len % KM_COMPACT_NODE4_LEN == 0 &&
		    m.nodes6_len % KM_COMPACT_NODE6_LEN == 0);
	n1 = km_krpc_encode(&m, out1, sizeof(out1));
	if (n1 < 0)
		return 0; /* e.g. an unknown method we can answer but not ask */
	FUZZ_ASSERT(km_krpc_decode(out1, (size_t)n1, &m2) == 0);
	FUZZ_ASSERT(m2.type == m.type && m2.tid_len == m.tid_len &&
		    memcmp(m2.tid, m.tid, m.tid_len) == 0);
	n2 = km_krpc_encode(&m2, out2, sizeof(out2));
	FUZZ_ASSERT(n2 == n1 && memcmp(out1, out2, (size_t)n1) == 0);
	return 0;
}
