/*
 * ngx_http_commerce_jwt_module's own parts (private): the location
 * configuration that ngx_http_commerce_jwt.c reads and merges, and the
 * request side of ngx_http_commerce_jwt_request.c (the access phase
 * handler and the variables) that the module registers.
 */

#ifndef _NGX_HTTP_COMMERCE_JWT_CONF_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_JWT_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_jwt.h"


#define NGX_HTTP_COMMERCE_JWT_OFF       0
#define NGX_HTTP_COMMERCE_JWT_BEARER    1   /* Authorization: Bearer */
#define NGX_HTTP_COMMERCE_JWT_VARIABLE  2

#define NGX_HTTP_COMMERCE_JWT_CLAIM     "commerce_jwt_claim_"


typedef struct {
    ngx_uint_t                  mode;
    ngx_http_complex_value_t   *token;        /* mode VARIABLE */
    ngx_str_t                   realm;
    commerce_jwk_set_t         *keys;         /* NULL: the parent's */
    ngx_uint_t                  algs;
    time_t                      leeway;
    ngx_str_t                   issuer;
    ngx_array_t                *audiences;    /* ngx_str_t */
    ngx_str_t                   type;
    ngx_str_t                   roles_claim;  /* NUL-terminated */
    ngx_array_t                *roles;        /* ngx_str_t, all required */
    ngx_uint_t                  log_level;

    /* made by merge */
    ngx_str_t                   challenge;    /* Bearer realm="..." */
    ngx_str_t                   scope;        /* the roles, space-separated */
    commerce_jwt_opts_t         opts;
} ngx_http_commerce_jwt_loc_conf_t;


ngx_int_t ngx_http_commerce_jwt_handler(ngx_http_request_t *r);

/* $commerce_jwt_sub and $commerce_jwt_claim_<name> */
ngx_int_t ngx_http_commerce_jwt_sub_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_commerce_jwt_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#endif /* _NGX_HTTP_COMMERCE_JWT_CONF_H_INCLUDED_ */
