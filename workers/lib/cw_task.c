/*
 * cw_task: see cw_task.h.
 */

#include <pthread.h>
#include <stdlib.h>

#include "cw_task.h"

struct cw_task_s {
    pthread_t         thread;
    pthread_mutex_t   lock;
    pthread_cond_t    cond;
    int               stop;
    cw_task_fn        fn;
    void             *arg;
    int               pending;     /* handed over, not yet waited for */
    int               done;        /* fn has returned */
};


static void *
cw_task_main(void *p)
{
    cw_task_t  *t = p;

    pthread_mutex_lock(&t->lock);

    for ( ;; ) {
        while (!t->stop && (!t->pending || t->done)) {
            pthread_cond_wait(&t->cond, &t->lock);
        }
        if (t->stop) {
            break;
        }

        pthread_mutex_unlock(&t->lock);
        t->fn(t->arg);
        pthread_mutex_lock(&t->lock);

        t->done = 1;
        pthread_cond_broadcast(&t->cond);
    }

    pthread_mutex_unlock(&t->lock);

    return NULL;
}


cw_task_t *
cw_task_start(void)
{
    cw_task_t  *t;

    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }

    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);

    if (pthread_create(&t->thread, NULL, cw_task_main, t) != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
    }

    return t;
}


int
cw_task_run(cw_task_t *t, cw_task_fn fn, void *arg)
{
    if (t->pending) {
        return -1;
    }

    pthread_mutex_lock(&t->lock);
    t->fn = fn;
    t->arg = arg;
    t->pending = 1;
    t->done = 0;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);

    return 0;
}


int
cw_task_pending(const cw_task_t *t)
{
    return t->pending;
}


void
cw_task_wait(cw_task_t *t)
{
    if (!t->pending) {
        return;
    }

    pthread_mutex_lock(&t->lock);
    while (!t->done) {
        pthread_cond_wait(&t->cond, &t->lock);
    }
    t->pending = 0;
    pthread_mutex_unlock(&t->lock);
}


void
cw_task_stop(cw_task_t *t)
{
    if (t == NULL) {
        return;
    }

    cw_task_wait(t);

    pthread_mutex_lock(&t->lock);
    t->stop = 1;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);

    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
