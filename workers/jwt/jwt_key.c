/*
 * commerce-jwt's keys: read to sign (JWK or PEM), written as JWKs, made
 * new.  The JWK side is the core's own parser (commerce_jwk_parse in its
 * signing mode), so a key the tool signs with passes the same checks as
 * the keys nginx verifies with.
 */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "commerce_b64url.h"
#include "jwt.h"


/* OpenSSL's names of the curves of ES256, ES384, ES512 */
static const char  *jwt_key_groups[] = {
    "prime256v1", "secp384r1", "secp521r1"
};


static int jwt_key_json(const char *text, size_t len, commerce_jwk_t *key,
    char *err, size_t errlen);
static int jwt_key_pem(const char *text, size_t len, commerce_jwk_t *key,
    char *err, size_t errlen);
static int jwt_key_from_pkey(EVP_PKEY *pkey, commerce_jwk_t *key,
    char *err, size_t errlen);
static int jwt_key_export_pkey(json_t *jwk, const commerce_jwk_t *key,
    commerce_jwa_alg_e alg, int private);
static int jwt_set_b64(json_t *jwk, const char *name,
    const unsigned char *p, size_t len);
static int jwt_set_bn(json_t *jwk, const char *name, EVP_PKEY *pkey,
    const char *param, size_t pad);


int
jwt_key_load(const char *path, commerce_jwk_t *key, char *err,
    size_t errlen)
{
    int      rc;
    char    *text, why[256];
    size_t   len;

    memset(key, 0, sizeof(*key));

    text = commerce_jwk_read_file(path, COMMERCE_JWK_FILE_MAX, &len, err,
                                  errlen);
    if (text == NULL) {
        return -1;
    }

    rc = strstr(text, "-----BEGIN") != NULL
         ? jwt_key_pem(text, len, key, why, sizeof(why))
         : jwt_key_json(text, len, key, why, sizeof(why));

    OPENSSL_cleanse(text, len);
    free(text);

    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
    }

    return rc;
}


/* one JWK, or a JWK Set of one key */
static int
jwt_key_json(const char *text, size_t len, commerce_jwk_t *key, char *err,
    size_t errlen)
{
    int           rc;
    json_t       *root, *jwk, *keys;
    json_error_t  jerr;

    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "%d:%d: %s", jerr.line, jerr.column,
                 jerr.text);
        return -1;
    }

    jwk = root;
    keys = json_object_get(root, "keys");

    if (keys != NULL) {
        if (json_array_size(keys) != 1) {
            json_decref(root);
            snprintf(err, errlen, "a JWK Set of one key is taken, not of %zu",
                     json_array_size(keys));
            return -1;
        }

        jwk = json_array_get(keys, 0);
    }

    rc = commerce_jwk_parse(jwk, COMMERCE_JWK_SIGN, key, err, errlen);
    json_decref(root);

    if (rc == 0) {
        snprintf(err, errlen, "its \"use\" or \"key_ops\" is not for "
                 "signing");
    }

    return rc == 1 ? 0 : -1;
}


static int
jwt_key_pem(const char *text, size_t len, commerce_jwk_t *key, char *err,
    size_t errlen)
{
    BIO       *bio;
    EVP_PKEY  *pkey;

    bio = BIO_new_mem_buf(text, (int) len);
    pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                       : NULL;
    BIO_free(bio);
    ERR_clear_error();

    if (pkey == NULL) {
        snprintf(err, errlen, "not a PEM private key OpenSSL reads");
        return -1;
    }

    if (jwt_key_from_pkey(pkey, key, err, errlen) != 0) {
        EVP_PKEY_free(pkey);
        return -1;
    }

    return 0;
}


/* kind and algorithms of an OpenSSL key, as a JWK would give them */
static int
jwt_key_from_pkey(EVP_PKEY *pkey, commerce_jwk_t *key, char *err,
    size_t errlen)
{
    int   a, bits;
    char  group[64];

    bits = EVP_PKEY_get_bits(pkey);

    switch (EVP_PKEY_get_base_id(pkey)) {

    case EVP_PKEY_RSA:
        if (bits < COMMERCE_JWA_RSA_MIN_BITS
            || bits > COMMERCE_JWA_RSA_MAX_BITS)
        {
            snprintf(err, errlen, "an RSA key of %d bits", bits);
            return -1;
        }

        key->kind = COMMERCE_JWA_KIND_RSA;
        key->algs = COMMERCE_JWA_RSA_ALL;
        break;

    case EVP_PKEY_EC:
        group[0] = '\0';
        (void) EVP_PKEY_get_utf8_string_param(pkey,
                                              OSSL_PKEY_PARAM_GROUP_NAME,
                                              group, sizeof(group), NULL);

        for (a = 0; a < 3; a++) {
            if (strcmp(group, jwt_key_groups[a]) == 0) {
                key->algs = COMMERCE_JWA_BIT(COMMERCE_JWA_ES256 + a);
            }
        }

        if (key->algs == 0) {
            snprintf(err, errlen, "an EC key on %s: P-256, P-384 or P-521 "
                     "are taken", group);
            return -1;
        }

        key->kind = COMMERCE_JWA_KIND_EC;
        break;

    case EVP_PKEY_ED25519:
        key->kind = COMMERCE_JWA_KIND_OKP;
        key->algs = COMMERCE_JWA_BIT(COMMERCE_JWA_EDDSA);
        break;

    default:
        snprintf(err, errlen, "not an RSA, EC or Ed25519 key");
        return -1;
    }

    key->pkey = pkey;

    return 0;
}


commerce_jwa_alg_e
jwt_key_alg(const commerce_jwk_t *key, const char *name, char *err,
    size_t errlen)
{
    int                 a, n;
    commerce_jwa_alg_e  alg;

    if (name[0] != '\0') {
        alg = commerce_jwa_lookup(name, strlen(name));

        if (alg == COMMERCE_JWA_NONE || !(key->algs & COMMERCE_JWA_BIT(alg)))
        {
            snprintf(err, errlen, "the key does not sign with --alg %s",
                     name);
            return COMMERCE_JWA_NONE;
        }

        return alg;
    }

    alg = COMMERCE_JWA_NONE;
    n = 0;

    for (a = 0; a < COMMERCE_JWA_COUNT; a++) {
        if (key->algs & COMMERCE_JWA_BIT(a)) {
            alg = (commerce_jwa_alg_e) a;
            n++;
        }
    }

    if (n != 1) {
        snprintf(err, errlen, "the key signs with %d algorithms: give --alg",
                 n);
        return COMMERCE_JWA_NONE;
    }

    return alg;
}


json_t *
jwt_key_export(const commerce_jwk_t *key, const char *kid,
    commerce_jwa_alg_e alg, int private)
{
    int      rc;
    json_t  *jwk;

    static const char  *kty[] = { "RSA", "EC", "OKP", "oct" };

    jwk = json_object();
    if (jwk == NULL) {
        return NULL;
    }

    rc = json_object_set_new(jwk, "kty", json_string(kty[key->kind]));

    if (kid != NULL && kid[0] != '\0') {
        rc |= json_object_set_new(jwk, "kid", json_string(kid));
    }

    rc |= json_object_set_new(jwk, "use", json_string("sig"));
    rc |= json_object_set_new(jwk, "alg",
                              json_string(commerce_jwa_get(alg)->name));

    rc |= key->kind == COMMERCE_JWA_KIND_OCT
          ? jwt_set_b64(jwk, "k", key->secret, key->secret_len)
          : jwt_key_export_pkey(jwk, key, alg, private);

    if (rc != 0) {
        json_decref(jwk);
        return NULL;
    }

    return jwk;
}


/* the members RFC 7518 section 6 and RFC 8037 name for the key */
static int
jwt_key_export_pkey(json_t *jwk, const commerce_jwk_t *key,
    commerce_jwa_alg_e alg, int private)
{
    int             rc, i;
    size_t          half, len;
    unsigned char   raw[32];

    static const char  *rsa[] = { "n", "e", "d", "p", "q", "dp", "dq", "qi" };
    static const char  *params[] = {
        OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
        OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
        OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
        OSSL_PKEY_PARAM_RSA_COEFFICIENT1
    };

    rc = 0;

    if (key->kind == COMMERCE_JWA_KIND_RSA) {
        for (i = 0; i < (private ? 8 : 2); i++) {
            rc |= jwt_set_bn(jwk, rsa[i], key->pkey, params[i], 0);
        }

        return rc;
    }

    if (key->kind == COMMERCE_JWA_KIND_EC) {
        half = commerce_jwa_get(alg)->sig_len / 2;
        rc |= json_object_set_new(jwk, "crv",
                                  json_string(commerce_jwa_get(alg)->curve));
        rc |= jwt_set_bn(jwk, "x", key->pkey, OSSL_PKEY_PARAM_EC_PUB_X, half);
        rc |= jwt_set_bn(jwk, "y", key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, half);

        if (private) {
            rc |= jwt_set_bn(jwk, "d", key->pkey, OSSL_PKEY_PARAM_PRIV_KEY,
                             half);
        }

        return rc;
    }

    rc |= json_object_set_new(jwk, "crv", json_string("Ed25519"));

    len = sizeof(raw);
    rc |= EVP_PKEY_get_raw_public_key(key->pkey, raw, &len) != 1
          || jwt_set_b64(jwk, "x", raw, len) != 0;

    if (private) {
        len = sizeof(raw);
        rc |= EVP_PKEY_get_raw_private_key(key->pkey, raw, &len) != 1
              || jwt_set_b64(jwk, "d", raw, len) != 0;
        OPENSSL_cleanse(raw, sizeof(raw));
    }

    return rc;
}


static int
jwt_set_b64(json_t *jwk, const char *name, const unsigned char *p,
    size_t len)
{
    int     rc;
    char    buf[COMMERCE_B64URL_ENCODED_LEN(COMMERCE_JWA_SIG_MAX) + 1];
    size_t  n;

    if (COMMERCE_B64URL_ENCODED_LEN(len) >= sizeof(buf)) {
        return -1;
    }

    n = (size_t) ((char *) commerce_b64url_encode((unsigned char *) buf, p,
                                                  len) - buf);
    rc = json_object_set_new(jwk, name, json_stringn(buf, n));
    OPENSSL_cleanse(buf, sizeof(buf));

    return rc;
}


/* a number parameter, big-endian, pad bytes long (0: as short as it is) */
static int
jwt_set_bn(json_t *jwk, const char *name, EVP_PKEY *pkey, const char *param,
    size_t pad)
{
    int             rc, n;
    BIGNUM         *bn;
    unsigned char   buf[COMMERCE_JWA_SIG_MAX];

    bn = NULL;

    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) {
        ERR_clear_error();
        return -1;
    }

    n = pad > 0 ? BN_bn2binpad(bn, buf, (int) pad) : BN_bn2bin(bn, buf);
    BN_clear_free(bn);

    rc = n > 0 ? jwt_set_b64(jwk, name, buf, (size_t) n) : -1;
    OPENSSL_cleanse(buf, sizeof(buf));

    return rc;
}


int
jwt_key_generate(commerce_jwa_alg_e alg, int bits, commerce_jwk_t *key)
{
    const commerce_jwa_t  *a;

    memset(key, 0, sizeof(*key));
    a = commerce_jwa_get(alg);
    key->kind = a->kind;
    key->algs = COMMERCE_JWA_BIT(alg);

    switch (a->kind) {

    case COMMERCE_JWA_KIND_RSA:
        key->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) bits);
        break;

    case COMMERCE_JWA_KIND_EC:
        key->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
                                      jwt_key_groups[alg - COMMERCE_JWA_ES256]);
        break;

    case COMMERCE_JWA_KIND_OKP:
        key->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        break;

    default:
        key->secret_len = a->hash_len;
        key->secret = malloc(key->secret_len);

        if (key->secret == NULL
            || RAND_bytes(key->secret, (int) key->secret_len) != 1)
        {
            commerce_jwk_clear(key);
            return -1;
        }

        return 0;
    }

    ERR_clear_error();

    return key->pkey != NULL ? 0 : -1;
}
