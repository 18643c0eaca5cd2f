/*
 * saga_retry: the retry policy of one saga step, and the delay before
 * its next attempt. Pure: the attempt number and the random number of
 * the jitter are passed in, so the delay of an attempt is a function of
 * durable state (the step's attempt count) and can be tested exactly.
 *
 * (workers/lib/cw_retry's cw_backoff_t is the in-memory backoff of a
 * connection: it keeps the attempt and its own random state in the
 * struct, doubles only, and jitters downwards. A saga step's attempts
 * live in PostgreSQL and survive a restart, hence this function.)
 *
 * Use:
 *
 *   if (saga_retry_check(&p, err, sizeof(err)) != 0) { ... err ... }
 *   if (attempts < p.max_attempts) {
 *       retry_at = now + saga_retry_delay(&p, attempts, random01);
 *   }
 */

#ifndef SAGA_RETRY_H
#define SAGA_RETRY_H

#include <stddef.h>
#include <stdint.h>


/* The largest interval or timeout a policy may name: one day. */
#define SAGA_RETRY_LIMIT_MS  (24LL * 3600 * 1000)


typedef struct {
    int64_t     timeout_ms;    /* one attempt's deadline, after sending */
    int64_t     initial_ms;    /* the delay after the first failure */
    double      coefficient;   /* each next delay is this many times */
    int64_t     max_ms;        /* the cap on the delay before jitter */
    unsigned    max_attempts;  /* attempts in all, the first included */
    double      jitter;        /* 0..1: delay times [1 - j, 1 + j] */
} saga_retry_t;


/* 0 if the policy is usable, else -1 with the reason in err: a timeout
 * and at least one attempt are required, coefficient >= 1, 0 <= initial
 * <= max <= SAGA_RETRY_LIMIT_MS, 0 <= jitter <= 1. */
int saga_retry_check(const saga_retry_t *p, char *err, size_t errlen);

/* The delay in ms after attempt number `attempt` (1 = the first) failed:
 * min(initial * coefficient^(attempt - 1), max), times a factor in
 * [1 - jitter, 1 + jitter] drawn from random01 in [0, 1) (values outside
 * are clamped). Never below 0 nor above max * (1 + jitter), whatever the
 * attempt number. The policy must have passed saga_retry_check. */
int64_t saga_retry_delay(const saga_retry_t *p, unsigned attempt,
    double random01);


#endif /* SAGA_RETRY_H */
