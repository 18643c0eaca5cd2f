/*
 * cw_metrics: registry and text rendering (the server is
 * cw_metrics_http.c).
 */

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_metrics.h"
#include "cw_metrics_http.h"

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

typedef struct cw_collector_s  cw_collector_t;

struct cw_collector_s {
    cw_metrics_collect_pt   fn;
    void                   *ud;
    cw_collector_t         *next;
};

/* lock guards the families and their series lists (updates of values
 * never take it); collect_lock serializes the collectors, which run
 * before each rendering without lock held, since they may register. */
struct cw_metrics_s {
    pthread_mutex_t      lock;
    pthread_mutex_t      collect_lock;
    cw_family_t         *families;
    cw_family_t         *last;
    cw_collector_t      *collectors;
    cw_metrics_http_t   *http;
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
    pthread_mutex_init(&m->collect_lock, NULL);
    return m;
}


void
cw_metrics_free(cw_metrics_t *m)
{
    cw_family_t     *f, *fn;
    cw_metric_t     *s, *sn;
    cw_collector_t  *c, *cn;

    if (m == NULL) {
        return;
    }
    cw_metrics_http_stop(m->http);
    for (c = m->collectors; c != NULL; c = cn) {
        cn = c->next;
        free(c);
    }
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
    pthread_mutex_destroy(&m->collect_lock);
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
cw_counter_set(cw_metric_t *c, double v)
{
    cw_store_d(&c->value, v);
}


void
cw_metrics_drop(cw_metrics_t *m, cw_metric_t *s)
{
    cw_family_t  *f;
    cw_metric_t  *p, *prev = NULL;

    if (s == NULL) {
        return;
    }
    f = s->family;
    pthread_mutex_lock(&m->lock);
    for (p = f->series; p != NULL && p != s; p = p->next) {
        prev = p;
    }
    if (p != NULL) {
        if (prev != NULL) {
            prev->next = s->next;
        } else {
            f->series = s->next;
        }
        if (f->last == s) {
            f->last = prev;
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (p != NULL) {
        free(s->labels);
        free(s->buckets);
        free(s);
    }
}


int
cw_metrics_collector(cw_metrics_t *m, cw_metrics_collect_pt fn, void *ud)
{
    cw_collector_t  *c, **tail;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -1;
    }
    c->fn = fn;
    c->ud = ud;
    pthread_mutex_lock(&m->collect_lock);
    for (tail = &m->collectors; *tail != NULL; tail = &(*tail)->next) {
        /* void */
    }
    *tail = c;
    pthread_mutex_unlock(&m->collect_lock);
    return 0;
}


static void
cw_metrics_collect(cw_metrics_t *m)
{
    cw_collector_t  *c;

    pthread_mutex_lock(&m->collect_lock);
    for (c = m->collectors; c != NULL; c = c->next) {
        c->fn(m, c->ud);
    }
    pthread_mutex_unlock(&m->collect_lock);
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

    cw_metrics_collect(m);
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


int
cw_metrics_serve(cw_metrics_t *m, int port, char *err, size_t errlen)
{
    if (m->http != NULL) {
        snprintf(err, errlen, "metrics: already served");
        return -1;
    }
    m->http = cw_metrics_http_start(m, port, err, errlen);
    return m->http != NULL ? 0 : -1;
}


int
cw_metrics_port(const cw_metrics_t *m)
{
    return cw_metrics_http_port(m->http);
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
