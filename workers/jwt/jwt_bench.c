/*
 * commerce-jwt bench: what one verification costs, per algorithm, on this
 * machine: a key made for each (RSA of 2048 bits), a token signed with it
 * with claims of the usual size, the key read back through a JWK Set as
 * nginx reads it, then --iterations calls of commerce_jwt_verify() with
 * every claim checked, timed on the monotonic clock.  One line per
 * algorithm: name, microseconds per verification, verifications per
 * second of one core.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commerce_jwt.h"
#include "cw_log.h"
#include "jwt.h"


static int jwt_bench_one(commerce_jwa_alg_e alg, long long iterations);
static commerce_jwk_set_t *jwt_bench_set(const commerce_jwk_t *key,
    commerce_jwa_alg_e alg);
static char *jwt_bench_token(const commerce_jwk_t *key,
    commerce_jwa_alg_e alg);
static double jwt_bench_now(void);


int
jwt_bench(const cw_config_t *cfg)
{
    int          a;
    size_t       bad_len;
    unsigned     algs;
    const char  *list, *bad;

    list = cw_config_str(cfg, "alg");
    algs = COMMERCE_JWA_ALL;

    if (list[0] != '\0') {
        algs = commerce_jwa_parse_list(list, strlen(list), &bad, &bad_len);

        if (algs == 0) {
            cw_log(CW_LOG_ERROR, "--alg: \"%.*s\" is not an algorithm",
                   (int) bad_len, bad);
            return JWT_EXIT_CONFIG;
        }
    }

    printf("%-6s %12s %12s\n", "alg", "us/verify", "verify/s");

    for (a = 0; a < COMMERCE_JWA_COUNT; a++) {
        if ((algs & COMMERCE_JWA_BIT(a))
            && jwt_bench_one((commerce_jwa_alg_e) a,
                             cw_config_int(cfg, "iterations")) != 0)
        {
            return JWT_EXIT_FAIL;
        }
    }

    return JWT_EXIT_OK;
}


static int
jwt_bench_one(commerce_jwa_alg_e alg, long long iterations)
{
    int                   ok;
    char                 *token;
    size_t                len;
    double                t0, us;
    long long             i;
    commerce_jwk_t        key;
    commerce_jwt_t        jwt;
    commerce_jwt_opts_t   opts;
    commerce_jwk_set_t   *set;

    if (jwt_key_generate(alg, 2048, &key) != 0) {
        cw_log(CW_LOG_ERROR, "no %s key", commerce_jwa_get(alg)->name);
        return -1;
    }

    set = jwt_bench_set(&key, alg);
    token = jwt_bench_token(&key, alg);
    commerce_jwk_clear(&key);
    ok = set != NULL && token != NULL;

    commerce_jwt_opts_init(&opts);
    opts.issuer.data = (const unsigned char *) "https://issuer.test";
    opts.issuer.len = strlen((const char *) opts.issuer.data);

    len = token ? strlen(token) : 0;
    t0 = jwt_bench_now();

    for (i = 0; ok && i < iterations; i++) {
        ok = commerce_jwt_verify(set, &opts, (unsigned char *) token, len,
                                 (int64_t) time(NULL), &jwt)
             == COMMERCE_JWT_OK;
        commerce_jwt_free(&jwt);
    }

    us = (jwt_bench_now() - t0) * 1e6 / (double) iterations;

    free(token);
    commerce_jwk_set_free(set);

    if (!ok) {
        cw_log(CW_LOG_ERROR, "%s: the token did not verify",
               commerce_jwa_get(alg)->name);
        return -1;
    }

    printf("%-6s %12.1f %12.0f\n", commerce_jwa_get(alg)->name, us,
           1e6 / us);
    fflush(stdout);

    return 0;
}


/* the public key as a JWK Set's text, read as nginx reads a keys file */
static commerce_jwk_set_t *
jwt_bench_set(const commerce_jwk_t *key, commerce_jwa_alg_e alg)
{
    char                 err[512], *text;
    json_t              *jwk, *jwks;
    commerce_jwk_set_t  *set;

    jwk = jwt_key_export(key, "bench", alg, 0);
    jwks = jwk ? json_pack("{s:[o]}", "keys", jwk) : NULL;
    text = jwks ? json_dumps(jwks, JSON_COMPACT) : NULL;
    json_decref(jwks);
    set = commerce_jwk_set_new();

    if (text == NULL || set == NULL
        || commerce_jwk_set_add(set, text, strlen(text), "bench", err,
                                sizeof(err)) != 0)
    {
        cw_log(CW_LOG_ERROR, "bench key set: %s", text ? err : "no memory");
        commerce_jwk_set_free(set);
        set = NULL;
    }

    free(text);

    return set;
}


/* a token as an issuer gives a shopper: ~300 bytes of claims */
static char *
jwt_bench_token(const commerce_jwk_t *key, commerce_jwa_alg_e alg)
{
    char    *token, err[256];
    json_t  *header, *claims;

    header = json_pack("{s:s,s:s,s:s}", "alg", commerce_jwa_get(alg)->name,
                       "kid", "bench", "typ", "JWT");
    claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:[s,s],s:s}",
                       "iss", "https://issuer.test",
                       "sub", "user-00000000-0000-0000-0000-000000000001",
                       "aud", "commerce", "iat", (json_int_t) time(NULL),
                       "nbf", (json_int_t) time(NULL),
                       "exp", (json_int_t) time(NULL) + 3600,
                       "roles", "shopper", "orders", "scope", "read write");

    token = header && claims ? jwt_sign_token(key, alg, header, claims, err,
                                              sizeof(err))
                             : NULL;

    json_decref(header);
    json_decref(claims);

    return token;
}


static double
jwt_bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}
