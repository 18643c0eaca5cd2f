/*
 * proj_txn: what both kinds of attempt start and end with (see
 * proj_batch.h): the offsets locked first and stored last, the archive
 * waited for, the effects written as outbox rows.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proj_batch.h"
#include "proj_known.h"


cw_pg_class_t
proj_txn_begin(proj_txn_t *t, proj_batch_t *b, cw_pg_t *pg, char *err,
    size_t errlen)
{
    proj_store_t   *st = b->st;
    cw_pg_class_t   cls;

    memset(t, 0, sizeof(*t));
    t->st = st;
    t->b = b;
    t->pg = pg;
    t->fx = &st->fx;
    proj_pipe_init(&t->pipe, cw_pg_conn(pg), t);

    json_decref(b->stores_new);
    b->stores_new = json_object();

    if (b->stores_new == NULL || proj_effects_reset(t->fx) != 0) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    /* The statements are planned once per connection: custom plans would
     * plan them again at every execution, which costs more than
     * executing them. */
    cls = cw_pg_command(pg, "SET LOCAL plan_cache_mode = force_generic_plan",
                        err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    cls = proj_offsets_lock(&b->off, pg, st->group_id, b->msgs, b->n, err,
                            errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    return proj_known_check(t, err, errlen);
}


cw_pg_class_t
proj_txn_finish(proj_txn_t *t, char *err, size_t errlen)
{
    proj_batch_t   *b = t->b;
    proj_store_t   *st = t->st;
    cw_pg_class_t   cls;

    cls = proj_archive_wait(&b->arc, st->side, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    cls = proj_offsets_store(&b->off, t->pg, st->group_id, b->msgs, b->n,
                             err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    return proj_effects_write(t->fx, t->pg, st->events_topic, err, errlen);
}


void
proj_txn_end(proj_txn_t *t)
{
    char               ignore[256];
    size_t             i;
    proj_price_cmd_t  *pc = t->price.items;

    /* An attempt that failed half way may leave statements in the
     * pipeline: their results are read (and their work released), and
     * the connection leaves pipeline mode before the ROLLBACK. */
    proj_pipe_flush(&t->pipe, ignore, sizeof(ignore));

    for (i = 0; i < t->price.n; i++) {
        free(pc[i].data);
    }

    free(t->price.items);
    free(t->stock.items);
    t->price.items = NULL;
    t->stock.items = NULL;
    t->price.n = t->stock.n = 0;
    json_decref(t->resolved);
    t->resolved = NULL;
}


void *
proj_queue_push(proj_queue_t *q, size_t size)
{
    size_t   cap;
    void    *p;

    if (q->n == q->cap) {
        cap = q->cap ? q->cap * 2 : 64;
        p = realloc(q->items, cap * size);
        if (p == NULL) {
            return NULL;
        }
        q->items = p;
        q->cap = cap;
    }

    p = (char *) q->items + q->n++ * size;
    memset(p, 0, size);

    return p;
}
