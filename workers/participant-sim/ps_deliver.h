/*
 * ps_deliver: how a due answer leaves the simulator. A webhook is POSTed
 * to nginx, signed at that moment (Stripe-Signature), and POSTed again
 * after a 5xx, a 409, a 429 or no answer, with exponential backoff and
 * jitter, up to a number of attempts, as Stripe retries; another 4xx is
 * a configuration error, logged and given up. A carrier's reply is
 * produced on the replies topic.
 *
 * Use: ps_queue_start(n, max, ps_deliver_run, &deliver).
 */

#ifndef PS_DELIVER_H
#define PS_DELIVER_H

#include <pthread.h>
#include <stdint.h>

#include "cw_kafka.h"
#include "cw_metrics.h"
#include "ps_http.h"
#include "ps_queue.h"

typedef struct {
    ps_url_t              url;
    const char           *secret;
    int                   timeout_ms;
    int64_t               retry_min_ms;
    int64_t               retry_max_ms;
    int                   attempts;         /* POSTs of one webhook */
    cw_kafka_producer_t  *producer;
    pthread_mutex_t      *producer_lock;    /* also the consumer's poll */
    const char           *replies_topic;
    cw_metric_t          *delivered;        /* 202: published */
    cw_metric_t          *duplicate;        /* 200: published before */
    cw_metric_t          *retried;
    cw_metric_t          *gave_up;
    cw_metric_t          *replies;
    cw_metric_t          *reply_failures;
} ps_deliver_t;

int64_t ps_deliver_run(void *ud, ps_job_t *job);

#endif /* PS_DELIVER_H */
