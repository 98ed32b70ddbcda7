#include "net/stats.h"

#include <stddef.h>

const km_ms km_lookup_hist_bounds[KM_LOOKUP_HIST_N] = { KM_LOOKUP_HIST_BOUNDS };

void km_lookup_hist_observe(struct km_lookup_hist *h, km_ms ms)
{
	size_t i = 0;

	while (i < KM_LOOKUP_HIST_N && ms > km_lookup_hist_bounds[i])
		i++;
	h->le[i]++;
	h->count++;
	h->sum_ms += ms;
}
