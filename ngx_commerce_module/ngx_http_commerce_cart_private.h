/*
 * Private to the cart module's files (ngx_http_commerce_cart.h is the
 * interface of other modules): the store's operations
 * (ngx_http_commerce_cart_store.c) and the answers
 * (ngx_http_commerce_cart_answer.c) of a request of the API
 * (ngx_http_commerce_cart.c).
 *
 * Use:
 *
 *     op.op = NGX_HTTP_COMMERCE_CART_OP_SET;  op.id = ...; op.owner = ...
 *     rc = ngx_http_commerce_cart_run(r, &op, done, ctx, &retry_after);
 *
 * The strings of op are borrowed until ngx_http_commerce_cart_run()
 * returns: it copies what a second try (NOSCRIPT) needs.
 */

#ifndef _NGX_HTTP_COMMERCE_CART_PRIVATE_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_CART_PRIVATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_commerce_cart.h"


/* a cart id: 128 random bits in lowercase hex */
#define NGX_HTTP_COMMERCE_CART_ID_LEN         32

/* a valid request that the cart's rules refuse (nginx has no name) */
#define NGX_HTTP_COMMERCE_CART_UNPROCESSABLE  422


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


/* a request of the API: its operation, and the id of a new cart */
typedef struct {
    ngx_http_commerce_cart_op_t  op;
    u_char                       id[NGX_HTTP_COMMERCE_CART_ID_LEN];
} ngx_http_commerce_cart_ctx_t;


/* the handler of ngx_http_commerce_cart_run() of a request: its answer */
void ngx_http_commerce_cart_answer(ngx_http_request_t *r, void *data,
    ngx_int_t rc, ngx_http_commerce_cart_t *cart);

/* the error responder's answer, with a reason phrase for a 422 */
ngx_int_t ngx_http_commerce_cart_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *msg);


#endif /* _NGX_HTTP_COMMERCE_CART_PRIVATE_H_INCLUDED_ */
