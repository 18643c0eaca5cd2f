/*
 * proj_outbox: after commit, publishes outbox rows (events to
 * commerce.events, dead letters to commerce.dlq) and writes read-model
 * values to Redis, guarded by version; also --rebuild.
 */

#ifndef PROJ_OUTBOX_H
#define PROJ_OUTBOX_H

#include "cw_kafka.h"
#include "cw_metrics.h"
#include "cw_pg.h"
#include "cw_redis.h"

typedef struct {
    cw_metric_t  *published;       /* Kafka messages delivered */
    cw_metric_t  *rm_written;      /* read-model values written */
    cw_metric_t  *rm_kept;         /* values not written: Redis newer */
    cw_metric_t  *failures;        /* drain attempts that failed */
    cw_metric_t  *pending;         /* gauge: rows seen in the last page */
} proj_outbox_metrics_t;

typedef struct proj_outbox_s  proj_outbox_t;

/* A drainer of the rows of one kind: "redis" (read-model values; needs
 * redis) or "kafka" (events and dead letters; needs producer). Either
 * may be NULL when not needed. */
proj_outbox_t *proj_outbox_new(cw_pg_t *pg, cw_redis_t *redis,
    cw_kafka_producer_t *producer, const char *kind, int page,
    const proj_outbox_metrics_t *metrics);
void proj_outbox_free(proj_outbox_t *o);

/* Processes one page of outbox rows of its kind in a transaction and
 * deletes them.
 * Returns the number of rows done (0: empty), or -1 if Redis, Kafka or
 * PostgreSQL failed (nothing is deleted then; try again later). */
int proj_outbox_drain(proj_outbox_t *o, char *err, size_t errlen);

/* Writes the read-model values of a 'redis_keys' payload a batch of this
 * process just committed (proj_store_take_rm_keys), rendered from the
 * committed rows, to Redis behind the version guard; the row itself is
 * left to proj_outbox_forget. Returns the number of values, or -1. */
int proj_outbox_write_keys(proj_outbox_t *o, const char *keys, char *err,
    size_t errlen);

/* Deletes the rows ids (a bigint[] literal) whose work is done; the
 * commit does not wait for the disk. Returns 0 or -1. */
int proj_outbox_forget(proj_outbox_t *o, const char *ids, char *err,
    size_t errlen);

/* Writes every read-model value rendered from PostgreSQL to Redis,
 * guarded by version like live writes. Returns 0 or -1. */
int proj_outbox_rebuild(proj_outbox_t *o, volatile int *stop);

#endif /* PROJ_OUTBOX_H */
