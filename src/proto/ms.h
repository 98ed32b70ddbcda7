/* Time as the core sees it: milliseconds on a monotonic clock that the
 * caller supplies (uv_now() in the daemon, the virtual clock in the
 * simulator).  Only differences matter.  Every layer passes it around, so it
 * lives at the bottom. */
#ifndef KM_PROTO_MS_H
#define KM_PROTO_MS_H

#include <stdint.h>

typedef uint64_t km_ms;

#define KM_SECONDS(s) ((km_ms)(s) * 1000)
#define KM_MINUTES(m) ((km_ms)(m) * 60 * 1000)

/* The earlier of two wake-up times, where 0 means "no wake-up wanted". */
static inline km_ms km_ms_earliest(km_ms a, km_ms b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

#endif
