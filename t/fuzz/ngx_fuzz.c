/*
 * nginx core functions for the fuzz targets that include a module file
 * (see ngx_fuzz.h): written to nginx 1.22's contracts, not copied.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_md5.h>
#include <ngx_sha1.h>

#include "ngx_fuzz.h"


/* nginx's globals that the included module files refer to */
volatile ngx_cycle_t       *ngx_cycle;
volatile ngx_msec_t         ngx_current_msec;
ngx_uint_t                  ngx_pagesize = 4096;
ngx_uint_t                  ngx_process;
ngx_module_t                ngx_http_core_module;
ngx_module_t                ngx_http_module;
ngx_http_output_header_filter_pt  ngx_http_top_header_filter;
uint32_t                   *ngx_crc32_table_short;

static ngx_time_t           ngx_fuzz_time;
volatile ngx_time_t        *ngx_cached_time = &ngx_fuzz_time;

const char                 *ngx_fuzz_error_code;


/* pool: every allocation its own malloc(), all freed per input */

typedef struct ngx_fuzz_chunk_s  ngx_fuzz_chunk_t;

struct ngx_fuzz_chunk_s {
    ngx_fuzz_chunk_t  *next;
    max_align_t        data[];
};

static ngx_fuzz_chunk_t  *ngx_fuzz_chunks;


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    ngx_fuzz_chunk_t  *c;

    c = malloc(sizeof(ngx_fuzz_chunk_t) + size);
    if (c == NULL) {
        return NULL;
    }

    c->next = ngx_fuzz_chunks;
    ngx_fuzz_chunks = c;

    return c->data;
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_palloc(pool, size);
    if (p) {
        memset(p, 0, size);
    }

    return p;
}


void
ngx_fuzz_pool_free(void)
{
    ngx_fuzz_chunk_t  *c;

    while (ngx_fuzz_chunks) {
        c = ngx_fuzz_chunks;
        ngx_fuzz_chunks = c->next;
        free(c);
    }

    ngx_fuzz_error_code = NULL;
}


ngx_http_request_t *
ngx_fuzz_request(void *conf)
{
    ngx_log_t           *log;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    void               **loc_conf;

    static ngx_pool_t    pool;

    r = ngx_pcalloc(&pool, sizeof(ngx_http_request_t));
    c = ngx_pcalloc(&pool, sizeof(ngx_connection_t));
    log = ngx_pcalloc(&pool, sizeof(ngx_log_t));
    loc_conf = ngx_pcalloc(&pool, sizeof(void *));

    /* log_level 0: ngx_log_error() logs nothing */
    c->log = log;
    r->connection = c;
    r->pool = &pool;
    r->main = r;

    /* the module under test has ctx_index 0 (see ngx_fuzz.h) */
    loc_conf[0] = conf;
    r->loc_conf = loc_conf;

    return r;
}


void
ngx_fuzz_set_time(time_t sec)
{
    ngx_fuzz_time.sec = sec;
}


void
ngx_fuzz_complex_value(ngx_http_complex_value_t *cv, u_char *data,
    size_t len)
{
    memset(cv, 0, sizeof(ngx_http_complex_value_t));
    cv->value.data = data;
    cv->value.len = len;
}


/* a value without variables is its text (ngx_http_script.c) */
ngx_int_t
ngx_http_complex_value(ngx_http_request_t *r, ngx_http_complex_value_t *val,
    ngx_str_t *value)
{
    if (val->lengths != NULL) {
        fprintf(stderr, "ngx_fuzz: complex value with variables\n");
        abort();
    }

    *value = val->value;

    return NGX_OK;
}


void ngx_cdecl
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
}


/* the module's JSON error responder: what it was asked to send */
ngx_int_t
ngx_http_commerce_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *msg, time_t retry_after)
{
    ngx_fuzz_error_code = code;

    return NGX_OK;
}


ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    ngx_uint_t  c1, c2;

    while (n--) {
        c1 = (ngx_uint_t) ngx_tolower(*s1);
        c2 = (ngx_uint_t) ngx_tolower(*s2);
        s1++;
        s2++;

        if (c1 != c2) {
            return c1 - c2;
        }

        if (c1 == 0) {
            return 0;
        }
    }

    return 0;
}


/*
 * The first case-insensitive occurrence of s2 (n + 1 bytes long: n is its
 * length minus one) starting in s1 .. last - 1.
 */
u_char *
ngx_strlcasestrn(u_char *s1, u_char *last, u_char *s2, size_t n)
{
    u_char  *p;

    for (p = s1; last - p > (ssize_t) n; p++) {
        if (ngx_strncasecmp(p, s2, n + 1) == 0) {
            return p;
        }
    }

    return NULL;
}


/*
 * The value of the first argument "name=" (name case-insensitive) at the
 * start of r->args or after a '&', up to the next '&'.
 */
ngx_int_t
ngx_http_arg(ngx_http_request_t *r, u_char *name, size_t len,
    ngx_str_t *value)
{
    u_char  *p, *start, *last, *amp;

    start = r->args.data;
    last = start + r->args.len;

    for (p = start; p < last; p = amp + 1) {
        amp = ngx_strlchr(p, last, '&');

        if (amp == NULL) {
            amp = last;
        }

        if ((size_t) (amp - p) > len && p[len] == '='
            && ngx_strncasecmp(p, name, len) == 0)
        {
            value->data = p + len + 1;
            value->len = amp - value->data;
            return NGX_OK;
        }

        if (amp == last) {
            break;
        }
    }

    return NGX_DECLINED;
}


static int
ngx_fuzz_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}


/*
 * %XX decoding, type 0 (every byte; no stop at '?'): a '%' followed by a
 * byte that is not a hex digit is dropped and the byte kept; "%X"
 * followed by a non-hex byte drops all three.  Never writes more than
 * size bytes.
 */
void
ngx_unescape_uri(u_char **dst, u_char **src, size_t size, ngx_uint_t type)
{
    int      hi, lo;
    u_char  *d, *s, *end;

    if (type != 0) {
        fprintf(stderr, "ngx_fuzz: ngx_unescape_uri type %lu\n",
                (unsigned long) type);
        abort();
    }

    d = *dst;
    s = *src;
    end = s + size;

    while (s < end) {
        if (*s != '%') {
            *d++ = *s++;
            continue;
        }

        s++;

        if (s == end) {
            break;
        }

        hi = ngx_fuzz_hex(*s);

        if (hi < 0) {
            *d++ = *s++;
            continue;
        }

        s++;

        if (s == end) {
            break;
        }

        lo = ngx_fuzz_hex(*s++);

        if (lo >= 0) {
            *d++ = (u_char) (hi << 4 | lo);
        }
    }

    *dst = d;
    *src = s;
}


/*
 * ngx_sprintf for the conversions the fuzzed code uses: %d, %ui, %uL, %L,
 * %s, %V, %*s and %%.  Any other aborts, so a new one is noticed.
 */
u_char * ngx_cdecl
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    int          n;
    size_t       len;
    va_list      args;
    ngx_str_t   *v;
    const char  *s;

    va_start(args, fmt);

    while (*fmt) {
        if (*fmt != '%') {
            *buf++ = (u_char) *fmt++;
            continue;
        }

        fmt++;

        if (strncmp(fmt, "uL", 2) == 0) {
            n = sprintf((char *) buf, "%" PRIu64, va_arg(args, uint64_t));
            fmt += 2;

        } else if (strncmp(fmt, "ui", 2) == 0) {
            n = sprintf((char *) buf, "%lu",
                        (unsigned long) va_arg(args, ngx_uint_t));
            fmt += 2;

        } else if (*fmt == 'L') {
            n = sprintf((char *) buf, "%" PRId64, va_arg(args, int64_t));
            fmt++;

        } else if (*fmt == 'd') {
            n = sprintf((char *) buf, "%d", va_arg(args, int));
            fmt++;

        } else if (*fmt == 's') {
            s = va_arg(args, const char *);
            n = (int) strlen(s);
            memcpy(buf, s, n);
            fmt++;

        } else if (*fmt == 'V') {
            v = va_arg(args, ngx_str_t *);
            n = (int) v->len;
            memcpy(buf, v->data, n);
            fmt++;

        } else if (strncmp(fmt, "*s", 2) == 0) {
            len = va_arg(args, size_t);
            s = va_arg(args, const char *);
            memcpy(buf, s, len);
            n = (int) len;
            fmt += 2;

        } else if (*fmt == '%') {
            *buf = '%';
            n = 1;
            fmt++;

        } else {
            fprintf(stderr, "ngx_fuzz: ngx_sprintf %%%s\n", fmt);
            abort();
        }

        buf += n;
    }

    va_end(args);

    return buf;
}


/* list parts of l->nalloc elements, as nginx allocates them */
void *
ngx_list_push(ngx_list_t *l)
{
    void             *elt;
    ngx_list_part_t  *last;

    last = l->last;

    if (last->nelts == l->nalloc) {
        last = ngx_palloc(l->pool, sizeof(ngx_list_part_t));
        if (last == NULL) {
            return NULL;
        }

        last->elts = ngx_palloc(l->pool, l->nalloc * l->size);
        if (last->elts == NULL) {
            return NULL;
        }

        last->nelts = 0;
        last->next = NULL;

        l->last->next = last;
        l->last = last;
    }

    elt = (char *) last->elts + l->size * last->nelts;
    last->nelts++;

    return elt;
}


/* lowercase hex, as nginx's */
u_char *
ngx_hex_dump(u_char *dst, u_char *src, size_t len)
{
    static const u_char  hex[] = "0123456789abcdef";

    while (len--) {
        *dst++ = hex[*src >> 4];
        *dst++ = hex[*src++ & 0xf];
    }

    return dst;
}


/*
 * MD5 and SHA1 by OpenSSL: the nginx context's buffer holds the EVP
 * context's pointer.
 */
static void
ngx_fuzz_digest_init(u_char *buffer, const EVP_MD *type)
{
    EVP_MD_CTX  *md;

    md = EVP_MD_CTX_new();
    if (md == NULL || !EVP_DigestInit_ex(md, type, NULL)) {
        abort();
    }

    memcpy(buffer, &md, sizeof(md));
}


static void
ngx_fuzz_digest_update(u_char *buffer, const void *data, size_t size)
{
    EVP_MD_CTX  *md;

    memcpy(&md, buffer, sizeof(md));

    if (!EVP_DigestUpdate(md, data, size)) {
        abort();
    }
}


static void
ngx_fuzz_digest_final(u_char *buffer, u_char *result)
{
    EVP_MD_CTX  *md;

    memcpy(&md, buffer, sizeof(md));

    if (!EVP_DigestFinal_ex(md, result, NULL)) {
        abort();
    }

    EVP_MD_CTX_free(md);
}


void
ngx_md5_init(ngx_md5_t *ctx)
{
    ngx_fuzz_digest_init(ctx->buffer, EVP_md5());
}


void
ngx_md5_update(ngx_md5_t *ctx, const void *data, size_t size)
{
    ngx_fuzz_digest_update(ctx->buffer, data, size);
}


void
ngx_md5_final(u_char result[16], ngx_md5_t *ctx)
{
    ngx_fuzz_digest_final(ctx->buffer, result);
}


void
ngx_sha1_init(ngx_sha1_t *ctx)
{
    ngx_fuzz_digest_init(ctx->buffer, EVP_sha1());
}


void
ngx_sha1_update(ngx_sha1_t *ctx, const void *data, size_t size)
{
    ngx_fuzz_digest_update(ctx->buffer, data, size);
}


void
ngx_sha1_final(u_char result[20], ngx_sha1_t *ctx)
{
    ngx_fuzz_digest_final(ctx->buffer, result);
}


/* the 16-entry (4-bit) table of CRC-32, as ngx_crc32_short() reads it */
__attribute__((constructor))
static void
ngx_fuzz_crc32_init(void)
{
    int              k;
    uint32_t         c, i;
    static uint32_t  table[16];

    for (i = 0; i < 16; i++) {
        c = i;

        for (k = 0; k < 4; k++) {
            c = (c & 1) ? 0xedb88320 ^ (c >> 1) : c >> 1;
        }

        table[i] = c;
    }

    ngx_crc32_table_short = table;
}
