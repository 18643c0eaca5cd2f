/*
 * cw_metrics: registry, text rendering and a tiny HTTP server.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cw_log.h"
#include "cw_metrics.h"

typedef enum {
    CW_MT_COUNTER,
    CW_MT_GAUGE,
    CW_MT_HISTOGRAM
} cw_mtype_t;

typedef struct cw_family_s  cw_family_t;

struct cw_metric_s {
    cw_family_t         *family;
    char                *labels;     /* rendered: k="v",k2="v2" or "" */
    _Atomic uint64_t     value;      /* double bits: counter/gauge/sum */
    _Atomic uint64_t     count;      /* histogram observations */
    _Atomic uint64_t    *buckets;    /* histogram, per bound (not cumul.) */
    cw_metric_t         *next;
};

struct cw_family_s {
    char                *name;
    char                *help;
    cw_mtype_t           type;
    double              *bounds;
    size_t               nbounds;
    cw_metric_t         *series;
    cw_metric_t         *last;
    cw_family_t         *next;
};

struct cw_metrics_s {
    pthread_mutex_t      lock;
    cw_family_t         *families;
    cw_family_t         *last;
    pthread_t            thread;
    int                  running;
    int                  listen_fd;
    int                  stop_pipe[2];
    int                  port;
};

static const cw_opt_t  cw_metrics_opt_tmpl = {
    "metrics.port", CW_OPT_INT, NULL, 0, 65535, 0,
    "loopback port for Prometheus GET /metrics; 0 disables it"
};


static double
cw_load_d(const _Atomic uint64_t *p)
{
    uint64_t  bits = *p;
    double    d;

    memcpy(&d, &bits, sizeof(d));
    return d;
}


/* Adds to a double kept as bits in an atomic integer; the CAS loop keeps
 * concurrent updaters from losing increments without a mutex. */
static void
cw_add_d(_Atomic uint64_t *p, double v)
{
    uint64_t  old, new;
    double    d;

    old = *p;
    do {
        memcpy(&d, &old, sizeof(d));
        d += v;
        memcpy(&new, &d, sizeof(new));
    } while (!__atomic_compare_exchange_n((uint64_t *) p, &old, new, 1,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}


static void
cw_store_d(_Atomic uint64_t *p, double v)
{
    uint64_t  bits;

    memcpy(&bits, &v, sizeof(bits));
    *p = bits;
}


cw_metrics_t *
cw_metrics_new(void)
{
    cw_metrics_t  *m;

    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->listen_fd = -1;
    m->stop_pipe[0] = m->stop_pipe[1] = -1;
    return m;
}


static void
cw_metrics_stop(cw_metrics_t *m)
{
    char  c = 1;

    if (!m->running) {
        return;
    }
    (void) !write(m->stop_pipe[1], &c, 1);
    pthread_join(m->thread, NULL);
    m->running = 0;
    close(m->listen_fd);
    close(m->stop_pipe[0]);
    close(m->stop_pipe[1]);
    m->listen_fd = -1;
}


void
cw_metrics_free(cw_metrics_t *m)
{
    cw_family_t  *f, *fn;
    cw_metric_t  *s, *sn;

    if (m == NULL) {
        return;
    }
    cw_metrics_stop(m);
    for (f = m->families; f != NULL; f = fn) {
        fn = f->next;
        for (s = f->series; s != NULL; s = sn) {
            sn = s->next;
            free(s->labels);
            free(s->buckets);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}


/* Metric and label names: [a-zA-Z_:][a-zA-Z0-9_:]* (no ':' in labels). */
static int
cw_name_ok(const char *s, int colon)
{
    const char  *p;

    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9')) {
        return 0;
    }
    for (p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_'
              || (colon && *p == ':')))
        {
            return 0;
        }
    }
    return 1;
}


/* Label values escape backslash, double quote and newline. */
static void
cw_escape_label(cw_buf_t *b, const char *v)
{
    for ( ; *v; v++) {
        if (*v == '\\') {
            cw_buf_puts(b, "\\\\");
        } else if (*v == '"') {
            cw_buf_puts(b, "\\\"");
        } else if (*v == '\n') {
            cw_buf_puts(b, "\\n");
        } else {
            cw_buf_putc(b, *v);
        }
    }
}


/* HELP text escapes backslash and newline only. */
static void
cw_escape_help(cw_buf_t *b, const char *v)
{
    for ( ; *v; v++) {
        if (*v == '\\') {
            cw_buf_puts(b, "\\\\");
        } else if (*v == '\n') {
            cw_buf_puts(b, "\\n");
        } else {
            cw_buf_putc(b, *v);
        }
    }
}


static char *
cw_render_labels(va_list ap)
{
    const char  *k, *v;
    cw_buf_t     b;

    cw_buf_init(&b);
    cw_buf_puts(&b, "");
    while ((k = va_arg(ap, const char *)) != NULL) {
        v = va_arg(ap, const char *);
        if (!cw_name_ok(k, 0) || strcmp(k, "le") == 0 || v == NULL) {
            cw_buf_free(&b);
            return NULL;
        }
        if (b.len > 0) {
            cw_buf_putc(&b, ',');
        }
        cw_buf_printf(&b, "%s=\"", k);
        cw_escape_label(&b, v);
        cw_buf_putc(&b, '"');
    }
    if (b.oom) {
        cw_buf_free(&b);
        return NULL;
    }
    return b.data;
}


static cw_family_t *
cw_family_get(cw_metrics_t *m, const char *name, const char *help,
    cw_mtype_t type, const double *bounds, size_t nbounds)
{
    cw_family_t  *f;
    size_t        i;

    for (f = m->families; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            if (f->type != type || strcmp(f->help, help) != 0) {
                return NULL;
            }
            return f;
        }
    }
    for (i = 1; i < nbounds; i++) {
        if (!(bounds[i] > bounds[i - 1])) {
            return NULL;
        }
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->name = strdup(name);
    f->help = strdup(help);
    f->type = type;
    if (nbounds > 0) {
        f->bounds = malloc(nbounds * sizeof(double));
        if (f->bounds != NULL) {
            memcpy(f->bounds, bounds, nbounds * sizeof(double));
        }
    }
    f->nbounds = nbounds;
    if (f->name == NULL || f->help == NULL
        || (nbounds > 0 && f->bounds == NULL))
    {
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
        return NULL;
    }
    if (m->last != NULL) {
        m->last->next = f;
    } else {
        m->families = f;
    }
    m->last = f;
    return f;
}


static cw_metric_t *
cw_series_get(cw_metrics_t *m, const char *name, const char *help,
    cw_mtype_t type, const double *bounds, size_t nbounds, va_list ap)
{
    cw_family_t  *f;
    cw_metric_t  *s = NULL;
    char         *labels;

    if (m == NULL || !cw_name_ok(name, 1) || help == NULL) {
        return NULL;
    }
    labels = cw_render_labels(ap);
    if (labels == NULL) {
        return NULL;
    }

    pthread_mutex_lock(&m->lock);
    f = cw_family_get(m, name, help, type, bounds, nbounds);
    if (f == NULL) {
        goto done;
    }
    for (s = f->series; s != NULL; s = s->next) {
        if (strcmp(s->labels, labels) == 0) {
            goto done;
        }
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        goto done;
    }
    if (type == CW_MT_HISTOGRAM && f->nbounds > 0) {
        s->buckets = calloc(f->nbounds, sizeof(*s->buckets));
        if (s->buckets == NULL) {
            free(s);
            s = NULL;
            goto done;
        }
    }
    s->family = f;
    s->labels = labels;
    labels = NULL;
    cw_store_d(&s->value, 0.0);
    if (f->last != NULL) {
        f->last->next = s;
    } else {
        f->series = s;
    }
    f->last = s;

done:
    pthread_mutex_unlock(&m->lock);
    free(labels);
    return s;
}


cw_metric_t *
cw_metrics_counter(cw_metrics_t *m, const char *name, const char *help, ...)
{
    cw_metric_t  *s;
    va_list       ap;

    va_start(ap, help);
    s = cw_series_get(m, name, help, CW_MT_COUNTER, NULL, 0, ap);
    va_end(ap);
    return s;
}


cw_metric_t *
cw_metrics_gauge(cw_metrics_t *m, const char *name, const char *help, ...)
{
    cw_metric_t  *s;
    va_list       ap;

    va_start(ap, help);
    s = cw_series_get(m, name, help, CW_MT_GAUGE, NULL, 0, ap);
    va_end(ap);
    return s;
}


cw_metric_t *
cw_metrics_histogram(cw_metrics_t *m, const char *name, const char *help,
    const double *bounds, size_t nbounds, ...)
{
    cw_metric_t  *s;
    va_list       ap;

    va_start(ap, nbounds);
    s = cw_series_get(m, name, help, CW_MT_HISTOGRAM, bounds, nbounds, ap);
    va_end(ap);
    return s;
}


void
cw_counter_inc(cw_metric_t *c)
{
    cw_add_d(&c->value, 1.0);
}


void
cw_counter_add(cw_metric_t *c, double v)
{
    if (v > 0) {
        cw_add_d(&c->value, v);
    }
}


void
cw_gauge_set(cw_metric_t *g, double v)
{
    cw_store_d(&g->value, v);
}


void
cw_gauge_add(cw_metric_t *g, double v)
{
    cw_add_d(&g->value, v);
}


void
cw_histogram_observe(cw_metric_t *h, double v)
{
    cw_family_t  *f = h->family;
    size_t        i;

    for (i = 0; i < f->nbounds; i++) {
        if (v <= f->bounds[i]) {
            h->buckets[i]++;
            break;
        }
    }
    h->count++;
    cw_add_d(&h->value, v);
}


double
cw_metric_value(const cw_metric_t *c)
{
    return cw_load_d(&c->value);
}


/* Integral values print without exponent ("42"), others in the shortest
 * form that reads back as the same double ("0.1", not
 * "0.10000000000000001"); infinities as +Inf/-Inf as the format wants. */
static void
cw_put_num(cw_buf_t *b, double v)
{
    char  tmp[64];
    int   prec;

    if (isnan(v)) {
        cw_buf_puts(b, "NaN");
    } else if (isinf(v)) {
        cw_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        cw_buf_printf(b, "%.0f", v);
    } else {
        for (prec = 15; prec < 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
            if (strtod(tmp, NULL) == v) {
                break;
            }
        }
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        cw_buf_puts(b, tmp);
    }
}


static void
cw_put_series(cw_buf_t *b, const char *name, const char *suffix,
    const char *labels, const char *extra)
{
    int  sep;

    cw_buf_printf(b, "%s%s", name, suffix);
    if (labels[0] != '\0' || extra != NULL) {
        sep = labels[0] != '\0' && extra != NULL;
        cw_buf_printf(b, "{%s%s%s}", labels, sep ? "," : "",
                      extra != NULL ? extra : "");
    }
    cw_buf_putc(b, ' ');
}


void
cw_metrics_render(cw_metrics_t *m, cw_buf_t *out)
{
    static const char  *types[] = { "counter", "gauge", "histogram" };
    cw_family_t        *f;
    cw_metric_t        *s;
    uint64_t            cum;
    size_t              i;
    cw_buf_t            le;

    cw_buf_init(&le);
    pthread_mutex_lock(&m->lock);
    for (f = m->families; f != NULL; f = f->next) {
        cw_buf_printf(out, "# HELP %s ", f->name);
        cw_escape_help(out, f->help);
        cw_buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);

        for (s = f->series; s != NULL; s = s->next) {
            if (f->type != CW_MT_HISTOGRAM) {
                cw_put_series(out, f->name, "", s->labels, NULL);
                cw_put_num(out, cw_load_d(&s->value));
                cw_buf_putc(out, '\n');
                continue;
            }
            cum = 0;
            for (i = 0; i <= f->nbounds; i++) {
                cw_buf_reset(&le);
                cw_buf_puts(&le, "le=\"");
                if (i < f->nbounds) {
                    cum += s->buckets[i];
                    cw_put_num(&le, f->bounds[i]);
                } else {
                    cum = s->count;
                    cw_buf_puts(&le, "+Inf");
                }
                cw_buf_putc(&le, '"');
                cw_put_series(out, f->name, "_bucket", s->labels, le.data);
                cw_buf_printf(out, "%llu\n", (unsigned long long) cum);
            }
            cw_put_series(out, f->name, "_sum", s->labels, NULL);
            cw_put_num(out, cw_load_d(&s->value));
            cw_buf_putc(out, '\n');
            cw_put_series(out, f->name, "_count", s->labels, NULL);
            cw_buf_printf(out, "%llu\n", (unsigned long long) s->count);
        }
    }
    pthread_mutex_unlock(&m->lock);
    cw_buf_free(&le);
}


static void
cw_http_reply(int fd, const char *status, const char *ctype,
    const char *body, size_t len)
{
    char     head[256];
    int      n;
    ssize_t  w;
    size_t   off;

    n = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                 status, ctype, len);
    if (send(fd, head, (size_t) n, MSG_NOSIGNAL) != n) {
        return;
    }
    for (off = 0; off < len; off += (size_t) w) {
        w = send(fd, body + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            return;
        }
    }
}


/* One request per connection; reads are bounded by a receive timeout so
 * a stuck scraper cannot hold the thread. */
static void
cw_http_handle(cw_metrics_t *m, int fd)
{
    struct timeval   tv = { 2, 0 };
    char             req[2048];
    size_t           len = 0;
    ssize_t          n;
    cw_buf_t         body;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (len < sizeof(req) - 1) {
        n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
        if (n <= 0) {
            return;
        }
        len += (size_t) n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL) {
            break;
        }
    }

    if (strncmp(req, "GET /metrics ", 13) != 0
        && strncmp(req, "GET /metrics?", 13) != 0)
    {
        cw_http_reply(fd, "404 Not Found", "text/plain", "not found\n", 10);
        return;
    }
    cw_buf_init(&body);
    cw_buf_puts(&body, "");
    cw_metrics_render(m, &body);
    if (body.oom) {
        cw_http_reply(fd, "500 Internal Server Error", "text/plain",
                      "out of memory\n", 14);
    } else {
        cw_http_reply(fd, "200 OK", "text/plain; version=0.0.4; "
                      "charset=utf-8", body.data, body.len);
    }
    cw_buf_free(&body);
}


static void *
cw_http_thread(void *arg)
{
    cw_metrics_t   *m = arg;
    struct pollfd   pfd[2];
    int             fd;

    pfd[0].fd = m->stop_pipe[0];
    pfd[0].events = POLLIN;
    pfd[1].fd = m->listen_fd;
    pfd[1].events = POLLIN;
    for ( ;; ) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            cw_log(CW_LOG_ERROR, "metrics: poll: %s", strerror(errno));
            return NULL;
        }
        if (pfd[0].revents) {
            return NULL;
        }
        if (pfd[1].revents) {
            fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                cw_http_handle(m, fd);
                close(fd);
            }
        }
    }
}


int
cw_metrics_serve(cw_metrics_t *m, int port, char *err, size_t errlen)
{
    struct sockaddr_in  sa;
    socklen_t           salen = sizeof(sa);
    sigset_t            all, old;
    int                 fd, one = 1, rc;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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
        || listen(fd, 16) != 0
        || getsockname(fd, (struct sockaddr *) &sa, &salen) != 0)
    {
        snprintf(err, errlen, "metrics listen 127.0.0.1:%d: %s", port,
                 strerror(errno));
        close(fd);
        return -1;
    }
    if (pipe2(m->stop_pipe, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "metrics pipe: %s", strerror(errno));
        close(fd);
        return -1;
    }
    m->listen_fd = fd;
    m->port = ntohs(sa.sin_port);

    /* the thread must not take SIGTERM/SIGINT meant for the main loop */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&m->thread, NULL, cw_http_thread, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "metrics thread: %s", strerror(rc));
        close(fd);
        close(m->stop_pipe[0]);
        close(m->stop_pipe[1]);
        m->listen_fd = -1;
        return -1;
    }
    m->running = 1;
    return 0;
}


int
cw_metrics_port(const cw_metrics_t *m)
{
    return m->port;
}


/* The option table lives in static storage per process; the default is
 * filled in once, since each worker declares it a single time. */
int
cw_metrics_declare(cw_config_t *cfg, const char *default_port)
{
    static cw_opt_t  opt;

    opt = cw_metrics_opt_tmpl;
    opt.def = default_port;
    return cw_config_declare(cfg, &opt, 1);
}
