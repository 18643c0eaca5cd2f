/*
 * cw_redis: synchronous Redis for workers, on hiredis 0.14.
 *
 * A cw_redis_t holds one connection to "host:port", "[v6addr]:port",
 * "unix:/path" or "/path" (parsed by common/commerce_redis_addr.h, the
 * port is required), with a connect timeout and a per-command timeout.
 * A connection that fails (I/O error, EOF, timeout, protocol
 * error) is dropped; the next call reconnects, no sooner than an
 * exponential backoff allows.
 *
 * Errors are classified: connection problems and the server replies
 * LOADING, BUSY, TRYAGAIN, MASTERDOWN, CLUSTERDOWN, READONLY are
 * TRANSIENT; other error replies (ERR, WRONGTYPE, NOSCRIPT, ...) are
 * PERMANENT.
 *
 * Configuration (cw_redis_declare): redis.address, redis.connect_timeout,
 * redis.timeout.
 */

#ifndef CW_REDIS_H
#define CW_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "cw_config.h"

typedef enum {
    CW_REDIS_OK = 0,
    CW_REDIS_TRANSIENT,
    CW_REDIS_PERMANENT
} cw_redis_class_t;

typedef struct cw_redis_s  cw_redis_t;

int cw_redis_declare(cw_config_t *cfg);

/* Validates the address; does not connect yet. NULL on a bad address. */
cw_redis_t *cw_redis_new(const char *address, int connect_timeout_ms,
    int timeout_ms, char *err, size_t errlen);
cw_redis_t *cw_redis_new_from_config(const cw_config_t *cfg, char *err,
    size_t errlen);
void cw_redis_free(cw_redis_t *r);

/* Connects if needed; 0 when connected, -1 (transient) with err. */
int cw_redis_ensure(cw_redis_t *r, char *err, size_t errlen);

/* One command. Returns the reply (caller freeReplyObject()s it) unless
 * the connection failed or the reply is an error: then NULL with *cls
 * and err set. */
redisReply *cw_redis_command(cw_redis_t *r, cw_redis_class_t *cls,
    char *err, size_t errlen, const char *fmt, ...);
redisReply *cw_redis_commandv(cw_redis_t *r, int argc, const char **argv,
    const size_t *lens, cw_redis_class_t *cls, char *err, size_t errlen);

/* Pipelines: queue commands with cw_redis_append, then cw_redis_exec
 * reads one reply per queued command into replies (error replies are
 * returned as they are, for the caller to inspect). Returns 0, or -1 if
 * the connection failed (every reply already read is freed). */
int cw_redis_append(cw_redis_t *r, int argc, const char **argv,
    const size_t *lens);
int cw_redis_exec(cw_redis_t *r, redisReply **replies, size_t n,
    char *err, size_t errlen);

/* Pure classification of a reply (NULL means no reply: transient). */
cw_redis_class_t cw_redis_classify_reply(const redisReply *reply);

#endif /* CW_REDIS_H */
