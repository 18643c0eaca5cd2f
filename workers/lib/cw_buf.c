/*
 * cw_buf: growable buffer and JSON escaping.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce_json.h"
#include "cw_buf.h"


void
cw_buf_init(cw_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = 0;
}


void
cw_buf_free(cw_buf_t *b)
{
    free(b->data);
    cw_buf_init(b);
}


/* Keeps the allocation so a buffer reused per request does not churn. */
void
cw_buf_reset(cw_buf_t *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}


/* Makes room for extra bytes plus the terminating NUL. */
int
cw_buf_reserve(cw_buf_t *b, size_t extra)
{
    size_t  need, cap;
    char   *p;

    if (b->oom) {
        return -1;
    }
    need = b->len + extra + 1;
    if (need <= b->cap) {
        return 0;
    }
    cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}


void
cw_buf_append(cw_buf_t *b, const void *p, size_t n)
{
    if (cw_buf_reserve(b, n) != 0) {
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}


void
cw_buf_puts(cw_buf_t *b, const char *s)
{
    cw_buf_append(b, s, strlen(s));
}


void
cw_buf_putc(cw_buf_t *b, char c)
{
    cw_buf_append(b, &c, 1);
}


void
cw_buf_vprintf(cw_buf_t *b, const char *fmt, va_list ap)
{
    va_list  cp;
    int      n;

    va_copy(cp, ap);
    n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0 || cw_buf_reserve(b, (size_t) n) != 0) {
        return;
    }
    vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
    b->len += (size_t) n;
}


void
cw_buf_printf(cw_buf_t *b, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    cw_buf_vprintf(b, fmt, ap);
    va_end(ap);
}


/* The escaping itself is common/commerce_json.c, in its text mode. Short
 * text gets room for its worst case and one pass; long text is measured
 * first, so that the buffer does not grow six times its size. */
void
cw_buf_json_escape(cw_buf_t *b, const char *s, size_t n)
{
    size_t          room;
    unsigned char  *end;

    room = n <= 4096 ? COMMERCE_JSON_ESCAPE_MAX(n)
                     : commerce_json_escape_len((const unsigned char *) s, n,
                                                COMMERCE_JSON_TEXT);
    if (cw_buf_reserve(b, room) != 0) {
        return;
    }
    end = commerce_json_escape((unsigned char *) b->data + b->len,
                               (const unsigned char *) s, n,
                               COMMERCE_JSON_TEXT);
    b->len = (size_t) ((char *) end - b->data);
    b->data[b->len] = '\0';
}


void
cw_buf_json_str(cw_buf_t *b, const char *s)
{
    cw_buf_putc(b, '"');
    if (s != NULL) {
        cw_buf_json_escape(b, s, strlen(s));
    }
    cw_buf_putc(b, '"');
}


void
cw_buf_hex(cw_buf_t *b, const void *p, size_t n)
{
    size_t                i;
    const unsigned char  *s = p;
    static const char     hex[] = "0123456789abcdef";

    if (cw_buf_reserve(b, 2 * n) != 0) {
        return;
    }
    for (i = 0; i < n; i++) {
        b->data[b->len++] = hex[s[i] >> 4];
        b->data[b->len++] = hex[s[i] & 0x0f];
    }
    b->data[b->len] = '\0';
}
