/* cJSON builders for the control protocol's answers.  cJSON signals
 * running out of memory by returning NULL from every add; one flag per
 * answer keeps the builders straight-line, and a builder that failed
 * returns NULL so the client hears about it. */
#include "ops/json.h"

#include <string.h>

#include "dht/id.h"

const uint8_t km_json_families[2] = { KM_AF_INET4, KM_AF_INET6 };

void km_json_num(cJSON *o, const char *key, double v, bool *ok)
{
	*ok = *ok && cJSON_AddNumberToObject(o, key, v);
}

void km_json_str(cJSON *o, const char *key, const char *v, bool *ok)
{
	*ok = *ok && cJSON_AddStringToObject(o, key, v);
}

cJSON *km_json_obj(cJSON *o, const char *key, bool *ok)
{
	cJSON *child = *ok ? cJSON_AddObjectToObject(o, key) : NULL;

	*ok = child != NULL;
	return child;
}

cJSON *km_json_arr(cJSON *o, const char *key, bool *ok)
{
	cJSON *child = *ok ? cJSON_AddArrayToObject(o, key) : NULL;

	*ok = child != NULL;
	return child;
}

cJSON *km_json_finish(cJSON *o, bool ok)
{
	if (ok && o)
		return o;
	cJSON_Delete(o);
	return NULL;
}

void km_json_id(cJSON *o, const char *key, const struct km_id *id,
		   bool *ok)
{
	char hex[KM_ID_HEXLEN + 1];

	km_id_to_hex(id, hex);
	km_json_str(o, key, hex, ok);
}

void km_json_addr(cJSON *o, const char *key, const struct km_addr *a,
		     bool *ok)
{
	char buf[KM_ADDR_STRLEN];

	if (km_addr_format(a, buf, sizeof(buf)) < 0)
		strcpy(buf, "-");
	km_json_str(o, key, buf, ok);
}

const char *km_json_family(uint8_t family)
{
	return family == KM_AF_INET6 ? "ipv6" : "ipv4";
}
