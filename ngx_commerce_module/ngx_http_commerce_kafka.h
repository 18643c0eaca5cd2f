/*
 * Kafka publishing from nginx workers: one idempotent librdkafka producer
 * per worker, delivery reports served in the nginx event loop.
 *
 * A message belongs to a request but never holds it: its delivery context
 * lives on the heap until librdkafka reports the message, and a request
 * that goes away first (client abort) only detaches from it.
 *
 * Each worker's producer has a circuit breaker (common/commerce_breaker):
 * while the brokers are known to be down, messages are refused at once
 * (503) instead of waiting for their timeout.  A producer that cannot be
 * created, or that hit a fatal error, is re-created with backoff; the
 * messages of a discarded producer end as failures (503), never as 202.
 */

#ifndef _NGX_HTTP_COMMERCE_KAFKA_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_KAFKA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <librdkafka/rdkafka.h>


/*
 * The fixed part of a record in a v2 batch, every varint at its widest
 * (librdkafka's RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD): librdkafka refuses a
 * message whose key, value, headers and this exceed message.max.bytes.
 */
#define NGX_HTTP_COMMERCE_KAFKA_RECORD_OVERHEAD  36

/* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define NGX_HTTP_COMMERCE_TRACEPARENT_LEN  55


/* how a message's delivery ended (metrics: kafka deliveries by result) */
typedef enum {
    NGX_HTTP_COMMERCE_KAFKA_OK = 0,
    NGX_HTTP_COMMERCE_KAFKA_ERROR,
    NGX_HTTP_COMMERCE_KAFKA_TIMEOUT,
    NGX_HTTP_COMMERCE_KAFKA_TOO_LARGE
} ngx_http_commerce_kafka_result_e;


/* commerce_kafka_thread_scheduling: the policy of librdkafka's threads */
typedef enum {
    NGX_HTTP_COMMERCE_KAFKA_THREADS_BATCH = 0,
    NGX_HTTP_COMMERCE_KAFKA_THREADS_NORMAL
} ngx_http_commerce_kafka_threads_e;


typedef struct {
    ngx_str_t                   brokers;
    ngx_msec_t                  delivery_timeout;
    ngx_msec_t                  flush_timeout;
    ngx_msec_t                  breaker_timeout;
    ngx_uint_t                  breaker_threshold;
    ngx_uint_t                  threads;   /* _kafka_threads_e */
    size_t                      message_max;  /* message.max.bytes */
    rd_kafka_conf_t            *conf;      /* validated at nginx -t */
    ngx_array_t                 topics;    /* ngx_str_t, known in advance */
    ngx_flag_t                  used;      /* some location publishes */
} ngx_http_commerce_kafka_main_conf_t;


/*
 * Called from the event loop with the request still alive, once with the
 * outcome of each accepted message:
 *
 *   NGX_OK     the broker acknowledged it (partition and offset set);
 *   NGX_ERROR  the delivery failed (errstr says why): 503;
 *   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE  the broker refuses its size: 413.
 *
 * Before the outcome it may be called once with NGX_AGAIN: the report is
 * overdue (commerce_kafka_delivery_timeout passed), the client should get
 * its 503 now, but librdkafka still holds the message: the request must
 * stay referenced (r->main->count) until the outcome, which may still be
 * NGX_OK.  The handler finalizes the request.
 */
typedef void (*ngx_http_commerce_kafka_handler_pt)(ngx_http_request_t *r,
    void *data, ngx_int_t rc, int32_t partition, int64_t offset,
    const char *errstr);


extern ngx_module_t  ngx_http_commerce_kafka_module;


/*
 * Declares at configuration time a topic that will be published to, so
 * that each worker's producer fetches its metadata at start instead of on
 * the first message.
 */
ngx_int_t ngx_http_commerce_kafka_add_topic(ngx_conf_t *cf, ngx_str_t *topic);

/*
 * The most body bytes a message with a key of keylen bytes and these
 * headers can carry (hdrs NULL: none, an upper bound for any headers).
 * _conf_body_max(): the same at configuration time, without key and
 * headers, from the commerce_kafka_property settings read so far.
 */
size_t ngx_http_commerce_kafka_body_max(ngx_http_request_t *r, size_t keylen,
    rd_kafka_headers_t *hdrs);
size_t ngx_http_commerce_kafka_conf_body_max(ngx_conf_t *cf);

/*
 * Publishes a copy of the value with the key (none when NULL or empty) and
 * the headers to the topic.  The headers
 * are owned by this function from the call on, whatever it returns.
 *
 * Returns NGX_OK (the handler will be called, see above, unless the
 * request is freed first), NGX_DECLINED when the message cannot be queued
 * now (no producer, the broker known to be down, queue full: answer 503,
 * *retry_after holds the seconds to wait),
 * NGX_HTTP_REQUEST_ENTITY_TOO_LARGE when it can never be (413),
 * NGX_ERROR on allocation failure.  The caller keeps the
 * request open (r->main->count) until the handler has run.
 *
 * Use:
 *
 *     rc = ngx_http_commerce_kafka_produce(r, &topic, &key, &body, hdrs,
 *                                          published, ctx, &retry_after);
 */
ngx_int_t ngx_http_commerce_kafka_produce(ngx_http_request_t *r,
    ngx_str_t *topic, ngx_str_t *key, ngx_str_t *value,
    rd_kafka_headers_t *hdrs, ngx_http_commerce_kafka_handler_pt handler,
    void *data, time_t *retry_after);


/*
 * The traceparent header of a message published for r (W3C trace
 * context): the request's own when valid, else a new trace's, in r's
 * pool.  NGX_OK or NGX_ERROR.
 */
ngx_int_t ngx_http_commerce_kafka_traceparent(ngx_http_request_t *r,
    ngx_str_t *tp);


#endif /* _NGX_HTTP_COMMERCE_KAFKA_H_INCLUDED_ */
