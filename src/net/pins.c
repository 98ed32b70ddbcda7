#include "net/pins.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "proto/err.h"

#define PINS_MAX_DEFAULT 4096

struct pin {
	struct km_id id;
	uint8_t pub[KM_IDENT_PUB_LEN];
	km_ms used;
	UT_hash_handle hh;
};

struct km_pins {
	struct pin *map;
	size_t n, max;
};

struct km_pins *km_pins_new(size_t max)
{
	struct km_pins *p = calloc(1, sizeof(*p));

	if (p)
		p->max = max ? max : PINS_MAX_DEFAULT;
	return p;
}

void km_pins_del(struct km_pins *p)
{
	struct pin *e, *t;

	if (!p)
		return;
	HASH_ITER(hh, p->map, e, t) {
		HASH_DEL(p->map, e);
		free(e);
	}
	free(p);
}

static struct pin *pin_find(const struct km_pins *p, const struct km_id *id)
{
	struct pin *e;

	HASH_FIND(hh, p->map, id->b, KM_ID_LEN, e);
	return e;
}

/* A full table forgets its least recently used pin: a linear scan, but only
 * when a new ID arrives at the cap. */
static void forget_oldest(struct km_pins *p)
{
	struct pin *e, *t, *old = NULL;

	HASH_ITER(hh, p->map, e, t)
		if (!old || e->used < old->used)
			old = e;
	if (old) {
		HASH_DEL(p->map, old);
		free(old);
		p->n--;
	}
}

int km_pins_check(struct km_pins *p, const struct km_id *id,
		  const uint8_t pub[static KM_IDENT_PUB_LEN], km_ms now)
{
	struct pin *e = pin_find(p, id);

	if (e) {
		if (memcmp(e->pub, pub, KM_IDENT_PUB_LEN) != 0)
			return KM_ERR_AUTH;
		e->used = now;
		return 0;
	}
	if (p->n >= p->max)
		forget_oldest(p);
	if (!(e = calloc(1, sizeof(*e))))
		return KM_ERR_NOMEM;
	e->id = *id;
	memcpy(e->pub, pub, KM_IDENT_PUB_LEN);
	e->used = now;
	HASH_ADD(hh, p->map, id.b, KM_ID_LEN, e);
	p->n++;
	return 0;
}

const uint8_t *km_pins_find(const struct km_pins *p, const struct km_id *id)
{
	struct pin *e = pin_find(p, id);

	return e ? e->pub : NULL;
}

size_t km_pins_count(const struct km_pins *p)
{
	return p->n;
}
