/*
 * Kafka publishing from nginx workers: one idempotent librdkafka producer
 * per worker, delivery reports served in the nginx event loop.
 *
 * A message belongs to a request but never holds it: its delivery context
 * lives on the heap until librdkafka reports the message, and a request
 * that goes away first (client abort) only detaches from it.
 */

#ifndef _NGX_HTTP_COMMERCE_KAFKA_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_KAFKA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <librdkafka/rdkafka.h>


typedef struct {
    ngx_str_t                   brokers;
    ngx_msec_t                  delivery_timeout;
    ngx_msec_t                  flush_timeout;
    rd_kafka_conf_t            *conf;      /* validated at nginx -t */
    ngx_array_t                 topics;    /* ngx_str_t, known in advance */
    ngx_flag_t                  used;      /* some location publishes */
} ngx_http_commerce_kafka_main_conf_t;


/*
 * Called exactly once per accepted message, from the event loop, with the
 * request still alive: rc is NGX_OK when the broker acknowledged the
 * message (partition and offset set), NGX_ERROR when the delivery failed
 * or timed out (errstr says why).  The handler finalizes the request.
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
 * Publishes a copy of the body (memory or temp file buffers) with the key
 * (none when NULL or empty) and the headers to the topic.  The headers
 * are owned by this function from the call on, whatever it returns.
 *
 * Returns NGX_OK (the handler will be called exactly once, unless the
 * request is freed first), NGX_DECLINED when the message cannot be queued
 * now (no producer, queue full: answer 503), NGX_ERROR on allocation or
 * file read failure.  The caller keeps the request open (r->main->count)
 * until the handler has run.
 */
ngx_int_t ngx_http_commerce_kafka_produce(ngx_http_request_t *r,
    ngx_str_t *topic, ngx_str_t *key, ngx_chain_t *body,
    rd_kafka_headers_t *hdrs, ngx_http_commerce_kafka_handler_pt handler,
    void *data);


#endif /* _NGX_HTTP_COMMERCE_KAFKA_H_INCLUDED_ */
