/* The control protocol: sessions, line framing and command dispatch.
 *
 * Each session owns one fixed line buffer, so a client costs at most
 * KM_CONTROL_LINE_MAX bytes however it behaves.  One request per session is
 * served at a time: lookups answer later, from km_control_lookup_done(), and
 * a complete line that arrives meanwhile is refused with "busy" rather than
 * queued, because serving it from inside lookup_done would re-enter the DHT
 * from its own callback.  cJSON builds every response, so whatever a
 * hostile peer put in an address or a request comes out escaped. */
#include "ops/control.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "ops/answers.h"
#include "ops/json.h"
#include "ops/metrics.h"
#include "ops/status.h"
#include "proto/base64.h"
#include "proto/msg.h"
#include "proto/err.h"

#define MAX_ARGS 8
/* How much of a bad command name an error message echoes back. */
#define ECHO_MAX 40

enum pending_kind { PENDING_NONE, PENDING_LOOKUP, PENDING_ANNOUNCE };

struct session {
	uint64_t id;
	enum pending_kind pending;
	bool have_lookup_id;      /* false while km_node_lookup() runs */
	uint64_t lookup_id;
	uint16_t announce_port;
	bool subscribed;          /* delivered messages stream to it */
	uint8_t family;           /* of the pending lookup; KM_AF_NONE: default */
	size_t len;
	char line[KM_CONTROL_LINE_MAX];
};

struct km_control {
	struct km_node *node;
	struct km_control_callbacks cb;
	void *user;
	struct session *sessions[KM_CONTROL_MAX_SESSIONS];
	uint64_t next_id;
	/* The session whose lookup is being started: a lookup with nobody to
	 * ask ends inside km_node_lookup(), before its id is known here. */
	struct session *starting;
};

struct command {
	const char *name;
	void (*run)(struct km_control *c, struct session *s, int argc,
		    char **argv, km_ms now);
	int min_args, max_args;   /* not counting the command itself */
	const char *usage;
	const char *help;
};

static const struct command commands[];

/* Responses */

static void write_json(struct km_control *c, struct session *s, cJSON *root)
{
	static const char oom[] = "{\"ok\":false,\"error\":\"out of memory\"}\n";
	char *txt = root ? cJSON_PrintUnformatted(root) : NULL;
	size_t n = txt ? strlen(txt) : 0;
	char *line = txt ? malloc(n + 1) : NULL;

	if (line) {
		memcpy(line, txt, n);
		line[n] = '\n';
		c->cb.write(c->user, s->id, line, n + 1);
	} else {
		c->cb.write(c->user, s->id, oom, sizeof(oom) - 1);
	}
	free(line);
	cJSON_free(txt);
	cJSON_Delete(root);
}

/* Takes ownership of result; NULL means building it ran out of memory. */
static void respond_ok(struct km_control *c, struct session *s, cJSON *result)
{
	cJSON *root = cJSON_CreateObject();

	if (!result || !root || !cJSON_AddTrueToObject(root, "ok") ||
	    !cJSON_AddItemToObject(root, "result", result)) {
		cJSON_Delete(result);
		cJSON_Delete(root);
		root = NULL;
	}
	write_json(c, s, root);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void respond_error(struct km_control *c, struct session *s,
			  const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	cJSON *root = cJSON_CreateObject();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!root || !cJSON_AddFalseToObject(root, "ok") ||
	    !cJSON_AddStringToObject(root, "error", msg)) {
		cJSON_Delete(root);
		root = NULL;
	}
	write_json(c, s, root);
}

/* Sessions */

static struct session **session_slot(struct km_control *c, uint64_t id)
{
	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++)
		if (c->sessions[i] && c->sessions[i]->id == id)
			return &c->sessions[i];
	return NULL;
}

static void session_free(struct km_control *c, struct session *s)
{
	struct session **slot = session_slot(c, s->id);

	if (c->starting == s)
		c->starting = NULL;
	*slot = NULL;
	free(s);
}

struct km_control *km_control_new(struct km_node *node,
				  const struct km_control_callbacks *cb,
				  void *user)
{
	struct km_control *c;

	if (!node || !cb || !cb->write || !cb->close)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->node = node;
	c->cb = *cb;
	c->user = user;
	c->next_id = 1;
	return c;
}

void km_control_del(struct km_control *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++)
		free(c->sessions[i]);
	free(c);
}

uint64_t km_control_open(struct km_control *c)
{
	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++) {
		struct session *s;

		if (c->sessions[i])
			continue;
		s = malloc(sizeof(*s));
		if (!s)
			return 0;
		memset(s, 0, offsetof(struct session, line));
		s->id = c->next_id++;
		c->sessions[i] = s;
		return s->id;
	}
	return 0;
}

void km_control_closed(struct km_control *c, uint64_t session)
{
	struct session **slot = session_slot(c, session);

	/* A lookup still running for it finds nobody in lookup_done. */
	if (slot)
		session_free(c, *slot);
}

bool km_control_pending(const struct km_control *c, uint64_t session)
{
	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++)
		if (c->sessions[i] && c->sessions[i]->id == session)
			return c->sessions[i]->pending != PENDING_NONE ||
			       c->sessions[i]->subscribed;
	return false;
}

/* Broadcast */

void km_control_deliver(struct km_control *c, const struct km_message *m)
{
	cJSON *event = NULL;

	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++) {
		struct session *s = c->sessions[i];

		if (!s || !s->subscribed)
			continue;
		if (!event && !(event = km_answer_message(m)))
			return;
		/* write_json frees what it prints: each session gets a copy. */
		write_json(c, s, cJSON_Duplicate(event, true));
	}
	cJSON_Delete(event);
}

/* Line handling */

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Splits line in place on blanks; returns the argument count, or -1 if
 * there are more than max. */
static int split_args(char *line, char **argv, int max)
{
	int argc = 0;

	for (char *p = line; *p;) {
		if (is_blank(*p)) {
			*p++ = '\0';
			continue;
		}
		if (argc == max)
			return -1;
		argv[argc++] = p;
		while (*p && !is_blank(*p))
			p++;
	}
	return argc;
}

/* A printable, bounded copy of untrusted text for an error message. */
static void echo_safe(const char *in, char out[static ECHO_MAX + 4])
{
	size_t i;

	for (i = 0; in[i] && i < ECHO_MAX; i++)
		out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
	strcpy(out + i, in[i] ? "..." : "");
}

static const struct command *command_find(const char *name)
{
	for (const struct command *cmd = commands; cmd->name; cmd++)
		if (strcmp(cmd->name, name) == 0)
			return cmd;
	return NULL;
}

static void handle_line(struct km_control *c, struct session *s, char *line,
			size_t len, km_ms now)
{
	char *argv[MAX_ARGS];
	char echo[ECHO_MAX + 4];
	const struct command *cmd;
	int argc;

	if (memchr(line, '\0', len)) {
		respond_error(c, s, "request contains a NUL byte");
		return;
	}
	argc = split_args(line, argv, MAX_ARGS);
	if (argc == 0)
		return; /* a blank line is not a request */
	if (s->pending != PENDING_NONE) {
		respond_error(c, s, "busy: the previous request has not been "
			      "answered yet");
		return;
	}
	if (argc < 0) {
		respond_error(c, s, "too many arguments");
		return;
	}
	cmd = command_find(argv[0]);
	echo_safe(argv[0], echo);
	if (!cmd)
		respond_error(c, s, "unknown command '%s' (try 'help')", echo);
	else if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args)
		respond_error(c, s, "usage: %s", cmd->usage);
	else
		cmd->run(c, s, argc - 1, argv + 1, now);
}

/* Serves every complete line in the buffer and keeps the partial rest. */
static void drain_lines(struct km_control *c, struct session *s, km_ms now)
{
	size_t start = 0;
	char *nl;

	while ((nl = memchr(s->line + start, '\n', s->len - start))) {
		size_t len = (size_t)(nl - (s->line + start));

		*nl = '\0';
		if (len > 0 && s->line[start + len - 1] == '\r')
			s->line[start + --len] = '\0';
		handle_line(c, s, s->line + start, len, now);
		start = (size_t)(nl - s->line) + 1;
	}
	memmove(s->line, s->line + start, s->len - start);
	s->len -= start;
}

void km_control_recv(struct km_control *c, uint64_t session,
		     const uint8_t *buf, size_t len, km_ms now)
{
	struct session **slot = session_slot(c, session);
	struct session *s = slot ? *slot : NULL;

	while (s && len > 0) {
		size_t n = KM_CONTROL_LINE_MAX - s->len;

		n = len < n ? len : n;
		memcpy(s->line + s->len, buf, n);
		s->len += n;
		buf += n;
		len -= n;
		drain_lines(c, s, now);
		if (s->len == KM_CONTROL_LINE_MAX) {
			respond_error(c, s, "request line longer than %d bytes",
				      KM_CONTROL_LINE_MAX - 1);
			session_free(c, s);
			c->cb.close(c->user, session);
			return;
		}
	}
}

/* Lookups */

static struct session *waiting_session(struct km_control *c,
				       uint64_t lookup_id)
{
	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++) {
		struct session *s = c->sessions[i];

		if (s && s->pending != PENDING_NONE && s->have_lookup_id &&
		    s->lookup_id == lookup_id)
			return s;
	}
	if (c->starting && c->starting->pending != PENDING_NONE)
		return c->starting;
	return NULL;
}

bool km_control_lookup_done(struct km_control *c, uint64_t lookup_id,
			    const struct km_lookup *lk)
{
	struct session *s = waiting_session(c, lookup_id);
	bool announce;

	if (!s)
		return false;
	announce = s->pending == PENDING_ANNOUNCE;
	s->pending = PENDING_NONE;
	if (announce)
		respond_ok(c, s, km_answer_announce(lk, s->announce_port));
	else
		respond_ok(c, s, km_answer_lookup(lk));
	return true;
}

/* Marks s as waiting, starts the lookup, and notes its id unless it has
 * already ended (and been answered) inside the call. */
static void start_lookup(struct km_control *c, struct session *s,
			 const struct km_id *target, enum km_lookup_kind kind,
			 bool announce, km_ms now)
{
	uint64_t id = 0;
	int rc;

	s->pending = announce ? PENDING_ANNOUNCE : PENDING_LOOKUP;
	s->have_lookup_id = false;
	c->starting = s;
	if (announce)
		rc = km_node_announce_in(c->node, s->family, target,
					 s->announce_port, &id, now);
	else
		rc = km_node_lookup_in(c->node, s->family, target, kind, &id,
				       now);
	c->starting = NULL;
	if (rc < 0) {
		s->pending = PENDING_NONE;
		respond_error(c, s, "%s", rc == KM_ERR_FULL ?
			      "too many lookups running; try again later" :
			      rc == KM_ERR_INVAL ?
			      "this node does not run that address family" :
			      km_strerror(rc));
		return;
	}
	s->lookup_id = id;
	s->have_lookup_id = true;
}

/* Commands */

static bool parse_id(struct km_control *c, struct session *s, const char *hex,
		     struct km_id *out)
{
	if (km_id_from_hex(hex, out))
		return true;
	respond_error(c, s, "malformed ID: expected %d hex characters",
		      KM_ID_HEXLEN);
	return false;
}

static bool parse_port(struct km_control *c, struct session *s,
		       const char *str, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; str[i] >= '0' && str[i] <= '9' && i < 6; i++)
		v = v * 10 + (unsigned long)(str[i] - '0');
	if (i == 0 || str[i] != '\0' || v == 0 || v > 65535) {
		respond_error(c, s, "bad port: expected a number from 1 to "
			      "65535");
		return false;
	}
	*out = (uint16_t)v;
	return true;
}

/* An optional last argument "ipv4" or "ipv6" picks the lookup's family;
 * returns the arguments left, or -1 after answering an error. */
static int parse_family(struct km_control *c, struct session *s, int argc,
			char **argv)
{
	s->family = KM_AF_NONE;
	if (argc == 0)
		return 0;
	if (strcmp(argv[argc - 1], "ipv4") == 0)
		s->family = KM_AF_INET4;
	else if (strcmp(argv[argc - 1], "ipv6") == 0)
		s->family = KM_AF_INET6;
	else
		return argc;
	return argc - 1;
}

static void cmd_status(struct km_control *c, struct session *s, int argc,
		       char **argv, km_ms now)
{
	cJSON *st = km_status_json(c->node, now);
	size_t subscribers = 0;

	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++)
		subscribers += c->sessions[i] && c->sessions[i]->subscribed;
	if (st && !cJSON_AddNumberToObject(st, "subscribers",
					   (double)subscribers)) {
		cJSON_Delete(st);
		st = NULL;
	}
	respond_ok(c, s, st);
}

static void cmd_table(struct km_control *c, struct session *s, int argc,
		      char **argv, km_ms now)
{
	respond_ok(c, s, km_answer_table(c->node, now));
}

static void cmd_lookup(struct km_control *c, struct session *s, int argc,
		       char **argv, km_ms now)
{
	struct km_id target;

	if (parse_family(c, s, argc, argv) != 1) {
		respond_error(c, s, "usage: lookup ID [ipv4|ipv6]");
		return;
	}
	if (parse_id(c, s, argv[0], &target))
		start_lookup(c, s, &target, KM_LOOKUP_FIND_NODE, false, now);
}

static void cmd_get_peers(struct km_control *c, struct session *s, int argc,
			  char **argv, km_ms now)
{
	struct km_id target;

	if (parse_family(c, s, argc, argv) != 1) {
		respond_error(c, s, "usage: get-peers ID [ipv4|ipv6]");
		return;
	}
	if (parse_id(c, s, argv[0], &target))
		start_lookup(c, s, &target, KM_LOOKUP_GET_PEERS, false, now);
}

static void cmd_announce(struct km_control *c, struct session *s, int argc,
			 char **argv, km_ms now)
{
	struct km_id target;

	argc = parse_family(c, s, argc, argv);
	if (argc < 1 || argc > 2) {
		respond_error(c, s, "usage: announce ID [PORT] [ipv4|ipv6]");
		return;
	}
	if (!parse_id(c, s, argv[0], &target))
		return;
	s->announce_port = km_node_config(c->node)->port;
	if (argc == 2 && !parse_port(c, s, argv[1], &s->announce_port))
		return;
	start_lookup(c, s, &target, KM_LOOKUP_GET_PEERS, true, now);
}

static void cmd_punch(struct km_control *c, struct session *s, int argc,
		      char **argv, km_ms now)
{
	struct km_id id;
	int rc;

	if (!parse_id(c, s, argv[0], &id))
		return;
	rc = km_node_punch(c->node, &id, now);
	if (rc < 0)
		respond_error(c, s, rc == KM_ERR_FULL ? "no neighbour to ask"
				   : "cannot punch to that node");
	else
		respond_ok(c, s, cJSON_CreateObject());
}

static void cmd_peers(struct km_control *c, struct session *s, int argc,
		      char **argv, km_ms now)
{
	respond_ok(c, s, km_answer_neighbours(c->node, now));
}

static void cmd_broadcast(struct km_control *c, struct session *s, int argc,
			  char **argv, km_ms now)
{
	/* The request line bounds the base64, so this is at most ~3 KiB. */
	size_t cap = strlen(argv[0]) / 4 * 3 + 1;
	uint8_t *payload = malloc(cap), id[KM_MSG_ID_LEN];
	int len = payload ? km_base64_decode(argv[0], payload, cap) : KM_ERR_NOMEM;
	cJSON *o;
	struct km_id mid;
	bool ok;

	int rc = len;

	if (len >= 0)
		rc = km_node_broadcast(c->node, payload, (size_t)len, id, now);
	free(payload);
	if (rc < 0)
		len = rc;
	if (len < 0) {
		respond_error(c, s, "%s", len == KM_ERR_SYNTAX ?
			      "payload is not base64" : km_strerror(len));
		return;
	}
	o = cJSON_CreateObject();
	ok = o != NULL;
	memcpy(mid.b, id, KM_ID_LEN);
	km_json_id(o, "id", &mid, &ok);
	km_json_num(o, "size", len, &ok);
	respond_ok(c, s, km_json_finish(o, ok));
}

static void cmd_subscribe(struct km_control *c, struct session *s, int argc,
			  char **argv, km_ms now)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddTrueToObject(o, "subscribed");

	s->subscribed = true;
	respond_ok(c, s, km_json_finish(o, ok));
}

static void cmd_metrics(struct km_control *c, struct session *s, int argc,
			char **argv, km_ms now)
{
	char *text = km_metrics_render(c->node, now);
	cJSON *o = text ? cJSON_CreateObject() : NULL;

	if (o && !cJSON_AddStringToObject(o, "text", text)) {
		cJSON_Delete(o);
		o = NULL;
	}
	free(text);
	respond_ok(c, s, o);
}

static void cmd_help(struct km_control *c, struct session *s, int argc,
		     char **argv, km_ms now)
{
	cJSON *list = cJSON_CreateArray();
	bool ok = list != NULL;

	for (const struct command *cmd = commands; ok && cmd->name; cmd++) {
		cJSON *o = cJSON_CreateObject();

		ok = o && cJSON_AddItemToArray(list, o) &&
		     cJSON_AddStringToObject(o, "command", cmd->name) &&
		     cJSON_AddStringToObject(o, "usage", cmd->usage) &&
		     cJSON_AddStringToObject(o, "help", cmd->help);
	}
	if (!ok) {
		cJSON_Delete(list);
		list = NULL;
	}
	respond_ok(c, s, list);
}

static const struct command commands[] = {
	{ "status", cmd_status, 0, 0, "status",
	  "identity, uptime, routing table size and traffic counters" },
	{ "table", cmd_table, 0, 0, "table",
	  "every routing table entry" },
	{ "lookup", cmd_lookup, 1, 2, "lookup ID [ipv4|ipv6]",
	  "the k nodes closest to ID, by an iterative find_node (in the "
	  "node's default family unless one is named)" },
	{ "get-peers", cmd_get_peers, 1, 2, "get-peers ID [ipv4|ipv6]",
	  "like lookup, with get_peers, plus the peers announced under ID" },
	{ "announce", cmd_announce, 1, 3, "announce ID [PORT] [ipv4|ipv6]",
	  "announce this node under ID (PORT defaults to the node's port)" },
	{ "peers", cmd_peers, 0, 0, "peers",
	  "the overlay neighbours: id, addr, direction, age, rtt, traffic" },
	{ "punch", cmd_punch, 1, 1, "punch ID",
	  "ask our neighbours to act as rendezvous for a hole-punched link "
	  "to node ID" },
	{ "broadcast", cmd_broadcast, 1, 1, "broadcast BASE64",
	  "send the base64-decoded payload to every node" },
	{ "subscribe", cmd_subscribe, 0, 0, "subscribe",
	  "stream every delivered broadcast message as an event line" },
	{ "metrics", cmd_metrics, 0, 0, "metrics",
	  "counters and gauges in the Prometheus text format, as \"text\"" },
	{ "help", cmd_help, 0, 0, "help", "this list" },
	{ NULL, NULL, 0, 0, NULL, NULL },
};
