/*
 * commerce_breaker: consecutive-failure circuit breaker (see the header).
 */

#include "commerce_breaker.h"


static void commerce_breaker_open(commerce_breaker_t *b, int64_t now);


void
commerce_breaker_init(commerce_breaker_t *b, unsigned threshold,
    int64_t open_ms, unsigned probes)
{
    b->open_until = 0;
    b->open_ms = open_ms;
    b->threshold = threshold ? threshold : 1;
    b->failures = 0;
    b->probes = probes;
    b->probing = 0;
    b->state = COMMERCE_BREAKER_CLOSED;
    b->opens = 0;
}


commerce_breaker_state_e
commerce_breaker_state(commerce_breaker_t *b, int64_t now)
{
    if (b->state == COMMERCE_BREAKER_OPEN && now >= b->open_until) {
        b->state = COMMERCE_BREAKER_HALF_OPEN;
        b->probing = 0;
    }

    return b->state;
}


/*
 * An open breaker turns half-open once its time is up: probes go through,
 * and the first outcome decides.
 */
int
commerce_breaker_allow(commerce_breaker_t *b, int64_t now)
{
    switch (commerce_breaker_state(b, now)) {

    case COMMERCE_BREAKER_CLOSED:
        return 1;

    case COMMERCE_BREAKER_OPEN:
        return 0;

    default: /* COMMERCE_BREAKER_HALF_OPEN */

        if (b->probes == 0) {
            return 1;
        }

        if (b->probing >= b->probes) {
            return 0;
        }

        b->probing++;

        return 1;
    }
}


void
commerce_breaker_success(commerce_breaker_t *b)
{
    b->state = COMMERCE_BREAKER_CLOSED;
    b->failures = 0;
    b->probing = 0;
}


/*
 * A failure while half-open opens again at once; while closed the breaker
 * opens when the consecutive failures reach the threshold.  A late failure
 * while open changes nothing.
 */
void
commerce_breaker_failure(commerce_breaker_t *b, int64_t now)
{
    if (commerce_breaker_state(b, now) == COMMERCE_BREAKER_OPEN) {
        return;
    }

    b->failures++;

    if (b->state == COMMERCE_BREAKER_HALF_OPEN
        || b->failures >= b->threshold)
    {
        commerce_breaker_open(b, now);
    }
}


void
commerce_breaker_trip(commerce_breaker_t *b, int64_t now)
{
    if (commerce_breaker_state(b, now) == COMMERCE_BREAKER_OPEN) {
        return;
    }

    b->failures = b->threshold;
    commerce_breaker_open(b, now);
}


static void
commerce_breaker_open(commerce_breaker_t *b, int64_t now)
{
    b->state = COMMERCE_BREAKER_OPEN;
    b->open_until = now + b->open_ms;
    b->probing = 0;
    b->opens++;
}


int64_t
commerce_breaker_retry_after(const commerce_breaker_t *b, int64_t now)
{
    if (b->state != COMMERCE_BREAKER_OPEN || now >= b->open_until) {
        return 0;
    }

    return b->open_until - now;
}


const char *
commerce_breaker_state_name(commerce_breaker_state_e s)
{
    switch (s) {

    case COMMERCE_BREAKER_CLOSED:
        return "closed";

    case COMMERCE_BREAKER_OPEN:
        return "open";

    case COMMERCE_BREAKER_HALF_OPEN:
        return "half_open";
    }

    return "unknown";
}
