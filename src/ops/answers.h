/* The JSON answers of the control commands other than `status`, and the
 * event line of a delivered broadcast.  Each returns NULL when memory runs
 * out. */
#ifndef KM_OPS_ANSWERS_H
#define KM_OPS_ANSWERS_H

#include <stdint.h>

#include <cJSON.h>

#include "net/node.h"

cJSON *km_answer_table(struct km_node *n, km_ms now);     /* `table` */
cJSON *km_answer_neighbours(struct km_node *n, km_ms now); /* `peers` */
cJSON *km_answer_lookup(const struct km_lookup *lk);   /* lookup, get_peers */
cJSON *km_answer_announce(const struct km_lookup *lk, uint16_t port);
cJSON *km_answer_message(const struct km_message *m);  /* subscribers' event */

#endif
