/*
 * commerce_inbound: the rules of an inbound webhook (see the header).
 */

#include <stdio.h>
#include <string.h>

#include "commerce_contract.h"
#include "commerce_inbound.h"


static const char *commerce_inbound_type_name(const json_t *v);


const char *
commerce_inbound_check_id(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len > COMMERCE_DELIVERY_ID_MAX) {
        return COMMERCE_INBOUND_ID_TOO_LONG;
    }

    if (len == 0) {
        return COMMERCE_INBOUND_ID_INVALID;
    }

    for (i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e) {
            return COMMERCE_INBOUND_ID_INVALID;
        }
    }

    return NULL;
}


/*
 * Any JSON value is parsed (so that a top-level string is named as such
 * rather than as a syntax error), then only an object passes.  jansson
 * checks the UTF-8, refuses \u0000 and numbers it cannot hold, and with
 * JSON_REJECT_DUPLICATES a key seen twice in one object.
 */
const char *
commerce_inbound_parse_json(const char *body, size_t len, json_t **root,
    json_error_t *err)
{
    json_t  *v;

    if (root != NULL) {
        *root = NULL;
    }

    v = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, err);

    if (v == NULL) {
        return json_error_code(err) == json_error_duplicate_key
               ? COMMERCE_INBOUND_DUPLICATE_KEY
               : COMMERCE_INBOUND_INVALID_JSON;
    }

    if (!json_is_object(v)) {
        err->line = 1;
        err->column = 1;
        err->position = 0;
        err->source[0] = '\0';

        /* the last byte of text holds jansson's error code: kept out */
        snprintf(err->text, sizeof(err->text) - 1,
                 "the top level is %s, not an object",
                 commerce_inbound_type_name(v));

        json_decref(v);
        return COMMERCE_INBOUND_NOT_OBJECT;
    }

    if (root != NULL) {
        *root = v;

    } else {
        json_decref(v);
    }

    return NULL;
}


static const char *
commerce_inbound_type_name(const json_t *v)
{
    switch (json_typeof(v)) {

    case JSON_ARRAY:
        return "an array";

    case JSON_STRING:
        return "a string";

    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";

    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";

    case JSON_NULL:
        return "null";

    default:
        return "a value";
    }
}
