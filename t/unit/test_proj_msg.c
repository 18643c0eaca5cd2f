/*
 * Unit tests of the projector's dedup keys (proj_msg_dedup_key): short
 * keys as earlier versions stored them, long ones by SHA-256 of the whole
 * id, never a prefix; and of the reasons: one list, ours only.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../workers/projector/proj_msg.h"


static void
test_dedup_short(void **state)
{
    char  k[PROJ_MSG_DEDUP_MAX];

    assert_int_equal(proj_msg_dedup_key("canonical", "msg-1", 5, k), 0);
    assert_string_equal(k, "canonical|msg-1");
}


static void
test_dedup_long(void **state)
{
    char    id[6000], a[PROJ_MSG_DEDUP_MAX], b[PROJ_MSG_DEDUP_MAX];
    char    c[PROJ_MSG_DEDUP_MAX], old[600];
    size_t  n;

    /* 599 bytes in all: readable, as stored before (snprintf of 600) */
    memset(id, 'w', sizeof(id));
    n = 599 - strlen("canonical|");
    assert_int_equal(proj_msg_dedup_key("canonical", id, n, a), 0);
    snprintf(old, sizeof(old), "canonical|%.*s", (int) n, id);
    assert_string_equal(a, old);

    /* one byte more: hashed */
    assert_int_equal(proj_msg_dedup_key("canonical", id, n + 1, a), 0);
    assert_int_equal(strncmp(a, "canonical|sha256:", 17), 0);
    assert_int_equal(strlen(a), 17 + 64);

    /* 657-byte ids sharing 650 bytes: three keys */
    memcpy(id + 650, "aaaaaaa", 7);
    assert_int_equal(proj_msg_dedup_key("canonical", id, 657, a), 0);
    memcpy(id + 650, "bbbbbbb", 7);
    assert_int_equal(proj_msg_dedup_key("canonical", id, 657, b), 0);
    assert_string_not_equal(a, b);
    memcpy(id + 650, "aaaaaaa", 7);
    assert_int_equal(proj_msg_dedup_key("canonical", id, 657, c), 0);
    assert_string_equal(a, c);

    /* beyond 1,024 bytes, up to the last byte */
    id[5999] = 'x';
    assert_int_equal(proj_msg_dedup_key("canonical", id, 6000, a), 0);
    id[5999] = 'y';
    assert_int_equal(proj_msg_dedup_key("canonical", id, 6000, b), 0);
    assert_string_not_equal(a, b);

    /* the source is part of the hash; a NUL in an id is hashed too */
    assert_int_equal(proj_msg_dedup_key("shopify", id, 6000, c), 0);
    assert_string_not_equal(b + strlen("canonical|"), c + strlen("shopify|"));
    assert_int_equal(proj_msg_dedup_key("canonical", "a\0b", 3, a), 0);
    assert_int_equal(proj_msg_dedup_key("canonical", "a\0c", 3, b), 0);
    assert_string_not_equal(a, b);
}


static void
test_reasons(void **state)
{
    size_t        i, j;
    proj_error_t  e;

    for (i = 0; proj_reasons[i] != NULL; i++) {
        for (j = 0; proj_reasons[i][j] != '\0'; j++) {
            assert_true((proj_reasons[i][j] >= 'a' && proj_reasons[i][j] <= 'z')
                        || proj_reasons[i][j] == '_');
        }
        assert_int_equal(proj_reason_index(proj_reasons[i]), (int) i);
    }
    assert_int_equal(i, PROJ_REASON_N);
    assert_int_equal(proj_reason_index("ERROR"), -1);

    proj_error_store(&e, "item: [22008] ERROR:  date/time field value out "
                     "of range: \"2026-02-30\"");
    assert_string_equal(e.reason, "rejected_by_store");
    assert_null(strstr(e.detail, "ERROR"));
    assert_non_null(strstr(e.detail, "22008"));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_dedup_short),
        cmocka_unit_test(test_dedup_long),
        cmocka_unit_test(test_reasons),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
