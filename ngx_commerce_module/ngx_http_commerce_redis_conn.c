/*
 * The connections and commands of the Redis layer (see
 * ngx_http_commerce_redis.h; the module, its directives and configuration
 * are in ngx_http_commerce_redis.c).
 *
 * hiredis's async context is attached to an nginx connection wrapping its
 * socket.  Events are level-triggered: hiredis reads at most 16 KiB per
 * call, and a level-triggered read event fires again while the socket still
 * holds data, so a large reply always arrives whole.
 *
 * Lifetimes: a connection (ngx_http_commerce_redis_conn_t) lives as long as
 * the worker; its hiredis context comes and goes with reconnects.  A command
 * sent (ngx_http_commerce_redis_pending_t) is heap-allocated and owned by
 * hiredis as the callback's privdata: it is freed when its reply (or the
 * NULL reply of a dying connection) arrives.  The request only borrows it:
 * a pool cleanup detaches the request, and a late reply is then read and
 * dropped.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "commerce_breaker.h"

#include "ngx_http_commerce_metrics.h"
#include "ngx_http_commerce_redis.h"
#include "ngx_http_commerce_redis_cache.h"
#include "ngx_http_commerce_redis_conn.h"


typedef enum {
    NGX_HTTP_COMMERCE_REDIS_DISCONNECTED = 0,
    NGX_HTTP_COMMERCE_REDIS_CONNECTING,
    NGX_HTTP_COMMERCE_REDIS_CONNECTED
} ngx_http_commerce_redis_state_e;


typedef struct ngx_http_commerce_redis_peer_s  ngx_http_commerce_redis_peer_t;


typedef struct {
    redisAsyncContext                 *ac;
    ngx_connection_t                  *c;
    ngx_http_commerce_redis_peer_t    *peer;
    ngx_event_t                        timer;     /* connect or reconnect */
    ngx_msec_t                         backoff;
    ngx_msec_t                         last_reply;
    ngx_uint_t                         state;
    unsigned                           writing:1;
    unsigned                           tracking:1; /* the cache's */
} ngx_http_commerce_redis_conn_t;


struct ngx_http_commerce_redis_peer_s {
    ngx_http_commerce_redis_server_t  *server;
    ngx_http_commerce_redis_conn_t    *conns;
    ngx_uint_t                         nconns;
    ngx_uint_t                         next;
    commerce_breaker_t                 breaker;
    ngx_http_commerce_redis_conn_t     track;     /* with a read cache */
    unsigned                           subscribed:1;
};


typedef struct {
    ngx_http_request_t                *r;         /* NULL once detached */
    ngx_pool_cleanup_t                *cln;
    ngx_http_commerce_redis_handler_pt handler;
    void                              *data;
    ngx_http_commerce_redis_conn_t    *conn;
    ngx_msec_t                         timeout;
    uint64_t                           sent;      /* metrics_now() */
    ngx_event_t                        timer;
    ngx_http_commerce_redis_cache_entry_t  *fill;
} ngx_http_commerce_redis_pending_t;


typedef struct {
    ngx_http_commerce_redis_main_conf_t  *rmcf;
    ngx_http_commerce_redis_peer_t       *peers;
    ngx_uint_t                            npeers;
    ngx_uint_t                            next;
    ngx_uint_t                            subscribed;  /* peers */
    ngx_log_t                            *log;
    ngx_uint_t                            exiting;
} ngx_http_commerce_redis_worker_t;


static void ngx_http_commerce_redis_connect(
    ngx_http_commerce_redis_conn_t *conn);
static void ngx_http_commerce_redis_close(ngx_http_commerce_redis_conn_t *conn);
static void ngx_http_commerce_redis_schedule(
    ngx_http_commerce_redis_conn_t *conn);
static void ngx_http_commerce_redis_timer_handler(ngx_event_t *ev);
static void ngx_http_commerce_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_commerce_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static ngx_int_t ngx_http_commerce_redis_attach(
    ngx_http_commerce_redis_conn_t *conn, redisAsyncContext *ac);
static void ngx_http_commerce_redis_add_read(void *data);
static void ngx_http_commerce_redis_del_read(void *data);
static void ngx_http_commerce_redis_add_write(void *data);
static void ngx_http_commerce_redis_del_write(void *data);
static void ngx_http_commerce_redis_cleanup(void *data);
static void ngx_http_commerce_redis_read_handler(ngx_event_t *rev);
static void ngx_http_commerce_redis_write_handler(ngx_event_t *wev);
static void ngx_http_commerce_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_commerce_redis_pending_timeout(ngx_event_t *ev);
static void ngx_http_commerce_redis_pending_cleanup(void *data);
static ngx_http_commerce_redis_conn_t *ngx_http_commerce_redis_pick(
    ngx_http_commerce_redis_peer_t *peer);
static ngx_int_t ngx_http_commerce_redis_send_cmd(ngx_http_request_t *r,
    ngx_msec_t timeout, ngx_http_commerce_redis_handler_pt handler,
    void *data, ngx_http_commerce_redis_cmd_t *cmd, time_t *retry_after);
static void ngx_http_commerce_redis_conn_init(
    ngx_http_commerce_redis_conn_t *conn, ngx_http_commerce_redis_peer_t *peer,
    ngx_log_t *log);
static void ngx_http_commerce_redis_track_id(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_commerce_redis_track_on(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_commerce_redis_track_message(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_commerce_redis_track_lost(
    ngx_http_commerce_redis_conn_t *conn);
static void ngx_http_commerce_redis_track_reset(
    ngx_http_commerce_redis_peer_t *peer);
static void ngx_http_commerce_redis_keepalive(ngx_socket_t fd);
static void ngx_http_commerce_redis_failure(
    ngx_http_commerce_redis_peer_t *peer, ngx_uint_t reason);
static void ngx_http_commerce_redis_success(
    ngx_http_commerce_redis_peer_t *peer);


/* one per worker process: connections are never shared across processes */
static ngx_http_commerce_redis_worker_t  ngx_http_commerce_redis_worker;


/*
 * In a worker process: the peers of the servers and their connections,
 * each starting its connect.
 */
ngx_int_t
ngx_http_commerce_redis_start(ngx_cycle_t *cycle,
    ngx_http_commerce_redis_main_conf_t *rmcf)
{
    ngx_uint_t                          i, j;
    ngx_http_commerce_redis_peer_t     *peer;
    ngx_http_commerce_redis_server_t   *servers;
    ngx_http_commerce_redis_worker_t   *w;

    w = &ngx_http_commerce_redis_worker;

    w->rmcf = rmcf;
    w->log = cycle->log;
    w->exiting = 0;
    w->npeers = rmcf->servers.nelts;
    w->subscribed = 0;

    ngx_http_commerce_redis_cache_init(rmcf->cache_size, rmcf->cache_valid,
                                       cycle->log);

    w->peers = ngx_pcalloc(cycle->pool,
                           w->npeers * sizeof(ngx_http_commerce_redis_peer_t));
    if (w->peers == NULL) {
        return NGX_ERROR;
    }

    servers = rmcf->servers.elts;

    for (i = 0; i < w->npeers; i++) {
        peer = &w->peers[i];
        peer->server = &servers[i];
        peer->nconns = rmcf->pool_size;

        /* half-open, every command goes through: the first reply decides */
        commerce_breaker_init(&peer->breaker, rmcf->breaker_threshold,
                              rmcf->breaker_timeout, 0);
        ngx_http_commerce_metrics_breaker(NGX_HTTP_COMMERCE_BREAKER_REDIS,
                                          &peer->server->name, &peer->breaker);

        peer->conns = ngx_pcalloc(cycle->pool,
                         peer->nconns * sizeof(ngx_http_commerce_redis_conn_t));
        if (peer->conns == NULL) {
            return NGX_ERROR;
        }

        for (j = 0; j < peer->nconns; j++) {
            ngx_http_commerce_redis_conn_init(&peer->conns[j], peer,
                                              cycle->log);
        }

        if (rmcf->cache_size) {
            peer->track.tracking = 1;
            ngx_http_commerce_redis_conn_init(&peer->track, peer, cycle->log);
        }
    }

    return NGX_OK;
}


static void
ngx_http_commerce_redis_conn_init(ngx_http_commerce_redis_conn_t *conn,
    ngx_http_commerce_redis_peer_t *peer, ngx_log_t *log)
{
    conn->peer = peer;
    conn->backoff = ngx_http_commerce_redis_worker.rmcf->backoff_min;
    conn->timer.handler = ngx_http_commerce_redis_timer_handler;
    conn->timer.data = conn;
    conn->timer.log = log;

    /* reconnect timers must not keep an exiting worker alive */
    conn->timer.cancelable = 1;

    ngx_http_commerce_redis_connect(conn);
}


/* At worker exit: pending commands get their NULL reply, and are freed. */
void
ngx_http_commerce_redis_stop(ngx_cycle_t *cycle)
{
    ngx_uint_t                         i, j;
    ngx_http_commerce_redis_conn_t    *conn;
    ngx_http_commerce_redis_worker_t  *w;

    w = &ngx_http_commerce_redis_worker;
    w->exiting = 1;

    for (i = 0; i < w->npeers; i++) {
        for (j = 0; j <= w->peers[i].nconns; j++) {
            conn = (j < w->peers[i].nconns) ? &w->peers[i].conns[j]
                                            : &w->peers[i].track;

            if (conn->timer.timer_set) {
                ngx_del_timer(&conn->timer);
            }

            ngx_http_commerce_redis_close(conn);
        }
    }

    w->npeers = 0;
}


/*
 * Starts a non-blocking connect.  Addresses are IPs or socket paths
 * resolved at configuration time, so hiredis never calls the resolver.
 */
static void
ngx_http_commerce_redis_connect(ngx_http_commerce_redis_conn_t *conn)
{
    redisAsyncContext                 *ac;
    ngx_http_commerce_redis_server_t  *server;
    ngx_http_commerce_redis_worker_t  *w;

    w = &ngx_http_commerce_redis_worker;
    server = conn->peer->server;

    if (server->port) {
        ac = redisAsyncConnect((char *) server->host, server->port);

    } else {
        ac = redisAsyncConnectUnix((char *) server->host);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "commerce redis: cannot allocate a connection to %V",
                      &server->name);
        goto failed;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "commerce redis: connect to %V failed: %s",
                      &server->name, ac->errstr);
        redisAsyncFree(ac);
        goto failed;
    }

    if (ngx_http_commerce_redis_attach(conn, ac) != NGX_OK) {
        redisAsyncFree(ac);
        goto failed;
    }

    conn->ac = ac;
    conn->state = NGX_HTTP_COMMERCE_REDIS_CONNECTING;

    redisAsyncSetConnectCallback(ac, ngx_http_commerce_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_commerce_redis_on_disconnect);

    /* hiredis learns that the connect completed from the first write event */
    ngx_http_commerce_redis_add_write(conn);

    ngx_add_timer(&conn->timer, w->rmcf->connect_timeout);

    return;

failed:

    ngx_http_commerce_redis_failure(conn->peer,
                                    NGX_HTTP_COMMERCE_REDIS_ERR_CONNECT);
    ngx_http_commerce_redis_schedule(conn);
}


/*
 * Frees the hiredis context at once: pending commands get their NULL reply
 * (and so a 503), the nginx connection is released by the cleanup hook.
 */
static void
ngx_http_commerce_redis_close(ngx_http_commerce_redis_conn_t *conn)
{
    redisAsyncContext  *ac;

    ac = conn->ac;

    if (ac == NULL) {
        return;
    }

    conn->ac = NULL;
    conn->state = NGX_HTTP_COMMERCE_REDIS_DISCONNECTED;

    ngx_http_commerce_redis_track_lost(conn);

    redisAsyncFree(ac);
}


/* Plans the next connect attempt with exponential backoff and jitter. */
static void
ngx_http_commerce_redis_schedule(ngx_http_commerce_redis_conn_t *conn)
{
    ngx_msec_t                         delay;
    ngx_http_commerce_redis_worker_t  *w;

    w = &ngx_http_commerce_redis_worker;

    conn->state = NGX_HTTP_COMMERCE_REDIS_DISCONNECTED;

    if (w->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    delay = conn->backoff + (ngx_msec_t) ngx_random() % (conn->backoff / 4 + 1);

    conn->backoff = ngx_min(conn->backoff * 2, w->rmcf->backoff_max);

    ngx_add_timer(&conn->timer, delay);
}


/* The connection timer: a connect timeout, or time to reconnect. */
static void
ngx_http_commerce_redis_timer_handler(ngx_event_t *ev)
{
    ngx_http_commerce_redis_conn_t    *conn;
    ngx_http_commerce_redis_worker_t  *w;

    conn = ev->data;
    w = &ngx_http_commerce_redis_worker;

    if (conn->state == NGX_HTTP_COMMERCE_REDIS_CONNECTING) {
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "commerce redis: connect to %V timed out",
                      &conn->peer->server->name);

        ngx_http_commerce_redis_close(conn);
        ngx_http_commerce_redis_failure(conn->peer,
                                        NGX_HTTP_COMMERCE_REDIS_ERR_CONNECT);
        ngx_http_commerce_redis_schedule(conn);
        return;
    }

    if (conn->state == NGX_HTTP_COMMERCE_REDIS_DISCONNECTED
        && !w->exiting && !ngx_exiting && !ngx_quit && !ngx_terminate)
    {
        ngx_http_commerce_redis_connect(conn);
    }
}


static void
ngx_http_commerce_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_commerce_redis_conn_t    *conn;
    ngx_http_commerce_redis_worker_t  *w;

    conn = ac->data;
    w = &ngx_http_commerce_redis_worker;

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns */

        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "commerce redis: connect to %V failed: %s",
                      &conn->peer->server->name, ac->errstr);

        conn->ac = NULL;
        ngx_http_commerce_redis_failure(conn->peer,
                                        NGX_HTTP_COMMERCE_REDIS_ERR_CONNECT);
        ngx_http_commerce_redis_schedule(conn);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, w->log, 0,
                  "commerce redis: connected to %V",
                  &conn->peer->server->name);

    conn->state = NGX_HTTP_COMMERCE_REDIS_CONNECTED;
    conn->backoff = w->rmcf->backoff_min;
    conn->last_reply = ngx_current_msec;

    if (conn->tracking) {
        if (conn->peer->server->port) {
            ngx_http_commerce_redis_keepalive(conn->ac->c.fd);
        }

        (void) redisAsyncCommand(conn->ac, ngx_http_commerce_redis_track_id,
                                 conn, "CLIENT ID");
    }
}


static void
ngx_http_commerce_redis_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_commerce_redis_conn_t    *conn;
    ngx_http_commerce_redis_worker_t  *w;

    conn = ac->data;
    w = &ngx_http_commerce_redis_worker;

    if (conn->ac != ac) {
        /* closed by us: ngx_http_commerce_redis_close() */
        return;
    }

    ngx_log_error(NGX_LOG_WARN, w->log, 0,
                  "commerce redis: connection to %V lost: %s",
                  &conn->peer->server->name,
                  ac->errstr[0] ? ac->errstr : "closed by the server");

    conn->ac = NULL;

    if (conn->tracking) {
        ngx_http_commerce_redis_track_lost(conn);

    } else {
        ngx_http_commerce_redis_track_reset(conn->peer);
    }

    ngx_http_commerce_redis_failure(conn->peer, ac->err == REDIS_ERR_PROTOCOL
                                    ? NGX_HTTP_COMMERCE_REDIS_ERR_PROTOCOL
                                    : NGX_HTTP_COMMERCE_REDIS_ERR_CONNECT);
    ngx_http_commerce_redis_schedule(conn);
}


static ngx_int_t
ngx_http_commerce_redis_attach(ngx_http_commerce_redis_conn_t *conn,
    redisAsyncContext *ac)
{
    ngx_connection_t                  *c;
    ngx_http_commerce_redis_worker_t  *w;

    w = &ngx_http_commerce_redis_worker;

    c = ngx_get_connection(ac->c.fd, w->log);
    if (c == NULL) {
        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "commerce redis: no free connection for %V",
                      &conn->peer->server->name);
        return NGX_ERROR;
    }

    c->data = conn;
    c->read->handler = ngx_http_commerce_redis_read_handler;
    c->write->handler = ngx_http_commerce_redis_write_handler;
    c->read->log = w->log;
    c->write->log = w->log;

    conn->c = c;

    ac->data = conn;
    ac->ev.data = conn;
    ac->ev.addRead = ngx_http_commerce_redis_add_read;
    ac->ev.delRead = ngx_http_commerce_redis_del_read;
    ac->ev.addWrite = ngx_http_commerce_redis_add_write;
    ac->ev.delWrite = ngx_http_commerce_redis_del_write;
    ac->ev.cleanup = ngx_http_commerce_redis_cleanup;

    return NGX_OK;
}


static void
ngx_http_commerce_redis_add_read(void *data)
{
    ngx_http_commerce_redis_conn_t *conn = data;

    if (conn->c && !conn->c->read->active) {
        (void) ngx_add_event(conn->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_commerce_redis_del_read(void *data)
{
    ngx_http_commerce_redis_conn_t *conn = data;

    if (conn->c && conn->c->read->active) {
        (void) ngx_del_event(conn->c->read, NGX_READ_EVENT, 0);
    }
}


/*
 * hiredis has output.  On an established connection the write is posted:
 * it runs once at the end of this event loop iteration and flushes every
 * command queued meanwhile, without two epoll_ctl() calls per batch.  Only
 * a connect in progress, or a write the socket could not take whole, waits
 * for a real write event.
 */
static void
ngx_http_commerce_redis_add_write(void *data)
{
    ngx_http_commerce_redis_conn_t *conn = data;

    ngx_event_t  *wev;

    if (conn->c == NULL) {
        return;
    }

    wev = conn->c->write;

    if (wev->active) {
        return;
    }

    if (conn->state == NGX_HTTP_COMMERCE_REDIS_CONNECTED && !conn->writing) {
        if (!wev->posted) {
            ngx_post_event(wev, &ngx_posted_events);
        }

        return;
    }

    (void) ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
}


static void
ngx_http_commerce_redis_del_write(void *data)
{
    ngx_http_commerce_redis_conn_t *conn = data;

    if (conn->c == NULL) {
        return;
    }

    if (conn->c->write->posted) {
        ngx_delete_posted_event(conn->c->write);
    }

    if (conn->c->write->active) {
        (void) ngx_del_event(conn->c->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis is about to close the socket: take it out of epoll and release
 * the nginx connection, with no timer or posted event left behind.
 */
static void
ngx_http_commerce_redis_cleanup(void *data)
{
    ngx_connection_t                *c;
    ngx_http_commerce_redis_conn_t  *conn = data;

    c = conn->c;

    if (c == NULL) {
        return;
    }

    conn->c = NULL;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}


static void
ngx_http_commerce_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t                *c;
    ngx_http_commerce_redis_conn_t  *conn;

    c = rev->data;
    conn = c->data;

    if (conn->ac) {
        redisAsyncHandleRead(conn->ac);
    }
}


static void
ngx_http_commerce_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t                *c;
    ngx_http_commerce_redis_conn_t  *conn;

    c = wev->data;
    conn = c->data;

    if (conn->ac == NULL) {
        return;
    }

    /* a write left unfinished here re-arms a real write event */
    conn->writing = 1;
    redisAsyncHandleWrite(conn->ac);
    conn->writing = 0;
}


/*
 * Picks a connection round-robin: a connected one if any, else one still
 * connecting (hiredis buffers the command until the connect completes).
 */
static ngx_http_commerce_redis_conn_t *
ngx_http_commerce_redis_pick(ngx_http_commerce_redis_peer_t *peer)
{
    ngx_uint_t                       i, n;
    ngx_http_commerce_redis_conn_t  *conn, *connecting;

    connecting = NULL;

    for (i = 0; i < peer->nconns; i++) {
        n = (peer->next + i) % peer->nconns;
        conn = &peer->conns[n];

        if (conn->ac == NULL) {
            continue;
        }

        if (conn->state == NGX_HTTP_COMMERCE_REDIS_CONNECTED) {
            peer->next = n + 1;
            return conn;
        }

        if (connecting == NULL) {
            connecting = conn;
        }
    }

    return connecting;
}


/* Sends; a cache entry waiting for the reply is let go if none will come. */
ngx_int_t
ngx_http_commerce_redis_send(ngx_http_request_t *r, ngx_msec_t timeout,
    ngx_http_commerce_redis_handler_pt handler, void *data,
    ngx_http_commerce_redis_cmd_t *cmd, time_t *retry_after)
{
    ngx_int_t  rc;

    rc = ngx_http_commerce_redis_send_cmd(r, timeout, handler, data, cmd,
                                          retry_after);

    if (rc != NGX_OK && cmd->fill) {
        ngx_http_commerce_redis_cache_fill(cmd->fill, NULL);
    }

    cmd->fill = NULL;

    return rc;
}


static ngx_int_t
ngx_http_commerce_redis_send_cmd(ngx_http_request_t *r, ngx_msec_t timeout,
    ngx_http_commerce_redis_handler_pt handler, void *data,
    ngx_http_commerce_redis_cmd_t *cmd, time_t *retry_after)
{
    ngx_uint_t                          i, open;
    ngx_msec_t                          wait, left;
    ngx_pool_cleanup_t                 *cln;
    ngx_http_commerce_redis_conn_t     *conn;
    ngx_http_commerce_redis_peer_t     *peer;
    ngx_http_commerce_redis_worker_t   *w;
    ngx_http_commerce_redis_pending_t  *pc;

    if (cmd->overflow) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "commerce redis: a command does not fit its builder "
                      "(%ui arguments, %ui bytes of digits)",
                      cmd->nalloc, (ngx_uint_t) sizeof(cmd->digits));
        return NGX_ERROR;
    }

    w = &ngx_http_commerce_redis_worker;
    conn = NULL;
    wait = 1000;
    open = 0;

    for (i = 0; i < w->npeers; i++) {
        peer = &w->peers[(w->next + i) % w->npeers];

        if (!commerce_breaker_allow(&peer->breaker, ngx_current_msec)) {
            left = (ngx_msec_t) commerce_breaker_retry_after(&peer->breaker,
                                                         ngx_current_msec);
            wait = ngx_max(wait, left);
            open = 1;
            continue;
        }

        conn = ngx_http_commerce_redis_pick(peer);

        if (conn) {
            w->next = (w->next + i + 1) % w->npeers;
            break;
        }
    }

    if (conn == NULL) {
        ngx_http_commerce_metrics_redis_error(
            open ? NGX_HTTP_COMMERCE_REDIS_ERR_BREAKER_OPEN
                 : NGX_HTTP_COMMERCE_REDIS_ERR_CONNECT);
        *retry_after = (time_t) ((wait + 999) / 1000);
        return NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    pc = ngx_alloc(sizeof(ngx_http_commerce_redis_pending_t), w->log);
    if (pc == NULL) {
        return NGX_ERROR;
    }

    /* hiredis formats the command at once: cmd may go when this returns */

    if (redisAsyncCommandArgv(conn->ac, ngx_http_commerce_redis_reply, pc,
                              (int) cmd->argc, cmd->argv, cmd->argvlen)
        != REDIS_OK)
    {
        ngx_free(pc);
        ngx_http_commerce_metrics_redis_error(
            NGX_HTTP_COMMERCE_REDIS_ERR_CONNECT);
        *retry_after = 1;
        return NGX_DECLINED;
    }

    ngx_memzero(pc, sizeof(ngx_http_commerce_redis_pending_t));

    pc->r = r;
    pc->cln = cln;
    pc->handler = handler;
    pc->data = data;
    pc->conn = conn;
    pc->timeout = timeout;
    pc->fill = cmd->fill;
    pc->sent = ngx_http_commerce_metrics_now();

    pc->timer.handler = ngx_http_commerce_redis_pending_timeout;
    pc->timer.data = pc;
    pc->timer.log = r->connection->log;

    ngx_add_timer(&pc->timer, timeout);

    cln->handler = ngx_http_commerce_redis_pending_cleanup;
    cln->data = pc;

    return NGX_OK;
}


/*
 * hiredis calls this once per command: with the reply, or with NULL when
 * the connection is going away.  The request may be gone already.
 */
static void
ngx_http_commerce_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    void                               *data;
    ngx_connection_t                   *c;
    ngx_http_request_t                 *r;
    ngx_http_commerce_redis_pending_t  *pc = privdata;
    ngx_http_commerce_redis_handler_pt  handler;

    if (reply) {
        pc->conn->last_reply = ngx_current_msec;
        ngx_http_commerce_redis_success(pc->conn->peer);
        ngx_http_commerce_metrics_redis_latency(pc->sent);

        if (((redisReply *) reply)->type == REDIS_REPLY_ERROR) {
            ngx_http_commerce_metrics_redis_error(
                NGX_HTTP_COMMERCE_REDIS_ERR_REPLY);
        }

    } else {
        ngx_http_commerce_metrics_redis_error(
            ac->err == REDIS_ERR_PROTOCOL
            ? NGX_HTTP_COMMERCE_REDIS_ERR_PROTOCOL
            : NGX_HTTP_COMMERCE_REDIS_ERR_CONNECT);
    }

    if (pc->fill) {
        ngx_http_commerce_redis_cache_fill(pc->fill, reply);
        pc->fill = NULL;
    }

    r = pc->r;

    if (r == NULL) {
        ngx_free(pc);
        return;
    }

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    pc->cln->handler = NULL;
    handler = pc->handler;
    data = pc->data;

    ngx_free(pc);

    if (ngx_http_commerce_redis_worker.exiting) {
        /* exit_process: the cycle is going away, requests with it */
        return;
    }

    c = r->connection;

    if (reply == NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "commerce redis: connection lost with a command "
                      "pending");
    }

    handler(r, data, reply ? NGX_HTTP_COMMERCE_REDIS_OK
                           : NGX_HTTP_COMMERCE_REDIS_DOWN,
            reply);

    ngx_http_run_posted_requests(c);
}


/*
 * No reply in time: the request gets its 504 now and the late reply will be
 * dropped.  When the connection has answered nothing for as long, it is
 * stalled: it is closed so that the commands queued behind fail fast too.
 */
static void
ngx_http_commerce_redis_pending_timeout(ngx_event_t *ev)
{
    void                               *data;
    ngx_connection_t                   *c;
    ngx_http_request_t                 *r;
    ngx_http_commerce_redis_conn_t     *conn;
    ngx_http_commerce_redis_pending_t  *pc;
    ngx_http_commerce_redis_handler_pt  handler;

    pc = ev->data;
    r = pc->r;
    conn = pc->conn;
    c = r->connection;

    ngx_log_error(NGX_LOG_ERR, c->log, 0,
                  "commerce redis: command to %V timed out after %M ms",
                  &conn->peer->server->name, pc->timeout);

    pc->r = NULL;
    pc->cln->handler = NULL;
    handler = pc->handler;
    data = pc->data;

    ngx_http_commerce_redis_failure(conn->peer,
                                    NGX_HTTP_COMMERCE_REDIS_ERR_TIMEOUT);

    /* a server that does not answer may not tell of its writes either */
    ngx_http_commerce_redis_track_reset(conn->peer);

    if (conn->ac
        && ngx_current_msec - conn->last_reply >= pc->timeout)
    {
        /* pc is freed here, with the other pending commands */
        ngx_http_commerce_redis_close(conn);
        ngx_http_commerce_redis_schedule(conn);
    }

    handler(r, data, NGX_HTTP_COMMERCE_REDIS_TIMEOUT, NULL);

    ngx_http_run_posted_requests(c);
}


/* The request is being freed before its reply arrived: detach it. */
static void
ngx_http_commerce_redis_pending_cleanup(void *data)
{
    ngx_http_commerce_redis_pending_t  *pc = data;

    pc->r = NULL;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }
}


/*
 * The read cache's tracking connection of a server: CLIENT ID, then
 * CLIENT TRACKING of the cached prefixes in broadcast mode, redirected to
 * itself, then SUBSCRIBE to the invalidations (RESP2: they arrive as
 * messages), each step once the previous one's reply is in.
 */
static void
ngx_http_commerce_redis_track_id(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    int                               i, n;
    u_char                            id[NGX_INT64_LEN];
    size_t                            lens[16];
    const char                      **p, *argv[16];
    redisReply                       *rr = reply;

    if (rr == NULL) {
        return;
    }

    if (rr->type != REDIS_REPLY_INTEGER) {
        ngx_http_commerce_redis_track_on(ac, reply, privdata);
        return;
    }

    n = 0;
    argv[n++] = "CLIENT";
    argv[n++] = "TRACKING";
    argv[n++] = "on";
    argv[n++] = "REDIRECT";
    argv[n++] = (char *) id;
    argv[n++] = "BCAST";

    for (p = ngx_http_commerce_redis_cache_prefixes; *p && n < 16; p++) {
        argv[n++] = "PREFIX";
        argv[n++] = *p;
    }

    for (i = 0; i < n; i++) {
        lens[i] = ngx_strlen(argv[i]);
    }

    lens[4] = ngx_sprintf(id, "%L", (int64_t) rr->integer) - id;

    (void) redisAsyncCommandArgv(ac, ngx_http_commerce_redis_track_on,
                                 privdata, n, argv, lens);
}


static void
ngx_http_commerce_redis_track_on(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                      *rr = reply;
    ngx_http_commerce_redis_conn_t  *conn = privdata;

    if (rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_STATUS) {
        (void) redisAsyncCommand(ac, ngx_http_commerce_redis_track_message,
                                 conn, "SUBSCRIBE %s",
                                 "__redis__:invalidate");
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_http_commerce_redis_worker.log, 0,
                  "commerce redis: %V refused client tracking (%*s), "
                  "reads are not cached", &conn->peer->server->name,
                  (size_t) (rr->type == REDIS_REPLY_ERROR ? rr->len : 0),
                  rr->type == REDIS_REPLY_ERROR ? rr->str : "");

    conn->backoff = ngx_http_commerce_redis_worker.rmcf->backoff_max;
    ngx_http_commerce_redis_close(conn);
    ngx_http_commerce_redis_schedule(conn);
}


/* The subscription's replies: its confirmation, then invalidations. */
static void
ngx_http_commerce_redis_track_message(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    size_t                             i;
    redisReply                        *rr = reply, *keys;
    ngx_http_commerce_redis_conn_t    *conn = privdata;
    ngx_http_commerce_redis_worker_t  *w;

    w = &ngx_http_commerce_redis_worker;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements != 3
        || rr->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (ngx_strcmp(rr->element[0]->str, "subscribe") == 0) {
        if (!conn->peer->subscribed) {
            conn->peer->subscribed = 1;
            w->subscribed++;

            ngx_log_error(NGX_LOG_INFO, w->log, 0,
                          "commerce redis: tracking %V for the read cache",
                          &conn->peer->server->name);
        }

        ngx_http_commerce_redis_cache_ready(w->subscribed == w->npeers);
        return;
    }

    if (ngx_strcmp(rr->element[0]->str, "message") != 0) {
        return;
    }

    keys = rr->element[2];

    switch (keys->type) {

    case REDIS_REPLY_STRING:
        ngx_http_commerce_redis_cache_invalidate((u_char *) keys->str,
                                                 keys->len);
        break;

    case REDIS_REPLY_ARRAY:
        for (i = 0; i < keys->elements; i++) {
            if (keys->element[i]->type == REDIS_REPLY_STRING) {
                ngx_http_commerce_redis_cache_invalidate(
                    (u_char *) keys->element[i]->str, keys->element[i]->len);
            }
        }

        break;

    default: /* nil: every key, after FLUSHDB or FLUSHALL */
        ngx_http_commerce_redis_cache_invalidate(NULL, 0);
        break;
    }
}


/* A tracking connection went: nothing cached can be trusted any more. */
static void
ngx_http_commerce_redis_track_lost(ngx_http_commerce_redis_conn_t *conn)
{
    ngx_http_commerce_redis_worker_t  *w;

    w = &ngx_http_commerce_redis_worker;

    if (!conn->tracking) {
        return;
    }

    if (conn->peer->subscribed) {
        conn->peer->subscribed = 0;
        w->subscribed--;
    }

    ngx_http_commerce_redis_cache_ready(0);
}


/*
 * Anything wrong with a server's data connections (lost, or a command
 * without reply in time) drops the cache and starts its tracking again:
 * invalidations may have been lost on the way too.
 */
static void
ngx_http_commerce_redis_track_reset(ngx_http_commerce_redis_peer_t *peer)
{
    if (peer->track.ac == NULL) {
        return;
    }

    ngx_http_commerce_redis_close(&peer->track);
    ngx_http_commerce_redis_schedule(&peer->track);
}


/*
 * The tracking connection is silent while nothing is written: TCP
 * keepalive finds out in seconds that a server's host went away.
 */
static void
ngx_http_commerce_redis_keepalive(ngx_socket_t fd)
{
    int  on = 1;

    (void) setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(int));

#if (NGX_HAVE_KEEPALIVE_TUNABLE)
    {
        int  idle = 5, intvl = 1, cnt = 3;

        (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(int));
        (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
                          sizeof(int));
        (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(int));
    }
#endif
}


/*
 * The breaker's outcomes, and its state published for the metrics; a
 * failure is counted by its reason (ngx_http_commerce_redis_err_e).
 */
static void
ngx_http_commerce_redis_failure(ngx_http_commerce_redis_peer_t *peer,
    ngx_uint_t reason)
{
    ngx_http_commerce_metrics_redis_error(reason);

    commerce_breaker_failure(&peer->breaker, ngx_current_msec);
    ngx_http_commerce_metrics_breaker(NGX_HTTP_COMMERCE_BREAKER_REDIS,
                                      &peer->server->name, &peer->breaker);
}


/* on every reply: published only when the state changed */
static void
ngx_http_commerce_redis_success(ngx_http_commerce_redis_peer_t *peer)
{
    commerce_breaker_state_e  was;

    was = peer->breaker.state;

    commerce_breaker_success(&peer->breaker);

    if (peer->breaker.state != was) {
        ngx_http_commerce_metrics_breaker(NGX_HTTP_COMMERCE_BREAKER_REDIS,
                                          &peer->server->name,
                                          &peer->breaker);
    }
}
