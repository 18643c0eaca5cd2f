/*
 * cw_redis: hiredis connection with timeouts, reconnect and pipelines.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "commerce_redis_addr.h"
#include "cw_log.h"
#include "cw_redis.h"
#include "cw_retry.h"
#include "cw_time.h"

struct cw_redis_s {
    redisContext           *ctx;
    commerce_redis_addr_t   addr;
    int                     connect_timeout_ms;
    int                     timeout_ms;
    size_t                  pending;        /* appended, not yet read */
    cw_backoff_t            reconnect;
    int64_t                 next_attempt;
};

static const cw_opt_t  cw_redis_opts[] = {
    { "redis.address", CW_OPT_STR, "", 0, 0, CW_OPT_REQUIRED,
      "host:port, [v6]:port, unix:/path or /path" },
    { "redis.connect_timeout", CW_OPT_DURATION, "500ms", 1, 60000, 0,
      "connect timeout" },
    { "redis.timeout", CW_OPT_DURATION, "500ms", 1, 60000, 0,
      "per-command read/write timeout" },
};


int
cw_redis_declare(cw_config_t *cfg)
{
    return cw_config_declare(cfg, cw_redis_opts,
                             sizeof(cw_redis_opts) / sizeof(cw_redis_opts[0]));
}


cw_redis_t *
cw_redis_new(const char *address, int connect_timeout_ms, int timeout_ms,
    char *err, size_t errlen)
{
    cw_redis_t  *r;

    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* no default port: redis.address names it */
    if (commerce_redis_addr_parse(&r->addr, address, strlen(address), 0)
        != COMMERCE_REDIS_ADDR_OK)
    {
        snprintf(err, errlen, "invalid redis address \"%s\" (use host:port, "
                 "[v6]:port or unix:/path)", address);
        free(r);
        return NULL;
    }
    r->connect_timeout_ms = connect_timeout_ms;
    r->timeout_ms = timeout_ms;
    cw_backoff_init(&r->reconnect, 50, 2000, 0.5, 0, 0);
    return r;
}


cw_redis_t *
cw_redis_new_from_config(const cw_config_t *cfg, char *err, size_t errlen)
{
    return cw_redis_new(cw_config_str(cfg, "redis.address"),
                        (int) cw_config_duration_ms(cfg,
                                                    "redis.connect_timeout"),
                        (int) cw_config_duration_ms(cfg, "redis.timeout"),
                        err, errlen);
}


void
cw_redis_free(cw_redis_t *r)
{
    if (r == NULL) {
        return;
    }
    if (r->ctx != NULL) {
        redisFree(r->ctx);
    }
    free(r);
}


static struct timeval
cw_tv(int ms)
{
    struct timeval  tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}


/* A context with an error is unusable in hiredis; drop it so the next
 * call reconnects, and describe the failure. */
static void
cw_redis_drop(cw_redis_t *r, char *err, size_t errlen)
{
    if (r->ctx == NULL) {
        return;
    }
    if (r->ctx->err != 0) {
        snprintf(err, errlen, "redis %s%s%d: %s",
                 r->addr.is_unix ? "unix:" : r->addr.host,
                 r->addr.is_unix ? r->addr.host : ":",
                 r->addr.is_unix ? 0 : r->addr.port,
                 r->ctx->err == REDIS_ERR_IO && (errno == EAGAIN
                                                 || errno == EWOULDBLOCK)
                     ? "timeout" : r->ctx->errstr);
    }
    redisFree(r->ctx);
    r->ctx = NULL;
    r->pending = 0;
}


int
cw_redis_ensure(cw_redis_t *r, char *err, size_t errlen)
{
    struct timeval  tv;
    int64_t         now;

    if (r->ctx != NULL) {
        return 0;
    }
    now = cw_now_ms();
    if (now < r->next_attempt) {
        snprintf(err, errlen, "redis: reconnect in %lld ms",
                 (long long) (r->next_attempt - now));
        return -1;
    }
    tv = cw_tv(r->connect_timeout_ms);
    r->ctx = r->addr.is_unix
             ? redisConnectUnixWithTimeout(r->addr.host, tv)
             : redisConnectWithTimeout(r->addr.host, r->addr.port, tv);
    if (r->ctx == NULL || r->ctx->err != 0) {
        if (r->ctx == NULL) {
            snprintf(err, errlen, "redis connect: out of memory");
        } else {
            cw_redis_drop(r, err, errlen);
        }
        r->next_attempt = now + cw_backoff_next(&r->reconnect);
        return -1;
    }
    tv = cw_tv(r->timeout_ms);
    if (redisSetTimeout(r->ctx, tv) != REDIS_OK) {
        cw_redis_drop(r, err, errlen);
        r->next_attempt = now + cw_backoff_next(&r->reconnect);
        return -1;
    }
    cw_backoff_reset(&r->reconnect);
    r->next_attempt = 0;
    return 0;
}


cw_redis_class_t
cw_redis_classify_reply(const redisReply *reply)
{
    static const char  *transient[] = {
        "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN",
        "READONLY"
    };
    size_t              i, len;

    if (reply == NULL) {
        return CW_REDIS_TRANSIENT;
    }
    if (reply->type != REDIS_REPLY_ERROR) {
        return CW_REDIS_OK;
    }
    for (i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        len = strlen(transient[i]);
        if (reply->len >= len && strncmp(reply->str, transient[i], len) == 0
            && (reply->len == len || reply->str[len] == ' '))
        {
            return CW_REDIS_TRANSIENT;
        }
    }
    return CW_REDIS_PERMANENT;
}


/* Turns what hiredis returned into (reply | NULL + class + message). */
static redisReply *
cw_redis_result(cw_redis_t *r, redisReply *reply, cw_redis_class_t *cls,
    char *err, size_t errlen)
{
    if (reply == NULL) {
        *cls = CW_REDIS_TRANSIENT;
        snprintf(err, errlen, "redis: connection failed");
        cw_redis_drop(r, err, errlen);
        return NULL;
    }
    *cls = cw_redis_classify_reply(reply);
    if (*cls != CW_REDIS_OK) {
        snprintf(err, errlen, "redis: %.*s", (int) reply->len, reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}


redisReply *
cw_redis_command(cw_redis_t *r, cw_redis_class_t *cls, char *err,
    size_t errlen, const char *fmt, ...)
{
    redisReply  *reply;
    va_list      ap;

    if (cw_redis_ensure(r, err, errlen) != 0) {
        *cls = CW_REDIS_TRANSIENT;
        return NULL;
    }
    va_start(ap, fmt);
    reply = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    return cw_redis_result(r, reply, cls, err, errlen);
}


redisReply *
cw_redis_commandv(cw_redis_t *r, int argc, const char **argv,
    const size_t *lens, cw_redis_class_t *cls, char *err, size_t errlen)
{
    redisReply  *reply;

    if (cw_redis_ensure(r, err, errlen) != 0) {
        *cls = CW_REDIS_TRANSIENT;
        return NULL;
    }
    reply = redisCommandArgv(r->ctx, argc, argv, lens);
    return cw_redis_result(r, reply, cls, err, errlen);
}


int
cw_redis_append(cw_redis_t *r, int argc, const char **argv,
    const size_t *lens)
{
    char  err[256];

    if (cw_redis_ensure(r, err, sizeof(err)) != 0) {
        return -1;
    }
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK) {
        return -1;
    }
    r->pending++;
    return 0;
}


int
cw_redis_exec(cw_redis_t *r, redisReply **replies, size_t n, char *err,
    size_t errlen)
{
    size_t   i, j;
    void    *reply;

    if (r->ctx == NULL || n != r->pending) {
        snprintf(err, errlen, "redis pipeline: %zu replies expected, %zu "
                 "queued%s", n, r->pending,
                 r->ctx == NULL ? " (connection lost)" : "");
        if (r->ctx != NULL) {
            cw_redis_drop(r, err, errlen);
        }
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (redisGetReply(r->ctx, &reply) != REDIS_OK) {
            for (j = 0; j < i; j++) {
                freeReplyObject(replies[j]);
                replies[j] = NULL;
            }
            snprintf(err, errlen, "redis pipeline: connection failed");
            cw_redis_drop(r, err, errlen);
            return -1;
        }
        replies[i] = reply;
    }
    r->pending = 0;
    return 0;
}
