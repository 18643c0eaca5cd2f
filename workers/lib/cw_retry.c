/*
 * cw_retry: backoff and retry budget.
 */

#include <unistd.h>

#include "cw_retry.h"
#include "cw_time.h"


static uint64_t
cw_xorshift(uint64_t *s)
{
    uint64_t  x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}


void
cw_backoff_init(cw_backoff_t *b, int64_t base_ms, int64_t max_ms,
    double jitter, int max_attempts, uint64_t seed)
{
    if (seed == 0) {
        seed = ((uint64_t) cw_now_ms() << 20) ^ (uint64_t) getpid()
               ^ (uint64_t) (uintptr_t) b;
    }
    if (base_ms < 1) {
        base_ms = 1;
    }
    if (max_ms < base_ms) {
        max_ms = base_ms;
    }
    if (jitter < 0) {
        jitter = 0;
    } else if (jitter > 1) {
        jitter = 1;
    }
    b->base_ms = base_ms;
    b->max_ms = max_ms;
    b->jitter = jitter;
    b->max_attempts = max_attempts;
    b->attempt = 0;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
}


int64_t
cw_backoff_next(cw_backoff_t *b)
{
    int64_t  d, low;
    int      i;

    if (b->max_attempts > 0 && b->attempt >= b->max_attempts) {
        return -1;
    }
    d = b->base_ms;
    for (i = 0; i < b->attempt && d < b->max_ms; i++) {
        d *= 2;
    }
    if (d > b->max_ms) {
        d = b->max_ms;
    }
    b->attempt++;

    low = d - (int64_t) ((double) d * b->jitter);
    if (low >= d) {
        return d;
    }
    return low + (int64_t) (cw_xorshift(&b->rng) % (uint64_t) (d - low + 1));
}


void
cw_backoff_reset(cw_backoff_t *b)
{
    b->attempt = 0;
}


/* Adds the time-based floor earned since the last call. */
static void
cw_budget_refill(cw_budget_t *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += b->min_per_sec * (double) (now_ms - b->last_ms) / 1000.0;
        b->last_ms = now_ms;
    }
    if (b->tokens > b->max_tokens) {
        b->tokens = b->max_tokens;
    }
}


void
cw_budget_init(cw_budget_t *b, double ratio, double min_per_sec,
    double max_tokens, int64_t now_ms)
{
    b->ratio = ratio;
    b->min_per_sec = min_per_sec;
    b->max_tokens = max_tokens;
    b->tokens = 0;
    b->last_ms = now_ms;
}


void
cw_budget_on_request(cw_budget_t *b, int64_t now_ms)
{
    b->tokens += b->ratio;
    cw_budget_refill(b, now_ms);
}


int
cw_budget_try_retry(cw_budget_t *b, int64_t now_ms)
{
    cw_budget_refill(b, now_ms);
    /* tolerate rounding: ten deposits of 0.1 must buy one retry */
    if (b->tokens < 1.0 - 1e-9) {
        return 0;
    }
    b->tokens -= 1.0;
    return 1;
}

