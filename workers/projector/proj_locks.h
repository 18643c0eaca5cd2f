/*
 * proj_locks: the sku locks that order price and stock writers across
 * projectors.
 *
 * A stock value shows the level and the sku's effective price, and is
 * versioned by their composition (rm_stock_values): a price change no
 * longer writes the stock rows it shows in. What keeps a value rendered
 * by a stock batch from missing a price another projector commits
 * meanwhile is a lock per sku: a batch that writes stock of a sku holds
 * it shared, one that writes its price holds it exclusively, from the
 * start of the attempt to its commit, so a price committed before the
 * stock batch read it is seen, and one committed after renders the
 * values again from the committed level.
 *
 * The locks are PostgreSQL transaction advisory locks, one per bucket
 * of skus (a hash of the sku, PROJ_LOCK_BUCKETS of them, in the class
 * PROJ_LOCK_CLASS), all the batch's taken by one statement, in bucket
 * order: whatever two batches take, they take it in the same order, so
 * they wait for each other but never deadlock. The fast way takes them
 * when it first writes prices or stock (the claim and the item upserts
 * before run meanwhile, unordered by them: they lock nothing a price or
 * stock write of another partition takes); the careful way at its start,
 * before its savepoints (a savepoint rolled back would release them).
 * The skus known then are those the commands name; one only known later
 * (resolved from a vendor reference) is tried without waiting when its
 * commands are written, and if it is taken the attempt fails as
 * transient, to take it in order the next time.
 *
 * Use:
 *
 *   proj_locks_want(&b->locks, b->msgs, b->n);      at each attempt
 *   proj_locks_take(&b->locks, pg, err, errlen);    careful: at once
 *   ...
 *   proj_locks_cover(&b->locks, pg, &cmds[0].sku, n, sizeof(cmds[0]),
 *                    PROJ_LOCK_EXCLUSIVE, err, errlen);
 */

#ifndef PROJ_LOCKS_H
#define PROJ_LOCKS_H

#include "cw_pg.h"
#include "proj_msg.h"


#define PROJ_LOCK_BUCKETS  1024
#define PROJ_LOCK_CLASS    0x63537446      /* "cStF" */

enum { PROJ_LOCK_NONE = 0, PROJ_LOCK_SHARED, PROJ_LOCK_EXCLUSIVE };


typedef struct {
    unsigned char   want[PROJ_LOCK_BUCKETS];  /* the batch's, learned too */
    unsigned char   held[PROJ_LOCK_BUCKETS];  /* taken by this attempt */
    int             taken;                    /* want taken, this attempt */
} proj_locks_t;


/* The bucket of a sku. */
unsigned proj_lock_bucket(const char *sku);

/* Starts an attempt: adds the buckets of the price and stock commands of
 * the messages that are to be applied (not fenced, valid) to l->want;
 * none is held. */
void proj_locks_want(proj_locks_t *l, const proj_msg_t *msgs, size_t n);

/* Takes l->want in bucket order; l->held becomes l->want. */
cw_pg_class_t proj_locks_take(proj_locks_t *l, cw_pg_t *pg, char *err,
    size_t errlen);

/* Makes sure the buckets of n skus are held in mode: the first at sku,
 * the next stride bytes further (a field of an array of commands).
 * l->want is taken first if it was not yet. Those still not held are
 * learned (taken in order by the next attempt) and tried now:
 * CW_PG_TRANSIENT if one is busy. */
cw_pg_class_t proj_locks_cover(proj_locks_t *l, cw_pg_t *pg,
    const char *const *sku, size_t n, size_t stride, int mode, char *err,
    size_t errlen);


#endif /* PROJ_LOCKS_H */
