/*
 * proj_event: a canonical event as it goes to commerce.events: its JSON
 * envelope, and its Kafka message framed into a batch's 'kafka_batch'
 * outbox row (keyed by its aggregate, with the headers event_type,
 * event_id and traceparent). docs/contract.md describes both.
 *
 * Use:
 *
 *   proj_event_t  ev = { id, COMMERCE_EV_STOCK_CHANGED,
 *                        COMMERCE_AGG_STOCK, agg, version, ts, data };
 *
 *   proj_event_frame(&frames, &scratch, msg, &ev);
 */

#ifndef PROJ_EVENT_H
#define PROJ_EVENT_H

#include "cw_buf.h"
#include "proj_msg.h"


typedef struct {
    const char     *id;
    const char     *type;
    const char     *agg_type;
    const char     *agg_id;
    long long       version;
    const char     *occurred_at;
    const char     *data;          /* JSON text */
} proj_event_t;


/* Appends the envelope: {"event_id","type","aggregate_type",
 * "aggregate_id","version","occurred_at","data","metadata"}. */
void proj_event_json(cw_buf_t *b, const proj_event_t *ev, const char *meta);

/* Appends the event's Kafka message, an event of msg, to frames
 * (proj_frame.h); scratch is working space. frames->oom says whether
 * it went well. */
void proj_event_frame(cw_buf_t *frames, cw_buf_t *scratch, proj_msg_t *msg,
    const proj_event_t *ev);


#endif /* PROJ_EVENT_H */
