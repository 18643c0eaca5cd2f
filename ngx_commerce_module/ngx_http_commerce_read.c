/*
 * ngx_http_commerce_read_module: catalog and inventory reads served straight
 * from the Redis read model, with edge-cache semantics (strong ETag from the
 * bytes, If-None-Match -> 304 through nginx's not_modified filter,
 * configurable Cache-Control).
 *
 * Read model (written by the projector):
 *   cat:item:{itemId}  string, the item JSON document
 *   cat:index          sorted set of item ids, all score 0
 *   inv:{storeId}      hash, sku -> stock JSON
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_contract.h"
#include "commerce_json.h"

#include "ngx_http_commerce_metrics.h"
#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_redis.h"
#include "ngx_http_commerce_redis_cache.h"
#include "ngx_http_commerce_util.h"


typedef enum {
    NGX_HTTP_COMMERCE_READ_NONE = 0,
    NGX_HTTP_COMMERCE_READ_ITEM,
    NGX_HTTP_COMMERCE_READ_LIST,
    NGX_HTTP_COMMERCE_READ_STOCK,
    NGX_HTTP_COMMERCE_READ_STOCK_LIST
} ngx_http_commerce_read_api_e;


typedef struct {
    ngx_uint_t                  api;
    ngx_http_complex_value_t   *arg[2];
    ngx_str_t                   cache_control;
    ngx_uint_t                  default_limit;
    ngx_uint_t                  max_limit;
} ngx_http_commerce_read_loc_conf_t;


typedef struct {
    ngx_str_t                   next;      /* catalog list: last id of page */
    ngx_uint_t                  has_next;
    ngx_uint_t                  limit;
    ngx_str_t                   cursor;    /* inventory list: HSCAN's, and */
    uint64_t                    skip;      /* its items already served */
    ngx_msec_t                  timeout;
} ngx_http_commerce_read_ctx_t;


static ngx_int_t ngx_http_commerce_read_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_commerce_read_item(ngx_http_request_t *r,
    ngx_http_commerce_read_loc_conf_t *rlcf,
    ngx_http_commerce_redis_cmd_t *cmd, const char **msg);
static ngx_int_t ngx_http_commerce_read_list(ngx_http_request_t *r,
    ngx_http_commerce_read_loc_conf_t *rlcf, ngx_http_commerce_read_ctx_t *ctx,
    ngx_http_commerce_redis_cmd_t *cmd, const char **msg);
static ngx_int_t ngx_http_commerce_read_stock(ngx_http_request_t *r,
    ngx_http_commerce_read_loc_conf_t *rlcf,
    ngx_http_commerce_redis_cmd_t *cmd, const char **msg);
static ngx_int_t ngx_http_commerce_read_stock_list(ngx_http_request_t *r,
    ngx_http_commerce_read_loc_conf_t *rlcf, ngx_http_commerce_read_ctx_t *ctx,
    ngx_http_commerce_redis_cmd_t *cmd, const char **msg);
static ngx_int_t ngx_http_commerce_read_cursor(ngx_str_t *arg,
    ngx_http_commerce_read_ctx_t *ctx);
static ngx_int_t ngx_http_commerce_read_id(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *id, const char **msg);
static ngx_int_t ngx_http_commerce_read_id_key(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *prefix, ngx_str_t *key,
    const char **msg);
static ngx_int_t ngx_http_commerce_read_unavailable(ngx_http_request_t *r,
    time_t retry_after);
static ngx_int_t ngx_http_commerce_read_arg(ngx_http_request_t *r,
    char *name, size_t len, ngx_str_t *value);
static ngx_int_t ngx_http_commerce_read_page_size(ngx_http_request_t *r,
    ngx_http_commerce_read_loc_conf_t *rlcf, char *name, size_t len,
    uint64_t *n);
static ngx_int_t ngx_http_commerce_read_key(ngx_http_request_t *r,
    ngx_str_t *prefix, ngx_str_t *id, ngx_str_t *key);
static ngx_int_t ngx_http_commerce_read_failed(ngx_http_request_t *r,
    ngx_int_t rc, redisReply *reply, int type);
static ngx_int_t ngx_http_commerce_read_doc(ngx_http_request_t *r,
    ngx_str_t *doc);
static void ngx_http_commerce_read_item_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static void ngx_http_commerce_read_index_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static void ngx_http_commerce_read_docs_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static void ngx_http_commerce_read_scan_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static ngx_int_t ngx_http_commerce_read_send(ngx_http_request_t *r,
    ngx_buf_t *b);
static ngx_buf_t *ngx_http_commerce_read_page(ngx_http_request_t *r,
    redisReply **items, size_t n, ngx_str_t *next);
static char *ngx_http_commerce_read_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_commerce_read_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_read_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_conf_num_bounds_t  ngx_http_commerce_read_limit_bounds = {
    ngx_http_commerce_conf_bounds, 1, 10000
};


/* the api label of each read API's requests */
static ngx_uint_t  ngx_http_commerce_read_metrics_apis[] = {
    NGX_HTTP_COMMERCE_API_NONE,
    NGX_HTTP_COMMERCE_API_CATALOG,
    NGX_HTTP_COMMERCE_API_CATALOG_INDEX,
    NGX_HTTP_COMMERCE_API_INVENTORY,
    NGX_HTTP_COMMERCE_API_INVENTORY
};


static ngx_command_t  ngx_http_commerce_read_commands[] = {

    { ngx_string("commerce_catalog_item"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_commerce_read_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_COMMERCE_READ_ITEM,
      NULL },

    { ngx_string("commerce_catalog_list"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_commerce_read_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_COMMERCE_READ_LIST,
      NULL },

    { ngx_string("commerce_inventory_item"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_commerce_read_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_COMMERCE_READ_STOCK,
      NULL },

    { ngx_string("commerce_inventory_list"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_commerce_read_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_COMMERCE_READ_STOCK_LIST,
      NULL },

    { ngx_string("commerce_cache_control"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_read_loc_conf_t, cache_control),
      NULL },

    { ngx_string("commerce_list_default_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_read_loc_conf_t, default_limit),
      &ngx_http_commerce_read_limit_bounds },

    { ngx_string("commerce_list_max_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_read_loc_conf_t, max_limit),
      &ngx_http_commerce_read_limit_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_read_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_commerce_read_create_loc_conf,  /* create location configuration */
    ngx_http_commerce_read_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_commerce_read_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_read_module_ctx,    /* module context */
    ngx_http_commerce_read_commands,       /* module directives */
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


static ngx_str_t  ngx_http_commerce_json_type = ngx_string("application/json");

/* key prefixes of the read model (common/commerce_contract.h) */
static ngx_str_t  ngx_http_commerce_read_rk_item =
    ngx_string(COMMERCE_RK_ITEM);
static ngx_str_t  ngx_http_commerce_read_rk_stock =
    ngx_string(COMMERCE_RK_STOCK);


static ngx_int_t
ngx_http_commerce_read_handler(ngx_http_request_t *r)
{
    time_t                              retry_after;
    ngx_int_t                           rc;
    ngx_str_t                           doc;
    const char                         *msg;
    ngx_http_commerce_read_ctx_t       *ctx;
    ngx_http_commerce_redis_cmd_t       cmd;
    ngx_http_commerce_redis_handler_pt  done;
    ngx_http_commerce_read_loc_conf_t  *rlcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_commerce_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                            "method_not_allowed",
                                            "only GET and HEAD are allowed",
                                            0);
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_read_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_commerce_read_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->timeout = ngx_http_commerce_redis_timeout(r);

    ngx_http_commerce_redis_cmd_init(&cmd);
    msg = NULL;

    switch (rlcf->api) {

    case NGX_HTTP_COMMERCE_READ_ITEM:
        rc = ngx_http_commerce_read_item(r, rlcf, &cmd, &msg);
        done = ngx_http_commerce_read_item_done;
        break;

    case NGX_HTTP_COMMERCE_READ_LIST:
        rc = ngx_http_commerce_read_list(r, rlcf, ctx, &cmd, &msg);
        done = ngx_http_commerce_read_index_done;
        break;

    case NGX_HTTP_COMMERCE_READ_STOCK:
        rc = ngx_http_commerce_read_stock(r, rlcf, &cmd, &msg);
        done = ngx_http_commerce_read_item_done;
        break;

    default: /* NGX_HTTP_COMMERCE_READ_STOCK_LIST */
        rc = ngx_http_commerce_read_stock_list(r, rlcf, ctx, &cmd, &msg);
        done = ngx_http_commerce_read_scan_done;
        break;
    }

    if (rc == NGX_HTTP_BAD_REQUEST) {
        return ngx_http_commerce_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid_argument", msg, 0);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (done == ngx_http_commerce_read_item_done
        && ngx_http_commerce_redis_cache_get(&cmd, &doc) == NGX_OK)
    {
        return ngx_http_commerce_read_doc(r, &doc);
    }

    rc = ngx_http_commerce_redis_send(r, ctx->timeout, done, ctx, &cmd,
                                      &retry_after);

    if (rc == NGX_DECLINED) {
        return ngx_http_commerce_read_unavailable(r, retry_after);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * The command of each API is built by one of the four functions below:
 * NGX_OK, NGX_HTTP_BAD_REQUEST with *msg for the client, or NGX_ERROR.
 */

/* GET cat:item:{id} */
static ngx_int_t
ngx_http_commerce_read_item(ngx_http_request_t *r,
    ngx_http_commerce_read_loc_conf_t *rlcf,
    ngx_http_commerce_redis_cmd_t *cmd, const char **msg)
{
    ngx_int_t  rc;
    ngx_str_t  key;

    rc = ngx_http_commerce_read_id_key(r, rlcf->arg[0],
                                       &ngx_http_commerce_read_rk_item, &key,
                                       msg);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_commerce_redis_cmd_arg_literal(cmd, "GET");
    ngx_http_commerce_redis_cmd_arg_str(cmd, &key);

    return NGX_OK;
}


/* ZRANGEBYLEX cat:index (after|- + LIMIT 0 limit+1 */
static ngx_int_t
ngx_http_commerce_read_list(ngx_http_request_t *r,
    ngx_http_commerce_read_loc_conf_t *rlcf, ngx_http_commerce_read_ctx_t *ctx,
    ngx_http_commerce_redis_cmd_t *cmd, const char **msg)
{
    u_char     *p;
    uint64_t    n;
    ngx_int_t   rc;
    ngx_str_t   after;

    if (ngx_http_commerce_read_page_size(r, rlcf, "limit", 5, &n) != NGX_OK) {
        *msg = "limit must be an integer from 1 to the maximum page size";
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx->limit = n;

    rc = ngx_http_commerce_read_arg(r, "after", 5, &after);

    if (rc == NGX_ERROR
        || (rc == NGX_OK && !ngx_http_commerce_valid_id(after.data, after.len)))
    {
        *msg = "after must be an item id";
        return NGX_HTTP_BAD_REQUEST;
    }

    ngx_http_commerce_redis_cmd_arg_literal(cmd, "ZRANGEBYLEX");
    ngx_http_commerce_redis_cmd_arg_literal(cmd, COMMERCE_RK_ITEM_INDEX);

    if (rc == NGX_OK) {
        p = ngx_pnalloc(r->pool, after.len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        *p = '(';
        ngx_memcpy(p + 1, after.data, after.len);
        ngx_http_commerce_redis_cmd_arg(cmd, p, after.len + 1);

    } else {
        ngx_http_commerce_redis_cmd_arg_literal(cmd, "-");
    }

    ngx_http_commerce_redis_cmd_arg_literal(cmd, "+");
    ngx_http_commerce_redis_cmd_arg_literal(cmd, "LIMIT");
    ngx_http_commerce_redis_cmd_arg_literal(cmd, "0");

    /* one more than the page tells whether a next page exists */
    ngx_http_commerce_redis_cmd_arg_uint(cmd, n + 1);

    return NGX_OK;
}


/* HGET inv:{store} {sku} */
static ngx_int_t
ngx_http_commerce_read_stock(ngx_http_request_t *r,
    ngx_http_commerce_read_loc_conf_t *rlcf,
    ngx_http_commerce_redis_cmd_t *cmd, const char **msg)
{
    ngx_int_t  rc;
    ngx_str_t  sku, key;

    rc = ngx_http_commerce_read_id_key(r, rlcf->arg[0],
                                       &ngx_http_commerce_read_rk_stock, &key,
                                       msg);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_commerce_read_id(r, rlcf->arg[1], &sku, msg);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_commerce_redis_cmd_arg_literal(cmd, "HGET");
    ngx_http_commerce_redis_cmd_arg_str(cmd, &key);
    ngx_http_commerce_redis_cmd_arg_str(cmd, &sku);

    return NGX_OK;
}


/*
 * HSCAN inv:{store} cursor COUNT count.  COUNT is only a hint (a small
 * hash comes whole), so a page is capped at count items, and the next one
 * resumes within the same batch: "<cursor>-<items served>".
 */
static ngx_int_t
ngx_http_commerce_read_stock_list(ngx_http_request_t *r,
    ngx_http_commerce_read_loc_conf_t *rlcf, ngx_http_commerce_read_ctx_t *ctx,
    ngx_http_commerce_redis_cmd_t *cmd, const char **msg)
{
    uint64_t   n;
    ngx_int_t  rc;
    ngx_str_t  key, cursor;

    rc = ngx_http_commerce_read_id_key(r, rlcf->arg[0],
                                       &ngx_http_commerce_read_rk_stock, &key,
                                       msg);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_commerce_read_arg(r, "cursor", 6, &cursor);

    if (rc == NGX_ERROR
        || (rc == NGX_OK
            && ngx_http_commerce_read_cursor(&cursor, ctx) != NGX_OK))
    {
        *msg = "cursor must be a cursor returned as next";
        return NGX_HTTP_BAD_REQUEST;
    }

    if (rc == NGX_DECLINED) {
        ngx_str_set(&ctx->cursor, "0");
    }

    if (ngx_http_commerce_read_page_size(r, rlcf, "count", 5, &n) != NGX_OK) {
        *msg = "count must be an integer from 1 to the maximum page size";
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx->limit = n;

    ngx_http_commerce_redis_cmd_arg_literal(cmd, "HSCAN");
    ngx_http_commerce_redis_cmd_arg_str(cmd, &key);
    ngx_http_commerce_redis_cmd_arg_str(cmd, &ctx->cursor);
    ngx_http_commerce_redis_cmd_arg_literal(cmd, "COUNT");
    ngx_http_commerce_redis_cmd_arg_uint(cmd, n);

    return NGX_OK;
}


/* "<HSCAN cursor>" or "<HSCAN cursor>-<items of its batch served>" */
static ngx_int_t
ngx_http_commerce_read_cursor(ngx_str_t *arg,
    ngx_http_commerce_read_ctx_t *ctx)
{
    u_char    *dash, *last;
    uint64_t   n;

    last = arg->data + arg->len;
    dash = ngx_strlchr(arg->data, last, '-');

    ctx->cursor.data = arg->data;
    ctx->cursor.len = (dash ? dash : last) - arg->data;
    ctx->skip = 0;

    if (ngx_http_commerce_parse_uint(ctx->cursor.data, ctx->cursor.len,
                                     UINT64_MAX, &n)
        != 0)
    {
        return NGX_ERROR;
    }

    if (dash == NULL) {
        return NGX_OK;
    }

    if (ngx_http_commerce_parse_uint(dash + 1, last - dash - 1,
                                     NGX_MAX_UINT32_VALUE, &ctx->skip)
        != 0
        || ctx->skip == 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A fast 503 while Redis is unavailable.  Logged at most once a second per
 * worker: an outage under load would otherwise flood the error log.
 */
static ngx_int_t
ngx_http_commerce_read_unavailable(ngx_http_request_t *r, time_t retry_after)
{
    static time_t  logged;

    if (logged != ngx_time()) {
        logged = ngx_time();

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce redis: unavailable, answering 503 "
                      "(logged once a second)");
    }

    return ngx_http_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "redis_unavailable",
                                        "the read model is unavailable",
                                        retry_after);
}


/*
 * Evaluates an id argument: NGX_HTTP_BAD_REQUEST when it cannot be part of
 * a key, NGX_ERROR when the value cannot be evaluated.
 */
static ngx_int_t
ngx_http_commerce_read_id(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *id, const char **msg)
{
    if (ngx_http_complex_value(r, cv, id) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ngx_http_commerce_valid_id(id->data, id->len)) {
        *msg = "ids are 1 to 256 bytes without spaces or control characters";
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


/* The key of an id argument: prefix + id, or read_id()'s failure. */
static ngx_int_t
ngx_http_commerce_read_id_key(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *prefix, ngx_str_t *key,
    const char **msg)
{
    ngx_int_t  rc;
    ngx_str_t  id;

    rc = ngx_http_commerce_read_id(r, cv, &id, msg);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_commerce_read_key(r, prefix, &id, key);
}


/*
 * A query argument, URL-decoded: NGX_OK with the value, NGX_DECLINED when
 * absent, NGX_ERROR when present but empty.
 */
static ngx_int_t
ngx_http_commerce_read_arg(ngx_http_request_t *r, char *name, size_t len,
    ngx_str_t *value)
{
    u_char  *src, *dst;

    if (ngx_http_arg(r, (u_char *) name, len, value) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (value->len == 0) {
        return NGX_ERROR;
    }

    if (ngx_strlchr(value->data, value->data + value->len, '%') == NULL) {
        return NGX_OK;
    }

    dst = ngx_pnalloc(r->pool, value->len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    src = value->data;
    value->data = dst;

    ngx_unescape_uri(&dst, &src, value->len, 0);

    value->len = dst - value->data;

    return value->len ? NGX_OK : NGX_ERROR;
}


/* A page size argument: 1..max, the default when absent. */
static ngx_int_t
ngx_http_commerce_read_page_size(ngx_http_request_t *r,
    ngx_http_commerce_read_loc_conf_t *rlcf, char *name, size_t len,
    uint64_t *n)
{
    ngx_int_t  rc;
    ngx_str_t  value;

    *n = rlcf->default_limit;

    rc = ngx_http_commerce_read_arg(r, name, len, &value);

    if (rc == NGX_DECLINED) {
        return NGX_OK;
    }

    if (rc == NGX_ERROR
        || ngx_http_commerce_parse_uint(value.data, value.len,
                                        rlcf->max_limit, n) != 0
        || *n == 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* prefix + id, in the request's pool */
static ngx_int_t
ngx_http_commerce_read_key(ngx_http_request_t *r, ngx_str_t *prefix,
    ngx_str_t *id, ngx_str_t *key)
{
    key->data = ngx_pnalloc(r->pool, prefix->len + id->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(key->data, prefix->data, prefix->len);
    ngx_memcpy(key->data + prefix->len, id->data, id->len);
    key->len = prefix->len + id->len;

    return NGX_OK;
}


/*
 * Maps a failed command to its status: 503 when Redis went away, 504 on a
 * timeout, 502 for an error or unexpected reply.  Returns NGX_DECLINED when
 * the reply is of the expected type, the finalize code otherwise.
 */
static ngx_int_t
ngx_http_commerce_read_failed(ngx_http_request_t *r, ngx_int_t rc,
    redisReply *reply, int type)
{
    if (rc == NGX_HTTP_COMMERCE_REDIS_DOWN) {
        return ngx_http_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "redis_unavailable",
                                            "the read model is unavailable",
                                            1);
    }

    if (rc == NGX_HTTP_COMMERCE_REDIS_TIMEOUT) {
        return ngx_http_commerce_send_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                            "redis_timeout",
                                            "the read model did not answer "
                                            "in time", 0);
    }

    if (reply->type == type
        || (type == REDIS_REPLY_STRING && reply->type == REDIS_REPLY_NIL))
    {
        return NGX_DECLINED;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce redis: error reply: \"%*s\"",
                      reply->len, reply->str);

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce redis: unexpected reply type %d",
                      reply->type);
    }

    return ngx_http_commerce_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                        "redis_error",
                                        "the read model answered with an "
                                        "error", 0);
}


/* GET cat:item:{id} or HGET inv:{store} {sku}: the document as stored. */
static void
ngx_http_commerce_read_item_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_str_t  doc;

    rc = ngx_http_commerce_read_failed(r, rc, reply, REDIS_REPLY_STRING);

    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    doc.data = (reply->type == REDIS_REPLY_NIL) ? NULL : (u_char *) reply->str;
    doc.len = reply->len;

    ngx_http_finalize_request(r, ngx_http_commerce_read_doc(r, &doc));
}


/* A document from Redis or the read cache; no data: there is none, 404. */
static ngx_int_t
ngx_http_commerce_read_doc(ngx_http_request_t *r, ngx_str_t *doc)
{
    ngx_buf_t  *b;

    if (doc->data == NULL) {
        return ngx_http_commerce_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "not_found", "no such item", 0);
    }

    b = ngx_create_temp_buf(r->pool, doc->len ? doc->len : 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->pos, doc->data, doc->len);

    return ngx_http_commerce_read_send(r, b);
}


/*
 * ZRANGEBYLEX returned up to limit + 1 ids: the page, and whether another
 * page follows.  The documents come with one MGET.
 */
static void
ngx_http_commerce_read_index_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    size_t                          i, n, limit;
    time_t                          retry_after;
    ngx_str_t                       id, key;
    ngx_buf_t                      *b;
    redisReply                     *item;
    ngx_http_commerce_read_ctx_t   *ctx = data;
    ngx_http_commerce_redis_cmd_t   cmd;

    rc = ngx_http_commerce_read_failed(r, rc, reply, REDIS_REPLY_ARRAY);

    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    limit = ctx->limit;
    n = ngx_min(reply->elements, limit);

    if (n == 0) {
        b = ngx_http_commerce_read_page(r, NULL, 0, NULL);
        ngx_http_finalize_request(r, b ? ngx_http_commerce_read_send(r, b)
                                       : NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_commerce_redis_cmd_init(&cmd);

    if (ngx_http_commerce_redis_cmd_reserve(&cmd, r->pool, n + 1) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "MGET");

    for (i = 0; i < n; i++) {
        item = reply->element[i];

        if (item->type != REDIS_REPLY_STRING) {
            ngx_http_finalize_request(r, ngx_http_commerce_read_failed(r,
                                          NGX_HTTP_COMMERCE_REDIS_OK, item,
                                          REDIS_REPLY_ARRAY));
            return;
        }

        id.data = (u_char *) item->str;
        id.len = item->len;

        if (ngx_http_commerce_read_key(r, &ngx_http_commerce_read_rk_item,
                                       &id, &key)
            != NGX_OK)
        {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_commerce_redis_cmd_arg_str(&cmd, &key);
    }

    if (reply->elements > limit) {

        /* the last id of the page, in the copy that outlives the reply */

        ctx->has_next = 1;
        ctx->next.data = key.data + ngx_http_commerce_read_rk_item.len;
        ctx->next.len = key.len - ngx_http_commerce_read_rk_item.len;
    }

    rc = ngx_http_commerce_redis_send(r, ctx->timeout,
                                      ngx_http_commerce_read_docs_done, ctx,
                                      &cmd, &retry_after);

    if (rc == NGX_DECLINED) {
        ngx_http_finalize_request(r,
                         ngx_http_commerce_read_unavailable(r, retry_after));
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    /* the request stays alive for the MGET reply */
}


static void
ngx_http_commerce_read_docs_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_buf_t                     *b;
    ngx_http_commerce_read_ctx_t  *ctx = data;

    rc = ngx_http_commerce_read_failed(r, rc, reply, REDIS_REPLY_ARRAY);

    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    b = ngx_http_commerce_read_page(r, reply->element, reply->elements,
                                    ctx->has_next ? &ctx->next : NULL);

    ngx_http_finalize_request(r, b ? ngx_http_commerce_read_send(r, b)
                                   : NGX_HTTP_INTERNAL_SERVER_ERROR);
}


/*
 * HSCAN inv:{store} cursor COUNT n: [next cursor, [sku, json, ...]].  The
 * page is the batch from the items already served, at most ctx->limit.
 */
static void
ngx_http_commerce_read_scan_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_http_commerce_read_ctx_t *ctx = data;

    size_t       i, n, skip;
    ngx_buf_t   *b;
    ngx_str_t    next;
    redisReply  *cursor, *pairs, **values;

    rc = ngx_http_commerce_read_failed(r, rc, reply, REDIS_REPLY_ARRAY);

    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_ARRAY)
    {
        ngx_http_finalize_request(r, ngx_http_commerce_read_failed(r,
                                      NGX_HTTP_COMMERCE_REDIS_OK, reply,
                                      REDIS_REPLY_STRING));
        return;
    }

    cursor = reply->element[0];
    pairs = reply->element[1];

    n = pairs->elements / 2;
    skip = ngx_min(ctx->skip, n);
    n = ngx_min(n - skip, ctx->limit);

    values = ngx_palloc(r->pool, (n + 1) * sizeof(redisReply *));
    next.data = ngx_pnalloc(r->pool, ctx->cursor.len + 1 + NGX_INT64_LEN);

    if (values == NULL || next.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    for (i = 0; i < n; i++) {
        values[i] = pairs->element[2 * (skip + i) + 1];
    }

    if (skip + n < pairs->elements / 2) {
        next.len = ngx_sprintf(next.data, "%V-%uz", &ctx->cursor, skip + n)
                   - next.data;

    } else {
        next.data = (u_char *) cursor->str;
        next.len = cursor->len;
    }

    b = ngx_http_commerce_read_page(r, values, n,
                                    (next.len == 1 && next.data[0] == '0')
                                    ? NULL : &next);

    ngx_http_finalize_request(r, b ? ngx_http_commerce_read_send(r, b)
                                   : NGX_HTTP_INTERNAL_SERVER_ERROR);
}


/* {"items":[doc,...],"next":"..."|null}; nil documents are skipped. */
static ngx_buf_t *
ngx_http_commerce_read_page(ngx_http_request_t *r, redisReply **items,
    size_t n, ngx_str_t *next)
{
    size_t      i, len;
    ngx_buf_t  *b;
    ngx_uint_t  first;

    len = sizeof("{\"items\":[],\"next\":null}") - 1 + n;

    for (i = 0; i < n; i++) {
        if (items[i]->type == REDIS_REPLY_STRING) {
            len += items[i]->len;
        }
    }

    if (next) {
        len += 2 + commerce_json_escape_len(next->data, next->len,
                                            COMMERCE_JSON_BYTES);
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    b->last = ngx_cpymem(b->last, "{\"items\":[", 10);
    first = 1;

    for (i = 0; i < n; i++) {
        if (items[i]->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (!first) {
            *b->last++ = ',';
        }

        first = 0;
        b->last = ngx_cpymem(b->last, items[i]->str, items[i]->len);
    }

    b->last = ngx_cpymem(b->last, "],\"next\":", 9);

    if (next) {
        *b->last++ = '"';
        b->last = commerce_json_escape(b->last, next->data, next->len,
                                       COMMERCE_JSON_BYTES);
        *b->last++ = '"';

    } else {
        b->last = ngx_cpymem(b->last, "null", 4);
    }

    *b->last++ = '}';

    return b;
}


/*
 * 200 with a strong ETag of the bytes; nginx's not_modified filter turns it
 * into a 304 on a matching If-None-Match, and HEAD drops the body.
 */
static ngx_int_t
ngx_http_commerce_read_send(ngx_http_request_t *r, ngx_buf_t *b)
{
    ngx_int_t                           rc;
    ngx_chain_t                         out;
    ngx_table_elt_t                    *h;
    ngx_http_commerce_read_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_read_module);

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type = ngx_http_commerce_json_type;
    r->headers_out.content_type_len = ngx_http_commerce_json_type.len;
    r->headers_out.content_type_lowcase = NULL;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_HTTP_COMMERCE_ETAG_LEN);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "ETag");
    h->value.len = ngx_http_commerce_etag(h->value.data, b->pos,
                                          b->last - b->pos)
                   - h->value.data;
    r->headers_out.etag = h;

    if (rlcf->cache_control.len) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Cache-Control");
        h->value = rlcf->cache_control;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Vary");
    ngx_str_set(&h->value, "Accept-Encoding");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static char *
ngx_http_commerce_read_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_commerce_read_loc_conf_t *rlcf = conf;

    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_compile_complex_value_t    ccv;

    if (rlcf->api != NGX_HTTP_COMMERCE_READ_NONE) {
        return "is duplicate: a location serves one commerce read API";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        rlcf->arg[i - 1] = ngx_palloc(cf->pool,
                                      sizeof(ngx_http_complex_value_t));
        if (rlcf->arg[i - 1] == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[i];
        ccv.complex_value = rlcf->arg[i - 1];

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    rlcf->api = cmd->offset;
    ngx_http_commerce_metrics_api(cf, ngx_http_commerce_read_metrics_apis
                                          [rlcf->api]);

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_commerce_read_handler;

    ngx_http_commerce_redis_use(cf);

    return NGX_CONF_OK;
}


static void *
ngx_http_commerce_read_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_read_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_read_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->api = NGX_HTTP_COMMERCE_READ_NONE;
     *     conf->arg = { NULL, NULL };
     *     conf->cache_control = { 0, NULL };
     */

    conf->default_limit = NGX_CONF_UNSET_UINT;
    conf->max_limit = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_commerce_read_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_commerce_read_loc_conf_t *prev = parent;
    ngx_http_commerce_read_loc_conf_t *conf = child;

    ngx_conf_merge_str_value(conf->cache_control, prev->cache_control, "");
    ngx_conf_merge_uint_value(conf->default_limit, prev->default_limit, 50);
    ngx_conf_merge_uint_value(conf->max_limit, prev->max_limit, 200);

    if (conf->default_limit > conf->max_limit) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_list_default_limit\" %ui is greater "
                           "than \"commerce_list_max_limit\" %ui",
                           conf->default_limit, conf->max_limit);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
