/*
 * proj_gauges: the outbox's backlog and the consumer lag, measured
 * periodically (see proj_gauges.h).
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cw_log.h"
#include "proj_gauges.h"

/* Partitions whose lag is shown, at most (more are left out). */
#define PROJ_GAUGES_PARTS  512

/* How long the brokers are given to tell each partition's end. */
#define PROJ_GAUGES_KAFKA_MS  1000

#define PROJ_LAG_HELP  "Messages of the partition not yet taken by this " \
                       "projector (end of the log minus its position)."

static const char  proj_gauges_sql[] =
    "SELECT count(*), COALESCE(GREATEST(EXTRACT(EPOCH FROM"
    " clock_timestamp() - min(created_at)), 0), 0) FROM outbox";

/* A partition's lag series, and whether the last measure reported it. */
typedef struct {
    char                   topic[256];
    int32_t                partition;
    int                    seen;
    cw_metric_t           *gauge;
} proj_lag_t;

struct proj_gauges_s {
    cw_pg_t               *pg;
    cw_kafka_consumer_t   *consumer;
    cw_metrics_t          *metrics;
    int                    interval_ms;
    int                    failing;     /* the last query failed */
    cw_metric_t           *backlog;
    cw_metric_t           *age;
    pthread_t              thread;
    pthread_mutex_t        lock;
    pthread_cond_t         cond;
    int                    stop;
    size_t                 nlags;
    proj_lag_t             lags[PROJ_GAUGES_PARTS];
};


static void
proj_gauges_outbox(proj_gauges_t *g)
{
    char            err[512];
    PGresult       *res;
    cw_pg_class_t   cls;

    res = cw_pg_exec(g->pg, proj_gauges_sql, 0, NULL, &cls, err,
                     sizeof(err));
    if (res == NULL) {
        if (!g->failing) {
            cw_log(CW_LOG_WARN, "outbox backlog not measured: %s", err);
        }
        g->failing = 1;
        return;
    }

    g->failing = 0;
    cw_gauge_set(g->backlog, strtod(PQgetvalue(res, 0, 0), NULL));
    cw_gauge_set(g->age, strtod(PQgetvalue(res, 0, 1), NULL));
    PQclear(res);
}


/* cw_kafka_consumer_lag's callback: the partition's series, made the
 * first time it is seen. */
static void
proj_gauges_on_lag(void *ud, const char *topic, int32_t partition,
    int64_t lag)
{
    size_t          i;
    char            part[16];
    proj_lag_t     *l;
    proj_gauges_t  *g = ud;

    for (i = 0; i < g->nlags; i++) {
        l = &g->lags[i];
        if (l->partition == partition && strcmp(l->topic, topic) == 0) {
            break;
        }
    }

    if (i == g->nlags) {
        if (g->nlags == PROJ_GAUGES_PARTS) {
            return;
        }
        l = &g->lags[g->nlags];
        snprintf(l->topic, sizeof(l->topic), "%s", topic);
        snprintf(part, sizeof(part), "%d", (int) partition);
        l->partition = partition;
        l->gauge = cw_metrics_gauge(g->metrics, "projector_consumer_lag",
                                    PROJ_LAG_HELP, "topic", topic,
                                    "partition", part, NULL);
        if (l->gauge == NULL) {
            return;
        }
        g->nlags++;
    }

    l->seen = 1;
    cw_gauge_set(l->gauge, (double) lag);
}


/* The lag of the partitions owned now; the series of those no longer
 * owned are dropped. */
static void
proj_gauges_lag(proj_gauges_t *g)
{
    size_t  i;

    for (i = 0; i < g->nlags; i++) {
        g->lags[i].seen = 0;
    }

    cw_kafka_consumer_lag(g->consumer, PROJ_GAUGES_KAFKA_MS,
                          proj_gauges_on_lag, g);

    for (i = 0; i < g->nlags; /* void */) {
        if (g->lags[i].seen) {
            i++;
            continue;
        }
        cw_metrics_drop(g->metrics, g->lags[i].gauge);
        g->lags[i] = g->lags[--g->nlags];
    }
}


static void *
proj_gauges_run(void *arg)
{
    struct timespec   until;
    proj_gauges_t    *g = arg;

    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        pthread_mutex_unlock(&g->lock);

        proj_gauges_outbox(g);
        proj_gauges_lag(g);

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += g->interval_ms / 1000;
        until.tv_nsec += (long) (g->interval_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }

        pthread_mutex_lock(&g->lock);
        while (!g->stop
               && pthread_cond_timedwait(&g->cond, &g->lock, &until)
                  != ETIMEDOUT)
        {
            /* woken without cause */
        }
    }
    pthread_mutex_unlock(&g->lock);

    return NULL;
}


proj_gauges_t *
proj_gauges_start(cw_pg_t *pg, cw_kafka_consumer_t *consumer,
    cw_metrics_t *metrics, int interval_ms)
{
    proj_gauges_t  *g;

    g = calloc(1, sizeof(*g));
    if (g == NULL || pg == NULL) {
        goto failed;
    }

    g->pg = pg;
    g->consumer = consumer;
    g->metrics = metrics;
    g->interval_ms = interval_ms;
    g->backlog = cw_metrics_gauge(metrics, "projector_outbox_backlog_rows",
        "Outbox rows not yet published or written (one per batch and "
        "kind).", NULL);
    g->age = cw_metrics_gauge(metrics, "projector_outbox_oldest_age_seconds",
        "Age of the oldest outbox row; 0 when the outbox is empty.", NULL);
    if (g->backlog == NULL || g->age == NULL) {
        goto failed;
    }

    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    if (pthread_create(&g->thread, NULL, proj_gauges_run, g) != 0) {
        pthread_cond_destroy(&g->cond);
        pthread_mutex_destroy(&g->lock);
        goto failed;
    }

    return g;

failed:
    cw_log(CW_LOG_ERROR, "cannot start the gauges thread");
    cw_pg_free(pg);
    free(g);
    return NULL;
}


void
proj_gauges_stop(proj_gauges_t *g)
{
    if (g == NULL) {
        return;
    }

    pthread_mutex_lock(&g->lock);
    g->stop = 1;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);

    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    cw_pg_free(g->pg);
    free(g);
}
