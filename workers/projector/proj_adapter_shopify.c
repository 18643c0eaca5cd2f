/*
 * Shopify webhooks (source "shopify"). The webhook topic comes from the
 * X-Shopify-Topic request header, which the ingress carries in the Kafka
 * header "topic". Supported topics:
 *
 *   products/create, products/update  -> item.upsert (+ price.set per
 *       variant). Item id "shopify-<product id>" unless source_mappings
 *       maps the product elsewhere; variant sku = its "sku", or
 *       "shopify-variant-<id>" when empty. The inventory_item_id of each
 *       variant is recorded as a mapping to the sku. Shopify sends prices
 *       without currency: the shop currency is the projector option
 *       shopify_currency (proj_shopify_set_currency, default USD).
 *   inventory_levels/update -> stock.set of the sku mapped from
 *       inventory_item_id, at the store mapped from location_id
 *       (default "shopify-location-<id>"), on_hand = available, as_of =
 *       updated_at. An inventory item with no mapping yet (its product
 *       webhook not seen) is rejected with reason unmapped_reference and
 *       can be replayed from the DLQ once the product has arrived.
 */

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "commerce_contract.h"
#include "proj.h"


/* Shop currency for Shopify prices; set once at start-up. */
static char  proj_shopify_currency_code[4] = "USD";


void
proj_shopify_set_currency(const char *code)
{
    if (proj_valid_currency(code)) {
        memcpy(proj_shopify_currency_code, code, 4);
    }
}


/* Shopify ids are JSON integers; returns them as decimal text. */
static int
proj_shopify_id(json_t *v, char *buf, size_t size)
{
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }

    if (json_is_string(v) && json_string_length(v) > 0
        && json_string_length(v) < size
        && strspn(json_string_value(v), "0123456789")
           == json_string_length(v))
    {
        snprintf(buf, size, "%s", json_string_value(v));
        return 0;
    }

    return -1;
}


/* "a, b ,c" -> ["a","b","c"] */
static json_t *
proj_shopify_tags(const char *s)
{
    json_t      *tags = json_array();
    const char  *p = s, *end;
    size_t       n;

    while (tags != NULL && p != NULL && *p != '\0') {
        end = strchr(p, ',');
        n = end ? (size_t) (end - p) : strlen(p);

        while (n > 0 && isspace((unsigned char) *p)) {
            p++;
            n--;
        }
        while (n > 0 && isspace((unsigned char) p[n - 1])) {
            n--;
        }
        if (n > 0) {
            json_array_append_new(tags, json_stringn(p, n));
        }

        p = end ? end + 1 : NULL;
    }

    return tags;
}


static json_t *
proj_shopify_mapping(const char *kind, const char *ext, const char *id)
{
    return json_pack("{s:s, s:s, s:s}", "kind", kind, "external_id", ext,
                     "canonical_id", id);
}


/* A product's variant: its item variant (sku, name, options named
 * after the product's options list, price), and its mappings (variant
 * and inventory item ids to the sku). */
static int
proj_shopify_variant(json_t *v, size_t i, json_t *names, json_t *variants,
    json_t *mappings, proj_error_t *e)
{
    json_t       *opts, *o, *price, *sku;
    size_t        k;
    char          vid[32], iid[32], vsku[PROJ_ID_MAX + 1], optkey[16];
    const char   *s;

    if (proj_shopify_id(json_object_get(v, "id"), vid, sizeof(vid)) != 0) {
        proj_error_set(e, "missing_field", "variants[%zu].id: missing", i);
        return -1;
    }

    sku = json_object_get(v, "sku");
    if (json_is_string(sku) && json_string_length(sku) > 0) {
        snprintf(vsku, sizeof(vsku), "%s", json_string_value(sku));
    } else {
        snprintf(vsku, sizeof(vsku), "shopify-variant-%s", vid);
    }

    /* option1..3 named after the product's options list. */
    opts = json_object();
    for (k = 0; k < 3; k++) {
        snprintf(optkey, sizeof(optkey), "option%zu", k + 1);
        o = json_object_get(v, optkey);
        s = json_string_value(json_object_get(json_array_get(names, k),
                                              "name"));
        if (json_is_string(o)) {
            json_object_set(opts, s ? s : optkey, o);
        }
    }

    o = json_pack("{s:s, s:O, s:o}", "sku", vsku,
                  "name", json_is_string(json_object_get(v, "title"))
                          ? json_object_get(v, "title") : json_null(),
                  "options", opts);

    price = json_object_get(v, "price");
    if (json_is_string(price)) {
        json_object_set_new(o, "price",
            json_pack("{s:O, s:s}", "amount", price,
                      "currency", proj_shopify_currency_code));
    }

    json_array_append_new(variants, o);
    json_array_append_new(mappings,
                          proj_shopify_mapping("variant", vid, vsku));

    if (proj_shopify_id(json_object_get(v, "inventory_item_id"), iid,
                        sizeof(iid)) == 0)
    {
        json_array_append_new(mappings,
            proj_shopify_mapping("inventory_item", iid, vsku));
    }

    return 0;
}


static int
proj_shopify_product(json_t *p, json_t *cmds, proj_error_t *e)
{
    json_t       *item, *cmd, *variants, *mappings, *v, *title;
    size_t        i;
    char          pid[32], id[64];

    if (proj_shopify_id(json_object_get(p, "id"), pid, sizeof(pid)) != 0) {
        proj_error_set(e, "missing_field", "id: product id missing");
        return -1;
    }

    title = json_object_get(p, "title");
    if (!json_is_string(title)) {
        proj_error_set(e, "missing_field", "title: missing or not a string");
        return -1;
    }

    snprintf(id, sizeof(id), "shopify-%s", pid);

    variants = json_array();
    mappings = json_array();
    item = json_object();
    cmd = json_object();

    if (variants == NULL || mappings == NULL || item == NULL || cmd == NULL) {
        proj_error_set(e, "internal", "out of memory");
        goto failed;
    }

    json_array_append_new(mappings, proj_shopify_mapping("product", pid, id));

    json_array_foreach(json_object_get(p, "variants"), i, v) {
        if (proj_shopify_variant(v, i, json_object_get(p, "options"),
                                 variants, mappings, e) != 0)
        {
            goto failed;
        }
    }

    json_object_set_new(item, "id", json_string(id));
    json_object_set(item, "name", title);
    if (json_is_string(json_object_get(p, "body_html"))) {
        json_object_set(item, "description", json_object_get(p, "body_html"));
    }
    if (json_is_string(json_object_get(p, "vendor"))) {
        json_object_set(item, "brand", json_object_get(p, "vendor"));
    }
    json_object_set_new(item, "tags", proj_shopify_tags(
        json_string_value(json_object_get(p, "tags"))));
    json_object_set_new(item, "attributes", json_pack("{s:s, s:O}",
        "shopify_product_id", pid,
        "product_type", json_is_string(json_object_get(p, "product_type"))
                        ? json_object_get(p, "product_type") : json_null()));
    json_object_set_new(item, "variants", variants);

    json_object_set_new(cmd, "type", json_string(COMMERCE_CMD_ITEM_UPSERT));
    json_object_set_new(cmd, "item", item);
    json_object_set_new(cmd, "id_ref",
        json_pack("{s:s, s:s}", "kind", "product", "external_id", pid));
    json_object_set_new(cmd, "mappings", mappings);
    if (json_is_string(json_object_get(p, "updated_at"))) {
        json_object_set(cmd, "as_of", json_object_get(p, "updated_at"));
    }

    json_array_append_new(cmds, cmd);

    return 0;

failed:

    json_decref(variants);
    json_decref(mappings);
    json_decref(item);
    json_decref(cmd);

    return -1;
}


static int
proj_shopify_inventory(json_t *p, json_t *cmds, proj_error_t *e)
{
    json_t  *cmd, *avail;
    char     iid[32], lid[32], store[64];

    if (proj_shopify_id(json_object_get(p, "inventory_item_id"), iid,
                        sizeof(iid)) != 0)
    {
        proj_error_set(e, "missing_field", "inventory_item_id: missing");
        return -1;
    }

    if (proj_shopify_id(json_object_get(p, "location_id"), lid, sizeof(lid))
        != 0)
    {
        proj_error_set(e, "missing_field", "location_id: missing");
        return -1;
    }

    avail = json_object_get(p, "available");
    if (avail == NULL) {
        proj_error_set(e, "missing_field", "available: missing");
        return -1;
    }

    snprintf(store, sizeof(store), "shopify-location-%s", lid);

    cmd = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:O}",
                    "type", COMMERCE_CMD_STOCK_SET,
                    "sku_ref", "kind", "inventory_item", "external_id", iid,
                    "store_ref", "kind", "location", "external_id", lid,
                    "default", store,
                    "on_hand", avail);
    if (cmd == NULL) {
        proj_error_set(e, "internal", "out of memory");
        return -1;
    }

    if (json_is_string(json_object_get(p, "updated_at"))) {
        json_object_set(cmd, "as_of", json_object_get(p, "updated_at"));
    }

    json_array_append_new(cmds, cmd);

    return 0;
}


int
proj_adapter_shopify(const proj_input_t *in, json_t *cmds, proj_error_t *e)
{
    int      rc;
    json_t  *root;

    if (in->topic == NULL) {
        proj_error_set(e, "missing_topic",
                       "shopify message without a topic header");
        return -1;
    }

    if (strcmp(in->topic, "products/create") != 0
        && strcmp(in->topic, "products/update") != 0
        && strcmp(in->topic, "inventory_levels/update") != 0)
    {
        proj_error_set(e, "unsupported_topic", "shopify topic \"%.64s\"",
                       in->topic);
        return -1;
    }

    root = proj_parse_object(in, e);
    if (root == NULL) {
        return -1;
    }

    if (strncmp(in->topic, "products/", 9) == 0) {
        rc = proj_shopify_product(root, cmds, e);
    } else {
        rc = proj_shopify_inventory(root, cmds, e);
    }

    json_decref(root);

    return rc;
}
