/*
 * Pure helpers of the commerce module: no nginx headers, no allocation, so
 * that they are unit-tested on their own (t/unit/test_util.c).  Those the
 * workers need too (circuit breaker, JSON escaping) are in common/.
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


/* "xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx" */
#define NGX_HTTP_COMMERCE_UUID_LEN  36


uint64_t ngx_http_commerce_hash64(const u_char *p, size_t len);
u_char *ngx_http_commerce_etag(u_char *dst, const u_char *p, size_t len);

int ngx_http_commerce_parse_uint(const u_char *p, size_t len, uint64_t max,
    uint64_t *out);
int ngx_http_commerce_valid_id(const u_char *p, size_t len);

/*
 * A UUIDv7 (RFC 9562) from the time in ms since the epoch and 10 random
 * bytes, lowercase, NGX_HTTP_COMMERCE_UUID_LEN bytes (no NUL); returns the
 * end.  Their bytes sort in time order (to the millisecond).
 */
u_char *ngx_http_commerce_uuid7(u_char *dst, uint64_t ms,
    const u_char rnd[10]);
int ngx_http_commerce_valid_uuid(const u_char *p, size_t len);

/*
 * An RFC 8941 sf-string ("...", visible ASCII and spaces, only \" and \\
 * escaped) decoded into out (room for len bytes): NULL and *outlen, or
 * why it is not one.
 */
const char *ngx_http_commerce_sf_string(const u_char *p, size_t len,
    u_char *out, size_t *outlen);

/*
 * The versions an If-Match value names (ETags of decimal versions, as the
 * cart's): "*" for *, else the digits of each strong entity-tag that is a
 * number of up to 19 digits, each followed by a space ("\"3\", W/\"4\",
 * \"7\"" -> "3 7 "), or "-" when it names none: a weak or other tag never
 * matches (RFC 9110, 13.1.1).  dst has room for len + 1 bytes; returns its
 * end.
 */
u_char *ngx_http_commerce_if_match_versions(u_char *dst, const u_char *p,
    size_t len);


#endif /* _NGX_HTTP_COMMERCE_UTIL_H_INCLUDED_ */
