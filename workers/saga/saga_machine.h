/*
 * saga_machine: the decision core of an order saga. A saga and its
 * steps as they are stored (saga_t maps 1:1 to the saga's row and its
 * step rows), and one function that applies an input to them and says
 * what the worker must do, in the same transaction as the new state:
 * send participant commands, run local actions, emit events. Pure: no
 * I/O, no clock, no globals; now and the jitter's random number come in
 * with the input. t/unit/test_saga_machine.c tests it.
 *
 * Use:
 *
 *   saga_policies_t  pol;
 *   saga_input_t     in = { .kind = SAGA_IN_OUTCOME, .now_ms = now,
 *                           .random = r, .step = SAGA_AUTHORIZE,
 *                           .dir = SAGA_FORWARD, .attempt = 2,
 *                           .result = SAGA_RES_DECLINED,
 *                           .reason = "card_declined" };
 *   saga_out_t       out;
 *
 *   saga_policies_default(&pol);          then the flags' overrides
 *   (load s from its rows, or saga_init(&s) for a new order)
 *   if (saga_apply(&s, &pol, &in, &out) == SAGA_APPLIED) {
 *       write s (s.version was raised), do out.actions[0..nactions),
 *       commit; the next timer is out.deadline_ms
 *   }
 *
 * Saga status: new (no row yet) -> running -> completed, or running ->
 * compensating -> compensated | failed; failed -> compensating again on
 * an admin retry or compensate. Step status, forward: pending ->
 * in_flight -> (waiting_retry -> in_flight)* -> succeeded | failed;
 * compensation: -> compensating -> (comp_waiting_retry ->
 * compensating)* -> compensated | comp_failed; a step started that has
 * nothing to undo (declined, failed on answered errors, capture) becomes
 * skipped, its last error kept. A step still pending when compensation
 * starts stays pending.
 *
 * A forward step whose outcome is unknown (an attempt timed out with no
 * answer since, or compensation started while an attempt was out) is
 * compensated as if it had succeeded: its participant may have done it,
 * and every compensation is harmless on what was never done. A decline
 * is an answer: the step is not compensated.
 */

#ifndef SAGA_MACHINE_H
#define SAGA_MACHINE_H

#include <stdint.h>

#include "saga_def.h"


#define SAGA_REASON_MAX   64      /* a reason code, its NUL included */
#define SAGA_MAX_ACTIONS  4       /* actions of one input, at most */



typedef enum {
    SAGA_NEW = 0,                 /* not started: no row yet */
    SAGA_RUNNING,
    SAGA_COMPENSATING,
    SAGA_COMPLETED,               /* the order is confirmed */
    SAGA_COMPENSATED,             /* the order is cancelled */
    SAGA_FAILED                   /* a compensation gave up */
} saga_status_t;

typedef enum {
    SAGA_STEP_PENDING = 0,
    SAGA_STEP_IN_FLIGHT,          /* an attempt is out: deadline = its
                                     timeout */
    SAGA_STEP_WAITING_RETRY,      /* deadline = the next attempt */
    SAGA_STEP_SUCCEEDED,
    SAGA_STEP_FAILED,             /* declined, or out of attempts */
    SAGA_STEP_COMPENSATING,       /* a compensation attempt is out */
    SAGA_STEP_COMP_WAITING_RETRY,
    SAGA_STEP_COMPENSATED,
    SAGA_STEP_COMP_FAILED,
    SAGA_STEP_SKIPPED,            /* nothing of its own to undo */
    SAGA_STEP_NSTATUS
} saga_step_status_t;

/* One step's row. A direction starts with attempts and attempt_no 0. */
typedef struct {
    saga_step_status_t  status;
    unsigned            attempts;     /* counted against max attempts;
                                         0 again on an admin retry */
    unsigned            attempt_no;   /* the number the last attempt
                                         carried; never goes back */
    int64_t             deadline_ms;  /* -1: none */
    int                 unknown;      /* forward outcome unknown */
    char                last_error[SAGA_REASON_MAX];
} saga_step_state_t;

/* The saga's row and its steps' rows. */
typedef struct {
    char                order_id[SAGA_ORDER_ID_MAX];
    saga_status_t       status;
    saga_step_t         step;         /* the step in progress, or the
                                         last one acted on */
    char                reason[SAGA_REASON_MAX];  /* why it compensates */
    int64_t             version;      /* raised by every applied input */
    int64_t             deadline_ms;  /* the steps' earliest; -1: none */
    saga_step_state_t   steps[SAGA_NSTEPS];
} saga_t;


typedef enum {
    SAGA_IN_START = 1,            /* order.place */
    SAGA_IN_OUTCOME,              /* a participant's reply, or a local
                                     action's result */
    SAGA_IN_DEADLINE,             /* the timer: now >= s.deadline_ms */
    SAGA_IN_CANCEL,               /* order.cancel */
    SAGA_IN_RETRY,                /* saga.retry */
    SAGA_IN_COMPENSATE            /* saga.compensate */
} saga_in_kind_t;

typedef enum {
    SAGA_RES_OK = 0,
    SAGA_RES_DECLINED,            /* final: no retry */
    SAGA_RES_TRANSIENT            /* retried while attempts are left */
} saga_result_t;

typedef enum {
    SAGA_BY_OWNER = 0,
    SAGA_BY_ADMIN
} saga_by_t;

typedef struct {
    saga_in_kind_t      kind;
    int64_t             now_ms;
    double              random;       /* [0, 1): jitter of a retry */
    const char         *order_id;     /* START */
    saga_step_t         step;         /* OUTCOME */
    saga_dir_t          dir;          /* OUTCOME */
    unsigned            attempt;      /* OUTCOME: the attempt answered;
                                         0: not known */
    saga_result_t       result;       /* OUTCOME */
    const char         *reason;       /* OUTCOME: code, or NULL */
    saga_by_t           by;           /* CANCEL */
} saga_input_t;


typedef struct {
    saga_act_kind_t     kind;
    saga_step_t         step;
    saga_dir_t          dir;
    const char         *name;         /* command type, local action's
                                         name, event type (static) */
    saga_local_t        local;        /* LOCAL */
    unsigned            attempt;      /* COMMAND, LOCAL: its number;
                                         step events: the attempt */
    int64_t             at_ms;        /* COMMAND, LOCAL: its deadline;
                                         saga.step.retrying: the next
                                         attempt's time; else -1 */
    char                key[SAGA_KEY_MAX];        /* COMMAND, LOCAL */
    char                reason[SAGA_REASON_MAX];  /* EVENT; "" none */
} saga_action_t;

typedef enum {
    SAGA_APPLIED = 0,             /* write the saga, do the actions */
    SAGA_STALE,                   /* duplicate, stale or early: nothing */
    SAGA_REFUSED,                 /* a command that does not apply now:
                                     nothing changed, why says why */
    SAGA_INVALID                  /* a bad input: nothing changed */
} saga_verdict_t;

typedef struct {
    saga_verdict_t      verdict;
    const char         *why;          /* not APPLIED: a reason code
                                         (INVALID: a sentence) */
    const char         *order_status; /* the read model's, after */
    int64_t             deadline_ms;  /* the saga's next, after; -1 */
    unsigned            nactions;
    saga_action_t       actions[SAGA_MAX_ACTIONS];
} saga_out_t;


/* A saga that has not started (status new). */
void saga_init(saga_t *s);

/* Applies in to s and fills out; returns out->verdict. Only APPLIED
 * changes s. */
saga_verdict_t saga_apply(saga_t *s, const saga_policies_t *pol,
    const saga_input_t *in, saga_out_t *out);

/* The order status of the read model (COMMERCE_ORDER_*) of a saga. */
const char *saga_order_status(const saga_t *s);

/* Names of the durable rows (the saga's: COMMERCE_SAGA_*), and back:
 * the value, or -1 for an unknown name. */
const char *saga_status_name(saga_status_t status);
int saga_status_parse(const char *name);
const char *saga_step_status_name(saga_step_status_t status);
int saga_step_status_parse(const char *name);


#endif /* SAGA_MACHINE_H */
