/*
 * ngx_http_commerce_kafka_module: Kafka configuration (http{} level) and
 * the per-worker idempotent producer.
 *
 * Directives: commerce_kafka_brokers, commerce_kafka_property,
 * commerce_kafka_delivery_timeout, commerce_kafka_flush_timeout,
 * commerce_kafka_breaker_threshold, commerce_kafka_breaker_timeout (http);
 * the reference is docs/directives.md.
 *
 * The producer is created in each worker process (librdkafka threads do
 * not survive fork(), so never in the master), with enable.idempotence=true
 * and acks=all.  librdkafka writes a byte to a non-blocking pipe when its
 * main queue becomes non-empty; the pipe's read end is an nginx read event
 * whose handler serves delivery reports, errors and logs with
 * rd_kafka_poll(rk, 0), so nothing ever waits in the event loop.
 *
 * Each message's opaque is a heap context, never the request: the request
 * detaches from it in a pool cleanup, and a late delivery report then only
 * frees it.  Each message also holds a non-cancelable timer, so that a
 * gracefully exiting worker (reload) stays until every pending delivery is
 * resolved; exit_process flushes what is left, bounded by the flush
 * timeout, then destroys the producer.
 *
 * The timer first fires at commerce_kafka_delivery_timeout: the request is
 * told (NGX_AGAIN) and answers 503 at once, librdkafka's own report, whose
 * timeout scan lags while the brokers are unreachable, follows.  Every
 * report ends in ngx_http_commerce_kafka_ended() and every change of the
 * breaker in ngx_http_commerce_kafka_breaker_changed(): the places for
 * metrics.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <librdkafka/rdkafka.h>

#include "commerce_breaker.h"

#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_kafka.h"


/*
 * A delivery report is due after message.timeout.ms, but librdkafka scans
 * for timed out messages from its broker threads, which lag while the
 * brokers are unreachable (seen: 3 s with a 5 s timeout).  The request has
 * had its 503 by then; this is how long after that the report is awaited
 * before the request is let go.
 */
#define NGX_HTTP_COMMERCE_KAFKA_REPORT_MARGIN  5000

/* the error of a message refused before the breaker was asked (size) */
#define NGX_HTTP_COMMERCE_KAFKA_REFUSED  RD_KAFKA_RESP_ERR__INVALID_ARG

/* re-creation of a producer: first delay, doubling up to the last */
#define NGX_HTTP_COMMERCE_KAFKA_CREATE_MIN     250
#define NGX_HTTP_COMMERCE_KAFKA_CREATE_MAX     10000


typedef struct {
    ngx_http_request_t                   *r;       /* NULL once detached */
    ngx_pool_cleanup_t                   *cln;
    ngx_http_commerce_kafka_handler_pt    handler;
    void                                 *data;
    ngx_event_t                           timer;
    ngx_queue_t                           queue;   /* worker's pending */
    ngx_msec_t                            start;
    unsigned                              overdue:1;
} ngx_http_commerce_kafka_msg_t;


typedef struct {
    rd_kafka_t                           *rk;
    rd_kafka_queue_t                     *mainq;
    rd_kafka_topic_t                    **topics;  /* kmcf->topics */
    ngx_str_t                            *names;
    ngx_uint_t                            ntopics;
    ngx_connection_t                     *c;       /* pipe read end */
    ngx_fd_t                              wfd;     /* pipe write end */
    ngx_queue_t                           pending;
    ngx_uint_t                            in_flight;
    ngx_msec_t                            report_timeout;
    ngx_log_t                            *log;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;
    commerce_breaker_t                    breaker;
    ngx_event_t                           create;  /* (re)creation timer */
    ngx_msec_t                            backoff;
    unsigned                              exiting:1;
    unsigned                              fatal:1;
} ngx_http_commerce_kafka_worker_t;


static void *ngx_http_commerce_kafka_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_kafka_init_main_conf(ngx_conf_t *cf,
    void *conf);
static char *ngx_http_commerce_kafka_brokers(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_commerce_kafka_property(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_commerce_kafka_conf_set(ngx_conf_t *cf,
    rd_kafka_conf_t *kconf, const char *name, const char *value);
static void ngx_http_commerce_kafka_conf_cleanup(void *data);
static size_t ngx_http_commerce_kafka_message_max(rd_kafka_conf_t *kconf);
static size_t ngx_http_commerce_kafka_varint_len(size_t n);
static ngx_int_t ngx_http_commerce_kafka_init_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_commerce_kafka_open_pipe(ngx_cycle_t *cycle);
static void ngx_http_commerce_kafka_create_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_commerce_kafka_create(ngx_cycle_t *cycle);
static void ngx_http_commerce_kafka_discard(ngx_msec_t flush);
static void ngx_http_commerce_kafka_exit_process(ngx_cycle_t *cycle);
static void ngx_http_commerce_kafka_close_pipe(void);
static void ngx_http_commerce_kafka_read_handler(ngx_event_t *rev);
static void ngx_http_commerce_kafka_serve(void);
static void ngx_http_commerce_kafka_dr(rd_kafka_t *rk,
    const rd_kafka_message_t *m, void *opaque);
static void ngx_http_commerce_kafka_log(const rd_kafka_t *rk, int level,
    const char *fac, const char *buf);
static void ngx_http_commerce_kafka_error(rd_kafka_t *rk, int err,
    const char *reason, void *opaque);
static ngx_uint_t ngx_http_commerce_kafka_result(rd_kafka_resp_err_t err);
static void ngx_http_commerce_kafka_ended(ngx_msec_t start, ngx_uint_t result,
    rd_kafka_resp_err_t err);
static ngx_uint_t ngx_http_commerce_kafka_allow(time_t *retry_after);
static void ngx_http_commerce_kafka_breaker_changed(
    commerce_breaker_state_e from, commerce_breaker_state_e to);
static void ngx_http_commerce_kafka_msg_timeout(ngx_event_t *ev);
static void ngx_http_commerce_kafka_msg_cleanup(void *data);
static void ngx_http_commerce_kafka_msg_free(
    ngx_http_commerce_kafka_msg_t *msg);
static rd_kafka_topic_t *ngx_http_commerce_kafka_topic(ngx_str_t *topic);
static u_char *ngx_http_commerce_kafka_payload(ngx_http_request_t *r,
    ngx_chain_t *body, size_t *len);


static ngx_command_t  ngx_http_commerce_kafka_commands[] = {

    { ngx_string("commerce_kafka_brokers"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_commerce_kafka_brokers,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_kafka_property"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_commerce_kafka_property,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_kafka_delivery_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_kafka_main_conf_t, delivery_timeout),
      NULL },

    { ngx_string("commerce_kafka_flush_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_kafka_main_conf_t, flush_timeout),
      NULL },

    { ngx_string("commerce_kafka_breaker_threshold"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_kafka_main_conf_t, breaker_threshold),
      NULL },

    { ngx_string("commerce_kafka_breaker_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_kafka_main_conf_t, breaker_timeout),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_kafka_module_ctx = {
    NULL,                                     /* preconfiguration */
    NULL,                                     /* postconfiguration */

    ngx_http_commerce_kafka_create_main_conf, /* create main configuration */
    ngx_http_commerce_kafka_init_main_conf,   /* init main configuration */

    NULL,                                     /* create server configuration */
    NULL,                                     /* merge server configuration */

    NULL,                                     /* create location conf */
    NULL                                      /* merge location conf */
};


ngx_module_t  ngx_http_commerce_kafka_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_kafka_module_ctx,   /* module context */
    ngx_http_commerce_kafka_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_commerce_kafka_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_commerce_kafka_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* properties owned by the dedicated directives or by this module */
static const char  *ngx_http_commerce_kafka_reserved[] = {
    "bootstrap.servers",
    "metadata.broker.list",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "log.queue",
    NULL
};


/* one producer per worker process; wfd is set in init_process */
static ngx_http_commerce_kafka_worker_t  ngx_http_commerce_kafka_worker;


/*
 * The librdkafka configuration is built while the configuration is read,
 * so that every property error points at its line; the master never
 * creates a client from it.
 */
static void *
ngx_http_commerce_kafka_create_main_conf(ngx_conf_t *cf)
{
    char                                  errstr[256];
    ngx_pool_cleanup_t                   *cln;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    kmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_kafka_main_conf_t));
    if (kmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     kmcf->brokers = { 0, NULL };
     *     kmcf->used = 0;
     */

    kmcf->delivery_timeout = NGX_CONF_UNSET_MSEC;
    kmcf->flush_timeout = NGX_CONF_UNSET_MSEC;
    kmcf->breaker_timeout = NGX_CONF_UNSET_MSEC;
    kmcf->breaker_threshold = NGX_CONF_UNSET_UINT;

    if (ngx_array_init(&kmcf->topics, cf->pool, 4, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    kmcf->conf = rd_kafka_conf_new();
    if (kmcf->conf == NULL) {
        return NULL;
    }

    /*
     * Every webhook waits for its own message's acknowledgement, so the
     * producer must not hold messages back for bigger batches: librdkafka's
     * default linger.ms of 5 ms would be 5 ms added to every request, and
     * its sticky partitioner would send every message without a key to one
     * partition, one broker, at most 5 idempotent requests in flight.
     * Its reconnect backoff grows to 10 s, so that webhooks would still
     * get 503 seconds after the brokers are back: 1 s here.
     * commerce_kafka_property overrides all three.
     */

    if (rd_kafka_conf_set(kmcf->conf, "linger.ms", "1", errstr,
                          sizeof(errstr))
        != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(kmcf->conf, "sticky.partitioning.linger.ms",
                             "0", errstr, sizeof(errstr))
           != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(kmcf->conf, "reconnect.backoff.max.ms",
                             "1000", errstr, sizeof(errstr))
           != RD_KAFKA_CONF_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "commerce kafka: %s",
                           errstr);
        return NULL;
    }

    cln->handler = ngx_http_commerce_kafka_conf_cleanup;
    cln->data = kmcf->conf;

    return kmcf;
}


static char *
ngx_http_commerce_kafka_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_commerce_kafka_main_conf_t *kmcf = conf;

    u_char  buf[NGX_INT_T_LEN + 1];

    ngx_conf_init_msec_value(kmcf->delivery_timeout, 5000);
    ngx_conf_init_msec_value(kmcf->flush_timeout, 10000);
    ngx_conf_init_msec_value(kmcf->breaker_timeout, 1000);
    ngx_conf_init_uint_value(kmcf->breaker_threshold, 3);

    kmcf->message_max = ngx_http_commerce_kafka_message_max(kmcf->conf);

    if (kmcf->used && kmcf->brokers.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_kafka_brokers\" is not set, but a "
                           "location publishes to Kafka");
        return NGX_CONF_ERROR;
    }

    if (kmcf->delivery_timeout == 0 || kmcf->delivery_timeout > 0x7fffffff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_kafka_delivery_timeout\" must be "
                           "between 1ms and 24d");
        return NGX_CONF_ERROR;
    }

    if (kmcf->brokers.len == 0) {
        return NGX_CONF_OK;
    }

    ngx_sprintf(buf, "%M%Z", kmcf->delivery_timeout);

    if (ngx_http_commerce_kafka_conf_set(cf, kmcf->conf, "bootstrap.servers",
                                         (char *) kmcf->brokers.data)
        != NGX_CONF_OK
        || ngx_http_commerce_kafka_conf_set(cf, kmcf->conf,
                                            "enable.idempotence", "true")
           != NGX_CONF_OK
        || ngx_http_commerce_kafka_conf_set(cf, kmcf->conf, "acks", "all")
           != NGX_CONF_OK
        || ngx_http_commerce_kafka_conf_set(cf, kmcf->conf,
                                            "message.timeout.ms",
                                            (char *) buf)
           != NGX_CONF_OK
        || ngx_http_commerce_kafka_conf_set(cf, kmcf->conf, "log.queue",
                                            "true")
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* host:port[,host:port...]: every entry needs a host and a valid port */
static char *
ngx_http_commerce_kafka_brokers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_commerce_kafka_main_conf_t *kmcf = conf;

    u_char     *p, *last, *end, *colon;
    ngx_int_t   port;
    ngx_str_t  *value;

    if (kmcf->brokers.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    p = value[1].data;
    last = p + value[1].len;

    while (p < last) {
        end = ngx_strlchr(p, last, ',');
        if (end == NULL) {
            end = last;
        }

        for (colon = end; colon > p; colon--) {
            if (colon[-1] == ':') {
                break;
            }
        }

        port = (colon > p + 1) ? ngx_atoi(colon, end - colon) : NGX_ERROR;

        if (port < 1 || port > 65535) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid broker \"%*s\", host:port expected",
                               end - p, p);
            return NGX_CONF_ERROR;
        }

        p = end + 1;
    }

    if (value[1].len == 0 || value[1].data[value[1].len - 1] == ',') {
        return "needs host:port entries separated by commas";
    }

    kmcf->brokers = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_http_commerce_kafka_property(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_commerce_kafka_main_conf_t *kmcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = 0; ngx_http_commerce_kafka_reserved[i]; i++) {
        if (ngx_strcmp(value[1].data, ngx_http_commerce_kafka_reserved[i])
            == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "Kafka property \"%V\" is set by the commerce "
                               "module (see commerce_kafka_brokers and "
                               "commerce_kafka_delivery_timeout)", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    return ngx_http_commerce_kafka_conf_set(cf, kmcf->conf,
                                            (char *) value[1].data,
                                            (char *) value[2].data);
}


/* librdkafka's own message says what is wrong; values are never logged */
static char *
ngx_http_commerce_kafka_conf_set(ngx_conf_t *cf, rd_kafka_conf_t *kconf,
    const char *name, const char *value)
{
    char  errstr[512];

    if (rd_kafka_conf_set(kconf, name, value, errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid Kafka property \"%s\": %s", name, errstr);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_commerce_kafka_conf_cleanup(void *data)
{
    rd_kafka_conf_destroy(data);
}


ngx_int_t
ngx_http_commerce_kafka_add_topic(ngx_conf_t *cf, ngx_str_t *topic)
{
    ngx_str_t                            *t;
    ngx_uint_t                            i;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    kmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_commerce_kafka_module);

    t = kmcf->topics.elts;

    for (i = 0; i < kmcf->topics.nelts; i++) {
        if (t[i].len == topic->len
            && ngx_strncmp(t[i].data, topic->data, topic->len) == 0)
        {
            return NGX_OK;
        }
    }

    t = ngx_array_push(&kmcf->topics);
    if (t == NULL) {
        return NGX_ERROR;
    }

    t->len = topic->len;
    t->data = ngx_pnalloc(cf->pool, topic->len + 1);
    if (t->data == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(t->data, topic->data, topic->len + 1);

    return NGX_OK;
}


/* librdkafka's message.max.bytes as configured (its default unless set) */
static size_t
ngx_http_commerce_kafka_message_max(rd_kafka_conf_t *kconf)
{
    char       buf[NGX_INT_T_LEN + 1];
    size_t     size;
    ngx_int_t  n;

    size = sizeof(buf);

    if (rd_kafka_conf_get(kconf, "message.max.bytes", buf, &size)
        != RD_KAFKA_CONF_OK)
    {
        return 1000000;
    }

    n = ngx_atoi((u_char *) buf, ngx_strlen(buf));

    return (n > 0) ? (size_t) n : 1000000;
}


size_t
ngx_http_commerce_kafka_conf_body_max(ngx_conf_t *cf)
{
    size_t                                max;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    kmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_commerce_kafka_module);

    max = ngx_http_commerce_kafka_message_max(kmcf->conf);

    if (max <= NGX_HTTP_COMMERCE_KAFKA_RECORD_OVERHEAD) {
        return 0;
    }

    return max - NGX_HTTP_COMMERCE_KAFKA_RECORD_OVERHEAD;
}


/*
 * What librdkafka counts against message.max.bytes: the record overhead,
 * the key, and each header as its name and value with their lengths as
 * zigzag varints.
 */
size_t
ngx_http_commerce_kafka_body_max(ngx_http_request_t *r, size_t keylen,
    rd_kafka_headers_t *hdrs)
{
    size_t                                used, vlen;
    ngx_uint_t                            i;
    const char                           *name;
    const void                           *value;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    kmcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_kafka_module);

    used = NGX_HTTP_COMMERCE_KAFKA_RECORD_OVERHEAD + keylen;

    for (i = 0;
         hdrs
         && rd_kafka_header_get_all(hdrs, i, &name, &value, &vlen)
            == RD_KAFKA_RESP_ERR_NO_ERROR;
         i++)
    {
        used += ngx_strlen(name) + vlen
                + ngx_http_commerce_kafka_varint_len(ngx_strlen(name))
                + ngx_http_commerce_kafka_varint_len(vlen);
    }

    return (kmcf->message_max > used) ? kmcf->message_max - used : 0;
}


/* the bytes of a non-negative length as a zigzag varint */
static size_t
ngx_http_commerce_kafka_varint_len(size_t n)
{
    size_t    len;
    uint64_t  z;

    z = (uint64_t) n << 1;

    for (len = 1; z >= 0x80; len++) {
        z >>= 7;
    }

    return len;
}


/*
 * Sets up this worker's delivery report pipe and creates its producer.  A
 * producer that cannot be created is not fatal: publishing locations
 * answer 503, the error log says why, and creation is tried again with
 * backoff.
 */
static ngx_int_t
ngx_http_commerce_kafka_init_process(ngx_cycle_t *cycle)
{
    ngx_http_commerce_kafka_worker_t     *w;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    w = &ngx_http_commerce_kafka_worker;
    w->wfd = NGX_INVALID_FILE;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    kmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_commerce_kafka_module);
    if (kmcf == NULL || kmcf->brokers.len == 0) {
        return NGX_OK;
    }

    w->log = cycle->log;
    w->kmcf = kmcf;
    w->report_timeout = kmcf->delivery_timeout;
    w->backoff = NGX_HTTP_COMMERCE_KAFKA_CREATE_MIN;
    ngx_queue_init(&w->pending);

    w->create.handler = ngx_http_commerce_kafka_create_handler;
    w->create.data = w;
    w->create.log = cycle->log;
    w->create.cancelable = 1;

    if (ngx_http_commerce_kafka_open_pipe(cycle) != NGX_OK) {
        return NGX_OK;
    }

    ngx_http_commerce_kafka_create_handler(&w->create);

    return NGX_OK;
}


/* the pipe librdkafka writes to when its main queue becomes non-empty */
static ngx_int_t
ngx_http_commerce_kafka_open_pipe(ngx_cycle_t *cycle)
{
    int                                fds[2];
    ngx_connection_t                  *c;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    if (pipe2(fds, O_NONBLOCK|O_CLOEXEC) == -1) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_errno,
                      "commerce kafka: pipe2() failed, no producer");
        return NGX_ERROR;
    }

    c = ngx_get_connection(fds[0], cycle->log);
    if (c == NULL) {
        close(fds[0]);
        close(fds[1]);
        return NGX_ERROR;
    }

    c->data = w;
    c->read->handler = ngx_http_commerce_kafka_read_handler;
    c->read->log = cycle->log;
    c->write->log = cycle->log;

    w->c = c;
    w->wfd = fds[1];

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_http_commerce_kafka_close_pipe();
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * (Re)creates the producer: at worker start, after a failed creation, and
 * after a fatal error (the discarded producer's messages end as failures
 * first).  A failure plans the next try with exponential backoff.
 */
static void
ngx_http_commerce_kafka_create_handler(ngx_event_t *ev)
{
    ngx_http_commerce_kafka_worker_t  *w;

    w = ev->data;

    if (w->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (w->rk) {
        ngx_http_commerce_kafka_discard(0);
    }

    if (ngx_http_commerce_kafka_create((ngx_cycle_t *) ngx_cycle) == NGX_OK) {
        w->backoff = NGX_HTTP_COMMERCE_KAFKA_CREATE_MIN;
        return;
    }

    ngx_log_error(NGX_LOG_WARN, w->log, 0,
                  "commerce kafka: creating the producer again in %M ms",
                  w->backoff);

    ngx_add_timer(&w->create, w->backoff);

    w->backoff = ngx_min(w->backoff * 2, NGX_HTTP_COMMERCE_KAFKA_CREATE_MAX);
}


/* The producer, its topic handles, its queue hooked to the pipe. */
static ngx_int_t
ngx_http_commerce_kafka_create(ngx_cycle_t *cycle)
{
    char                                  errstr[512];
    ngx_uint_t                            i;
    rd_kafka_t                           *rk;
    rd_kafka_conf_t                      *kconf;
    ngx_http_commerce_kafka_worker_t     *w;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    w = &ngx_http_commerce_kafka_worker;
    kmcf = w->kmcf;

    kconf = rd_kafka_conf_dup(kmcf->conf);
    if (kconf == NULL) {
        return NGX_ERROR;
    }

    rd_kafka_conf_set_dr_msg_cb(kconf, ngx_http_commerce_kafka_dr);
    rd_kafka_conf_set_log_cb(kconf, ngx_http_commerce_kafka_log);
    rd_kafka_conf_set_error_cb(kconf, ngx_http_commerce_kafka_error);

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, sizeof(errstr));
    if (rk == NULL) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "commerce kafka: cannot create the producer: %s",
                      errstr);
        rd_kafka_conf_destroy(kconf);
        return NGX_ERROR;
    }

    /* logs are served by rd_kafka_poll() in this thread, never by others */
    (void) rd_kafka_set_log_queue(rk, NULL);

    w->rk = rk;
    w->fatal = 0;
    w->mainq = rd_kafka_queue_get_main(rk);

    commerce_breaker_init(&w->breaker, kmcf->breaker_threshold,
                          kmcf->breaker_timeout, 1);

    /* a topic handle makes the producer fetch the topic's metadata now */

    w->names = kmcf->topics.elts;
    w->ntopics = 0;

    if (w->topics == NULL) {
        w->topics = ngx_pcalloc(cycle->pool, (kmcf->topics.nelts + 1)
                                             * sizeof(rd_kafka_topic_t *));
        if (w->topics == NULL) {
            ngx_http_commerce_kafka_discard(0);
            return NGX_ERROR;
        }
    }

    for (i = 0; i < kmcf->topics.nelts; i++) {
        w->topics[i] = rd_kafka_topic_new(rk, (char *) w->names[i].data,
                                          NULL);
        if (w->topics[i] == NULL) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "commerce kafka: topic \"%V\": %s", &w->names[i],
                          rd_kafka_err2str(rd_kafka_last_error()));
            break;
        }

        w->ntopics++;
    }

    rd_kafka_queue_io_event_enable(w->mainq, w->wfd, "1", 1);

    /* whatever was queued before the pipe was attached */
    ngx_http_commerce_kafka_serve();

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "commerce kafka: producer %s created for %V",
                  rd_kafka_name(rk), &kmcf->brokers);

    return NGX_OK;
}


/*
 * Destroys the producer.  flush > 0 (worker exit): what is in flight may
 * be delivered within that time.  The rest is purged; their reports end
 * the messages, as failures (503) while the worker is not exiting, so that
 * a re-created producer never leaves a request waiting and never
 * acknowledges a message it did not deliver.
 */
static void
ngx_http_commerce_kafka_discard(ngx_msec_t flush)
{
    int                                left;
    void                              *data;
    ngx_uint_t                         i;
    ngx_queue_t                       *q;
    ngx_connection_t                  *c;
    ngx_http_request_t                *r;
    ngx_http_commerce_kafka_msg_t     *msg;
    ngx_http_commerce_kafka_worker_t  *w;
    ngx_http_commerce_kafka_handler_pt handler;

    w = &ngx_http_commerce_kafka_worker;

    if (flush && rd_kafka_outq_len(w->rk) > 0) {
        (void) rd_kafka_flush(w->rk, (int) flush);
    }

    left = rd_kafka_outq_len(w->rk);

    if (left > 0) {
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "commerce kafka: %d messages not delivered%s, "
                      "dropped", left,
                      flush ? " within the flush timeout" : "");

        (void) rd_kafka_purge(w->rk, RD_KAFKA_PURGE_F_QUEUE
                                     |RD_KAFKA_PURGE_F_INFLIGHT);
    }

    rd_kafka_queue_io_event_enable(w->mainq, -1, NULL, 0);

    /* delivery reports of the purged messages end them */
    ngx_http_commerce_kafka_serve();

    for (i = 0; i < w->ntopics; i++) {
        rd_kafka_topic_destroy(w->topics[i]);
    }

    w->ntopics = 0;

    rd_kafka_queue_destroy(w->mainq);
    rd_kafka_destroy(w->rk);

    w->mainq = NULL;
    w->rk = NULL;

    /* reports that never came: the requests still get their failure */

    while (!ngx_queue_empty(&w->pending)) {
        q = ngx_queue_head(&w->pending);
        msg = ngx_queue_data(q, ngx_http_commerce_kafka_msg_t, queue);
        r = msg->r;
        handler = msg->handler;
        data = msg->data;

        ngx_http_commerce_kafka_ended(msg->start,
                                      NGX_HTTP_COMMERCE_KAFKA_ERROR,
                                      RD_KAFKA_RESP_ERR__DESTROY);
        ngx_http_commerce_kafka_msg_free(msg);

        if (r && !w->exiting) {
            c = r->connection;
            handler(r, data, NGX_ERROR, -1, -1, "producer discarded");
            ngx_http_run_posted_requests(c);
        }
    }
}


/*
 * Flushes what is still in flight (bounded), drops the rest, then
 * destroys the producer.  The requests are going away with the cycle, so
 * no handler is called.
 */
static void
ngx_http_commerce_kafka_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    w->exiting = 1;

    if (w->create.timer_set) {
        ngx_del_timer(&w->create);
    }

    if (w->rk) {
        ngx_http_commerce_kafka_discard(w->kmcf->flush_timeout);
    }

    ngx_http_commerce_kafka_close_pipe();
}


static void
ngx_http_commerce_kafka_close_pipe(void)
{
    ngx_connection_t                  *c;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;
    c = w->c;

    if (c) {
        w->c = NULL;

        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        (void) close(c->fd);
        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
    }

    if (w->wfd != NGX_INVALID_FILE) {
        (void) close(w->wfd);
        w->wfd = NGX_INVALID_FILE;
    }
}


/* librdkafka signalled a non-empty main queue: empty the pipe, serve it */
static void
ngx_http_commerce_kafka_read_handler(ngx_event_t *rev)
{
    u_char            buf[64];
    ssize_t           n;
    ngx_connection_t  *c;

    c = rev->data;

    for ( ;; ) {
        n = read(c->fd, buf, sizeof(buf));

        if (n > 0) {
            continue;
        }

        if (n == -1 && ngx_errno == NGX_EINTR) {
            continue;
        }

        break;
    }

    ngx_http_commerce_kafka_serve();
}


/*
 * The pipe only signals an empty queue becoming non-empty, so the queue is
 * served until nothing is left.
 */
static void
ngx_http_commerce_kafka_serve(void)
{
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    while (w->rk && rd_kafka_poll(w->rk, 0) > 0) {
        /* void */
    }
}


/* The delivery report of one message, served in the nginx thread. */
static void
ngx_http_commerce_kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
    void *opaque)
{
    void                                *data;
    ngx_int_t                            rc;
    ngx_uint_t                           result;
    ngx_connection_t                    *c;
    ngx_http_request_t                  *r;
    ngx_http_commerce_kafka_msg_t       *msg;
    ngx_http_commerce_kafka_handler_pt   handler;

    msg = m->_private;
    r = msg->r;
    result = ngx_http_commerce_kafka_result(m->err);

    ngx_http_commerce_kafka_ended(msg->start, result, m->err);

    if (r == NULL || ngx_http_commerce_kafka_worker.exiting) {
        if (m->err) {
            ngx_log_error(NGX_LOG_WARN, ngx_http_commerce_kafka_worker.log,
                          0, "commerce kafka: delivery to %s failed after "
                          "the request was gone: %s",
                          rd_kafka_topic_name(m->rkt),
                          rd_kafka_err2str(m->err));
        }

        ngx_http_commerce_kafka_msg_free(msg);
        return;
    }

    handler = msg->handler;
    data = msg->data;
    c = r->connection;

    ngx_http_commerce_kafka_msg_free(msg);

    if (m->err) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "commerce kafka: delivery to %s failed: %s",
                      rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));

        rc = (result == NGX_HTTP_COMMERCE_KAFKA_TOO_LARGE)
             ? NGX_HTTP_REQUEST_ENTITY_TOO_LARGE : NGX_ERROR;

        handler(r, data, rc, -1, -1, rd_kafka_err2str(m->err));

    } else {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "commerce kafka: delivered to %s [%D] at %L",
                       rd_kafka_topic_name(m->rkt), m->partition, m->offset);

        handler(r, data, NGX_OK, m->partition, m->offset, NULL);
    }

    ngx_http_run_posted_requests(c);
}


static ngx_uint_t
ngx_http_commerce_kafka_result(rd_kafka_resp_err_t err)
{
    switch (err) {

    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return NGX_HTTP_COMMERCE_KAFKA_OK;

    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case NGX_HTTP_COMMERCE_KAFKA_REFUSED:
        return NGX_HTTP_COMMERCE_KAFKA_TOO_LARGE;

    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
        return NGX_HTTP_COMMERCE_KAFKA_TIMEOUT;

    default:
        return NGX_HTTP_COMMERCE_KAFKA_ERROR;
    }
}


/*
 * Where every message ends, exactly once: reported, given up on, or
 * refused when produced (start is then now).  The breaker learns from it,
 * and this is the place for the metrics of deliveries by result and their
 * latency (ngx_current_msec - start); the in-flight count is
 * ngx_http_commerce_kafka_worker.in_flight.  Messages we purged ourselves
 * (re-creation, exit) and our own size refusals (made before the breaker
 * is asked) say nothing about the brokers.
 */
static void
ngx_http_commerce_kafka_ended(ngx_msec_t start, ngx_uint_t result,
    rd_kafka_resp_err_t err)
{
    commerce_breaker_state_e           from;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    if (w->kmcf->breaker_threshold == 0
        || err == RD_KAFKA_RESP_ERR__PURGE_QUEUE
        || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT
        || err == RD_KAFKA_RESP_ERR__DESTROY
        || err == RD_KAFKA_RESP_ERR__FATAL
        || err == NGX_HTTP_COMMERCE_KAFKA_REFUSED)
    {
        return;
    }

    from = w->breaker.state;

    if (result == NGX_HTTP_COMMERCE_KAFKA_OK
        || result == NGX_HTTP_COMMERCE_KAFKA_TOO_LARGE)
    {
        commerce_breaker_success(&w->breaker);

    } else {
        commerce_breaker_failure(&w->breaker, ngx_current_msec);
    }

    if (w->breaker.state != from) {
        ngx_http_commerce_kafka_breaker_changed(from, w->breaker.state);
    }
}


/*
 * Whether a message may be produced now: not while the breaker is open,
 * and only one probe while it is half-open.
 */
static ngx_uint_t
ngx_http_commerce_kafka_allow(time_t *retry_after)
{
    ngx_uint_t                         ok;
    ngx_msec_t                         left;
    commerce_breaker_state_e           from;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    if (w->kmcf->breaker_threshold == 0) {
        return 1;
    }

    from = w->breaker.state;

    ok = commerce_breaker_allow(&w->breaker, ngx_current_msec);

    if (w->breaker.state != from) {
        ngx_http_commerce_kafka_breaker_changed(from, w->breaker.state);
    }

    if (!ok) {
        left = (ngx_msec_t) commerce_breaker_retry_after(&w->breaker,
                                                         ngx_current_msec);
        *retry_after = (time_t) ngx_max((left + 999) / 1000, 1);
    }

    return ok;
}


/*
 * Every change of the producer's breaker passes here: the log, and the
 * place for the breaker state metric (kind kafka).
 */
static void
ngx_http_commerce_kafka_breaker_changed(commerce_breaker_state_e from,
    commerce_breaker_state_e to)
{
    ngx_uint_t                         level;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    level = (to == COMMERCE_BREAKER_OPEN) ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, w->log, 0, "commerce kafka: breaker %s -> %s for %V",
                  commerce_breaker_state_name(from),
                  commerce_breaker_state_name(to), &w->kmcf->brokers);
}


/* librdkafka logs (syslog levels), served by rd_kafka_poll() */
static void
ngx_http_commerce_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
    ngx_uint_t  nlevel;

    if (level <= 3) {
        nlevel = NGX_LOG_ERR;

    } else if (level == 4) {
        nlevel = NGX_LOG_WARN;

    } else if (level <= 6) {
        nlevel = NGX_LOG_INFO;

    } else {
        nlevel = NGX_LOG_DEBUG;
    }

    ngx_log_error(nlevel, ngx_http_commerce_kafka_worker.log, 0,
                  "commerce kafka: %s: %s", fac, buf);
}


/*
 * librdkafka's errors, served by rd_kafka_poll(): all brokers down opens
 * the breaker at once; a fatal error (idempotence state lost) makes the
 * producer useless: it is replaced as soon as this callback is left.
 */
static void
ngx_http_commerce_kafka_error(rd_kafka_t *rk, int err, const char *reason,
    void *opaque)
{
    char                               fatal[512];
    commerce_breaker_state_e           from;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        (void) rd_kafka_fatal_error(rk, fatal, sizeof(fatal));

        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "commerce kafka: fatal error: %s: %s, the producer is "
                      "re-created", reason, fatal);

        if (!w->fatal && !w->exiting) {
            w->fatal = 1;
            w->backoff = NGX_HTTP_COMMERCE_KAFKA_CREATE_MIN;

            if (w->create.timer_set) {
                ngx_del_timer(&w->create);
            }

            ngx_add_timer(&w->create, 1);
        }

        return;
    }

    ngx_log_error(NGX_LOG_WARN, w->log, 0, "commerce kafka: %s: %s",
                  rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);

    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN
        && w->kmcf->breaker_threshold)
    {
        from = w->breaker.state;

        commerce_breaker_trip(&w->breaker, ngx_current_msec);

        if (w->breaker.state != from) {
            ngx_http_commerce_kafka_breaker_changed(from, w->breaker.state);
        }
    }
}


/*
 * The report is overdue.  First at commerce_kafka_delivery_timeout: the
 * request is told and answers 503, while it waits on for the outcome.  A
 * margin later the request is let go (a final failure) and the context
 * stays pending, librdkafka still owns the message, until the report or
 * exit_process.
 */
static void
ngx_http_commerce_kafka_msg_timeout(ngx_event_t *ev)
{
    void                                *data;
    ngx_uint_t                           last;
    ngx_connection_t                    *c;
    ngx_http_request_t                  *r;
    ngx_http_commerce_kafka_msg_t       *msg;
    ngx_http_commerce_kafka_handler_pt   handler;

    msg = ev->data;
    r = msg->r;

    if (r == NULL) {
        return;
    }

    c = r->connection;
    handler = msg->handler;
    data = msg->data;
    last = msg->overdue;

    ngx_log_error(NGX_LOG_ERR, c->log, 0,
                  "commerce kafka: no delivery report after %M ms%s",
                  ngx_current_msec - msg->start,
                  last ? ", given up" : ", answered 503");

    if (last) {
        msg->r = NULL;
        msg->cln->handler = NULL;

        handler(r, data, NGX_ERROR, -1, -1, "delivery report overdue");

    } else {
        msg->overdue = 1;

        /* msg->timer.cancelable = 0: a reload waits for the report */
        ngx_add_timer(&msg->timer, NGX_HTTP_COMMERCE_KAFKA_REPORT_MARGIN);

        handler(r, data, NGX_AGAIN, -1, -1, "delivery timed out");
    }

    ngx_http_run_posted_requests(c);
}


/*
 * The request is being freed first: detach it.  The timer stays, so that
 * an exiting worker still waits for the report.
 */
static void
ngx_http_commerce_kafka_msg_cleanup(void *data)
{
    ngx_http_commerce_kafka_msg_t  *msg = data;

    msg->r = NULL;
}


static void
ngx_http_commerce_kafka_msg_free(ngx_http_commerce_kafka_msg_t *msg)
{
    if (msg->r) {
        msg->cln->handler = NULL;
        msg->r = NULL;
    }

    if (msg->timer.timer_set) {
        ngx_del_timer(&msg->timer);
    }

    ngx_queue_remove(&msg->queue);
    ngx_free(msg);

    ngx_http_commerce_kafka_worker.in_flight--;
}


/* the worker's handle of a topic declared in advance, else NULL */
static rd_kafka_topic_t *
ngx_http_commerce_kafka_topic(ngx_str_t *topic)
{
    ngx_uint_t                         i;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    for (i = 0; i < w->ntopics; i++) {
        if (w->names[i].len == topic->len
            && ngx_strncmp(w->names[i].data, topic->data, topic->len) == 0)
        {
            return w->topics[i];
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_commerce_kafka_produce(ngx_http_request_t *r, ngx_str_t *topic,
    ngx_str_t *key, ngx_chain_t *body, rd_kafka_headers_t *hdrs,
    ngx_http_commerce_kafka_handler_pt handler, void *data,
    time_t *retry_after)
{
    u_char                            *payload, *name;
    size_t                             len;
    ngx_int_t                          rc;
    ngx_chain_t                       *cl;
    rd_kafka_topic_t                  *rkt, *own;
    rd_kafka_resp_err_t                err;
    ngx_pool_cleanup_t                *cln;
    ngx_http_commerce_kafka_msg_t     *msg;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;
    *retry_after = 1;

    if (w->rk == NULL || w->exiting || w->fatal) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce kafka: no producer in this worker");
        rd_kafka_headers_destroy(hdrs);
        return NGX_DECLINED;
    }

    len = 0;

    for (cl = body; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > ngx_http_commerce_kafka_body_max(r, key ? key->len : 0, hdrs)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce kafka: a message of %uz body bytes to %V "
                      "exceeds message.max.bytes", len, topic);
        ngx_http_commerce_kafka_ended(ngx_current_msec,
                                      NGX_HTTP_COMMERCE_KAFKA_TOO_LARGE,
                                      NGX_HTTP_COMMERCE_KAFKA_REFUSED);
        rd_kafka_headers_destroy(hdrs);
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    if (!ngx_http_commerce_kafka_allow(retry_after)) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "commerce kafka: breaker open, message refused");
        rd_kafka_headers_destroy(hdrs);
        return NGX_DECLINED;
    }

    name = ngx_pnalloc(r->pool, topic->len + 1);
    cln = ngx_pool_cleanup_add(r->pool, 0);
    msg = ngx_calloc(sizeof(ngx_http_commerce_kafka_msg_t), r->connection->log);

    /* the request pool may be gone before the report: librdkafka frees it */
    payload = (name && cln && msg)
              ? ngx_http_commerce_kafka_payload(r, body, &len) : NULL;

    if (payload == NULL) {
        rc = NGX_ERROR;
        goto failed;
    }

    ngx_cpystrn(name, topic->data, topic->len + 1);

    msg->r = r;
    msg->cln = cln;
    msg->handler = handler;
    msg->data = data;
    msg->start = ngx_current_msec;

    own = NULL;
    rkt = ngx_http_commerce_kafka_topic(topic);

    if (rkt == NULL) {
        /* a topic not declared in advance: a reference for this call */
        own = rd_kafka_topic_new(w->rk, (char *) name, NULL);
        rkt = own;

        if (rkt == NULL) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "commerce kafka: topic \"%V\": %s", topic,
                          rd_kafka_err2str(rd_kafka_last_error()));
            ngx_free(payload);
            rc = NGX_DECLINED;
            goto failed;
        }
    }

    err = rd_kafka_producev(w->rk,
                            RD_KAFKA_V_RKT(rkt),
                            RD_KAFKA_V_VALUE(payload, len),
                            RD_KAFKA_V_KEY(key && key->len ? key->data : NULL,
                                           key ? key->len : 0),
                            RD_KAFKA_V_HEADERS(hdrs),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                            RD_KAFKA_V_OPAQUE(msg),
                            RD_KAFKA_V_END);

    if (own) {
        /* a queued message holds its own reference */
        rd_kafka_topic_destroy(own);
    }

    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce kafka: cannot queue a message to %V: %s",
                      topic, rd_kafka_err2str(err));
        ngx_free(payload);

        /* the breaker's probe, if it was one, ends here */
        ngx_http_commerce_kafka_ended(msg->start,
                                      ngx_http_commerce_kafka_result(err),
                                      err);

        rc = (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
             ? NGX_HTTP_REQUEST_ENTITY_TOO_LARGE : NGX_DECLINED;
        goto failed;
    }

    msg->timer.handler = ngx_http_commerce_kafka_msg_timeout;
    msg->timer.data = msg;
    msg->timer.log = w->log;

    /* msg->timer.cancelable = 0: a reload waits for the report */

    ngx_add_timer(&msg->timer, w->report_timeout);
    ngx_queue_insert_tail(&w->pending, &msg->queue);
    w->in_flight++;

    cln->handler = ngx_http_commerce_kafka_msg_cleanup;
    cln->data = msg;

    return NGX_OK;

failed:

    if (msg) {
        ngx_free(msg);
    }

    /* librdkafka took the headers only if it took the message */
    rd_kafka_headers_destroy(hdrs);

    return rc;
}


/*
 * A malloc()ed copy of the body, read from memory or from the request
 * body's temp file.  Never returns NULL for an empty body.
 */
static u_char *
ngx_http_commerce_kafka_payload(ngx_http_request_t *r, ngx_chain_t *body,
    size_t *len)
{
    u_char       *payload, *p;
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    size = 0;

    for (cl = body; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    payload = ngx_alloc(size ? (size_t) size : 1, r->connection->log);
    if (payload == NULL) {
        return NULL;
    }

    p = payload;

    for (cl = body; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        if (b->in_file && b->file_last > b->file_pos) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);

            if (n != b->file_last - b->file_pos) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "commerce kafka: short read of the request "
                              "body file \"%V\"", &b->file->name);
                ngx_free(payload);
                return NULL;
            }

            p += n;
        }
    }

    *len = p - payload;

    return payload;
}
