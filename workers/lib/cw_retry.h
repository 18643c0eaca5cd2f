/*
 * cw_retry: how a worker waits before trying again.
 *
 * cw_backoff_t   exponential backoff with jitter and an attempt limit.
 * cw_budget_t    a retry budget: retries may be at most a fraction of
 *                recent requests (plus a small floor), so a dependency
 *                that is down is not hammered by every caller retrying.
 *
 * The circuit breaker is shared with the nginx module: common/
 * commerce_breaker.h (a worker lets one probe through while half-open:
 * commerce_breaker_init(&b, threshold, open_ms, 1)).
 *
 * All take the current time as an argument (cw_now_ms() in production)
 * so behaviour is deterministic under test. None is thread-safe; each
 * thread keeps its own.
 */

#ifndef CW_RETRY_H
#define CW_RETRY_H

#include <stdint.h>

typedef struct {
    int64_t    base_ms;       /* first delay */
    int64_t    max_ms;        /* cap on the nominal delay */
    double     jitter;        /* 0..1: delay drawn from [d*(1-j), d] */
    int        max_attempts;  /* retries allowed; 0 = unlimited */
    int        attempt;       /* retries handed out so far */
    uint64_t   rng;           /* xorshift state, never 0 */
} cw_backoff_t;

/* seed 0 picks one from the clock and pid. */
void cw_backoff_init(cw_backoff_t *b, int64_t base_ms, int64_t max_ms,
    double jitter, int max_attempts, uint64_t seed);

/* Delay before the next retry in ms, or -1 when attempts are exhausted.
 * The nominal delay doubles per attempt: base, 2*base, 4*base ... max. */
int64_t cw_backoff_next(cw_backoff_t *b);

/* Call after a success so the next failure starts from base again. */
void cw_backoff_reset(cw_backoff_t *b);


typedef struct {
    double     ratio;         /* retries allowed per request */
    double     min_per_sec;   /* retries always allowed per second */
    double     max_tokens;    /* cap on saved-up retries */
    double     tokens;
    int64_t    last_ms;
} cw_budget_t;

void cw_budget_init(cw_budget_t *b, double ratio, double min_per_sec,
    double max_tokens, int64_t now_ms);

/* Records a first attempt (not a retry): deposits ratio tokens. */
void cw_budget_on_request(cw_budget_t *b, int64_t now_ms);

/* Returns 1 and spends a token if a retry is allowed now, else 0. */
int cw_budget_try_retry(cw_budget_t *b, int64_t now_ms);


#endif /* CW_RETRY_H */
