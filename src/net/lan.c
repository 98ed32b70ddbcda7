/* LAN discovery: the announce format and its schedule (see lan.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/lan.h"
#include "proto/err.h"

#define START_LINE "KM-SEARCH * HTTP/1.1"

int km_lan_encode(char *out, size_t cap, const struct km_lan_announce *a)
{
	char hex[KM_ID_HEXLEN + 1];
	int w;

	km_id_to_hex(&a->id, hex);
	w = snprintf(out, cap,
		     START_LINE "\r\nHost: " KM_LAN_GROUP4 ":%d\r\n"
		     "Port: %u\r\nNetwork: %08x\r\nNode: %s\r\n\r\n",
		     KM_LAN_PORT, (unsigned)a->port, (unsigned)a->network, hex);
	return w < 0 || (size_t)w >= cap ? KM_ERR_BUF : w;
}

/* Parses "Name: value" into a->...; unknown headers are ignored. */
static bool header(char *line, struct km_lan_announce *a, unsigned *have)
{
	char *colon = strchr(line, ':'), *end;
	char *value;
	unsigned long v;

	if (!colon)
		return false;
	*colon = '\0';
	value = colon + 1 + strspn(colon + 1, " ");
	if (strcasecmp(line, "Node") == 0) {
		*have |= 1;
		return km_id_from_hex(value, &a->id);
	}
	if (strcasecmp(line, "Port") != 0 && strcasecmp(line, "Network") != 0)
		return true;
	v = strtoul(value, &end, line[0] == 'P' || line[0] == 'p' ? 10 : 16);
	if (end == value || *end != '\0')
		return false;
	if (line[0] == 'P' || line[0] == 'p') {
		*have |= 2;
		a->port = (uint16_t)v;
		return v > 0 && v <= 65535;
	}
	*have |= 4;
	a->network = (uint32_t)v;
	return v <= 0xffffffffUL;
}

int km_lan_decode(const uint8_t *buf, size_t len, struct km_lan_announce *a)
{
	char text[KM_LAN_MSG_MAX + 1];
	char *line, *save = NULL;
	unsigned have = 0;

	if (len > KM_LAN_MSG_MAX)
		return KM_ERR_TOO_LONG;
	if (memchr(buf, '\0', len))
		return KM_ERR_SYNTAX;
	memcpy(text, buf, len);
	text[len] = '\0';
	memset(a, 0, sizeof(*a));
	line = strtok_r(text, "\r\n", &save);
	if (!line || strcmp(line, START_LINE) != 0)
		return KM_ERR_SYNTAX;
	while ((line = strtok_r(NULL, "\r\n", &save)))
		if (!header(line, a, &have))
			return KM_ERR_SYNTAX;
	return have == 7 ? 0 : KM_ERR_SYNTAX;
}

void km_lan_init(struct km_lan *l, const struct km_lan_announce *self,
		 km_ms now)
{
	memset(l, 0, sizeof(*l));
	l->self = *self;
	l->next = now;
	l->interval = KM_LAN_FIRST_MS;
}

int km_lan_tick(struct km_lan *l, km_ms now, char *out, size_t cap,
		km_ms *wake)
{
	int w;

	if (now < l->next) {
		*wake = l->next;
		return 0;
	}
	l->next = now + l->interval;
	l->interval = l->interval * 2 > KM_LAN_MAX_MS ? KM_LAN_MAX_MS
						       : l->interval * 2;
	l->last_sent = now;
	*wake = l->next;
	w = km_lan_encode(out, cap, &l->self);
	if (w > 0)
		l->stats.sent++;
	return w > 0 ? w : 0;
}

/* The node's slot: where it was, or the least recently reported. */
static struct km_lan_seen *seen_slot(struct km_lan *l,
				     const struct km_lan_announce *a,
				     bool *found)
{
	struct km_lan_seen *oldest = &l->seen[0];

	for (size_t i = 0; i < KM_LAN_SEEN_MAX; i++) {
		struct km_lan_seen *s = &l->seen[i];

		if (s->addr.family != KM_AF_NONE && km_id_eq(&s->id, &a->id)) {
			*found = true;
			return s;
		}
		if (s->addr.family == KM_AF_NONE ||
		    (oldest->addr.family != KM_AF_NONE &&
		     s->reported < oldest->reported))
			oldest = s;
	}
	*found = false;
	return oldest;
}

bool km_lan_recv(struct km_lan *l, const struct km_addr *from,
		 const uint8_t *buf, size_t len, km_ms now,
		 struct km_addr *contact)
{
	struct km_lan_announce a;
	struct km_lan_seen *s;
	bool found;

	if (km_lan_decode(buf, len, &a) < 0) {
		l->stats.malformed++;
		return false;
	}
	l->stats.received++;
	if (a.network != l->self.network || km_id_eq(&a.id, &l->self.id)) {
		l->stats.foreign += a.network != l->self.network;
		return false;
	}
	*contact = *from;
	contact->port = a.port;
	s = seen_slot(l, &a, &found);
	if (found && km_addr_eq(&s->addr, contact) &&
	    now - s->reported < KM_LAN_RECONTACT_MS)
		return false;
	if (!found) /* a newcomer: let it hear from us soon */
		l->next = km_ms_earliest(l->next, l->last_sent + KM_LAN_ANSWER_GAP_MS);
	s->id = a.id;
	s->addr = *contact;
	s->reported = now;
	l->stats.reported++;
	return true;
}
