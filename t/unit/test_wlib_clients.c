/*
 * Error classification of the PostgreSQL and Redis helpers, and Redis
 * address parsing: which failures a worker retries and which it does not.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cw_pg.h"
#include "cw_redis.h"


static void
test_pg_sqlstate(void **state)
{
    assert_int_equal(cw_pg_classify_sqlstate("00000"), CW_PG_OK);
    assert_int_equal(cw_pg_classify_sqlstate("40001"), CW_PG_TRANSIENT);
    assert_int_equal(cw_pg_classify_sqlstate("40P01"), CW_PG_TRANSIENT);
    assert_int_equal(cw_pg_classify_sqlstate("57P01"), CW_PG_TRANSIENT);
    assert_int_equal(cw_pg_classify_sqlstate("57P03"), CW_PG_TRANSIENT);
    assert_int_equal(cw_pg_classify_sqlstate("08006"), CW_PG_TRANSIENT);
    assert_int_equal(cw_pg_classify_sqlstate("08000"), CW_PG_TRANSIENT);
    assert_int_equal(cw_pg_classify_sqlstate("53300"), CW_PG_TRANSIENT);
    assert_int_equal(cw_pg_classify_sqlstate("55P03"), CW_PG_TRANSIENT);
    /* constraint violations, syntax errors, bad data: permanent */
    assert_int_equal(cw_pg_classify_sqlstate("23505"), CW_PG_PERMANENT);
    assert_int_equal(cw_pg_classify_sqlstate("42601"), CW_PG_PERMANENT);
    assert_int_equal(cw_pg_classify_sqlstate("22P02"), CW_PG_PERMANENT);
    assert_int_equal(cw_pg_classify_sqlstate("40002"), CW_PG_PERMANENT);
    assert_int_equal(cw_pg_classify_sqlstate(NULL), CW_PG_PERMANENT);
    assert_int_equal(cw_pg_classify_sqlstate("4000"), CW_PG_PERMANENT);
    /* no connection at all is transient */
    assert_int_equal(cw_pg_classify(NULL, NULL), CW_PG_TRANSIENT);
}


static void
test_redis_reply(void **state)
{
    redisReply  r;

    memset(&r, 0, sizeof(r));
    assert_int_equal(cw_redis_classify_reply(NULL), CW_REDIS_TRANSIENT);
    r.type = REDIS_REPLY_STATUS;
    r.str = "OK";
    r.len = 2;
    assert_int_equal(cw_redis_classify_reply(&r), CW_REDIS_OK);

    r.type = REDIS_REPLY_ERROR;
    r.str = "LOADING Redis is loading the dataset in memory";
    r.len = strlen(r.str);
    assert_int_equal(cw_redis_classify_reply(&r), CW_REDIS_TRANSIENT);
    r.str = "BUSY Redis is busy running a script";
    r.len = strlen(r.str);
    assert_int_equal(cw_redis_classify_reply(&r), CW_REDIS_TRANSIENT);
    r.str = "READONLY You can't write against a read only replica.";
    r.len = strlen(r.str);
    assert_int_equal(cw_redis_classify_reply(&r), CW_REDIS_TRANSIENT);
    r.str = "BUSYGROUP Consumer Group name already exists";
    r.len = strlen(r.str);
    assert_int_equal(cw_redis_classify_reply(&r), CW_REDIS_PERMANENT);
    r.str = "WRONGTYPE Operation against a key holding the wrong kind";
    r.len = strlen(r.str);
    assert_int_equal(cw_redis_classify_reply(&r), CW_REDIS_PERMANENT);
    r.str = "ERR unknown command";
    r.len = strlen(r.str);
    assert_int_equal(cw_redis_classify_reply(&r), CW_REDIS_PERMANENT);
}


static void
test_redis_address(void **state)
{
    char  host[128];
    int   port, unix_;

    assert_int_equal(cw_redis_parse_address("127.0.0.1:6390", host,
                                            sizeof(host), &port, &unix_), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6390);
    assert_int_equal(unix_, 0);

    assert_int_equal(cw_redis_parse_address("[::1]:7000", host, sizeof(host),
                                            &port, &unix_), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7000);

    assert_int_equal(cw_redis_parse_address("unix:/run/r.sock", host,
                                            sizeof(host), &port, &unix_), 0);
    assert_string_equal(host, "/run/r.sock");
    assert_int_equal(unix_, 1);
    assert_int_equal(cw_redis_parse_address("/tmp/r.sock", host, sizeof(host),
                                            &port, &unix_), 0);
    assert_int_equal(unix_, 1);

    assert_int_equal(cw_redis_parse_address("localhost", host, sizeof(host),
                                            &port, &unix_), -1);
    assert_int_equal(cw_redis_parse_address("h:0", host, sizeof(host), &port,
                                            &unix_), -1);
    assert_int_equal(cw_redis_parse_address("h:70000", host, sizeof(host),
                                            &port, &unix_), -1);
    assert_int_equal(cw_redis_parse_address(":6379", host, sizeof(host),
                                            &port, &unix_), -1);
    assert_int_equal(cw_redis_parse_address("::1:6379", host, sizeof(host),
                                            &port, &unix_), -1);
    assert_int_equal(cw_redis_parse_address("unix:", host, sizeof(host),
                                            &port, &unix_), -1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_sqlstate),
        cmocka_unit_test(test_redis_reply),
        cmocka_unit_test(test_redis_address),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
