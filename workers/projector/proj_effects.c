/*
 * proj_effects: the outbox rows of an attempt (see proj_effects.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce_contract.h"
#include "proj.h"
#include "proj_effects.h"
#include "proj_sql.h"


int
proj_effects_reset(proj_effects_t *fx)
{
    json_decref(fx->items);
    json_decref(fx->stocks);
    json_decref(fx->skus);
    fx->items = json_object();
    fx->stocks = json_object();
    fx->skus = json_object();
    fx->oom = 0;

    cw_buf_reset(&fx->frames);
    cw_buf_reset(&fx->values);
    fx->nframes = 0;

    fx->applied = fx->duplicates = fx->skipped = fx->dead = 0;
    fx->events = fx->stale = 0;

    free(fx->keys_json);
    fx->keys_json = NULL;
    fx->keys_id = 0;

    return fx->items != NULL && fx->stocks != NULL && fx->skus != NULL
           ? 0 : -1;
}


void
proj_effects_free(proj_effects_t *fx)
{
    json_decref(fx->items);
    json_decref(fx->stocks);
    json_decref(fx->skus);
    cw_buf_free(&fx->frames);
    cw_buf_free(&fx->values);
    cw_buf_free(&fx->scratch);
    free(fx->keys_json);
    memset(fx, 0, sizeof(*fx));
}


void
proj_effects_mark(const proj_effects_t *fx, proj_effects_mark_t *mark)
{
    mark->frames = fx->frames.len;
    mark->nframes = fx->nframes;
    mark->values = fx->values.len;
    mark->events = fx->events;
    mark->stale = fx->stale;
}


void
proj_effects_rollback(proj_effects_t *fx, const proj_effects_mark_t *mark)
{
    fx->frames.len = mark->frames;
    fx->nframes = mark->nframes;
    fx->values.len = mark->values;
    if (fx->values.data != NULL) {
        fx->values.data[fx->values.len] = '\0';
    }
    fx->events = mark->events;
    fx->stale = mark->stale;
}


void
proj_effects_event(proj_effects_t *fx, proj_msg_t *msg,
    const proj_event_t *ev)
{
    proj_event_frame(&fx->frames, &fx->scratch, msg, ev);
    fx->nframes++;
    fx->events++;
}


void
proj_effects_item(proj_effects_t *fx, const char *id)
{
    if (json_object_set_new(fx->items, id, json_true()) != 0) {
        fx->oom = 1;
    }
}


void
proj_effects_stock(proj_effects_t *fx, const char *store, const char *sku)
{
    char  k[2 * PROJ_ID_MAX + 2];

    snprintf(k, sizeof(k), "%s\n%s", store, sku);

    if (json_object_set_new(fx->stocks, k, json_pack("[s, s]", store, sku))
        != 0)
    {
        fx->oom = 1;
    }
}


void
proj_effects_sku(proj_effects_t *fx, const char *sku)
{
    if (json_object_set_new(fx->skus, sku, json_true()) != 0) {
        fx->oom = 1;
    }
}


void
proj_effects_stock_value(proj_effects_t *fx, const char *store,
    const char *sku, long long version, long long price_version,
    const char *value)
{
    cw_buf_t  *b = &fx->values;

    cw_buf_puts(b, b->len > 0 ? ",[\"" COMMERCE_RK_STOCK
                              : "[\"" COMMERCE_RK_STOCK);
    cw_buf_json_escape(b, store, strlen(store));
    cw_buf_puts(b, "\",");
    cw_buf_json_str(b, sku);
    cw_buf_printf(b, ",%lld,", version);
    cw_buf_json_str(b, value);
    cw_buf_printf(b, ",%lld]", price_version);
}


/* The JSON array of a set's keys (items) or values (stocks). */
static void
proj_effects_set(cw_buf_t *b, json_t *set, int values)
{
    char        *s;
    json_t      *a, *v;
    const char  *k;

    a = json_array();

    json_object_foreach(set, k, v) {
        json_array_append_new(a, values ? json_incref(v) : json_string(k));
    }

    s = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;
    if (s == NULL) {
        b->oom = 1;
    } else {
        cw_buf_puts(b, s);
    }

    free(s);
    json_decref(a);
}


static cw_pg_class_t
proj_effects_keys_row(proj_effects_t *fx, cw_pg_t *pg, char *err,
    size_t errlen)
{
    cw_buf_t        b;
    PGresult       *res;
    const char     *p[PROJ_KEYS_ROW_NPARAMS];
    cw_pg_class_t   cls;

    if (json_object_size(fx->items) == 0
        && json_object_size(fx->stocks) == 0
        && json_object_size(fx->skus) == 0 && fx->values.len == 0)
    {
        return CW_PG_OK;
    }

    cw_buf_init(&b);
    cw_buf_puts(&b, "{\"items\":");
    proj_effects_set(&b, fx->items, 0);
    cw_buf_puts(&b, ",\"stocks\":");
    proj_effects_set(&b, fx->stocks, 1);
    cw_buf_puts(&b, ",\"skus\":");
    proj_effects_set(&b, fx->skus, 0);
    cw_buf_puts(&b, ",\"values\":[");
    cw_buf_append(&b, fx->values.data != NULL ? fx->values.data : "",
                  fx->values.len);
    cw_buf_puts(&b, "]}");

    if (b.oom || fx->values.oom || fx->oom) {
        cw_buf_free(&b);
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    p[PROJ_KEYS_ROW_PAYLOAD] = b.data;
    res = cw_pg_execp(pg, proj_sql_name(PROJ_SQL_KEYS_ROW),
                      PROJ_KEYS_ROW_NPARAMS, p, &cls, err, errlen);
    if (res == NULL) {
        cw_buf_free(&b);
        return cls;
    }

    fx->keys_id = atoll(PQgetvalue(res, 0, PROJ_KEYS_ROW_ID));
    fx->keys_json = b.data;
    PQclear(res);

    return CW_PG_OK;
}


cw_pg_class_t
proj_effects_write(proj_effects_t *fx, cw_pg_t *pg, const char *events_topic,
    char *err, size_t errlen)
{
    int             len[PROJ_EVENTS_ROW_NPARAMS], fmt[PROJ_EVENTS_ROW_NPARAMS];
    PGresult       *res;
    const char     *p[PROJ_EVENTS_ROW_NPARAMS];
    cw_pg_class_t   cls;

    if (fx->nframes > 0) {
        if (fx->frames.oom) {
            snprintf(err, errlen, "out of memory");
            return CW_PG_PERMANENT;
        }

        p[PROJ_EVENTS_ROW_TOPIC] = events_topic;
        len[PROJ_EVENTS_ROW_TOPIC] = 0;
        fmt[PROJ_EVENTS_ROW_TOPIC] = 0;
        p[PROJ_EVENTS_ROW_FRAMES] = fx->frames.data;
        len[PROJ_EVENTS_ROW_FRAMES] = (int) fx->frames.len;
        fmt[PROJ_EVENTS_ROW_FRAMES] = 1;

        res = cw_pg_execpb(pg, proj_sql_name(PROJ_SQL_EVENTS_ROW),
                           PROJ_EVENTS_ROW_NPARAMS, p, len, fmt, &cls, err,
                           errlen);
        if (res == NULL) {
            return cls;
        }
        PQclear(res);
    }

    return proj_effects_keys_row(fx, pg, err, errlen);
}


long long
proj_effects_take_keys(proj_effects_t *fx, char **json)
{
    long long  id = fx->keys_id;

    *json = fx->keys_json;
    fx->keys_json = NULL;
    fx->keys_id = 0;

    return id;
}
