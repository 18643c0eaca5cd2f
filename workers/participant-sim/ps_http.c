/*
 * ps_http: a webhook POST on its own connection, with a deadline for the
 * whole exchange (connect, write, the status line).
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cw_buf.h"
#include "cw_time.h"
#include "ps_http.h"


int
ps_url_parse(const char *url, ps_url_t *u)
{
    size_t       n;
    const char  *h, *end, *colon, *slash;

    if (strncmp(url, "http://", 7) != 0) {
        return -1;
    }
    h = url + 7;
    slash = strchr(h, '/');
    end = slash != NULL ? slash : h + strlen(h);
    colon = memchr(h, ':', (size_t) (end - h));

    n = (size_t) ((colon != NULL ? colon : end) - h);
    if (n == 0 || n >= sizeof(u->host)) {
        return -1;
    }
    memcpy(u->host, h, n);
    u->host[n] = '\0';

    if (colon != NULL) {
        n = (size_t) (end - colon - 1);
        if (n == 0 || n >= sizeof(u->port)
            || strspn(colon + 1, "0123456789") < n)
        {
            return -1;
        }
        memcpy(u->port, colon + 1, n);
        u->port[n] = '\0';
    } else {
        snprintf(u->port, sizeof(u->port), "80");
    }

    if (snprintf(u->path, sizeof(u->path), "%s",
                 slash != NULL ? slash : "/") >= (int) sizeof(u->path))
    {
        return -1;
    }

    return 0;
}


/* Waits until fd is ready for events or the deadline passes. */
static int
ps_wait(int fd, short events, int64_t deadline)
{
    int            rc;
    int64_t        left;
    struct pollfd  p;

    for ( ;; ) {
        left = deadline - cw_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        p.fd = fd;
        p.events = events;
        rc = poll(&p, 1, (int) left);
        if (rc > 0) {
            return 0;
        }
        if (rc < 0 && errno != EINTR) {
            return -1;
        }
    }
}


static int
ps_connect(const ps_url_t *u, int64_t deadline, char *err, size_t errlen)
{
    int               fd = -1, rc, soerr;
    socklen_t         sl = sizeof(soerr);
    struct addrinfo   hints, *res, *ai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", u->host, gai_strerror(rc));
        return -1;
    }

    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK
                    | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0
            || (errno == EINPROGRESS && ps_wait(fd, POLLOUT, deadline) == 0
                && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0
                && (errno = soerr) == 0))
        {
            break;
        }
        snprintf(err, errlen, "connect %s:%s: %s", u->host, u->port,
                 strerror(errno));
        close(fd);
        fd = -1;
    }

    freeaddrinfo(res);

    return fd;
}


static int
ps_send_all(int fd, const char *p, size_t n, int64_t deadline)
{
    ssize_t  w;

    while (n > 0) {
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t) w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            if (ps_wait(fd, POLLOUT, deadline) != 0) {
                return -1;
            }
        } else {
            return -1;
        }
    }

    return 0;
}


/* Reads until the status line is in: "HTTP/1.x NNN ...". */
static int
ps_read_status(int fd, int64_t deadline, int *status)
{
    char     buf[512];
    size_t   n = 0;
    ssize_t  r;

    while (n < sizeof(buf) - 1) {
        r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (r > 0) {
            n += (size_t) r;
            buf[n] = '\0';
            if (strchr(buf, '\n') != NULL) {
                break;
            }
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && errno == EAGAIN) {
            if (ps_wait(fd, POLLIN, deadline) != 0) {
                return -1;
            }
        } else {
            errno = r == 0 ? ECONNRESET : errno;
            return -1;
        }
    }

    buf[n] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %3d", status) != 1) {
        errno = EPROTO;
        return -1;
    }

    return 0;
}


int
ps_http_post(const ps_url_t *u, const char *headers, const char *body,
    size_t len, int timeout_ms, int *status, char *err, size_t errlen)
{
    int       fd, rc = -1;
    int64_t   deadline = cw_now_ms() + timeout_ms;
    cw_buf_t  req;

    fd = ps_connect(u, deadline, err, errlen);
    if (fd < 0) {
        return -1;
    }

    cw_buf_init(&req);
    cw_buf_printf(&req, "POST %s HTTP/1.1\r\nHost: %s:%s\r\n"
                  "User-Agent: Stripe/1.0 (+https://stripe.com/docs/"
                  "webhooks)\r\nContent-Type: application/json; "
                  "charset=utf-8\r\nContent-Length: %zu\r\n%s"
                  "Connection: close\r\n\r\n", u->path, u->host, u->port,
                  len, headers);
    cw_buf_append(&req, body, len);

    if (req.oom) {
        snprintf(err, errlen, "out of memory");
    } else if (ps_send_all(fd, req.data, req.len, deadline) != 0
               || ps_read_status(fd, deadline, status) != 0)
    {
        snprintf(err, errlen, "POST %s:%s%s: %s", u->host, u->port,
                 u->path, strerror(errno));
    } else {
        rc = 0;
    }

    cw_buf_free(&req);
    close(fd);

    return rc;
}
