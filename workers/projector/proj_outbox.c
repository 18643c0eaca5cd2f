/*
 * proj_outbox: the outbox drained page by page into a sink (see
 * proj_outbox.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_buf.h"
#include "cw_log.h"
#include "cw_time.h"
#include "proj_outbox.h"


/* At most this many payload bytes per drain: a 'kafka_batch' row holds a
 * whole batch of events. */
#define PROJ_OUTBOX_BYTES  (16 * 1024 * 1024)


struct proj_outbox_s {
    cw_pg_t                *pg;
    proj_outbox_sink_t      sink;
    int                     page;
    proj_outbox_metrics_t   m;

    /* Most drains start after the highest id done so far; one a second
     * starts from the bottom (see proj_outbox.h). */
    long long               after;
    int64_t                 next_full;
};

/* One drain: rows done, the highest id done, and the stage trace of
 * the debug log (monotonic ms): page selected, work completed. */
typedef struct {
    proj_outbox_t  *o;
    int             done;
    long long       last;
    int64_t         t_select;
    int64_t         t_work;
} proj_drain_t;


proj_outbox_t *
proj_outbox_new(cw_pg_t *pg, const proj_outbox_sink_t *sink, int page,
    const proj_outbox_metrics_t *metrics)
{
    proj_outbox_t  *o;

    o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return NULL;
    }

    o->pg = pg;
    o->sink = *sink;
    o->page = page;
    o->m = *metrics;

    return o;
}


void
proj_outbox_free(proj_outbox_t *o)
{
    free(o);
}


/* The ids of the next page, locked, up to the byte budget (at least one
 * row), as a bigint[] literal in ids. Returns the class; *n the rows. */
static cw_pg_class_t
proj_outbox_page(proj_outbox_t *o, cw_buf_t *ids, int *n, char *err,
    size_t errlen)
{
    int             i, rows;
    char            limit[16], after[24];
    size_t          bytes = 0;
    PGresult       *res;
    const char     *p[3];
    cw_pg_class_t   cls;

    snprintf(limit, sizeof(limit), "%d", o->page);
    snprintf(after, sizeof(after), "%lld", o->after);
    p[0] = limit;
    p[1] = o->sink.kinds;
    p[2] = after;

    res = cw_pg_exec(o->pg, "SELECT id, octet_length(payload) FROM outbox"
                     " WHERE kind = ANY($2::text[]) AND id > $3 ORDER BY id"
                     " LIMIT $1 FOR UPDATE SKIP LOCKED", 3, p, &cls, err,
                     errlen);
    if (res == NULL) {
        return cls;
    }

    rows = PQntuples(res);
    cw_gauge_set(o->m.pending, rows);

    cw_buf_putc(ids, '{');
    for (i = 0; i < rows && (i == 0 || bytes < PROJ_OUTBOX_BYTES); i++) {
        cw_buf_printf(ids, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
        bytes += (size_t) atoll(PQgetvalue(res, i, 1));
    }
    cw_buf_putc(ids, '}');
    PQclear(res);

    *n = i;

    if (ids->oom) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_TRANSIENT;
    }

    return CW_PG_OK;
}


/* Hands every row of the page to the sink, then has it finish. */
static int
proj_outbox_work(proj_drain_t *d, PGresult *res, char *err, size_t errlen)
{
    int                 i, rc = 0;
    char                ignore[256];
    proj_outbox_t      *o = d->o;
    proj_outbox_row_t   r;

    for (i = 0; i < PQntuples(res) && rc == 0; i++) {
        d->last = atoll(PQgetvalue(res, i, 0));
        r.kind = PQgetvalue(res, i, 1);
        r.topic = PQgetvalue(res, i, 2);
        r.key = PQgetisnull(res, i, 3)
                ? NULL : (const unsigned char *) PQgetvalue(res, i, 3);
        r.klen = r.key != NULL ? (size_t) PQgetlength(res, i, 3) : 0;
        r.headers = PQgetvalue(res, i, 4);
        r.payload = (const unsigned char *) PQgetvalue(res, i, 5);
        r.plen = (size_t) PQgetlength(res, i, 5);
        r.rm_key = PQgetvalue(res, i, 6);
        r.rm_field = PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7);
        r.rm_version = PQgetvalue(res, i, 8);

        rc = o->sink.take(o->sink.ud, o->pg, &r, err, errlen);
    }

    /* What was queued is completed even when a later row failed, so
     * that the sink's connection stays in step. */
    if (o->sink.finish(o->sink.ud, rc != 0, rc ? ignore : err,
                       rc ? 0 : errlen) != 0)
    {
        rc = -1;
    }

    return rc;
}


/* Losing a delete in a crash only does its rows' work again (see
 * proj_outbox.h), so a transaction that deletes rows need not wait for
 * the disk to commit. */
static cw_pg_class_t
proj_outbox_lazy_commit(cw_pg_t *pg, char *err, size_t errlen)
{
    return cw_pg_command(pg, "SET LOCAL synchronous_commit = off", err,
                         errlen);
}


/* Deletes the rows ids (a bigint[] literal). */
static cw_pg_class_t
proj_outbox_delete(cw_pg_t *pg, const char *ids, char *err, size_t errlen)
{
    PGresult       *res;
    const char     *p[1];
    cw_pg_class_t   cls;

    p[0] = ids;
    res = cw_pg_exec(pg, "DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                     1, p, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }

    PQclear(res);

    return CW_PG_OK;
}


static cw_pg_class_t
proj_outbox_txn(cw_pg_t *pg, void *ud, char *err, size_t errlen)
{
    int              n = 0, fmt[1] = { 0 };
    cw_buf_t         ids;
    PGresult        *res;
    const char      *p[1];
    proj_drain_t    *d = ud;
    cw_pg_class_t    cls;

    cls = proj_outbox_lazy_commit(pg, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    cw_buf_init(&ids);

    cls = proj_outbox_page(d->o, &ids, &n, err, errlen);
    d->done = n;
    if (cls != CW_PG_OK || n == 0) {
        cw_buf_free(&ids);
        return cls;
    }

    p[0] = ids.data;
    res = cw_pg_execb(pg, "SELECT id::text, kind, topic, msg_key,"
                      " headers::text, payload, rm_key, rm_field,"
                      " rm_version::text FROM outbox"
                      " WHERE id = ANY($1::bigint[]) ORDER BY id", 1, p,
                      NULL, fmt, 1, &cls, err, errlen);
    if (res == NULL) {
        cw_buf_free(&ids);
        return cls;
    }

    d->t_select = cw_now_ms();
    n = proj_outbox_work(d, res, err, errlen);
    d->t_work = cw_now_ms();
    PQclear(res);

    cls = n != 0 ? CW_PG_TRANSIENT : proj_outbox_delete(pg, ids.data, err,
                                                         errlen);
    cw_buf_free(&ids);

    return cls;
}


int
proj_outbox_drain(proj_outbox_t *o, char *err, size_t errlen)
{
    int64_t        t0;
    proj_drain_t   d;
    cw_pg_class_t  cls;

    if (cw_now_ms() >= o->next_full) {
        o->after = 0;
        o->next_full = cw_now_ms() + 1000;
    }

    memset(&d, 0, sizeof(d));
    d.o = o;
    t0 = cw_now_ms();

    cls = cw_pg_txn(o->pg, proj_outbox_txn, &d, 1, err, errlen);
    if (cls != CW_PG_OK) {
        cw_counter_inc(o->m.failures);
        return -1;
    }

    if (d.last > o->after) {
        o->after = d.last;
    }

    if (d.done > 0 && cw_log_enabled(CW_LOG_DEBUG)) {
        cw_field_t  f[] = { CW_FSTR("kinds", o->sink.kinds),
                            CW_FINT("rows", d.done),
                            CW_FINT("select_ms", d.t_select - t0),
                            CW_FINT("work_ms", d.t_work - t0),
                            CW_FINT("commit_ms", cw_now_ms() - t0) };

        cw_log_kv(CW_LOG_DEBUG, f, 5, "outbox drained");
    }

    return d.done;
}


/* Rows handed over: those taken, their work and the delete. */
typedef struct {
    const char            *ids;
    proj_outbox_work_pt    work;
    void                  *ud;
    int                    taken;
} proj_handed_txn_t;


static cw_pg_class_t
proj_outbox_handed_txn(cw_pg_t *pg, void *ud, char *err, size_t errlen)
{
    int                 i, n;
    cw_buf_t            ids;
    PGresult           *res;
    long long          *taken;
    const char         *p[1];
    cw_pg_class_t       cls;
    proj_handed_txn_t  *h = ud;

    cls = proj_outbox_lazy_commit(pg, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    p[0] = h->ids;
    res = cw_pg_exec(pg, "SELECT id FROM outbox WHERE id = ANY($1::bigint[])"
                     " ORDER BY id FOR UPDATE SKIP LOCKED", 1, p, &cls, err,
                     errlen);
    if (res == NULL) {
        return cls;
    }

    n = PQntuples(res);
    h->taken = n;
    taken = calloc((size_t) n + 1, sizeof(*taken));
    cw_buf_init(&ids);
    cw_buf_putc(&ids, '{');
    for (i = 0; taken != NULL && i < n; i++) {
        taken[i] = atoll(PQgetvalue(res, i, 0));
        cw_buf_printf(&ids, "%s%lld", i ? "," : "", taken[i]);
    }
    cw_buf_putc(&ids, '}');
    PQclear(res);

    if (taken == NULL || ids.oom) {
        snprintf(err, errlen, "out of memory");
        cls = CW_PG_TRANSIENT;

    } else if (n > 0) {
        cls = h->work(h->ud, taken, (size_t) n, err, errlen) != 0
              ? CW_PG_TRANSIENT : proj_outbox_delete(pg, ids.data, err,
                                                     errlen);
    }

    free(taken);
    cw_buf_free(&ids);

    return cls;
}


int
proj_outbox_handed(proj_outbox_t *o, const char *ids,
    proj_outbox_work_pt work, void *ud, char *err, size_t errlen)
{
    proj_handed_txn_t  h = { ids, work, ud, 0 };

    return cw_pg_txn(o->pg, proj_outbox_handed_txn, &h, 1, err, errlen)
           == CW_PG_OK ? h.taken : -1;
}
