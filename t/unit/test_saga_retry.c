/*
 * The saga's retry policy and step table: the delay table, its cap and
 * jitter bounds for any attempt number, policy checks, the defaults,
 * names and idempotency keys.
 */

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../workers/saga/saga_def.h"


static saga_retry_t
policy(int64_t initial, double coefficient, int64_t max, double jitter)
{
    saga_retry_t  p;

    memset(&p, 0, sizeof(p));
    p.timeout_ms = 30000;
    p.initial_ms = initial;
    p.coefficient = coefficient;
    p.max_ms = max;
    p.max_attempts = 5;
    p.jitter = jitter;

    return p;
}


static void
test_delay_table(void **state)
{
    static const int64_t  want[] = {
        1000, 2000, 4000, 8000, 16000, 32000, 64000, 100000, 100000
    };
    saga_retry_t          p;
    unsigned              i;

    p = policy(1000, 2.0, 100000, 0.0);
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(saga_retry_delay(&p, i + 1, 0.3), want[i]);
    }

    /* overflow-safe: the cap, for any attempt number */
    assert_int_equal(saga_retry_delay(&p, 64, 0.3), 100000);
    assert_int_equal(saga_retry_delay(&p, 1100, 0.3), 100000);
    assert_int_equal(saga_retry_delay(&p, UINT_MAX, 0.3), 100000);
    assert_int_equal(saga_retry_delay(&p, 0, 0.3), 1000);

    /* another coefficient, and none */
    p = policy(500, 3.0, 20000, 0.0);
    assert_int_equal(saga_retry_delay(&p, 1, 0), 500);
    assert_int_equal(saga_retry_delay(&p, 2, 0), 1500);
    assert_int_equal(saga_retry_delay(&p, 3, 0), 4500);
    assert_int_equal(saga_retry_delay(&p, 4, 0), 13500);
    assert_int_equal(saga_retry_delay(&p, 5, 0), 20000);
    p = policy(700, 1.0, 20000, 0.0);
    assert_int_equal(saga_retry_delay(&p, 1, 0), 700);
    assert_int_equal(saga_retry_delay(&p, UINT_MAX, 0), 700);

    /* no interval: again at once */
    p = policy(0, 2.0, 0, 0.5);
    assert_int_equal(saga_retry_delay(&p, 9, 0.9), 0);
    /* 0 times an infinite power is not a number: still 0 */
    assert_int_equal(saga_retry_delay(&p, UINT_MAX, 0.9), 0);
}


static void
test_delay_jitter(void **state)
{
    saga_retry_t  p;
    int64_t       d, lo, hi;
    unsigned      a;
    int           i;

    p = policy(1000, 2.0, 100000, 0.2);

    /* the ends and the middle of the factor's range */
    assert_int_equal(saga_retry_delay(&p, 1, 0.0), 800);
    assert_int_equal(saga_retry_delay(&p, 1, 0.5), 1000);
    assert_int_equal(saga_retry_delay(&p, 1, 0.75), 1100);
    assert_int_equal(saga_retry_delay(&p, 1, 0.999999999), 1199);
    assert_int_equal(saga_retry_delay(&p, 3, 0.25), 3600);

    /* random numbers out of [0, 1) are clamped */
    assert_int_equal(saga_retry_delay(&p, 1, -3.0), 800);
    assert_int_equal(saga_retry_delay(&p, 1, NAN), 800);
    assert_int_equal(saga_retry_delay(&p, 1, 1.0), 1200);
    assert_int_equal(saga_retry_delay(&p, 1, 7.0), 1200);

    /* every attempt within [d * 0.8, d * 1.2], never above cap * 1.2;
     * i = 1000 is 1.0, clamped: the top of the range */
    for (a = 1; a < 40; a++) {
        lo = INT64_MAX;
        hi = 0;
        d = 1000LL << (a - 1 < 20 ? a - 1 : 20);
        d = d > 100000 ? 100000 : d;
        for (i = 0; i <= 1000; i++) {
            int64_t  v = saga_retry_delay(&p, a, i / 1000.0);

            assert_true(v >= d * 8 / 10);
            assert_true(v <= d * 12 / 10);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        assert_int_equal(lo, d * 8 / 10);
        assert_true(hi >= d * 12 / 10 - 1);
    }

    /* full jitter: from 0 to twice the delay */
    p = policy(1000, 2.0, 100000, 1.0);
    assert_int_equal(saga_retry_delay(&p, 1, 0.0), 0);
    assert_int_equal(saga_retry_delay(&p, 30, 0.999999999), 199999);
}


static void
test_policy_check(void **state)
{
    saga_retry_t  p;
    char          err[128];

    p = policy(1000, 2.0, 100000, 0.2);
    assert_int_equal(saga_retry_check(&p, err, sizeof(err)), 0);

    p.timeout_ms = 0;
    assert_int_equal(saga_retry_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "timeout must be 1 ms to 1 day");

    p = policy(1000, 2.0, 100000, 0.2);
    p.max_attempts = 0;
    assert_int_equal(saga_retry_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "max attempts must be at least 1");

    p = policy(1000, 0.5, 100000, 0.2);
    assert_int_equal(saga_retry_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "backoff coefficient must be 1 to 1000");

    p = policy(1000, NAN, 100000, 0.2);
    assert_int_equal(saga_retry_check(&p, err, sizeof(err)), -1);

    p = policy(5000, 2.0, 1000, 0.2);
    assert_int_equal(saga_retry_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err,
                        "initial interval must be 0 to the maximum interval");

    p = policy(1000, 2.0, SAGA_RETRY_LIMIT_MS + 1, 0.2);
    assert_int_equal(saga_retry_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "maximum interval must be at most 1 day");

    p = policy(1000, 2.0, 100000, 1.5);
    assert_int_equal(saga_retry_check(&p, err, sizeof(err)), -1);
    assert_string_equal(err, "jitter must be 0 to 1");

    p = policy(1000, 2.0, 100000, NAN);
    assert_int_equal(saga_retry_check(&p, err, sizeof(err)), -1);
}


static void
test_defaults(void **state)
{
    saga_policies_t     pol;
    const saga_retry_t  *r;
    char                 err[128];

    saga_policies_default(&pol);
    assert_int_equal(saga_policies_check(&pol, err, sizeof(err)), 0);

    r = &pol.retry[SAGA_RESERVE][SAGA_FORWARD];
    assert_int_equal(r->timeout_ms, 5000);
    assert_int_equal(r->initial_ms, 1000);
    assert_true(r->coefficient == 2.0);
    assert_int_equal(r->max_ms, 100000);
    assert_int_equal(r->max_attempts, 5);
    assert_true(r->jitter == 0.2);

    assert_int_equal(pol.retry[SAGA_AUTHORIZE][SAGA_FORWARD].timeout_ms,
                     30000);
    assert_int_equal(pol.retry[SAGA_SHIP][SAGA_FORWARD].timeout_ms, 30000);
    assert_int_equal(pol.retry[SAGA_CAPTURE][SAGA_FORWARD].max_attempts, 10);
    assert_int_equal(pol.retry[SAGA_RESERVE][SAGA_COMPENSATE].timeout_ms,
                     5000);
    assert_int_equal(pol.retry[SAGA_SHIP][SAGA_COMPENSATE].max_attempts, 20);
    /* capture has no compensation: nothing to configure */
    assert_int_equal(pol.retry[SAGA_CAPTURE][SAGA_COMPENSATE].timeout_ms, 0);

    /* an override is checked, and named */
    pol.retry[SAGA_SHIP][SAGA_COMPENSATE].jitter = 2;
    assert_int_equal(saga_policies_check(&pol, err, sizeof(err)), -1);
    assert_string_equal(err, "ship compensate: jitter must be 0 to 1");
}


static void
test_table_and_names(void **state)
{
    const saga_step_def_t  *d;
    int                     i;

    d = saga_step_def(SAGA_RESERVE);
    assert_int_equal(d->forward.kind, SAGA_ACT_LOCAL);
    assert_int_equal(d->forward.local, SAGA_LOCAL_RESERVE);
    assert_int_equal(d->undo.local, SAGA_LOCAL_RELEASE);
    assert_string_equal(d->undo.event, "inventory.released");

    d = saga_step_def(SAGA_AUTHORIZE);
    assert_string_equal(d->forward.name, "payment.authorize");
    assert_string_equal(d->undo.name, "payment.void");
    assert_string_equal(d->undo_paid.name, "payment.refund");
    assert_string_equal(d->undo_paid.event, "payment.refunded");

    d = saga_step_def(SAGA_SHIP);
    assert_string_equal(d->forward.name, "shipment.create");
    assert_string_equal(d->undo.name, "shipment.cancel");
    assert_int_equal(d->undo_paid.kind, SAGA_ACT_NONE);

    d = saga_step_def(SAGA_CAPTURE);
    assert_string_equal(d->forward.name, "payment.capture");
    assert_string_equal(d->unavailable, "payment_unavailable");
    assert_int_equal(saga_step_undoable(SAGA_CAPTURE), 0);
    assert_int_equal(saga_step_undoable(SAGA_SHIP), 1);

    for (i = 0; i < SAGA_NSTEPS; i++) {
        assert_int_equal(saga_step_parse(saga_step_name(i)), i);
    }
    assert_string_equal(saga_step_name(SAGA_SHIP), "ship");
    assert_int_equal(saga_step_parse("refund"), -1);
    assert_int_equal(saga_dir_parse("compensate"), SAGA_COMPENSATE);
    assert_int_equal(saga_dir_parse("forward"), SAGA_FORWARD);
    assert_int_equal(saga_dir_parse("backward"), -1);
}


static void
test_idem_keys(void **state)
{
    const saga_step_def_t  *d;
    const saga_do_t        *what[SAGA_NSTEPS * 4];
    char                    keys[SAGA_NSTEPS * 4][SAGA_KEY_MAX];
    char                    big[SAGA_ORDER_ID_MAX];
    int                     i, j, n, s;

    d = saga_step_def(SAGA_AUTHORIZE);
    assert_int_equal(saga_idem_key("o-1", &d->forward, keys[0],
                                   sizeof(keys[0])), 21);
    assert_string_equal(keys[0], "o-1:payment.authorize");
    saga_idem_key("o-1", &d->undo_paid, keys[0], sizeof(keys[0]));
    assert_string_equal(keys[0], "o-1:payment.refund");
    saga_idem_key("o-1", &saga_step_def(SAGA_CAPTURE)->then, keys[0],
                  sizeof(keys[0]));
    assert_string_equal(keys[0], "o-1:sell");

    /* distinct for everything the steps do, forward and back */
    n = 0;
    for (s = 0; s < SAGA_NSTEPS; s++) {
        d = saga_step_def(s);
        what[n++] = &d->forward;
        what[n++] = &d->undo;
        what[n++] = &d->undo_paid;
        what[n++] = &d->then;
    }
    for (i = 0, j = 0; i < n; i++) {
        if (what[i]->kind != SAGA_ACT_NONE) {
            assert_true(saga_idem_key("o-1", what[i], keys[j++],
                                      SAGA_KEY_MAX) > 0);
        }
    }
    assert_int_equal(j, 9);
    for (n = j, i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            assert_string_not_equal(keys[i], keys[j]);
        }
    }

    /* and across orders */
    d = saga_step_def(SAGA_RESERVE);
    saga_idem_key("o-1", &d->forward, keys[0], SAGA_KEY_MAX);
    saga_idem_key("o-2", &d->forward, keys[1], SAGA_KEY_MAX);
    assert_string_not_equal(keys[0], keys[1]);

    /* the longest order id fits with the longest name; a short buffer is
     * refused */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(saga_idem_key(big,
                                   &saga_step_def(SAGA_AUTHORIZE)->forward,
                                   keys[0], SAGA_KEY_MAX),
                     SAGA_ORDER_ID_MAX - 1 + 18);
    assert_int_equal(saga_idem_key("o-1", &d->forward, keys[0], 8), -1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay_table),
        cmocka_unit_test(test_delay_jitter),
        cmocka_unit_test(test_policy_check),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_table_and_names),
        cmocka_unit_test(test_idem_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
