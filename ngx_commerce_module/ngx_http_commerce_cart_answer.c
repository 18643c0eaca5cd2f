/*
 * ngx_http_commerce_cart_answer: the cart API's answers (docs/api.md):
 * the cart with each line priced from the read model now and the total in
 * exact minor units, its version as the ETag; the status and error of each
 * refusal of the store or failure of Redis.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_currency.h"
#include "commerce_json.h"

#include "ngx_http_commerce_cart_private.h"
#include "ngx_http_commerce_module.h"


static ngx_int_t ngx_http_commerce_cart_refused(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_commerce_cart_send(ngx_http_request_t *r,
    ngx_http_commerce_cart_ctx_t *ctx, ngx_http_commerce_cart_t *cart);
static ngx_buf_t *ngx_http_commerce_cart_render(ngx_http_request_t *r,
    ngx_http_commerce_cart_t *cart);
static u_char *ngx_http_commerce_cart_money(u_char *p, int64_t minor,
    int exp, u_char *currency);


void
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
ngx_int_t
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
