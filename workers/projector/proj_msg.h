/*
 * proj_msg: an inbound Kafka message as the store applies it, prepared
 * once per batch outside any transaction: its headers read, its dedup
 * key made, its body adapted and validated into canonical commands.
 *
 * Use:
 *
 *   proj_msg_prepare(&pm, m);          m stays the caller's, and must
 *                                      outlive pm
 *   if (pm.cmds == NULL) -> dead-letter with pm.err
 *   proj_msg_event_id(&pm, cmd_index, rank, id)
 *   proj_msg_free(&pm);
 */

#ifndef PROJ_MSG_H
#define PROJ_MSG_H

#include <librdkafka/rdkafka.h>

#include "proj.h"


/* The dedup key (proj_msg_dedup_key): "source|delivery_id" while that
 * is at most PROJ_MSG_DEDUP_PLAIN bytes (the keys of earlier versions,
 * kept as they were), else "source|sha256:" and the hex SHA-256 of the
 * source, a NUL byte and the whole id; "topic|partition|offset" without
 * an id. Sources are at most PROJ_MSG_HDR_MAX bytes. */
#define PROJ_MSG_HDR_MAX     1024
#define PROJ_MSG_DEDUP_PLAIN 599
#define PROJ_MSG_DEDUP_MAX   (PROJ_MSG_HDR_MAX + sizeof("|sha256:") + 64)


typedef struct {
    rd_kafka_message_t  *m;
    const char          *topic;
    char                *source;       /* header "source" */
    char                *wtopic;       /* header "topic" */
    char                *delivery_id;  /* up to its first NUL */
    size_t               delivery_len; /* its length in the header */
    char                *traceparent;
    char                *key;          /* NULL: none, or not an id */
    char                *headers_text; /* [{"name":..,"value":..}] */
    char                *meta;         /* metadata of its events */
    json_t              *cmds;         /* NULL when invalid */
    proj_error_t         err;          /* why, when invalid */
    char                *waiting;      /* parked: the sku it waits for
                                          (proj_known.h) */
    char                 dedup[PROJ_MSG_DEDUP_MAX];

    /* Per attempt of its batch. */
    int                  fenced;       /* below the stored offset */
    int                  dup;          /* its dedup key came earlier in
                                          the batch */
    int                  claimed;      /* its dedup key was claimed by a
                                          batch committed before */
} proj_msg_t;


/* The Kafka cluster's id, part of a position dedup key
 * (topic|partition|offset|cluster): a new cluster's offsets start at 0
 * again. */
#define PROJ_MSG_CLUSTER_MAX  128
void proj_msg_set_cluster(const char *id);

void proj_msg_prepare(proj_msg_t *pm, rd_kafka_message_t *m);

/* The one rule of dedup keys by delivery id (see PROJ_MSG_DEDUP_MAX):
 * exact for ids of any length and any bytes, never a prefix. out needs
 * PROJ_MSG_DEDUP_MAX bytes. Returns 0, or -1 (source too long, or the
 * digest failed). */
int proj_msg_dedup_key(const char *source, const void *id, size_t len,
    char *out);
void proj_msg_free(proj_msg_t *pm);

/* The metadata of every event of the message, built once:
 * {"source","delivery_id","traceparent","inbound":{topic,partition,
 * offset}}. NULL when out of memory. */
const char *proj_msg_meta(proj_msg_t *pm);

/* The correlation id of its events: the delivery id, else the dedup
 * key (which is their causation id). */
const char *proj_msg_correlation(const proj_msg_t *pm);

/* The id of an event of the message: a function of its dedup key, the
 * command's index, the event's rank in the command and the message's
 * Kafka timestamp, so that a redelivery makes the same ids. Returns 0 or
 * -1. */
int proj_msg_event_id(const proj_msg_t *pm, size_t index, int rank,
    char id[37]);


#endif /* PROJ_MSG_H */
