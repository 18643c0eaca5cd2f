/*
 * Pure helpers of the commerce module (see the header).
 */

#include <string.h>

#include "ngx_http_commerce_util.h"


/*
 * MurmurHash64A: eight bytes per round, so hashing a 1 MiB document for its
 * ETag costs well under a millisecond.  Not cryptographic: an ETag only has
 * to change when the bytes change.
 */
uint64_t
ngx_http_commerce_hash64(const u_char *p, size_t len)
{
    size_t          i, n;
    uint64_t        h, k;
    const uint64_t  m = 0xc6a4a7935bd1e995ULL;
    const int       r = 47;

    h = 0x5bd1e9955bd1e995ULL ^ ((uint64_t) len * m);
    n = len / 8;

    for (i = 0; i < n; i++) {
        memcpy(&k, p + i * 8, 8);

        k *= m;
        k ^= k >> r;
        k *= m;

        h ^= k;
        h *= m;
    }

    p += n * 8;

    switch (len & 7) {
    case 7:
        h ^= (uint64_t) p[6] << 48;
        /* fall through */
    case 6:
        h ^= (uint64_t) p[5] << 40;
        /* fall through */
    case 5:
        h ^= (uint64_t) p[4] << 32;
        /* fall through */
    case 4:
        h ^= (uint64_t) p[3] << 24;
        /* fall through */
    case 3:
        h ^= (uint64_t) p[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint64_t) p[1] << 8;
        /* fall through */
    case 1:
        h ^= (uint64_t) p[0];
        h *= m;
    }

    h ^= h >> r;
    h *= m;
    h ^= h >> r;

    return h;
}


/* A strong ETag for the exact bytes: '"' 16 lowercase hex digits '"'. */
u_char *
ngx_http_commerce_etag(u_char *dst, const u_char *p, size_t len)
{
    int              i;
    uint64_t         h;
    static const u_char  hex[] = "0123456789abcdef";

    h = ngx_http_commerce_hash64(p, len);

    *dst++ = '"';

    for (i = 60; i >= 0; i -= 4) {
        *dst++ = hex[(h >> i) & 0xf];
    }

    *dst++ = '"';

    return dst;
}


/*
 * A decimal number without sign, spaces or leading '+'; returns 0 and the
 * value when it is within 0..max, -1 otherwise (overflow included).
 */
int
ngx_http_commerce_parse_uint(const u_char *p, size_t len, uint64_t max,
    uint64_t *out)
{
    size_t    i;
    uint64_t  v;

    if (len == 0 || len > 20) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        if (v > (UINT64_MAX - (p[i] - '0')) / 10) {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    if (v > max) {
        return -1;
    }

    *out = v;

    return 0;
}


/*
 * Ids come from URIs and become parts of Redis keys: 1..256 bytes, no
 * control characters, no spaces.  Any other byte (UTF-8 included) is
 * allowed, since merchants' SKUs are not ASCII-only.
 */
int
ngx_http_commerce_valid_id(const u_char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_COMMERCE_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (p[i] <= 0x20 || p[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


u_char *
ngx_http_commerce_uuid7(u_char *dst, uint64_t ms, const u_char rnd[10])
{
    int                  i;
    u_char               b[16];
    static const u_char  hex[] = "0123456789abcdef";

    for (i = 0; i < 6; i++) {
        b[i] = (u_char) (ms >> (40 - 8 * i));
    }

    memcpy(b + 6, rnd, 10);

    b[6] = (b[6] & 0x0f) | 0x70;        /* version 7 */
    b[8] = (b[8] & 0x3f) | 0x80;        /* RFC 9562 variant */

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *dst++ = '-';
        }

        *dst++ = hex[b[i] >> 4];
        *dst++ = hex[b[i] & 0xf];
    }

    return dst;
}


/* any UUID in the lowercase 8-4-4-4-12 form: order ids in URIs */
int
ngx_http_commerce_valid_uuid(const u_char *p, size_t len)
{
    size_t  i;

    if (len != NGX_HTTP_COMMERCE_UUID_LEN) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-') {
                return 0;
            }

            continue;
        }

        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return 0;
        }
    }

    return 1;
}


u_char *
ngx_http_commerce_if_match_versions(u_char *dst, const u_char *p, size_t len)
{
    int            weak;
    u_char        *start;
    const u_char  *last, *tag, *q;

    last = p + len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    if (last - p == 1 && *p == '*') {
        *dst++ = '*';
        return dst;
    }

    start = dst;

    while (p < last) {

        if (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
            continue;
        }

        weak = (last - p > 2 && p[0] == 'W' && p[1] == '/');

        if (weak) {
            p += 2;
        }

        if (*p != '"') {
            break;              /* not an entity-tag: nothing more */
        }

        tag = ++p;

        while (p < last && *p != '"') {
            p++;
        }

        if (p == last) {
            break;              /* no closing quote */
        }

        for (q = tag; q < p && *q >= '0' && *q <= '9'; q++) {
            /* void */
        }

        if (!weak && q == p && p > tag && p - tag <= 19) {
            memcpy(dst, tag, p - tag);
            dst += p - tag;
            *dst++ = ' ';
        }

        p++;
    }

    if (dst == start) {
        *dst++ = '-';
    }

    return dst;
}


const char *
ngx_http_commerce_sf_string(const u_char *p, size_t len, u_char *out,
    size_t *outlen)
{
    u_char        *d;
    const u_char  *last;

    if (len < 2 || p[0] != '"' || p[len - 1] != '"') {
        return "a quoted string (RFC 8941)";
    }

    d = out;
    last = p + len - 1;

    for (p++; p < last; p++) {

        if (*p == '\\') {
            if (p + 1 == last || (p[1] != '"' && p[1] != '\\')) {
                return "an sf-string escapes only \\\" and \\\\";
            }

            *d++ = *++p;
            continue;
        }

        if (*p < 0x20 || *p > 0x7e || *p == '"') {
            return "an sf-string holds only visible ASCII and spaces";
        }

        *d++ = *p;
    }

    *outlen = d - out;

    return NULL;
}
