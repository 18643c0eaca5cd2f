/*
 * proj_outbox: the after-commit half of the projector: the outbox rows a
 * batch committed are taken a page at a time, handed to a sink that does
 * their work, and deleted once it is done.
 *
 * Two sinks, each drained by a thread and a connection of its own: the
 * publisher (proj_publisher.h: events and dead letters to Kafka, rows
 * 'kafka' and 'kafka_batch') and the read-model writer
 * (proj_readmodel.h: values to Redis, rows 'redis' and 'redis_keys').
 *
 * Rows are taken with FOR UPDATE SKIP LOCKED in id order and deleted
 * once done, in one transaction, so two projectors never process the
 * same row at the same time. Most drains start after the highest id done
 * so far (a scan from the bottom would walk every deleted, not yet
 * vacuumed row) but one a second starts from the bottom, so a
 * transaction that committed late with a lower id is picked up then:
 * nothing is ever skipped. A crash after the work but before the delete
 * does it again on the next drain (at least once: consumers dedupe by
 * event_id, and the read model's version guard makes a value written
 * twice a no-op); so the deletes do not wait for the disk.
 *
 * Rows a batch of this process committed can be handed over in memory
 * (the read model's): their work is done in a transaction that first
 * takes those that are still there and that no drain has taken (another
 * projector's finds them as soon as they commit), and deletes them at
 * its end, so that each is done once.
 *
 * Use:
 *
 *   proj_publisher_sink(pub, &sink);
 *   o = proj_outbox_new(pg, &sink, page, &metrics);
 *   n = proj_outbox_drain(o, err, errlen);     rows done, 0: none, -1
 *   proj_outbox_handed(o, "{1,2}", work, ud, err, errlen);
 */

#ifndef PROJ_OUTBOX_H
#define PROJ_OUTBOX_H

#include <stddef.h>

#include "cw_metrics.h"
#include "cw_pg.h"
#include "proj.h"


typedef struct {
    cw_metric_t  *published;       /* Kafka messages delivered */
    cw_metric_t  *rm_written;      /* read-model values written */
    cw_metric_t  *rm_kept;         /* values not written: Redis newer */
    cw_metric_t  *failures;        /* drain attempts that failed */
    cw_metric_t  *pending;         /* gauge: rows seen in the last page */
    cw_metric_t  *refused_too_large;  /* published reduced, or left out */
    cw_metric_t  *refused_invalid;
    cw_metric_t  *dlq[PROJ_REASON_N]; /* dead letters published, by
                                         reason (proj_reasons) */
} proj_outbox_metrics_t;

/* An outbox row (sql/004_pipeline.sql, 006_outbox_batches.sql). */
typedef struct {
    const char            *kind;
    const char            *topic;
    const unsigned char   *key;        /* NULL: none */
    size_t                 klen;
    const char            *headers;    /* JSON: [{"name","value"}...] */
    const unsigned char   *payload;
    size_t                 plen;
    const char            *rm_key;
    const char            *rm_field;   /* NULL: a string key */
    const char            *rm_version;
} proj_outbox_row_t;

/* What does the rows' work: take queues a row's (0, or -1 with err),
 * finish completes what was queued (replies read, acknowledgements
 * waited for), also after a failure, with failed set (its err then is
 * not to be used: errlen 0). ud is the sink's object. */
typedef struct {
    const char   *kinds;           /* the kinds it takes, a text[] */
    int         (*take)(void *ud, cw_pg_t *pg, const proj_outbox_row_t *row,
                        char *err, size_t errlen);
    int         (*finish)(void *ud, int failed, char *err, size_t errlen);
    void         *ud;
} proj_outbox_sink_t;

typedef struct proj_outbox_s  proj_outbox_t;


/* sink is copied; its object must outlive the outbox. */
proj_outbox_t *proj_outbox_new(cw_pg_t *pg, const proj_outbox_sink_t *sink,
    int page, const proj_outbox_metrics_t *metrics);
void proj_outbox_free(proj_outbox_t *o);

/* Does one page of rows in a transaction and deletes them. Returns the
 * number of rows done (0: none left), or -1 if the sink or PostgreSQL
 * failed (nothing is deleted then; try again later). */
int proj_outbox_drain(proj_outbox_t *o, char *err, size_t errlen);

/* The work of rows handed over in memory: given the ids of those taken
 * (ascending), it does theirs on the outbox's connection (0, or -1 with
 * err). */
typedef int (*proj_outbox_work_pt)(void *ud, const long long *ids,
    size_t n, char *err, size_t errlen);

/* Takes the rows ids (a bigint[] literal) that are still there and not
 * taken by a drain, has work do them and deletes them, in one
 * transaction whose commit does not wait for the disk. Returns the
 * number of rows taken, or -1 (nothing deleted: left to the drain). */
int proj_outbox_handed(proj_outbox_t *o, const char *ids,
    proj_outbox_work_pt work, void *ud, char *err, size_t errlen);


#endif /* PROJ_OUTBOX_H */
