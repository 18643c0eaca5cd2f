/*
 * ngx_http_commerce_jwt_module: JWT bearer authentication of locations,
 * on the JWT core of common/commerce_jwt.h (the rules, RFC 8725's, are
 * written there).
 *
 * Directives: commerce_jwt, commerce_jwt_keys_file, commerce_jwt_alg,
 * commerce_jwt_leeway, commerce_jwt_issuer, commerce_jwt_audience,
 * commerce_jwt_type, commerce_jwt_roles_claim, commerce_jwt_require_role,
 * commerce_jwt_log_level; variables $commerce_jwt_sub and
 * $commerce_jwt_claim_<name>.  The reference is docs/directives.md.
 *
 * Keys files are read when the configuration is (nginx -t, start,
 * reload): a reload reads them again, and a bad one fails like any other
 * configuration error, with the file, the key and the reason.  A key set
 * belongs to the cycle's pool (freed with the configuration); the
 * verification of a request belongs to the request's pool.
 *
 * The request side is ngx_http_commerce_jwt_request.c.  The access phase
 * handler answers as RFC 6750 says: 401 with
 * WWW-Authenticate: Bearer realm="..." for a request without a token,
 * with error="invalid_token" for a token that is not valid, 403 with
 * error="insufficient_scope" for a token without a required role; the
 * body is the API's JSON error, its code the core's reason.  Each refusal
 * is logged with the reason, the token's alg and kid (never the token).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_jwt.h"

#include "ngx_http_commerce_jwt.h"
#include "ngx_http_commerce_jwt_conf.h"


static char *ngx_http_commerce_jwt(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_commerce_jwt_quotable(ngx_str_t *s);
static char *ngx_http_commerce_jwt_keys_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void ngx_http_commerce_jwt_free_keys(void *data);
static char *ngx_http_commerce_jwt_alg(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_commerce_jwt_require_role(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_commerce_jwt_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_jwt_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_commerce_jwt_check(ngx_conf_t *cf,
    ngx_http_commerce_jwt_loc_conf_t *conf);
static ngx_int_t ngx_http_commerce_jwt_strings(ngx_conf_t *cf,
    ngx_http_commerce_jwt_loc_conf_t *conf);
static void ngx_http_commerce_jwt_opts(ngx_http_commerce_jwt_loc_conf_t *conf);
static ngx_int_t ngx_http_commerce_jwt_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_commerce_jwt_init(ngx_conf_t *cf);


static ngx_conf_enum_t  ngx_http_commerce_jwt_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_commerce_jwt_commands[] = {

    { ngx_string("commerce_jwt"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_commerce_jwt,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_jwt_keys_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_commerce_jwt_keys_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_jwt_alg"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_commerce_jwt_alg,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_jwt_loc_conf_t, leeway),
      NULL },

    { ngx_string("commerce_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_jwt_loc_conf_t, issuer),
      NULL },

    { ngx_string("commerce_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_jwt_loc_conf_t, audiences),
      NULL },

    { ngx_string("commerce_jwt_type"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_jwt_loc_conf_t, type),
      NULL },

    { ngx_string("commerce_jwt_roles_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_jwt_loc_conf_t, roles_claim),
      NULL },

    { ngx_string("commerce_jwt_require_role"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_commerce_jwt_require_role,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_jwt_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_jwt_loc_conf_t, log_level),
      &ngx_http_commerce_jwt_log_levels },

      ngx_null_command
};


static ngx_http_variable_t  ngx_http_commerce_jwt_vars[] = {

    { ngx_string("commerce_jwt_sub"), NULL,
      ngx_http_commerce_jwt_sub_variable, 0, 0, 0 },

    { ngx_string("commerce_jwt_claim_"), NULL,
      ngx_http_commerce_jwt_claim_variable, 0, NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


static ngx_http_module_t  ngx_http_commerce_jwt_module_ctx = {
    ngx_http_commerce_jwt_add_variables,   /* preconfiguration */
    ngx_http_commerce_jwt_init,            /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_commerce_jwt_create_loc_conf, /* create location configuration */
    ngx_http_commerce_jwt_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_commerce_jwt_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_jwt_module_ctx,     /* module context */
    ngx_http_commerce_jwt_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* commerce_jwt on | off | $variable [realm=text] */
static char *
ngx_http_commerce_jwt(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_commerce_jwt_loc_conf_t *jlcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (jlcf->mode != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        jlcf->mode = NGX_HTTP_COMMERCE_JWT_OFF;
        return cf->args->nelts == 2 ? NGX_CONF_OK : "off takes no realm";
    }

    if (ngx_strcmp(value[1].data, "on") == 0) {
        jlcf->mode = NGX_HTTP_COMMERCE_JWT_BEARER;

    } else if (value[1].data[0] == '$') {
        jlcf->token = ngx_pcalloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (jlcf->token == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
        ccv.cf = cf;
        ccv.value = &value[1];
        ccv.complex_value = jlcf->token;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        jlcf->mode = NGX_HTTP_COMMERCE_JWT_VARIABLE;

    } else {
        return "takes on, off or a $variable";
    }

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[2].data, "realm=", 6) != 0) {
        return "takes realm=text after on or the variable";
    }

    jlcf->realm.data = value[2].data + 6;
    jlcf->realm.len = value[2].len - 6;

    if (!ngx_http_commerce_jwt_quotable(&jlcf->realm)) {
        return "has a realm with a quote, backslash or control character";
    }

    return NGX_CONF_OK;
}


/* text that goes between the quotes of a header's parameter as it is */
static ngx_int_t
ngx_http_commerce_jwt_quotable(ngx_str_t *s)
{
    ngx_uint_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] == '"' || s->data[i] == '\\' || s->data[i] < 0x20
            || s->data[i] == 0x7f)
        {
            return 0;
        }
    }

    return 1;
}


/*
 * Each file's keys join the level's set at once, so that an error names
 * the line of its directive.
 */
static char *
ngx_http_commerce_jwt_keys_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_commerce_jwt_loc_conf_t *jlcf = conf;

    char                 err[1024];
    ngx_str_t           *value, name;
    ngx_pool_cleanup_t  *cln;

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (jlcf->keys == NULL) {
        cln = ngx_pool_cleanup_add(cf->pool, 0);
        jlcf->keys = commerce_jwk_set_new();

        if (cln == NULL || jlcf->keys == NULL) {
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_http_commerce_jwt_free_keys;
        cln->data = jlcf->keys;
    }

    /* name is NUL-terminated: the parser's, or ngx_conf_full_name()'s */
    if (commerce_jwk_set_add_file(jlcf->keys, (const char *) name.data, err,
                                  sizeof(err)) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_commerce_jwt_free_keys(void *data)
{
    commerce_jwk_set_free(data);
}


/* commerce_jwt_alg RS256 ES256 ...: the algorithms tokens may use */
static char *
ngx_http_commerce_jwt_alg(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_commerce_jwt_loc_conf_t *jlcf = conf;

    ngx_str_t           *value;
    ngx_uint_t           i;
    commerce_jwa_alg_e   alg;

    if (jlcf->algs != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    jlcf->algs = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        alg = commerce_jwa_lookup((const char *) value[i].data, value[i].len);

        if (alg == COMMERCE_JWA_NONE) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" is not one of "
                               "RS256, RS384, RS512, PS256, PS384, PS512, "
                               "ES256, ES384, ES512, EdDSA, HS256, HS384, "
                               "HS512", &value[i]);
            return NGX_CONF_ERROR;
        }

        jlcf->algs |= COMMERCE_JWA_BIT(alg);
    }

    return NGX_CONF_OK;
}


/* commerce_jwt_require_role role ...: every one is required */
static char *
ngx_http_commerce_jwt_require_role(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_commerce_jwt_loc_conf_t *jlcf = conf;

    ngx_str_t   *value, *role;
    ngx_uint_t   i;

    if (jlcf->roles == NGX_CONF_UNSET_PTR) {
        jlcf->roles = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (jlcf->roles == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0 || ngx_strlchr(value[i].data,
                                             value[i].data + value[i].len,
                                             ' ')
            || !ngx_http_commerce_jwt_quotable(&value[i]))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "the role \"%V\" is "
                               "empty, or has a space, quote, backslash or "
                               "control character", &value[i]);
            return NGX_CONF_ERROR;
        }

        role = ngx_array_push(jlcf->roles);
        if (role == NULL) {
            return NGX_CONF_ERROR;
        }

        *role = value[i];
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_commerce_jwt_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_jwt_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_jwt_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->token = NULL;
     *     conf->realm = { 0, NULL };
     *     conf->keys = NULL;
     *     conf->issuer = { 0, NULL };
     *     conf->type = { 0, NULL };
     *     conf->roles_claim = { 0, NULL };
     *     conf->challenge, conf->scope, conf->opts: made by merge
     */

    conf->mode = NGX_CONF_UNSET_UINT;
    conf->algs = NGX_CONF_UNSET_UINT;
    conf->leeway = NGX_CONF_UNSET;
    conf->audiences = NGX_CONF_UNSET_PTR;
    conf->roles = NGX_CONF_UNSET_PTR;
    conf->log_level = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_commerce_jwt_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_commerce_jwt_loc_conf_t *prev = parent;
    ngx_http_commerce_jwt_loc_conf_t *conf = child;

    if (conf->mode == NGX_CONF_UNSET_UINT) {
        conf->token = prev->token;
    }

    ngx_conf_merge_uint_value(conf->mode, prev->mode,
                              NGX_HTTP_COMMERCE_JWT_OFF);
    ngx_conf_merge_str_value(conf->realm, prev->realm, "commerce");

    if (conf->keys == NULL) {
        conf->keys = prev->keys;
    }

    ngx_conf_merge_uint_value(conf->algs, prev->algs, COMMERCE_JWA_ALL);
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway, 0);
    ngx_conf_merge_str_value(conf->issuer, prev->issuer, "");
    ngx_conf_merge_ptr_value(conf->audiences, prev->audiences, NULL);
    ngx_conf_merge_str_value(conf->type, prev->type, "");
    ngx_conf_merge_str_value(conf->roles_claim, prev->roles_claim, "roles");
    ngx_conf_merge_ptr_value(conf->roles, prev->roles, NULL);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level, NGX_LOG_INFO);

    if (ngx_http_commerce_jwt_check(cf, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_commerce_jwt_strings(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_http_commerce_jwt_opts(conf);

    return NGX_CONF_OK;
}


/* a location with commerce_jwt has keys, and one for an accepted alg */
static char *
ngx_http_commerce_jwt_check(ngx_conf_t *cf,
    ngx_http_commerce_jwt_loc_conf_t *conf)
{
    unsigned    algs;
    ngx_uint_t  i;

    if (conf->mode == NGX_HTTP_COMMERCE_JWT_OFF) {
        return NGX_CONF_OK;
    }

    if (conf->keys == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"commerce_jwt\" needs "
                           "\"commerce_jwt_keys_file\"");
        return NGX_CONF_ERROR;
    }

    algs = 0;

    for (i = 0; i < conf->keys->nkeys; i++) {
        algs |= conf->keys->keys[i].algs;
    }

    if (!(algs & conf->algs)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "no key of "
                           "\"commerce_jwt_keys_file\" is for an algorithm "
                           "of \"commerce_jwt_alg\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the challenge's start, Bearer realm="...", and the scope of the roles */
static ngx_int_t
ngx_http_commerce_jwt_strings(ngx_conf_t *cf,
    ngx_http_commerce_jwt_loc_conf_t *conf)
{
    u_char      *p;
    size_t       len;
    ngx_str_t   *role;
    ngx_uint_t   i;

    conf->challenge.len = sizeof("Bearer realm=\"\"") - 1 + conf->realm.len;
    conf->challenge.data = ngx_pnalloc(cf->pool, conf->challenge.len);
    if (conf->challenge.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(conf->challenge.data, "Bearer realm=\"%V\"", &conf->realm);

    if (conf->roles == NULL) {
        return NGX_OK;
    }

    role = conf->roles->elts;
    len = 0;

    for (i = 0; i < conf->roles->nelts; i++) {
        len += role[i].len + 1;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    conf->scope.data = p;

    for (i = 0; i < conf->roles->nelts; i++) {
        p = ngx_sprintf(p, "%s%V", i ? " " : "", &role[i]);
    }

    conf->scope.len = p - conf->scope.data;

    return NGX_OK;
}


/* the options of the core, pointing into the configuration */
static void
ngx_http_commerce_jwt_opts(ngx_http_commerce_jwt_loc_conf_t *conf)
{
    commerce_jwt_opts_init(&conf->opts);

    conf->opts.algs = (unsigned) conf->algs;
    conf->opts.leeway = conf->leeway;
    conf->opts.issuer.data = conf->issuer.data;
    conf->opts.issuer.len = conf->issuer.len;
    conf->opts.type.data = conf->type.data;
    conf->opts.type.len = conf->type.len;

    if (conf->audiences != NULL) {
        /* ngx_str_t and commerce_jwt_str_t have the same layout */
        conf->opts.audiences = conf->audiences->elts;
        conf->opts.naudiences = conf->audiences->nelts;
    }
}


static ngx_int_t
ngx_http_commerce_jwt_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_commerce_jwt_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_commerce_jwt_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_commerce_jwt_handler;

    return NGX_OK;
}
