/*
 * Pure helpers of the commerce module: no nginx headers, no allocation, so
 * that they are unit-tested on their own (t/unit/test_util.c).  JSON
 * escaping, which the workers need too, is in common/commerce_json.h.
 */

#ifndef _NGX_HTTP_COMMERCE_UTIL_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_UTIL_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


/* '"' + 16 hex digits + '"' */
#define NGX_HTTP_COMMERCE_ETAG_LEN  18

/* longest item, store or sku id accepted from a request */
#define NGX_HTTP_COMMERCE_ID_MAX    256


typedef enum {
    NGX_HTTP_COMMERCE_BREAKER_CLOSED = 0,
    NGX_HTTP_COMMERCE_BREAKER_OPEN,
    NGX_HTTP_COMMERCE_BREAKER_HALF_OPEN
} ngx_http_commerce_breaker_state_e;


/*
 * A consecutive-failure circuit breaker.  Times are milliseconds on any
 * monotonic clock the caller uses consistently.
 */
typedef struct {
    uint64_t     open_until;
    uint64_t     open_ms;
    unsigned     failures;
    unsigned     threshold;
    unsigned     state;
} ngx_http_commerce_breaker_t;


uint64_t ngx_http_commerce_hash64(const u_char *p, size_t len);
u_char *ngx_http_commerce_etag(u_char *dst, const u_char *p, size_t len);

int ngx_http_commerce_parse_uint(const u_char *p, size_t len, uint64_t max,
    uint64_t *out);
int ngx_http_commerce_valid_id(const u_char *p, size_t len);

void ngx_http_commerce_breaker_init(ngx_http_commerce_breaker_t *b,
    unsigned threshold, uint64_t open_ms);
int ngx_http_commerce_breaker_allow(ngx_http_commerce_breaker_t *b,
    uint64_t now);
void ngx_http_commerce_breaker_success(ngx_http_commerce_breaker_t *b);
void ngx_http_commerce_breaker_failure(ngx_http_commerce_breaker_t *b,
    uint64_t now);
uint64_t ngx_http_commerce_breaker_retry_after(ngx_http_commerce_breaker_t *b,
    uint64_t now);


#endif /* _NGX_HTTP_COMMERCE_UTIL_H_INCLUDED_ */
