/*
 * The cart store, private to the cart module's files: one operation of
 * the cart script (ngx_http_commerce_cart_store.c), sent for a request.
 * ngx_http_commerce_cart.h is the interface of other modules.
 *
 * Use:
 *
 *     op.op = NGX_HTTP_COMMERCE_CART_OP_SET;  op.id = ...; op.owner = ...
 *     rc = ngx_http_commerce_cart_run(r, &op, done, ctx, &retry_after);
 *
 * The strings of op are borrowed until ngx_http_commerce_cart_run()
 * returns: it copies what a second try (NOSCRIPT) needs.
 */

#ifndef _NGX_HTTP_COMMERCE_CART_STORE_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_CART_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_commerce_cart.h"


/* the script's operations: ARGV[1], by name */
typedef enum {
    NGX_HTTP_COMMERCE_CART_OP_CREATE = 0,
    NGX_HTTP_COMMERCE_CART_OP_GET,
    NGX_HTTP_COMMERCE_CART_OP_SET,          /* quantity 0 removes */
    NGX_HTTP_COMMERCE_CART_OP_REMOVE,       /* NOT_IN_CART if absent */
    NGX_HTTP_COMMERCE_CART_OP_DELETE
} ngx_http_commerce_cart_op_e;


typedef struct {
    ngx_http_commerce_cart_op_e  op;
    ngx_str_t                    id;
    ngx_str_t                    owner;
    ngx_str_t                    store_id;     /* CREATE */
    ngx_str_t                    sku;          /* SET, REMOVE */
    uint64_t                     quantity;     /* SET */
    /* the If-Match condition: empty (none), "*", or the versions it
     * names, separated by spaces ("-" when it names none of ours) */
    ngx_str_t                    if_match;
    ngx_msec_t                   ttl;
    ngx_uint_t                   max_items;
} ngx_http_commerce_cart_op_t;


ngx_int_t ngx_http_commerce_cart_run(ngx_http_request_t *r,
    ngx_http_commerce_cart_op_t *op,
    ngx_http_commerce_cart_handler_pt handler, void *data,
    time_t *retry_after);


#endif /* _NGX_HTTP_COMMERCE_CART_STORE_H_INCLUDED_ */
