/*
 * proj_event: the envelope and Kafka message of an event (proj_event.h).
 */

#include <string.h>

#include "commerce_contract.h"
#include "proj_event.h"
#include "proj_frame.h"


void
proj_event_json(cw_buf_t *b, const proj_event_t *ev, const char *meta)
{
    cw_buf_puts(b, "{\"event_id\":\"");
    cw_buf_puts(b, ev->id);
    cw_buf_puts(b, "\",\"type\":");
    cw_buf_json_str(b, ev->type);
    cw_buf_puts(b, ",\"aggregate_type\":");
    cw_buf_json_str(b, ev->agg_type);
    cw_buf_puts(b, ",\"aggregate_id\":");
    cw_buf_json_str(b, ev->agg_id);
    cw_buf_printf(b, ",\"version\":%lld,\"occurred_at\":\"%s\",\"data\":",
                  ev->version, ev->occurred_at);
    cw_buf_puts(b, ev->data);
    cw_buf_puts(b, ",\"metadata\":");
    cw_buf_puts(b, meta);
    cw_buf_putc(b, '}');
}


void
proj_event_frame(cw_buf_t *frames, cw_buf_t *scratch, proj_msg_t *msg,
    const proj_event_t *ev)
{
    const char  *meta, *h[6];

    h[0] = COMMERCE_H_EVENT_TYPE;
    h[1] = ev->type;
    h[2] = COMMERCE_H_EVENT_ID;
    h[3] = ev->id;
    h[4] = COMMERCE_H_TRACEPARENT;
    h[5] = msg->traceparent;

    meta = proj_msg_meta(msg);

    cw_buf_reset(scratch);
    proj_event_json(scratch, ev, meta != NULL ? meta : "null");
    if (scratch->oom || meta == NULL) {
        frames->oom = 1;
        return;
    }

    proj_frame_put(frames, ev->agg_id, strlen(ev->agg_id), scratch->data,
                   scratch->len, h, 3);
}
