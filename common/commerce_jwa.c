/*
 * commerce_jwa: JWS algorithms on OpenSSL 3 (see the header).
 *
 * Every failed OpenSSL call leaves its errors in the thread's queue; they
 * are cleared here, so that a bad token never leaves a stale error for the
 * next TLS call of an nginx worker to misread.
 */

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "commerce_jwa.h"


/* DER of an ECDSA signature on P-521: two INTEGERs of 67 bytes at most */
#define COMMERCE_JWA_DER_MAX  160


static const commerce_jwa_t  commerce_jwa_table[COMMERCE_JWA_COUNT] = {
    { "RS256", COMMERCE_JWA_KIND_RSA, "SHA256", 32, NULL, 0, 0, 0 },
    { "RS384", COMMERCE_JWA_KIND_RSA, "SHA384", 48, NULL, 0, 0, 0 },
    { "RS512", COMMERCE_JWA_KIND_RSA, "SHA512", 64, NULL, 0, 0, 0 },
    { "PS256", COMMERCE_JWA_KIND_RSA, "SHA256", 32, NULL, 0, 0, 1 },
    { "PS384", COMMERCE_JWA_KIND_RSA, "SHA384", 48, NULL, 0, 0, 1 },
    { "PS512", COMMERCE_JWA_KIND_RSA, "SHA512", 64, NULL, 0, 0, 1 },
    { "ES256", COMMERCE_JWA_KIND_EC, "SHA256", 32, "P-256", 256, 64, 0 },
    { "ES384", COMMERCE_JWA_KIND_EC, "SHA384", 48, "P-384", 384, 96, 0 },
    { "ES512", COMMERCE_JWA_KIND_EC, "SHA512", 64, "P-521", 521, 132, 0 },
    { "EdDSA", COMMERCE_JWA_KIND_OKP, NULL, 0, "Ed25519", 0, 64, 0 },
    { "HS256", COMMERCE_JWA_KIND_OCT, "SHA256", 32, NULL, 0, 32, 0 },
    { "HS384", COMMERCE_JWA_KIND_OCT, "SHA384", 48, NULL, 0, 48, 0 },
    { "HS512", COMMERCE_JWA_KIND_OCT, "SHA512", 64, NULL, 0, 64, 0 }
};


static int commerce_jwa_verify_pkey(const commerce_jwa_t *a, EVP_PKEY *pkey,
    EVP_MD_CTX **tpl, const unsigned char *input, size_t input_len,
    const unsigned char *sig, size_t sig_len);
static EVP_MD_CTX *commerce_jwa_verify_init(const commerce_jwa_t *a,
    EVP_PKEY *pkey);
static int commerce_jwa_ecdsa_der(const commerce_jwa_t *a,
    const unsigned char *sig, unsigned char *der, size_t *der_len);
static int commerce_jwa_pkey_fits(const commerce_jwa_t *a, EVP_PKEY *pkey);


const commerce_jwa_t *
commerce_jwa_get(commerce_jwa_alg_e alg)
{
    return &commerce_jwa_table[alg];
}


commerce_jwa_alg_e
commerce_jwa_lookup(const char *name, size_t len)
{
    int  i;

    for (i = 0; i < COMMERCE_JWA_COUNT; i++) {
        if (strlen(commerce_jwa_table[i].name) == len
            && memcmp(commerce_jwa_table[i].name, name, len) == 0)
        {
            return (commerce_jwa_alg_e) i;
        }
    }

    return COMMERCE_JWA_NONE;
}


unsigned
commerce_jwa_parse_list(const char *list, size_t len, const char **bad,
    size_t *bad_len)
{
    size_t              i, start;
    unsigned            mask;
    commerce_jwa_alg_e  alg;

    mask = 0;
    start = 0;

    for (i = 0; i <= len; i++) {
        if (i < len && list[i] != ',') {
            continue;
        }

        alg = commerce_jwa_lookup(list + start, i - start);

        if (alg == COMMERCE_JWA_NONE) {
            *bad = list + start;
            *bad_len = i - start;
            return 0;
        }

        mask |= COMMERCE_JWA_BIT(alg);
        start = i + 1;
    }

    return mask;
}


int
commerce_jwa_verify(commerce_jwa_alg_e alg, EVP_PKEY *pkey,
    EVP_MD_CTX **tpl, const unsigned char *secret, size_t secret_len,
    const unsigned char *input, size_t input_len,
    const unsigned char *sig, size_t sig_len)
{
    size_t                 der_len;
    unsigned char          mac[EVP_MAX_MD_SIZE];
    unsigned char          der[COMMERCE_JWA_DER_MAX];
    const commerce_jwa_t  *a;

    a = &commerce_jwa_table[alg];

    if (a->kind == COMMERCE_JWA_KIND_OCT) {
        if (sig_len != a->sig_len || secret_len < a->hash_len) {
            return 0;
        }

        if (commerce_jwa_hmac(alg, secret, secret_len, input, input_len, mac)
            != 0)
        {
            return -1;
        }

        return CRYPTO_memcmp(mac, sig, a->sig_len) == 0;
    }

    if (pkey == NULL || !commerce_jwa_pkey_fits(a, pkey)) {
        return 0;
    }

    if (a->kind == COMMERCE_JWA_KIND_RSA) {
        if (sig_len != (size_t) EVP_PKEY_get_size(pkey)) {
            return 0;
        }

    } else if (sig_len != a->sig_len) {
        return 0;
    }

    if (a->kind != COMMERCE_JWA_KIND_EC) {
        return commerce_jwa_verify_pkey(a, pkey, tpl, input, input_len, sig,
                                        sig_len);
    }

    if (commerce_jwa_ecdsa_der(a, sig, der, &der_len) != 0) {
        return -1;
    }

    return commerce_jwa_verify_pkey(a, pkey, tpl, input, input_len, der,
                                    der_len);
}


int
commerce_jwa_hmac(commerce_jwa_alg_e alg, const unsigned char *secret,
    size_t secret_len, const unsigned char *input, size_t input_len,
    unsigned char *out)
{
    unsigned int   n;
    const EVP_MD  *md;

    md = EVP_get_digestbyname(commerce_jwa_table[alg].digest);

    if (md == NULL
        || HMAC(md, secret, (int) secret_len, input, input_len, out, &n)
           == NULL)
    {
        ERR_clear_error();
        return -1;
    }

    return 0;
}


/*
 * 1, 0 or -1 as commerce_jwa_verify(): on a copy of *tpl (made first if
 * need be), or on a context of its own without tpl or a digest (EdDSA).
 */
static int
commerce_jwa_verify_pkey(const commerce_jwa_t *a, EVP_PKEY *pkey,
    EVP_MD_CTX **tpl, const unsigned char *input, size_t input_len,
    const unsigned char *sig, size_t sig_len)
{
    int          rc;
    EVP_MD_CTX  *md;

    if (tpl != NULL && a->digest != NULL) {
        if (*tpl == NULL) {
            *tpl = commerce_jwa_verify_init(a, pkey);
            if (*tpl == NULL) {
                return -1;
            }
        }

        md = EVP_MD_CTX_new();
        if (md != NULL && EVP_MD_CTX_copy_ex(md, *tpl) != 1) {
            EVP_MD_CTX_free(md);
            md = NULL;
        }

    } else {
        md = commerce_jwa_verify_init(a, pkey);
    }

    if (md == NULL) {
        ERR_clear_error();
        return -1;
    }

    /* a malformed signature is a bad one, whatever OpenSSL calls it */
    rc = EVP_DigestVerify(md, sig, sig_len, input, input_len) == 1;

    EVP_MD_CTX_free(md);
    ERR_clear_error();

    return rc;
}


/* a context ready for EVP_DigestVerify() with the key, or NULL */
static EVP_MD_CTX *
commerce_jwa_verify_init(const commerce_jwa_t *a, EVP_PKEY *pkey)
{
    EVP_MD_CTX    *md;
    EVP_PKEY_CTX  *pctx;

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NULL;
    }

    if (EVP_DigestVerifyInit_ex(md, &pctx, a->digest, NULL, NULL, pkey,
                                NULL) != 1
        || (a->pss
            && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
                                                    RSA_PSS_SALTLEN_DIGEST)
                   != 1)))
    {
        EVP_MD_CTX_free(md);
        ERR_clear_error();
        return NULL;
    }

    return md;
}


/*
 * R || S as the DER SEQUENCE of two INTEGERs that OpenSSL verifies.  Each
 * half is an unsigned big-endian number of the curve's size.
 */
static int
commerce_jwa_ecdsa_der(const commerce_jwa_t *a, const unsigned char *sig,
    unsigned char *der, size_t *der_len)
{
    int             len;
    size_t          half;
    BIGNUM         *r, *s;
    ECDSA_SIG      *es;
    unsigned char  *p;

    half = a->sig_len / 2;

    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, (int) half, NULL);
    s = BN_bin2bn(sig + half, (int) half, NULL);

    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
    {
        ECDSA_SIG_free(es);
        BN_free(r);
        BN_free(s);
        ERR_clear_error();
        return -1;
    }

    /* r and s are the signature's now */

    len = i2d_ECDSA_SIG(es, NULL);

    if (len <= 0 || len > COMMERCE_JWA_DER_MAX) {
        ECDSA_SIG_free(es);
        ERR_clear_error();
        return -1;
    }

    p = der;
    len = i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);

    if (len <= 0) {
        ERR_clear_error();
        return -1;
    }

    *der_len = (size_t) len;

    return 0;
}


/* the key's type is the algorithm's: no key verifies for another kind */
static int
commerce_jwa_pkey_fits(const commerce_jwa_t *a, EVP_PKEY *pkey)
{
    switch (a->kind) {

    case COMMERCE_JWA_KIND_RSA:
        return EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA;

    case COMMERCE_JWA_KIND_EC:
        return EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC
               && EVP_PKEY_get_bits(pkey) == a->curve_bits;

    case COMMERCE_JWA_KIND_OKP:
        return EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519;

    default:
        return 0;
    }
}
