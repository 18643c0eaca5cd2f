/*
 * commerce-jwt sign: a token for tests and for the stack, signed with a
 * private key file.  The header is {"alg", "kid"} plus --header's
 * members; the claims are --claims (or stdin), with iat and exp added by
 * --ttl when they lack them.  ES signatures are written as JOSE wants
 * them, R || S of the curve's size (OpenSSL makes DER).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "commerce_b64url.h"
#include "cw_log.h"
#include "jwt.h"


/* the largest claims read from stdin */
#define JWT_CLAIMS_MAX  65536


static json_t *jwt_sign_claims(const cw_config_t *cfg);
static json_t *jwt_sign_header(const cw_config_t *cfg,
    const commerce_jwk_t *key, commerce_jwa_alg_e alg);
static int jwt_sign_bytes(const commerce_jwk_t *key, commerce_jwa_alg_e alg,
    const unsigned char *input, size_t len, unsigned char *sig,
    size_t *sig_len);
static int jwt_sign_raw_ecdsa(const commerce_jwa_t *a, unsigned char *sig,
    size_t *sig_len);


int
jwt_sign(const cw_config_t *cfg)
{
    int                 status;
    char                err[512], *token;
    json_t             *header, *claims;
    commerce_jwk_t      key;
    commerce_jwa_alg_e  alg;

    if (jwt_key_load(cw_config_str(cfg, "key"), &key, err, sizeof(err))
        != 0)
    {
        cw_log(CW_LOG_ERROR, "--key: %s", err);
        return JWT_EXIT_CONFIG;
    }

    status = JWT_EXIT_CONFIG;
    header = claims = NULL;
    token = NULL;

    alg = jwt_key_alg(&key, cw_config_str(cfg, "alg"), err, sizeof(err));

    if (alg == COMMERCE_JWA_NONE) {
        cw_log(CW_LOG_ERROR, "%s", err);

    } else if ((claims = jwt_sign_claims(cfg)) != NULL
               && (header = jwt_sign_header(cfg, &key, alg)) != NULL)
    {
        token = jwt_sign_token(&key, alg, header, claims, err, sizeof(err));

        if (token == NULL) {
            cw_log(CW_LOG_ERROR, "signing failed: %s", err);
            status = JWT_EXIT_FAIL;

        } else {
            printf("%s\n", token);
            status = fflush(stdout) == 0 ? JWT_EXIT_OK : JWT_EXIT_FAIL;
        }
    }

    free(token);
    json_decref(header);
    json_decref(claims);
    commerce_jwk_clear(&key);

    return status;
}


/* --claims or stdin, one JSON object, with --ttl's iat and exp */
static json_t *
jwt_sign_claims(const cw_config_t *cfg)
{
    long long     ttl;
    json_t       *claims;
    const char   *text;
    json_error_t  jerr;

    text = cw_config_str(cfg, "claims");

    claims = text[0] != '\0'
             ? json_loads(text, JSON_REJECT_DUPLICATES, &jerr)
             : json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);

    if (!json_is_object(claims)) {
        cw_log(CW_LOG_ERROR, "the claims (%s) are not a JSON object: %s",
               text[0] != '\0' ? "--claims" : "stdin",
               claims ? "another value" : jerr.text);
        json_decref(claims);
        return NULL;
    }

    ttl = cw_config_duration_ms(cfg, "ttl") / 1000;

    if (ttl > 0) {
        if (json_object_get(claims, "iat") == NULL) {
            json_object_set_new(claims, "iat", json_integer(time(NULL)));
        }

        if (json_object_get(claims, "exp") == NULL) {
            json_object_set_new(claims, "exp",
                                json_integer(time(NULL) + ttl));
        }
    }

    return claims;
}


static json_t *
jwt_sign_header(const cw_config_t *cfg, const commerce_jwk_t *key,
    commerce_jwa_alg_e alg)
{
    json_t       *header, *more;
    const char   *kid, *text;
    json_error_t  jerr;

    header = json_object();
    json_object_set_new(header, "alg",
                        json_string(commerce_jwa_get(alg)->name));

    kid = cw_config_str(cfg, "kid");
    kid = kid[0] != '\0' ? kid : key->kid;

    if (kid != NULL) {
        json_object_set_new(header, "kid", json_string(kid));
    }

    text = cw_config_str(cfg, "header");

    if (text[0] != '\0') {
        more = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

        if (!json_is_object(more)) {
            cw_log(CW_LOG_ERROR, "--header is not a JSON object: %s",
                   more ? "another value" : jerr.text);
            json_decref(more);
            json_decref(header);
            return NULL;
        }

        json_object_update(header, more);
        json_decref(more);
    }

    return header;
}


char *
jwt_sign_token(const commerce_jwk_t *key, commerce_jwa_alg_e alg,
    const json_t *header, const json_t *claims, char *err, size_t errlen)
{
    char           *h, *c;
    size_t          hl, cl, n, sig_len;
    unsigned char  *buf, *p, sig[COMMERCE_JWA_SIG_MAX];

    h = json_dumps(header, JSON_COMPACT);
    c = json_dumps(claims, JSON_COMPACT);
    hl = h ? strlen(h) : 0;
    cl = c ? strlen(c) : 0;

    n = COMMERCE_B64URL_ENCODED_LEN(hl) + COMMERCE_B64URL_ENCODED_LEN(cl)
        + COMMERCE_B64URL_ENCODED_LEN(sizeof(sig)) + 3;
    buf = (h && c) ? malloc(n) : NULL;

    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        free(h);
        free(c);
        return NULL;
    }

    p = commerce_b64url_encode(buf, (unsigned char *) h, hl);
    *p++ = '.';
    p = commerce_b64url_encode(p, (unsigned char *) c, cl);
    free(h);
    free(c);

    if (jwt_sign_bytes(key, alg, buf, (size_t) (p - buf), sig, &sig_len)
        != 0)
    {
        snprintf(err, errlen, "OpenSSL could not sign with %s",
                 commerce_jwa_get(alg)->name);
        free(buf);
        return NULL;
    }

    *p++ = '.';
    p = commerce_b64url_encode(p, sig, sig_len);
    *p = '\0';

    return (char *) buf;
}


/* the JWS signature of input, at most COMMERCE_JWA_SIG_MAX bytes */
static int
jwt_sign_bytes(const commerce_jwk_t *key, commerce_jwa_alg_e alg,
    const unsigned char *input, size_t len, unsigned char *sig,
    size_t *sig_len)
{
    int                    rc;
    EVP_MD_CTX            *md;
    EVP_PKEY_CTX          *pctx;
    const commerce_jwa_t  *a;

    a = commerce_jwa_get(alg);

    if (a->kind == COMMERCE_JWA_KIND_OCT) {
        *sig_len = a->hash_len;
        return commerce_jwa_hmac(alg, key->secret, key->secret_len, input,
                                 len, sig);
    }

    md = EVP_MD_CTX_new();
    *sig_len = COMMERCE_JWA_SIG_MAX;

    rc = md != NULL
         && EVP_DigestSignInit_ex(md, &pctx, a->digest, NULL, NULL,
                                  key->pkey, NULL) == 1
         && (!a->pss
             || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING)
                 == 1
                 && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
                                                     RSA_PSS_SALTLEN_DIGEST)
                    == 1))
         && EVP_DigestSign(md, sig, sig_len, input, len) == 1;

    EVP_MD_CTX_free(md);
    ERR_clear_error();

    if (!rc) {
        return -1;
    }

    return a->kind == COMMERCE_JWA_KIND_EC ? jwt_sign_raw_ecdsa(a, sig,
                                                                sig_len)
                                           : 0;
}


/* OpenSSL's DER ECDSA-Sig-Value as R || S, in place */
static int
jwt_sign_raw_ecdsa(const commerce_jwa_t *a, unsigned char *sig,
    size_t *sig_len)
{
    int                   ok;
    size_t                half;
    ECDSA_SIG            *es;
    const BIGNUM         *r, *s;
    const unsigned char  *p;
    unsigned char         der[COMMERCE_JWA_SIG_MAX];

    memcpy(der, sig, *sig_len);
    p = der;
    es = d2i_ECDSA_SIG(NULL, &p, (long) *sig_len);

    if (es == NULL) {
        ERR_clear_error();
        return -1;
    }

    ECDSA_SIG_get0(es, &r, &s);
    half = a->sig_len / 2;

    ok = BN_bn2binpad(r, sig, (int) half) == (int) half
         && BN_bn2binpad(s, sig + half, (int) half) == (int) half;

    ECDSA_SIG_free(es);
    *sig_len = a->sig_len;

    return ok ? 0 : -1;
}
