/*
 * Unit tests of the circuit breaker shared by the module and the workers
 * (common/commerce_breaker.c): the module's use, every call through while
 * half-open, and the workers' use, one probe at a time.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include "commerce_breaker.h"


static void
test_opens_at_threshold(void **state)
{
    commerce_breaker_t  b;

    (void) state;

    commerce_breaker_init(&b, 3, 1000, 0);

    assert_int_equal(b.state, COMMERCE_BREAKER_CLOSED);
    assert_int_equal(commerce_breaker_allow(&b, 0), 1);
    assert_true(commerce_breaker_retry_after(&b, 0) == 0);

    commerce_breaker_failure(&b, 10);
    commerce_breaker_failure(&b, 20);

    assert_int_equal(b.state, COMMERCE_BREAKER_CLOSED);
    assert_int_equal(commerce_breaker_allow(&b, 20), 1);
    assert_true(commerce_breaker_retry_after(&b, 20) == 0);

    commerce_breaker_failure(&b, 100);

    assert_int_equal(b.state, COMMERCE_BREAKER_OPEN);
    assert_true(b.open_until == 1100);
    assert_true(b.opens == 1);

    /* open: every call is refused until open_until */
    assert_int_equal(commerce_breaker_allow(&b, 100), 0);
    assert_int_equal(commerce_breaker_allow(&b, 600), 0);
    assert_int_equal(commerce_breaker_allow(&b, 1099), 0);
    assert_int_equal(b.state, COMMERCE_BREAKER_OPEN);

    assert_true(commerce_breaker_retry_after(&b, 100) == 1000);
    assert_true(commerce_breaker_retry_after(&b, 1099) == 1);
    assert_true(commerce_breaker_retry_after(&b, 1100) == 0);

    /* late failures of calls sent before it opened do not extend it */
    commerce_breaker_failure(&b, 500);
    assert_true(b.open_until == 1100);
    assert_true(b.opens == 1);

    /* time is up: half-open, calls flow again (no probe limit) */
    assert_int_equal(commerce_breaker_allow(&b, 1100), 1);
    assert_int_equal(b.state, COMMERCE_BREAKER_HALF_OPEN);
    assert_int_equal(commerce_breaker_allow(&b, 1101), 1);
    assert_int_equal(commerce_breaker_allow(&b, 1102), 1);
    assert_true(commerce_breaker_retry_after(&b, 1101) == 0);
}


static void
test_half_open(void **state)
{
    commerce_breaker_t  b;

    (void) state;

    commerce_breaker_init(&b, 3, 1000, 0);

    commerce_breaker_failure(&b, 0);
    commerce_breaker_failure(&b, 0);
    commerce_breaker_failure(&b, 0);
    assert_int_equal(b.state, COMMERCE_BREAKER_OPEN);

    assert_int_equal(commerce_breaker_allow(&b, 1000), 1);
    assert_int_equal(b.state, COMMERCE_BREAKER_HALF_OPEN);

    /* one failure in half-open reopens for a full period */
    commerce_breaker_failure(&b, 1200);
    assert_int_equal(b.state, COMMERCE_BREAKER_OPEN);
    assert_true(b.open_until == 2200);
    assert_int_equal(commerce_breaker_allow(&b, 1500), 0);
    assert_true(commerce_breaker_retry_after(&b, 1500) == 700);

    /* half-open again, and a success closes it */
    assert_int_equal(commerce_breaker_allow(&b, 2200), 1);
    assert_int_equal(b.state, COMMERCE_BREAKER_HALF_OPEN);

    commerce_breaker_success(&b);
    assert_int_equal(b.state, COMMERCE_BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(commerce_breaker_allow(&b, 2300), 1);

    /* closed again: it takes the full threshold to reopen */
    commerce_breaker_failure(&b, 2400);
    commerce_breaker_failure(&b, 2400);
    assert_int_equal(b.state, COMMERCE_BREAKER_CLOSED);
    commerce_breaker_failure(&b, 2400);
    assert_int_equal(b.state, COMMERCE_BREAKER_OPEN);
    assert_true(b.open_until == 3400);

    /* a failure past the open time, before any call: open again */
    commerce_breaker_failure(&b, 3500);
    assert_int_equal(b.state, COMMERCE_BREAKER_OPEN);
    assert_true(b.open_until == 4500);
}


/* failures must be consecutive: a success in between starts over */
static void
test_consecutive(void **state)
{
    int                 i;
    commerce_breaker_t  b;

    (void) state;

    commerce_breaker_init(&b, 3, 1000, 0);

    for (i = 0; i < 10; i++) {
        commerce_breaker_failure(&b, i);
        commerce_breaker_failure(&b, i);
        commerce_breaker_success(&b);
    }

    assert_int_equal(b.state, COMMERCE_BREAKER_CLOSED);
    assert_int_equal(commerce_breaker_allow(&b, 100), 1);

    /* a threshold of 0 behaves as 1: the first failure opens */
    commerce_breaker_init(&b, 0, 50, 0);
    commerce_breaker_failure(&b, 10);
    assert_int_equal(b.state, COMMERCE_BREAKER_OPEN);
    assert_int_equal(commerce_breaker_allow(&b, 59), 0);
    assert_int_equal(commerce_breaker_allow(&b, 60), 1);
}


/* the workers' breaker: exactly one probe while half-open */
static void
test_one_probe(void **state)
{
    commerce_breaker_t  b;

    (void) state;

    commerce_breaker_init(&b, 3, 1000, 1);
    assert_int_equal(commerce_breaker_state(&b, 0), COMMERCE_BREAKER_CLOSED);

    /* failures must be consecutive */
    commerce_breaker_failure(&b, 0);
    commerce_breaker_failure(&b, 0);
    commerce_breaker_success(&b);
    commerce_breaker_failure(&b, 0);
    commerce_breaker_failure(&b, 0);
    assert_int_equal(commerce_breaker_allow(&b, 0), 1);
    commerce_breaker_failure(&b, 10);
    assert_int_equal(commerce_breaker_state(&b, 10), COMMERCE_BREAKER_OPEN);
    assert_true(b.opens == 1);

    /* open: fail fast until the timeout */
    assert_int_equal(commerce_breaker_allow(&b, 500), 0);
    assert_int_equal(commerce_breaker_allow(&b, 1009), 0);

    /* half-open: exactly one probe */
    assert_int_equal(commerce_breaker_state(&b, 1010),
                     COMMERCE_BREAKER_HALF_OPEN);
    assert_int_equal(commerce_breaker_allow(&b, 1010), 1);
    assert_int_equal(commerce_breaker_allow(&b, 1011), 0);

    /* the probe fails: open again for a full period */
    commerce_breaker_failure(&b, 1020);
    assert_int_equal(commerce_breaker_state(&b, 1500), COMMERCE_BREAKER_OPEN);
    assert_int_equal(commerce_breaker_allow(&b, 2019), 0);
    assert_true(b.opens == 2);

    /* the next probe succeeds: closed */
    assert_int_equal(commerce_breaker_allow(&b, 2020), 1);
    commerce_breaker_success(&b);
    assert_int_equal(commerce_breaker_state(&b, 2021),
                     COMMERCE_BREAKER_CLOSED);
    assert_int_equal(commerce_breaker_allow(&b, 2021), 1);
    assert_int_equal(commerce_breaker_allow(&b, 2022), 1);
}


/* the Kafka producer's use: "all brokers down" opens it at once */
static void
test_trip(void **state)
{
    commerce_breaker_t  b;

    (void) state;

    commerce_breaker_init(&b, 3, 1000, 1);

    commerce_breaker_trip(&b, 100);
    assert_int_equal(commerce_breaker_state(&b, 100), COMMERCE_BREAKER_OPEN);
    assert_int_equal(commerce_breaker_allow(&b, 500), 0);
    assert_int_equal(commerce_breaker_retry_after(&b, 600), 500);
    assert_int_equal(b.opens, 1);

    /* tripped again while open: the period is not extended */
    commerce_breaker_trip(&b, 900);
    assert_int_equal(commerce_breaker_retry_after(&b, 900), 200);
    assert_int_equal(b.opens, 1);

    /* half-open: one probe, whose success closes it */
    assert_int_equal(commerce_breaker_allow(&b, 1100), 1);
    assert_int_equal(commerce_breaker_allow(&b, 1101), 0);
    commerce_breaker_success(&b);
    assert_int_equal(commerce_breaker_state(&b, 1102),
                     COMMERCE_BREAKER_CLOSED);

    /* and a closed breaker needs the full count again */
    commerce_breaker_failure(&b, 1200);
    assert_int_equal(commerce_breaker_allow(&b, 1201), 1);
}


static void
test_state_names(void **state)
{
    (void) state;

    assert_string_equal(commerce_breaker_state_name(COMMERCE_BREAKER_CLOSED),
                        "closed");
    assert_string_equal(commerce_breaker_state_name(COMMERCE_BREAKER_OPEN),
                        "open");
    assert_string_equal(
        commerce_breaker_state_name(COMMERCE_BREAKER_HALF_OPEN),
        "half_open");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_at_threshold),
        cmocka_unit_test(test_half_open),
        cmocka_unit_test(test_consecutive),
        cmocka_unit_test(test_one_probe),
        cmocka_unit_test(test_trip),
        cmocka_unit_test(test_state_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
