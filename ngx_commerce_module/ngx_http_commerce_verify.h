/*
 * ngx_http_commerce_verify_module: webhook signature verification and the
 * JSON check of webhook bodies, as steps of the webhook handler, and the
 * delivery id rule.
 *
 * The caller keeps one ngx_http_commerce_verify_t per request and passes it
 * to each step: verification writes its outcome there and nowhere else.
 * Each returns NGX_OK to go on, or the HTTP status of the rejection with
 * v->code set to its reason (a stable short name) and v->msg to a message.
 *
 * Use:
 *
 *     rc = ngx_http_commerce_verify_headers(r, &v);
 *     ... a rejection: answer rc with v.code and v.msg ...
 *
 *     rc = ngx_http_commerce_verify_id(&v, &id);     the id to be used
 *     ... a rejection: the same ...
 *
 *     ... read the body ...
 *
 *     rc = ngx_http_commerce_verify_body(r, &v, &body, id.len == 0);
 *     ... a rejection: the same ...
 *
 *     if (id.len == 0) {
 *         id = v.delivery_id;
 *         rc = ngx_http_commerce_verify_id(&v, &id);   one from the body
 *     }
 */

#ifndef _NGX_HTTP_COMMERCE_VERIFY_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_VERIFY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_commerce_sig.h"


typedef struct {
    ngx_str_t                        scheme;       /* empty: not verified */
    ngx_str_t                        delivery_id;  /* the scheme's, if any */
    const char                      *code;         /* of a rejection */
    const char                      *msg;
    ngx_http_commerce_sig_parsed_t  *sig;          /* from headers to body */
} ngx_http_commerce_verify_t;


/*
 * Before the body is read: header syntax, replay window, and the delivery
 * id the scheme's headers carry.  Initializes v.
 */
ngx_int_t ngx_http_commerce_verify_headers(ngx_http_request_t *r,
    ngx_http_commerce_verify_t *v);

/*
 * The delivery id the webhook will be deduplicated and published with
 * (commerce_inbound_check_id()): NGX_OK, also for none, or 400.
 */
ngx_int_t ngx_http_commerce_verify_id(ngx_http_commerce_verify_t *v,
    ngx_str_t *id);

/*
 * With the whole body: the MAC, the JSON check, and with need_id the
 * delivery id of schemes that carry it in the body (when the headers had
 * none).
 */
ngx_int_t ngx_http_commerce_verify_body(ngx_http_request_t *r,
    ngx_http_commerce_verify_t *v, ngx_str_t *body, ngx_uint_t need_id);


extern ngx_module_t  ngx_http_commerce_verify_module;


#endif /* _NGX_HTTP_COMMERCE_VERIFY_H_INCLUDED_ */
