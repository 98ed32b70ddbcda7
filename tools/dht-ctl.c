/* dht-ctl: asks a running dht-node over its control socket.
 *
 * One request line out, one JSON line back (docs/CONTROL.md).  Each
 * subcommand is a row of a table, wireguard-tools style: how many
 * arguments it takes and how to print its result for people; --json
 * prints the result as it came. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cJSON.h>

#include "common/ctl_client.h"
#include "proto/base64.h"

#define DEFAULT_CONTROL "control.sock"
#define DEFAULT_TIMEOUT_S 60
/* The longest response read: a full routing table is a few hundred KiB. */
#define RESPONSE_MAX (64u << 20)

/* Broadcast payloads: the base64 must fit the node's 4 KiB request line. */
#define PAYLOAD_MAX 3000

enum { EXIT_ERROR = 1, EXIT_CONNECT = 2 };

struct subcommand {
	const char *name;
	int min_args, max_args;
	void (*print)(const cJSON *result);
	const char *usage;
	const char *help;
};

/* Printing */

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : "-";
}

/* Strings can be a peer's words (a GOODBYE's text): control characters,
 * C1 ones (U+0080..U+009F, UTF-8 C2 80..C2 9F) included, go out as \xNN,
 * never raw to the terminal; a backslash as \\ (as subscribe does). */
static void print_text(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		unsigned char next = (unsigned char)s[1];

		if (ch == 0xc2 && next >= 0x80 && next <= 0x9f)
			printf("\\x%02x\\x%02x", ch, next), s++;
		else if (ch == '\\')
			fputs("\\\\", stdout);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\x%02x", ch);
		else
			putchar(ch);
	}
}

static void print_scalar(const cJSON *v)
{
	if (cJSON_IsString(v))
		print_text(v->valuestring);
	else if (cJSON_IsNumber(v))
		printf("%.0f", v->valuedouble);
	else if (cJSON_IsBool(v))
		fputs(cJSON_IsTrue(v) ? "yes" : "no", stdout);
	else if (cJSON_IsArray(v))
		for (const cJSON *e = v->child; e; e = e->next) {
			print_scalar(e);
			fputs(e->next ? " " : "", stdout);
		}
	else if (cJSON_IsNull(v))
		fputs("-", stdout);
}

static size_t key_width(const cJSON *o, size_t prefix)
{
	size_t w = 0;

	for (const cJSON *v = o->child; v; v = v->next) {
		size_t k = cJSON_IsObject(v) ? key_width(v, prefix +
			   strlen(v->string) + 1) : prefix + strlen(v->string);

		w = k > w ? k : w;
	}
	return w;
}

/* Nested objects print as "parent.key: value". */
static void print_keys(const cJSON *o, const char *prefix, int width)
{
	for (const cJSON *v = o->child; v; v = v->next) {
		char key[256];

		snprintf(key, sizeof(key), "%s%s", prefix, v->string);
		if (cJSON_IsObject(v)) {
			strncat(key, ".", sizeof(key) - strlen(key) - 1);
			print_keys(v, key, width);
			continue;
		}
		printf("%-*s ", width + 1, strcat(key, ":"));
		print_scalar(v);
		putchar('\n');
	}
}

static void print_status(const cJSON *r)
{
	print_keys(r, "", (int)key_width(r, 0));
}

/* `table --histogram`: bucket fill per family, one '#' per node. */
static bool table_histogram;

#define BUCKETS_MAX 161

static void print_histogram(const cJSON *r)
{
	static const char *names[2] = { "ipv4", "ipv6" };
	unsigned fill[2][BUCKETS_MAX] = { { 0 } };
	int top[2] = { -1, -1 };
	const cJSON *e;

	cJSON_ArrayForEach(e, r) {
		int f = str(e, "addr")[0] == '[';
		double b = num(e, "bucket");

		if (b < 0 || b >= BUCKETS_MAX)
			continue;
		fill[f][(int)b]++;
		top[f] = (int)b > top[f] ? (int)b : top[f];
	}
	for (int f = 0; f < 2; f++) {
		if (top[f] < 0)
			continue;
		printf("# %s buckets (nodes per bucket)\n", names[f]);
		for (int b = 0; b <= top[f]; b++) {
			printf("%3d |", b);
			for (unsigned i = 0; i < fill[f][b] && i < 64; i++)
				putchar('#');
			printf(" %u\n", fill[f][b]);
		}
	}
}

static void print_table(const cJSON *r)
{
	int aw = 4;
	const cJSON *e;

	if (table_histogram) {
		print_histogram(r);
		return;
	}
	cJSON_ArrayForEach(e, r) {
		int len = (int)strlen(str(e, "addr"));

		aw = len > aw ? len : aw;
	}
	printf("%-40s  %-*s  %-12s  %9s  %6s  %6s  %8s\n", "ID", aw, "ADDR",
	       "STATE", "LAST_SEEN", "RTT_MS", "BUCKET", "FAILURES");
	cJSON_ArrayForEach(e, r)
		printf("%-40s  %-*s  %-12s  %8.0fs  %6.0f  %6.0f  %8.0f\n",
		       str(e, "id"), aw, str(e, "addr"), str(e, "state"),
		       num(e, "last_seen_s"), num(e, "rtt_ms"), num(e, "bucket"),
		       num(e, "failures"));
}

static void print_nodes(const cJSON *r)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "nodes"))
		printf("%s %s %.0f\n", str(e, "id"), str(e, "addr"),
		       num(e, "rtt_ms"));
}

static void print_summary(const cJSON *r)
{
	printf("# rounds=%.0f queries=%.0f elapsed_ms=%.0f\n", num(r, "rounds"),
	       num(r, "queries"), num(r, "elapsed_ms"));
}

static void print_lookup(const cJSON *r)
{
	const cJSON *e;

	print_nodes(r);
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "peers"))
		if (cJSON_IsString(e))
			printf("peer %s\n", e->valuestring);
	print_summary(r);
}

static void print_announce(const cJSON *r)
{
	printf("# announced %s port=%.0f to %d nodes\n", str(r, "target"),
	       num(r, "port"),
	       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "nodes")));
	print_nodes(r);
	print_summary(r);
}

static void print_peers(const cJSON *r)
{
	int aw = 4;
	const cJSON *e;

	cJSON_ArrayForEach(e, r) {
		int len = (int)strlen(str(e, "addr"));

		aw = len > aw ? len : aw;
	}
	printf("%-40s  %-*s  %-3s  %-7s  %7s  %6s  %10s  %10s  %8s  %8s\n",
	       "ID", aw, "ADDR", "DIR", "VIA", "AGE", "RTT_MS", "BYTES_IN",
	       "BYTES_OUT", "MSGS_IN", "MSGS_OUT");
	cJSON_ArrayForEach(e, r)
		printf("%-40s  %-*s  %-3s  %-7s  %6.0fs  %6.0f  %10.0f  %10.0f  "
		       "%8.0f  %8.0f\n", str(e, "id"), aw, str(e, "addr"),
		       str(e, "direction"), str(e, "via"), num(e, "age_s"),
		       num(e, "rtt_ms"), num(e, "bytes_in"), num(e, "bytes_out"),
		       num(e, "msgs_in"), num(e, "msgs_out"));
}

static void print_nothing(const cJSON *r)
{
	(void)r;
}

static void print_sent(const cJSON *r)
{
	printf("%s\n", str(r, "id"));
}

/* The exposition text as is, for a scraper or a person. */
static void print_metrics(const cJSON *r)
{
	fputs(str(r, "text"), stdout);
}

static void print_help(const cJSON *r)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, r)
		printf("  %-22s %s\n", str(e, "usage"), str(e, "help"));
}

static const struct subcommand subcommands[] = {
	{ "status", 0, 0, print_status, "status",
	  "identity, uptime, routing table size, traffic and errors" },
	{ "table", 0, 0, print_table, "table",
	  "every routing table entry (--histogram: bucket fill)" },
	{ "lookup", 1, 2, print_lookup, "lookup ID [ipv4|ipv6]",
	  "the k nodes closest to ID (40 hex characters), in the node's "
	  "default family or the one named" },
	{ "get-peers", 1, 2, print_lookup, "get-peers ID [ipv4|ipv6]",
	  "like lookup, plus the peers announced under ID" },
	{ "announce", 1, 3, print_announce, "announce ID [PORT] [ipv4|ipv6]",
	  "announce the node under ID (PORT: the node's own by default)" },
	{ "peers", 0, 0, print_peers, "peers",
	  "the overlay neighbours: direction, age, RTT and traffic" },
	{ "punch", 1, 1, print_nothing, "punch ID",
	  "ask the neighbours to be rendezvous for a hole-punched link to ID" },
	{ "broadcast", 1, 1, print_sent, "broadcast TEXT|-",
	  "send TEXT (or stdin, with -) to every node; prints the message ID" },
	{ "subscribe", 0, 1, NULL, "subscribe [COUNT]",
	  "print each delivered message as `ID ORIGIN HOPS PAYLOAD` (after\n"
	  "                         COUNT messages, exit)" },
	{ "metrics", 0, 0, print_metrics, "metrics",
	  "counters and gauges in the Prometheus text format" },
	{ "help", 0, 0, print_help, "help", "the commands the node knows" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

/* The socket */

/* Main */

static void usage(FILE *out)
{
	fprintf(out,
"usage: dht-ctl [OPTIONS] COMMAND [ARGS]\n"
"Asks a running dht-node over its control socket (see docs/CONTROL.md).\n"
"\n"
"Options:\n"
"  -c, --control PATH   the node's control socket (default: $KADMESH_CONTROL,\n"
"                       else ./" DEFAULT_CONTROL ", i.e. the state dir's)\n"
"  -j, --json           print the result as one line of JSON\n"
"  -t, --timeout SEC    give up waiting for the answer after SEC seconds\n"
"                       (default: %d)\n"
"  -H, --histogram      table: print the bucket fill as a text histogram\n"
"  -h, --help           show this help\n"
"\n"
"Commands:\n", DEFAULT_TIMEOUT_S);
	for (const struct subcommand *c = subcommands; c->name; c++)
		fprintf(out, "  %-22s %s\n", c->usage, c->help);
}

static const struct subcommand *subcommand_find(const char *name)
{
	for (const struct subcommand *c = subcommands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static bool parse_timeout(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 86400) {
		fprintf(stderr, "dht-ctl: bad --timeout '%s': expected seconds "
			"from 1 to 86400\n", s);
		return false;
	}
	*out = (int)v;
	return true;
}

/* The request line; arguments with blanks or control characters would
 * change its meaning, so they are refused here. */
static char *build_request(int argc, char **argv)
{
	size_t len = 2;
	char *line;

	for (int i = 0; i < argc; i++) {
		for (const char *p = argv[i]; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f) {
				fprintf(stderr, "dht-ctl: argument '%s' contains a "
					"blank or control character\n", argv[i]);
				return NULL;
			}
		len += strlen(argv[i]) + 1;
	}
	line = calloc(1, len);
	for (int i = 0; line && i < argc; i++) {
		strcat(line, argv[i]);
		strcat(line, i + 1 < argc ? " " : "\n");
	}
	return line;
}

/* The payload of `broadcast TEXT|-`: the argument, or stdin. */
static bool read_payload(const char *arg, uint8_t *buf, size_t *len)
{
	size_t n;

	if (strcmp(arg, "-") == 0) {
		n = fread(buf, 1, PAYLOAD_MAX + 1, stdin);
		if (ferror(stdin)) {
			fprintf(stderr, "dht-ctl: reading stdin: %s\n",
				strerror(errno));
			return false;
		}
	} else {
		n = strlen(arg);
		memcpy(buf, arg, n <= PAYLOAD_MAX ? n : 0);
	}
	if (n == 0 || n > PAYLOAD_MAX) {
		fprintf(stderr, "dht-ctl: broadcast: the payload must be 1 to %d "
			"bytes\n", PAYLOAD_MAX);
		return false;
	}
	*len = n;
	return true;
}

static char *broadcast_request(const char *arg)
{
	static uint8_t payload[PAYLOAD_MAX + 1];
	size_t len;
	char *line;

	if (!read_payload(arg, payload, &len))
		return NULL;
	line = malloc(sizeof("broadcast \n") + KM_BASE64_LEN(len));
	if (!line)
		return NULL;
	strcpy(line, "broadcast ");
	km_base64_encode(payload, len, line + strlen(line));
	strcat(line, "\n");
	return line;
}

/* Prints the answer; returns the exit status. */
static int show(const char *answer, const struct subcommand *sc, bool json)
{
	cJSON *root = cJSON_Parse(answer);
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "ok");
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(root, "result");
	int rc = 0;

	if (!cJSON_IsBool(ok) || (cJSON_IsTrue(ok) && !result)) {
		fprintf(stderr, "dht-ctl: malformed answer from the node\n");
		rc = EXIT_ERROR;
	} else if (cJSON_IsFalse(ok)) {
		fprintf(stderr, "dht-ctl: %s\n", str(root, "error"));
		rc = EXIT_ERROR;
	} else if (json) {
		char *txt = cJSON_PrintUnformatted(result);

		puts(txt ? txt : "null");
		cJSON_free(txt);
	} else {
		sc->print(result);
	}
	cJSON_Delete(root);
	return rc;
}

static int run(const char *path, const struct subcommand *sc, int argc,
	       char **argv, int timeout_s, bool json)
{
	char *req = strcmp(sc->name, "broadcast") == 0 ?
		    broadcast_request(argv[1]) : build_request(argc, argv);
	char *answer;
	const char *why = "out of memory";
	int fd, rc;

	if (!req)
		return EXIT_ERROR;
	fd = km_ctl_connect(path);
	if (fd < 0) {
		fprintf(stderr, "dht-ctl: cannot connect to %s: %s (is dht-node "
			"running? see --control)\n", path, strerror(errno));
		free(req);
		return EXIT_CONNECT;
	}
	answer = km_ctl_send_all(fd, req, strlen(req)) < 0 ? (why = strerror(errno),
		 NULL) : km_ctl_read_line(fd, RESPONSE_MAX,
					   km_ctl_now_ms() + timeout_s * 1000LL,
					   &why);
	close(fd);
	free(req);
	if (!answer) {
		fprintf(stderr, "dht-ctl: %s: %s\n", path, why);
		return EXIT_ERROR;
	}
	rc = show(answer, sc, json);
	free(answer);
	return rc;
}

/* Subscribe: a stream of lines, read through one buffer. */
struct line_reader {
	int fd;
	size_t len;
	char buf[256 * 1024]; /* an event for a 64 KiB payload is ~88 KiB */
};

/* The next line without its newline, or NULL at EOF or on an error. */
static char *next_line(struct line_reader *r, size_t *consumed)
{
	char *nl;

	memmove(r->buf, r->buf + *consumed, r->len - *consumed);
	r->len -= *consumed;
	*consumed = 0;
	while (!(nl = memchr(r->buf, '\n', r->len))) {
		ssize_t n;

		if (r->len == sizeof(r->buf))
			return NULL; /* not a line we could print */
		n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		r->len += (size_t)n;
	}
	*nl = '\0';
	*consumed = (size_t)(nl - r->buf) + 1;
	return r->buf;
}

/* Printable ASCII as is; a backslash and every other byte escaped, so a
 * payload always prints as one line. */
static void print_escaped(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\\')
			fputs("\\\\", stdout);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			putchar(p[i]);
		else
			printf("\\x%02x", p[i]);
	}
}

static bool print_event(const cJSON *ev, bool json)
{
	const char *b64 = str(ev, "payload_b64");
	size_t cap = strlen(b64) / 4 * 3 + 1;
	uint8_t *payload = malloc(cap);
	int len = payload ? km_base64_decode(b64, payload, cap) : -1;

	if (len < 0) {
		free(payload);
		fprintf(stderr, "dht-ctl: malformed event from the node\n");
		return false;
	}
	if (json) {
		char *txt = cJSON_PrintUnformatted(ev);

		puts(txt ? txt : "null");
		cJSON_free(txt);
	} else {
		printf("%s %s %.0f ", str(ev, "id"), str(ev, "origin"),
		       num(ev, "hops"));
		print_escaped(payload, (size_t)len);
		putchar('\n');
	}
	fflush(stdout);
	free(payload);
	return true;
}

/* Streams events until COUNT messages, EOF or an error. */
static int subscribe(int fd, long count, bool json)
{
	static struct line_reader r;
	size_t used = 0;
	char *line;
	long seen = 0;

	r.fd = fd;
	while (count <= 0 || seen < count) {
		cJSON *ev;
		bool ok;

		if (!(line = next_line(&r, &used))) {
			fprintf(stderr, "dht-ctl: the node closed the "
				"subscription\n");
			return EXIT_ERROR;
		}
		ev = cJSON_Parse(line);
		if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(ev, "ok"))) {
			fprintf(stderr, "dht-ctl: %s\n", str(ev, "error"));
			cJSON_Delete(ev);
			return EXIT_ERROR;
		}
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ev, "event"))) {
			cJSON_Delete(ev);
			continue; /* the answer to the subscribe request */
		}
		ok = print_event(ev, json);
		cJSON_Delete(ev);
		if (!ok)
			return EXIT_ERROR;
		seen++;
	}
	return 0;
}

static int run_subscribe(const char *path, int argc, char **argv, bool json)
{
	long count = 0;
	char *end;
	int fd, rc;

	if (argc == 2) {
		errno = 0;
		count = strtol(argv[1], &end, 10);
		if (errno || end == argv[1] || *end || count < 1) {
			fprintf(stderr, "dht-ctl: subscribe: COUNT must be a "
				"positive number\n");
			return EXIT_ERROR;
		}
	}
	fd = km_ctl_connect(path);
	if (fd < 0) {
		fprintf(stderr, "dht-ctl: cannot connect to %s: %s (is dht-node "
			"running? see --control)\n", path, strerror(errno));
		return EXIT_CONNECT;
	}
	rc = km_ctl_send_all(fd, "subscribe\n", 10) < 0 ? EXIT_ERROR :
	     subscribe(fd, count, json);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "histogram", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = getenv("KADMESH_CONTROL");
	const struct subcommand *sc;
	int timeout_s = DEFAULT_TIMEOUT_S, opt, nargs;
	bool json = false;

	while ((opt = getopt_long(argc, argv, "c:jt:Hh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'j': json = true; break;
		case 'H': table_histogram = true; break;
		case 't':
			if (!parse_timeout(optarg, &timeout_s))
				return EXIT_ERROR;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_ERROR;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_ERROR;
	}
	sc = subcommand_find(argv[optind]);
	nargs = argc - optind - 1;
	if (!sc) {
		fprintf(stderr, "dht-ctl: unknown command '%s' (see --help)\n",
			argv[optind]);
		return EXIT_ERROR;
	}
	if (nargs < sc->min_args || nargs > sc->max_args) {
		fprintf(stderr, "usage: dht-ctl [OPTIONS] %s\n", sc->usage);
		return EXIT_ERROR;
	}
	path = path && *path ? path : DEFAULT_CONTROL;
	if (strcmp(sc->name, "subscribe") == 0)
		return run_subscribe(path, argc - optind, argv + optind, json);
	return run(path, sc, argc - optind, argv + optind, timeout_s, json);
}
