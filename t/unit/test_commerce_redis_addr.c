/*
 * Unit tests of Redis address parsing (common/commerce_redis_addr.c), as
 * commerce_redis_server (default port 6379) and the workers' redis.address
 * (no default port) use it.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "commerce_redis_addr.h"


static commerce_redis_addr_rc_e
parse(commerce_redis_addr_t *a, const char *text, int default_port)
{
    return commerce_redis_addr_parse(a, text, strlen(text), default_port);
}


static void
test_inet(void **state)
{
    commerce_redis_addr_t  a;

    (void) state;

    assert_int_equal(parse(&a, "127.0.0.1:6390", 0), COMMERCE_REDIS_ADDR_OK);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 6390);
    assert_int_equal(a.is_unix, 0);

    assert_int_equal(parse(&a, "[::1]:7000", 0), COMMERCE_REDIS_ADDR_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 7000);
    assert_int_equal(a.is_unix, 0);

    assert_int_equal(parse(&a, "redis.example:1", 0), COMMERCE_REDIS_ADDR_OK);
    assert_string_equal(a.host, "redis.example");
    assert_int_equal(a.port, 1);

    assert_int_equal(parse(&a, "h:65535", 0), COMMERCE_REDIS_ADDR_OK);
    assert_int_equal(a.port, 65535);

    /* the text is len bytes: what follows is not read */
    assert_int_equal(commerce_redis_addr_parse(&a, "h:6379xyz", 6, 0),
                     COMMERCE_REDIS_ADDR_OK);
    assert_string_equal(a.host, "h");
    assert_int_equal(a.port, 6379);
}


static void
test_default_port(void **state)
{
    commerce_redis_addr_t  a;

    (void) state;

    assert_int_equal(parse(&a, "localhost", 0), COMMERCE_REDIS_ADDR_NO_PORT);

    assert_int_equal(parse(&a, "localhost", 6379), COMMERCE_REDIS_ADDR_OK);
    assert_string_equal(a.host, "localhost");
    assert_int_equal(a.port, 6379);

    assert_int_equal(parse(&a, "[::1]", 6379), COMMERCE_REDIS_ADDR_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 6379);

    /* a port given wins */
    assert_int_equal(parse(&a, "10.0.0.1:6380", 6379),
                     COMMERCE_REDIS_ADDR_OK);
    assert_int_equal(a.port, 6380);
}


static void
test_unix(void **state)
{
    char                   path[200];
    commerce_redis_addr_t  a;

    (void) state;

    assert_int_equal(parse(&a, "unix:/run/r.sock", 0),
                     COMMERCE_REDIS_ADDR_OK);
    assert_string_equal(a.host, "/run/r.sock");
    assert_int_equal(a.port, 0);
    assert_int_equal(a.is_unix, 1);

    assert_int_equal(parse(&a, "/tmp/r.sock", 6379), COMMERCE_REDIS_ADDR_OK);
    assert_string_equal(a.host, "/tmp/r.sock");
    assert_int_equal(a.port, 0);
    assert_int_equal(a.is_unix, 1);

    assert_int_equal(parse(&a, "unix:", 0), COMMERCE_REDIS_ADDR_NO_PATH);

    /* sun_path holds 107 bytes and the NUL */
    memset(path, 'p', sizeof(path));
    memcpy(path, "unix:/", 6);
    path[5 + 107] = '\0';
    assert_int_equal(parse(&a, path, 0), COMMERCE_REDIS_ADDR_OK);
    assert_int_equal(strlen(a.host), 107);

    path[5 + 107] = 'p';
    path[5 + 108] = '\0';
    assert_int_equal(parse(&a, path, 0), COMMERCE_REDIS_ADDR_PATH_TOO_LONG);
}


static void
test_invalid(void **state)
{
    char                   host[300];
    commerce_redis_addr_t  a;

    (void) state;

    assert_int_equal(parse(&a, "h:0", 0), COMMERCE_REDIS_ADDR_INVALID_PORT);
    assert_int_equal(parse(&a, "h:70000", 0),
                     COMMERCE_REDIS_ADDR_INVALID_PORT);
    assert_int_equal(parse(&a, "h:65536", 0),
                     COMMERCE_REDIS_ADDR_INVALID_PORT);
    assert_int_equal(parse(&a, "127.0.0.1:99999", 6379),
                     COMMERCE_REDIS_ADDR_INVALID_PORT);
    assert_int_equal(parse(&a, "127.0.0.1:abc", 6379),
                     COMMERCE_REDIS_ADDR_INVALID_PORT);
    assert_int_equal(parse(&a, "h:", 6379), COMMERCE_REDIS_ADDR_INVALID_PORT);
    assert_int_equal(parse(&a, "h:+1", 0), COMMERCE_REDIS_ADDR_INVALID_PORT);
    assert_int_equal(parse(&a, "h: 1", 0), COMMERCE_REDIS_ADDR_INVALID_PORT);
    assert_int_equal(parse(&a, "::1:6379", 0),
                     COMMERCE_REDIS_ADDR_INVALID_PORT);

    assert_int_equal(parse(&a, ":6379", 0), COMMERCE_REDIS_ADDR_NO_HOST);
    assert_int_equal(parse(&a, "", 6379), COMMERCE_REDIS_ADDR_NO_HOST);
    assert_int_equal(parse(&a, "[]:6379", 0), COMMERCE_REDIS_ADDR_NO_HOST);

    assert_int_equal(parse(&a, "[::1:6379", 0),
                     COMMERCE_REDIS_ADDR_INVALID_HOST);
    assert_int_equal(parse(&a, "[::1]6379", 0),
                     COMMERCE_REDIS_ADDR_INVALID_HOST);
    assert_int_equal(parse(&a, "h/x:6379", 0),
                     COMMERCE_REDIS_ADDR_INVALID_HOST);
    assert_int_equal(parse(&a, "[redis]:6379", 0),
                     COMMERCE_REDIS_ADDR_INVALID_IPV6);

    /* a NUL inside the text would cut the host or path short (found by
     * t/fuzz/fuzz_redis_addr, t/fuzz/corpus/redis_addr/crash-nul-*) */
    assert_int_equal(commerce_redis_addr_parse(&a, "h\0x:6379", 8, 0),
                     COMMERCE_REDIS_ADDR_INVALID_HOST);
    assert_int_equal(commerce_redis_addr_parse(&a, "[::1\0]:6379", 11, 0),
                     COMMERCE_REDIS_ADDR_INVALID_HOST);
    assert_int_equal(commerce_redis_addr_parse(&a, "unix:/tmp/a\0b", 13, 0),
                     COMMERCE_REDIS_ADDR_INVALID_PATH);
    assert_int_equal(commerce_redis_addr_parse(&a, "/tmp/a\0", 7, 0),
                     COMMERCE_REDIS_ADDR_INVALID_PATH);

    memset(host, 'h', sizeof(host));
    memcpy(host + 260, ":6379", 6);
    assert_int_equal(parse(&a, host, 0), COMMERCE_REDIS_ADDR_INVALID_HOST);

    /* a failed parse leaves the result alone */
    assert_int_equal(parse(&a, "10.1.2.3:6000", 0), COMMERCE_REDIS_ADDR_OK);
    assert_int_equal(parse(&a, "[nope]:1", 0),
                     COMMERCE_REDIS_ADDR_INVALID_IPV6);
    assert_string_equal(a.host, "10.1.2.3");
    assert_int_equal(a.port, 6000);
}


static void
test_strerror(void **state)
{
    (void) state;

    assert_string_equal(commerce_redis_addr_strerror(
                            COMMERCE_REDIS_ADDR_INVALID_PORT),
                        "invalid port");
    assert_string_equal(commerce_redis_addr_strerror(
                            COMMERCE_REDIS_ADDR_NO_HOST),
                        "no host");
    assert_string_equal(commerce_redis_addr_strerror(
                            COMMERCE_REDIS_ADDR_INVALID_IPV6),
                        "invalid IPv6 address");
    assert_string_equal(commerce_redis_addr_strerror(
                            COMMERCE_REDIS_ADDR_INVALID_PATH),
                        "invalid unix domain socket path");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inet),
        cmocka_unit_test(test_default_port),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_strerror),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
