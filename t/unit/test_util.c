/*
 * Unit tests of the pure helpers of the commerce module
 * (ngx_commerce_module/ngx_http_commerce_util.c).  JSON escaping and the
 * circuit breaker moved to common/ with their tests: test_commerce_json.c,
 * test_commerce_breaker.c.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ngx_http_commerce_util.h"


#define S(s)  (const u_char *) (s), sizeof(s) - 1


/*
 * MurmurHash64A written from its definition with explicit little-endian
 * loads and the module's seed, to check the optimised version (memcpy,
 * tail switch) on every tail length and alignment.
 */
static uint64_t
ref_hash64(const u_char *p, size_t len)
{
    size_t          i, j, n;
    uint64_t        h, k;
    const uint64_t  m = 0xc6a4a7935bd1e995ULL;

    h = 0x5bd1e9955bd1e995ULL ^ ((uint64_t) len * m);
    n = len / 8;

    for (i = 0; i < n; i++) {
        k = 0;

        for (j = 0; j < 8; j++) {
            k |= (uint64_t) p[i * 8 + j] << (8 * j);
        }

        k *= m;
        k ^= k >> 47;
        k *= m;

        h ^= k;
        h *= m;
    }

    if (len & 7) {
        for (j = 0; j < (len & 7); j++) {
            h ^= (uint64_t) p[n * 8 + j] << (8 * j);
        }

        h *= m;
    }

    h ^= h >> 47;
    h *= m;
    h ^= h >> 47;

    return h;
}


static void
fill_pattern(u_char *p, size_t len, unsigned seed)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (u_char) (seed >> 16);
    }
}


/* matches the reference on every length 0..200 and 8 alignments */
static void
test_hash_matches_reference(void **state)
{
    size_t   len, off;
    u_char   buf[256 + 8];

    (void) state;

    fill_pattern(buf, sizeof(buf), 7);

    for (off = 0; off < 8; off++) {
        for (len = 0; len <= 200; len++) {
            assert_true(ngx_http_commerce_hash64(buf + off, len)
                        == ref_hash64(buf + off, len));
        }
    }
}


/*
 * ETags live in caches and clients across restarts and upgrades: the hash
 * of given bytes must never change.  Pinned values.
 */
static void
test_hash_stable(void **state)
{
    (void) state;

    assert_true(ngx_http_commerce_hash64(S("")) == ref_hash64(S("")));
    assert_true(ngx_http_commerce_hash64(S("{\"id\":\"a\"}"))
                == ngx_http_commerce_hash64(S("{\"id\":\"a\"}")));

    assert_true(ngx_http_commerce_hash64(S(""))
                == 0xb59f99ed1bb19051ULL);
    assert_true(ngx_http_commerce_hash64(S("hello"))
                == 0x621692ca74e5cc1bULL);
    assert_true(ngx_http_commerce_hash64(S("{\"id\":\"sku-1\",\"n\":1}"))
                == 0xc3519f187a159c93ULL);
}


/* any single bit flip and any length change give another hash */
static void
test_hash_sensitive(void **state)
{
    size_t    i, bit;
    u_char    buf[64], zeros[16];
    uint64_t  h, h2;

    (void) state;

    fill_pattern(buf, sizeof(buf), 42);
    h = ngx_http_commerce_hash64(buf, sizeof(buf));

    for (i = 0; i < sizeof(buf); i++) {
        for (bit = 0; bit < 8; bit++) {
            buf[i] ^= (u_char) (1u << bit);
            h2 = ngx_http_commerce_hash64(buf, sizeof(buf));
            buf[i] ^= (u_char) (1u << bit);

            assert_true(h2 != h);
        }
    }

    /* "", "\0", "\0\0", ... are all different */
    memset(zeros, 0, sizeof(zeros));

    for (i = 0; i < sizeof(zeros); i++) {
        assert_true(ngx_http_commerce_hash64(zeros, i)
                    != ngx_http_commerce_hash64(zeros, i + 1));
    }

    assert_true(ngx_http_commerce_hash64(buf, 63)
                != ngx_http_commerce_hash64(buf, 64));
}


static void
test_etag_format(void **state)
{
    char      want[32];
    u_char    dst[NGX_HTTP_COMMERCE_ETAG_LEN + 4], *end;
    size_t    i;
    uint64_t  h;

    (void) state;

    memset(dst, 'X', sizeof(dst));

    end = ngx_http_commerce_etag(dst, S("{\"id\":\"a\"}"));

    assert_ptr_equal(end, dst + NGX_HTTP_COMMERCE_ETAG_LEN);
    assert_int_equal(dst[0], '"');
    assert_int_equal(dst[NGX_HTTP_COMMERCE_ETAG_LEN - 1], '"');
    assert_int_equal(dst[NGX_HTTP_COMMERCE_ETAG_LEN], 'X');

    for (i = 1; i < NGX_HTTP_COMMERCE_ETAG_LEN - 1; i++) {
        assert_true((dst[i] >= '0' && dst[i] <= '9')
                    || (dst[i] >= 'a' && dst[i] <= 'f'));
    }

    h = ngx_http_commerce_hash64(S("{\"id\":\"a\"}"));
    snprintf(want, sizeof(want), "\"%016llx\"", (unsigned long long) h);
    assert_memory_equal(dst, want, NGX_HTTP_COMMERCE_ETAG_LEN);

    /* leading zero digits are kept: "item-6117" hashes to 0x0001... */
    end = ngx_http_commerce_etag(dst, S("item-6117"));
    assert_ptr_equal(end, dst + NGX_HTTP_COMMERCE_ETAG_LEN);
    assert_memory_equal(dst, "\"00017d847070ad94\"",
                        NGX_HTTP_COMMERCE_ETAG_LEN);
}


static int
parse(const char *s, uint64_t max, uint64_t *out)
{
    return ngx_http_commerce_parse_uint((const u_char *) s, strlen(s), max,
                                        out);
}


static void
test_parse_uint(void **state)
{
    uint64_t  v;

    (void) state;

    v = 12345;
    assert_int_equal(parse("0", 200, &v), 0);
    assert_true(v == 0);

    assert_int_equal(parse("1", 200, &v), 0);
    assert_true(v == 1);

    assert_int_equal(parse("200", 200, &v), 0);
    assert_true(v == 200);

    assert_int_equal(parse("201", 200, &v), -1);
    assert_int_equal(parse("", 200, &v), -1);
    assert_int_equal(parse("+1", 200, &v), -1);
    assert_int_equal(parse("-1", 200, &v), -1);
    assert_int_equal(parse(" 1", 200, &v), -1);
    assert_int_equal(parse("1 ", 200, &v), -1);
    assert_int_equal(parse("1a", 200, &v), -1);
    assert_int_equal(parse("abc", 200, &v), -1);
    assert_int_equal(parse("0x10", 200, &v), -1);
    assert_int_equal(parse("1.5", 200, &v), -1);

    /* the whole uint64_t range, and not one more */
    assert_int_equal(parse("18446744073709551615", UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);

    assert_int_equal(parse("18446744073709551616", UINT64_MAX, &v), -1);
    assert_int_equal(parse("18446744073709551620", UINT64_MAX, &v), -1);
    assert_int_equal(parse("99999999999999999999", UINT64_MAX, &v), -1);
    assert_int_equal(parse("184467440737095516150", UINT64_MAX, &v), -1);

    assert_int_equal(parse("4294967296", UINT64_MAX, &v), 0);
    assert_true(v == 4294967296ULL);

    /* the length argument bounds the scan: "12" of "123" */
    assert_int_equal(ngx_http_commerce_parse_uint((const u_char *) "123", 2,
                                                  200, &v), 0);
    assert_true(v == 12);
}


static void
test_valid_id(void **state)
{
    u_char  buf[NGX_HTTP_COMMERCE_ID_MAX + 2];

    (void) state;

    memset(buf, 'a', sizeof(buf));

    assert_int_equal(ngx_http_commerce_valid_id(buf, 0), 0);
    assert_int_equal(ngx_http_commerce_valid_id(buf, 1), 1);
    assert_int_equal(ngx_http_commerce_valid_id(buf, 256), 1);
    assert_int_equal(ngx_http_commerce_valid_id(buf, 257), 0);

    assert_int_equal(ngx_http_commerce_valid_id(S("sku-1_A.b:c")), 1);
    assert_int_equal(ngx_http_commerce_valid_id(S("a b")), 0);
    assert_int_equal(ngx_http_commerce_valid_id(S(" ")), 0);
    assert_int_equal(ngx_http_commerce_valid_id(S("a\tb")), 0);
    assert_int_equal(ngx_http_commerce_valid_id(S("a\x01")), 0);
    assert_int_equal(ngx_http_commerce_valid_id(S("\x1f")), 0);
    assert_int_equal(ngx_http_commerce_valid_id(S("a\x7f")), 0);
    assert_int_equal(ngx_http_commerce_valid_id(S("a\r\nb")), 0);
    assert_int_equal(ngx_http_commerce_valid_id((const u_char *) "a\0b", 3),
                     0);

    /* UTF-8 and other high bytes are ids like any other */
    assert_int_equal(ngx_http_commerce_valid_id(S("caf\xc3\xa9")), 1);
    assert_int_equal(ngx_http_commerce_valid_id(S("\xe5\x95\x86\xe5\x93\x81")),
                     1);
    assert_int_equal(ngx_http_commerce_valid_id(S("\x80\xff")), 1);
    assert_int_equal(ngx_http_commerce_valid_id(S("~!\"#$%&'()*+,-./")), 1);

    /* a bad byte at the very end of a maximal id */
    buf[255] = ' ';
    assert_int_equal(ngx_http_commerce_valid_id(buf, 256), 0);
}


/* RFC 9562 appendix A.6's example: 2022-02-22 19:22:22 UTC (017F22E279B0) */
static void
test_uuid7(void **state)
{
    u_char        out[NGX_HTTP_COMMERCE_UUID_LEN + 1], *end;
    const u_char  rnd[10] = { 0x0c, 0xc3, 0x18, 0xc4, 0xdc, 0x0c, 0x0c,
                              0x07, 0x39, 0x8f };

    (void) state;

    end = ngx_http_commerce_uuid7(out, 0x017F22E279B0ULL, rnd);
    assert_int_equal(end - out, NGX_HTTP_COMMERCE_UUID_LEN);
    *end = '\0';
    assert_string_equal((char *) out, "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
    assert_int_equal(ngx_http_commerce_valid_uuid(out, end - out), 1);

    /* version and variant bits forced whatever the random bytes */
    {
        const u_char  ones[10] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff };

        (void) ngx_http_commerce_uuid7(out, 1, ones);
        assert_memory_equal(out, "00000000-0001-7fff-bfff-ffffffffffff", 36);
    }

    /* a later millisecond sorts after, whatever the random bytes */
    {
        u_char        a[36], b[36];
        const u_char  lo[10] = { 0 };
        const u_char  hi[10] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                 0xff, 0xff, 0xff };

        (void) ngx_http_commerce_uuid7(a, 1700000000000ULL, hi);
        (void) ngx_http_commerce_uuid7(b, 1700000000001ULL, lo);
        assert_true(memcmp(a, b, 36) < 0);
    }

    assert_int_equal(ngx_http_commerce_valid_uuid(
                         S("017F22E2-79B0-7CC3-98C4-DC0C0C07398F")), 0);
    assert_int_equal(ngx_http_commerce_valid_uuid(
                         S("017f22e2-79b0-7cc3-98c4-dc0c0c07398")), 0);
    assert_int_equal(ngx_http_commerce_valid_uuid(
                         S("017f22e2x79b0-7cc3-98c4-dc0c0c07398f")), 0);
    assert_int_equal(ngx_http_commerce_valid_uuid(
                         S("017f22e2-79b0-7cc3-98c4-dc0c0c07398g")), 0);
}


/* the If-Match value in, the cart script's condition out */
static void
check_if_match(const char *in, const char *want)
{
    u_char   out[128], *end;
    size_t   len = strlen(in);

    memset(out, 'X', sizeof(out));
    end = ngx_http_commerce_if_match_versions(out, (const u_char *) in, len);

    assert_true((size_t) (end - out) <= len + 1);
    assert_int_equal((size_t) (end - out), strlen(want));
    assert_memory_equal(out, want, strlen(want));
    assert_int_equal(*end, 'X');
}


static void
test_if_match_versions(void **state)
{
    (void) state;

    check_if_match("*", "*");
    check_if_match("  *\t", "*");
    check_if_match("\"3\"", "3 ");
    check_if_match("\"12\", \"7\"", "12 7 ");
    check_if_match("\"1\",\"2\"  ,  \"3\"", "1 2 3 ");

    /* weak tags never match If-Match; nor do tags that are not versions */
    check_if_match("W/\"3\"", "-");
    check_if_match("W/\"3\", \"4\"", "4 ");
    check_if_match("\"abc\", \"5\"", "5 ");
    check_if_match("\"3a\"", "-");
    check_if_match("\"\"", "-");
    check_if_match("\"-1\"", "-");
    check_if_match("\"1234567890123456789\"", "1234567890123456789 ");
    check_if_match("\"12345678901234567890\"", "-");

    /* not a list of entity-tags: what came before it, else nothing */
    check_if_match("3", "-");
    check_if_match("", "-");
    check_if_match("bogus", "-");
    check_if_match("\"3\", bogus, \"4\"", "3 ");
    check_if_match("\"3", "-");
    check_if_match("\"3\", \"4", "3 ");
    check_if_match("W/", "-");
    check_if_match("**", "-");
    check_if_match("*, \"3\"", "-");
}


static void
test_sf_string(void **state)
{
    u_char       out[64];
    size_t       n;
    const char  *why;

    (void) state;

#define SF_OK(in, want)                                                     \
    n = 99;                                                                 \
    why = ngx_http_commerce_sf_string(S(in), out, &n);                      \
    assert_null(why);                                                       \
    assert_int_equal(n, sizeof(want) - 1);                                  \
    assert_memory_equal(out, want, n)

#define SF_BAD(in)                                                          \
    assert_non_null(ngx_http_commerce_sf_string(S(in), out, &n))

    SF_OK("\"abc\"", "abc");
    SF_OK("\"\"", "");
    SF_OK("\"a b ~!#\"", "a b ~!#");
    SF_OK("\"say \\\"hi\\\"\"", "say \"hi\"");
    SF_OK("\"back\\\\slash\"", "back\\slash");

    SF_BAD("abc");
    SF_BAD("\"");
    SF_BAD("\"abc");
    SF_BAD("abc\"");
    SF_BAD("'abc'");
    SF_BAD("\"a\"b\"");                  /* an inner quote unescaped */
    SF_BAD("\"a\\nb\"");                /* only \" and \\ escape */
    SF_BAD("\"a\\\"");                  /* an escape at the end */
    SF_BAD("\"caf\xc3\xa9\"");          /* not ASCII */
    SF_BAD("\"a\tb\"");
    SF_BAD("\"a\x7f\"");

#undef SF_OK
#undef SF_BAD
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_matches_reference),
        cmocka_unit_test(test_hash_stable),
        cmocka_unit_test(test_hash_sensitive),
        cmocka_unit_test(test_etag_format),
        cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_valid_id),
        cmocka_unit_test(test_uuid7),
        cmocka_unit_test(test_sf_string),
        cmocka_unit_test(test_if_match_versions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
