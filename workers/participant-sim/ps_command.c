/*
 * ps_command: a participant command read from its Kafka message and
 * checked against docs/contract.md (Participant commands). The body is
 * read by the rule the module and the projector read webhooks by
 * (commerce_inbound_parse_json: one object, no key twice).
 */

#include <stdio.h>
#include <string.h>

#include "commerce_contract.h"
#include "commerce_inbound.h"
#include "ps.h"

const char  *ps_type_names[PS_TYPE_N] = {
    COMMERCE_CMD_PAYMENT_AUTHORIZE,
    COMMERCE_CMD_PAYMENT_CAPTURE,
    COMMERCE_CMD_PAYMENT_VOID,
    COMMERCE_CMD_PAYMENT_REFUND,
    COMMERCE_CMD_SHIPMENT_CREATE,
    COMMERCE_CMD_SHIPMENT_CANCEL,
    "unknown"
};

const char  *ps_outcome_names[PS_OUTCOME_N] = {
    "succeeded", "declined", "transient", "no_answer", "conflict", "invalid"
};


ps_type_e
ps_type_lookup(const char *name)
{
    int  t;

    for (t = 0; t < PS_UNKNOWN; t++) {
        if (strcmp(name, ps_type_names[t]) == 0) {
            return (ps_type_e) t;
        }
    }

    return PS_UNKNOWN;
}


int
ps_type_is_payment(ps_type_e t)
{
    return t <= PS_REFUND;
}


/* A required non-empty string member; NULL with err set when absent. */
static const char *
ps_str(json_t *o, const char *name, char *err, size_t errlen)
{
    const char  *s = json_string_value(json_object_get(o, name));

    if (s == NULL || s[0] == '\0') {
        if (err[0] == '\0') {
            snprintf(err, errlen, "\"%s\" must be a non-empty string", name);
        }
        return NULL;
    }

    return s;
}


/* A required integer member of at least min; -1 with err set when not. */
static long long
ps_int(json_t *o, const char *name, long long min, char *err, size_t errlen)
{
    json_t  *v = json_object_get(o, name);

    if (!json_is_integer(v) || json_integer_value(v) < min) {
        if (err[0] == '\0') {
            snprintf(err, errlen, "\"%s\" must be an integer of at least "
                     "%lld", name, min);
        }
        return -1;
    }

    return json_integer_value(v);
}


/* The members of each type (the common ones are read by the caller). */
static void
ps_members(ps_command_t *c, char *err, size_t errlen)
{
    json_t  *o = c->root;

    if (ps_type_is_payment(c->type)) {
        c->amount = ps_int(o, "amount", 1, err, errlen);
        c->currency = ps_str(o, "currency", err, errlen);
        if (c->type == PS_AUTHORIZE) {
            c->payment_method = ps_str(o, "payment_method", err, errlen);
        } else {
            c->payment_intent = ps_str(o, "payment_intent", err, errlen);
        }
        if (c->currency != NULL && strlen(c->currency) != 3
            && err[0] == '\0')
        {
            snprintf(err, errlen, "\"currency\" must be an ISO 4217 code");
        }
        return;
    }

    switch (c->type) {

    case PS_SHIP_CREATE:
        c->store_id = ps_str(o, "store_id", err, errlen);
        c->lines = json_object_get(o, "lines");
        c->shipping_address = json_object_get(o, "shipping_address");
        if (err[0] == '\0'
            && (!json_is_array(c->lines) || json_array_size(c->lines) == 0))
        {
            snprintf(err, errlen, "\"lines\" must be a non-empty array");
        }
        if (err[0] == '\0' && !json_is_object(c->shipping_address)) {
            snprintf(err, errlen, "\"shipping_address\" must be an object");
        }
        break;

    case PS_SHIP_CANCEL:
        c->shipment_id = ps_str(o, "shipment_id", err, errlen);
        break;

    default:
        break;
    }
}


int
ps_command_parse(ps_command_t *c, const void *value, size_t len, char *err,
    size_t errlen)
{
    const char    *reason, *type;
    json_error_t   jerr;

    memset(c, 0, sizeof(*c));
    c->type = PS_UNKNOWN;
    err[0] = '\0';

    reason = commerce_inbound_parse_json(value, len, &c->root, &jerr);
    if (reason != NULL) {
        snprintf(err, errlen, "%s: %s (line %d, column %d)", reason,
                 jerr.text, jerr.line, jerr.column);
        return PS_INVALID;
    }

    type = json_string_value(json_object_get(c->root, "type"));
    if (type == NULL || (c->type = ps_type_lookup(type)) == PS_UNKNOWN) {
        snprintf(err, errlen, "\"type\" is not a participant command");
        return PS_INVALID;
    }

    c->order_id = ps_str(c->root, "order_id", err, errlen);
    c->idempotency_key = ps_str(c->root, "idempotency_key", err, errlen);
    c->attempt = ps_int(c->root, "attempt", 1, err, errlen);
    ps_members(c, err, errlen);

    return err[0] == '\0' ? 0 : PS_INVALID;
}


void
ps_command_free(ps_command_t *c)
{
    if (c->root != NULL) {
        json_decref(c->root);
    }
    c->root = NULL;
}
