/*
 * ps_queue: the answers waiting for their time, and the threads that
 * deliver them.
 *
 * A min-heap of jobs by due time under one mutex; each of n threads takes
 * the earliest job once it is due and runs it (outside the lock), so a
 * slow or failing webhook holds one thread, never the consumer, and a
 * job to retry goes back into the heap with its next time instead of
 * sleeping on a thread.
 *
 * Use:
 *
 *   q = ps_queue_start(4, 100000, run, ud);
 *   job = ps_job_new(answer, ...); job->due_ms = cw_now_ms() + latency;
 *   ps_queue_push(q, job, stop);    the queue owns the job now
 *   ...
 *   dropped = ps_queue_stop(q);     threads joined, jobs not due freed
 */

#ifndef PS_QUEUE_H
#define PS_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "cw_retry.h"
#include "ps.h"

typedef struct ps_queue_s  ps_queue_t;

typedef struct {
    int64_t        due_ms;          /* monotonic */
    ps_answer_t   *answer;          /* owned */
    ps_type_e      type;
    char          *order_id;
    char          *idempotency_key;
    char           traceparent[64];
    int            tries;           /* deliveries tried so far */
    cw_backoff_t   backoff;         /* the delivery thread's, set at the
                                       first try */
} ps_job_t;

/* Runs a due job on a queue thread: returns -1 when the job is done
 * (it is freed), else the delay in ms before it runs again. */
typedef int64_t (*ps_job_run_pt)(void *ud, ps_job_t *job);

ps_job_t *ps_job_new(ps_answer_t *answer, const ps_command_t *c);
void ps_job_free(ps_job_t *job);

ps_queue_t *ps_queue_start(int threads, size_t max, ps_job_run_pt run,
    void *ud);

/* Waits while max jobs are queued (the consumer slows down), until
 * *stop; returns -1 (the job is freed) when stopped, else 0. */
int ps_queue_push(ps_queue_t *q, ps_job_t *job, volatile int *stop);

size_t ps_queue_len(ps_queue_t *q);

/* Stops the threads once their current job is done; returns how many
 * queued jobs were not run (and frees them). */
size_t ps_queue_stop(ps_queue_t *q);

#endif /* PS_QUEUE_H */
