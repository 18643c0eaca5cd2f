/*
 * commerce_jwk_key: the key material of a JWK, per kty, built as OpenSSL
 * keys from parameters (private to commerce_jwk.c).
 */

#ifndef COMMERCE_JWK_KEY_H
#define COMMERCE_JWK_KEY_H


#include "commerce_jwk.h"


/*
 * Fills key->pkey (RSA, EC, OKP) or key->secret (oct) and key->algs from
 * the members of jwk, key->kind set; alg is the JWK's "alg", or
 * COMMERCE_JWA_NONE.  0, or -1 with the reason in err.
 */
int commerce_jwk_material(const json_t *jwk, int mode,
    commerce_jwa_alg_e alg, commerce_jwk_t *key, char *err, size_t errlen);

/* snprintf into err */
void commerce_jwk_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


#endif /* COMMERCE_JWK_KEY_H */
