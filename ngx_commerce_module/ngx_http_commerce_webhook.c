/*
 * ngx_http_commerce_webhook_module: the webhook ingress handler.
 *
 * A provider's POST is read whole, its signature verified (the verify
 * module), deduplicated by delivery id in Redis (an in-flight mark, then
 * a done mark), published to Kafka byte for byte, and acknowledged with
 * 202 only once the broker confirmed the write; the steps run in order
 * through ngx_http_commerce_webhook_run().
 *
 * Directives: commerce_webhook (location), commerce_webhook_topic,
 * commerce_webhook_key, commerce_webhook_delivery_id,
 * commerce_webhook_header, commerce_webhook_max_body,
 * commerce_webhook_dedup, commerce_webhook_dedup_ttl,
 * commerce_webhook_inflight_ttl, commerce_webhook_dedup_unavailable
 * (http, server, location); the reference is docs/directives.md, the
 * answers are in docs/api.md.
 *
 * Kafka headers of each message: source, delivery_id, signature_scheme
 * (empty until signatures are verified), received_at (ms since the epoch,
 * when the request started), content_type, traceparent (W3C: a valid
 * incoming one is propagated as is, else a new one is generated).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_contract.h"
#include "commerce_json.h"

#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_kafka.h"
#include "ngx_http_commerce_metrics.h"
#include "ngx_http_commerce_redis.h"
#include "ngx_http_commerce_verify.h"
#include "ngx_http_commerce_webhook.h"


#define NGX_HTTP_COMMERCE_WEBHOOK_DEDUP_REJECT  0
#define NGX_HTTP_COMMERCE_WEBHOOK_DEDUP_ACCEPT  1


/* seconds a client is asked to wait before retrying after a 503 */
#define NGX_HTTP_COMMERCE_WEBHOOK_RETRY_AFTER  1


static ngx_int_t ngx_http_commerce_webhook_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_commerce_webhook_value(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *value);
static void ngx_http_commerce_webhook_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_commerce_webhook_body(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx);
static ngx_int_t ngx_http_commerce_webhook_fail(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *msg, time_t retry_after);
static void ngx_http_commerce_webhook_run(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx);
static ngx_int_t ngx_http_commerce_webhook_verify(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx);
static size_t ngx_http_commerce_webhook_max_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_commerce_webhook_message(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx);
static void ngx_http_commerce_webhook_headers_cleanup(void *data);
static ngx_int_t ngx_http_commerce_webhook_claim(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx);
static void ngx_http_commerce_webhook_claimed(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static ngx_int_t ngx_http_commerce_webhook_no_dedup(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, time_t retry_after);
static ngx_int_t ngx_http_commerce_webhook_duplicate(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_commerce_webhook_mark_done(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx);
static void ngx_http_commerce_webhook_marked(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static ngx_int_t ngx_http_commerce_webhook_abandon(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, ngx_uint_t status,
    const char *msg);
static ngx_int_t ngx_http_commerce_webhook_release(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx);
static void ngx_http_commerce_webhook_released(ngx_http_request_t *r,
    void *data, ngx_int_t rc, redisReply *reply);
static ngx_int_t ngx_http_commerce_webhook_publish(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx);
static void ngx_http_commerce_webhook_published(ngx_http_request_t *r,
    void *data, ngx_int_t rc, int32_t partition, int64_t offset,
    const char *errstr);
static ngx_int_t ngx_http_commerce_webhook_answer(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, ngx_uint_t status,
    const char *what);
static char *ngx_http_commerce_webhook_header(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_commerce_webhook(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_commerce_webhook_check_max_body(ngx_conf_t *cf,
    void *post, void *data);
static void *ngx_http_commerce_webhook_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_webhook_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_conf_post_handler_pt  ngx_http_commerce_webhook_max_body_post =
    ngx_http_commerce_webhook_check_max_body;


static ngx_conf_enum_t  ngx_http_commerce_webhook_dedup_unavailable[] = {
    { ngx_string("reject"), NGX_HTTP_COMMERCE_WEBHOOK_DEDUP_REJECT },
    { ngx_string("accept"), NGX_HTTP_COMMERCE_WEBHOOK_DEDUP_ACCEPT },
    { ngx_null_string, 0 }
};


/*
 * The claim: the mark there (a duplicate), or nil once ours is set.  It
 * carries the moment its request stops waiting (ARGV[3]): executed later,
 * it sets nothing and returns Redis's time, so that no mark is left that
 * nobody is publishing (NGX_HTTP_COMMERCE_REDIS_DEADLINE_LUA).
 */
static ngx_http_commerce_redis_script_t  ngx_http_commerce_webhook_claim_lua =
    ngx_http_commerce_redis_script(
    NGX_HTTP_COMMERCE_REDIS_DEADLINE_LUA("3")
    "local v = redis.call('GET', KEYS[1]) "
    "if v then return v end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "return false");


/* deletes the in-flight mark only if it is still ours */
static ngx_http_commerce_redis_script_t
    ngx_http_commerce_webhook_release_lua = ngx_http_commerce_redis_script(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0");


static ngx_command_t  ngx_http_commerce_webhook_commands[] = {

    { ngx_string("commerce_webhook"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_commerce_webhook,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_webhook_topic"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_webhook_loc_conf_t, topic),
      NULL },

    { ngx_string("commerce_webhook_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_webhook_loc_conf_t, key),
      NULL },

    { ngx_string("commerce_webhook_delivery_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_webhook_loc_conf_t, delivery_id),
      NULL },

    { ngx_string("commerce_webhook_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_commerce_webhook_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_webhook_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_webhook_loc_conf_t, max_body),
      &ngx_http_commerce_webhook_max_body_post },

    { ngx_string("commerce_webhook_dedup"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_webhook_loc_conf_t, dedup),
      NULL },

    { ngx_string("commerce_webhook_dedup_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_webhook_loc_conf_t, dedup_ttl),
      NULL },

    { ngx_string("commerce_webhook_inflight_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_webhook_loc_conf_t, inflight_ttl),
      NULL },

    { ngx_string("commerce_webhook_dedup_unavailable"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_webhook_loc_conf_t, dedup_unavailable),
      &ngx_http_commerce_webhook_dedup_unavailable },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_webhook_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_commerce_webhook_create_loc_conf, /* create location conf */
    ngx_http_commerce_webhook_merge_loc_conf   /* merge location conf */
};


ngx_module_t  ngx_http_commerce_webhook_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_webhook_module_ctx, /* module context */
    ngx_http_commerce_webhook_commands,    /* module directives */
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


static ngx_str_t  ngx_http_commerce_webhook_json = ngx_string(
    "application/json");


/*
 * Checks what can be checked before the body is read (method, length),
 * evaluates the per-request values, then reads the body; the steps run
 * once it is in.
 */
static ngx_int_t
ngx_http_commerce_webhook_handler(ngx_http_request_t *r)
{
    ngx_int_t                              rc, status;
    ngx_http_commerce_webhook_ctx_t       *ctx;
    ngx_http_commerce_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_webhook_module);

    if (!(r->method & NGX_HTTP_POST)) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_commerce_send_error_allow(r, NGX_HTTP_NOT_ALLOWED,
                                                  "method_not_allowed",
                                                  "only POST is allowed", 0,
                                                  "POST");
    }

    if (r->headers_in.content_length_n < 0) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_commerce_send_error(r, NGX_HTTP_LENGTH_REQUIRED,
                                            "length_required",
                                            "a webhook needs a "
                                            "Content-Length", 0);
    }

    if (r->headers_in.content_length_n
        > (off_t) ngx_http_commerce_webhook_max_body(r))
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_commerce_send_error(r,
                                            NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                            "body_too_large",
                                            "the webhook body exceeds the "
                                            "size limit", 0);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_commerce_webhook_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_commerce_webhook_module);

    ctx->state = NGX_HTTP_COMMERCE_WEBHOOK_READ_BODY;
    ctx->received_at = (int64_t) r->start_sec * 1000 + r->start_msec;

    if (ngx_http_commerce_webhook_value(r, wlcf->source, &ctx->source)
           != NGX_OK
        || ngx_http_commerce_webhook_value(r, wlcf->key, &ctx->key) != NGX_OK
        || ngx_http_commerce_webhook_value(r, wlcf->delivery_id,
                                           &ctx->delivery_id)
           != NGX_OK
        || ngx_http_commerce_kafka_traceparent(r, &ctx->traceparent)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->source.len == 0) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_commerce_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "unknown_source",
                                            "no webhook source for this "
                                            "request", 0);
    }

    rc = ngx_http_commerce_verify_headers(r, &ctx->verify);

    if (rc == NGX_OK) {
        if (ctx->delivery_id.len == 0) {
            ctx->delivery_id = ctx->verify.delivery_id;
        }

        rc = ngx_http_commerce_verify_id(&ctx->verify, &ctx->delivery_id);
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce webhook: source \"%V\" rejected: %s",
                      &ctx->source, ctx->verify.code);
        ngx_http_commerce_metrics_sig_failure(&ctx->source, ctx->verify.code);

        status = rc;

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_commerce_send_error(r, status, ctx->verify.code,
                                            ctx->verify.msg, 0);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r,
                                       ngx_http_commerce_webhook_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_http_commerce_webhook_value(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *value)
{
    if (cv == NULL) {
        ngx_str_null(value);
        return NGX_OK;
    }

    return ngx_http_complex_value(r, cv, value);
}


static void
ngx_http_commerce_webhook_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_http_commerce_webhook_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_webhook_module);

    rc = ngx_http_commerce_webhook_body(r, ctx);

    if (rc == NGX_HTTP_BAD_REQUEST) {
        ngx_http_commerce_webhook_fail(r, ctx, rc, "empty_body",
                                       "a webhook needs a body", 0);
        return;
    }

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        ngx_http_commerce_webhook_fail(r, ctx, rc, "body_too_large",
                                       "the webhook body exceeds the size "
                                       "limit", 0);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    ctx->state++;

    ngx_http_commerce_webhook_run(r, ctx);
}


/*
 * The whole body as one run of bytes, within the limits.  NGX_OK, or the
 * status of the answer.
 */
static ngx_int_t
ngx_http_commerce_webhook_body(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx)
{
    off_t         size;
    ngx_chain_t  *cl;

    cl = r->request_body ? r->request_body->bufs : NULL;
    size = 0;

    for ( /* void */ ; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    if (size == 0) {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (size > (off_t) ngx_http_commerce_webhook_max_body(r)) {
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    if (ngx_http_commerce_request_body(r, &ctx->body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


/* Answers a JSON error and finalizes; a step then returns NGX_DONE. */
static ngx_int_t
ngx_http_commerce_webhook_fail(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *msg, time_t retry_after)
{
    ctx->state = NGX_HTTP_COMMERCE_WEBHOOK_DONE;

    ngx_http_finalize_request(r, ngx_http_commerce_send_error(r, status,
                                                              code, msg,
                                                              retry_after));

    return NGX_DONE;
}


/*
 * Runs the steps from the current one until one waits (NGX_AGAIN), has
 * answered (NGX_DONE) or returns a status to finalize with.
 */
static void
ngx_http_commerce_webhook_run(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx)
{
    ngx_int_t  rc;

    while (ctx->state != NGX_HTTP_COMMERCE_WEBHOOK_DONE) {

        switch (ctx->state) {

        case NGX_HTTP_COMMERCE_WEBHOOK_VERIFY:
            rc = ngx_http_commerce_webhook_verify(r, ctx);
            break;

        case NGX_HTTP_COMMERCE_WEBHOOK_MESSAGE:
            rc = ngx_http_commerce_webhook_message(r, ctx);
            break;

        case NGX_HTTP_COMMERCE_WEBHOOK_CLAIM:
            rc = ngx_http_commerce_webhook_claim(r, ctx);
            break;

        case NGX_HTTP_COMMERCE_WEBHOOK_PUBLISH:
            rc = ngx_http_commerce_webhook_publish(r, ctx);
            break;

        case NGX_HTTP_COMMERCE_WEBHOOK_MARK_DONE:
            rc = ngx_http_commerce_webhook_mark_done(r, ctx);
            break;

        case NGX_HTTP_COMMERCE_WEBHOOK_ACCEPT:
            ctx->state = NGX_HTTP_COMMERCE_WEBHOOK_DONE;

            if (ctx->answered) {
                /* published after its 503: recorded, not answered */
                ngx_http_finalize_request(r, NGX_DONE);
                return;
            }

            ngx_http_finalize_request(r,
                ngx_http_commerce_webhook_answer(r, ctx, NGX_HTTP_ACCEPTED,
                                                 "accepted"));
            return;

        default:
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "commerce webhook: unexpected state %ui",
                          ctx->state);
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            break;
        }

        if (rc == NGX_AGAIN || rc == NGX_DONE) {
            return;
        }

        if (rc != NGX_OK) {
            ctx->state = NGX_HTTP_COMMERCE_WEBHOOK_DONE;
            ngx_http_finalize_request(r, rc);
            return;
        }

        ctx->state++;
    }
}


/*
 * The MAC over the raw body, then the JSON check (verify module), which
 * also finds the delivery id of schemes that carry it in the body, then
 * that id's check.
 */
static ngx_int_t
ngx_http_commerce_webhook_verify(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_commerce_verify_body(r, &ctx->verify, &ctx->body,
                                       ctx->delivery_id.len == 0);

    if (rc == NGX_OK && ctx->delivery_id.len == 0) {
        ctx->delivery_id = ctx->verify.delivery_id;
        rc = ngx_http_commerce_verify_id(&ctx->verify, &ctx->delivery_id);
    }

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "commerce webhook: source \"%V\" rejected: %s",
                  &ctx->source, ctx->verify.code);
    ngx_http_commerce_metrics_sig_failure(&ctx->source, ctx->verify.code);

    return ngx_http_commerce_webhook_fail(r, ctx, rc, ctx->verify.code,
                                          ctx->verify.msg, 0);
}


/*
 * Claims the delivery in one atomic round trip: the claim script sets an
 * in-flight mark unless there is one, and returns what was there.
 * Nothing: ours to publish.  An in-flight or done mark: a duplicate.
 */
static ngx_int_t
ngx_http_commerce_webhook_claim(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx)
{
    u_char                                *p;
    time_t                                 retry_after;
    ngx_int_t                              rc;
    ngx_msec_t                             timeout;
    ngx_http_commerce_redis_cmd_t          cmd;
    ngx_http_commerce_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_webhook_module);

    if (!wlcf->dedup || ctx->delivery_id.len == 0) {
        return NGX_OK;
    }

    timeout = ngx_http_commerce_redis_timeout(r);

    if (ctx->dedup_key.len) {
        /* a second try: the script whole, or without a deadline */
        goto send;
    }

    ctx->dedup_key.len = sizeof(COMMERCE_RK_WEBHOOK_DEDUP ":") - 1
                         + ctx->source.len + ctx->delivery_id.len;
    ctx->dedup_key.data = ngx_pnalloc(r->pool, ctx->dedup_key.len);

    ctx->dedup_token.data = ngx_pnalloc(r->pool,
                                        sizeof(COMMERCE_WEBHOOK_INFLIGHT "--")
                                        + NGX_INT64_LEN + NGX_ATOMIC_T_LEN
                                        + NGX_INT_T_LEN);

    if (ctx->dedup_key.data == NULL || ctx->dedup_token.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(ctx->dedup_key.data, COMMERCE_RK_WEBHOOK_DEDUP,
                   COMMERCE_LEN(COMMERCE_RK_WEBHOOK_DEDUP));
    p = ngx_cpymem(p, ctx->source.data, ctx->source.len);
    *p++ = ':';
    ngx_memcpy(p, ctx->delivery_id.data, ctx->delivery_id.len);

    /* unique per request: worker pid, connection number, request number */
    ctx->dedup_token.len = ngx_sprintf(ctx->dedup_token.data,
                                       COMMERCE_WEBHOOK_INFLIGHT
                                       "%P-%uA-%ui", ngx_pid,
                                       r->connection->number,
                                       r->connection->requests)
                           - ctx->dedup_token.data;

send:

    ngx_http_commerce_redis_cmd_init(&cmd);

    ngx_http_commerce_redis_cmd_arg_script(&cmd,
                                           &ngx_http_commerce_webhook_claim_lua,
                                           ctx->eval);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "1");
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &ctx->dedup_key);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &ctx->dedup_token);
    ngx_http_commerce_redis_cmd_arg_uint(&cmd, wlcf->inflight_ttl);
    ngx_http_commerce_redis_cmd_arg_deadline(&cmd,
                                             ctx->no_deadline ? 0 : timeout);

    rc = ngx_http_commerce_redis_send(r, timeout,
                                      ngx_http_commerce_webhook_claimed, ctx,
                                      &cmd, &retry_after);

    if (rc == NGX_DECLINED) {
        return ngx_http_commerce_webhook_no_dedup(r, ctx, retry_after);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_AGAIN;
}


static void
ngx_http_commerce_webhook_claimed(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_http_commerce_webhook_ctx_t  *ctx = data;

    if (rc == NGX_HTTP_COMMERCE_REDIS_OK && !ctx->eval
        && ngx_http_commerce_redis_noscript(reply))
    {
        /* Redis restarted or flushed its scripts: the script whole */

        ctx->eval = 1;
        rc = ngx_http_commerce_webhook_claim(r, ctx);

        if (rc == NGX_AGAIN) {
            return;
        }

    } else if (rc != NGX_HTTP_COMMERCE_REDIS_OK
               || reply->type == REDIS_REPLY_ERROR)
    {
        if (reply) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "commerce webhook: dedup claim failed: \"%*s\"",
                          reply->len, reply->str);
        }

        rc = ngx_http_commerce_webhook_no_dedup(r, ctx, 1);

    } else if (reply->type == REDIS_REPLY_NIL) {
        ngx_http_commerce_metrics_dedup(NGX_HTTP_COMMERCE_DEDUP_NEW);
        ctx->claimed = 1;
        rc = NGX_OK;

    } else if (ngx_http_commerce_redis_late(r, reply, "commerce webhook")) {
        ctx->no_deadline = 1;
        rc = ngx_http_commerce_webhook_claim(r, ctx);

        if (rc == NGX_AGAIN) {
            return;
        }

    } else {
        rc = ngx_http_commerce_webhook_duplicate(r, ctx, reply);
    }

    if (rc == NGX_DONE) {
        return;
    }

    if (rc != NGX_OK) {
        ctx->state = NGX_HTTP_COMMERCE_WEBHOOK_DONE;
        ngx_http_finalize_request(r, rc);
        return;
    }

    ctx->state++;
    ngx_http_commerce_webhook_run(r, ctx);
}


/*
 * Redis cannot say whether the delivery is new: reject it (the sender
 * retries later) or publish it without deduplication, as configured.
 */
static ngx_int_t
ngx_http_commerce_webhook_no_dedup(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, time_t retry_after)
{
    ngx_http_commerce_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_webhook_module);
    ngx_http_commerce_metrics_dedup(NGX_HTTP_COMMERCE_DEDUP_ERROR);

    if (wlcf->dedup_unavailable == NGX_HTTP_COMMERCE_WEBHOOK_DEDUP_ACCEPT) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce webhook: dedup unavailable, publishing "
                      "delivery \"%V\" without it", &ctx->delivery_id);
        return NGX_OK;
    }

    return ngx_http_commerce_webhook_fail(r, ctx,
                                          NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "dedup_unavailable",
                                          "deliveries cannot be "
                                          "deduplicated now",
                                          retry_after ? retry_after : 1);
}


/* A done mark "done:<partition>:<offset>" gets 200, an in-flight one 409. */
static ngx_int_t
ngx_http_commerce_webhook_duplicate(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, redisReply *reply)
{
    u_char     *p, *last, *colon;
    ngx_int_t   partition;

    p = (u_char *) reply->str;
    last = p + reply->len;

    if (reply->type == REDIS_REPLY_STRING
        && reply->len > COMMERCE_LEN(COMMERCE_WEBHOOK_DONE)
        && ngx_strncmp(p, COMMERCE_WEBHOOK_DONE,
                       COMMERCE_LEN(COMMERCE_WEBHOOK_DONE))
           == 0)
    {
        p += COMMERCE_LEN(COMMERCE_WEBHOOK_DONE);
        colon = ngx_strlchr(p, last, ':');

        if (colon) {
            partition = ngx_atoi(p, colon - p);
            ctx->offset = ngx_atoof(colon + 1, last - colon - 1);

            if (partition != NGX_ERROR && ctx->offset != NGX_ERROR) {
                ctx->partition = (int32_t) partition;
                ctx->state = NGX_HTTP_COMMERCE_WEBHOOK_DONE;
                ngx_http_commerce_metrics_dedup(
                    NGX_HTTP_COMMERCE_DEDUP_DUPLICATE);

                ngx_http_finalize_request(r,
                    ngx_http_commerce_webhook_answer(r, ctx, NGX_HTTP_OK,
                                                     "duplicate"));
                return NGX_DONE;
            }
        }
    }

    ngx_http_commerce_metrics_dedup(NGX_HTTP_COMMERCE_DEDUP_IN_PROGRESS);

    return ngx_http_commerce_webhook_fail(r, ctx, NGX_HTTP_CONFLICT,
                                   "delivery_in_progress",
                                   "this delivery is being published now",
                                   NGX_HTTP_COMMERCE_WEBHOOK_RETRY_AFTER);
}


/*
 * Published: the mark becomes "done" for commerce_webhook_dedup_ttl.  The
 * 202 does not wait for this write, which is already queued on the Redis
 * connection: a duplicate arriving within that round trip still finds the
 * in-flight mark (409, and its retry gets the duplicate's 200), so nothing
 * is ever published twice, and the request is not held for one more
 * round trip.
 */
static ngx_int_t
ngx_http_commerce_webhook_mark_done(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx)
{
    u_char                                *p, *last;
    time_t                                 retry_after;
    ngx_int_t                              rc;
    ngx_http_commerce_redis_cmd_t          cmd;
    ngx_http_commerce_webhook_loc_conf_t  *wlcf;

    if (!ctx->claimed) {
        return NGX_OK;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_webhook_module);

    p = ngx_pnalloc(r->pool, sizeof(COMMERCE_WEBHOOK_DONE ":") + NGX_INT32_LEN
                             + NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = ngx_sprintf(p, COMMERCE_WEBHOOK_DONE "%D:%L", ctx->partition,
                       ctx->offset);

    ngx_http_commerce_redis_cmd_init(&cmd);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "SET");
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &ctx->dedup_key);
    ngx_http_commerce_redis_cmd_arg(&cmd, p, last - p);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "PX");
    ngx_http_commerce_redis_cmd_arg_uint(&cmd, wlcf->dedup_ttl);

    rc = ngx_http_commerce_redis_send(r, ngx_http_commerce_redis_timeout(r),
                                      ngx_http_commerce_webhook_marked, ctx,
                                      &cmd, &retry_after);

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    /* the message is in Kafka: acknowledge it all the same */

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "commerce webhook: delivery \"%V\" published but not "
                  "marked done", &ctx->delivery_id);

    return NGX_OK;
}


/*
 * The reply to the done mark, when the request is still there (its answer
 * may still be on the way to a slow client): only a failure is reported.
 */
static void
ngx_http_commerce_webhook_marked(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_http_commerce_webhook_ctx_t  *ctx = data;

    if (rc != NGX_HTTP_COMMERCE_REDIS_OK
        || reply->type == REDIS_REPLY_ERROR)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce webhook: delivery \"%V\" published but not "
                      "marked done", &ctx->delivery_id);
    }
}


/*
 * The largest body this request may have: commerce_webhook_max_body, and
 * what a Kafka message can carry (the key and headers lower it further:
 * ngx_http_commerce_webhook_message() checks the exact size).
 */
static size_t
ngx_http_commerce_webhook_max_body(ngx_http_request_t *r)
{
    size_t                                 kafka;
    ngx_http_commerce_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_webhook_module);

    kafka = ngx_http_commerce_kafka_body_max(r, 0, NULL);

    return ngx_min(wlcf->max_body, kafka);
}


/*
 * The Kafka headers of the message, built before the delivery is claimed:
 * a body that cannot fit in a message with them gets 413 body_too_large,
 * a permanent answer, and leaves no mark.
 */
static ngx_int_t
ngx_http_commerce_webhook_message(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx)
{
    u_char                                 at[NGX_INT64_LEN];
    size_t                                 atlen;
    ngx_str_t                              ct, value;
    ngx_uint_t                             i;
    ngx_pool_cleanup_t                    *cln;
    rd_kafka_headers_t                    *hdrs;
    ngx_http_commerce_webhook_header_t    *eh;
    ngx_http_commerce_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_webhook_module);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    atlen = ngx_sprintf(at, "%L", ctx->received_at) - at;

    if (r->headers_in.content_type) {
        ct = r->headers_in.content_type->value;

    } else {
        ngx_str_set(&ct, "");
    }

    hdrs = rd_kafka_headers_new(6 + (wlcf->headers ? wlcf->headers->nelts
                                                   : 0));
    if (hdrs == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* until produced, the request owns them */
    ctx->hdrs = hdrs;
    cln->handler = ngx_http_commerce_webhook_headers_cleanup;
    cln->data = ctx;

    if (wlcf->headers) {
        eh = wlcf->headers->elts;

        for (i = 0; i < wlcf->headers->nelts; i++) {
            if (ngx_http_complex_value(r, &eh[i].value, &value) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            if (value.len) {
                (void) rd_kafka_header_add(hdrs, (char *) eh[i].name.data,
                                           eh[i].name.len, value.data,
                                           value.len);
            }
        }
    }

    (void) rd_kafka_header_add(hdrs, COMMERCE_H_SOURCE, -1, ctx->source.data,
                               ctx->source.len);
    (void) rd_kafka_header_add(hdrs, COMMERCE_H_DELIVERY_ID, -1,
                               ctx->delivery_id.len ? ctx->delivery_id.data
                                                    : (u_char *) "",
                               ctx->delivery_id.len);
    (void) rd_kafka_header_add(hdrs, COMMERCE_H_SIGNATURE_SCHEME, -1,
                               ctx->verify.scheme.len
                               ? ctx->verify.scheme.data : (u_char *) "",
                               ctx->verify.scheme.len);
    (void) rd_kafka_header_add(hdrs, COMMERCE_H_RECEIVED_AT, -1, at, atlen);
    (void) rd_kafka_header_add(hdrs, COMMERCE_H_CONTENT_TYPE, -1,
                               ct.len ? ct.data : (u_char *) "", ct.len);
    (void) rd_kafka_header_add(hdrs, COMMERCE_H_TRACEPARENT, -1,
                               ctx->traceparent.data, ctx->traceparent.len);

    if (ctx->body.len
        > ngx_http_commerce_kafka_body_max(r, ctx->key.len, hdrs))
    {
        return ngx_http_commerce_webhook_fail(r, ctx,
                                        NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "body_too_large",
                                        "the webhook body with its "
                                        "headers exceeds the size limit", 0);
    }

    return NGX_OK;
}


static void
ngx_http_commerce_webhook_headers_cleanup(void *data)
{
    ngx_http_commerce_webhook_ctx_t  *ctx = data;

    if (ctx->hdrs) {
        rd_kafka_headers_destroy(ctx->hdrs);
        ctx->hdrs = NULL;
    }
}


/*
 * Queues the body for Kafka.  The request then waits for the delivery
 * report (ngx_http_commerce_webhook_published), also when the client goes
 * away meanwhile: the outcome must still be recorded (done mark, or the
 * in-flight mark released), or the sender's retry would be published a
 * second time.  The wait is bounded by commerce_kafka_delivery_timeout.
 * A message that cannot be queued releases its mark like a failed one.
 */
static ngx_int_t
ngx_http_commerce_webhook_publish(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx)
{
    ngx_int_t                              rc;
    rd_kafka_headers_t                    *hdrs;
    ngx_http_commerce_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_webhook_module);

    /* the headers are the producer's now */
    hdrs = ctx->hdrs;
    ctx->hdrs = NULL;

    /* the body is copied before this returns */
    rc = ngx_http_commerce_kafka_produce(r, &wlcf->topic, &ctx->key,
                                         &ctx->body, hdrs,
                                         ngx_http_commerce_webhook_published,
                                         ctx, &ctx->retry_after);

    switch (rc) {

    case NGX_OK:
        return NGX_AGAIN;

    case NGX_DECLINED:
        return ngx_http_commerce_webhook_abandon(r, ctx,
                                           NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "the event broker cannot take "
                                           "the webhook now");

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return ngx_http_commerce_webhook_abandon(r, ctx, rc, NULL);

    default:
        return ngx_http_commerce_webhook_abandon(r, ctx,
                                           NGX_HTTP_INTERNAL_SERVER_ERROR,
                                           NULL);
    }
}


/*
 * The delivery report, with the request alive: 202 (after the done mark)
 * or, with the in-flight mark released, 503 or 413.  An overdue report
 * (NGX_AGAIN) gets its 503 now, and the request stays until the outcome
 * is recorded: marked done if the message arrives after all.
 */
static void
ngx_http_commerce_webhook_published(ngx_http_request_t *r, void *data,
    ngx_int_t rc, int32_t partition, int64_t offset, const char *errstr)
{
    ngx_http_commerce_webhook_ctx_t  *ctx = data;

    switch (rc) {

    case NGX_OK:
        ctx->partition = partition;
        ctx->offset = offset;
        ctx->state = NGX_HTTP_COMMERCE_WEBHOOK_MARK_DONE;

        ngx_http_commerce_webhook_run(r, ctx);
        return;

    case NGX_AGAIN:
        ctx->answered = 1;
        ctx->retry_after = NGX_HTTP_COMMERCE_WEBHOOK_RETRY_AFTER;
        r->main->count++;

        rc = ngx_http_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "broker_unavailable",
                                          "the event broker did not confirm "
                                          "the write in time",
                                          ctx->retry_after);

        ngx_http_finalize_request(r, rc);
        return;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        (void) ngx_http_commerce_webhook_abandon(r, ctx, rc, NULL);
        return;

    default:
        ctx->retry_after = NGX_HTTP_COMMERCE_WEBHOOK_RETRY_AFTER;

        (void) ngx_http_commerce_webhook_abandon(r, ctx,
                                           NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "the event broker did not "
                                           "confirm the write");
    }
}


/*
 * The message is not in Kafka: the in-flight mark is released first, so
 * that the sender's retry does not find it, then the request gets its
 * failure.  NGX_AGAIN while the release is on its way, else NGX_DONE.
 */
static ngx_int_t
ngx_http_commerce_webhook_abandon(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, ngx_uint_t status,
    const char *msg)
{
    ctx->state = NGX_HTTP_COMMERCE_WEBHOOK_DONE;
    ctx->failure = status;
    ctx->failure_msg = msg;

    if (ctx->claimed && ngx_http_commerce_webhook_release(r, ctx) == NGX_OK) {
        return NGX_AGAIN;
    }

    ngx_http_commerce_webhook_released(r, ctx,
                                       ctx->claimed
                                       ? NGX_HTTP_COMMERCE_REDIS_DOWN
                                       : NGX_HTTP_COMMERCE_REDIS_OK,
                                       NULL);

    return NGX_DONE;
}


/* Sends the release of the in-flight mark: NGX_OK when it is on its way. */
static ngx_int_t
ngx_http_commerce_webhook_release(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx)
{
    time_t                          retry_after;
    ngx_http_commerce_redis_cmd_t   cmd;

    ngx_http_commerce_redis_cmd_init(&cmd);
    ngx_http_commerce_redis_cmd_arg_script(&cmd,
                                      &ngx_http_commerce_webhook_release_lua,
                                      ctx->eval);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "1");
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &ctx->dedup_key);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &ctx->dedup_token);

    return ngx_http_commerce_redis_send(r, ngx_http_commerce_redis_timeout(r),
                                        ngx_http_commerce_webhook_released,
                                        ctx, &cmd, &retry_after);
}


/* After a failed publish (and the in-flight mark released): the answer. */
static void
ngx_http_commerce_webhook_released(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_http_commerce_webhook_ctx_t  *ctx = data;

    if (rc == NGX_HTTP_COMMERCE_REDIS_OK && !ctx->eval
        && ngx_http_commerce_redis_noscript(reply))
    {
        ctx->eval = 1;

        if (ngx_http_commerce_webhook_release(r, ctx) == NGX_OK) {
            return;
        }

        rc = NGX_HTTP_COMMERCE_REDIS_DOWN;
    }

    if (rc != NGX_HTTP_COMMERCE_REDIS_OK
        || (reply && reply->type == REDIS_REPLY_ERROR))
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce webhook: in-flight mark \"%V\" not "
                      "released, it expires by itself", &ctx->dedup_key);
    }

    if (ctx->answered) {
        /* its 503 is out already */
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    switch (ctx->failure) {

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        (void) ngx_http_commerce_webhook_fail(r, ctx, ctx->failure,
                                              "broker_unavailable",
                                              ctx->failure_msg,
                                              ctx->retry_after);
        return;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        (void) ngx_http_commerce_webhook_fail(r, ctx, ctx->failure,
                                              "body_too_large",
                                              "the event broker refuses a "
                                              "message of this size", 0);
        return;

    default:
        ngx_http_finalize_request(r, ctx->failure);
    }
}


/*
 * 202 {"status":"accepted",...} once published, or 200 {"status":
 * "duplicate",...} with where the first delivery went.
 */
static ngx_int_t
ngx_http_commerce_webhook_answer(ngx_http_request_t *r,
    ngx_http_commerce_webhook_ctx_t *ctx, ngx_uint_t status,
    const char *what)
{
    size_t                                 len;
    ngx_int_t                              rc;
    ngx_buf_t                             *b;
    ngx_chain_t                            out;
    ngx_table_elt_t                       *h;
    ngx_http_commerce_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_webhook_module);

    len = sizeof("{\"status\":\"\",\"topic\":\"\",\"partition\":"
                 ",\"offset\":,\"delivery_id\":\"\"}") - 1
          + ngx_strlen(what) + NGX_INT32_LEN + NGX_INT64_LEN
          + commerce_json_escape_len(wlcf->topic.data, wlcf->topic.len,
                                     COMMERCE_JSON_BYTES)
          + commerce_json_escape_len(ctx->delivery_id.data,
                                     ctx->delivery_id.len,
                                     COMMERCE_JSON_BYTES);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"status\":\"%s\",\"topic\":\"",
                          what);
    b->last = commerce_json_escape(b->last, wlcf->topic.data,
                                   wlcf->topic.len, COMMERCE_JSON_BYTES);
    b->last = ngx_sprintf(b->last, "\",\"partition\":%D,\"offset\":%L,"
                          "\"delivery_id\":\"", ctx->partition,
                          ctx->offset);
    b->last = commerce_json_escape(b->last, ctx->delivery_id.data,
                                   ctx->delivery_id.len, COMMERCE_JSON_BYTES);
    b->last = ngx_cpymem(b->last, "\"}", 2);

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type = ngx_http_commerce_webhook_json;
    r->headers_out.content_type_len = ngx_http_commerce_webhook_json.len;
    r->headers_out.content_type_lowcase = NULL;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static char *
ngx_http_commerce_webhook(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_commerce_webhook_loc_conf_t *wlcf = conf;

    ngx_str_t                            *value;
    ngx_http_core_loc_conf_t             *clcf;
    ngx_http_compile_complex_value_t      ccv;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    if (wlcf->source) {
        return "is duplicate";
    }

    value = cf->args->elts;

    wlcf->source = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (wlcf->source == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = wlcf->source;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_commerce_webhook_handler;
    ngx_http_commerce_metrics_api(cf, NGX_HTTP_COMMERCE_API_WEBHOOK);

    kmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_commerce_kafka_module);
    kmcf->used = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_commerce_webhook_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_commerce_webhook_loc_conf_t *wlcf = conf;

    ngx_str_t                           *value;
    ngx_http_compile_complex_value_t     ccv;
    ngx_http_commerce_webhook_header_t  *h;

    value = cf->args->elts;

    if (wlcf->headers == NGX_CONF_UNSET_PTR) {
        wlcf->headers = ngx_array_create(cf->pool, 2,
                                   sizeof(ngx_http_commerce_webhook_header_t));
        if (wlcf->headers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    h = ngx_array_push(wlcf->headers);
    if (h == NULL) {
        return NGX_CONF_ERROR;
    }

    h->name = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &h->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A limit above what a Kafka message can carry (message.max.bytes as set
 * so far by commerce_kafka_property, less the record overhead) is not an
 * error, the smaller one applies, but it is said where it is set.
 */
static char *
ngx_http_commerce_webhook_check_max_body(ngx_conf_t *cf, void *post,
    void *data)
{
    size_t  *max = data;

    size_t  kafka;

    kafka = ngx_http_commerce_kafka_conf_body_max(cf);

    if (*max > kafka) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"commerce_webhook_max_body\" %uz is above what "
                           "a Kafka message can carry (%uz bytes and less "
                           "its headers, from message.max.bytes): larger "
                           "bodies get 413", *max, kafka);
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_commerce_webhook_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_webhook_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_commerce_webhook_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->source = NULL;
     *     conf->topic = { 0, NULL };
     */

    conf->headers = NGX_CONF_UNSET_PTR;
    conf->key = NGX_CONF_UNSET_PTR;
    conf->delivery_id = NGX_CONF_UNSET_PTR;
    conf->max_body = NGX_CONF_UNSET_SIZE;
    conf->dedup = NGX_CONF_UNSET;
    conf->dedup_ttl = NGX_CONF_UNSET_MSEC;
    conf->inflight_ttl = NGX_CONF_UNSET_MSEC;
    conf->dedup_unavailable = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_commerce_webhook_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_commerce_webhook_loc_conf_t *prev = parent;
    ngx_http_commerce_webhook_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_str_value(conf->topic, prev->topic,
                             COMMERCE_TOPIC_INBOUND);
    ngx_conf_merge_ptr_value(conf->headers, prev->headers, NULL);
    ngx_conf_merge_ptr_value(conf->key, prev->key, NULL);
    ngx_conf_merge_ptr_value(conf->delivery_id, prev->delivery_id, NULL);
    ngx_conf_merge_size_value(conf->max_body, prev->max_body, 1024 * 1024);
    ngx_conf_merge_value(conf->dedup, prev->dedup, 0);
    ngx_conf_merge_msec_value(conf->dedup_ttl, prev->dedup_ttl,
                              24 * 60 * 60 * 1000);
    ngx_conf_merge_msec_value(conf->inflight_ttl, prev->inflight_ttl,
                              30 * 1000);
    ngx_conf_merge_uint_value(conf->dedup_unavailable,
                              prev->dedup_unavailable,
                              NGX_HTTP_COMMERCE_WEBHOOK_DEDUP_REJECT);

    if (conf->topic.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_webhook_topic\" must not be empty");
        return NGX_CONF_ERROR;
    }

    if (conf->max_body == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_webhook_max_body\" must not be 0");
        return NGX_CONF_ERROR;
    }

    if (conf->source == NULL) {
        return NGX_CONF_OK;
    }

    if (ngx_http_commerce_kafka_add_topic(cf, &conf->topic) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->dedup) {
        if (!ngx_http_commerce_redis_configured(cf)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_webhook_dedup\" needs "
                               "\"commerce_redis_server\"");
            return NGX_CONF_ERROR;
        }

        if (conf->dedup_ttl < 1000 || conf->inflight_ttl < 1000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_webhook_dedup_ttl\" and "
                               "\"commerce_webhook_inflight_ttl\" must be "
                               "at least 1s");
            return NGX_CONF_ERROR;
        }

        ngx_http_commerce_redis_use(cf);
    }

    /*
     * The handler enforces the limit with a JSON 413 from the
     * Content-Length, before nginx would answer its own HTML page, and
     * bodies within the limit are read into memory.
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    clcf->client_max_body_size = 0;

    if (clcf->client_body_buffer_size < conf->max_body) {
        clcf->client_body_buffer_size = conf->max_body;
    }

    return NGX_CONF_OK;
}
