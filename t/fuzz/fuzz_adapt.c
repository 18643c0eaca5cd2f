/*
 * Fuzz target: the projector's adapters and validation
 * (workers/projector/proj_adapter*.c, proj_validate.c): a Kafka message of
 * any source, as the webhook edge publishes it, to canonical commands.
 *
 * Input: one byte choosing the source header (canonical, shopify, none,
 * or an unknown one) and whether there is a message key, then three
 * fields separated by newlines: topic header, key, body (the rest).
 *
 * Oracles: a message is either turned into a non-empty array of commands
 * of the four known types, each an object, or refused with a
 * machine-readable reason (snake_case) and a NUL-terminated detail; no
 * leak (jansson references included).  The body rule is the edge's: a
 * body commerce_inbound_parse_json refuses is never adapted, and a
 * refusal for the body names the reason the edge would answer.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commerce_contract.h"
#include "commerce_inbound.h"
#include "proj.h"
#include "fuzz.h"


static const char  *fuzz_adapt_sources[] = {
    "canonical", "shopify", NULL, "", "woocommerce"
};


static int
fuzz_adapt_known_type(const char *t)
{
    return t != NULL
           && (strcmp(t, COMMERCE_CMD_ITEM_UPSERT) == 0
               || strcmp(t, COMMERCE_CMD_PRICE_SET) == 0
               || strcmp(t, COMMERCE_CMD_STOCK_SET) == 0
               || strcmp(t, COMMERCE_CMD_STOCK_ADJUST) == 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char          *topic, *key, *text;
    size_t         i, n;
    json_t        *cmds, *cmd;
    const char    *edge;
    fuzz_field_t   f[3];
    proj_error_t   e;
    json_error_t   jerr;
    proj_input_t   in;

    static int  ready;

    if (!ready) {
        proj_shopify_set_currency("EUR");
        ready = 1;
    }

    if (size < 1) {
        return 0;
    }

    fuzz_split(data + 1, size - 1, f, 3);

    topic = fuzz_strdup(f[0].data, f[0].len);
    key = fuzz_strdup(f[1].data, f[1].len);

    memset(&in, 0, sizeof(in));
    in.source = fuzz_adapt_sources[(data[0] & 0x7f)
                                   % (sizeof(fuzz_adapt_sources)
                                      / sizeof(fuzz_adapt_sources[0]))];
    in.topic = f[0].len ? topic : NULL;
    in.key = (data[0] & 0x80) ? key : NULL;

    /* the body is not NUL-terminated: an adapter must use its length */
    in.body = f[2].len ? (const char *) f[2].data : "";
    in.len = f[2].len;

    memset(&e, 0, sizeof(e));

    cmds = proj_adapt(&in, &e);
    edge = commerce_inbound_parse_json(in.body, in.len, NULL, &jerr);

    if (cmds == NULL) {
        if (strcmp(e.reason, COMMERCE_INBOUND_INVALID_JSON) == 0
            || strcmp(e.reason, COMMERCE_INBOUND_DUPLICATE_KEY) == 0
            || strcmp(e.reason, COMMERCE_INBOUND_NOT_OBJECT) == 0)
        {
            fuzz_check(edge != NULL && strcmp(e.reason, edge) == 0);
        }

        n = strnlen(e.reason, sizeof(e.reason));
        fuzz_check(n > 0 && n < sizeof(e.reason));
        fuzz_check(strspn(e.reason, "abcdefghijklmnopqrstuvwxyz0123456789_")
                   == n);
        fuzz_check(strnlen(e.detail, sizeof(e.detail)) < sizeof(e.detail));

    } else {
        fuzz_check(edge == NULL);
        fuzz_check(json_is_array(cmds) && json_array_size(cmds) > 0);

        json_array_foreach(cmds, i, cmd) {
            fuzz_check(json_is_object(cmd));
            fuzz_check(fuzz_adapt_known_type(json_string_value(
                json_object_get(cmd, "type"))));
        }

        text = json_dumps(cmds, JSON_COMPACT);
        fuzz_check(text != NULL);
        free(text);

        json_decref(cmds);
    }

    free(key);
    free(topic);
    fuzz_free(f, 3);

    return 0;
}
