/*
 * Unit tests of the inbound webhook rules (common/commerce_inbound.c): the
 * delivery id and the JSON body, as the module and the projector apply
 * them.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "commerce_contract.h"
#include "commerce_inbound.h"


static const char *
id_reason(const char *s, size_t len)
{
    return commerce_inbound_check_id((const unsigned char *) s, len);
}


static void
test_id_length(void **state)
{
    char  id[COMMERCE_DELIVERY_ID_MAX + 2];

    (void) state;

    assert_int_equal(COMMERCE_DELIVERY_ID_MAX, 400);

    memset(id, 'a', sizeof(id));

    assert_null(id_reason(id, 1));
    assert_null(id_reason(id, COMMERCE_DELIVERY_ID_MAX));
    assert_string_equal(id_reason(id, COMMERCE_DELIVERY_ID_MAX + 1),
                        COMMERCE_INBOUND_ID_TOO_LONG);
    assert_string_equal(id_reason(id, 6 * 1024),
                        COMMERCE_INBOUND_ID_TOO_LONG);
    assert_string_equal(id_reason(id, 0), COMMERCE_INBOUND_ID_INVALID);

    /* too long wins over bad bytes: the reason a sender can act on first */
    id[5] = ' ';
    assert_string_equal(id_reason(id, COMMERCE_DELIVERY_ID_MAX + 1),
                        COMMERCE_INBOUND_ID_TOO_LONG);
}


static void
test_id_bytes(void **state)
{
    int            c;
    char           id[3];
    const char    *want;

    (void) state;

    /* each byte value in the middle of an id */
    for (c = 0; c < 256; c++) {
        id[0] = 'm';
        id[1] = (char) c;
        id[2] = '1';

        want = (c >= 0x21 && c <= 0x7e) ? NULL : COMMERCE_INBOUND_ID_INVALID;

        if (want == NULL) {
            assert_null(id_reason(id, 3));

        } else {
            assert_string_equal(id_reason(id, 3), want);
        }
    }

    /* the providers' forms */
    assert_null(id_reason("msg_p5jXN8AQM9LWM0D4loKWxJek", 28));
    assert_null(id_reason("b54557de-1a3c-4e0e-9c2f-6d7d8e9f0a1b", 36));
    assert_null(id_reason("evt_1NG8Du2eZvKYlo2CUI79vXWy", 28));
    assert_null(id_reason("12345", 5));
    assert_null(id_reason("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", 32));

    /* at either end */
    assert_string_equal(id_reason(" msg", 4), COMMERCE_INBOUND_ID_INVALID);
    assert_string_equal(id_reason("msg ", 4), COMMERCE_INBOUND_ID_INVALID);
    assert_string_equal(id_reason("caf\xc3\xa9", 5),
                        COMMERCE_INBOUND_ID_INVALID);
}


/* the reason of a body, and that a refusal leaves no root */
static const char *
body_reason(const char *body, json_error_t *err)
{
    json_t      *root;
    const char  *reason;

    root = (json_t *) 1;

    reason = commerce_inbound_parse_json(body, strlen(body), &root, err);

    if (reason != NULL) {
        assert_null(root);

    } else {
        assert_true(json_is_object(root));
        json_decref(root);
    }

    return reason;
}


static void
test_json_objects(void **state)
{
    json_t        *root;
    json_error_t   err;

    (void) state;

    assert_null(body_reason("{}", &err));
    assert_null(body_reason(" \n{\"a\":1,\"b\":{\"a\":2},\"c\":[{\"a\":3}]}\n",
                            &err));
    assert_null(body_reason("{\"u\":\"caf\xc3\xa9 \\u00e9\"}", &err));

    /* the same key in different objects is no duplicate */
    assert_null(body_reason("{\"k\":{\"k\":{\"k\":1}},\"l\":[{\"k\":1},"
                            "{\"k\":2}]}", &err));

    /* the root is the object, for the caller to read */
    assert_null(commerce_inbound_parse_json("{\"id\":\"evt_1\"}", 14, &root,
                                            &err));
    assert_string_equal(json_string_value(json_object_get(root, "id")),
                        "evt_1");
    json_decref(root);

    /* no root wanted */
    assert_null(commerce_inbound_parse_json("{\"a\":1}", 7, NULL, &err));
    assert_string_equal(commerce_inbound_parse_json("[1]", 3, NULL, &err),
                        COMMERCE_INBOUND_NOT_OBJECT);
}


static void
test_json_duplicates(void **state)
{
    json_error_t  err;

    (void) state;

    assert_string_equal(body_reason("{\"a\":1,\"a\":2}", &err),
                        COMMERCE_INBOUND_DUPLICATE_KEY);
    assert_int_equal(err.line, 1);
    assert_non_null(strstr(err.text, "duplicate"));

    assert_string_equal(body_reason("{\"a\":1,\n \"o\":{\"k\":1,\"k\":1}}",
                                    &err),
                        COMMERCE_INBOUND_DUPLICATE_KEY);
    assert_int_equal(err.line, 2);

    assert_string_equal(body_reason("[{\"a\":1}]", &err),
                        COMMERCE_INBOUND_NOT_OBJECT);
    assert_string_equal(body_reason("{\"l\":[{\"a\":1,\"a\":1}]}", &err),
                        COMMERCE_INBOUND_DUPLICATE_KEY);

    /* the same key spelled with an escape is the same key */
    assert_string_equal(body_reason("{\"a\":1,\"\\u0061\":2}", &err),
                        COMMERCE_INBOUND_DUPLICATE_KEY);
}


static void
test_json_not_objects(void **state)
{
    size_t         i;
    json_error_t   err;

    static const struct {
        const char  *body;
        const char  *type;
    } t[] = {
        { "\"a string\"", "a string" },
        { "  \"padded\"  ", "a string" },
        { "[1,2]", "an array" },
        { "[]", "an array" },
        { "42", "a number" },
        { "-1.5e3", "a number" },
        { "true", "a boolean" },
        { "false", "a boolean" },
        { "null", "null" }
    };

    (void) state;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_string_equal(body_reason(t[i].body, &err),
                            COMMERCE_INBOUND_NOT_OBJECT);
        assert_non_null(strstr(err.text, t[i].type));
        assert_non_null(strstr(err.text, "not an object"));
        assert_int_equal(err.line, 1);
        assert_int_equal(err.column, 1);
    }
}


static void
test_json_invalid(void **state)
{
    size_t         i;
    json_error_t   err;

    static const char  *bad[] = {
        "",
        "   ",
        "{",
        "{\"a\":1,}",
        "{\"a\":1} x",
        "{\"a\":1}{\"b\":2}",
        "{'a':1}",
        "{\"a\":tru}",
        "{\"a\":\"\\u0000\"}",
        "{\"\\u0000\":1}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\xc3\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "\xef\xbb\xbf{\"a\":1}",
        "{\"a\":99999999999999999999999}",
        "{\"a\":NaN}"
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_string_equal(body_reason(bad[i], &err),
                            COMMERCE_INBOUND_INVALID_JSON);
        assert_true(err.text[0] != '\0');
    }

    /* a NUL byte inside the body, not at its end */
    assert_string_equal(commerce_inbound_parse_json("{\"a\":1}\0", 8, NULL,
                                                    &err),
                        COMMERCE_INBOUND_INVALID_JSON);

    /* where: line and column of the error */
    assert_string_equal(body_reason("{\"order\": 1,\n  \"items\": [1, 2,, 3]}",
                                    &err),
                        COMMERCE_INBOUND_INVALID_JSON);
    assert_int_equal(err.line, 2);
    assert_true(err.column > 1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_id_length),
        cmocka_unit_test(test_id_bytes),
        cmocka_unit_test(test_json_objects),
        cmocka_unit_test(test_json_duplicates),
        cmocka_unit_test(test_json_not_objects),
        cmocka_unit_test(test_json_invalid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
