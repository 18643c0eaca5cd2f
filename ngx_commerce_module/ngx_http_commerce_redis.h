/*
 * Non-blocking Redis for nginx workers: hiredis's async API attached to
 * nginx events, persistent per-worker connections, pipelining, per-command
 * timeouts, reconnect with backoff and a circuit breaker.
 *
 * A command belongs to a request but never holds it: when the request goes
 * away first (client abort, timeout), the reply is read and dropped.
 */

#ifndef _NGX_HTTP_COMMERCE_REDIS_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>


/* outcome passed to a reply handler */
#define NGX_HTTP_COMMERCE_REDIS_OK           0  /* reply != NULL */
#define NGX_HTTP_COMMERCE_REDIS_DOWN         1  /* connection lost: 503 */
#define NGX_HTTP_COMMERCE_REDIS_TIMEOUT      2  /* no reply in time: 504 */


typedef struct {
    ngx_str_t                   name;      /* as written in the config */
    ngx_addr_t                  addr;      /* resolved at config time */
    u_char                     *host;      /* IP text or unix socket path */
    int                         port;      /* 0 for unix sockets */
} ngx_http_commerce_redis_server_t;


/*
 * Called once per command, from the event loop, with the request still
 * alive.  The reply is freed by hiredis when the handler returns: copy what
 * must outlive it.  The handler finalizes the request (or sends another
 * command); the redis layer then runs the connection's posted requests.
 */
typedef void (*ngx_http_commerce_redis_handler_pt)(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);


/*
 * Queues a command for r.  Returns NGX_OK (the handler will be called
 * exactly once, unless the request is freed first), or NGX_DECLINED when
 * Redis is unavailable now (circuit open, no connection): *retry_after then
 * holds the seconds a client should wait.  NGX_ERROR on allocation failure.
 * The caller increments r->main->count itself if it returns NGX_DONE.
 */
ngx_int_t ngx_http_commerce_redis_send(ngx_http_request_t *r,
    ngx_msec_t timeout, ngx_http_commerce_redis_handler_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen,
    time_t *retry_after);

/* parses "ip:port", "[ipv6]:port", "unix:/path" or "host:port" */
char *ngx_http_commerce_redis_parse_server(ngx_conf_t *cf,
    ngx_http_commerce_redis_server_t *server, ngx_str_t *value);

ngx_int_t ngx_http_commerce_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_commerce_main_conf_t *cmcf);
void ngx_http_commerce_redis_exit_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_COMMERCE_REDIS_H_INCLUDED_ */
