/*
 * ngx_http_commerce_cart_module: shopping carts in Redis, one hash per
 * cart ("cart:{id}", docs/contract.md), owned by the request's
 * commerce_cart_owner (the token's sub).  Every change is one Lua script,
 * atomic in Redis: the owner, the If-Match version, the sku in the store's
 * read model and orderable, the number of lines, the new version and the
 * TTL, and the cart as it is then, each line with its stock value.
 *
 * ngx_http_commerce_cart.c owns the directives and the HTTP API;
 * ngx_http_commerce_cart_store.c the script and this interface, which
 * another module uses to check a cart out:
 *
 *     ngx_http_commerce_cart_load(r, &id, &owner, loaded, ctx, &ra);
 *
 *     loaded(r, ctx, rc, cart):  rc NGX_HTTP_COMMERCE_CART_OK: cart->lines
 *         ... publish the order, and once the broker has it:
 *     ngx_http_commerce_cart_delete(r, &id, &owner, cart->version,
 *                                   deleted, ctx, &ra);
 *
 *     deleted(r, ctx, rc, cart): OK (the cart without its lines), or
 *         CHANGED when it changed since it was loaded (it is kept: the
 *         order has the old lines), NOT_FOUND when it is gone already.
 *
 * A handler's cart is NULL unless rc is NGX_HTTP_COMMERCE_CART_OK.
 *
 * Both return like ngx_http_commerce_redis_send(): NGX_OK (the handler is
 * called once, with the request alive, unless the request is freed
 * first), NGX_DECLINED when Redis is unavailable now (*retry_after), or
 * NGX_ERROR.  The cart and its strings are in r->pool.
 */

#ifndef _NGX_HTTP_COMMERCE_CART_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_CART_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* outcome passed to a cart handler: the script's answer, or Redis's */
typedef enum {
    NGX_HTTP_COMMERCE_CART_OK = 0,
    NGX_HTTP_COMMERCE_CART_NOT_FOUND,       /* none, or another owner's */
    NGX_HTTP_COMMERCE_CART_CHANGED,         /* not the If-Match version */
    NGX_HTTP_COMMERCE_CART_UNKNOWN_STORE,   /* no inv:{store} */
    NGX_HTTP_COMMERCE_CART_UNKNOWN_SKU,     /* not in inv:{store} */
    NGX_HTTP_COMMERCE_CART_NOT_ORDERABLE,   /* out of stock, or no price */
    NGX_HTTP_COMMERCE_CART_TOO_MANY_ITEMS,  /* commerce_cart_max_items */
    NGX_HTTP_COMMERCE_CART_NOT_IN_CART,     /* removing a sku it lacks */
    NGX_HTTP_COMMERCE_CART_DOWN,            /* Redis went away: 503 */
    NGX_HTTP_COMMERCE_CART_TIMEOUT,         /* no reply in time: 504 */
    NGX_HTTP_COMMERCE_CART_ERROR            /* anything else: 502 */
} ngx_http_commerce_cart_rc_e;


/*
 * A line, priced from its stock value in the read model now: priced when
 * the value has a price in a known currency (unit_minor in its minor
 * units, exponent its ISO 4217 exponent); orderable as the value says.
 */
typedef struct {
    ngx_str_t                   sku;
    uint64_t                    quantity;
    int64_t                     unit_minor;
    int                         exponent;
    u_char                      currency[4];    /* NUL-terminated */
    unsigned                    in_store:1;
    unsigned                    orderable:1;
    unsigned                    priced:1;
} ngx_http_commerce_cart_line_t;


/* a cart: its lines sorted by sku */
typedef struct {
    ngx_str_t                       id;
    ngx_str_t                       store_id;
    uint64_t                        version;
    ngx_http_commerce_cart_line_t  *lines;
    ngx_uint_t                      nlines;
} ngx_http_commerce_cart_t;


typedef void (*ngx_http_commerce_cart_handler_pt)(ngx_http_request_t *r,
    void *data, ngx_int_t rc, ngx_http_commerce_cart_t *cart);


/* the cart of that owner, for a checkout */
ngx_int_t ngx_http_commerce_cart_load(ngx_http_request_t *r, ngx_str_t *id,
    ngx_str_t *owner, ngx_http_commerce_cart_handler_pt handler, void *data,
    time_t *retry_after);

/* deletes it if it is still at that version (checked out) */
ngx_int_t ngx_http_commerce_cart_delete(ngx_http_request_t *r,
    ngx_str_t *id, ngx_str_t *owner, uint64_t version,
    ngx_http_commerce_cart_handler_pt handler, void *data,
    time_t *retry_after);


extern ngx_module_t  ngx_http_commerce_cart_module;


#endif /* _NGX_HTTP_COMMERCE_CART_H_INCLUDED_ */
