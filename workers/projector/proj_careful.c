/*
 * proj_careful: an attempt of a batch message by message, each in a
 * savepoint, for a batch the fast way could not apply. Each message is
 * claimed by its own statement and its commands applied through the
 * same appliers as the fast way (proj_apply.c), flushed at the end of the
 * message, so that whatever the data is refused for (an unmapped
 * reference, a stock underflow, a value PostgreSQL refuses) is known to
 * be that message's: it is rolled back to its savepoint, with what it
 * added to the attempt's effects, and dead-lettered; the batch goes on.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cw_log.h"
#include "proj_batch.h"
#include "proj_sql.h"


/* The message's dedup key claimed: 1 now, 0 claimed before (the message
 * was applied before), -1 on error (*cls). */
static int
proj_careful_claim(proj_txn_t *t, proj_msg_t *pm, cw_pg_class_t *cls,
    char *err, size_t errlen)
{
    int          claimed;
    char         part[16], off[24], ncmds[24];
    PGresult    *res;
    const char  *p[PROJ_CLAIM_NPARAMS];

    snprintf(part, sizeof(part), "%" PRId32, pm->m->partition);
    snprintf(off, sizeof(off), "%" PRId64, pm->m->offset);
    snprintf(ncmds, sizeof(ncmds), "%zu", json_array_size(pm->cmds));

    p[PROJ_CLAIM_KEY] = pm->dedup;
    p[PROJ_CLAIM_TOPIC] = pm->topic;
    p[PROJ_CLAIM_PARTITION] = part;
    p[PROJ_CLAIM_OFFSET] = off;
    p[PROJ_CLAIM_COMMANDS] = ncmds;

    res = cw_pg_execp(t->pg, proj_sql_name(PROJ_SQL_CLAIM),
                      PROJ_CLAIM_NPARAMS, p, cls, err, errlen);
    if (res == NULL) {
        return -1;
    }

    claimed = PQntuples(res) > 0;
    PQclear(res);

    return claimed;
}


/* The commands of a claimed message, then everything they queued. A
 * value PostgreSQL refused is the message's fault, not the database's:
 * a rejection. */
static cw_pg_class_t
proj_careful_commands(proj_txn_t *t, proj_msg_t *pm, char *err,
    size_t errlen)
{
    char            ignore[256];
    size_t          k;
    cw_pg_class_t   cls = CW_PG_OK;

    for (k = 0; k < json_array_size(pm->cmds) && cls == CW_PG_OK
                && !t->reject; k++)
    {
        cls = proj_apply_command(t, pm, k, err, errlen);
    }

    if (cls == CW_PG_OK && !t->reject) {
        cls = proj_apply_flush(t, err, errlen);
    }

    proj_pipe_flush(&t->pipe, ignore, sizeof(ignore));

    if (cls == CW_PG_PERMANENT) {
        /* The database's words go to the log, not into the reason. */
        cw_log(CW_LOG_WARN, "the store refused a value of the message at "
               "%s [%d] %lld: %s", pm->topic, (int) pm->m->partition,
               (long long) pm->m->offset, err);
        proj_error_store(&t->why, err);
        t->reject = 1;
        cls = CW_PG_OK;
    }

    return cls;
}


/* Undoes a refused message: back to its savepoint, its effects and its
 * queued commands dropped; the stores the attempt registered are
 * registered again if seen again. */
static cw_pg_class_t
proj_careful_undo(proj_txn_t *t, const proj_effects_mark_t *mark,
    char *err, size_t errlen)
{
    size_t             i;
    proj_price_cmd_t  *pc = t->price.items;

    proj_effects_rollback(t->fx, mark);
    json_object_clear(t->b->stores_new);

    for (i = 0; i < t->price.n; i++) {
        free(pc[i].data);
    }
    t->price.n = 0;
    t->stock.n = 0;
    t->reject = 0;

    return cw_pg_command(t->pg, "ROLLBACK TO SAVEPOINT msg", err, errlen);
}


static cw_pg_class_t
proj_careful_msg(proj_txn_t *t, proj_msg_t *pm, char *err, size_t errlen)
{
    int                  claimed;
    proj_error_t         why;
    cw_pg_class_t        cls;
    proj_effects_mark_t  mark;

    cls = cw_pg_command(t->pg, "SAVEPOINT msg", err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    proj_effects_mark(t->fx, &mark);

    if (pm->cmds == NULL) {
        cls = proj_apply_dead(t, pm, &pm->err, err, errlen);
        goto release;
    }

    claimed = proj_careful_claim(t, pm, &cls, err, errlen);
    if (claimed < 0) {
        return cls;
    }

    if (!claimed) {
        t->fx->duplicates++;
        goto release;
    }

    cls = proj_careful_commands(t, pm, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    if (t->reject) {
        why = t->why;
        cls = proj_careful_undo(t, &mark, err, errlen);
        if (cls == CW_PG_OK) {
            cls = proj_apply_dead(t, pm, &why, err, errlen);
        }
        goto release;
    }

    t->fx->applied++;

release:

    if (cls == CW_PG_OK) {
        cls = cw_pg_command(t->pg, "RELEASE SAVEPOINT msg", err, errlen);
    }

    return cls;
}


cw_pg_class_t
proj_careful_txn(cw_pg_t *pg, void *batch, char *err, size_t errlen)
{
    size_t          i;
    proj_txn_t      t;
    proj_batch_t   *b = batch;
    cw_pg_class_t   cls;

    cls = proj_txn_begin(&t, b, pg, err, errlen);

    for (i = 0; i < b->n && cls == CW_PG_OK; i++) {
        if (b->msgs[i].fenced) {
            t.fx->skipped++;
            continue;
        }
        cls = proj_careful_msg(&t, &b->msgs[i], err, errlen);
    }

    if (cls == CW_PG_OK) {
        cls = proj_txn_finish(&t, err, errlen);
    }

    proj_txn_end(&t);

    return cls;
}
