/* km_origins alone: keys pinned on first use, the replay window, each
 * origin's token bucket, and the bound on origins remembered. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/ident.h"
#include "net/origins.h"
#include "proto/err.h"

static const uint8_t tbs[] = "what the origin signs";

static struct km_ident key(uint8_t byte)
{
	uint8_t seed[KM_IDENT_SEED_LEN];
	struct km_ident k;

	memset(seed, byte, sizeof(seed));
	cr_assert_eq(km_ident_from_seed(&k, seed), 0);
	return k;
}

/* A message from origin o_byte, signed by key k, with sequence seq. */
static struct km_message msg(uint8_t o_byte, const struct km_ident *k,
			     uint64_t seq)
{
	struct km_message m = { .seq = seq };

	memset(m.origin.b, o_byte, KM_ID_LEN);
	memcpy(m.pubkey, k->pub, KM_PUBKEY_LEN);
	cr_assert_eq(km_ident_sign(k, tbs, sizeof(tbs), m.sig), 0);
	return m;
}

static enum km_origin_verdict check(struct km_origins *os,
				    const struct km_message *m, km_ms now)
{
	return km_origins_check(os, m, tbs, sizeof(tbs), now);
}

static struct km_origins *origins(size_t max, unsigned rate, unsigned burst)
{
	struct km_origins *os = km_origins_new(&(struct km_origins_config){
		.max = max, .rate = rate, .burst = burst });

	cr_assert_not_null(os);
	return os;
}

Test(origins, the_first_key_is_pinned_and_another_is_a_forgery)
{
	struct km_origins *os = origins(16, 50, 200);
	struct km_ident k1 = key(1), k2 = key(2);
	struct km_message a = msg(7, &k1, 1), b = msg(7, &k2, 2);

	cr_assert_eq(check(os, &a, 1000), KM_ORIGIN_OK);
	cr_assert_eq(check(os, &b, 1001), KM_ORIGIN_FORGED);
	b.sig[0] ^= 1;
	cr_assert_eq(check(os, &b, 1002), KM_ORIGIN_FORGED);
	cr_assert_eq(km_origins_pin(os, &a.origin, k2.pub, 1003), KM_ERR_AUTH);
	km_origins_del(os);
}

Test(origins, a_bad_signature_pins_nothing)
{
	struct km_origins *os = origins(16, 50, 200);
	struct km_ident k1 = key(1), k2 = key(2);
	struct km_message bad = msg(7, &k2, 1), good = msg(7, &k1, 2);

	bad.sig[5] ^= 0x40;
	cr_assert_eq(check(os, &bad, 1000), KM_ORIGIN_FORGED);
	cr_assert_eq(check(os, &good, 1001), KM_ORIGIN_OK);
	km_origins_del(os);
}

Test(origins, a_sequence_number_is_accepted_once_within_the_window)
{
	struct km_origins *os = origins(16, 50, 200);
	struct km_ident k = key(1);
	struct km_message m100 = msg(7, &k, 100), m90 = msg(7, &k, 90),
			  m30 = msg(7, &k, 30);

	cr_assert_eq(check(os, &m100, 1000), KM_ORIGIN_OK);
	cr_assert_eq(check(os, &m100, 1001), KM_ORIGIN_REPLAYED);
	cr_assert_eq(check(os, &m90, 1002), KM_ORIGIN_OK, "late, in the window");
	cr_assert_eq(check(os, &m90, 1003), KM_ORIGIN_REPLAYED);
	cr_assert_eq(check(os, &m30, 1004), KM_ORIGIN_REPLAYED,
		     "below the 64-wide window: treated as a replay");
	km_origins_del(os);
}

Test(origins, an_origin_over_its_burst_waits_for_its_rate)
{
	struct km_origins *os = origins(16, 10, 3);
	struct km_ident k = key(1);
	uint64_t seq = 1;

	for (int i = 0; i < 3; i++) {
		struct km_message m = msg(7, &k, seq++);

		cr_assert_eq(check(os, &m, 1000), KM_ORIGIN_OK);
	}
	struct km_message over = msg(7, &k, seq++);
	cr_assert_eq(check(os, &over, 1000), KM_ORIGIN_RATE_LIMITED);
	struct km_message later = msg(7, &k, seq++);
	cr_assert_eq(check(os, &later, 1100), KM_ORIGIN_OK,
		     "10 a second: one token back after 100 ms");
	km_origins_del(os);
}

Test(origins, at_the_cap_the_origin_heard_from_least_recently_is_forgotten)
{
	struct km_origins *os = origins(2, 50, 200);
	struct km_ident k1 = key(1), k2 = key(2), k3 = key(3), other = key(9);
	struct km_message a = msg(1, &k1, 1), b = msg(2, &k2, 1),
			  c = msg(3, &k3, 1), a_new_key = msg(1, &other, 2),
			  c_new_key = msg(3, &other, 2);

	cr_assert_eq(check(os, &a, 1000), KM_ORIGIN_OK);
	cr_assert_eq(check(os, &b, 2000), KM_ORIGIN_OK);
	cr_assert_eq(check(os, &c, 3000), KM_ORIGIN_OK); /* a goes */
	cr_assert_eq(check(os, &a_new_key, 3001), KM_ORIGIN_OK,
		     "a's pin was forgotten with it"); /* and b goes */
	cr_assert_eq(check(os, &c_new_key, 3002), KM_ORIGIN_FORGED,
		     "c, heard from last, keeps its pin");
	km_origins_del(os);
}
