/*
 * ngx_http_commerce_metrics_module: the shared counters of every commerce
 * module and their Prometheus exposition (see the header).
 *
 * Directive: commerce_metrics (location); the reference is
 * docs/directives.md.
 *
 * The zone "commerce_metrics" is added by postconfiguration whatever the
 * configuration holds, with a fixed size: a reload (same name, size and
 * tag) hands the new cycle the old memory, so counters keep counting.  Its
 * layout is ngx_http_commerce_metrics_shm_t, and a zone left by a module
 * of another layout (magic) is cleared.  Workers write it
 * with atomic additions only; the exposition reads it without a lock, so a
 * scrape may see one counter updated and not its neighbour, never a torn
 * value.  Each request is counted once, in the log phase, with the api of
 * its location (set at configuration time by the content directive).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_metrics.h"
#include "ngx_http_commerce_sig.h"


#define NGX_HTTP_COMMERCE_METRICS_MAGIC  0x636d657472696301ULL

/* room kept for one exposition line: two escaped labels and a number */
#define NGX_HTTP_COMMERCE_METRICS_LINE   1024
#define NGX_HTTP_COMMERCE_METRICS_CHUNK  16384
/* a label value escaped: each byte may take two */
#define NGX_HTTP_COMMERCE_METRICS_ESC                                        \
    (2 * NGX_HTTP_COMMERCE_METRICS_LABEL_LEN + 1)


typedef struct {
    ngx_shm_zone_t             *shm_zone;
} ngx_http_commerce_metrics_main_conf_t;


typedef struct {
    ngx_uint_t                  api;       /* of this location, not merged */
} ngx_http_commerce_metrics_loc_conf_t;


/* the exposition being written: a chain of buffers */
typedef struct {
    ngx_http_request_t         *r;
    ngx_chain_t                *out;
    ngx_chain_t               **last;
    ngx_buf_t                  *b;
    ngx_uint_t                  failed;
} ngx_http_commerce_metrics_text_t;


static ngx_int_t ngx_http_commerce_metrics_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_commerce_metrics_log_handler(ngx_http_request_t *r);
static void ngx_http_commerce_metrics_printf(
    ngx_http_commerce_metrics_text_t *t, const char *fmt, ...);
static void ngx_http_commerce_metrics_head(ngx_http_commerce_metrics_text_t *t,
    const char *name, const char *type, const char *help);
static u_char *ngx_http_commerce_metrics_escape(u_char *dst,
    ngx_http_commerce_metrics_label_t *l);
static void ngx_http_commerce_metrics_requests(
    ngx_http_commerce_metrics_text_t *t, ngx_http_commerce_metrics_shm_t *m);
static void ngx_http_commerce_metrics_hist(ngx_http_commerce_metrics_text_t *t,
    const char *name, const char *help, ngx_http_commerce_metrics_hist_t *h,
    const char **les);
static void ngx_http_commerce_metrics_fixed(
    ngx_http_commerce_metrics_text_t *t, const char *name, const char *help,
    const char *label, ngx_atomic_t *v, const char **values, ngx_uint_t n);
static void ngx_http_commerce_metrics_breakers(
    ngx_http_commerce_metrics_text_t *t, ngx_http_commerce_metrics_shm_t *m);
static void ngx_http_commerce_metrics_labelled(
    ngx_http_commerce_metrics_text_t *t, ngx_http_commerce_metrics_shm_t *m);
static ngx_uint_t ngx_http_commerce_metrics_label(ngx_str_t *name);
static ngx_int_t ngx_http_commerce_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static char *ngx_http_commerce_metrics_location(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_commerce_metrics_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_commerce_metrics_create_loc_conf(ngx_conf_t *cf);
static ngx_int_t ngx_http_commerce_metrics_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_commerce_metrics_init_process(ngx_cycle_t *cycle);
static void ngx_http_commerce_metrics_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_commerce_metrics_commands[] = {

    { ngx_string("commerce_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_commerce_metrics_location,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_metrics_module_ctx = {
    NULL,                                     /* preconfiguration */
    ngx_http_commerce_metrics_init,           /* postconfiguration */

    ngx_http_commerce_metrics_create_main_conf, /* create main configuration */
    NULL,                                     /* init main configuration */

    NULL,                                     /* create server configuration */
    NULL,                                     /* merge server configuration */

    ngx_http_commerce_metrics_create_loc_conf, /* create location conf */
    NULL                                      /* merge location conf */
};


ngx_module_t  ngx_http_commerce_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_metrics_module_ctx, /* module context */
    ngx_http_commerce_metrics_commands,    /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_commerce_metrics_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_commerce_metrics_exit_process, /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_http_commerce_metrics_shm_t  *ngx_http_commerce_metrics;


/* upper bounds in microseconds, and as Prometheus writes them */
const uint64_t  ngx_http_commerce_metrics_redis_bounds[] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    500000, 1000000
};

static const char  *ngx_http_commerce_metrics_redis_les[] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025", "0.05", "0.1", "0.25", "0.5", "1"
};

/* Kafka's latency is measured in milliseconds */
const uint64_t  ngx_http_commerce_metrics_kafka_bounds[] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
    2500000, 5000000, 10000000
};

static const char  *ngx_http_commerce_metrics_kafka_les[] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10"
};

static const char  *ngx_http_commerce_metrics_apis[] = {
    "", "catalog", "inventory", "catalog_index", "webhook", "metrics",
    "health", "cart", "orders"
};

static const char  *ngx_http_commerce_metrics_redis_reasons[] = {
    "connect", "timeout", "protocol", "reply", "breaker_open"
};

static const char  *ngx_http_commerce_metrics_kafka_results[] = {
    "ok", "error", "timeout", "too_large"
};

static const char  *ngx_http_commerce_metrics_dedup_outcomes[] = {
    "new", "duplicate", "in_progress", "error"
};

static const char  *ngx_http_commerce_metrics_decisions[] = {
    "allowed", "limited", "error"
};

static const char  *ngx_http_commerce_metrics_kinds[] = {
    "redis", "kafka"
};


static ngx_int_t
ngx_http_commerce_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    ngx_http_commerce_metrics_shm_t   *m;
    ngx_http_commerce_metrics_text_t   t;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_commerce_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                            "method_not_allowed",
                                            "use GET or HEAD", 0);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    m = ngx_http_commerce_metrics;

    if (m == NULL) {
        return ngx_http_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "metrics_unavailable",
                                            "no metrics zone", 1);
    }

    ngx_memzero(&t, sizeof(ngx_http_commerce_metrics_text_t));
    t.r = r;
    t.last = &t.out;

    ngx_http_commerce_metrics_requests(&t, m);

    ngx_http_commerce_metrics_hist(&t,
                                   "commerce_redis_command_duration_seconds",
                                   "Redis command round trips",
                                   &m->redis_latency,
                                   ngx_http_commerce_metrics_redis_les);
    ngx_http_commerce_metrics_fixed(&t, "commerce_redis_errors_total",
                                    "Redis commands failed, by reason",
                                    "reason", m->redis_errors,
                                    ngx_http_commerce_metrics_redis_reasons,
                                    NGX_HTTP_COMMERCE_REDIS_ERR_N);
    ngx_http_commerce_metrics_breakers(&t, m);

    ngx_http_commerce_metrics_fixed(&t, "commerce_kafka_deliveries_total",
                                    "Kafka delivery reports and messages "
                                    "refused at produce time, by result",
                                    "result", m->kafka,
                                    ngx_http_commerce_metrics_kafka_results,
                                    NGX_HTTP_COMMERCE_KAFKA_N);
    ngx_http_commerce_metrics_hist(&t,
                                   "commerce_kafka_delivery_duration_seconds",
                                   "Kafka produce to acknowledgement of "
                                   "delivered messages",
                                   &m->kafka_latency,
                                   ngx_http_commerce_metrics_kafka_les);
    ngx_http_commerce_metrics_head(&t, "commerce_kafka_in_flight", "gauge",
                                   "Kafka messages produced and not yet "
                                   "reported");
    ngx_http_commerce_metrics_printf(&t, "commerce_kafka_in_flight %A\n",
                             ngx_max((ngx_atomic_int_t) m->kafka_in_flight,
                                     0));

    ngx_http_commerce_metrics_fixed(&t, "commerce_webhook_dedup_total",
                                    "Webhook deliveries by deduplication "
                                    "outcome",
                                    "outcome", m->dedup,
                                    ngx_http_commerce_metrics_dedup_outcomes,
                                    NGX_HTTP_COMMERCE_DEDUP_N);
    ngx_http_commerce_metrics_labelled(&t, m);

    if (t.failed || t.b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t.b->last_buf = (r == r->main) ? 1 : 0;
    t.b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = 0;

    for (t.last = &t.out; *t.last; t.last = &(*t.last)->next) {
        r->headers_out.content_length_n += ngx_buf_size((*t.last)->buf);
    }

    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, t.out);
}


/* Counts a request of a commerce location by its final status. */
static ngx_int_t
ngx_http_commerce_metrics_log_handler(ngx_http_request_t *r)
{
    ngx_uint_t                             status, i;
    ngx_http_commerce_metrics_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_metrics_module);

    if (mlcf->api == NGX_HTTP_COMMERCE_API_NONE
        || ngx_http_commerce_metrics == NULL)
    {
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;
    i = (status >= 100 && status <= 599) ? status - 99 : 0;

    ngx_http_commerce_metrics_inc(requests[mlcf->api][i]);

    return NGX_OK;
}


static void
ngx_http_commerce_metrics_printf(ngx_http_commerce_metrics_text_t *t,
    const char *fmt, ...)
{
    va_list       args;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = t->b;

    if (b == NULL || b->end - b->last < NGX_HTTP_COMMERCE_METRICS_LINE) {
        b = ngx_create_temp_buf(t->r->pool, NGX_HTTP_COMMERCE_METRICS_CHUNK);
        cl = ngx_alloc_chain_link(t->r->pool);

        if (b == NULL || cl == NULL) {
            t->failed = 1;
            return;
        }

        cl->buf = b;
        cl->next = NULL;
        *t->last = cl;
        t->last = &cl->next;
        t->b = b;
    }

    va_start(args, fmt);
    b->last = ngx_vslprintf(b->last, b->end, fmt, args);
    va_end(args);
}


static void
ngx_http_commerce_metrics_head(ngx_http_commerce_metrics_text_t *t,
    const char *name, const char *type, const char *help)
{
    ngx_http_commerce_metrics_printf(t, "# HELP %s %s.\n# TYPE %s %s\n",
                                     name, help, name, type);
}


/* a label value as Prometheus quotes it: \\, \" and \n escaped */
static u_char *
ngx_http_commerce_metrics_escape(u_char *dst,
    ngx_http_commerce_metrics_label_t *l)
{
    size_t  i;

    for (i = 0; i < l->len; i++) {
        switch (l->name[i]) {
        case '\\':
        case '"':
            *dst++ = '\\';
            *dst++ = l->name[i];
            break;
        case '\n':
            *dst++ = '\\';
            *dst++ = 'n';
            break;
        default:
            *dst++ = l->name[i];
        }
    }

    *dst = '\0';

    return dst;
}


static void
ngx_http_commerce_metrics_requests(ngx_http_commerce_metrics_text_t *t,
    ngx_http_commerce_metrics_shm_t *m)
{
    ngx_uint_t    api, i;
    ngx_atomic_t  v;

    ngx_http_commerce_metrics_head(t, "commerce_http_requests_total",
                                   "counter", "Requests answered by commerce "
                                   "handlers, by API and status");

    for (api = 1; api < NGX_HTTP_COMMERCE_API_N; api++) {
        for (i = 0; i < NGX_HTTP_COMMERCE_METRICS_STATUSES; i++) {
            v = m->requests[api][i];

            if (v == 0) {
                continue;
            }

            ngx_http_commerce_metrics_printf(t,
                "commerce_http_requests_total{api=\"%s\",status=\"%03ui\"} "
                "%uA\n", ngx_http_commerce_metrics_apis[api],
                i ? i + 99 : 0, v);
        }
    }
}


/* cumulative buckets; the count is their total, so +Inf always equals it */
static void
ngx_http_commerce_metrics_hist(ngx_http_commerce_metrics_text_t *t,
    const char *name, const char *help, ngx_http_commerce_metrics_hist_t *h,
    const char **les)
{
    ngx_uint_t    i;
    ngx_atomic_t  n, sum;

    ngx_http_commerce_metrics_head(t, name, "histogram", help);
    n = 0;

    for (i = 0; i < NGX_HTTP_COMMERCE_METRICS_BUCKETS; i++) {
        n += h->bucket[i];
        ngx_http_commerce_metrics_printf(t, "%s_bucket{le=\"%s\"} %uA\n",
                                         name, les[i], n);
    }

    n += h->bucket[NGX_HTTP_COMMERCE_METRICS_BUCKETS];
    sum = h->sum_us;

    ngx_http_commerce_metrics_printf(t, "%s_bucket{le=\"+Inf\"} %uA\n"
                                     "%s_sum %uA.%06uA\n%s_count %uA\n",
                                     name, n, name, sum / 1000000,
                                     sum % 1000000, name, n);
}


/* a counter with one label of a fixed set: every value, zeros included */
static void
ngx_http_commerce_metrics_fixed(ngx_http_commerce_metrics_text_t *t,
    const char *name, const char *help, const char *label, ngx_atomic_t *v,
    const char **values, ngx_uint_t n)
{
    ngx_uint_t  i;

    ngx_http_commerce_metrics_head(t, name, "counter", help);

    for (i = 0; i < n; i++) {
        ngx_http_commerce_metrics_printf(t, "%s{%s=\"%s\"} %uA\n", name,
                                         label, values[i], v[i]);
    }
}


/*
 * One gauge per server: the worst state any live worker reports (an open
 * breaker past its time is half-open, as commerce_breaker_state() says).
 */
static void
ngx_http_commerce_metrics_breakers(ngx_http_commerce_metrics_text_t *t,
    ngx_http_commerce_metrics_shm_t *m)
{
    u_char                                esc[NGX_HTTP_COMMERCE_METRICS_ESC];
    ngx_int_t                             worst, v;
    ngx_uint_t                            k, l, w;
    ngx_http_commerce_metrics_breaker_t  *b;

    ngx_http_commerce_metrics_head(t, "commerce_breaker_state", "gauge",
                                   "Circuit breakers per server: 0 closed, "
                                   "1 half-open, 2 open");

    for (k = 0; k < NGX_HTTP_COMMERCE_BREAKER_N; k++) {
        for (l = 0; l < NGX_HTTP_COMMERCE_METRICS_LABELS; l++) {
            worst = -1;

            for (w = 0; w < NGX_HTTP_COMMERCE_METRICS_WORKERS; w++) {
                b = &m->breakers[k][l][w];

                if (b->pid == 0) {
                    continue;
                }

                v = 0;

                if (b->state == COMMERCE_BREAKER_HALF_OPEN
                    || (b->state == COMMERCE_BREAKER_OPEN
                        && (ngx_msec_int_t) (ngx_current_msec - b->open_until)
                           >= 0))
                {
                    v = 1;

                } else if (b->state == COMMERCE_BREAKER_OPEN) {
                    v = 2;
                }

                worst = ngx_max(worst, v);
            }

            if (worst < 0 || m->labels[l].state != 2) {
                continue;
            }

            (void) ngx_http_commerce_metrics_escape(esc, &m->labels[l]);

            ngx_http_commerce_metrics_printf(t,
                "commerce_breaker_state{kind=\"%s\",server=\"%s\"} %i\n",
                ngx_http_commerce_metrics_kinds[k], esc, worst);
        }
    }
}


/* the counters labelled by configured names: zones and sources */
static void
ngx_http_commerce_metrics_labelled(ngx_http_commerce_metrics_text_t *t,
    ngx_http_commerce_metrics_shm_t *m)
{
    u_char      esc[NGX_HTTP_COMMERCE_METRICS_ESC];
    ngx_uint_t  l, i;

    ngx_http_commerce_metrics_head(t, "commerce_ratelimit_decisions_total",
                                   "counter", "Rate-limit decisions by zone");

    for (l = 0; l < NGX_HTTP_COMMERCE_METRICS_LABELS; l++) {
        if (m->labels[l].state != 2
            || (m->limit[l][0] | m->limit[l][1] | m->limit[l][2]) == 0)
        {
            continue;
        }

        (void) ngx_http_commerce_metrics_escape(esc, &m->labels[l]);

        for (i = 0; i < NGX_HTTP_COMMERCE_LIMIT_DECISION_N; i++) {
            ngx_http_commerce_metrics_printf(t,
                "commerce_ratelimit_decisions_total{zone=\"%s\","
                "decision=\"%s\"} %uA\n", esc,
                ngx_http_commerce_metrics_decisions[i], m->limit[l][i]);
        }
    }

    ngx_http_commerce_metrics_head(t,
                                   "commerce_webhook_signature_failures_total",
                                   "counter", "Webhooks refused for their "
                                   "signature, by source and reason");

    for (l = 0; l < NGX_HTTP_COMMERCE_METRICS_LABELS; l++) {
        if (m->labels[l].state != 2) {
            continue;
        }

        (void) ngx_http_commerce_metrics_escape(esc, &m->labels[l]);

        for (i = 0; i < NGX_HTTP_COMMERCE_METRICS_REASONS; i++) {
            if (m->sig[l][i] == 0) {
                continue;
            }

            ngx_http_commerce_metrics_printf(t,
                "commerce_webhook_signature_failures_total{source=\"%s\","
                "reason=\"%s\"} %uA\n", esc,
                ngx_http_commerce_sig_reason((ngx_http_commerce_sig_rc_e) i),
                m->sig[l][i]);
        }
    }
}


void
ngx_http_commerce_metrics_observe(ngx_http_commerce_metrics_hist_t *h,
    const uint64_t *bounds, uint64_t us)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_COMMERCE_METRICS_BUCKETS && us > bounds[i]; i++) {
        /* void */
    }

    (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum_us, (ngx_atomic_int_t) us);
}


/* the event loop's clock: millisecond resolution */
void
ngx_http_commerce_metrics_kafka(ngx_uint_t result, ngx_msec_t ms)
{
    if (ngx_http_commerce_metrics == NULL
        || result >= NGX_HTTP_COMMERCE_KAFKA_N)
    {
        return;
    }

    ngx_http_commerce_metrics_inc(kafka[result]);

    if (result == NGX_HTTP_COMMERCE_KAFKA_OK) {
        ngx_http_commerce_metrics_observe(
            &ngx_http_commerce_metrics->kafka_latency,
            ngx_http_commerce_metrics_kafka_bounds, (uint64_t) ms * 1000);
    }
}


void
ngx_http_commerce_metrics_limit(ngx_str_t *zone, ngx_uint_t decision)
{
    ngx_uint_t  l;

    if (ngx_http_commerce_metrics == NULL
        || decision >= NGX_HTTP_COMMERCE_LIMIT_DECISION_N)
    {
        return;
    }

    l = ngx_http_commerce_metrics_label(zone);

    ngx_http_commerce_metrics_inc(limit[l][decision]);
}


/* only the signature reasons of ngx_http_commerce_sig_rc_e are counted */
void
ngx_http_commerce_metrics_sig_failure(ngx_str_t *source, const char *reason)
{
    ngx_uint_t  i, l;

    if (ngx_http_commerce_metrics == NULL || reason == NULL) {
        return;
    }

    for (i = NGX_HTTP_COMMERCE_SIG_OK + 1;
         i < NGX_HTTP_COMMERCE_SIG_ERROR
         && i < NGX_HTTP_COMMERCE_METRICS_REASONS;
         i++)
    {
        if (ngx_strcmp(ngx_http_commerce_sig_reason(
                           (ngx_http_commerce_sig_rc_e) i), reason)
            == 0)
        {
            l = ngx_http_commerce_metrics_label(source);
            ngx_http_commerce_metrics_inc(sig[l][i]);
            return;
        }
    }
}


void
ngx_http_commerce_metrics_breaker(ngx_uint_t kind, ngx_str_t *server,
    commerce_breaker_t *b)
{
    ngx_http_commerce_metrics_breaker_t  *s;

    if (ngx_http_commerce_metrics == NULL) {
        return;
    }

    s = &ngx_http_commerce_metrics->breakers[kind]
             [ngx_http_commerce_metrics_label(server)]
             [ngx_worker % NGX_HTTP_COMMERCE_METRICS_WORKERS];

    s->state = b->state;
    s->open_until = (ngx_atomic_t) b->open_until;
    s->pid = (ngx_atomic_t) ngx_pid;
}


/*
 * The slot of a label value: found, or claimed in the first free slot
 * (a claim takes a compare-and-set, and happens once per value in the
 * zone's life).  All taken: the last slot, "other".
 */
static ngx_uint_t
ngx_http_commerce_metrics_label(ngx_str_t *name)
{
    size_t                              len;
    ngx_uint_t                          i, spin;
    ngx_atomic_uint_t                   state;
    ngx_http_commerce_metrics_label_t  *l;

    len = ngx_min(name->len, NGX_HTTP_COMMERCE_METRICS_LABEL_LEN);

    for (i = 0; i < NGX_HTTP_COMMERCE_METRICS_LABELS - 1; i++) {
        l = &ngx_http_commerce_metrics->labels[i];
        state = l->state;

        if (state == 0 && ngx_atomic_cmp_set(&l->state, 0, 1)) {
            ngx_memcpy(l->name, name->data, len);
            l->len = len;
            ngx_memory_barrier();
            l->state = 2;
            return i;
        }

        /* being written by another worker: a few instructions away */
        for (spin = 0; spin < 100000 && (state = l->state) != 2; spin++) {
            ngx_cpu_pause();
        }

        if (state == 2 && l->len == len
            && ngx_memcmp(l->name, name->data, len) == 0)
        {
            return i;
        }
    }

    return NGX_HTTP_COMMERCE_METRICS_LABELS - 1;
}


/*
 * nginx puts a slab pool at the start of every zone: the counters are one
 * allocation from it, found again through the pool's data.
 */
static ngx_int_t
ngx_http_commerce_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t                    *sp;
    ngx_http_commerce_metrics_shm_t    *m;
    ngx_http_commerce_metrics_label_t  *other;

    sp = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* a reload: the same memory, the counters go on */
        m = data;

    } else if (shm_zone->shm.exists) {
        m = sp->data;

    } else {
        m = ngx_slab_calloc(sp, sizeof(ngx_http_commerce_metrics_shm_t));
        if (m == NULL) {
            return NGX_ERROR;
        }

        sp->data = m;
    }

    shm_zone->data = m;

    if (m->magic == NGX_HTTP_COMMERCE_METRICS_MAGIC) {
        return NGX_OK;
    }

    /* new, or left by a module of another layout */

    ngx_memzero(m, sizeof(ngx_http_commerce_metrics_shm_t));

    other = &m->labels[NGX_HTTP_COMMERCE_METRICS_LABELS - 1];
    other->len = sizeof("other") - 1;
    ngx_memcpy(other->name, "other", other->len);
    other->state = 2;

    m->magic = NGX_HTTP_COMMERCE_METRICS_MAGIC;

    return NGX_OK;
}


static char *
ngx_http_commerce_metrics_location(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate: the location has a handler already";
    }

    clcf->handler = ngx_http_commerce_metrics_handler;
    ngx_http_commerce_metrics_api(cf, NGX_HTTP_COMMERCE_API_METRICS);

    return NGX_CONF_OK;
}


void
ngx_http_commerce_metrics_api(ngx_conf_t *cf, ngx_uint_t api)
{
    ngx_http_commerce_metrics_loc_conf_t  *mlcf;

    mlcf = ngx_http_conf_get_module_loc_conf(cf,
                                             ngx_http_commerce_metrics_module);
    mlcf->api = api;
}


static void *
ngx_http_commerce_metrics_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_commerce_metrics_main_conf_t));
}


static void *
ngx_http_commerce_metrics_create_loc_conf(ngx_conf_t *cf)
{
    /* api = NGX_HTTP_COMMERCE_API_NONE, by ngx_pcalloc() */

    return ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_commerce_metrics_loc_conf_t));
}


/* The zone, whatever the configuration, and the log phase counter. */
static ngx_int_t
ngx_http_commerce_metrics_init(ngx_conf_t *cf)
{
    size_t                                  size;
    ngx_http_handler_pt                    *h;
    ngx_http_core_main_conf_t              *cmcf;
    ngx_http_commerce_metrics_main_conf_t  *mmcf;
    static ngx_str_t  name = ngx_string("commerce_metrics");

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_commerce_metrics_module);

    /* the slab pool's header and page table take a few pages */
    size = ngx_align(sizeof(ngx_http_commerce_metrics_shm_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    mmcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_commerce_metrics_module);
    if (mmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    mmcf->shm_zone->init = ngx_http_commerce_metrics_init_zone;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_commerce_metrics_log_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_commerce_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_http_commerce_metrics_main_conf_t  *mmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                             ngx_http_commerce_metrics_module);

    if (mmcf && mmcf->shm_zone) {
        ngx_http_commerce_metrics = mmcf->shm_zone->data;
    }

    return NGX_OK;
}


/* This worker no longer reports its breakers. */
static void
ngx_http_commerce_metrics_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                            k, l;
    ngx_http_commerce_metrics_breaker_t  *b;

    if (ngx_http_commerce_metrics == NULL) {
        return;
    }

    for (k = 0; k < NGX_HTTP_COMMERCE_BREAKER_N; k++) {
        for (l = 0; l < NGX_HTTP_COMMERCE_METRICS_LABELS; l++) {
            b = &ngx_http_commerce_metrics->breakers[k][l]
                     [ngx_worker % NGX_HTTP_COMMERCE_METRICS_WORKERS];

            if (b->pid == (ngx_atomic_t) ngx_pid) {
                b->pid = 0;
            }
        }
    }

    /* the zone stays mapped: the modules' exit still count what they flush */
}
