#include <criterion/criterion.h>
#include <string.h>

#include "dht/id.h"
#include "proto/addr.h"

static struct km_id id_from(const char *hex)
{
	struct km_id id;

	cr_assert(km_id_from_hex(hex, &id));
	return id;
}

Test(id, hex_round_trips_and_rejects_bad_input)
{
	const char *hex = "0123456789abcdef0123456789abcdef01234567";
	struct km_id id = id_from(hex);
	char out[KM_ID_HEXLEN + 1];

	km_id_to_hex(&id, out);
	cr_assert_str_eq(out, hex);
	cr_assert(km_id_from_hex("0123456789ABCDEF0123456789ABCDEF01234567", &id));
	cr_assert_not(km_id_from_hex("0123", &id));
	cr_assert_not(km_id_from_hex("0123456789abcdef0123456789abcdef012345678", &id));
	cr_assert_not(km_id_from_hex("g123456789abcdef0123456789abcdef01234567", &id));
}

Test(id, common_prefix_length_counts_leading_equal_bits)
{
	struct km_id a = id_from("0000000000000000000000000000000000000000");
	struct km_id b = a;

	cr_assert_eq(km_id_cpl(&a, &b), 160);
	b.b[0] = 0x80;
	cr_assert_eq(km_id_cpl(&a, &b), 0);
	b.b[0] = 0x01;
	cr_assert_eq(km_id_cpl(&a, &b), 7);
	b.b[0] = 0;
	b.b[19] = 0x01;
	cr_assert_eq(km_id_cpl(&a, &b), 159);
}

Test(id, distance_order_follows_xor_metric)
{
	struct km_id t = id_from("ff00000000000000000000000000000000000000");
	struct km_id a = id_from("fe00000000000000000000000000000000000000");
	struct km_id b = id_from("0f00000000000000000000000000000000000000");

	cr_assert_lt(km_id_cmp_distance(&t, &a, &b), 0);
	cr_assert_gt(km_id_cmp_distance(&t, &b, &a), 0);
	cr_assert_eq(km_id_cmp_distance(&t, &a, &a), 0);
}

Test(id, random_with_prefix_keeps_exactly_the_prefix)
{
	struct km_prng p;
	struct km_rng rng;
	struct km_id base = id_from("a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5"), r;

	km_prng_seed(&p, 7);
	rng = km_prng_rng(&p);
	for (int bits = 0; bits <= 160; bits++) {
		km_id_random_with_prefix(&base, bits, &rng, &r);
		cr_assert_geq(km_id_cpl(&base, &r), bits);
	}
}

Test(id, sha1_matches_known_vector)
{
	struct km_id h;
	char hex[KM_ID_HEXLEN + 1];

	km_id_sha1("abc", 3, &h);
	km_id_to_hex(&h, hex);
	cr_assert_str_eq(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
}

Test(addr, parse_and_format_round_trip_both_families)
{
	struct km_addr a;
	char buf[KM_ADDR_STRLEN];

	cr_assert(km_addr_parse("127.0.0.1:6881", &a));
	cr_assert_eq(a.family, KM_AF_INET4);
	cr_assert_eq(a.port, 6881);
	km_addr_format(&a, buf, sizeof(buf));
	cr_assert_str_eq(buf, "127.0.0.1:6881");
	cr_assert(km_addr_parse("[::1]:80", &a));
	km_addr_format(&a, buf, sizeof(buf));
	cr_assert_str_eq(buf, "[::1]:80");
	cr_assert_not(km_addr_parse("::1:80", &a));
	cr_assert_not(km_addr_parse("1.2.3.4:65536", &a));
	cr_assert_not(km_addr_parse("1.2.3.4:", &a));
	cr_assert_not(km_addr_parse("1.2.3.4", &a));
	cr_assert_not(km_addr_parse("[::1]80", &a));
	cr_assert_not(km_addr_parse("host:80", &a));
}
