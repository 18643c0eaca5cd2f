/*
 * The saga's decision core: every input against the actions it yields,
 * written out as one line per input ("what the worker is told to do"),
 * and the state it leaves. Default policies; random 0.5 makes the
 * jitter factor 1, so retry times are the nominal backoff.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../workers/saga/saga_machine.h"


static saga_policies_t  pol;
static saga_out_t       out;
static char             line[2048];


static int
setup(void **state)
{
    saga_policies_default(&pol);
    return 0;
}


/* The actions of the last input, "; " between them. */
static const char *
actions(void)
{
    const saga_action_t  *a;
    size_t                n;
    unsigned              i;

    line[0] = '\0';
    n = 0;

    for (i = 0; i < out.nactions; i++) {
        a = &out.actions[i];
        n += snprintf(line + n, sizeof(line) - n, "%s", i ? "; " : "");

        if (a->kind == SAGA_ACT_EVENT) {
            n += snprintf(line + n, sizeof(line) - n, "%s", a->name);
            if (a->reason[0]) {
                n += snprintf(line + n, sizeof(line) - n, "(%s)",
                              a->reason);
            }
            if (a->at_ms >= 0) {
                n += snprintf(line + n, sizeof(line) - n, " at %lld",
                              (long long) a->at_ms);
            }
            continue;
        }

        n += snprintf(line + n, sizeof(line) - n, "%s %s #%u %s until %lld",
                      a->kind == SAGA_ACT_LOCAL ? "local" : "cmd", a->name,
                      a->attempt, a->key, (long long) a->at_ms);
    }

    return line;
}


/* The commands and local actions of the last input, appended to buf. */
static void
collect(char *buf, size_t len)
{
    unsigned  i;

    for (i = 0; i < out.nactions; i++) {
        if (out.actions[i].kind != SAGA_ACT_EVENT) {
            snprintf(buf + strlen(buf), len - strlen(buf), "%s%s",
                     buf[0] ? "," : "", out.actions[i].name);
        }
    }
}


static saga_verdict_t
start(saga_t *s, int64_t now)
{
    saga_input_t  in = { .kind = SAGA_IN_START, .now_ms = now,
                         .random = 0.5, .order_id = "o1" };

    saga_init(s);
    return saga_apply(s, &pol, &in, &out);
}


static saga_verdict_t
reply(saga_t *s, saga_step_t step, saga_dir_t dir, unsigned attempt,
    saga_result_t result, const char *reason, int64_t now)
{
    saga_input_t  in = { .kind = SAGA_IN_OUTCOME, .now_ms = now,
                         .random = 0.5, .step = step, .dir = dir,
                         .attempt = attempt, .result = result,
                         .reason = reason };

    return saga_apply(s, &pol, &in, &out);
}


static saga_verdict_t
input(saga_t *s, saga_in_kind_t kind, saga_by_t by, int64_t now)
{
    saga_input_t  in = { .kind = kind, .now_ms = now, .random = 0.5,
                         .by = by };

    return saga_apply(s, &pol, &in, &out);
}


/* A saga at time 0 whose steps before `step` succeeded at once: `step`
 * is in flight, attempt 1. */
static void
run_to(saga_t *s, saga_step_t step)
{
    int  i;

    assert_int_equal(start(s, 0), SAGA_APPLIED);
    for (i = 0; i < (int) step; i++) {
        assert_int_equal(reply(s, i, SAGA_FORWARD, 1, SAGA_RES_OK, NULL, 0),
                         SAGA_APPLIED);
    }
    assert_int_equal(s->step, step);
    assert_int_equal(s->steps[step].status, SAGA_STEP_IN_FLIGHT);
}


/* Every compensation answered ok at once: what was sent, in order
 * (including what the last input already sent). */
static void
finish_compensation(saga_t *s, char *buf, size_t len, int64_t now)
{
    collect(buf, len);

    while (s->status == SAGA_COMPENSATING) {
        assert_int_equal(s->steps[s->step].status, SAGA_STEP_COMPENSATING);
        assert_int_equal(reply(s, s->step, SAGA_COMPENSATE,
                               s->steps[s->step].attempt_no, SAGA_RES_OK,
                               NULL, now),
                         SAGA_APPLIED);
        collect(buf, len);
    }
}


static void
test_happy_path(void **state)
{
    saga_t  s;

    assert_int_equal(start(&s, 1000), SAGA_APPLIED);
    assert_string_equal(actions(), "order.placed; local reserve #1 "
                        "o1:reserve until 6000");
    assert_int_equal(s.status, SAGA_RUNNING);
    assert_int_equal(s.version, 1);
    assert_int_equal(out.deadline_ms, 6000);
    assert_string_equal(out.order_status, "pending");

    assert_int_equal(reply(&s, SAGA_RESERVE, SAGA_FORWARD, 1, SAGA_RES_OK,
                           NULL, 1010), SAGA_APPLIED);
    assert_string_equal(actions(), "inventory.reserved; cmd "
                        "payment.authorize #1 o1:payment.authorize "
                        "until 31010");
    assert_int_equal(out.deadline_ms, 31010);

    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1, SAGA_RES_OK,
                           NULL, 1500), SAGA_APPLIED);
    assert_string_equal(actions(), "payment.authorized; cmd "
                        "shipment.create #1 o1:shipment.create until 31500");

    assert_int_equal(reply(&s, SAGA_SHIP, SAGA_FORWARD, 1, SAGA_RES_OK,
                           NULL, 2000), SAGA_APPLIED);
    assert_string_equal(actions(), "shipment.created; cmd payment.capture "
                        "#1 o1:payment.capture until 32000");

    assert_int_equal(reply(&s, SAGA_CAPTURE, SAGA_FORWARD, 1, SAGA_RES_OK,
                           NULL, 2500), SAGA_APPLIED);
    assert_string_equal(actions(), "payment.captured; local sell #0 "
                        "o1:sell until -1; order.confirmed");
    assert_int_equal(out.actions[1].local, SAGA_LOCAL_SELL);
    assert_int_equal(s.status, SAGA_COMPLETED);
    assert_string_equal(saga_status_name(s.status), "completed");
    assert_string_equal(out.order_status, "confirmed");
    assert_int_equal(out.deadline_ms, -1);
    assert_int_equal(s.deadline_ms, -1);
    assert_int_equal(s.version, 5);
    assert_int_equal(s.steps[SAGA_CAPTURE].status, SAGA_STEP_SUCCEEDED);
    assert_int_equal(s.steps[SAGA_RESERVE].attempts, 1);
}


/* A decline at each step in turn: no retry, and exactly the
 * compensations of the steps before it, in reverse. */
static void
test_decline_each_step(void **state)
{
    static const char  *reasons[SAGA_NSTEPS] = {
        "out_of_stock", "card_declined", "address_invalid",
        "card_expired"
    };
    static const char  *undone[SAGA_NSTEPS] = {
        "",
        "release",
        "payment.void,release",
        "shipment.cancel,payment.void,release"
    };
    char                sent[256], want[256];
    saga_t              s;
    int                 k;

    for (k = 0; k < SAGA_NSTEPS; k++) {
        run_to(&s, k);
        assert_int_equal(reply(&s, k, SAGA_FORWARD, 1, SAGA_RES_DECLINED,
                               reasons[k], 100), SAGA_APPLIED);

        snprintf(want, sizeof(want), "saga.step.failed(%s); "
                 "order.compensating(%s)%s", reasons[k], reasons[k],
                 k == 0 ? "; order.cancelled(out_of_stock)" : "");
        assert_true(strncmp(actions(), want, strlen(want)) == 0);
        /* nothing to undo: skipped, the decline kept */
        assert_int_equal(s.steps[k].status, SAGA_STEP_SKIPPED);
        assert_int_equal(s.steps[k].attempts, 1);
        assert_string_equal(s.steps[k].last_error, reasons[k]);

        sent[0] = '\0';
        finish_compensation(&s, sent, sizeof(sent), 200);
        assert_string_equal(sent, undone[k]);

        assert_int_equal(s.status, SAGA_COMPENSATED);
        assert_string_equal(s.reason, reasons[k]);
        assert_string_equal(out.order_status, "cancelled");
        assert_int_equal(out.deadline_ms, -1);
        assert_string_equal(out.actions[out.nactions - 1].name,
                            "order.cancelled");
        assert_string_equal(out.actions[out.nactions - 1].reason,
                            reasons[k]);
    }

    /* the events of the compensations of a capture decline */
    run_to(&s, SAGA_CAPTURE);
    reply(&s, SAGA_CAPTURE, SAGA_FORWARD, 1, SAGA_RES_DECLINED, NULL, 100);
    assert_string_equal(actions(), "saga.step.failed(payment_declined); "
                        "order.compensating(payment_declined); cmd "
                        "shipment.cancel #1 o1:shipment.cancel until 30100");
    reply(&s, SAGA_SHIP, SAGA_COMPENSATE, 1, SAGA_RES_OK, NULL, 200);
    assert_string_equal(actions(), "shipment.cancelled; cmd payment.void #1 "
                        "o1:payment.void until 30200");
    reply(&s, SAGA_AUTHORIZE, SAGA_COMPENSATE, 1, SAGA_RES_OK, NULL, 300);
    assert_string_equal(actions(), "payment.voided; local release #1 "
                        "o1:release until 5300");
    assert_int_equal(out.actions[1].local, SAGA_LOCAL_RELEASE);
    reply(&s, SAGA_RESERVE, SAGA_COMPENSATE, 1, SAGA_RES_OK, NULL, 400);
    assert_string_equal(actions(), "inventory.released; "
                        "order.cancelled(payment_declined)");
    assert_int_equal(s.steps[SAGA_CAPTURE].status, SAGA_STEP_SKIPPED);
    assert_int_equal(s.steps[SAGA_SHIP].status, SAGA_STEP_COMPENSATED);
    assert_int_equal(s.steps[SAGA_RESERVE].status, SAGA_STEP_COMPENSATED);
}


/* Transient errors: the backoff (1 s, 2 s, 4 s), the same key on every
 * attempt, then success. */
static void
test_transient_then_ok(void **state)
{
    saga_t  s;

    run_to(&s, SAGA_AUTHORIZE);

    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1,
                           SAGA_RES_TRANSIENT, "gateway_503", 10000),
                     SAGA_APPLIED);
    assert_string_equal(actions(), "saga.step.retrying(gateway_503) "
                        "at 11000");
    assert_int_equal(s.steps[SAGA_AUTHORIZE].status,
                     SAGA_STEP_WAITING_RETRY);
    assert_int_equal(out.deadline_ms, 11000);
    assert_int_equal(s.steps[SAGA_AUTHORIZE].unknown, 0);

    /* early: nothing */
    assert_int_equal(input(&s, SAGA_IN_DEADLINE, 0, 10999), SAGA_STALE);
    assert_string_equal(out.why, "not_due");
    assert_int_equal(out.nactions, 0);

    assert_int_equal(input(&s, SAGA_IN_DEADLINE, 0, 11000), SAGA_APPLIED);
    assert_string_equal(actions(), "cmd payment.authorize #2 "
                        "o1:payment.authorize until 41000");

    reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 2, SAGA_RES_TRANSIENT, NULL,
          12000);
    assert_string_equal(actions(), "saga.step.retrying(transient_error) "
                        "at 14000");
    input(&s, SAGA_IN_DEADLINE, 0, 14000);
    assert_string_equal(actions(), "cmd payment.authorize #3 "
                        "o1:payment.authorize until 44000");

    reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 3, SAGA_RES_TRANSIENT, "busy",
          15000);
    assert_string_equal(actions(), "saga.step.retrying(busy) at 19000");
    input(&s, SAGA_IN_DEADLINE, 0, 19500);
    assert_string_equal(actions(), "cmd payment.authorize #4 "
                        "o1:payment.authorize until 49500");
    assert_string_equal(s.steps[SAGA_AUTHORIZE].last_error, "busy");

    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 4, SAGA_RES_OK,
                           NULL, 20000), SAGA_APPLIED);
    assert_string_equal(actions(), "payment.authorized; cmd "
                        "shipment.create #1 o1:shipment.create until 50000");
    assert_int_equal(s.steps[SAGA_AUTHORIZE].status, SAGA_STEP_SUCCEEDED);
    assert_int_equal(s.steps[SAGA_AUTHORIZE].attempts, 4);
    assert_string_equal(s.steps[SAGA_AUTHORIZE].last_error, "");
}


/* Out of attempts on transient errors: compensation, reason
 * payment_unavailable; every attempt answered, so no void. */
static void
test_max_attempts(void **state)
{
    char      sent[256];
    saga_t    s;
    unsigned  a;
    int64_t   now;

    run_to(&s, SAGA_AUTHORIZE);
    now = 0;

    for (a = 1; a < 5; a++) {
        reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, a, SAGA_RES_TRANSIENT,
              "busy", now);
        now = s.deadline_ms;
        assert_int_equal(input(&s, SAGA_IN_DEADLINE, 0, now), SAGA_APPLIED);
        assert_int_equal(out.actions[0].attempt, a + 1);
    }

    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 5,
                           SAGA_RES_TRANSIENT, "busy", now), SAGA_APPLIED);
    snprintf(line, sizeof(line), "saga.step.failed(busy); "
             "order.compensating(payment_unavailable); local release #1 "
             "o1:release until %lld", (long long) now + 5000);
    assert_string_equal(actions(), line);
    assert_int_equal(s.steps[SAGA_AUTHORIZE].status, SAGA_STEP_SKIPPED);
    assert_int_equal(s.steps[SAGA_AUTHORIZE].attempts, 5);
    assert_string_equal(s.reason, "payment_unavailable");

    sent[0] = '\0';
    finish_compensation(&s, sent, sizeof(sent), now);
    assert_string_equal(sent, "release");
    assert_int_equal(s.status, SAGA_COMPENSATED);

    /* an override per step: two attempts of reserve, 1 s each */
    pol.retry[SAGA_RESERVE][SAGA_FORWARD].max_attempts = 2;
    pol.retry[SAGA_RESERVE][SAGA_FORWARD].timeout_ms = 1000;
    start(&s, 0);
    assert_int_equal(out.deadline_ms, 1000);
    reply(&s, SAGA_RESERVE, SAGA_FORWARD, 1, SAGA_RES_TRANSIENT, NULL, 10);
    input(&s, SAGA_IN_DEADLINE, 0, 1010);
    reply(&s, SAGA_RESERVE, SAGA_FORWARD, 2, SAGA_RES_TRANSIENT, NULL, 1020);
    assert_string_equal(actions(), "saga.step.failed(transient_error); "
                        "order.compensating(inventory_unavailable); "
                        "order.cancelled(inventory_unavailable)");
    assert_int_equal(s.status, SAGA_COMPENSATED);
}


/* An attempt that is not answered by its deadline failed: retried; a
 * late ok for it, with the retry waiting or out, is a success. */
static void
test_timeout(void **state)
{
    saga_t  s;
    int     late_while_out;

    for (late_while_out = 0; late_while_out < 2; late_while_out++) {
        run_to(&s, SAGA_SHIP);

        assert_int_equal(input(&s, SAGA_IN_DEADLINE, 0, 29999), SAGA_STALE);
        assert_int_equal(input(&s, SAGA_IN_DEADLINE, 0, 30000),
                         SAGA_APPLIED);
        assert_string_equal(actions(), "saga.step.retrying(timeout) "
                            "at 31000");
        assert_int_equal(s.steps[SAGA_SHIP].status, SAGA_STEP_WAITING_RETRY);
        assert_int_equal(s.steps[SAGA_SHIP].unknown, 1);
        assert_string_equal(s.steps[SAGA_SHIP].last_error, "timeout");

        if (late_while_out) {
            input(&s, SAGA_IN_DEADLINE, 0, 31000);
            assert_string_equal(actions(), "cmd shipment.create #2 "
                                "o1:shipment.create until 61000");
        }

        assert_int_equal(reply(&s, SAGA_SHIP, SAGA_FORWARD, 1, SAGA_RES_OK,
                               NULL, 31500), SAGA_APPLIED);
        assert_string_equal(actions(), "shipment.created; cmd "
                            "payment.capture #1 o1:payment.capture "
                            "until 61500");
        assert_int_equal(s.steps[SAGA_SHIP].unknown, 0);

        /* the answer to the other attempt: a duplicate */
        assert_int_equal(reply(&s, SAGA_SHIP, SAGA_FORWARD, 2, SAGA_RES_OK,
                               NULL, 32000), SAGA_STALE);
        assert_int_equal(out.nactions, 0);
    }
}


/* Every attempt timed out: the participant may have done it, so it is
 * compensated too (capture: a refund, not a void). */
static void
test_timeouts_exhausted(void **state)
{
    char      sent[256];
    saga_t    s;
    unsigned  a;

    run_to(&s, SAGA_AUTHORIZE);
    for (a = 1; a <= 5; a++) {
        input(&s, SAGA_IN_DEADLINE, 0, s.deadline_ms);
        if (a < 5) {
            input(&s, SAGA_IN_DEADLINE, 0, s.deadline_ms);
        }
    }
    assert_int_equal(s.status, SAGA_COMPENSATING);
    assert_int_equal(s.steps[SAGA_AUTHORIZE].status, SAGA_STEP_COMPENSATING);
    sent[0] = '\0';
    finish_compensation(&s, sent, sizeof(sent), 0);
    assert_string_equal(sent, "payment.void,release");

    pol.retry[SAGA_CAPTURE][SAGA_FORWARD].max_attempts = 1;
    run_to(&s, SAGA_CAPTURE);
    input(&s, SAGA_IN_DEADLINE, 0, 30000);
    assert_string_equal(actions(), "saga.step.failed(timeout); "
                        "order.compensating(payment_unavailable); cmd "
                        "shipment.cancel #1 o1:shipment.cancel until 60000");
    sent[0] = '\0';
    finish_compensation(&s, sent, sizeof(sent), 0);
    assert_string_equal(sent, "shipment.cancel,payment.refund,release");
    assert_int_equal(s.steps[SAGA_AUTHORIZE].status, SAGA_STEP_COMPENSATED);
}


/* A compensation out of attempts: the saga failed, a person must act. */
static void
fail_compensation(saga_t *s, saga_step_t step)
{
    unsigned  a;
    int64_t   now;

    now = 0;
    for (a = 1; a < 20; a++) {
        assert_int_equal(reply(s, step, SAGA_COMPENSATE, a,
                               SAGA_RES_TRANSIENT, "carrier_down", now),
                         SAGA_APPLIED);
        now = s->deadline_ms;
        input(s, SAGA_IN_DEADLINE, 0, now);
    }
    assert_int_equal(reply(s, step, SAGA_COMPENSATE, 20, SAGA_RES_TRANSIENT,
                           "carrier_down", now), SAGA_APPLIED);
}


static void
test_compensation_gives_up(void **state)
{
    saga_t  s;

    run_to(&s, SAGA_CAPTURE);
    reply(&s, SAGA_CAPTURE, SAGA_FORWARD, 1, SAGA_RES_DECLINED,
          "card_expired", 0);
    fail_compensation(&s, SAGA_SHIP);

    assert_string_equal(actions(), "saga.step.failed(carrier_down); "
                        "order.failed(carrier_down)");
    assert_int_equal(s.status, SAGA_FAILED);
    assert_int_equal(s.steps[SAGA_SHIP].status, SAGA_STEP_COMP_FAILED);
    assert_int_equal(s.steps[SAGA_SHIP].attempts, 20);
    assert_string_equal(s.steps[SAGA_SHIP].last_error, "carrier_down");
    assert_string_equal(out.order_status, "failed");
    assert_int_equal(out.deadline_ms, -1);
    /* the steps below are untouched */
    assert_int_equal(s.steps[SAGA_AUTHORIZE].status, SAGA_STEP_SUCCEEDED);

    /* a timer or a late reply changes nothing */
    assert_int_equal(input(&s, SAGA_IN_DEADLINE, 0, 99999999), SAGA_STALE);
    assert_int_equal(reply(&s, SAGA_SHIP, SAGA_COMPENSATE, 20,
                           SAGA_RES_TRANSIENT, NULL, 0), SAGA_STALE);

    /* a decline of a compensation fails at once */
    run_to(&s, SAGA_SHIP);
    input(&s, SAGA_IN_CANCEL, SAGA_BY_OWNER, 0);
    reply(&s, SAGA_SHIP, SAGA_COMPENSATE, 1, SAGA_RES_DECLINED,
          "already_delivered", 0);
    assert_string_equal(actions(), "saga.step.failed(already_delivered); "
                        "order.failed(already_delivered)");
    assert_int_equal(s.status, SAGA_FAILED);
}


/* Admin retry: only a failed saga; the compensation that gave up goes
 * again with its attempts reset, nothing done before is redone. */
static void
test_admin_retry(void **state)
{
    char     sent[256];
    saga_t   s, before;
    int64_t  version;

    run_to(&s, SAGA_CAPTURE);
    reply(&s, SAGA_CAPTURE, SAGA_FORWARD, 1, SAGA_RES_DECLINED, NULL, 0);
    reply(&s, SAGA_SHIP, SAGA_COMPENSATE, 1, SAGA_RES_OK, NULL, 0);
    fail_compensation(&s, SAGA_AUTHORIZE);
    assert_int_equal(s.status, SAGA_FAILED);
    assert_int_equal(s.step, SAGA_AUTHORIZE);

    /* not on a saga that has not failed */
    before = s;
    before.status = SAGA_COMPENSATING;
    s.status = SAGA_COMPENSATING;
    assert_int_equal(input(&s, SAGA_IN_RETRY, 0, 0), SAGA_REFUSED);
    assert_string_equal(out.why, "not_failed");
    assert_int_equal(out.nactions, 0);
    assert_memory_equal(&s, &before, sizeof(s));
    s.status = SAGA_FAILED;

    version = s.version;
    assert_int_equal(input(&s, SAGA_IN_RETRY, 0, 5000000), SAGA_APPLIED);
    assert_string_equal(actions(), "saga.resumed(payment_declined); cmd "
                        "payment.void #21 o1:payment.void "
                        "until 5030000");
    assert_int_equal(s.version, version + 1);
    assert_int_equal(s.status, SAGA_COMPENSATING);
    assert_int_equal(s.steps[SAGA_AUTHORIZE].attempts, 1);
    assert_string_equal(out.order_status, "pending");

    /* a reply to an attempt from before the retry is stale */
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_COMPENSATE, 20,
                           SAGA_RES_TRANSIENT, NULL, 5000001), SAGA_STALE);

    /* the backoff starts again from 1 s */
    reply(&s, SAGA_AUTHORIZE, SAGA_COMPENSATE, 21, SAGA_RES_TRANSIENT, NULL,
          5000010);
    assert_string_equal(actions(), "saga.step.retrying(transient_error) "
                        "at 5001010");
    input(&s, SAGA_IN_DEADLINE, 0, 5001010);

    sent[0] = '\0';
    finish_compensation(&s, sent, sizeof(sent), 5002000);
    assert_string_equal(sent, "payment.void,release");
    assert_int_equal(s.status, SAGA_COMPENSATED);
    assert_int_equal(s.steps[SAGA_SHIP].attempts, 1);

    /* once compensated: nothing to retry */
    assert_int_equal(input(&s, SAGA_IN_RETRY, 0, 0), SAGA_REFUSED);
    assert_string_equal(out.why, "not_failed");
}


static void
test_admin_compensate(void **state)
{
    char    sent[256];
    saga_t  s, before;

    /* running, past shipment: forced, with capture out -> a refund */
    run_to(&s, SAGA_CAPTURE);
    assert_int_equal(input(&s, SAGA_IN_COMPENSATE, 0, 100), SAGA_APPLIED);
    assert_string_equal(actions(), "order.compensating(compensated_by_admin); "
                        "cmd shipment.cancel #1 o1:shipment.cancel "
                        "until 30100");
    assert_int_equal(s.steps[SAGA_CAPTURE].status, SAGA_STEP_SKIPPED);
    assert_int_equal(s.steps[SAGA_CAPTURE].unknown, 1);
    sent[0] = '\0';
    collect(sent, sizeof(sent));

    /* again: idempotent */
    before = s;
    assert_int_equal(input(&s, SAGA_IN_COMPENSATE, 0, 200), SAGA_REFUSED);
    assert_string_equal(out.why, "already_compensating");
    assert_memory_equal(&s, &before, sizeof(s));

    finish_compensation(&s, sent, sizeof(sent), 300);
    assert_string_equal(sent, "shipment.cancel,payment.refund,release");
    assert_string_equal(s.reason, "compensated_by_admin");

    assert_int_equal(input(&s, SAGA_IN_COMPENSATE, 0, 400), SAGA_REFUSED);
    assert_string_equal(out.why, "already_final");

    /* a failed saga: its compensation resumes */
    run_to(&s, SAGA_AUTHORIZE);
    input(&s, SAGA_IN_CANCEL, SAGA_BY_ADMIN, 0);
    fail_compensation(&s, SAGA_AUTHORIZE);
    assert_int_equal(input(&s, SAGA_IN_COMPENSATE, 0, 7000000),
                     SAGA_APPLIED);
    assert_string_equal(actions(), "saga.resumed(cancelled_by_admin); cmd "
                        "payment.void #21 o1:payment.void "
                        "until 7030000");

    /* a completed saga is final */
    run_to(&s, SAGA_CAPTURE);
    reply(&s, SAGA_CAPTURE, SAGA_FORWARD, 1, SAGA_RES_OK, NULL, 0);
    before = s;
    assert_int_equal(input(&s, SAGA_IN_COMPENSATE, 0, 0), SAGA_REFUSED);
    assert_string_equal(out.why, "already_final");
    assert_memory_equal(&s, &before, sizeof(s));

    saga_init(&s);
    assert_int_equal(input(&s, SAGA_IN_COMPENSATE, 0, 0), SAGA_REFUSED);
    assert_string_equal(out.why, "not_started");
}


static void
test_cancel(void **state)
{
    char    sent[256];
    saga_t  s, before;

    /* authorize out: it may be done, so it is voided */
    run_to(&s, SAGA_AUTHORIZE);
    assert_int_equal(input(&s, SAGA_IN_CANCEL, SAGA_BY_OWNER, 50),
                     SAGA_APPLIED);
    assert_string_equal(actions(), "order.compensating(cancelled_by_owner); "
                        "cmd payment.void #1 o1:payment.void "
                        "until 30050");
    sent[0] = '\0';
    finish_compensation(&s, sent, sizeof(sent), 60);
    assert_string_equal(sent, "payment.void,release");
    assert_string_equal(out.order_status, "cancelled");
    assert_string_equal(out.actions[out.nactions - 1].reason,
                        "cancelled_by_owner");
    /* the late authorization of the cancelled attempt: stale */
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1, SAGA_RES_OK,
                           NULL, 70), SAGA_STALE);

    /* authorize waiting for a retry after an error: not done, no void */
    run_to(&s, SAGA_AUTHORIZE);
    reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1, SAGA_RES_TRANSIENT, NULL, 0);
    input(&s, SAGA_IN_CANCEL, SAGA_BY_ADMIN, 10);
    sent[0] = '\0';
    finish_compensation(&s, sent, sizeof(sent), 20);
    assert_string_equal(sent, "release");
    assert_string_equal(s.reason, "cancelled_by_admin");

    /* shipment out, not yet created: cancel it too */
    run_to(&s, SAGA_SHIP);
    input(&s, SAGA_IN_CANCEL, SAGA_BY_OWNER, 0);
    sent[0] = '\0';
    finish_compensation(&s, sent, sizeof(sent), 0);
    assert_string_equal(sent, "shipment.cancel,payment.void,release");

    /* shipped: refused, nothing changes */
    run_to(&s, SAGA_CAPTURE);
    before = s;
    assert_int_equal(input(&s, SAGA_IN_CANCEL, SAGA_BY_OWNER, 0),
                     SAGA_REFUSED);
    assert_string_equal(out.why, "already_shipped");
    assert_int_equal(out.nactions, 0);
    assert_string_equal(out.order_status, "pending");
    assert_memory_equal(&s, &before, sizeof(s));

    /* terminal: refused, every time */
    reply(&s, SAGA_CAPTURE, SAGA_FORWARD, 1, SAGA_RES_OK, NULL, 0);
    before = s;
    assert_int_equal(input(&s, SAGA_IN_CANCEL, SAGA_BY_OWNER, 0),
                     SAGA_REFUSED);
    assert_string_equal(out.why, "already_final");
    assert_int_equal(input(&s, SAGA_IN_CANCEL, SAGA_BY_ADMIN, 0),
                     SAGA_REFUSED);
    assert_string_equal(out.why, "already_final");
    assert_memory_equal(&s, &before, sizeof(s));

    run_to(&s, SAGA_RESERVE);
    reply(&s, SAGA_RESERVE, SAGA_FORWARD, 1, SAGA_RES_DECLINED, NULL, 0);
    assert_int_equal(s.status, SAGA_COMPENSATED);
    assert_int_equal(input(&s, SAGA_IN_CANCEL, SAGA_BY_OWNER, 0),
                     SAGA_REFUSED);
    assert_string_equal(out.why, "already_final");
    assert_string_equal(out.order_status, "cancelled");

    /* twice while compensating: the second is a no-op */
    run_to(&s, SAGA_SHIP);
    input(&s, SAGA_IN_CANCEL, SAGA_BY_OWNER, 0);
    before = s;
    assert_int_equal(input(&s, SAGA_IN_CANCEL, SAGA_BY_OWNER, 0),
                     SAGA_REFUSED);
    assert_string_equal(out.why, "already_compensating");
    assert_memory_equal(&s, &before, sizeof(s));
}


/* Redeliveries and answers that no longer apply: no actions, no change. */
static void
test_stale_and_duplicates(void **state)
{
    saga_t  s, before;

    run_to(&s, SAGA_AUTHORIZE);
    before = s;

    /* a second order.place, a second ok */
    assert_int_equal(saga_apply(&s, &pol, &(saga_input_t) {
                         .kind = SAGA_IN_START, .order_id = "o1" }, &out),
                     SAGA_STALE);
    assert_string_equal(out.why, "duplicate");
    assert_int_equal(reply(&s, SAGA_RESERVE, SAGA_FORWARD, 1, SAGA_RES_OK,
                           NULL, 0), SAGA_STALE);
    assert_string_equal(out.why, "duplicate");
    assert_int_equal(reply(&s, SAGA_RESERVE, SAGA_FORWARD, 1,
                           SAGA_RES_DECLINED, "out_of_stock", 0), SAGA_STALE);

    /* a step not started, a direction not running, an attempt not sent */
    assert_int_equal(reply(&s, SAGA_SHIP, SAGA_FORWARD, 1, SAGA_RES_OK,
                           NULL, 0), SAGA_STALE);
    assert_string_equal(out.why, "stale");
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_COMPENSATE, 1,
                           SAGA_RES_OK, NULL, 0), SAGA_STALE);
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 2, SAGA_RES_OK,
                           NULL, 0), SAGA_STALE);
    assert_int_equal(reply(&s, SAGA_CAPTURE, SAGA_COMPENSATE, 1,
                           SAGA_RES_OK, NULL, 0), SAGA_STALE);
    assert_int_equal(out.nactions, 0);
    assert_memory_equal(&s, &before, sizeof(s));

    /* a transient error of an earlier attempt, while the next is out or
     * waiting, is not counted */
    reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1, SAGA_RES_TRANSIENT, NULL, 0);
    before = s;
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1,
                           SAGA_RES_TRANSIENT, NULL, 0), SAGA_STALE);
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 0,
                           SAGA_RES_TRANSIENT, NULL, 0), SAGA_STALE);
    assert_memory_equal(&s, &before, sizeof(s));
    input(&s, SAGA_IN_DEADLINE, 0, 1000);
    before = s;
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1,
                           SAGA_RES_TRANSIENT, NULL, 0), SAGA_STALE);
    assert_memory_equal(&s, &before, sizeof(s));
    /* the same timer twice: the second is early for the new attempt */
    assert_int_equal(input(&s, SAGA_IN_DEADLINE, 0, 1000), SAGA_STALE);

    /* attempt 0 (not known) answers the attempt that is out */
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 0,
                           SAGA_RES_TRANSIENT, NULL, 1500), SAGA_APPLIED);
    assert_string_equal(actions(), "saga.step.retrying(transient_error) "
                        "at 3500");

    /* a late decline of an earlier attempt is final: same key */
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1,
                           SAGA_RES_DECLINED, "card_declined", 1600),
                     SAGA_APPLIED);
    assert_int_equal(s.status, SAGA_COMPENSATING);
    assert_int_equal(s.steps[SAGA_AUTHORIZE].unknown, 0);

    /* compensation ok twice */
    reply(&s, SAGA_RESERVE, SAGA_COMPENSATE, 1, SAGA_RES_OK, NULL, 1700);
    before = s;
    assert_int_equal(reply(&s, SAGA_RESERVE, SAGA_COMPENSATE, 1, SAGA_RES_OK,
                           NULL, 1800), SAGA_STALE);
    assert_string_equal(out.why, "duplicate");
    assert_memory_equal(&s, &before, sizeof(s));
    assert_int_equal(input(&s, SAGA_IN_DEADLINE, 0, INT64_MAX), SAGA_STALE);
}


static void
test_invalid_inputs(void **state)
{
    char          big[100];
    saga_t        s, before;
    saga_input_t  in;

    saga_init(&s);
    memset(&in, 0, sizeof(in));
    in.kind = SAGA_IN_START;
    assert_int_equal(saga_apply(&s, &pol, &in, &out), SAGA_INVALID);
    in.order_id = "";
    assert_int_equal(saga_apply(&s, &pol, &in, &out), SAGA_INVALID);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    in.order_id = big;
    assert_int_equal(saga_apply(&s, &pol, &in, &out), SAGA_INVALID);
    assert_string_equal(out.why, "order id must be 1 to 63 bytes");
    assert_int_equal(s.status, SAGA_NEW);

    run_to(&s, SAGA_AUTHORIZE);
    before = s;
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1,
                           SAGA_RES_DECLINED, big, 0), SAGA_INVALID);
    assert_string_equal(out.why, "reason code longer than 63 bytes");
    assert_int_equal(reply(&s, 7, SAGA_FORWARD, 1, SAGA_RES_OK, NULL, 0),
                     SAGA_INVALID);
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, 2, 1, SAGA_RES_OK, NULL, 0),
                     SAGA_INVALID);
    assert_int_equal(reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1, 9, NULL, 0),
                     SAGA_INVALID);
    assert_int_equal(input(&s, 0, 0, 0), SAGA_INVALID);
    assert_string_equal(out.why, "unknown input kind");
    assert_int_equal(out.nactions, 0);
    assert_memory_equal(&s, &before, sizeof(s));
}


/* Keys are the same on every attempt of a step and direction. */
static void
test_keys_stable(void **state)
{
    char    first[SAGA_KEY_MAX];
    saga_t  s;
    int     a;

    run_to(&s, SAGA_SHIP);
    snprintf(first, sizeof(first), "%s", out.actions[1].key);
    assert_string_equal(first, "o1:shipment.create");

    for (a = 0; a < 3; a++) {
        input(&s, SAGA_IN_DEADLINE, 0, s.deadline_ms);
        input(&s, SAGA_IN_DEADLINE, 0, s.deadline_ms);
        assert_int_equal(out.actions[0].kind, SAGA_ACT_COMMAND);
        assert_int_equal(out.actions[0].attempt, a + 2);
        assert_string_equal(out.actions[0].key, first);
    }

    input(&s, SAGA_IN_CANCEL, SAGA_BY_OWNER, s.deadline_ms);
    assert_string_equal(out.actions[1].key, "o1:shipment.cancel");
    input(&s, SAGA_IN_DEADLINE, 0, s.deadline_ms);
    input(&s, SAGA_IN_DEADLINE, 0, s.deadline_ms);
    assert_int_equal(out.actions[0].attempt, 2);
    assert_string_equal(out.actions[0].key, "o1:shipment.cancel");
}


/* No backoff: the retry is sent by the same input. */
static void
test_zero_delay(void **state)
{
    saga_t  s;

    pol.retry[SAGA_AUTHORIZE][SAGA_FORWARD].initial_ms = 0;
    pol.retry[SAGA_AUTHORIZE][SAGA_FORWARD].max_ms = 0;
    run_to(&s, SAGA_AUTHORIZE);
    reply(&s, SAGA_AUTHORIZE, SAGA_FORWARD, 1, SAGA_RES_TRANSIENT, NULL, 10);
    assert_string_equal(actions(), "saga.step.retrying(transient_error) "
                        "at 10; cmd payment.authorize #2 "
                        "o1:payment.authorize until 30010");
    assert_int_equal(s.steps[SAGA_AUTHORIZE].status, SAGA_STEP_IN_FLIGHT);
}

static uint64_t
walk_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}


/* What must hold after any input. */
static void
walk_check(const saga_t *before, const saga_t *s, saga_verdict_t v)
{
    const saga_action_t  *a;
    const saga_do_t      *what;
    char                  key[SAGA_KEY_MAX];
    unsigned              i;
    int                   active, final;

    assert_true(out.nactions <= SAGA_MAX_ACTIONS);

    if (v != SAGA_APPLIED) {
        assert_int_equal(out.nactions, 0);
        assert_memory_equal(s, before, sizeof(*s));
        return;
    }

    assert_int_equal(s->version, before->version + 1);
    /* a confirmed or cancelled saga never changes again */
    assert_true(before->status != SAGA_COMPLETED
                && before->status != SAGA_COMPENSATED);

    final = s->status == SAGA_COMPLETED || s->status == SAGA_COMPENSATED
            || s->status == SAGA_FAILED;
    assert_int_equal(s->deadline_ms < 0, final);
    assert_int_equal(out.deadline_ms, s->deadline_ms);
    assert_string_equal(out.order_status, saga_order_status(s));

    /* one step active, with the deadline, or none once final */
    active = 0;
    for (i = 0; i < SAGA_NSTEPS; i++) {
        if (s->steps[i].deadline_ms >= 0) {
            active++;
            assert_int_equal(i, s->step);
            assert_int_equal(s->steps[i].deadline_ms, s->deadline_ms);
        }
    }
    assert_int_equal(active, !final);

    for (i = 0; i < out.nactions; i++) {
        a = &out.actions[i];
        if (a->kind == SAGA_ACT_EVENT) {
            continue;
        }

        /* the key of what is done, whatever the attempt */
        what = a->dir == SAGA_FORWARD ? &saga_step_def(a->step)->forward
                                      : &saga_step_def(a->step)->undo;
        if (a->local == SAGA_LOCAL_SELL) {
            what = &saga_step_def(a->step)->then;
        } else if (a->dir == SAGA_COMPENSATE
                   && s->steps[SAGA_CAPTURE].unknown
                   && a->step == SAGA_AUTHORIZE)
        {
            what = &saga_step_def(a->step)->undo_paid;
        }
        assert_string_equal(a->name, what->name);
        saga_idem_key(s->order_id, what, key, sizeof(key));
        assert_string_equal(a->key, key);

        /* never undo what was declined or never sent */
        if (a->dir == SAGA_COMPENSATE && a->attempt == 1) {
            assert_true(before->steps[a->step].status == SAGA_STEP_SUCCEEDED
                        || before->steps[a->step].status
                           == SAGA_STEP_IN_FLIGHT
                        || before->steps[a->step].unknown);
        }
    }
}


/* Random inputs, the kind a redelivering, crashing, racing world sends:
 * the invariants hold after each, and every saga then ends when its
 * participants answer. */
static void
test_random_walk(void **state)
{
    saga_verdict_t  v;
    saga_input_t    in;
    uint64_t        x;
    int64_t         now;
    saga_t          s, before;
    int             n, k, failed, ended[2], kinds[SAGA_IN_COMPENSATE + 1];

    x = 0x9e3779b97f4a7c15ULL;
    memset(kinds, 0, sizeof(kinds));
    failed = 0;
    ended[0] = 0;
    ended[1] = 0;

    for (n = 0; n < 3000; n++) {
        start(&s, 0);
        now = 0;

        for (k = 0; k < 60; k++) {
            memset(&in, 0, sizeof(in));
            in.kind = 1 + walk_rand(&x) % 6;
            now += walk_rand(&x) % 40000;
            in.now_ms = now;
            in.random = (walk_rand(&x) % 1000) / 1000.0;
            in.order_id = "o1";
            in.step = walk_rand(&x) % SAGA_NSTEPS;
            in.dir = walk_rand(&x) % SAGA_NDIRS;
            in.attempt = walk_rand(&x) % (s.steps[in.step].attempt_no + 2);
            in.result = walk_rand(&x) % 3;
            in.reason = walk_rand(&x) % 2 ? "why" : NULL;
            in.by = walk_rand(&x) % 2;

            /* answers mostly for the step that is active */
            if (in.kind == SAGA_IN_OUTCOME && walk_rand(&x) % 4) {
                in.step = s.step;
                in.dir = s.status == SAGA_COMPENSATING ? SAGA_COMPENSATE
                                                       : SAGA_FORWARD;
            }
            /* the cancels and admin commands rarer */
            if (in.kind >= SAGA_IN_CANCEL && walk_rand(&x) % 8) {
                in.kind = SAGA_IN_OUTCOME;
            }

            before = s;
            v = saga_apply(&s, &pol, &in, &out);
            walk_check(&before, &s, v);
            kinds[in.kind] += v == SAGA_APPLIED;
        }

        /* then everyone answers ok, an admin retries what failed */
        for (k = 0; k < 20 && s.status != SAGA_COMPLETED
                    && s.status != SAGA_COMPENSATED; k++)
        {
            before = s;
            if (s.status == SAGA_FAILED) {
                failed++;
                v = input(&s, SAGA_IN_RETRY, 0, now);

            } else {
                /* also while a retry waits: a late ok */
                v = reply(&s, s.step, s.status == SAGA_COMPENSATING
                                      ? SAGA_COMPENSATE : SAGA_FORWARD,
                          0, SAGA_RES_OK, NULL, now);
            }
            walk_check(&before, &s, v);
            assert_int_equal(v, SAGA_APPLIED);
        }
        assert_true(s.status == SAGA_COMPLETED
                    || s.status == SAGA_COMPENSATED);
        ended[s.status == SAGA_COMPLETED]++;
    }

    /* both ends, and failed sagas retried, all of them seen */
    assert_true(ended[0] > 0 && ended[1] > 0 && failed > 0);
    assert_int_equal(ended[0] + ended[1], 3000);

    /* every kind of input but a second start was applied at times */
    assert_int_equal(kinds[SAGA_IN_START], 0);
    for (k = SAGA_IN_OUTCOME; k <= SAGA_IN_COMPENSATE; k++) {
        assert_true(kinds[k] > 0);
    }
}



static void
test_names(void **state)
{
    int  i;

    for (i = SAGA_NEW; i <= SAGA_FAILED; i++) {
        assert_int_equal(saga_status_parse(saga_status_name(i)), i);
    }
    for (i = 0; i < SAGA_STEP_NSTATUS; i++) {
        assert_int_equal(saga_step_status_parse(saga_step_status_name(i)),
                         i);
    }
    assert_string_equal(saga_status_name(SAGA_COMPENSATING), "compensating");
    assert_string_equal(saga_step_status_name(SAGA_STEP_WAITING_RETRY),
                        "waiting_retry");
    assert_int_equal(saga_status_parse("confirmed"), -1);
    assert_int_equal(saga_step_status_parse(""), -1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_happy_path, setup),
        cmocka_unit_test_setup(test_decline_each_step, setup),
        cmocka_unit_test_setup(test_transient_then_ok, setup),
        cmocka_unit_test_setup(test_max_attempts, setup),
        cmocka_unit_test_setup(test_timeout, setup),
        cmocka_unit_test_setup(test_timeouts_exhausted, setup),
        cmocka_unit_test_setup(test_compensation_gives_up, setup),
        cmocka_unit_test_setup(test_admin_retry, setup),
        cmocka_unit_test_setup(test_admin_compensate, setup),
        cmocka_unit_test_setup(test_cancel, setup),
        cmocka_unit_test_setup(test_stale_and_duplicates, setup),
        cmocka_unit_test_setup(test_invalid_inputs, setup),
        cmocka_unit_test_setup(test_keys_stable, setup),
        cmocka_unit_test_setup(test_zero_delay, setup),
        cmocka_unit_test_setup(test_random_walk, setup),
        cmocka_unit_test_setup(test_names, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
