/*
 * cw_buf: a growable byte buffer for building log lines, HTTP replies and
 * metric pages, plus the JSON string escaper they share.
 *
 * A buffer that failed to grow stays in an error state (oom = 1) and
 * ignores further appends, so callers check once at the end.
 */

#ifndef CW_BUF_H
#define CW_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char    *data;      /* always NUL-terminated once anything is added */
    size_t   len;
    size_t   cap;
    int      oom;
} cw_buf_t;

void cw_buf_init(cw_buf_t *b);
void cw_buf_free(cw_buf_t *b);
void cw_buf_reset(cw_buf_t *b);
int cw_buf_reserve(cw_buf_t *b, size_t extra);
void cw_buf_append(cw_buf_t *b, const void *p, size_t n);
void cw_buf_puts(cw_buf_t *b, const char *s);
void cw_buf_putc(cw_buf_t *b, char c);
void cw_buf_printf(cw_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cw_buf_vprintf(cw_buf_t *b, const char *fmt, va_list ap);

/* Appends s (n bytes) as the inside of a JSON string: quotes, backslashes
 * and control characters escaped, invalid UTF-8 replaced by U+FFFD
 * (commerce_json_escape() in COMMERCE_JSON_TEXT mode). */
void cw_buf_json_escape(cw_buf_t *b, const char *s, size_t n);

/* Appends "s" including the surrounding quotes. */
void cw_buf_json_str(cw_buf_t *b, const char *s);

/* Appends the n bytes at p in lowercase hex (a MAC, a digest). */
void cw_buf_hex(cw_buf_t *b, const void *p, size_t n);

#endif /* CW_BUF_H */
