/*
 * commerce_json: JSON string escaping (see the header).
 */

#include <string.h>

#include "commerce_json.h"


static size_t commerce_json_run(unsigned char *dst, const unsigned char *p,
    size_t len, int mode);
static int commerce_json_plain(unsigned char c, int mode);
static unsigned char commerce_json_short(unsigned char c, int mode);
static size_t commerce_json_utf8_len(const unsigned char *s, size_t n);


size_t
commerce_json_escape_len(const unsigned char *p, size_t len, int mode)
{
    return commerce_json_run(NULL, p, len, mode);
}


unsigned char *
commerce_json_escape(unsigned char *dst, const unsigned char *p, size_t len,
    int mode)
{
    return dst + commerce_json_run(dst, p, len, mode);
}


/*
 * One pass for both: measures, and writes too when dst is not NULL, so
 * that the length and the text can never disagree.
 */
static size_t
commerce_json_run(unsigned char *dst, const unsigned char *p, size_t len,
    int mode)
{
    size_t               i, j, n, seq;
    unsigned char        c, esc;
    static const char    hex[] = "0123456789abcdef";

    n = 0;

    for (i = 0; i < len; /* void */) {

        /* a run of bytes that stay as they are goes in one copy */

        for (j = i; j < len && commerce_json_plain(p[j], mode); j++) {
            /* void */
        }

        if (j > i) {
            if (dst) {
                memcpy(dst + n, p + i, j - i);
            }

            n += j - i;
            i = j;
            continue;
        }

        c = p[i];
        esc = commerce_json_short(c, mode);

        if (esc) {
            if (dst) {
                dst[n] = '\\';
                dst[n + 1] = esc;
            }

            n += 2;
            i++;
            continue;
        }

        if (c < 0x20 || (c == 0x7f && mode == COMMERCE_JSON_TEXT)) {
            if (dst) {
                memcpy(dst + n, "\\u00", 4);
                dst[n + 4] = hex[c >> 4];
                dst[n + 5] = hex[c & 0xf];
            }

            n += 6;
            i++;
            continue;
        }

        seq = 1;

        if (c >= 0x80 && mode == COMMERCE_JSON_TEXT) {
            seq = commerce_json_utf8_len(p + i, len - i);

            if (seq == 0) {
                if (dst) {
                    memcpy(dst + n, "\\ufffd", 6);
                }

                n += 6;
                i++;
                continue;
            }
        }

        if (dst) {
            memcpy(dst + n, p + i, seq);
        }

        n += seq;
        i += seq;
    }

    return n;
}


/* a byte copied as it is: printable ASCII, and any high byte in BYTES */
static int
commerce_json_plain(unsigned char c, int mode)
{
    if (c < 0x20 || c == '"' || c == '\\') {
        return 0;
    }

    return c < 0x7f || mode == COMMERCE_JSON_BYTES;
}


/* the letter after the backslash of a two-character escape, or 0 */
static unsigned char
commerce_json_short(unsigned char c, int mode)
{
    if (c == '"' || c == '\\') {
        return c;
    }

    if (mode != COMMERCE_JSON_TEXT) {
        return 0;
    }

    switch (c) {
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    default:
        return 0;
    }
}


/* The length of the valid UTF-8 sequence starting at s, 0 if invalid. */
static size_t
commerce_json_utf8_len(const unsigned char *s, size_t n)
{
    size_t    len, i;
    unsigned  cp;

    if (s[0] < 0x80) {
        return 1;
    }

    if ((s[0] & 0xe0) == 0xc0) {
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

    /* overlong forms, surrogates and values past U+10FFFF */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800)
        || (len == 4 && cp < 0x10000) || cp > 0x10ffff
        || (cp >= 0xd800 && cp <= 0xdfff))
    {
        return 0;
    }

    return len;
}
