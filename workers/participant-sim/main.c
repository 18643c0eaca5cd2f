/*
 * commerce-participant-sim: plays the saga's external participants, the
 * payment provider and the carrier, for the demo, the tests and the
 * benchmark.
 *
 *   commerce-participant-sim --kafka.bootstrap_file .run/kafka.bootstrap \
 *       --webhook_url http://127.0.0.1:8080/webhooks/payments \
 *       --webhook_secret whsec_... [--latency_ms_p50 20 --latency_ms_p99 200]
 *       [--decline_rate 0.02 --transient_rate 0.05 --no_answer_rate 0.01]
 *
 * It consumes the payment and shipping command topics in a consumer
 * group. Each command: parsed and checked (ps_command.c) -> its
 * idempotency key looked up (ps_idem.c): a key whose outcome was final
 * gets that answer again, byte for byte; else an outcome is drawn by the
 * rates and a latency by the distribution (ps_draw.c) -> the answer built
 * (ps_stripe.c: a Stripe event; ps_carrier.c: a reply) -> queued until
 * due (ps_queue.c), when a delivery thread POSTs it, signed, to nginx's
 * webhook ingress, with retries, or produces it on the replies topic
 * (ps_deliver.c, ps_http.c). Offsets are committed after each batch is
 * queued: an answer not yet delivered when the simulator stops is lost,
 * as a provider's may be, and the saga's deadline covers it.
 *
 * Metrics: participant_sim_commands_total{type}, _repeats_total{type}
 * (commands whose idempotency key was seen before), _doubles_total{type}
 * (a second command of one type for one order under another key: a second
 * capture, refund, shipment...), _outcomes_total{type, outcome},
 * _webhooks_total{result}, _replies_total{result}, _pending.
 * SIGTERM: stops consuming, leaves the group, lets each thread finish its
 * delivery, drops the answers not yet due (logged) and exits 0.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commerce_contract.h"
#include "cw_config.h"
#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_metrics.h"
#include "cw_signal.h"
#include "cw_time.h"
#include "cw_worker.h"
#include "ps.h"
#include "ps_deliver.h"
#include "ps_queue.h"

typedef struct {
    ps_draw_t             draw;
    ps_idem_t            *idem;
    ps_idem_t            *orders;       /* order|type -> its first key */
    ps_queue_t           *queue;
    ps_deliver_t          deliver;
    cw_kafka_consumer_t  *consumer;
    cw_kafka_producer_t  *producer;
    pthread_mutex_t       producer_lock;
    const char           *decline_code;
    const char           *decline_reason;
    cw_metric_t          *commands[PS_TYPE_N];
    cw_metric_t          *repeats[PS_TYPE_N];
    cw_metric_t          *doubles[PS_TYPE_N];
    cw_metric_t          *outcomes[PS_TYPE_N][PS_OUTCOME_N];
    cw_metric_t          *pending;
    volatile int         *stop;
} ps_app_t;


static const cw_opt_t  ps_opts[] = {
    { "webhook_url", CW_OPT_STR, "", 0, 0, 0,
      "where the payment provider's webhooks are POSTed: nginx's webhook "
      "location of the payments source (http://host:port/path)" },
    { "webhook_secret", CW_OPT_STR, "", 0, 0, 0,
      "the Stripe endpoint secret (whsec_...) the webhooks are signed "
      "with, as nginx's commerce_webhook_secret" },
    { "webhook_timeout", CW_OPT_DURATION, "10s", 100, 600000, 0,
      "longest wait for nginx's answer to one POST" },
    { "webhook_attempts", CW_OPT_INT, "10", 1, 1000, 0,
      "POSTs of one webhook before it is given up" },
    { "webhook_retry_min", CW_OPT_DURATION, "500ms", 1, 3600000, 0,
      "wait before a webhook's first retry; doubled at each retry" },
    { "webhook_retry_max", CW_OPT_DURATION, "60s", 1, 86400000, 0,
      "longest wait between two POSTs of a webhook" },
    { "replies_topic", CW_OPT_STR, COMMERCE_TOPIC_SHIPPING_REPLIES, 0, 0, 0,
      "topic of the carrier's replies" },
    { "decline_rate", CW_OPT_STR, "0", 0, 0, 0,
      "share (0 to 1) of payment.authorize and shipment.create declined "
      "for good" },
    { "transient_rate", CW_OPT_STR, "0", 0, 0, 0,
      "share (0 to 1) of commands answered with a retryable error" },
    { "no_answer_rate", CW_OPT_STR, "0", 0, 0, 0,
      "share (0 to 1) of commands never answered; the three rates add up "
      "to at most 1" },
    { "decline_code", CW_OPT_STR, "insufficient_funds", 0, 0, 0,
      "last_payment_error.decline_code of a declined authorization" },
    { "decline_reason", CW_OPT_STR, "address_undeliverable", 0, 0, 0,
      "reason of a declined shipment.create" },
    { "latency_ms_p50", CW_OPT_INT, "0", 0, 3600000, 0,
      "median delay before an answer, in ms (0: none)" },
    { "latency_ms_p99", CW_OPT_INT, "0", 0, 3600000, 0,
      "99th percentile of the delay (log-normal); equal to the median: "
      "fixed; 0: the median" },
    { "senders", CW_OPT_INT, "4", 1, 256, 0,
      "threads delivering answers" },
    { "max_pending", CW_OPT_INT, "100000", 1, 10000000, 0,
      "answers waiting at most; the consumer waits while full" },
    { "idempotency_keys", CW_OPT_INT, "100000", 1, 100000000, 0,
      "idempotency keys remembered (the oldest is forgotten first), and as "
      "many orders' first key of each command type" },
};

static const cw_worker_default_t  ps_defaults[] = {
    { "kafka.group_id", "commerce-participant-sim" },
    { "kafka.topics", COMMERCE_TOPIC_PAYMENT_COMMANDS ","
                      COMMERCE_TOPIC_SHIPPING_COMMANDS },
    { "kafka.client_id", "commerce-participant-sim" },
    { "kafka.batch_wait", "1ms" },
    { "kafka.fetch.wait.max.ms", "10" },
};


/* A rate: a decimal from 0 to 1. */
static int
ps_rate(const cw_config_t *cfg, const char *key, double *out, char *err,
    size_t errlen)
{
    char        *end;
    const char  *v = cw_config_str(cfg, key);

    *out = strtod(v, &end);
    if (end == v || *end != '\0' || !(*out >= 0 && *out <= 1)) {
        snprintf(err, errlen, "option \"%s\" from %s: \"%s\" is not a rate "
                 "from 0 to 1", key, cw_config_origin(cfg, key), v);
        return -1;
    }

    return 0;
}


static int
ps_check(const cw_config_t *cfg, char *err, size_t errlen)
{
    double     d, t, n;
    ps_url_t   u;
    long long  p50, p99;

    if (ps_rate(cfg, "decline_rate", &d, err, errlen) != 0
        || ps_rate(cfg, "transient_rate", &t, err, errlen) != 0
        || ps_rate(cfg, "no_answer_rate", &n, err, errlen) != 0)
    {
        return -1;
    }
    if (d + t + n > 1.0 + 1e-9) {
        snprintf(err, errlen, "decline_rate, transient_rate and "
                 "no_answer_rate add up to more than 1");
        return -1;
    }

    p50 = cw_config_int(cfg, "latency_ms_p50");
    p99 = cw_config_int(cfg, "latency_ms_p99");
    if (p99 != 0 && p99 < p50) {
        snprintf(err, errlen, "option \"latency_ms_p99\" from %s: %lld is "
                 "below latency_ms_p50 (%lld)",
                 cw_config_origin(cfg, "latency_ms_p99"), p99, p50);
        return -1;
    }

    if (ps_url_parse(cw_config_str(cfg, "webhook_url"), &u) != 0) {
        snprintf(err, errlen, "option \"webhook_url\" from %s: \"%s\" is "
                 "not http://host[:port]/path",
                 cw_config_origin(cfg, "webhook_url"),
                 cw_config_str(cfg, "webhook_url"));
        return -1;
    }
    if (cw_config_str(cfg, "webhook_secret")[0] == '\0') {
        snprintf(err, errlen, "option \"webhook_secret\" is not set");
        return -1;
    }
    if (cw_config_duration_ms(cfg, "webhook_retry_min")
        > cw_config_duration_ms(cfg, "webhook_retry_max"))
    {
        snprintf(err, errlen, "webhook_retry_min is above "
                 "webhook_retry_max");
        return -1;
    }

    return 0;
}


static const cw_worker_def_t  ps_worker = {
    "participant-sim",
    "play the payment provider (signed Stripe webhooks to nginx) and the "
    "carrier (replies on Kafka) for the saga's commands",
    ps_opts, sizeof(ps_opts) / sizeof(ps_opts[0]),
    CW_WORKER_KAFKA | CW_WORKER_METRICS | CW_WORKER_SIGNALS,
    ps_defaults, sizeof(ps_defaults) / sizeof(ps_defaults[0]),
    ps_check
};


#define PS_WEBHOOKS  "participant_sim_webhooks_total"
#define PS_REPLIES   "participant_sim_replies_total"

/* A series of the deliveries' counters, by result. */
static cw_metric_t *
ps_counter(cw_metrics_t *m, const char *name, const char *result)
{
    return cw_metrics_counter(m, name, strcmp(name, PS_WEBHOOKS) == 0
                              ? "Webhook POSTs by result."
                              : "Carrier replies by result.",
                              "result", result, NULL);
}


static void
ps_metrics(ps_app_t *app, cw_metrics_t *m)
{
    int            t, o;
    ps_deliver_t  *d = &app->deliver;

    for (t = 0; t < PS_TYPE_N; t++) {
        app->commands[t] = cw_metrics_counter(m,
            "participant_sim_commands_total", "Commands received, by type.",
            "type", ps_type_names[t], NULL);
        app->repeats[t] = cw_metrics_counter(m,
            "participant_sim_repeats_total", "Commands whose idempotency "
            "key was received before, by type.", "type", ps_type_names[t],
            NULL);
        app->doubles[t] = cw_metrics_counter(m,
            "participant_sim_doubles_total", "Commands of a type for an "
            "order that had one under another idempotency key, by type.",
            "type", ps_type_names[t], NULL);
        for (o = 0; o < PS_OUTCOME_N; o++) {
            app->outcomes[t][o] = cw_metrics_counter(m,
                "participant_sim_outcomes_total", "Commands by type and "
                "outcome (a repeat counts its first outcome again).", "type",
                ps_type_names[t], "outcome", ps_outcome_names[o], NULL);
        }
    }

    d->delivered = ps_counter(m, PS_WEBHOOKS, "delivered");
    d->duplicate = ps_counter(m, PS_WEBHOOKS, "duplicate");
    d->retried = ps_counter(m, PS_WEBHOOKS, "retried");
    d->gave_up = ps_counter(m, PS_WEBHOOKS, "gave_up");
    d->replies = ps_counter(m, PS_REPLIES, "produced");
    d->reply_failures = ps_counter(m, PS_REPLIES, "retried");
    app->pending = cw_metrics_gauge(m, "participant_sim_pending",
        "Answers waiting for their time or a retry.", NULL);
}


static void
ps_log_command(const ps_command_t *c, ps_outcome_e outcome, int repeat,
    int64_t latency, const char *detail)
{
    cw_field_t  f[] = {
        CW_FSTR("type", ps_type_names[c->type]),
        CW_FSTR("order_id", c->order_id != NULL ? c->order_id : ""),
        CW_FSTR("idempotency_key",
                c->idempotency_key != NULL ? c->idempotency_key : ""),
        CW_FINT("attempt", c->attempt),
        CW_FSTR("outcome", ps_outcome_names[outcome]),
        CW_FBOOL("repeat", repeat),
        CW_FINT("latency_ms", latency),
        CW_FSTR("traceparent", c->traceparent)
    };

    cw_log_kv(outcome >= PS_CONFLICT ? CW_LOG_WARN : CW_LOG_INFO, f,
              sizeof(f) / sizeof(f[0]), "command%s%s",
              detail[0] != '\0' ? ": " : "", detail);
}


/* The answer of a command seen for the first time, or whose earlier
 * outcome was not final; a final one is remembered with its key. */
static ps_answer_t *
ps_answer_draw(ps_app_t *app, const ps_command_t *c, ps_outcome_e *outcome)
{
    ps_answer_t  *a;

    *outcome = ps_draw_outcome(&app->draw, c->type);
    a = ps_type_is_payment(c->type)
        ? ps_stripe_event(c, *outcome, app->decline_code,
                          (int64_t) time(NULL))
        : ps_carrier_reply(c, *outcome, app->decline_reason);

    if (a != NULL && (*outcome == PS_SUCCEEDED || *outcome == PS_DECLINED)
        && ps_idem_keep(app->idem, c->idempotency_key, *outcome, a) != 0)
    {
        ps_answer_free(a);
        return NULL;
    }

    return a;
}


/* A second command of one type for one order, under another key than the
 * first's (a second capture, say): counted and logged; it is answered as
 * any other, so a test sees it in the metrics and the log. */
static void
ps_double(ps_app_t *app, const ps_command_t *c)
{
    int       differs;
    cw_buf_t  k;

    cw_buf_init(&k);
    cw_buf_printf(&k, "%s|%s", c->order_id, ps_type_names[c->type]);

    if (!k.oom
        && ps_idem_note(app->orders, k.data, c->idempotency_key, &differs)
           == 0
        && differs)
    {
        cw_counter_inc(app->doubles[c->type]);
        cw_log(CW_LOG_WARN, "order %s: a second %s under another "
               "idempotency key (%s)", c->order_id, ps_type_names[c->type],
               c->idempotency_key);
    }

    cw_buf_free(&k);
}


/* Decides one command's answer and queues it. */
static void
ps_command(ps_app_t *app, ps_command_t *c)
{
    int            seen, rc;
    int64_t        latency = 0;
    ps_job_t      *job;
    ps_answer_t   *a = NULL;
    ps_outcome_e   outcome = PS_NO_ANSWER;

    rc = ps_idem_see(app->idem, c->idempotency_key, c->type, &seen,
                     &outcome, &a);
    if (seen) {
        cw_counter_inc(app->repeats[c->type]);
    }
    ps_double(app, c);
    if (rc == PS_CONFLICT) {
        cw_counter_inc(app->outcomes[c->type][PS_CONFLICT]);
        ps_log_command(c, PS_CONFLICT, seen, 0, "the idempotency key was "
                       "used by a command of another type");
        return;
    }

    if (rc == 0 && a == NULL) {
        a = ps_answer_draw(app, c, &outcome);
        rc = a == NULL && ps_outcome_sends(c->type, outcome) ? -1 : 0;
    }
    if (rc != 0) {
        cw_log(CW_LOG_ERROR, "out of memory: command of %s not answered",
               c->order_id);
        ps_answer_free(a);
        return;
    }

    cw_counter_inc(app->outcomes[c->type][outcome]);
    if (a != NULL) {
        latency = ps_draw_latency_ms(&app->draw);
        job = ps_job_new(a, c);
        if (job == NULL) {
            ps_answer_free(a);
        } else {
            job->due_ms = cw_now_ms() + latency;
            ps_queue_push(app->queue, job, app->stop);
        }
    }
    ps_log_command(c, outcome, seen, latency, "");
}


static void
ps_message(ps_app_t *app, const rd_kafka_message_t *m)
{
    char                 err[512];
    size_t               len;
    const void          *v;
    ps_command_t         c;
    rd_kafka_headers_t  *h;

    if (ps_command_parse(&c, m->payload, m->len, err, sizeof(err)) != 0) {
        cw_field_t  f[] = {
            CW_FSTR("topic", rd_kafka_topic_name(m->rkt)),
            CW_FINT("partition", m->partition),
            CW_FINT("offset", m->offset)
        };

        cw_counter_inc(app->commands[c.type]);
        cw_counter_inc(app->outcomes[c.type][PS_INVALID]);
        cw_log_kv(CW_LOG_WARN, f, 3, "command refused: %s", err);
        ps_command_free(&c);
        return;
    }

    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR
        && rd_kafka_header_get_last(h, COMMERCE_H_TRACEPARENT, &v, &len)
           == RD_KAFKA_RESP_ERR_NO_ERROR
        && v != NULL && len < sizeof(c.traceparent))
    {
        memcpy(c.traceparent, v, len);
        c.traceparent[len] = '\0';
    }

    cw_counter_inc(app->commands[c.type]);
    ps_command(app, &c);
    ps_command_free(&c);
}


/* Every command of the batch is decided and queued, then the batch's
 * offsets are committed. */
static int
ps_on_batch(void *ud, rd_kafka_message_t **msgs, size_t n)
{
    size_t     i;
    ps_app_t  *app = ud;

    for (i = 0; i < n; i++) {
        ps_message(app, msgs[i]);
    }
    cw_kafka_commit(app->consumer, msgs, n, 1);

    return 0;
}


static int
ps_open(ps_app_t *app, const cw_config_t *cfg)
{
    char                 err[512];
    cw_kafka_handlers_t  h;
    ps_deliver_t        *d = &app->deliver;
    double               dr, tr, nr;

    ps_rate(cfg, "decline_rate", &dr, err, sizeof(err));
    ps_rate(cfg, "transient_rate", &tr, err, sizeof(err));
    ps_rate(cfg, "no_answer_rate", &nr, err, sizeof(err));
    ps_draw_init(&app->draw, dr, tr, nr, cw_config_int(cfg, "latency_ms_p50"),
                 cw_config_int(cfg, "latency_ms_p99"));
    app->decline_code = cw_config_str(cfg, "decline_code");
    app->decline_reason = cw_config_str(cfg, "decline_reason");

    app->idem = ps_idem_new((size_t) cw_config_int(cfg, "idempotency_keys"));
    app->orders = ps_idem_new((size_t) cw_config_int(cfg,
                                                     "idempotency_keys"));
    app->producer = cw_kafka_producer_new(cfg, err, sizeof(err));
    if (app->idem == NULL || app->orders == NULL || app->producer == NULL) {
        cw_log(CW_LOG_ERROR, "setting up: %s",
               app->producer != NULL ? "out of memory" : err);
        return -1;
    }

    ps_url_parse(cw_config_str(cfg, "webhook_url"), &d->url);
    d->secret = cw_config_str(cfg, "webhook_secret");
    d->timeout_ms = (int) cw_config_duration_ms(cfg, "webhook_timeout");
    d->retry_min_ms = cw_config_duration_ms(cfg, "webhook_retry_min");
    d->retry_max_ms = cw_config_duration_ms(cfg, "webhook_retry_max");
    d->attempts = (int) cw_config_int(cfg, "webhook_attempts");
    d->producer = app->producer;
    d->producer_lock = &app->producer_lock;
    d->replies_topic = cw_config_str(cfg, "replies_topic");

    app->queue = ps_queue_start((int) cw_config_int(cfg, "senders"),
                                (size_t) cw_config_int(cfg, "max_pending"),
                                ps_deliver_run, d);
    if (app->queue == NULL) {
        return -1;
    }

    memset(&h, 0, sizeof(h));
    h.on_batch = ps_on_batch;
    h.ud = app;
    app->consumer = cw_kafka_consumer_new(cfg, &h, err, sizeof(err));
    if (app->consumer == NULL) {
        cw_log(CW_LOG_ERROR, "kafka consumer: %s", err);
        return -1;
    }

    return 0;
}


/* Consumes until SIGTERM; the producer's delivery reports are served
 * between polls. */
static int
ps_consume(ps_app_t *app)
{
    cw_log(CW_LOG_INFO, "participant simulator running");

    while (!*app->stop) {
        if (cw_kafka_consumer_poll(app->consumer, 100) < 0) {
            return *app->stop ? 0 : 1;
        }
        pthread_mutex_lock(&app->producer_lock);
        rd_kafka_poll(cw_kafka_producer_handle(app->producer), 0);
        pthread_mutex_unlock(&app->producer_lock);
        cw_gauge_set(app->pending, (double) ps_queue_len(app->queue));
    }

    cw_log(CW_LOG_INFO, "stopping (signal %d)", cw_signal_which());

    return 0;
}


static void
ps_close(ps_app_t *app)
{
    size_t  dropped;

    if (app->consumer != NULL) {
        cw_kafka_consumer_close(app->consumer);
    }

    dropped = ps_queue_stop(app->queue);
    if (dropped > 0) {
        cw_log(CW_LOG_WARN, "%zu answers not yet due were dropped",
               dropped);
    }

    if (app->producer != NULL) {
        cw_kafka_producer_close(app->producer, 5000);
    }
    ps_idem_free(app->idem);
    ps_idem_free(app->orders);
    pthread_mutex_destroy(&app->producer_lock);
}


int
main(int argc, char **argv)
{
    int          status;
    ps_app_t     app;
    cw_worker_t  w;

    if (cw_worker_start(&w, &ps_worker, argc, argv) != 0) {
        return cw_worker_exit(&w, w.status);
    }

    memset(&app, 0, sizeof(app));
    pthread_mutex_init(&app.producer_lock, NULL);
    app.stop = cw_signal_stop_flag();
    ps_metrics(&app, w.metrics);

    status = ps_open(&app, w.cfg) == 0 ? ps_consume(&app) : 1;

    ps_close(&app);

    return cw_worker_exit(&w, status);
}
