/*
 * Fuzz target: the id, number, amount, currency and timestamp parsers that
 * read request and message fields: ngx_http_commerce_parse_uint(),
 * ngx_http_commerce_valid_id(), the ETag and If-Match's versions of the
 * module (ngx_http_commerce_util.c), money in minor units
 * (common/commerce_currency.c), and the projector's checks
 * (workers/projector/proj_validate.c).  The webhook timestamp parser is
 * fuzzed through its headers by fuzz_sig.
 *
 * Input: one byte for the maximum given to parse_uint (and, modulo 5, the
 * currency exponent of the money parser), then the text.
 *
 * Oracles: each parser against a reference written here from its
 * documented rule, and the edge (module) and the projector agree on what
 * an id is, so that nothing the edge accepts is refused later as invalid,
 * and on the amount of a price; money written back parses to itself.
 */

#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commerce_currency.h"
#include "ngx_http_commerce_util.h"
#include "proj.h"
#include "fuzz.h"


static const uint64_t  fuzz_ids_max[] = {
    0, 1, 9, 10, 100, 1000, 4294967295ULL, 9223372036854775807ULL,
    UINT64_MAX
};


/* decimal digits only, 1..20 of them, value <= max, leading zeros allowed */
static int
fuzz_ids_uint(const u_char *p, size_t len, uint64_t max, uint64_t *out)
{
    size_t    i;
    uint64_t  v;

    if (len == 0 || len > 20) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (!isdigit(p[i])
            || __builtin_mul_overflow(v, 10, &v)
            || __builtin_add_overflow(v, (uint64_t) (p[i] - '0'), &v))
        {
            return -1;
        }
    }

    if (v > max) {
        return -1;
    }

    *out = v;

    return 0;
}


/* digits, then "." and one or two digits; below 10^10 units */
static int
fuzz_ids_amount(const char *s, int64_t *minor)
{
    int       n;
    char      frac[3];
    size_t    units_len, frac_len;
    int64_t   units;

    units_len = strspn(s, "0123456789");

    if (units_len == 0) {
        return -1;
    }

    units = 0;

    for (n = 0; n < (int) units_len; n++) {
        units = units * 10 + (s[n] - '0');

        if (units > 1000000000000LL / 100) {
            return -1;
        }
    }

    s += units_len;
    frac_len = 0;

    if (*s == '.') {
        s++;
        frac_len = strspn(s, "0123456789");

        if (frac_len == 0 || frac_len > 2) {
            return -1;
        }

        memcpy(frac, s, frac_len);
        s += frac_len;
    }

    if (*s != '\0') {
        return -1;
    }

    *minor = units * 100;

    if (frac_len) {
        *minor += (frac[0] - '0') * 10 + (frac_len == 2 ? frac[1] - '0' : 0);
    }

    return 0;
}


/*
 * Money by another road than commerce_money_parse(): split at the point,
 * drop the fraction's trailing zeros, refuse more digits than exp, pad to
 * exp, and read the digits whole (strtoll) against 10^15.
 */
static int
fuzz_ids_money(const u_char *p, size_t len, int exp, int64_t *minor)
{
    char          digits[64];
    size_t        i, ilen, flen, n;
    const u_char *dot;

    dot = memchr(p, '.', len);
    ilen = dot ? (size_t) (dot - p) : len;
    flen = dot ? len - ilen - 1 : 0;

    if (ilen == 0 || (dot && flen == 0)) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (p + i != dot && !isdigit(p[i])) {
            return -1;
        }
    }

    while (flen && dot[flen] == '0') {
        flen--;
    }

    if ((int) flen > exp) {
        return -1;
    }

    while (ilen > 1 && *p == '0') {     /* leading zeros */
        p++;
        ilen--;
    }

    if (ilen + exp > 20) {
        return -1;
    }

    memcpy(digits, p, ilen);
    n = ilen;

    for (i = 0; i < (size_t) exp; i++) {
        digits[n++] = i < flen ? dot[1 + i] : '0';
    }

    digits[n] = '\0';

    if (n > 16) {
        return -1;      /* at least 10^16 */
    }

    *minor = strtoll(digits, NULL, 10);

    return *minor <= COMMERCE_MONEY_MAX ? 0 : -1;
}


/* If-Match's versions: "*", "-", or groups of 1..19 digits, each followed
 * by a space and quoted in the input */
static void
fuzz_ids_if_match(const u_char *p, size_t len)
{
    u_char        *out, *end, *q, *g;
    char           tag[24];
    size_t         n;

    out = malloc(len + 1);
    end = ngx_http_commerce_if_match_versions(out, p, len);

    fuzz_check(end > out && (size_t) (end - out) <= len + 1);

    if (end - out == 1 && (*out == '*' || *out == '-')) {
        free(out);
        return;
    }

    for (q = out; q < end; q = g + 1) {
        for (g = q; g < end && isdigit(*g); g++) {
            /* void */
        }

        n = g - q;
        fuzz_check(n >= 1 && n <= 19 && g < end && *g == ' ');

        tag[0] = '"';
        memcpy(tag + 1, q, n);
        tag[n + 1] = '"';
        fuzz_check(memmem(p, len, tag, n + 2) != NULL);
    }

    free(out);
}


/* The date and time at s exist: timegm() normalises those that do not
 * (2026-02-30 becomes 2026-03-02), so the round trip through gmtime()
 * gives other fields; a leap second (:60) is checked as :59. */
static int
fuzz_ids_real(const char *s)
{
    int        y, mo, d, h, mi, sec;
    time_t     t;
    struct tm  tm, back;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6
        || y < 1 || sec > 60)
    {
        return 0;
    }

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec == 60 ? 59 : sec;

    t = timegm(&tm);

    return gmtime_r(&t, &back) != NULL && back.tm_year == y - 1900
           && back.tm_mon == mo - 1 && back.tm_mday == d
           && back.tm_hour == h && back.tm_min == mi
           && back.tm_sec == (sec == 60 ? 59 : sec);
}


/* RFC 3339 date-time as the projector documents it: a real instant, an
 * offset of at most 23:59 */
static int
fuzz_ids_timestamp(const char *s)
{
    int     n, oh, om;
    size_t  i;

    n = -1;

    if (strlen(s) < 20) {
        return 0;
    }

    for (i = 0; i < 19; i++) {
        if ((i == 4 || i == 7) ? s[i] != '-'
            : i == 10 ? s[i] != 'T'
            : (i == 13 || i == 16) ? s[i] != ':'
            : !isdigit((unsigned char) s[i]))
        {
            return 0;
        }
    }

    if (!fuzz_ids_real(s)) {
        return 0;
    }

    s += 19;

    if (*s == '.') {
        s++;

        if (!isdigit((unsigned char) *s)) {
            return 0;
        }

        s += strspn(s, "0123456789");
    }

    if (strcmp(s, "Z") == 0) {
        return 1;
    }

    if ((s[0] == '+' || s[0] == '-') && strlen(s) == 6) {
        (void) sscanf(s + 1, "%*2[0-9]:%*2[0-9]%n", &n);
        return n == 5 && sscanf(s + 1, "%2d:%2d", &oh, &om) == 2
               && oh <= 23 && om <= 59;
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              ok, ref, edge, exp;
    char            *s, money[COMMERCE_MONEY_LEN], *end2;
    u_char          *p, etag[NGX_HTTP_COMMERCE_ETAG_LEN], *end;
    size_t           i, len;
    int64_t          minor, rminor;
    uint64_t         max, v, rv;

    if (size < 1) {
        return 0;
    }

    max = fuzz_ids_max[data[0] % (sizeof(fuzz_ids_max)
                                  / sizeof(fuzz_ids_max[0]))];
    len = size - 1;
    p = fuzz_dup(data + 1, len);
    s = fuzz_strdup(data + 1, len);

    /* module: numbers of query arguments */
    v = 12345;
    rv = 54321;
    ok = ngx_http_commerce_parse_uint(p, len, max, &v);
    ref = fuzz_ids_uint(p, len, max, &rv);
    fuzz_check(ok == ref);
    fuzz_check(ok != 0 || v == rv);
    fuzz_check(ok == 0 || v == 12345);

    /* module: ids of requests; the reference is the documented rule */
    edge = ngx_http_commerce_valid_id(p, len);
    ref = len >= 1 && len <= NGX_HTTP_COMMERCE_ID_MAX;

    for (i = 0; ref && i < len; i++) {
        ref = p[i] > 0x20 && p[i] != 0x7f;
    }

    fuzz_check(edge == ref);

    /* the projector reads the same ids as C strings */
    if (memchr(data + 1, '\0', len) == NULL) {
        fuzz_check(proj_valid_id(s) == edge);
    }

    end = ngx_http_commerce_etag(etag, p, len);
    fuzz_check(end == etag + NGX_HTTP_COMMERCE_ETAG_LEN);
    fuzz_check(etag[0] == '"' && etag[NGX_HTTP_COMMERCE_ETAG_LEN - 1] == '"');

    for (i = 1; i < NGX_HTTP_COMMERCE_ETAG_LEN - 1; i++) {
        fuzz_check(isxdigit(etag[i]));
    }

    /* projector: amounts, currencies, timestamps of messages */
    minor = -1;
    rminor = -2;
    ok = proj_parse_amount(s, 2, &minor);
    ref = fuzz_ids_amount(s, &rminor);
    fuzz_check(ok == ref);
    fuzz_check(ok != 0 || minor == rminor);

    ok = proj_valid_currency(s);
    fuzz_check(!ok || (strlen(s) == 3 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                                         == 3));
    fuzz_check(ok == (commerce_currency_exponent(s) >= 0));

    fuzz_check(proj_valid_timestamp(s) == fuzz_ids_timestamp(s));

    /* module: money of the read model in minor units, for cart totals */
    exp = data[0] % 5;
    minor = -1;
    rminor = -2;
    ok = commerce_money_parse((const char *) p, len, exp, &minor);
    ref = fuzz_ids_money(p, len, exp, &rminor);
    fuzz_check(ok == ref);
    fuzz_check(ok != 0 || minor == rminor);

    if (ok == 0) {
        end2 = commerce_money_format(money, minor, exp);
        fuzz_check(commerce_money_parse(money, end2 - money, exp, &rminor)
                   == 0 && rminor == minor);
    }

    /* what the projector takes as an amount, the edge reads alike */
    if (proj_parse_amount(s, 2, &rminor) == 0 && strlen(s) == len) {
        fuzz_check(commerce_money_parse((const char *) p, len, 2, &minor) == 0
                   && minor == rminor);
    }

    fuzz_ids_if_match(p, len);

    free(s);
    free(p);

    return 0;
}
