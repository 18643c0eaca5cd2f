/*
 * ngx_http_commerce_module: the first module of ngx_http_commerce_module.so,
 * whose name the file and its load_module line carry.  It holds what all
 * commerce modules share, the bounds check of number directives and the
 * JSON error responder, and the one directive of that responder:
 * commerce_error (location), the target of error_page that answers nginx's
 * own errors (404, 412, 414, ...) in the API's JSON shape; the reference
 * is docs/directives.md.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_commerce_module.h"


/* random bytes drawn from OpenSSL at once (ngx_http_commerce_random) */
#define NGX_HTTP_COMMERCE_RANDOM_BUF  4096


typedef struct {
    ngx_uint_t                  status;
    const char                 *code;
    const char                 *msg;
} ngx_http_commerce_error_t;


static ngx_buf_t *ngx_http_commerce_error_body(ngx_http_request_t *r,
    const char *code, const char *msg);
static ngx_int_t ngx_http_commerce_error_handler(ngx_http_request_t *r);
static char *ngx_http_commerce_error(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_commerce_commands[] = {

    { ngx_string("commerce_error"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_commerce_error,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


/* nginx's own errors as the API names them (a header too large is a 400) */
static ngx_http_commerce_error_t  ngx_http_commerce_errors[] = {
    { 400, "bad_request", "the request is malformed" },
    { 404, "not_found", "no such resource" },
    { 405, "method_not_allowed", "the method is not allowed here" },
    { 408, "request_timeout", "the request was not received in time" },
    { 411, "length_required", "a request body needs a Content-Length" },
    { 412, "precondition_failed", "a precondition of the request failed" },
    { 413, "body_too_large", "the request body is too large" },
    { 414, "uri_too_long", "the request URI is too long" },
    { 416, "range_not_satisfiable", "the range cannot be satisfied" },
    { 500, "internal_error", "internal error" },
    { 502, "bad_gateway", "an upstream failed" },
    { 503, "unavailable", "the service is unavailable" },
    { 504, "gateway_timeout", "an upstream timed out" },
    { 0, "error", "the request failed" }
};


static ngx_http_module_t  ngx_http_commerce_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_commerce_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_module_ctx,         /* module context */
    ngx_http_commerce_commands,            /* module directives */
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


/*
 * Like ngx_conf_check_num_bounds(), but returns the message so that nginx
 * names the directive: "commerce_redis_pool_size" directive must be ...
 */
char *
ngx_http_commerce_conf_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    size_t   len;
    u_char  *p;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    len = sizeof("must be between  and ") + 2 * NGX_INT_T_LEN;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(p, "must be between %i and %i%Z", bounds->low, bounds->high);

    return (char *) p;
}


/*
 * Every error of the commerce API has the same JSON shape and is never
 * cached by a CDN; reasons are short machine-readable codes.
 */
ngx_int_t
ngx_http_commerce_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *msg, time_t retry_after)
{
    return ngx_http_commerce_send_error_allow(r, status, code, msg,
                                              retry_after, "GET, HEAD");
}


ngx_int_t
ngx_http_commerce_send_error_allow(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *msg, time_t retry_after, const char *allow)
{
    ngx_buf_t        *b;
    ngx_table_elt_t  *h;

    b = ngx_http_commerce_error_body(r, code, msg);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (status == NGX_HTTP_NOT_ALLOWED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        h->value.data = (u_char *) allow;
        h->value.len = ngx_strlen(allow);
    }

    if (retry_after > 0) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (h->value.data == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value.len = ngx_sprintf(h->value.data, "%T", retry_after)
                       - h->value.data;
    }

    return ngx_http_commerce_send_json(r, status, b);
}


/*
 * RFC 6750's answers: the challenge is the WWW-Authenticate value
 * (Bearer realm="...", error=...), which nginx's satisfy and auth_basic
 * also find in headers_out.www_authenticate.
 */
ngx_int_t
ngx_http_commerce_send_error_auth(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *msg, ngx_str_t *challenge)
{
    ngx_buf_t        *b;
    ngx_table_elt_t  *h;

    b = ngx_http_commerce_error_body(r, code, msg);
    if (b == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value = *challenge;
    r->headers_out.www_authenticate = h;

    return ngx_http_commerce_send_json(r, status, b);
}


/*
 * The headers of a response not sent yet cleared, and the error's body:
 * NULL when the headers are gone already or memory is.
 */
static ngx_buf_t *
ngx_http_commerce_error_body(ngx_http_request_t *r, const char *code,
    const char *msg)
{
    size_t      len;
    ngx_buf_t  *b;

    if (r->header_sent) {
        return NULL;
    }

    ngx_http_clean_header(r);

    len = sizeof("{\"error\":\"\",\"message\":\"\"}") - 1
          + ngx_strlen(code) + ngx_strlen(msg);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    b->last = ngx_sprintf(b->last, "{\"error\":\"%s\",\"message\":\"%s\"}",
                          code, msg);

    return b;
}


ngx_int_t
ngx_http_commerce_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b)
{
    static ngx_str_t  json = ngx_string("application/json");

    return ngx_http_commerce_send_typed(r, status, b, &json);
}


ngx_int_t
ngx_http_commerce_send_typed(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b, ngx_str_t *type)
{
    ngx_int_t         rc;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The target of error_page: the status being handled (r->err_status) in
 * the JSON shape; reached directly, a 404.
 */
static ngx_int_t
ngx_http_commerce_error_handler(ngx_http_request_t *r)
{
    ngx_uint_t                  status;
    ngx_http_commerce_error_t  *e;

    status = r->err_status ? r->err_status : NGX_HTTP_NOT_FOUND;

    for (e = ngx_http_commerce_errors; e->status; e++) {
        if (e->status == status) {
            break;
        }
    }

    if (e->status == 0 && status < NGX_HTTP_BAD_REQUEST) {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the API's methods, all locations together */
    return ngx_http_commerce_send_error_allow(r, status, e->code, e->msg,
                                              status == 503 ? 1 : 0,
                                              "GET, HEAD, POST");
}


static char *
ngx_http_commerce_error(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate: the location has a handler already";
    }

    clcf->handler = ngx_http_commerce_error_handler;

    return NGX_CONF_OK;
}


/*
 * The whole request body as one run of bytes: the single in-memory buffer
 * as is, else a copy of the buffers, read from the temp file where they
 * spilled.  An empty string without a body.
 */
ngx_int_t
ngx_http_commerce_request_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_set(body, "");

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && ngx_buf_in_memory(cl->buf)) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    size = 0;

    for ( /* void */ ; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    p = ngx_pnalloc(r->pool, (size_t) size + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
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
                              "commerce: short read of the body file "
                              "\"%V\"", &b->file->name);
                return NGX_ERROR;
            }

            p += n;
        }
    }

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * Served from a buffer that one RAND_bytes() call fills 4 KB at a time: a
 * call per id took about a microsecond (the DRBG's locks), twice per
 * order.  Bytes handed out are wiped from the buffer, and a buffer filled
 * by another process (before a fork) is never used.
 */
ngx_int_t
ngx_http_commerce_random(ngx_log_t *log, u_char *dst, size_t n)
{
    u_char  *p;

    static u_char     buf[NGX_HTTP_COMMERCE_RANDOM_BUF];
    static size_t     left;
    static ngx_pid_t  owner;

    if (n > NGX_HTTP_COMMERCE_RANDOM_BUF / 4) {
        if (RAND_bytes(dst, (int) n) != 1) {
            goto failed;
        }

        return NGX_OK;
    }

    if (owner != ngx_pid) {
        owner = ngx_pid;
        left = 0;
    }

    if (left < n) {
        if (RAND_bytes(buf, sizeof(buf)) != 1) {
            goto failed;
        }

        left = sizeof(buf);
    }

    p = buf + sizeof(buf) - left;
    ngx_memcpy(dst, p, n);
    ngx_explicit_memzero(p, n);
    left -= n;

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_ALERT, log, 0, "commerce: RAND_bytes() failed");

    return NGX_ERROR;
}
