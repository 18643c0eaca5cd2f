/*
 * ngx_http_commerce_order_module: the order API (POST /v1/orders, cancel,
 * reads of the orders read model) and the admin API of the sagas.  Orders
 * and admin actions are commands on commerce.commands, published on the
 * webhook ingress's path (ngx_http_commerce_kafka_produce) and answered
 * 202 only after the broker's acknowledgement; reads come from the Redis
 * read model the saga worker writes (docs/contract.md).
 *
 * Files: ngx_http_commerce_order.c (directives, the handler, caller,
 * answers), _order_command.c (commands built and published),
 * _order_place.c (POST /v1/orders and
 * POST /v1/carts/{id}/checkout: the body, Idempotency-Key, the cart,
 * order.place), _order_read.c (the reads, and the
 * actions that need the document first: cancel, retry, compensate).
 */

#ifndef _NGX_HTTP_COMMERCE_ORDER_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_ORDER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_commerce_cart.h"
#include "ngx_http_commerce_idempotency.h"
#include "ngx_http_commerce_util.h"


/* the JWT role of the admin API (commerce_jwt_roles_claim) */
#define NGX_HTTP_COMMERCE_ORDER_ADMIN_ROLE  "admin"

/* where an order is read: the Location of a 202 */
#define NGX_HTTP_COMMERCE_ORDER_PATH      "/v1/orders/"

/* lines of an order, and the largest quantity of a line */
#define NGX_HTTP_COMMERCE_ORDER_LINES_MAX  100
#define NGX_HTTP_COMMERCE_ORDER_QTY_MAX    10000

/* nginx 1.22 has no name for it */
#define NGX_HTTP_COMMERCE_UNPROCESSABLE  422

/* seconds a client is asked to wait before retrying after a 503 */
#define NGX_HTTP_COMMERCE_ORDER_RETRY_AFTER  1


/* the API of a location: commerce_orders / commerce_order_admin */
typedef enum {
    NGX_HTTP_COMMERCE_ORDER_NONE = 0,
    NGX_HTTP_COMMERCE_ORDER_ORDERS,        /* POST place, GET list */
    NGX_HTTP_COMMERCE_ORDER_ORDER,         /* GET */
    NGX_HTTP_COMMERCE_ORDER_CANCEL,        /* POST */
    NGX_HTTP_COMMERCE_ORDER_EVENTS,        /* GET */
    NGX_HTTP_COMMERCE_ORDER_CHECKOUT,      /* POST: a cart's order */
    NGX_HTTP_COMMERCE_ORDER_SAGAS,         /* admin: GET */
    NGX_HTTP_COMMERCE_ORDER_SAGA,          /* admin: GET */
    NGX_HTTP_COMMERCE_ORDER_RETRY,         /* admin: POST */
    NGX_HTTP_COMMERCE_ORDER_COMPENSATE,    /* admin: POST */
    NGX_HTTP_COMMERCE_ORDER_REBUILD        /* admin: POST */
} ngx_http_commerce_order_api_e;


typedef struct {
    ngx_uint_t                  api;
    ngx_http_complex_value_t   *id;        /* the order id, from the URI */
    ngx_str_t                   topic;
    ngx_http_complex_value_t   *owner;     /* NULL: the token's sub */
    ngx_http_complex_value_t   *admin;     /* NULL: the token's roles */
    ngx_msec_t                  idem_ttl;
    ngx_msec_t                  idem_inflight_ttl;
    ngx_uint_t                  default_limit;
    ngx_uint_t                  max_limit;
} ngx_http_commerce_order_loc_conf_t;


typedef struct ngx_http_commerce_order_ctx_s  ngx_http_commerce_order_ctx_t;

/* what follows the broker's outcome: rc as the Kafka handler's */
typedef void (*ngx_http_commerce_order_acked_pt)(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_int_t rc);


struct ngx_http_commerce_order_ctx_s {
    ngx_str_t                   owner;     /* the caller's sub */
    ngx_uint_t                  admin;
    ngx_str_t                   id;        /* the order id */
    ngx_str_t                   body;      /* the request body, whole */
    int64_t                     received_at;       /* ms since the epoch */
    json_t                     *root;      /* the parsed body, or NULL */
    /* the command */
    const char                 *type;
    u_char                      command_id[NGX_HTTP_COMMERCE_UUID_LEN];
    ngx_str_t                   key;       /* Kafka key: the order id */
    ngx_str_t                   command;   /* its JSON */
    ngx_str_t                   idem_key;  /* the Idempotency-Key */
    ngx_http_commerce_order_acked_pt  acked;
    /* the read model: a list page */
    ngx_uint_t                  limit;
    ngx_str_t                   status;
    ngx_str_t                   cursor;
    ngx_str_t                   next;
    /* place: the record, and the skus to check */
    ngx_http_commerce_idem_t    idem;
    ngx_str_t                   store;
    /* checkout: the cart (its id from the URI), loaded */
    ngx_str_t                   cart_id;
    ngx_http_commerce_cart_t   *cart;
    ngx_uint_t                  failure;   /* status to answer once released */
    const char                 *failure_code;
    const char                 *failure_msg;
    const char                 *failure_field;
    time_t                      retry_after;
    unsigned                    answered:1;        /* 503 out, report due */
};


extern ngx_module_t  ngx_http_commerce_order_module;


/* ngx_http_commerce_order.c */

/*
 * A problem+json error (RFC 9457) in the API's shape: {"type","title",
 * "status","error","message"[,"field"]}: _problem() returns like
 * ngx_http_commerce_send_error(), _fail() finalizes the request with it.
 */
ngx_int_t ngx_http_commerce_order_problem(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *msg, const char *field,
    time_t retry_after);
void ngx_http_commerce_order_fail(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *msg, const char *field,
    time_t retry_after);

/* the parsed body, freed with the request */
ngx_int_t ngx_http_commerce_order_keep_root(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, json_t *root);

/* 200 with a strong ETag of the bytes (304 on If-None-Match) */
ngx_int_t ngx_http_commerce_order_send_doc(ngx_http_request_t *r,
    u_char *p, size_t len);

/* a query argument, or an empty string */
ngx_int_t ngx_http_commerce_order_arg(ngx_http_request_t *r, char *name,
    size_t len, ngx_str_t *value);


/* ngx_http_commerce_order_command.c */

/* the command's id (a new UUIDv7) and its JSON's common fields */
ngx_int_t ngx_http_commerce_order_new_command(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, const char *type, json_t **cmd);

/*
 * Publishes ctx->command (ctx->type, key ctx->key) to the location's
 * topic with the contract's headers; ctx->acked gets the outcome (rc
 * NGX_OK, NGX_ERROR, or NGX_HTTP_REQUEST_ENTITY_TOO_LARGE when the broker
 * refuses its size).  NGX_OK: on its way; NGX_DECLINED: the broker cannot
 * take it now (ctx->retry_after); NGX_HTTP_REQUEST_ENTITY_TOO_LARGE: it
 * never can; NGX_ERROR.  _dump() sets ctx->command from cmd.
 * _send_command() publishes and answers what is not on its way: 503,
 * 413 (_too_large(), problem+json body_too_large) or 500.
 */
ngx_int_t ngx_http_commerce_order_dump(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, json_t *cmd);
ngx_int_t ngx_http_commerce_order_publish(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx);
void ngx_http_commerce_order_send_command(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx);
void ngx_http_commerce_order_too_large(ngx_http_request_t *r);

/* 202 {"order_id","status":"accepted","command_id"} once acknowledged */
void ngx_http_commerce_order_command_acked(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_int_t rc);


/* ngx_http_commerce_order_place.c: POST /v1/orders, and a cart's checkout */
void ngx_http_commerce_order_place(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx);


/* ngx_http_commerce_order_read.c: GETs, and cancel, retry, compensate */
void ngx_http_commerce_order_read(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_uint_t api);


#endif /* _NGX_HTTP_COMMERCE_ORDER_H_INCLUDED_ */
