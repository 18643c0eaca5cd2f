/*
 * proj_pipe: prepared statements sent in libpq's pipeline mode, so that
 * a batch's statements go to the server without a round trip each, and
 * their results are read in order when the pipeline is flushed.
 *
 * Each statement sent may have a done function: it is called once, in
 * order, when the pipeline is flushed, with the statement's result, or
 * with NULL when there is none to use (a statement before it failed, or
 * the connection did): then it only releases arg. Its return value
 * counts only for a result.
 *
 * Use:
 *
 *   proj_pipe_init(&pp, cw_pg_conn(pg), ctx);
 *   proj_pipe_send(&pp, name, n, params, done, arg, err, errlen);
 *   ...
 *   cls = proj_pipe_flush(&pp, err, errlen);   every done has run; the
 *                                              connection is back out of
 *                                              pipeline mode
 */

#ifndef PROJ_PIPE_H
#define PROJ_PIPE_H

#include "cw_pg.h"


#define PROJ_PIPE_MAX  256


typedef cw_pg_class_t (*proj_pipe_done_pt)(void *ctx, void *arg,
    PGresult *res, char *err, size_t errlen);

typedef struct {
    proj_pipe_done_pt   done;
    void               *arg;
} proj_pipe_entry_t;

typedef struct {
    PGconn             *conn;
    void               *ctx;
    int                 on;            /* in pipeline mode */
    size_t              n;
    proj_pipe_entry_t   q[PROJ_PIPE_MAX];
} proj_pipe_t;


void proj_pipe_init(proj_pipe_t *pp, PGconn *conn, void *ctx);

/* Sends a statement (flushing first when PROJ_PIPE_MAX are waiting).
 * When this fails, done has been called with NULL. */
cw_pg_class_t proj_pipe_send(proj_pipe_t *pp, const char *stmt, int n,
    const char *const *p, proj_pipe_done_pt done, void *arg, char *err,
    size_t errlen);

/* Syncs, reads every result in order and leaves pipeline mode: CW_PG_OK,
 * or the class of the first failure (with err). */
cw_pg_class_t proj_pipe_flush(proj_pipe_t *pp, char *err, size_t errlen);


#endif /* PROJ_PIPE_H */
