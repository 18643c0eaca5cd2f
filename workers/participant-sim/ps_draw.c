/*
 * ps_draw: what happens to a command, and when.
 *
 * The outcome is one uniform draw u in [0, 1): below no_answer nothing
 * is sent; below no_answer + transient a retryable error; below that
 * plus decline a final decline (only authorize and shipment.create can
 * be declined: a capture, a void, a refund and a shipment's cancel
 * succeed but for the other two); otherwise success.
 *
 * The latency is log-normal with the median p50 and the 99th percentile
 * p99 (sigma = ln(p99 / p50) / z, z = 2.326, the normal's 0.99 quantile);
 * p50 = p99 makes it fixed, p50 = 0 makes it none.
 */

#include <math.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ps.h"

#define PS_Z99  2.3263478740408408


/* xorshift64*: fast, and good enough for drawing outcomes. */
uint64_t
ps_rand64(uint64_t *s)
{
    uint64_t  x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;

    return x * 0x2545F4914F6CDD1DULL;
}


/* Uniform in [0, 1) from the top 53 bits. */
static double
ps_uniform(uint64_t *s)
{
    return (double) (ps_rand64(s) >> 11) / 9007199254740992.0;
}


int
ps_draw_init(ps_draw_t *d, double decline, double transient,
    double no_answer, int64_t p50_ms, int64_t p99_ms)
{
    struct timespec  ts;

    d->decline = decline;
    d->transient = transient;
    d->no_answer = no_answer;
    d->p50_ms = p50_ms;
    d->mu = p50_ms > 0 ? log((double) p50_ms) : 0;
    d->sigma = p50_ms > 0 && p99_ms > p50_ms
               ? log((double) p99_ms / (double) p50_ms) / PS_Z99 : 0;

    if (getrandom(&d->rng, sizeof(d->rng), 0) != sizeof(d->rng)) {
        clock_gettime(CLOCK_REALTIME, &ts);
        d->rng = (uint64_t) ts.tv_nsec ^ ((uint64_t) getpid() << 32);
    }
    d->rng |= 1;

    return 0;
}


ps_outcome_e
ps_draw_outcome(ps_draw_t *d, ps_type_e t)
{
    double  u = ps_uniform(&d->rng);

    if (u < d->no_answer) {
        return PS_NO_ANSWER;
    }
    u -= d->no_answer;
    if (u < d->transient) {
        return PS_TRANSIENT;
    }
    u -= d->transient;
    if (u < d->decline && (t == PS_AUTHORIZE || t == PS_SHIP_CREATE)) {
        return PS_DECLINED;
    }

    return PS_SUCCEEDED;
}


/* exp(mu + sigma * n), n standard normal (Box-Muller). */
int64_t
ps_draw_latency_ms(ps_draw_t *d)
{
    double  u1, u2, n;

    if (d->p50_ms == 0) {
        return 0;
    }
    if (d->sigma == 0) {
        return d->p50_ms;
    }

    u1 = 1.0 - ps_uniform(&d->rng);
    u2 = ps_uniform(&d->rng);
    n = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);

    return (int64_t) llround(exp(d->mu + d->sigma * n));
}


int
ps_outcome_sends(ps_type_e t, ps_outcome_e outcome)
{
    if (outcome == PS_TRANSIENT) {
        return t == PS_AUTHORIZE || !ps_type_is_payment(t);
    }

    return outcome == PS_SUCCEEDED || outcome == PS_DECLINED;
}
