/*
 * commerce_jwt: a token's structure, its JOSE header and its signature
 * (see the header); its claims are checked in commerce_jwt_claims.c.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commerce_b64url.h"
#include "commerce_jwt.h"
#include "commerce_jwt_claims.h"


/* where the three segments of a compact token are */
typedef struct {
    size_t                  header_len;     /* from 0 */
    size_t                  payload;
    size_t                  payload_len;
    size_t                  sig;            /* signing input: 0..sig-1 */
    size_t                  sig_len;
    unsigned char          *sig_bytes;      /* decoded, in jwt->buf */
    size_t                  sig_bytes_len;
} commerce_jwt_parts_t;


static commerce_jwt_rc_e commerce_jwt_split(const unsigned char *token,
    size_t len, commerce_jwt_parts_t *parts);
static commerce_jwt_rc_e commerce_jwt_decode(commerce_jwt_t *jwt,
    const unsigned char *token, size_t len, commerce_jwt_parts_t *parts,
    unsigned char **header, size_t *header_len);
static commerce_jwt_rc_e commerce_jwt_header(commerce_jwt_t *jwt,
    const commerce_jwt_opts_t *opts, const unsigned char *p, size_t len);
static commerce_jwt_rc_e commerce_jwt_alg(commerce_jwt_t *jwt,
    const commerce_jwt_opts_t *opts);
static int commerce_jwt_type_is(const char *typ, size_t len,
    const commerce_jwt_str_t *want);
static commerce_jwt_rc_e commerce_jwt_signature(const commerce_jwk_set_t *set,
    commerce_jwt_t *jwt, const unsigned char *token,
    const commerce_jwt_parts_t *parts);


void
commerce_jwt_opts_init(commerce_jwt_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->algs = COMMERCE_JWA_ALL;
    opts->check_claims = 1;
    opts->require_exp = 1;
}


/*
 * The cheap checks first, each before anything is decoded that it would
 * spare: the length, the shape, the header; then the signature, and only
 * then the claims.
 */
commerce_jwt_rc_e
commerce_jwt_verify(const commerce_jwk_set_t *set,
    const commerce_jwt_opts_t *opts, const unsigned char *token, size_t len,
    int64_t now, commerce_jwt_t *jwt)
{
    size_t                 header_len;
    unsigned char         *header;
    commerce_jwt_rc_e      rc;
    commerce_jwt_parts_t   parts;

    memset(jwt, 0, sizeof(*jwt));
    jwt->alg = COMMERCE_JWA_NONE;

    if (len == 0) {
        return COMMERCE_JWT_MISSING;
    }

    if (len > COMMERCE_JWT_TOKEN_MAX) {
        return COMMERCE_JWT_TOO_LONG;
    }

    rc = commerce_jwt_split(token, len, &parts);

    if (rc == COMMERCE_JWT_OK) {
        rc = commerce_jwt_decode(jwt, token, len, &parts, &header,
                                 &header_len);
    }

    if (rc == COMMERCE_JWT_OK) {
        rc = commerce_jwt_header(jwt, opts, header, header_len);
    }

    if (rc == COMMERCE_JWT_OK) {
        rc = commerce_jwt_signature(set, jwt, token, &parts);
    }

    if (rc == COMMERCE_JWT_OK && opts->check_claims) {
        rc = commerce_jwt_claims(jwt, opts, now);
    }

    return rc;
}


void
commerce_jwt_free(commerce_jwt_t *jwt)
{
    json_decref(jwt->header);
    json_decref(jwt->claims);
    free(jwt->buf);
    memset(jwt, 0, sizeof(*jwt));
    jwt->alg = COMMERCE_JWA_NONE;
}


/*
 * header.payload.signature, each of base64url characters: no other dot,
 * no whitespace, no JSON serialization, no JWE (five segments).  The
 * header may not be empty; an empty signature is refused later, with the
 * reason its alg gives.
 */
static commerce_jwt_rc_e
commerce_jwt_split(const unsigned char *token, size_t len,
    commerce_jwt_parts_t *parts)
{
    size_t  i, dot[2], ndots;

    ndots = 0;

    for (i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (ndots == 2) {
                return COMMERCE_JWT_MALFORMED;
            }

            dot[ndots++] = i;
            continue;
        }

        if (!commerce_b64url_char(token[i])) {
            return COMMERCE_JWT_MALFORMED;
        }
    }

    if (ndots != 2 || dot[0] == 0) {
        return COMMERCE_JWT_MALFORMED;
    }

    memset(parts, 0, sizeof(*parts));
    parts->header_len = dot[0];
    parts->payload = dot[0] + 1;
    parts->payload_len = dot[1] - dot[0] - 1;
    parts->sig = dot[1];
    parts->sig_len = len - dot[1] - 1;

    return COMMERCE_JWT_OK;
}


/*
 * The three segments decoded into one buffer, jwt->buf: base64url makes
 * 3 bytes of 4 characters, so the token's length is room enough.
 */
static commerce_jwt_rc_e
commerce_jwt_decode(commerce_jwt_t *jwt, const unsigned char *token,
    size_t len, commerce_jwt_parts_t *parts, unsigned char **header,
    size_t *header_len)
{
    ssize_t         h, p, s;
    unsigned char  *b;

    b = malloc(len);
    if (b == NULL) {
        return COMMERCE_JWT_ERROR;
    }

    jwt->buf = b;

    h = commerce_b64url_decode(b, token, parts->header_len);
    if (h <= 0) {
        return COMMERCE_JWT_MALFORMED;
    }

    p = commerce_b64url_decode(b + h, token + parts->payload,
                               parts->payload_len);
    if (p < 0) {
        return COMMERCE_JWT_MALFORMED;
    }

    s = commerce_b64url_decode(b + h + p, token + parts->sig + 1,
                               parts->sig_len);
    if (s < 0) {
        return COMMERCE_JWT_MALFORMED;
    }

    *header = b;
    *header_len = (size_t) h;
    jwt->payload = b + h;
    jwt->payload_len = (size_t) p;
    parts->sig_bytes = b + h + p;
    parts->sig_bytes_len = (size_t) s;

    return COMMERCE_JWT_OK;
}


/*
 * One JSON object, no member twice (RFC 7515 section 4: a parser that
 * kept the last one would read another header than the signer wrote).
 */
static commerce_jwt_rc_e
commerce_jwt_header(commerce_jwt_t *jwt, const commerce_jwt_opts_t *opts,
    const unsigned char *p, size_t len)
{
    json_t             *v;
    commerce_jwt_rc_e   rc;

    jwt->header = json_loadb((const char *) p, len, JSON_REJECT_DUPLICATES,
                             NULL);

    if (!json_is_object(jwt->header)) {
        return COMMERCE_JWT_BAD_HEADER;
    }

    rc = commerce_jwt_alg(jwt, opts);
    if (rc != COMMERCE_JWT_OK) {
        return rc;
    }

    if (json_object_get(jwt->header, "crit") != NULL) {
        return COMMERCE_JWT_CRIT;
    }

    v = json_object_get(jwt->header, "kid");

    if (v != NULL && !json_is_string(v)) {
        return COMMERCE_JWT_BAD_HEADER;
    }

    v = json_object_get(jwt->header, "typ");

    if (v != NULL && !json_is_string(v)) {
        return COMMERCE_JWT_BAD_HEADER;
    }

    if (opts->type.len > 0
        && (v == NULL
            || !commerce_jwt_type_is(json_string_value(v),
                                     json_string_length(v), &opts->type)))
    {
        return COMMERCE_JWT_WRONG_TYPE;
    }

    return COMMERCE_JWT_OK;
}


static commerce_jwt_rc_e
commerce_jwt_alg(commerce_jwt_t *jwt, const commerce_jwt_opts_t *opts)
{
    json_t  *v;

    v = json_object_get(jwt->header, "alg");

    if (!json_is_string(v)) {
        return COMMERCE_JWT_BAD_HEADER;
    }

    if (strcasecmp(json_string_value(v), "none") == 0) {
        return COMMERCE_JWT_ALG_NONE;
    }

    jwt->alg = commerce_jwa_lookup(json_string_value(v),
                                   json_string_length(v));

    if (jwt->alg == COMMERCE_JWA_NONE) {
        return COMMERCE_JWT_ALG_UNSUPPORTED;
    }

    if (!(opts->algs & COMMERCE_JWA_BIT(jwt->alg))) {
        return COMMERCE_JWT_ALG_NOT_ALLOWED;
    }

    return COMMERCE_JWT_OK;
}


/* media types compare without case, "application/" may be left out */
static int
commerce_jwt_type_is(const char *typ, size_t len,
    const commerce_jwt_str_t *want)
{
    size_t       wlen;
    const char  *w;

    static const char  app[] = "application/";

    w = (const char *) want->data;
    wlen = want->len;

    if (len >= sizeof(app) - 1 && strncasecmp(typ, app, sizeof(app) - 1) == 0
        && memchr(typ + sizeof(app) - 1, '/', len - (sizeof(app) - 1)) == NULL)
    {
        typ += sizeof(app) - 1;
        len -= sizeof(app) - 1;
    }

    if (wlen >= sizeof(app) - 1 && strncasecmp(w, app, sizeof(app) - 1) == 0) {
        w += sizeof(app) - 1;
        wlen -= sizeof(app) - 1;
    }

    return len == wlen && strncasecmp(typ, w, len) == 0;
}


/*
 * The keys of the token's kid, or all keys when it names none; of those,
 * the ones pinned to its alg, each tried until one verifies.
 */
static commerce_jwt_rc_e
commerce_jwt_signature(const commerce_jwk_set_t *set, commerce_jwt_t *jwt,
    const unsigned char *token, const commerce_jwt_parts_t *parts)
{
    int                    rc;
    size_t                 i, kid_len, tried, named;
    json_t                *v;
    const char            *kid;
    commerce_jwk_t        *key;

    v = json_object_get(jwt->header, "kid");
    kid = json_string_value(v);
    kid_len = json_string_length(v);
    tried = 0;
    named = 0;

    for (i = 0; i < set->nkeys; i++) {
        key = &set->keys[i];

        if (kid != NULL) {
            if (key->kid == NULL || key->kid_len != kid_len
                || memcmp(key->kid, kid, kid_len) != 0)
            {
                continue;
            }

            named++;
        }

        if (!(key->algs & COMMERCE_JWA_BIT(jwt->alg))) {
            continue;
        }

        tried++;

        rc = commerce_jwa_verify(jwt->alg, key->pkey, &key->verify[jwt->alg],
                                 key->secret, key->secret_len, token,
                                 parts->sig, parts->sig_bytes,
                                 parts->sig_bytes_len);
        if (rc < 0) {
            return COMMERCE_JWT_ERROR;
        }

        if (rc == 1) {
            jwt->key = key;
            return COMMERCE_JWT_OK;
        }
    }

    if (kid != NULL && named == 0) {
        return COMMERCE_JWT_UNKNOWN_KID;
    }

    return tried == 0 ? COMMERCE_JWT_NO_KEY : COMMERCE_JWT_BAD_SIGNATURE;
}
