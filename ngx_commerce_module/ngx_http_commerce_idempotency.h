/*
 * Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) for the
 * commerce API's POST handlers: one record per owner, path and key in
 * Redis (idem:{hex}, docs/contract.md), claimed before the work, completed
 * with the answer after it, released when the work failed so that the
 * client's retry goes through.  No nginx module of its own: the handler
 * that uses it owns the TTL directives and passes them in.
 *
 * Use:
 *
 *     if (ngx_http_commerce_idem_key(r, &key, &msg) != NGX_OK) {
 *         ... 400 msg ...
 *     }
 *
 *     ngx_http_commerce_idem_init(r, &ctx->idem, &owner, &key, &body,
 *                                 inflight_ttl, ttl);
 *     rc = ngx_http_commerce_idem_claim(r, &ctx->idem, claimed, ctx,
 *                                       &retry_after);
 *
 * and in claimed(): ctx->idem.outcome says NEW (do the work, then
 * _complete() or _release()), INFLIGHT (409), MISMATCH (422) or DONE
 * (_send() the stored answer, replayed).
 *
 * The record's strings live in r's pool.  A handler is called once per
 * command, from the event loop, with the request alive (the Redis layer's
 * rule).
 */

#ifndef _NGX_HTTP_COMMERCE_IDEMPOTENCY_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_IDEMPOTENCY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the longest key accepted, in bytes of the decoded sf-string */
#define NGX_HTTP_COMMERCE_IDEM_KEY_MAX  255


typedef enum {
    NGX_HTTP_COMMERCE_IDEM_NEW = 0,         /* ours: claimed in flight */
    NGX_HTTP_COMMERCE_IDEM_INFLIGHT,        /* another request has it */
    NGX_HTTP_COMMERCE_IDEM_MISMATCH,        /* same key, another body */
    NGX_HTTP_COMMERCE_IDEM_DONE             /* answered: status, body */
} ngx_http_commerce_idem_outcome_e;


/* rc: NGX_OK, or NGX_ERROR when Redis did not answer as asked */
typedef void (*ngx_http_commerce_idem_handler_pt)(ngx_http_request_t *r,
    void *data, ngx_int_t rc);


typedef struct {
    ngx_str_t                   rkey;      /* idem:{hex} */
    ngx_str_t                   token;     /* the request's */
    u_char                      fp[64];    /* hex SHA-256 of the body */
    ngx_msec_t                  inflight_ttl;
    ngx_msec_t                  ttl;
    ngx_uint_t                  op;
    ngx_uint_t                  outcome;
    /* the answer: stored by _complete(), found by _claim() when DONE */
    ngx_uint_t                  status;
    ngx_str_t                   location;
    ngx_str_t                   body;
    ngx_http_commerce_idem_handler_pt  handler;
    void                       *data;
    unsigned                    eval:1;    /* EVAL after NOSCRIPT */
    unsigned                    no_deadline:1;     /* Redis clock ahead */
    unsigned                    claimed:1; /* the record is ours */
} ngx_http_commerce_idem_t;


/*
 * The request's Idempotency-Key, an RFC 8941 sf-string, decoded into
 * *key (r's pool).  NGX_OK; NGX_DECLINED with *msg for a 400 (missing,
 * empty, too long, not an sf-string); NGX_ERROR.
 */
ngx_int_t ngx_http_commerce_idem_key(ngx_http_request_t *r, ngx_str_t *key,
    const char **msg);

/* the record's key, token and fingerprint: NGX_OK or NGX_ERROR */
ngx_int_t ngx_http_commerce_idem_init(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, ngx_str_t *owner, ngx_str_t *key,
    ngx_str_t *body, ngx_msec_t inflight_ttl, ngx_msec_t ttl);

/*
 * The three steps.  Each returns NGX_OK when its command is on its way
 * (the handler will be called), NGX_DECLINED when Redis is unavailable
 * now (*retry_after, for _claim()), NGX_ERROR.  _complete() stores the
 * answer given (its strings must live until the handler ran).
 */
ngx_int_t ngx_http_commerce_idem_claim(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, ngx_http_commerce_idem_handler_pt handler,
    void *data, time_t *retry_after);
ngx_int_t ngx_http_commerce_idem_complete(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, ngx_http_commerce_idem_handler_pt handler,
    void *data);
ngx_int_t ngx_http_commerce_idem_release(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, ngx_http_commerce_idem_handler_pt handler,
    void *data);

/*
 * Sends the answer of the record (status, Location when set, JSON body),
 * with Idempotent-Replayed: true when replayed: the first answer and its
 * replays are the same bytes.  Returns like ngx_http_commerce_send_json().
 */
ngx_int_t ngx_http_commerce_idem_send(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, ngx_uint_t replayed);


#endif /* _NGX_HTTP_COMMERCE_IDEMPOTENCY_H_INCLUDED_ */
