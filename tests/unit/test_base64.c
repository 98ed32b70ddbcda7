/* Base64 for control-protocol payloads: the RFC 4648 test vectors, round
 * trips of every length, and malformed input refused. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/base64.h"
#include "proto/err.h"

Test(base64, encodes_the_rfc_4648_vectors)
{
	static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
				     "Zm9vYmE=", "Zm9vYmFy" };
	char out[16];
	uint8_t back[16];

	for (size_t i = 0; i < 7; i++) {
		size_t len = strlen(plain[i]);

		cr_assert_eq(km_base64_encode((const uint8_t *)plain[i], len, out),
			     KM_BASE64_LEN(len));
		cr_assert_str_eq(out, enc[i]);
		cr_assert_eq(km_base64_decode(enc[i], back, sizeof(back)), (int)len);
		cr_assert_arr_eq(back, plain[i], len);
	}
}

Test(base64, every_byte_value_and_length_round_trips)
{
	uint8_t in[300], back[300];
	char enc[KM_BASE64_LEN(300) + 1];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(in); len++) {
		km_base64_encode(in, len, enc);
		cr_assert_eq(km_base64_decode(enc, back, sizeof(back)), (int)len);
		cr_assert_arr_eq(back, in, len);
	}
}

Test(base64, malformed_input_is_refused)
{
	uint8_t out[16];

	cr_assert_eq(km_base64_decode("Zm9", out, sizeof(out)), KM_ERR_SYNTAX);
	cr_assert_eq(km_base64_decode("Zm9!", out, sizeof(out)), KM_ERR_SYNTAX);
	cr_assert_eq(km_base64_decode("Zg==Zm9v", out, sizeof(out)), KM_ERR_SYNTAX,
		     "padding only at the end");
	cr_assert_eq(km_base64_decode("=Zm9", out, sizeof(out)), KM_ERR_SYNTAX);
	cr_assert_eq(km_base64_decode("Zm9vYmFy", out, 5), KM_ERR_BUF);
}
