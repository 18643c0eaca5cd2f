/*
 * ngx_http_commerce_cart_module: the cart API's directives (docs/
 * directives.md) and requests: the method, owner, ids, If-Match and body
 * of each, into one operation of the store (ngx_http_commerce_cart_store.c,
 * the script and the checkout interface); the answers are
 * ngx_http_commerce_cart_answer.c's.
 *
 *   commerce_cart;                  POST: a new cart of the owner
 *   commerce_cart $cart_id;         GET, DELETE the cart
 *   commerce_cart $cart_id $sku;    PUT {"quantity":n}, DELETE a line
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_inbound.h"

#include "ngx_http_commerce_cart_private.h"
#include "ngx_http_commerce_metrics.h"
#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_redis.h"
#include "ngx_http_commerce_util.h"


/* the largest request body of the cart API */
#define NGX_HTTP_COMMERCE_CART_MAX_BODY  4096

/* the longest owner (a token's sub) */
#define NGX_HTTP_COMMERCE_CART_OWNER_MAX 1024


typedef enum {
    NGX_HTTP_COMMERCE_CART_API_NONE = 0,
    NGX_HTTP_COMMERCE_CART_API_CARTS,       /* commerce_cart; */
    NGX_HTTP_COMMERCE_CART_API_CART,        /* commerce_cart $id; */
    NGX_HTTP_COMMERCE_CART_API_ITEM         /* commerce_cart $id $sku; */
} ngx_http_commerce_cart_api_e;


typedef struct {
    ngx_uint_t                  api;
    ngx_http_complex_value_t   *id;
    ngx_http_complex_value_t   *sku;
    ngx_http_complex_value_t   *owner;
    ngx_msec_t                  ttl;
    ngx_uint_t                  max_quantity;
    ngx_uint_t                  max_items;
} ngx_http_commerce_cart_loc_conf_t;


static ngx_int_t ngx_http_commerce_cart_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_commerce_cart_method(ngx_http_request_t *r,
    ngx_http_commerce_cart_loc_conf_t *clcf,
    ngx_http_commerce_cart_ctx_t *ctx);
static ngx_int_t ngx_http_commerce_cart_args(ngx_http_request_t *r,
    ngx_http_commerce_cart_loc_conf_t *clcf,
    ngx_http_commerce_cart_ctx_t *ctx);
static ngx_int_t ngx_http_commerce_cart_if_match(ngx_http_request_t *r,
    ngx_str_t *cond);
static void ngx_http_commerce_cart_body(ngx_http_request_t *r);
static ngx_uint_t ngx_http_commerce_cart_parse(ngx_http_request_t *r,
    ngx_http_commerce_cart_ctx_t *ctx, u_char *p, size_t len,
    const char **code, const char **msg);
static ngx_int_t ngx_http_commerce_cart_start(ngx_http_request_t *r,
    ngx_http_commerce_cart_ctx_t *ctx);
static char *ngx_http_commerce_cart(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_commerce_cart_owner(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_http_complex_value_t *ngx_http_commerce_cart_value(
    ngx_conf_t *cf, ngx_str_t *value);
static void *ngx_http_commerce_cart_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_cart_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_conf_num_bounds_t  ngx_http_commerce_cart_quantity_bounds = {
    ngx_http_commerce_conf_bounds, 1, 10000
};

static ngx_conf_num_bounds_t  ngx_http_commerce_cart_items_bounds = {
    ngx_http_commerce_conf_bounds, 1, 1000
};


static ngx_command_t  ngx_http_commerce_cart_commands[] = {

    { ngx_string("commerce_cart"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_http_commerce_cart,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_cart_owner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_commerce_cart_owner,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_cart_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_cart_loc_conf_t, ttl),
      NULL },

    { ngx_string("commerce_cart_max_quantity"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_cart_loc_conf_t, max_quantity),
      &ngx_http_commerce_cart_quantity_bounds },

    { ngx_string("commerce_cart_max_items"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_cart_loc_conf_t, max_items),
      &ngx_http_commerce_cart_items_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_cart_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_commerce_cart_create_loc_conf,  /* create location configuration */
    ngx_http_commerce_cart_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_commerce_cart_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_cart_module_ctx,    /* module context */
    ngx_http_commerce_cart_commands,       /* module directives */
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


/* the owner when commerce_cart_owner is not given: the verified token's */
static ngx_str_t  ngx_http_commerce_cart_default_owner =
    ngx_string("$commerce_jwt_sub");


static ngx_int_t
ngx_http_commerce_cart_handler(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_http_commerce_cart_ctx_t       *ctx;
    ngx_http_commerce_cart_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_cart_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_commerce_cart_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->op.ttl = clcf->ttl;
    ctx->op.max_items = clcf->max_items;

    rc = ngx_http_commerce_cart_method(r, clcf, ctx);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_commerce_cart_args(r, clcf, ctx);
    }

    if (rc != NGX_DECLINED) {
        return rc;      /* answered */
    }

    if (ctx->op.op == NGX_HTTP_COMMERCE_CART_OP_CREATE
        || ctx->op.op == NGX_HTTP_COMMERCE_CART_OP_SET)
    {
        if (r->headers_in.content_length_n > NGX_HTTP_COMMERCE_CART_MAX_BODY) {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_commerce_send_error(r,
                                            NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                            "body_too_large",
                                            "a cart request body is at most "
                                            "4096 bytes", 0);
        }

        ngx_http_set_ctx(r, ctx, ngx_http_commerce_cart_module);

        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                                               ngx_http_commerce_cart_body);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_commerce_cart_start(r, ctx);

    if (rc == NGX_DONE) {
        r->main->count++;
    }

    return rc;
}


/*
 * The operation of the method in this kind of location: NGX_DECLINED (go
 * on), or the 405 sent (the body discarded), as a content handler returns
 * it.
 */
static ngx_int_t
ngx_http_commerce_cart_method(ngx_http_request_t *r,
    ngx_http_commerce_cart_loc_conf_t *clcf,
    ngx_http_commerce_cart_ctx_t *ctx)
{
    ngx_int_t    rc;
    const char  *allow;

    switch (clcf->api) {

    case NGX_HTTP_COMMERCE_CART_API_CARTS:
        if (r->method == NGX_HTTP_POST) {
            ctx->op.op = NGX_HTTP_COMMERCE_CART_OP_CREATE;
            return NGX_DECLINED;
        }

        allow = "POST";
        break;

    case NGX_HTTP_COMMERCE_CART_API_CART:
        if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
            ctx->op.op = NGX_HTTP_COMMERCE_CART_OP_GET;
            return NGX_DECLINED;
        }

        if (r->method == NGX_HTTP_DELETE) {
            ctx->op.op = NGX_HTTP_COMMERCE_CART_OP_DELETE;
            return NGX_DECLINED;
        }

        allow = "GET, HEAD, DELETE";
        break;

    default: /* NGX_HTTP_COMMERCE_CART_API_ITEM */
        if (r->method == NGX_HTTP_PUT) {
            ctx->op.op = NGX_HTTP_COMMERCE_CART_OP_SET;
            return NGX_DECLINED;
        }

        if (r->method == NGX_HTTP_DELETE) {
            ctx->op.op = NGX_HTTP_COMMERCE_CART_OP_REMOVE;
            return NGX_DECLINED;
        }

        allow = "PUT, DELETE";
        break;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_commerce_send_error_allow(r, NGX_HTTP_NOT_ALLOWED,
                                              "method_not_allowed",
                                              "the method is not allowed "
                                              "here", 0, allow);
}


/*
 * The owner, the cart id, the sku and If-Match of the request:
 * NGX_DECLINED (go on), or the answer sent (401, 404, 400), as a content
 * handler returns it.
 */
static ngx_int_t
ngx_http_commerce_cart_args(ngx_http_request_t *r,
    ngx_http_commerce_cart_loc_conf_t *clcf,
    ngx_http_commerce_cart_ctx_t *ctx)
{
    u_char       *p, *last;
    ngx_int_t     rc;
    ngx_uint_t    status;
    const char   *code, *msg;
    ngx_str_t    *id;

    if (ngx_http_complex_value(r, clcf->owner, &ctx->op.owner) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    id = &ctx->op.id;

    if (ctx->op.owner.len == 0
        || ctx->op.owner.len > NGX_HTTP_COMMERCE_CART_OWNER_MAX)
    {
        status = NGX_HTTP_UNAUTHORIZED;
        code = "unauthenticated";
        msg = "a cart belongs to an authenticated user";
        goto refuse;
    }

    if (clcf->id) {
        if (ngx_http_complex_value(r, clcf->id, id) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        last = id->data + id->len;

        for (p = id->data; p < last; p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
                break;
            }
        }

        if (id->len != NGX_HTTP_COMMERCE_CART_ID_LEN || p != last) {
            /* no cart has such an id */
            status = NGX_HTTP_NOT_FOUND;
            code = "cart_not_found";
            msg = "no such cart";
            goto refuse;
        }
    }

    if (clcf->sku) {
        if (ngx_http_complex_value(r, clcf->sku, &ctx->op.sku) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (!ngx_http_commerce_valid_id(ctx->op.sku.data, ctx->op.sku.len)) {
            status = NGX_HTTP_BAD_REQUEST;
            code = "invalid_sku";
            msg = "a sku is 1 to 256 bytes without spaces or control "
                  "characters";
            goto refuse;
        }
    }

    if (ngx_http_commerce_cart_if_match(r, &ctx->op.if_match) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;

refuse:

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_commerce_send_error(r, status, code, msg, 0);
}


/* If-Match as the script takes it: empty without one, else its versions */
static ngx_int_t
ngx_http_commerce_cart_if_match(ngx_http_request_t *r, ngx_str_t *cond)
{
    ngx_table_elt_t  *h;

    h = r->headers_in.if_match;

    if (h == NULL) {
        ngx_str_set(cond, "");
        return NGX_OK;
    }

    cond->data = ngx_pnalloc(r->pool, h->value.len + 1);
    if (cond->data == NULL) {
        return NGX_ERROR;
    }

    cond->len = ngx_http_commerce_if_match_versions(cond->data, h->value.data,
                                                    h->value.len)
                - cond->data;

    return NGX_OK;
}


static void
ngx_http_commerce_cart_body(ngx_http_request_t *r)
{
    u_char                        *p, *body;
    size_t                         len;
    ngx_int_t                      rc;
    ngx_uint_t                     status;
    const char                    *code, *msg;
    ngx_chain_t                   *cl;
    ngx_http_commerce_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_cart_module);

    body = ngx_pnalloc(r->pool, NGX_HTTP_COMMERCE_CART_MAX_BODY);
    if (body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* a chunked body is known only now: at most 4096 bytes, in memory */

    p = body;
    len = 0;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        if (ngx_buf_special(cl->buf)) {
            continue;
        }

        if (!ngx_buf_in_memory(cl->buf)
            || len + ngx_buf_size(cl->buf) > NGX_HTTP_COMMERCE_CART_MAX_BODY)
        {
            ngx_http_finalize_request(r, ngx_http_commerce_send_error(r,
                                          NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          "body_too_large",
                                          "a cart request body is at most "
                                          "4096 bytes", 0));
            return;
        }

        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        len = p - body;
    }

    status = ngx_http_commerce_cart_parse(r, ctx, body, len, &code, &msg);

    if (status != NGX_OK) {
        rc = ngx_http_commerce_cart_error(r, status, code, msg);

    } else {
        rc = ngx_http_commerce_cart_start(r, ctx);

        if (rc == NGX_DONE) {
            return;     /* the answer finalizes the request */
        }
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * The body of POST ({"store_id":"..."}) or PUT ({"quantity":n}) into
 * ctx->op: NGX_OK, or the status (400, 422, 500) with *code and *msg.
 */
static ngx_uint_t
ngx_http_commerce_cart_parse(ngx_http_request_t *r,
    ngx_http_commerce_cart_ctx_t *ctx, u_char *p, size_t len,
    const char **code, const char **msg)
{
    json_t                             *root, *v;
    ngx_uint_t                          status;
    const char                         *key;
    json_error_t                        err;
    ngx_http_commerce_cart_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_cart_module);

    root = NULL;
    status = NGX_HTTP_BAD_REQUEST;

    *code = commerce_inbound_parse_json((const char *) p, len, &root, &err);

    if (*code) {
        *msg = "the body must be one JSON object";
        goto refuse;
    }

    *code = "invalid_field";

    if (ctx->op.op == NGX_HTTP_COMMERCE_CART_OP_CREATE) {
        v = json_object_get(root, "store_id");
        *msg = "store_id must be a store id";

        if (!json_is_string(v)
            || !ngx_http_commerce_valid_id((u_char *) json_string_value(v),
                                           json_string_length(v)))
        {
            goto refuse;
        }

        ctx->op.store_id.len = json_string_length(v);
        ctx->op.store_id.data = ngx_pnalloc(r->pool, ctx->op.store_id.len);
        if (ctx->op.store_id.data == NULL) {
            json_decref(root);
            *code = "internal_error";
            *msg = "out of memory";
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(ctx->op.store_id.data, json_string_value(v),
                   ctx->op.store_id.len);

    } else {
        v = json_object_get(root, "quantity");
        *msg = "quantity must be an integer";

        if (!json_is_integer(v)) {
            goto refuse;
        }

        if (json_integer_value(v) < 0
            || json_integer_value(v) > (json_int_t) clcf->max_quantity)
        {
            status = NGX_HTTP_COMMERCE_CART_UNPROCESSABLE;
            *code = "quantity_out_of_range";
            *msg = "quantity must be from 0 (removes the line) to "
                   "commerce_cart_max_quantity";
            goto refuse;
        }

        ctx->op.quantity = json_integer_value(v);
    }

    /* nothing else: a misspelt field is not silently ignored */

    json_object_foreach(root, key, v) {
        if (ngx_strcmp(key, ctx->op.op == NGX_HTTP_COMMERCE_CART_OP_CREATE
                            ? "store_id" : "quantity")
            != 0)
        {
            *code = "unknown_field";
            *msg = ctx->op.op == NGX_HTTP_COMMERCE_CART_OP_CREATE
                   ? "the body has only store_id" : "the body has only "
                                                    "quantity";
            goto refuse;
        }
    }

    json_decref(root);

    return NGX_OK;

refuse:

    if (root) {
        json_decref(root);
    }

    return status;
}


/* Sends the operation: NGX_DONE, or the answer (503) as a handler's rc. */
static ngx_int_t
ngx_http_commerce_cart_start(ngx_http_request_t *r,
    ngx_http_commerce_cart_ctx_t *ctx)
{
    u_char     rnd[NGX_HTTP_COMMERCE_CART_ID_LEN / 2];
    time_t     retry_after;
    ngx_int_t  rc;

    if (ctx->op.op == NGX_HTTP_COMMERCE_CART_OP_CREATE) {

        /* a new id: 128 bits of OpenSSL's CSPRNG, in hex */

        if (ngx_http_commerce_random(r->connection->log, rnd, sizeof(rnd))
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_hex_dump(ctx->id, rnd, sizeof(rnd));

        ctx->op.id.data = ctx->id;
        ctx->op.id.len = NGX_HTTP_COMMERCE_CART_ID_LEN;
    }

    rc = ngx_http_commerce_cart_run(r, &ctx->op, ngx_http_commerce_cart_answer,
                                    ctx, &retry_after);

    if (rc == NGX_OK) {
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "redis_unavailable",
                                            "the cart store is unavailable",
                                            retry_after);
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static char *
ngx_http_commerce_cart(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_commerce_cart_loc_conf_t *clcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *core;

    if (clcf->api != NGX_HTTP_COMMERCE_CART_API_NONE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts > 1) {
        clcf->id = ngx_http_commerce_cart_value(cf, &value[1]);
        if (clcf->id == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (cf->args->nelts > 2) {
        clcf->sku = ngx_http_commerce_cart_value(cf, &value[2]);
        if (clcf->sku == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    clcf->api = NGX_HTTP_COMMERCE_CART_API_CARTS + cf->args->nelts - 1;

    ngx_http_commerce_metrics_api(cf, NGX_HTTP_COMMERCE_API_CART);

    core = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    core->handler = ngx_http_commerce_cart_handler;

    ngx_http_commerce_redis_use(cf);

    return NGX_CONF_OK;
}


static char *
ngx_http_commerce_cart_owner(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_commerce_cart_loc_conf_t *clcf = conf;

    ngx_str_t  *value;

    if (clcf->owner != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    clcf->owner = ngx_http_commerce_cart_value(cf, &value[1]);

    return clcf->owner ? NGX_CONF_OK : NGX_CONF_ERROR;
}


static ngx_http_complex_value_t *
ngx_http_commerce_cart_value(ngx_conf_t *cf, ngx_str_t *value)
{
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NULL;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NULL;
    }

    return cv;
}


static void *
ngx_http_commerce_cart_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_cart_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_cart_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->api = NGX_HTTP_COMMERCE_CART_API_NONE;
     *     conf->id = NULL;
     *     conf->sku = NULL;
     */

    conf->owner = NGX_CONF_UNSET_PTR;
    conf->ttl = NGX_CONF_UNSET_MSEC;
    conf->max_quantity = NGX_CONF_UNSET_UINT;
    conf->max_items = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_commerce_cart_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_commerce_cart_loc_conf_t *prev = parent;
    ngx_http_commerce_cart_loc_conf_t *conf = child;

    ngx_conf_merge_ptr_value(conf->owner, prev->owner, NGX_CONF_UNSET_PTR);
    ngx_conf_merge_msec_value(conf->ttl, prev->ttl, 7 * 86400 * 1000);
    ngx_conf_merge_uint_value(conf->max_quantity, prev->max_quantity, 99);
    ngx_conf_merge_uint_value(conf->max_items, prev->max_items, 100);

    if (conf->ttl < 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_cart_ttl\" must be at least 1s");
        return NGX_CONF_ERROR;
    }

    if (conf->api == NGX_HTTP_COMMERCE_CART_API_NONE
        || conf->owner != NGX_CONF_UNSET_PTR)
    {
        return NGX_CONF_OK;
    }

    /* the token's sub, from the JWT module of this .so */

    conf->owner = ngx_http_commerce_cart_value(cf,
                                     &ngx_http_commerce_cart_default_owner);

    return conf->owner ? NGX_CONF_OK : NGX_CONF_ERROR;
}
