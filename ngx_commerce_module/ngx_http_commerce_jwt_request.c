/*
 * ngx_http_commerce_jwt_module, the request side: a request's token
 * verified once (whoever asks first: the access phase, a variable, a
 * content handler through ngx_http_commerce_jwt.h), the access phase
 * handler and its RFC 6750 answers, the log line of a refusal, and the
 * variables.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_json.h"
#include "commerce_jwt.h"

#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_jwt.h"
#include "ngx_http_commerce_jwt_conf.h"


/* the longest kid or sub written to the log, before escaping */
#define NGX_HTTP_COMMERCE_JWT_LOG_MAX   64


typedef struct {
    commerce_jwt_t              jwt;
    commerce_jwt_rc_e           rc;
} ngx_http_commerce_jwt_ctx_t;


static ngx_http_commerce_jwt_ctx_t *ngx_http_commerce_jwt_verify(
    ngx_http_request_t *r, ngx_http_commerce_jwt_loc_conf_t *jlcf);
static void ngx_http_commerce_jwt_cleanup(void *data);
static void ngx_http_commerce_jwt_token(ngx_http_request_t *r,
    ngx_http_commerce_jwt_loc_conf_t *jlcf, ngx_str_t *token);
static ngx_str_t *ngx_http_commerce_jwt_missing_role(
    ngx_http_commerce_jwt_loc_conf_t *jlcf, ngx_http_commerce_jwt_ctx_t *ctx);
static ngx_int_t ngx_http_commerce_jwt_refuse(ngx_http_request_t *r,
    ngx_http_commerce_jwt_loc_conf_t *jlcf, ngx_http_commerce_jwt_ctx_t *ctx,
    commerce_jwt_rc_e rc, ngx_str_t *role);
static ngx_int_t ngx_http_commerce_jwt_challenge(ngx_http_request_t *r,
    ngx_http_commerce_jwt_loc_conf_t *jlcf, commerce_jwt_rc_e rc,
    ngx_str_t *out);
static void ngx_http_commerce_jwt_log(ngx_http_request_t *r,
    ngx_http_commerce_jwt_loc_conf_t *jlcf, ngx_http_commerce_jwt_ctx_t *ctx,
    commerce_jwt_rc_e rc, ngx_str_t *role);
static u_char *ngx_http_commerce_jwt_log_str(u_char *p, u_char *last,
    const char *name, const char *s, size_t len);


const commerce_jwt_t *
ngx_http_commerce_jwt_get(ngx_http_request_t *r)
{
    ngx_http_commerce_jwt_ctx_t       *ctx;
    ngx_http_commerce_jwt_loc_conf_t  *jlcf;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_jwt_module);

    if (jlcf->mode == NGX_HTTP_COMMERCE_JWT_OFF) {
        return NULL;
    }

    ctx = ngx_http_commerce_jwt_verify(r, jlcf);

    return (ctx != NULL && ctx->rc == COMMERCE_JWT_OK) ? &ctx->jwt : NULL;
}


ngx_int_t
ngx_http_commerce_jwt_sub(ngx_http_request_t *r, ngx_str_t *sub)
{
    const commerce_jwt_t  *jwt;

    jwt = ngx_http_commerce_jwt_get(r);

    if (jwt == NULL || jwt->sub.len == 0) {
        return NGX_DECLINED;
    }

    sub->data = (u_char *) jwt->sub.data;
    sub->len = jwt->sub.len;

    return NGX_OK;
}


ngx_uint_t
ngx_http_commerce_jwt_has_role(ngx_http_request_t *r, ngx_str_t *role)
{
    const commerce_jwt_t              *jwt;
    ngx_http_commerce_jwt_loc_conf_t  *jlcf;

    jwt = ngx_http_commerce_jwt_get(r);
    if (jwt == NULL) {
        return 0;
    }

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_jwt_module);

    /* ngx_str_t and commerce_jwt_str_t have the same layout */
    return commerce_jwt_has_role(jwt, (const char *) jlcf->roles_claim.data,
                                 (commerce_jwt_str_t *) role);
}


/*
 * The request's verification, done the first time it is asked for: NULL
 * only when out of memory.
 */
static ngx_http_commerce_jwt_ctx_t *
ngx_http_commerce_jwt_verify(ngx_http_request_t *r,
    ngx_http_commerce_jwt_loc_conf_t *jlcf)
{
    ngx_str_t                     token;
    ngx_pool_cleanup_t           *cln;
    ngx_http_commerce_jwt_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_jwt_module);
    if (ctx != NULL) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_commerce_jwt_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (ctx == NULL || cln == NULL) {
        return NULL;
    }

    /* the verification's jansson values and buffer go with the pool */
    cln->handler = ngx_http_commerce_jwt_cleanup;
    cln->data = ctx;

    ngx_http_commerce_jwt_token(r, jlcf, &token);

    ctx->rc = commerce_jwt_verify(jlcf->keys, &jlcf->opts, token.data,
                                  token.len, (int64_t) ngx_time(), &ctx->jwt);

    ngx_http_set_ctx(r, ctx, ngx_http_commerce_jwt_module);

    return ctx;
}


static void
ngx_http_commerce_jwt_cleanup(void *data)
{
    ngx_http_commerce_jwt_ctx_t  *ctx = data;

    commerce_jwt_free(&ctx->jwt);
}


/*
 * "Authorization: Bearer <token>" (RFC 6750 section 2.1; the scheme's
 * case does not matter, RFC 7235), or the configured variable; empty
 * when there is none, or another scheme.
 */
static void
ngx_http_commerce_jwt_token(ngx_http_request_t *r,
    ngx_http_commerce_jwt_loc_conf_t *jlcf, ngx_str_t *token)
{
    u_char           *p, *last;
    ngx_table_elt_t  *h;

    ngx_str_null(token);

    if (jlcf->mode == NGX_HTTP_COMMERCE_JWT_VARIABLE) {
        if (ngx_http_complex_value(r, jlcf->token, token) != NGX_OK) {
            ngx_str_null(token);
        }

        return;
    }

    h = r->headers_in.authorization;

    if (h == NULL || h->value.len < sizeof("Bearer ") - 1
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1) != 0)
    {
        return;
    }

    p = h->value.data + sizeof("Bearer ") - 1;
    last = h->value.data + h->value.len;

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    token->data = p;
    token->len = last - p;
}


ngx_int_t
ngx_http_commerce_jwt_handler(ngx_http_request_t *r)
{
    ngx_str_t                         *role;
    ngx_http_commerce_jwt_ctx_t       *ctx;
    ngx_http_commerce_jwt_loc_conf_t  *jlcf;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_jwt_module);

    if (jlcf->mode == NGX_HTTP_COMMERCE_JWT_OFF) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_commerce_jwt_verify(r, jlcf);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->rc != COMMERCE_JWT_OK) {
        return ngx_http_commerce_jwt_refuse(r, jlcf, ctx, ctx->rc, NULL);
    }

    role = ngx_http_commerce_jwt_missing_role(jlcf, ctx);

    if (role != NULL) {
        return ngx_http_commerce_jwt_refuse(r, jlcf, ctx,
                                            COMMERCE_JWT_MISSING_ROLE, role);
    }

    return NGX_DECLINED;
}


/* the first role of commerce_jwt_require_role the token lacks, or NULL */
static ngx_str_t *
ngx_http_commerce_jwt_missing_role(ngx_http_commerce_jwt_loc_conf_t *jlcf,
    ngx_http_commerce_jwt_ctx_t *ctx)
{
    ngx_str_t   *role;
    ngx_uint_t   i;

    if (jlcf->roles == NULL) {
        return NULL;
    }

    role = jlcf->roles->elts;

    for (i = 0; i < jlcf->roles->nelts; i++) {
        if (!commerce_jwt_has_role(&ctx->jwt,
                                   (const char *) jlcf->roles_claim.data,
                                   (commerce_jwt_str_t *) &role[i]))
        {
            return &role[i];
        }
    }

    return NULL;
}


/* the refusal logged, answered and the request finalized: NGX_DONE */
static ngx_int_t
ngx_http_commerce_jwt_refuse(ngx_http_request_t *r,
    ngx_http_commerce_jwt_loc_conf_t *jlcf, ngx_http_commerce_jwt_ctx_t *ctx,
    commerce_jwt_rc_e rc, ngx_str_t *role)
{
    ngx_int_t   status;
    ngx_str_t   challenge;

    ngx_http_commerce_jwt_log(r, jlcf, ctx, rc, role);

    if (ngx_http_commerce_jwt_challenge(r, jlcf, rc, &challenge) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    status = ngx_http_commerce_send_error_auth(r,
                 rc == COMMERCE_JWT_MISSING_ROLE ? NGX_HTTP_FORBIDDEN
                                                 : NGX_HTTP_UNAUTHORIZED,
                 commerce_jwt_reason(rc), commerce_jwt_describe(rc),
                 &challenge);

    ngx_http_finalize_request(r, status);

    return NGX_DONE;
}


/*
 * RFC 6750 section 3: no error attribute when the request had no token
 * (3.1), invalid_token for a token that is not valid, insufficient_scope
 * with the scope needed for a missing role.  The descriptions hold no
 * quote or backslash (commerce_jwt_describe()).
 */
static ngx_int_t
ngx_http_commerce_jwt_challenge(ngx_http_request_t *r,
    ngx_http_commerce_jwt_loc_conf_t *jlcf, commerce_jwt_rc_e rc,
    ngx_str_t *out)
{
    size_t       len;
    const char  *error, *text;

    if (rc == COMMERCE_JWT_MISSING) {
        *out = jlcf->challenge;
        return NGX_OK;
    }

    error = rc == COMMERCE_JWT_MISSING_ROLE ? "insufficient_scope"
                                            : "invalid_token";
    text = commerce_jwt_describe(rc);

    len = jlcf->challenge.len
          + sizeof(", error=\"\", error_description=\"\", scope=\"\"")
          + ngx_strlen(error) + ngx_strlen(text) + jlcf->scope.len;

    out->data = ngx_pnalloc(r->pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_sprintf(out->data, "%V, error=\"%s\", "
                           "error_description=\"%s\"", &jlcf->challenge,
                           error, text)
               - out->data;

    if (rc == COMMERCE_JWT_MISSING_ROLE) {
        out->len = ngx_sprintf(out->data + out->len, ", scope=\"%V\"",
                               &jlcf->scope)
                   - out->data;
    }

    return NGX_OK;
}


/*
 * "commerce_jwt: <reason>: <sentence>, alg ES256, kid "..."": what the
 * header said, escaped (it is the client's), never the token itself; for
 * a missing role the sub and the role too.
 */
static void
ngx_http_commerce_jwt_log(ngx_http_request_t *r,
    ngx_http_commerce_jwt_loc_conf_t *jlcf, ngx_http_commerce_jwt_ctx_t *ctx,
    commerce_jwt_rc_e rc, ngx_str_t *role)
{
    u_char   *p, *last;
    json_t   *kid;
    u_char    buf[3 * COMMERCE_JSON_ESCAPE_MAX(NGX_HTTP_COMMERCE_JWT_LOG_MAX)
                  + 64];

    if (r->connection->log->log_level < jlcf->log_level) {
        return;
    }

    p = buf;
    last = buf + sizeof(buf);

    if (ctx->jwt.alg != COMMERCE_JWA_NONE) {
        p = ngx_slprintf(p, last, ", alg %s",
                         commerce_jwa_get(ctx->jwt.alg)->name);
    }

    kid = json_object_get(ctx->jwt.header, "kid");

    if (json_is_string(kid)) {
        p = ngx_http_commerce_jwt_log_str(p, last, "kid",
                                          json_string_value(kid),
                                          json_string_length(kid));
    }

    if (role != NULL) {
        p = ngx_http_commerce_jwt_log_str(p, last, "sub",
                                          (const char *) ctx->jwt.sub.data,
                                          ctx->jwt.sub.len);
        p = ngx_http_commerce_jwt_log_str(p, last, "role",
                                          (const char *) role->data,
                                          role->len);
    }

    ngx_log_error(jlcf->log_level, r->connection->log, 0,
                  "commerce_jwt: %s: %s%*s", commerce_jwt_reason(rc),
                  commerce_jwt_describe(rc), (size_t) (p - buf), buf);
}


/* ', name "s"', s cut to NGX_HTTP_COMMERCE_JWT_LOG_MAX bytes and escaped */
static u_char *
ngx_http_commerce_jwt_log_str(u_char *p, u_char *last, const char *name,
    const char *s, size_t len)
{
    len = ngx_min(len, NGX_HTTP_COMMERCE_JWT_LOG_MAX);

    if ((size_t) (last - p) < ngx_strlen(name) + 5
                              + COMMERCE_JSON_ESCAPE_MAX(len))
    {
        return p;
    }

    p = ngx_sprintf(p, ", %s \"", name);
    p = commerce_json_escape(p, (const u_char *) s, len, COMMERCE_JSON_BYTES);
    *p++ = '"';

    return p;
}


ngx_int_t
ngx_http_commerce_jwt_sub_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  sub;

    if (ngx_http_commerce_jwt_sub(r, &sub) != NGX_OK) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = sub.data;
    v->len = sub.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * $commerce_jwt_claim_<name>: a top-level string claim of a valid token;
 * data is the variable's whole name (nginx's prefix variables).
 */
ngx_int_t
ngx_http_commerce_jwt_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t             *name = (ngx_str_t *) data;
    json_t                *claim;
    const commerce_jwt_t  *jwt;

    jwt = ngx_http_commerce_jwt_get(r);

    claim = jwt != NULL
            ? json_object_getn(jwt->claims,
                               (const char *) name->data
                               + sizeof(NGX_HTTP_COMMERCE_JWT_CLAIM) - 1,
                               name->len
                               - (sizeof(NGX_HTTP_COMMERCE_JWT_CLAIM) - 1))
            : NULL;

    if (!json_is_string(claim)) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) json_string_value(claim);
    v->len = json_string_length(claim);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
