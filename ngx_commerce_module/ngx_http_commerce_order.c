/*
 * ngx_http_commerce_order_module: directives, the content handler (method,
 * caller, order id, body) and the answers shared by the order and admin
 * APIs (see ngx_http_commerce_order.h); commands are built and published
 * by ngx_http_commerce_order_command.c.
 *
 * Directives: commerce_orders, commerce_order_admin (location);
 * commerce_order_topic, commerce_order_owner, commerce_order_is_admin,
 * commerce_idempotency_ttl, commerce_idempotency_inflight_ttl (http,
 * server, location); the reference is docs/directives.md, the answers
 * are in docs/api.md.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_contract.h"
#include "commerce_json.h"

#include "ngx_http_commerce_jwt.h"
#include "ngx_http_commerce_kafka.h"
#include "ngx_http_commerce_metrics.h"
#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_order.h"
#include "ngx_http_commerce_redis.h"


static ngx_int_t ngx_http_commerce_order_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_commerce_order_method(ngx_http_request_t *r,
    ngx_uint_t api);
static ngx_int_t ngx_http_commerce_order_caller(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx);
static void ngx_http_commerce_order_body(ngx_http_request_t *r);
static void ngx_http_commerce_order_rebuild(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx);
static void ngx_http_commerce_order_root_cleanup(void *data);
static char *ngx_http_commerce_order_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_commerce_order_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_order_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);


typedef struct {
    ngx_str_t                   name;
    ngx_uint_t                  api;
    ngx_uint_t                  admin;     /* commerce_order_admin's */
    ngx_uint_t                  id;        /* takes the order id */
} ngx_http_commerce_order_api_t;


static ngx_http_commerce_order_api_t  ngx_http_commerce_order_apis[] = {
    { ngx_string("orders"), NGX_HTTP_COMMERCE_ORDER_ORDERS, 0, 0 },
    { ngx_string("order"), NGX_HTTP_COMMERCE_ORDER_ORDER, 0, 1 },
    { ngx_string("cancel"), NGX_HTTP_COMMERCE_ORDER_CANCEL, 0, 1 },
    { ngx_string("events"), NGX_HTTP_COMMERCE_ORDER_EVENTS, 0, 1 },
    { ngx_string("checkout"), NGX_HTTP_COMMERCE_ORDER_CHECKOUT, 0, 1 },
    { ngx_string("sagas"), NGX_HTTP_COMMERCE_ORDER_SAGAS, 1, 0 },
    { ngx_string("saga"), NGX_HTTP_COMMERCE_ORDER_SAGA, 1, 1 },
    { ngx_string("retry"), NGX_HTTP_COMMERCE_ORDER_RETRY, 1, 1 },
    { ngx_string("compensate"), NGX_HTTP_COMMERCE_ORDER_COMPENSATE, 1, 1 },
    { ngx_string("rebuild"), NGX_HTTP_COMMERCE_ORDER_REBUILD, 1, 0 },
    { ngx_null_string, 0, 0, 0 }
};


static ngx_command_t  ngx_http_commerce_order_commands[] = {

    { ngx_string("commerce_orders"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_commerce_order_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_order_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_commerce_order_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      1,
      NULL },

    { ngx_string("commerce_order_topic"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_order_loc_conf_t, topic),
      NULL },

    { ngx_string("commerce_order_owner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_order_loc_conf_t, owner),
      NULL },

    { ngx_string("commerce_order_is_admin"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_order_loc_conf_t, admin),
      NULL },

    { ngx_string("commerce_idempotency_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_order_loc_conf_t, idem_ttl),
      NULL },

    { ngx_string("commerce_idempotency_inflight_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_order_loc_conf_t, idem_inflight_ttl),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_order_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_commerce_order_create_loc_conf,
    ngx_http_commerce_order_merge_loc_conf
};


ngx_module_t  ngx_http_commerce_order_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_order_module_ctx,   /* module context */
    ngx_http_commerce_order_commands,      /* module directives */
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


static ngx_str_t  ngx_http_commerce_order_ptype =
    ngx_string("application/problem+json");


/*
 * What can be answered before the body: the method, the caller (401
 * without one, 403 for an admin API without the role), the order id in
 * the URI (404 when it cannot be one) and, for a new order, the
 * Idempotency-Key (400).  Then the body is read, whatever the method.
 */
static ngx_int_t
ngx_http_commerce_order_handler(ngx_http_request_t *r)
{
    ngx_int_t                            rc;
    const char                          *msg;
    ngx_http_commerce_order_ctx_t       *ctx;
    ngx_http_commerce_order_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_order_module);

    rc = ngx_http_commerce_order_method(r, olcf->api);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_commerce_order_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_commerce_order_module);

    ctx->received_at = (int64_t) r->start_sec * 1000 + r->start_msec;

    rc = ngx_http_commerce_order_caller(r, ctx);
    msg = NULL;

    if (rc == NGX_OK && olcf->api == NGX_HTTP_COMMERCE_ORDER_CHECKOUT) {

        /* a cart id: the cart module knows whether it is one */

        if (ngx_http_complex_value(r, olcf->id, &ctx->cart_id) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (!ngx_http_commerce_valid_id(ctx->cart_id.data, ctx->cart_id.len))
        {
            rc = NGX_HTTP_NOT_FOUND;
        }

    } else if (rc == NGX_OK && olcf->id) {
        if (ngx_http_complex_value(r, olcf->id, &ctx->id) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (!ngx_http_commerce_valid_uuid(ctx->id.data, ctx->id.len)) {
            rc = NGX_HTTP_NOT_FOUND;
        }
    }

    if (rc == NGX_OK
        && ((olcf->api == NGX_HTTP_COMMERCE_ORDER_ORDERS
             && r->method == NGX_HTTP_POST)
            || olcf->api == NGX_HTTP_COMMERCE_ORDER_CHECKOUT))
    {
        rc = ngx_http_commerce_idem_key(r, &ctx->idem_key, &msg);

        if (rc == NGX_DECLINED) {
            rc = NGX_HTTP_BAD_REQUEST;
        }
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        switch (rc) {

        case NGX_HTTP_UNAUTHORIZED:
            return ngx_http_commerce_order_problem(r, rc, "unauthenticated",
                                              "this API needs a signed-in "
                                              "user", NULL, 0);

        case NGX_HTTP_FORBIDDEN:
            return ngx_http_commerce_order_problem(r, rc,
                                              "insufficient_scope",
                                              "this API needs the admin "
                                              "role", NULL, 0);

        case NGX_HTTP_NOT_FOUND:
            return ngx_http_commerce_order_problem(r, rc, "not_found",
                                              ctx->cart_id.len
                                              ? "no such cart"
                                              : "no such order", NULL, 0);

        default:
            return ngx_http_commerce_order_problem(r, rc,
                                              "invalid_idempotency_key",
                                              msg, "Idempotency-Key", 0);
        }
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_commerce_order_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * NGX_DECLINED for a method of the API, else the 405 (the API's methods in
 * Allow, the body discarded).
 */
static ngx_int_t
ngx_http_commerce_order_method(ngx_http_request_t *r, ngx_uint_t api)
{
    ngx_int_t    rc;
    ngx_uint_t   allowed;
    const char  *allow;

    switch (api) {

    case NGX_HTTP_COMMERCE_ORDER_ORDERS:
        allowed = NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST;
        allow = "GET, HEAD, POST";
        break;

    case NGX_HTTP_COMMERCE_ORDER_ORDER:
    case NGX_HTTP_COMMERCE_ORDER_EVENTS:
    case NGX_HTTP_COMMERCE_ORDER_SAGAS:
    case NGX_HTTP_COMMERCE_ORDER_SAGA:
        allowed = NGX_HTTP_GET|NGX_HTTP_HEAD;
        allow = "GET, HEAD";
        break;

    default:
        allowed = NGX_HTTP_POST;
        allow = "POST";
    }

    if (r->method & allowed) {
        return NGX_DECLINED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_commerce_send_error_allow(r, NGX_HTTP_NOT_ALLOWED,
                                              "method_not_allowed",
                                              "this method is not allowed "
                                              "here", 0, allow);
}


/*
 * The caller: commerce_order_owner, else the token's sub (the JWT
 * module's), and whether it is an admin: commerce_order_is_admin (not
 * empty and not "0"), else the token's role "admin".  NGX_OK,
 * NGX_HTTP_UNAUTHORIZED, NGX_HTTP_FORBIDDEN (an admin API), NGX_ERROR.
 */
static ngx_int_t
ngx_http_commerce_order_caller(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx)
{
    ngx_int_t                            rc;
    ngx_str_t                            admin;
    ngx_http_commerce_order_api_t       *a;
    ngx_http_commerce_order_loc_conf_t  *olcf;

    static ngx_str_t  role = ngx_string(NGX_HTTP_COMMERCE_ORDER_ADMIN_ROLE);

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_order_module);

    if (olcf->owner) {
        rc = ngx_http_complex_value(r, olcf->owner, &ctx->owner);

    } else {
        rc = ngx_http_commerce_jwt_sub(r, &ctx->owner);

        if (rc == NGX_DECLINED) {
            ngx_str_null(&ctx->owner);
            rc = NGX_OK;
        }
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->owner.len == 0) {
        return NGX_HTTP_UNAUTHORIZED;
    }

    if (olcf->admin) {
        if (ngx_http_complex_value(r, olcf->admin, &admin) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->admin = admin.len && !(admin.len == 1 && admin.data[0] == '0');

    } else {
        ctx->admin = ngx_http_commerce_jwt_has_role(r, &role);
    }

    for (a = ngx_http_commerce_order_apis; a->name.len; a++) {
        if (a->api == olcf->api) {
            break;
        }
    }

    if (a->admin && !ctx->admin) {
        return NGX_HTTP_FORBIDDEN;
    }

    return NGX_OK;
}


static void
ngx_http_commerce_order_body(ngx_http_request_t *r)
{
    ngx_http_commerce_order_ctx_t       *ctx;
    ngx_http_commerce_order_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_order_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_order_module);

    if (ngx_http_commerce_request_body(r, &ctx->body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    switch (olcf->api) {

    case NGX_HTTP_COMMERCE_ORDER_ORDERS:
        if (r->method == NGX_HTTP_POST) {
            ngx_http_commerce_order_place(r, ctx);
            return;
        }

        break;

    case NGX_HTTP_COMMERCE_ORDER_CHECKOUT:
        ngx_http_commerce_order_place(r, ctx);
        return;

    case NGX_HTTP_COMMERCE_ORDER_REBUILD:
        ngx_http_commerce_order_rebuild(r, ctx);
        return;
    }

    ngx_http_commerce_order_read(r, ctx, olcf->api);
}


/*
 * POST /v1/admin/projections/rebuild, body {"projection":"orders"} or
 * none (all): projections.rebuild, keyless.
 */
static void
ngx_http_commerce_order_rebuild(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx)
{
    json_t        *cmd, *root, *p;
    json_error_t   err;

    p = NULL;
    root = NULL;

    if (ctx->body.len) {
        root = json_loadb((char *) ctx->body.data, ctx->body.len, 0, &err);
        p = json_is_object(root) ? json_object_get(root, "projection") : NULL;

        if (!json_is_object(root) || (p && !json_is_string(p))
            || json_object_size(root) != (p ? 1 : 0))
        {
            json_decref(root);
            ngx_http_commerce_order_fail(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_body",
                                         "the body is {\"projection\": "
                                         "name} or empty", "projection", 0);
            return;
        }
    }

    if (ngx_http_commerce_order_new_command(r, ctx,
                                            COMMERCE_CMD_PROJECTIONS_REBUILD,
                                            &cmd)
        != NGX_OK)
    {
        json_decref(root);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    json_object_set(cmd, "projection", p ? p : json_null());
    json_decref(root);

    ngx_str_null(&ctx->key);
    ctx->acked = ngx_http_commerce_order_command_acked;

    if (ngx_http_commerce_order_dump(r, ctx, cmd) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_commerce_order_send_command(r, ctx);
}


void
ngx_http_commerce_order_fail(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *msg, const char *field, time_t retry_after)
{
    ngx_http_finalize_request(r,
        ngx_http_commerce_order_problem(r, status, code, msg, field,
                                        retry_after));
}


ngx_int_t
ngx_http_commerce_order_problem(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *msg, const char *field, time_t retry_after)
{
    size_t            len, flen, mlen;
    ngx_buf_t        *b;
    ngx_table_elt_t  *h;

    if (r->header_sent) {
        return NGX_ERROR;
    }

    ngx_http_clean_header(r);

    mlen = ngx_strlen(msg);
    flen = field ? ngx_strlen(field) : 0;

    len = sizeof("{\"type\":\"about:blank\",\"title\":\"\",\"status\":,"
                 "\"error\":\"\",\"message\":\"\",\"field\":\"\"}") - 1
          + 2 * COMMERCE_JSON_ESCAPE_MAX(mlen) + NGX_INT_T_LEN
          + ngx_strlen(code) + COMMERCE_JSON_ESCAPE_MAX(flen);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"type\":\"about:blank\",\"title\":\"",
                         sizeof("{\"type\":\"about:blank\",\"title\":\"")
                         - 1);
    b->last = commerce_json_escape(b->last, (u_char *) msg, mlen,
                                   COMMERCE_JSON_BYTES);
    b->last = ngx_sprintf(b->last, "\",\"status\":%ui,\"error\":\"%s\","
                          "\"message\":\"", status, code);
    b->last = commerce_json_escape(b->last, (u_char *) msg, mlen,
                                   COMMERCE_JSON_BYTES);

    if (field) {
        b->last = ngx_cpymem(b->last, "\",\"field\":\"",
                             sizeof("\",\"field\":\"") - 1);
        b->last = commerce_json_escape(b->last, (u_char *) field, flen,
                                       COMMERCE_JSON_BYTES);
    }

    b->last = ngx_cpymem(b->last, "\"}", 2);

    if (retry_after > 0) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (h->value.data == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value.len = ngx_sprintf(h->value.data, "%T", retry_after)
                       - h->value.data;
    }

    if (status == NGX_HTTP_UNAUTHORIZED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");
        ngx_str_set(&h->value, "Bearer realm=\"commerce\"");
    }

    return ngx_http_commerce_send_typed(r, status, b,
                                        &ngx_http_commerce_order_ptype);
}


/* The parsed body is freed with the request. */
ngx_int_t
ngx_http_commerce_order_keep_root(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, json_t *root)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        json_decref(root);
        return NGX_ERROR;
    }

    ctx->root = root;
    cln->handler = ngx_http_commerce_order_root_cleanup;
    cln->data = ctx;

    return NGX_OK;
}


static void
ngx_http_commerce_order_root_cleanup(void *data)
{
    ngx_http_commerce_order_ctx_t  *ctx = data;

    json_decref(ctx->root);
    ctx->root = NULL;
}


ngx_int_t
ngx_http_commerce_order_send_doc(ngx_http_request_t *r, u_char *p,
    size_t len)
{
    ngx_buf_t        *b;
    ngx_table_elt_t  *h;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, p, len);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_HTTP_COMMERCE_ETAG_LEN);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "ETag");
    h->value.len = ngx_http_commerce_etag(h->value.data, b->pos, len)
                   - h->value.data;
    r->headers_out.etag = h;

    /* Cache-Control: no-store, as every answer of a user's data */
    return ngx_http_commerce_send_json(r, NGX_HTTP_OK, b);
}


ngx_int_t
ngx_http_commerce_order_arg(ngx_http_request_t *r, char *name, size_t len,
    ngx_str_t *value)
{
    if (ngx_http_arg(r, (u_char *) name, len, value) != NGX_OK) {
        ngx_str_set(value, "");
    }

    return NGX_OK;
}


static char *
ngx_http_commerce_order_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_commerce_order_loc_conf_t *olcf = conf;

    ngx_str_t                            *value;
    ngx_http_core_loc_conf_t             *clcf;
    ngx_http_commerce_order_api_t        *a;
    ngx_http_compile_complex_value_t      ccv;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    if (olcf->api != NGX_HTTP_COMMERCE_ORDER_NONE) {
        return "is duplicate: a location serves one order API";
    }

    value = cf->args->elts;

    for (a = ngx_http_commerce_order_apis; a->name.len; a++) {
        if (a->admin == cmd->offset && a->name.len == value[1].len
            && ngx_strncmp(a->name.data, value[1].data, value[1].len) == 0)
        {
            break;
        }
    }

    if (a->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "unknown %s API \"%V\"",
                           cmd->offset ? "admin" : "order", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (a->id != (cf->args->nelts == 3)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           a->id ? "\"%V\" takes the order id"
                                 : "\"%V\" takes no order id", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (a->id) {
        olcf->id = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (olcf->id == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[2];
        ccv.complex_value = olcf->id;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    olcf->api = a->api;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_commerce_order_handler;
    ngx_http_commerce_metrics_api(cf, NGX_HTTP_COMMERCE_API_ORDERS);

    ngx_http_commerce_redis_use(cf);

    kmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_commerce_kafka_module);
    kmcf->used = 1;

    return NGX_CONF_OK;
}


static void *
ngx_http_commerce_order_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_order_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_order_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->api = NGX_HTTP_COMMERCE_ORDER_NONE;
     *     conf->id = NULL;
     *     conf->topic = { 0, NULL };
     */

    conf->owner = NGX_CONF_UNSET_PTR;
    conf->admin = NGX_CONF_UNSET_PTR;
    conf->idem_ttl = NGX_CONF_UNSET_MSEC;
    conf->idem_inflight_ttl = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_commerce_order_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_commerce_order_loc_conf_t *prev = parent;
    ngx_http_commerce_order_loc_conf_t *conf = child;

    ngx_conf_merge_str_value(conf->topic, prev->topic,
                             COMMERCE_TOPIC_COMMANDS);
    ngx_conf_merge_ptr_value(conf->owner, prev->owner, NULL);
    ngx_conf_merge_ptr_value(conf->admin, prev->admin, NULL);
    ngx_conf_merge_msec_value(conf->idem_ttl, prev->idem_ttl,
                              24 * 60 * 60 * 1000);
    ngx_conf_merge_msec_value(conf->idem_inflight_ttl,
                              prev->idem_inflight_ttl, 60 * 1000);

    if (conf->topic.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_order_topic\" must not be empty");
        return NGX_CONF_ERROR;
    }

    if (conf->idem_ttl < 1000 || conf->idem_inflight_ttl < 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_idempotency_ttl\" and "
                           "\"commerce_idempotency_inflight_ttl\" must be "
                           "at least 1s");
        return NGX_CONF_ERROR;
    }

    if (conf->api == NGX_HTTP_COMMERCE_ORDER_NONE) {
        return NGX_CONF_OK;
    }

    if (!ngx_http_commerce_redis_configured(cf)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_orders\" and \"commerce_order_admin\" "
                           "need \"commerce_redis_server\"");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_commerce_kafka_add_topic(cf, &conf->topic) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
