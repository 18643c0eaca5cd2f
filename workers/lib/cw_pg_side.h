/*
 * cw_pg_side: a transaction run on a second connection, by a thread of
 * its own, while the caller goes on with its own connection.
 *
 *   side = cw_pg_side_start(pg2);             owns pg2 from now on
 *   cw_pg_side_run(side, fn, ud);             returns at once
 *   ... the caller's own statements ...
 *   cls = cw_pg_side_wait(side, err, errlen); fn's transaction, done
 *
 * fn runs as the body of cw_pg_txn (BEGIN; fn; COMMIT, one attempt): a
 * transient failure is returned to the caller, who decides whether to
 * run it again. ud, and everything fn reads through it, must stay valid
 * until cw_pg_side_wait returns. One run at a time.
 */

#ifndef CW_PG_SIDE_H
#define CW_PG_SIDE_H

#include "cw_pg.h"

typedef struct cw_pg_side_s  cw_pg_side_t;

/* Starts the thread; pg is taken over (freed by cw_pg_side_stop), also
 * when this fails (NULL). */
cw_pg_side_t *cw_pg_side_start(cw_pg_t *pg);

/* Hands fn to the thread. Returns 0, or -1 if a run is still pending. */
int cw_pg_side_run(cw_pg_side_t *side, cw_pg_txn_fn fn, void *ud);

/* Whether a run was handed over and not yet waited for. */
int cw_pg_side_pending(const cw_pg_side_t *side);

/* Waits for the pending run: the class of its transaction's outcome
 * (CW_PG_OK once committed), err set otherwise. Without a pending run,
 * CW_PG_OK at once. */
cw_pg_class_t cw_pg_side_wait(cw_pg_side_t *side, char *err,
    size_t errlen);

/* Waits for a pending run, stops the thread, frees everything. */
void cw_pg_side_stop(cw_pg_side_t *side);

#endif /* CW_PG_SIDE_H */
