/*
 * proj_fast: an attempt of a batch set-based, with far fewer round trips
 * than one statement per command. One statement claims the dedup keys of
 * the valid messages, the first in libpq's pipeline mode, and the batch
 * does not wait for it: a key claimed before fails the attempt, which
 * goes again at once without its message. The commands follow through
 * the appliers (proj_apply.c): item upserts pipelined, price and stock
 * commands folded per key and written by one statement each.
 *
 * Validation already happened in C, so a refusal by the database (stock
 * underflow, a row that conflicts, a value PostgreSQL refuses) is rare:
 * when one happens the whole attempt fails (b->careful) and the batch is
 * applied again the careful way (proj_careful.c), which dead-letters
 * exactly the message at fault.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_log.h"
#include "cw_time.h"
#include "proj_batch.h"
#include "proj_sql.h"
#include "proj_util.h"


/* Whether a valid message's dedup key goes into the batch's claim. */
static int
proj_fast_claims(const proj_msg_t *pm)
{
    return !pm->fenced && pm->cmds != NULL && !pm->dup && !pm->claimed;
}


/* A dedup key twice in one batch: the later messages are duplicates. */
static int
proj_fast_dups(proj_batch_t *b)
{
    size_t       i;
    json_t      *seen;
    proj_msg_t  *pm;

    seen = json_object();
    if (seen == NULL) {
        return -1;
    }

    for (i = 0; i < b->n; i++) {
        pm = &b->msgs[i];
        pm->dup = 0;
        if (pm->fenced || pm->cmds == NULL) {
            continue;
        }
        if (json_object_get(seen, pm->dedup) != NULL) {
            pm->dup = 1;
        } else {
            json_object_set_new(seen, pm->dedup, json_true());
        }
    }

    json_decref(seen);

    return 0;
}


/* The claim returned fewer keys than it was sent: the others were
 * claimed by a batch committed before, and their messages applied then.
 * They are marked, and the attempt fails so that the batch is applied
 * again at once without them (b->again). */
static cw_pg_class_t
proj_fast_claimed(void *ctx, void *arg, PGresult *res, char *err,
    size_t errlen)
{
    int          row;
    size_t       i, n = 0, sent = (size_t) arg;
    json_t      *got;
    proj_txn_t  *t = ctx;
    proj_msg_t  *pm;

    if (res == NULL || (size_t) PQntuples(res) == sent) {
        return CW_PG_OK;
    }

    got = json_object();
    if (got == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }
    for (row = 0; row < PQntuples(res); row++) {
        json_object_set_new(got, PQgetvalue(res, row, PROJ_CLAIM_ALL_KEY),
                            json_true());
    }

    for (i = 0; i < t->b->n; i++) {
        pm = &t->b->msgs[i];
        if (proj_fast_claims(pm) && json_object_get(got, pm->dedup) == NULL) {
            pm->claimed = 1;
            n++;
        }
    }
    json_decref(got);

    if (n == 0) {
        /* Not one of the keys sent: nothing to leave out, so no reason to
         * expect another attempt to go otherwise. */
        snprintf(err, errlen, "claim_all: %d keys of %zu", PQntuples(res),
                 sent);
        return CW_PG_PERMANENT;
    }

    t->b->again = 1;
    snprintf(err, errlen, "%zu message(s) applied before", n);

    return CW_PG_TRANSIENT;
}


/* The dedup keys of the valid messages, claimed by the pipeline's first
 * statement: the commands follow it without waiting for it. */
static cw_pg_class_t
proj_fast_claim(proj_txn_t *t, char *err, size_t errlen)
{
    size_t          i, n = 0;
    cw_buf_t        a[PROJ_CLAIM_ALL_NPARAMS];
    const char     *p[PROJ_CLAIM_ALL_NPARAMS];
    proj_msg_t     *pm;
    cw_pg_class_t   cls = CW_PG_OK;

    proj_arrs_open(a, PROJ_CLAIM_ALL_NPARAMS);

    for (i = 0; i < t->b->n; i++) {
        pm = &t->b->msgs[i];
        if (!proj_fast_claims(pm)) {
            continue;
        }
        proj_arr(&a[PROJ_CLAIM_ALL_KEYS], pm->dedup);
        proj_arr(&a[PROJ_CLAIM_ALL_TOPICS], pm->topic);
        proj_arr_ll(&a[PROJ_CLAIM_ALL_PARTITIONS], pm->m->partition);
        proj_arr_ll(&a[PROJ_CLAIM_ALL_OFFSETS], pm->m->offset);
        proj_arr_ll(&a[PROJ_CLAIM_ALL_COMMANDS],
                    (long long) json_array_size(pm->cmds));
        n++;
    }

    if (proj_arrs_close(a, PROJ_CLAIM_ALL_NPARAMS, p) != 0) {
        snprintf(err, errlen, "out of memory");
        cls = CW_PG_PERMANENT;

    } else if (n > 0) {
        cls = proj_pipe_send(&t->pipe, proj_sql_name(PROJ_SQL_CLAIM_ALL),
                             PROJ_CLAIM_ALL_NPARAMS, p, proj_fast_claimed,
                             (void *) n, err, errlen);
    }

    proj_arrs_free(a, PROJ_CLAIM_ALL_NPARAMS);

    return cls;
}


/* Every message in order: the invalid ones dead-lettered, duplicates
 * counted, the commands of the others applied. */
static cw_pg_class_t
proj_fast_messages(proj_txn_t *t, char *err, size_t errlen)
{
    size_t          i, k;
    proj_msg_t     *pm;
    cw_pg_class_t   cls = CW_PG_OK;

    for (i = 0; i < t->b->n && cls == CW_PG_OK && !t->reject; i++) {
        pm = &t->b->msgs[i];

        if (pm->fenced) {
            t->fx->skipped++;

        } else if (pm->cmds == NULL) {
            cls = proj_apply_dead(t, pm, &pm->err, err, errlen);

        } else if (pm->dup || pm->claimed) {
            t->fx->duplicates++;

        } else {
            for (k = 0; k < json_array_size(pm->cmds) && cls == CW_PG_OK
                        && !t->reject; k++)
            {
                cls = proj_apply_command(t, pm, k, err, errlen);
            }
            t->fx->applied++;
        }
    }

    if (cls == CW_PG_OK && !t->reject) {
        cls = proj_apply_flush(t, err, errlen);

    } else {
        char  ignore[256];

        proj_pipe_flush(&t->pipe, ignore, sizeof(ignore));
    }

    return cls;
}


/* The stage trace of an attempt (debug log). */
static void
proj_fast_trace(int64_t t0, int64_t t1, int64_t t2, int64_t t3)
{
    cw_field_t  f[] = { CW_FINT("start_ms", t1 - t0),
                        CW_FINT("commands_ms", t2 - t1),
                        CW_FINT("archive_wait_ms", t3 - t2),
                        CW_FINT("render_ms", cw_now_ms() - t3) };

    cw_log_kv(CW_LOG_DEBUG, f, 4, "batch statements done");
}


cw_pg_class_t
proj_fast_txn(cw_pg_t *pg, void *batch, char *err, size_t errlen)
{
    int64_t         t0, t1, t2 = 0;
    proj_txn_t      t;
    proj_batch_t   *b = batch;
    cw_pg_class_t   cls;

    t0 = cw_now_ms();

    cls = proj_txn_begin(&t, b, pg, err, errlen);

    if (cls == CW_PG_OK && proj_fast_dups(b) != 0) {
        snprintf(err, errlen, "out of memory");
        cls = CW_PG_PERMANENT;
    }

    if (cls == CW_PG_OK) {
        cls = proj_fast_claim(&t, err, errlen);
    }

    t1 = cw_now_ms();

    if (cls == CW_PG_OK) {
        cls = proj_fast_messages(&t, err, errlen);
    }

    if (cls == CW_PG_OK && t.reject) {
        snprintf(b->why, sizeof(b->why), "%s", t.why.reason);
        cls = CW_PG_PERMANENT;
    }

    if (cls == CW_PG_PERMANENT) {
        /* Rolled back by cw_pg_txn: proj_commit_run then applies the
         * batch the careful way. */
        if (b->why[0] == '\0') {
            snprintf(b->why, sizeof(b->why), "%s", err);
        }
        b->careful = 1;
    }

    if (cls == CW_PG_OK) {
        t2 = cw_now_ms();
        cls = proj_archive_wait(&b->arc, b->st->side, err, errlen);
    }

    if (cls == CW_PG_OK) {
        int64_t  t3 = cw_now_ms();

        cls = proj_txn_finish(&t, err, errlen);
        if (cls == CW_PG_OK && cw_log_enabled(CW_LOG_DEBUG)) {
            proj_fast_trace(t0, t1, t2, t3);
        }
    }

    proj_txn_end(&t);

    return cls;
}
