/*
 * Unit tests of the GCRA arithmetic of the rate limiter
 * (ngx_commerce_module/ngx_http_commerce_gcra.c).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ngx_http_commerce_gcra.h"


#define S(s)  (const u_char *) (s), sizeof(s) - 1
#define SEC   1000000ULL

/* an arbitrary monotonic origin, far from 0 like a real clock */
#define T0    (86400 * SEC)


static void
test_parse_rate(void **state)
{
    uint64_t  t;

    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("10r/s"), &t), 0);
    assert_int_equal(t, 100000);

    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("30r/m"), &t), 0);
    assert_int_equal(t, 2 * SEC);

    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("1r/m"), &t), 0);
    assert_int_equal(t, 60 * SEC);

    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("1000000r/s"), &t),
                     0);
    assert_int_equal(t, 1);

    /* 3r/s: the interval is rounded down, never to 0 */
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("3r/s"), &t), 0);
    assert_int_equal(t, 333333);

    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("007r/s"), &t), 0);
    assert_int_equal(t, 142857);
}


static void
test_parse_rate_invalid(void **state)
{
    uint64_t  t;

    t = 12345;

    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("0r/s"), &t), -1);
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("r/s"), &t), -1);
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("10"), &t), -1);
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("10r/h"), &t), -1);
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("10/s"), &t), -1);
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("-1r/s"), &t), -1);
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("1.5r/s"), &t), -1);
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S(" 5r/s"), &t), -1);
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("1000001r/s"), &t),
                     -1);
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(
                         S("99999999999999999999999r/s"), &t), -1);
    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S(""), &t), -1);

    /* untouched on error */
    assert_int_equal(t, 12345);
}


static void
test_init(void **state)
{
    ngx_http_commerce_gcra_t  g;

    assert_int_equal(ngx_http_commerce_gcra_init(&g, 2 * SEC, 4), 0);
    assert_int_equal(g.interval, 2 * SEC);
    assert_int_equal(g.tolerance, 8 * SEC);
    assert_int_equal(g.limit, 5);

    assert_int_equal(ngx_http_commerce_gcra_init(&g, 0, 4), -1);
    assert_int_equal(ngx_http_commerce_gcra_init(&g, 1,
                         NGX_HTTP_COMMERCE_GCRA_MAX_BURST + 1), -1);
    assert_int_equal(ngx_http_commerce_gcra_init(&g, 60 * SEC,
                         NGX_HTTP_COMMERCE_GCRA_MAX_BURST), 0);
}


/* burst b admits exactly b + 1 back to back, for several b */
static void
test_burst_exact(void **state)
{
    uint64_t                         b, i, tat;
    ngx_http_commerce_gcra_t         g;
    ngx_http_commerce_gcra_result_t  res;

    for (b = 0; b < 20; b++) {
        assert_int_equal(ngx_http_commerce_gcra_init(&g, SEC, b), 0);

        tat = 0;

        for (i = 0; i <= b; i++) {
            assert_true(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));
            assert_int_equal(res.remaining, b - i);
            assert_int_equal(res.retry, 0);
            assert_int_equal(res.reset, (i + 1) * SEC);
        }

        assert_false(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));
        assert_int_equal(res.remaining, 0);
        assert_int_equal(res.retry, SEC);
        assert_int_equal(tat, T0 + (b + 1) * SEC);
    }
}


/* refused requests do not move the TAT: retrying early never helps */
static void
test_reject_does_not_consume(void **state)
{
    int                              i;
    uint64_t                         tat, before;
    ngx_http_commerce_gcra_t         g;
    ngx_http_commerce_gcra_result_t  res;

    ngx_http_commerce_gcra_init(&g, 2 * SEC, 1);

    tat = 0;
    assert_true(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));
    assert_true(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));

    before = tat;

    for (i = 0; i < 100; i++) {
        assert_false(ngx_http_commerce_gcra_update(&g, T0 + i, &tat, &res));
    }

    assert_int_equal(tat, before);

    /* exactly one emission interval later one more conforms */
    assert_false(ngx_http_commerce_gcra_update(&g, T0 + 2 * SEC - 1, &tat,
                                               &res));
    assert_int_equal(res.retry, 1);
    assert_true(ngx_http_commerce_gcra_update(&g, T0 + 2 * SEC, &tat, &res));
    assert_int_equal(res.remaining, 0);
    assert_false(ngx_http_commerce_gcra_update(&g, T0 + 2 * SEC, &tat,
                                               &res));
}


/* a steady flow at the rate always conforms, even with burst 0 */
static void
test_steady_rate(void **state)
{
    int                              i;
    uint64_t                         tat, now;
    ngx_http_commerce_gcra_t         g;
    ngx_http_commerce_gcra_result_t  res;

    ngx_http_commerce_gcra_init(&g, 100000, 0);

    tat = 0;
    now = T0;

    for (i = 0; i < 1000; i++) {
        assert_true(ngx_http_commerce_gcra_update(&g, now, &tat, &res));
        assert_int_equal(res.remaining, 0);
        assert_int_equal(res.reset, 100000);
        assert_false(ngx_http_commerce_gcra_update(&g, now + 99999, &tat,
                                                   &res));
        now += 100000;
    }
}


/* a long pause refills the quota up to the limit, not beyond */
static void
test_refill_caps_at_limit(void **state)
{
    int                              i;
    uint64_t                         tat;
    ngx_http_commerce_gcra_t         g;
    ngx_http_commerce_gcra_result_t  res;

    ngx_http_commerce_gcra_init(&g, SEC, 3);

    tat = 0;

    for (i = 0; i < 4; i++) {
        assert_true(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));
    }

    assert_false(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));
    assert_int_equal(res.reset, 4 * SEC);

    /* two intervals later: two more */
    assert_true(ngx_http_commerce_gcra_update(&g, T0 + 2 * SEC, &tat, &res));
    assert_int_equal(res.remaining, 1);
    assert_true(ngx_http_commerce_gcra_update(&g, T0 + 2 * SEC, &tat, &res));
    assert_int_equal(res.remaining, 0);
    assert_false(ngx_http_commerce_gcra_update(&g, T0 + 2 * SEC, &tat,
                                               &res));

    /* an hour later: burst + 1 again, never more */
    assert_true(ngx_http_commerce_gcra_idle(T0 + 3600 * SEC, tat));

    for (i = 0; i < 4; i++) {
        assert_true(ngx_http_commerce_gcra_update(&g, T0 + 3600 * SEC, &tat,
                                                  &res));
        assert_int_equal(res.remaining, 3 - i);
    }

    assert_false(ngx_http_commerce_gcra_update(&g, T0 + 3600 * SEC, &tat,
                                               &res));
}


/* the Redis path computes the same result from "ahead" alone */
static void
test_outcome_matches_update(void **state)
{
    int                              i;
    uint64_t                         tat, now, base, ahead;
    unsigned                         ok;
    ngx_http_commerce_gcra_t         g;
    ngx_http_commerce_gcra_result_t  res, res2;

    ngx_http_commerce_gcra_init(&g, 333333, 5);

    tat = 0;
    now = T0;
    srand(7);

    for (i = 0; i < 10000; i++) {
        now += (uint64_t) (rand() % 400000);

        base = (tat > now) ? tat : now;
        ok = ngx_http_commerce_gcra_update(&g, now, &tat, &res);

        ahead = ok ? tat - now : base - now;
        ngx_http_commerce_gcra_outcome(&g, ok, ahead, &res2);

        assert_int_equal(res.allowed, res2.allowed);
        assert_int_equal(res.remaining, res2.remaining);
        assert_int_equal(res.reset, res2.reset);
        assert_int_equal(res.retry, res2.retry);

        assert_true(res.remaining < g.limit);

        if (!ok) {
            assert_true(res.retry > 0);
            assert_true(res.retry <= res.reset);
        }
    }
}


/* the count admitted over a long run never exceeds burst + elapsed / T */
static void
test_long_run_bound(void **state)
{
    int                              i;
    uint64_t                         tat, now, admitted;
    ngx_http_commerce_gcra_t         g;
    ngx_http_commerce_gcra_result_t  res;

    ngx_http_commerce_gcra_init(&g, 50000, 10);

    tat = 0;
    now = T0;
    admitted = 0;
    srand(11);

    for (i = 0; i < 200000; i++) {
        now += (uint64_t) (rand() % 20000);
        admitted += ngx_http_commerce_gcra_update(&g, now, &tat, &res);
    }

    assert_true(admitted <= g.limit + (now - T0) / g.interval);

    /* and a client flooding it gets almost all of the rate */
    assert_true(admitted + 1 >= (now - T0) / g.interval);
}


static void
test_refund(void **state)
{
    uint64_t                         tat, before;
    ngx_http_commerce_gcra_t         g;
    ngx_http_commerce_gcra_result_t  res;

    ngx_http_commerce_gcra_init(&g, SEC, 0);

    tat = 0;
    assert_true(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));
    before = tat;
    assert_false(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));

    ngx_http_commerce_gcra_refund(&g, &tat);
    assert_int_equal(tat, before - SEC);
    assert_true(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));

    tat = 10;
    ngx_http_commerce_gcra_refund(&g, &tat);
    assert_int_equal(tat, 0);
}


static void
test_seconds(void **state)
{
    assert_int_equal(ngx_http_commerce_gcra_seconds(0), 0);
    assert_int_equal(ngx_http_commerce_gcra_seconds(1), 1);
    assert_int_equal(ngx_http_commerce_gcra_seconds(SEC), 1);
    assert_int_equal(ngx_http_commerce_gcra_seconds(SEC + 1), 2);
    assert_int_equal(ngx_http_commerce_gcra_seconds(60 * SEC), 60);
}


/* no overflow at the extremes: 1r/m with the largest burst */
static void
test_extremes(void **state)
{
    uint64_t                         tat, interval;
    ngx_http_commerce_gcra_t         g;
    ngx_http_commerce_gcra_result_t  res;

    assert_int_equal(ngx_http_commerce_gcra_parse_rate(S("1r/m"), &interval),
                     0);
    assert_int_equal(ngx_http_commerce_gcra_init(&g, interval,
                         NGX_HTTP_COMMERCE_GCRA_MAX_BURST), 0);

    tat = 0;
    assert_true(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));
    assert_int_equal(res.remaining, NGX_HTTP_COMMERCE_GCRA_MAX_BURST);
    assert_int_equal(res.reset, 60 * SEC);

    tat = T0 + g.tolerance;
    assert_true(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));
    assert_int_equal(res.remaining, 0);
    assert_false(ngx_http_commerce_gcra_update(&g, T0, &tat, &res));
    assert_int_equal(res.retry, 60 * SEC);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_rate),
        cmocka_unit_test(test_parse_rate_invalid),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_burst_exact),
        cmocka_unit_test(test_reject_does_not_consume),
        cmocka_unit_test(test_steady_rate),
        cmocka_unit_test(test_refill_caps_at_limit),
        cmocka_unit_test(test_outcome_matches_update),
        cmocka_unit_test(test_long_run_bound),
        cmocka_unit_test(test_refund),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_extremes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
