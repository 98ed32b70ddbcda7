/* The state-file loader: whatever a torn or hostile file holds, the loader
 * fails cleanly, and a file it accepts encodes back to the same bytes. */
#include <string.h>

#include "fuzz.h"
#include "dht/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct km_contact c[KM_STATE_MAX_ENTRIES];
	static uint8_t out[KM_STATE_MAX_LEN];
	struct km_id self;
	size_t n = 0;
	int w;

	if (km_state_decode(data, size, &self, c, KM_STATE_MAX_ENTRIES, &n) < 0) {
		FUZZ_ASSERT(n == 0);
		return 0;
	}
	FUZZ_ASSERT(n <= KM_STATE_MAX_ENTRIES);
	w = km_state_encode(&self, c, n, out, sizeof(out));
	FUZZ_ASSERT(w >= 0 && (size_t)w == size && memcmp(out, data, size) == 0);
	return 0;
}
