/*
 * saga_retry: a step's retry policy checked, and the delay before its
 * next attempt.
 */

#include <math.h>
#include <stdio.h>

#include "saga_retry.h"


int
saga_retry_check(const saga_retry_t *p, char *err, size_t errlen)
{
    const char  *why;

    why = NULL;

    if (p->timeout_ms < 1 || p->timeout_ms > SAGA_RETRY_LIMIT_MS) {
        why = "timeout must be 1 ms to 1 day";

    } else if (p->max_attempts < 1) {
        why = "max attempts must be at least 1";

    } else if (!(p->coefficient >= 1.0 && p->coefficient <= 1000.0)) {
        why = "backoff coefficient must be 1 to 1000";

    } else if (p->initial_ms < 0 || p->initial_ms > p->max_ms) {
        why = "initial interval must be 0 to the maximum interval";

    } else if (p->max_ms > SAGA_RETRY_LIMIT_MS) {
        why = "maximum interval must be at most 1 day";

    } else if (!(p->jitter >= 0.0 && p->jitter <= 1.0)) {
        why = "jitter must be 0 to 1";
    }

    if (why == NULL) {
        return 0;
    }

    snprintf(err, errlen, "%s", why);
    return -1;
}


int64_t
saga_retry_delay(const saga_retry_t *p, unsigned attempt, double random01)
{
    double  d, factor, cap;

    if (attempt < 1) {
        attempt = 1;
    }
    if (!(random01 >= 0.0)) {
        random01 = 0.0;              /* negative or NaN */
    } else if (random01 >= 1.0) {
        random01 = nextafter(1.0, 0.0);
    }

    /* pow() goes to +inf rather than overflowing; the cap takes it */
    d = (double) p->initial_ms * pow(p->coefficient, (double) attempt - 1);
    if (!(d <= (double) p->max_ms)) {
        d = (double) p->max_ms;
    }

    factor = 1.0 - p->jitter + 2.0 * p->jitter * random01;
    d *= factor;

    cap = (double) p->max_ms * (1.0 + p->jitter);
    if (d > cap) {
        d = cap;
    }
    if (d < 0.0) {
        d = 0.0;
    }

    return (int64_t) d;              /* floor: never above the cap */
}
