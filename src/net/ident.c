#include "net/ident.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "proto/err.h"

static EVP_PKEY *private_key(const uint8_t *seed)
{
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
					    KM_IDENT_SEED_LEN);
}

int km_ident_from_seed(struct km_ident *k,
		       const uint8_t seed[static KM_IDENT_SEED_LEN])
{
	EVP_PKEY *pk = private_key(seed);
	size_t len = KM_IDENT_PUB_LEN;
	int ok;

	if (!pk)
		return KM_ERR_NOMEM;
	ok = EVP_PKEY_get_raw_public_key(pk, k->pub, &len) == 1 &&
	     len == KM_IDENT_PUB_LEN;
	EVP_PKEY_free(pk);
	if (!ok)
		return KM_ERR_NOMEM;
	memcpy(k->seed, seed, KM_IDENT_SEED_LEN);
	return 0;
}

int km_ident_sign(const struct km_ident *k, const uint8_t *msg, size_t len,
		  uint8_t sig[static KM_IDENT_SIG_LEN])
{
	EVP_PKEY *pk = private_key(k->seed);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t slen = KM_IDENT_SIG_LEN;
	int ok = pk && ctx &&
		 EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) == 1 &&
		 EVP_DigestSign(ctx, sig, &slen, msg, len) == 1 &&
		 slen == KM_IDENT_SIG_LEN;

	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return ok ? 0 : KM_ERR_NOMEM;
}

bool km_ident_verify(const uint8_t pub[static KM_IDENT_PUB_LEN],
		     const uint8_t *msg, size_t len,
		     const uint8_t sig[static KM_IDENT_SIG_LEN])
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub,
						   KM_IDENT_PUB_LEN);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = pk && ctx &&
		  EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
		  EVP_DigestVerify(ctx, sig, KM_IDENT_SIG_LEN, msg, len) == 1;

	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return ok;
}
