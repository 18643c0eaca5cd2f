/*
 * Private to the Redis layer: what the module (ngx_http_commerce_redis.c:
 * directives, configuration, worker start and exit) hands to the
 * connections (ngx_http_commerce_redis_conn.c).  The configuration is
 * read-only once the workers start.
 */

#ifndef _NGX_HTTP_COMMERCE_REDIS_CONN_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_REDIS_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct {
    ngx_str_t                   name;      /* as written in the config */
    u_char                     *host;      /* IP resolved at config time,
                                              or unix socket path */
    int                         port;      /* 0 for unix sockets */
} ngx_http_commerce_redis_server_t;


typedef struct {
    ngx_array_t                 servers;   /* of redis_server_t */
    ngx_uint_t                  pool_size;
    ngx_msec_t                  connect_timeout;
    ngx_msec_t                  backoff_min;
    ngx_msec_t                  backoff_max;
    ngx_uint_t                  breaker_threshold;
    ngx_msec_t                  breaker_timeout;
    size_t                      cache_size;  /* 0: no read cache */
    ngx_msec_t                  cache_valid;
    ngx_flag_t                  used;      /* some location needs Redis */
} ngx_http_commerce_redis_main_conf_t;


/* in a worker process: connects to every server, pool_size times */
ngx_int_t ngx_http_commerce_redis_start(ngx_cycle_t *cycle,
    ngx_http_commerce_redis_main_conf_t *rmcf);

/* at worker exit: closes them, pending commands are dropped */
void ngx_http_commerce_redis_stop(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_COMMERCE_REDIS_CONN_H_INCLUDED_ */
