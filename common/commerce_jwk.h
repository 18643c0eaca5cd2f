/*
 * commerce_jwk: JSON Web Keys (RFC 7517, RFC 7518 section 6, RFC 8037) as
 * the JWT core uses them: each key checked when it is read, and pinned to
 * the algorithms it may verify.  Pure C on OpenSSL 3 (keys built from
 * parameters, EVP_PKEY_fromdata) and jansson; no nginx or worker types.
 *
 * What a key may verify (key->algs):
 *
 *   kty RSA  its "alg" if given (RS* or PS*), else RS256..PS512; 2048 to
 *            8192 bits, e and n as OpenSSL's public check wants them
 *   kty EC   the one algorithm of its curve: P-256 ES256, P-384 ES384,
 *            P-521 ES512 (an "alg" must be that one); x and y of exactly
 *            the curve's size, the point on the curve
 *   kty OKP  crv Ed25519: EdDSA; x of 32 bytes
 *   kty oct  its "alg" if given (HS*), else every HS* whose hash is no
 *            longer than the key; a key shorter than its hash, or than
 *            32 bytes, is refused
 *
 * A key with "use" other than "sig", or "key_ops" without "verify" (or,
 * for signing, "sign"), is not for signatures: skipped, not an error.
 * Anything else that is not right is an error with the key's number and
 * kid: an unknown kty, crv or alg, an alg that does not fit the key, bad
 * base64url, a weak or invalid key; and, in a set of verification keys,
 * a private key (an RSA, EC or OKP key with "d"): the edge needs public
 * keys only.
 *
 * Use:
 *
 *     set = commerce_jwk_set_new();
 *     if (commerce_jwk_set_add_file(set, path, err, sizeof(err)) != 0) {
 *         ... err says which file, key and why ...
 *     }
 *     ... commerce_jwt_verify(set, ...) ...
 *     commerce_jwk_set_free(set);
 *
 *     rc = commerce_jwk_parse(jwk, COMMERCE_JWK_SIGN, &key, err, len);
 *     ... a key to sign with (commerce-jwt sign), then
 *     commerce_jwk_clear(&key);
 */

#ifndef COMMERCE_JWK_H
#define COMMERCE_JWK_H


#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "commerce_jwa.h"


/* keys of one set, all files together */
#define COMMERCE_JWK_MAX_KEYS    64

/* the largest keys file read */
#define COMMERCE_JWK_FILE_MAX    (1024 * 1024)

/* the longest kid */
#define COMMERCE_JWK_KID_MAX     256

/* commerce_jwk_parse(): for verifying (no private part) or signing */
#define COMMERCE_JWK_VERIFY      0
#define COMMERCE_JWK_SIGN        1


typedef struct {
    char                  *kid;          /* NUL-terminated; NULL: none */
    size_t                 kid_len;
    commerce_jwa_kind_e    kind;
    unsigned               algs;         /* COMMERCE_JWA_BIT()s */
    EVP_PKEY              *pkey;         /* RSA, EC, OKP */
    unsigned char         *secret;       /* oct */
    size_t                 secret_len;
    EVP_MD_CTX            *verify[COMMERCE_JWA_COUNT];  /* per alg, made
                                            by commerce_jwa_verify() */
} commerce_jwk_t;


typedef struct {
    commerce_jwk_t        *keys;
    size_t                 nkeys;
    size_t                 skipped;      /* keys not for signatures */
} commerce_jwk_set_t;


/*
 * One JWK object: 1 with *key filled, 0 when it is not for signatures
 * (skipped), -1 with the reason in err.
 */
int commerce_jwk_parse(const json_t *jwk, int mode, commerce_jwk_t *key,
    char *err, size_t errlen);

/* frees what a parsed key holds */
void commerce_jwk_clear(commerce_jwk_t *key);

/* an empty set, or NULL when out of memory */
commerce_jwk_set_t *commerce_jwk_set_new(void);
void commerce_jwk_set_free(commerce_jwk_set_t *set);

/*
 * Adds the verification keys of a JWK Set ({"keys":[...]}), text of len
 * bytes that messages call name: 0, or -1 with the reason in err (the
 * set is then as it was).  A set that gives no key for signatures is an
 * error, and so is a kid that two keys of the same kind share.
 */
int commerce_jwk_set_add(commerce_jwk_set_t *set, const char *text,
    size_t len, const char *name, char *err, size_t errlen);

/* the same with the text of a file (at most COMMERCE_JWK_FILE_MAX) */
int commerce_jwk_set_add_file(commerce_jwk_set_t *set, const char *path,
    char *err, size_t errlen);

/*
 * A whole file in a new NUL-terminated buffer (free() it), at most max
 * bytes: NULL with the reason in err.
 */
char *commerce_jwk_read_file(const char *path, size_t max, size_t *len,
    char *err, size_t errlen);


#endif /* COMMERCE_JWK_H */
