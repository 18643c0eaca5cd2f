/*
 * ngx_http_commerce_module: the core of the commerce modules.  It owns the
 * Redis configuration (http{} level) and the per-worker Redis connections,
 * opened in init_process and closed in exit_process.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_redis.h"


static void *ngx_http_commerce_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_init_main_conf(ngx_conf_t *cf, void *conf);
static char *ngx_http_commerce_redis_server(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_commerce_init_process(ngx_cycle_t *cycle);
static void ngx_http_commerce_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_commerce_positive = {
    ngx_http_commerce_conf_bounds, 1, 1024
};


static ngx_command_t  ngx_http_commerce_commands[] = {

    { ngx_string("commerce_redis_server"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_commerce_redis_server,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_redis_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_main_conf_t, pool_size),
      &ngx_http_commerce_positive },

    { ngx_string("commerce_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_main_conf_t, connect_timeout),
      NULL },

    { ngx_string("commerce_redis_reconnect_min"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_main_conf_t, backoff_min),
      NULL },

    { ngx_string("commerce_redis_reconnect_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_main_conf_t, backoff_max),
      NULL },

    { ngx_string("commerce_redis_breaker_threshold"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_main_conf_t, breaker_threshold),
      &ngx_http_commerce_positive },

    { ngx_string("commerce_redis_breaker_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_main_conf_t, breaker_timeout),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_commerce_create_main_conf,    /* create main configuration */
    ngx_http_commerce_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_commerce_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_module_ctx,         /* module context */
    ngx_http_commerce_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_commerce_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_commerce_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_commerce_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&cmcf->servers, cf->pool, 1,
                       sizeof(ngx_http_commerce_redis_server_t))
        != NGX_OK)
    {
        return NULL;
    }

    cmcf->pool_size = NGX_CONF_UNSET_UINT;
    cmcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    cmcf->backoff_min = NGX_CONF_UNSET_MSEC;
    cmcf->backoff_max = NGX_CONF_UNSET_MSEC;
    cmcf->breaker_threshold = NGX_CONF_UNSET_UINT;
    cmcf->breaker_timeout = NGX_CONF_UNSET_MSEC;

    return cmcf;
}


static char *
ngx_http_commerce_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_commerce_main_conf_t  *cmcf = conf;

    ngx_conf_init_uint_value(cmcf->pool_size, 2);
    ngx_conf_init_msec_value(cmcf->connect_timeout, 500);
    ngx_conf_init_msec_value(cmcf->backoff_min, 50);
    ngx_conf_init_msec_value(cmcf->backoff_max, 2000);
    ngx_conf_init_uint_value(cmcf->breaker_threshold, 3);
    ngx_conf_init_msec_value(cmcf->breaker_timeout, 1000);

    if (cmcf->used && cmcf->servers.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis_server\" is not set, but a "
                           "location uses a commerce read API");
        return NGX_CONF_ERROR;
    }

    if (cmcf->connect_timeout == 0 || cmcf->backoff_min == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis_connect_timeout\" and "
                           "\"commerce_redis_reconnect_min\" must not be 0");
        return NGX_CONF_ERROR;
    }

    if (cmcf->backoff_min > cmcf->backoff_max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis_reconnect_min\" %M is greater "
                           "than \"commerce_redis_reconnect_max\" %M",
                           cmcf->backoff_min, cmcf->backoff_max);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_commerce_redis_server(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_commerce_main_conf_t  *cmcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_commerce_redis_server_t  *server, *s;

    value = cf->args->elts;
    s = cmcf->servers.elts;

    for (i = 0; i < cmcf->servers.nelts; i++) {
        if (s[i].name.len == value[1].len
            && ngx_strncmp(s[i].name.data, value[1].data, value[1].len) == 0)
        {
            return "is duplicate";
        }
    }

    server = ngx_array_push(&cmcf->servers);
    if (server == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_commerce_redis_parse_server(cf, server, &value[1]);
}


static ngx_int_t
ngx_http_commerce_init_process(ngx_cycle_t *cycle)
{
    ngx_http_commerce_main_conf_t  *cmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_commerce_module);
    if (cmcf == NULL || !cmcf->used || cmcf->servers.nelts == 0) {
        return NGX_OK;
    }

    return ngx_http_commerce_redis_init_process(cycle, cmcf);
}


static void
ngx_http_commerce_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_commerce_redis_exit_process(cycle);
}


/*
 * Like ngx_conf_check_num_bounds(), but returns the message so that nginx
 * names the directive: "commerce_redis_pool_size" directive must be ...
 */
char *
ngx_http_commerce_conf_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    size_t   len;
    u_char  *p;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    len = sizeof("must be between  and ") + 2 * NGX_INT_T_LEN;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(p, "must be between %i and %i%Z", bounds->low, bounds->high);

    return (char *) p;
}


/*
 * Every error of the commerce API has the same JSON shape and is never
 * cached by a CDN; reasons are short machine-readable codes.
 */
ngx_int_t
ngx_http_commerce_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *msg, time_t retry_after)
{
    return ngx_http_commerce_send_error_allow(r, status, code, msg,
                                              retry_after, "GET, HEAD");
}


ngx_int_t
ngx_http_commerce_send_error_allow(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *msg, time_t retry_after, const char *allow)
{
    size_t            len;
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    if (r->header_sent) {
        return NGX_ERROR;
    }

    ngx_http_clean_header(r);

    len = sizeof("{\"error\":\"\",\"message\":\"\"}") - 1
          + ngx_strlen(code) + ngx_strlen(msg);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"error\":\"%s\",\"message\":\"%s\"}",
                          code, msg);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    if (status == NGX_HTTP_NOT_ALLOWED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        h->value.data = (u_char *) allow;
        h->value.len = ngx_strlen(allow);
    }

    if (retry_after > 0) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (h->value.data == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value.len = ngx_sprintf(h->value.data, "%T", retry_after)
                       - h->value.data;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
