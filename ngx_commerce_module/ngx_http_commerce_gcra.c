/*
 * GCRA arithmetic in integer microseconds (see the header).
 */

#include "ngx_http_commerce_gcra.h"


int
ngx_http_commerce_gcra_parse_rate(const u_char *p, size_t len,
    uint64_t *interval)
{
    size_t    i;
    uint64_t  n, period;

    if (len < 4 || p[len - 3] != 'r' || p[len - 2] != '/') {
        return -1;
    }

    switch (p[len - 1]) {
    case 's':
        period = NGX_HTTP_COMMERCE_GCRA_USEC;
        break;
    case 'm':
        period = 60 * (uint64_t) NGX_HTTP_COMMERCE_GCRA_USEC;
        break;
    default:
        return -1;
    }

    n = 0;

    for (i = 0; i < len - 3; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        n = n * 10 + (p[i] - '0');

        if (n > period) {
            /* faster than one request per microsecond */
            return -1;
        }
    }

    if (n == 0) {
        return -1;
    }

    /* the interval is rounded down to a microsecond: the rate up */
    *interval = period / n;

    return 0;
}


int
ngx_http_commerce_gcra_init(ngx_http_commerce_gcra_t *g, uint64_t interval,
    uint64_t burst)
{
    if (interval == 0 || burst > NGX_HTTP_COMMERCE_GCRA_MAX_BURST) {
        return -1;
    }

    g->interval = interval;
    g->tolerance = burst * interval;
    g->limit = burst + 1;

    return 0;
}


unsigned
ngx_http_commerce_gcra_update(const ngx_http_commerce_gcra_t *g,
    uint64_t now, uint64_t *tat, ngx_http_commerce_gcra_result_t *res)
{
    uint64_t  base, ahead;

    base = (*tat > now) ? *tat : now;
    ahead = base - now;

    if (ahead > g->tolerance) {
        ngx_http_commerce_gcra_outcome(g, 0, ahead, res);
        return 0;
    }

    *tat = base + g->interval;

    ngx_http_commerce_gcra_outcome(g, 1, ahead + g->interval, res);

    return 1;
}


/*
 * ahead <= tau + T when allowed: the quota left is the whole cells still
 * between it and tau + T.  A refused request waits until the TAT is tau
 * ahead of it.
 */
void
ngx_http_commerce_gcra_outcome(const ngx_http_commerce_gcra_t *g,
    unsigned allowed, uint64_t ahead, ngx_http_commerce_gcra_result_t *res)
{
    uint64_t  window;

    window = g->tolerance + g->interval;

    res->allowed = allowed;
    res->reset = ahead;

    if (allowed) {
        res->remaining = (ahead < window) ? (window - ahead) / g->interval
                                          : 0;
        res->retry = 0;

    } else {
        res->remaining = 0;
        res->retry = (ahead > g->tolerance) ? ahead - g->tolerance : 0;
    }
}


void
ngx_http_commerce_gcra_refund(const ngx_http_commerce_gcra_t *g,
    uint64_t *tat)
{
    *tat = (*tat > g->interval) ? *tat - g->interval : 0;
}


unsigned
ngx_http_commerce_gcra_idle(uint64_t now, uint64_t tat)
{
    return tat <= now;
}


uint64_t
ngx_http_commerce_gcra_seconds(uint64_t usec)
{
    return usec / NGX_HTTP_COMMERCE_GCRA_USEC
           + (usec % NGX_HTTP_COMMERCE_GCRA_USEC ? 1 : 0);
}
