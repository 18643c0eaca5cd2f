/*
 * cw_task: a thread of its own that runs one function at a time for its
 * owner, who goes on meanwhile and later waits for it.
 *
 *   t = cw_task_start();
 *   cw_task_run(t, fn, arg);       returns at once; fn(arg) runs there
 *   ...
 *   cw_task_wait(t);               fn has returned
 *   cw_task_stop(t);
 *
 * Runs, waits and stops come from one owning thread; arg, and whatever fn
 * reads through it, must stay valid until cw_task_wait returns.
 */

#ifndef CW_TASK_H
#define CW_TASK_H

typedef struct cw_task_s  cw_task_t;

typedef void (*cw_task_fn)(void *arg);

/* NULL if the thread cannot be started. */
cw_task_t *cw_task_start(void);

/* Hands fn(arg) to the thread. Returns 0, or -1 if a run is pending. */
int cw_task_run(cw_task_t *t, cw_task_fn fn, void *arg);

/* Whether a run was handed over and not yet waited for. */
int cw_task_pending(const cw_task_t *t);

/* Waits for the pending run to return (at once without one). */
void cw_task_wait(cw_task_t *t);

/* Waits for a pending run, stops the thread and frees it; NULL is
 * ignored. */
void cw_task_stop(cw_task_t *t);

#endif /* CW_TASK_H */
