/*
 * ngx_http_commerce_module: the helpers every commerce module uses, in the
 * first module of ngx_http_commerce_module.so (which names the file), and
 * commerce_error, the error_page target of the JSON error responder.  The
 * other directives are owned by the modules of their concern: Redis
 * (ngx_http_commerce_redis.h), Kafka, read, webhook, verify, limit, jwt,
 * metrics, health.
 */

#ifndef _NGX_HTTP_COMMERCE_MODULE_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


extern ngx_module_t  ngx_http_commerce_module;


/* post handler of number directives: "must be between low and high" */
char *ngx_http_commerce_conf_bounds(ngx_conf_t *cf, void *post, void *data);


/*
 * Sends a JSON error response {"error":code,"message":msg} and returns the
 * value a content handler returns (or passes to ngx_http_finalize_request).
 * A 503 gets Retry-After: retry_after seconds when retry_after > 0.
 */
ngx_int_t ngx_http_commerce_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *msg,
    time_t retry_after);

/*
 * Sends b, a whole JSON body, with the status, Cache-Control: no-store and
 * the headers already pushed; returns like ngx_http_commerce_send_error().
 */
ngx_int_t ngx_http_commerce_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_buf_t *b);

/*
 * The same for a refused authentication (401, 403), with the challenge
 * as WWW-Authenticate (RFC 6750 section 3).
 */
ngx_int_t ngx_http_commerce_send_error_auth(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *msg,
    ngx_str_t *challenge);

/* the same with another Content-Type (application/problem+json) */
ngx_int_t ngx_http_commerce_send_typed(ngx_http_request_t *r,
    ngx_uint_t status, ngx_buf_t *b, ngx_str_t *type);

/* the same, with the Allow value of a 405 given by the caller */
ngx_int_t ngx_http_commerce_send_error_allow(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *msg,
    time_t retry_after, const char *allow);


/*
 * The request body read (ngx_http_read_client_request_body) as one run of
 * bytes, in memory: NGX_OK (empty without a body) or NGX_ERROR.
 */
ngx_int_t ngx_http_commerce_request_body(ngx_http_request_t *r,
    ngx_str_t *body);


/*
 * n bytes of OpenSSL's CSPRNG (ids, trace ids): NGX_OK, or NGX_ERROR
 * (logged here) when RAND_bytes() failed.
 */
ngx_int_t ngx_http_commerce_random(ngx_log_t *log, u_char *dst, size_t n);


#endif /* _NGX_HTTP_COMMERCE_MODULE_H_INCLUDED_ */
