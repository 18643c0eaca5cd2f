/*
 * cw_task: a run happens on another thread, concurrently with its owner;
 * pending until waited for; one run at a time; runs follow one another;
 * stop waits for a run in progress.
 */

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "cw_task.h"

typedef struct {
    pthread_mutex_t   lock;
    pthread_cond_t    cond;
    int               release;     /* the owner lets the run finish */
    int               runs;
    pthread_t         ran_on;
} probe_t;


static void
probe_run(void *arg)
{
    probe_t  *p = arg;

    pthread_mutex_lock(&p->lock);
    while (!p->release) {
        pthread_cond_wait(&p->cond, &p->lock);
    }
    p->runs++;
    p->ran_on = pthread_self();
    pthread_mutex_unlock(&p->lock);
}


static void
probe_init(probe_t *p)
{
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->release = 0;
    p->runs = 0;
}


static void
probe_release(probe_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->release = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}


static void
test_run_wait(void **state)
{
    probe_t     p;
    cw_task_t  *t;

    probe_init(&p);
    t = cw_task_start();
    assert_non_null(t);

    assert_int_equal(cw_task_pending(t), 0);
    cw_task_wait(t);                        /* nothing pending: returns */

    /* The run blocks until released: the owner goes on meanwhile, and a
     * second run is refused while the first is pending. */
    assert_int_equal(cw_task_run(t, probe_run, &p), 0);
    assert_int_equal(cw_task_pending(t), 1);
    assert_int_equal(cw_task_run(t, probe_run, &p), -1);

    probe_release(&p);
    cw_task_wait(t);
    assert_int_equal(cw_task_pending(t), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(pthread_equal(p.ran_on, pthread_self()), 0);

    /* Runs follow one another on the same thread. */
    assert_int_equal(cw_task_run(t, probe_run, &p), 0);
    cw_task_wait(t);
    assert_int_equal(p.runs, 2);

    cw_task_stop(t);
    cw_task_stop(NULL);
}


static void *
release_later(void *arg)
{
    struct timespec  ts = { 0, 20 * 1000 * 1000 };

    nanosleep(&ts, NULL);
    probe_release(arg);

    return NULL;
}


static void
test_stop_waits(void **state)
{
    probe_t     p;
    pthread_t   th;
    cw_task_t  *t;

    probe_init(&p);
    t = cw_task_start();
    assert_non_null(t);

    assert_int_equal(cw_task_run(t, probe_run, &p), 0);
    assert_int_equal(pthread_create(&th, NULL, release_later, &p), 0);

    cw_task_stop(t);                        /* returns once the run has */
    assert_int_equal(p.runs, 1);

    pthread_join(th, NULL);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_wait),
        cmocka_unit_test(test_stop_waits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
