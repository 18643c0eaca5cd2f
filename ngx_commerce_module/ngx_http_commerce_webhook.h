/*
 * ngx_http_commerce_webhook_module: webhook ingress.  A provider's POST is
 * read whole, published to Kafka byte for byte, and acknowledged (202)
 * only once the broker confirmed the write.
 */

#ifndef _NGX_HTTP_COMMERCE_WEBHOOK_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_WEBHOOK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_commerce_kafka.h"
#include "ngx_http_commerce_verify.h"


/*
 * The steps of a webhook request, run in this order by
 * ngx_http_commerce_webhook_run().  A step returns NGX_OK to go on to the
 * next one, NGX_AGAIN when it waits for an event (its callback calls
 * ngx_http_commerce_webhook_run() again, or answers), NGX_DONE when it
 * answered (ngx_http_commerce_webhook_fail() for a JSON error), or a
 * status to finalize the request with.  The signature headers are checked
 * before the body is read, by the content handler itself.
 */
typedef enum {
    NGX_HTTP_COMMERCE_WEBHOOK_READ_BODY = 0,
    NGX_HTTP_COMMERCE_WEBHOOK_VERIFY,         /* MAC over the body, JSON */
    NGX_HTTP_COMMERCE_WEBHOOK_MESSAGE,        /* headers; fits Kafka: 413 */
    NGX_HTTP_COMMERCE_WEBHOOK_CLAIM,          /* dedup: in-flight mark */
    NGX_HTTP_COMMERCE_WEBHOOK_PUBLISH,
    NGX_HTTP_COMMERCE_WEBHOOK_MARK_DONE,      /* dedup: done mark */
    NGX_HTTP_COMMERCE_WEBHOOK_ACCEPT,         /* 202 */
    NGX_HTTP_COMMERCE_WEBHOOK_DONE
} ngx_http_commerce_webhook_state_e;


typedef struct {
    ngx_str_t                   name;
    ngx_http_complex_value_t    value;
} ngx_http_commerce_webhook_header_t;


typedef struct {
    ngx_http_complex_value_t   *source;    /* NULL: not a webhook location */
    ngx_array_t                *headers;   /* webhook_header_t */
    ngx_str_t                   topic;
    ngx_http_complex_value_t   *key;
    ngx_http_complex_value_t   *delivery_id;
    size_t                      max_body;
    ngx_flag_t                  dedup;
    ngx_msec_t                  dedup_ttl;
    ngx_msec_t                  inflight_ttl;
    ngx_uint_t                  dedup_unavailable;
} ngx_http_commerce_webhook_loc_conf_t;


typedef struct {
    ngx_uint_t                  state;
    ngx_str_t                   source;
    ngx_str_t                   key;
    ngx_str_t                   delivery_id;
    ngx_str_t                   body;      /* the whole body, contiguous */
    ngx_str_t                   traceparent;
    int64_t                     received_at;       /* ms since the epoch */
    ngx_http_commerce_verify_t  verify;    /* the verify module's outcome */
    ngx_str_t                   dedup_key;
    ngx_str_t                   dedup_token;       /* our in-flight mark */
    rd_kafka_headers_t         *hdrs;      /* until produced */
    int32_t                     partition;
    int64_t                     offset;
    ngx_uint_t                  failure;   /* the status of a failed publish */
    const char                 *failure_msg;
    time_t                      retry_after;
    unsigned                    claimed:1;         /* in-flight mark ours */
    unsigned                    no_deadline:1;     /* Redis clock ahead */
    unsigned                    eval:1;            /* EVAL after NOSCRIPT */
    unsigned                    answered:1;        /* 503 sent, report due */
} ngx_http_commerce_webhook_ctx_t;


extern ngx_module_t  ngx_http_commerce_webhook_module;


#endif /* _NGX_HTTP_COMMERCE_WEBHOOK_H_INCLUDED_ */
