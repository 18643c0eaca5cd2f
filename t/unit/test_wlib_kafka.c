/*
 * cw_kafka consumer batches, against librdkafka's mock cluster in this
 * process: messages already fetched into the local queue all go into one
 * batch (up to kafka.batch_max), however long taking them one by one
 * lasts, because kafka.batch_wait bounds only the wait for more; with
 * nothing more to come, a started batch is handed over after about
 * batch_wait, not after the poll's timeout. Offsets arrive consecutive,
 * none lost or repeated. The lag of the partition: what was produced
 * and not yet handed over.
 *
 * The first case is not a race: 60,000 fetched messages cannot be taken
 * within the 1 ms batch_wait, so a loop that stops taking when batch_wait
 * has passed since the first message always cuts the batch short.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cw_config.h"
#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_time.h"

#define TOPIC        "cw.test.batch"
#define MANY         60000      /* well over 1 ms to take one by one */
#define FEW          10

typedef struct {
    rd_kafka_t               *mrk;      /* owns the mock cluster */
    rd_kafka_mock_cluster_t  *mc;
    cw_kafka_producer_t      *prod;
    cw_kafka_consumer_t      *cons;
    rd_kafka_queue_t         *q;        /* the consumer's queue, watched */
    int64_t                   produced;

    /* what on_batch saw */
    size_t                    batches;
    size_t                    last;     /* size of the latest batch */
    int64_t                   total;
    int64_t                   next;     /* offset expected next */
    int                       bad;      /* out of order or wrong place */
} fx_t;


static int
on_batch(void *ud, rd_kafka_message_t **msgs, size_t n)
{
    fx_t    *fx = ud;
    size_t   i;

    for (i = 0; i < n; i++) {
        if (msgs[i]->partition != 0 || msgs[i]->offset != fx->next) {
            fx->bad++;
        }
        fx->next = msgs[i]->offset + 1;
    }
    fx->batches++;
    fx->last = n;
    fx->total += (int64_t) n;
    return 0;
}


static void
produce(fx_t *fx, int n)
{
    char  val[32], err[512];
    int   i, len;

    for (i = 0; i < n; i++) {
        len = snprintf(val, sizeof(val), "m%lld",
                       (long long) (fx->produced + i));
        if (cw_kafka_produce(fx->prod, TOPIC, 0, NULL, 0, val, (size_t) len,
                             NULL, err, sizeof(err)) != 0)
        {
            fail_msg("%s", err);
        }
    }
    if (cw_kafka_producer_flush(fx->prod, 30000, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    fx->produced += n;
}


/* Waits, without polling the consumer, until its fetcher has put at
 * least n messages into the local queue. */
static void
await_fetched(fx_t *fx, size_t n)
{
    int64_t  deadline = cw_now_ms() + 30000;

    while (rd_kafka_queue_length(fx->q) < n && cw_now_ms() < deadline) {
        cw_sleep_ms(10, NULL);
    }
    assert_true(rd_kafka_queue_length(fx->q) >= n);
}


/* Takes what an earlier case left behind (only when it failed), so each
 * case starts with everything produced so far consumed. */
static void
drain(fx_t *fx)
{
    int64_t  deadline = cw_now_ms() + 30000;

    while (fx->total < fx->produced && cw_now_ms() < deadline) {
        assert_true(cw_kafka_consumer_poll(fx->cons, 200) >= 0);
    }
    assert_int_equal(fx->total, fx->produced);
}


/* The cw_kafka configuration both clients are made from, defaults first
 * (no environment), then the test's settings and extra ones. */
static cw_config_t *
new_config(fx_t *fx, const char *extra)
{
    cw_config_t  *cfg;
    char         *argv[] = { "test_wlib_kafka", NULL };
    char         *envp[] = { NULL };
    char          text[1024], err[512];

    cfg = cw_config_new("test_wlib_kafka", "cw_kafka batches");
    assert_non_null(cfg);
    assert_int_equal(cw_kafka_declare(cfg), 0);
    if (cw_config_load(cfg, 1, argv, envp, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    snprintf(text, sizeof(text),
             "kafka.brokers = %s\n"
             "kafka.topics = " TOPIC "\n"
             "kafka.group_id = cw-test-batch\n"
             "kafka.batch_max = 100000\n"
             "kafka.batch_wait = 1ms\n"
             "%s",
             rd_kafka_mock_cluster_bootstraps(fx->mc), extra);
    if (cw_config_load_text(cfg, "test", text, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(cw_config_int(cfg, "kafka.batch_max"), 100000);
    assert_int_equal(cw_config_duration_ms(cfg, "kafka.batch_wait"), 1);
    return cfg;
}


static int
setup(void **state)
{
    fx_t             *fx;
    rd_kafka_conf_t  *conf;
    cw_config_t      *cfg;
    char              err[512];
    int64_t           deadline;

    cw_log_init("test_wlib_kafka", CW_LOG_WARN);
    fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    *state = fx;

    /* the cluster's own handle never connects anywhere: no CONFWARN */
    conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "log_level", "3", err,
                                       sizeof(err)), RD_KAFKA_CONF_OK);
    fx->mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(fx->mrk);
    fx->mc = rd_kafka_mock_cluster_new(fx->mrk, 1);
    assert_non_null(fx->mc);
    assert_int_equal(rd_kafka_mock_topic_create(fx->mc, TOPIC, 1, 1),
                     RD_KAFKA_RESP_ERR_NO_ERROR);

    cfg = new_config(fx, "");
    fx->prod = cw_kafka_producer_new(cfg, err, sizeof(err));
    cw_config_free(cfg);
    if (fx->prod == NULL) {
        fail_msg("%s", err);
    }

    /* No on_assign: offsets stay unset, so with nothing committed
     * auto.offset.reset=earliest starts at offset 0. A short fetch wait
     * (a consumer property, so not given to the producer): the mock
     * answers a fetch that finds nothing only after that wait, 500 ms by
     * default, which would hold up each case. */
    cfg = new_config(fx, "kafka.fetch.wait.max.ms = 50\n");
    fx->cons = cw_kafka_consumer_new(cfg, &(cw_kafka_handlers_t) {
                                         NULL, NULL, on_batch, fx },
                                     err, sizeof(err));
    cw_config_free(cfg);
    if (fx->cons == NULL) {
        fail_msg("%s", err);
    }
    fx->q = rd_kafka_queue_get_consumer(cw_kafka_consumer_handle(fx->cons));
    assert_non_null(fx->q);

    /* One message, polled for until the group has assigned the partition
     * (the mock holds a first join for 3 s) and it has been delivered. */
    produce(fx, 1);
    deadline = cw_now_ms() + 30000;
    while (fx->total == 0 && cw_now_ms() < deadline) {
        assert_true(cw_kafka_consumer_poll(fx->cons, 200) >= 0);
    }
    assert_int_equal(fx->total, 1);
    assert_int_equal(fx->bad, 0);
    return 0;
}


static int
teardown(void **state)
{
    fx_t  *fx = *state;

    if (fx == NULL) {
        return 0;
    }
    if (fx->q != NULL) {
        rd_kafka_queue_destroy(fx->q);
    }
    cw_kafka_consumer_close(fx->cons);
    cw_kafka_producer_close(fx->prod, 5000);
    if (fx->mc != NULL) {
        rd_kafka_mock_cluster_destroy(fx->mc);
    }
    if (fx->mrk != NULL) {
        rd_kafka_destroy(fx->mrk);
    }
    free(fx);
    return 0;
}


/* Everything fetched goes into one batch, not what 1 ms allows. */
static void
test_fetched_in_one_batch(void **state)
{
    fx_t     *fx = *state;
    size_t    batches;
    int64_t   total;
    int       n;

    drain(fx);
    batches = fx->batches;
    total = fx->total;
    produce(fx, MANY);
    await_fetched(fx, MANY);

    n = cw_kafka_consumer_poll(fx->cons, 5000);
    assert_int_equal(fx->batches, batches + 1);
    if (fx->last != MANY) {
        fail_msg("the batch took %zu of the %d messages fetched", fx->last,
                 MANY);
    }
    assert_int_equal(n, MANY);
    assert_int_equal(fx->total, total + MANY);
    assert_int_equal(fx->total, fx->produced);
    assert_int_equal(fx->next, fx->produced);
    assert_int_equal(fx->bad, 0);
}


/* A started batch with nothing more to come is handed over after about
 * batch_wait (1 ms), not after the poll's 5 s timeout. */
static void
test_no_more_after_batch_wait(void **state)
{
    fx_t     *fx = *state;
    size_t    batches;
    int64_t   total, t0, took;
    int       n;

    drain(fx);
    batches = fx->batches;
    total = fx->total;
    produce(fx, FEW);
    await_fetched(fx, FEW);

    t0 = cw_now_ms();
    n = cw_kafka_consumer_poll(fx->cons, 5000);
    took = cw_now_ms() - t0;
    assert_int_equal(n, FEW);
    assert_int_equal(fx->batches, batches + 1);
    assert_int_equal(fx->last, FEW);
    assert_int_equal(fx->total, total + FEW);
    assert_int_equal(fx->total, fx->produced);
    assert_int_equal(fx->next, fx->produced);
    assert_int_equal(fx->bad, 0);
    if (took >= 2500) {
        fail_msg("the poll took %lld ms", (long long) took);
    }
}


typedef struct {
    int      calls;
    int32_t  partition;
    int64_t  lag;
    char     topic[64];
} lag_seen_t;


static void
on_lag(void *ud, const char *topic, int32_t partition, int64_t lag)
{
    lag_seen_t  *s = ud;

    s->calls++;
    s->partition = partition;
    s->lag = lag;
    snprintf(s->topic, sizeof(s->topic), "%s", topic);
}


/* The lag of the assigned partition: the messages produced and not yet
 * handed to the application; none once it has them all. */
static void
test_lag(void **state)
{
    fx_t        *fx = *state;
    lag_seen_t   s;

    drain(fx);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cw_kafka_consumer_lag(fx->cons, 5000, on_lag, &s), 1);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.topic, TOPIC);
    assert_int_equal(s.partition, 0);
    assert_int_equal(s.lag, 0);

    produce(fx, FEW);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cw_kafka_consumer_lag(fx->cons, 5000, on_lag, &s), 1);
    assert_int_equal(s.lag, FEW);

    drain(fx);
    assert_int_equal(cw_kafka_consumer_lag(fx->cons, 5000, on_lag, &s), 1);
    assert_int_equal(s.lag, 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetched_in_one_batch),
        cmocka_unit_test(test_no_more_after_batch_wait),
        cmocka_unit_test(test_lag),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
