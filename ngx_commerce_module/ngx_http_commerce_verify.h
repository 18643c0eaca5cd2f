/*
 * ngx_http_commerce_verify_module: webhook signature verification and the
 * JSON check of webhook bodies, as steps of the webhook handler.
 */

#ifndef _NGX_HTTP_COMMERCE_VERIFY_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_VERIFY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_commerce_webhook.h"


/*
 * Both return NGX_OK to go on, or the HTTP status of the rejection with
 * *code set to its reason (a stable short name) and *msg to a message.
 */

/* before the body is read: header syntax, replay window */
ngx_int_t ngx_http_commerce_verify_headers(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, const char **code,
    const char **msg);

/* with the whole body: the MAC, the JSON check, the delivery id */
ngx_int_t ngx_http_commerce_verify_body(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, const char **code,
    const char **msg);


extern ngx_module_t  ngx_http_commerce_verify_module;


#endif /* _NGX_HTTP_COMMERCE_VERIFY_H_INCLUDED_ */
