/*
 * POST /v1/orders: the body checked (400 for a wrong type, 422 for a
 * wrong value, naming the field), the Idempotency-Key claimed, the skus
 * checked against the store's read model, order.place published, and the
 * answer stored in the key's record before the 202 goes out.  A command
 * the broker does not take releases the record: 503, and the retry goes
 * through.
 *
 * Body: {"store_id", "items": [{"sku", "quantity"}], "shipping_address":
 * {...}, "payment_method": "<provider token>"} (docs/api.md), or
 * {"cart_id"} instead of the store and the items.
 *
 * A cart's order (a cart_id, or POST /v1/carts/{id}/checkout) takes the
 * store and the lines from the caller's cart (ngx_http_commerce_cart.h)
 * instead, and deletes the cart once the broker has the order; a failed
 * publish keeps it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_contract.h"
#include "commerce_inbound.h"

#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_order.h"
#include "ngx_http_commerce_redis.h"


/* why the body is refused: the status, a code, the message and field */
typedef struct {
    ngx_uint_t                  status;
    const char                 *code;
    const char                 *msg;
    u_char                     *field;
} ngx_http_commerce_order_bad_t;


static ngx_int_t ngx_http_commerce_order_validate(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_http_commerce_order_bad_t *bad);
static ngx_int_t ngx_http_commerce_order_cart_id(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, json_t *v,
    ngx_http_commerce_order_bad_t *bad);
static ngx_int_t ngx_http_commerce_order_payment(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_http_commerce_order_bad_t *bad);
static ngx_int_t ngx_http_commerce_order_lines(ngx_http_request_t *r,
    json_t *items, ngx_http_commerce_order_bad_t *bad);
static ngx_int_t ngx_http_commerce_order_bad(ngx_http_request_t *r,
    ngx_http_commerce_order_bad_t *bad, ngx_uint_t status, const char *code,
    const char *msg, const char *field, ngx_int_t index, const char *sub);
static ngx_uint_t ngx_http_commerce_order_card_like(const char *s);
static void ngx_http_commerce_order_claimed(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static void ngx_http_commerce_order_checked(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static void ngx_http_commerce_order_loaded(ngx_http_request_t *r,
    void *data, ngx_int_t rc, ngx_http_commerce_cart_t *cart);
static void ngx_http_commerce_order_publish_place(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx);
static void ngx_http_commerce_order_emptied(ngx_http_request_t *r,
    void *data, ngx_int_t rc, ngx_http_commerce_cart_t *cart);
static void ngx_http_commerce_order_complete(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx);
static ngx_int_t ngx_http_commerce_order_command(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx);
static void ngx_http_commerce_order_acked(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_int_t rc);
static void ngx_http_commerce_order_completed(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static void ngx_http_commerce_order_abandon(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_uint_t status, const char *code,
    const char *msg, const char *field);
static void ngx_http_commerce_order_released(ngx_http_request_t *r,
    void *data, ngx_int_t rc);


void
ngx_http_commerce_order_place(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx)
{
    time_t                               retry_after;
    ngx_int_t                            rc;
    ngx_http_commerce_order_bad_t        bad;
    ngx_http_commerce_order_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_order_module);

    rc = ngx_http_commerce_order_validate(r, ctx, &bad);

    if (rc == NGX_DECLINED) {
        ngx_http_commerce_order_fail(r, bad.status, bad.code, bad.msg,
                                     (char *) bad.field, 0);
        return;
    }

    if (rc != NGX_OK
        || ngx_http_commerce_idem_init(r, &ctx->idem, &ctx->owner,
                                       &ctx->idem_key, &ctx->body,
                                       olcf->idem_inflight_ttl,
                                       olcf->idem_ttl)
           != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_commerce_idem_claim(r, &ctx->idem,
                                      ngx_http_commerce_order_claimed, ctx,
                                      &retry_after);

    if (rc == NGX_DECLINED) {
        ngx_http_commerce_order_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "redis_unavailable",
                                     "orders cannot be taken now", NULL,
                                     retry_after > 0 ? retry_after : 1);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


/*
 * The body's JSON and each field: NGX_OK (ctx->root, and ctx->store or
 * ctx->cart_id set), NGX_DECLINED with *bad, NGX_ERROR.
 */
static ngx_int_t
ngx_http_commerce_order_validate(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_http_commerce_order_bad_t *bad)
{
    json_t        *root, *v;
    const char    *key, *why;
    json_error_t   err;

    if (ctx->body.len == 0) {
        return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                           "invalid_body", "an order needs "
                                           "a JSON body", NULL, -1, NULL);
    }

    why = commerce_inbound_parse_json((char *) ctx->body.data,
                                      ctx->body.len, &root, &err);
    if (why) {
        return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST, why,
                                           "the body is not one JSON object "
                                           "(UTF-8, each key once)", NULL,
                                           -1, NULL);
    }

    if (ngx_http_commerce_order_keep_root(r, ctx, root) != NGX_OK) {
        return NGX_ERROR;
    }

    json_object_foreach(root, key, v) {
        if ((ctx->cart_id.len
             || (ngx_strcmp(key, "store_id") != 0
                 && ngx_strcmp(key, "items") != 0
                 && ngx_strcmp(key, "cart_id") != 0))
            && ngx_strcmp(key, "shipping_address") != 0
            && ngx_strcmp(key, "payment_method") != 0)
        {
            return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                               "unknown_field",
                                               ctx->cart_id.len
                                               ? "a checkout has no such "
                                                 "field: the cart has the "
                                                 "store and the items"
                                               : "the order has no such "
                                                 "field", key, -1, NULL);
        }
    }

    if (ctx->cart_id.len) {
        return ngx_http_commerce_order_payment(r, ctx, bad);
    }

    v = json_object_get(root, "cart_id");

    if (v) {
        return ngx_http_commerce_order_cart_id(r, ctx, v, bad);
    }

    v = json_object_get(root, "store_id");

    if (!json_is_string(v)) {
        return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                           "invalid_type", "store_id must "
                                           "be a string", "store_id", -1,
                                           NULL);
    }

    if (!ngx_http_commerce_valid_id((u_char *) json_string_value(v),
                                    json_string_length(v)))
    {
        return ngx_http_commerce_order_bad(r, bad,
                                           NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                           "invalid_id", "store_id must be "
                                           "1 to 256 bytes without spaces",
                                           "store_id", -1, NULL);
    }

    ctx->store.data = (u_char *) json_string_value(v);
    ctx->store.len = json_string_length(v);

    if (ngx_http_commerce_order_lines(r, json_object_get(root, "items"), bad)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    return ngx_http_commerce_order_payment(r, ctx, bad);
}


/*
 * {"cart_id"} instead of the store and the items: the caller's cart is
 * checked out as by POST /v1/carts/{id}/checkout (ctx->cart_id set).
 */
static ngx_int_t
ngx_http_commerce_order_cart_id(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, json_t *v,
    ngx_http_commerce_order_bad_t *bad)
{
    const char  *other;

    other = json_object_get(ctx->root, "items") ? "items"
            : json_object_get(ctx->root, "store_id") ? "store_id" : NULL;

    if (other) {
        return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                           "conflicting_field", "an order "
                                           "has a cart_id or a store_id and "
                                           "items, not both", other, -1,
                                           NULL);
    }

    if (!json_is_string(v)) {
        return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                           "invalid_type", "cart_id must "
                                           "be a string", "cart_id", -1,
                                           NULL);
    }

    if (!ngx_http_commerce_valid_id((u_char *) json_string_value(v),
                                    json_string_length(v)))
    {
        return ngx_http_commerce_order_bad(r, bad,
                                           NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                           "invalid_id", "cart_id must be "
                                           "1 to 256 bytes without spaces",
                                           "cart_id", -1, NULL);
    }

    ctx->cart_id.data = (u_char *) json_string_value(v);
    ctx->cart_id.len = json_string_length(v);

    return ngx_http_commerce_order_payment(r, ctx, bad);
}


/* shipping_address and payment_method, of every order */
static ngx_int_t
ngx_http_commerce_order_payment(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_http_commerce_order_bad_t *bad)
{
    json_t  *v;

    if (!json_is_object(json_object_get(ctx->root, "shipping_address"))) {
        return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                           "invalid_type", "shipping_address "
                                           "must be an object",
                                           "shipping_address", -1, NULL);
    }

    v = json_object_get(ctx->root, "payment_method");

    if (!json_is_string(v)) {
        return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                           "invalid_type", "payment_method "
                                           "must be a string",
                                           "payment_method", -1, NULL);
    }

    if (!ngx_http_commerce_valid_id((u_char *) json_string_value(v),
                                    json_string_length(v))
        || ngx_http_commerce_order_card_like(json_string_value(v)))
    {
        return ngx_http_commerce_order_bad(r, bad,
                                           NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                           "invalid_payment_method",
                                           "payment_method must be a payment "
                                           "provider's token, never card "
                                           "data", "payment_method", -1,
                                           NULL);
    }

    return NGX_OK;
}


/* items: 1..100 of {"sku","quantity"}, each sku once */
static ngx_int_t
ngx_http_commerce_order_lines(ngx_http_request_t *r, json_t *items,
    ngx_http_commerce_order_bad_t *bad)
{
    size_t       i, j, n;
    json_t      *line, *sku, *qty, *v;
    json_int_t   q;
    const char  *key;

    if (!json_is_array(items)) {
        return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                           "invalid_type", "items must be an "
                                           "array", "items", -1, NULL);
    }

    n = json_array_size(items);

    if (n == 0 || n > NGX_HTTP_COMMERCE_ORDER_LINES_MAX) {
        return ngx_http_commerce_order_bad(r, bad,
                                           NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                           "invalid_items", "an order has 1 "
                                           "to 100 items", "items", -1, NULL);
    }

    json_array_foreach(items, i, line) {

        if (!json_is_object(line)) {
            return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                               "invalid_type", "an item must "
                                               "be an object", "items", i,
                                               NULL);
        }

        json_object_foreach(line, key, v) {
            if (ngx_strcmp(key, "sku") != 0
                && ngx_strcmp(key, "quantity") != 0)
            {
                return ngx_http_commerce_order_bad(r, bad,
                                                   NGX_HTTP_BAD_REQUEST,
                                                   "unknown_field",
                                                   "an item has no such "
                                                   "field", "items", i, key);
            }
        }

        sku = json_object_get(line, "sku");

        if (!json_is_string(sku)) {
            return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                               "invalid_type", "sku must be a "
                                               "string", "items", i, "sku");
        }

        if (!ngx_http_commerce_valid_id((u_char *) json_string_value(sku),
                                        json_string_length(sku)))
        {
            return ngx_http_commerce_order_bad(r, bad,
                                               NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                               "invalid_id", "sku must be 1 "
                                               "to 256 bytes without spaces",
                                               "items", i, "sku");
        }

        for (j = 0; j < i; j++) {
            if (json_equal(sku, json_object_get(json_array_get(items, j),
                                                "sku")))
            {
                return ngx_http_commerce_order_bad(r, bad,
                                               NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                               "duplicate_sku", "each sku is "
                                               "one item", "items", i, "sku");
            }
        }

        qty = json_object_get(line, "quantity");

        if (!json_is_integer(qty)) {
            return ngx_http_commerce_order_bad(r, bad, NGX_HTTP_BAD_REQUEST,
                                               "invalid_type", "quantity must "
                                               "be an integer", "items", i,
                                               "quantity");
        }

        q = json_integer_value(qty);

        if (q < 1 || q > NGX_HTTP_COMMERCE_ORDER_QTY_MAX) {
            return ngx_http_commerce_order_bad(r, bad,
                                               NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                               "invalid_quantity", "quantity "
                                               "must be 1 to 10000", "items",
                                               i, "quantity");
        }
    }

    return NGX_OK;
}


/* *bad filled, the field as "items[3].sku"; NGX_DECLINED (NGX_ERROR) */
static ngx_int_t
ngx_http_commerce_order_bad(ngx_http_request_t *r,
    ngx_http_commerce_order_bad_t *bad, ngx_uint_t status, const char *code,
    const char *msg, const char *field, ngx_int_t index, const char *sub)
{
    size_t   len;
    u_char  *p;

    bad->status = status;
    bad->code = code;
    bad->msg = msg;
    bad->field = NULL;

    if (field == NULL) {
        return NGX_DECLINED;
    }

    len = ngx_strlen(field) + (sub ? ngx_strlen(sub) + 1 : 0)
          + NGX_INT_T_LEN + 3;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    bad->field = p;

    p = ngx_sprintf(p, "%s", field);

    if (index >= 0) {
        p = ngx_sprintf(p, "[%i]", index);
    }

    if (sub) {
        p = ngx_sprintf(p, ".%s", sub);
    }

    *p = '\0';

    return NGX_DECLINED;
}


/* 12 to 19 digits, spaces and dashes aside: a card number, not a token */
static ngx_uint_t
ngx_http_commerce_order_card_like(const char *s)
{
    ngx_uint_t  digits;

    for (digits = 0; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            digits++;

        } else if (*s != ' ' && *s != '-') {
            return 0;
        }
    }

    return digits >= 12 && digits <= 19;
}


/*
 * The record: replayed, refused (409, 422), or ours: then the skus, in
 * one HMGET of the store's hash.
 */
static void
ngx_http_commerce_order_claimed(ngx_http_request_t *r, void *data,
    ngx_int_t rc)
{
    ngx_http_commerce_order_ctx_t *ctx = data;

    size_t                          i, n;
    time_t                          retry_after;
    u_char                         *p;
    json_t                         *items, *sku;
    ngx_http_commerce_redis_cmd_t   cmd;

    if (rc != NGX_OK) {
        /* a claim that timed out may still have been made: released */
        ngx_http_commerce_order_abandon(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "redis_unavailable",
                                        "orders cannot be taken now", NULL);
        return;
    }

    switch (ctx->idem.outcome) {

    case NGX_HTTP_COMMERCE_IDEM_INFLIGHT:
        ngx_http_commerce_order_fail(r, NGX_HTTP_CONFLICT,
                                     "request_in_progress",
                                     "a request with this Idempotency-Key "
                                     "is being processed",
                                     "Idempotency-Key",
                                     NGX_HTTP_COMMERCE_ORDER_RETRY_AFTER);
        return;

    case NGX_HTTP_COMMERCE_IDEM_MISMATCH:
        ngx_http_commerce_order_fail(r, NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                     "idempotency_key_reused",
                                     "this Idempotency-Key was used with "
                                     "another body", "Idempotency-Key", 0);
        return;

    case NGX_HTTP_COMMERCE_IDEM_DONE:
        ngx_http_finalize_request(r,
            ngx_http_commerce_idem_send(r, &ctx->idem, 1));
        return;
    }

    if (ctx->cart_id.len) {
        rc = ngx_http_commerce_cart_load(r, &ctx->cart_id, &ctx->owner,
                                         ngx_http_commerce_order_loaded, ctx,
                                         &retry_after);
        if (rc != NGX_OK) {
            ngx_http_commerce_order_abandon(r, ctx,
                                            NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "redis_unavailable",
                                            "orders cannot be taken now",
                                            NULL);
        }

        return;
    }

    items = json_object_get(ctx->root, "items");
    n = json_array_size(items);

    p = ngx_pnalloc(r->pool, COMMERCE_LEN(COMMERCE_RK_STOCK) + ctx->store.len);

    ngx_http_commerce_redis_cmd_init(&cmd);

    if (p == NULL
        || ngx_http_commerce_redis_cmd_reserve(&cmd, r->pool, n + 2) != NGX_OK)
    {
        ngx_http_commerce_order_abandon(r, ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        NULL, NULL, NULL);
        return;
    }

    ngx_memcpy(ngx_cpymem(p, COMMERCE_RK_STOCK,
                          COMMERCE_LEN(COMMERCE_RK_STOCK)),
               ctx->store.data, ctx->store.len);

    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "HMGET");
    ngx_http_commerce_redis_cmd_arg(&cmd, p, COMMERCE_LEN(COMMERCE_RK_STOCK)
                                             + ctx->store.len);

    json_array_foreach(items, i, sku) {
        sku = json_object_get(sku, "sku");
        ngx_http_commerce_redis_cmd_arg(&cmd,
                                        (u_char *) json_string_value(sku),
                                        json_string_length(sku));
    }

    rc = ngx_http_commerce_redis_send(r, ngx_http_commerce_redis_timeout(r),
                                      ngx_http_commerce_order_checked, ctx,
                                      &cmd, &retry_after);

    if (rc != NGX_OK) {
        ngx_http_commerce_order_abandon(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "redis_unavailable",
                                        "orders cannot be taken now", NULL);
    }
}


/* Each sku has a value in the store's hash: the command goes out. */
static void
ngx_http_commerce_order_checked(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_http_commerce_order_ctx_t *ctx = data;

    size_t                          i;
    ngx_http_commerce_order_bad_t   bad;

    if (rc != NGX_HTTP_COMMERCE_REDIS_OK || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != json_array_size(json_object_get(ctx->root,
                                                              "items")))
    {
        ngx_http_commerce_order_abandon(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "redis_unavailable",
                                        "orders cannot be taken now", NULL);
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_STRING) {
            (void) ngx_http_commerce_order_bad(r, &bad,
                                               NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                               "unknown_sku", "the store has "
                                               "no such sku", "items", i,
                                               "sku");
            ngx_http_commerce_order_abandon(r, ctx, bad.status, bad.code,
                                            bad.msg, (char *) bad.field);
            return;
        }
    }

    ngx_http_commerce_order_publish_place(r, ctx);
}


/*
 * The caller's cart: its store and lines become the order's.  No cart
 * (or another owner's) 404, an empty one 422, a line no longer in the
 * store 422.
 */
static void
ngx_http_commerce_order_loaded(ngx_http_request_t *r, void *data,
    ngx_int_t rc, ngx_http_commerce_cart_t *cart)
{
    ngx_http_commerce_order_ctx_t *ctx = data;

    ngx_uint_t                      i;
    ngx_http_commerce_order_bad_t   bad;

    switch (rc) {

    case NGX_HTTP_COMMERCE_CART_OK:
        break;

    case NGX_HTTP_COMMERCE_CART_NOT_FOUND:
        ngx_http_commerce_order_abandon(r, ctx, NGX_HTTP_NOT_FOUND,
                                        "not_found", "no such cart", NULL);
        return;

    default:
        ngx_http_commerce_order_abandon(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "redis_unavailable",
                                        "orders cannot be taken now", NULL);
        return;
    }

    if (cart->nlines == 0) {
        ngx_http_commerce_order_abandon(r, ctx,
                                        NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                        "empty_cart", "the cart has no items",
                                        NULL);
        return;
    }

    for (i = 0; i < cart->nlines; i++) {
        if (!cart->lines[i].in_store) {
            (void) ngx_http_commerce_order_bad(r, &bad,
                                               NGX_HTTP_COMMERCE_UNPROCESSABLE,
                                               "unknown_sku", "the store has "
                                               "no such sku any more",
                                               "items", i, "sku");
            ngx_http_commerce_order_abandon(r, ctx, bad.status, bad.code,
                                            bad.msg, (char *) bad.field);
            return;
        }
    }

    ctx->cart = cart;
    ctx->store = cart->store_id;

    ngx_http_commerce_order_publish_place(r, ctx);
}


static void
ngx_http_commerce_order_publish_place(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx)
{
    switch (ngx_http_commerce_order_command(r, ctx)) {

    case NGX_OK:
        return;

    case NGX_DECLINED:
        ngx_http_commerce_order_abandon(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "broker_unavailable",
                                        "the event broker cannot take the "
                                        "order now", NULL);
        return;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        ngx_http_commerce_order_abandon(r, ctx,
                                        NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        NULL, NULL, NULL);
        return;

    default:
        ngx_http_commerce_order_abandon(r, ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        NULL, NULL, NULL);
    }
}


/* order.place: the order id is the command's, a new UUIDv7 */
static ngx_int_t
ngx_http_commerce_order_command(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx)
{
    size_t                          i;
    json_t                         *cmd, *items, *line, *lines, *l;
    ngx_http_commerce_cart_line_t  *c;

    if (ngx_http_commerce_order_new_command(r, ctx, COMMERCE_CMD_ORDER_PLACE,
                                            &cmd)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->id.data = ctx->command_id;
    ctx->id.len = NGX_HTTP_COMMERCE_UUID_LEN;
    ctx->key = ctx->id;

    lines = json_array();
    items = json_object_get(ctx->root, "items");

    json_array_foreach(items, i, line) {
        l = json_pack("{sOsO}", "sku", json_object_get(line, "sku"),
                      "quantity", json_object_get(line, "quantity"));

        if (json_array_append_new(lines, l) != 0) {
            json_decref(lines);
            json_decref(cmd);
            return NGX_ERROR;
        }
    }

    for (i = 0; ctx->cart && i < ctx->cart->nlines; i++) {
        c = &ctx->cart->lines[i];
        l = json_pack("{ss#sI}", "sku", (char *) c->sku.data,
                      (int) c->sku.len, "quantity",
                      (json_int_t) c->quantity);

        if (json_array_append_new(lines, l) != 0) {
            json_decref(lines);
            json_decref(cmd);
            return NGX_ERROR;
        }
    }

    if (json_object_set_new(cmd, "order_id",
                            json_stringn((char *) ctx->id.data, ctx->id.len))
           != 0
        || json_object_set_new(cmd, "store_id",
                               json_stringn((char *) ctx->store.data,
                                            ctx->store.len)) != 0
        || json_object_set_new(cmd, "lines", lines) != 0
        || json_object_set(cmd, "shipping_address",
                           json_object_get(ctx->root, "shipping_address"))
           != 0
        || json_object_set(cmd, "payment_method",
                           json_object_get(ctx->root, "payment_method"))
           != 0)
    {
        json_decref(cmd);
        return NGX_ERROR;
    }

    if (ctx->cart
        && json_object_set_new(cmd, "cart_id",
                               json_stringn((char *) ctx->cart_id.data,
                                            ctx->cart_id.len)) != 0)
    {
        json_decref(cmd);
        return NGX_ERROR;
    }

    if (ngx_http_commerce_order_dump(r, ctx, cmd) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->acked = ngx_http_commerce_order_acked;

    return ngx_http_commerce_order_publish(r, ctx);
}


/*
 * In Kafka: the answer stored in the record first, then sent (a retry
 * from then on gets the same bytes).  Not in Kafka: the record released.
 */
static void
ngx_http_commerce_order_acked(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_int_t rc)
{
    u_char  *p;

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        ngx_http_commerce_order_abandon(r, ctx, rc, NULL, NULL, NULL);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_commerce_order_abandon(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "broker_unavailable",
                                        "the event broker did not confirm "
                                        "the order", NULL);
        return;
    }

    p = ngx_pnalloc(r->pool, sizeof(NGX_HTTP_COMMERCE_ORDER_PATH)
                             + sizeof("{\"order_id\":\"\",\"status\":\""
                                      COMMERCE_ORDER_PENDING "\"}")
                             + 2 * NGX_HTTP_COMMERCE_UUID_LEN);
    if (p == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->idem.status = NGX_HTTP_ACCEPTED;

    ctx->idem.location.data = p;
    p = ngx_sprintf(p, NGX_HTTP_COMMERCE_ORDER_PATH "%V", &ctx->id);
    ctx->idem.location.len = p - ctx->idem.location.data;

    ctx->idem.body.data = p;
    p = ngx_sprintf(p, "{\"order_id\":\"%V\",\"status\":\""
                    COMMERCE_ORDER_PENDING "\"}", &ctx->id);
    ctx->idem.body.len = p - ctx->idem.body.data;

    if (ctx->cart == NULL) {
        ngx_http_commerce_order_complete(r, ctx);
        return;
    }

    /* checked out: the cart goes, if it is still the one ordered */

    if (ngx_http_commerce_cart_delete(r, &ctx->cart_id, &ctx->owner,
                                      ctx->cart->version,
                                      ngx_http_commerce_order_emptied, ctx,
                                      &ctx->retry_after)
        != NGX_OK)
    {
        ngx_http_commerce_order_emptied(r, ctx, NGX_HTTP_COMMERCE_CART_DOWN,
                                        NULL);
    }
}


static void
ngx_http_commerce_order_emptied(ngx_http_request_t *r, void *data,
    ngx_int_t rc, ngx_http_commerce_cart_t *cart)
{
    ngx_http_commerce_order_ctx_t *ctx = data;

    if (rc != NGX_HTTP_COMMERCE_CART_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce order: %V placed from cart \"%V\", the "
                      "cart %s", &ctx->id, &ctx->cart_id,
                      rc == NGX_HTTP_COMMERCE_CART_CHANGED
                      ? "changed meanwhile and is kept"
                      : "not deleted (Redis)");
    }

    ngx_http_commerce_order_complete(r, ctx);
}


/* the answer stored for the Idempotency-Key, then sent */
static void
ngx_http_commerce_order_complete(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx)
{
    if (ngx_http_commerce_idem_complete(r, &ctx->idem,
                                        ngx_http_commerce_order_completed,
                                        ctx)
        != NGX_OK)
    {
        ngx_http_commerce_order_completed(r, ctx, NGX_ERROR);
    }
}


static void
ngx_http_commerce_order_completed(ngx_http_request_t *r, void *data,
    ngx_int_t rc)
{
    ngx_http_commerce_order_ctx_t *ctx = data;

    if (rc != NGX_OK) {
        /* the order is in Kafka: acknowledged all the same */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce order: %V placed, its answer not stored "
                      "for its Idempotency-Key", &ctx->id);
    }

    if (ctx->answered) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_commerce_idem_send(r, &ctx->idem,
                                                             0));
}


/*
 * Nothing was published: the record is released, then the failure is
 * answered (status 413: body_too_large; 500 with no code: finalized with
 * it).
 */
static void
ngx_http_commerce_order_abandon(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_uint_t status, const char *code,
    const char *msg, const char *field)
{
    ctx->failure = status;
    ctx->failure_code = code;
    ctx->failure_msg = msg;
    ctx->failure_field = field;

    if (ngx_http_commerce_idem_release(r, &ctx->idem,
                                       ngx_http_commerce_order_released, ctx)
        != NGX_OK)
    {
        ngx_http_commerce_order_released(r, ctx, NGX_ERROR);
    }
}


static void
ngx_http_commerce_order_released(ngx_http_request_t *r, void *data,
    ngx_int_t rc)
{
    ngx_http_commerce_order_ctx_t *ctx = data;

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce order: Idempotency-Key record \"%V\" not "
                      "released, it expires by itself", &ctx->idem.rkey);
    }

    if (ctx->answered) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    if (ctx->failure == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        ngx_http_commerce_order_too_large(r);
        return;
    }

    if (ctx->failure_code == NULL) {
        ngx_http_finalize_request(r, ctx->failure);
        return;
    }

    ngx_http_commerce_order_fail(r, ctx->failure, ctx->failure_code,
                                 ctx->failure_msg, ctx->failure_field,
                                 ctx->failure == NGX_HTTP_SERVICE_UNAVAILABLE
                                 ? (ctx->retry_after > 0 ? ctx->retry_after
                                    : NGX_HTTP_COMMERCE_ORDER_RETRY_AFTER)
                                 : 0);
}
