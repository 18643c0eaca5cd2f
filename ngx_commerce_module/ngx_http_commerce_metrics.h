/*
 * ngx_http_commerce_metrics_module: counters and histograms of every
 * commerce module, kept in one shared memory zone ("commerce_metrics",
 * created automatically, reused across reloads) by all the workers, and
 * the "commerce_metrics" location that exposes them in Prometheus text
 * format.  The names are those of METRICS.md (docs/directives.md lists
 * them).
 *
 * The hot path only does lock-free atomic additions in shared memory.
 * Label values come from fixed sets (enums below) or from the
 * configuration (zone, source and server names), at most
 * NGX_HTTP_COMMERCE_METRICS_LABELS of them: more are counted as "other".
 *
 * Use:
 *
 *     at configuration time, in a location's content directive:
 *         ngx_http_commerce_metrics_api(cf, NGX_HTTP_COMMERCE_API_CATALOG);
 *
 *     at run time:
 *         ngx_http_commerce_metrics_inc(dedup[NGX_HTTP_COMMERCE_DEDUP_NEW]);
 *         ngx_http_commerce_metrics_redis_error(
 *             NGX_HTTP_COMMERCE_REDIS_ERR_TIMEOUT);
 *         start = ngx_http_commerce_metrics_now();
 *         ... ngx_http_commerce_metrics_redis_latency(start);
 */

#ifndef _NGX_HTTP_COMMERCE_METRICS_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_breaker.h"

#include "ngx_http_commerce_kafka.h"


/* commerce_http_requests_total{api}: a location's kind of handler */
typedef enum {
    NGX_HTTP_COMMERCE_API_NONE = 0,
    NGX_HTTP_COMMERCE_API_CATALOG,
    NGX_HTTP_COMMERCE_API_INVENTORY,
    NGX_HTTP_COMMERCE_API_CATALOG_INDEX,
    NGX_HTTP_COMMERCE_API_WEBHOOK,
    NGX_HTTP_COMMERCE_API_METRICS,
    NGX_HTTP_COMMERCE_API_HEALTH,
    NGX_HTTP_COMMERCE_API_CART,
    NGX_HTTP_COMMERCE_API_ORDERS,
    NGX_HTTP_COMMERCE_API_N
} ngx_http_commerce_api_e;


/* commerce_redis_errors_total{reason} */
typedef enum {
    NGX_HTTP_COMMERCE_REDIS_ERR_CONNECT = 0,
    NGX_HTTP_COMMERCE_REDIS_ERR_TIMEOUT,
    NGX_HTTP_COMMERCE_REDIS_ERR_PROTOCOL,
    NGX_HTTP_COMMERCE_REDIS_ERR_REPLY,
    NGX_HTTP_COMMERCE_REDIS_ERR_BREAKER_OPEN,
    NGX_HTTP_COMMERCE_REDIS_ERR_N
} ngx_http_commerce_redis_err_e;


/* commerce_kafka_deliveries_total{result}: ngx_http_commerce_kafka_result_e */
#define NGX_HTTP_COMMERCE_KAFKA_N  (NGX_HTTP_COMMERCE_KAFKA_TOO_LARGE + 1)


/* commerce_webhook_dedup_total{outcome} */
typedef enum {
    NGX_HTTP_COMMERCE_DEDUP_NEW = 0,
    NGX_HTTP_COMMERCE_DEDUP_DUPLICATE,
    NGX_HTTP_COMMERCE_DEDUP_IN_PROGRESS,
    NGX_HTTP_COMMERCE_DEDUP_ERROR,
    NGX_HTTP_COMMERCE_DEDUP_N
} ngx_http_commerce_dedup_e;


/* commerce_ratelimit_decisions_total{decision}; NONE is not counted */
typedef enum {
    NGX_HTTP_COMMERCE_LIMIT_ALLOWED = 0,
    NGX_HTTP_COMMERCE_LIMIT_LIMITED,
    NGX_HTTP_COMMERCE_LIMIT_ERROR,
    NGX_HTTP_COMMERCE_LIMIT_DECISION_N,
    NGX_HTTP_COMMERCE_LIMIT_UNDECIDED = NGX_HTTP_COMMERCE_LIMIT_DECISION_N
} ngx_http_commerce_limit_decision_e;


/* commerce_breaker_state{kind} */
typedef enum {
    NGX_HTTP_COMMERCE_BREAKER_REDIS = 0,
    NGX_HTTP_COMMERCE_BREAKER_KAFKA,
    NGX_HTTP_COMMERCE_BREAKER_N
} ngx_http_commerce_breaker_kind_e;


#define NGX_HTTP_COMMERCE_METRICS_STATUSES   501     /* 0, 100..599 */
#define NGX_HTTP_COMMERCE_METRICS_BUCKETS    13
#define NGX_HTTP_COMMERCE_METRICS_LABELS     64      /* the last: "other" */
#define NGX_HTTP_COMMERCE_METRICS_LABEL_LEN  128
#define NGX_HTTP_COMMERCE_METRICS_WORKERS    64
#define NGX_HTTP_COMMERCE_METRICS_REASONS    16      /* signature reasons */


/* bucket[i]: observations in (bound[i - 1], bound[i]], the last: above */
typedef struct {
    ngx_atomic_t                bucket[NGX_HTTP_COMMERCE_METRICS_BUCKETS + 1];
    ngx_atomic_t                sum_us;
} ngx_http_commerce_metrics_hist_t;


/* a label value, claimed once (0 free, 1 being written, 2 ready) */
typedef struct {
    ngx_atomic_t                state;
    size_t                      len;
    u_char                      name[NGX_HTTP_COMMERCE_METRICS_LABEL_LEN];
} ngx_http_commerce_metrics_label_t;


/* one worker's breaker of one server; pid 0: no worker reports it */
typedef struct {
    ngx_atomic_t                pid;
    ngx_atomic_t                state;     /* commerce_breaker_state_e */
    ngx_atomic_t                open_until;        /* ngx_current_msec */
} ngx_http_commerce_metrics_breaker_t;


/* the whole zone; a layout change changes NGX_HTTP_COMMERCE_METRICS_MAGIC */
typedef struct {
    uint64_t                    magic;
    ngx_atomic_t                requests[NGX_HTTP_COMMERCE_API_N]
                                        [NGX_HTTP_COMMERCE_METRICS_STATUSES];
    ngx_http_commerce_metrics_hist_t  redis_latency;
    ngx_atomic_t                redis_errors[NGX_HTTP_COMMERCE_REDIS_ERR_N];
    ngx_atomic_t                kafka[NGX_HTTP_COMMERCE_KAFKA_N];
    ngx_http_commerce_metrics_hist_t  kafka_latency;
    ngx_atomic_t                kafka_in_flight;   /* signed when read */
    ngx_atomic_t                dedup[NGX_HTTP_COMMERCE_DEDUP_N];
    ngx_http_commerce_metrics_label_t  labels[NGX_HTTP_COMMERCE_METRICS_LABELS];
    ngx_atomic_t                limit[NGX_HTTP_COMMERCE_METRICS_LABELS]
                                     [NGX_HTTP_COMMERCE_LIMIT_DECISION_N];
    ngx_atomic_t                sig[NGX_HTTP_COMMERCE_METRICS_LABELS]
                                   [NGX_HTTP_COMMERCE_METRICS_REASONS];
    ngx_http_commerce_metrics_breaker_t  breakers[NGX_HTTP_COMMERCE_BREAKER_N]
                                         [NGX_HTTP_COMMERCE_METRICS_LABELS]
                                         [NGX_HTTP_COMMERCE_METRICS_WORKERS];
} ngx_http_commerce_metrics_shm_t;


/* NULL outside worker processes (and before the zone is there) */
extern ngx_http_commerce_metrics_shm_t  *ngx_http_commerce_metrics;


#define ngx_http_commerce_metrics_add(field, n)                               \
    if (ngx_http_commerce_metrics) {                                          \
        (void) ngx_atomic_fetch_add(&ngx_http_commerce_metrics->field,        \
                                    (ngx_atomic_int_t) (n));                  \
    }

#define ngx_http_commerce_metrics_inc(field)                                  \
    ngx_http_commerce_metrics_add(field, 1)

#define ngx_http_commerce_metrics_redis_error(reason)                         \
    ngx_http_commerce_metrics_inc(redis_errors[reason])

#define ngx_http_commerce_metrics_dedup(outcome)                              \
    ngx_http_commerce_metrics_inc(dedup[outcome])


/* microseconds on the monotonic clock, for durations */
static ngx_inline uint64_t
ngx_http_commerce_metrics_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


void ngx_http_commerce_metrics_observe(ngx_http_commerce_metrics_hist_t *h,
    const uint64_t *bounds, uint64_t us);

extern const uint64_t  ngx_http_commerce_metrics_redis_bounds[];
extern const uint64_t  ngx_http_commerce_metrics_kafka_bounds[];


/* a Redis reply to a command sent at start (ngx_http_commerce_metrics_now) */
static ngx_inline void
ngx_http_commerce_metrics_redis_latency(uint64_t start)
{
    if (ngx_http_commerce_metrics) {
        ngx_http_commerce_metrics_observe(
            &ngx_http_commerce_metrics->redis_latency,
            ngx_http_commerce_metrics_redis_bounds,
            ngx_http_commerce_metrics_now() - start);
    }
}


/*
 * How a Kafka message ended (ngx_http_commerce_kafka_result_e), ms after
 * it was produced: the latency of delivered messages is observed.
 */
void ngx_http_commerce_metrics_kafka(ngx_uint_t result, ngx_msec_t ms);

/* a rate-limit zone's decision for one request */
void ngx_http_commerce_metrics_limit(ngx_str_t *zone, ngx_uint_t decision);

/* a webhook refused for its signature: reason is the response's code */
void ngx_http_commerce_metrics_sig_failure(ngx_str_t *source,
    const char *reason);

/* a breaker's state as this worker sees it, after it may have changed */
void ngx_http_commerce_metrics_breaker(ngx_uint_t kind, ngx_str_t *server,
    commerce_breaker_t *b);

/* configuration: the api label of the requests of the current location */
void ngx_http_commerce_metrics_api(ngx_conf_t *cf, ngx_uint_t api);


extern ngx_module_t  ngx_http_commerce_metrics_module;


#endif /* _NGX_HTTP_COMMERCE_METRICS_H_INCLUDED_ */
