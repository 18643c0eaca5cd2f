/*
 * proj_archive: a batch's messages archived beside it (proj_archive.h).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cw_buf.h"
#include "proj_archive.h"
#include "proj_sql.h"


#define PROJ_ARCHIVE_BYTEA  17


int
proj_archive_init(proj_archive_t *arc, const proj_msg_t *msgs, size_t n)
{
    size_t                     i;
    int64_t                    kts;
    cw_buf_t                   j;
    const proj_msg_t          *pm;
    rd_kafka_timestamp_type_t  tstype;

    cw_pg_array_init(&arc->bodies, PROJ_ARCHIVE_BYTEA);
    cw_pg_array_init(&arc->keys, PROJ_ARCHIVE_BYTEA);
    arc->records = NULL;
    arc->archived = 0;

    cw_buf_init(&j);
    cw_buf_putc(&j, '[');

    for (i = 0; i < n; i++) {
        pm = &msgs[i];

        kts = rd_kafka_message_timestamp(pm->m, &tstype);

        cw_buf_printf(&j, "%s{\"topic\":", j.len > 1 ? "," : "");
        cw_buf_json_str(&j, pm->topic);
        cw_buf_printf(&j, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64
                      ",\"kafka_ts\":%" PRId64, pm->m->partition,
                      pm->m->offset, kts >= 0 ? kts : 0);

        cw_buf_puts(&j, ",\"headers\":");
        cw_buf_puts(&j, pm->headers_text != NULL ? pm->headers_text : "[]");

        if (pm->source != NULL) {
            cw_buf_puts(&j, ",\"source\":");
            cw_buf_json_str(&j, pm->source);
        }
        if (pm->delivery_id != NULL) {
            cw_buf_puts(&j, ",\"delivery_id\":");
            cw_buf_json_str(&j, pm->delivery_id);
        }
        cw_buf_putc(&j, '}');

        cw_pg_array_add(&arc->bodies,
                        pm->m->payload != NULL ? pm->m->payload : "",
                        pm->m->len);
        cw_pg_array_add(&arc->keys, pm->m->key, pm->m->key_len);
    }

    cw_buf_putc(&j, ']');

    if (j.oom || cw_pg_array_finish(&arc->bodies) != 0
        || cw_pg_array_finish(&arc->keys) != 0)
    {
        cw_buf_free(&j);
        return -1;
    }

    arc->records = j.data;

    return 0;
}


void
proj_archive_free(proj_archive_t *arc)
{
    free(arc->records);
    arc->records = NULL;
    cw_pg_array_free(&arc->bodies);
    cw_pg_array_free(&arc->keys);
}


/* The archive's transaction, on the side connection. It need not wait
 * for the disk: the batch transaction commits after it, so its commit
 * record comes later in the WAL, and the batch's commit waits until the
 * WAL is on disk up to that record. */
static cw_pg_class_t
proj_archive_txn(cw_pg_t *pg, void *ud, char *err, size_t errlen)
{
    int              len[PROJ_ARCHIVE_NPARAMS];
    int              fmt[PROJ_ARCHIVE_NPARAMS] = { 0, 1, 1 };
    PGresult        *res;
    const char      *p[PROJ_ARCHIVE_NPARAMS];
    proj_archive_t  *arc = ud;
    cw_pg_class_t    cls;

    cls = cw_pg_command(pg, "SET LOCAL synchronous_commit = off", err,
                        errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    p[PROJ_ARCHIVE_RECORDS] = arc->records;
    p[PROJ_ARCHIVE_BODIES] = arc->bodies.buf.data;
    p[PROJ_ARCHIVE_KEYS] = arc->keys.buf.data;
    len[PROJ_ARCHIVE_RECORDS] = 0;
    len[PROJ_ARCHIVE_BODIES] = (int) arc->bodies.buf.len;
    len[PROJ_ARCHIVE_KEYS] = (int) arc->keys.buf.len;

    res = cw_pg_execpb(pg, proj_sql_name(PROJ_SQL_ARCHIVE),
                       PROJ_ARCHIVE_NPARAMS, p, len, fmt, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }
    PQclear(res);

    return CW_PG_OK;
}


void
proj_archive_start(proj_archive_t *arc, cw_pg_side_t *side)
{
    if (!arc->archived && !cw_pg_side_pending(side)) {
        cw_pg_side_run(side, proj_archive_txn, arc);
    }
}


cw_pg_class_t
proj_archive_wait(proj_archive_t *arc, cw_pg_side_t *side, char *err,
    size_t errlen)
{
    char            why[512];
    cw_pg_class_t   cls;

    if (arc->archived) {
        return CW_PG_OK;
    }

    proj_archive_start(arc, side);

    cls = cw_pg_side_wait(side, why, sizeof(why));
    if (cls != CW_PG_OK) {
        snprintf(err, errlen, "archive: %s", why);
        return cls;
    }

    arc->archived = 1;

    return CW_PG_OK;
}
