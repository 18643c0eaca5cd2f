/*
 * cw_retry: backoff growth, cap, jitter bounds and attempt limit; retry
 * budget. Time is passed in explicitly. (The circuit breaker is tested
 * with common/: test_commerce_breaker.c.)
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cw_retry.h"


static void
test_backoff_no_jitter(void **state)
{
    cw_backoff_t  b;

    cw_backoff_init(&b, 100, 1000, 0.0, 0, 1);
    assert_int_equal(cw_backoff_next(&b), 100);
    assert_int_equal(cw_backoff_next(&b), 200);
    assert_int_equal(cw_backoff_next(&b), 400);
    assert_int_equal(cw_backoff_next(&b), 800);
    assert_int_equal(cw_backoff_next(&b), 1000);
    assert_int_equal(cw_backoff_next(&b), 1000);
    cw_backoff_reset(&b);
    assert_int_equal(cw_backoff_next(&b), 100);
}


static void
test_backoff_jitter_bounds(void **state)
{
    cw_backoff_t  b;
    int64_t       d, nominal, lo_seen = INT64_MAX, hi_seen = 0;
    int           i, k;

    for (k = 0; k < 200; k++) {
        cw_backoff_init(&b, 100, 10000, 0.5, 0, (uint64_t) k + 1);
        nominal = 100;
        for (i = 0; i < 8; i++) {
            d = cw_backoff_next(&b);
            assert_true(d >= nominal / 2);
            assert_true(d <= nominal);
            if (i == 3) {
                lo_seen = d < lo_seen ? d : lo_seen;
                hi_seen = d > hi_seen ? d : hi_seen;
            }
            nominal = nominal * 2 > 10000 ? 10000 : nominal * 2;
        }
    }
    /* jitter actually spreads the delays */
    assert_true(hi_seen > lo_seen);
}


static void
test_backoff_attempts(void **state)
{
    cw_backoff_t  b;

    cw_backoff_init(&b, 10, 100, 0.2, 3, 7);
    assert_true(cw_backoff_next(&b) >= 0);
    assert_true(cw_backoff_next(&b) >= 0);
    assert_true(cw_backoff_next(&b) >= 0);
    assert_int_equal(cw_backoff_next(&b), -1);
    cw_backoff_reset(&b);
    assert_true(cw_backoff_next(&b) >= 0);
}


static void
test_budget(void **state)
{
    cw_budget_t  b;
    int          i, allowed = 0;

    /* 10% of requests may be retried, no time-based floor */
    cw_budget_init(&b, 0.1, 0, 100, 0);
    assert_int_equal(cw_budget_try_retry(&b, 0), 0);
    for (i = 0; i < 50; i++) {
        cw_budget_on_request(&b, 0);
    }
    for (i = 0; i < 50; i++) {
        allowed += cw_budget_try_retry(&b, 0);
    }
    assert_int_equal(allowed, 5);

    /* the floor refills with time: 2 per second */
    cw_budget_init(&b, 0.1, 2, 100, 0);
    assert_int_equal(cw_budget_try_retry(&b, 0), 0);
    assert_int_equal(cw_budget_try_retry(&b, 1000), 1);
    assert_int_equal(cw_budget_try_retry(&b, 1000), 1);
    assert_int_equal(cw_budget_try_retry(&b, 1000), 0);

    /* saved-up tokens are capped */
    cw_budget_init(&b, 1, 0, 3, 0);
    for (i = 0; i < 10; i++) {
        cw_budget_on_request(&b, 0);
    }
    allowed = 0;
    for (i = 0; i < 10; i++) {
        allowed += cw_budget_try_retry(&b, 0);
    }
    assert_int_equal(allowed, 3);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_no_jitter),
        cmocka_unit_test(test_backoff_jitter_bounds),
        cmocka_unit_test(test_backoff_attempts),
        cmocka_unit_test(test_budget),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
