/*
 * The worker's cache of read-model values (commerce_redis_cache_size),
 * kept coherent by Redis client-side caching: a tracking connection per
 * server (ngx_http_commerce_redis_conn.c) receives an invalidation for
 * every write to a key under a cached prefix, and the cached values of
 * that key go.  Only replies of GET and HGET of such keys are cached, and
 * only while every server's tracking connection is subscribed.
 *
 * Use (a read):
 *
 *     rc = ngx_http_commerce_redis_cache_get(&cmd, &value);
 *     if (rc == NGX_OK) {
 *         serve value (value.data == NULL: the key or field does not exist)
 *     }
 *     ngx_http_commerce_redis_send(r, ..., &cmd, ...);  the reply fills it
 *
 * A value is valid until the caller returns to the event loop.
 */

#ifndef _NGX_HTTP_COMMERCE_REDIS_CACHE_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_REDIS_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>

#include "ngx_http_commerce_redis.h"


typedef struct ngx_http_commerce_redis_cache_entry_s
    ngx_http_commerce_redis_cache_entry_t;


/*
 * NGX_OK: a hit, in *value.  NGX_DECLINED: ask Redis; when the reply can
 * be cached, cmd->fill holds the entry it fills.
 */
ngx_int_t ngx_http_commerce_redis_cache_get(
    ngx_http_commerce_redis_cmd_t *cmd, ngx_str_t *value);

/* the reply of a command that had cmd->fill (NULL: no reply will come) */
void ngx_http_commerce_redis_cache_fill(
    ngx_http_commerce_redis_cache_entry_t *e, redisReply *reply);


/* the tracking side (ngx_http_commerce_redis_conn.c) */

/* at worker start: 0 bytes leaves the cache off */
void ngx_http_commerce_redis_cache_init(size_t size, ngx_msec_t valid,
    ngx_log_t *log);

/* every server's tracking is subscribed (1), or one is not any more (0) */
void ngx_http_commerce_redis_cache_ready(ngx_uint_t ready);

/* a write to this Redis key (NULL: to all of them, as after FLUSHALL) */
void ngx_http_commerce_redis_cache_invalidate(u_char *key, size_t len);

/* the prefixes whose keys are cached and tracked, NULL-terminated */
extern const char  *ngx_http_commerce_redis_cache_prefixes[];


#endif /* _NGX_HTTP_COMMERCE_REDIS_CACHE_H_INCLUDED_ */
