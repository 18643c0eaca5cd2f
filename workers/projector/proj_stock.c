/*
 * proj_stock: the queued stock commands of an attempt applied set-based.
 * Their levels are read (not locked: the write checks that each version
 * is still the one read, and a level changed in between makes the
 * attempt fail as transient, to go again), the commands folded over them
 * in C in batch order (proj_stock_fold), and everything written back by
 * one statement: levels, events, ledger. While the server writes, the
 * events are framed for Kafka and the levels' read-model values
 * rendered. A refused movement sets t->reject (stock_underflow).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce_contract.h"
#include "proj_batch.h"
#include "proj_keys.h"
#include "proj_sql.h"
#include "proj_util.h"


#define PROJ_STOCK_NO_EVENT  ((size_t) -1)


/* A level as read, then folded. */
typedef struct {
    proj_stock_level_t   lv;
    const char          *store;
    const char          *sku;
    const char          *sku_json;    /* as PostgreSQL's to_json writes it */
    const char          *price;       /* its rendering; NULL: none */
    const char          *price_at;    /* its rows' latest updated_at */
    long long            price_version;   /* its rows' versions added */
    long long            version_read;    /* 0: no level */
    int                  changed;
} proj_stock_key_t;

/* An applied command: the version it gave its level, its events' data
 * at offsets in the writer's buffer. */
typedef struct {
    proj_stock_cmd_t    *cmd;
    long long            version;
    size_t               data;
    size_t               odata;       /* PROJ_STOCK_NO_EVENT: none */
} proj_stock_done_t;

typedef struct {
    proj_txn_t          *t;
    proj_keys_t          ks;
    proj_stock_key_t    *keys;
    proj_stock_done_t   *done;
    size_t               ndone;
    size_t               nread;       /* levels that existed */
    PGresult            *state;
    cw_buf_t             evd;         /* the events' data */
    cw_buf_t             a[PROJ_STOCK_WRITE_NPARAMS];
} proj_stock_w_t;


/* The distinct levels of the queued commands, read, and the commands'
 * as_of instants (counts only: a movement's as_of is not compared). */
static cw_pg_class_t
proj_stock_read(proj_stock_w_t *w, char *err, size_t errlen)
{
    int                 fresh;
    size_t              i, row;
    cw_pg_class_t       cls;
    const char         *p[PROJ_STOCK_STATE_NPARAMS];
    proj_stock_key_t   *k;
    proj_stock_cmd_t   *sc, *cmds = w->t->stock.items;

    for (i = 0; i < w->t->stock.n; i++) {
        sc = &cmds[i];
        sc->key = proj_keys_add(&w->ks, sc->store, sc->sku,
                                sc->absolute ? sc->as_of : NULL, &fresh);
        if (fresh) {
            w->keys[sc->key].store = sc->store;
            w->keys[sc->key].sku = sc->sku;
            w->keys[sc->key].lv.ts_us = -1;
        }
    }

    if (proj_keys_close(&w->ks, p) != 0) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    w->state = proj_keys_state(&w->ks, w->t->pg, PROJ_SQL_STOCK_STATE,
                               PROJ_STOCK_STATE_NPARAMS, p, &cls, err,
                               errlen);
    if (w->state == NULL) {
        return cls;
    }

    if ((size_t) PQntuples(w->state) != w->ks.n) {
        snprintf(err, errlen, "stock_state: %d rows for %zu keys",
                 PQntuples(w->state), w->ks.n);
        return CW_PG_PERMANENT;
    }

    for (row = 0; row < w->ks.n; row++) {
        k = &w->keys[row];
        k->sku_json = PQgetvalue(w->state, (int) row,
                                 PROJ_STOCK_STATE_SKU_JSON);
        k->price = PQgetisnull(w->state, (int) row, PROJ_STOCK_STATE_PRICE)
                   ? NULL
                   : PQgetvalue(w->state, (int) row, PROJ_STOCK_STATE_PRICE);
        k->price_version = atoll(PQgetvalue(w->state, (int) row,
                                            PROJ_STOCK_STATE_PRICE_VERSION));
        k->price_at = PQgetisnull(w->state, (int) row,
                                  PROJ_STOCK_STATE_PRICE_AT)
                      ? NULL
                      : PQgetvalue(w->state, (int) row,
                                   PROJ_STOCK_STATE_PRICE_AT);
        if (PQgetisnull(w->state, (int) row, PROJ_STOCK_STATE_VERSION)) {
            continue;
        }
        k->lv.exists = 1;
        k->lv.on_hand = atoll(PQgetvalue(w->state, (int) row,
                                         PROJ_STOCK_STATE_ON_HAND));
        k->lv.reserved = atoll(PQgetvalue(w->state, (int) row,
                                          PROJ_STOCK_STATE_RESERVED));
        k->lv.shortfall = atoll(PQgetvalue(w->state, (int) row,
                                           PROJ_STOCK_STATE_SHORTFALL));
        k->lv.version = atoll(PQgetvalue(w->state, (int) row,
                                         PROJ_STOCK_STATE_VERSION));
        k->version_read = k->lv.version;
        k->lv.ts_us = PQgetisnull(w->state, (int) row,
                                  PROJ_STOCK_STATE_TS_US)
                      ? -1 : atoll(PQgetvalue(w->state, (int) row,
                                              PROJ_STOCK_STATE_TS_US));
        w->nread++;
    }

    cls = proj_keys_as_of(&w->ks, w->t->pg, err, errlen);

    for (i = 0; cls == CW_PG_OK && i < w->t->stock.n; i++) {
        cmds[i].as_of_us = w->ks.as_of_us[i];
    }

    return cls;
}


/* One applied command's parameters of the write, and its events' data. */
static void
proj_stock_params(proj_stock_w_t *w, proj_stock_cmd_t *sc,
    const proj_stock_key_t *k, const proj_stock_change_t *ch)
{
    cw_buf_t           *a = w->a;
    proj_stock_done_t  *d = &w->done[w->ndone++];

    d->cmd = sc;
    d->version = k->lv.version;
    d->data = w->evd.len;
    d->odata = PROJ_STOCK_NO_EVENT;

    proj_stock_event_data(&w->evd, sc, &k->lv, ch);
    cw_buf_putc(&w->evd, '\0');
    if (ch->orderability) {
        d->odata = w->evd.len;
        proj_orderability_event_data(&w->evd, sc, &k->lv);
        cw_buf_putc(&w->evd, '\0');
    }

    if (w->evd.oom) {
        return;                             /* the write is not sent */
    }

    proj_arr(&a[PROJ_STOCK_WRITE_STORE], sc->store);
    proj_arr(&a[PROJ_STOCK_WRITE_SKU], sc->sku);
    proj_arr(&a[PROJ_STOCK_WRITE_EVENT_ID], sc->id);
    proj_arr_ll(&a[PROJ_STOCK_WRITE_VERSION], k->lv.version);
    proj_arr_ll(&a[PROJ_STOCK_WRITE_ON_HAND], k->lv.on_hand);
    proj_arr_ll(&a[PROJ_STOCK_WRITE_DELTA], ch->delta);
    proj_arr(&a[PROJ_STOCK_WRITE_MOVEMENT], sc->absolute ? "set" : "adjust");
    proj_arr(&a[PROJ_STOCK_WRITE_REASON], sc->reason);
    proj_arr(&a[PROJ_STOCK_WRITE_AS_OF], sc->as_of);
    proj_arr(&a[PROJ_STOCK_WRITE_DATA], w->evd.data + d->data);
    proj_arr(&a[PROJ_STOCK_WRITE_META], sc->msg->meta);
    proj_arr(&a[PROJ_STOCK_WRITE_CORRELATION],
             proj_msg_correlation(sc->msg));
    proj_arr(&a[PROJ_STOCK_WRITE_CAUSATION], sc->msg->dedup);
    proj_arr_ll(&a[PROJ_STOCK_WRITE_RESERVED_DELTA], ch->reserved_delta);
    proj_arr_ll(&a[PROJ_STOCK_WRITE_RESERVED], k->lv.reserved);

    if (d->odata != PROJ_STOCK_NO_EVENT) {
        proj_arr(&a[PROJ_STOCK_WRITE_OEVENT_ID], sc->oid);
        proj_arr(&a[PROJ_STOCK_WRITE_ODATA], w->evd.data + d->odata);
    } else {
        proj_arr(&a[PROJ_STOCK_WRITE_OEVENT_ID], NULL);
        proj_arr(&a[PROJ_STOCK_WRITE_ODATA], NULL);
    }
}


/* The fold, command by command in batch order, then the final state of
 * each level changed. */
static void
proj_stock_fold_all(proj_stock_w_t *w)
{
    size_t               i;
    cw_buf_t            *a = w->a;
    proj_fold_rc_t       rc;
    proj_stock_key_t    *k;
    proj_stock_cmd_t    *sc, *cmds = w->t->stock.items;
    proj_stock_change_t  ch;

    for (i = 0; i < w->t->stock.n; i++) {
        sc = &cmds[i];
        k = &w->keys[sc->key];

        rc = proj_stock_fold(&k->lv, sc, &ch);

        if (rc == PROJ_FOLD_STALE) {
            w->t->fx->stale++;
            continue;
        }

        if (rc == PROJ_FOLD_UNDERFLOW) {
            proj_error_set(&w->t->why, "stock_underflow", "delta %lld would "
                           "take %s at %s below zero", sc->qty, sc->sku,
                           sc->store);
            w->t->reject = 1;
            return;
        }

        k->changed = 1;
        proj_stock_params(w, sc, k, &ch);
    }

    for (i = 0; i < w->ks.n; i++) {
        k = &w->keys[i];
        if (!k->changed) {
            continue;
        }
        proj_arr(&a[PROJ_STOCK_WRITE_KEY_STORE], k->store);
        proj_arr(&a[PROJ_STOCK_WRITE_KEY_SKU], k->sku);
        proj_arr_ll(&a[PROJ_STOCK_WRITE_KEY_ON_HAND], k->lv.on_hand);
        proj_arr_ll(&a[PROJ_STOCK_WRITE_KEY_VERSION], k->lv.version);
        proj_arr(&a[PROJ_STOCK_WRITE_KEY_AS_OF], k->lv.as_of);
        proj_arr_ll(&a[PROJ_STOCK_WRITE_KEY_READ], k->version_read);
        proj_arr_ll(&a[PROJ_STOCK_WRITE_KEY_RESERVED], k->lv.reserved);
        proj_arr_ll(&a[PROJ_STOCK_WRITE_KEY_SHORTFALL], k->lv.shortfall);
    }
}


/* While the server writes: the events framed for Kafka, and the values
 * of the levels changed rendered for Redis, as rm_stock_values renders
 * them: versioned by the level's version and its prices' added up, as
 * of the latest of the transaction's now() (which the write gives their
 * updated_at) and their prices' updated_at. */
static cw_pg_class_t
proj_stock_effects(proj_stock_w_t *w, char *err, size_t errlen)
{
    char                 agg[2][2 * PROJ_ID_MAX + 32], *value;
    size_t               i;
    long long            version;
    const char          *now, *at;
    proj_event_t         e;
    proj_effects_t      *fx = w->t->fx;
    proj_stock_key_t    *k;
    proj_stock_done_t   *d;

    for (i = 0; i < w->ndone; i++) {
        d = &w->done[i];
        snprintf(agg[0], sizeof(agg[0]), COMMERCE_AGG_STOCK ":%s:%s",
                 d->cmd->store, d->cmd->sku);
        e = (proj_event_t) { d->cmd->id, COMMERCE_EV_STOCK_CHANGED,
                             COMMERCE_AGG_STOCK, agg[0], d->version,
                             d->cmd->ts, w->evd.data + d->data };
        proj_effects_event(fx, d->cmd->msg, &e);

        if (d->odata != PROJ_STOCK_NO_EVENT) {
            snprintf(agg[1], sizeof(agg[1]), COMMERCE_AGG_ORDERABILITY
                     ":%s:%s", d->cmd->store, d->cmd->sku);
            e = (proj_event_t) { d->cmd->oid, COMMERCE_EV_ORDERABILITY,
                                 COMMERCE_AGG_ORDERABILITY, agg[1],
                                 d->version, d->cmd->ts,
                                 w->evd.data + d->odata };
            proj_effects_event(fx, d->cmd->msg, &e);
        }
    }

    now = PQgetvalue(w->state, 0, PROJ_STOCK_STATE_NOW);

    for (i = 0; i < w->ks.n; i++) {
        k = &w->keys[i];
        if (!k->changed) {
            continue;
        }
        version = k->lv.version + k->price_version;
        at = k->price_at != NULL && strcmp(k->price_at, now) > 0
             ? k->price_at : now;           /* same format: text order */
        value = proj_stock_value(k->sku_json, &k->lv, version, at,
                                 k->price);
        if (value == NULL) {
            fx->values.oom = 1;
            break;
        }
        proj_effects_stock_value(fx, k->store, k->sku, version,
                                 k->price_version, value);
        free(value);
    }

    if (fx->values.oom || fx->frames.oom) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    return CW_PG_OK;
}


/* The write sent, the effects made meanwhile, its result taken. */
static cw_pg_class_t
proj_stock_send(proj_stock_w_t *w, char *err, size_t errlen)
{
    PGresult       *res;
    const char     *p[PROJ_STOCK_WRITE_NPARAMS];
    cw_pg_class_t   cls, fcls;

    if (proj_arrs_close(w->a, PROJ_STOCK_WRITE_NPARAMS, p) != 0
        || w->evd.oom)
    {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    cls = cw_pg_sendp(w->t->pg, proj_sql_name(PROJ_SQL_STOCK_WRITE),
                      PROJ_STOCK_WRITE_NPARAMS, p, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    fcls = proj_stock_effects(w, err, errlen);

    res = cw_pg_getp(w->t->pg, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }

    if (fcls != CW_PG_OK) {
        PQclear(res);
        return fcls;
    }

    if ((size_t) atoll(PQgetvalue(res, 0, PROJ_STOCK_WRITE_UPDATED))
        != w->nread)
    {
        /* Rolled back and tried again: the next read sees it. */
        snprintf(err, errlen, "a stock level changed while the batch was "
                 "applied (%s of %zu updated)",
                 PQgetvalue(res, 0, PROJ_STOCK_WRITE_UPDATED), w->nread);
        PQclear(res);
        return CW_PG_TRANSIENT;
    }

    PQclear(res);

    return CW_PG_OK;
}


cw_pg_class_t
proj_stock_write(proj_txn_t *t, char *err, size_t errlen)
{
    size_t             n = t->stock.n;
    proj_stock_w_t     w;
    cw_pg_class_t      cls = CW_PG_PERMANENT;

    if (n == 0) {
        return CW_PG_OK;
    }

    memset(&w, 0, sizeof(w));
    w.t = t;
    cw_buf_init(&w.evd);
    proj_arrs_open(w.a, PROJ_STOCK_WRITE_NPARAMS);

    w.keys = calloc(n, sizeof(*w.keys));
    w.done = calloc(n, sizeof(*w.done));

    if (proj_keys_init(&w.ks) != 0 || w.keys == NULL || w.done == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    cls = proj_stock_read(&w, err, errlen);
    if (cls != CW_PG_OK) {
        goto done;
    }

    proj_stock_fold_all(&w);

    if (!t->reject && w.ndone > 0) {
        cls = proj_stock_send(&w, err, errlen);
    }

done:

    PQclear(w.state);
    proj_keys_free(&w.ks);
    proj_arrs_free(w.a, PROJ_STOCK_WRITE_NPARAMS);
    cw_buf_free(&w.evd);
    free(w.keys);
    free(w.done);
    t->stock.n = 0;

    return cls;
}
