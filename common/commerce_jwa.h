/*
 * commerce_jwa: the JWS algorithms of the JWT core (RFC 7518 section 3,
 * RFC 8037 for EdDSA), their names and sizes, and the verification of one
 * signature with one key on OpenSSL 3's EVP interface.  Pure C, no nginx
 * or worker types.
 *
 * An algorithm is a number (commerce_jwa_alg_e), a set of them a bit mask
 * (COMMERCE_JWA_BIT(alg)): a key carries the set it may verify, a
 * configuration the set it accepts.  "none" is not an algorithm here.
 *
 * Signatures are as JWS puts them: RSA (PKCS #1 v1.5 and PSS, salt as long
 * as the hash, MGF1 with the same hash) of exactly the modulus's size;
 * ECDSA as R || S, each exactly the curve's size (RFC 7518 section 3.4,
 * not DER); Ed25519 of 64 bytes; HMAC of exactly the hash's size, compared
 * in constant time.  Any other length is a bad signature.
 *
 * Use:
 *
 *     alg = commerce_jwa_lookup(name, len);       COMMERCE_JWA_NONE if none
 *     rc = commerce_jwa_verify(alg, pkey, &key->verify[alg], secret,
 *                              secret_len, input, input_len, sig, sig_len);
 */

#ifndef COMMERCE_JWA_H
#define COMMERCE_JWA_H


#include <stddef.h>

#include <openssl/evp.h>


typedef enum {
    COMMERCE_JWA_RS256 = 0,
    COMMERCE_JWA_RS384,
    COMMERCE_JWA_RS512,
    COMMERCE_JWA_PS256,
    COMMERCE_JWA_PS384,
    COMMERCE_JWA_PS512,
    COMMERCE_JWA_ES256,
    COMMERCE_JWA_ES384,
    COMMERCE_JWA_ES512,
    COMMERCE_JWA_EDDSA,
    COMMERCE_JWA_HS256,
    COMMERCE_JWA_HS384,
    COMMERCE_JWA_HS512,
    COMMERCE_JWA_COUNT,
    COMMERCE_JWA_NONE = COMMERCE_JWA_COUNT   /* not one of them */
} commerce_jwa_alg_e;


/* what kind of key an algorithm takes */
typedef enum {
    COMMERCE_JWA_KIND_RSA = 0,               /* RS*, PS*: kty RSA */
    COMMERCE_JWA_KIND_EC,                    /* ES*: kty EC */
    COMMERCE_JWA_KIND_OKP,                   /* EdDSA: kty OKP */
    COMMERCE_JWA_KIND_OCT                    /* HS*: kty oct */
} commerce_jwa_kind_e;


#define COMMERCE_JWA_BIT(alg)   (1u << (alg))
#define COMMERCE_JWA_ALL        (COMMERCE_JWA_BIT(COMMERCE_JWA_COUNT) - 1)

#define COMMERCE_JWA_RSA_ALL    (COMMERCE_JWA_BIT(COMMERCE_JWA_RS256)        \
                                 | COMMERCE_JWA_BIT(COMMERCE_JWA_RS384)      \
                                 | COMMERCE_JWA_BIT(COMMERCE_JWA_RS512)      \
                                 | COMMERCE_JWA_BIT(COMMERCE_JWA_PS256)      \
                                 | COMMERCE_JWA_BIT(COMMERCE_JWA_PS384)      \
                                 | COMMERCE_JWA_BIT(COMMERCE_JWA_PS512))

/* the longest signature: RSA of 8192 bits */
#define COMMERCE_JWA_SIG_MAX    1024

/* the smallest and largest RSA keys taken */
#define COMMERCE_JWA_RSA_MIN_BITS  2048
#define COMMERCE_JWA_RSA_MAX_BITS  8192


typedef struct {
    const char            *name;       /* "RS256" */
    commerce_jwa_kind_e    kind;
    const char            *digest;     /* "SHA256"; NULL for EdDSA */
    size_t                 hash_len;   /* bytes of the digest; HMAC's key
                                          must have as many at least */
    const char            *curve;      /* EC and OKP: the JWK's "crv" */
    int                    curve_bits; /* EC: EVP_PKEY_get_bits() of keys */
    size_t                 sig_len;    /* EC, OKP, HMAC; 0: the key's */
    int                    pss;
} commerce_jwa_t;


/* the table entry of alg (alg < COMMERCE_JWA_COUNT) */
const commerce_jwa_t *commerce_jwa_get(commerce_jwa_alg_e alg);

/* the algorithm named exactly so, else COMMERCE_JWA_NONE */
commerce_jwa_alg_e commerce_jwa_lookup(const char *name, size_t len);

/*
 * A comma-separated list of names ("RS256,ES256") as a mask; 0 with the
 * offending name in *bad (pointing into list) if one is not an algorithm.
 */
unsigned commerce_jwa_parse_list(const char *list, size_t len,
    const char **bad, size_t *bad_len);

/*
 * 1 when sig is alg's signature of input with the key (pkey for RSA, EC
 * and OKP, secret for HMAC), 0 when it is not, -1 when OpenSSL failed.
 *
 * tpl (or NULL) keeps the key's verification context for alg, set up on
 * first use (RSA and ECDSA: the digest fetched, the key's provider
 * context made, PSS parameters set) and copied for each signature, which
 * saves a fifth of an RS256 verification; the caller frees it with
 * EVP_MD_CTX_free() with the key.
 */
int commerce_jwa_verify(commerce_jwa_alg_e alg, EVP_PKEY *pkey,
    EVP_MD_CTX **tpl, const unsigned char *secret, size_t secret_len,
    const unsigned char *input, size_t input_len,
    const unsigned char *sig, size_t sig_len);

/*
 * The HMAC of input: writes hash_len bytes at out (room for
 * EVP_MAX_MD_SIZE); 0, or -1 when OpenSSL failed.  The tool signs with it.
 */
int commerce_jwa_hmac(commerce_jwa_alg_e alg, const unsigned char *secret,
    size_t secret_len, const unsigned char *input, size_t input_len,
    unsigned char *out);


#endif /* COMMERCE_JWA_H */
