/*
 * ps_deliver: the delivery of one due answer, on a queue thread.
 */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "commerce_contract.h"
#include "cw_log.h"
#include "ps_deliver.h"


static void
ps_log_job(cw_log_level_t level, const ps_job_t *j, const char *what,
    const char *detail, long long status)
{
    cw_field_t  f[] = {
        CW_FSTR("type", ps_type_names[j->type]),
        CW_FSTR("order_id", j->order_id),
        CW_FSTR("idempotency_key", j->idempotency_key),
        CW_FSTR("traceparent", j->traceparent),
        CW_FSTR("event_id", j->answer->event_id != NULL
                            ? j->answer->event_id : ""),
        CW_FINT("tries", j->tries),
        CW_FINT("status", status)
    };

    cw_log_kv(level, f, sizeof(f) / sizeof(f[0]), "%s%s%s", what,
              detail[0] != '\0' ? ": " : "", detail);
}


static int64_t
ps_webhook(ps_deliver_t *d, ps_job_t *j)
{
    int      status = 0, rc;
    char     sig[160], headers[320], err[512] = "";
    int64_t  again;

    if (ps_stripe_signature(d->secret, j->answer->body, j->answer->len,
                            (int64_t) time(NULL), sig, sizeof(sig)) != 0)
    {
        ps_log_job(CW_LOG_ERROR, j, "cannot sign the webhook", "", 0);
        cw_counter_inc(d->gave_up);
        return -1;
    }
    snprintf(headers, sizeof(headers), "Stripe-Signature: %s\r\n%s%s%s",
             sig, j->traceparent[0] != '\0' ? "traceparent: " : "",
             j->traceparent, j->traceparent[0] != '\0' ? "\r\n" : "");

    rc = ps_http_post(&d->url, headers, j->answer->body, j->answer->len,
                      d->timeout_ms, &status, err, sizeof(err));

    if (rc == 0 && status >= 200 && status < 300) {
        cw_counter_inc(status == 200 ? d->duplicate : d->delivered);
        ps_log_job(CW_LOG_DEBUG, j, status == 200 ? "webhook duplicate"
                   : "webhook delivered", "", status);
        return -1;
    }

    if (rc == 0 && status != 409 && status != 429 && status < 500) {
        ps_log_job(CW_LOG_ERROR, j, "webhook refused, given up (check "
                   "--webhook_url and --webhook_secret)", "", status);
        cw_counter_inc(d->gave_up);
        return -1;
    }

    again = cw_backoff_next(&j->backoff);
    if (again < 0) {
        ps_log_job(CW_LOG_ERROR, j, "webhook given up", err, status);
        cw_counter_inc(d->gave_up);
        return -1;
    }

    ps_log_job(CW_LOG_WARN, j, "webhook to retry", err, status);
    cw_counter_inc(d->retried);

    return again;
}


static int64_t
ps_reply(ps_deliver_t *d, ps_job_t *j)
{
    int                  rc;
    char                 err[512];
    int64_t              again;
    rd_kafka_headers_t  *h;

    h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, COMMERCE_H_REPLY_TYPE, -1, j->answer->reply_type,
                        -1);
    rd_kafka_header_add(h, COMMERCE_H_IDEMPOTENCY_KEY, -1,
                        j->idempotency_key, -1);
    rd_kafka_header_add(h, COMMERCE_H_CONTENT_TYPE, -1, "application/json",
                        -1);
    if (j->traceparent[0] != '\0') {
        rd_kafka_header_add(h, COMMERCE_H_TRACEPARENT, -1, j->traceparent,
                            -1);
    }

    pthread_mutex_lock(d->producer_lock);
    rc = cw_kafka_produce(d->producer, d->replies_topic, -1, j->order_id,
                          strlen(j->order_id), j->answer->body,
                          j->answer->len, h, err, sizeof(err));
    pthread_mutex_unlock(d->producer_lock);

    if (rc == 0) {
        cw_counter_inc(d->replies);
        ps_log_job(CW_LOG_DEBUG, j, "reply produced", "", 0);
        return -1;
    }

    rd_kafka_headers_destroy(h);
    cw_counter_inc(d->reply_failures);
    ps_log_job(CW_LOG_WARN, j, "reply to retry", err, 0);

    again = cw_backoff_next(&j->backoff);

    return again >= 0 ? again : d->retry_max_ms;
}


int64_t
ps_deliver_run(void *ud, ps_job_t *j)
{
    ps_deliver_t  *d = ud;

    /* retry_min, doubled at each retry up to retry_max, less up to half
     * of it at random (the retries of many webhooks spread out); a
     * webhook is POSTed at most d->attempts times */
    if (j->tries++ == 0) {
        cw_backoff_init(&j->backoff, d->retry_min_ms, d->retry_max_ms, 0.5,
                        d->attempts - 1, 0);
    }

    return j->answer->webhook ? ps_webhook(d, j) : ps_reply(d, j);
}
