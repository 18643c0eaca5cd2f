/*
 * proj_offsets: the consumer offsets of the projector's group, kept in
 * PostgreSQL and written in each batch's transaction, so that what a
 * batch applied and how far its partitions were read commit together.
 *
 * Use, in a batch's transaction:
 *
 *   proj_offsets_lock(&off, pg, group, msgs, n, err, errlen);
 *                    locks the partitions' rows; messages below the
 *                    stored offset get pm->fenced: another member (or an
 *                    earlier life of this one) applied them already
 *   ...apply the messages not fenced...
 *   proj_offsets_store(&off, pg, group, msgs, n, err, errlen);
 *
 * and on partition assignment proj_offsets_load. They are the offsets of
 * one Kafka cluster, whose id the statements name (proj_sql.h): at start
 * proj_offsets_cluster, then proj_offsets_adopt.
 */

#ifndef PROJ_OFFSETS_H
#define PROJ_OFFSETS_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "cw_pg.h"
#include "proj_msg.h"


/* The partitions of a batch, in order of first appearance. */
typedef struct {
    const char     *topic;
    int32_t         partition;
    int64_t         last;         /* its last message not fenced; -1 */
    int64_t         stored;       /* the offset stored for it */
} proj_part_t;

typedef struct {
    proj_part_t    *parts;
    size_t          n;
} proj_offsets_t;


cw_pg_class_t proj_offsets_lock(proj_offsets_t *off, cw_pg_t *pg,
    const char *group, proj_msg_t *msgs, size_t n, char *err,
    size_t errlen);

/* Stores, for each partition, the offset after its last message not
 * fenced, in one statement. */
cw_pg_class_t proj_offsets_store(proj_offsets_t *off, cw_pg_t *pg,
    const char *group, const proj_msg_t *msgs, size_t n, char *err,
    size_t errlen);

void proj_offsets_free(proj_offsets_t *off);

/* Fills in, for each partition of parts (all of one topic), the offset
 * stored, or RD_KAFKA_OFFSET_BEGINNING. Retries transient failures
 * until *stop. Returns 0 or -1. */
int proj_offsets_load(cw_pg_t *pg, const char *group,
    rd_kafka_topic_partition_list_t *parts, volatile int *stop);

/* The id of the Kafka cluster rk talks to, set for the statements
 * (proj_sql_set_cluster) and the position dedup keys: offsets are those
 * of one cluster's log (a new cluster's start at 0 again). Waits until
 * the brokers say, or *stop. Returns 0 or -1. */
int proj_offsets_cluster(rd_kafka_t *rk, volatile int *stop);

/* The group's offsets stored before they had a cluster taken as the
 * prepared cluster's, if it has none. Returns 0 or -1 with err. */
int proj_offsets_adopt(cw_pg_t *pg, const char *group, char *err,
    size_t errlen);


#endif /* PROJ_OFFSETS_H */
