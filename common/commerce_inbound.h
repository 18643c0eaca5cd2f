/*
 * commerce_inbound: what a webhook must be to become a message of
 * commerce.inbound, one rule for the nginx module (which refuses it at
 * the edge with 400 and the reason) and the workers (which read the
 * message).  Pure C on jansson, no nginx or worker types.
 *
 *   delivery id  1 to COMMERCE_DELIVERY_ID_MAX bytes, each a visible ASCII
 *                character (0x21-0x7e): no space, no control character,
 *                nothing that is not ASCII; every provider's ids are such
 *                (msg_..., evt_..., UUIDs, numbers), and the id becomes a
 *                Redis key, a Kafka header, a PostgreSQL text column and
 *                part of log lines.
 *   JSON body    one JSON object, valid UTF-8, no key twice in any object
 *                (parsers disagree on which one wins), no \u0000.
 *
 * Each returns NULL when the input passes, else the reason (a stable
 * machine-readable code, COMMERCE_INBOUND_*).
 *
 * Use:
 *
 *     reason = commerce_inbound_check_id(id, len);
 *
 *     reason = commerce_inbound_parse_json(body, len, &root, &err);
 *     if (reason == NULL) {
 *         ... root is the object: json_decref(root) when done ...
 *     } else {
 *         ... err.line, err.column, err.text say where and why ...
 *     }
 */

#ifndef COMMERCE_INBOUND_H
#define COMMERCE_INBOUND_H


#include <stddef.h>

#include <jansson.h>


#define COMMERCE_INBOUND_ID_TOO_LONG    "delivery_id_too_long"
#define COMMERCE_INBOUND_ID_INVALID     "invalid_delivery_id"
#define COMMERCE_INBOUND_INVALID_JSON   "invalid_json"
#define COMMERCE_INBOUND_DUPLICATE_KEY  "duplicate_key"
#define COMMERCE_INBOUND_NOT_OBJECT     "not_an_object"


/* a delivery id as received (len 0 is invalid: absent ids are not checked) */
const char *commerce_inbound_check_id(const unsigned char *p, size_t len);

/*
 * The body parsed: the object in *root (NULL on a refusal; root may be NULL
 * when the caller needs no value), where and why it failed in *err.
 */
const char *commerce_inbound_parse_json(const char *body, size_t len,
    json_t **root, json_error_t *err);


#endif /* COMMERCE_INBOUND_H */
