/*
 * commerce_jwt: JSON Web Token verification (RFC 7519) as RFC 8725 asks
 * it to be done, for the nginx module (commerce_jwt) and the commerce-jwt
 * tool.  Pure C on OpenSSL 3 and jansson, no nginx or worker types.
 *
 * A token is taken only in the JWS compact serialization (three base64url
 * segments, RFC 7515 section 7.1), at most COMMERCE_JWT_TOKEN_MAX bytes.
 * Its header is one JSON object with no member twice; then:
 *
 *   alg     required: "none" is refused, so is any name that is not one
 *           of commerce_jwa.h's, or that opts->algs does not accept;
 *   crit    refused whatever it names: no extension is understood here;
 *   typ     compared with opts->type when that is set (case-insensitive,
 *           "application/" optional on both sides, RFC 7515 4.1.9);
 *   kid     selects the keys of that kid; without one every key is tried;
 *           a key is used only for the algorithms it is pinned to
 *           (commerce_jwk.h), so HS256 with an RSA key's bytes finds no
 *           key at all;
 *   jwk, jku, x5u, x5c   never read: keys come from the set only.
 *
 * Only a good signature lets the claims be looked at: the payload must be
 * a JSON object, exp is required (opts->require_exp) and now must be
 * before exp + leeway, not before nbf - leeway; iss must be opts->issuer
 * and aud (a string or an array of strings) must hold one of
 * opts->audiences, when those are set.  With opts->check_claims 0 only
 * the signature is checked and the payload may be anything.
 *
 * Every refusal is a commerce_jwt_rc_e with a stable name
 * (commerce_jwt_reason) and a sentence (commerce_jwt_describe) that may be
 * shown to the client: neither quotes the token.
 *
 * Use:
 *
 *     commerce_jwt_opts_init(&opts);
 *     opts.leeway = 30;
 *     rc = commerce_jwt_verify(set, &opts, token, len, time(NULL), &jwt);
 *     if (rc == COMMERCE_JWT_OK) {
 *         ... jwt.claims, jwt.sub, commerce_jwt_has_role(&jwt, ...) ...
 *     }
 *     commerce_jwt_free(&jwt);          also after a refusal
 */

#ifndef COMMERCE_JWT_H
#define COMMERCE_JWT_H


#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "commerce_jwa.h"
#include "commerce_jwk.h"


/* the longest token taken, as large_client_header_buffers' default */
#define COMMERCE_JWT_TOKEN_MAX   8192


typedef enum {
    COMMERCE_JWT_OK = 0,              /* ok */
    COMMERCE_JWT_MISSING,             /* missing_token */
    COMMERCE_JWT_TOO_LONG,            /* token_too_long */
    COMMERCE_JWT_MALFORMED,           /* malformed_token */
    COMMERCE_JWT_BAD_HEADER,          /* malformed_header */
    COMMERCE_JWT_ALG_NONE,            /* alg_none */
    COMMERCE_JWT_ALG_UNSUPPORTED,     /* alg_unsupported */
    COMMERCE_JWT_ALG_NOT_ALLOWED,     /* alg_not_allowed */
    COMMERCE_JWT_CRIT,                /* crit_unsupported */
    COMMERCE_JWT_WRONG_TYPE,          /* wrong_type */
    COMMERCE_JWT_UNKNOWN_KID,         /* unknown_kid */
    COMMERCE_JWT_NO_KEY,              /* no_key */
    COMMERCE_JWT_BAD_SIGNATURE,       /* bad_signature */
    COMMERCE_JWT_BAD_CLAIMS,          /* malformed_claims */
    COMMERCE_JWT_MISSING_EXP,         /* missing_exp */
    COMMERCE_JWT_EXPIRED,             /* expired */
    COMMERCE_JWT_NOT_YET_VALID,       /* not_yet_valid */
    COMMERCE_JWT_WRONG_ISSUER,        /* wrong_issuer */
    COMMERCE_JWT_WRONG_AUDIENCE,      /* wrong_audience */
    COMMERCE_JWT_MISSING_ROLE,        /* missing_role (403, not 401) */
    COMMERCE_JWT_ERROR                /* internal_error */
} commerce_jwt_rc_e;


/* bytes; same layout as ngx_str_t */
typedef struct {
    size_t                 len;
    const unsigned char   *data;
} commerce_jwt_str_t;


typedef struct {
    unsigned                    algs;          /* accepted; default all */
    int64_t                     leeway;        /* seconds, default 0 */
    int                         check_claims;  /* default 1 */
    int                         require_exp;   /* default 1 */
    commerce_jwt_str_t          issuer;        /* len 0: not checked */
    const commerce_jwt_str_t   *audiences;     /* n 0: not checked */
    size_t                      naudiences;
    commerce_jwt_str_t          type;          /* len 0: not checked */
} commerce_jwt_opts_t;


/*
 * What verification found.  header is set once the header parsed (also
 * for a refusal after that, e.g. to log its kid), claims once the claims
 * parsed; sub is the "sub" claim, empty when there is none.  Everything
 * belongs to the struct and goes with commerce_jwt_free().
 */
typedef struct {
    json_t                 *header;
    json_t                 *claims;
    commerce_jwa_alg_e      alg;
    const commerce_jwk_t   *key;           /* the one that verified */
    commerce_jwt_str_t      sub;           /* in claims */
    unsigned char          *payload;       /* decoded */
    size_t                  payload_len;
    unsigned char          *buf;           /* what the decoded parts use */
} commerce_jwt_t;


void commerce_jwt_opts_init(commerce_jwt_opts_t *opts);

/*
 * Verifies token (len bytes, without "Bearer ") against the keys of set
 * at time now (Unix seconds).  *jwt is always initialized.
 */
commerce_jwt_rc_e commerce_jwt_verify(const commerce_jwk_set_t *set,
    const commerce_jwt_opts_t *opts, const unsigned char *token, size_t len,
    int64_t now, commerce_jwt_t *jwt);

void commerce_jwt_free(commerce_jwt_t *jwt);

/*
 * Whether the claim named claim (a JSON array of strings, or a string of
 * space-separated names as OAuth's "scope") holds role.
 */
int commerce_jwt_has_role(const commerce_jwt_t *jwt, const char *claim,
    const commerce_jwt_str_t *role);

/* "ok", "expired", ... (the comments of commerce_jwt_rc_e) */
const char *commerce_jwt_reason(commerce_jwt_rc_e rc);

/* a sentence for the client, without quotes or backslashes */
const char *commerce_jwt_describe(commerce_jwt_rc_e rc);


#endif /* COMMERCE_JWT_H */
