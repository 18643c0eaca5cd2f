/*
 * ngx_http_commerce_health_module: liveness and readiness (see the
 * header).
 *
 * Directive: commerce_health (location); the reference is
 * docs/directives.md.
 *
 * Readiness is this worker's view: its Redis connections and its Kafka
 * producer, which are what its requests use.  Redis is checked only when
 * commerce_redis_server is set, Kafka only when commerce_kafka_brokers is.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_health.h"
#include "ngx_http_commerce_kafka.h"
#include "ngx_http_commerce_metrics.h"
#include "ngx_http_commerce_redis.h"


#define NGX_HTTP_COMMERCE_HEALTH_LIVE      1
#define NGX_HTTP_COMMERCE_HEALTH_READY     2

/* statistics older than this many intervals: the producer is stuck */
#define NGX_HTTP_COMMERCE_HEALTH_STALE     3


typedef struct {
    ngx_uint_t                  mode;
    ngx_flag_t                  redis;     /* commerce_redis_server is set */
} ngx_http_commerce_health_loc_conf_t;


typedef struct {
    const char                 *redis;     /* NULL: up, else why not */
} ngx_http_commerce_health_ctx_t;


/* what this worker's producer said in its last statistics */
typedef struct {
    ngx_uint_t                  brokers_up;
    ngx_msec_t                  updated;
    ngx_msec_t                  interval;
    ngx_uint_t                  seen;
} ngx_http_commerce_health_kafka_t;


static ngx_int_t ngx_http_commerce_health_handler(ngx_http_request_t *r);
static void ngx_http_commerce_health_pong(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply);
static ngx_int_t ngx_http_commerce_health_answer(ngx_http_request_t *r,
    ngx_http_commerce_health_ctx_t *ctx);
static ngx_int_t ngx_http_commerce_health_send(ngx_http_request_t *r,
    ngx_uint_t status, u_char *json, size_t len);
static const char *ngx_http_commerce_health_kafka_down(ngx_http_request_t *r);
static int ngx_http_commerce_health_kafka_stats(rd_kafka_t *rk, char *json,
    size_t len, void *opaque);
static char *ngx_http_commerce_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_commerce_health_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_health_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_conf_enum_t  ngx_http_commerce_health_modes[] = {
    { ngx_string("live"), NGX_HTTP_COMMERCE_HEALTH_LIVE },
    { ngx_string("ready"), NGX_HTTP_COMMERCE_HEALTH_READY },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_commerce_health_commands[] = {

    { ngx_string("commerce_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_commerce_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_health_loc_conf_t, mode),
      &ngx_http_commerce_health_modes },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_health_module_ctx = {
    NULL,                                     /* preconfiguration */
    NULL,                                     /* postconfiguration */

    NULL,                                     /* create main configuration */
    NULL,                                     /* init main configuration */

    NULL,                                     /* create server configuration */
    NULL,                                     /* merge server configuration */

    ngx_http_commerce_health_create_loc_conf, /* create location conf */
    ngx_http_commerce_health_merge_loc_conf   /* merge location conf */
};


ngx_module_t  ngx_http_commerce_health_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_health_module_ctx,  /* module context */
    ngx_http_commerce_health_commands,     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* one per worker process, like its producer */
static ngx_http_commerce_health_kafka_t  ngx_http_commerce_health_kafka;


static ngx_int_t
ngx_http_commerce_health_handler(ngx_http_request_t *r)
{
    time_t                                retry_after;
    ngx_int_t                             rc;
    ngx_http_commerce_redis_cmd_t         cmd;
    ngx_http_commerce_health_ctx_t       *ctx;
    ngx_http_commerce_health_loc_conf_t  *hlcf;
    static ngx_str_t  live = ngx_string("{\"status\":\"alive\"}");

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_commerce_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                            "method_not_allowed",
                                            "use GET or HEAD", 0);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_health_module);

    if (hlcf->mode == NGX_HTTP_COMMERCE_HEALTH_LIVE) {
        return ngx_http_commerce_health_send(r, NGX_HTTP_OK, live.data,
                                             live.len);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_commerce_health_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!hlcf->redis) {
        return ngx_http_commerce_health_answer(r, ctx);
    }

    ngx_http_commerce_redis_cmd_init(&cmd);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "PING");

    rc = ngx_http_commerce_redis_send(r, ngx_http_commerce_redis_timeout(r),
                                      ngx_http_commerce_health_pong, ctx,
                                      &cmd, &retry_after);

    if (rc == NGX_DECLINED) {
        ctx->redis = "unavailable";
        return ngx_http_commerce_health_answer(r, ctx);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_commerce_health_pong(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply)
{
    ngx_http_commerce_health_ctx_t  *ctx = data;

    if (rc == NGX_HTTP_COMMERCE_REDIS_TIMEOUT) {
        ctx->redis = "timeout";

    } else if (rc != NGX_HTTP_COMMERCE_REDIS_OK) {
        ctx->redis = "connection_lost";

    } else if (reply->type != REDIS_REPLY_STATUS) {
        ctx->redis = "unexpected_reply";
    }

    ngx_http_finalize_request(r, ngx_http_commerce_health_answer(r, ctx));
}


/*
 * {"status":"ready"|"not_ready","checks":{"redis":{"status":"up"},
 * "kafka":{"status":"down","reason":"no_broker_up"}}}
 */
static ngx_int_t
ngx_http_commerce_health_answer(ngx_http_request_t *r,
    ngx_http_commerce_health_ctx_t *ctx)
{
    u_char                               *p, *last;
    u_char                                buf[256];
    ngx_uint_t                            ready;
    const char                           *kafka;
    ngx_http_commerce_health_loc_conf_t  *hlcf;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_health_module);
    kmcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_kafka_module);

    kafka = kmcf->brokers.len ? ngx_http_commerce_health_kafka_down(r) : NULL;
    ready = (ctx->redis == NULL && kafka == NULL);

    p = buf;
    last = buf + sizeof(buf);

    p = ngx_slprintf(p, last, "{\"status\":\"%s\",\"checks\":{",
                     ready ? "ready" : "not_ready");

    if (hlcf->redis) {
        p = ngx_slprintf(p, last, ctx->redis
                         ? "\"redis\":{\"status\":\"down\",\"reason\":\"%s\"}"
                         : "\"redis\":{\"status\":\"up\"}", ctx->redis);
    }

    if (kmcf->brokers.len) {
        p = ngx_slprintf(p, last, "%s", hlcf->redis ? "," : "");
        p = ngx_slprintf(p, last, kafka
                         ? "\"kafka\":{\"status\":\"down\",\"reason\":\"%s\"}"
                         : "\"kafka\":{\"status\":\"up\"}", kafka);
    }

    p = ngx_slprintf(p, last, "}}");

    return ngx_http_commerce_health_send(r, ready
                                         ? NGX_HTTP_OK
                                         : NGX_HTTP_SERVICE_UNAVAILABLE,
                                         buf, p - buf);
}


static ngx_int_t
ngx_http_commerce_health_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *json, size_t len)
{
    ngx_buf_t  *b;

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, json, len);
    *b->last++ = '\n';

    return ngx_http_commerce_send_json(r, status, b);
}


/* NULL when this worker's producer reaches a broker, else why not */
static const char *
ngx_http_commerce_health_kafka_down(ngx_http_request_t *r)
{
    ngx_http_commerce_health_kafka_t  *k;

    k = &ngx_http_commerce_health_kafka;

    if (!k->seen) {
        return "no_producer_statistics";
    }

    if (ngx_current_msec - k->updated
        > NGX_HTTP_COMMERCE_HEALTH_STALE * k->interval + 1000)
    {
        return "producer_statistics_stale";
    }

    if (k->brokers_up == 0) {
        return "no_broker_up";
    }

    return NULL;
}


void
ngx_http_commerce_health_kafka_conf(rd_kafka_conf_t *kconf)
{
    char    value[32];
    size_t  size;

    size = sizeof(value);

    if (rd_kafka_conf_get(kconf, "statistics.interval.ms", value, &size)
           != RD_KAFKA_CONF_OK
        || ngx_strcmp(value, "0") == 0)
    {
        (void) rd_kafka_conf_set(kconf, "statistics.interval.ms", "1000",
                                 NULL, 0);
        ngx_cpystrn((u_char *) value, (u_char *) "1000", sizeof(value));
    }

    ngx_http_commerce_health_kafka.interval = (ngx_msec_t) ngx_atoi(
                                 (u_char *) value, ngx_strlen(value));
    ngx_http_commerce_health_kafka.seen = 0;

    rd_kafka_conf_set_stats_cb(kconf, ngx_http_commerce_health_kafka_stats);
}


/*
 * librdkafka's statistics, served by rd_kafka_poll() in the nginx thread:
 * counts the brokers in state "UP" (the internal one aside).  Returns 0:
 * librdkafka frees the JSON.
 */
static int
ngx_http_commerce_health_kafka_stats(rd_kafka_t *rk, char *json, size_t len,
    void *opaque)
{
    json_t                            *root, *brokers, *b;
    ngx_uint_t                         up;
    const char                        *name, *state, *source;
    ngx_http_commerce_health_kafka_t  *k;

    root = json_loadb(json, len, 0, NULL);
    if (root == NULL) {
        return 0;
    }

    up = 0;
    brokers = json_object_get(root, "brokers");

    json_object_foreach(brokers, name, b) {
        state = json_string_value(json_object_get(b, "state"));
        source = json_string_value(json_object_get(b, "source"));

        if (state && ngx_strcmp(state, "UP") == 0
            && (source == NULL || ngx_strcmp(source, "internal") != 0))
        {
            up++;
        }
    }

    json_decref(root);

    k = &ngx_http_commerce_health_kafka;
    k->brokers_up = up;
    k->updated = ngx_current_msec;
    k->seen = 1;

    return 0;
}


static char *
ngx_http_commerce_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                      *rv;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate: the location has a handler already";
    }

    rv = ngx_conf_set_enum_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    clcf->handler = ngx_http_commerce_health_handler;
    ngx_http_commerce_metrics_api(cf, NGX_HTTP_COMMERCE_API_HEALTH);

    return NGX_CONF_OK;
}


static void *
ngx_http_commerce_health_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_health_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_health_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->mode = NGX_CONF_UNSET_UINT;

    return conf;
}


/* a ready location checks Redis when there is one, and then needs it */
static char *
ngx_http_commerce_health_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_commerce_health_loc_conf_t *conf = child;

    if (conf->mode == NGX_HTTP_COMMERCE_HEALTH_READY
        && ngx_http_commerce_redis_configured(cf))
    {
        conf->redis = 1;
        ngx_http_commerce_redis_use(cf);
    }

    return NGX_CONF_OK;
}
