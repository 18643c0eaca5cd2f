/*
 * saga_machine: an input applied to a saga. saga_apply checks the input
 * and runs one function per kind; the step moves they share (send an
 * attempt, a success, a failure, the compensation walk) follow.
 *
 * Only one step is active at a time: s->step, in the direction of the
 * saga's status (running: forward, compensating: compensation). Every
 * input that is not for it is stale.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce_contract.h"
#include "saga_machine.h"


static saga_verdict_t saga_start(saga_t *s, const saga_policies_t *pol,
    const saga_input_t *in, saga_out_t *out);
static saga_verdict_t saga_outcome(saga_t *s, const saga_policies_t *pol,
    const saga_input_t *in, saga_out_t *out);
static saga_verdict_t saga_deadline(saga_t *s, const saga_policies_t *pol,
    const saga_input_t *in, saga_out_t *out);
static saga_verdict_t saga_cancel(saga_t *s, const saga_policies_t *pol,
    const saga_input_t *in, saga_out_t *out);
static saga_verdict_t saga_retry(saga_t *s, const saga_policies_t *pol,
    const saga_input_t *in, saga_out_t *out);
static saga_verdict_t saga_compensate(saga_t *s,
    const saga_policies_t *pol, const saga_input_t *in, saga_out_t *out);

static void saga_begin(saga_t *s, const saga_policies_t *pol,
    saga_step_t step, saga_dir_t dir, int64_t now, saga_out_t *out);
static void saga_send(saga_t *s, const saga_policies_t *pol, saga_dir_t dir,
    int64_t now, saga_out_t *out);
static void saga_succeeded(saga_t *s, const saga_policies_t *pol,
    saga_dir_t dir, int64_t now, saga_out_t *out);
static void saga_attempt_failed(saga_t *s, const saga_policies_t *pol,
    saga_dir_t dir, const char *reason, const saga_input_t *in,
    saga_out_t *out);
static void saga_gave_up(saga_t *s, const saga_policies_t *pol,
    saga_dir_t dir, const char *reason, const char *cancel_reason,
    int64_t now, saga_out_t *out);
static void saga_start_compensation(saga_t *s, const saga_policies_t *pol,
    const char *reason, int64_t now, saga_out_t *out);
static void saga_next_compensation(saga_t *s, const saga_policies_t *pol,
    int from, int64_t now, saga_out_t *out);
static void saga_resume(saga_t *s, const saga_policies_t *pol,
    int64_t now, saga_out_t *out);
static const saga_do_t *saga_undo_of(const saga_t *s, saga_step_t step);
static saga_action_t *saga_push(saga_out_t *out, saga_act_kind_t kind,
    saga_step_t step, saga_dir_t dir, const char *name);
static saga_action_t *saga_event(saga_out_t *out, const char *name,
    saga_step_t step, saga_dir_t dir, unsigned attempt, const char *reason);
static void saga_copy(char *dst, const char *src);


/* The function of each input kind. */
static saga_verdict_t (*const saga_inputs[SAGA_IN_COMPENSATE + 1])(saga_t *s,
    const saga_policies_t *pol, const saga_input_t *in, saga_out_t *out) = {
    NULL,
    saga_start,
    saga_outcome,
    saga_deadline,
    saga_cancel,
    saga_retry,
    saga_compensate
};


static const char  *const saga_status_names[SAGA_FAILED + 1] = {
    "new",
    COMMERCE_SAGA_RUNNING,
    COMMERCE_SAGA_COMPENSATING,
    COMMERCE_SAGA_COMPLETED,
    COMMERCE_SAGA_COMPENSATED,
    COMMERCE_SAGA_FAILED
};

static const char  *const saga_step_status_names[SAGA_STEP_NSTATUS] = {
    "pending",
    "in_flight",
    "waiting_retry",
    "succeeded",
    "failed",
    "compensating",
    "comp_waiting_retry",
    "compensated",
    "comp_failed",
    "skipped"
};


void
saga_init(saga_t *s)
{
    int  i;

    memset(s, 0, sizeof(*s));
    s->status = SAGA_NEW;
    s->deadline_ms = -1;

    for (i = 0; i < SAGA_NSTEPS; i++) {
        s->steps[i].deadline_ms = -1;
    }
}


saga_verdict_t
saga_apply(saga_t *s, const saga_policies_t *pol, const saga_input_t *in,
    saga_out_t *out)
{
    saga_verdict_t  v;
    int64_t         d;
    int             i;

    memset(out, 0, sizeof(*out));

    if ((unsigned) in->kind <= SAGA_IN_COMPENSATE && in->kind != 0) {
        v = saga_inputs[in->kind](s, pol, in, out);

    } else {
        out->why = "unknown input kind";
        v = SAGA_INVALID;
    }

    if (v == SAGA_APPLIED) {
        s->version++;

        d = -1;
        for (i = 0; i < SAGA_NSTEPS; i++) {
            if (s->steps[i].deadline_ms >= 0
                && (d < 0 || s->steps[i].deadline_ms < d))
            {
                d = s->steps[i].deadline_ms;
            }
        }
        s->deadline_ms = d;

    } else {
        out->nactions = 0;
    }

    out->verdict = v;
    out->deadline_ms = s->deadline_ms;
    out->order_status = saga_order_status(s);

    return v;
}


static saga_verdict_t
saga_start(saga_t *s, const saga_policies_t *pol, const saga_input_t *in,
    saga_out_t *out)
{
    size_t  n;

    if (s->status != SAGA_NEW) {
        out->why = "duplicate";
        return SAGA_STALE;
    }

    n = in->order_id ? strlen(in->order_id) : 0;
    if (n == 0 || n >= SAGA_ORDER_ID_MAX) {
        out->why = "order id must be 1 to 63 bytes";
        return SAGA_INVALID;
    }

    memcpy(s->order_id, in->order_id, n + 1);
    s->status = SAGA_RUNNING;

    saga_event(out, COMMERCE_EV_ORDER_PLACED, SAGA_RESERVE, SAGA_FORWARD, 0,
               NULL);
    saga_begin(s, pol, SAGA_RESERVE, SAGA_FORWARD, in->now_ms, out);

    return SAGA_APPLIED;
}


/*
 * An ok or a decline answers the step whatever attempt it names (the
 * key is the same on each: a late ok means the participant did it); a
 * transient error only fails the attempt that is out.
 */
static saga_verdict_t
saga_outcome(saga_t *s, const saga_policies_t *pol, const saga_input_t *in,
    saga_out_t *out)
{
    saga_step_state_t  *st;
    saga_status_t       want;
    const char         *reason;
    int                 out_now, waiting;

    if ((unsigned) in->step >= SAGA_NSTEPS
        || (unsigned) in->dir >= SAGA_NDIRS
        || (unsigned) in->result > SAGA_RES_TRANSIENT)
    {
        out->why = "step, direction or result out of range";
        return SAGA_INVALID;
    }

    reason = in->reason && in->reason[0] ? in->reason : NULL;
    if (reason && strlen(reason) >= SAGA_REASON_MAX) {
        out->why = "reason code longer than 63 bytes";
        return SAGA_INVALID;
    }

    st = &s->steps[in->step];

    if (in->dir == SAGA_FORWARD) {
        want = SAGA_RUNNING;
        out_now = st->status == SAGA_STEP_IN_FLIGHT;
        waiting = st->status == SAGA_STEP_WAITING_RETRY;

    } else {
        want = SAGA_COMPENSATING;
        out_now = st->status == SAGA_STEP_COMPENSATING;
        waiting = st->status == SAGA_STEP_COMP_WAITING_RETRY;
    }

    if (s->status != want || s->step != in->step || !(out_now || waiting)
        || in->attempt > st->attempt_no)
    {
        out->why = st->status == (in->dir == SAGA_FORWARD
                                  ? SAGA_STEP_SUCCEEDED
                                  : SAGA_STEP_COMPENSATED)
                   ? "duplicate" : "stale";
        return SAGA_STALE;
    }

    switch (in->result) {

    case SAGA_RES_OK:
        saga_succeeded(s, pol, in->dir, in->now_ms, out);
        break;

    case SAGA_RES_DECLINED:
        if (in->dir == SAGA_FORWARD) {
            st->unknown = 0;
        }
        saga_gave_up(s, pol, in->dir,
                     reason ? reason : saga_step_def(in->step)->declined,
                     reason ? reason : saga_step_def(in->step)->declined,
                     in->now_ms, out);
        break;

    default:
        if (!out_now || (in->attempt != 0 && in->attempt != st->attempt_no))
        {
            out->why = "stale";
            return SAGA_STALE;
        }
        saga_attempt_failed(s, pol, in->dir,
                            reason ? reason : COMMERCE_REASON_TRANSIENT,
                            in, out);
    }

    return SAGA_APPLIED;
}


/* The active step's deadline: an attempt timed out, or a retry is due. */
static saga_verdict_t
saga_deadline(saga_t *s, const saga_policies_t *pol, const saga_input_t *in,
    saga_out_t *out)
{
    saga_step_state_t  *st;
    saga_dir_t          dir;

    st = &s->steps[s->step];

    if ((s->status != SAGA_RUNNING && s->status != SAGA_COMPENSATING)
        || st->deadline_ms < 0 || in->now_ms < st->deadline_ms)
    {
        out->why = "not_due";
        return SAGA_STALE;
    }

    dir = s->status == SAGA_RUNNING ? SAGA_FORWARD : SAGA_COMPENSATE;

    switch (st->status) {

    case SAGA_STEP_IN_FLIGHT:
        st->unknown = 1;
        /* fall through */

    case SAGA_STEP_COMPENSATING:
        saga_attempt_failed(s, pol, dir, COMMERCE_REASON_TIMEOUT, in, out);
        break;

    default:
        /* waiting_retry, comp_waiting_retry */
        saga_send(s, pol, dir, in->now_ms, out);
    }

    return SAGA_APPLIED;
}


/* order.cancel: compensates until the shipment exists. */
static saga_verdict_t
saga_cancel(saga_t *s, const saga_policies_t *pol, const saga_input_t *in,
    saga_out_t *out)
{
    switch (s->status) {

    case SAGA_NEW:
        out->why = "not_started";
        return SAGA_REFUSED;

    case SAGA_COMPENSATING:
        out->why = "already_compensating";
        return SAGA_REFUSED;

    case SAGA_RUNNING:
        break;

    default:
        out->why = "already_final";
        return SAGA_REFUSED;
    }

    if (s->steps[SAGA_SHIP].status == SAGA_STEP_SUCCEEDED) {
        out->why = "already_shipped";
        return SAGA_REFUSED;
    }

    saga_start_compensation(s, pol, in->by == SAGA_BY_ADMIN
                                    ? COMMERCE_REASON_CANCELLED_BY_ADMIN
                                    : COMMERCE_REASON_CANCELLED_BY_OWNER,
                            in->now_ms, out);

    return SAGA_APPLIED;
}


/* saga.retry: only a failed saga, at the compensation that gave up. */
static saga_verdict_t
saga_retry(saga_t *s, const saga_policies_t *pol, const saga_input_t *in,
    saga_out_t *out)
{
    if (s->status != SAGA_FAILED) {
        out->why = "not_failed";
        return SAGA_REFUSED;
    }

    saga_resume(s, pol, in->now_ms, out);

    return SAGA_APPLIED;
}


/* saga.compensate: from wherever a running or failed saga is. */
static saga_verdict_t
saga_compensate(saga_t *s, const saga_policies_t *pol,
    const saga_input_t *in, saga_out_t *out)
{
    switch (s->status) {

    case SAGA_NEW:
        out->why = "not_started";
        return SAGA_REFUSED;

    case SAGA_COMPENSATING:
        out->why = "already_compensating";
        return SAGA_REFUSED;

    case SAGA_RUNNING:
        saga_start_compensation(s, pol, COMMERCE_REASON_COMPENSATED_BY_ADMIN,
                                in->now_ms, out);
        return SAGA_APPLIED;

    case SAGA_FAILED:
        saga_resume(s, pol, in->now_ms, out);
        return SAGA_APPLIED;

    default:
        out->why = "already_final";
        return SAGA_REFUSED;
    }
}


/* A direction of a step starts: counts from 0, first attempt out. */
static void
saga_begin(saga_t *s, const saga_policies_t *pol, saga_step_t step,
    saga_dir_t dir, int64_t now, saga_out_t *out)
{
    saga_step_state_t  *st;

    s->step = step;
    st = &s->steps[step];
    st->attempts = 0;
    st->attempt_no = 0;
    st->last_error[0] = '\0';

    saga_send(s, pol, dir, now, out);
}


/* The next attempt of the active step: a command or a local action. */
static void
saga_send(saga_t *s, const saga_policies_t *pol, saga_dir_t dir,
    int64_t now, saga_out_t *out)
{
    saga_step_state_t  *st;
    const saga_do_t    *what;
    saga_action_t      *a;

    st = &s->steps[s->step];
    what = dir == SAGA_FORWARD ? &saga_step_def(s->step)->forward
                               : saga_undo_of(s, s->step);

    st->attempts++;
    st->attempt_no++;
    st->status = dir == SAGA_FORWARD ? SAGA_STEP_IN_FLIGHT
                                     : SAGA_STEP_COMPENSATING;
    st->deadline_ms = now + pol->retry[s->step][dir].timeout_ms;

    a = saga_push(out, what->kind, s->step, dir, what->name);
    a->local = what->local;
    a->attempt = st->attempt_no;
    a->at_ms = st->deadline_ms;
    /* fits: the order id was checked against SAGA_ORDER_ID_MAX */
    (void) saga_idem_key(s->order_id, what, a->key, sizeof(a->key));
}


static void
saga_succeeded(saga_t *s, const saga_policies_t *pol, saga_dir_t dir,
    int64_t now, saga_out_t *out)
{
    saga_step_state_t  *st;
    const saga_do_t    *what;
    saga_action_t      *a;
    saga_step_t         step;

    step = s->step;
    st = &s->steps[step];
    st->deadline_ms = -1;
    st->last_error[0] = '\0';

    if (dir == SAGA_COMPENSATE) {
        what = saga_undo_of(s, step);
        st->status = SAGA_STEP_COMPENSATED;
        saga_event(out, what->event, step, dir, st->attempt_no, NULL);
        saga_next_compensation(s, pol, (int) step - 1, now, out);
        return;
    }

    st->status = SAGA_STEP_SUCCEEDED;
    st->unknown = 0;
    saga_event(out, saga_step_def(step)->forward.event, step, dir,
               st->attempt_no, NULL);

    if (step + 1 < SAGA_NSTEPS) {
        saga_begin(s, pol, step + 1, SAGA_FORWARD, now, out);
        return;
    }

    /* the last step: the order is confirmed, and the worker does what
     * comes with it (capture: the reservation becomes a sale) */
    s->status = SAGA_COMPLETED;
    what = &saga_step_def(step)->then;
    a = saga_push(out, what->kind, step, dir, what->name);
    a->local = what->local;
    (void) saga_idem_key(s->order_id, what, a->key, sizeof(a->key));
    saga_event(out, what->event, step, dir, 0, NULL);
}


/* A transient failure (an error or a timeout) of the attempt that is
 * out: another one after the backoff, or give up. */
static void
saga_attempt_failed(saga_t *s, const saga_policies_t *pol, saga_dir_t dir,
    const char *reason, const saga_input_t *in, saga_out_t *out)
{
    saga_step_state_t   *st;
    const saga_retry_t  *r;
    saga_action_t       *a;
    saga_step_t          step;
    int64_t              delay;

    step = s->step;
    st = &s->steps[step];
    r = &pol->retry[step][dir];
    saga_copy(st->last_error, reason);

    if (st->attempts >= r->max_attempts) {
        saga_gave_up(s, pol, dir, reason, saga_step_def(step)->unavailable,
                     in->now_ms, out);
        return;
    }

    delay = saga_retry_delay(r, st->attempts, in->random);
    st->status = dir == SAGA_FORWARD ? SAGA_STEP_WAITING_RETRY
                                     : SAGA_STEP_COMP_WAITING_RETRY;
    st->deadline_ms = in->now_ms + delay;

    a = saga_event(out, COMMERCE_EV_SAGA_STEP_RETRYING, step, dir,
                   st->attempt_no, reason);
    a->at_ms = st->deadline_ms;

    if (delay == 0) {
        saga_send(s, pol, dir, in->now_ms, out);
    }
}


/* The active step is done trying: forward, the saga compensates with
 * cancel_reason; a compensation, the saga fails. */
static void
saga_gave_up(saga_t *s, const saga_policies_t *pol, saga_dir_t dir,
    const char *reason, const char *cancel_reason, int64_t now,
    saga_out_t *out)
{
    saga_step_state_t  *st;

    st = &s->steps[s->step];
    st->deadline_ms = -1;
    saga_copy(st->last_error, reason);
    saga_event(out, COMMERCE_EV_SAGA_STEP_FAILED, s->step, dir, st->attempt_no,
               reason);

    if (dir == SAGA_FORWARD) {
        st->status = SAGA_STEP_FAILED;
        saga_start_compensation(s, pol, cancel_reason, now, out);
        return;
    }

    st->status = SAGA_STEP_COMP_FAILED;
    s->status = SAGA_FAILED;
    saga_event(out, COMMERCE_EV_ORDER_FAILED, s->step, dir, 0, reason);
}


static void
saga_start_compensation(saga_t *s, const saga_policies_t *pol,
    const char *reason, int64_t now, saga_out_t *out)
{
    saga_step_state_t  *st;

    st = &s->steps[s->step];

    if (st->status == SAGA_STEP_IN_FLIGHT) {
        /* its answer is no longer awaited: it may have been done */
        st->unknown = 1;
    }
    if (st->status == SAGA_STEP_IN_FLIGHT
        || st->status == SAGA_STEP_WAITING_RETRY)
    {
        st->status = SAGA_STEP_FAILED;
        st->deadline_ms = -1;
        saga_copy(st->last_error, reason);
    }

    s->status = SAGA_COMPENSATING;
    saga_copy(s->reason, reason);
    saga_event(out, COMMERCE_EV_ORDER_COMPENSATING, s->step, SAGA_COMPENSATE, 0,
               reason);

    saga_next_compensation(s, pol, (int) s->step, now, out);
}


/* From step `from` down: the first step done (or maybe done) with an
 * undo of its own is compensated; the started ones passed are skipped.
 * None left: the saga is compensated. */
static void
saga_next_compensation(saga_t *s, const saga_policies_t *pol, int from,
    int64_t now, saga_out_t *out)
{
    saga_step_state_t  *st;
    int                 i;

    for (i = from; i >= 0; i--) {
        st = &s->steps[i];

        if (st->status == SAGA_STEP_PENDING) {
            continue;
        }

        if ((st->status == SAGA_STEP_SUCCEEDED || st->unknown)
            && saga_step_undoable(i))
        {
            saga_begin(s, pol, i, SAGA_COMPENSATE, now, out);
            return;
        }

        st->status = SAGA_STEP_SKIPPED;
    }

    s->status = SAGA_COMPENSATED;
    saga_event(out, COMMERCE_EV_ORDER_CANCELLED, s->step, SAGA_COMPENSATE, 0,
               s->reason);
}


/* A failed saga's compensation that gave up goes again, its attempts
 * counted from 0; the steps already compensated stay so. */
static void
saga_resume(saga_t *s, const saga_policies_t *pol, int64_t now,
    saga_out_t *out)
{
    s->status = SAGA_COMPENSATING;
    s->steps[s->step].attempts = 0;
    saga_event(out, COMMERCE_EV_SAGA_RESUMED, s->step, SAGA_COMPENSATE, 0,
               s->reason);
    saga_send(s, pol, SAGA_COMPENSATE, now, out);
}


/* The compensation of a step: authorize refunds once capture may have
 * taken the money (capture reaches compensation only unknown). */
static const saga_do_t *
saga_undo_of(const saga_t *s, saga_step_t step)
{
    const saga_step_def_t  *def;

    def = saga_step_def(step);

    if (def->undo_paid.kind != SAGA_ACT_NONE
        && s->steps[SAGA_CAPTURE].unknown)
    {
        return &def->undo_paid;
    }

    return &def->undo;
}


/* SAGA_MAX_ACTIONS bounds what one input does (three at the most); one
 * more would be a bug in this file. */
static saga_action_t *
saga_push(saga_out_t *out, saga_act_kind_t kind, saga_step_t step,
    saga_dir_t dir, const char *name)
{
    saga_action_t  *a;

    if (out->nactions == SAGA_MAX_ACTIONS) {
        abort();
    }

    a = &out->actions[out->nactions++];
    a->kind = kind;
    a->step = step;
    a->dir = dir;
    a->name = name;
    a->at_ms = -1;

    return a;
}


static saga_action_t *
saga_event(saga_out_t *out, const char *name, saga_step_t step,
    saga_dir_t dir, unsigned attempt, const char *reason)
{
    saga_action_t  *a;

    a = saga_push(out, SAGA_ACT_EVENT, step, dir, name);
    a->attempt = attempt;
    saga_copy(a->reason, reason);

    return a;
}


/* Reason codes were checked against SAGA_REASON_MAX, or are ours. */
static void
saga_copy(char *dst, const char *src)
{
    snprintf(dst, SAGA_REASON_MAX, "%s", src ? src : "");
}


const char *
saga_order_status(const saga_t *s)
{
    switch (s->status) {

    case SAGA_COMPLETED:
        return COMMERCE_ORDER_CONFIRMED;

    case SAGA_COMPENSATED:
        return COMMERCE_ORDER_CANCELLED;

    case SAGA_FAILED:
        return COMMERCE_ORDER_FAILED;

    default:
        return COMMERCE_ORDER_PENDING;
    }
}


const char *
saga_status_name(saga_status_t status)
{
    return saga_status_names[status];
}


int
saga_status_parse(const char *name)
{
    return saga_name_parse(saga_status_names, SAGA_FAILED + 1, name);
}


const char *
saga_step_status_name(saga_step_status_t status)
{
    return saga_step_status_names[status];
}


int
saga_step_status_parse(const char *name)
{
    return saga_name_parse(saga_step_status_names, SAGA_STEP_NSTATUS, name);
}
