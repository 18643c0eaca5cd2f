/*
 * openloop: GET /v1/catalog/{random item} at a fixed rate (an open loop, as
 * wrk2 does), for the latency part of scripts/bench/run.sh.
 *
 *   openloop PORT CONNECTIONS RATE SECONDS ITEMS ID_WIDTH SEED
 *
 * Request k is due at start + k / RATE and goes on connection k % CONNS
 * (keepalive, one request at a time).  Its latency runs from the moment it
 * was due, not from when it could be sent: a connection still waiting for
 * an earlier answer delays the next request, and that wait counts (no
 * coordinated omission).  The client's own lag (how long after a request
 * was due, and its connection free, it left) is reported apart, so that
 * a run where the client, not the server, fell behind can be told.
 *
 * Prints one line in the format of wrk_summary.lua:
 *   BENCH requests=N duration_us=N p50_us=N p90_us=N p99_us=N max_us=N
 *         err_connect=N err_read=N err_write=N err_status=N err_timeout=N
 *         lag_p99_us=N
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define OL_MAX_CONNS   1024
#define OL_BUF         65536
#define OL_LINEAR_US   1000000     /* exact histogram below 1 s */


typedef struct {
    int        fd;
    uint64_t   next;        /* index of its next request: c + j * conns */
    uint64_t   due;         /* ns, of the request out (0: idle) */
    uint64_t   idle;        /* ns, since when it is idle */
    size_t     len;         /* bytes in buf */
    int        closing;     /* the server said Connection: close */
    char       buf[OL_BUF];
} ol_conn_t;


typedef struct {
    uint64_t  *counts;      /* per microsecond below OL_LINEAR_US */
    uint64_t   over;        /* at or above it */
    uint64_t   n;
    uint64_t   max;
} ol_hist_t;


static uint64_t   ol_start, ol_step, ol_end;
static unsigned   ol_conns, ol_items, ol_width;
static int        ol_port;
static uint64_t   ol_seed;
static ol_hist_t  ol_latency, ol_lag;
static uint64_t   ol_errors[5];    /* connect, read, write, status, timeout */


static uint64_t
ol_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


static void
ol_hist_add(ol_hist_t *h, uint64_t ns)
{
    uint64_t  us = ns / 1000;

    if (us < OL_LINEAR_US) {
        h->counts[us]++;
    } else {
        h->over++;
    }

    h->n++;
    if (us > h->max) {
        h->max = us;
    }
}


/* the q-th quantile in microseconds (the maximum when above the range) */
static uint64_t
ol_hist_quantile(ol_hist_t *h, double q)
{
    uint64_t  i, seen, want;

    if (h->n == 0) {
        return 0;
    }

    want = (uint64_t) (q * (double) h->n + 0.5);
    seen = 0;

    for (i = 0; i < OL_LINEAR_US; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            return i;
        }
    }

    return h->max;
}


/* xorshift64*: the same ids for the same seed */
static unsigned
ol_random_item(void)
{
    ol_seed ^= ol_seed >> 12;
    ol_seed ^= ol_seed << 25;
    ol_seed ^= ol_seed >> 27;

    return (unsigned) ((ol_seed * 2685821657736338717ULL) % ol_items) + 1;
}


static int
ol_send(ol_conn_t *c, uint64_t now)
{
    int      n;
    char     req[256];
    ssize_t  w;

    c->due = ol_start + c->next * ol_step;

    /* the client's lag: from when it could have sent, due and idle */
    ol_hist_add(&ol_lag, now - (c->due > c->idle ? c->due : c->idle));

    n = snprintf(req, sizeof(req), "GET /v1/catalog/item-%0*u HTTP/1.1\r\n"
                 "Host: bench\r\n\r\n", (int) ol_width, ol_random_item());

    w = write(c->fd, req, n);
    if (w != n) {
        ol_errors[2]++;
        return -1;
    }

    return 0;
}


/*
 * A whole response in c->buf: its length, 0 while incomplete, -1 when it
 * cannot be parsed.  *status gets its status code.
 */
static ssize_t
ol_response(ol_conn_t *c, int *status)
{
    char    *end, *p;
    size_t   head;
    long     body;

    c->buf[c->len] = '\0';
    end = strstr(c->buf, "\r\n\r\n");
    if (end == NULL) {
        return c->len >= OL_BUF - 1 ? -1 : 0;
    }

    head = end + 4 - c->buf;
    if (sscanf(c->buf, "HTTP/1.%*c %d", status) != 1) {
        return -1;
    }

    body = -1;
    for (p = c->buf; p && p < end; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, "Content-Length:", 15) == 0) {
            body = strtol(p + 15, NULL, 10);

        } else if (strncasecmp(p, "Connection: close", 17) == 0) {
            c->closing = 1;     /* keepalive_requests reached */
        }
    }

    if (body < 0 || head + body >= OL_BUF) {
        return -1;
    }

    return c->len >= head + body ? (ssize_t) (head + body) : 0;
}


/* Reads what came; a whole response ends its request. */
static int ol_connect(ol_conn_t *c, int port, int ep);


static int
ol_read(ol_conn_t *c, uint64_t now)
{
    int      status;
    ssize_t  n, used;

    n = read(c->fd, c->buf + c->len, OL_BUF - 1 - c->len);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) {
            return 0;
        }
        ol_errors[1]++;
        return -1;
    }

    c->len += n;
    used = ol_response(c, &status);

    if (used < 0) {
        ol_errors[1]++;
        return -1;
    }

    if (used == 0) {
        return 0;
    }

    if (c->due >= ol_start && c->due < ol_end) {
        ol_hist_add(&ol_latency, now - c->due);
        if (status != 200) {
            ol_errors[3]++;
        }
    }

    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    c->due = 0;
    c->idle = now;
    c->next += ol_conns;

    return c->closing ? 1 : 0;
}


static int
ol_connect(ol_conn_t *c, int port, int ep)
{
    int                 one = 1;
    struct sockaddr_in  sin;
    struct epoll_event  ev;

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (c->fd < 0
        || connect(c->fd, (struct sockaddr *) &sin, sizeof(sin)) != 0)
    {
        if (c->fd >= 0) {
            close(c->fd);
        }
        ol_errors[0]++;
        return -1;
    }

    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    ev.events = EPOLLIN;
    ev.data.ptr = c;

    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}


/* The earliest moment an idle connection has a request due. */
static uint64_t
ol_next_due(ol_conn_t *conns)
{
    unsigned  i;
    uint64_t  t, first = UINT64_MAX;

    for (i = 0; i < ol_conns; i++) {
        if (conns[i].due == 0) {
            t = ol_start + conns[i].next * ol_step;
            if (t < first) {
                first = t;
            }
        }
    }

    return first;
}


static void
ol_run(ol_conn_t *conns, int ep)
{
    int                 i, n;
    unsigned            k;
    uint64_t            now, first, last;
    struct timespec     wait;
    struct epoll_event  evs[OL_MAX_CONNS];

    last = ol_end + 2000000000ULL;   /* answers still due get 2 s */

    for ( ;; ) {
        now = ol_now();
        if (now >= last) {
            break;
        }

        for (k = 0; k < ol_conns; k++) {
            if (conns[k].fd >= 0 && conns[k].due == 0
                && ol_start + conns[k].next * ol_step <= now
                && ol_start + conns[k].next * ol_step < ol_end
                && ol_send(&conns[k], now) != 0)
            {
                close(conns[k].fd);
                conns[k].fd = -1;
            }
        }

        first = ol_next_due(conns);
        if (first >= ol_end) {
            first = last;
            for (k = 0; k < ol_conns; k++) {
                if (conns[k].fd >= 0 && conns[k].due) {
                    break;
                }
            }
            if (k == ol_conns) {
                break;                  /* nothing out, nothing due */
            }
        }

        now = ol_now();
        first = first > now ? first - now : 0;
        wait.tv_sec = first / 1000000000;
        wait.tv_nsec = first % 1000000000;

        n = epoll_pwait2(ep, evs, OL_MAX_CONNS, &wait, NULL);
        now = ol_now();

        for (i = 0; i < n; i++) {
            ol_conn_t  *c = evs[i].data.ptr;

            if (c->fd < 0) {
                continue;
            }

            switch (ol_read(c, now)) {
            case 0:
                break;
            case 1:                     /* answered, then closed: again */
                close(c->fd);
                c->closing = 0;
                c->len = 0;
                if (ol_connect(c, ol_port, ep) != 0) {
                    c->fd = -1;
                }
                break;
            default:
                close(c->fd);
                c->fd = -1;
            }
        }
    }

    for (k = 0; k < ol_conns; k++) {
        if (conns[k].fd >= 0 && conns[k].due) {
            ol_errors[4]++;
        }
    }
}


int
main(int argc, char **argv)
{
    int         ep, port;
    double      rate, seconds;
    unsigned    k;
    ol_conn_t  *conns;

    if (argc != 8) {
        fprintf(stderr, "usage: openloop PORT CONNECTIONS RATE SECONDS "
                        "ITEMS ID_WIDTH SEED\n");
        return 2;
    }

    port = atoi(argv[1]);
    ol_port = port;
    ol_conns = (unsigned) atoi(argv[2]);
    rate = atof(argv[3]);
    seconds = atof(argv[4]);
    ol_items = (unsigned) atoi(argv[5]);
    ol_width = (unsigned) atoi(argv[6]);
    ol_seed = strtoull(argv[7], NULL, 10) | 1;

    if (ol_conns == 0 || ol_conns > OL_MAX_CONNS || rate <= 0
        || seconds <= 0 || ol_items == 0)
    {
        fprintf(stderr, "openloop: bad arguments\n");
        return 2;
    }

    ol_latency.counts = calloc(OL_LINEAR_US, sizeof(uint64_t));
    ol_lag.counts = calloc(OL_LINEAR_US, sizeof(uint64_t));
    conns = calloc(ol_conns, sizeof(ol_conn_t));
    ep = epoll_create1(0);

    if (ol_latency.counts == NULL || ol_lag.counts == NULL || conns == NULL
        || ep < 0)
    {
        perror("openloop");
        return 1;
    }

    for (k = 0; k < ol_conns; k++) {
        conns[k].next = k;
        if (ol_connect(&conns[k], port, ep) != 0) {
            conns[k].fd = -1;
        }
    }

    ol_step = (uint64_t) (1e9 / rate);
    ol_start = ol_now() + 10000000;     /* 10 ms from now */
    ol_end = ol_start + (uint64_t) (seconds * 1e9);

    ol_run(conns, ep);

    printf("BENCH requests=%llu duration_us=%llu p50_us=%llu p90_us=%llu "
           "p99_us=%llu max_us=%llu err_connect=%llu err_read=%llu "
           "err_write=%llu err_status=%llu err_timeout=%llu "
           "lag_p99_us=%llu\n",
           (unsigned long long) ol_latency.n,
           (unsigned long long) ((ol_end - ol_start) / 1000),
           (unsigned long long) ol_hist_quantile(&ol_latency, 0.50),
           (unsigned long long) ol_hist_quantile(&ol_latency, 0.90),
           (unsigned long long) ol_hist_quantile(&ol_latency, 0.99),
           (unsigned long long) ol_latency.max,
           (unsigned long long) ol_errors[0],
           (unsigned long long) ol_errors[1],
           (unsigned long long) ol_errors[2],
           (unsigned long long) ol_errors[3],
           (unsigned long long) ol_errors[4],
           (unsigned long long) ol_hist_quantile(&ol_lag, 0.99));

    return 0;
}
