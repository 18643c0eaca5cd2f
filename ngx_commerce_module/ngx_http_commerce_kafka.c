/*
 * ngx_http_commerce_kafka_module: Kafka configuration (http{} level) and
 * the size limit of a message.
 *
 * Directives: commerce_kafka_brokers, commerce_kafka_property,
 * commerce_kafka_delivery_timeout, commerce_kafka_flush_timeout,
 * commerce_kafka_breaker_threshold, commerce_kafka_breaker_timeout,
 * commerce_kafka_thread_scheduling (http);
 * the reference is docs/directives.md.
 *
 * The per-worker producer (its circuit breaker, re-creation, delivery
 * reports) is ngx_http_commerce_kafka_producer.c; this file holds the
 * configuration and what a message may carry (message.max.bytes).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <librdkafka/rdkafka.h>

#include "ngx_http_commerce_headers.h"
#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_kafka.h"
#include "ngx_http_commerce_kafka_producer.h"


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
static ngx_int_t ngx_http_commerce_kafka_valid_trace(u_char *p, size_t len);


static ngx_conf_enum_t  ngx_http_commerce_kafka_threads[] = {
    { ngx_string("batch"), NGX_HTTP_COMMERCE_KAFKA_THREADS_BATCH },
    { ngx_string("normal"), NGX_HTTP_COMMERCE_KAFKA_THREADS_NORMAL },
    { ngx_null_string, 0 }
};


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

    { ngx_string("commerce_kafka_thread_scheduling"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_commerce_kafka_main_conf_t, threads),
      &ngx_http_commerce_kafka_threads },

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




/*
 * The librdkafka configuration is built while the configuration is read,
 * so that every property error points at its line; the master never
 * creates a client from it.
 */
static void *
ngx_http_commerce_kafka_create_main_conf(ngx_conf_t *cf)
{
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
    kmcf->threads = NGX_CONF_UNSET_UINT;

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

    cln->handler = ngx_http_commerce_kafka_conf_cleanup;
    cln->data = kmcf->conf;

    /*
     * Every webhook waits for its own message's acknowledgement, so the
     * producer must not hold messages back on a timer: librdkafka's
     * linger.ms of 5 ms would be 5 ms added to every request, and any
     * linger above 0 costs a whole millisecond or more (its broker threads
     * sleep in poll() with millisecond timeouts, rounded up).  Batches form
     * instead behind one request in flight per broker (max.in.flight 1,
     * well within idempotence's 5): a message produced while a request is
     * out waits for that request's response, never longer, and then goes
     * with everything queued meanwhile.  Messages without a key stick to
     * one partition for 5 ms (sticky.partitioning.linger.ms), so that
     * they make one batch for one broker thread rather than a small one
     * for each: fewer requests and thread wakeups per message.  The
     * figures are in scripts/bench/webhook/README.md.  The reconnect
     * backoff grows to 10 s, so that webhooks would still get 503 seconds
     * after the brokers are back: 1 s here.  commerce_kafka_property
     * overrides each of them.
     */

    if (ngx_http_commerce_kafka_conf_set(cf, kmcf->conf, "linger.ms", "0")
        != NGX_CONF_OK
        || ngx_http_commerce_kafka_conf_set(cf, kmcf->conf,
                                            "max.in.flight", "1")
           != NGX_CONF_OK
        || ngx_http_commerce_kafka_conf_set(cf, kmcf->conf,
                                            "sticky.partitioning.linger.ms",
                                            "5")
           != NGX_CONF_OK
        || ngx_http_commerce_kafka_conf_set(cf, kmcf->conf,
                                            "reconnect.backoff.max.ms",
                                            "1000")
           != NGX_CONF_OK)
    {
        return NULL;
    }

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
    ngx_conf_init_uint_value(kmcf->threads,
                             NGX_HTTP_COMMERCE_KAFKA_THREADS_BATCH);

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
 * W3C trace context: a valid incoming traceparent is propagated as is;
 * otherwise a new trace starts here, with ids from OpenSSL's CSPRNG.
 */
ngx_int_t
ngx_http_commerce_kafka_traceparent(ngx_http_request_t *r, ngx_str_t *tp)
{
    u_char           *p, id[24];
    ngx_table_elt_t  *h;

    static ngx_str_t  name = ngx_string("traceparent");

    h = ngx_http_commerce_header_in(r, &name, NULL);

    if (h && ngx_http_commerce_kafka_valid_trace(h->value.data,
                                                 h->value.len))
    {
        *tp = h->value;
        return NGX_OK;
    }

    if (ngx_http_commerce_random(r->connection->log, id, sizeof(id))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* all-zero ids are invalid; one bit is a negligible bias */
    id[15] |= 1;
    id[23] |= 1;

    p = ngx_pnalloc(r->pool, NGX_HTTP_COMMERCE_TRACEPARENT_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    tp->data = p;

    p = ngx_cpymem(p, "00-", 3);
    p = ngx_hex_dump(p, id, 16);
    *p++ = '-';
    p = ngx_hex_dump(p, id + 16, 8);
    p = ngx_cpymem(p, "-01", 3);

    tp->len = p - tp->data;

    return NGX_OK;
}


/*
 * version "-" trace-id "-" parent-id "-" flags, lowercase hex, ids not all
 * zero, version ff forbidden; a version above 00 may carry more fields.
 */
static ngx_int_t
ngx_http_commerce_kafka_valid_trace(u_char *p, size_t len)
{
    size_t      i, j;
    ngx_uint_t  nonzero;

    /* start, length and "must not be all zero" of each field */
    static const size_t  fields[][3] = {
        { 0, 2, 0 }, { 3, 32, 1 }, { 36, 16, 1 }, { 53, 2, 0 }
    };

    if (len < NGX_HTTP_COMMERCE_TRACEPARENT_LEN
        || p[2] != '-' || p[35] != '-' || p[52] != '-')
    {
        return 0;
    }

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        nonzero = 0;

        for (j = fields[i][0]; j < fields[i][0] + fields[i][1]; j++) {
            if (!((p[j] >= '0' && p[j] <= '9') || (p[j] >= 'a' && p[j] <= 'f')))
            {
                return 0;
            }

            if (p[j] != '0') {
                nonzero = 1;
            }
        }

        if (fields[i][2] && !nonzero) {
            return 0;
        }
    }

    if (p[0] == 'f' && p[1] == 'f') {
        return 0;
    }

    if (p[0] == '0' && p[1] == '0') {
        return len == NGX_HTTP_COMMERCE_TRACEPARENT_LEN;
    }

    return len == NGX_HTTP_COMMERCE_TRACEPARENT_LEN
           || p[NGX_HTTP_COMMERCE_TRACEPARENT_LEN] == '-';
}
