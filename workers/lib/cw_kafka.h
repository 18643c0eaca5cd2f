/*
 * cw_kafka: the Kafka pieces every worker needs, on librdkafka.
 *
 * Consumer: a consumer-group member with manual offsets. Auto-commit and
 * auto offset store are off; the worker decides where to start on each
 * assignment (on_assign may fill in offsets it keeps elsewhere, e.g. in
 * PostgreSQL, and they are put into the assign list itself, avoiding
 * seek) and may commit to Kafka with cw_kafka_commit. Messages arrive in
 * batches of up to kafka.batch_max: every message already fetched is
 * taken, and once a batch has one, more are waited for at most
 * kafka.batch_wait. Before partitions are revoked, the batch collected so
 * far is delivered, then on_revoke runs, so a worker never processes a
 * message of a partition it no longer owns.
 *
 * Producer: idempotent, acks=all; cw_kafka_produce_sync waits for the
 * delivery report of one message, cw_kafka_producer_flush for all.
 *
 * Configuration (cw_kafka_declare):
 *   kafka.brokers          bootstrap list host:port,...
 *   kafka.bootstrap_file   read the list from this file (commerce-devbroker
 *                          writes one) when kafka.brokers is empty
 *   kafka.group_id, kafka.topics (comma-separated), kafka.client_id
 *   kafka.batch_max, kafka.batch_wait, kafka.session_timeout
 *   kafka.<librdkafka property>  passed through unchanged, e.g.
 *                          kafka.fetch.wait.max.ms = 50 (file or flag)
 */

#ifndef CW_KAFKA_H
#define CW_KAFKA_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "cw_config.h"

typedef struct cw_kafka_consumer_s  cw_kafka_consumer_t;
typedef struct cw_kafka_producer_s  cw_kafka_producer_t;

typedef struct {
    /* Partitions about to be assigned, each with offset
     * RD_KAFKA_OFFSET_INVALID. Set an offset (the next message to read)
     * where you know it; left INVALID, Kafka's committed offset or
     * auto.offset.reset applies. Return -1 to refuse (the consumer then
     * stops with an error rather than read from a wrong position). */
    int   (*on_assign)(void *ud, rd_kafka_topic_partition_list_t *parts);

    /* Partitions being taken away; lost is non-zero when the group
     * already gave them to someone else (session timeout). */
    void  (*on_revoke)(void *ud, const rd_kafka_topic_partition_list_t *parts,
                       int lost);

    /* A batch of messages (all without error). Return -1 to stop. The
     * messages are destroyed after the callback returns, except those
     * whose entries it set to NULL: it keeps them, and must destroy them
     * (rd_kafka_message_destroy) before the consumer is closed, e.g. in
     * on_revoke, which also runs when the consumer leaves the group. */
    int   (*on_batch)(void *ud, rd_kafka_message_t **msgs, size_t n);

    void   *ud;
} cw_kafka_handlers_t;

/* Declares the kafka.* options above. */
int cw_kafka_declare(cw_config_t *cfg);

/* Resolves the bootstrap list from kafka.brokers or kafka.bootstrap_file
 * into buf. */
int cw_kafka_brokers(const cw_config_t *cfg, char *buf, size_t size,
    char *err, size_t errlen);

cw_kafka_consumer_t *cw_kafka_consumer_new(const cw_config_t *cfg,
    const cw_kafka_handlers_t *h, char *err, size_t errlen);

/* Waits up to timeout_ms for a first message, then gathers a batch and
 * hands it to on_batch. Returns the number of messages delivered, or -1
 * if a handler asked to stop or the client hit a fatal error. */
int cw_kafka_consumer_poll(cw_kafka_consumer_t *c, int timeout_ms);

/* Polls until *stop becomes non-zero or an error; returns 0 or -1. */
int cw_kafka_consumer_run(cw_kafka_consumer_t *c, volatile int *stop);

int cw_kafka_pause(cw_kafka_consumer_t *c, const char *topic,
    int32_t partition);
int cw_kafka_resume(cw_kafka_consumer_t *c, const char *topic,
    int32_t partition);

/* Commits, per partition, the offset after the last of msgs. */
int cw_kafka_commit(cw_kafka_consumer_t *c, rd_kafka_message_t **msgs,
    size_t n, int sync);

/* Leaves the group (revoking through the handlers) and frees. */
void cw_kafka_consumer_close(cw_kafka_consumer_t *c);

rd_kafka_t *cw_kafka_consumer_handle(cw_kafka_consumer_t *c);

/* The lag of each partition assigned to c, in messages, for
 * fn(ud, topic, partition, lag): the end of the partition's log (asked
 * of the brokers, waiting at most timeout_ms for each; else the end the
 * last fetch saw) minus the consumer's position: the next message the
 * application is to get; before the first one, the offset the partition
 * was assigned at (on_assign's), else the start of the log
 * (auto.offset.reset is earliest). Partitions whose end is not known
 * are left out. Safe on any thread (a metrics thread): it waits for
 * the brokers, never for the consumer's thread. Returns how many
 * partitions were reported.
 *
 * librdkafka's statistics have a consumer_lag too, but counted from the
 * offset committed to Kafka: -1 for a worker that keeps its offsets
 * elsewhere (the projector, in PostgreSQL). */
typedef void (*cw_kafka_lag_pt)(void *ud, const char *topic,
    int32_t partition, int64_t lag);

int cw_kafka_consumer_lag(cw_kafka_consumer_t *c, int timeout_ms,
    cw_kafka_lag_pt fn, void *ud);


cw_kafka_producer_t *cw_kafka_producer_new(const cw_config_t *cfg,
    char *err, size_t errlen);

/* Queues a message (partition -1: by key hash). headers may be NULL; on
 * success they belong to the producer. Returns 0 or -1 with err. */
int cw_kafka_produce(cw_kafka_producer_t *p, const char *topic,
    int32_t partition, const void *key, size_t klen, const void *val,
    size_t vlen, rd_kafka_headers_t *headers, char *err, size_t errlen);

/* Produces one message and waits up to timeout_ms for its delivery
 * report. Returns 0 when the brokers acknowledged it. */
int cw_kafka_produce_sync(cw_kafka_producer_t *p, const char *topic,
    const void *key, size_t klen, const void *val, size_t vlen,
    rd_kafka_headers_t *headers, int timeout_ms, char *err, size_t errlen);

/* Waits for every queued message; returns 0 if all were delivered, -1
 * if some failed or are still in flight at the timeout. */
int cw_kafka_producer_flush(cw_kafka_producer_t *p, int timeout_ms,
    char *err, size_t errlen);

void cw_kafka_producer_close(cw_kafka_producer_t *p, int timeout_ms);

rd_kafka_t *cw_kafka_producer_handle(cw_kafka_producer_t *p);

#endif /* CW_KAFKA_H */
