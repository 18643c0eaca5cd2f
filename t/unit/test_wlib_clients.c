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


/* the workers' grammar: the port is required (the parser's own tests,
 * with host and port, are test_commerce_redis_addr.c) */
static int
redis_address_ok(const char *address)
{
    char         err[256];
    cw_redis_t  *r;

    r = cw_redis_new(address, 100, 100, err, sizeof(err));
    if (r == NULL) {
        assert_non_null(strstr(err, "invalid redis address"));
        return 0;
    }
    cw_redis_free(r);
    return 1;
}


static void
test_redis_address(void **state)
{
    assert_int_equal(redis_address_ok("127.0.0.1:6390"), 1);
    assert_int_equal(redis_address_ok("[::1]:7000"), 1);
    assert_int_equal(redis_address_ok("unix:/run/r.sock"), 1);
    assert_int_equal(redis_address_ok("/tmp/r.sock"), 1);

    assert_int_equal(redis_address_ok("localhost"), 0);
    assert_int_equal(redis_address_ok("h:0"), 0);
    assert_int_equal(redis_address_ok("h:70000"), 0);
    assert_int_equal(redis_address_ok(":6379"), 0);
    assert_int_equal(redis_address_ok("::1:6379"), 0);
    assert_int_equal(redis_address_ok("unix:"), 0);
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
