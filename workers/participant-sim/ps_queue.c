/*
 * ps_queue: a delay queue (a binary min-heap by due time) and its
 * threads. The condition variables run on the monotonic clock, as the
 * due times do.
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cw_log.h"
#include "cw_time.h"
#include "ps_queue.h"

struct ps_queue_s {
    pthread_mutex_t   lock;
    pthread_cond_t    work;         /* a job came, or stop */
    pthread_cond_t    space;        /* a job left */
    ps_job_t        **heap;
    size_t            n;
    size_t            max;
    int               stop;
    int               nthreads;
    pthread_t        *threads;
    ps_job_run_pt     run;
    void             *ud;
};


ps_job_t *
ps_job_new(ps_answer_t *answer, const ps_command_t *c)
{
    ps_job_t  *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        return NULL;
    }
    j->answer = answer;
    j->type = c->type;
    j->order_id = strdup(c->order_id);
    j->idempotency_key = strdup(c->idempotency_key);
    memcpy(j->traceparent, c->traceparent, sizeof(j->traceparent));
    if (j->order_id == NULL || j->idempotency_key == NULL) {
        j->answer = NULL;
        ps_job_free(j);
        return NULL;
    }

    return j;
}


void
ps_job_free(ps_job_t *j)
{
    if (j == NULL) {
        return;
    }
    ps_answer_free(j->answer);
    free(j->order_id);
    free(j->idempotency_key);
    free(j);
}


static void
ps_heap_push(ps_queue_t *q, ps_job_t *j)
{
    size_t     i = q->n++, parent;
    ps_job_t  *t;

    q->heap[i] = j;
    while (i > 0) {
        parent = (i - 1) / 2;
        if (q->heap[parent]->due_ms <= q->heap[i]->due_ms) {
            break;
        }
        t = q->heap[parent];
        q->heap[parent] = q->heap[i];
        q->heap[i] = t;
        i = parent;
    }
}


static ps_job_t *
ps_heap_pop(ps_queue_t *q)
{
    size_t     i = 0, l, m;
    ps_job_t  *top = q->heap[0], *t;

    q->heap[0] = q->heap[--q->n];
    for ( ;; ) {
        l = 2 * i + 1;
        m = i;
        if (l < q->n && q->heap[l]->due_ms < q->heap[m]->due_ms) {
            m = l;
        }
        if (l + 1 < q->n && q->heap[l + 1]->due_ms < q->heap[m]->due_ms) {
            m = l + 1;
        }
        if (m == i) {
            break;
        }
        t = q->heap[m];
        q->heap[m] = q->heap[i];
        q->heap[i] = t;
        i = m;
    }

    return top;
}


static void
ps_deadline(struct timespec *ts, int64_t ms_from_now)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms_from_now / 1000;
    ts->tv_nsec += (ms_from_now % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}


/* Takes the earliest job once due; NULL when stopping. */
static ps_job_t *
ps_queue_take(ps_queue_t *q)
{
    int64_t           wait;
    ps_job_t         *j;
    struct timespec   ts;

    pthread_mutex_lock(&q->lock);
    for ( ;; ) {
        if (q->stop) {
            j = NULL;
            break;
        }
        if (q->n == 0) {
            pthread_cond_wait(&q->work, &q->lock);
            continue;
        }
        wait = q->heap[0]->due_ms - cw_now_ms();
        if (wait <= 0) {
            j = ps_heap_pop(q);
            pthread_cond_signal(&q->space);
            break;
        }
        ps_deadline(&ts, wait);
        pthread_cond_timedwait(&q->work, &q->lock, &ts);
    }
    pthread_mutex_unlock(&q->lock);

    return j;
}


static void *
ps_queue_thread(void *arg)
{
    int64_t      again;
    ps_job_t    *j;
    ps_queue_t  *q = arg;

    while ((j = ps_queue_take(q)) != NULL) {
        again = q->run(q->ud, j);
        if (again < 0) {
            ps_job_free(j);
            continue;
        }

        /* a retry goes back, unless the consumer filled the heap since
         * the job was taken out of it */
        j->due_ms = cw_now_ms() + again;
        pthread_mutex_lock(&q->lock);
        if (q->n < q->max) {
            ps_heap_push(q, j);
            j = NULL;
            pthread_cond_signal(&q->work);
        }
        pthread_mutex_unlock(&q->lock);
        if (j != NULL) {
            cw_log(CW_LOG_WARN, "queue full: a webhook to retry is dropped");
            ps_job_free(j);
        }
    }

    return NULL;
}


ps_queue_t *
ps_queue_start(int threads, size_t max, ps_job_run_pt run, void *ud)
{
    int                 i;
    ps_queue_t         *q = calloc(1, sizeof(*q));
    pthread_condattr_t  ca;

    if (q == NULL) {
        return NULL;
    }
    q->heap = calloc(max, sizeof(*q->heap));
    q->threads = calloc((size_t) threads, sizeof(*q->threads));
    if (q->heap == NULL || q->threads == NULL) {
        free(q->heap);
        free(q->threads);
        free(q);
        return NULL;
    }
    q->max = max;
    q->run = run;
    q->ud = ud;

    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->work, &ca);
    pthread_cond_init(&q->space, &ca);
    pthread_condattr_destroy(&ca);

    for (i = 0; i < threads; i++) {
        if (pthread_create(&q->threads[i], NULL, ps_queue_thread, q) != 0) {
            cw_log(CW_LOG_ERROR, "cannot start a delivery thread");
            ps_queue_stop(q);
            return NULL;
        }
        q->nthreads++;
    }

    return q;
}


int
ps_queue_push(ps_queue_t *q, ps_job_t *j, volatile int *stop)
{
    struct timespec  ts;

    pthread_mutex_lock(&q->lock);
    while (q->n == q->max && !*stop) {
        ps_deadline(&ts, 100);
        pthread_cond_timedwait(&q->space, &q->lock, &ts);
    }
    if (*stop) {
        pthread_mutex_unlock(&q->lock);
        ps_job_free(j);
        return -1;
    }
    ps_heap_push(q, j);
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->lock);

    return 0;
}


size_t
ps_queue_len(ps_queue_t *q)
{
    size_t  n;

    pthread_mutex_lock(&q->lock);
    n = q->n;
    pthread_mutex_unlock(&q->lock);

    return n;
}


size_t
ps_queue_stop(ps_queue_t *q)
{
    int     i;
    size_t  dropped;

    if (q == NULL) {
        return 0;
    }

    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->lock);

    for (i = 0; i < q->nthreads; i++) {
        pthread_join(q->threads[i], NULL);
    }

    dropped = q->n;
    while (q->n > 0) {
        ps_job_free(q->heap[--q->n]);
    }

    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->space);
    pthread_mutex_destroy(&q->lock);
    free(q->heap);
    free(q->threads);
    free(q);

    return dropped;
}
