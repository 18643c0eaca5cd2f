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
 * publishes the outbox's events and dead letters to Kafka
 * (proj_outbox.c). Each thread has its own PostgreSQL connection, so
 * consumption waits for neither Redis nor Kafka's acknowledgements.
 * Offsets live in PostgreSQL and are handed to Kafka on every partition
 * assignment. SIGTERM finishes the batch in hand, leaves the group,
 * writes and publishes what is left and exits 0.
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cw_config.h"
#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_metrics.h"
#include "cw_pg.h"
#include "cw_redis.h"
#include "cw_retry.h"
#include "cw_signal.h"
#include "cw_time.h"
#include "proj.h"
#include "proj_outbox.h"
#include "proj_publisher.h"
#include "proj_readmodel.h"
#include "proj_store.h"

/* A drainer thread: drains the outbox rows of one kind whenever the main
 * thread kicks it after a commit, and every 100 ms anyway (rows left by a
 * crash or by a failed try). One publishes events and dead letters to
 * Kafka, the other writes read-model values to Redis; each has its own
 * PostgreSQL connection, so neither consumption nor the other drainer
 * waits for it. */
/* The read-model keys row of a batch just committed, handed over. */
typedef struct proj_keys_s  proj_keys_t;

struct proj_keys_s {
    proj_keys_t           *next;
    long long              id;
    char                  *json;
};

typedef struct {
    const char            *name;
    proj_outbox_t         *outbox;
    proj_readmodel_t      *rm;         /* the read model's: handed keys */
    pthread_t              thread;
    pthread_mutex_t        lock;
    pthread_cond_t         cond;
    int                    running;
    int                    kick;
    int                    stop;
    int                    final;      /* drain once more before leaving */
    proj_keys_t           *head;       /* handed over, not yet written */
    proj_keys_t          **tail;
} proj_drainer_t;

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


static void proj_drainer_kick(proj_drainer_t *d, int stop, int final);
static void proj_drainer_push(proj_drainer_t *d, long long id, char *json);


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

    proj_drainer_kick(app->pub, 0, 0);
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


/* Drains the outbox a few pages at a time; on failure waits out a
 * backoff before the next try, while consumption goes on. Returns 1 when
 * rows may be left. */
static int
proj_drain(proj_outbox_t *outbox, cw_backoff_t *bo, int64_t *next_try)
{
    int      i, n;
    char     err[512];

    if (cw_now_ms() < *next_try) {
        return 0;
    }

    for (i = 0; i < 8; i++) {
        n = proj_outbox_drain(outbox, err, sizeof(err));

        if (n < 0) {
            int64_t  delay = cw_backoff_next(bo);

            cw_log(CW_LOG_WARN, "outbox not drained, retry in %lld ms: %s",
                   (long long) delay, err);
            *next_try = cw_now_ms() + delay;
            return 0;
        }

        cw_backoff_reset(bo);

        if (n == 0) {
            return 0;
        }
    }

    return 1;
}


/* Writes the values of handed-over keys rows, then deletes the rows in
 * one statement. A failure leaves them to the drain, after a backoff:
 * returns -1 then. */
static int
proj_write_keys(proj_drainer_t *d, proj_keys_t *q, cw_backoff_t *bo,
    int64_t *next_try)
{
    int           rc = 0;
    int           n, rows = 0;
    long long     values = 0;
    int64_t       t0 = cw_now_ms(), t1;
    char          err[512];
    cw_buf_t      ids;
    proj_keys_t  *k;

    cw_buf_init(&ids);
    cw_buf_putc(&ids, '{');

    while (q != NULL) {
        k = q;
        q = q->next;

        if (rc == 0 && cw_now_ms() >= *next_try) {
            n = proj_readmodel_write_keys(d->rm, k->json, err, sizeof(err));
            rc = n < 0;
            if (rc == 0) {
                values += n;
                rows++;
                cw_buf_printf(&ids, "%s%lld", ids.len > 1 ? "," : "", k->id);
            }
        }

        free(k->json);
        free(k);
    }

    cw_buf_putc(&ids, '}');
    t1 = cw_now_ms();

    if (rc == 0 && ids.len > 2) {
        rc = proj_outbox_forget(d->outbox, ids.data, err, sizeof(err));
    }

    if (rc == 0 && cw_log_enabled(CW_LOG_DEBUG)) {
        cw_field_t  f[] = { CW_FINT("batches", rows),
                            CW_FINT("values", values),
                            CW_FINT("write_ms", t1 - t0),
                            CW_FINT("delete_ms", cw_now_ms() - t1) };

        cw_log_kv(CW_LOG_DEBUG, f, 4, "read model written");
    }

    cw_buf_free(&ids);

    if (rc != 0) {
        int64_t  delay = cw_backoff_next(bo);

        cw_log(CW_LOG_WARN, "read model not written yet, retry in %lld ms: "
               "%s", (long long) delay, err);
        *next_try = cw_now_ms() + delay;
    }

    return rc != 0 ? -1 : 0;
}


static void *
proj_drainer_run(void *arg)
{
    int                stop, final, more = 1, timed_out, handed, left = 0;
    int64_t            next_try = 0;
    cw_backoff_t       bo;
    proj_keys_t       *q;
    struct timespec    until;
    proj_drainer_t    *d = arg;

    cw_backoff_init(&bo, 100, 5000, 0.5, 0, 0);

    for ( ;; ) {
        pthread_mutex_lock(&d->lock);

        timed_out = 0;
        if (!more && !d->kick && !d->stop && d->head == NULL) {
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 100 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (!d->kick && !d->stop && d->head == NULL) {
                if (pthread_cond_timedwait(&d->cond, &d->lock, &until)
                    == ETIMEDOUT)
                {
                    timed_out = 1;
                    break;
                }
            }
        }

        q = d->head;
        d->head = NULL;
        d->tail = &d->head;
        d->kick = 0;
        stop = d->stop;
        final = d->final;
        pthread_mutex_unlock(&d->lock);

        /* Batches this process just committed: written at once, no scan
         * of the outbox. */
        handed = q != NULL;
        if (handed && proj_write_keys(d, q, &bo, &next_try) != 0) {
            left = 1;
        }

        if (stop) {
            if (final) {
                next_try = 0;
                while (proj_drain(d->outbox, &bo, &next_try)) {
                    /* do what is left */
                }
            }
            return NULL;
        }

        /* The drain: rows of the drainer's kind on every kick (publisher)
         * or, for handed-over rows, when idle and after a failed write,
         * until a drain found nothing left (rows of a crash or of the
         * failure). */
        if (!handed || timed_out || more || left) {
            more = proj_drain(d->outbox, &bo, &next_try);
            left = more || next_try > cw_now_ms();
        }
    }
}


/* Hands the read-model keys of a committed batch to the read-model
 * thread; json is taken over. */
static void
proj_drainer_push(proj_drainer_t *d, long long id, char *json)
{
    proj_keys_t  *k;

    k = malloc(sizeof(*k));
    if (k == NULL) {
        free(json);                 /* the row stays for the drain */
        return;
    }

    k->next = NULL;
    k->id = id;
    k->json = json;

    pthread_mutex_lock(&d->lock);
    *d->tail = k;
    d->tail = &k->next;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}


static void
proj_drainer_kick(proj_drainer_t *d, int stop, int final)
{
    pthread_mutex_lock(&d->lock);
    d->kick = 1;
    if (stop) {
        d->stop = 1;
        d->final = final;
    }
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}


static int
proj_drainer_start(proj_drainer_t *d)
{
    d->head = NULL;
    d->tail = &d->head;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);

    if (pthread_create(&d->thread, NULL, proj_drainer_run, d) != 0) {
        cw_log(CW_LOG_ERROR, "cannot start the %s thread", d->name);
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
        return -1;
    }

    d->running = 1;

    return 0;
}


static void
proj_drainer_stop(proj_drainer_t *d, int final)
{
    if (!d->running) {
        return;
    }

    proj_drainer_kick(d, 1, final);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    d->running = 0;
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
    proj_drainer_t          pub, rmw;
    proj_publisher_t       *publisher = NULL;
    proj_readmodel_t       *readmodel = NULL;
    proj_outbox_sink_t      sink;
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

    memset(&pub, 0, sizeof(pub));
    memset(&rmw, 0, sizeof(rmw));

    if (cw_config_bool(cfg, "rebuild")) {
        readmodel = proj_readmodel_new(pg, redis, &om);
        status = readmodel != NULL
                 && proj_readmodel_rebuild(readmodel, cw_signal_stop_flag())
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

    publisher = proj_publisher_new(producer, &om);
    readmodel = proj_readmodel_new(rm_pg, redis, &om);
    if (publisher == NULL || readmodel == NULL) {
        cw_log(CW_LOG_ERROR, "out of memory");
        goto done;
    }

    pub.name = "publisher";
    proj_publisher_sink(publisher, &sink);
    pub.outbox = proj_outbox_new(pub_pg, &sink,
                                 (int) cw_config_int(cfg, "outbox_page"),
                                 &om);
    rmw.name = "read model";
    rmw.rm = readmodel;
    proj_readmodel_sink(readmodel, &sink);
    rmw.outbox = proj_outbox_new(rm_pg, &sink,
                                 (int) cw_config_int(cfg, "outbox_page"),
                                 &om);

    store = proj_store_new(pg, arc_pg,
                           cw_config_str(cfg, "kafka.group_id"),
                           cw_config_str(cfg, "events_topic"),
                           cw_config_str(cfg, "dlq_topic"), &sm);
    arc_pg = NULL;                          /* the store's now */

    if (store == NULL || pub.outbox == NULL || rmw.outbox == NULL
        || proj_store_prepare(store, err, sizeof(err)) != 0)
    {
        cw_log(CW_LOG_ERROR, "setting up statements: %s", err);
        goto done;
    }

    app.store = store;
    app.pub = &pub;
    app.rmw = &rmw;
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
    if (proj_drainer_start(&rmw) != 0 || proj_drainer_start(&pub) != 0) {
        goto done;
    }

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
    proj_drainer_stop(&rmw, status == 0);
    proj_drainer_stop(&pub, status == 0);

    if (producer != NULL) {
        cw_kafka_producer_close(producer, 5000);
    }

    proj_outbox_free(pub.outbox);
    proj_outbox_free(rmw.outbox);
    proj_publisher_free(publisher);
    proj_readmodel_free(readmodel);
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
