/*
 * Fuzz target: JWT verification (common/commerce_jwt.c, _claims.c,
 * commerce_jwa.c, commerce_b64url.c), what commerce_jwt runs on every
 * bearer token, against a set of an HMAC key (kid "k") and an EC P-256
 * key (kid "e").
 *
 * Input: one byte of flags (bit 0: self-signed, bit 1: no claims check,
 * bits 2-3: the leeway, 0 to 3 minutes), then the token.  A self-signed
 * input is "header.payload": the HS256 signature of it with the HMAC key
 * is appended, so that inputs reach the claims.
 *
 * Oracles: the reason is a named one; a valid token names the key that
 * verified it, its header is an object whose alg is the one found, its
 * claims an object (when checked) whose sub is the one given; a
 * self-signed token is never a bad signature when it says HS256; no
 * OpenSSL error is left in the queue.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "commerce_b64url.h"
#include "commerce_jwt.h"
#include "fuzz.h"


static const char  fuzz_jwks[] =
    "{\"keys\":["
    "{\"kty\":\"oct\",\"kid\":\"k\","
    "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},"
    "{\"kty\":\"EC\",\"kid\":\"e\",\"crv\":\"P-256\","
    "\"x\":\"znGNwPAXpAlA34Yj3hylvLMYz6LCL-7xz86GPxSUdT0\","
    "\"y\":\"u_FU9QLflc8NjJp82eB4fOlyC-hkx1K1ub3nzz8fGE8\"}]}";

static const char  fuzz_secret[] = "0123456789abcdef0123456789abcdef";

static commerce_jwk_set_t  *fuzz_set;


static commerce_jwk_set_t *
fuzz_keys(void)
{
    char  err[256];

    if (fuzz_set == NULL) {
        fuzz_set = commerce_jwk_set_new();
        fuzz_check(fuzz_set != NULL);
        fuzz_check(commerce_jwk_set_add(fuzz_set, fuzz_jwks,
                                        sizeof(fuzz_jwks) - 1, "fuzz", err,
                                        sizeof(err)) == 0);
    }

    return fuzz_set;
}


/* "h.p" + "." + the HS256 signature, in a new buffer of exactly its size */
static unsigned char *
fuzz_self_sign(const uint8_t *in, size_t len, size_t *out_len)
{
    unsigned char  *t, mac[64];

    fuzz_check(commerce_jwa_hmac(COMMERCE_JWA_HS256,
                                 (const unsigned char *) fuzz_secret, 32, in,
                                 len, mac) == 0);

    *out_len = len + 1 + COMMERCE_B64URL_ENCODED_LEN(32);
    t = malloc(*out_len);
    fuzz_check(t != NULL);

    memcpy(t, in, len);
    t[len] = '.';
    commerce_b64url_encode(t + len + 1, mac, 32);

    return t;
}


static void
fuzz_valid(const commerce_jwt_t *jwt, const commerce_jwt_opts_t *opts)
{
    json_t  *alg, *sub;

    fuzz_check(jwt->key != NULL);
    fuzz_check(jwt->key->algs & COMMERCE_JWA_BIT(jwt->alg));
    fuzz_check(json_is_object(jwt->header));

    alg = json_object_get(jwt->header, "alg");
    fuzz_check(json_is_string(alg));
    fuzz_check(strcmp(json_string_value(alg),
                      commerce_jwa_get(jwt->alg)->name) == 0);
    fuzz_check(json_object_get(jwt->header, "crit") == NULL);

    if (!opts->check_claims) {
        return;
    }

    fuzz_check(json_is_object(jwt->claims));
    fuzz_check(json_is_number(json_object_get(jwt->claims, "exp")));

    sub = json_object_get(jwt->claims, "sub");

    if (sub == NULL) {
        fuzz_check(jwt->sub.len == 0);

    } else {
        fuzz_check(json_is_string(sub));
        fuzz_check(jwt->sub.len == json_string_length(sub));
        fuzz_check(jwt->sub.data
                   == (const unsigned char *) json_string_value(sub));
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                len;
    unsigned char        *token;
    commerce_jwt_t        jwt;
    commerce_jwt_rc_e     rc;
    commerce_jwt_opts_t   opts;

    if (size < 1) {
        return 0;
    }

    commerce_jwt_opts_init(&opts);
    opts.check_claims = !(data[0] & 2);
    opts.leeway = 60 * ((data[0] >> 2) & 3);

    if (data[0] & 1) {
        token = fuzz_self_sign(data + 1, size - 1, &len);

    } else {
        len = size - 1;
        token = fuzz_dup(data + 1, len);
    }

    rc = commerce_jwt_verify(fuzz_keys(), &opts, token, len, 1700000000,
                             &jwt);

    fuzz_check(rc >= COMMERCE_JWT_OK && rc <= COMMERCE_JWT_ERROR);
    fuzz_check(rc != COMMERCE_JWT_MISSING_ROLE && rc != COMMERCE_JWT_ERROR);
    fuzz_check(strcmp(commerce_jwt_reason(rc), "internal_error") != 0);
    fuzz_check(ERR_peek_error() == 0);

    if (rc == COMMERCE_JWT_OK) {
        fuzz_valid(&jwt, &opts);
    }

    if ((data[0] & 1) && rc == COMMERCE_JWT_BAD_SIGNATURE) {
        fuzz_check(jwt.alg != COMMERCE_JWA_HS256);
    }

    commerce_jwt_free(&jwt);
    free(token);

    return 0;
}
