/*
 * commerce_jwk_key: the key material of each kty (see commerce_jwk.h for
 * what is refused).  Keys are built with OSSL_PARAM_BLD and
 * EVP_PKEY_fromdata, then put through OpenSSL's own checks: the public
 * check (RSA's n and e, an EC point on its curve and not at infinity)
 * and, for signing keys, the full one (the private part fits the public).
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "commerce_b64url.h"
#include "commerce_jwk_key.h"


/* the largest member decoded: n of an RSA key of 8192 bits */
#define COMMERCE_JWK_MEMBER_MAX  (COMMERCE_JWA_RSA_MAX_BITS / 8)

/* the shortest HMAC key taken whatever its alg: HS256's hash */
#define COMMERCE_JWK_OCT_MIN     32

/* RSA members, public first, as RFC 7518 section 6.3 names them */
#define COMMERCE_JWK_RSA_MEMBERS  8
#define COMMERCE_JWK_RSA_PUBLIC   2


typedef struct {
    const char           *crv;         /* as the JWK writes it */
    const char           *group;       /* as OpenSSL names it */
    commerce_jwa_alg_e    alg;
    size_t                size;        /* bytes of a coordinate */
} commerce_jwk_curve_t;


static const commerce_jwk_curve_t  commerce_jwk_curves[] = {
    { "P-256", "prime256v1", COMMERCE_JWA_ES256, 32 },
    { "P-384", "secp384r1", COMMERCE_JWA_ES384, 48 },
    { "P-521", "secp521r1", COMMERCE_JWA_ES512, 66 },
    { NULL, NULL, 0, 0 }
};


static const char  *commerce_jwk_rsa_members[COMMERCE_JWK_RSA_MEMBERS] = {
    "n", "e", "d", "p", "q", "dp", "dq", "qi"
};

static const char  *commerce_jwk_rsa_params[COMMERCE_JWK_RSA_MEMBERS] = {
    OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
    OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
    OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
    OSSL_PKEY_PARAM_RSA_COEFFICIENT1
};


static int commerce_jwk_rsa(const json_t *jwk, int mode,
    commerce_jwa_alg_e alg, commerce_jwk_t *key, char *err, size_t errlen);
static int commerce_jwk_rsa_bits(EVP_PKEY *pkey, char *err, size_t errlen);
static int commerce_jwk_ec(const json_t *jwk, int mode,
    commerce_jwa_alg_e alg, commerce_jwk_t *key, char *err, size_t errlen);
static EVP_PKEY *commerce_jwk_ec_build(const commerce_jwk_curve_t *c,
    const unsigned char *x, const unsigned char *y, const unsigned char *d,
    char *err, size_t errlen);
static const commerce_jwk_curve_t *commerce_jwk_curve(const json_t *jwk,
    commerce_jwa_alg_e alg, char *err, size_t errlen);
static int commerce_jwk_okp(const json_t *jwk, int mode,
    commerce_jwa_alg_e alg, commerce_jwk_t *key, char *err, size_t errlen);
static int commerce_jwk_oct(const json_t *jwk, commerce_jwa_alg_e alg,
    commerce_jwk_t *key, char *err, size_t errlen);
static int commerce_jwk_bytes(const json_t *jwk, const char *name,
    unsigned char **out, size_t *len, char *err, size_t errlen);
static int commerce_jwk_fixed(const json_t *jwk, const char *name,
    size_t size, int required, unsigned char **out, char *err,
    size_t errlen);
static void commerce_jwk_free_bytes(unsigned char *p, size_t len);
static EVP_PKEY *commerce_jwk_fromdata(const char *type, OSSL_PARAM_BLD *bld,
    int mode);
static int commerce_jwk_check(EVP_PKEY *pkey, int mode);
static int commerce_jwk_no_private(const json_t *jwk, char *err,
    size_t errlen);


int
commerce_jwk_material(const json_t *jwk, int mode, commerce_jwa_alg_e alg,
    commerce_jwk_t *key, char *err, size_t errlen)
{
    switch (key->kind) {

    case COMMERCE_JWA_KIND_RSA:
        return commerce_jwk_rsa(jwk, mode, alg, key, err, errlen);

    case COMMERCE_JWA_KIND_EC:
        return commerce_jwk_ec(jwk, mode, alg, key, err, errlen);

    case COMMERCE_JWA_KIND_OKP:
        return commerce_jwk_okp(jwk, mode, alg, key, err, errlen);

    default:
        return commerce_jwk_oct(jwk, alg, key, err, errlen);
    }
}


/*
 * n and e; to sign, d and the CRT members too (OpenSSL's full check needs
 * them, and every generator writes them).
 */
static int
commerce_jwk_rsa(const json_t *jwk, int mode, commerce_jwa_alg_e alg,
    commerce_jwk_t *key, char *err, size_t errlen)
{
    int              i, n, rc;
    size_t           len;
    BIGNUM          *bn[COMMERCE_JWK_RSA_MEMBERS];
    unsigned char   *p;
    OSSL_PARAM_BLD  *bld;

    if (mode == COMMERCE_JWK_VERIFY
        && commerce_jwk_no_private(jwk, err, errlen) != 0)
    {
        return -1;
    }

    n = mode == COMMERCE_JWK_SIGN ? COMMERCE_JWK_RSA_MEMBERS
                                  : COMMERCE_JWK_RSA_PUBLIC;
    memset(bn, 0, sizeof(bn));
    rc = -1;

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL) {
        commerce_jwk_err(err, errlen, "out of memory");
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (commerce_jwk_bytes(jwk, commerce_jwk_rsa_members[i], &p, &len,
                               err, errlen) <= 0)
        {
            goto done;
        }

        bn[i] = BN_bin2bn(p, (int) len, NULL);
        commerce_jwk_free_bytes(p, len);

        if (bn[i] == NULL
            || !OSSL_PARAM_BLD_push_BN(bld, commerce_jwk_rsa_params[i], bn[i]))
        {
            commerce_jwk_err(err, errlen, "out of memory");
            goto done;
        }
    }

    key->pkey = commerce_jwk_fromdata("RSA", bld, mode);

    if (key->pkey == NULL || !commerce_jwk_check(key->pkey, mode)) {
        commerce_jwk_err(err, errlen, "not a valid RSA %s key",
                         mode == COMMERCE_JWK_SIGN ? "private" : "public");
        goto done;
    }

    if (commerce_jwk_rsa_bits(key->pkey, err, errlen) != 0) {
        goto done;
    }

    key->algs = alg != COMMERCE_JWA_NONE ? COMMERCE_JWA_BIT(alg)
                                         : COMMERCE_JWA_RSA_ALL;
    rc = 0;

done:

    for (i = 0; i < COMMERCE_JWK_RSA_MEMBERS; i++) {
        BN_clear_free(bn[i]);
    }

    OSSL_PARAM_BLD_free(bld);

    return rc;
}


static int
commerce_jwk_rsa_bits(EVP_PKEY *pkey, char *err, size_t errlen)
{
    int  bits;

    bits = EVP_PKEY_get_bits(pkey);

    if (bits < COMMERCE_JWA_RSA_MIN_BITS || bits > COMMERCE_JWA_RSA_MAX_BITS) {
        commerce_jwk_err(err, errlen, "an RSA key of %d bits: %d to %d are "
                         "taken", bits, COMMERCE_JWA_RSA_MIN_BITS,
                         COMMERCE_JWA_RSA_MAX_BITS);
        return -1;
    }

    return 0;
}


static int
commerce_jwk_ec(const json_t *jwk, int mode, commerce_jwa_alg_e alg,
    commerce_jwk_t *key, char *err, size_t errlen)
{
    int                          rc;
    unsigned char               *x, *y, *d;
    const commerce_jwk_curve_t  *c;

    if (mode == COMMERCE_JWK_VERIFY
        && commerce_jwk_no_private(jwk, err, errlen) != 0)
    {
        return -1;
    }

    c = commerce_jwk_curve(jwk, alg, err, errlen);
    if (c == NULL) {
        return -1;
    }

    x = y = d = NULL;
    rc = -1;

    if (commerce_jwk_fixed(jwk, "x", c->size, 1, &x, err, errlen) == 0
        && commerce_jwk_fixed(jwk, "y", c->size, 1, &y, err, errlen) == 0
        && commerce_jwk_fixed(jwk, "d", c->size, mode == COMMERCE_JWK_SIGN,
                              &d, err, errlen) == 0)
    {
        key->pkey = commerce_jwk_ec_build(c, x, y, d, err, errlen);
        rc = key->pkey != NULL ? 0 : -1;
    }

    commerce_jwk_free_bytes(x, c->size);
    commerce_jwk_free_bytes(y, c->size);
    commerce_jwk_free_bytes(d, c->size);

    if (rc == 0 && !commerce_jwk_check(key->pkey, mode)) {
        commerce_jwk_err(err, errlen, "the point (x, y) is not on %s, or d "
                         "is not its private key", c->crv);
        rc = -1;
    }

    key->algs = COMMERCE_JWA_BIT(c->alg);

    return rc;
}


/* the point 04 || x || y, and the private key d when there is one */
static EVP_PKEY *
commerce_jwk_ec_build(const commerce_jwk_curve_t *c, const unsigned char *x,
    const unsigned char *y, const unsigned char *d, char *err, size_t errlen)
{
    BIGNUM          *priv;
    EVP_PKEY        *pkey;
    unsigned char    pub[1 + 2 * 66];
    OSSL_PARAM_BLD  *bld;

    pub[0] = 0x04;
    memcpy(pub + 1, x, c->size);
    memcpy(pub + 1 + c->size, y, c->size);

    priv = d != NULL ? BN_bin2bn(d, (int) c->size, NULL) : NULL;
    bld = OSSL_PARAM_BLD_new();
    pkey = NULL;

    if (bld != NULL && (d == NULL || priv != NULL)
        && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                           c->group, 0)
        && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                            pub, 1 + 2 * c->size)
        && (priv == NULL
            || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv)))
    {
        pkey = commerce_jwk_fromdata("EC", bld,
                                     d != NULL ? COMMERCE_JWK_SIGN
                                               : COMMERCE_JWK_VERIFY);
    }

    if (pkey == NULL) {
        commerce_jwk_err(err, errlen, "the point (x, y) is not on %s",
                         c->crv);
    }

    BN_clear_free(priv);
    OSSL_PARAM_BLD_free(bld);

    return pkey;
}


/* the curve of "crv", which the "alg", if any, must be the one of */
static const commerce_jwk_curve_t *
commerce_jwk_curve(const json_t *jwk, commerce_jwa_alg_e alg, char *err,
    size_t errlen)
{
    const char                  *crv;
    const commerce_jwk_curve_t  *c;

    crv = json_string_value(json_object_get(jwk, "crv"));
    if (crv == NULL) {
        commerce_jwk_err(err, errlen, "no \"crv\" string");
        return NULL;
    }

    for (c = commerce_jwk_curves; c->crv; c++) {
        if (strcmp(c->crv, crv) == 0) {
            break;
        }
    }

    if (c->crv == NULL) {
        commerce_jwk_err(err, errlen, "crv \"%.32s\" is not P-256, P-384 or "
                         "P-521", crv);
        return NULL;
    }

    if (alg != COMMERCE_JWA_NONE && alg != c->alg) {
        commerce_jwk_err(err, errlen, "alg %s does not fit crv %s (%s)",
                         commerce_jwa_get(alg)->name, c->crv,
                         commerce_jwa_get(c->alg)->name);
        return NULL;
    }

    return c;
}


/* Ed25519 (RFC 8037); X25519 and X448 are for key agreement */
static int
commerce_jwk_okp(const json_t *jwk, int mode, commerce_jwa_alg_e alg,
    commerce_jwk_t *key, char *err, size_t errlen)
{
    int             rc;
    size_t          len;
    const char     *crv;
    unsigned char  *x, *d, pub[32];

    if (mode == COMMERCE_JWK_VERIFY
        && commerce_jwk_no_private(jwk, err, errlen) != 0)
    {
        return -1;
    }

    crv = json_string_value(json_object_get(jwk, "crv"));

    if (crv == NULL || strcmp(crv, "Ed25519") != 0) {
        commerce_jwk_err(err, errlen, "crv \"%.32s\" is not Ed25519",
                         crv ? crv : "");
        return -1;
    }

    x = d = NULL;

    if (commerce_jwk_fixed(jwk, "x", 32, 1, &x, err, errlen) != 0
        || commerce_jwk_fixed(jwk, "d", 32, mode == COMMERCE_JWK_SIGN, &d,
                              err, errlen) != 0)
    {
        commerce_jwk_free_bytes(x, 32);
        return -1;
    }

    key->pkey = d != NULL
        ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, 32)
        : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32);

    len = sizeof(pub);
    rc = key->pkey != NULL
         && (d == NULL
             || (EVP_PKEY_get_raw_public_key(key->pkey, pub, &len) == 1
                 && memcmp(pub, x, 32) == 0));

    commerce_jwk_free_bytes(x, 32);
    commerce_jwk_free_bytes(d, 32);
    ERR_clear_error();

    if (!rc) {
        commerce_jwk_err(err, errlen, "not a valid Ed25519 key");
        return -1;
    }

    (void) alg;     /* commerce_jwk_alg() took only EdDSA for OKP */
    key->algs = COMMERCE_JWA_BIT(COMMERCE_JWA_EDDSA);

    return 0;
}


/* an HMAC secret, as long as the hash of each algorithm it may verify */
static int
commerce_jwk_oct(const json_t *jwk, commerce_jwa_alg_e alg,
    commerce_jwk_t *key, char *err, size_t errlen)
{
    int  a;

    if (commerce_jwk_bytes(jwk, "k", &key->secret, &key->secret_len, err,
                           errlen) <= 0)
    {
        return -1;
    }

    if (alg != COMMERCE_JWA_NONE) {
        if (key->secret_len < commerce_jwa_get(alg)->hash_len) {
            commerce_jwk_err(err, errlen, "an HMAC key of %zu bytes is "
                             "shorter than %s's hash (%zu)", key->secret_len,
                             commerce_jwa_get(alg)->name,
                             commerce_jwa_get(alg)->hash_len);
            return -1;
        }

        key->algs = COMMERCE_JWA_BIT(alg);
        return 0;
    }

    if (key->secret_len < COMMERCE_JWK_OCT_MIN) {
        commerce_jwk_err(err, errlen, "an HMAC key of %zu bytes is shorter "
                         "than HS256's hash (%d)", key->secret_len,
                         COMMERCE_JWK_OCT_MIN);
        return -1;
    }

    for (a = COMMERCE_JWA_HS256; a <= COMMERCE_JWA_HS512; a++) {
        if (key->secret_len >= commerce_jwa_get(a)->hash_len) {
            key->algs |= COMMERCE_JWA_BIT(a);
        }
    }

    return 0;
}


/*
 * A base64url member decoded into a new buffer: 1 with *out and *len, -1
 * with err when it is absent, not a string or not base64url.
 */
static int
commerce_jwk_bytes(const json_t *jwk, const char *name, unsigned char **out,
    size_t *len, char *err, size_t errlen)
{
    size_t          n;
    ssize_t         got;
    json_t         *v;
    unsigned char  *p;

    *out = NULL;

    v = json_object_get(jwk, name);
    if (v == NULL) {
        commerce_jwk_err(err, errlen, "no \"%s\"", name);
        return -1;
    }

    n = json_string_length(v);

    if (!json_is_string(v) || n == 0
        || n > COMMERCE_B64URL_ENCODED_LEN(COMMERCE_JWK_MEMBER_MAX))
    {
        commerce_jwk_err(err, errlen, "\"%s\" is not a base64url string of "
                         "1 to %d bytes", name, COMMERCE_JWK_MEMBER_MAX);
        return -1;
    }

    p = malloc(COMMERCE_B64URL_DECODED_MAX(n));
    if (p == NULL) {
        commerce_jwk_err(err, errlen, "out of memory");
        return -1;
    }

    got = commerce_b64url_decode(p, (const unsigned char *)
                                 json_string_value(v), n);
    if (got <= 0) {
        free(p);
        commerce_jwk_err(err, errlen, "\"%s\" is not base64url (RFC 7515: "
                         "no padding, no other characters)", name);
        return -1;
    }

    *out = p;
    *len = (size_t) got;

    return 1;
}


/*
 * A member of exactly size bytes (RFC 7518 section 6.2: EC coordinates
 * and keys are never shortened): 0 with *out (NULL when it is absent and
 * not required), -1 with err.
 */
static int
commerce_jwk_fixed(const json_t *jwk, const char *name, size_t size,
    int required, unsigned char **out, char *err, size_t errlen)
{
    size_t  len;

    *out = NULL;

    if (!required && json_object_get(jwk, name) == NULL) {
        return 0;
    }

    if (commerce_jwk_bytes(jwk, name, out, &len, err, errlen) <= 0) {
        return -1;
    }

    if (len != size) {
        commerce_jwk_free_bytes(*out, len);
        *out = NULL;
        commerce_jwk_err(err, errlen, "\"%s\" has %zu bytes, not %zu", name,
                         len, size);
        return -1;
    }

    return 0;
}


static void
commerce_jwk_free_bytes(unsigned char *p, size_t len)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, len);
        free(p);
    }
}


static EVP_PKEY *
commerce_jwk_fromdata(const char *type, OSSL_PARAM_BLD *bld, int mode)
{
    EVP_PKEY      *pkey;
    OSSL_PARAM    *params;
    EVP_PKEY_CTX  *ctx;

    pkey = NULL;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey,
                             mode == COMMERCE_JWK_SIGN ? EVP_PKEY_KEYPAIR
                                                       : EVP_PKEY_PUBLIC_KEY,
                             params) != 1)
    {
        pkey = NULL;
    }

    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    ERR_clear_error();

    return pkey;
}


/* OpenSSL's public check, or to sign the full one */
static int
commerce_jwk_check(EVP_PKEY *pkey, int mode)
{
    int            rc;
    EVP_PKEY_CTX  *ctx;

    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx == NULL) {
        ERR_clear_error();
        return 0;
    }

    rc = mode == COMMERCE_JWK_SIGN ? EVP_PKEY_check(ctx)
                                   : EVP_PKEY_public_check(ctx);

    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();

    return rc == 1;
}


static int
commerce_jwk_no_private(const json_t *jwk, char *err, size_t errlen)
{
    if (json_object_get(jwk, "d") != NULL) {
        commerce_jwk_err(err, errlen, "a private key (it has \"d\"): "
                         "verification takes the public key only");
        return -1;
    }

    return 0;
}
