/*
 * The project's own canonical JSON format (source "canonical").
 *
 * A message body is one command object, or {"commands":[cmd, ...]} whose
 * commands are applied together, in order, in one transaction. Commands:
 *
 * item.upsert: create or replace an item with its variants and addon
 * groups. Variant prices are optional and become price.set commands.
 *   {"type":"item.upsert", "merchant_id":"m-1", "as_of":"<RFC 3339>",
 *    "item":{"id":"item-1", "sku":"SKU-1", "name":"Trail Shoe",
 *            "description":"...", "brand":"Kestrel", "tags":["run"],
 *            "attributes":{"material":"mesh"},
 *            "variants":[{"sku":"SKU-1-S", "name":"S",
 *                         "options":{"size":"S"},
 *                         "price":{"amount":"89.90","currency":"EUR"}}],
 *            "addon_groups":[{"id":"wrap", "name":"Gift wrap",
 *                             "min":0, "max":1,
 *                             "addons":[{"id":"wrap-std",
 *                                        "name":"Standard",
 *                                        "price":{"amount":"2.00",
 *                                                 "currency":"EUR"}}]}]}}
 *   merchant_id defaults to the Kafka message key.
 *
 * price.set: the base price of a sku, or a store's override of it.
 *   {"type":"price.set", "sku":"SKU-1-S", "store_id":"store-001",
 *    "price":{"amount":"84.90","currency":"EUR"}, "as_of":"..."}
 *   Without store_id it sets the base price.
 *
 * stock.set: an absolute count (e.g. from a stock take).
 *   {"type":"stock.set", "store_id":"store-001", "sku":"SKU-1-S",
 *    "on_hand":12, "unit":"each", "as_of":"..."}
 *
 * stock.adjust: a movement with a reason (sale, return, damage, ...).
 *   {"type":"stock.adjust", "store_id":"store-001", "sku":"SKU-1-S",
 *    "delta":-2, "reason":"sale", "unit":"each"}
 *
 * Rules (proj_validate.c): ids are 1..256 bytes without spaces or control
 * characters; amounts are decimal strings with at most 2 decimals and a
 * 3-letter upper-case currency; quantities are integers, "unit" if given
 * must be "each"; on_hand >= 0; delta != 0 and reason matches
 * [a-z][a-z0-9_]{0,63}; as_of is RFC 3339. as_of orders writes from the
 * source: an item, price or absolute count older than the one stored is
 * ignored. A delta that would take on_hand below zero is rejected
 * (reason stock_underflow).
 */

#include <string.h>

#include "proj.h"


int
proj_adapter_canonical(const proj_input_t *in, json_t *cmds, proj_error_t *e)
{
    json_t  *root, *list, *cmd;
    size_t   i;

    root = proj_parse_object(in, e);
    if (root == NULL) {
        return -1;
    }

    list = json_object_get(root, "commands");

    if (list == NULL) {
        json_array_append(cmds, root);
        json_decref(root);
        return 0;
    }

    if (!json_is_array(list)) {
        proj_error_set(e, "invalid_type", "commands: not an array");
        json_decref(root);
        return -1;
    }

    json_array_foreach(list, i, cmd) {
        if (!json_is_object(cmd)) {
            proj_error_set(e, "invalid_command",
                           "commands[%zu]: not an object", i);
            json_decref(root);
            return -1;
        }

        json_array_append(cmds, cmd);
    }

    json_decref(root);

    return 0;
}
