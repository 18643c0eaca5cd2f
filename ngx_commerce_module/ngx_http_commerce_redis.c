/*
 * ngx_http_commerce_redis_module: the Redis layer's directives and
 * configuration, its per-worker connections opened in init_process and
 * closed in exit_process (ngx_http_commerce_redis_conn.c), and the command
 * builder of its callers.
 *
 * Directives: commerce_redis_server, commerce_redis_pool_size,
 * commerce_redis_connect_timeout, commerce_redis_reconnect_min,
 * commerce_redis_reconnect_max, commerce_redis_breaker_threshold,
 * commerce_redis_breaker_timeout, commerce_redis_cache_size,
 * commerce_redis_cache_valid (http), commerce_redis_timeout (http,
 * server, location); the reference is docs/directives.md.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>

#include "commerce_redis_addr.h"

#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_redis.h"
#include "ngx_http_commerce_redis_conn.h"


typedef struct {
    ngx_msec_t                  timeout;
} ngx_http_commerce_redis_loc_conf_t;


static char *ngx_http_commerce_redis_server(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_commerce_redis_resolve(ngx_conf_t *cf,
    ngx_http_commerce_redis_server_t *server, commerce_redis_addr_t *a);
static void *ngx_http_commerce_redis_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_redis_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_http_commerce_redis_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_redis_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_commerce_redis_init_process(ngx_cycle_t *cycle);
static void ngx_http_commerce_redis_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_commerce_redis_positive = {
    ngx_http_commerce_conf_bounds, 1, 1024
};


static ngx_command_t  ngx_http_commerce_redis_commands[] = {

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
      offsetof(ngx_http_commerce_redis_main_conf_t, pool_size),
      &ngx_http_commerce_redis_positive },

    { ngx_string("commerce_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_redis_main_conf_t, connect_timeout),
      NULL },

    { ngx_string("commerce_redis_reconnect_min"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_redis_main_conf_t, backoff_min),
      NULL },

    { ngx_string("commerce_redis_reconnect_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_redis_main_conf_t, backoff_max),
      NULL },

    { ngx_string("commerce_redis_breaker_threshold"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_redis_main_conf_t, breaker_threshold),
      &ngx_http_commerce_redis_positive },

    { ngx_string("commerce_redis_breaker_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_redis_main_conf_t, breaker_timeout),
      NULL },

    { ngx_string("commerce_redis_cache_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_redis_main_conf_t, cache_size),
      NULL },

    { ngx_string("commerce_redis_cache_valid"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_redis_main_conf_t, cache_valid),
      NULL },

    { ngx_string("commerce_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_redis_loc_conf_t, timeout),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_redis_module_ctx = {
    NULL,                                     /* preconfiguration */
    NULL,                                     /* postconfiguration */

    ngx_http_commerce_redis_create_main_conf, /* create main configuration */
    ngx_http_commerce_redis_init_main_conf,   /* init main configuration */

    NULL,                                     /* create server configuration */
    NULL,                                     /* merge server configuration */

    ngx_http_commerce_redis_create_loc_conf,  /* create location conf */
    ngx_http_commerce_redis_merge_loc_conf    /* merge location conf */
};


ngx_module_t  ngx_http_commerce_redis_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_redis_module_ctx,   /* module context */
    ngx_http_commerce_redis_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_commerce_redis_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_commerce_redis_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static char *
ngx_http_commerce_redis_server(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_commerce_redis_main_conf_t *rmcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    commerce_redis_addr_t              a;
    commerce_redis_addr_rc_e           rc;
    ngx_http_commerce_redis_server_t  *server, *s;

    value = cf->args->elts;
    s = rmcf->servers.elts;

    for (i = 0; i < rmcf->servers.nelts; i++) {
        if (s[i].name.len == value[1].len
            && ngx_strncmp(s[i].name.data, value[1].data, value[1].len) == 0)
        {
            return "is duplicate";
        }
    }

    rc = commerce_redis_addr_parse(&a, (char *) value[1].data, value[1].len,
                                   6379);

    if (rc == COMMERCE_REDIS_ADDR_PATH_TOO_LONG) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis_server\": unix socket "
                           "path \"%V\" is too long", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (rc != COMMERCE_REDIS_ADDR_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis_server\": %s in \"%V\"",
                           commerce_redis_addr_strerror(rc), &value[1]);
        return NGX_CONF_ERROR;
    }

    server = ngx_array_push(&rmcf->servers);
    if (server == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(server, sizeof(ngx_http_commerce_redis_server_t));
    server->name = value[1];

    return ngx_http_commerce_redis_resolve(cf, server, &a);
}


/*
 * A host name is resolved here, at configuration time, so that no worker
 * ever calls the blocking resolver inside hiredis: hiredis gets the first
 * address as IP text, or the socket path.
 */
static char *
ngx_http_commerce_redis_resolve(ngx_conf_t *cf,
    ngx_http_commerce_redis_server_t *server, commerce_redis_addr_t *a)
{
    size_t      len;
    ngx_int_t   rc;
    ngx_url_t   u;
    ngx_addr_t  addr;

    len = ngx_strlen(a->host);

    if (a->is_unix) {
        server->host = ngx_pnalloc(cf->pool, len + 1);
        if (server->host == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(server->host, (u_char *) a->host, len + 1);

        return NGX_CONF_OK;
    }

    rc = ngx_parse_addr(cf->pool, &addr, (u_char *) a->host, len);

    if (rc == NGX_DECLINED) {
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.host.data = (u_char *) a->host;
        u.host.len = len;
        u.port = (in_port_t) a->port;

        if (ngx_inet_resolve_host(cf->pool, &u) != NGX_OK) {
            if (u.err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"commerce_redis_server\": %s in \"%V\"",
                                   u.err, &server->name);
            }

            return NGX_CONF_ERROR;
        }

        addr = u.addrs[0];

    } else if (rc != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    server->port = a->port;

    server->host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (server->host == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_sock_ntop(addr.sockaddr, addr.socklen, server->host,
                        NGX_SOCKADDR_STRLEN, 0);
    server->host[len] = '\0';

    return NGX_CONF_OK;
}


static void *
ngx_http_commerce_redis_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_redis_main_conf_t  *rmcf;

    rmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_redis_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rmcf->used = 0;
     */

    if (ngx_array_init(&rmcf->servers, cf->pool, 1,
                       sizeof(ngx_http_commerce_redis_server_t))
        != NGX_OK)
    {
        return NULL;
    }

    rmcf->pool_size = NGX_CONF_UNSET_UINT;
    rmcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->backoff_min = NGX_CONF_UNSET_MSEC;
    rmcf->backoff_max = NGX_CONF_UNSET_MSEC;
    rmcf->breaker_threshold = NGX_CONF_UNSET_UINT;
    rmcf->breaker_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->cache_size = NGX_CONF_UNSET_SIZE;
    rmcf->cache_valid = NGX_CONF_UNSET_MSEC;

    return rmcf;
}


static char *
ngx_http_commerce_redis_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_commerce_redis_main_conf_t *rmcf = conf;

    ngx_conf_init_uint_value(rmcf->pool_size, 2);
    ngx_conf_init_msec_value(rmcf->connect_timeout, 500);
    ngx_conf_init_msec_value(rmcf->backoff_min, 50);
    ngx_conf_init_msec_value(rmcf->backoff_max, 2000);
    ngx_conf_init_uint_value(rmcf->breaker_threshold, 3);
    ngx_conf_init_msec_value(rmcf->breaker_timeout, 1000);
    ngx_conf_init_size_value(rmcf->cache_size, 0);
    ngx_conf_init_msec_value(rmcf->cache_valid, 60000);

    if (rmcf->cache_size && rmcf->cache_valid == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis_cache_valid\" must not be 0");
        return NGX_CONF_ERROR;
    }

    if (rmcf->used && rmcf->servers.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis_server\" is not set, but a "
                           "location uses a commerce read API");
        return NGX_CONF_ERROR;
    }

    if (rmcf->connect_timeout == 0 || rmcf->backoff_min == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis_connect_timeout\" and "
                           "\"commerce_redis_reconnect_min\" must not be 0");
        return NGX_CONF_ERROR;
    }

    if (rmcf->backoff_min > rmcf->backoff_max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis_reconnect_min\" %M is greater "
                           "than \"commerce_redis_reconnect_max\" %M",
                           rmcf->backoff_min, rmcf->backoff_max);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_commerce_redis_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_redis_loc_conf_t  *conf;

    conf = ngx_palloc(cf->pool, sizeof(ngx_http_commerce_redis_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_commerce_redis_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_commerce_redis_loc_conf_t *prev = parent;
    ngx_http_commerce_redis_loc_conf_t *conf = child;

    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 500);

    if (conf->timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis_timeout\" must not be 0");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_commerce_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_commerce_redis_main_conf_t  *rmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_commerce_redis_module);
    if (rmcf == NULL || !rmcf->used || rmcf->servers.nelts == 0) {
        return NGX_OK;
    }

    return ngx_http_commerce_redis_start(cycle, rmcf);
}


static void
ngx_http_commerce_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_commerce_redis_stop(cycle);
}


ngx_msec_t
ngx_http_commerce_redis_timeout(ngx_http_request_t *r)
{
    ngx_http_commerce_redis_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_redis_module);

    return rlcf->timeout;
}


void
ngx_http_commerce_redis_use(ngx_conf_t *cf)
{
    ngx_http_commerce_redis_main_conf_t  *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_commerce_redis_module);
    rmcf->used = 1;
}


ngx_uint_t
ngx_http_commerce_redis_configured(ngx_conf_t *cf)
{
    ngx_http_commerce_redis_main_conf_t  *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_commerce_redis_module);

    return rmcf->servers.nelts > 0;
}


void
ngx_http_commerce_redis_cmd_init(ngx_http_commerce_redis_cmd_t *cmd)
{
    cmd->argv = cmd->args;
    cmd->argvlen = cmd->lens;
    cmd->argc = 0;
    cmd->nalloc = NGX_HTTP_COMMERCE_REDIS_CMD_ARGS;
    cmd->ndigits = 0;
    cmd->overflow = 0;
    cmd->fill = NULL;
}


ngx_int_t
ngx_http_commerce_redis_cmd_reserve(ngx_http_commerce_redis_cmd_t *cmd,
    ngx_pool_t *pool, ngx_uint_t n)
{
    size_t       *argvlen;
    const char  **argv;

    if (n <= cmd->nalloc) {
        return NGX_OK;
    }

    argv = ngx_palloc(pool, n * sizeof(char *));
    argvlen = ngx_palloc(pool, n * sizeof(size_t));

    if (argv == NULL || argvlen == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(argv, cmd->argv, cmd->argc * sizeof(char *));
    ngx_memcpy(argvlen, cmd->argvlen, cmd->argc * sizeof(size_t));

    cmd->argv = argv;
    cmd->argvlen = argvlen;
    cmd->nalloc = n;

    return NGX_OK;
}


void
ngx_http_commerce_redis_cmd_arg(ngx_http_commerce_redis_cmd_t *cmd,
    const u_char *data, size_t len)
{
    if (cmd->argc == cmd->nalloc) {
        cmd->overflow = 1;
        return;
    }

    cmd->argv[cmd->argc] = (const char *) data;
    cmd->argvlen[cmd->argc] = len;
    cmd->argc++;
}


/* The script by its hash (hashed on first use, per process), or whole. */
void
ngx_http_commerce_redis_cmd_arg_script(ngx_http_commerce_redis_cmd_t *cmd,
    ngx_http_commerce_redis_script_t *script, ngx_uint_t whole)
{
    u_char      digest[20];
    ngx_sha1_t  sha1;

    if (whole) {
        ngx_http_commerce_redis_cmd_arg_literal(cmd, "EVAL");
        ngx_http_commerce_redis_cmd_arg_str(cmd, &script->text);
        return;
    }

    if (!script->hashed) {
        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, script->text.data, script->text.len);
        ngx_sha1_final(digest, &sha1);

        ngx_hex_dump(script->sha1, digest, sizeof(digest));
        script->hashed = 1;
    }

    ngx_http_commerce_redis_cmd_arg_literal(cmd, "EVALSHA");
    ngx_http_commerce_redis_cmd_arg(cmd, script->sha1, sizeof(script->sha1));
}


ngx_uint_t
ngx_http_commerce_redis_noscript(redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR
           && reply->len >= sizeof("NOSCRIPT") - 1
           && ngx_strncmp(reply->str, "NOSCRIPT", sizeof("NOSCRIPT") - 1)
              == 0;
}


void
ngx_http_commerce_redis_cmd_arg_deadline(ngx_http_commerce_redis_cmd_t *cmd,
    ngx_msec_t timeout)
{
    ngx_time_t  *tp;

    if (timeout == 0) {
        ngx_http_commerce_redis_cmd_arg_literal(cmd, "0");
        return;
    }

    tp = ngx_timeofday();

    ngx_http_commerce_redis_cmd_arg_uint(cmd, (uint64_t) tp->sec * 1000
                                              + tp->msec + timeout);
}


ngx_uint_t
ngx_http_commerce_redis_late(ngx_http_request_t *r, redisReply *reply,
    const char *who)
{
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        return 0;
    }

    /* in time for us, late by Redis's clock: the clocks disagree */

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "%s: Redis's clock is ahead of this host's by more than "
                  "commerce_redis_timeout (Redis: %L ms since the epoch), "
                  "claiming without a deadline", who,
                  (int64_t) reply->integer);

    return 1;
}


/* The decimal digits of n, in the command's own room. */
void
ngx_http_commerce_redis_cmd_arg_uint(ngx_http_commerce_redis_cmd_t *cmd,
    uint64_t n)
{
    u_char  *p, *last;

    if (cmd->ndigits + NGX_INT64_LEN > NGX_HTTP_COMMERCE_REDIS_CMD_DIGITS) {
        cmd->overflow = 1;
        return;
    }

    p = cmd->digits + cmd->ndigits;
    last = ngx_sprintf(p, "%uL", n);
    cmd->ndigits += last - p;

    ngx_http_commerce_redis_cmd_arg(cmd, p, last - p);
}
