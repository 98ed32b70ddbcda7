/* The control-socket parser against a real km_node with callbacks that go
 * nowhere.  The input is split into chunks at 0xff bytes, each fed as one
 * read, so line reassembly across reads is explored too. */
#include <string.h>

#include "fuzz.h"
#include "ops/control.h"

#define T0 KM_SECONDS(1000)

static struct km_control *ctl;

static void on_udp(void *u, const struct km_addr *to, const uint8_t *b, size_t n) {}
static void on_connect(void *u, uint64_t c, const struct km_addr *to) {}
static void on_send(void *u, uint64_t c, const uint8_t *b, size_t n) {}
static void on_tcp_close(void *u, uint64_t c) {}
static void on_write(void *u, uint64_t s, const char *b, size_t n)
{
	FUZZ_ASSERT(n > 0 && b[n - 1] == '\n');
}
static void on_close(void *u, uint64_t s) {}
static void on_deliver(void *u, const struct km_message *m)
{
	km_control_deliver(ctl, m);
}
static void on_lookup_done(void *u, uint64_t id, const struct km_lookup *lk)
{
	km_control_lookup_done(ctl, id, lk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct km_node_callbacks ncb = {
		.udp_send = on_udp, .tcp_connect = on_connect,
		.tcp_send = on_send, .tcp_close = on_tcp_close,
		.lookup_done = on_lookup_done, .deliver = on_deliver,
	};
	static const struct km_control_callbacks ccb = {
		.write = on_write, .close = on_close,
	};
	struct km_prng prng;
	struct km_rng rng;
	struct km_node_config cfg;
	struct km_node *node;
	uint64_t s;
	size_t start = 0;

	km_prng_seed(&prng, 7);
	rng = km_prng_rng(&prng);
	km_node_config_default(&cfg);
	memset(cfg.dht.id.b, 0x11, KM_ID_LEN);
	cfg.port = 6881;
	cfg.seed = true;
	node = km_node_new(&cfg, &ncb, NULL, &rng, T0);
	FUZZ_ASSERT(node);
	km_node_start(node, NULL, 0, T0);
	ctl = km_control_new(node, &ccb, NULL);
	FUZZ_ASSERT(ctl);
	s = km_control_open(ctl);
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != 0xff)
			continue;
		km_control_recv(ctl, s, data + start, i - start, T0 + i);
		start = i + 1;
	}
	km_node_tick(node, T0 + KM_SECONDS(60));
	km_control_del(ctl);
	km_node_del(node);
	ctl = NULL;
	return 0;
}
