/*
 * proj_price: the queued price commands of an attempt applied set-based.
 * Their rows are read under lock, the commands folded over them in C in
 * batch order (proj_price_fold), and everything written back by one
 * statement, which also bumps the versions of the item documents that
 * show a base price. Those, and the stock values that show a price
 * (versioned by their prices' versions already), are rendered after the
 * commit from the committed rows: the values of a base price in every
 * store that has the sku then, those of an override in its store.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce_contract.h"
#include "proj_batch.h"
#include "proj_keys.h"
#include "proj_sql.h"
#include "proj_util.h"


/* A row as read, then folded. */
typedef struct {
    proj_price_row_t     row;
    const char          *sku;
    const char          *store;       /* "" for the base price */
    int                  changed;
} proj_price_key_t;

typedef struct {
    proj_txn_t          *t;
    proj_keys_t          ks;
    proj_price_key_t    *keys;
    size_t               ndone;
    cw_buf_t             a[PROJ_PRICE_WRITE_NPARAMS];
} proj_price_w_t;


/* The distinct rows of the queued commands, read and locked, and the
 * commands' as_of instants. */
static cw_pg_class_t
proj_price_read(proj_price_w_t *w, char *err, size_t errlen)
{
    int                 fresh, row;
    size_t              i;
    PGresult           *res;
    const char         *p[PROJ_PRICE_STATE_NPARAMS];
    cw_pg_class_t       cls;
    proj_price_key_t   *k;
    proj_price_cmd_t   *pc, *cmds = w->t->price.items;

    for (i = 0; i < w->t->price.n; i++) {
        pc = &cmds[i];
        pc->key = proj_keys_add(&w->ks, pc->sku, pc->store, pc->as_of,
                                &fresh);
        if (fresh) {
            w->keys[pc->key].sku = pc->sku;
            w->keys[pc->key].store = pc->store;
            w->keys[pc->key].row.ts_us = -1;
        }
    }

    if (proj_keys_close(&w->ks, p) != 0) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    res = proj_keys_state(&w->ks, w->t->pg, PROJ_SQL_PRICE_STATE,
                          PROJ_PRICE_STATE_NPARAMS, p, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }

    for (row = 0; row < PQntuples(res); row++) {
        k = &w->keys[atoll(PQgetvalue(res, row, PROJ_PRICE_STATE_RANK)) - 1];
        k->row.exists = 1;
        k->row.version = atoll(PQgetvalue(res, row,
                                          PROJ_PRICE_STATE_VERSION));
        k->row.ts_us = PQgetisnull(res, row, PROJ_PRICE_STATE_TS_US)
                       ? -1 : atoll(PQgetvalue(res, row,
                                               PROJ_PRICE_STATE_TS_US));
    }
    PQclear(res);

    cls = proj_keys_as_of(&w->ks, w->t->pg, err, errlen);

    for (i = 0; cls == CW_PG_OK && i < w->t->price.n; i++) {
        cmds[i].as_of_us = w->ks.as_of_us[i];
    }

    return cls;
}


/* The fold, command by command in batch order: each price applied is an
 * event, framed now; then the final state of each row changed, and the
 * stock values that show it, to render after the commit. */
static void
proj_price_fold_all(proj_price_w_t *w)
{
    char                agg[2 * PROJ_ID_MAX + 32];
    size_t              i;
    cw_buf_t           *a = w->a;
    proj_event_t        e;
    proj_price_key_t   *k;
    proj_price_cmd_t   *pc, *cmds = w->t->price.items;

    for (i = 0; i < w->t->price.n; i++) {
        pc = &cmds[i];
        k = &w->keys[pc->key];

        if (proj_price_fold(&k->row, pc) == PROJ_FOLD_STALE) {
            w->t->fx->stale++;
            continue;
        }

        k->changed = 1;
        w->ndone++;

        snprintf(agg, sizeof(agg), COMMERCE_AGG_PRICE ":%s@%s", pc->sku,
                 pc->store[0] != '\0' ? pc->store : "*");
        e = (proj_event_t) { pc->id, COMMERCE_EV_PRICE_UPDATED,
                             COMMERCE_AGG_PRICE, agg, k->row.version,
                             pc->ts, pc->data };
        proj_effects_event(w->t->fx, pc->msg, &e);

        proj_arr(&a[PROJ_PRICE_WRITE_EVENT_ID], pc->id);
        proj_arr(&a[PROJ_PRICE_WRITE_AGGREGATE], agg);
        proj_arr_ll(&a[PROJ_PRICE_WRITE_VERSION], k->row.version);
        proj_arr(&a[PROJ_PRICE_WRITE_DATA], pc->data);
        proj_arr(&a[PROJ_PRICE_WRITE_META], pc->msg->meta);
        proj_arr(&a[PROJ_PRICE_WRITE_CORRELATION],
                 proj_msg_correlation(pc->msg));
        proj_arr(&a[PROJ_PRICE_WRITE_CAUSATION], pc->msg->dedup);
    }

    for (i = 0; i < w->ks.n; i++) {
        k = &w->keys[i];
        if (!k->changed) {
            continue;
        }
        proj_arr(&a[PROJ_PRICE_WRITE_KEY_SKU], k->sku);
        proj_arr(&a[PROJ_PRICE_WRITE_KEY_STORE], k->store);
        proj_arr_ll(&a[PROJ_PRICE_WRITE_KEY_AMOUNT], k->row.amount);
        proj_arr(&a[PROJ_PRICE_WRITE_KEY_CURRENCY], k->row.currency);
        proj_arr_ll(&a[PROJ_PRICE_WRITE_KEY_VERSION], k->row.version);
        proj_arr(&a[PROJ_PRICE_WRITE_KEY_AS_OF], k->row.as_of);
        if (k->store[0] == '\0') {
            proj_arr(&a[PROJ_PRICE_WRITE_BASE_SKUS], k->sku);
            proj_effects_sku(w->t->fx, k->sku);
        } else {
            proj_effects_stock(w->t->fx, k->store, k->sku);
        }
    }
}


/* The write, and the item documents it bumped to render after the
 * commit. */
static cw_pg_class_t
proj_price_send(proj_price_w_t *w, char *err, size_t errlen)
{
    int              row;
    PGresult        *res;
    const char      *p[PROJ_PRICE_WRITE_NPARAMS];
    cw_pg_class_t    cls;
    proj_effects_t  *fx = w->t->fx;

    if (proj_arrs_close(w->a, PROJ_PRICE_WRITE_NPARAMS, p) != 0) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    res = cw_pg_execp(w->t->pg, proj_sql_name(PROJ_SQL_PRICE_WRITE),
                      PROJ_PRICE_WRITE_NPARAMS, p, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }

    for (row = 0; row < PQntuples(res); row++) {
        proj_effects_item(fx, PQgetvalue(res, row, PROJ_PRICE_WRITE_ITEM));
    }
    PQclear(res);

    return CW_PG_OK;
}


cw_pg_class_t
proj_price_write(proj_txn_t *t, char *err, size_t errlen)
{
    size_t             i, n = t->price.n;
    proj_price_w_t     w;
    cw_pg_class_t      cls = CW_PG_PERMANENT;
    proj_price_cmd_t  *pc = t->price.items;

    if (n == 0) {
        return CW_PG_OK;
    }

    memset(&w, 0, sizeof(w));
    w.t = t;
    proj_arrs_open(w.a, PROJ_PRICE_WRITE_NPARAMS);

    w.keys = calloc(n, sizeof(*w.keys));

    if (proj_keys_init(&w.ks) != 0 || w.keys == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    cls = proj_price_read(&w, err, errlen);
    if (cls != CW_PG_OK) {
        goto done;
    }

    proj_price_fold_all(&w);

    if (w.ndone > 0) {
        cls = proj_price_send(&w, err, errlen);
    }

done:

    proj_keys_free(&w.ks);
    proj_arrs_free(w.a, PROJ_PRICE_WRITE_NPARAMS);
    free(w.keys);

    for (i = 0; i < n; i++) {
        free(pc[i].data);
    }
    t->price.n = 0;

    return cls;
}
