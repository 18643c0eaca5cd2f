/*
 * cw_metrics_http: GET/HEAD /metrics, many connections on one thread
 * (see cw_metrics_http.h).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cw_buf.h"
#include "cw_log.h"
#include "cw_metrics_http.h"
#include "cw_time.h"

#define CW_METRICS_CTYPE  "text/plain; version=0.0.4; charset=utf-8"

/* One connection: the request bytes read so far and the reply being
 * sent. A slot with fd -1 is free. */
typedef struct {
    int         fd;
    size_t      inlen;
    size_t      outoff;
    int         close_after;    /* close once the reply is sent */
    int64_t     deadline;       /* monotonic ms */
    int64_t     active;         /* last accepted, read or written */
    cw_buf_t    out;
    char        in[CW_METRICS_REQ_MAX];
} cw_conn_t;

/* What a request asks for. */
typedef struct {
    const char  *status;        /* NULL: the metrics */
    const char  *extra;         /* more header lines, or "" */
    int          head;
    int          close;
} cw_req_t;

struct cw_metrics_http_s {
    cw_metrics_t   *m;
    pthread_t       thread;
    int             listen_fd;
    int             stop_pipe[2];
    int             port;
    cw_conn_t       conns[CW_METRICS_CONNS];
};


static void
cw_conn_close(cw_conn_t *c)
{
    close(c->fd);
    c->fd = -1;
    cw_buf_free(&c->out);
}


/* A free slot for a new connection; when none is, the idle connection
 * (between requests) quiet the longest, else the connection quiet the
 * longest, is closed for it. */
static cw_conn_t *
cw_conn_slot(cw_metrics_http_t *h)
{
    cw_conn_t  *c, *idle = NULL, *oldest = NULL;
    size_t      i;

    for (i = 0; i < CW_METRICS_CONNS; i++) {
        c = &h->conns[i];
        if (c->fd < 0) {
            return c;
        }
        if (c->inlen == 0 && c->out.len == 0
            && (idle == NULL || c->active < idle->active))
        {
            idle = c;
        }
        if (oldest == NULL || c->active < oldest->active) {
            oldest = c;
        }
    }

    c = idle != NULL ? idle : oldest;
    cw_conn_close(c);
    return c;
}


static void
cw_accept(cw_metrics_http_t *h)
{
    cw_conn_t  *c;
    int         fd;

    for ( ;; ) {
        fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                cw_log(CW_LOG_WARN, "metrics: accept: %s", strerror(errno));
            }
            return;
        }
        c = cw_conn_slot(h);
        c->fd = fd;
        c->inlen = 0;
        c->outoff = 0;
        c->close_after = 0;
        c->active = cw_now_ms();
        c->deadline = c->active + CW_METRICS_IO_MS;
        cw_buf_init(&c->out);
    }
}


/* The value of header name (case-insensitive) in the header lines hdrs,
 * without surrounding blanks: *len bytes at the returned pointer, or
 * NULL when the header is not there. */
static const char *
cw_header(const char *hdrs, const char *name, size_t *len)
{
    const char  *p, *eol, *v, *e;
    size_t       nlen = strlen(name);

    for (p = hdrs; (eol = strchr(p, '\n')) != NULL; p = eol + 1) {
        if (strncasecmp(p, name, nlen) != 0 || p[nlen] != ':') {
            continue;
        }
        for (v = p + nlen + 1; v < eol && (*v == ' ' || *v == '\t'); v++) {
            /* void */
        }
        for (e = eol; e > v && (e[-1] == '\r' || e[-1] == ' '
                                || e[-1] == '\t'); e--)
        {
            /* void */
        }
        *len = (size_t) (e - v);
        return v;
    }
    return NULL;
}


/* Whether the header's value holds token (case-insensitive), as in
 * "Connection: keep-alive, Upgrade". */
static int
cw_header_has(const char *hdrs, const char *name, const char *token)
{
    const char  *v;
    size_t       len, tlen = strlen(token), i;

    v = cw_header(hdrs, name, &len);
    for (i = 0; v != NULL && i + tlen <= len; i++) {
        if (strncasecmp(v + i, token, tlen) == 0) {
            return 1;
        }
    }
    return 0;
}


/* Parses one request (NUL-terminated, up to its blank line) into r. */
static void
cw_req_parse(char *req, cw_req_t *r)
{
    char        *sp1, *sp2, *eol, *hdrs;
    size_t       plen, len;
    const char  *cl;
    int          v11;

    memset(r, 0, sizeof(*r));
    r->extra = "";

    eol = strchr(req, '\n');
    hdrs = eol != NULL ? eol + 1 : req + strlen(req);
    sp1 = strchr(req, ' ');
    sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
    if (eol == NULL || sp1 == NULL || sp2 == NULL || sp2 > eol
        || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
    {
        r->status = "400 Bad Request";
        r->close = 1;
        return;
    }

    v11 = sp2[8] != '0';
    r->close = v11 ? cw_header_has(hdrs, "Connection", "close")
                   : !cw_header_has(hdrs, "Connection", "keep-alive");
    cl = cw_header(hdrs, "Content-Length", &len);
    if (cw_header(hdrs, "Transfer-Encoding", &len) != NULL
        || (cl != NULL && !(len == 1 && cl[0] == '0')))
    {
        r->close = 1;                   /* its body is not read */
    }

    r->head = (size_t) (sp1 - req) == 4 && strncmp(req, "HEAD", 4) == 0;

    plen = strcspn(sp1 + 1, "? ");
    if (plen != 8 || strncmp(sp1 + 1, "/metrics", 8) != 0) {
        r->status = "404 Not Found";
    } else if (!r->head
               && ((size_t) (sp1 - req) != 3 || strncmp(req, "GET", 3) != 0))
    {
        r->status = "405 Method Not Allowed";
        r->extra = "Allow: GET, HEAD\r\n";
    }
}


/* Appends the reply to r to the connection's output. */
static void
cw_respond(cw_metrics_http_t *h, cw_conn_t *c, const cw_req_t *r)
{
    const char  *status = r->status, *ctype = "text/plain; charset=utf-8";
    cw_buf_t     body;

    cw_buf_init(&body);
    cw_buf_puts(&body, "");
    if (status == NULL) {
        cw_metrics_render(h->m, &body);
        status = "200 OK";
        ctype = CW_METRICS_CTYPE;
    } else {
        cw_buf_printf(&body, "%s\n", status + 4);
    }
    if (body.oom) {
        cw_buf_reset(&body);
        cw_buf_puts(&body, "out of memory\n");
        status = "500 Internal Server Error";
    }

    cw_buf_printf(&c->out, "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
                  "Content-Length: %zu\r\n%s%s\r\n", status, ctype, body.len,
                  r->extra, r->close ? "Connection: close\r\n" : "");
    if (!r->head) {
        cw_buf_append(&c->out, body.data, body.len);
    }
    cw_buf_free(&body);

    c->close_after = r->close;
    c->deadline = cw_now_ms() + CW_METRICS_IO_MS;
}


/* Answers the next complete request in the input, if there is one and
 * no reply is pending; a request too long for the buffer gets 400. */
static void
cw_conn_serve(cw_metrics_http_t *h, cw_conn_t *c)
{
    char      *end, *lf;
    size_t     used;
    cw_req_t   r;

    if (c->out.len > 0 || c->close_after || c->inlen == 0) {
        return;
    }
    /* the request ends at the first blank line, CRLF or bare LF */
    c->in[c->inlen] = '\0';
    end = strstr(c->in, "\r\n\r\n");
    used = end != NULL ? (size_t) (end - c->in) + 4 : 0;
    lf = strstr(c->in, "\n\n");
    if (lf != NULL && (end == NULL || lf + 2 < end + 4)) {
        used = (size_t) (lf - c->in) + 2;
    }

    if (used == 0) {
        if (c->inlen >= CW_METRICS_REQ_MAX - 1) {
            memset(&r, 0, sizeof(r));
            r.status = "400 Bad Request";
            r.extra = "";
            r.close = 1;
            cw_respond(h, c, &r);
        }
        return;
    }

    c->in[used - 1] = '\0';
    cw_req_parse(c->in, &r);
    cw_respond(h, c, &r);
    memmove(c->in, c->in + used, c->inlen - used);
    c->inlen -= used;
}


/* Reads what the connection sent; closes it at EOF or on an error. */
static void
cw_conn_read(cw_metrics_http_t *h, cw_conn_t *c)
{
    ssize_t  n;

    if (c->inlen >= CW_METRICS_REQ_MAX - 1) {
        return;
    }
    n = recv(c->fd, c->in + c->inlen, CW_METRICS_REQ_MAX - 1 - c->inlen, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        cw_conn_close(c);
        return;
    }
    if (n < 0) {
        return;
    }
    c->active = cw_now_ms();
    if (c->inlen == 0 && c->out.len == 0) {
        c->deadline = c->active + CW_METRICS_IO_MS;
    }
    c->inlen += (size_t) n;
    cw_conn_serve(h, c);
}


/* Sends what the reply has left; once it is out, closes the connection
 * or waits for its next request (perhaps already read: pipelining). */
static void
cw_conn_write(cw_metrics_http_t *h, cw_conn_t *c)
{
    ssize_t  n;

    n = send(c->fd, c->out.data + c->outoff, c->out.len - c->outoff,
             MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            cw_conn_close(c);
        }
        return;
    }
    c->outoff += (size_t) n;
    c->active = cw_now_ms();
    if (c->outoff < c->out.len) {
        return;
    }

    if (c->close_after) {
        cw_conn_close(c);
        return;
    }
    cw_buf_reset(&c->out);
    c->outoff = 0;
    c->deadline = cw_now_ms() + (c->inlen > 0 ? CW_METRICS_IO_MS
                                              : CW_METRICS_IDLE_MS);
    cw_conn_serve(h, c);
}


/* Fills pfd for poll: the stop pipe, the listener, then each open
 * connection (slot numbers in idx); returns the count and sets the
 * timeout to the earliest deadline. */
static nfds_t
cw_poll_set(cw_metrics_http_t *h, struct pollfd *pfd, size_t *idx,
    int *timeout)
{
    nfds_t      n = 2;
    int64_t     now = cw_now_ms(), first = -1;
    size_t      i;
    cw_conn_t  *c;

    pfd[0].fd = h->stop_pipe[0];
    pfd[0].events = POLLIN;
    pfd[1].fd = h->listen_fd;
    pfd[1].events = POLLIN;

    for (i = 0; i < CW_METRICS_CONNS; i++) {
        c = &h->conns[i];
        if (c->fd < 0) {
            continue;
        }
        if (c->deadline <= now) {
            cw_conn_close(c);
            continue;
        }
        pfd[n].fd = c->fd;
        pfd[n].events = c->out.len > 0 ? POLLOUT : POLLIN;
        idx[n] = i;
        n++;
        if (first < 0 || c->deadline < first) {
            first = c->deadline;
        }
    }

    *timeout = first < 0 ? -1 : (int) (first - now);
    return n;
}


static void *
cw_http_thread(void *arg)
{
    cw_metrics_http_t  *h = arg;
    struct pollfd       pfd[CW_METRICS_CONNS + 2];
    size_t              idx[CW_METRICS_CONNS + 2], i;
    nfds_t              n;
    cw_conn_t          *c;
    int                 timeout;

    for ( ;; ) {
        n = cw_poll_set(h, pfd, idx, &timeout);
        if (poll(pfd, n, timeout) < 0) {
            if (errno == EINTR) {
                continue;
            }
            cw_log(CW_LOG_ERROR, "metrics: poll: %s", strerror(errno));
            return NULL;
        }
        if (pfd[0].revents) {
            return NULL;
        }
        for (i = 2; i < n; i++) {
            c = &h->conns[idx[i]];
            if (pfd[i].revents == 0 || c->fd != pfd[i].fd) {
                continue;
            }
            if (pfd[i].revents & POLLOUT) {
                cw_conn_write(h, c);
            } else if (pfd[i].revents & POLLIN) {
                cw_conn_read(h, c);
            } else {
                cw_conn_close(c);       /* hung up, error */
            }
            if (c->fd >= 0 && c->out.len > 0 && c->outoff == 0) {
                cw_conn_write(h, c);    /* most replies go out at once */
            }
        }
        if (pfd[1].revents) {
            cw_accept(h);
        }
    }
}


static int
cw_listen(int port, int *out_port, char *err, size_t errlen)
{
    struct sockaddr_in  sa;
    socklen_t           salen = sizeof(sa);
    int                 fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "metrics socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0
        || listen(fd, 128) != 0
        || getsockname(fd, (struct sockaddr *) &sa, &salen) != 0)
    {
        snprintf(err, errlen, "metrics listen 127.0.0.1:%d: %s", port,
                 strerror(errno));
        close(fd);
        return -1;
    }
    *out_port = ntohs(sa.sin_port);
    return fd;
}


cw_metrics_http_t *
cw_metrics_http_start(cw_metrics_t *m, int port, char *err, size_t errlen)
{
    cw_metrics_http_t  *h;
    sigset_t            all, old;
    size_t              i;
    int                 rc;

    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "metrics: out of memory");
        return NULL;
    }
    h->m = m;
    for (i = 0; i < CW_METRICS_CONNS; i++) {
        h->conns[i].fd = -1;
    }

    h->listen_fd = cw_listen(port, &h->port, err, errlen);
    if (h->listen_fd < 0) {
        free(h);
        return NULL;
    }
    if (pipe2(h->stop_pipe, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "metrics pipe: %s", strerror(errno));
        close(h->listen_fd);
        free(h);
        return NULL;
    }

    /* the thread must not take SIGTERM/SIGINT meant for the main loop */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&h->thread, NULL, cw_http_thread, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "metrics thread: %s", strerror(rc));
        close(h->listen_fd);
        close(h->stop_pipe[0]);
        close(h->stop_pipe[1]);
        free(h);
        return NULL;
    }

    return h;
}


int
cw_metrics_http_port(const cw_metrics_http_t *h)
{
    return h != NULL ? h->port : 0;
}


void
cw_metrics_http_stop(cw_metrics_http_t *h)
{
    char    c = 1;
    size_t  i;

    if (h == NULL) {
        return;
    }
    (void) !write(h->stop_pipe[1], &c, 1);
    pthread_join(h->thread, NULL);
    for (i = 0; i < CW_METRICS_CONNS; i++) {
        if (h->conns[i].fd >= 0) {
            cw_conn_close(&h->conns[i]);
        }
    }
    close(h->listen_fd);
    close(h->stop_pipe[0]);
    close(h->stop_pipe[1]);
    free(h);
}
