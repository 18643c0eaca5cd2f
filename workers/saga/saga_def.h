/*
 * saga_def: what an order saga is made of. The step table (forward in
 * order, each step's compensation), the retry policy of every step and
 * direction with its defaults, the names that cross processes (commands,
 * events, reason codes), and the participant idempotency key.
 *
 * Steps, forward in this order; compensation runs in reverse over the
 * steps that completed (or whose outcome is unknown):
 *
 *   step       forward                       compensation
 *   reserve    local: reserve the stock      local: release it
 *   authorize  payment.authorize             payment.void, or
 *                                            payment.refund when capture
 *                                            succeeded or may have
 *   ship       shipment.create               shipment.cancel
 *   capture    payment.capture; its success  none of its own (the
 *              confirms the order, and the   authorize step's refund
 *              worker sells the reservation  undoes it)
 *              (local: sell)
 *
 * Events (type, when):
 *
 *   order.placed          the saga started
 *   inventory.reserved    reserve succeeded
 *   payment.authorized    authorize succeeded
 *   shipment.created      ship succeeded
 *   payment.captured      capture succeeded
 *   order.confirmed       the saga completed (right after payment.captured)
 *   order.compensating    compensation started (reason: why)
 *   shipment.cancelled    ship compensated
 *   payment.voided        authorize compensated by a void
 *   payment.refunded      authorize compensated by a refund
 *   inventory.released    reserve compensated
 *   order.cancelled       every compensation done (reason: why)
 *   order.failed          a compensation gave up: a person must act
 *   saga.step.retrying    an attempt failed transiently (reason), the next
 *                         one is due at the event's time
 *   saga.step.failed      a step gave up, forward or compensation (reason:
 *                         the decline, or the last transient error)
 *   saga.resumed          an admin retry or compensate restarted a failed
 *                         saga's compensation
 *
 * The command, event and reason names are common/commerce_contract.h's
 * (docs/contract.md, Order events).
 */

#ifndef SAGA_DEF_H
#define SAGA_DEF_H

#include <stddef.h>

#include "saga_retry.h"


typedef enum {
    SAGA_RESERVE = 0,
    SAGA_AUTHORIZE,
    SAGA_SHIP,
    SAGA_CAPTURE,
    SAGA_NSTEPS
} saga_step_t;

typedef enum {
    SAGA_FORWARD = 0,
    SAGA_COMPENSATE,
    SAGA_NDIRS
} saga_dir_t;

/* What an action asks the worker to do. */
typedef enum {
    SAGA_ACT_NONE = 0,
    SAGA_ACT_COMMAND,             /* send a participant command */
    SAGA_ACT_LOCAL,               /* a local action in PostgreSQL */
    SAGA_ACT_EVENT                /* emit an event (event store, outbox) */
} saga_act_kind_t;

typedef enum {
    SAGA_LOCAL_NONE = 0,
    SAGA_LOCAL_RESERVE,           /* reserve the order's stock */
    SAGA_LOCAL_RELEASE,           /* release the reservation */
    SAGA_LOCAL_SELL               /* turn the reservation into a sale */
} saga_local_t;


/* One direction of a step: what is done, and the event of its success. */
typedef struct {
    saga_act_kind_t  kind;        /* COMMAND, LOCAL; NONE: nothing */
    saga_local_t     local;       /* kind LOCAL */
    const char      *name;        /* command type, or the local's name */
    const char      *event;       /* emitted when it succeeds */
} saga_do_t;

typedef struct {
    saga_do_t        forward;
    saga_do_t        undo;        /* compensation */
    saga_do_t        undo_paid;   /* authorize: the refund, once capture
                                     may be done; NONE elsewhere */
    saga_do_t        then;        /* a local action with the forward
                                     success (capture: sell); event: the
                                     saga completed (order.confirmed) */
    const char      *unavailable; /* cancel reason: attempts ran out */
    const char      *declined;    /* cancel reason of a decline naming
                                     none */
} saga_step_def_t;

/* The retry policy of every step in each direction (capture has no
 * compensation: its undo entry is unused). */
typedef struct {
    saga_retry_t     retry[SAGA_NSTEPS][SAGA_NDIRS];
} saga_policies_t;


/* The longest idempotency key, its NUL included, for an order id of at
 * most SAGA_ORDER_ID_MAX - 1 bytes. */
#define SAGA_ORDER_ID_MAX  64
#define SAGA_KEY_MAX       (SAGA_ORDER_ID_MAX + 32)


const saga_step_def_t *saga_step_def(saga_step_t step);

/* "reserve", ...; "forward", "compensate". */
const char *saga_step_name(saga_step_t step);
const char *saga_dir_name(saga_dir_t dir);

/* The step or direction of a name (durable rows), or -1. */
int saga_step_parse(const char *name);
int saga_dir_parse(const char *name);

/* The index of name in names[0..n), or -1. */
int saga_name_parse(const char *const *names, int n, const char *name);

/* Whether the step has a compensation of its own. */
int saga_step_undoable(saga_step_t step);

/* The defaults (docs/architecture.md, "Order sagas: the decision core"). */
void saga_policies_default(saga_policies_t *p);

/* 0, or -1 with err naming the step, the direction and the fault. */
int saga_policies_check(const saga_policies_t *p, char *err,
    size_t errlen);

/* The idempotency key of what a step does in one direction, the same on
 * every attempt (docs/contract.md): "{order_id}:{name}", name the command
 * type ("payment.authorize") or the local action (what->name). A step's
 * compensation is one command for the whole saga (void or refund is
 * settled when compensation starts), so its key does not change either.
 * Returns the length, or -1 if it does not fit in len. */
int saga_idem_key(const char *order_id, const saga_do_t *what, char *buf,
    size_t len);


#endif /* SAGA_DEF_H */
