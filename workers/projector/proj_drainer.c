/*
 * proj_drainer: the publisher and read-model writer threads.
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "cw_buf.h"
#include "cw_log.h"
#include "cw_retry.h"
#include "cw_time.h"
#include "proj_drainer.h"

/* The read-model keys row of a batch just committed, handed over. */
typedef struct proj_handed_s  proj_handed_t;

struct proj_handed_s {
    proj_handed_t         *next;
    long long              id;
    char                  *json;
};

struct proj_drainer_s {
    const char            *name;
    proj_outbox_t         *outbox;     /* the caller's */
    proj_readmodel_t      *rm;         /* the caller's: writes keys rows */
    pthread_t              thread;
    pthread_mutex_t        lock;
    pthread_cond_t         cond;
    int                    kick;
    int                    stop;
    int                    final;      /* drain once more before leaving */
    proj_handed_t         *head;       /* handed over, not yet written */
    proj_handed_t        **tail;
};


/* Drains the outbox a few pages at a time; on failure waits out a
 * backoff before the next try, while consumption goes on. Returns 1 when
 * rows may be left. */
static int
proj_drain(proj_outbox_t *outbox, cw_backoff_t *bo, int64_t *next_try)
{
    int      i, n;
    char     err[512];

    if (cw_now_ms() < *next_try) {
        return 0;
    }

    for (i = 0; i < 8; i++) {
        n = proj_outbox_drain(outbox, err, sizeof(err));

        if (n < 0) {
            int64_t  delay = cw_backoff_next(bo);

            cw_log(CW_LOG_WARN, "outbox not drained, retry in %lld ms: %s",
                   (long long) delay, err);
            *next_try = cw_now_ms() + delay;
            return 0;
        }

        cw_backoff_reset(bo);

        if (n == 0) {
            return 0;
        }
    }

    return 1;
}


/* One write of handed-over keys rows: what it wrote. */
typedef struct {
    proj_drainer_t        *d;
    proj_handed_t         *q;
    int                    rows;
    long long              values;
} proj_keys_work_t;


static int
proj_id_cmp(const void *a, const void *b)
{
    long long  x = *(const long long *) a, y = *(const long long *) b;

    return (x > y) - (x < y);
}


/* The values of the rows taken (ids ascending); the others were taken by
 * a drain, another projector's or this one's. */
static int
proj_keys_work(void *ud, const long long *ids, size_t n, char *err,
    size_t errlen)
{
    int                wrote;
    proj_handed_t     *k;
    proj_keys_work_t  *w = ud;

    w->rows = 0;
    w->values = 0;

    for (k = w->q; k != NULL; k = k->next) {
        if (bsearch(&k->id, ids, n, sizeof(*ids), proj_id_cmp) == NULL) {
            continue;
        }

        wrote = proj_readmodel_write_keys(w->d->rm, k->json, err, errlen);
        if (wrote < 0) {
            return -1;
        }

        w->values += wrote;
        w->rows++;
    }

    return 0;
}


/* Writes the values of handed-over keys rows and deletes the rows, in one
 * transaction that takes them first (proj_outbox_handed). A failure
 * leaves them to the drain, after a backoff: returns -1 then. */
static int
proj_write_keys(proj_drainer_t *d, proj_handed_t *q, cw_backoff_t *bo,
    int64_t *next_try)
{
    int                rc = 0, n = 0;
    int64_t            t0 = cw_now_ms();
    char               err[512];
    cw_buf_t           ids;
    proj_handed_t     *k;
    proj_keys_work_t   w = { d, q, 0, 0 };

    cw_buf_init(&ids);
    cw_buf_putc(&ids, '{');
    for (k = q; k != NULL; k = k->next) {
        cw_buf_printf(&ids, "%s%lld", ids.len > 1 ? "," : "", k->id);
        n++;
    }
    cw_buf_putc(&ids, '}');

    if (cw_now_ms() >= *next_try) {
        if (ids.oom) {
            snprintf(err, sizeof(err), "out of memory");
            rc = -1;
        } else {
            rc = proj_outbox_handed(d->outbox, ids.data, proj_keys_work, &w,
                                    err, sizeof(err)) < 0;
        }
    }

    cw_buf_free(&ids);

    while (q != NULL) {
        k = q;
        q = q->next;
        free(k->json);
        free(k);
    }

    if (rc == 0 && cw_log_enabled(CW_LOG_DEBUG)) {
        cw_field_t  f[] = { CW_FINT("handed", n),
                            CW_FINT("batches", w.rows),
                            CW_FINT("values", w.values),
                            CW_FINT("write_ms", cw_now_ms() - t0) };

        cw_log_kv(CW_LOG_DEBUG, f, 4, "read model written");
    }

    if (rc != 0) {
        int64_t  delay = cw_backoff_next(bo);

        cw_log(CW_LOG_WARN, "read model not written yet, retry in %lld ms: "
               "%s", (long long) delay, err);
        *next_try = cw_now_ms() + delay;
    }

    return rc != 0 ? -1 : 0;
}


/* With nothing to do (no rows known to be left, no kick, no stop, nothing
 * handed over), waits up to 100 ms for one. Called with the lock held;
 * returns 1 if the wait timed out. */
static int
proj_drainer_wait(proj_drainer_t *d, int more)
{
    struct timespec  until;

    if (more || d->kick || d->stop || d->head != NULL) {
        return 0;
    }

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 100 * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }

    while (!d->kick && !d->stop && d->head == NULL) {
        if (pthread_cond_timedwait(&d->cond, &d->lock, &until) == ETIMEDOUT) {
            return 1;
        }
    }

    return 0;
}


static void *
proj_drainer_run(void *arg)
{
    int                stop, final, more = 1, timed_out, handed, left = 0;
    int64_t            next_try = 0;
    cw_backoff_t       bo;
    proj_handed_t     *q;
    proj_drainer_t    *d = arg;

    cw_backoff_init(&bo, 100, 5000, 0.5, 0, 0);

    for ( ;; ) {
        pthread_mutex_lock(&d->lock);
        timed_out = proj_drainer_wait(d, more);
        q = d->head;
        d->head = NULL;
        d->tail = &d->head;
        d->kick = 0;
        stop = d->stop;
        final = d->final;
        pthread_mutex_unlock(&d->lock);

        /* Batches this process just committed: written at once, no scan
         * of the outbox. */
        handed = q != NULL;
        if (handed && proj_write_keys(d, q, &bo, &next_try) != 0) {
            left = 1;
        }

        if (stop) {
            if (final) {
                next_try = 0;
                while (proj_drain(d->outbox, &bo, &next_try)) {
                    /* do what is left */
                }
            }
            return NULL;
        }

        /* The drain: rows of the drainer's kind on every kick (publisher)
         * or, for handed-over rows, when idle and after a failed write,
         * until a drain found nothing left (rows of a crash or of the
         * failure). */
        if (!handed || timed_out || more || left) {
            more = proj_drain(d->outbox, &bo, &next_try);
            left = more || next_try > cw_now_ms();
        }
    }
}


proj_drainer_t *
proj_drainer_start(const char *name, proj_outbox_t *outbox,
    proj_readmodel_t *rm)
{
    proj_drainer_t  *d;

    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        cw_log(CW_LOG_ERROR, "cannot start the %s thread", name);
        return NULL;
    }

    d->name = name;
    d->outbox = outbox;
    d->rm = rm;
    d->tail = &d->head;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);

    if (pthread_create(&d->thread, NULL, proj_drainer_run, d) != 0) {
        cw_log(CW_LOG_ERROR, "cannot start the %s thread", name);
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return NULL;
    }

    return d;
}


/* Raises kick, and with stop the stop and final flags, and wakes the
 * thread. */
static void
proj_drainer_signal(proj_drainer_t *d, int stop, int final)
{
    pthread_mutex_lock(&d->lock);
    d->kick = 1;
    if (stop) {
        d->stop = 1;
        d->final = final;
    }
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}


void
proj_drainer_kick(proj_drainer_t *d)
{
    proj_drainer_signal(d, 0, 0);
}


void
proj_drainer_push(proj_drainer_t *d, long long id, char *json)
{
    proj_handed_t  *k;

    k = malloc(sizeof(*k));
    if (k == NULL) {
        free(json);                 /* the row stays for the drain */
        return;
    }

    k->next = NULL;
    k->id = id;
    k->json = json;

    pthread_mutex_lock(&d->lock);
    *d->tail = k;
    d->tail = &k->next;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}


void
proj_drainer_stop(proj_drainer_t *d, int final)
{
    if (d == NULL) {
        return;
    }

    proj_drainer_signal(d, 1, final);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
