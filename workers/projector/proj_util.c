/*
 * Small pure helpers: event ids, bytea literals, compact JSON text,
 * PostgreSQL array literals (see proj_util.h).
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cw_buf.h"
#include "proj_util.h"

static EVP_MD          *proj_sha256;
static pthread_once_t   proj_sha256_once = PTHREAD_ONCE_INIT;
static const char       proj_hex[] = "0123456789abcdef";


/* SHA256() looks the digest up in the provider tables at every call;
 * fetched once, it is several times cheaper. */
static void
proj_sha256_fetch(void)
{
    proj_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}


int
proj_event_uuid(const char *name, size_t len, int64_t ts_ms, char out[37])
{
    unsigned char  md[EVP_MAX_MD_SIZE];
    char          *o;
    uint64_t       t = ts_ms > 0 ? (uint64_t) ts_ms : 0;
    int            i;

    pthread_once(&proj_sha256_once, proj_sha256_fetch);

    if (EVP_Digest(name, len, md, NULL,
                   proj_sha256 != NULL ? proj_sha256 : EVP_sha256(), NULL)
        != 1)
    {
        return -1;
    }

    /* unix_ts_ms, as in version 7, but the rest is the name's hash. */
    for (i = 0; i < 6; i++) {
        md[i] = (unsigned char) (t >> (40 - 8 * i));
    }

    md[6] = (md[6] & 0x0f) | 0x80;      /* version 8: custom layout */
    md[8] = (md[8] & 0x3f) | 0x80;      /* RFC 9562 variant */

    for (i = 0, o = out; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *o++ = '-';
        }
        *o++ = proj_hex[md[i] >> 4];
        *o++ = proj_hex[md[i] & 0xf];
    }
    *o = '\0';

    return 0;
}


char *
proj_bytea_hex(const void *p, size_t n)
{
    const unsigned char  *s = p;
    char                 *out, *o;
    size_t                i;

    out = malloc(2 * n + 3);
    if (out == NULL) {
        return NULL;
    }

    o = out;
    *o++ = '\\';
    *o++ = 'x';

    for (i = 0; i < n; i++) {
        *o++ = proj_hex[s[i] >> 4];
        *o++ = proj_hex[s[i] & 0xf];
    }

    *o = '\0';

    return out;
}


char *
proj_json_compact(const char *text, size_t len)
{
    char    *out, *o;
    size_t   i;
    int      in_str = 0;

    out = malloc(len + 1);
    if (out == NULL) {
        return NULL;
    }

    o = out;

    for (i = 0; i < len; i++) {
        char  ch = text[i];

        if (in_str) {
            *o++ = ch;
            if (ch == '\\' && i + 1 < len) {
                *o++ = text[++i];
            } else if (ch == '"') {
                in_str = 0;
            }
            continue;
        }

        if (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r') {
            continue;
        }

        if (ch == '"') {
            in_str = 1;
        }

        *o++ = ch;
    }

    *o = '\0';

    return out;
}


void
proj_json_str_or_null(cw_buf_t *b, const char *s)
{
    if (s != NULL) {
        cw_buf_json_str(b, s);
    } else {
        cw_buf_puts(b, "null");
    }
}


void
proj_arr(cw_buf_t *a, const char *s)
{
    const char  *e;

    if (a->len > 1) {
        cw_buf_putc(a, ',');
    }

    if (s == NULL) {
        cw_buf_puts(a, "NULL");
        return;
    }

    cw_buf_putc(a, '"');
    for ( ;; ) {
        e = s + strcspn(s, "\"\\");
        cw_buf_append(a, s, (size_t) (e - s));
        if (*e == '\0') {
            break;
        }
        cw_buf_putc(a, '\\');
        cw_buf_putc(a, *e);
        s = e + 1;
    }
    cw_buf_putc(a, '"');
}


void
proj_arr_ll(cw_buf_t *a, long long v)
{
    char                 num[24], *p = num + sizeof(num);
    unsigned long long   u = v < 0 ? 0ULL - (unsigned long long) v
                                   : (unsigned long long) v;

    *--p = '\0';
    do {
        *--p = (char) ('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        *--p = '-';
    }

    if (a->len > 1) {
        cw_buf_putc(a, ',');
    }
    cw_buf_puts(a, p);
}


void
proj_arrs_open(cw_buf_t *a, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        cw_buf_init(&a[i]);
        cw_buf_putc(&a[i], '{');
    }
}


int
proj_arrs_close(cw_buf_t *a, size_t n, const char **p)
{
    size_t  i;
    int     rc = 0;

    for (i = 0; i < n; i++) {
        cw_buf_putc(&a[i], '}');
        if (a[i].oom) {
            rc = -1;
        }
        if (p != NULL) {
            p[i] = a[i].data;
        }
    }

    return rc;
}


void
proj_arrs_free(cw_buf_t *a, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        cw_buf_free(&a[i]);
    }
}
