/*
 * commerce-projector: consumes commerce.inbound in a consumer group and
 * projects it into PostgreSQL (event store, canonical catalog), Kafka
 * (commerce.events, commerce.dlq) and the Redis read model.
 *
 *   commerce-projector --pg.conninfo "..." --redis.address 127.0.0.1:6380 \
 *       --kafka.bootstrap_file .run/kafka.bootstrap [--metrics.port N]
 *   commerce-projector --rebuild ...     rebuild Redis from PostgreSQL
 *
 * The main loop: poll a batch -> apply it in one PostgreSQL transaction
 * with its offsets (proj_store.c; an archive thread writes the raw
 * messages meanwhile, on a connection of its own); a full batch leaves
 * its COMMIT in flight while the next batch is polled and parsed, and
 * that batch confirms it before its statements (at once when no message
 * is waiting) -> hand the read-model values it changed to the read-model
 * thread, which writes them to Redis, and kick the publisher, which
 * publishes the outbox's events and dead letters to Kafka (threads of
 * proj_drainer.c on outboxes of proj_outbox.c, drained into
 * proj_readmodel.c and proj_publisher.c). Each thread has its own
 * PostgreSQL connection, so consumption waits for neither Redis nor
 * Kafka's acknowledgements.
 * Offsets live in PostgreSQL and are handed to Kafka on every partition
 * assignment. SIGTERM finishes the batch in hand, leaves the group,
 * writes and publishes what is left and exits 0.
 */

#include <stdio.h>
#include <string.h>

#include "commerce_contract.h"
#include "cw_config.h"
#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_metrics.h"
#include "cw_pg.h"
#include "cw_redis.h"
#include "cw_signal.h"
#include "cw_time.h"
#include "cw_worker.h"
#include "proj.h"
#include "proj_drainer.h"
#include "proj_gauges.h"
#include "proj_offsets.h"
#include "proj_outbox.h"
#include "proj_publisher.h"
#include "proj_readmodel.h"
#include "proj_store.h"

/* What the projector runs, and who owns it: everything here is the
 * app's, freed by proj_close; the outboxes only use their connections. */
typedef struct {
    cw_pg_t                *pg;         /* batches; --rebuild */
    cw_pg_t                *pub_pg;     /* the publisher's */
    cw_pg_t                *rm_pg;      /* the read-model writer's */
    cw_redis_t             *redis;
    cw_kafka_producer_t    *producer;
    cw_kafka_consumer_t    *consumer;
    proj_store_t           *store;      /* owns the archive's connection */
    proj_publisher_t       *publisher;
    proj_readmodel_t       *readmodel;
    proj_outbox_t          *pub_out;    /* Kafka rows, to publisher */
    proj_outbox_t          *rm_out;     /* read-model rows, to readmodel */
    proj_drainer_t         *pub;        /* drains pub_out */
    proj_drainer_t         *rmw;        /* drains rm_out */
    proj_gauges_t          *gauges;     /* outbox backlog, consumer lag */
    cw_metrics_t           *metrics;    /* the worker's */
    proj_store_metrics_t    sm;
    proj_outbox_metrics_t   om;
    volatile int           *stop;
    size_t                  batch_max;  /* kafka.batch_max */
} proj_app_t;


static const cw_opt_t  proj_opts[] = {
    { "rebuild", CW_OPT_BOOL, "false", 0, 0, 0,
      "rebuild every Redis read model from PostgreSQL, then exit" },
    { "events_topic", CW_OPT_STR, COMMERCE_TOPIC_EVENTS, 0, 0, 0,
      "topic of the canonical events" },
    { "dlq_topic", CW_OPT_STR, COMMERCE_TOPIC_DLQ, 0, 0, 0,
      "topic of dead-lettered messages" },
    { "shopify_currency", CW_OPT_STR, "USD", 0, 0, 0,
      "currency of Shopify prices (the shop currency)" },
    { "outbox_page", CW_OPT_INT, "1000", 1, 100000, 0,
      "outbox rows handled per drain transaction" },
    { "gauge_interval", CW_OPT_DURATION, "5s", 100, 600000, 0,
      "how often the outbox backlog and the consumer lag are measured" },
};

/* Our defaults for options the library declares with other defaults, and
 * for librdkafka properties; --help shows them. */
static const cw_worker_default_t  proj_defaults[] = {
    { "kafka.group_id", "commerce-projector" },
    { "kafka.topics", COMMERCE_TOPIC_INBOUND },
    { "kafka.client_id", "commerce-projector" },
    /* Under load a batch fills at once; when traffic is light, waiting
     * for more messages only delays what is already there. */
    { "kafka.batch_wait", "1ms" },
    /* Each batch pays for a commit, a dozen statements and its outbox
     * rows: bigger batches spread that, much bigger ones hold their locks
     * and memory longer for nothing (bench, 100k messages: 1000 about 8k,
     * 2500 about 9.2k, 5000 about 8.4k messages/s). */
    { "kafka.batch_max", "2500" },
    /* An idle broker holds a fetch up to fetch.wait.max.ms (librdkafka:
     * 500 ms): that long a lone webhook would wait to be seen. */
    { "kafka.fetch.wait.max.ms", "10" },
};


static int
proj_check(const cw_config_t *cfg, char *err, size_t errlen)
{
    const char  *v = cw_config_str(cfg, "shopify_currency");

    if (!proj_valid_currency(v)) {
        snprintf(err, errlen, "option \"shopify_currency\" from %s: \"%s\" "
                 "is not an active ISO 4217 currency code",
                 cw_config_origin(cfg, "shopify_currency"), v);
        return -1;
    }

    return 0;
}


static const cw_worker_def_t  proj_worker = {
    "projector",
    "project " COMMERCE_TOPIC_INBOUND " into PostgreSQL, "
    COMMERCE_TOPIC_EVENTS " and the Redis read model",
    proj_opts, sizeof(proj_opts) / sizeof(proj_opts[0]),
    CW_WORKER_PG | CW_WORKER_REDIS | CW_WORKER_KAFKA | CW_WORKER_METRICS
    | CW_WORKER_SIGNALS,
    proj_defaults, sizeof(proj_defaults) / sizeof(proj_defaults[0]),
    proj_check
};


/* A stored offset past the end of its partition's log means the log is
 * not the one PostgreSQL consumed (the topic was recreated, or a broker
 * lost its data): starting there would fence, that is skip, every new
 * message below it. The assignment is refused and the projector stops,
 * saying what to do. A log that cannot be asked is not a reason to stop. */
static int
proj_check_log(proj_app_t *app, rd_kafka_topic_partition_list_t *parts)
{
    int                   i;
    int64_t               lo, hi;
    rd_kafka_resp_err_t   err;
    rd_kafka_topic_partition_t  *tp;

    for (i = 0; i < parts->cnt; i++) {
        tp = &parts->elems[i];
        if (tp->offset < 0) {
            continue;
        }

        err = rd_kafka_query_watermark_offsets(
                  cw_kafka_consumer_handle(app->consumer), tp->topic,
                  tp->partition, &lo, &hi, 5000);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            cw_log(CW_LOG_WARN, "cannot check the end of %s [%d]: %s",
                   tp->topic, (int) tp->partition, rd_kafka_err2str(err));
            continue;
        }

        if (tp->offset > hi) {
            cw_log(CW_LOG_ERROR, "%s [%d]: PostgreSQL has consumed up to "
                   "offset %lld but the log ends at %lld: the topic was "
                   "recreated or lost data, and starting here would skip "
                   "its messages. Once checked, delete this group's rows "
                   "in consumer_offsets (and the position dedup keys, "
                   "topic|partition|offset|cluster, in inbound_processed) "
                   "to read the log from its start", tp->topic,
                   (int) tp->partition,
                   (long long) tp->offset, (long long) hi);
            return -1;
        }
    }

    return 0;
}


static int
proj_on_assign(void *ud, rd_kafka_topic_partition_list_t *parts)
{
    proj_app_t  *app = ud;

    if (proj_store_load_offsets(app->store, parts, app->stop) != 0) {
        return -1;
    }

    return proj_check_log(app, parts);
}


/* Applies a batch. A full batch means more messages are waiting: its
 * COMMIT is confirmed while the next batch is prepared (or on revocation,
 * or at the end). A smaller one means the projector has caught up: it is
 * committed at once, and its values go to Redis without waiting for more
 * messages to come. */
static int
proj_on_batch(void *ud, rd_kafka_message_t **msgs, size_t n)
{
    proj_app_t  *app = ud;

    return proj_store_apply_batch(app->store, msgs, n, n >= app->batch_max,
                                  app->stop);
}


/* A batch's commit is confirmed: hands the read-model keys it changed to
 * the read-model thread and kicks the publisher: the values and the
 * events it committed are written and published by them. */
static void
proj_on_commit(void *ud)
{
    char        *keys;
    long long    id;
    proj_app_t  *app = ud;

    id = proj_store_take_rm_keys(app->store, &keys);
    if (id > 0) {
        proj_drainer_push(app->rmw, id, keys);
    }

    proj_drainer_kick(app->pub);
}


/* Before partitions go (and when the consumer leaves the group): the
 * COMMIT in flight is confirmed, and the messages it kept released. */
static void
proj_on_revoke(void *ud, const rd_kafka_topic_partition_list_t *parts,
    int lost)
{
    proj_app_t  *app = ud;

    (void) parts;
    (void) lost;

    proj_store_settle(app->store, app->stop);
}


static cw_metric_t *
proj_counter(cw_metrics_t *m, const char *name, const char *help)
{
    return cw_metrics_counter(m, name, help, NULL);
}


static void
proj_metrics(cw_metrics_t *m, proj_store_metrics_t *sm,
    proj_outbox_metrics_t *om)
{
    int                  i;
    static const double  bounds[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25, 0.5, 1, 2.5, 5 };

    sm->applied = cw_metrics_counter(m, "projector_messages_total",
        "Inbound messages by outcome.", "result", "applied", NULL);
    sm->duplicates = cw_metrics_counter(m, "projector_messages_total",
        "Inbound messages by outcome.", "result", "duplicate", NULL);
    sm->skipped = cw_metrics_counter(m, "projector_messages_total",
        "Inbound messages by outcome.", "result", "fenced", NULL);
    sm->dead = cw_metrics_counter(m, "projector_messages_total",
        "Inbound messages by outcome.", "result", "dead_lettered", NULL);
    sm->events = proj_counter(m, "projector_events_total",
        "Canonical events recorded in the event store.");
    sm->stale = proj_counter(m, "projector_stale_writes_total",
        "Writes ignored because the source sent an older state.");
    sm->retries = proj_counter(m, "projector_batch_retries_total",
        "Batch transactions retried after a transient failure.");
    sm->batch_seconds = cw_metrics_histogram(m, "projector_batch_seconds",
        "Time to apply and commit a batch.", bounds,
        sizeof(bounds) / sizeof(bounds[0]), NULL);

    om->published = proj_counter(m, "projector_published_total",
        "Outbox messages delivered to Kafka.");
    om->rm_written = cw_metrics_counter(m, "projector_read_model_total",
        "Read-model writes by outcome.", "result", "written", NULL);
    om->rm_kept = cw_metrics_counter(m, "projector_read_model_total",
        "Read-model writes by outcome.", "result", "kept_newer", NULL);
    om->failures = proj_counter(m, "projector_outbox_failures_total",
        "Outbox drains that failed (Redis, Kafka or PostgreSQL).");
    om->pending = cw_metrics_gauge(m, "projector_outbox_page_rows",
        "Rows in the last outbox page.", NULL);
    om->refused_too_large = cw_metrics_counter(m,
        "projector_outbox_refused_total", "Outbox messages Kafka refused for "
        "good, published reduced or left out.", "reason", "too_large", NULL);
    om->refused_invalid = cw_metrics_counter(m,
        "projector_outbox_refused_total", "Outbox messages Kafka refused for "
        "good, published reduced or left out.", "reason", "invalid_record",
        NULL);
    for (i = 0; i < PROJ_REASON_N; i++) {
        om->dlq[i] = cw_metrics_counter(m, "projector_dlq_total",
            "Dead letters published, by reason.", "reason", proj_reasons[i],
            NULL);
    }
}


/* A PostgreSQL connection that gives up its retries on SIGTERM. */
static cw_pg_t *
proj_pg(const cw_config_t *cfg, const char *app_name)
{
    cw_pg_t  *pg = cw_pg_new_from_config(cfg, app_name);

    if (pg != NULL) {
        cw_pg_set_stop_flag(pg, cw_signal_stop_flag());
    }

    return pg;
}


/* What both modes need: the main PostgreSQL connection and Redis. */
static int
proj_connect(proj_app_t *app, const cw_config_t *cfg)
{
    char  err[512];

    app->stop = cw_signal_stop_flag();
    app->pg = proj_pg(cfg, "commerce-projector");
    app->redis = cw_redis_new_from_config(cfg, err, sizeof(err));
    if (app->pg == NULL || app->redis == NULL) {
        cw_log(CW_LOG_ERROR, "config: %s", app->redis == NULL ? err : "pg");
        return -1;
    }

    return 0;
}


/* --rebuild: every read-model value from PostgreSQL to Redis. */
static int
proj_rebuild(proj_app_t *app)
{
    app->readmodel = proj_readmodel_new(app->pg, app->redis, &app->om);

    return app->readmodel != NULL
           && proj_readmodel_rebuild(app->readmodel, app->stop) == 0 ? 0 : 1;
}


/* The producer, a connection for each drainer and one for the archive
 * (written while the batch is applied), the outboxes, the store, the
 * consumer and the gauges (proj_gauges.h, on a connection of their own). */
static int
proj_open(proj_app_t *app, const cw_config_t *cfg)
{
    int                   page = (int) cw_config_int(cfg, "outbox_page");
    char                  err[512] = "";
    cw_pg_t              *arc_pg;
    proj_outbox_sink_t    sink;
    cw_kafka_handlers_t   h;

    app->producer = cw_kafka_producer_new(cfg, err, sizeof(err));
    if (app->producer == NULL) {
        cw_log(CW_LOG_ERROR, "kafka producer: %s", err);
        return -1;
    }

    if (proj_offsets_cluster(cw_kafka_producer_handle(app->producer),
                             app->stop) != 0)
    {
        return -1;
    }

    app->pub_pg = proj_pg(cfg, "commerce-projector-publisher");
    app->rm_pg = proj_pg(cfg, "commerce-projector-readmodel");
    arc_pg = proj_pg(cfg, "commerce-projector-archive");
    if (app->pub_pg == NULL || app->rm_pg == NULL || arc_pg == NULL) {
        cw_pg_free(arc_pg);
        cw_log(CW_LOG_ERROR, "config: pg");
        return -1;
    }

    app->publisher = proj_publisher_new(app->producer, &app->om);
    app->readmodel = proj_readmodel_new(app->rm_pg, app->redis, &app->om);
    if (app->publisher == NULL || app->readmodel == NULL) {
        cw_pg_free(arc_pg);
        cw_log(CW_LOG_ERROR, "out of memory");
        return -1;
    }

    proj_publisher_sink(app->publisher, &sink);
    app->pub_out = proj_outbox_new(app->pub_pg, &sink, page, &app->om);
    proj_readmodel_sink(app->readmodel, &sink);
    app->rm_out = proj_outbox_new(app->rm_pg, &sink, page, &app->om);
    app->store = proj_store_new(app->pg, arc_pg,
                                cw_config_str(cfg, "kafka.group_id"),
                                cw_config_str(cfg, "events_topic"),
                                cw_config_str(cfg, "dlq_topic"), &app->sm);
    /* arc_pg is the store's now */

    if (app->store == NULL || app->pub_out == NULL || app->rm_out == NULL
        || proj_store_prepare(app->store, err, sizeof(err)) != 0
        || proj_offsets_adopt(app->pg, cw_config_str(cfg, "kafka.group_id"),
                              err, sizeof(err)) != 0)
    {
        cw_log(CW_LOG_ERROR, "setting up statements: %s", err);
        return -1;
    }

    app->batch_max = (size_t) cw_config_int(cfg, "kafka.batch_max");
    proj_store_on_commit(app->store, proj_on_commit, app);

    memset(&h, 0, sizeof(h));
    h.on_assign = proj_on_assign;
    h.on_revoke = proj_on_revoke;
    h.on_batch = proj_on_batch;
    h.ud = app;

    app->consumer = cw_kafka_consumer_new(cfg, &h, err, sizeof(err));
    if (app->consumer == NULL) {
        cw_log(CW_LOG_ERROR, "kafka consumer: %s", err);
        return -1;
    }

    app->gauges = proj_gauges_start(proj_pg(cfg, "commerce-projector-gauges"),
        app->consumer, app->metrics,
        (int) cw_config_duration_ms(cfg, "gauge_interval"));

    return app->gauges != NULL ? 0 : -1;
}


/* One cycle: with nothing waiting, the COMMIT in flight is confirmed
 * (and its read-model values handed over) before the wait for more, not
 * when the next batch comes. Returns cw_kafka_consumer_poll's value. */
static int
proj_poll(proj_app_t *app)
{
    int      rc;
    int64_t  t0 = cw_now_ms();

    rc = cw_kafka_consumer_poll(app->consumer, 0);
    if (rc == 0) {
        rc = proj_store_settle(app->store, app->stop);
        if (rc == 0) {
            rc = cw_kafka_consumer_poll(app->consumer, 100);
        }
    }

    /* The stage trace (debug): batch committed, polled (this line: the
     * whole cycle), outbox drained. */
    if (rc > 0 && cw_log_enabled(CW_LOG_DEBUG)) {
        cw_field_t  f[] = { CW_FINT("messages", rc),
                            CW_FINT("poll_ms", cw_now_ms() - t0) };

        cw_log_kv(CW_LOG_DEBUG, f, 2, "polled");
    }

    return rc;
}


/* Starts the drainers and consumes until SIGTERM; returns the exit
 * status. */
static int
proj_consume(proj_app_t *app)
{
    int  status = 0;

    /* Effects of batches committed before a crash wait in the outbox:
     * both drainers start with a drain. */
    app->rmw = proj_drainer_start("read model", app->rm_out,
                                  app->readmodel);
    if (app->rmw == NULL) {
        return 1;
    }
    app->pub = proj_drainer_start("publisher", app->pub_out, NULL);
    if (app->pub == NULL) {
        return 1;
    }

    cw_log(CW_LOG_INFO, "projector running");

    while (!cw_signal_stop_requested()) {
        if (proj_poll(app) < 0) {
            status = cw_signal_stop_requested() ? 0 : 1;
            break;
        }
    }

    cw_log(CW_LOG_INFO, "stopping (signal %d)", cw_signal_which());

    return status;
}


/* Confirms the last batch's COMMIT before the consumer goes, leaves the
 * group, then writes and publishes what is left (unless the projector
 * failed) and frees everything. Returns the final exit status. */
static int
proj_close(proj_app_t *app, int status)
{
    if (app->store != NULL && proj_store_settle(app->store, app->stop) != 0
        && !cw_signal_stop_requested())
    {
        status = 1;
    }

    proj_gauges_stop(app->gauges);

    if (app->consumer != NULL) {
        cw_kafka_consumer_close(app->consumer);
    }

    proj_drainer_stop(app->rmw, status == 0);
    proj_drainer_stop(app->pub, status == 0);

    if (app->producer != NULL) {
        cw_kafka_producer_close(app->producer, 5000);
    }

    proj_outbox_free(app->pub_out);
    proj_outbox_free(app->rm_out);
    proj_publisher_free(app->publisher);
    proj_readmodel_free(app->readmodel);
    proj_store_free(app->store);
    cw_redis_free(app->redis);
    cw_pg_free(app->rm_pg);
    cw_pg_free(app->pub_pg);
    cw_pg_free(app->pg);

    return status;
}


int
main(int argc, char **argv)
{
    int          status;
    proj_app_t   app;
    cw_worker_t  w;

    if (cw_worker_start(&w, &proj_worker, argc, argv) != 0) {
        return cw_worker_exit(&w, w.status);
    }

    memset(&app, 0, sizeof(app));
    app.metrics = w.metrics;
    proj_metrics(w.metrics, &app.sm, &app.om);
    proj_shopify_set_currency(cw_config_str(w.cfg, "shopify_currency"));

    if (proj_connect(&app, w.cfg) != 0) {
        status = 1;
    } else if (cw_config_bool(w.cfg, "rebuild")) {
        status = proj_rebuild(&app);
    } else if (proj_open(&app, w.cfg) != 0) {
        status = 1;
    } else {
        status = proj_consume(&app);
    }

    status = proj_close(&app, status);

    return cw_worker_exit(&w, status);
}
