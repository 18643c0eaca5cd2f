/*
 * proj_store: applies batches of inbound messages to PostgreSQL, in one
 * transaction per batch together with the consumer offsets, and queues
 * their effects (events, DLQ copies, read-model values) in the outbox.
 */

#ifndef PROJ_STORE_H
#define PROJ_STORE_H

#include <librdkafka/rdkafka.h>

#include "cw_metrics.h"
#include "cw_pg.h"
#include "proj.h"

typedef struct {
    cw_metric_t  *applied;        /* messages applied */
    cw_metric_t  *duplicates;     /* messages already applied before */
    cw_metric_t  *skipped;        /* below the stored offset (fenced) */
    cw_metric_t  *dead;           /* messages sent to the DLQ */
    cw_metric_t  *events;         /* events recorded */
    cw_metric_t  *stale;          /* writes older than the stored state */
    cw_metric_t  *retries;        /* batch transactions retried */
    cw_metric_t  *batch_seconds;  /* histogram */
} proj_store_metrics_t;

typedef struct proj_store_s  proj_store_t;

/* arc_pg, a connection of its own for the archive, is taken over (also
 * when this fails). */
proj_store_t *proj_store_new(cw_pg_t *pg, cw_pg_t *arc_pg,
    const char *group_id, const char *events_topic, const char *dlq_topic,
    const proj_store_metrics_t *metrics);
void proj_store_free(proj_store_t *st);

/* Registers the prepared statements (again after every reconnect). */
int proj_store_prepare(proj_store_t *st, char *err, size_t errlen);

/* Fills in, for each partition of parts, the next offset stored in
 * PostgreSQL, or RD_KAFKA_OFFSET_BEGINNING. Retries transient failures
 * until *stop. Returns 0 or -1. */
int proj_store_load_offsets(proj_store_t *st,
    rd_kafka_topic_partition_list_t *parts, volatile int *stop);

/* The 'redis_keys' outbox row of the batch just committed (on_commit):
 * its id, 0 when the batch changed no read-model value, and in *json its
 * payload, which the caller now owns (free()). */
long long proj_store_take_rm_keys(proj_store_t *st, char **json);

/* Adapts, validates and applies a batch. The messages are taken over
 * (their entries in msgs set to NULL: cw_kafka's on_batch may keep
 * them). With in_flight, the batch's COMMIT is left in flight: the next
 * batch is prepared meanwhile, and confirms it first (proj_store_settle).
 * Returns 0 once the COMMIT is sent (or the batch committed), -1 if
 * stopped or on an error that is not the messages' fault. */
int proj_store_apply_batch(proj_store_t *st, rd_kafka_message_t **msgs,
    size_t n, int in_flight, volatile int *stop);

/* Confirms the COMMIT in flight, if any; if it failed, applies that
 * batch again (retrying transient failures until *stop). Then runs the
 * on_commit function, and releases the batch's messages. Call it before
 * partitions are revoked and before the consumer is closed. Returns 0,
 * or -1 if the batch could not be committed (its messages are released
 * all the same: what is not committed is read again from PostgreSQL's
 * offsets). */
int proj_store_settle(proj_store_t *st, volatile int *stop);

/* fn(ud) runs after each batch's commit is confirmed, on the thread
 * that applies batches: proj_store_take_rm_keys then has its keys. */
void proj_store_on_commit(proj_store_t *st, void (*fn)(void *ud), void *ud);


#endif /* PROJ_STORE_H */
