/*
 * commerce-jwt verify: a token on stdin against a JWK Set, with the rules
 * of the nginx module (the same core and the same options: --alg is
 * commerce_jwt_alg, --leeway commerce_jwt_leeway, ...).  A valid token:
 * its header and its claims (with --no-claims its payload as it is) on
 * stdout, one line each, exit 0.  An invalid one: "invalid token: reason:
 * sentence" on stderr, exit 1.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cw_log.h"
#include "jwt.h"
#include "commerce_jwt.h"


/* comma-separated audiences taken */
#define JWT_AUDIENCES_MAX  16


typedef struct {
    commerce_jwt_opts_t   opts;
    commerce_jwt_str_t    audiences[JWT_AUDIENCES_MAX];
    char                 *audience;       /* what audiences[] point into */
} jwt_verify_opts_t;


static int jwt_verify_keys(const cw_config_t *cfg, commerce_jwk_set_t *set);
static int jwt_verify_opts(const cw_config_t *cfg, jwt_verify_opts_t *v);
static size_t jwt_verify_read(unsigned char *buf, size_t size);
static void jwt_verify_print(const commerce_jwt_t *jwt, int claims);


int
jwt_verify(const cw_config_t *cfg)
{
    int                   status;
    size_t                len;
    int64_t               now;
    commerce_jwt_t        jwt;
    commerce_jwt_rc_e     rc;
    jwt_verify_opts_t     v;
    commerce_jwk_set_t   *set;
    unsigned char         token[COMMERCE_JWT_TOKEN_MAX + 2];

    memset(&v, 0, sizeof(v));
    set = commerce_jwk_set_new();

    if (set == NULL || jwt_verify_keys(cfg, set) != 0
        || jwt_verify_opts(cfg, &v) != 0)
    {
        commerce_jwk_set_free(set);
        free(v.audience);
        return JWT_EXIT_CONFIG;
    }

    len = jwt_verify_read(token, sizeof(token));
    now = cw_config_int(cfg, "now") > 0 ? cw_config_int(cfg, "now")
                                        : (int64_t) time(NULL);

    rc = commerce_jwt_verify(set, &v.opts, token, len, now, &jwt);

    if (rc == COMMERCE_JWT_OK) {
        jwt_verify_print(&jwt, v.opts.check_claims);
        status = JWT_EXIT_OK;

    } else {
        fprintf(stderr, "invalid token: %s: %s\n", commerce_jwt_reason(rc),
                commerce_jwt_describe(rc));
        status = JWT_EXIT_FAIL;
    }

    commerce_jwt_free(&jwt);
    commerce_jwk_set_free(set);
    free(v.audience);

    return status;
}


/* every file of --jwks into the set */
static int
jwt_verify_keys(const cw_config_t *cfg, commerce_jwk_set_t *set)
{
    char        *files, *path, *save, err[1024];
    const char  *jwks;

    jwks = cw_config_str(cfg, "jwks");

    if (jwks[0] == '\0') {
        cw_log(CW_LOG_ERROR, "verify needs --jwks FILE");
        return -1;
    }

    files = strdup(jwks);
    if (files == NULL) {
        return -1;
    }

    for (path = strtok_r(files, ",", &save); path != NULL;
         path = strtok_r(NULL, ",", &save))
    {
        if (commerce_jwk_set_add_file(set, path, err, sizeof(err)) != 0) {
            cw_log(CW_LOG_ERROR, "--jwks: %s", err);
            free(files);
            return -1;
        }
    }

    free(files);

    return 0;
}


static int
jwt_verify_opts(const cw_config_t *cfg, jwt_verify_opts_t *v)
{
    size_t       n, bad_len;
    char        *p, *save;
    const char  *s, *bad;

    commerce_jwt_opts_init(&v->opts);

    s = cw_config_str(cfg, "alg");

    if (s[0] != '\0') {
        v->opts.algs = commerce_jwa_parse_list(s, strlen(s), &bad, &bad_len);

        if (v->opts.algs == 0) {
            cw_log(CW_LOG_ERROR, "--alg: \"%.*s\" is not an algorithm of "
                   "RS256..RS512, PS256..PS512, ES256..ES512, EdDSA, "
                   "HS256..HS512", (int) bad_len, bad);
            return -1;
        }
    }

    v->opts.check_claims = !cw_config_bool(cfg, "no_claims");
    v->opts.leeway = cw_config_int(cfg, "leeway");

    s = cw_config_str(cfg, "issuer");
    v->opts.issuer.data = (const unsigned char *) s;
    v->opts.issuer.len = strlen(s);

    s = cw_config_str(cfg, "type");
    v->opts.type.data = (const unsigned char *) s;
    v->opts.type.len = strlen(s);

    v->audience = strdup(cw_config_str(cfg, "audience"));
    if (v->audience == NULL) {
        return -1;
    }

    n = 0;

    for (p = strtok_r(v->audience, ",", &save); p != NULL;
         p = strtok_r(NULL, ",", &save))
    {
        if (n == JWT_AUDIENCES_MAX) {
            cw_log(CW_LOG_ERROR, "--audience: more than %d audiences",
                   JWT_AUDIENCES_MAX);
            return -1;
        }

        v->audiences[n].data = (const unsigned char *) p;
        v->audiences[n++].len = strlen(p);
    }

    v->opts.audiences = v->audiences;
    v->opts.naudiences = n;

    return 0;
}


/*
 * stdin, without the line end or spaces around it: a token longer than
 * the most taken stays too long (one byte more is read).
 */
static size_t
jwt_verify_read(unsigned char *buf, size_t size)
{
    size_t  n, start;

    n = fread(buf, 1, size, stdin);

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'
                     || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
    {
        n--;
    }

    for (start = 0; start < n && (buf[start] == ' ' || buf[start] == '\t');
         start++)
    {
        /* void */
    }

    memmove(buf, buf + start, n - start);

    return n - start;
}


static void
jwt_verify_print(const commerce_jwt_t *jwt, int claims)
{
    char  *text;

    text = json_dumps(jwt->header, JSON_COMPACT);
    printf("%s\n", text ? text : "");
    free(text);

    if (claims) {
        text = json_dumps(jwt->claims, JSON_COMPACT);
        printf("%s\n", text ? text : "");
        free(text);
        return;
    }

    fwrite(jwt->payload, 1, jwt->payload_len, stdout);
    printf("\n");
}
