/* The control protocol against a real km_node: no sockets, a fixed clock,
 * and KRPC replies built with the codec so the routing table and lookups
 * run for real. */
#include <criterion/criterion.h>
#include <string.h>

#include <cJSON.h>

#include "ops/control.h"
#include "proto/krpc.h"

#define T0 KM_SECONDS(1000)
#define OUT_MAX (1u << 20)
#define SENT_MAX 64

static struct km_prng prng;
static struct km_rng rng;
static struct km_node *node;
static struct km_control *ctl;

static char out[OUT_MAX];
static size_t outlen;
static uint64_t last_writer, closed;
static int lookups_unclaimed;

static struct sent {
	struct km_addr to;
	uint8_t buf[2048];
	size_t len;
} sent[SENT_MAX];
static size_t nsent;

static void on_udp(void *user, const struct km_addr *to, const uint8_t *buf,
		   size_t len)
{
	if (nsent == SENT_MAX || len > sizeof(sent[0].buf))
		return;
	sent[nsent].to = *to;
	memcpy(sent[nsent].buf, buf, len);
	sent[nsent++].len = len;
}

static void on_tcp_connect(void *user, uint64_t conn, const struct km_addr *to)
{
}

static void on_tcp_send(void *user, uint64_t conn, const uint8_t *buf,
			size_t len)
{
}

static void on_tcp_close(void *user, uint64_t conn)
{
}

static void on_lookup_done(void *user, uint64_t id, const struct km_lookup *lk)
{
	if (!km_control_lookup_done(ctl, id, lk))
		lookups_unclaimed++;
}

static void on_deliver(void *user, const struct km_message *m)
{
	km_control_deliver(ctl, m);
}

static void on_write(void *user, uint64_t session, const char *buf, size_t len)
{
	cr_assert_leq(outlen + len, OUT_MAX);
	memcpy(out + outlen, buf, len);
	outlen += len;
	last_writer = session;
}

static void on_close(void *user, uint64_t session)
{
	closed = session;
}

/* A fresh node running `families` (KM_NODE_IPV4 and/or KM_NODE_IPV6), with
 * its control core. */
static void start(unsigned families)
{
	static const struct km_node_callbacks ncb = {
		.udp_send = on_udp, .tcp_connect = on_tcp_connect,
		.tcp_send = on_tcp_send, .tcp_close = on_tcp_close,
		.lookup_done = on_lookup_done, .deliver = on_deliver,
	};
	static const struct km_control_callbacks ccb = {
		.write = on_write, .close = on_close,
	};
	struct km_node_config cfg;

	km_prng_seed(&prng, 7);
	rng = km_prng_rng(&prng);
	km_node_config_default(&cfg);
	memset(cfg.dht.id.b, 0x11, KM_ID_LEN);
	cfg.dht.family = KM_AF_INET4;
	cfg.families = families;
	cfg.port = 6881;
	cfg.seed = true;
	node = km_node_new(&cfg, &ncb, NULL, &rng, T0);
	cr_assert_not_null(node);
	km_node_start(node, NULL, 0, T0);
	ctl = km_control_new(node, &ccb, NULL);
	cr_assert_not_null(ctl);
	outlen = nsent = 0;
	last_writer = closed = 0;
	lookups_unclaimed = 0;
}

static void setup(void)
{
	start(KM_NODE_IPV4);
}

static void teardown(void)
{
	km_control_del(ctl);
	km_node_del(node);
}

TestSuite(control, .init = setup, .fini = teardown);

/* Helpers */

static void send_text(uint64_t s, const char *text, km_ms now)
{
	km_control_recv(ctl, s, (const uint8_t *)text, strlen(text), now);
}

/* Pops the first response line, which must be one valid JSON object. */
static cJSON *take(void)
{
	char *nl = memchr(out, '\n', outlen);
	size_t len;
	cJSON *root;

	cr_assert_not_null(nl, "no complete response line");
	len = (size_t)(nl - out);
	cr_assert_null(memchr(out, '\0', len));
	root = cJSON_ParseWithLength(out, len);
	cr_assert_not_null(root, "not JSON: %.*s", (int)len, out);
	cr_assert(cJSON_IsObject(root));
	memmove(out, nl + 1, outlen - len - 1);
	outlen -= len + 1;
	return root;
}

static cJSON *take_result(void)
{
	cJSON *root = take();
	cJSON *result;

	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(root, "ok")));
	result = cJSON_DetachItemFromObject(root, "result");
	cr_assert_not_null(result);
	cJSON_Delete(root);
	return result;
}

/* Takes an error response and checks its message contains `words`. */
static void expect_error(const char *words)
{
	cJSON *root = take();
	const cJSON *err = cJSON_GetObjectItem(root, "error");

	cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(root, "ok")));
	cr_assert(cJSON_IsString(err));
	cr_assert_not_null(strstr(err->valuestring, words), "error was: %s",
			   err->valuestring);
	cJSON_Delete(root);
}

static cJSON *request(const char *line, km_ms now)
{
	uint64_t s = km_control_open(ctl);

	send_text(s, line, now);
	return take_result();
}

static void contact_addr(int i, struct km_addr *a)
{
	uint8_t ip[4] = { 10, 0, 0, (uint8_t)i };

	km_addr_set_v4(a, ip, (uint16_t)(7000 + i));
}

/* Answers the last query sent with an empty reply from id. */
static void reply_last(const struct km_id *id, km_ms now)
{
	struct km_krpc_msg q, r;
	uint8_t buf[512];
	int len;

	cr_assert_gt(nsent, 0);
	cr_assert_eq(km_krpc_decode(sent[nsent - 1].buf, sent[nsent - 1].len,
				    &q), 0);
	km_krpc_init(&r, KM_KRPC_RESPONSE);
	memcpy(r.tid, q.tid, q.tid_len);
	r.tid_len = q.tid_len;
	r.id = *id;
	len = km_krpc_encode(&r, buf, sizeof(buf));
	cr_assert_gt(len, 0);
	km_node_udp_recv(node, &sent[nsent - 1].to, buf, (size_t)len, now);
}

/* Puts a node with ID bytes all `fill` into the routing table: it is pinged
 * and answers. */
static void add_contact(int i, uint8_t fill, km_ms now)
{
	struct km_addr a;
	struct km_id id;

	contact_addr(i, &a);
	memset(id.b, fill, KM_ID_LEN);
	cr_assert_eq(km_dht_ping_addr(km_node_dht(node), &a, now), 0);
	reply_last(&id, now + 20);
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(o, key);

	cr_assert(cJSON_IsString(v), "\"%s\" is not a string", key);
	return v->valuestring;
}

static double num_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(o, key);

	cr_assert(cJSON_IsNumber(v), "\"%s\" is not a number", key);
	return v->valuedouble;
}

#define TARGET "2222222222222222222222222222222222222222"

/* status and table */

Test(control, status_answers_with_every_documented_key)
{
	static const char *keys[] = {
		"id", "port", "uptime_s", "routing_table_size", "buckets",
		"buckets_nonempty", "packets_in", "packets_out", "bytes_in",
		"bytes_out", "peers_stored",
	};
	cJSON *r = request("status\n", T0 + KM_SECONDS(42));
	const cJSON *errors = cJSON_GetObjectItem(r, "errors");

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert_not_null(cJSON_GetObjectItem(r, keys[i]), "%s", keys[i]);
	cr_assert(cJSON_IsObject(errors));
	num_of(errors, "malformed_in");
	num_of(errors, "errors_sent");
	num_of(errors, "timeouts");
	cr_assert(cJSON_IsObject(cJSON_GetObjectItem(r, "lookups")));
	cJSON_Delete(r);
}

Test(control, status_reports_the_nodes_id_port_and_uptime)
{
	cJSON *r = request("status\n", T0 + KM_SECONDS(42));

	cr_assert_str_eq(str_of(r, "id"),
			 "1111111111111111111111111111111111111111");
	cr_assert_eq(num_of(r, "port"), 6881);
	cr_assert_eq(num_of(r, "uptime_s"), 42);
	cr_assert_eq(num_of(r, "routing_table_size"), 0);
	cr_assert_eq(num_of(r, "buckets_nonempty"), 0);
	cJSON_Delete(r);
}

Test(control, status_counts_the_table_and_the_traffic)
{
	cJSON *r;

	add_contact(1, 0x80, T0);
	add_contact(2, 0x40, T0);
	r = request("status\n", T0 + 100);
	cr_assert_eq(num_of(r, "routing_table_size"), 2);
	cr_assert_eq(num_of(r, "buckets_nonempty"), 1); /* no split yet */
	cr_assert_geq(num_of(r, "packets_in"), 2);
	cr_assert_geq(num_of(r, "packets_out"), 2);
	cr_assert_gt(num_of(r, "bytes_in"), 0);
	cJSON_Delete(r);
}

Test(control, table_of_a_fresh_node_is_an_empty_list)
{
	cJSON *r = request("table\n", T0);

	cr_assert(cJSON_IsArray(r));
	cr_assert_eq(cJSON_GetArraySize(r), 0);
	cJSON_Delete(r);
}

Test(control, table_lists_every_entry_with_its_address_and_state)
{
	cJSON *r, *e;

	add_contact(1, 0x80, T0);
	r = request("table\n", T0 + KM_SECONDS(5));
	cr_assert_eq(cJSON_GetArraySize(r), 1);
	e = cJSON_GetArrayItem(r, 0);
	cr_assert_str_eq(str_of(e, "id"),
			 "8080808080808080808080808080808080808080");
	cr_assert_str_eq(str_of(e, "addr"), "10.0.0.1:7001");
	cr_assert_str_eq(str_of(e, "state"), "good");
	cr_assert_eq(num_of(e, "last_seen_s"), 4);
	cr_assert_eq(num_of(e, "bucket"), 0);
	cr_assert_eq(num_of(e, "failures"), 0);
	num_of(e, "rtt_ms");
	cJSON_Delete(r);
}

Test(control, help_lists_every_command)
{
	cJSON *r = request("help\n", T0);
	char seen[256] = "";
	const cJSON *e;

	cJSON_ArrayForEach(e, r) {
		strcat(seen, str_of(e, "command"));
		strcat(seen, " ");
		str_of(e, "usage");
		str_of(e, "help");
	}
	cr_assert_str_eq(seen, "status table lookup get-peers announce peers "
			 "punch broadcast subscribe metrics help ");
	cJSON_Delete(r);
}

/* Broadcast */

Test(control, a_subscriber_gets_each_delivered_message_as_an_event_line)
{
	uint64_t sub = km_control_open(ctl), sender = km_control_open(ctl);
	cJSON *r = NULL, *ev;

	send_text(sub, "subscribe\n", T0);
	r = take_result();
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "subscribed")));
	cr_assert(km_control_pending(ctl, sub), "a half-closed subscriber "
		  "keeps streaming");
	cJSON_Delete(r);
	send_text(sender, "broadcast aGVsbG8=\n", T0); /* "hello" */
	ev = take();    /* the local delivery comes before the answer */
	cr_assert_str_eq(cJSON_GetObjectItem(ev, "event")->valuestring, "message");
	cr_assert_str_eq(cJSON_GetObjectItem(ev, "payload_b64")->valuestring,
			 "aGVsbG8=");
	cr_assert_eq(cJSON_GetObjectItem(ev, "hops")->valuedouble, 0);
	cr_assert_eq(cJSON_GetObjectItem(ev, "size")->valuedouble, 5);
	cr_assert_str_eq(cJSON_GetObjectItem(ev, "origin")->valuestring,
			 "1111111111111111111111111111111111111111");
	r = take_result();
	cr_assert_str_eq(cJSON_GetObjectItem(r, "id")->valuestring,
			 cJSON_GetObjectItem(ev, "id")->valuestring);
	cr_assert_eq(outlen, 0, "one event, one answer");
	cJSON_Delete(ev);
	cJSON_Delete(r);
	r = request("status\n", T0);
	cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "broadcast"),
					 "originated")->valuedouble, 1);
	cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "neighbours"),
					 "in")->valuedouble, 0);
	cr_assert_eq(cJSON_GetObjectItem(r, "subscribers")->valuedouble, 1);
	cJSON_Delete(r);
}

Test(control, a_broadcast_payload_that_is_not_base64_is_refused)
{
	uint64_t s = km_control_open(ctl);

	send_text(s, "broadcast hello!\n", T0);
	expect_error("not base64");
	send_text(s, "broadcast aGVsbG8\n", T0);
	expect_error("not base64");
	cr_assert_eq(km_node_stats(node).bcast.originated, 0);
}

Test(control, peers_is_an_empty_list_without_neighbours)
{
	cJSON *r = request("peers\n", T0);

	cr_assert(cJSON_IsArray(r));
	cr_assert_eq(cJSON_GetArraySize(r), 0);
	cJSON_Delete(r);
}

/* Bad input */

Test(control, an_unknown_command_gets_an_error_and_the_session_stays_open)
{
	uint64_t s = km_control_open(ctl);
	cJSON *r;

	send_text(s, "frobnicate\n", T0);
	expect_error("unknown command 'frobnicate'");
	cr_assert_eq(closed, 0);
	send_text(s, "status\n", T0);
	r = take_result();
	cJSON_Delete(r);
}

Test(control, hostile_bytes_in_a_command_come_back_escaped_and_bounded)
{
	uint64_t s = km_control_open(ctl);
	char line[600];

	memset(line, 'A', sizeof(line));
	memcpy(line, "\"\\\x01\xff\x7f", 5);
	line[sizeof(line) - 1] = '\n';
	km_control_recv(ctl, s, (const uint8_t *)line, sizeof(line), T0);
	expect_error("unknown command '\"\\???AAAA");
	cr_assert_lt(outlen, 1);
}

Test(control, an_overlong_line_gets_an_error_and_the_session_is_closed)
{
	uint64_t s = km_control_open(ctl);
	static uint8_t junk[KM_CONTROL_LINE_MAX + 10];

	memset(junk, 'x', sizeof(junk));
	km_control_recv(ctl, s, junk, sizeof(junk), T0);
	expect_error("longer than 4095 bytes");
	cr_assert_eq(closed, s);
	cr_assert_eq(outlen, 0);
	send_text(s, "status\n", T0); /* the session is gone: ignored */
	cr_assert_eq(outlen, 0);
}

Test(control, a_line_of_exactly_the_limit_is_served)
{
	uint64_t s = km_control_open(ctl);
	static char line[KM_CONTROL_LINE_MAX];

	memset(line, ' ', sizeof(line));
	memcpy(line, "status", 6);
	line[sizeof(line) - 1] = '\n';
	km_control_recv(ctl, s, (const uint8_t *)line, sizeof(line), T0);
	cJSON_Delete(take_result());
	cr_assert_eq(closed, 0);
}

Test(control, a_malformed_id_is_refused)
{
	uint64_t s = km_control_open(ctl);

	send_text(s, "lookup 1234\n", T0);
	expect_error("malformed ID");
	send_text(s, "get-peers zz22222222222222222222222222222222222222\n", T0);
	expect_error("malformed ID");
	send_text(s, "announce " TARGET "0\n", T0);
	expect_error("malformed ID");
	cr_assert_eq(closed, 0);
}

Test(control, missing_or_extra_arguments_are_refused_with_the_usage)
{
	uint64_t s = km_control_open(ctl);

	send_text(s, "lookup\n", T0);
	expect_error("usage: lookup ID");
	send_text(s, "status now\n", T0);
	expect_error("usage: status");
	send_text(s, "announce " TARGET " 1 2\n", T0);
	expect_error("usage: announce ID [PORT]");
	send_text(s, "a b c d e f g h i j\n", T0);
	expect_error("too many arguments");
}

Test(control, a_bad_port_is_refused)
{
	uint64_t s = km_control_open(ctl);

	send_text(s, "announce " TARGET " http\n", T0);
	expect_error("bad port");
	send_text(s, "announce " TARGET " 65536\n", T0);
	expect_error("bad port");
	send_text(s, "announce " TARGET " 0\n", T0);
	expect_error("bad port");
	send_text(s, "announce " TARGET " -1\n", T0);
	expect_error("bad port");
}

Test(control, a_nul_byte_in_a_request_is_refused)
{
	uint64_t s = km_control_open(ctl);

	km_control_recv(ctl, s, (const uint8_t *)"status\0x\n", 9, T0);
	expect_error("NUL");
}

Test(control, random_bytes_never_crash_and_every_answer_is_json)
{
	uint64_t s = km_control_open(ctl);
	uint8_t buf[700];
	int answers = 0;

	for (int round = 0; round < 300; round++) {
		size_t len = km_rng_below(&rng, sizeof(buf)) + 1;

		km_rng_fill(&rng, buf, len);
		for (size_t i = 0; i < len; i++)
			if (km_rng_below(&rng, 8) == 0)
				buf[i] = (uint8_t)"\n \r\tls"[km_rng_below(&rng, 7)];
		km_control_recv(ctl, s, buf, len, T0);
		while (memchr(out, '\n', outlen)) {
			cJSON_Delete(take());
			answers++;
		}
		if (closed == s)
			s = km_control_open(ctl);
	}
	cr_assert_gt(answers, 100);
}

/* Framing */

Test(control, blank_lines_are_ignored_and_crlf_is_accepted)
{
	uint64_t s = km_control_open(ctl);

	send_text(s, "\n  \n\r\nstatus\r\n", T0);
	cJSON_Delete(take_result());
	cr_assert_eq(outlen, 0);
}

Test(control, a_request_split_across_reads_is_reassembled)
{
	uint64_t s = km_control_open(ctl);

	send_text(s, "sta", T0);
	send_text(s, "t", T0);
	cr_assert_eq(outlen, 0);
	send_text(s, "us\n", T0);
	cJSON_Delete(take_result());
}

Test(control, several_requests_in_one_read_are_answered_in_order)
{
	uint64_t s = km_control_open(ctl);
	cJSON *r;

	send_text(s, "table\nbogus\nstatus\n", T0);
	r = take_result();
	cr_assert(cJSON_IsArray(r));
	cJSON_Delete(r);
	expect_error("unknown command");
	r = take_result();
	cr_assert(cJSON_IsObject(r));
	cJSON_Delete(r);
}

/* Sessions */

Test(control, sessions_are_capped_and_a_closed_one_frees_its_slot)
{
	uint64_t ids[KM_CONTROL_MAX_SESSIONS];

	for (size_t i = 0; i < KM_CONTROL_MAX_SESSIONS; i++) {
		ids[i] = km_control_open(ctl);
		cr_assert_neq(ids[i], 0);
	}
	cr_assert_eq(km_control_open(ctl), 0);
	km_control_closed(ctl, ids[3]);
	cr_assert_gt(km_control_open(ctl), ids[KM_CONTROL_MAX_SESSIONS - 1]);
}

Test(control, unknown_sessions_are_ignored_and_del_of_null_is_a_no_op)
{
	km_control_closed(ctl, 12345);
	send_text(12345, "status\n", T0);
	cr_assert_eq(outlen, 0);
	cr_assert_not(km_control_pending(ctl, 12345));
	km_control_del(NULL);
}

Test(control, answers_go_to_the_session_that_asked)
{
	uint64_t a = km_control_open(ctl), b = km_control_open(ctl);

	send_text(b, "status\n", T0);
	cr_assert_eq(last_writer, b);
	send_text(a, "help\n", T0);
	cr_assert_eq(last_writer, a);
}

/* Lookups */

Test(control, a_lookup_on_an_empty_table_answers_at_once_with_no_nodes)
{
	cJSON *r = request("lookup " TARGET "\n", T0);

	cr_assert_str_eq(str_of(r, "target"), TARGET);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "nodes")), 0);
	cr_assert_eq(num_of(r, "queries"), 0);
	num_of(r, "rounds");
	num_of(r, "elapsed_ms");
	cr_assert_eq(lookups_unclaimed, 0);
	cJSON_Delete(r);
}

Test(control, a_lookup_answers_when_it_ends_with_nodes_closest_first)
{
	uint64_t s;
	struct km_id far, near;
	cJSON *r, *nodes;

	add_contact(1, 0x80, T0);
	add_contact(2, 0x23, T0);
	s = km_control_open(ctl);
	nsent = 0;
	send_text(s, "lookup " TARGET "\n", T0 + 100);
	cr_assert_eq(outlen, 0);
	cr_assert(km_control_pending(ctl, s));
	cr_assert_eq(nsent, 2);
	memset(far.b, 0x80, KM_ID_LEN);
	memset(near.b, 0x23, KM_ID_LEN);
	/* Queries go out closest first, so the last one went to `far`. */
	reply_last(&far, T0 + 130);
	nsent--;
	reply_last(&near, T0 + 150);
	r = take_result();
	nodes = cJSON_GetObjectItem(r, "nodes");
	cr_assert_eq(cJSON_GetArraySize(nodes), 2);
	cr_assert_str_eq(str_of(cJSON_GetArrayItem(nodes, 0), "id"),
			 "2323232323232323232323232323232323232323");
	cr_assert_str_eq(str_of(cJSON_GetArrayItem(nodes, 1), "addr"),
			 "10.0.0.1:7001");
	cr_assert_eq(num_of(cJSON_GetArrayItem(nodes, 0), "rtt_ms"), 50);
	cr_assert_eq(num_of(r, "queries"), 2);
	cr_assert_eq(num_of(r, "rounds"), 1);
	cr_assert_eq(num_of(r, "elapsed_ms"), 50);
	cr_assert_not(km_control_pending(ctl, s));
	cJSON_Delete(r);
}

Test(control, a_request_during_a_pending_lookup_is_refused_as_busy)
{
	uint64_t s;
	struct km_id id;

	add_contact(1, 0x80, T0);
	s = km_control_open(ctl);
	send_text(s, "lookup " TARGET "\n", T0);
	send_text(s, "status\n", T0);
	expect_error("busy");
	memset(id.b, 0x80, KM_ID_LEN);
	reply_last(&id, T0 + 10);
	cJSON_Delete(take_result());
	send_text(s, "status\n", T0 + 20);
	cJSON_Delete(take_result());
}

Test(control, a_session_closed_mid_lookup_is_not_answered_when_it_ends)
{
	uint64_t s;
	struct km_id id;

	add_contact(1, 0x80, T0);
	s = km_control_open(ctl);
	send_text(s, "lookup " TARGET "\n", T0);
	km_control_closed(ctl, s);
	memset(id.b, 0x80, KM_ID_LEN);
	reply_last(&id, T0 + 10);
	cr_assert_eq(outlen, 0);
	cr_assert_eq(lookups_unclaimed, 1);
}

Test(control, a_lookup_whose_nodes_never_answer_ends_after_the_timeout)
{
	uint64_t s;

	add_contact(1, 0x80, T0);
	s = km_control_open(ctl);
	send_text(s, "lookup " TARGET "\n", T0);
	for (km_ms t = T0; t <= T0 + KM_SECONDS(30) && outlen == 0; t += 500)
		km_node_tick(node, t);
	cJSON *r = take_result();
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "nodes")), 0);
	cJSON_Delete(r);
}

Test(control, get_peers_also_lists_the_peers)
{
	cJSON *r = request("get-peers " TARGET "\n", T0);

	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(r, "peers")));
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(r, "nodes")));
	cJSON_Delete(r);
}

Test(control, announce_defaults_to_the_nodes_port)
{
	cJSON *r = request("announce " TARGET "\n", T0);

	cr_assert_eq(num_of(r, "port"), 6881);
	cr_assert_str_eq(str_of(r, "target"), TARGET);
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(r, "nodes")));
	cJSON_Delete(r);
	r = request("announce " TARGET " 4000\n", T0);
	cr_assert_eq(num_of(r, "port"), 4000);
	cJSON_Delete(r);
}

/* The Unix socket server, on a real loop.  The client is a plain blocking
 * socket; the loop runs in small steps until the answer is in. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/control_socket.h"

static uv_loop_t loop;
static struct km_uv_control *uvc;
static char sock_path[64];

/* What the daemon does: the node's lookup_done goes to the control. */
static void uv_lookup_done(void *user, uint64_t id, const struct km_lookup *lk)
{
	km_control_lookup_done(km_uv_control_core(uvc), id, lk);
}

static void uv_setup(void)
{
	struct km_node_config cfg;
	static const struct km_node_callbacks ncb = {
		.udp_send = on_udp, .tcp_connect = on_tcp_connect,
		.tcp_send = on_tcp_send, .tcp_close = on_tcp_close,
		.lookup_done = uv_lookup_done,
	};

	km_prng_seed(&prng, 7);
	rng = km_prng_rng(&prng);
	km_node_config_default(&cfg);
	memset(cfg.dht.id.b, 0x11, KM_ID_LEN);
	cfg.dht.family = KM_AF_INET4;
	cfg.port = 6881;
	node = km_node_new(&cfg, &ncb, NULL, &rng, T0);
	cr_assert_not_null(node);
	cr_assert_eq(uv_loop_init(&loop), 0);
	snprintf(sock_path, sizeof(sock_path), "/tmp/km-test-ctl-%d.sock",
		 (int)getpid());
	unlink(sock_path);
	uvc = NULL;
}

static void uv_teardown(void)
{
	km_uv_control_stop(uvc);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
	km_node_del(node);
	unlink(sock_path);
}

TestSuite(uv_control, .init = uv_setup, .fini = uv_teardown);

static int client_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, sock_path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
		     "connect: %s", strerror(errno));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Runs the loop until the client has read a whole line (or EOF). */
static size_t client_read(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	for (int i = 0; i < 2000 && !memchr(buf, '\n', len); i++) {
		ssize_t n;

		uv_run(&loop, UV_RUN_NOWAIT);
		n = read(fd, buf + len, cap - len - 1);
		if (n == 0)
			break;
		if (n > 0)
			len += (size_t)n;
		else
			usleep(1000);
	}
	buf[len] = '\0';
	return len;
}

static void start_server(void)
{
	cr_assert_eq(km_uv_control_start(&loop, sock_path, node, &uvc), 0);
}

Test(uv_control, a_client_gets_one_json_line_per_request)
{
	char buf[8192];
	int fd;

	start_server();
	fd = client_connect();
	cr_assert_eq(write(fd, "status\n", 7), 7);
	client_read(fd, buf, sizeof(buf));
	cr_assert_not_null(strstr(buf, "{\"ok\":true,\"result\":{\"id\":\"1111"));
	cr_assert_eq(strchr(buf, '\n')[1], '\0');
	close(fd);
}

Test(uv_control, the_socket_is_private_to_its_owner)
{
	struct stat st;

	start_server();
	cr_assert_eq(stat(sock_path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600);
}

Test(uv_control, a_client_that_half_closes_still_gets_its_answer)
{
	char buf[8192];
	int fd;

	start_server();
	fd = client_connect();
	cr_assert_eq(write(fd, "lookup " TARGET "\n", 48), 48);
	shutdown(fd, SHUT_WR);
	client_read(fd, buf, sizeof(buf));
	cr_assert_not_null(strstr(buf, "\"nodes\":[]"));
	close(fd);
}

Test(uv_control, an_overlong_line_is_answered_then_the_client_closed)
{
	static char junk[KM_CONTROL_LINE_MAX + 1];
	char buf[512];
	int fd;

	memset(junk, 'x', sizeof(junk));
	start_server();
	fd = client_connect();
	cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	client_read(fd, buf, sizeof(buf));
	cr_assert_not_null(strstr(buf, "longer than"));
	cr_assert_eq(client_read(fd, buf, sizeof(buf)), 0); /* EOF */
	close(fd);
}

Test(uv_control, a_client_over_the_cap_is_told_and_closed)
{
	int fds[KM_CONTROL_MAX_SESSIONS];
	char buf[512];
	int extra;

	start_server();
	for (int i = 0; i < KM_CONTROL_MAX_SESSIONS; i++) {
		fds[i] = client_connect();
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	extra = client_connect();
	client_read(extra, buf, sizeof(buf));
	cr_assert_not_null(strstr(buf, "too many control clients"));
	close(extra);
	for (int i = 0; i < KM_CONTROL_MAX_SESSIONS; i++)
		close(fds[i]);
}

Test(uv_control, a_stale_socket_file_is_replaced_but_a_live_one_is_not)
{
	struct km_uv_control *second;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, sock_path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* the file stays, with nobody behind it */
	start_server();
	cr_assert_eq(km_uv_control_start(&loop, sock_path, node, &second),
		     UV_EADDRINUSE);
}

Test(uv_control, a_file_that_is_not_a_socket_is_left_alone)
{
	struct km_uv_control *u = NULL;
	FILE *f = fopen(sock_path, "w");

	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(km_uv_control_start(&loop, sock_path, node, &u), UV_EEXIST);
	cr_assert_eq(access(sock_path, F_OK), 0);
}

Test(uv_control, stopping_removes_the_socket_file)
{
	start_server();
	km_uv_control_stop(uvc);
	uvc = NULL;
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_neq(access(sock_path, F_OK), 0);
}

/* IPv6 (BEP 32) */

static void restart_dual_stack(void)
{
	km_control_del(ctl);
	km_node_del(node);
	start(KM_NODE_IPV4 | KM_NODE_IPV6);
}

/* Puts an IPv6 node with ID bytes all `fill` into the IPv6 table. */
static void add_contact6(uint8_t last, uint8_t fill, km_ms now)
{
	uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = last };
	struct km_addr a6;
	struct km_id id6;

	km_addr_set_v6(&a6, ip6, 7000);
	memset(id6.b, fill, KM_ID_LEN);
	cr_assert_eq(km_dht_ping_addr(km_node_dht_of(node, KM_AF_INET6), &a6,
				      now), 0);
	reply_last(&id6, now + 20);
}

Test(control, a_dual_stack_node_reports_each_familys_table)
{
	cJSON *r, *fams, *t;
	bool seen6 = false;

	restart_dual_stack();
	add_contact(1, 0x80, T0);
	add_contact6(1, 0x40, T0);
	r = request("status\n", T0 + 100);
	fams = cJSON_GetObjectItem(r, "families");
	cr_assert_eq(cJSON_GetArraySize(fams), 2);
	cr_assert_str_eq(cJSON_GetArrayItem(fams, 0)->valuestring, "ipv4");
	cr_assert_str_eq(cJSON_GetArrayItem(fams, 1)->valuestring, "ipv6");
	cr_assert_eq(num_of(r, "routing_table_size4"), 1);
	cr_assert_eq(num_of(r, "routing_table_size6"), 1);
	cr_assert_eq(num_of(r, "routing_table_size"), 2);
	cJSON_Delete(r);
	t = request("table\n", T0 + 100);
	cr_assert_eq(cJSON_GetArraySize(t), 2);
	for (int i = 0; i < 2; i++)
		seen6 |= strcmp(str_of(cJSON_GetArrayItem(t, i), "addr"),
				"[2001:db8::1]:7000") == 0;
	cr_assert(seen6, "the IPv6 entry is listed as [IPv6]:PORT");
	cJSON_Delete(t);
}

Test(control, a_lookup_names_its_family_and_a_family_not_run_is_refused)
{
	uint64_t s = km_control_open(ctl);
	cJSON *r;

	send_text(s, "lookup " TARGET " ipv6\n", T0);
	expect_error("does not run that address family");
	send_text(s, "lookup " TARGET " ipv5\n", T0);
	expect_error("usage: lookup ID [ipv4|ipv6]");
	r = request("lookup " TARGET " ipv4\n", T0);
	cr_assert_str_eq(str_of(r, "target"), TARGET);
	cJSON_Delete(r);
}

Test(control, a_dual_stack_lookup_in_ipv6_asks_only_ipv6_nodes)
{
	struct km_id id6;
	uint64_t s;
	cJSON *r, *nodes;

	restart_dual_stack();
	add_contact(1, 0x80, T0);
	add_contact6(2, 0x40, T0);
	nsent = 0;
	s = km_control_open(ctl);
	send_text(s, "lookup " TARGET " ipv6\n", T0 + 100);
	cr_assert_eq(nsent, 1);
	cr_assert_eq(sent[0].to.family, KM_AF_INET6);
	memset(id6.b, 0x40, KM_ID_LEN);
	reply_last(&id6, T0 + 150);
	r = take_result();
	nodes = cJSON_GetObjectItem(r, "nodes");
	cr_assert_eq(cJSON_GetArraySize(nodes), 1);
	cr_assert_str_eq(str_of(cJSON_GetArrayItem(nodes, 0), "addr"),
			 "[2001:db8::2]:7000");
	cJSON_Delete(r);
	cr_assert_eq(lookups_unclaimed, 0);
}
