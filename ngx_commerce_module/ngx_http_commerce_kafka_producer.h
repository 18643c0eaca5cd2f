/*
 * Private to the Kafka module: the per-worker producer
 * (ngx_http_commerce_kafka_producer.c), started and stopped by the
 * module's process hooks; requests publish through
 * ngx_http_commerce_kafka_produce() (ngx_http_commerce_kafka.h).
 */

#ifndef _NGX_HTTP_COMMERCE_KAFKA_PRODUCER_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_KAFKA_PRODUCER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* creates this worker's producer (again with backoff if it cannot) */
ngx_int_t ngx_http_commerce_kafka_init_process(ngx_cycle_t *cycle);

/* flushes (bounded by commerce_kafka_flush_timeout) and destroys it */
void ngx_http_commerce_kafka_exit_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_COMMERCE_KAFKA_PRODUCER_H_INCLUDED_ */
