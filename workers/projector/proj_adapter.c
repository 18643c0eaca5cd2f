/*
 * Adapter registry: the source header picks the adapter; every command it
 * produces then goes through the same validation. Adding a vendor is one
 * file with a proj_adapter_fn and one line in proj_adapters[]. Every
 * adapter reads its body with proj_parse_object: the edge's rule and
 * reasons (commerce_inbound_parse_json), whatever the source.
 */

#include <stdio.h>
#include <string.h>

#include "commerce_contract.h"
#include "proj.h"


static const proj_adapter_t  proj_adapters[] = {
    { "canonical", proj_adapter_canonical },
    { "shopify", proj_adapter_shopify },
};


/* Variant prices of an item upsert become price.set commands of their
 * own, placed right after the item, so prices have one code path. */
static int
proj_expand_variant_prices(json_t *cmds, size_t *i)
{
    json_t       *cmd, *variants, *v, *price, *ps, *asof;
    size_t        k;

    cmd = json_array_get(cmds, *i);
    variants = json_object_get(json_object_get(cmd, "item"), "variants");
    asof = json_object_get(cmd, "as_of");

    json_array_foreach(variants, k, v) {
        price = json_object_get(v, "price");
        if (price == NULL || json_is_null(price)) {
            continue;
        }

        ps = json_pack("{s:s, s:O, s:O}", "type", COMMERCE_CMD_PRICE_SET,
                       "sku", json_object_get(v, "sku"), "price", price);
        if (ps == NULL) {
            return -1;
        }

        if (asof != NULL) {
            json_object_set(ps, "as_of", asof);
        }

        json_object_del(v, "price");

        if (json_array_insert_new(cmds, ++(*i), ps) != 0) {
            return -1;
        }
    }

    return 0;
}


json_t *
proj_adapt(const proj_input_t *in, proj_error_t *e)
{
    json_t   *cmds, *cmd;
    size_t    i, n;
    char      path[32];

    if (in->source == NULL || in->source[0] == '\0') {
        proj_error_set(e, "missing_source", "message has no source header");
        return NULL;
    }

    for (n = 0; n < sizeof(proj_adapters) / sizeof(proj_adapters[0]); n++) {
        if (strcmp(proj_adapters[n].source, in->source) == 0) {
            break;
        }
    }

    if (n == sizeof(proj_adapters) / sizeof(proj_adapters[0])) {
        proj_error_set(e, "unknown_source", "no adapter for source \"%.64s\"",
                       in->source);
        return NULL;
    }

    cmds = json_array();
    if (cmds == NULL) {
        proj_error_set(e, "internal", "out of memory");
        return NULL;
    }

    if (proj_adapters[n].parse(in, cmds, e) != 0) {
        json_decref(cmds);
        return NULL;
    }

    if (json_array_size(cmds) == 0) {
        proj_error_set(e, "empty_message", "no command in the message");
        json_decref(cmds);
        return NULL;
    }

    for (i = 0; i < json_array_size(cmds); i++) {
        cmd = json_array_get(cmds, i);
        snprintf(path, sizeof(path), "commands[%zu]", i);

        if (json_object_get(cmd, "source") == NULL) {
            json_object_set_new(cmd, "source", json_string(in->source));
        }

        /* The message key names the merchant when the item does not. */
        if (json_is_object(cmd) && in->key != NULL && proj_valid_id(in->key)
            && json_object_get(cmd, "merchant_id") == NULL)
        {
            json_object_set_new(cmd, "merchant_id", json_string(in->key));
        }

        if (proj_validate_command(cmd, path, e) != 0) {
            json_decref(cmds);
            return NULL;
        }

        if (strcmp(json_string_value(json_object_get(cmd, "type")),
                   COMMERCE_CMD_ITEM_UPSERT) == 0
            && proj_expand_variant_prices(cmds, &i) != 0)
        {
            proj_error_set(e, "internal", "out of memory");
            json_decref(cmds);
            return NULL;
        }
    }

    return cmds;
}
