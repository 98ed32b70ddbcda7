/* cJSON builders shared by the control protocol's answers (control.c,
 * status.c, answers.c).  Each takes the answer's `ok` flag and does nothing
 * once it is false; km_json_finish() turns a failed answer into NULL. */
#ifndef KM_OPS_JSON_H
#define KM_OPS_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

#include "proto/node.h"

/* Both families, IPv4 first: the order of every per-family list. */
extern const uint8_t km_json_families[2];

void km_json_num(cJSON *o, const char *key, double v, bool *ok);
void km_json_str(cJSON *o, const char *key, const char *v, bool *ok);
cJSON *km_json_obj(cJSON *o, const char *key, bool *ok);
cJSON *km_json_arr(cJSON *o, const char *key, bool *ok);
/* o if ok, else NULL (and o is freed). */
cJSON *km_json_finish(cJSON *o, bool ok);
void km_json_id(cJSON *o, const char *key, const struct km_id *id, bool *ok);
void km_json_addr(cJSON *o, const char *key, const struct km_addr *a,
		  bool *ok);
/* "ipv4" or "ipv6". */
const char *km_json_family(uint8_t family);

#endif
