/*
 * proj_pipe: statements pipelined on one connection (see proj_pipe.h).
 */

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "proj_pipe.h"


void
proj_pipe_init(proj_pipe_t *pp, PGconn *conn, void *ctx)
{
    pp->conn = conn;
    pp->ctx = ctx;
    pp->on = 0;
    pp->n = 0;
}


static void
proj_pipe_error(proj_pipe_t *pp, const PGresult *res, char *err,
    size_t errlen)
{
    const char  *msg = res != NULL ? PQresultErrorMessage(res) : "";
    const char  *state = res != NULL
                         ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (msg == NULL || msg[0] == '\0') {
        msg = PQerrorMessage(pp->conn);
    }

    snprintf(err, errlen, "pipeline: [%s] %.*s", state ? state : "-",
             (int) strcspn(msg, "\n"), msg);
}


/* The done function of entry i, with a result to use or NULL. */
static cw_pg_class_t
proj_pipe_done(proj_pipe_t *pp, size_t i, PGresult *res, char *err,
    size_t errlen)
{
    proj_pipe_entry_t  *e = &pp->q[i];

    if (e->done == NULL) {
        return CW_PG_OK;
    }

    return e->done(pp->ctx, e->arg, res, err, errlen);
}


/* Reads the result of entry i and the end of its query. Returns the
 * class of a failure of the pipeline itself (the rest is not read then),
 * else CW_PG_OK with *cls the outcome so far. */
static cw_pg_class_t
proj_pipe_read(proj_pipe_t *pp, size_t i, cw_pg_class_t *cls, char *err,
    size_t errlen)
{
    PGresult        *res;
    ExecStatusType   rs;

    res = PQgetResult(pp->conn);
    if (res == NULL) {
        proj_pipe_error(pp, NULL, err, errlen);
        return CW_PG_TRANSIENT;
    }

    rs = PQresultStatus(res);

    if ((rs == PGRES_TUPLES_OK || rs == PGRES_COMMAND_OK)
        && *cls == CW_PG_OK)
    {
        *cls = proj_pipe_done(pp, i, res, err, errlen);

    } else {
        proj_pipe_done(pp, i, NULL, NULL, 0);

        if (rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK
            && rs != PGRES_PIPELINE_ABORTED && *cls == CW_PG_OK)
        {
            *cls = cw_pg_classify(pp->conn, res);
            if (*cls == CW_PG_OK) {
                *cls = CW_PG_PERMANENT;
            }
            proj_pipe_error(pp, res, err, errlen);
        }
    }

    PQclear(res);

    res = PQgetResult(pp->conn);            /* the end of this query */
    if (res != NULL) {
        PQclear(res);
        snprintf(err, errlen, "pipeline: unexpected extra result");
        return CW_PG_TRANSIENT;
    }

    return CW_PG_OK;
}


cw_pg_class_t
proj_pipe_flush(proj_pipe_t *pp, char *err, size_t errlen)
{
    size_t          i = 0;
    PGresult       *res;
    cw_pg_class_t   cls = CW_PG_OK, broken = CW_PG_OK;

    if (!pp->on) {
        return CW_PG_OK;
    }

    if (PQpipelineSync(pp->conn) != 1) {
        proj_pipe_error(pp, NULL, err, errlen);
        broken = CW_PG_TRANSIENT;
    }

    for ( ; i < pp->n && broken == CW_PG_OK; i++) {
        broken = proj_pipe_read(pp, i, &cls, err, errlen);
    }

    if (broken == CW_PG_OK) {
        res = PQgetResult(pp->conn);
        if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
            snprintf(err, errlen, "pipeline: no sync result");
            broken = CW_PG_TRANSIENT;
        }
        PQclear(res);
    }

    /* What was not read is released. */
    for ( ; i < pp->n; i++) {
        proj_pipe_done(pp, i, NULL, NULL, 0);
    }

    if (PQexitPipelineMode(pp->conn) != 1) {
        /* Out of step with the server: make the connection fail so that
         * the next call reconnects and prepares again. */
        shutdown(PQsocket(pp->conn), SHUT_RDWR);
        if (broken == CW_PG_OK && cls == CW_PG_OK) {
            snprintf(err, errlen, "pipeline: cannot leave pipeline mode");
            broken = CW_PG_TRANSIENT;
        }
    }

    pp->on = 0;
    pp->n = 0;

    return broken != CW_PG_OK ? broken : cls;
}


cw_pg_class_t
proj_pipe_send(proj_pipe_t *pp, const char *stmt, int n,
    const char *const *p, proj_pipe_done_pt done, void *arg, char *err,
    size_t errlen)
{
    cw_pg_class_t  cls = CW_PG_OK;

    if (pp->n == PROJ_PIPE_MAX) {
        cls = proj_pipe_flush(pp, err, errlen);
    }

    if (cls == CW_PG_OK && !pp->on) {
        if (PQenterPipelineMode(pp->conn) != 1) {
            proj_pipe_error(pp, NULL, err, errlen);
            cls = CW_PG_TRANSIENT;
        } else {
            pp->on = 1;
        }
    }

    if (cls == CW_PG_OK
        && PQsendQueryPrepared(pp->conn, stmt, n, p, NULL, NULL, 0) != 1)
    {
        proj_pipe_error(pp, NULL, err, errlen);
        cls = CW_PG_TRANSIENT;
    }

    if (cls != CW_PG_OK) {
        if (done != NULL) {
            done(pp->ctx, arg, NULL, NULL, 0);
        }
        return cls;
    }

    pp->q[pp->n].done = done;
    pp->q[pp->n].arg = arg;
    pp->n++;

    return CW_PG_OK;
}
