/*
 * proj_apply: the appliers of canonical commands, shared by the fast and
 * the careful attempt (see proj_batch.h).
 *
 * An item upsert is one self-contained statement (rows and event), sent
 * into the pipeline; price and stock commands, most of the traffic, are
 * queued for the batch's price and stock statements (proj_price.c,
 * proj_stock.c), which run after the pipeline, prices first. The events
 * of one message stay in command order: before a command that would run
 * earlier than the message's pending ones, what is queued is applied. A
 * vendor reference (Shopify ids) is resolved first, synchronously (the
 * pipeline flushed), then the command goes the same way.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce_contract.h"
#include "cw_log.h"
#include "cw_time.h"
#include "proj_batch.h"
#include "proj_sql.h"
#include "proj_util.h"


/* An item event waiting in the pipeline for the version the database
 * gives it. */
typedef struct {
    char            id[37];
    char            ts[32];
    const char     *item;         /* points into the command */
    char           *data;
    proj_msg_t     *msg;
} proj_apply_item_t;


static const char *
proj_apply_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}


/* A statement run at once (the pipeline is flushed first). */
static cw_pg_class_t
proj_apply_exec(proj_txn_t *t, proj_sql_id_t id, int n, const char *const *p,
    PGresult **out, char *err, size_t errlen)
{
    PGresult       *res;
    cw_pg_class_t   cls;

    cls = proj_pipe_flush(&t->pipe, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    res = cw_pg_execp(t->pg, proj_sql_name(id), n, p, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }

    if (out != NULL) {
        *out = res;
    } else {
        PQclear(res);
    }

    return CW_PG_OK;
}


/* Resolves a {"kind","external_id"[,"default"]} reference of the
 * command's source to a canonical id, into out. With a default, an
 * unknown reference is created pointing at it; without, it is refused. */
static cw_pg_class_t
proj_apply_resolve(proj_txn_t *t, json_t *cmd, json_t *ref,
    const char *def, char *out, size_t size, char *err, size_t errlen)
{
    PGresult       *res;
    const char     *p[PROJ_MAP_PUT_NPARAMS];
    cw_pg_class_t   cls;

    p[PROJ_MAP_SOURCE] = proj_apply_str(cmd, "source");
    p[PROJ_MAP_KIND] = proj_apply_str(ref, "kind");
    p[PROJ_MAP_EXTERNAL_ID] = proj_apply_str(ref, "external_id");

    cls = proj_apply_exec(t, PROJ_SQL_MAP_GET, PROJ_MAP_GET_NPARAMS, p, &res,
                          err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    if (PQntuples(res) == 1) {
        snprintf(out, size, "%s",
                 PQgetvalue(res, 0, PROJ_MAP_GET_CANONICAL_ID));
        PQclear(res);
        return CW_PG_OK;
    }

    PQclear(res);

    if (def == NULL) {
        def = proj_apply_str(ref, "default");
    }

    if (def == NULL) {
        proj_error_set(&t->why, "unmapped_reference", "no %s mapping for %s "
                       "%s id %s", p[PROJ_MAP_SOURCE], p[PROJ_MAP_SOURCE],
                       p[PROJ_MAP_KIND], p[PROJ_MAP_EXTERNAL_ID]);
        t->reject = 1;
        return CW_PG_OK;
    }

    snprintf(out, size, "%s", def);
    p[PROJ_MAP_CANONICAL_ID] = def;

    return proj_apply_exec(t, PROJ_SQL_MAP_PUT, PROJ_MAP_PUT_NPARAMS, p,
                           NULL, err, errlen);
}


/* Registers a store once per process (stores are never deleted): the
 * first time it is seen, a store_put goes into the pipeline. */
static cw_pg_class_t
proj_apply_store(proj_txn_t *t, json_t *cmd, const char *store, char *err,
    size_t errlen)
{
    const char  *p[PROJ_STORE_PUT_NPARAMS];

    if (json_object_get(t->st->stores_known, store) != NULL
        || json_object_get(t->b->stores_new, store) != NULL)
    {
        return CW_PG_OK;
    }

    json_object_set_new(t->b->stores_new, store, json_true());

    p[PROJ_STORE_PUT_ID] = store;
    p[PROJ_STORE_PUT_MERCHANT] = proj_apply_str(cmd, "merchant_id");

    return proj_pipe_send(&t->pipe, proj_sql_name(PROJ_SQL_STORE_PUT),
                          PROJ_STORE_PUT_NPARAMS, p, NULL, NULL, err, errlen);
}


static void
proj_apply_item_free(proj_apply_item_t *ev)
{
    if (ev != NULL) {
        free(ev->data);
        free(ev);
    }
}


/* What the item statement returned: its version (none: stale), and the
 * other items a variant's sku moved from. */
static cw_pg_class_t
proj_apply_item_done(void *ctx, void *arg, PGresult *res, char *err,
    size_t errlen)
{
    int                 row, applied = 0;
    proj_txn_t         *t = ctx;
    proj_event_t        e;
    proj_apply_item_t  *ev = arg;

    for (row = 0; res != NULL && row < PQntuples(res); row++) {
        if (PQgetisnull(res, row, PROJ_ITEM_VERSION)) {
            proj_effects_item(t->fx,
                              PQgetvalue(res, row, PROJ_ITEM_MOVED_FROM));
            continue;
        }

        e.id = ev->id;
        e.type = COMMERCE_EV_ITEM_UPDATED;
        e.agg_type = COMMERCE_AGG_ITEM;
        e.agg_id = ev->item;
        e.version = atoll(PQgetvalue(res, row, PROJ_ITEM_VERSION));
        e.occurred_at = ev->ts;
        e.data = ev->data;
        proj_effects_event(t->fx, ev->msg, &e);
        proj_effects_item(t->fx, ev->item);
        applied = 1;
    }

    if (res != NULL && !applied) {
        t->fx->stale++;
    }

    proj_apply_item_free(ev);

    return CW_PG_OK;
}


/* The vendor references of an item upsert: its id, and the mappings it
 * declares (the product's id and its variants' inventory items). */
static cw_pg_class_t
proj_apply_item_refs(proj_txn_t *t, json_t *cmd, json_t *item, char *err,
    size_t errlen)
{
    char            id[PROJ_ID_MAX + 1];
    json_t         *ref, *maps, *m;
    size_t          i;
    const char     *p[PROJ_MAP_PUT_NPARAMS];
    cw_pg_class_t   cls;

    snprintf(id, sizeof(id), "%s", proj_apply_str(item, "id"));

    ref = json_object_get(cmd, "id_ref");
    if (ref != NULL) {
        cls = proj_apply_resolve(t, cmd, ref, proj_apply_str(item, "id"), id,
                                 sizeof(id), err, errlen);
        if (cls != CW_PG_OK || t->reject) {
            return cls;
        }
        json_object_set_new(item, "id", json_string(id));
    }

    maps = json_object_get(cmd, "mappings");
    json_array_foreach(maps, i, m) {
        p[PROJ_MAP_SOURCE] = proj_apply_str(cmd, "source");
        p[PROJ_MAP_KIND] = proj_apply_str(m, "kind");
        p[PROJ_MAP_EXTERNAL_ID] = proj_apply_str(m, "external_id");
        p[PROJ_MAP_CANONICAL_ID] = strcmp(p[PROJ_MAP_KIND], "product") == 0
                                   ? id : proj_apply_str(m, "canonical_id");

        cls = proj_apply_exec(t, PROJ_SQL_MAP_PUT, PROJ_MAP_PUT_NPARAMS, p,
                              NULL, err, errlen);
        if (cls != CW_PG_OK) {
            return cls;
        }
    }

    return CW_PG_OK;
}


/* The messages parked for the item's variant skus (proj_known.h) put
 * back on their topic, in the pipeline after the item. */
static cw_pg_class_t
proj_apply_release(proj_txn_t *t, json_t *item, char *err, size_t errlen)
{
    json_t         *vs = json_object_get(item, "variants"), *v;
    size_t          i;
    cw_buf_t        a;
    const char     *p[PROJ_RELEASE_NPARAMS];
    cw_pg_class_t   cls;

    if (json_array_size(vs) == 0) {
        return CW_PG_OK;
    }

    proj_arrs_open(&a, 1);
    json_array_foreach(vs, i, v) {
        proj_arr(&a, json_string_value(json_object_get(v, "sku")));
    }

    if (proj_arrs_close(&a, 1, p) != 0) {
        proj_arrs_free(&a, 1);
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    cls = proj_pipe_send(&t->pipe, proj_sql_name(PROJ_SQL_RELEASE),
                         PROJ_RELEASE_NPARAMS, p, NULL, NULL, err, errlen);
    proj_arrs_free(&a, 1);

    return cls;
}


/* item.upsert: one statement in the pipeline (merchant, item, variants,
 * addon groups, event), and the release of what waited for its skus. */
static cw_pg_class_t
proj_apply_item(proj_txn_t *t, proj_msg_t *pm, size_t index, json_t *cmd,
    char *err, size_t errlen)
{
    char               *s[4] = { NULL, NULL, NULL, NULL };
    json_t             *item;
    size_t              i;
    const char         *p[PROJ_ITEM_NPARAMS];
    cw_pg_class_t       cls = CW_PG_PERMANENT;
    proj_apply_item_t  *ev;

    item = json_object_get(cmd, "item");

    cls = proj_apply_item_refs(t, cmd, item, err, errlen);
    if (cls != CW_PG_OK || t->reject) {
        return cls;
    }

    ev = calloc(1, sizeof(*ev));
    s[0] = json_dumps(json_object_get(item, "tags"), JSON_COMPACT);
    s[1] = json_dumps(json_object_get(item, "attributes"), JSON_COMPACT);
    s[2] = json_dumps(json_object_get(item, "variants"), JSON_COMPACT);
    s[3] = json_dumps(json_object_get(item, "addon_groups"), JSON_COMPACT);

    if (ev == NULL || s[0] == NULL || s[1] == NULL || s[2] == NULL
        || s[3] == NULL || (ev->data = json_dumps(item, JSON_COMPACT)) == NULL
        || proj_msg_meta(pm) == NULL
        || proj_msg_event_id(pm, index, 0, ev->id) != 0)
    {
        snprintf(err, errlen, "out of memory");
        proj_apply_item_free(ev);
        cls = CW_PG_PERMANENT;
        goto done;
    }

    ev->item = proj_apply_str(item, "id");
    ev->msg = pm;
    cw_wall_ts(ev->ts, sizeof(ev->ts));

    p[PROJ_ITEM_ID] = ev->item;
    p[PROJ_ITEM_MERCHANT] = proj_apply_str(cmd, "merchant_id");
    p[PROJ_ITEM_SKU] = proj_apply_str(item, "sku");
    p[PROJ_ITEM_NAME] = proj_apply_str(item, "name");
    p[PROJ_ITEM_DESCRIPTION] = proj_apply_str(item, "description");
    p[PROJ_ITEM_BRAND] = proj_apply_str(item, "brand");
    p[PROJ_ITEM_TAGS] = s[0];
    p[PROJ_ITEM_ATTRIBUTES] = s[1];
    p[PROJ_ITEM_SOURCE] = proj_apply_str(cmd, "source");
    p[PROJ_ITEM_AS_OF] = proj_apply_str(cmd, "as_of");
    p[PROJ_ITEM_VARIANTS] = s[2];
    p[PROJ_ITEM_ADDONS] = s[3];
    p[PROJ_ITEM_EVENT_ID] = ev->id;
    p[PROJ_ITEM_META] = pm->meta;
    p[PROJ_ITEM_CORRELATION] = proj_msg_correlation(pm);
    p[PROJ_ITEM_CAUSATION] = pm->dedup;
    p[PROJ_ITEM_EVENT_DATA] = ev->data;

    cls = proj_pipe_send(&t->pipe, proj_sql_name(PROJ_SQL_ITEM),
                         PROJ_ITEM_NPARAMS, p, proj_apply_item_done, ev, err,
                         errlen);
    if (cls == CW_PG_OK) {
        cls = proj_apply_release(t, item, err, errlen);
    }

done:

    for (i = 0; i < 4; i++) {
        free(s[i]);
    }

    return cls;
}


/* price.set: queued for the batch's price statement (its store into the
 * pipeline, the first time it is seen). */
static cw_pg_class_t
proj_apply_price(proj_txn_t *t, proj_msg_t *pm, size_t index, json_t *cmd,
    char *err, size_t errlen)
{
    json_t            *price;
    cw_buf_t           data;
    const char        *store = proj_apply_str(cmd, "store_id");
    cw_pg_class_t      cls;
    proj_price_cmd_t  *pc;

    if (store != NULL) {
        cls = proj_apply_store(t, cmd, store, err, errlen);
        if (cls != CW_PG_OK) {
            return cls;
        }
    }

    pc = proj_queue_push(&t->price, sizeof(*pc));
    if (pc == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    price = json_object_get(cmd, "price");
    pc->sku = proj_apply_str(cmd, "sku");
    pc->store = store != NULL ? store : "";
    pc->currency = proj_apply_str(price, "currency");
    pc->as_of = proj_apply_str(cmd, "as_of");
    pc->amount = json_integer_value(json_object_get(price, "amount_minor"));
    pc->msg = pm;

    cw_buf_init(&data);
    proj_price_event_data(&data, pc->sku, store,
                          proj_apply_str(price, "amount"), pc->currency);

    if (data.oom || proj_msg_meta(pm) == NULL
        || proj_msg_event_id(pm, index, 0, pc->id) != 0)
    {
        cw_buf_free(&data);
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    pc->data = data.data;
    cw_wall_ts(pc->ts, sizeof(pc->ts));

    return CW_PG_OK;
}


/* The store or sku of a stock command: given, or resolved from its
 * vendor reference (into buf). */
static cw_pg_class_t
proj_apply_target(proj_txn_t *t, json_t *cmd, const char *field,
    const char *ref_field, char *buf, size_t size, const char **out,
    char *err, size_t errlen)
{
    json_t  *ref = json_object_get(cmd, ref_field);

    *out = proj_apply_str(cmd, field);
    if (*out != NULL || ref == NULL) {
        return CW_PG_OK;
    }

    *out = buf;

    return proj_apply_resolve(t, cmd, ref, NULL, buf, size, err, errlen);
}


/* An id resolved into buf, kept as long as the attempt (commands queued
 * point to it); an id given by the command is used as it is. NULL when
 * out of memory. */
static const char *
proj_apply_keep(proj_txn_t *t, const char *id, char *buf)
{
    json_t  *s;

    if (id != buf) {
        return id;
    }

    if (t->resolved == NULL) {
        t->resolved = json_array();
        if (t->resolved == NULL) {
            return NULL;
        }
    }

    s = json_string(buf);
    if (s == NULL || json_array_append_new(t->resolved, s) != 0) {
        return NULL;
    }

    return json_string_value(s);
}


/* stock.set and stock.adjust: queued for the batch's stock statement
 * (the store into the pipeline, the first time it is seen). */
static cw_pg_class_t
proj_apply_stock(proj_txn_t *t, proj_msg_t *pm, size_t index, json_t *cmd,
    int absolute, char *err, size_t errlen)
{
    char               sku[PROJ_ID_MAX + 1], store[PROJ_ID_MAX + 1];
    const char        *s_sku, *s_store;
    cw_pg_class_t      cls;
    proj_stock_cmd_t  *sc;

    cls = proj_apply_target(t, cmd, "sku", "sku_ref", sku, sizeof(sku),
                            &s_sku, err, errlen);
    if (cls == CW_PG_OK && !t->reject) {
        cls = proj_apply_target(t, cmd, "store_id", "store_ref", store,
                                sizeof(store), &s_store, err, errlen);
    }
    if (cls != CW_PG_OK || t->reject) {
        return cls;
    }

    s_sku = proj_apply_keep(t, s_sku, sku);
    s_store = proj_apply_keep(t, s_store, store);

    if (s_sku == NULL || s_store == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    cls = proj_apply_store(t, cmd, s_store, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    sc = proj_queue_push(&t->stock, sizeof(*sc));
    if (sc == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    sc->store = s_store;
    sc->sku = s_sku;
    sc->absolute = absolute;
    sc->as_of = proj_apply_str(cmd, "as_of");
    sc->as_of_us = -1;
    sc->reason = absolute ? "count" : proj_apply_str(cmd, "reason");
    sc->qty = json_integer_value(json_object_get(cmd, absolute ? "on_hand"
                                                               : "delta"));
    sc->msg = pm;

    if (proj_msg_meta(pm) == NULL
        || proj_msg_event_id(pm, index, 0, sc->id) != 0
        || proj_msg_event_id(pm, index, 1, sc->oid) != 0)
    {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    cw_wall_ts(sc->ts, sizeof(sc->ts));

    return CW_PG_OK;
}


cw_pg_class_t
proj_apply_flush(proj_txn_t *t, char *err, size_t errlen)
{
    cw_pg_class_t  cls;

    cls = proj_pipe_flush(&t->pipe, err, errlen);
    if (cls != CW_PG_OK || t->reject) {
        return cls;
    }

    cls = proj_price_write(t, err, errlen);
    if (cls != CW_PG_OK || t->reject) {
        return cls;
    }

    return proj_stock_write(t, err, errlen);
}


cw_pg_class_t
proj_apply_command(proj_txn_t *t, proj_msg_t *pm, size_t index, char *err,
    size_t errlen)
{
    int                 item, price, stock_pending, price_pending;
    json_t             *cmd = json_array_get(pm->cmds, index);
    const char         *type = proj_apply_str(cmd, "type");
    proj_stock_cmd_t   *sq = t->stock.items;
    proj_price_cmd_t   *pq = t->price.items;
    cw_pg_class_t       cls;

    item = strcmp(type, COMMERCE_CMD_ITEM_UPSERT) == 0;
    price = strcmp(type, COMMERCE_CMD_PRICE_SET) == 0;

    stock_pending = t->stock.n > 0 && sq[t->stock.n - 1].msg == pm;
    price_pending = t->price.n > 0 && pq[t->price.n - 1].msg == pm;

    if ((item && (stock_pending || price_pending))
        || (price && stock_pending))
    {
        cls = proj_apply_flush(t, err, errlen);
        if (cls != CW_PG_OK || t->reject) {
            return cls;
        }
    }

    if (item) {
        return proj_apply_item(t, pm, index, cmd, err, errlen);
    }

    if (price) {
        return proj_apply_price(t, pm, index, cmd, err, errlen);
    }

    return proj_apply_stock(t, pm, index, cmd,
                            strcmp(type, COMMERCE_CMD_STOCK_SET) == 0, err,
                            errlen);
}


cw_pg_class_t
proj_apply_dead(proj_txn_t *t, proj_msg_t *pm, const proj_error_t *why,
    char *err, size_t errlen)
{
    char            part[16], off[24];
    char           *body, *key = NULL;
    PGresult       *res = NULL;
    const char     *p[PROJ_DEAD_NPARAMS];
    cw_pg_class_t   cls = CW_PG_PERMANENT;
    cw_field_t      f[] = { CW_FSTR("reason", why->reason),
                            CW_FSTR("detail", why->detail),
                            CW_FSTR("topic", pm->topic),
                            CW_FINT("partition", pm->m->partition),
                            CW_FINT("offset", pm->m->offset) };

    snprintf(part, sizeof(part), "%d", (int) pm->m->partition);
    snprintf(off, sizeof(off), "%lld", (long long) pm->m->offset);

    body = proj_bytea_hex(pm->m->payload, pm->m->len);
    if (pm->m->key != NULL) {
        key = proj_bytea_hex(pm->m->key, pm->m->key_len);
    }

    if (body == NULL || (pm->m->key != NULL && key == NULL)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    p[PROJ_DEAD_TOPIC] = pm->topic;
    p[PROJ_DEAD_PARTITION] = part;
    p[PROJ_DEAD_OFFSET] = off;
    p[PROJ_DEAD_KEY] = key;
    p[PROJ_DEAD_HEADERS] = pm->headers_text;
    p[PROJ_DEAD_BODY] = body;
    p[PROJ_DEAD_SOURCE] = pm->source;
    p[PROJ_DEAD_DELIVERY_ID] = pm->delivery_id;
    p[PROJ_DEAD_REASON] = why->reason;
    p[PROJ_DEAD_DETAIL] = why->detail;
    p[PROJ_DEAD_DLQ_TOPIC] = t->st->dlq_topic;
    p[PROJ_DEAD_WAITING] = pm->waiting;

    cls = proj_apply_exec(t, PROJ_SQL_DEAD, PROJ_DEAD_NPARAMS, p, &res, err,
                          errlen);
    if (cls != CW_PG_OK) {
        goto done;
    }

    PQclear(res);
    t->fx->dead++;
    cw_log_kv(CW_LOG_WARN, f, 5, "message dead-lettered");

done:

    free(body);
    free(key);

    return cls;
}
