/*
 * ngx_http_commerce_redis_module: non-blocking Redis for nginx workers:
 * hiredis's async API attached to nginx events, persistent per-worker
 * connections, pipelining, per-command timeouts, reconnect with backoff and
 * a circuit breaker.  It owns every commerce_redis_* directive; the modules
 * that send commands (read, webhook dedup, global limits) use this API.
 *
 * A command belongs to a request but never holds it: when the request goes
 * away first (client abort, timeout), the reply is read and dropped.
 *
 * Use:
 *
 *     ngx_http_commerce_redis_cmd_t  cmd;
 *
 *     ngx_http_commerce_redis_cmd_init(&cmd);
 *     ngx_http_commerce_redis_cmd_arg_literal(&cmd, "SET");
 *     ngx_http_commerce_redis_cmd_arg_str(&cmd, &key);
 *     ngx_http_commerce_redis_cmd_arg_literal(&cmd, "PX");
 *     ngx_http_commerce_redis_cmd_arg_uint(&cmd, ttl);
 *
 *     rc = ngx_http_commerce_redis_send(r, ngx_http_commerce_redis_timeout(r),
 *                                       done, ctx, &cmd, &retry_after);
 *
 * and at configuration time, in a module whose locations send commands:
 *
 *     if (!ngx_http_commerce_redis_configured(cf)) { ... "needs
 *         commerce_redis_server" ... }
 *     ngx_http_commerce_redis_use(cf);
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


/* arguments of a command without ngx_http_commerce_redis_cmd_reserve() */
#define NGX_HTTP_COMMERCE_REDIS_CMD_ARGS     8
/* room for the digits of ngx_http_commerce_redis_cmd_arg_uint() */
#define NGX_HTTP_COMMERCE_REDIS_CMD_DIGITS   (2 * NGX_INT64_LEN)


/*
 * A command being built, on the caller's stack: the arguments are borrowed
 * (they must live until ngx_http_commerce_redis_send() returns, which
 * copies them), numbers are written into the command itself.  One argument
 * too many marks it, and sending it fails: callers need not check each
 * argument.  Initialized in place, never copied (argv may point into it).
 */
typedef struct {
    const char                **argv;
    size_t                     *argvlen;
    ngx_uint_t                  argc;
    ngx_uint_t                  nalloc;
    ngx_uint_t                  ndigits;
    unsigned                    overflow:1;
    /* the read cache's entry the reply fills (redis_cache.h), or NULL */
    struct ngx_http_commerce_redis_cache_entry_s  *fill;
    const char                 *args[NGX_HTTP_COMMERCE_REDIS_CMD_ARGS];
    size_t                      lens[NGX_HTTP_COMMERCE_REDIS_CMD_ARGS];
    u_char                      digits[NGX_HTTP_COMMERCE_REDIS_CMD_DIGITS];
} ngx_http_commerce_redis_cmd_t;


void ngx_http_commerce_redis_cmd_init(ngx_http_commerce_redis_cmd_t *cmd);

/* room for n arguments in all (MGET of a page), from the pool if needed */
ngx_int_t ngx_http_commerce_redis_cmd_reserve(
    ngx_http_commerce_redis_cmd_t *cmd, ngx_pool_t *pool, ngx_uint_t n);

void ngx_http_commerce_redis_cmd_arg(ngx_http_commerce_redis_cmd_t *cmd,
    const u_char *data, size_t len);
void ngx_http_commerce_redis_cmd_arg_uint(ngx_http_commerce_redis_cmd_t *cmd,
    uint64_t n);

#define ngx_http_commerce_redis_cmd_arg_literal(cmd, lit)                     \
    ngx_http_commerce_redis_cmd_arg(cmd, (u_char *) lit, sizeof(lit) - 1)

#define ngx_http_commerce_redis_cmd_arg_str(cmd, s)                           \
    ngx_http_commerce_redis_cmd_arg(cmd, (s)->data, (s)->len)


/*
 * A Lua script, sent by its SHA1 (EVALSHA: Redis neither receives nor
 * hashes the text again) and whole (EVAL, which loads it) only after
 * Redis answered NOSCRIPT: it restarted or its scripts were flushed.
 *
 *     static ngx_http_commerce_redis_script_t  claim =
 *         ngx_http_commerce_redis_script("return redis.call('GET', ...)");
 *
 *     ngx_http_commerce_redis_cmd_arg_script(&cmd, &claim, ctx->eval);
 *     ngx_http_commerce_redis_cmd_arg_literal(&cmd, "1");  (numkeys) ...
 *
 * and in the reply handler, once:
 *
 *     if (!ctx->eval && ngx_http_commerce_redis_noscript(reply)) {
 *         ctx->eval = 1;  ... send again ...
 *     }
 */
typedef struct {
    ngx_str_t                   text;
    u_char                      sha1[40];   /* hex, once first sent */
    ngx_uint_t                  hashed;
} ngx_http_commerce_redis_script_t;

#define ngx_http_commerce_redis_script(lua)  { ngx_string(lua), { 0 }, 0 }

/* EVALSHA sha1, or EVAL text when whole: the first two arguments */
void ngx_http_commerce_redis_cmd_arg_script(
    ngx_http_commerce_redis_cmd_t *cmd,
    ngx_http_commerce_redis_script_t *script, ngx_uint_t whole);

/* the reply says the script is not loaded: send it whole */
ngx_uint_t ngx_http_commerce_redis_noscript(redisReply *reply);


/*
 * A claim with a deadline: a script that must write nothing when Redis
 * runs it after its request stopped waiting (Redis was frozen, or the
 * connection dropped with the command in its buffer), or it would leave
 * a claim that nobody holds.  The script begins with
 * NGX_HTTP_COMMERCE_REDIS_DEADLINE_LUA("n"), ARGV[n] being the deadline
 * that _cmd_arg_deadline() sends: the moment the request stops waiting
 * (now and the command's timeout, ms since the epoch by this host's
 * clock), or 0 for none.  Past it by Redis's TIME, the script returns
 * that time, an integer, and writes nothing.  (A write after TIME needs
 * effects replication: the default since Redis 5, asked for before.)
 *
 *     ngx_http_commerce_redis_cmd_arg_deadline(&cmd,
 *                                         ctx->no_deadline ? 0 : timeout);
 *
 * and in the reply handler, when the script's own answers are no integer:
 *
 *     if (ngx_http_commerce_redis_late(r, reply, "commerce webhook")) {
 *         ctx->no_deadline = 1;  ... send again ...
 *     }
 *
 * An integer that reaches its request, still waiting, says that Redis's
 * clock is ahead of this host's by more than the timeout: _late() logs
 * it, and the claim is sent again without a deadline.
 */
#define NGX_HTTP_COMMERCE_REDIS_DEADLINE_LUA(argn)                            \
    "redis.replicate_commands() "                                             \
    "local t = redis.call('TIME') "                                           \
    "local now = t[1] * 1000 + math.floor(t[2] / 1000) "                      \
    "local deadline = tonumber(ARGV[" argn "]) "                              \
    "if deadline > 0 and now > deadline then return now end "

void ngx_http_commerce_redis_cmd_arg_deadline(
    ngx_http_commerce_redis_cmd_t *cmd, ngx_msec_t timeout);
ngx_uint_t ngx_http_commerce_redis_late(ngx_http_request_t *r,
    redisReply *reply, const char *who);


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
 * holds the seconds a client should wait.  NGX_ERROR on allocation failure
 * or a command with too many arguments.  The caller increments
 * r->main->count itself if it returns NGX_DONE.
 */
ngx_int_t ngx_http_commerce_redis_send(ngx_http_request_t *r,
    ngx_msec_t timeout, ngx_http_commerce_redis_handler_pt handler,
    void *data, ngx_http_commerce_redis_cmd_t *cmd, time_t *retry_after);

/* commerce_redis_timeout of the request's location */
ngx_msec_t ngx_http_commerce_redis_timeout(ngx_http_request_t *r);


/*
 * Configuration time.  _use(): the workers will need their connections
 * (a location that uses it while parsing makes commerce_redis_server
 * required).  _configured(): whether commerce_redis_server is set, known
 * once the http{} block is parsed (merge, init_main_conf and later).
 */
void ngx_http_commerce_redis_use(ngx_conf_t *cf);
ngx_uint_t ngx_http_commerce_redis_configured(ngx_conf_t *cf);


extern ngx_module_t  ngx_http_commerce_redis_module;


#endif /* _NGX_HTTP_COMMERCE_REDIS_H_INCLUDED_ */
