/*
 * proj_store: the transactional heart of the projector, its facade (see
 * proj_store.h; the files it is made of are listed in proj_batch.h).
 *
 * One batch = one transaction:
 *
 *   lock the consumer_offsets rows of the batch's partitions; messages
 *       below the stored offset were applied by another member already
 *       (fencing after a rebalance) and are skipped;
 *   claim the dedup key of every valid message (inbound_processed): a
 *       key claimed before means the message was applied before, and
 *       nothing more is done;
 *   invalid -> dead_letters + an outbox copy for commerce.dlq;
 *   else apply each command to the catalog and append its events to the
 *       event store (event ids derived from the message, unique);
 *   queue the effects in the outbox, one row each for the whole batch:
 *       its events for commerce.events ('kafka_batch'), and the read-model
 *       values it changed ('redis_keys');
 *   store the next offset of each partition; COMMIT, once the archive
 *       has committed.
 *
 * Meanwhile every message's raw bytes and headers go to inbound_archive
 * in a transaction of their own, on a second connection.
 */

#include <stdio.h>
#include <stdlib.h>

#include "cw_log.h"
#include "cw_time.h"
#include "proj_batch.h"
#include "proj_sql.h"


proj_store_t *
proj_store_new(cw_pg_t *pg, cw_pg_t *arc_pg, const char *group_id,
    const char *events_topic, const char *dlq_topic,
    const proj_store_metrics_t *metrics)
{
    proj_store_t  *st;

    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        cw_pg_free(arc_pg);
        return NULL;
    }

    st->pg = pg;
    st->arc_pg = arc_pg;
    st->group_id = group_id;
    st->events_topic = events_topic;
    st->dlq_topic = dlq_topic;
    st->m = *metrics;
    st->stores_known = json_object();

    if (st->stores_known == NULL) {
        cw_pg_free(arc_pg);
        free(st);
        return NULL;
    }

    return st;
}


void
proj_store_free(proj_store_t *st)
{
    if (st != NULL) {
        proj_batch_free(st->pending);
        cw_pg_side_stop(st->side);
        cw_pg_free(st->arc_pg);
        json_decref(st->stores_known);
        proj_effects_free(&st->fx);
        free(st);
    }
}


int
proj_store_prepare(proj_store_t *st, char *err, size_t errlen)
{
    if (proj_sql_prepare(st->pg, 0, err, errlen) != 0) {
        return -1;
    }

    if (st->side != NULL) {
        return 0;
    }

    if (proj_sql_prepare(st->arc_pg, 1, err, errlen) != 0) {
        return -1;
    }

    st->side = cw_pg_side_start(st->arc_pg);
    st->arc_pg = NULL;
    if (st->side == NULL) {
        snprintf(err, errlen, "cannot start the archive thread");
        return -1;
    }

    return 0;
}


int
proj_store_load_offsets(proj_store_t *st,
    rd_kafka_topic_partition_list_t *parts, volatile int *stop)
{
    /* The connection is busy until the COMMIT in flight is confirmed. */
    if (proj_store_settle(st, stop) != 0) {
        return -1;
    }

    return proj_offsets_load(st->pg, st->group_id, parts, stop);
}


long long
proj_store_take_rm_keys(proj_store_t *st, char **json)
{
    return proj_effects_take_keys(&st->fx, json);
}


void
proj_store_on_commit(proj_store_t *st, void (*fn)(void *ud), void *ud)
{
    st->on_commit = fn;
    st->on_commit_ud = ud;
}


int
proj_store_settle(proj_store_t *st, volatile int *stop)
{
    char            err[1024];
    int64_t         t;
    proj_batch_t   *b = st->pending;
    cw_pg_class_t   cls;

    if (b == NULL) {
        return 0;
    }

    st->pending = NULL;

    t = cw_now_ms();
    cls = cw_pg_commit_wait(st->pg, err, sizeof(err));
    t = cw_now_ms() - t;
    b->commit_sent = 0;

    if (cls != CW_PG_OK) {
        /* Rolled back, or lost with the connection: applied again, which
         * fences whatever did commit. */
        cw_counter_inc(st->m.retries);
        cw_log(CW_LOG_WARN, "batch of %zu not committed, will retry: %s",
               b->n, err);
        cls = proj_commit_run(b, 0, stop, err, sizeof(err));
    }

    if (cls != CW_PG_OK) {
        if (cls == CW_PG_PERMANENT) {
            cw_log(CW_LOG_ERROR, "batch failed: %s", err);
        }
        proj_batch_free(b);
        return -1;
    }

    proj_commit_done(b, t);
    proj_batch_free(b);

    return 0;
}


int
proj_store_apply_batch(proj_store_t *st, rd_kafka_message_t **msgs,
    size_t n, int in_flight, volatile int *stop)
{
    char            err[1024];
    proj_batch_t   *b;
    cw_pg_class_t   cls;

    /* Prepared while the previous batch's COMMIT is under way. */
    b = proj_batch_new(st, msgs, n);
    if (b == NULL) {
        cw_log(CW_LOG_ERROR, "out of memory for a batch of %zu", n);
        proj_store_settle(st, stop);
        return -1;
    }

    if (proj_store_settle(st, stop) != 0) {
        proj_batch_free(b);
        return -1;
    }

    b->t0 = cw_now_ms();

    cls = proj_commit_run(b, in_flight, stop, err, sizeof(err));
    if (cls != CW_PG_OK) {
        if (cls == CW_PG_PERMANENT) {
            cw_log(CW_LOG_ERROR, "batch failed: %s", err);
        }
        proj_batch_free(b);
        return -1;
    }

    if (b->commit_sent) {
        st->pending = b;
        return 0;
    }

    proj_commit_done(b, 0);
    proj_batch_free(b);

    return 0;
}
