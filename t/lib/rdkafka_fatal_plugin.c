/*
 * A librdkafka plugin for t/75-webhook-recovery.t: raises a fatal error in
 * a producer on demand, through librdkafka's own rd_kafka_test_fatal_error()
 * (what an idempotent producer raises when its state is lost, e.g. an
 * out-of-order sequence).  Loaded with
 *
 *     commerce_kafka_property plugin.library.paths /path/fatal_plugin.so;
 *
 * each producer gets a thread that watches the file named by the
 * environment variable COMMERCE_TEST_FATAL (nginx: env COMMERCE_TEST_FATAL=
 * ...;): when the file appears, the thread deletes it and raises the error.
 *
 *     gcc -shared -fPIC -o fatal_plugin.so rdkafka_fatal_plugin.c \
 *         -lrdkafka -lpthread
 */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>


typedef struct {
    rd_kafka_t        *rk;
    pthread_t          tid;
    volatile int       stop;
} fp_watch_t;


rd_kafka_resp_err_t conf_init(rd_kafka_conf_t *conf, void **plug_opaquep,
    char *errstr, size_t errstr_size);


static void *
fp_run(void *arg)
{
    fp_watch_t  *fw = arg;
    const char  *path;

    path = getenv("COMMERCE_TEST_FATAL");

    while (!fw->stop) {
        if (path != NULL && unlink(path) == 0) {
            rd_kafka_test_fatal_error(fw->rk,
                RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                "injected by t/75");
        }

        usleep(20000);
    }

    return NULL;
}


static rd_kafka_resp_err_t
fp_on_destroy(rd_kafka_t *rk, void *ic_opaque)
{
    fp_watch_t  *fw = ic_opaque;

    fw->stop = 1;
    pthread_join(fw->tid, NULL);
    free(fw);

    return RD_KAFKA_RESP_ERR_NO_ERROR;
}


static rd_kafka_resp_err_t
fp_on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *ic_opaque,
    char *errstr, size_t errstr_size)
{
    fp_watch_t  *fw;

    fw = calloc(1, sizeof(fp_watch_t));
    if (fw == NULL) {
        return RD_KAFKA_RESP_ERR__FAIL;
    }

    fw->rk = rk;

    if (pthread_create(&fw->tid, NULL, fp_run, fw) != 0) {
        free(fw);
        return RD_KAFKA_RESP_ERR__FAIL;
    }

    return rd_kafka_interceptor_add_on_destroy(rk, "fatal_plugin",
                                               fp_on_destroy, fw);
}


/* a copy of the configuration (each nginx worker's) keeps the plugin */
static rd_kafka_resp_err_t
fp_on_conf_dup(rd_kafka_conf_t *new_conf, const rd_kafka_conf_t *old_conf,
    size_t filter_cnt, const char **filter, void *ic_opaque)
{
    return conf_init(new_conf, NULL, NULL, 0);
}


rd_kafka_resp_err_t
conf_init(rd_kafka_conf_t *conf, void **plug_opaquep, char *errstr,
    size_t errstr_size)
{
    (void) rd_kafka_conf_interceptor_add_on_new(conf, "fatal_plugin",
                                                fp_on_new, NULL);
    (void) rd_kafka_conf_interceptor_add_on_conf_dup(conf, "fatal_plugin",
                                                     fp_on_conf_dup, NULL);

    return RD_KAFKA_RESP_ERR_NO_ERROR;
}
