/* The control command `status` as JSON (docs/CONTROL.md, *status*). */
#ifndef KM_OPS_STATUS_H
#define KM_OPS_STATUS_H

#include <cJSON.h>

#include "net/node.h"

/* NULL when memory runs out. */
cJSON *km_status_json(struct km_node *n, km_ms now);

#endif
