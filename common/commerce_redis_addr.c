/*
 * commerce_redis_addr: Redis address text (see the header).
 */

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>

#include "commerce_redis_addr.h"


static commerce_redis_addr_rc_e commerce_redis_addr_unix(
    commerce_redis_addr_t *a, const char *path, size_t len);
static commerce_redis_addr_rc_e commerce_redis_addr_port(const char *p,
    const char *last, int default_port, int *port);


commerce_redis_addr_rc_e
commerce_redis_addr_parse(commerce_redis_addr_t *a, const char *text,
    size_t len, int default_port)
{
    int                        port;
    char                       buf[COMMERCE_REDIS_HOST_MAX];
    size_t                     hlen;
    const char                *host, *last, *p;
    unsigned char              v6[16];
    commerce_redis_addr_rc_e   rc;

    if (len >= 5 && memcmp(text, "unix:", 5) == 0) {
        return commerce_redis_addr_unix(a, text + 5, len - 5);
    }

    if (len && text[0] == '/') {
        return commerce_redis_addr_unix(a, text, len);
    }

    last = text + len;

    if (len && text[0] == '[') {
        host = text + 1;
        p = memchr(host, ']', len - 1);

        if (p == NULL || (p + 1 < last && p[1] != ':')) {
            return COMMERCE_REDIS_ADDR_INVALID_HOST;
        }

        hlen = p - host;
        p = (p + 1 < last) ? p + 2 : NULL;

    } else {
        host = text;
        p = memchr(text, ':', len);
        hlen = p ? (size_t) (p - text) : len;
        p = p ? p + 1 : NULL;
    }

    /* the port first, as nginx does: "::1:6379" has an invalid port */

    rc = commerce_redis_addr_port(p, last, default_port, &port);
    if (rc != COMMERCE_REDIS_ADDR_OK) {
        return rc;
    }

    if (hlen == 0) {
        return COMMERCE_REDIS_ADDR_NO_HOST;
    }

    if (hlen >= COMMERCE_REDIS_HOST_MAX
        || memchr(host, '/', hlen) || memchr(host, '?', hlen)
        || memchr(host, '\0', hlen))
    {
        return COMMERCE_REDIS_ADDR_INVALID_HOST;
    }

    memcpy(buf, host, hlen);
    buf[hlen] = '\0';

    if (host != text && inet_pton(AF_INET6, buf, v6) != 1) {
        return COMMERCE_REDIS_ADDR_INVALID_IPV6;
    }

    memcpy(a->host, buf, hlen + 1);
    a->port = port;
    a->is_unix = 0;

    return COMMERCE_REDIS_ADDR_OK;
}


static commerce_redis_addr_rc_e
commerce_redis_addr_unix(commerce_redis_addr_t *a, const char *path,
    size_t len)
{
    if (len == 0) {
        return COMMERCE_REDIS_ADDR_NO_PATH;
    }

    if (len >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
        return COMMERCE_REDIS_ADDR_PATH_TOO_LONG;
    }

    /* the path is used as a C string */
    if (memchr(path, '\0', len)) {
        return COMMERCE_REDIS_ADDR_INVALID_PATH;
    }

    memcpy(a->host, path, len);
    a->host[len] = '\0';
    a->port = 0;
    a->is_unix = 1;

    return COMMERCE_REDIS_ADDR_OK;
}


/* digits only, 1..65535; p is NULL when the text has no ":port" */
static commerce_redis_addr_rc_e
commerce_redis_addr_port(const char *p, const char *last, int default_port,
    int *port)
{
    int  n;

    if (p == NULL) {
        *port = default_port;
        return default_port ? COMMERCE_REDIS_ADDR_OK
                            : COMMERCE_REDIS_ADDR_NO_PORT;
    }

    if (p == last) {
        return COMMERCE_REDIS_ADDR_INVALID_PORT;
    }

    for (n = 0; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return COMMERCE_REDIS_ADDR_INVALID_PORT;
        }

        n = n * 10 + (*p - '0');

        if (n > 65535) {
            return COMMERCE_REDIS_ADDR_INVALID_PORT;
        }
    }

    if (n == 0) {
        return COMMERCE_REDIS_ADDR_INVALID_PORT;
    }

    *port = n;

    return COMMERCE_REDIS_ADDR_OK;
}


const char *
commerce_redis_addr_strerror(commerce_redis_addr_rc_e rc)
{
    switch (rc) {

    case COMMERCE_REDIS_ADDR_OK:
        return "ok";

    case COMMERCE_REDIS_ADDR_NO_HOST:
        return "no host";

    case COMMERCE_REDIS_ADDR_NO_PATH:
        return "no path in the unix domain socket";

    case COMMERCE_REDIS_ADDR_INVALID_HOST:
        return "invalid host";

    case COMMERCE_REDIS_ADDR_INVALID_IPV6:
        return "invalid IPv6 address";

    case COMMERCE_REDIS_ADDR_NO_PORT:
        return "no port";

    case COMMERCE_REDIS_ADDR_INVALID_PORT:
        return "invalid port";

    case COMMERCE_REDIS_ADDR_PATH_TOO_LONG:
        return "unix socket path is too long";

    case COMMERCE_REDIS_ADDR_INVALID_PATH:
        return "invalid unix domain socket path";
    }

    return "invalid address";
}
