/*
 * ngx_http_commerce_health_module: the "commerce_health live|ready"
 * locations of load balancers and Kubernetes probes.
 *
 * live answers 200 while the worker serves requests.  ready answers 200
 * when every backend the configuration has is reachable, 503 otherwise,
 * with a JSON report either way; it never blocks: Redis gets a PING
 * through the Redis layer (its breaker and timeout included), Kafka is
 * judged from the broker states this worker's producer reports in its
 * statistics, which the Kafka module asks for with
 * ngx_http_commerce_health_kafka_conf().
 *
 * Use (the Kafka module, before rd_kafka_new()):
 *
 *     ngx_http_commerce_health_kafka_conf(kconf);
 */

#ifndef _NGX_HTTP_COMMERCE_HEALTH_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_HEALTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <librdkafka/rdkafka.h>


/* statistics every second (unless configured) and their callback */
void ngx_http_commerce_health_kafka_conf(rd_kafka_conf_t *kconf);


extern ngx_module_t  ngx_http_commerce_health_module;


#endif /* _NGX_HTTP_COMMERCE_HEALTH_H_INCLUDED_ */
