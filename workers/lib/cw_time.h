/*
 * cw_time: the two clocks workers need. Monotonic milliseconds for
 * timeouts, backoff and breakers (never jumps), wall-clock UTC for logs.
 */

#ifndef CW_TIME_H
#define CW_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in milliseconds (CLOCK_MONOTONIC). */
int64_t cw_now_ms(void);

/* Writes "2026-01-31T12:34:56.789Z" (24 chars + NUL); buf needs 32. */
void cw_wall_ts(char *buf, size_t size);

/* Sleeps ms milliseconds, resuming after signals until the time is over
 * unless *stop becomes non-zero (stop may be NULL). */
void cw_sleep_ms(int64_t ms, volatile int *stop);

#endif /* CW_TIME_H */
