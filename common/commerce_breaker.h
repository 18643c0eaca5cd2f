/*
 * commerce_breaker: a consecutive-failure circuit breaker, shared by the
 * nginx module (one per Redis server in each worker) and the workers
 * (pure C, no allocation, not thread-safe: each thread keeps its own).
 *
 * threshold consecutive failures open it for open_ms: calls fail fast.
 * Then it is half-open: probes calls go through (0: every call), the
 * first outcome reported decides, a success closes it, a failure opens it
 * again for a full period.  Failures reported while it is open (calls sent
 * before it opened) do not extend it.  Times are milliseconds on any
 * monotonic clock the caller uses consistently (ngx_current_msec,
 * cw_now_ms()), so that tests pass the time in.
 *
 * Use:
 *
 *     commerce_breaker_init(&b, 3, 1000, 1);
 *
 *     if (!commerce_breaker_allow(&b, now)) {
 *         wait = commerce_breaker_retry_after(&b, now);
 *         ... fail fast ...
 *     }
 *
 *     ... the call ...
 *
 *     if (ok) {
 *         commerce_breaker_success(&b);
 *     } else {
 *         commerce_breaker_failure(&b, now);
 *     }
 */

#ifndef COMMERCE_BREAKER_H
#define COMMERCE_BREAKER_H


#include <stdint.h>


typedef enum {
    COMMERCE_BREAKER_CLOSED = 0,
    COMMERCE_BREAKER_OPEN,
    COMMERCE_BREAKER_HALF_OPEN
} commerce_breaker_state_e;


typedef struct {
    int64_t                    open_until;  /* while open */
    int64_t                    open_ms;
    unsigned                   threshold;   /* consecutive failures */
    unsigned                   failures;
    unsigned                   probes;      /* half-open: 0 is all */
    unsigned                   probing;     /* probes let through */
    commerce_breaker_state_e   state;
    uint64_t                   opens;       /* times it opened (metrics) */
} commerce_breaker_t;


/* a threshold of 0 is 1: the first failure opens */
void commerce_breaker_init(commerce_breaker_t *b, unsigned threshold,
    int64_t open_ms, unsigned probes);

/* whether a call may go ahead now; a half-open breaker counts its probes */
int commerce_breaker_allow(commerce_breaker_t *b, int64_t now);

void commerce_breaker_success(commerce_breaker_t *b);
void commerce_breaker_failure(commerce_breaker_t *b, int64_t now);

/*
 * Opens it now whatever the count, when the client knows the server is
 * down (librdkafka's "all brokers down"); already open: unchanged.
 */
void commerce_breaker_trip(commerce_breaker_t *b, int64_t now);

/* milliseconds until calls go through again, 0 unless open */
int64_t commerce_breaker_retry_after(const commerce_breaker_t *b,
    int64_t now);

/* the state as of now: an open breaker past its time is half-open */
commerce_breaker_state_e commerce_breaker_state(commerce_breaker_t *b,
    int64_t now);

/* "closed", "open", "half_open" (logs and metrics) */
const char *commerce_breaker_state_name(commerce_breaker_state_e s);


#endif /* COMMERCE_BREAKER_H */
