/*
 * cw_log: one JSON object per line, escaped correctly, filtered by level.
 * Output is captured through a memory stream; each line is checked with
 * jansson, a real JSON parser.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "cw_buf.h"
#include "cw_log.h"

static char    *out;
static size_t   outlen;
static FILE    *mem;


static int
setup(void **state)
{
    out = NULL;
    outlen = 0;
    mem = open_memstream(&out, &outlen);
    cw_log_init("projector", CW_LOG_INFO);
    cw_log_set_stream(mem);
    return 0;
}


static int
teardown(void **state)
{
    cw_log_set_stream(NULL);
    fclose(mem);
    free(out);
    return 0;
}


/* Parses the single line written so far. */
static json_t *
last_line(void)
{
    json_error_t  jerr;
    json_t       *j;

    fflush(mem);
    assert_non_null(out);
    assert_true(outlen > 0);
    assert_int_equal(out[outlen - 1], '\n');
    assert_null(memchr(out, '\n', outlen - 1));
    j = json_loadb(out, outlen, 0, &jerr);
    if (j == NULL) {
        fail_msg("not JSON: %s (%s)", out, jerr.text);
    }
    return j;
}


static void
test_shape(void **state)
{
    json_t      *j;
    const char  *ts;

    cw_log(CW_LOG_INFO, "started %d workers", 3);
    j = last_line();
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "worker")),
                        "projector");
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "started 3 workers");
    ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[23], 'Z');
    /* keys in the documented order */
    assert_true(strstr(out, "{\"ts\":") == out);
    assert_true(strstr(out, "\"level\"") < strstr(out, "\"worker\""));
    assert_true(strstr(out, "\"worker\"") < strstr(out, "\"msg\""));
    json_decref(j);
}


static void
test_escaping(void **state)
{
    const char  *nasty = "quote\" backslash\\ nl\n tab\t cr\r bell\x07 "
                         "del\x7f utf8 \xc3\xa9\xe2\x82\xac";
    json_t      *j;

    cw_log(CW_LOG_WARN, "%s", nasty);
    j = last_line();
    assert_string_equal(json_string_value(json_object_get(j, "msg")), nasty);
    assert_non_null(strstr(out, "quote\\\" backslash\\\\ nl\\n tab\\t cr\\r "
                                "bell\\u0007 del\\u007f"));
    json_decref(j);
}


static void
test_invalid_utf8(void **state)
{
    json_t  *j;

    /* a lone continuation byte, a truncated sequence, an overlong '/' */
    cw_log(CW_LOG_ERROR, "a\x80" "b\xe2\x82" "c\xc0\xaf");
    j = last_line();
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
                        "c\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(j);
}


static void
test_fields(void **state)
{
    cw_field_t  f[] = { CW_FSTR("topic", "commerce.\"events\""),
                        CW_FINT("partition", -3),
                        CW_FDBL("lag_s", 1.5),
                        CW_FBOOL("paused", 1),
                        CW_FSTR("none", NULL) };
    json_t     *j;

    cw_log_kv(CW_LOG_INFO, f, 5, "assigned");
    j = last_line();
    assert_string_equal(json_string_value(json_object_get(j, "topic")),
                        "commerce.\"events\"");
    assert_int_equal(json_integer_value(json_object_get(j, "partition")), -3);
    assert_true(json_real_value(json_object_get(j, "lag_s")) == 1.5);
    assert_true(json_is_true(json_object_get(j, "paused")));
    assert_true(json_is_null(json_object_get(j, "none")));
    json_decref(j);
}


static void
test_levels(void **state)
{
    cw_log_level_t  l;

    cw_log(CW_LOG_DEBUG, "hidden");
    fflush(mem);
    assert_int_equal(outlen, 0);

    cw_log_set_level(CW_LOG_DEBUG);
    cw_log(CW_LOG_DEBUG, "shown");
    fflush(mem);
    assert_non_null(strstr(out, "\"level\":\"debug\""));
    cw_log_set_level(CW_LOG_INFO);

    assert_int_equal(cw_log_level_parse("WARNING", &l), 0);
    assert_int_equal(l, CW_LOG_WARN);
    assert_int_equal(cw_log_level_parse("trace", &l), -1);
    assert_string_equal(cw_log_level_name(CW_LOG_ERROR), "error");
}


static void
test_buf_json(void **state)
{
    cw_buf_t  b;

    cw_buf_init(&b);
    cw_buf_json_str(&b, "a\"b");
    cw_buf_putc(&b, ' ');
    cw_buf_json_escape(&b, "x\0y", 3);
    assert_int_equal(b.len, strlen("\"a\\\"b\" x\\u0000y"));
    assert_memory_equal(b.data, "\"a\\\"b\" x\\u0000y", b.len);
    cw_buf_free(&b);
}


/* short text is escaped in one pass, long text measured first: the same */
static void
test_buf_json_long(void **state)
{
    char      in[5002], want[5020];
    size_t    n;
    cw_buf_t  b;

    memset(in, 'x', 4999);
    memcpy(in + 4999, "\n\x80\"", 3);
    memset(want, 'x', 4999);
    memcpy(want + 4999, "\\n\\ufffd\\\"", 10);
    n = 4999 + 10;

    cw_buf_init(&b);
    cw_buf_json_escape(&b, in, 3);
    cw_buf_json_escape(&b, in, 5002);
    assert_int_equal(b.len, 3 + n);
    assert_memory_equal(b.data, "xxx", 3);
    assert_memory_equal(b.data + 3, want, n);
    assert_int_equal(b.data[b.len], '\0');
    cw_buf_free(&b);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
        cmocka_unit_test(test_buf_json),
        cmocka_unit_test(test_buf_json_long),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
