/*
 * Unit tests of the projector's folds: the stock and price rules both
 * apply paths use (stale counts, underflows, versions, orderability),
 * the JSON of their events, and the stock read-model value.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../workers/projector/proj_fold.h"


static proj_stock_cmd_t
stock_set(long long on_hand, long long as_of_us)
{
    proj_stock_cmd_t  c;

    memset(&c, 0, sizeof(c));
    c.store = "store-1";
    c.sku = "SKU-1";
    c.reason = "count";
    c.absolute = 1;
    c.qty = on_hand;
    c.as_of = as_of_us >= 0 ? "2026-01-01T00:00:00Z" : NULL;
    c.as_of_us = as_of_us;

    return c;
}


static proj_stock_cmd_t
stock_adjust(long long delta)
{
    proj_stock_cmd_t  c;

    memset(&c, 0, sizeof(c));
    c.store = "store-1";
    c.sku = "SKU-1";
    c.reason = delta < 0 ? "sale" : "receipt";
    c.qty = delta;
    c.as_of_us = -1;

    return c;
}


static proj_stock_level_t
level(long long on_hand, long long reserved, long long version,
    long long ts_us)
{
    proj_stock_level_t  lv = { 1, on_hand, reserved, version, ts_us, NULL, 0 };

    return lv;
}


static void
test_stock_new_level(void **state)
{
    proj_stock_level_t   lv = { 0, 0, 0, 0, -1, NULL, 0 };
    proj_stock_change_t  ch;
    proj_stock_cmd_t     c = stock_set(7, 1000);

    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_APPLIED);
    assert_true(lv.exists);
    assert_int_equal(lv.on_hand, 7);
    assert_int_equal(lv.reserved, 0);
    assert_int_equal(lv.version, 1);
    assert_int_equal(lv.ts_us, 1000);
    assert_string_equal(lv.as_of, c.as_of);
    assert_int_equal(ch.delta, 7);
    assert_true(ch.orderable);
    assert_true(ch.orderability);

    /* A count of zero on a new level: not orderable, and it was not. */
    lv = (proj_stock_level_t) { 0, 0, 0, 0, -1, NULL, 0 };
    c = stock_set(0, -1);
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(lv.version, 1);
    assert_false(ch.orderable);
    assert_false(ch.orderability);
    assert_null(lv.as_of);
    assert_int_equal(lv.ts_us, -1);
}


static void
test_stock_stale_count(void **state)
{
    proj_stock_level_t   lv = level(5, 0, 3, 2000);
    proj_stock_change_t  ch;
    proj_stock_cmd_t     older = stock_set(9, 1999);
    proj_stock_cmd_t     same = stock_set(8, 2000);
    proj_stock_cmd_t     unstamped = stock_set(6, -1);

    assert_int_equal(proj_stock_fold(&lv, &older, &ch), PROJ_FOLD_STALE);
    assert_int_equal(lv.on_hand, 5);
    assert_int_equal(lv.version, 3);
    assert_int_equal(lv.ts_us, 2000);

    /* As old as the stored state is not older. */
    assert_int_equal(proj_stock_fold(&lv, &same, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(lv.on_hand, 8);
    assert_int_equal(lv.version, 4);
    assert_int_equal(ch.delta, 3);
    assert_false(ch.orderability);

    /* Without a stamp a count applies, and keeps the stored stamp. */
    assert_int_equal(proj_stock_fold(&lv, &unstamped, &ch),
                     PROJ_FOLD_APPLIED);
    assert_int_equal(lv.on_hand, 6);
    assert_int_equal(lv.version, 5);
    assert_int_equal(lv.ts_us, 2000);

    /* A level without a stamp takes any count. */
    lv = level(5, 0, 1, -1);
    assert_int_equal(proj_stock_fold(&lv, &older, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(lv.ts_us, 1999);
}


static void
test_stock_movements(void **state)
{
    proj_stock_level_t   lv = { 0, 0, 0, 0, -1, NULL, 0 };
    proj_stock_change_t  ch;
    proj_stock_cmd_t     c;

    /* A sale of a level that does not exist underflows. */
    c = stock_adjust(-1);
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_UNDERFLOW);
    assert_false(lv.exists);

    /* A receipt creates it. */
    c = stock_adjust(3);
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(lv.on_hand, 3);
    assert_int_equal(lv.version, 1);
    assert_int_equal(ch.delta, 3);
    assert_true(ch.orderability);

    /* Below zero: refused, the level as it was. */
    c = stock_adjust(-4);
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_UNDERFLOW);
    assert_int_equal(lv.on_hand, 3);
    assert_int_equal(lv.version, 1);

    /* Down to zero: no longer orderable. */
    c = stock_adjust(-3);
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(lv.on_hand, 0);
    assert_int_equal(lv.version, 2);
    assert_int_equal(ch.delta, -3);
    assert_false(ch.orderable);
    assert_true(ch.orderability);

    /* A movement's as_of is not compared, nor kept. */
    lv = level(2, 0, 4, 5000);
    c = stock_adjust(1);
    c.as_of = "2020-01-01T00:00:00Z";
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(lv.ts_us, 5000);
    assert_null(lv.as_of);
}


static void
test_stock_reserved(void **state)
{
    proj_stock_level_t   lv = level(5, 5, 2, -1);
    proj_stock_change_t  ch;
    proj_stock_cmd_t     c = stock_adjust(1);

    /* Available is on_hand - reserved: 0 -> 1 makes it orderable. */
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(lv.reserved, 5);
    assert_true(ch.orderable);
    assert_true(ch.orderability);

    /* A count below the reserved quantity: applied, what it no longer
     * covers is short, and nothing is orderable. */
    c = stock_set(4, -1);
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(ch.delta, -2);
    assert_int_equal(lv.on_hand, 4);
    assert_int_equal(lv.reserved, 4);
    assert_int_equal(lv.shortfall, 1);
    assert_int_equal(ch.reserved_delta, -1);
    assert_false(ch.orderable);
    assert_true(ch.orderability);

    /* A sale below that too. */
    c = stock_adjust(-3);
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(lv.reserved, 1);
    assert_int_equal(lv.shortfall, 4);
    assert_int_equal(ch.reserved_delta, -3);

    /* Stock that comes back covers the shortfall first: 4 of 6 go to
     * the reservations, 2 are available. */
    c = stock_adjust(6);
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(lv.on_hand, 7);
    assert_int_equal(lv.reserved, 5);
    assert_int_equal(lv.shortfall, 0);
    assert_int_equal(ch.reserved_delta, 4);
    assert_true(ch.orderable);

    /* A new level has no reservations. */
    lv = (proj_stock_level_t) { 0, 0, 0, 0, -1, NULL, 0 };
    c = stock_set(3, -1);
    assert_int_equal(proj_stock_fold(&lv, &c, &ch), PROJ_FOLD_APPLIED);
    assert_int_equal(lv.reserved, 0);
    assert_int_equal(lv.shortfall, 0);
    assert_int_equal(ch.reserved_delta, 0);
}


/* A batch's commands on one key, folded one after the other: an older
 * count is stale, versions follow each other, orderability changes. */
static void
test_stock_sequence(void **state)
{
    int                  i, applied = 0, stale = 0;
    char                 got[256];
    size_t               len = 0;
    proj_stock_level_t   lv = { 0, 0, 0, 0, -1, NULL, 0 };
    proj_stock_change_t  ch;
    proj_stock_cmd_t     c[5];

    c[0] = stock_set(5, 2000);
    c[1] = stock_adjust(-5);
    c[2] = stock_set(9, 1000);              /* older: stale */
    c[3] = stock_adjust(2);
    c[4] = stock_set(4, 3000);

    for (i = 0; i < 5; i++) {
        switch (proj_stock_fold(&lv, &c[i], &ch)) {
        case PROJ_FOLD_APPLIED:
            applied++;
            len += (size_t) snprintf(got + len, sizeof(got) - len,
                                     "%s%lld:%lld:%lld:%d",
                                     len ? "," : "", ch.delta, lv.on_hand,
                                     lv.version, ch.orderable);
            break;
        case PROJ_FOLD_STALE:
            stale++;
            break;
        default:
            fail_msg("command %d refused", i);
        }
    }

    assert_int_equal(applied, 4);
    assert_int_equal(stale, 1);
    assert_string_equal(got, "5:5:1:1,-5:0:2:0,2:2:3:1,2:4:4:1");
    assert_int_equal(lv.ts_us, 3000);
}


static void
test_price_fold(void **state)
{
    proj_price_row_t  row = { 0, 0, -1, NULL, 0, NULL };
    proj_price_cmd_t  c;

    memset(&c, 0, sizeof(c));
    c.sku = "SKU-1";
    c.store = "";
    c.currency = "EUR";
    c.amount = 1290;
    c.as_of = "2026-01-01T00:00:00Z";
    c.as_of_us = 2000;

    assert_int_equal(proj_price_fold(&row, &c), PROJ_FOLD_APPLIED);
    assert_true(row.exists);
    assert_int_equal(row.version, 1);
    assert_int_equal(row.amount, 1290);
    assert_string_equal(row.currency, "EUR");
    assert_int_equal(row.ts_us, 2000);
    assert_string_equal(row.as_of, c.as_of);

    c.amount = 999;
    c.as_of_us = 1999;
    assert_int_equal(proj_price_fold(&row, &c), PROJ_FOLD_STALE);
    assert_int_equal(row.amount, 1290);
    assert_int_equal(row.version, 1);

    c.as_of = NULL;
    c.as_of_us = -1;
    assert_int_equal(proj_price_fold(&row, &c), PROJ_FOLD_APPLIED);
    assert_int_equal(row.amount, 999);
    assert_int_equal(row.version, 2);
    assert_int_equal(row.ts_us, 2000);
}


static void
expect_text(cw_buf_t *b, const char *want)
{
    assert_false(b->oom);
    assert_string_equal(b->data, want);
    cw_buf_reset(b);
}


static void
test_event_data(void **state)
{
    cw_buf_t             b;
    proj_stock_level_t   lv = level(3, 1, 4, -1);
    proj_stock_change_t  ch = { -2, 1, 0, 0 };
    proj_stock_cmd_t     c = stock_adjust(-2);

    cw_buf_init(&b);
    c.sku = "SKU \"1\"\xc3\xa9";

    proj_stock_event_data(&b, &c, &lv, &ch);
    expect_text(&b, "{\"store_id\":\"store-1\",\"sku\":\"SKU \\\"1\\\"\xc3\xa9\","
                "\"on_hand\":3,\"reserved\":1,\"available\":2,\"delta\":-2,"
                "\"movement\":\"adjust\",\"reason\":\"sale\","
                "\"orderable\":true}");

    c = stock_set(0, -1);
    lv = level(0, 0, 5, -1);
    ch = (proj_stock_change_t) { -3, 0, 1, 0 };
    proj_stock_event_data(&b, &c, &lv, &ch);
    expect_text(&b, "{\"store_id\":\"store-1\",\"sku\":\"SKU-1\","
                "\"on_hand\":0,\"reserved\":0,\"available\":0,\"delta\":-3,"
                "\"movement\":\"set\",\"reason\":\"count\","
                "\"orderable\":false}");

    proj_orderability_event_data(&b, &c, &lv);
    expect_text(&b, "{\"store_id\":\"store-1\",\"sku\":\"SKU-1\","
                "\"orderable\":false,\"available\":0}");

    proj_price_event_data(&b, "SKU-1", NULL, "12.90", "EUR");
    expect_text(&b, "{\"sku\":\"SKU-1\",\"store_id\":null,"
                "\"price\":{\"amount\":\"12.90\",\"currency\":\"EUR\"}}");

    proj_price_event_data(&b, "SKU-1", "store-1", "5", "USD");
    expect_text(&b, "{\"sku\":\"SKU-1\",\"store_id\":\"store-1\","
                "\"price\":{\"amount\":\"5\",\"currency\":\"USD\"}}");

    cw_buf_free(&b);
}


/* The value as rm_stock_values renders it, compacted: the sku and price
 * come as PostgreSQL writes them, with blanks; strings stay as they are;
 * the version is the value's (the level's and its prices' added up),
 * not the level's. t/80 compares it with the view itself, byte for
 * byte. */
static void
test_stock_value(void **state)
{
    char                *v;
    proj_stock_level_t   lv = level(7, 2, 9, -1);

    v = proj_stock_value("\"SKU : \\\"x\\\" 1\"", &lv, 12,
                         "2026-12-03T10:51:01.123Z",
                         "{\"amount\" : \"5.00\", \"currency\" : \"EUR\"}");
    assert_non_null(v);
    assert_string_equal(v, "{\"sku\":\"SKU : \\\"x\\\" 1\",\"on_hand\":7,"
                        "\"reserved\":2,\"available\":5,\"orderable\":true,"
                        "\"version\":12,\"updated_at\":"
                        "\"2026-12-03T10:51:01.123Z\",\"price\":"
                        "{\"amount\":\"5.00\",\"currency\":\"EUR\"}}");
    free(v);

    lv = level(1, 1, 1, -1);
    v = proj_stock_value("\"S\"", &lv, 1, "2026-12-03T10:51:01.000Z",
                         NULL);
    assert_non_null(v);
    assert_string_equal(v, "{\"sku\":\"S\",\"on_hand\":1,\"reserved\":1,"
                        "\"available\":0,\"orderable\":false,\"version\":1,"
                        "\"updated_at\":\"2026-12-03T10:51:01.000Z\","
                        "\"price\":null}");
    free(v);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_stock_new_level),
        cmocka_unit_test(test_stock_stale_count),
        cmocka_unit_test(test_stock_movements),
        cmocka_unit_test(test_stock_reserved),
        cmocka_unit_test(test_stock_sequence),
        cmocka_unit_test(test_price_fold),
        cmocka_unit_test(test_event_data),
        cmocka_unit_test(test_stock_value),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
