/*
 * Unit tests of JSON string escaping (common/commerce_json.c), in both
 * modes: BYTES for the module's answers, TEXT for the workers' logs.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "commerce_json.h"


/* the length, the text, and not one byte written past it */
static void
check(int mode, const char *in, size_t len, const char *want)
{
    size_t          n;
    unsigned char   out[256], *end;

    n = commerce_json_escape_len((const unsigned char *) in, len, mode);
    assert_int_equal(n, strlen(want));

    memset(out, 'X', sizeof(out));
    end = commerce_json_escape(out, (const unsigned char *) in, len, mode);

    assert_int_equal((size_t) (end - out), n);
    assert_memory_equal(out, want, n);
    assert_int_equal(out[n], 'X');
}


static void
test_bytes(void **state)
{
    (void) state;

    check(COMMERCE_JSON_BYTES, "", 0, "");
    check(COMMERCE_JSON_BYTES, "plain", 5, "plain");
    check(COMMERCE_JSON_BYTES, "a\"b", 3, "a\\\"b");
    check(COMMERCE_JSON_BYTES, "a\\b", 3, "a\\\\b");
    check(COMMERCE_JSON_BYTES, "\n", 1, "\\u000a");
    check(COMMERCE_JSON_BYTES, "\r\t", 2, "\\u000d\\u0009");
    check(COMMERCE_JSON_BYTES, "\x01\x1f", 2, "\\u0001\\u001f");
    check(COMMERCE_JSON_BYTES, "\0", 1, "\\u0000");
    check(COMMERCE_JSON_BYTES, " \x7f", 2, " \x7f");
    check(COMMERCE_JSON_BYTES, "caf\xc3\xa9", 5, "caf\xc3\xa9");
    check(COMMERCE_JSON_BYTES, "\"\\\"", 3, "\\\"\\\\\\\"");
    check(COMMERCE_JSON_BYTES, "</script>", 9, "</script>");

    /* bytes are bytes: no UTF-8 check in this mode */
    check(COMMERCE_JSON_BYTES, "a\x80\xff", 3, "a\x80\xff");
}


static void
test_text(void **state)
{
    const char  *nasty = "quote\" backslash\\ nl\n tab\t cr\r bell\x07 "
                         "del\x7f utf8 \xc3\xa9\xe2\x82\xac";

    (void) state;

    check(COMMERCE_JSON_TEXT, "", 0, "");
    check(COMMERCE_JSON_TEXT, nasty, strlen(nasty),
          "quote\\\" backslash\\\\ nl\\n tab\\t cr\\r bell\\u0007 "
          "del\\u007f utf8 \xc3\xa9\xe2\x82\xac");
    check(COMMERCE_JSON_TEXT, "\b\f", 2, "\\b\\f");
    check(COMMERCE_JSON_TEXT, "x\0y", 3, "x\\u0000y");
    check(COMMERCE_JSON_TEXT, "\x1f", 1, "\\u001f");

    /* 4-byte sequences and the last code point are kept */
    check(COMMERCE_JSON_TEXT, "\xf0\x9f\x9b\x92", 4, "\xf0\x9f\x9b\x92");
    check(COMMERCE_JSON_TEXT, "\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf");
}


static void
test_text_invalid_utf8(void **state)
{
    (void) state;

    /* a lone continuation byte, a truncated sequence, an overlong '/' */
    check(COMMERCE_JSON_TEXT, "a\x80" "b\xe2\x82" "c\xc0\xaf", 8,
          "a\\ufffd" "b\\ufffd\\ufffd" "c\\ufffd\\ufffd");

    /* a surrogate, past U+10FFFF, a sequence cut by the end */
    check(COMMERCE_JSON_TEXT, "\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd");
    check(COMMERCE_JSON_TEXT, "\xf4\x90\x80\x80", 4,
          "\\ufffd\\ufffd\\ufffd\\ufffd");
    check(COMMERCE_JSON_TEXT, "\xc3", 1, "\\ufffd");
    check(COMMERCE_JSON_TEXT, "\xff", 1, "\\ufffd");
}


/* no byte, in either mode, escapes to more than the advertised bound */
static void
test_escape_max(void **state)
{
    int            mode;
    unsigned int   c;
    unsigned char  in;

    (void) state;

    for (mode = COMMERCE_JSON_BYTES; mode <= COMMERCE_JSON_TEXT; mode++) {
        for (c = 0; c < 256; c++) {
            in = (unsigned char) c;
            assert_true(commerce_json_escape_len(&in, 1, mode)
                        <= COMMERCE_JSON_ESCAPE_MAX(1));
        }
    }
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_text_invalid_utf8),
        cmocka_unit_test(test_escape_max),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
