/*
 * ngx_http_commerce_cart_module: the cart API (docs/api.md), its
 * directives (docs/directives.md), and the answers: each line priced from
 * the read model now, the total in exact minor units, the version as the
 * ETag.  The store (the script, the checkout interface) is in
 * ngx_http_commerce_cart_store.c.
 *
 *   commerce_cart;                  POST: a new cart of the owner
 *   commerce_cart $cart_id;         GET, DELETE the cart
 *   commerce_cart $cart_id $sku;    PUT {"quantity":n}, DELETE a line
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "commerce_currency.h"
#include "commerce_inbound.h"
#include "commerce_json.h"

#include "ngx_http_commerce_cart_store.h"
#include "ngx_http_commerce_metrics.h"
#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_redis.h"
#include "ngx_http_commerce_util.h"


/* a cart id: 128 random bits in lowercase hex */
#define NGX_HTTP_COMMERCE_CART_ID_LEN    32

/* the largest request body of the cart API */
#define NGX_HTTP_COMMERCE_CART_MAX_BODY  4096

/* a valid request that the cart's rules refuse (nginx has no name) */
#define NGX_HTTP_COMMERCE_CART_UNPROCESSABLE  422

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
    u_char                     *file;       /* where commerce_cart is */
    ngx_uint_t                  line;
} ngx_http_commerce_cart_loc_conf_t;


typedef struct {
    ngx_http_commerce_cart_op_t  op;
    u_char                       id[NGX_HTTP_COMMERCE_CART_ID_LEN];
} ngx_http_commerce_cart_ctx_t;


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
static void ngx_http_commerce_cart_answer(ngx_http_request_t *r, void *data,
    ngx_int_t rc, ngx_http_commerce_cart_t *cart);
static ngx_int_t ngx_http_commerce_cart_refused(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_commerce_cart_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *msg);
static ngx_int_t ngx_http_commerce_cart_send(ngx_http_request_t *r,
    ngx_http_commerce_cart_ctx_t *ctx, ngx_http_commerce_cart_t *cart);
static ngx_buf_t *ngx_http_commerce_cart_render(ngx_http_request_t *r,
    ngx_http_commerce_cart_t *cart);
static u_char *ngx_http_commerce_cart_money(u_char *p, int64_t minor,
    int exp, u_char *currency);
static char *ngx_http_commerce_cart(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_commerce_cart_owner(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_http_complex_value_t *ngx_http_commerce_cart_value(
    ngx_conf_t *cf, ngx_str_t *value);
static void *ngx_http_commerce_cart_create_loc_conf(ngx_conf_t *cf);
static ngx_uint_t ngx_http_commerce_cart_variable(ngx_conf_t *cf,
    ngx_str_t *name);
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


/* the owner when commerce_cart_owner is not given: the JWT module's */
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

    if (rc == NGX_OK) {
        rc = ngx_http_commerce_cart_args(r, clcf, ctx);
    }

    if (rc != NGX_OK) {
        return rc;
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
 * The operation of the method in this kind of location: NGX_OK, or the
 * 405 sent (the body discarded), as a content handler returns it.
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
            return NGX_OK;
        }

        allow = "POST";
        break;

    case NGX_HTTP_COMMERCE_CART_API_CART:
        if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
            ctx->op.op = NGX_HTTP_COMMERCE_CART_OP_GET;
            return NGX_OK;
        }

        if (r->method == NGX_HTTP_DELETE) {
            ctx->op.op = NGX_HTTP_COMMERCE_CART_OP_DELETE;
            return NGX_OK;
        }

        allow = "GET, HEAD, DELETE";
        break;

    default: /* NGX_HTTP_COMMERCE_CART_API_ITEM */
        if (r->method == NGX_HTTP_PUT) {
            ctx->op.op = NGX_HTTP_COMMERCE_CART_OP_SET;
            return NGX_OK;
        }

        if (r->method == NGX_HTTP_DELETE) {
            ctx->op.op = NGX_HTTP_COMMERCE_CART_OP_REMOVE;
            return NGX_OK;
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
 * The owner, the cart id, the sku and If-Match of the request: NGX_OK, or
 * the answer sent (401, 404, 400), as a content handler returns it.
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

    return NGX_OK;

refuse:

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_commerce_send_error(r, status, code, msg, 0);
}


/*
 * If-Match as the script takes it: empty without one, "*", or the cart
 * versions its strong entity-tags name ("3" "7" -> "3 7 "); "-" when it
 * names none (a weak or foreign tag never matches: RFC 9110, 13.1.1).
 */
static ngx_int_t
ngx_http_commerce_cart_if_match(ngx_http_request_t *r, ngx_str_t *cond)
{
    u_char           *p, *q, *last, *start, *dst;
    ngx_uint_t        weak;
    ngx_table_elt_t  *h;

    h = r->headers_in.if_match;

    if (h == NULL) {
        ngx_str_set(cond, "");
        return NGX_OK;
    }

    p = h->value.data;
    last = p + h->value.len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (last - p == 1 && *p == '*') {
        ngx_str_set(cond, "*");
        return NGX_OK;
    }

    dst = ngx_pnalloc(r->pool, h->value.len + 1);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    cond->data = dst;

    while (p < last) {

        if (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
            continue;
        }

        weak = (last - p > 2 && p[0] == 'W' && p[1] == '/');

        if (weak) {
            p += 2;
        }

        if (*p != '"') {
            break;              /* not an entity-tag: nothing more */
        }

        start = ++p;

        while (p < last && *p != '"') {
            p++;
        }

        if (p == last) {
            break;
        }

        for (q = start; q < p && *q >= '0' && *q <= '9'; q++) {
            /* void */
        }

        if (!weak && q == p && p > start
            && p - start <= (ssize_t) NGX_INT64_LEN)
        {
            dst = ngx_cpymem(dst, start, p - start);
            *dst++ = ' ';
        }

        p++;
    }

    if (dst == cond->data) {
        *dst++ = '-';
    }

    cond->len = dst - cond->data;

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

        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "commerce cart: RAND_bytes() failed");
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


static void
ngx_http_commerce_cart_answer(ngx_http_request_t *r, void *data,
    ngx_int_t rc, ngx_http_commerce_cart_t *cart)
{
    ngx_http_commerce_cart_ctx_t  *ctx = data;

    if (rc != NGX_HTTP_COMMERCE_CART_OK) {
        ngx_http_finalize_request(r, ngx_http_commerce_cart_refused(r, rc));
        return;
    }

    ngx_http_finalize_request(r, ngx_http_commerce_cart_send(r, ctx, cart));
}


/* The answer to a refusal of the script or a failure of Redis. */
static ngx_int_t
ngx_http_commerce_cart_refused(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_uint_t   status;
    const char  *code, *msg;

    status = NGX_HTTP_COMMERCE_CART_UNPROCESSABLE;

    switch (rc) {

    case NGX_HTTP_COMMERCE_CART_NOT_FOUND:
        status = NGX_HTTP_NOT_FOUND;
        code = "cart_not_found";
        msg = "no such cart";
        break;

    case NGX_HTTP_COMMERCE_CART_CHANGED:
        status = NGX_HTTP_PRECONDITION_FAILED;
        code = "precondition_failed";
        msg = "the cart is not at the version If-Match names";
        break;

    case NGX_HTTP_COMMERCE_CART_UNKNOWN_STORE:
        code = "unknown_store";
        msg = "no such store";
        break;

    case NGX_HTTP_COMMERCE_CART_UNKNOWN_SKU:
        code = "unknown_sku";
        msg = "the store has no such sku";
        break;

    case NGX_HTTP_COMMERCE_CART_NOT_ORDERABLE:
        code = "sku_not_orderable";
        msg = "the sku is not orderable in this store now (out of stock "
              "or without a price)";
        break;

    case NGX_HTTP_COMMERCE_CART_TOO_MANY_ITEMS:
        code = "too_many_items";
        msg = "the cart has commerce_cart_max_items lines already";
        break;

    case NGX_HTTP_COMMERCE_CART_NOT_IN_CART:
        status = NGX_HTTP_NOT_FOUND;
        code = "item_not_found";
        msg = "the cart has no line of this sku";
        break;

    case NGX_HTTP_COMMERCE_CART_DOWN:
        return ngx_http_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "redis_unavailable",
                                            "the cart store is unavailable",
                                            1);

    case NGX_HTTP_COMMERCE_CART_TIMEOUT:
        status = NGX_HTTP_GATEWAY_TIME_OUT;
        code = "redis_timeout";
        msg = "the cart store did not answer in time";
        break;

    default: /* NGX_HTTP_COMMERCE_CART_ERROR */
        status = NGX_HTTP_BAD_GATEWAY;
        code = "redis_error";
        msg = "the cart store answered with an error";
        break;
    }

    return ngx_http_commerce_cart_error(r, status, code, msg);
}


/* The error responder's answer, with a reason phrase for a 422. */
static ngx_int_t
ngx_http_commerce_cart_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *msg)
{
    if (status == NGX_HTTP_COMMERCE_CART_UNPROCESSABLE) {
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Content");
    }

    return ngx_http_commerce_send_error(r, status, code, msg, 0);
}


/*
 * 201 with Location (created), 204 (deleted), or 200 with the cart; its
 * version is the ETag.  nginx's not_modified filter is off: If-Match was
 * the script's to check, against the version before the change.
 */
static ngx_int_t
ngx_http_commerce_cart_send(ngx_http_request_t *r,
    ngx_http_commerce_cart_ctx_t *ctx, ngx_http_commerce_cart_t *cart)
{
    u_char           *p;
    ngx_buf_t        *b;
    ngx_uint_t        status;
    ngx_table_elt_t  *h;

    r->disable_not_modified = 1;

    if (ctx->op.op == NGX_HTTP_COMMERCE_CART_OP_DELETE) {
        r->headers_out.status = NGX_HTTP_NO_CONTENT;
        r->headers_out.content_length_n = 0;
        r->header_only = 1;

        return ngx_http_send_header(r);
    }

    b = ngx_http_commerce_cart_render(r, cart);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_INT64_LEN + 2);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "ETag");
    h->value.len = ngx_sprintf(h->value.data, "\"%uL\"", cart->version)
                   - h->value.data;
    r->headers_out.etag = h;

    status = NGX_HTTP_OK;

    if (ctx->op.op == NGX_HTTP_COMMERCE_CART_OP_CREATE) {
        status = NGX_HTTP_CREATED;

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* the collection's URI and the id: /v1/carts/{id} */

        h->value.len = r->uri.len + 1 + cart->id.len;
        h->value.data = ngx_pnalloc(r->pool, h->value.len);
        if (h->value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_cpymem(h->value.data, r->uri.data, r->uri.len);
        *p++ = '/';
        ngx_memcpy(p, cart->id.data, cart->id.len);

        /* not headers_out.location: nginx would make it absolute */

        h->hash = 1;
        ngx_str_set(&h->key, "Location");
    }

    return ngx_http_commerce_send_json(r, status, b);
}


/*
 * {"id":"...","store_id":"...","version":n,"items":[{"sku":"...",
 * "quantity":n,"orderable":true,"unit_price":{money},"line_total":
 * {money}},...],"total":{money}}: money in exact minor units.  A line
 * without a price has null ones; the total is null then, for an empty
 * cart, for lines in different currencies, or past COMMERCE_MONEY_MAX.
 */
static ngx_buf_t *
ngx_http_commerce_cart_render(ngx_http_request_t *r,
    ngx_http_commerce_cart_t *cart)
{
    size_t                          len;
    int64_t                         line_minor, total;
    ngx_buf_t                      *b;
    ngx_uint_t                      i, has_total;
    ngx_http_commerce_cart_line_t  *line, *first;

    /* the longest money object, with its key */
    static const size_t  money = sizeof(",\"line_total\":{\"amount\":\"\","
                                        "\"currency\":\"XXX\","
                                        "\"amount_minor\":}") - 1
                                 + COMMERCE_MONEY_LEN + NGX_INT64_LEN;

    len = sizeof("{\"id\":\"\",\"store_id\":\"\",\"version\":,\"items\":[],"
                 "\"total\":null}") - 1
          + cart->id.len + NGX_INT64_LEN + money
          + commerce_json_escape_len(cart->store_id.data, cart->store_id.len,
                                     COMMERCE_JSON_BYTES);

    for (i = 0; i < cart->nlines; i++) {
        len += sizeof("{\"sku\":\"\",\"quantity\":,\"orderable\":false,"
                      "\"unit_price\":null,\"line_total\":null},") - 1
               + NGX_INT64_LEN + 2 * money
               + commerce_json_escape_len(cart->lines[i].sku.data,
                                          cart->lines[i].sku.len,
                                          COMMERCE_JSON_BYTES);
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    b->last = ngx_sprintf(b->last, "{\"id\":\"%V\",\"store_id\":\"",
                          &cart->id);
    b->last = commerce_json_escape(b->last, cart->store_id.data,
                                   cart->store_id.len, COMMERCE_JSON_BYTES);
    b->last = ngx_sprintf(b->last, "\",\"version\":%uL,\"items\":[",
                          cart->version);

    total = 0;
    has_total = (cart->nlines > 0);
    first = cart->lines;

    for (i = 0; i < cart->nlines; i++) {
        line = &cart->lines[i];

        if (i) {
            *b->last++ = ',';
        }

        b->last = ngx_cpymem(b->last, "{\"sku\":\"", 8);
        b->last = commerce_json_escape(b->last, line->sku.data, line->sku.len,
                                       COMMERCE_JSON_BYTES);
        b->last = ngx_sprintf(b->last, "\",\"quantity\":%uL,\"orderable\":%s,"
                              "\"unit_price\":", line->quantity,
                              line->orderable ? "true" : "false");

        if (!line->priced
            || __builtin_mul_overflow(line->unit_minor,
                                      (int64_t) line->quantity, &line_minor)
            || line_minor > COMMERCE_MONEY_MAX)
        {
            b->last = ngx_cpymem(b->last, "null,\"line_total\":null}", 23);
            has_total = 0;
            continue;
        }


        b->last = ngx_http_commerce_cart_money(b->last, line->unit_minor,
                                               line->exponent,
                                               line->currency);
        b->last = ngx_cpymem(b->last, ",\"line_total\":", 14);
        b->last = ngx_http_commerce_cart_money(b->last, line_minor,
                                               line->exponent,
                                               line->currency);
        *b->last++ = '}';

        if (ngx_strcmp(line->currency, first->currency) != 0
            || __builtin_add_overflow(total, line_minor, &total)
            || total > COMMERCE_MONEY_MAX)
        {
            has_total = 0;
        }
    }

    b->last = ngx_cpymem(b->last, "],\"total\":", 10);

    if (has_total) {
        b->last = ngx_http_commerce_cart_money(b->last, total,
                                               first->exponent,
                                               first->currency);

    } else {
        b->last = ngx_cpymem(b->last, "null", 4);
    }

    *b->last++ = '}';

    return b;
}


/* {"amount":"476.14","currency":"EUR","amount_minor":47614} */
static u_char *
ngx_http_commerce_cart_money(u_char *p, int64_t minor, int exp,
    u_char *currency)
{
    p = ngx_cpymem(p, "{\"amount\":\"", 11);
    p = (u_char *) commerce_money_format((char *) p, minor, exp);

    return ngx_sprintf(p, "\",\"currency\":\"%s\",\"amount_minor\":%L}",
                       currency, minor);
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
    clcf->file = cf->conf_file->file.name.data;
    clcf->line = cf->conf_file->line;

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
     *     conf->file = NULL;
     *     conf->line = 0;
     */

    conf->owner = NGX_CONF_UNSET_PTR;
    conf->ttl = NGX_CONF_UNSET_MSEC;
    conf->max_quantity = NGX_CONF_UNSET_UINT;
    conf->max_items = NGX_CONF_UNSET_UINT;

    return conf;
}


/*
 * Whether a variable of that name is defined: the JWT module's, known
 * once every module's preconfiguration has run (merge time).
 */
static ngx_uint_t
ngx_http_commerce_cart_variable(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_uint_t                  i;
    ngx_hash_key_t             *key;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    if (cmcf->variables_keys == NULL) {
        return 0;
    }

    key = cmcf->variables_keys->keys.elts;

    for (i = 0; i < cmcf->variables_keys->keys.nelts; i++) {
        if (key[i].key.len == name->len
            && ngx_strncmp(key[i].key.data, name->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static char *
ngx_http_commerce_cart_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_commerce_cart_loc_conf_t *prev = parent;
    ngx_http_commerce_cart_loc_conf_t *conf = child;

    ngx_str_t  name;

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

    /* the default owner, the token's sub, once the JWT module defines it */

    name.data = ngx_http_commerce_cart_default_owner.data + 1;
    name.len = ngx_http_commerce_cart_default_owner.len - 1;

    if (!ngx_http_commerce_cart_variable(cf, &name)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_cart\" in %s:%ui needs "
                           "\"commerce_cart_owner\": there is no $%V "
                           "variable to default to", conf->file, conf->line,
                           &name);
        return NGX_CONF_ERROR;
    }

    conf->owner = ngx_http_commerce_cart_value(cf,
                                     &ngx_http_commerce_cart_default_owner);

    return conf->owner ? NGX_CONF_OK : NGX_CONF_ERROR;
}
