/*
 * cw_buf: growable buffer and JSON escaping.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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


/* Length of the valid UTF-8 sequence starting at s, or 0 if invalid. */
static size_t
cw_utf8_seq_len(const unsigned char *s, size_t n)
{
    size_t    len, i;
    unsigned  cp;

    if (s[0] < 0x80) {
        return 1;
    } else if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* reject overlong forms, surrogates and values past U+10FFFF */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800)
        || (len == 4 && cp < 0x10000) || cp > 0x10ffff
        || (cp >= 0xd800 && cp <= 0xdfff))
    {
        return 0;
    }
    return len;
}


void
cw_buf_json_escape(cw_buf_t *b, const char *s, size_t n)
{
    const unsigned char  *p = (const unsigned char *) s;
    size_t                i, j, len;

    for (i = 0; i < n; ) {
        unsigned char c = p[i];

        /* A run of printable ASCII needing no escape goes in one copy. */
        for (j = i; j < n && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '"'
                    && p[j] != '\\'; j++)
        {
            /* scan */
        }
        if (j > i) {
            cw_buf_append(b, p + i, j - i);
            i = j;
            continue;
        }

        switch (c) {
        case '"':  cw_buf_append(b, "\\\"", 2); i++; continue;
        case '\\': cw_buf_append(b, "\\\\", 2); i++; continue;
        case '\n': cw_buf_append(b, "\\n", 2); i++; continue;
        case '\r': cw_buf_append(b, "\\r", 2); i++; continue;
        case '\t': cw_buf_append(b, "\\t", 2); i++; continue;
        case '\b': cw_buf_append(b, "\\b", 2); i++; continue;
        case '\f': cw_buf_append(b, "\\f", 2); i++; continue;
        default:
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            cw_buf_printf(b, "\\u%04x", c);
            i++;
            continue;
        }
        len = cw_utf8_seq_len(p + i, n - i);
        if (len == 0) {
            cw_buf_append(b, "\\ufffd", 6);
            i++;
            continue;
        }
        cw_buf_append(b, p + i, len);
        i += len;
    }
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
