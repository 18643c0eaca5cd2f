/*
 * ngx_http_commerce_module: shared declarations of the commerce modules
 * linked into ngx_http_commerce_module.so.
 */

#ifndef _NGX_HTTP_COMMERCE_MODULE_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct {
    ngx_array_t                 servers;   /* of redis_server_t */
    ngx_uint_t                  pool_size;
    ngx_msec_t                  connect_timeout;
    ngx_msec_t                  backoff_min;
    ngx_msec_t                  backoff_max;
    ngx_uint_t                  breaker_threshold;
    ngx_msec_t                  breaker_timeout;
    ngx_flag_t                  used;      /* some location needs Redis */
} ngx_http_commerce_main_conf_t;


extern ngx_module_t  ngx_http_commerce_module;


/* commerce_redis_timeout of the request's location */
ngx_msec_t ngx_http_commerce_redis_timeout(ngx_http_request_t *r);


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

/* the same, with the Allow value of a 405 given by the caller */
ngx_int_t ngx_http_commerce_send_error_allow(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *msg,
    time_t retry_after, const char *allow);


#endif /* _NGX_HTTP_COMMERCE_MODULE_H_INCLUDED_ */
