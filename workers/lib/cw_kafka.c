/*
 * cw_kafka: consumer group loop with manual offsets, and a producer.
 */

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_time.h"

struct cw_kafka_consumer_s {
    rd_kafka_t            *rk;
    cw_kafka_handlers_t    h;
    rd_kafka_message_t   **batch;
    size_t                 n;
    size_t                 max;
    int                    wait_ms;
    int                    stop;        /* a handler asked to stop */
    int                    fatal;       /* librdkafka fatal error */

    /* The partitions assigned, with the offsets they were assigned at,
     * for cw_kafka_consumer_lag on another thread: lock guards them. */
    pthread_mutex_t        lock;
    rd_kafka_topic_partition_list_t  *assigned;
};

typedef struct {
    rd_kafka_resp_err_t    err;
    int                    done;
} cw_kafka_dr_t;

struct cw_kafka_producer_s {
    rd_kafka_t            *rk;
    long                   failed;      /* since the last flush */
    rd_kafka_resp_err_t    last_err;
};

static const cw_opt_t  cw_kafka_opts[] = {
    { "kafka.brokers", CW_OPT_STR, "", 0, 0, 0,
      "Kafka bootstrap servers, host:port,..." },
    { "kafka.bootstrap_file", CW_OPT_STR, "", 0, 0, 0,
      "file holding the bootstrap list (written by commerce-devbroker); "
      "used when kafka.brokers is empty" },
    { "kafka.group_id", CW_OPT_STR, "", 0, 0, 0,
      "consumer group id" },
    { "kafka.topics", CW_OPT_STR, "", 0, 0, 0,
      "comma-separated topics to subscribe to" },
    { "kafka.client_id", CW_OPT_STR, "commerce-worker", 0, 0, 0,
      "client.id reported to the brokers" },
    { "kafka.batch_max", CW_OPT_INT, "500", 1, 100000, 0,
      "most messages handed over in one batch" },
    { "kafka.batch_wait", CW_OPT_DURATION, "100ms", 1, 60000, 0,
      "longest wait for more messages once a batch has one" },
    { "kafka.session_timeout", CW_OPT_DURATION, "6s", 1000, 300000, 0,
      "group session timeout (a rebalance waits up to this long)" },
    { "kafka.", CW_OPT_PREFIX, NULL, 0, 0, 0,
      "any librdkafka property, e.g. --kafka.fetch.wait.max.ms=50" },
};


int
cw_kafka_declare(cw_config_t *cfg)
{
    return cw_config_declare(cfg, cw_kafka_opts,
                             sizeof(cw_kafka_opts) / sizeof(cw_kafka_opts[0]));
}


int
cw_kafka_brokers(const cw_config_t *cfg, char *buf, size_t size, char *err,
    size_t errlen)
{
    const char  *b, *path;
    size_t       n;
    FILE        *f;

    b = cw_config_str(cfg, "kafka.brokers");
    if (b != NULL && b[0] != '\0') {
        snprintf(buf, size, "%s", b);
        return 0;
    }
    path = cw_config_str(cfg, "kafka.bootstrap_file");
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "neither kafka.brokers nor "
                 "kafka.bootstrap_file is set");
        return -1;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "kafka.bootstrap_file %s: cannot open", path);
        return -1;
    }
    n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && isspace((unsigned char) buf[n - 1])) {
        buf[--n] = '\0';
    }
    if (n == 0) {
        snprintf(err, errlen, "kafka.bootstrap_file %s is empty", path);
        return -1;
    }
    return 0;
}


/* The kafka.* properties go to the producer and the consumer alike, and
 * each says it ignores the other's ("fetch.wait.max.ms is a consumer
 * property and will be ignored by this producer instance"): that is
 * expected, so it is debug, not a warning at every start. */
static void
cw_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
    cw_field_t  f[] = { CW_FSTR("facility", fac),
                        CW_FSTR("client", rd_kafka_name(rk)) };

    if (strcmp(fac, "CONFWARN") == 0
        && strstr(buf, " will be ignored by this ") != NULL)
    {
        level = 7;
    }

    cw_log_kv(level <= 3 ? CW_LOG_ERROR : level <= 4 ? CW_LOG_WARN
              : level <= 6 ? CW_LOG_INFO : CW_LOG_DEBUG, f, 2, "rdkafka: %s",
              buf);
}


/* Errors reported here are mostly transient (brokers down, reconnects)
 * and librdkafka recovers by itself; only fatal ones end the worker. */
static void
cw_kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    char  fatal[512];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        cw_log(CW_LOG_ERROR, "kafka fatal error: %s", fatal);
        return;
    }
    cw_log(CW_LOG_WARN, "kafka: %s: %s", rd_kafka_err2name(err), reason);
}


typedef struct {
    rd_kafka_conf_t  *conf;
    char             *err;
    size_t            errlen;
} cw_kafka_pt_t;


static int
cw_kafka_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err,
    size_t errlen)
{
    char  errstr[512];

    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        snprintf(err, errlen, "kafka property %s=%s: %s", k, v, errstr);
        return -1;
    }
    return 0;
}


static int
cw_kafka_passthru(void *ud, const char *key, const char *value)
{
    cw_kafka_pt_t  *pt = ud;

    return cw_kafka_set(pt->conf, key, value, pt->err, pt->errlen);
}


/* Common configuration: bootstrap list, client id, logging, then the
 * pass-through kafka.* properties, which may override anything set. */
static rd_kafka_conf_t *
cw_kafka_conf(const cw_config_t *cfg, char *err, size_t errlen)
{
    rd_kafka_conf_t  *conf;
    char              brokers[4096];

    if (cw_kafka_brokers(cfg, brokers, sizeof(brokers), err, errlen) != 0) {
        return NULL;
    }
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, cw_kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, cw_kafka_error_cb);
    if (cw_kafka_set(conf, "bootstrap.servers", brokers, err, errlen) != 0
        || cw_kafka_set(conf, "client.id",
                        cw_config_str(cfg, "kafka.client_id"), err, errlen)
           != 0)
    {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}


static int
cw_kafka_conf_passthru(rd_kafka_conf_t *conf, const cw_config_t *cfg,
    char *err, size_t errlen)
{
    cw_kafka_pt_t  pt;

    pt.conf = conf;
    pt.err = err;
    pt.errlen = errlen;
    return cw_config_each_prefixed(cfg, "kafka.", cw_kafka_passthru, &pt);
}


/* Hands the batch collected so far to the worker and frees it. */
static int
cw_kafka_deliver(cw_kafka_consumer_t *c)
{
    size_t  i, n = c->n;
    int     rc = 0;

    if (n == 0) {
        return 0;
    }
    if (!c->stop && c->h.on_batch != NULL
        && c->h.on_batch(c->h.ud, c->batch, n) != 0)
    {
        c->stop = 1;
        rc = -1;
    }
    for (i = 0; i < n; i++) {
        if (c->batch[i] != NULL) {              /* NULL: kept by on_batch */
            rd_kafka_message_destroy(c->batch[i]);
        }
    }
    c->n = 0;
    return rc;
}


static void
cw_kafka_log_parts(const char *what, const rd_kafka_topic_partition_list_t *l)
{
    int  i;

    for (i = 0; i < l->cnt; i++) {
        cw_field_t f[] = { CW_FSTR("topic", l->elems[i].topic),
                           CW_FINT("partition", l->elems[i].partition),
                           CW_FINT("offset", l->elems[i].offset) };

        cw_log_kv(CW_LOG_INFO, f, 3, "%s", what);
    }
}


/* Keeps the assignment for cw_kafka_consumer_lag: parts are added (add)
 * or removed; an eager rebalance replaces it all (parts NULL: none). */
static void
cw_kafka_track(cw_kafka_consumer_t *c,
    const rd_kafka_topic_partition_list_t *parts, int coop, int add)
{
    rd_kafka_topic_partition_list_t  *l;
    rd_kafka_topic_partition_t       *tp;
    int                               i;

    pthread_mutex_lock(&c->lock);
    if (!coop || c->assigned == NULL) {
        if (c->assigned != NULL) {
            rd_kafka_topic_partition_list_destroy(c->assigned);
        }
        c->assigned = rd_kafka_topic_partition_list_new(
                          parts != NULL ? parts->cnt : 0);
    }
    l = c->assigned;
    for (i = 0; parts != NULL && (add || coop) && i < parts->cnt; i++) {
        tp = &parts->elems[i];
        rd_kafka_topic_partition_list_del(l, tp->topic, tp->partition);
        if (add) {
            rd_kafka_topic_partition_list_add(l, tp->topic, tp->partition)
                ->offset = tp->offset;
        }
    }
    pthread_mutex_unlock(&c->lock);
}


/* Runs inside rd_kafka_consumer_poll on the worker's thread. Offsets
 * chosen by on_assign go into the assign list, so no seek is needed. */
static void
cw_kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    cw_kafka_consumer_t  *c = opaque;
    rd_kafka_error_t     *error = NULL;
    rd_kafka_resp_err_t   aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    int                   coop, i;

    coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (i = 0; i < parts->cnt; i++) {
            parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
        }
        if (c->h.on_assign != NULL && c->h.on_assign(c->h.ud, parts) != 0) {
            cw_log(CW_LOG_ERROR, "kafka: assignment refused by the worker; "
                   "stopping");
            c->stop = 1;
            if (!coop) {
                rd_kafka_assign(rk, NULL);
            }
            return;
        }
        cw_kafka_log_parts("partition assigned", parts);
        cw_kafka_track(c, parts, coop, 1);
        if (coop) {
            error = rd_kafka_incremental_assign(rk, parts);
        } else {
            aerr = rd_kafka_assign(rk, parts);
        }

    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        cw_kafka_deliver(c);
        if (c->h.on_revoke != NULL) {
            c->h.on_revoke(c->h.ud, parts, rd_kafka_assignment_lost(rk));
        }
        cw_kafka_log_parts("partition revoked", parts);
        cw_kafka_track(c, parts, coop, 0);
        if (coop) {
            error = rd_kafka_incremental_unassign(rk, parts);
        } else {
            aerr = rd_kafka_assign(rk, NULL);
        }

    } else {
        cw_log(CW_LOG_ERROR, "kafka rebalance error: %s",
               rd_kafka_err2str(err));
        cw_kafka_track(c, NULL, 0, 0);
        aerr = rd_kafka_assign(rk, NULL);
    }

    if (error != NULL) {
        cw_log(CW_LOG_ERROR, "kafka (un)assign: %s",
               rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        c->stop = 1;
    } else if (aerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cw_log(CW_LOG_ERROR, "kafka (un)assign: %s", rd_kafka_err2str(aerr));
        c->stop = 1;
    }
}


static int
cw_kafka_subscribe(cw_kafka_consumer_t *c, const char *topics, char *err,
    size_t errlen)
{
    rd_kafka_topic_partition_list_t  *l;
    rd_kafka_resp_err_t               rerr;
    const char                       *p, *end;
    char                              name[256];
    size_t                            len;

    l = rd_kafka_topic_partition_list_new(4);
    for (p = topics; *p != '\0'; p = *end ? end + 1 : end) {
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }
        while (p < end && isspace((unsigned char) *p)) {
            p++;
        }
        len = (size_t) (end - p);
        while (len > 0 && isspace((unsigned char) p[len - 1])) {
            len--;
        }
        if (len == 0 || len >= sizeof(name)) {
            continue;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        rd_kafka_topic_partition_list_add(l, name, RD_KAFKA_PARTITION_UA);
    }
    if (l->cnt == 0) {
        snprintf(err, errlen, "kafka.topics is empty");
        rd_kafka_topic_partition_list_destroy(l);
        return -1;
    }
    rerr = rd_kafka_subscribe(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka subscribe: %s", rd_kafka_err2str(rerr));
        return -1;
    }
    return 0;
}


cw_kafka_consumer_t *
cw_kafka_consumer_new(const cw_config_t *cfg, const cw_kafka_handlers_t *h,
    char *err, size_t errlen)
{
    cw_kafka_consumer_t  *c;
    rd_kafka_conf_t      *conf;
    const char           *group;
    long long             session;
    char                  num[32], errstr[512];

    group = cw_config_str(cfg, "kafka.group_id");
    if (group == NULL || group[0] == '\0') {
        snprintf(err, errlen, "kafka.group_id is not set");
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->h = *h;
    pthread_mutex_init(&c->lock, NULL);
    c->max = (size_t) cw_config_int(cfg, "kafka.batch_max");
    c->wait_ms = (int) cw_config_duration_ms(cfg, "kafka.batch_wait");
    c->batch = calloc(c->max, sizeof(*c->batch));
    if (c->batch == NULL) {
        snprintf(err, errlen, "out of memory");
        free(c);
        return NULL;
    }

    conf = cw_kafka_conf(cfg, err, errlen);
    if (conf == NULL) {
        goto failed;
    }
    session = cw_config_duration_ms(cfg, "kafka.session_timeout");
    if (cw_kafka_set(conf, "group.id", group, err, errlen) != 0
        || cw_kafka_set(conf, "enable.auto.commit", "false", err, errlen)
        || cw_kafka_set(conf, "enable.auto.offset.store", "false", err,
                        errlen)
        || cw_kafka_set(conf, "enable.partition.eof", "false", err, errlen)
        || cw_kafka_set(conf, "auto.offset.reset", "earliest", err, errlen))
    {
        rd_kafka_conf_destroy(conf);
        goto failed;
    }
    snprintf(num, sizeof(num), "%lld", session);
    if (cw_kafka_set(conf, "session.timeout.ms", num, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        goto failed;
    }
    snprintf(num, sizeof(num), "%lld", session / 3);
    if (cw_kafka_set(conf, "heartbeat.interval.ms", num, err, errlen) != 0
        || cw_kafka_conf_passthru(conf, cfg, err, errlen) != 0)
    {
        rd_kafka_conf_destroy(conf);
        goto failed;
    }
    rd_kafka_conf_set_rebalance_cb(conf, cw_kafka_rebalance_cb);
    rd_kafka_conf_set_opaque(conf, c);

    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (c->rk == NULL) {
        snprintf(err, errlen, "kafka consumer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        goto failed;
    }
    rd_kafka_poll_set_consumer(c->rk);
    if (cw_kafka_subscribe(c, cw_config_str(cfg, "kafka.topics"), err,
                           errlen) != 0)
    {
        rd_kafka_destroy(c->rk);
        goto failed;
    }
    return c;

failed:
    pthread_mutex_destroy(&c->lock);
    free(c->batch);
    free(c);
    return NULL;
}


int
cw_kafka_consumer_poll(cw_kafka_consumer_t *c, int timeout_ms)
{
    rd_kafka_message_t  *m;
    int64_t              deadline = 0;
    int                  wait, delivered;
    char                 fatal[512];

    while (c->n < c->max && !c->stop) {
        /* Messages already fetched are taken whatever the time: batch_wait
         * bounds the wait for more, not the taking of those there (2,500
         * of them take longer than a millisecond to take one by one). */
        m = rd_kafka_consumer_poll(c->rk, 0);
        if (m == NULL) {
            if (c->n == 0) {
                wait = timeout_ms;
            } else {
                wait = (int) (deadline - cw_now_ms());
                if (wait <= 0) {
                    break;
                }
            }
            m = rd_kafka_consumer_poll(c->rk, wait);
            if (m == NULL) {
                if (c->n == 0) {
                    break;
                }
                continue;
            }
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                rd_kafka_fatal_error(c->rk, fatal, sizeof(fatal));
                cw_log(CW_LOG_ERROR, "kafka fatal: %s", fatal);
                c->fatal = 1;
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                cw_log(CW_LOG_WARN, "kafka consumer: %s",
                       rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            if (c->fatal) {
                break;
            }
            continue;
        }
        if (c->n == 0) {
            deadline = cw_now_ms() + c->wait_ms;
        }
        c->batch[c->n++] = m;
    }

    delivered = (int) c->n;
    if (cw_kafka_deliver(c) != 0 || c->stop || c->fatal) {
        return -1;
    }
    return delivered;
}


int
cw_kafka_consumer_run(cw_kafka_consumer_t *c, volatile int *stop)
{
    while (!*stop) {
        if (cw_kafka_consumer_poll(c, 200) < 0) {
            return -1;
        }
    }
    return 0;
}


static int
cw_kafka_pause_resume(cw_kafka_consumer_t *c, const char *topic,
    int32_t partition, int pause)
{
    rd_kafka_topic_partition_list_t  *l;
    rd_kafka_resp_err_t               err;

    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    err = pause ? rd_kafka_pause_partitions(c->rk, l)
                : rd_kafka_resume_partitions(c->rk, l);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = l->elems[0].err;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cw_log(CW_LOG_WARN, "kafka %s %s[%d]: %s", pause ? "pause" : "resume",
               topic, (int) partition, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}


int
cw_kafka_pause(cw_kafka_consumer_t *c, const char *topic, int32_t partition)
{
    return cw_kafka_pause_resume(c, topic, partition, 1);
}


int
cw_kafka_resume(cw_kafka_consumer_t *c, const char *topic, int32_t partition)
{
    return cw_kafka_pause_resume(c, topic, partition, 0);
}


int
cw_kafka_commit(cw_kafka_consumer_t *c, rd_kafka_message_t **msgs, size_t n,
    int sync)
{
    rd_kafka_topic_partition_list_t  *l;
    rd_kafka_topic_partition_t       *tp;
    rd_kafka_resp_err_t               err;
    const char                       *topic;
    size_t                            i;

    if (n == 0) {
        return 0;
    }
    l = rd_kafka_topic_partition_list_new((int) n);
    for (i = 0; i < n; i++) {
        topic = rd_kafka_topic_name(msgs[i]->rkt);
        tp = rd_kafka_topic_partition_list_find(l, topic,
                                                msgs[i]->partition);
        if (tp == NULL) {
            tp = rd_kafka_topic_partition_list_add(l, topic,
                                                   msgs[i]->partition);
            tp->offset = msgs[i]->offset + 1;
        } else if (msgs[i]->offset + 1 > tp->offset) {
            tp->offset = msgs[i]->offset + 1;
        }
    }
    err = rd_kafka_commit(c->rk, l, !sync);
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cw_log(CW_LOG_WARN, "kafka commit: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}


void
cw_kafka_consumer_close(cw_kafka_consumer_t *c)
{
    rd_kafka_resp_err_t  err;

    if (c == NULL) {
        return;
    }
    err = rd_kafka_consumer_close(c->rk);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cw_log(CW_LOG_WARN, "kafka consumer close: %s",
               rd_kafka_err2str(err));
    }
    cw_kafka_deliver(c);
    rd_kafka_destroy(c->rk);
    if (c->assigned != NULL) {
        rd_kafka_topic_partition_list_destroy(c->assigned);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->batch);
    free(c);
}


rd_kafka_t *
cw_kafka_consumer_handle(cw_kafka_consumer_t *c)
{
    return c->rk;
}


/* The end of a partition's log: the brokers' answer, or when they do not
 * give one in time, the high watermark of the last fetch response. */
static int
cw_kafka_log_end(rd_kafka_t *rk, const char *topic, int32_t partition,
    int timeout_ms, int64_t *lo, int64_t *hi)
{
    if (rd_kafka_query_watermark_offsets(rk, topic, partition, lo, hi,
                                         timeout_ms)
        != RD_KAFKA_RESP_ERR_NO_ERROR
        && rd_kafka_get_watermark_offsets(rk, topic, partition, lo, hi)
           != RD_KAFKA_RESP_ERR_NO_ERROR)
    {
        return -1;
    }
    return *hi >= 0 ? 0 : -1;
}


int
cw_kafka_consumer_lag(cw_kafka_consumer_t *c, int timeout_ms,
    cw_kafka_lag_pt fn, void *ud)
{
    rd_kafka_topic_partition_list_t  *l, *pos;
    rd_kafka_topic_partition_t       *tp;
    int64_t                           lo, hi, at;
    int                               i, n = 0;

    pthread_mutex_lock(&c->lock);
    l = c->assigned != NULL
        ? rd_kafka_topic_partition_list_copy(c->assigned) : NULL;
    pthread_mutex_unlock(&c->lock);
    if (l == NULL) {
        return 0;
    }

    pos = rd_kafka_topic_partition_list_copy(l);
    rd_kafka_position(c->rk, pos);

    for (i = 0; i < l->cnt; i++) {
        tp = &l->elems[i];
        if (cw_kafka_log_end(c->rk, tp->topic, tp->partition, timeout_ms,
                             &lo, &hi) != 0)
        {
            continue;
        }
        at = pos->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR
             ? pos->elems[i].offset : RD_KAFKA_OFFSET_INVALID;
        if (at < 0) {
            at = tp->offset >= 0 ? tp->offset : lo;
        }
        if (at < 0) {
            continue;
        }
        fn(ud, tp->topic, tp->partition, hi > at ? hi - at : 0);
        n++;
    }

    rd_kafka_topic_partition_list_destroy(pos);
    rd_kafka_topic_partition_list_destroy(l);
    return n;
}


/* Delivery reports come back on the thread that calls rd_kafka_poll or
 * rd_kafka_flush; the opaque, when set, is the caller's result slot. */
static void
cw_kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    cw_kafka_producer_t  *p = opaque;
    cw_kafka_dr_t        *slot = m->_private;

    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->failed++;
        p->last_err = m->err;
        cw_log(CW_LOG_WARN, "kafka delivery to %s failed: %s",
               rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    }
    if (slot != NULL) {
        slot->err = m->err;
        slot->done = 1;
    }
}


cw_kafka_producer_t *
cw_kafka_producer_new(const cw_config_t *cfg, char *err, size_t errlen)
{
    cw_kafka_producer_t  *p;
    rd_kafka_conf_t      *conf;
    char                  errstr[512];

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    conf = cw_kafka_conf(cfg, err, errlen);
    if (conf == NULL) {
        free(p);
        return NULL;
    }
    if (cw_kafka_set(conf, "enable.idempotence", "true", err, errlen) != 0
        || cw_kafka_set(conf, "acks", "all", err, errlen) != 0
        || cw_kafka_set(conf, "linger.ms", "5", err, errlen) != 0
        || cw_kafka_conf_passthru(conf, cfg, err, errlen) != 0)
    {
        rd_kafka_conf_destroy(conf);
        free(p);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, cw_kafka_dr_cb);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (p->rk == NULL) {
        snprintf(err, errlen, "kafka producer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        free(p);
        return NULL;
    }
    return p;
}


/* A full local queue is waited out by serving delivery reports, for at
 * most a few seconds; other errors are returned at once. */
static int
cw_kafka_produce0(cw_kafka_producer_t *p, const char *topic,
    int32_t partition, const void *key, size_t klen, const void *val,
    size_t vlen, rd_kafka_headers_t *headers, cw_kafka_dr_t *slot,
    char *err, size_t errlen)
{
    rd_kafka_resp_err_t  rerr;
    int                  tries;

    for (tries = 0; ; tries++) {
        if (headers != NULL) {
            rerr = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
                       RD_KAFKA_V_PARTITION(partition),
                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                       RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE(
                       (void *) val, vlen), RD_KAFKA_V_HEADERS(headers),
                       RD_KAFKA_V_OPAQUE(slot), RD_KAFKA_V_END);
        } else {
            rerr = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
                       RD_KAFKA_V_PARTITION(partition),
                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                       RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE(
                       (void *) val, vlen), RD_KAFKA_V_OPAQUE(slot),
                       RD_KAFKA_V_END);
        }
        if (rerr != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries >= 50) {
            break;
        }
        rd_kafka_poll(p->rk, 100);
    }
    rd_kafka_poll(p->rk, 0);
    if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka produce to %s: %s", topic,
                 rd_kafka_err2str(rerr));
        return -1;
    }
    return 0;
}


int
cw_kafka_produce(cw_kafka_producer_t *p, const char *topic, int32_t partition,
    const void *key, size_t klen, const void *val, size_t vlen,
    rd_kafka_headers_t *headers, char *err, size_t errlen)
{
    return cw_kafka_produce0(p, topic, partition, key, klen, val, vlen,
                             headers, NULL, err, errlen);
}


/* The slot lives on this stack frame, so the function must not return
 * while the message can still report: on timeout the message is purged
 * (queued or in flight) and its purge report awaited. A purged in-flight
 * message may still have been written; the caller sees a failure and
 * consumers must tolerate the duplicate a retry can cause. */
int
cw_kafka_produce_sync(cw_kafka_producer_t *p, const char *topic,
    const void *key, size_t klen, const void *val, size_t vlen,
    rd_kafka_headers_t *headers, int timeout_ms, char *err, size_t errlen)
{
    cw_kafka_dr_t  slot = { RD_KAFKA_RESP_ERR_NO_ERROR, 0 };
    int64_t        deadline;

    if (cw_kafka_produce0(p, topic, RD_KAFKA_PARTITION_UA, key, klen, val,
                          vlen, headers, &slot, err, errlen) != 0)
    {
        return -1;
    }
    deadline = cw_now_ms() + timeout_ms;
    while (!slot.done && cw_now_ms() < deadline) {
        rd_kafka_poll(p->rk, 50);
    }
    if (!slot.done) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE
                              | RD_KAFKA_PURGE_F_INFLIGHT);
        while (!slot.done) {
            rd_kafka_poll(p->rk, 100);
        }
        if (slot.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            return 0;
        }
        snprintf(err, errlen, "kafka produce to %s: not acknowledged "
                 "within %d ms (%s)", topic, timeout_ms,
                 rd_kafka_err2str(slot.err));
        return -1;
    }
    if (slot.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka produce to %s: %s", topic,
                 rd_kafka_err2str(slot.err));
        return -1;
    }
    return 0;
}


int
cw_kafka_producer_flush(cw_kafka_producer_t *p, int timeout_ms, char *err,
    size_t errlen)
{
    rd_kafka_resp_err_t  rerr;
    long                 failed;

    rerr = rd_kafka_flush(p->rk, timeout_ms);
    failed = p->failed;
    p->failed = 0;
    if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka flush: %d message(s) still in flight "
                 "after %d ms", rd_kafka_outq_len(p->rk), timeout_ms);
        return -1;
    }
    if (failed > 0) {
        snprintf(err, errlen, "kafka flush: %ld message(s) failed, last: %s",
                 failed, rd_kafka_err2str(p->last_err));
        return -1;
    }
    return 0;
}


void
cw_kafka_producer_close(cw_kafka_producer_t *p, int timeout_ms)
{
    char  err[256];

    if (p == NULL) {
        return;
    }
    if (cw_kafka_producer_flush(p, timeout_ms, err, sizeof(err)) != 0) {
        cw_log(CW_LOG_WARN, "%s", err);
    }
    rd_kafka_destroy(p->rk);
    free(p);
}


rd_kafka_t *
cw_kafka_producer_handle(cw_kafka_producer_t *p)
{
    return p->rk;
}
