/*
 * Request headers by name, for the modules that read headers nginx does
 * not parse itself (signatures, delivery ids, traceparent,
 * Idempotency-Key).
 *
 * Use:
 *
 *     h = ngx_http_commerce_header_in(r, &name, &n);
 *     if (h == NULL) { ... not sent ... }
 *     if (n > 1) { ... sent more than once ... }
 */

#ifndef _NGX_HTTP_COMMERCE_HEADERS_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_HEADERS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * The first request header of that name (case-insensitively), or NULL;
 * *n, unless n is NULL, gets how many of them there are.
 */
ngx_table_elt_t *ngx_http_commerce_header_in(ngx_http_request_t *r,
    ngx_str_t *name, ngx_uint_t *n);


#endif /* _NGX_HTTP_COMMERCE_HEADERS_H_INCLUDED_ */
