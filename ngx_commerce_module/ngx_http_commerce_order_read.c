/*
 * The reads of the orders read model (docs/contract.md, the orders read
 * model), and the commands that need a document first: order.cancel
 * (the order's owner or an admin, an order still open), saga.retry and
 * saga.compensate (a saga that exists).
 *
 *   GET /v1/orders              ZREVRANGEBYLEX ord:user:{sub} (or
 *                               ord:ustatus:{status}:{sub}), MGET the docs
 *   GET /v1/orders/{id}         GET ord:order:{id}, the owner's or admin's
 *   GET /v1/orders/{id}/events  the same, then LRANGE ord:events:{id}
 *   GET /v1/admin/sagas         ZREVRANGEBYLEX ord:sagas:{status}, MGET
 *   GET /v1/admin/sagas/{id}    GET ord:saga:{id}
 *
 * Someone else's order is a 404, as one that does not exist.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_contract.h"

#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_order.h"
#include "ngx_http_commerce_redis.h"


#define NGX_HTTP_COMMERCE_ORDER_LIMIT_DEFAULT  20
#define NGX_HTTP_COMMERCE_ORDER_LIMIT_MAX      100
/* the most events of one order served */
#define NGX_HTTP_COMMERCE_ORDER_EVENTS_MAX     1000


static ngx_int_t ngx_http_commerce_order_list(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_uint_t api);
static ngx_int_t ngx_http_commerce_order_status(ngx_str_t *s,
    ngx_uint_t saga);
static void ngx_http_commerce_order_index_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static void ngx_http_commerce_order_page_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static void ngx_http_commerce_order_doc_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static ngx_int_t ngx_http_commerce_order_mine(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, redisReply *doc,
    ngx_str_t *status);
static void ngx_http_commerce_order_events_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static void ngx_http_commerce_order_action(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_uint_t api);
static ngx_int_t ngx_http_commerce_order_cancel_body(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, json_t *cmd);
static ngx_int_t ngx_http_commerce_order_send(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx,
    ngx_http_commerce_redis_handler_pt done, ngx_str_t *prefix,
    ngx_str_t *id, ngx_str_t *cmdname);
static ngx_int_t ngx_http_commerce_order_key(ngx_http_request_t *r,
    ngx_str_t *prefix, ngx_str_t *a, ngx_str_t *b, ngx_str_t *key);
static void ngx_http_commerce_order_unavailable(ngx_http_request_t *r,
    time_t retry_after);


static ngx_str_t  ngx_http_commerce_order_rk_order =
    ngx_string(COMMERCE_RK_ORDER);
static ngx_str_t  ngx_http_commerce_order_rk_user =
    ngx_string(COMMERCE_RK_ORDER_USER);
static ngx_str_t  ngx_http_commerce_order_rk_ustatus =
    ngx_string(COMMERCE_RK_ORDER_USER_STATUS);
static ngx_str_t  ngx_http_commerce_order_rk_events =
    ngx_string(COMMERCE_RK_ORDER_EVENTS);
static ngx_str_t  ngx_http_commerce_order_rk_saga =
    ngx_string(COMMERCE_RK_SAGA);
static ngx_str_t  ngx_http_commerce_order_rk_sagas =
    ngx_string(COMMERCE_RK_SAGA_INDEX);

static ngx_str_t  ngx_http_commerce_order_get = ngx_string("GET");


static const char  *ngx_http_commerce_order_statuses[] = {
    COMMERCE_ORDER_PENDING, COMMERCE_ORDER_CONFIRMED,
    COMMERCE_ORDER_CANCELLED, COMMERCE_ORDER_FAILED, NULL
};

static const char  *ngx_http_commerce_saga_statuses[] = {
    COMMERCE_SAGA_RUNNING, COMMERCE_SAGA_COMPENSATING,
    COMMERCE_SAGA_COMPLETED, COMMERCE_SAGA_COMPENSATED,
    COMMERCE_SAGA_FAILED, NULL
};


void
ngx_http_commerce_order_read(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_uint_t api)
{
    ngx_int_t                           rc;
    ngx_str_t                          *prefix;
    ngx_http_commerce_redis_handler_pt  done;

    switch (api) {

    case NGX_HTTP_COMMERCE_ORDER_ORDERS:
    case NGX_HTTP_COMMERCE_ORDER_SAGAS:
        rc = ngx_http_commerce_order_list(r, ctx, api);

        if (rc == NGX_HTTP_BAD_REQUEST) {
            return;
        }

        break;

    default:
        prefix = (api == NGX_HTTP_COMMERCE_ORDER_SAGA
                  || api == NGX_HTTP_COMMERCE_ORDER_RETRY
                  || api == NGX_HTTP_COMMERCE_ORDER_COMPENSATE)
                 ? &ngx_http_commerce_order_rk_saga
                 : &ngx_http_commerce_order_rk_order;
        done = ngx_http_commerce_order_doc_done;

        rc = ngx_http_commerce_order_send(r, ctx, done, prefix, &ctx->id,
                                          &ngx_http_commerce_order_get);
    }

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


/*
 * ?status=&limit=&cursor=: NGX_OK with the index's ZREVRANGEBYLEX sent,
 * NGX_HTTP_BAD_REQUEST answered, NGX_DECLINED answered (503), NGX_ERROR.
 */
static ngx_int_t
ngx_http_commerce_order_list(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_uint_t api)
{
    u_char                         *p;
    time_t                          retry_after;
    uint64_t                        n;
    ngx_int_t                       rc;
    ngx_str_t                       limit, key, max;
    ngx_uint_t                      saga;
    ngx_http_commerce_redis_cmd_t   cmd;

    saga = (api == NGX_HTTP_COMMERCE_ORDER_SAGAS);

    (void) ngx_http_commerce_order_arg(r, "status", 6, &ctx->status);
    (void) ngx_http_commerce_order_arg(r, "limit", 5, &limit);
    (void) ngx_http_commerce_order_arg(r, "cursor", 6, &ctx->cursor);

    ctx->limit = NGX_HTTP_COMMERCE_ORDER_LIMIT_DEFAULT;

    if (limit.len) {
        if (ngx_http_commerce_parse_uint(limit.data, limit.len,
                                         NGX_HTTP_COMMERCE_ORDER_LIMIT_MAX,
                                         &n)
            != 0 || n == 0)
        {
            ngx_http_commerce_order_fail(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_argument",
                                         "limit must be 1 to 100", "limit",
                                         0);
            return NGX_HTTP_BAD_REQUEST;
        }

        ctx->limit = (ngx_uint_t) n;
    }

    if (ctx->cursor.len
        && !ngx_http_commerce_valid_uuid(ctx->cursor.data, ctx->cursor.len))
    {
        ngx_http_commerce_order_fail(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_argument", "cursor must be the "
                                     "next_cursor of a page", "cursor", 0);
        return NGX_HTTP_BAD_REQUEST;
    }

    if ((ctx->status.len || saga)
        && ngx_http_commerce_order_status(&ctx->status, saga) != NGX_OK)
    {
        ngx_http_commerce_order_fail(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_argument",
                                     saga ? "status must be running, "
                                            "compensating, completed, "
                                            "compensated or failed"
                                          : "status must be pending, "
                                            "confirmed, cancelled or failed",
                                     "status", 0);
        return NGX_HTTP_BAD_REQUEST;
    }

    if (saga) {
        rc = ngx_http_commerce_order_key(r, &ngx_http_commerce_order_rk_sagas,
                                         &ctx->status, NULL, &key);

    } else if (ctx->status.len) {
        rc = ngx_http_commerce_order_key(r,
                                         &ngx_http_commerce_order_rk_ustatus,
                                         &ctx->status, &ctx->owner, &key);

    } else {
        rc = ngx_http_commerce_order_key(r, &ngx_http_commerce_order_rk_user,
                                         &ctx->owner, NULL, &key);
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    /* "(" cursor: strictly older; "+" the newest */
    if (ctx->cursor.len) {
        p = ngx_pnalloc(r->pool, ctx->cursor.len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        *p = '(';
        ngx_memcpy(p + 1, ctx->cursor.data, ctx->cursor.len);
        max.data = p;
        max.len = ctx->cursor.len + 1;

    } else {
        ngx_str_set(&max, "+");
    }

    ngx_http_commerce_redis_cmd_init(&cmd);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "ZREVRANGEBYLEX");
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &key);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &max);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "-");
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "LIMIT");
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "0");
    ngx_http_commerce_redis_cmd_arg_uint(&cmd, ctx->limit + 1);

    rc = ngx_http_commerce_redis_send(r, ngx_http_commerce_redis_timeout(r),
                                      ngx_http_commerce_order_index_done,
                                      ctx, &cmd, &retry_after);

    if (rc == NGX_DECLINED) {
        ngx_http_commerce_order_unavailable(r, retry_after);
        return NGX_DECLINED;
    }

    return rc;
}


static ngx_int_t
ngx_http_commerce_order_status(ngx_str_t *s, ngx_uint_t saga)
{
    const char  **st;

    for (st = saga ? ngx_http_commerce_saga_statuses
                   : ngx_http_commerce_order_statuses;
         *st;
         st++)
    {
        if (ngx_strlen(*st) == s->len
            && ngx_strncmp(*st, s->data, s->len) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* the ids of the page: their documents in one MGET */
static void
ngx_http_commerce_order_index_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_http_commerce_order_ctx_t *ctx = data;

    size_t                               i, n;
    time_t                               retry_after;
    ngx_str_t                            id, key, *prefix;
    ngx_buf_t                           *b;
    ngx_http_commerce_redis_cmd_t        cmd;
    ngx_http_commerce_order_loc_conf_t  *olcf;

    if (rc != NGX_HTTP_COMMERCE_REDIS_OK || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_commerce_order_unavailable(r, 1);
        return;
    }

    n = ngx_min(reply->elements, ctx->limit);

    if (n == 0) {
        b = ngx_create_temp_buf(r->pool, sizeof("{\"items\":[],"
                                                "\"next_cursor\":null}"));
        if (b == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        b->last = ngx_cpymem(b->last, "{\"items\":[],\"next_cursor\":null}",
                             sizeof("{\"items\":[],\"next_cursor\":null}")
                             - 1);
        ngx_http_finalize_request(r, ngx_http_commerce_send_json(r,
                                                           NGX_HTTP_OK, b));
        return;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_order_module);

    prefix = olcf->api == NGX_HTTP_COMMERCE_ORDER_SAGAS
             ? &ngx_http_commerce_order_rk_saga
             : &ngx_http_commerce_order_rk_order;

    ngx_http_commerce_redis_cmd_init(&cmd);

    if (ngx_http_commerce_redis_cmd_reserve(&cmd, r->pool, n + 1) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "MGET");

    for (i = 0; i < n; i++) {
        if (reply->element[i]->type != REDIS_REPLY_STRING) {
            ngx_http_commerce_order_unavailable(r, 1);
            return;
        }

        id.data = (u_char *) reply->element[i]->str;
        id.len = reply->element[i]->len;

        if (ngx_http_commerce_order_key(r, prefix, &id, NULL, &key)
            != NGX_OK)
        {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_commerce_redis_cmd_arg_str(&cmd, &key);
    }

    ngx_str_null(&ctx->next);

    if (reply->elements > ctx->limit) {
        /* the page's last id, in the key that outlives the reply */
        ctx->next.data = key.data + prefix->len;
        ctx->next.len = key.len - prefix->len;
    }

    rc = ngx_http_commerce_redis_send(r, ngx_http_commerce_redis_timeout(r),
                                      ngx_http_commerce_order_page_done, ctx,
                                      &cmd, &retry_after);

    if (rc == NGX_DECLINED) {
        ngx_http_commerce_order_unavailable(r, retry_after);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


/*
 * {"items":[docs],"next_cursor":id|null}; an id whose document is not
 * written yet (the index ahead of it) is left out.
 */
static void
ngx_http_commerce_order_page_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_http_commerce_order_ctx_t *ctx = data;

    size_t       i, len;
    ngx_buf_t   *b;
    ngx_uint_t   first;
    redisReply  *e;

    if (rc != NGX_HTTP_COMMERCE_REDIS_OK || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_commerce_order_unavailable(r, 1);
        return;
    }

    len = sizeof("{\"items\":[],\"next_cursor\":\"\"}") + ctx->next.len
          + 4;

    for (i = 0; i < reply->elements; i++) {
        len += reply->element[i]->len + 1;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    b->last = ngx_cpymem(b->last, "{\"items\":[", sizeof("{\"items\":[") - 1);
    first = 1;

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (!first) {
            *b->last++ = ',';
        }

        first = 0;
        b->last = ngx_cpymem(b->last, e->str, e->len);
    }

    if (ctx->next.len) {
        b->last = ngx_sprintf(b->last, "],\"next_cursor\":\"%V\"}",
                              &ctx->next);

    } else {
        b->last = ngx_cpymem(b->last, "],\"next_cursor\":null}",
                             sizeof("],\"next_cursor\":null}") - 1);
    }

    ngx_http_finalize_request(r, ngx_http_commerce_send_json(r, NGX_HTTP_OK,
                                                             b));
}


/* The order's or saga's document: served, or the action's turn. */
static void
ngx_http_commerce_order_doc_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_http_commerce_order_ctx_t *ctx = data;

    ngx_str_t                            status, cmd;
    ngx_http_commerce_order_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_order_module);

    if (rc != NGX_HTTP_COMMERCE_REDIS_OK
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_NIL))
    {
        ngx_http_commerce_order_unavailable(r, 1);
        return;
    }

    ngx_str_null(&status);

    if (reply->type == REDIS_REPLY_NIL
        || ngx_http_commerce_order_mine(r, ctx, reply, &status) != NGX_OK)
    {
        ngx_http_commerce_order_fail(r, NGX_HTTP_NOT_FOUND, "not_found",
                                     olcf->api == NGX_HTTP_COMMERCE_ORDER_SAGA
                                     || olcf->api
                                        == NGX_HTTP_COMMERCE_ORDER_RETRY
                                     || olcf->api
                                        == NGX_HTTP_COMMERCE_ORDER_COMPENSATE
                                     ? "no such saga" : "no such order",
                                     NULL, 0);
        return;
    }

    switch (olcf->api) {

    case NGX_HTTP_COMMERCE_ORDER_ORDER:
    case NGX_HTTP_COMMERCE_ORDER_SAGA:
        ngx_http_finalize_request(r,
            ngx_http_commerce_order_send_doc(r, (u_char *) reply->str,
                                             reply->len));
        return;

    case NGX_HTTP_COMMERCE_ORDER_EVENTS:
        ngx_str_set(&cmd, "LRANGE");

        rc = ngx_http_commerce_order_send(r, ctx,
                                          ngx_http_commerce_order_events_done,
                                          &ngx_http_commerce_order_rk_events,
                                          &ctx->id, &cmd);
        if (rc == NGX_ERROR) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        return;

    case NGX_HTTP_COMMERCE_ORDER_CANCEL:
        if ((status.len == COMMERCE_LEN(COMMERCE_ORDER_CANCELLED)
             && ngx_strncmp(status.data, COMMERCE_ORDER_CANCELLED,
                            status.len) == 0)
            || (status.len == COMMERCE_LEN(COMMERCE_ORDER_FAILED)
                && ngx_strncmp(status.data, COMMERCE_ORDER_FAILED,
                               status.len) == 0))
        {
            ngx_http_commerce_order_fail(r, NGX_HTTP_CONFLICT,
                                         "order_not_cancellable",
                                         "the order is cancelled or failed "
                                         "already", NULL, 0);
            return;
        }

        /* fall through */

    default:
        ngx_http_commerce_order_action(r, ctx, olcf->api);
    }
}


/*
 * An admin reads every document; a user only his orders ("sub").  The
 * document's "status" is copied for cancel.  NGX_OK, or NGX_DECLINED: not
 * the caller's (or not a document).
 */
static ngx_int_t
ngx_http_commerce_order_mine(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, redisReply *doc, ngx_str_t *status)
{
    json_t        *root, *sub, *st;
    ngx_int_t      rc;
    json_error_t   err;

    root = json_loadb(doc->str, doc->len, 0, &err);

    if (!json_is_object(root)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce order: the document of %V is not a JSON "
                      "object", &ctx->id);
        json_decref(root);
        return NGX_DECLINED;
    }

    sub = json_object_get(root, "sub");
    st = json_object_get(root, "status");

    rc = ctx->admin
         || (json_is_string(sub) && json_string_length(sub) == ctx->owner.len
             && ngx_strncmp(json_string_value(sub), ctx->owner.data,
                            ctx->owner.len) == 0)
         ? NGX_OK : NGX_DECLINED;

    if (rc == NGX_OK && json_is_string(st)) {
        status->len = json_string_length(st);
        status->data = ngx_pnalloc(r->pool, status->len + 1);

        if (status->data == NULL) {
            json_decref(root);
            return NGX_DECLINED;
        }

        ngx_memcpy(status->data, json_string_value(st), status->len);
    }

    json_decref(root);

    return rc;
}


/* {"order_id":id,"events":[each as stored]} */
static void
ngx_http_commerce_order_events_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_http_commerce_order_ctx_t *ctx = data;

    size_t       i, len;
    ngx_buf_t   *b;
    redisReply  *e;

    if (rc != NGX_HTTP_COMMERCE_REDIS_OK || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_commerce_order_unavailable(r, 1);
        return;
    }

    len = sizeof("{\"order_id\":\"\",\"events\":[]}") + ctx->id.len;

    for (i = 0; i < reply->elements; i++) {
        len += reply->element[i]->len + 1;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    b->last = ngx_sprintf(b->last, "{\"order_id\":\"%V\",\"events\":[",
                          &ctx->id);

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (i) {
            *b->last++ = ',';
        }

        b->last = ngx_cpymem(b->last, e->str, e->len);
    }

    b->last = ngx_cpymem(b->last, "]}", 2);

    ngx_http_finalize_request(r,
        ngx_http_commerce_order_send_doc(r, b->pos, b->last - b->pos));
}


/* order.cancel, saga.retry, saga.compensate: 202 after the ack */
static void
ngx_http_commerce_order_action(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_uint_t api)
{
    json_t      *cmd;
    ngx_int_t    rc;
    const char  *type;

    type = api == NGX_HTTP_COMMERCE_ORDER_CANCEL ? COMMERCE_CMD_ORDER_CANCEL
           : api == NGX_HTTP_COMMERCE_ORDER_RETRY ? COMMERCE_CMD_SAGA_RETRY
           : COMMERCE_CMD_SAGA_COMPENSATE;

    if (ngx_http_commerce_order_new_command(r, ctx, type, &cmd) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (api == NGX_HTTP_COMMERCE_ORDER_CANCEL) {
        rc = ngx_http_commerce_order_cancel_body(r, ctx, cmd);

        if (rc != NGX_OK) {
            json_decref(cmd);

            if (rc == NGX_DECLINED) {
                ngx_http_commerce_order_fail(r, NGX_HTTP_BAD_REQUEST,
                                             "invalid_body", "the body is "
                                             "{\"reason\": string} or "
                                             "empty", "reason", 0);
            } else {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            }

            return;
        }
    }

    ctx->key = ctx->id;
    ctx->acked = ngx_http_commerce_order_command_acked;

    if (ngx_http_commerce_order_dump(r, ctx, cmd) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_commerce_order_send_command(r, ctx);
}


/* "reason" from the optional body, and who cancels ("by") */
static ngx_int_t
ngx_http_commerce_order_cancel_body(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, json_t *cmd)
{
    json_t        *root, *reason;
    ngx_int_t      rc;
    json_error_t   err;

    root = NULL;
    reason = NULL;

    if (ctx->body.len) {
        root = json_loadb((char *) ctx->body.data, ctx->body.len, 0, &err);
        reason = json_is_object(root) ? json_object_get(root, "reason")
                                      : NULL;

        if (!json_is_object(root)
            || json_object_size(root) != (reason ? 1 : 0)
            || (reason && !json_is_string(reason) && !json_is_null(reason))
            || (json_is_string(reason) && json_string_length(reason) > 500))
        {
            json_decref(root);
            return NGX_DECLINED;
        }
    }

    rc = json_object_set(cmd, "reason", reason ? reason : json_null()) == 0
         && json_object_set_new(cmd, "by",
                                json_string(ctx->admin ? "admin" : "owner"))
            == 0
         ? NGX_OK : NGX_ERROR;

    json_decref(root);

    return rc;
}


/* cmdname prefix+id (GET, or LRANGE of the events): NGX_OK, or answered */
static ngx_int_t
ngx_http_commerce_order_send(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx,
    ngx_http_commerce_redis_handler_pt done, ngx_str_t *prefix,
    ngx_str_t *id, ngx_str_t *cmdname)
{
    time_t                          retry_after;
    ngx_int_t                       rc;
    ngx_str_t                       key;
    ngx_http_commerce_redis_cmd_t   cmd;

    if (ngx_http_commerce_order_key(r, prefix, id, NULL, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_commerce_redis_cmd_init(&cmd);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, cmdname);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &key);

    if (prefix == &ngx_http_commerce_order_rk_events) {
        ngx_http_commerce_redis_cmd_arg_literal(&cmd, "0");
        ngx_http_commerce_redis_cmd_arg_uint(&cmd,
                                       NGX_HTTP_COMMERCE_ORDER_EVENTS_MAX - 1);
    }

    rc = ngx_http_commerce_redis_send(r, ngx_http_commerce_redis_timeout(r),
                                      done, ctx, &cmd, &retry_after);

    if (rc == NGX_DECLINED) {
        ngx_http_commerce_order_unavailable(r, retry_after);
        return NGX_OK;
    }

    return rc;
}


/* prefix + a [+ ":" + b], in r's pool */
static ngx_int_t
ngx_http_commerce_order_key(ngx_http_request_t *r, ngx_str_t *prefix,
    ngx_str_t *a, ngx_str_t *b, ngx_str_t *key)
{
    u_char  *p;

    key->len = prefix->len + a->len + (b ? b->len + 1 : 0);
    key->data = ngx_pnalloc(r->pool, key->len);

    if (key->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key->data, prefix->data, prefix->len);
    p = ngx_cpymem(p, a->data, a->len);

    if (b) {
        *p++ = ':';
        ngx_memcpy(p, b->data, b->len);
    }

    return NGX_OK;
}


static void
ngx_http_commerce_order_unavailable(ngx_http_request_t *r, time_t retry_after)
{
    ngx_http_commerce_order_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "redis_unavailable",
                                 "the orders read model is unavailable",
                                 NULL, retry_after > 0 ? retry_after : 1);
}
