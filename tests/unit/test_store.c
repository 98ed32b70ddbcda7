/* announce_peer tokens and the peer store, with literal timestamps. */
#include <criterion/criterion.h>
#include <string.h>

#include "dht/peers.h"
#include "dht/tokens.h"
#include "proto/err.h"

static struct km_addr v4(uint8_t last, uint16_t port)
{
	struct km_addr a;
	uint8_t ip[4] = { 192, 0, 2, last };

	km_addr_set_v4(&a, ip, port);
	return a;
}

Test(token, a_token_is_accepted_from_its_ip_until_two_rotations_later)
{
	struct km_prng p;
	struct km_rng rng;
	struct km_tokens t;
	struct km_addr a = v4(1, 1000), a_other_port = v4(1, 2000), b = v4(2, 1000);
	uint8_t tok[KM_TOKEN_LEN];

	km_prng_seed(&p, 1);
	rng = km_prng_rng(&p);
	km_tokens_init(&t, &rng, 1000);
	km_tokens_make(&t, &a, tok);
	cr_assert(km_tokens_check(&t, &a, tok, sizeof(tok)));
	cr_assert(km_tokens_check(&t, &a_other_port, tok, sizeof(tok)),
		  "tokens bind the IP, not the port");
	cr_assert_not(km_tokens_check(&t, &b, tok, sizeof(tok)));
	cr_assert_not(km_tokens_check(&t, &a, tok, sizeof(tok) - 1));
	km_tokens_tick(&t, &rng, 1000 + KM_MINUTES(5) - 1);
	cr_assert_eq(km_tokens_next_rotation(&t), 1000 + KM_MINUTES(5));
	km_tokens_tick(&t, &rng, 1000 + KM_MINUTES(5));
	cr_assert(km_tokens_check(&t, &a, tok, sizeof(tok)), "previous secret still good");
	km_tokens_tick(&t, &rng, 1000 + KM_MINUTES(10));
	cr_assert_not(km_tokens_check(&t, &a, tok, sizeof(tok)), "two rotations later");
}

static struct km_id hash_of(uint8_t b)
{
	struct km_id id;

	memset(id.b, b, sizeof(id.b));
	return id;
}

Test(peers, announcements_expire_after_30_minutes)
{
	struct km_peers *s = km_peers_new(NULL);
	struct km_id ih = hash_of(1);
	struct km_addr a = v4(1, 1000), out[4];

	cr_assert_eq(km_peers_add(s, &ih, &a, 1000), 0);
	cr_assert_eq(km_peers_get(s, &ih, KM_AF_INET4, out, 4, 1000 + KM_MINUTES(30) - 1), 1);
	cr_assert_eq(km_peers_get(s, &ih, KM_AF_INET4, out, 4, 1000 + KM_MINUTES(30)), 0);
	km_peers_expire(s, 1000 + KM_MINUTES(30));
	cr_assert_eq(km_peers_stats(s).total, 0);
	cr_assert_eq(km_peers_stats(s).hashes, 0);
	km_peers_del(s);
}

Test(peers, a_full_swarm_drops_its_oldest_announcement)
{
	struct km_peers_config cfg;
	struct km_peers *s;
	struct km_id ih = hash_of(2);
	struct km_addr out[8];

	km_peers_config_default(&cfg);
	cfg.max_per_hash = 3;
	s = km_peers_new(&cfg);
	for (uint8_t i = 1; i <= 4; i++) {
		struct km_addr a = v4(i, 1000);

		cr_assert_eq(km_peers_add(s, &ih, &a, 1000 + i), 0);
	}
	cr_assert_eq(km_peers_get(s, &ih, KM_AF_INET4, out, 8, 2000), 3);
	cr_assert_eq(out[0].ip[3], 4, "most recent first");
	cr_assert_eq(out[2].ip[3], 2, "the first announcement made room");
	km_peers_del(s);
}

Test(peers, the_global_caps_refuse_new_hashes_and_peers)
{
	struct km_peers_config cfg;
	struct km_peers *s;
	struct km_addr a = v4(1, 1000), b = v4(2, 1000);

	km_peers_config_default(&cfg);
	cfg.max_hashes = 2;
	cfg.max_total = 3;
	s = km_peers_new(&cfg);
	struct km_id h1 = hash_of(1), h2 = hash_of(2), h3 = hash_of(3);
	cr_assert_eq(km_peers_add(s, &h1, &a, 1), 0);
	cr_assert_eq(km_peers_add(s, &h2, &a, 1), 0);
	cr_assert_eq(km_peers_add(s, &h3, &a, 1), KM_ERR_FULL, "hash cap");
	cr_assert_eq(km_peers_add(s, &h1, &b, 1), 0);
	cr_assert_eq(km_peers_add(s, &h2, &b, 1), KM_ERR_FULL, "total cap");
	cr_assert_eq(km_peers_add(s, &h1, &a, 2), 0, "re-announcing is not a new peer");
	cr_assert_eq(km_peers_stats(s).total, 3);
	cr_assert_eq(km_peers_stats(s).rejected_full, 2);
	km_peers_del(s);
}

Test(peers, only_the_asked_family_is_returned)
{
	struct km_peers *s = km_peers_new(NULL);
	struct km_id ih = hash_of(4);
	struct km_addr a = v4(1, 1000), six, out[4];
	uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };

	km_addr_set_v6(&six, ip6, 1000);
	km_peers_add(s, &ih, &a, 1);
	km_peers_add(s, &ih, &six, 1);
	cr_assert_eq(km_peers_get(s, &ih, KM_AF_INET6, out, 4, 2), 1);
	cr_assert_eq(out[0].family, KM_AF_INET6);
	km_peers_del(s);
}
