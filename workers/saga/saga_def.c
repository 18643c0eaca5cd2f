/*
 * saga_def: the step table, the default policies, names and keys.
 */

#include <stdio.h>
#include <string.h>

#include "commerce_contract.h"
#include "saga_def.h"


static const saga_step_def_t  saga_steps[SAGA_NSTEPS] = {

    /* reserve */
    { { SAGA_ACT_LOCAL, SAGA_LOCAL_RESERVE, "reserve",
        COMMERCE_EV_INVENTORY_RESERVED },
      { SAGA_ACT_LOCAL, SAGA_LOCAL_RELEASE, "release",
        COMMERCE_EV_INVENTORY_RELEASED },
      { SAGA_ACT_NONE, SAGA_LOCAL_NONE, NULL, NULL },
      { SAGA_ACT_NONE, SAGA_LOCAL_NONE, NULL, NULL },
      "inventory_unavailable", "out_of_stock" },

    /* authorize */
    { { SAGA_ACT_COMMAND, SAGA_LOCAL_NONE, COMMERCE_CMD_PAYMENT_AUTHORIZE,
        COMMERCE_EV_PAYMENT_AUTHORIZED },
      { SAGA_ACT_COMMAND, SAGA_LOCAL_NONE, COMMERCE_CMD_PAYMENT_VOID,
        COMMERCE_EV_PAYMENT_VOIDED },
      { SAGA_ACT_COMMAND, SAGA_LOCAL_NONE, COMMERCE_CMD_PAYMENT_REFUND,
        COMMERCE_EV_PAYMENT_REFUNDED },
      { SAGA_ACT_NONE, SAGA_LOCAL_NONE, NULL, NULL },
      "payment_unavailable", "payment_declined" },

    /* ship */
    { { SAGA_ACT_COMMAND, SAGA_LOCAL_NONE, COMMERCE_CMD_SHIPMENT_CREATE,
        COMMERCE_EV_SHIPMENT_CREATED },
      { SAGA_ACT_COMMAND, SAGA_LOCAL_NONE, COMMERCE_CMD_SHIPMENT_CANCEL,
        COMMERCE_EV_SHIPMENT_CANCELLED },
      { SAGA_ACT_NONE, SAGA_LOCAL_NONE, NULL, NULL },
      { SAGA_ACT_NONE, SAGA_LOCAL_NONE, NULL, NULL },
      "shipping_unavailable", "shipment_refused" },

    /* capture: its success confirms the order */
    { { SAGA_ACT_COMMAND, SAGA_LOCAL_NONE, COMMERCE_CMD_PAYMENT_CAPTURE,
        COMMERCE_EV_PAYMENT_CAPTURED },
      { SAGA_ACT_NONE, SAGA_LOCAL_NONE, NULL, NULL },
      { SAGA_ACT_NONE, SAGA_LOCAL_NONE, NULL, NULL },
      { SAGA_ACT_LOCAL, SAGA_LOCAL_SELL, "sell", COMMERCE_EV_ORDER_CONFIRMED },
      "payment_unavailable", "payment_declined" },
};


static const char  *const saga_step_names[SAGA_NSTEPS] = {
    "reserve", "authorize", "ship", "capture"
};

static const char  *const saga_dirs[SAGA_NDIRS] = { "forward", "compensate" };


const saga_step_def_t *
saga_step_def(saga_step_t step)
{
    return &saga_steps[step];
}


const char *
saga_step_name(saga_step_t step)
{
    return saga_step_names[step];
}


const char *
saga_dir_name(saga_dir_t dir)
{
    return saga_dirs[dir];
}


int
saga_step_parse(const char *name)
{
    return saga_name_parse(saga_step_names, SAGA_NSTEPS, name);
}


int
saga_dir_parse(const char *name)
{
    return saga_name_parse(saga_dirs, SAGA_NDIRS, name);
}


int
saga_name_parse(const char *const *names, int n, const char *name)
{
    int  i;

    for (i = 0; i < n; i++) {
        if (strcmp(name, names[i]) == 0) {
            return i;
        }
    }

    return -1;
}


int
saga_step_undoable(saga_step_t step)
{
    return saga_steps[step].undo.kind != SAGA_ACT_NONE;
}


/*
 * Temporal's backoff (1 s, x2, capped at 100 s) with 20% jitter. Local
 * steps are PostgreSQL statements: 5 s each. Participants get 30 s an
 * attempt. Forward steps give up after 5 attempts (a customer waits),
 * capture after 10 (giving up there undoes a shipment); compensations
 * after 20, about half an hour, since a compensation that gives up
 * needs a person.
 */
void
saga_policies_default(saga_policies_t *p)
{
    static const int64_t   timeout[SAGA_NSTEPS] = {
        5000, 30000, 30000, 30000
    };
    static const unsigned  attempts[SAGA_NSTEPS] = { 5, 5, 5, 10 };
    saga_retry_t          *r;
    int                    i, d;

    memset(p, 0, sizeof(*p));

    for (i = 0; i < SAGA_NSTEPS; i++) {
        for (d = 0; d < SAGA_NDIRS; d++) {
            if (d == SAGA_COMPENSATE && !saga_step_undoable(i)) {
                continue;
            }
            r = &p->retry[i][d];
            r->timeout_ms = timeout[i];
            r->initial_ms = 1000;
            r->coefficient = 2.0;
            r->max_ms = 100000;
            r->max_attempts = d == SAGA_FORWARD ? attempts[i] : 20;
            r->jitter = 0.2;
        }
    }
}


int
saga_policies_check(const saga_policies_t *p, char *err, size_t errlen)
{
    char  why[128];
    int   i, d;

    for (i = 0; i < SAGA_NSTEPS; i++) {
        for (d = 0; d < SAGA_NDIRS; d++) {
            if (d == SAGA_COMPENSATE && !saga_step_undoable(i)) {
                continue;
            }
            if (saga_retry_check(&p->retry[i][d], why, sizeof(why)) != 0) {
                snprintf(err, errlen, "%s %s: %s", saga_step_names[i],
                         saga_dirs[d], why);
                return -1;
            }
        }
    }

    return 0;
}


int
saga_idem_key(const char *order_id, const saga_do_t *what, char *buf,
    size_t len)
{
    int  n;

    n = snprintf(buf, len, "%s:%s", order_id, what->name);
    if (n < 0 || (size_t) n >= len) {
        return -1;
    }

    return n;
}
