/*
 * cw_pg_side: see cw_pg_side.h.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "cw_pg_side.h"

struct cw_pg_side_s {
    cw_pg_t          *pg;
    pthread_t         thread;
    pthread_mutex_t   lock;
    pthread_cond_t    cond;
    int               stop;

    /* The run: handed over (pending), then done with its outcome. */
    cw_pg_txn_fn      fn;
    void             *ud;
    int               pending;
    int               done;
    cw_pg_class_t     cls;
    char              err[512];
};


static void *
cw_pg_side_main(void *arg)
{
    cw_pg_side_t   *s = arg;
    cw_pg_class_t   cls;
    char            err[512];

    pthread_mutex_lock(&s->lock);

    for ( ;; ) {
        while (!s->stop && (!s->pending || s->done)) {
            pthread_cond_wait(&s->cond, &s->lock);
        }
        if (s->stop) {
            break;
        }

        pthread_mutex_unlock(&s->lock);

        err[0] = '\0';
        cls = cw_pg_txn(s->pg, s->fn, s->ud, 1, err, sizeof(err));

        pthread_mutex_lock(&s->lock);
        s->cls = cls;
        snprintf(s->err, sizeof(s->err), "%s", err);
        s->done = 1;
        pthread_cond_broadcast(&s->cond);
    }

    pthread_mutex_unlock(&s->lock);

    return NULL;
}


cw_pg_side_t *
cw_pg_side_start(cw_pg_t *pg)
{
    cw_pg_side_t  *s;

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        cw_pg_free(pg);
        return NULL;
    }

    s->pg = pg;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);

    if (pthread_create(&s->thread, NULL, cw_pg_side_main, s) != 0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        cw_pg_free(pg);
        free(s);
        return NULL;
    }

    return s;
}


int
cw_pg_side_run(cw_pg_side_t *s, cw_pg_txn_fn fn, void *ud)
{
    pthread_mutex_lock(&s->lock);

    if (s->pending) {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }

    s->fn = fn;
    s->ud = ud;
    s->pending = 1;
    s->done = 0;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);

    return 0;
}


int
cw_pg_side_pending(const cw_pg_side_t *s)
{
    return s->pending;
}


cw_pg_class_t
cw_pg_side_wait(cw_pg_side_t *s, char *err, size_t errlen)
{
    cw_pg_class_t  cls = CW_PG_OK;

    pthread_mutex_lock(&s->lock);

    if (s->pending) {
        while (!s->done) {
            pthread_cond_wait(&s->cond, &s->lock);
        }
        cls = s->cls;
        if (cls != CW_PG_OK) {
            snprintf(err, errlen, "%s", s->err);
        }
        s->pending = 0;
    }

    pthread_mutex_unlock(&s->lock);

    return cls;
}


void
cw_pg_side_stop(cw_pg_side_t *s)
{
    char  ignore[16];

    if (s == NULL) {
        return;
    }

    cw_pg_side_wait(s, ignore, sizeof(ignore));

    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);

    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    cw_pg_free(s->pg);
    free(s);
}
