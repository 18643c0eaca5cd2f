/*
 * cw_pg_side: see cw_pg_side.h; a cw_task running cw_pg_txn.
 */

#include <stdio.h>
#include <stdlib.h>

#include "cw_pg_side.h"
#include "cw_task.h"

struct cw_pg_side_s {
    cw_pg_t          *pg;
    cw_task_t        *task;
    cw_pg_txn_fn      fn;
    void             *ud;
    cw_pg_class_t     cls;         /* of the last run, once waited for */
    char              err[512];
};


static void
cw_pg_side_txn(void *arg)
{
    cw_pg_side_t  *s = arg;

    s->err[0] = '\0';
    s->cls = cw_pg_txn(s->pg, s->fn, s->ud, 1, s->err, sizeof(s->err));
}


cw_pg_side_t *
cw_pg_side_start(cw_pg_t *pg)
{
    cw_pg_side_t  *s;

    s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->task = cw_task_start();
    }

    if (s == NULL || s->task == NULL) {
        cw_pg_free(pg);
        free(s);
        return NULL;
    }

    s->pg = pg;

    return s;
}


int
cw_pg_side_run(cw_pg_side_t *s, cw_pg_txn_fn fn, void *ud)
{
    if (cw_task_pending(s->task)) {
        return -1;
    }

    s->fn = fn;
    s->ud = ud;

    return cw_task_run(s->task, cw_pg_side_txn, s);
}


int
cw_pg_side_pending(const cw_pg_side_t *s)
{
    return cw_task_pending(s->task);
}


cw_pg_class_t
cw_pg_side_wait(cw_pg_side_t *s, char *err, size_t errlen)
{
    if (!cw_task_pending(s->task)) {
        return CW_PG_OK;
    }

    cw_task_wait(s->task);

    if (s->cls != CW_PG_OK) {
        snprintf(err, errlen, "%s", s->err);
    }

    return s->cls;
}


void
cw_pg_side_stop(cw_pg_side_t *s)
{
    if (s == NULL) {
        return;
    }

    cw_task_stop(s->task);
    cw_pg_free(s->pg);
    free(s);
}
