/*
 * cw_time: clocks and sleeping.
 */

#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "cw_time.h"


int64_t
cw_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


void
cw_wall_ts(char *buf, size_t size)
{
    struct timespec  ts;
    struct tm        tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}


/* Sleeps in slices of at most 100 ms so a stop flag set by a signal
 * handler is noticed quickly even though nanosleep restarts. */
void
cw_sleep_ms(int64_t ms, volatile int *stop)
{
    struct timespec  req;
    int64_t          end, left;

    end = cw_now_ms() + ms;
    for ( ;; ) {
        if (stop != NULL && *stop) {
            return;
        }
        left = end - cw_now_ms();
        if (left <= 0) {
            return;
        }
        if (left > 100) {
            left = 100;
        }
        req.tv_sec = left / 1000;
        req.tv_nsec = (left % 1000) * 1000000;
        if (nanosleep(&req, NULL) != 0 && errno != EINTR) {
            return;
        }
    }
}
