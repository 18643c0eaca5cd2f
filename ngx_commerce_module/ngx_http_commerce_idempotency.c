/*
 * Idempotency-Key records in Redis (see the header and docs/contract.md,
 * idem:).  Three scripts, each atomic in Redis, sent by their SHA1:
 * the claim (the record there, or ours created in flight, only before
 * the request's deadline), the completion (the answer stored, only by
 * the request that holds the record) and the release (deleted, only by
 * that request).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "commerce_contract.h"

#include "ngx_http_commerce_headers.h"
#include "ngx_http_commerce_idempotency.h"
#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_redis.h"
#include "ngx_http_commerce_util.h"


typedef enum {
    NGX_HTTP_COMMERCE_IDEM_OP_CLAIM = 0,
    NGX_HTTP_COMMERCE_IDEM_OP_COMPLETE,
    NGX_HTTP_COMMERCE_IDEM_OP_RELEASE
} ngx_http_commerce_idem_op_e;


static ngx_int_t ngx_http_commerce_idem_send_op(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, time_t *retry_after);
static void ngx_http_commerce_idem_reply(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply);
static ngx_int_t ngx_http_commerce_idem_claimed(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, redisReply *reply);
static ngx_int_t ngx_http_commerce_idem_copy(ngx_http_request_t *r,
    ngx_str_t *dst, redisReply *reply);


/*
 * SHA-256, fetched from the provider once per process: EVP_sha256() is
 * looked up in OpenSSL 3's tables at every use (a lock and a hash
 * lookup each time).  Kept until the process exits.
 */
static EVP_MD  *ngx_http_commerce_idem_sha256;


/*
 * The record there (state, fp, status, location, body), or nil: ours.
 * It carries the moment its request stops waiting (ARGV[4]): executed
 * later, it creates nothing and returns Redis's time, so that no record
 * is left in flight that nobody is publishing (and that would answer the
 * client's retries 409 for commerce_idempotency_inflight_ttl).
 */
static ngx_http_commerce_redis_script_t  ngx_http_commerce_idem_claim_lua =
    ngx_http_commerce_redis_script(
    NGX_HTTP_COMMERCE_REDIS_DEADLINE_LUA("4")
    "local v = redis.call('HMGET', KEYS[1], 'state', 'fp', 'status', "
    "'location', 'body') "
    "if v[1] then return v end "
    "redis.call('HSET', KEYS[1], 'state', '" COMMERCE_IDEM_INFLIGHT "', "
    "'fp', ARGV[1], 'token', ARGV[2]) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[3]) "
    "return false");


static ngx_http_commerce_redis_script_t
    ngx_http_commerce_idem_complete_lua = ngx_http_commerce_redis_script(
    "if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end "
    "redis.call('HSET', KEYS[1], 'state', '" COMMERCE_IDEM_DONE "', "
    "'status', ARGV[2], 'location', ARGV[3], 'body', ARGV[4]) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[5]) "
    "return 1");


static ngx_http_commerce_redis_script_t
    ngx_http_commerce_idem_release_lua = ngx_http_commerce_redis_script(
    "if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0");


/*
 * The header's one value, an RFC 8941 sf-string (ngx_http_commerce_sf_string:
 * DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE).  nginx has
 * trimmed the field value's surrounding spaces; a key sent twice is two
 * members of one field, not a string.
 */
ngx_int_t
ngx_http_commerce_idem_key(ngx_http_request_t *r, ngx_str_t *key,
    const char **msg)
{
    ngx_uint_t        n;
    ngx_table_elt_t  *found;

    static ngx_str_t  name = ngx_string("Idempotency-Key");

    found = ngx_http_commerce_header_in(r, &name, &n);

    if (found == NULL) {
        *msg = "an Idempotency-Key header is required";
        return NGX_DECLINED;
    }

    if (n > 1) {
        *msg = "one Idempotency-Key header, not several";
        return NGX_DECLINED;
    }

    key->data = ngx_pnalloc(r->pool, found->value.len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_commerce_sf_string(found->value.data, found->value.len,
                                    key->data, &key->len)
        != NULL)
    {
        *msg = "the Idempotency-Key must be an RFC 8941 sf-string: quoted, "
               "visible ASCII and spaces, only \\\" and \\\\ escaped";
        return NGX_DECLINED;
    }

    if (key->len == 0) {
        *msg = "the Idempotency-Key must not be empty";
        return NGX_DECLINED;
    }

    if (key->len > NGX_HTTP_COMMERCE_IDEM_KEY_MAX) {
        *msg = "the Idempotency-Key is longer than 255 characters";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_commerce_idem_init(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, ngx_str_t *owner, ngx_str_t *key,
    ngx_str_t *body, ngx_msec_t inflight_ttl, ngx_msec_t ttl)
{
    u_char        *p, md[EVP_MAX_MD_SIZE];
    unsigned int   mdlen;
    EVP_MD_CTX    *c;

    ngx_memzero(idem, sizeof(ngx_http_commerce_idem_t));

    idem->inflight_ttl = inflight_ttl;
    idem->ttl = ttl;

    if (ngx_http_commerce_idem_sha256 == NULL) {
        ngx_http_commerce_idem_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);

        if (ngx_http_commerce_idem_sha256 == NULL) {
            return NGX_ERROR;
        }
    }

    if (EVP_Digest(body->data, body->len, md, &mdlen,
                   ngx_http_commerce_idem_sha256, NULL)
        != 1)
    {
        return NGX_ERROR;
    }

    ngx_hex_dump(idem->fp, md, 32);

    c = EVP_MD_CTX_new();
    if (c == NULL) {
        return NGX_ERROR;
    }

    /* each part NUL-terminated: no two triples hash the same bytes */
    if (EVP_DigestInit_ex(c, ngx_http_commerce_idem_sha256, NULL) != 1
        || EVP_DigestUpdate(c, owner->data, owner->len) != 1
        || EVP_DigestUpdate(c, "", 1) != 1
        || EVP_DigestUpdate(c, r->uri.data, r->uri.len) != 1
        || EVP_DigestUpdate(c, "", 1) != 1
        || EVP_DigestUpdate(c, key->data, key->len) != 1
        || EVP_DigestUpdate(c, "", 1) != 1
        || EVP_DigestFinal_ex(c, md, &mdlen) != 1)
    {
        EVP_MD_CTX_free(c);
        return NGX_ERROR;
    }

    EVP_MD_CTX_free(c);

    p = ngx_pnalloc(r->pool, COMMERCE_LEN(COMMERCE_RK_IDEMPOTENCY) + 64
                             + NGX_INT64_LEN + NGX_ATOMIC_T_LEN
                             + NGX_INT_T_LEN + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    idem->rkey.data = p;
    p = ngx_cpymem(p, COMMERCE_RK_IDEMPOTENCY,
                   COMMERCE_LEN(COMMERCE_RK_IDEMPOTENCY));
    p = ngx_hex_dump(p, md, 32);
    idem->rkey.len = p - idem->rkey.data;

    /* unique per request: worker pid, connection number, request number */
    idem->token.data = p;
    idem->token.len = ngx_sprintf(p, "%P-%uA-%ui", ngx_pid,
                                  r->connection->number,
                                  r->connection->requests)
                      - p;

    return NGX_OK;
}


ngx_int_t
ngx_http_commerce_idem_claim(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, ngx_http_commerce_idem_handler_pt handler,
    void *data, time_t *retry_after)
{
    idem->op = NGX_HTTP_COMMERCE_IDEM_OP_CLAIM;
    idem->handler = handler;
    idem->data = data;

    return ngx_http_commerce_idem_send_op(r, idem, retry_after);
}


ngx_int_t
ngx_http_commerce_idem_complete(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, ngx_http_commerce_idem_handler_pt handler,
    void *data)
{
    time_t  retry_after;

    idem->op = NGX_HTTP_COMMERCE_IDEM_OP_COMPLETE;
    idem->handler = handler;
    idem->data = data;

    return ngx_http_commerce_idem_send_op(r, idem, &retry_after);
}


ngx_int_t
ngx_http_commerce_idem_release(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, ngx_http_commerce_idem_handler_pt handler,
    void *data)
{
    time_t  retry_after;

    idem->op = NGX_HTTP_COMMERCE_IDEM_OP_RELEASE;
    idem->handler = handler;
    idem->data = data;

    return ngx_http_commerce_idem_send_op(r, idem, &retry_after);
}


static ngx_int_t
ngx_http_commerce_idem_send_op(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, time_t *retry_after)
{
    ngx_msec_t                        timeout;
    ngx_http_commerce_redis_cmd_t     cmd;
    ngx_http_commerce_redis_script_t *script;

    static ngx_http_commerce_redis_script_t  *scripts[] = {
        &ngx_http_commerce_idem_claim_lua,
        &ngx_http_commerce_idem_complete_lua,
        &ngx_http_commerce_idem_release_lua
    };

    script = scripts[idem->op];
    timeout = ngx_http_commerce_redis_timeout(r);

    ngx_http_commerce_redis_cmd_init(&cmd);

    /* the completion's 9 arguments */
    if (ngx_http_commerce_redis_cmd_reserve(&cmd, r->pool, 9) != NGX_OK) {
        return NGX_ERROR;
    }
    ngx_http_commerce_redis_cmd_arg_script(&cmd, script, idem->eval);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "1");
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &idem->rkey);

    switch (idem->op) {

    case NGX_HTTP_COMMERCE_IDEM_OP_CLAIM:
        ngx_http_commerce_redis_cmd_arg(&cmd, idem->fp, sizeof(idem->fp));
        ngx_http_commerce_redis_cmd_arg_str(&cmd, &idem->token);
        ngx_http_commerce_redis_cmd_arg_uint(&cmd, idem->inflight_ttl);
        ngx_http_commerce_redis_cmd_arg_deadline(&cmd, idem->no_deadline
                                                       ? 0 : timeout);
        break;

    case NGX_HTTP_COMMERCE_IDEM_OP_COMPLETE:
        ngx_http_commerce_redis_cmd_arg_str(&cmd, &idem->token);
        ngx_http_commerce_redis_cmd_arg_uint(&cmd, idem->status);
        ngx_http_commerce_redis_cmd_arg_str(&cmd, &idem->location);
        ngx_http_commerce_redis_cmd_arg_str(&cmd, &idem->body);
        ngx_http_commerce_redis_cmd_arg_uint(&cmd, idem->ttl);
        break;

    default: /* NGX_HTTP_COMMERCE_IDEM_OP_RELEASE */
        ngx_http_commerce_redis_cmd_arg_str(&cmd, &idem->token);
        break;
    }

    return ngx_http_commerce_redis_send(r, timeout,
                                        ngx_http_commerce_idem_reply, idem,
                                        &cmd, retry_after);
}


static void
ngx_http_commerce_idem_reply(ngx_http_request_t *r, void *data, ngx_int_t rc,
    redisReply *reply)
{
    ngx_http_commerce_idem_t *idem = data;

    time_t     retry_after;
    ngx_int_t  res;

    if (rc == NGX_HTTP_COMMERCE_REDIS_OK && !idem->eval
        && ngx_http_commerce_redis_noscript(reply))
    {
        /* Redis restarted or flushed its scripts: the script whole */

        idem->eval = 1;

        if (ngx_http_commerce_idem_send_op(r, idem, &retry_after) == NGX_OK) {
            return;
        }

        idem->handler(r, idem->data, NGX_ERROR);
        return;
    }

    if (rc == NGX_HTTP_COMMERCE_REDIS_OK
        && idem->op == NGX_HTTP_COMMERCE_IDEM_OP_CLAIM && !idem->no_deadline
        && ngx_http_commerce_redis_late(r, reply, "commerce idempotency"))
    {
        idem->no_deadline = 1;

        if (ngx_http_commerce_idem_send_op(r, idem, &retry_after) == NGX_OK) {
            return;
        }

        idem->handler(r, idem->data, NGX_ERROR);
        return;
    }

    if (rc != NGX_HTTP_COMMERCE_REDIS_OK || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce idempotency: record \"%V\" not %s: %*s",
                      &idem->rkey,
                      idem->op == NGX_HTTP_COMMERCE_IDEM_OP_CLAIM
                      ? "claimed"
                      : idem->op == NGX_HTTP_COMMERCE_IDEM_OP_COMPLETE
                        ? "completed" : "released",
                      reply ? (size_t) reply->len : sizeof("no reply") - 1,
                      reply ? reply->str : "no reply");
        idem->handler(r, idem->data, NGX_ERROR);
        return;
    }

    res = NGX_OK;

    switch (idem->op) {

    case NGX_HTTP_COMMERCE_IDEM_OP_CLAIM:
        res = ngx_http_commerce_idem_claimed(r, idem, reply);
        break;

    case NGX_HTTP_COMMERCE_IDEM_OP_COMPLETE:
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "commerce idempotency: record \"%V\" expired "
                          "before its answer was stored", &idem->rkey);
        }
        break;

    default: /* NGX_HTTP_COMMERCE_IDEM_OP_RELEASE */
        idem->claimed = 0;
        break;
    }

    idem->handler(r, idem->data, res);
}


/* nil: the record is ours; an array: the one there, its answer copied */
static ngx_int_t
ngx_http_commerce_idem_claimed(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, redisReply *reply)
{
    ngx_int_t    status;
    redisReply **e;

    if (reply->type == REDIS_REPLY_NIL) {
        idem->outcome = NGX_HTTP_COMMERCE_IDEM_NEW;
        idem->claimed = 1;
        return NGX_OK;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5) {
        return NGX_ERROR;
    }

    e = reply->element;

    if (e[1]->type != REDIS_REPLY_STRING || e[1]->len != sizeof(idem->fp)
        || ngx_strncmp(e[1]->str, idem->fp, sizeof(idem->fp)) != 0)
    {
        idem->outcome = NGX_HTTP_COMMERCE_IDEM_MISMATCH;
        return NGX_OK;
    }

    if (e[0]->type != REDIS_REPLY_STRING
        || e[0]->len != COMMERCE_LEN(COMMERCE_IDEM_DONE)
        || ngx_strncmp(e[0]->str, COMMERCE_IDEM_DONE,
                       COMMERCE_LEN(COMMERCE_IDEM_DONE)) != 0)
    {
        idem->outcome = NGX_HTTP_COMMERCE_IDEM_INFLIGHT;
        return NGX_OK;
    }

    status = e[2]->type == REDIS_REPLY_STRING
             ? ngx_atoi((u_char *) e[2]->str, e[2]->len) : NGX_ERROR;

    if (status < 200 || status > 599
        || ngx_http_commerce_idem_copy(r, &idem->location, e[3]) != NGX_OK
        || ngx_http_commerce_idem_copy(r, &idem->body, e[4]) != NGX_OK)
    {
        return NGX_ERROR;
    }

    idem->status = status;
    idem->outcome = NGX_HTTP_COMMERCE_IDEM_DONE;

    return NGX_OK;
}


static ngx_int_t
ngx_http_commerce_idem_copy(ngx_http_request_t *r, ngx_str_t *dst,
    redisReply *reply)
{
    if (reply->type != REDIS_REPLY_STRING) {
        return NGX_ERROR;
    }

    dst->len = reply->len;
    dst->data = ngx_pnalloc(r->pool, reply->len + 1);

    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, reply->str, reply->len);

    return NGX_OK;
}


ngx_int_t
ngx_http_commerce_idem_send(ngx_http_request_t *r,
    ngx_http_commerce_idem_t *idem, ngx_uint_t replayed)
{
    ngx_buf_t        *b;
    ngx_table_elt_t  *h;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = idem->body.data;
    b->last = idem->body.data + idem->body.len;
    b->memory = 1;

    if (idem->location.len) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Location");
        /* as is, not r->headers_out.location: nginx would make it absolute */
        h->value = idem->location;
    }

    if (replayed) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Idempotent-Replayed");
        ngx_str_set(&h->value, "true");
    }

    return ngx_http_commerce_send_json(r, idem->status, b);
}
