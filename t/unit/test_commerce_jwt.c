/*
 * Unit tests of the JWT core's parts: strict base64url, the algorithm
 * table, what a JWK may verify, and the rules of commerce_jwt_verify()
 * (leeway, typ, accepted algorithms, kid selection, claims, roles) on
 * HMAC tokens made here.  The signatures of every algorithm are checked
 * against independent vectors in test_commerce_jwt_vectors.c.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/err.h>

#include "commerce_b64url.h"
#include "commerce_jwt.h"


#define NOW  1700000000

/* 32, 48 and 64 bytes */
#define K32  "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"
#define K48  "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm"
#define K64  "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJj" \
             "ZGVmMDEyMzQ1Njc4OWFiY2RlZg"

static const char  secret32[] = "0123456789abcdef0123456789abcdef";


/* ------------------------------------------------------------ helpers --- */

static char *
b64(char *out, const void *in, size_t len)
{
    return (char *) commerce_b64url_encode((unsigned char *) out, in, len);
}


/* header.payload.HMAC with the alg's hash, in a static buffer */
static const char *
token(commerce_jwa_alg_e alg, const char *header, const char *payload,
    const char *secret, size_t secret_len)
{
    static char     buf[4096];
    char           *p;
    unsigned char   mac[64];

    p = b64(buf, header, strlen(header));
    *p++ = '.';
    p = b64(p, payload, strlen(payload));

    assert_int_equal(commerce_jwa_hmac(alg, (const unsigned char *) secret,
                                       secret_len, (unsigned char *) buf,
                                       (size_t) (p - buf), mac), 0);
    *p++ = '.';
    p = b64(p, mac, commerce_jwa_get(alg)->hash_len);
    *p = '\0';

    return buf;
}


static const char *
hs256(const char *header, const char *payload)
{
    return token(COMMERCE_JWA_HS256, header, payload, secret32, 32);
}


static commerce_jwk_set_t *
set_of(const char *jwks)
{
    char                 err[512];
    commerce_jwk_set_t  *set;

    set = commerce_jwk_set_new();
    assert_non_null(set);

    if (commerce_jwk_set_add(set, jwks, strlen(jwks), "test", err,
                             sizeof(err)) != 0)
    {
        fail_msg("%s", err);
    }

    return set;
}


static commerce_jwt_rc_e
verify(commerce_jwk_set_t *set, const commerce_jwt_opts_t *opts,
    const char *tok, int64_t now)
{
    commerce_jwt_t     jwt;
    commerce_jwt_rc_e  rc;

    rc = commerce_jwt_verify(set, opts, (const unsigned char *) tok,
                             strlen(tok), now, &jwt);
    commerce_jwt_free(&jwt);

    /* no refusal leaves an OpenSSL error behind */
    assert_int_equal(ERR_peek_error(), 0);

    return rc;
}


/* the 1-or-0-or-error of commerce_jwk_parse() on a JWK's text */
static int
parse(const char *text, int mode, commerce_jwk_t *key, char *err)
{
    int      rc;
    json_t  *jwk;

    jwk = json_loads(text, 0, NULL);
    assert_non_null(jwk);

    rc = commerce_jwk_parse(jwk, mode, key, err, 256);
    json_decref(jwk);

    return rc;
}


/* ----------------------------------------------------------- b64url --- */

static void
test_b64url(void **state)
{
    size_t          i, len;
    ssize_t         n;
    unsigned char   in[64], out[128], back[128];

    (void) state;

    for (len = 0; len <= 40; len++) {
        for (i = 0; i < len; i++) {
            in[i] = (unsigned char) (i * 37 + len);
        }

        n = commerce_b64url_encode(out, in, len) - out;
        assert_int_equal(n, COMMERCE_B64URL_ENCODED_LEN(len));
        assert_int_equal(commerce_b64url_decode(back, out, (size_t) n),
                         (ssize_t) len);
        assert_memory_equal(back, in, len);
    }

    assert_int_equal(commerce_b64url_decode(out, (unsigned char *) "-_8", 3),
                     2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);

    /* padding, the standard alphabet, a lone character, whitespace */
    assert_int_equal(commerce_b64url_decode(out, (unsigned char *) "QQ==", 4),
                     -1);
    assert_int_equal(commerce_b64url_decode(out, (unsigned char *) "+/8", 3),
                     -1);
    assert_int_equal(commerce_b64url_decode(out, (unsigned char *) "QUJDR", 5),
                     -1);
    assert_int_equal(commerce_b64url_decode(out, (unsigned char *) "QU E", 4),
                     -1);

    /* "QQ" is "A"; "QR" would be "A" too, with a low bit set */
    assert_int_equal(commerce_b64url_decode(out, (unsigned char *) "QQ", 2),
                     1);
    assert_int_equal(commerce_b64url_decode(out, (unsigned char *) "QR", 2),
                     -1);
    assert_int_equal(commerce_b64url_decode(out, (unsigned char *) "QUI", 3),
                     2);
    assert_int_equal(commerce_b64url_decode(out, (unsigned char *) "QUJ", 3),
                     -1);
}


/* -------------------------------------------------------------- jwa --- */

static void
test_jwa(void **state)
{
    size_t       bad_len;
    unsigned     mask;
    const char  *bad;

    (void) state;

    assert_int_equal(commerce_jwa_lookup("ES512", 5), COMMERCE_JWA_ES512);
    assert_int_equal(commerce_jwa_lookup("EdDSA", 5), COMMERCE_JWA_EDDSA);
    assert_int_equal(commerce_jwa_lookup("rs256", 5), COMMERCE_JWA_NONE);
    assert_int_equal(commerce_jwa_lookup("RS2560", 6), COMMERCE_JWA_NONE);
    assert_int_equal(commerce_jwa_lookup("RS25", 4), COMMERCE_JWA_NONE);
    assert_int_equal(commerce_jwa_lookup("none", 4), COMMERCE_JWA_NONE);

    mask = commerce_jwa_parse_list("RS256,EdDSA", 11, &bad, &bad_len);
    assert_int_equal(mask, COMMERCE_JWA_BIT(COMMERCE_JWA_RS256)
                           | COMMERCE_JWA_BIT(COMMERCE_JWA_EDDSA));

    assert_int_equal(commerce_jwa_parse_list("RS256,none", 10, &bad,
                                             &bad_len), 0);
    assert_int_equal(bad_len, 4);
    assert_memory_equal(bad, "none", 4);

    assert_int_equal(commerce_jwa_parse_list("RS256,", 6, &bad, &bad_len), 0);
    assert_int_equal(bad_len, 0);
}


/* -------------------------------------------------------------- jwk --- */

static void
test_jwk_use(void **state)
{
    char            err[256];
    commerce_jwk_t  key;

    (void) state;

    assert_int_equal(parse("{\"kty\":\"oct\",\"use\":\"enc\",\"k\":\"" K32
                           "\"}", COMMERCE_JWK_VERIFY, &key, err), 0);
    assert_int_equal(parse("{\"kty\":\"oct\",\"key_ops\":[\"sign\"],\"k\":\""
                           K32 "\"}", COMMERCE_JWK_VERIFY, &key, err), 0);
    assert_int_equal(parse("{\"kty\":\"oct\",\"key_ops\":[\"verify\"],\"k\":\""
                           K32 "\"}", COMMERCE_JWK_SIGN, &key, err), 0);

    assert_int_equal(parse("{\"kty\":\"oct\",\"use\":\"sig\",\"key_ops\":"
                           "[\"sign\",\"verify\"],\"k\":\"" K32 "\"}",
                           COMMERCE_JWK_VERIFY, &key, err), 1);
    commerce_jwk_clear(&key);

    assert_int_equal(parse("{\"kty\":\"oct\",\"key_ops\":\"verify\",\"k\":\""
                           K32 "\"}", COMMERCE_JWK_VERIFY, &key, err), -1);
    assert_string_equal(err, "\"key_ops\" is not an array");

    assert_int_equal(parse("{\"kty\":\"oct\",\"use\":1,\"k\":\"" K32 "\"}",
                           COMMERCE_JWK_VERIFY, &key, err), -1);
    assert_int_equal(parse("{\"kty\":\"oct\",\"kid\":7,\"k\":\"" K32 "\"}",
                           COMMERCE_JWK_VERIFY, &key, err), -1);
    assert_int_equal(parse("{\"kty\":\"oct\",\"kid\":\"\",\"k\":\"" K32 "\"}",
                           COMMERCE_JWK_VERIFY, &key, err), -1);
    assert_int_equal(parse("[]", COMMERCE_JWK_VERIFY, &key, err), -1);
    assert_int_equal(parse("{\"k\":\"" K32 "\"}", COMMERCE_JWK_VERIFY, &key,
                           err), -1);
    assert_string_equal(err, "no \"kty\" string");
}


/* an HMAC key without alg verifies each HS* whose hash it covers */
static void
test_jwk_oct_algs(void **state)
{
    char            err[256];
    commerce_jwk_t  key;

    (void) state;

    assert_int_equal(parse("{\"kty\":\"oct\",\"k\":\"" K32 "\"}",
                           COMMERCE_JWK_VERIFY, &key, err), 1);
    assert_int_equal(key.algs, COMMERCE_JWA_BIT(COMMERCE_JWA_HS256));
    assert_int_equal(key.secret_len, 32);
    assert_null(key.kid);
    commerce_jwk_clear(&key);

    assert_int_equal(parse("{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"" K48
                           "\"}", COMMERCE_JWK_VERIFY, &key, err), 1);
    assert_int_equal(key.algs, COMMERCE_JWA_BIT(COMMERCE_JWA_HS256)
                               | COMMERCE_JWA_BIT(COMMERCE_JWA_HS384));
    assert_string_equal(key.kid, "a");
    commerce_jwk_clear(&key);

    assert_int_equal(parse("{\"kty\":\"oct\",\"k\":\"" K64 "\"}",
                           COMMERCE_JWK_VERIFY, &key, err), 1);
    assert_int_equal(key.algs, COMMERCE_JWA_BIT(COMMERCE_JWA_HS256)
                               | COMMERCE_JWA_BIT(COMMERCE_JWA_HS384)
                               | COMMERCE_JWA_BIT(COMMERCE_JWA_HS512));
    commerce_jwk_clear(&key);

    assert_int_equal(parse("{\"kty\":\"oct\",\"alg\":\"HS384\",\"k\":\"" K64
                           "\"}", COMMERCE_JWK_VERIFY, &key, err), 1);
    assert_int_equal(key.algs, COMMERCE_JWA_BIT(COMMERCE_JWA_HS384));
    commerce_jwk_clear(&key);

    assert_int_equal(parse("{\"kty\":\"oct\",\"alg\":\"HS384\",\"k\":\"" K32
                           "\"}", COMMERCE_JWK_VERIFY, &key, err), -1);
    assert_string_equal(err, "an HMAC key of 32 bytes is shorter than "
                        "HS384's hash (48)");

    assert_int_equal(parse("{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":\"" K32
                           "\"}", COMMERCE_JWK_VERIFY, &key, err), -1);
    assert_string_equal(err, "alg RS256 does not fit kty \"oct\"");
}


/* ----------------------------------------------------------- verify --- */

static void
test_leeway(void **state)
{
    commerce_jwt_opts_t   opts;
    commerce_jwk_set_t   *set;
    const char           *t;

    (void) state;

    set = set_of("{\"keys\":[{\"kty\":\"oct\",\"k\":\"" K32 "\"}]}");
    commerce_jwt_opts_init(&opts);

    t = hs256("{\"alg\":\"HS256\"}", "{\"exp\":1700000000,\"nbf\":1699999000}");

    assert_int_equal(verify(set, &opts, t, NOW - 1), COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts, t, NOW), COMMERCE_JWT_EXPIRED);
    assert_int_equal(verify(set, &opts, t, 1699998999),
                     COMMERCE_JWT_NOT_YET_VALID);

    opts.leeway = 30;
    assert_int_equal(verify(set, &opts, t, NOW + 29), COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts, t, NOW + 30), COMMERCE_JWT_EXPIRED);
    assert_int_equal(verify(set, &opts, t, 1699998970), COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts, t, 1699998969),
                     COMMERCE_JWT_NOT_YET_VALID);

    /* a NumericDate may have a fraction */
    opts.leeway = 0;
    t = hs256("{\"alg\":\"HS256\"}", "{\"exp\":1700000000.5}");
    assert_int_equal(verify(set, &opts, t, NOW), COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts, t, NOW + 1), COMMERCE_JWT_EXPIRED);

    t = hs256("{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}");
    assert_int_equal(verify(set, &opts, t, NOW), COMMERCE_JWT_MISSING_EXP);
    opts.require_exp = 0;
    assert_int_equal(verify(set, &opts, t, NOW), COMMERCE_JWT_OK);

    t = hs256("{\"alg\":\"HS256\"}", "{\"exp\":2e9,\"iat\":\"yesterday\"}");
    assert_int_equal(verify(set, &opts, t, NOW), COMMERCE_JWT_BAD_CLAIMS);

    commerce_jwk_set_free(set);
}


static void
test_type(void **state)
{
    commerce_jwt_opts_t   opts;
    commerce_jwk_set_t   *set;
    const char           *claims = "{\"exp\":2000000000}";

    (void) state;

    set = set_of("{\"keys\":[{\"kty\":\"oct\",\"k\":\"" K32 "\"}]}");
    commerce_jwt_opts_init(&opts);

    /* not checked unless asked */
    assert_int_equal(verify(set, &opts, hs256("{\"alg\":\"HS256\"}", claims),
                            NOW), COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\",\"typ\":7}", claims),
                            NOW), COMMERCE_JWT_BAD_HEADER);

    opts.type.data = (const unsigned char *) "at+jwt";
    opts.type.len = 6;

    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
                                  claims), NOW), COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\",\"typ\":"
                                  "\"application/AT+JWT\"}", claims), NOW),
                     COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                                  claims), NOW), COMMERCE_JWT_WRONG_TYPE);
    assert_int_equal(verify(set, &opts, hs256("{\"alg\":\"HS256\"}", claims),
                            NOW), COMMERCE_JWT_WRONG_TYPE);

    opts.type.data = (const unsigned char *) "application/jwt";
    opts.type.len = 15;

    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                                  claims), NOW), COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\",\"typ\":"
                                  "\"application/x/jwt\"}", claims), NOW),
                     COMMERCE_JWT_WRONG_TYPE);

    commerce_jwk_set_free(set);
}


static void
test_algs(void **state)
{
    commerce_jwt_opts_t   opts;
    commerce_jwk_set_t   *set;
    const char           *claims = "{\"exp\":2000000000}";

    (void) state;

    set = set_of("{\"keys\":[{\"kty\":\"oct\",\"k\":\"" K32 "\"}]}");
    commerce_jwt_opts_init(&opts);

    opts.algs = COMMERCE_JWA_BIT(COMMERCE_JWA_ES256);
    assert_int_equal(verify(set, &opts, hs256("{\"alg\":\"HS256\"}", claims),
                            NOW), COMMERCE_JWT_ALG_NOT_ALLOWED);

    opts.algs |= COMMERCE_JWA_BIT(COMMERCE_JWA_HS256);
    assert_int_equal(verify(set, &opts, hs256("{\"alg\":\"HS256\"}", claims),
                            NOW), COMMERCE_JWT_OK);

    /* a 32-byte key is no key for HS384, even signed with it */
    opts.algs = COMMERCE_JWA_ALL;
    assert_int_equal(verify(set, &opts,
                            token(COMMERCE_JWA_HS384, "{\"alg\":\"HS384\"}",
                                  claims, secret32, 32), NOW),
                     COMMERCE_JWT_NO_KEY);

    /* the HMAC of the right key under the wrong alg name */
    assert_int_equal(verify(set, &opts,
                            token(COMMERCE_JWA_HS256, "{\"alg\":\"HS512\"}",
                                  claims, secret32, 32), NOW),
                     COMMERCE_JWT_NO_KEY);

    commerce_jwk_set_free(set);
}


/* kid selects; without a kid every key of the alg is tried */
static void
test_kid(void **state)
{
    commerce_jwt_opts_t   opts;
    commerce_jwk_set_t   *set;
    const char           *claims = "{\"exp\":2000000000}";

    (void) state;

    set = set_of("{\"keys\":["
                 "{\"kty\":\"oct\",\"kid\":\"other\",\"k\":\"" K48 "\"},"
                 "{\"kty\":\"oct\",\"kid\":\"mine\",\"k\":\"" K32 "\"}]}");
    commerce_jwt_opts_init(&opts);

    assert_int_equal(verify(set, &opts, hs256("{\"alg\":\"HS256\"}", claims),
                            NOW), COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\",\"kid\":\"mine\"}",
                                  claims), NOW), COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\",\"kid\":\"other\"}",
                                  claims), NOW), COMMERCE_JWT_BAD_SIGNATURE);
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\",\"kid\":\"min\"}",
                                  claims), NOW), COMMERCE_JWT_UNKNOWN_KID);
    commerce_jwk_set_free(set);

    /* a key without kid is not one a token's kid names */
    set = set_of("{\"keys\":[{\"kty\":\"oct\",\"k\":\"" K32 "\"}]}");
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\",\"kid\":\"mine\"}",
                                  claims), NOW), COMMERCE_JWT_UNKNOWN_KID);
    commerce_jwk_set_free(set);
}


static void
test_shape(void **state)
{
    char                  big[COMMERCE_JWT_TOKEN_MAX + 2];
    commerce_jwt_t        jwt;
    commerce_jwt_opts_t   opts;
    commerce_jwk_set_t   *set;

    (void) state;

    set = set_of("{\"keys\":[{\"kty\":\"oct\",\"k\":\"" K32 "\"}]}");
    commerce_jwt_opts_init(&opts);

    assert_int_equal(verify(set, &opts, "", NOW), COMMERCE_JWT_MISSING);

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(verify(set, &opts, big, NOW), COMMERCE_JWT_TOO_LONG);

    assert_int_equal(verify(set, &opts, "a.b", NOW), COMMERCE_JWT_MALFORMED);
    assert_int_equal(verify(set, &opts, "..", NOW), COMMERCE_JWT_MALFORMED);
    assert_int_equal(verify(set, &opts, "e30.e30.", NOW),
                     COMMERCE_JWT_BAD_HEADER);

    /* only the signature, the payload anything (--no-claims) */
    opts.check_claims = 0;
    assert_int_equal(commerce_jwt_verify(set, &opts, (const unsigned char *)
                                         hs256("{\"alg\":\"HS256\"}",
                                               "not JSON \x01"),
                                         strlen(hs256("{\"alg\":\"HS256\"}",
                                                      "not JSON \x01")),
                                         NOW, &jwt),
                     COMMERCE_JWT_OK);
    assert_int_equal(jwt.payload_len, 10);
    assert_memory_equal(jwt.payload, "not JSON \x01", 10);
    assert_null(jwt.claims);
    commerce_jwt_free(&jwt);

    opts.check_claims = 1;
    assert_int_equal(verify(set, &opts, hs256("{\"alg\":\"HS256\"}",
                                              "not JSON"), NOW),
                     COMMERCE_JWT_BAD_CLAIMS);

    commerce_jwk_set_free(set);
}


static void
test_claims(void **state)
{
    commerce_jwt_t        jwt;
    commerce_jwt_opts_t   opts;
    commerce_jwk_set_t   *set;
    const char           *t;
    commerce_jwt_str_t    auds[2] = {
        { 3, (const unsigned char *) "api" },
        { 5, (const unsigned char *) "admin" }
    };

    (void) state;

    set = set_of("{\"keys\":[{\"kty\":\"oct\",\"k\":\"" K32 "\"}]}");
    commerce_jwt_opts_init(&opts);
    opts.issuer.data = (const unsigned char *) "iss-1";
    opts.issuer.len = 5;
    opts.audiences = auds;
    opts.naudiences = 2;

    t = hs256("{\"alg\":\"HS256\"}", "{\"iss\":\"iss-1\",\"aud\":\"admin\","
              "\"sub\":\"u-\\u00e9\",\"exp\":2000000000}");

    assert_int_equal(commerce_jwt_verify(set, &opts, (const unsigned char *) t,
                                         strlen(t), NOW, &jwt),
                     COMMERCE_JWT_OK);
    assert_int_equal(jwt.sub.len, 4);
    assert_memory_equal(jwt.sub.data, "u-\xc3\xa9", 4);
    commerce_jwt_free(&jwt);

    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\"}",
                                  "{\"iss\":\"iss-1x\",\"aud\":\"api\","
                                  "\"exp\":2000000000}"), NOW),
                     COMMERCE_JWT_WRONG_ISSUER);
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\"}",
                                  "{\"iss\":\"iss-1\",\"aud\":[\"x\",\"api\"],"
                                  "\"exp\":2000000000}"), NOW),
                     COMMERCE_JWT_OK);
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\"}",
                                  "{\"iss\":\"iss-1\",\"aud\":[\"api\",1],"
                                  "\"exp\":2000000000}"), NOW),
                     COMMERCE_JWT_BAD_CLAIMS);
    assert_int_equal(verify(set, &opts,
                            hs256("{\"alg\":\"HS256\"}",
                                  "{\"iss\":\"iss-1\",\"aud\":\"ap\","
                                  "\"exp\":2000000000}"), NOW),
                     COMMERCE_JWT_WRONG_AUDIENCE);

    /* the signature first: a bad token's claims are never looked at */
    opts.algs = COMMERCE_JWA_ALL;
    assert_int_equal(verify(set, &opts,
                            token(COMMERCE_JWA_HS256, "{\"alg\":\"HS256\"}",
                                  "{\"exp\":1}", "0123456789abcdef0123456789"
                                  "abcdeX", 32), NOW),
                     COMMERCE_JWT_BAD_SIGNATURE);

    commerce_jwk_set_free(set);
}


static void
test_roles(void **state)
{
    commerce_jwt_t        jwt;
    commerce_jwt_opts_t   opts;
    commerce_jwk_set_t   *set;
    const char           *t;
    commerce_jwt_str_t    admin = { 5, (const unsigned char *) "admin" };
    commerce_jwt_str_t    adm = { 3, (const unsigned char *) "adm" };
    commerce_jwt_str_t    write = { 6, (const unsigned char *) "orders" };
    commerce_jwt_str_t    empty = { 0, (const unsigned char *) "" };

    (void) state;

    set = set_of("{\"keys\":[{\"kty\":\"oct\",\"k\":\"" K32 "\"}]}");
    commerce_jwt_opts_init(&opts);

    t = hs256("{\"alg\":\"HS256\"}", "{\"exp\":2000000000,"
              "\"roles\":[\"shopper\",7,\"admin\"],"
              "\"scope\":\"  read  orders admin-x\",\"n\":5}");

    assert_int_equal(commerce_jwt_verify(set, &opts, (const unsigned char *) t,
                                         strlen(t), NOW, &jwt),
                     COMMERCE_JWT_OK);

    assert_true(commerce_jwt_has_role(&jwt, "roles", &admin));
    assert_false(commerce_jwt_has_role(&jwt, "roles", &adm));
    assert_false(commerce_jwt_has_role(&jwt, "roles", &write));
    assert_true(commerce_jwt_has_role(&jwt, "scope", &write));
    assert_false(commerce_jwt_has_role(&jwt, "scope", &admin));
    assert_false(commerce_jwt_has_role(&jwt, "scope", &empty));
    assert_false(commerce_jwt_has_role(&jwt, "n", &admin));
    assert_false(commerce_jwt_has_role(&jwt, "none", &admin));
    assert_int_equal(jwt.sub.len, 0);

    commerce_jwt_free(&jwt);
    commerce_jwk_set_free(set);
}


static void
test_reasons(void **state)
{
    int  rc;

    (void) state;

    for (rc = COMMERCE_JWT_OK; rc <= COMMERCE_JWT_ERROR; rc++) {
        assert_non_null(commerce_jwt_reason(rc));
        assert_null(strpbrk(commerce_jwt_describe(rc), "\"\\"));
    }

    assert_string_equal(commerce_jwt_reason(COMMERCE_JWT_EXPIRED), "expired");
    assert_string_equal(commerce_jwt_reason(COMMERCE_JWT_ERROR),
                        "internal_error");
    assert_string_equal(commerce_jwt_reason(COMMERCE_JWT_ERROR + 1),
                        "internal_error");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_jwa),
        cmocka_unit_test(test_jwk_use),
        cmocka_unit_test(test_jwk_oct_algs),
        cmocka_unit_test(test_leeway),
        cmocka_unit_test(test_type),
        cmocka_unit_test(test_algs),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_reasons),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
