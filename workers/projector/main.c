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
 * proj_drainer.c on outboxes of proj_outbox.c). Each thread has its own
 * PostgreSQL connection, so consumption waits for neither Redis nor
 * Kafka's acknowledgements.
 * Offsets live in PostgreSQL and are handed to Kafka on every partition
 * assignment. SIGTERM finishes the batch in hand, leaves the group,
 * writes and publishes what is left and exits 0.
 */

#include <stdio.h>
#include <string.h>

#include "cw_config.h"
#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_metrics.h"
#include "cw_pg.h"
#include "cw_redis.h"
#include "cw_signal.h"
#include "cw_time.h"
#include "proj.h"
#include "proj_drainer.h"
#include "proj_outbox.h"
#include "proj_store.h"

typedef struct {
    proj_store_t          *store;
    proj_drainer_t        *pub;        /* Kafka rows */
    proj_drainer_t        *rmw;        /* read-model rows */
    cw_kafka_consumer_t   *consumer;
    volatile int          *stop;
    size_t                 batch_max;  /* kafka.batch_max */
} proj_app_t;


static const cw_opt_t  proj_opts[] = {
    { "rebuild", CW_OPT_BOOL, "false", 0, 0, 0,
      "rebuild every Redis read model from PostgreSQL, then exit" },
    { "events_topic", CW_OPT_STR, "commerce.events", 0, 0, 0,
      "topic of the canonical events" },
    { "dlq_topic", CW_OPT_STR, "commerce.dlq", 0, 0, 0,
      "topic of dead-lettered messages" },
    { "shopify_currency", CW_OPT_STR, "USD", 0, 0, 0,
      "currency of Shopify prices (the shop currency)" },
    { "outbox_page", CW_OPT_INT, "1000", 1, 100000, 0,
      "outbox rows handled per drain transaction" },
    { "log_level", CW_OPT_STR, "info", 0, 0, 0,
      "debug, info, warn or error" },
};

/* Our defaults for options the library declares with other defaults
 * (set before loading, so --help shows them), and for librdkafka
 * properties (applied after loading, where no file or flag set them). */
static const char *const  proj_lib_defaults[][2] = {
    { "kafka.group_id", "commerce-projector" },
    { "kafka.topics", "commerce.inbound" },
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


/* Whether a pass-through kafka.* property was set by file, environment
 * or flag (those are not declared options, so have no source). */
static int
proj_passthru_is(void *ud, const char *key, const char *value)
{
    (void) value;

    return strcmp(key, (const char *) ud) == 0;
}


static int
proj_is_passthru(const char *key)
{
    return strncmp(key, "kafka.", 6) == 0 && strchr(key + 6, '.') != NULL;
}


static int
proj_set_defaults(cw_config_t *cfg)
{
    size_t  i;

    for (i = 0; i < sizeof(proj_lib_defaults) / sizeof(proj_lib_defaults[0]);
         i++)
    {
        if (!proj_is_passthru(proj_lib_defaults[i][0])
            && cw_config_set_default(cfg, proj_lib_defaults[i][0],
                                     proj_lib_defaults[i][1]) != 0)
        {
            return -1;
        }
    }

    return 0;
}


static int
proj_apply_defaults(cw_config_t *cfg, char *err, size_t errlen)
{
    char    line[256];
    size_t  i;

    for (i = 0; i < sizeof(proj_lib_defaults) / sizeof(proj_lib_defaults[0]);
         i++)
    {
        const char  *key = proj_lib_defaults[i][0];

        if (!proj_is_passthru(key)
            || cw_config_each_prefixed(cfg, "kafka.", proj_passthru_is,
                                       (void *) (key + 6)) != 0)
        {
            continue;
        }

        snprintf(line, sizeof(line), "%s = %s", key, proj_lib_defaults[i][1]);

        if (cw_config_load_text(cfg, "defaults", line, err, errlen) != 0) {
            return -1;
        }
    }

    return 0;
}


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
                   "topic|partition|offset, in inbound_processed) to read "
                   "the log from its start", tp->topic, (int) tp->partition,
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
}


int
main(int argc, char **argv)
{
    int                     rc, status = 1;
    char                    err[512];
    proj_app_t              app;
    cw_pg_t                *pg = NULL, *pub_pg = NULL, *rm_pg = NULL;
    cw_pg_t                *arc_pg = NULL;
    cw_redis_t             *redis = NULL;
    cw_config_t            *cfg;
    cw_metrics_t           *metrics;
    cw_log_level_t          level = CW_LOG_INFO;
    proj_store_t           *store = NULL;
    proj_outbox_t          *pub_out = NULL, *rm_out = NULL;
    proj_drainer_t         *pub = NULL, *rmw = NULL;
    cw_kafka_handlers_t     h;
    cw_kafka_consumer_t    *consumer = NULL;
    cw_kafka_producer_t    *producer = NULL;
    proj_store_metrics_t    sm;
    proj_outbox_metrics_t   om;

    cw_log_init("projector", CW_LOG_INFO);

    cfg = cw_config_new("commerce-projector",
                        "project commerce.inbound into PostgreSQL, "
                        "commerce.events and the Redis read model");
    metrics = cw_metrics_new();

    if (cfg == NULL || metrics == NULL
        || cw_config_declare(cfg, proj_opts,
                             sizeof(proj_opts) / sizeof(proj_opts[0])) != 0
        || cw_pg_declare(cfg) != 0 || cw_redis_declare(cfg) != 0
        || cw_kafka_declare(cfg) != 0
        || cw_metrics_declare(cfg, "0") != 0
        || proj_set_defaults(cfg) != 0)
    {
        cw_log(CW_LOG_ERROR, "setting up configuration failed");
        return 1;
    }

    rc = cw_config_load(cfg, argc, argv, NULL, err, sizeof(err));
    if (rc == 1) {
        cw_config_help(cfg, stdout);
        return 0;
    }

    if (rc != 0 || proj_apply_defaults(cfg, err, sizeof(err)) != 0) {
        cw_log(CW_LOG_ERROR, "config: %s", err);
        return 2;
    }

    if (cw_log_level_parse(cw_config_str(cfg, "log_level"), &level) != 0
        || !proj_valid_currency(cw_config_str(cfg, "shopify_currency")))
    {
        cw_log(CW_LOG_ERROR, "config: bad log_level or shopify_currency");
        return 2;
    }

    cw_log_set_level(level);
    proj_shopify_set_currency(cw_config_str(cfg, "shopify_currency"));

    if (cw_signal_install() != 0) {
        cw_log(CW_LOG_ERROR, "cannot install signal handlers");
        return 1;
    }

    proj_metrics(metrics, &sm, &om);

    if (cw_config_int(cfg, "metrics.port") > 0
        && cw_metrics_serve(metrics, (int) cw_config_int(cfg, "metrics.port"),
                            err, sizeof(err)) != 0)
    {
        cw_log(CW_LOG_ERROR, "metrics: %s", err);
        goto done;
    }

    pg = cw_pg_new_from_config(cfg, "commerce-projector");
    redis = cw_redis_new_from_config(cfg, err, sizeof(err));
    if (pg == NULL || redis == NULL) {
        cw_log(CW_LOG_ERROR, "config: %s", redis == NULL ? err : "pg");
        goto done;
    }

    cw_pg_set_stop_flag(pg, cw_signal_stop_flag());

    if (cw_config_bool(cfg, "rebuild")) {
        rm_out = proj_outbox_new(pg, redis, NULL, "redis",
                                 (int) cw_config_int(cfg, "outbox_page"),
                                 &om);
        status = rm_out != NULL
                 && proj_outbox_rebuild(rm_out, cw_signal_stop_flag())
                    == 0 ? 0 : 1;
        goto done;
    }

    producer = cw_kafka_producer_new(cfg, err, sizeof(err));
    if (producer == NULL) {
        cw_log(CW_LOG_ERROR, "kafka producer: %s", err);
        goto done;
    }

    /* Each drainer has a PostgreSQL connection of its own. */
    pub_pg = cw_pg_new_from_config(cfg, "commerce-projector-publisher");
    rm_pg = cw_pg_new_from_config(cfg, "commerce-projector-readmodel");
    /* And the batch's archive, written while the batch is applied. */
    arc_pg = cw_pg_new_from_config(cfg, "commerce-projector-archive");
    if (pub_pg == NULL || rm_pg == NULL || arc_pg == NULL) {
        cw_log(CW_LOG_ERROR, "config: pg");
        goto done;
    }
    cw_pg_set_stop_flag(pub_pg, cw_signal_stop_flag());
    cw_pg_set_stop_flag(rm_pg, cw_signal_stop_flag());
    cw_pg_set_stop_flag(arc_pg, cw_signal_stop_flag());

    pub_out = proj_outbox_new(pub_pg, NULL, producer, "kafka",
                              (int) cw_config_int(cfg, "outbox_page"), &om);
    rm_out = proj_outbox_new(rm_pg, redis, NULL, "redis",
                             (int) cw_config_int(cfg, "outbox_page"), &om);

    store = proj_store_new(pg, arc_pg,
                           cw_config_str(cfg, "kafka.group_id"),
                           cw_config_str(cfg, "events_topic"),
                           cw_config_str(cfg, "dlq_topic"), &sm);
    arc_pg = NULL;                          /* the store's now */

    if (store == NULL || pub_out == NULL || rm_out == NULL
        || proj_store_prepare(store, err, sizeof(err)) != 0)
    {
        cw_log(CW_LOG_ERROR, "setting up statements: %s", err);
        goto done;
    }

    app.store = store;
    app.pub = NULL;
    app.rmw = NULL;
    app.stop = cw_signal_stop_flag();
    app.consumer = NULL;
    app.batch_max = (size_t) cw_config_int(cfg, "kafka.batch_max");
    proj_store_on_commit(store, proj_on_commit, &app);

    memset(&h, 0, sizeof(h));
    h.on_assign = proj_on_assign;
    h.on_revoke = proj_on_revoke;
    h.on_batch = proj_on_batch;
    h.ud = &app;

    consumer = cw_kafka_consumer_new(cfg, &h, err, sizeof(err));
    if (consumer == NULL) {
        cw_log(CW_LOG_ERROR, "kafka consumer: %s", err);
        goto done;
    }
    app.consumer = consumer;

    /* Effects of batches committed before a crash wait in the outbox:
     * both drainers start with a drain. */
    rmw = proj_drainer_start("read model", rm_out);
    pub = rmw != NULL ? proj_drainer_start("publisher", pub_out) : NULL;
    if (pub == NULL) {
        goto done;
    }
    app.rmw = rmw;
    app.pub = pub;

    cw_log(CW_LOG_INFO, "projector running");

    status = 0;

    while (!cw_signal_stop_requested()) {
        int64_t  t0 = cw_now_ms();

        /* With nothing waiting, the COMMIT in flight is confirmed (and
         * its read-model values handed over) before the wait for more,
         * not when the next batch comes. */
        rc = cw_kafka_consumer_poll(consumer, 0);
        if (rc == 0) {
            rc = proj_store_settle(store, cw_signal_stop_flag());
            if (rc == 0) {
                rc = cw_kafka_consumer_poll(consumer, 100);
            }
        }
        if (rc < 0) {
            status = cw_signal_stop_requested() ? 0 : 1;
            break;
        }

        /* The stage trace (debug): batch committed, polled (this line:
         * the whole cycle), outbox drained. */
        if (rc > 0 && cw_log_enabled(CW_LOG_DEBUG)) {
            cw_field_t  f[] = { CW_FINT("messages", rc),
                                CW_FINT("poll_ms", cw_now_ms() - t0) };

            cw_log_kv(CW_LOG_DEBUG, f, 2, "polled");
        }
    }

    cw_log(CW_LOG_INFO, "stopping (signal %d)", cw_signal_which());

done:

    /* The last batch's COMMIT, before the consumer goes. */
    if (store != NULL && proj_store_settle(store, cw_signal_stop_flag()) != 0
        && !cw_signal_stop_requested())
    {
        status = 1;
    }

    if (consumer != NULL) {
        cw_kafka_consumer_close(consumer);
    }

    /* What is left is written and published before leaving, unless the
     * projector failed. */
    proj_drainer_stop(rmw, status == 0);
    proj_drainer_stop(pub, status == 0);

    if (producer != NULL) {
        cw_kafka_producer_close(producer, 5000);
    }

    proj_outbox_free(pub_out);
    proj_outbox_free(rm_out);
    proj_store_free(store);
    cw_redis_free(redis);
    cw_pg_free(rm_pg);
    cw_pg_free(arc_pg);
    cw_pg_free(pub_pg);
    cw_pg_free(pg);
    cw_metrics_free(metrics);
    cw_config_free(cfg);

    cw_log(CW_LOG_INFO, "exit %d", status);

    return status;
}
