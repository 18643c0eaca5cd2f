/*
 * proj_commit: a batch applied until it commits, and handed over once it
 * has (see proj_batch.h).
 *
 * The fast way first. Messages it found claimed before: again at once
 * without them. Anything else the database refused: the careful way,
 * which finds the message at fault. A transient failure (connection
 * lost, serialization failure, deadlock) rolls everything back and the
 * same batch is tried again with backoff, so a crash or an outage at any
 * point neither loses nor duplicates anything. The archive is written
 * while the batch is applied.
 */

#include <stdio.h>

#include "cw_log.h"
#include "cw_retry.h"
#include "cw_time.h"
#include "proj_batch.h"


/* One attempt: the fast way (its COMMIT left in flight if asked), or
 * the careful way. */
static cw_pg_class_t
proj_commit_try(proj_batch_t *b, int send_commit, char *err, size_t errlen)
{
    cw_pg_class_t  cls;
    proj_store_t  *st = b->st;

    proj_archive_start(&b->arc, st->side);

    if (b->careful) {
        return cw_pg_txn(st->pg, proj_careful_txn, b, 1, err, errlen);
    }

    if (!send_commit) {
        return cw_pg_txn(st->pg, proj_fast_txn, b, 1, err, errlen);
    }

    cls = cw_pg_txn_send_commit(st->pg, proj_fast_txn, b, err, errlen);
    b->commit_sent = cls == CW_PG_OK;

    return cls;
}


/* After a fast attempt failed: whether to go again at once, without the
 * messages applied before, or the careful way. */
static int
proj_commit_again(proj_batch_t *b, cw_pg_class_t cls, const char *err)
{
    cw_field_t  f[] = { CW_FSTR("why", err),
                        CW_FINT("messages", (long long) b->n) };

    if (b->again) {
        b->again = 0;
        cw_log_kv(CW_LOG_INFO, f, 2, "batch applied again without the "
                  "messages applied before");
        return 1;
    }

    /* Whatever the database refused (a command, or a row that
     * conflicts): message by message, each in a savepoint, the careful
     * way finds which message it was and what to do. */
    if (cls == CW_PG_PERMANENT && !b->careful) {
        snprintf(b->why, sizeof(b->why), "%.200s", err);
        b->careful = 1;
    }

    if (b->careful) {
        f[0] = CW_FSTR("why", b->why);
        cw_log_kv(CW_LOG_INFO, f, 2, "batch applied again message by "
                  "message");
        return 1;
    }

    return 0;
}


cw_pg_class_t
proj_commit_run(proj_batch_t *b, int send_commit, volatile int *stop,
    char *err, size_t errlen)
{
    int             careful;
    char            why[512];
    cw_backoff_t    bo;
    cw_pg_class_t   cls;
    proj_store_t   *st = b->st;

    cw_backoff_init(&bo, 100, 5000, 0.5, 0, 0);

    for ( ;; ) {
        careful = b->careful;
        cls = proj_commit_try(b, send_commit, err, errlen);

        if (cls == CW_PG_OK) {
            break;
        }

        if (!careful && proj_commit_again(b, cls, err)) {
            continue;
        }

        if (cls == CW_PG_PERMANENT || *stop) {
            break;
        }

        cw_counter_inc(st->m.retries);
        cw_log(CW_LOG_WARN, "batch of %zu not committed, will retry: %s",
               b->n, err);
        cw_sleep_ms(cw_backoff_next(&bo), stop);
    }

    /* The archive's connection may still be reading the batch. */
    cw_pg_side_wait(st->side, why, sizeof(why));

    return cls;
}


void
proj_commit_done(proj_batch_t *b, int64_t wait_ms)
{
    proj_store_t    *st = b->st;
    proj_effects_t  *fx = &st->fx;

    /* Stores registered by a committed batch exist for good. */
    if (b->stores_new != NULL) {
        json_object_update(st->stores_known, b->stores_new);
        json_object_clear(b->stores_new);
    }

    cw_counter_add(st->m.applied, (double) fx->applied);
    cw_counter_add(st->m.duplicates, (double) fx->duplicates);
    cw_counter_add(st->m.skipped, (double) fx->skipped);
    cw_counter_add(st->m.dead, (double) fx->dead);
    cw_counter_add(st->m.events, (double) fx->events);
    cw_counter_add(st->m.stale, (double) fx->stale);
    cw_histogram_observe(st->m.batch_seconds,
                         (double) (cw_now_ms() - b->t0) / 1000.0);

    if (cw_log_enabled(CW_LOG_DEBUG)) {
        cw_field_t  f[] = { CW_FINT("messages", (long long) b->n),
                            CW_FINT("applied", fx->applied),
                            CW_FINT("duplicates", fx->duplicates),
                            CW_FINT("skipped", fx->skipped),
                            CW_FINT("dead_lettered", fx->dead),
                            CW_FINT("events", fx->events),
                            CW_FINT("oldest_age_ms", b->age_max),
                            CW_FINT("newest_age_ms", b->age_min),
                            CW_FINT("prepare_ms", b->t0 - b->t_prep),
                            CW_FINT("txn_ms", cw_now_ms() - b->t0),
                            CW_FINT("commit_wait_ms", wait_ms) };

        cw_log_kv(CW_LOG_DEBUG, f, 11, "batch committed");
    }

    if (st->on_commit != NULL) {
        st->on_commit(st->on_commit_ud);
    }
}
