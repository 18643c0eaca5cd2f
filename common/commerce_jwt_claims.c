/*
 * commerce_jwt_claims: exp, nbf, iss, aud and sub of a verified token,
 * roles, and the names of the reasons (see commerce_jwt.h).
 *
 * Each claim that is there must have its registered type (NumericDate a
 * JSON number, iss and sub strings, aud a string or an array of strings):
 * a claim of another type is malformed_claims, not a claim left out.
 * Times compare as doubles: a NumericDate may have a fraction.
 */

#include <string.h>

#include "commerce_jwt_claims.h"


typedef struct {
    const char  *reason;
    const char  *text;
} commerce_jwt_reason_t;


/* in the order of commerce_jwt_rc_e */
static const commerce_jwt_reason_t  commerce_jwt_reasons[] = {
    { "ok", "the token is valid" },
    { "missing_token", "no bearer token" },
    { "token_too_long", "the token is too long" },
    { "malformed_token", "the token is not a compact JWS" },
    { "malformed_header", "the token header is not valid" },
    { "alg_none", "unsigned tokens are not accepted" },
    { "alg_unsupported", "the token algorithm is not supported" },
    { "alg_not_allowed", "the token algorithm is not accepted" },
    { "crit_unsupported", "the token has critical header parameters" },
    { "wrong_type", "the token type is not accepted" },
    { "unknown_kid", "no key has the token key id" },
    { "no_key", "no key is for the token algorithm" },
    { "bad_signature", "the token signature is not valid" },
    { "malformed_claims", "the token claims are not valid" },
    { "missing_exp", "the token has no expiry" },
    { "expired", "the token has expired" },
    { "not_yet_valid", "the token is not valid yet" },
    { "wrong_issuer", "the token issuer is not accepted" },
    { "wrong_audience", "the token audience is not accepted" },
    { "missing_role", "the token lacks a required role" },
    { "internal_error", "the token could not be verified" }
};


static commerce_jwt_rc_e commerce_jwt_times(const json_t *claims,
    const commerce_jwt_opts_t *opts, int64_t now);
static int commerce_jwt_number(const json_t *claims, const char *name,
    double *v);
static commerce_jwt_rc_e commerce_jwt_audience(const json_t *aud,
    const commerce_jwt_opts_t *opts);
static int commerce_jwt_str_is(const json_t *v, const commerce_jwt_str_t *s);


commerce_jwt_rc_e
commerce_jwt_claims(commerce_jwt_t *jwt, const commerce_jwt_opts_t *opts,
    int64_t now)
{
    json_t             *iss, *sub, *aud;
    commerce_jwt_rc_e   rc;

    jwt->claims = json_loadb((const char *) jwt->payload, jwt->payload_len,
                             JSON_REJECT_DUPLICATES, NULL);

    if (!json_is_object(jwt->claims)) {
        return COMMERCE_JWT_BAD_CLAIMS;
    }

    iss = json_object_get(jwt->claims, "iss");
    sub = json_object_get(jwt->claims, "sub");
    aud = json_object_get(jwt->claims, "aud");

    if ((iss != NULL && !json_is_string(iss))
        || (sub != NULL && !json_is_string(sub))
        || (aud != NULL && !json_is_string(aud) && !json_is_array(aud)))
    {
        return COMMERCE_JWT_BAD_CLAIMS;
    }

    rc = commerce_jwt_times(jwt->claims, opts, now);
    if (rc != COMMERCE_JWT_OK) {
        return rc;
    }

    if (opts->issuer.len > 0 && !commerce_jwt_str_is(iss, &opts->issuer)) {
        return COMMERCE_JWT_WRONG_ISSUER;
    }

    rc = commerce_jwt_audience(aud, opts);
    if (rc != COMMERCE_JWT_OK) {
        return rc;
    }

    if (sub != NULL) {
        jwt->sub.data = (const unsigned char *) json_string_value(sub);
        jwt->sub.len = json_string_length(sub);
    }

    return COMMERCE_JWT_OK;
}


/* valid from nbf - leeway until before exp + leeway (RFC 7519 4.1.4-5) */
static commerce_jwt_rc_e
commerce_jwt_times(const json_t *claims, const commerce_jwt_opts_t *opts,
    int64_t now)
{
    int     has_exp, has_nbf, has_iat;
    double  exp, nbf, iat, t;

    exp = nbf = iat = 0;

    has_exp = commerce_jwt_number(claims, "exp", &exp);
    has_nbf = commerce_jwt_number(claims, "nbf", &nbf);
    has_iat = commerce_jwt_number(claims, "iat", &iat);

    if (has_exp < 0 || has_nbf < 0 || has_iat < 0) {
        return COMMERCE_JWT_BAD_CLAIMS;
    }

    if (!has_exp && opts->require_exp) {
        return COMMERCE_JWT_MISSING_EXP;
    }

    t = (double) now;

    if (has_exp && t >= exp + (double) opts->leeway) {
        return COMMERCE_JWT_EXPIRED;
    }

    if (has_nbf && t + (double) opts->leeway < nbf) {
        return COMMERCE_JWT_NOT_YET_VALID;
    }

    return COMMERCE_JWT_OK;
}


/* 1 with *v, 0 when absent, -1 when not a number */
static int
commerce_jwt_number(const json_t *claims, const char *name, double *v)
{
    json_t  *n;

    n = json_object_get(claims, name);
    if (n == NULL) {
        return 0;
    }

    if (!json_is_number(n)) {
        return -1;
    }

    *v = json_number_value(n);

    return 1;
}


/* aud holds one of the audiences configured (RFC 7519 section 4.1.3) */
static commerce_jwt_rc_e
commerce_jwt_audience(const json_t *aud, const commerce_jwt_opts_t *opts)
{
    size_t   i, a;
    json_t  *v;

    json_array_foreach(aud, i, v) {
        if (!json_is_string(v)) {
            return COMMERCE_JWT_BAD_CLAIMS;
        }
    }

    if (opts->naudiences == 0) {
        return COMMERCE_JWT_OK;
    }

    for (a = 0; a < opts->naudiences; a++) {
        if (commerce_jwt_str_is(aud, &opts->audiences[a])) {
            return COMMERCE_JWT_OK;
        }

        json_array_foreach(aud, i, v) {
            if (commerce_jwt_str_is(v, &opts->audiences[a])) {
                return COMMERCE_JWT_OK;
            }
        }
    }

    return COMMERCE_JWT_WRONG_AUDIENCE;
}


/* v is the JSON string s, byte for byte */
static int
commerce_jwt_str_is(const json_t *v, const commerce_jwt_str_t *s)
{
    return json_is_string(v) && json_string_length(v) == s->len
           && memcmp(json_string_value(v), s->data, s->len) == 0;
}


int
commerce_jwt_has_role(const commerce_jwt_t *jwt, const char *claim,
    const commerce_jwt_str_t *role)
{
    size_t       i, n, len;
    json_t      *v, *e;
    const char  *p, *end;

    v = json_object_get(jwt->claims, claim);

    json_array_foreach(v, i, e) {
        if (commerce_jwt_str_is(e, role)) {
            return 1;
        }
    }

    if (!json_is_string(v) || role->len == 0) {
        return 0;
    }

    p = json_string_value(v);
    end = p + json_string_length(v);

    while (p < end) {
        n = strspn(p, " ");
        p += n;
        len = strcspn(p, " ");

        if (len == role->len && memcmp(p, role->data, len) == 0) {
            return 1;
        }

        p += len;
    }

    return 0;
}


const char *
commerce_jwt_reason(commerce_jwt_rc_e rc)
{
    if ((size_t) rc >= sizeof(commerce_jwt_reasons)
                       / sizeof(commerce_jwt_reasons[0]))
    {
        rc = COMMERCE_JWT_ERROR;
    }

    return commerce_jwt_reasons[rc].reason;
}


const char *
commerce_jwt_describe(commerce_jwt_rc_e rc)
{
    if ((size_t) rc >= sizeof(commerce_jwt_reasons)
                       / sizeof(commerce_jwt_reasons[0]))
    {
        rc = COMMERCE_JWT_ERROR;
    }

    return commerce_jwt_reasons[rc].text;
}
