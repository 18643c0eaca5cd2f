/*
 * ngx_http_commerce_jwt_module: JWT authentication of a location
 * (commerce_jwt), for the handlers that serve a user (carts, orders) and
 * for variables ($commerce_jwt_sub, $commerce_jwt_claim_<name>).
 *
 * A request's token is verified once, by whoever asks first: the access
 * phase handler, a variable (a commerce_limit keyed by $commerce_jwt_sub
 * runs in the preaccess phase, before it), or a content handler through
 * the functions below.  The outcome stays with the request (its pool
 * frees it) until an internal redirect, after which the new location's
 * configuration decides again.
 *
 * Use, in a content handler of a location with commerce_jwt (the access
 * phase has refused every request without a valid token by then):
 *
 *     jwt = ngx_http_commerce_jwt_get(r);          NULL: no valid token
 *     ... jwt->claims (jansson), jwt->header ...
 *
 *     if (ngx_http_commerce_jwt_sub(r, &sub) != NGX_OK) {
 *         ... no valid token, or no "sub" ...
 *     }
 *
 *     if (ngx_http_commerce_jwt_has_role(r, &admin)) {
 *         ... the roles claim of the location has it ...
 *     }
 *
 * The strings point into the token's claims: valid for the request.
 */

#ifndef _NGX_HTTP_COMMERCE_JWT_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_JWT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_jwt.h"


/* the verified token, or NULL (none, invalid, or commerce_jwt off) */
const commerce_jwt_t *ngx_http_commerce_jwt_get(ngx_http_request_t *r);

/* NGX_OK with the token's "sub", NGX_DECLINED without; NGX_ERROR */
ngx_int_t ngx_http_commerce_jwt_sub(ngx_http_request_t *r, ngx_str_t *sub);

/* whether the verified token has the role (commerce_jwt_roles_claim) */
ngx_uint_t ngx_http_commerce_jwt_has_role(ngx_http_request_t *r,
    ngx_str_t *role);


extern ngx_module_t  ngx_http_commerce_jwt_module;


#endif /* _NGX_HTTP_COMMERCE_JWT_H_INCLUDED_ */
