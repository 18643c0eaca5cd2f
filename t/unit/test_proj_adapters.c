/*
 * Unit tests of the projector's pure parts: the canonical and Shopify
 * adapters, validation and normalisation, event ids.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/commerce_inbound.h"
#include "../../workers/projector/proj.h"
#include "../../workers/projector/proj_frame.h"
#include "../../workers/projector/proj_util.h"


static json_t *
adapt(const char *source, const char *topic, const char *body,
    proj_error_t *e)
{
    proj_input_t  in;

    memset(e, 0, sizeof(*e));
    in.source = source;
    in.topic = topic;
    in.key = "m-1";
    in.body = body;
    in.len = strlen(body);

    return proj_adapt(&in, e);
}


static void
expect_reason(const char *source, const char *topic, const char *body,
    const char *reason)
{
    proj_error_t  e;
    json_t       *cmds = adapt(source, topic, body, &e);

    if (cmds != NULL) {
        fail_msg("accepted: %s", body);
    }
    assert_string_equal(e.reason, reason);
}


static void
test_canonical_item(void **state)
{
    proj_error_t  e;
    json_t       *cmds, *c;

    cmds = adapt("canonical", NULL,
        "{\"type\":\"item.upsert\",\"item\":{\"id\":\"i1\",\"name\":\"N\","
        "\"variants\":[{\"sku\":\"S1\",\"price\":{\"amount\":\"12.9\","
        "\"currency\":\"EUR\"}},{\"sku\":\"S2\"}],"
        "\"addon_groups\":[{\"id\":\"g\",\"name\":\"G\"}]}}", &e);
    assert_non_null(cmds);

    /* The variant price becomes a price.set right after the item. */
    assert_int_equal(json_array_size(cmds), 2);
    c = json_array_get(cmds, 0);
    assert_string_equal(json_string_value(json_object_get(c, "merchant_id")),
                        "m-1");
    assert_null(json_object_get(json_array_get(json_object_get(
        json_object_get(c, "item"), "variants"), 0), "price"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(
        json_object_get(c, "item"), "addon_groups"), "min")), 0);

    c = json_array_get(cmds, 1);
    assert_string_equal(json_string_value(json_object_get(c, "type")),
                        "price.set");
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(c, "price"), "amount_minor")), 1290);

    json_decref(cmds);
}


static void
test_canonical_batch_and_stock(void **state)
{
    proj_error_t  e;
    json_t       *cmds;

    cmds = adapt("canonical", NULL,
        "{\"commands\":[{\"type\":\"stock.set\",\"store_id\":\"s\","
        "\"sku\":\"k\",\"on_hand\":0,\"as_of\":\"2024-01-01T10:00:00.5+02:00\"},"
        "{\"type\":\"stock.adjust\",\"store_id\":\"s\",\"sku\":\"k\","
        "\"delta\":-3,\"reason\":\"sale\"}]}", &e);
    assert_non_null(cmds);
    assert_int_equal(json_array_size(cmds), 2);
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(cmds, 1), "unit")), "each");
    json_decref(cmds);
}


static void
test_validation_reasons(void **state)
{
    expect_reason("canonical", NULL, "{\"type\":", "invalid_json");
    expect_reason("canonical", NULL, "[]", "not_an_object");
    expect_reason("canonical", NULL, "{\"type\":\"nope\"}", "unknown_command");
    expect_reason("canonical", NULL, "{\"commands\":[]}", "empty_message");
    expect_reason("nowhere", NULL, "{}", "unknown_source");
    expect_reason(NULL, NULL, "{}", "missing_source");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.set\",\"store_id\":\"s\",\"sku\":\"k\","
        "\"on_hand\":-1}", "negative_stock");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.set\",\"store_id\":\"s\",\"sku\":\"k\","
        "\"on_hand\":1.5}", "invalid_quantity");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.set\",\"store_id\":\"s\",\"sku\":\"k\","
        "\"on_hand\":1,\"unit\":\"kg\"}", "unsupported_unit");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.set\",\"store_id\":\"s\",\"sku\":\"a b\","
        "\"on_hand\":1}", "invalid_id");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.set\",\"store_id\":\"s\",\"on_hand\":1}",
        "missing_field");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.adjust\",\"store_id\":\"s\",\"sku\":\"k\","
        "\"delta\":0,\"reason\":\"sale\"}", "invalid_quantity");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.adjust\",\"store_id\":\"s\",\"sku\":\"k\","
        "\"delta\":2,\"reason\":\"Sale!\"}", "invalid_reason");
    expect_reason("canonical", NULL,
        "{\"type\":\"price.set\",\"sku\":\"k\",\"price\":{\"amount\":"
        "\"1.999\",\"currency\":\"EUR\"}}", "invalid_amount");
    expect_reason("canonical", NULL,
        "{\"type\":\"price.set\",\"sku\":\"k\",\"price\":{\"amount\":"
        "12,\"currency\":\"EUR\"}}", "invalid_amount");
    expect_reason("canonical", NULL,
        "{\"type\":\"price.set\",\"sku\":\"k\",\"price\":{\"amount\":"
        "\"12\",\"currency\":\"eur\"}}", "invalid_currency");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.set\",\"store_id\":\"s\",\"sku\":\"k\","
        "\"on_hand\":1,\"as_of\":\"yesterday\"}", "invalid_timestamp");
    expect_reason("canonical", NULL,
        "{\"type\":\"price.set\",\"sku\":\"k\",\"price\":{\"amount\":"
        "\"12\",\"currency\":\"ZZZ\"}}", "invalid_currency");
    expect_reason("canonical", NULL,
        "{\"type\":\"price.set\",\"sku\":\"k\",\"price\":{\"amount\":"
        "\"12.5\",\"currency\":\"JPY\"}}", "invalid_amount");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.set\",\"store_id\":\"s\",\"sku\":\"k\","
        "\"on_hand\":1,\"as_of\":\"2026-02-30T00:00:00Z\"}",
        "invalid_timestamp");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.set\",\"store_id\":\"s\",\"sku\":\"k\","
        "\"on_hand\":9223372036854775807}", "out_of_range");
    expect_reason("canonical", NULL,
        "{\"type\":\"stock.adjust\",\"store_id\":\"s\",\"sku\":\"k\","
        "\"delta\":-9223372036854775807,\"reason\":\"sale\"}",
        "out_of_range");
    expect_reason("canonical", NULL,
        "{\"type\":\"item.upsert\",\"item\":{\"id\":\"i\",\"name\":\"n\","
        "\"variants\":[{\"sku\":\"a\"},{\"sku\":\"a\"}]}}", "duplicate_sku");
    expect_reason("canonical", NULL,
        "{\"type\":\"item.upsert\",\"item\":{\"id\":\"i\"}}", "missing_field");
    expect_reason("canonical", NULL,
        "{\"type\":\"item.upsert\",\"item\":{\"id\":\"i\",\"name\":\"n\","
        "\"addon_groups\":[{\"id\":\"g\",\"name\":\"G\",\"min\":2,"
        "\"max\":1}]}}", "invalid_range");
}


/*
 * The body rule of the edge (commerce_inbound_parse_json) for every source:
 * what the module refuses with 400 the projector dead-letters for the same
 * reason (a message can reach Kafka without the module: kcat, a replay, a
 * location without commerce_webhook_json).
 */
static void
test_body_rule(void **state)
{
    size_t         i, k;
    json_error_t   jerr;
    proj_error_t   e;

    static const char  *sources[][2] = {
        { "canonical", NULL },
        { "shopify", "products/update" },
        { "shopify", "inventory_levels/update" },
    };

    static const char  *bodies[][2] = {
        { "{\"title\":\"a\",\"title\":\"b\"}", "duplicate_key" },
        { "{\"o\":{\"k\":1,\"k\":1}}", "duplicate_key" },
        { "{\"v\":[{\"id\":1,\"id\":2}]}", "duplicate_key" },
        { "\"a string\"", "not_an_object" },
        { "[{}]", "not_an_object" },
        { "42", "not_an_object" },
        { "null", "not_an_object" },
        { "{\"a\":\"\\u0000\"}", "invalid_json" },
        { "{\"a\":\"\xff\"}", "invalid_json" },
        { "{\"a\":1", "invalid_json" },
        { "", "invalid_json" },
    };

    for (i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
        for (k = 0; k < sizeof(bodies) / sizeof(bodies[0]); k++) {
            expect_reason(sources[i][0], sources[i][1], bodies[k][0],
                          bodies[k][1]);
            assert_string_equal(commerce_inbound_parse_json(bodies[k][0],
                                    strlen(bodies[k][0]), NULL, &jerr),
                                bodies[k][1]);
        }
    }

    /* the detail says where and why, as the edge's 400 does */
    (void) adapt("shopify", "products/update",
                 "{\"id\":1,\"title\":\"a\",\"id\":2}", &e);
    assert_string_equal(e.reason, "duplicate_key");
    assert_non_null(strstr(e.detail, "line 1 column "));
    assert_non_null(strstr(e.detail, "id"));

    (void) adapt("canonical", NULL, "\"stock.set\"", &e);
    assert_string_equal(e.reason, "not_an_object");
    assert_string_equal(e.detail,
                        "line 1 column 1: the top level is a string, "
                        "not an object");

    /* a reason of the list: counted in projector_dlq_total under its name */
    assert_true(proj_reason_index(COMMERCE_INBOUND_DUPLICATE_KEY) >= 0);
    assert_true(proj_reason_index(COMMERCE_INBOUND_NOT_OBJECT) >= 0);
    assert_true(proj_reason_index(COMMERCE_INBOUND_INVALID_JSON) >= 0);
}


static void
test_shopify_product(void **state)
{
    proj_error_t  e;
    json_t       *cmds, *c, *item, *maps;

    proj_shopify_set_currency("CAD");
    cmds = adapt("shopify", "products/update",
        "{\"id\":632910392,\"title\":\"IPod\",\"vendor\":\"Apple\","
        "\"tags\":\" a, b ,,c\",\"updated_at\":\"2024-01-01T09:00:00-05:00\","
        "\"options\":[{\"name\":\"Color\"}],"
        "\"variants\":[{\"id\":1,\"sku\":\"P\",\"price\":\"199.00\","
        "\"option1\":\"Pink\",\"inventory_item_id\":77},"
        "{\"id\":2,\"sku\":\"\",\"price\":\"5\"}]}", &e);
    assert_non_null(cmds);
    assert_int_equal(json_array_size(cmds), 3);

    c = json_array_get(cmds, 0);
    item = json_object_get(c, "item");
    assert_string_equal(json_string_value(json_object_get(item, "id")),
                        "shopify-632910392");
    assert_int_equal(json_array_size(json_object_get(item, "tags")), 3);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
        json_array_get(json_object_get(item, "variants"), 0), "options"),
        "Color")), "Pink");
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(json_object_get(item, "variants"), 1), "sku")),
        "shopify-variant-2");

    maps = json_object_get(c, "mappings");
    assert_int_equal(json_array_size(maps), 4);   /* product, 2 variants, */
                                                  /* 1 inventory item */
    assert_string_equal(json_string_value(json_object_get(json_object_get(
        json_array_get(cmds, 1), "price"), "currency")), "CAD");
    json_decref(cmds);
}


static void
test_shopify_inventory(void **state)
{
    proj_error_t  e;
    json_t       *cmds, *c;

    cmds = adapt("shopify", "inventory_levels/update",
        "{\"inventory_item_id\":77,\"location_id\":5,\"available\":3}", &e);
    assert_non_null(cmds);
    c = json_array_get(cmds, 0);
    assert_string_equal(json_string_value(json_object_get(c, "type")),
                        "stock.set");
    assert_string_equal(json_string_value(json_object_get(json_object_get(
        c, "sku_ref"), "external_id")), "77");
    assert_string_equal(json_string_value(json_object_get(json_object_get(
        c, "store_ref"), "default")), "shopify-location-5");
    json_decref(cmds);

    expect_reason("shopify", "orders/create", "{}", "unsupported_topic");
    expect_reason("shopify", NULL, "{}", "missing_topic");
    expect_reason("shopify", "inventory_levels/update",
        "{\"inventory_item_id\":77,\"location_id\":5,\"available\":-2}",
        "negative_stock");
    expect_reason("shopify", "products/create", "{\"title\":\"x\"}",
        "missing_field");
}


static void
test_helpers(void **state)
{
    char     a[37], b[37];
    int64_t  m;
    char    *hex, *s;

    assert_int_equal(proj_event_uuid("x|1#0#0", 7, 1700000000123LL, a), 0);
    assert_int_equal(proj_event_uuid("x|1#0#0", 7, 1700000000123LL, b), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 36);
    /* unix ms in the first 48 bits, version 8, RFC 9562 variant */
    assert_memory_equal(a, "018bcfe5-687b-8", 15);
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_int_equal(proj_event_uuid("x|1#0#1", 7, 1700000000123LL, b), 0);
    assert_string_not_equal(a, b);
    assert_memory_equal(a, b, 13);
    assert_int_equal(proj_event_uuid("x|1#0#0", 7, 1700000000124LL, b), 0);
    assert_string_not_equal(a, b);
    assert_true(strcmp(a, b) < 0);

    s = proj_json_compact("{\"a\" : 1, \"b\" : [1, 2], \"c\" : \"x : \\\" y\"}",
                          41);
    assert_string_equal(s, "{\"a\":1,\"b\":[1,2],\"c\":\"x : \\\" y\"}");
    free(s);

    assert_int_equal(proj_parse_amount("0.05", 2, &m), 0);
    assert_int_equal(m, 5);
    assert_int_equal(proj_parse_amount("10", 2, &m), 0);
    assert_int_equal(m, 1000);
    assert_int_equal(proj_parse_amount("10", 0, &m), 0);
    assert_int_equal(m, 1000);
    assert_int_equal(proj_parse_amount("10.5", 0, &m), -1);
    assert_int_equal(proj_parse_amount("-1", 2, &m), -1);
    assert_int_equal(proj_parse_amount("1.", 2, &m), -1);
    assert_int_equal(proj_parse_amount("1e3", 2, &m), -1);
    assert_int_equal(proj_parse_amount("99999999999999999999", 2, &m), -1);

    assert_true(proj_valid_timestamp("2024-06-01T12:00:00Z"));
    assert_true(proj_valid_timestamp("2024-06-01T12:00:00.123-05:00"));
    assert_true(proj_valid_timestamp("2024-02-29T23:59:60Z"));
    assert_true(proj_valid_timestamp("2000-02-29T00:00:00Z"));
    assert_false(proj_valid_timestamp("2024-06-01 12:00:00Z"));
    assert_false(proj_valid_timestamp("2024-06-01T12:00:00"));
    assert_false(proj_valid_timestamp("2026-02-30T00:00:00Z"));
    assert_false(proj_valid_timestamp("2026-02-29T00:00:00Z"));
    assert_false(proj_valid_timestamp("1900-02-29T00:00:00Z"));
    assert_false(proj_valid_timestamp("2026-04-31T00:00:00Z"));
    assert_false(proj_valid_timestamp("2026-13-01T00:00:00Z"));
    assert_false(proj_valid_timestamp("2026-00-01T00:00:00Z"));
    assert_false(proj_valid_timestamp("0000-01-01T00:00:00Z"));
    assert_false(proj_valid_timestamp("2026-01-01T24:00:00Z"));
    assert_false(proj_valid_timestamp("2026-01-01T00:60:00Z"));
    assert_false(proj_valid_timestamp("2026-01-01T00:00:61Z"));
    assert_false(proj_valid_timestamp("2026-01-01T00:00:00+24:00"));
    assert_false(proj_valid_timestamp("2026-01-01T00:00:00+01:60"));

    hex = proj_bytea_hex("\0\xff", 2);
    assert_string_equal(hex, "\\x00ff");
    free(hex);
}


static void
test_frames(void **state)
{
    cw_buf_t             b;
    proj_frame_t         f;
    size_t               off = 0, hoff = 0, nlen, vlen;
    const char          *name, *value;
    const char *const    h1[] = { "event_type", "a.b", "traceparent", NULL,
                                  "event_id", "e1" };

    cw_buf_init(&b);
    proj_frame_put(&b, "k1", 2, "{\"v\":1}", 7, h1, 3);
    proj_frame_put(&b, "", 0, "", 0, NULL, 0);
    assert_false(b.oom);

    assert_int_equal(proj_frame_next((unsigned char *) b.data, b.len, &off,
                                     &f), 1);
    assert_int_equal(f.klen, 2);
    assert_memory_equal(f.key, "k1", 2);
    assert_int_equal(f.vlen, 7);
    assert_memory_equal(f.value, "{\"v\":1}", 7);
    assert_int_equal(f.nhdrs, 2);          /* the NULL value is left out */
    assert_int_equal(proj_frame_header(&f, &hoff, &name, &nlen, &value,
                                       &vlen), 1);
    assert_int_equal(nlen, 10);
    assert_memory_equal(name, "event_type", 10);
    assert_int_equal(vlen, 3);
    assert_memory_equal(value, "a.b", 3);
    assert_int_equal(proj_frame_header(&f, &hoff, &name, &nlen, &value,
                                       &vlen), 1);
    assert_memory_equal(name, "event_id", 8);
    assert_int_equal(proj_frame_header(&f, &hoff, &name, &nlen, &value,
                                       &vlen), 0);

    assert_int_equal(proj_frame_next((unsigned char *) b.data, b.len, &off,
                                     &f), 1);
    assert_int_equal(f.klen, 0);
    assert_int_equal(f.vlen, 0);
    assert_int_equal(f.nhdrs, 0);
    assert_int_equal(proj_frame_next((unsigned char *) b.data, b.len, &off,
                                     &f), 0);

    /* Cut anywhere inside, the bytes are refused, never over-read. */
    for (size_t cut = 1; cut < b.len - 10; cut++) {
        off = 0;
        if (proj_frame_next((unsigned char *) b.data, cut, &off, &f) == 1) {
            assert_true(off <= cut);
            assert_int_not_equal(proj_frame_next((unsigned char *) b.data,
                                                 cut, &off, &f), 1);
        }
    }

    cw_buf_free(&b);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_item),
        cmocka_unit_test(test_canonical_batch_and_stock),
        cmocka_unit_test(test_validation_reasons),
        cmocka_unit_test(test_body_rule),
        cmocka_unit_test(test_shopify_product),
        cmocka_unit_test(test_shopify_inventory),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_frames),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
