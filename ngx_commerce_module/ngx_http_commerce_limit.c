/*
 * ngx_http_commerce_limit_module: request rate limiting with GCRA (the
 * generic cell rate algorithm, ngx_http_commerce_gcra.h), per node in a
 * shared memory zone or across nodes in Redis.
 *
 * A zone (commerce_limit_zone, http) names a key, a rate and a burst; a
 * location applies zones (commerce_limit, in the preaccess phase).  A
 * local zone keeps each key's theoretical arrival time in shared memory,
 * kept across reloads, evicting the least recently used keys when full;
 * a global zone keeps it in Redis ("rl:{zone}:{key}", one EVALSHA per
 * request and limit, run by Redis on its own clock), with a fallback
 * when Redis is unavailable.  Local zones are checked first, then global
 * ones in order; a request refused by one limit gets back the local
 * cells it took in the others.  The response carries the RateLimit-*
 * headers of the limit with the least quota left.
 *
 * Directives: commerce_limit_zone, commerce_limit, commerce_limit_status,
 * commerce_limit_log_level, and the variable $commerce_limit_status: the
 * reference (syntax, defaults, headers) is docs/directives.md.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_md5.h>

#include "commerce_contract.h"

#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_redis.h"
#include "ngx_http_commerce_gcra.h"
#include "ngx_http_commerce_metrics.h"


#define NGX_HTTP_COMMERCE_LIMIT_LOCAL           0
#define NGX_HTTP_COMMERCE_LIMIT_GLOBAL          1

#define NGX_HTTP_COMMERCE_LIMIT_FALLBACK_LOCAL  0
#define NGX_HTTP_COMMERCE_LIMIT_FALLBACK_ALLOW  1
#define NGX_HTTP_COMMERCE_LIMIT_FALLBACK_DENY   2

/* $commerce_limit_status, in increasing precedence */
#define NGX_HTTP_COMMERCE_LIMIT_NONE            0
#define NGX_HTTP_COMMERCE_LIMIT_PASSED          1
#define NGX_HTTP_COMMERCE_LIMIT_FALLBACK        2
#define NGX_HTTP_COMMERCE_LIMIT_DRY_RUN         3
#define NGX_HTTP_COMMERCE_LIMIT_REJECTED        4

/* longer keys are stored as a marker byte and their MD5 */
#define NGX_HTTP_COMMERCE_LIMIT_KEY_MAX         64


typedef struct {
    u_char                          color;
    u_char                          len;
    u_short                         pad;
    ngx_queue_t                     queue;
    uint64_t                        tat;       /* microseconds, monotonic */
    u_char                          data[1];
} ngx_http_commerce_limit_node_t;


/* in shared memory */
typedef struct {
    ngx_rbtree_t                    rbtree;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     queue;     /* LRU: most recent first */
    ngx_uint_t                      full_logged;
} ngx_http_commerce_limit_shctx_t;


/* shm_zone->data: one per commerce_limit_zone */
typedef struct {
    ngx_http_commerce_limit_shctx_t  *sh;
    ngx_slab_pool_t                  *shpool;
    ngx_http_complex_value_t          key;
    ngx_http_commerce_gcra_t          gcra;
    ngx_str_t                         name;
    ngx_str_t                         policy;     /* RateLimit-Policy */
    ngx_str_t                         prefix;     /* Redis key prefix */
    ngx_str_t                         interval;   /* T, for the script */
    ngx_str_t                         tolerance;  /* tau, for the script */
    ngx_msec_t                        timeout;
    ngx_uint_t                        scope;
    ngx_uint_t                        fallback;
} ngx_http_commerce_limit_zone_t;


/* the parameters of a commerce_limit_zone directive, as read */
typedef struct {
    ngx_str_t                         name;
    ssize_t                           size;
    uint64_t                          interval;
    ngx_int_t                         burst;
    ngx_int_t                         timeout;
    ngx_uint_t                        scope;
    ngx_uint_t                        fallback;
    const char                       *global_only;
} ngx_http_commerce_limit_args_t;


/* one commerce_limit directive */
typedef struct {
    ngx_shm_zone_t                 *shm_zone;
    ngx_uint_t                      dry_run;
} ngx_http_commerce_limit_t;


/* a commerce_limit's zone, checked once the http block is parsed */
typedef struct {
    ngx_shm_zone_t                 *shm_zone;
    ngx_str_t                       file;
    ngx_uint_t                      line;
} ngx_http_commerce_limit_ref_t;


typedef struct {
    ngx_array_t                     refs;   /* ngx_http_commerce_limit_ref_t */
    ngx_uint_t                      global;
} ngx_http_commerce_limit_main_conf_t;


typedef struct {
    ngx_array_t                     limits; /* ngx_http_commerce_limit_t */
    ngx_uint_t                      status;
    ngx_uint_t                      log_level;
} ngx_http_commerce_limit_loc_conf_t;


/* the decision of one limit for one request */
typedef struct {
    ngx_str_t                        key;
    ngx_str_t                        rkey;     /* Redis key, global only */
    uint32_t                         hash;
    ngx_http_commerce_gcra_result_t  gcra;
    unsigned                         status:3;
    unsigned                         known:1;  /* gcra holds a decision */
    unsigned                         taken:1;  /* a local cell was taken */
    unsigned                         eval:1;   /* EVAL sent after NOSCRIPT */
} ngx_http_commerce_limit_state_t;


typedef struct {
    ngx_array_t                      *limits;
    ngx_http_commerce_limit_state_t  *states;
    ngx_http_commerce_limit_state_t  *shown;    /* the headers' source */
    ngx_http_commerce_limit_state_t  *refused;
    ngx_uint_t                        next;     /* 0..2n: locals, globals */
    ngx_uint_t                        status;
    ngx_uint_t                        code;     /* status of a refusal */
    time_t                            retry_after;
    unsigned                          waiting:1;
    unsigned                          done:1;
    unsigned                          stop:1;
    unsigned                          deny:1;
    unsigned                          headers:1;
} ngx_http_commerce_limit_ctx_t;


static ngx_int_t ngx_http_commerce_limit_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_commerce_limit_run(ngx_http_request_t *r,
    ngx_http_commerce_limit_ctx_t *ctx);
static ngx_int_t ngx_http_commerce_limit_answer(ngx_http_request_t *r,
    ngx_http_commerce_limit_ctx_t *ctx);
static void ngx_http_commerce_limit_decide(ngx_http_request_t *r,
    ngx_http_commerce_limit_ctx_t *ctx);
static ngx_int_t ngx_http_commerce_limit_key(ngx_http_request_t *r,
    ngx_http_commerce_limit_zone_t *zone, ngx_http_commerce_limit_state_t *st);
static void ngx_http_commerce_limit_local(ngx_http_request_t *r,
    ngx_http_commerce_limit_zone_t *zone, ngx_http_commerce_limit_state_t *st);
static void ngx_http_commerce_limit_refund(
    ngx_http_commerce_limit_zone_t *zone, ngx_http_commerce_limit_state_t *st);
static ngx_http_commerce_limit_node_t *ngx_http_commerce_limit_lookup(
    ngx_http_commerce_limit_zone_t *zone, uint32_t hash, ngx_str_t *key);
static ngx_http_commerce_limit_node_t *ngx_http_commerce_limit_alloc(
    ngx_http_commerce_limit_zone_t *zone, uint32_t hash, ngx_str_t *key,
    uint64_t now);
static void ngx_http_commerce_limit_expire(
    ngx_http_commerce_limit_zone_t *zone, uint64_t now, ngx_uint_t force);
static ngx_int_t ngx_http_commerce_limit_global(ngx_http_request_t *r,
    ngx_http_commerce_limit_ctx_t *ctx, ngx_http_commerce_limit_t *limit,
    ngx_http_commerce_limit_state_t *st);
static void ngx_http_commerce_limit_reply(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply);
static void ngx_http_commerce_limit_fallback(ngx_http_request_t *r,
    ngx_http_commerce_limit_ctx_t *ctx, ngx_http_commerce_limit_t *limit,
    ngx_http_commerce_limit_state_t *st, time_t retry_after,
    const char *why);
static ngx_http_commerce_limit_ctx_t *ngx_http_commerce_limit_get_ctx(
    ngx_http_request_t *r);
static void ngx_http_commerce_limit_cleanup(void *data);
static ngx_int_t ngx_http_commerce_limit_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_commerce_limit_header(ngx_http_request_t *r,
    const char *name, ngx_str_t *value, uint64_t n);
static ngx_int_t ngx_http_commerce_limit_status_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_commerce_limit_rbtree_insert_value(
    ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_commerce_limit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static char *ngx_http_commerce_limit_zone_size(ngx_conf_t *cf, ngx_str_t *v,
    ngx_http_commerce_limit_args_t *a);
static char *ngx_http_commerce_limit_zone_global(ngx_conf_t *cf,
    ngx_str_t *v, ngx_http_commerce_limit_args_t *a);
static char *ngx_http_commerce_limit_zone_arg(ngx_conf_t *cf, ngx_str_t *v,
    ngx_http_commerce_limit_args_t *a);
static ngx_int_t ngx_http_commerce_limit_zone_texts(ngx_conf_t *cf,
    ngx_http_commerce_limit_zone_t *zone);
static char *ngx_http_commerce_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_commerce_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_commerce_limit_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_limit_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_http_commerce_limit_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_limit_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_commerce_limit_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_commerce_limit_init(ngx_conf_t *cf);


static ngx_conf_num_bounds_t  ngx_http_commerce_limit_status_bounds = {
    ngx_conf_check_num_bounds, 400, 599
};


static ngx_conf_enum_t  ngx_http_commerce_limit_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_commerce_limit_commands[] = {

    { ngx_string("commerce_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_commerce_limit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_commerce_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_limit_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_limit_loc_conf_t, status),
      &ngx_http_commerce_limit_status_bounds },

    { ngx_string("commerce_limit_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_limit_loc_conf_t, log_level),
      &ngx_http_commerce_limit_log_levels },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_limit_module_ctx = {
    ngx_http_commerce_limit_add_variables,   /* preconfiguration */
    ngx_http_commerce_limit_init,            /* postconfiguration */

    ngx_http_commerce_limit_create_main_conf,  /* create main configuration */
    ngx_http_commerce_limit_init_main_conf,  /* init main configuration */

    NULL,                                    /* create server configuration */
    NULL,                                    /* merge server configuration */

    ngx_http_commerce_limit_create_loc_conf, /* create location configuration */
    ngx_http_commerce_limit_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_commerce_limit_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_limit_module_ctx,   /* module context */
    ngx_http_commerce_limit_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_str_t  ngx_http_commerce_limit_status_name =
    ngx_string("commerce_limit_status");


static ngx_str_t  ngx_http_commerce_limit_statuses[] = {
    ngx_null_string,
    ngx_string("PASSED"),
    ngx_string("FALLBACK"),
    ngx_string("REJECTED_DRY_RUN"),
    ngx_string("REJECTED")
};


static char *ngx_http_commerce_limit_fallbacks[] = {
    "local", "allow", "deny"
};


/*
 * GCRA on Redis's clock: KEYS[1] holds the TAT in microseconds; ARGV are
 * T and tau.  Returns {allowed, ahead}, ahead being how far the TAT is
 * past now after the decision; the key lives until the quota is full.
 */
static ngx_http_commerce_redis_script_t  ngx_http_commerce_limit_script =
    ngx_http_commerce_redis_script(
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval = tonumber(ARGV[1])\n"
    "local tolerance = tonumber(ARGV[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
    "if tat < now then tat = now end\n"
    "local ahead = tat - now\n"
    "if ahead > tolerance then return {0, ahead} end\n"
    "ahead = ahead + interval\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', tat + interval),\n"
    "           'PX', math.ceil(ahead / 1000))\n"
    "return {1, ahead}\n");


/* the metrics' decision of each status (FALLBACK: Redis could not say) */
static ngx_uint_t  ngx_http_commerce_limit_decisions[] = {
    NGX_HTTP_COMMERCE_LIMIT_UNDECIDED,     /* NONE */
    NGX_HTTP_COMMERCE_LIMIT_ALLOWED,       /* PASSED */
    NGX_HTTP_COMMERCE_LIMIT_ERROR,         /* FALLBACK */
    NGX_HTTP_COMMERCE_LIMIT_ALLOWED,       /* DRY_RUN */
    NGX_HTTP_COMMERCE_LIMIT_LIMITED        /* REJECTED */
};


/*
 * The preaccess handler.  It runs again when the phase engine resumes
 * after a Redis reply, and after an internal redirect: the decision is
 * taken once per request.
 */
static ngx_int_t
ngx_http_commerce_limit_handler(ngx_http_request_t *r)
{
    ngx_uint_t                           n;
    ngx_pool_cleanup_t                  *cln;
    ngx_http_commerce_limit_ctx_t       *ctx;
    ngx_http_commerce_limit_loc_conf_t  *llcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_commerce_limit_get_ctx(r);

    if (ctx) {
        if (ctx->waiting) {
            return NGX_AGAIN;
        }

        return ngx_http_commerce_limit_answer(r, ctx);
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_limit_module);

    if (llcf->limits.nelts == 0) {
        return NGX_DECLINED;
    }

    n = llcf->limits.nelts;

    /*
     * the context is the data of a pool cleanup: found again after an
     * internal redirect has cleared r->ctx
     */

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_commerce_limit_ctx_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_commerce_limit_ctx_t));

    ctx->states = ngx_pcalloc(r->pool,
                              n * sizeof(ngx_http_commerce_limit_state_t));
    if (ctx->states == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->limits = &llcf->limits;
    ctx->code = llcf->status;

    cln->handler = ngx_http_commerce_limit_cleanup;

    ngx_http_set_ctx(r, ctx, ngx_http_commerce_limit_module);

    if (ngx_http_commerce_limit_run(r, ctx) == NGX_AGAIN) {

        /* wait for Redis: only a client abort may end the request now */

        if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_request_empty_handler;

        return NGX_AGAIN;
    }

    return ngx_http_commerce_limit_answer(r, ctx);
}


/*
 * Evaluates the limits from ctx->next on: local ones (synchronous) first,
 * then global ones, one Redis command at a time.  NGX_AGAIN while a
 * command is out, NGX_OK once decided.
 */
static ngx_int_t
ngx_http_commerce_limit_run(ngx_http_request_t *r,
    ngx_http_commerce_limit_ctx_t *ctx)
{
    ngx_int_t                         rc;
    ngx_uint_t                        i, n, global;
    ngx_http_commerce_limit_t        *limits, *limit;
    ngx_http_commerce_limit_zone_t   *zone;
    ngx_http_commerce_limit_state_t  *st;

    limits = ctx->limits->elts;
    n = ctx->limits->nelts;

    for ( /* void */ ; ctx->next < 2 * n && !ctx->stop; ctx->next++) {

        global = (ctx->next >= n);
        i = global ? ctx->next - n : ctx->next;

        limit = &limits[i];
        zone = limit->shm_zone->data;
        st = &ctx->states[i];

        if ((zone->scope == NGX_HTTP_COMMERCE_LIMIT_GLOBAL) != global) {
            continue;
        }

        rc = ngx_http_commerce_limit_key(r, zone, st);

        if (rc == NGX_DECLINED) {
            continue;
        }

        if (rc != NGX_OK) {
            /* no memory: refuse nothing, take nothing */
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "commerce_limit: cannot evaluate the key of zone "
                          "\"%V\"", &limit->shm_zone->shm.name);
            continue;
        }

        if (!global) {
            ngx_http_commerce_limit_local(r, zone, st);

        } else {
            rc = ngx_http_commerce_limit_global(r, ctx, limit, st);

            if (rc == NGX_AGAIN) {
                ctx->waiting = 1;
                return NGX_AGAIN;
            }
        }

        if (st->status == NGX_HTTP_COMMERCE_LIMIT_REJECTED) {
            if (limit->dry_run) {
                st->status = NGX_HTTP_COMMERCE_LIMIT_DRY_RUN;

            } else {
                ctx->refused = st;
                ctx->stop = 1;
            }
        }
    }

    ngx_http_commerce_limit_decide(r, ctx);

    return NGX_OK;
}


/*
 * Settles the request once every limit answered: the variable's value,
 * the headers' source, the log line, the local cells given back when the
 * request is refused anyway.
 */
static void
ngx_http_commerce_limit_decide(ngx_http_request_t *r,
    ngx_http_commerce_limit_ctx_t *ctx)
{
    ngx_uint_t                           i, n;
    ngx_http_commerce_limit_t           *limits;
    ngx_http_commerce_limit_zone_t      *zone;
    ngx_http_commerce_limit_state_t     *st, *shown;
    ngx_http_commerce_limit_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_limit_module);

    limits = ctx->limits->elts;
    n = ctx->limits->nelts;
    shown = ctx->refused;

    for (i = 0; i < n; i++) {
        st = &ctx->states[i];
        zone = limits[i].shm_zone->data;

        if (st->status > ctx->status) {
            ctx->status = st->status;
        }

        ngx_http_commerce_metrics_limit(&limits[i].shm_zone->shm.name,
                               ngx_http_commerce_limit_decisions[st->status]);

        if ((ctx->refused || ctx->deny) && st->taken) {
            ngx_http_commerce_limit_refund(zone, st);
        }

        if (st->status == NGX_HTTP_COMMERCE_LIMIT_DRY_RUN) {
            ngx_log_error(llcf->log_level, r->connection->log, 0,
                          "commerce_limit: limiting requests, dry run, "
                          "by zone \"%V\", retry in %uL ms",
                          &limits[i].shm_zone->shm.name,
                          st->gcra.retry / 1000);
        }

        if (!st->known || ctx->refused) {
            continue;
        }

        if (shown == NULL
            || st->gcra.remaining < shown->gcra.remaining
            || (st->gcra.remaining == shown->gcra.remaining
                && st->gcra.reset > shown->gcra.reset))
        {
            shown = st;
        }
    }

    ctx->shown = shown;
    ctx->done = 1;

    if (ctx->refused) {
        st = ctx->refused;
        i = st - ctx->states;

        ngx_log_error(llcf->log_level, r->connection->log, 0,
                      "commerce_limit: limiting requests by zone \"%V\", "
                      "retry in %uL ms",
                      &limits[i].shm_zone->shm.name, st->gcra.retry / 1000);

        ctx->retry_after = (time_t) ngx_http_commerce_gcra_seconds(
                                                             st->gcra.retry);
        if (ctx->retry_after == 0) {
            ctx->retry_after = 1;
        }
    }
}


/* NGX_DECLINED to go on, or the refusal sent and the request finalized. */
static ngx_int_t
ngx_http_commerce_limit_answer(ngx_http_request_t *r,
    ngx_http_commerce_limit_ctx_t *ctx)
{
    ngx_int_t    rc;
    ngx_uint_t   status;
    const char  *code, *msg;

    if (!ctx->refused && !ctx->deny) {
        return NGX_DECLINED;
    }

    if (r->header_sent) {
        /* answered already, then internally redirected */
        return NGX_DECLINED;
    }

    if (ctx->refused) {
        status = ctx->code;
        code = "rate_limited";
        msg = "too many requests, retry after the Retry-After delay";

    } else {
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        code = "rate_limiter_unavailable";
        msg = "the rate limiter is unavailable";
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    rc = ngx_http_commerce_send_error(r, status, code, msg, ctx->retry_after);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * The state's key: NGX_DECLINED when empty (not limited).  Long keys are
 * replaced by their digest so that every node has a small bounded size.
 */
static ngx_int_t
ngx_http_commerce_limit_key(ngx_http_request_t *r,
    ngx_http_commerce_limit_zone_t *zone, ngx_http_commerce_limit_state_t *st)
{
    u_char     *p;
    ngx_md5_t   md5;
    ngx_str_t   value;

    if (ngx_http_complex_value(r, &zone->key, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (value.len == 0) {
        return NGX_DECLINED;
    }

    if (value.len > NGX_HTTP_COMMERCE_LIMIT_KEY_MAX) {
        p = ngx_pnalloc(r->pool, 17);
        if (p == NULL) {
            return NGX_ERROR;
        }

        p[0] = 0xff;

        ngx_md5_init(&md5);
        ngx_md5_update(&md5, value.data, value.len);
        ngx_md5_final(p + 1, &md5);

        value.data = p;
        value.len = 17;
    }

    st->key = value;
    st->hash = ngx_crc32_short(value.data, value.len);
    st->status = NGX_HTTP_COMMERCE_LIMIT_PASSED;

    return NGX_OK;
}


/* GCRA on this node's zone; a key that cannot be stored is not limited. */
static void
ngx_http_commerce_limit_local(ngx_http_request_t *r,
    ngx_http_commerce_limit_zone_t *zone, ngx_http_commerce_limit_state_t *st)
{
    uint64_t                         now;
    ngx_http_commerce_limit_node_t  *node;

    now = (uint64_t) ngx_current_msec * 1000;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_commerce_limit_lookup(zone, st->hash, &st->key);

    if (node == NULL) {
        node = ngx_http_commerce_limit_alloc(zone, st->hash, &st->key, now);
    }

    if (node == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce_limit: no room for a key in zone \"%V\", "
                      "the request is not limited",
                      &zone->name);
        return;
    }

    if (ngx_http_commerce_gcra_update(&zone->gcra, now, &node->tat,
                                      &st->gcra))
    {
        st->taken = 1;

    } else {
        st->status = NGX_HTTP_COMMERCE_LIMIT_REJECTED;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    st->known = 1;
}


static void
ngx_http_commerce_limit_refund(ngx_http_commerce_limit_zone_t *zone,
    ngx_http_commerce_limit_state_t *st)
{
    ngx_http_commerce_limit_node_t  *node;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_commerce_limit_lookup(zone, st->hash, &st->key);

    if (node) {
        ngx_http_commerce_gcra_refund(&zone->gcra, &node->tat);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    st->taken = 0;
}


/* Finds a key (the zone locked) and makes it the most recently used. */
static ngx_http_commerce_limit_node_t *
ngx_http_commerce_limit_lookup(ngx_http_commerce_limit_zone_t *zone,
    uint32_t hash, ngx_str_t *key)
{
    ngx_int_t                        rc;
    ngx_rbtree_node_t               *node, *sentinel;
    ngx_http_commerce_limit_node_t  *ln;

    node = zone->sh->rbtree.root;
    sentinel = zone->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        ln = (ngx_http_commerce_limit_node_t *) &node->color;

        rc = ngx_memn2cmp(key->data, ln->data, key->len, (size_t) ln->len);

        if (rc == 0) {
            ngx_queue_remove(&ln->queue);
            ngx_queue_insert_head(&zone->sh->queue, &ln->queue);
            return ln;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Adds a key (the zone locked).  Memory is bounded: idle keys go first,
 * and when the zone is still full the least recently used keys are
 * evicted, each losing its state (it starts over with a full quota).
 */
static ngx_http_commerce_limit_node_t *
ngx_http_commerce_limit_alloc(ngx_http_commerce_limit_zone_t *zone,
    uint32_t hash, ngx_str_t *key, uint64_t now)
{
    size_t                           size;
    ngx_uint_t                       tries;
    ngx_rbtree_node_t               *node;
    ngx_http_commerce_limit_node_t  *ln;

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_commerce_limit_node_t, data)
           + key->len;

    ngx_http_commerce_limit_expire(zone, now, 0);

    node = ngx_slab_alloc_locked(zone->shpool, size);

    for (tries = 0;
         node == NULL && tries < 16 && !ngx_queue_empty(&zone->sh->queue);
         tries++)
    {
        ngx_http_commerce_limit_expire(zone, now, 1);
        node = ngx_slab_alloc_locked(zone->shpool, size);
    }

    if (node == NULL) {
        return NULL;
    }

    node->key = hash;

    ln = (ngx_http_commerce_limit_node_t *) &node->color;

    ln->len = (u_char) key->len;
    ln->tat = 0;
    ngx_memcpy(ln->data, key->data, key->len);

    /*
     * The tree lives in shared memory but its insert function is code of
     * this process: it is set under the lock before each use.
     */
    zone->sh->rbtree.insert = ngx_http_commerce_limit_rbtree_insert_value;

    ngx_rbtree_insert(&zone->sh->rbtree, node);

    ngx_queue_insert_head(&zone->sh->queue, &ln->queue);

    return ln;
}


/*
 * Deletes up to three least recently used keys whose quota is full again
 * (their state is redundant); with force the first goes even if it is
 * still limited.
 */
static void
ngx_http_commerce_limit_expire(ngx_http_commerce_limit_zone_t *zone,
    uint64_t now, ngx_uint_t force)
{
    ngx_uint_t                       i;
    ngx_queue_t                     *q;
    ngx_rbtree_node_t               *node;
    ngx_http_commerce_limit_node_t  *ln;

    for (i = 0; i < 3; i++) {

        if (ngx_queue_empty(&zone->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&zone->sh->queue);
        ln = ngx_queue_data(q, ngx_http_commerce_limit_node_t, queue);

        if (!ngx_http_commerce_gcra_idle(now, ln->tat)) {

            if (!force || i > 0) {
                return;
            }

            if (!zone->sh->full_logged) {
                zone->sh->full_logged = 1;

                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                              "commerce_limit: zone \"%V\" is full, "
                              "evicting the least recently used keys; "
                              "consider a larger zone", &zone->name);
            }
        }

        ngx_queue_remove(q);

        node = (ngx_rbtree_node_t *)
                   ((u_char *) ln - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&zone->sh->rbtree, node);

        ngx_slab_free_locked(zone->shpool, node);
    }
}


/*
 * Sends the script for a global limit: NGX_AGAIN when the reply will
 * come, NGX_OK when the fallback decided at once.
 */
static ngx_int_t
ngx_http_commerce_limit_global(ngx_http_request_t *r,
    ngx_http_commerce_limit_ctx_t *ctx, ngx_http_commerce_limit_t *limit,
    ngx_http_commerce_limit_state_t *st)
{
    u_char                          *p;
    time_t                           retry_after;
    ngx_int_t                        rc;
    ngx_http_commerce_redis_cmd_t    cmd;
    ngx_http_commerce_limit_zone_t  *zone;

    zone = limit->shm_zone->data;

    if (st->rkey.data == NULL) {
        p = ngx_pnalloc(r->pool, zone->prefix.len + st->key.len);
        if (p == NULL) {
            ngx_http_commerce_limit_fallback(r, ctx, limit, st, 1,
                                             "no memory");
            return NGX_OK;
        }

        st->rkey.data = p;
        st->rkey.len = ngx_cpymem(ngx_cpymem(p, zone->prefix.data,
                                             zone->prefix.len),
                                  st->key.data, st->key.len)
                       - p;
    }

    ngx_http_commerce_redis_cmd_init(&cmd);

    ngx_http_commerce_redis_cmd_arg_script(&cmd,
                                           &ngx_http_commerce_limit_script,
                                           st->eval);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "1");
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &st->rkey);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &zone->interval);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &zone->tolerance);

    retry_after = 1;

    rc = ngx_http_commerce_redis_send(r, zone->timeout,
                                      ngx_http_commerce_limit_reply, ctx,
                                      &cmd, &retry_after);

    if (rc == NGX_OK) {
        return NGX_AGAIN;
    }

    ngx_http_commerce_limit_fallback(r, ctx, limit, st, retry_after,
                                     rc == NGX_DECLINED ? "unavailable"
                                                        : "no memory");
    return NGX_OK;
}


/*
 * The script's reply, with the request alive and waiting.  A NOSCRIPT
 * (Redis restarted or flushed) sends the script itself once.  Then the
 * remaining limits run and the phase engine resumes.
 */
static void
ngx_http_commerce_limit_reply(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_uint_t                        i, n;
    redisReply                       *allowed, *ahead;
    const char                       *why;
    ngx_http_commerce_limit_t        *limit;
    ngx_http_commerce_limit_ctx_t    *ctx = data;
    ngx_http_commerce_limit_zone_t   *zone;
    ngx_http_commerce_limit_state_t  *st;

    n = ctx->limits->nelts;
    i = ctx->next - n;
    limit = (ngx_http_commerce_limit_t *) ctx->limits->elts + i;
    zone = limit->shm_zone->data;
    st = &ctx->states[i];

    ctx->waiting = 0;
    why = NULL;

    if (rc == NGX_HTTP_COMMERCE_REDIS_TIMEOUT) {
        why = "timed out";

    } else if (rc != NGX_HTTP_COMMERCE_REDIS_OK) {
        why = "connection lost";

    } else if (reply->type == REDIS_REPLY_ERROR) {

        if (!st->eval && ngx_http_commerce_redis_noscript(reply)) {
            st->eval = 1;

            if (ngx_http_commerce_limit_global(r, ctx, limit, st)
                == NGX_AGAIN)
            {
                ctx->waiting = 1;
                return;
            }

            goto next;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce_limit: Redis error for zone \"%V\": %*s",
                      &limit->shm_zone->shm.name, (size_t) reply->len,
                      reply->str);
        why = "error reply";

    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
               || reply->element[0]->type != REDIS_REPLY_INTEGER
               || reply->element[1]->type != REDIS_REPLY_INTEGER
               || reply->element[1]->integer < 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce_limit: unexpected Redis reply type %d "
                      "for zone \"%V\"",
                      reply->type, &limit->shm_zone->shm.name);
        why = "unexpected reply";
    }

    if (why) {
        ngx_http_commerce_limit_fallback(r, ctx, limit, st, 1, why);

    } else {
        allowed = reply->element[0];
        ahead = reply->element[1];

        ngx_http_commerce_gcra_outcome(&zone->gcra, allowed->integer == 1,
                                       (uint64_t) ahead->integer, &st->gcra);
        st->known = 1;

        if (!st->gcra.allowed) {
            st->status = NGX_HTTP_COMMERCE_LIMIT_REJECTED;
        }
    }

next:

    if (st->status == NGX_HTTP_COMMERCE_LIMIT_REJECTED) {
        if (limit->dry_run) {
            st->status = NGX_HTTP_COMMERCE_LIMIT_DRY_RUN;

        } else {
            ctx->refused = st;
            ctx->stop = 1;
        }
    }

    ctx->next++;

    if (ngx_http_commerce_limit_run(r, ctx) == NGX_AGAIN) {
        return;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
}


/* Redis cannot decide a global limit: the zone's fallback does. */
static void
ngx_http_commerce_limit_fallback(ngx_http_request_t *r,
    ngx_http_commerce_limit_ctx_t *ctx, ngx_http_commerce_limit_t *limit,
    ngx_http_commerce_limit_state_t *st, time_t retry_after,
    const char *why)
{
    ngx_http_commerce_limit_zone_t  *zone;

    zone = limit->shm_zone->data;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "commerce_limit: Redis %s for zone \"%V\", fallback=%s",
                  why, &limit->shm_zone->shm.name,
                  ngx_http_commerce_limit_fallbacks[zone->fallback]);

    switch (zone->fallback) {

    case NGX_HTTP_COMMERCE_LIMIT_FALLBACK_LOCAL:
        ngx_http_commerce_limit_local(r, zone, st);

        if (st->status == NGX_HTTP_COMMERCE_LIMIT_PASSED) {
            st->status = NGX_HTTP_COMMERCE_LIMIT_FALLBACK;
        }

        break;

    case NGX_HTTP_COMMERCE_LIMIT_FALLBACK_ALLOW:
        st->status = NGX_HTTP_COMMERCE_LIMIT_FALLBACK;
        break;

    default: /* NGX_HTTP_COMMERCE_LIMIT_FALLBACK_DENY */
        st->status = NGX_HTTP_COMMERCE_LIMIT_FALLBACK;

        if (!limit->dry_run) {
            ctx->deny = 1;
            ctx->stop = 1;
            ctx->retry_after = retry_after > 0 ? retry_after : 1;
        }

        break;
    }
}


static ngx_http_commerce_limit_ctx_t *
ngx_http_commerce_limit_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_commerce_limit_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_limit_module);

    if (ctx || !r->internal) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_commerce_limit_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_commerce_limit_module);
            return ctx;
        }
    }

    return NULL;
}


/*
 * Nothing to free: the cleanup only marks the pool memory holding the
 * context (see ngx_http_commerce_limit_get_ctx()).
 */
static void
ngx_http_commerce_limit_cleanup(void *data)
{
}


/* Adds the RateLimit-* headers to whatever response the request gets. */
static ngx_int_t
ngx_http_commerce_limit_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                        i;
    ngx_http_commerce_limit_t        *limits;
    ngx_http_commerce_limit_ctx_t    *ctx;
    ngx_http_commerce_limit_zone_t   *zone;
    ngx_http_commerce_limit_state_t  *st;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_commerce_limit_get_ctx(r);

    if (ctx == NULL || !ctx->done || ctx->headers || ctx->shown == NULL) {
        return ngx_http_next_header_filter(r);
    }

    ctx->headers = 1;

    st = ctx->shown;
    i = st - ctx->states;
    limits = ctx->limits->elts;
    zone = limits[i].shm_zone->data;

    if (ngx_http_commerce_limit_header(r, "RateLimit-Limit", NULL,
                                       zone->gcra.limit)
           != NGX_OK
        || ngx_http_commerce_limit_header(r, "RateLimit-Remaining", NULL,
                                          st->gcra.remaining)
           != NGX_OK
        || ngx_http_commerce_limit_header(r, "RateLimit-Reset", NULL,
                             ngx_http_commerce_gcra_seconds(st->gcra.reset))
           != NGX_OK
        || ngx_http_commerce_limit_header(r, "RateLimit-Policy",
                                          &zone->policy, 0)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_commerce_limit_header(ngx_http_request_t *r, const char *name,
    ngx_str_t *value, uint64_t n)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);

    if (value) {
        h->value = *value;
        return NGX_OK;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "%uL", n) - h->value.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_commerce_limit_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_commerce_limit_ctx_t  *ctx;

    ctx = ngx_http_commerce_limit_get_ctx(r->main);

    if (ctx == NULL || !ctx->done
        || ctx->status == NGX_HTTP_COMMERCE_LIMIT_NONE)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_commerce_limit_statuses[ctx->status].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ngx_http_commerce_limit_statuses[ctx->status].data;

    return NGX_OK;
}


static void
ngx_http_commerce_limit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t               **p;
    ngx_http_commerce_limit_node_t   *ln, *lnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            ln = (ngx_http_commerce_limit_node_t *) &node->color;
            lnt = (ngx_http_commerce_limit_node_t *) &temp->color;

            p = (ngx_memn2cmp(ln->data, lnt->data, ln->len, lnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/*
 * A reload passes the old cycle's zone as data: the tree is kept, so
 * buckets are not reset.  Times are CLOCK_MONOTONIC microseconds, valid in
 * every process of the machine.
 */
static ngx_int_t
ngx_http_commerce_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_commerce_limit_zone_t  *ozone = data;

    size_t                           len;
    ngx_http_commerce_limit_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_alloc(zone->shpool,
                              sizeof(ngx_http_commerce_limit_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_http_commerce_limit_rbtree_insert_value);

    ngx_queue_init(&zone->sh->queue);

    zone->sh->full_logged = 0;

    len = sizeof(" in commerce_limit_zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in commerce_limit_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone evicts: the slab allocator's own message is noise */
    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


/* zone=name:size of commerce_limit_zone */
static char *
ngx_http_commerce_limit_zone_size(ngx_conf_t *cf, ngx_str_t *v,
    ngx_http_commerce_limit_args_t *a)
{
    u_char     *p;
    ngx_str_t   s;

    a->name.data = v->data + 5;

    p = (u_char *) ngx_strchr(a->name.data, ':');

    if (p == NULL || p == a->name.data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\": expected zone=name:size", v);
        return NGX_CONF_ERROR;
    }

    a->name.len = p - a->name.data;

    s.data = p + 1;
    s.len = v->data + v->len - s.data;

    a->size = ngx_parse_size(&s);

    if (a->size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", v);
        return NGX_CONF_ERROR;
    }

    if (a->size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small: the minimum is %uzk",
                           v, 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* fallback= and timeout= of commerce_limit_zone: scope=global only */
static char *
ngx_http_commerce_limit_zone_global(ngx_conf_t *cf, ngx_str_t *v,
    ngx_http_commerce_limit_args_t *a)
{
    ngx_str_t  s;

    if (ngx_strncmp(v->data, "timeout=", 8) == 0) {
        s.data = v->data + 8;
        s.len = v->len - 8;

        a->timeout = ngx_parse_time(&s, 0);

        if (a->timeout == NGX_ERROR || a->timeout == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid timeout \"%V\"", v);
            return NGX_CONF_ERROR;
        }

        a->global_only = "timeout";
        return NGX_CONF_OK;
    }

    for (a->fallback = 0; a->fallback < 3; a->fallback++) {
        if (ngx_strcmp(v->data + 9,
                       ngx_http_commerce_limit_fallbacks[a->fallback])
            == 0)
        {
            a->global_only = "fallback";
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid fallback \"%V\": expected local, allow or "
                       "deny", v);
    return NGX_CONF_ERROR;
}


/* one parameter of commerce_limit_zone */
static char *
ngx_http_commerce_limit_zone_arg(ngx_conf_t *cf, ngx_str_t *v,
    ngx_http_commerce_limit_args_t *a)
{
    if (ngx_strncmp(v->data, "zone=", 5) == 0) {
        return ngx_http_commerce_limit_zone_size(cf, v, a);
    }

    if (ngx_strncmp(v->data, "rate=", 5) == 0) {
        if (ngx_http_commerce_gcra_parse_rate(v->data + 5, v->len - 5,
                                              &a->interval)
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid rate \"%V\": expected Nr/s or Nr/m, "
                               "from 1r/m to 1000000r/s", v);
            return NGX_CONF_ERROR;
        }
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(v->data, "burst=", 6) == 0) {
        a->burst = ngx_atoi(v->data + 6, v->len - 6);

        if (a->burst < 0 || a->burst > NGX_HTTP_COMMERCE_GCRA_MAX_BURST) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid burst \"%V\": expected 0 to %d", v,
                               NGX_HTTP_COMMERCE_GCRA_MAX_BURST);
            return NGX_CONF_ERROR;
        }
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(v->data, "scope=local") == 0) {
        a->scope = NGX_HTTP_COMMERCE_LIMIT_LOCAL;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(v->data, "scope=global") == 0) {
        a->scope = NGX_HTTP_COMMERCE_LIMIT_GLOBAL;
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(v->data, "fallback=", 9) == 0
        || ngx_strncmp(v->data, "timeout=", 8) == 0)
    {
        return ngx_http_commerce_limit_zone_global(cf, v, a);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", v);
    return NGX_CONF_ERROR;
}


/* The zone's texts, made once: RateLimit-Policy (the quota and the time
 * it takes to refill), T and tau for the Redis script, the key prefix. */
static ngx_int_t
ngx_http_commerce_limit_zone_texts(ngx_conf_t *cf,
    ngx_http_commerce_limit_zone_t *zone)
{
    uint64_t  window;

    window = ngx_http_commerce_gcra_seconds(zone->gcra.limit
                                            * zone->gcra.interval);

    zone->policy.data = ngx_pnalloc(cf->pool, 2 * NGX_INT64_LEN + 3);
    zone->interval.data = ngx_pnalloc(cf->pool, NGX_INT64_LEN);
    zone->tolerance.data = ngx_pnalloc(cf->pool, NGX_INT64_LEN);
    zone->prefix.data = ngx_pnalloc(cf->pool,
                                    COMMERCE_LEN(COMMERCE_RK_RATE_LIMIT ":")
                                    + zone->name.len);

    if (zone->policy.data == NULL || zone->interval.data == NULL
        || zone->tolerance.data == NULL || zone->prefix.data == NULL)
    {
        return NGX_ERROR;
    }

    zone->policy.len = ngx_sprintf(zone->policy.data, "%uL;w=%uL",
                                   zone->gcra.limit, window)
                       - zone->policy.data;
    zone->interval.len = ngx_sprintf(zone->interval.data, "%uL",
                                     zone->gcra.interval)
                         - zone->interval.data;
    zone->tolerance.len = ngx_sprintf(zone->tolerance.data, "%uL",
                                      zone->gcra.tolerance)
                          - zone->tolerance.data;
    zone->prefix.len = ngx_sprintf(zone->prefix.data,
                                   COMMERCE_RK_RATE_LIMIT "%V:", &zone->name)
                       - zone->prefix.data;

    return NGX_OK;
}


static char *
ngx_http_commerce_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_commerce_limit_main_conf_t *lmcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_shm_zone_t                    *shm_zone;
    ngx_http_commerce_limit_zone_t    *zone;
    ngx_http_commerce_limit_args_t     a;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_limit_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &zone->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&a, sizeof(ngx_http_commerce_limit_args_t));
    a.timeout = 200;
    a.scope = NGX_HTTP_COMMERCE_LIMIT_LOCAL;
    a.fallback = NGX_HTTP_COMMERCE_LIMIT_FALLBACK_LOCAL;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_http_commerce_limit_zone_arg(cf, &value[i], &a)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (a.name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have the \"zone=name:size\" "
                           "parameter", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (a.interval == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have the \"rate=\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (a.global_only && a.scope != NGX_HTTP_COMMERCE_LIMIT_GLOBAL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s=\" is only valid with \"scope=global\"",
                           a.global_only);
        return NGX_CONF_ERROR;
    }

    (void) ngx_http_commerce_gcra_init(&zone->gcra, a.interval,
                                       (uint64_t) a.burst);

    zone->name = a.name;
    zone->scope = a.scope;
    zone->fallback = a.fallback;
    zone->timeout = (ngx_msec_t) a.timeout;

    if (ngx_http_commerce_limit_zone_texts(cf, zone) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &a.name, a.size,
                                     &ngx_http_commerce_limit_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate commerce_limit_zone \"%V\"", &a.name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_commerce_limit_init_zone;
    shm_zone->data = zone;

    if (a.scope == NGX_HTTP_COMMERCE_LIMIT_GLOBAL) {
        lmcf->global = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_commerce_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_commerce_limit_loc_conf_t *llcf = conf;

    ngx_str_t                            *value, name;
    ngx_uint_t                            i, dry_run;
    ngx_shm_zone_t                       *shm_zone;
    ngx_http_commerce_limit_t            *limit, *limits;
    ngx_http_commerce_limit_ref_t        *ref;
    ngx_http_commerce_limit_main_conf_t  *lmcf;

    value = cf->args->elts;

    shm_zone = NULL;
    dry_run = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0
            && value[i].len > 5)
        {
            name.data = value[i].data + 5;
            name.len = value[i].len - 5;

            shm_zone = ngx_shared_memory_add(cf, &name, 0,
                                             &ngx_http_commerce_limit_module);
            if (shm_zone == NULL) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "dry_run") == 0) {
            dry_run = 1;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have the \"zone=name\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    limits = llcf->limits.elts;

    if (limits == NULL) {
        if (ngx_array_init(&llcf->limits, cf->pool, 1,
                           sizeof(ngx_http_commerce_limit_t))
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    for (i = 0; i < llcf->limits.nelts; i++) {
        if (shm_zone == limits[i].shm_zone) {
            return "is duplicate";
        }
    }

    limit = ngx_array_push(&llcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    limit->shm_zone = shm_zone;
    limit->dry_run = dry_run;

    /* the zone may be declared further down: checked in init_main_conf */

    lmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_commerce_limit_module);

    ref = ngx_array_push(&lmcf->refs);
    if (ref == NULL) {
        return NGX_CONF_ERROR;
    }

    ref->shm_zone = shm_zone;
    ref->file = cf->conf_file->file.name;
    ref->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static void *
ngx_http_commerce_limit_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_limit_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_limit_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&lmcf->refs, cf->pool, 4,
                       sizeof(ngx_http_commerce_limit_ref_t))
        != NGX_OK)
    {
        return NULL;
    }

    return lmcf;
}


/* The whole http block is parsed: every referenced zone must exist. */
static char *
ngx_http_commerce_limit_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_commerce_limit_main_conf_t *lmcf = conf;

    ngx_uint_t                      i;
    ngx_http_commerce_limit_ref_t  *ref;

    ref = lmcf->refs.elts;

    for (i = 0; i < lmcf->refs.nelts; i++) {
        if (ref[i].shm_zone->data == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown commerce_limit_zone \"%V\" in %V:%ui",
                          &ref[i].shm_zone->shm.name, &ref[i].file,
                          ref[i].line);
            return NGX_CONF_ERROR;
        }
    }

    if (lmcf->global) {
        if (!ngx_http_commerce_redis_configured(cf)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "a commerce_limit_zone has scope=global but "
                               "\"commerce_redis_server\" is not set");
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_commerce_limit_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_limit_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_limit_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->limits.elts = NULL;
     */

    conf->status = NGX_CONF_UNSET_UINT;
    conf->log_level = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_commerce_limit_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_commerce_limit_loc_conf_t *prev = parent;
    ngx_http_commerce_limit_loc_conf_t *conf = child;

    if (conf->limits.elts == NULL) {
        conf->limits = prev->limits;
    }

    ngx_conf_merge_uint_value(conf->status, prev->status,
                              NGX_HTTP_TOO_MANY_REQUESTS);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level,
                              NGX_LOG_WARN);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_commerce_limit_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var;

    var = ngx_http_add_variable(cf, &ngx_http_commerce_limit_status_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_commerce_limit_status_variable;

    return NGX_OK;
}


/*
 * Registers the preaccess handler and the header filter, opens Redis in
 * the workers when a global zone exists.
 */
static ngx_int_t
ngx_http_commerce_limit_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt                  *h;
    ngx_http_core_main_conf_t            *cmcf;
    ngx_http_commerce_limit_main_conf_t  *lmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_commerce_limit_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_commerce_limit_header_filter;

    lmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_commerce_limit_module);

    if (lmcf->global) {
        ngx_http_commerce_redis_use(cf);
    }

    return NGX_OK;
}
