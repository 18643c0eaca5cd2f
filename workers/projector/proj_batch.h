/*
 * proj_batch: the types that the files of the store share, private to
 * them (main.c sees proj_store.h only).
 *
 *   proj_store_t   the store: connections, settings, metrics, the
 *                  stores known to exist, the batch whose COMMIT is in
 *                  flight, the effects of the attempt under way
 *   proj_batch_t   a batch of messages: prepared once (proj_batch.c),
 *                  applied until it commits (proj_commit.c), kept until
 *                  its COMMIT is confirmed
 *   proj_txn_t     one attempt of a batch, in one transaction, the fast
 *                  way (proj_fast.c) or the careful way (proj_careful.c):
 *                  its pipeline and its queued price and stock commands
 *
 * The files, in the order a batch meets them:
 *
 *   proj_store.c     the facade (proj_store.h)
 *   proj_batch.c     a batch prepared: messages read (proj_msg.c),
 *                    archive parameters built (proj_archive.c)
 *   proj_commit.c    a batch applied until it commits, the fast way
 *                    first, then the careful way; the handover
 *   proj_fast.c      an attempt set-based: a claim for all, pipelined
 *   proj_careful.c   an attempt message by message, in savepoints
 *   proj_txn.c       what both attempts start and end with: offsets
 *                    (proj_offsets.c), archive wait, effects written
 *   proj_apply.c     the appliers of commands, shared by both
 *   proj_price.c     the batch's price commands folded and written
 *   proj_stock.c     the batch's stock commands folded and written
 *   proj_keys.c      the keys and as_of instants those two fold over
 *   proj_pipe.c      the libpq pipeline
 *   proj_effects.c   the outbox rows an attempt leaves
 *   proj_fold.c, proj_event.c, proj_sql.c, proj_util.c: pure parts
 */

#ifndef PROJ_BATCH_H
#define PROJ_BATCH_H

#include <stdint.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "cw_pg.h"
#include "cw_pg_side.h"
#include "proj_archive.h"
#include "proj_effects.h"
#include "proj_fold.h"
#include "proj_msg.h"
#include "proj_offsets.h"
#include "proj_pipe.h"
#include "proj_store.h"


typedef struct proj_batch_s  proj_batch_t;


struct proj_store_s {
    cw_pg_t                *pg;
    cw_pg_t                *arc_pg;       /* the archive's, until side */
    cw_pg_side_t           *side;         /* writes the archive */
    const char             *group_id;
    const char             *events_topic;
    const char             *dlq_topic;
    proj_store_metrics_t    m;

    json_t                 *stores_known; /* registered by a commit */
    proj_effects_t          fx;           /* of the attempt under way */

    proj_batch_t           *pending;      /* its COMMIT in flight */
    void                  (*on_commit)(void *ud);
    void                   *on_commit_ud;
};


struct proj_batch_s {
    proj_store_t           *st;
    rd_kafka_message_t    **kmsgs;        /* kept until it commits */
    proj_msg_t             *msgs;
    size_t                  n;
    proj_offsets_t          off;
    proj_archive_t          arc;

    json_t                 *stores_new;   /* registered by this attempt */
    int                     careful;      /* the fast way gave up */
    char                    why[256];     /* why */
    int                     again;        /* the fast way found messages
                                             claimed before: apply again
                                             without them, at once */
    int                     commit_sent;  /* its COMMIT is in flight */

    /* The stage trace: prepared, first attempt (monotonic ms); ages of
     * the newest and oldest message when prepared. */
    int64_t                 t_prep;
    int64_t                 t0;
    int64_t                 age_min;
    int64_t                 age_max;
};


/* A queue of price or stock commands, grown by doubling. */
typedef struct {
    void                   *items;
    size_t                  n;
    size_t                  cap;
} proj_queue_t;


typedef struct {
    proj_store_t           *st;
    proj_batch_t           *b;
    cw_pg_t                *pg;
    proj_effects_t         *fx;
    proj_pipe_t             pipe;
    proj_queue_t            price;        /* proj_price_cmd_t */
    proj_queue_t            stock;        /* proj_stock_cmd_t */
    json_t                 *resolved;     /* ids resolved from vendor
                                             references, which queued
                                             commands point to (NULL
                                             until one is) */
    int                     reject;       /* the data was refused: why */
    proj_error_t            why;
} proj_txn_t;


/* proj_batch.c */
proj_batch_t *proj_batch_new(proj_store_t *st, rd_kafka_message_t **msgs,
    size_t n);
void proj_batch_free(proj_batch_t *b);

/* proj_commit.c: applies b until it commits (or is stopped, or fails
 * for a reason that is not the messages'); with send_commit a fast
 * attempt leaves its COMMIT in flight (b->commit_sent). done hands a
 * committed batch over. */
cw_pg_class_t proj_commit_run(proj_batch_t *b, int send_commit,
    volatile int *stop, char *err, size_t errlen);
void proj_commit_done(proj_batch_t *b, int64_t wait_ms);

/* proj_fast.c, proj_careful.c: the two kinds of attempt, as cw_pg_txn
 * functions of a batch. */
cw_pg_class_t proj_fast_txn(cw_pg_t *pg, void *batch, char *err,
    size_t errlen);
cw_pg_class_t proj_careful_txn(cw_pg_t *pg, void *batch, char *err,
    size_t errlen);

/* proj_txn.c: an attempt started (offsets locked and fenced) and
 * finished (archive waited for, offsets stored, effects written); end
 * frees what it holds, whatever happened. */
cw_pg_class_t proj_txn_begin(proj_txn_t *t, proj_batch_t *b, cw_pg_t *pg,
    char *err, size_t errlen);
cw_pg_class_t proj_txn_finish(proj_txn_t *t, char *err, size_t errlen);
void proj_txn_end(proj_txn_t *t);

/* The next slot of a queue (zeroed), or NULL when out of memory. */
void *proj_queue_push(proj_queue_t *q, size_t size);

/* proj_apply.c: one command of a message applied: queued in the
 * pipeline or with the batch's prices or stock, or run at once (after
 * what was queued) when it needs a lookup. A refusal of the data sets
 * t->reject and t->why and returns CW_PG_OK. flush applies everything
 * queued. */
cw_pg_class_t proj_apply_command(proj_txn_t *t, proj_msg_t *pm,
    size_t index, char *err, size_t errlen);
cw_pg_class_t proj_apply_flush(proj_txn_t *t, char *err, size_t errlen);

/* proj_apply.c: the message dead-lettered with why. */
cw_pg_class_t proj_apply_dead(proj_txn_t *t, proj_msg_t *pm,
    const proj_error_t *why, char *err, size_t errlen);

/* proj_price.c, proj_stock.c: the queued commands folded and written;
 * the queue is emptied. */
cw_pg_class_t proj_price_write(proj_txn_t *t, char *err, size_t errlen);
cw_pg_class_t proj_stock_write(proj_txn_t *t, char *err, size_t errlen);


#endif /* PROJ_BATCH_H */
