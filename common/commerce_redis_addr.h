/*
 * commerce_redis_addr: the text of a Redis address, as commerce_redis_server
 * (nginx module) and redis.address (workers) take it (pure C, no resolver:
 * a host name is resolved by the caller).
 *
 *   ip:port, host:port    port 1..65535; without ":port" the caller's
 *                         default port, or an error when it has none (0)
 *   [ipv6]:port           the address without its brackets in host
 *   unix:/path, /path     a unix socket; port is 0
 *
 * Use:
 *
 *     commerce_redis_addr_t  a;
 *
 *     rc = commerce_redis_addr_parse(&a, text, len, 6379);
 *     if (rc != COMMERCE_REDIS_ADDR_OK) {
 *         ... commerce_redis_addr_strerror(rc) ...
 *     }
 *
 *     a.is_unix ? connect_unix(a.host) : connect(a.host, a.port);
 */

#ifndef COMMERCE_REDIS_ADDR_H
#define COMMERCE_REDIS_ADDR_H


#include <stddef.h>


/* the longest host name (253) or socket path, with its NUL */
#define COMMERCE_REDIS_HOST_MAX  256


typedef enum {
    COMMERCE_REDIS_ADDR_OK = 0,
    COMMERCE_REDIS_ADDR_NO_HOST,
    COMMERCE_REDIS_ADDR_NO_PATH,
    COMMERCE_REDIS_ADDR_INVALID_HOST,
    COMMERCE_REDIS_ADDR_INVALID_IPV6,
    COMMERCE_REDIS_ADDR_NO_PORT,
    COMMERCE_REDIS_ADDR_INVALID_PORT,
    COMMERCE_REDIS_ADDR_PATH_TOO_LONG,     /* longer than sun_path holds */
    COMMERCE_REDIS_ADDR_INVALID_PATH       /* a NUL in the path */
} commerce_redis_addr_rc_e;


typedef struct {
    char                        host[COMMERCE_REDIS_HOST_MAX];
    int                         port;      /* 0 for a unix socket */
    int                         is_unix;
} commerce_redis_addr_t;


/* text is len bytes, not NUL-terminated; a is set only on success */
commerce_redis_addr_rc_e commerce_redis_addr_parse(commerce_redis_addr_t *a,
    const char *text, size_t len, int default_port);

/* "invalid port", "no host", ... (nginx's words for the same mistakes) */
const char *commerce_redis_addr_strerror(commerce_redis_addr_rc_e rc);


#endif /* COMMERCE_REDIS_ADDR_H */
