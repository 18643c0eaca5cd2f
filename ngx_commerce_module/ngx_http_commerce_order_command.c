/*
 * The commands of the order and admin APIs: built (a new command id, the
 * common fields), serialised, published on commerce.commands with the
 * idempotent producer, and answered once the broker has them (see
 * ngx_http_commerce_order.h).
 *
 * Kafka headers of each command (docs/contract.md, commerce.commands):
 * command_type, command_id, sub, idempotency_key (order.place),
 * received_at, content_type, traceparent.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "commerce_contract.h"

#include "ngx_http_commerce_kafka.h"
#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_order.h"


static void ngx_http_commerce_order_published(ngx_http_request_t *r,
    void *data, ngx_int_t rc, int32_t partition, int64_t offset,
    const char *errstr);


ngx_int_t
ngx_http_commerce_order_new_command(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, const char *type, json_t **cmd)
{
    u_char       rnd[10];
    json_t      *o;
    ngx_time_t  *tp;

    if (ngx_http_commerce_random(r->connection->log, rnd, sizeof(rnd))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    tp = ngx_timeofday();

    (void) ngx_http_commerce_uuid7(ctx->command_id,
                                   (uint64_t) tp->sec * 1000 + tp->msec, rnd);

    ctx->type = type;

    o = json_object();
    if (o == NULL) {
        return NGX_ERROR;
    }

    if (json_object_set_new(o, "type", json_string(type)) != 0
        || json_object_set_new(o, "command_id",
                               json_stringn((char *) ctx->command_id,
                                            NGX_HTTP_COMMERCE_UUID_LEN))
           != 0
        || json_object_set_new(o, "sub",
                               json_stringn((char *) ctx->owner.data,
                                            ctx->owner.len))
           != 0
        || json_object_set_new(o, "issued_at",
                               json_integer(ctx->received_at))
           != 0)
    {
        json_decref(o);
        return NGX_ERROR;
    }

    if (ctx->id.len
        && json_object_set_new(o, "order_id",
                               json_stringn((char *) ctx->id.data,
                                            ctx->id.len))
           != 0)
    {
        json_decref(o);
        return NGX_ERROR;
    }

    *cmd = o;

    return NGX_OK;
}


/* The command as compact JSON in r's pool; cmd is released. */
ngx_int_t
ngx_http_commerce_order_dump(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, json_t *cmd)
{
    char    *s;
    size_t   len;

    s = json_dumps(cmd, JSON_COMPACT);
    json_decref(cmd);

    if (s == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(s);

    ctx->command.data = ngx_pnalloc(r->pool, len);
    if (ctx->command.data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->command.data, s, len);
    ctx->command.len = len;
    free(s);

    return NGX_OK;
}


ngx_int_t
ngx_http_commerce_order_publish(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx)
{
    u_char                               at[NGX_INT64_LEN];
    size_t                               atlen;
    ngx_int_t                            rc;
    ngx_str_t                            tp;
    rd_kafka_headers_t                  *hdrs;
    ngx_http_commerce_order_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_order_module);

    if (ngx_http_commerce_kafka_traceparent(r, &tp) != NGX_OK) {
        return NGX_ERROR;
    }

    hdrs = rd_kafka_headers_new(7);
    if (hdrs == NULL) {
        return NGX_ERROR;
    }

    atlen = ngx_sprintf(at, "%L", ctx->received_at) - at;

    (void) rd_kafka_header_add(hdrs, COMMERCE_H_COMMAND_TYPE, -1, ctx->type,
                               -1);
    (void) rd_kafka_header_add(hdrs, COMMERCE_H_COMMAND_ID, -1,
                               ctx->command_id, NGX_HTTP_COMMERCE_UUID_LEN);
    (void) rd_kafka_header_add(hdrs, COMMERCE_H_SUB, -1, ctx->owner.data,
                               ctx->owner.len);

    if (ctx->idem_key.len) {
        (void) rd_kafka_header_add(hdrs, COMMERCE_H_IDEMPOTENCY_KEY, -1,
                                   ctx->idem_key.data, ctx->idem_key.len);
    }

    (void) rd_kafka_header_add(hdrs, COMMERCE_H_RECEIVED_AT, -1, at, atlen);
    (void) rd_kafka_header_add(hdrs, COMMERCE_H_CONTENT_TYPE, -1,
                               "application/json", -1);
    (void) rd_kafka_header_add(hdrs, COMMERCE_H_TRACEPARENT, -1, tp.data,
                               tp.len);

    /* the headers are the producer's from here on */
    rc = ngx_http_commerce_kafka_produce(r, &olcf->topic, &ctx->key,
                                         &ctx->command, hdrs,
                                         ngx_http_commerce_order_published,
                                         ctx, &ctx->retry_after);

    if (rc == NGX_DECLINED && ctx->retry_after <= 0) {
        ctx->retry_after = NGX_HTTP_COMMERCE_ORDER_RETRY_AFTER;
    }

    return rc;
}


void
ngx_http_commerce_order_send_command(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx)
{
    switch (ngx_http_commerce_order_publish(r, ctx)) {

    case NGX_OK:
        return;

    case NGX_DECLINED:
        ngx_http_commerce_order_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "broker_unavailable",
                                     "the event broker cannot take the "
                                     "command now", NULL, ctx->retry_after);
        return;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        ngx_http_commerce_order_too_large(r);
        return;

    default:
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


void
ngx_http_commerce_order_too_large(ngx_http_request_t *r)
{
    ngx_http_commerce_order_fail(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                 "body_too_large", "the event broker "
                                 "refuses a message of this size", NULL, 0);
}


/*
 * The delivery report, with the request alive.  An overdue report
 * (NGX_AGAIN) gets its 503 now and the request stays until the outcome,
 * which ctx->acked records; the handler then finalizes with NGX_DONE.
 */
static void
ngx_http_commerce_order_published(ngx_http_request_t *r, void *data,
    ngx_int_t rc, int32_t partition, int64_t offset, const char *errstr)
{
    ngx_http_commerce_order_ctx_t  *ctx = data;

    if (rc == NGX_AGAIN) {
        ctx->answered = 1;
        r->main->count++;

        ngx_http_commerce_order_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "broker_unavailable",
                                     "the event broker did not confirm "
                                     "the write in time", NULL,
                                     NGX_HTTP_COMMERCE_ORDER_RETRY_AFTER);
        return;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce order: %s %*s not published: %s", ctx->type,
                      (size_t) NGX_HTTP_COMMERCE_UUID_LEN, ctx->command_id,
                      errstr ? errstr : "");

        if (rc != NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            rc = NGX_ERROR;
        }
    }

    ctx->acked(r, ctx, rc);
}


void
ngx_http_commerce_order_command_acked(ngx_http_request_t *r,
    ngx_http_commerce_order_ctx_t *ctx, ngx_int_t rc)
{
    ngx_buf_t  *b;

    if (ctx->answered) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        ngx_http_commerce_order_too_large(r);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_commerce_order_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "broker_unavailable",
                                     "the event broker did not confirm "
                                     "the write", NULL,
                                     NGX_HTTP_COMMERCE_ORDER_RETRY_AFTER);
        return;
    }

    b = ngx_create_temp_buf(r->pool, sizeof("{\"order_id\":,\"status\":"
                                            "\"accepted\",\"command_id\":"
                                            "\"\"}")
                                     + 2 * NGX_HTTP_COMMERCE_UUID_LEN + 4);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    b->last = ngx_cpymem(b->last, "{\"order_id\":",
                         sizeof("{\"order_id\":") - 1);

    if (ctx->id.len) {
        b->last = ngx_sprintf(b->last, "\"%V\"", &ctx->id);

    } else {
        b->last = ngx_cpymem(b->last, "null", 4);
    }

    b->last = ngx_sprintf(b->last, ",\"status\":\"accepted\","
                          "\"command_id\":\"%*s\"}",
                          (size_t) NGX_HTTP_COMMERCE_UUID_LEN,
                          ctx->command_id);

    ngx_http_finalize_request(r,
        ngx_http_commerce_send_json(r, NGX_HTTP_ACCEPTED, b));
}
