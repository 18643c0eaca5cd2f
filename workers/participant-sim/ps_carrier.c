/*
 * ps_carrier: the carrier's replies (docs/contract.md, shipping replies).
 *
 *   shipment.create ok         shipment.created {shipment_id,
 *                              tracking_number, carrier}
 *   shipment.create declined   shipment.failed {retryable false, reason}
 *   any transient error        shipment.failed {retryable true,
 *                              reason "carrier_unavailable"}
 *   shipment.cancel ok         shipment.cancelled {shipment_id}
 *
 * Every reply names the command it answers (command, order_id,
 * idempotency_key, attempt). A shipment's id is made from its order's:
 * one shipment per order, the same id on every attempt.
 */

#include <stdlib.h>
#include <string.h>

#include "commerce_contract.h"
#include "cw_time.h"
#include "ps.h"


static json_t *
ps_reply_base(const ps_command_t *c, const char *type)
{
    char  at[32];

    cw_wall_ts(at, sizeof(at));

    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "type", type,
                     "command", ps_type_names[c->type], "order_id",
                     c->order_id, "idempotency_key", c->idempotency_key,
                     "attempt", (json_int_t) c->attempt, "at", at);
}


static json_t *
ps_reply_json(const ps_command_t *c, ps_outcome_e outcome,
    const char *decline_reason, const char **type)
{
    char     shp[64], trk[64];
    json_t  *r;

    if (outcome == PS_DECLINED || outcome == PS_TRANSIENT) {
        *type = COMMERCE_REPLY_SHIPMENT_FAILED;
        r = ps_reply_base(c, *type);
        json_object_set_new(r, "retryable",
                            json_boolean(outcome == PS_TRANSIENT));
        json_object_set_new(r, "reason", json_string(
            outcome == PS_TRANSIENT ? "carrier_unavailable"
                                    : decline_reason));
        return r;
    }

    if (c->type == PS_SHIP_CANCEL) {
        *type = COMMERCE_REPLY_SHIPMENT_CANCELLED;
        r = ps_reply_base(c, *type);
        json_object_set_new(r, "shipment_id", json_string(c->shipment_id));
        return r;
    }

    *type = COMMERCE_REPLY_SHIPMENT_CREATED;
    ps_id(shp, sizeof(shp), "shp_", c->order_id);
    ps_id(trk, sizeof(trk), "SIM", shp);
    r = ps_reply_base(c, *type);
    json_object_set_new(r, "shipment_id", json_string(shp));
    json_object_set_new(r, "carrier", json_string("sim"));
    json_object_set_new(r, "tracking_number", json_string(trk));
    json_object_set_new(r, "store_id", json_string(c->store_id));

    return r;
}


ps_answer_t *
ps_carrier_reply(const ps_command_t *c, ps_outcome_e outcome,
    const char *decline_reason)
{
    const char   *type;
    json_t       *r;

    if (!ps_outcome_sends(c->type, outcome)) {
        return NULL;
    }

    r = ps_reply_json(c, outcome, decline_reason, &type);

    return ps_answer_new(r, type, NULL);
}
