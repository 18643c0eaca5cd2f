/*
 * GCRA, the generic cell rate algorithm, in integer microseconds: no nginx
 * headers, no allocation, so that the arithmetic is unit-tested on its own
 * (t/unit/test_gcra.c) and shared by the local (shared memory) and the
 * global (Redis script) limits.
 *
 * A key's whole state is its theoretical arrival time (TAT).  With the
 * emission interval T (1 / rate) and the burst tolerance tau = burst * T,
 * a request at time now conforms when max(TAT, now) + T - now <= tau + T;
 * it then moves TAT to max(TAT, now) + T.  A fresh key therefore admits
 * exactly burst + 1 requests at once, then one more every T.
 */

#ifndef _NGX_HTTP_COMMERCE_GCRA_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_GCRA_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


#define NGX_HTTP_COMMERCE_GCRA_USEC       1000000
#define NGX_HTTP_COMMERCE_GCRA_MAX_RATE   1000000   /* per second */
#define NGX_HTTP_COMMERCE_GCRA_MAX_BURST  1000000


typedef struct {
    uint64_t     interval;    /* T: microseconds per request */
    uint64_t     tolerance;   /* tau: burst * T */
    uint64_t     limit;       /* burst + 1: requests admitted at once */
} ngx_http_commerce_gcra_t;


typedef struct {
    uint64_t     remaining;   /* requests still admitted at once */
    uint64_t     reset;       /* microseconds until the full quota is back */
    uint64_t     retry;       /* microseconds until one more conforms */
    unsigned     allowed;
} ngx_http_commerce_gcra_result_t;


/*
 * Parses "Nr/s" or "Nr/m" into the emission interval in microseconds.
 * Returns 0, or -1 when the text is not a rate from 1r/m to 1000000r/s.
 */
int ngx_http_commerce_gcra_parse_rate(const u_char *p, size_t len,
    uint64_t *interval);

/* Returns 0, or -1 when interval is 0 or burst is out of range. */
int ngx_http_commerce_gcra_init(ngx_http_commerce_gcra_t *g,
    uint64_t interval, uint64_t burst);

/*
 * One request at time now on a key whose TAT is *tat (0 for a fresh key):
 * updates *tat when the request conforms and fills res.  Returns
 * res->allowed.
 */
unsigned ngx_http_commerce_gcra_update(const ngx_http_commerce_gcra_t *g,
    uint64_t now, uint64_t *tat, ngx_http_commerce_gcra_result_t *res);

/*
 * The result from "ahead", the microseconds the TAT is ahead of now after
 * the decision (max(TAT, now) - now): what the Redis script returns.
 */
void ngx_http_commerce_gcra_outcome(const ngx_http_commerce_gcra_t *g,
    unsigned allowed, uint64_t ahead, ngx_http_commerce_gcra_result_t *res);

/* Gives back the cell a conforming request took (a later limit refused). */
void ngx_http_commerce_gcra_refund(const ngx_http_commerce_gcra_t *g,
    uint64_t *tat);

/* Whether a key's state is redundant at now: its quota is full again. */
unsigned ngx_http_commerce_gcra_idle(uint64_t now, uint64_t tat);

/* Microseconds to whole seconds, rounded up. */
uint64_t ngx_http_commerce_gcra_seconds(uint64_t usec);


#endif /* _NGX_HTTP_COMMERCE_GCRA_H_INCLUDED_ */
