/* The keys pinned per node ID, trust on first use: the first key seen for
 * a node ID is kept, and a later, different key for that ID is refused.
 * The table is bounded; when full, the least recently used pin is
 * forgotten.  Used by the link handshake (link.c) and held by the node. */
#ifndef KM_NET_PINS_H
#define KM_NET_PINS_H

#include <stddef.h>
#include <stdint.h>

#include "dht/id.h"
#include "net/ident.h"
#include "proto/ms.h"

struct km_pins;

/* max == 0 means 4096 entries. */
struct km_pins *km_pins_new(size_t max);
void km_pins_del(struct km_pins *p); /* NULL is a no-op */

/* Checks pub against the key pinned for id, pinning it if there is none.
 * Returns 0 (pinned now, or the same key as before), KM_ERR_AUTH (another
 * key is pinned for id) or KM_ERR_NOMEM. */
int km_pins_check(struct km_pins *p, const struct km_id *id,
		  const uint8_t pub[static KM_IDENT_PUB_LEN], km_ms now);

/* The key pinned for id, or NULL. */
const uint8_t *km_pins_find(const struct km_pins *p, const struct km_id *id);

size_t km_pins_count(const struct km_pins *p);

#endif
