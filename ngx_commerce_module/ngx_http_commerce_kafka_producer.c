/*
 * The per-worker producer of ngx_http_commerce_kafka_module (configuration
 * and directives: ngx_http_commerce_kafka.c).
 *
 * The producer is created in each worker process (librdkafka threads do
 * not survive fork(), so never in the master), with enable.idempotence=true
 * and acks=all.  librdkafka writes a byte to a non-blocking pipe when its
 * main queue becomes non-empty; the pipe's read end is an nginx read event
 * whose handler serves delivery reports, errors and logs with
 * rd_kafka_poll(rk, 0), so nothing ever waits in the event loop.
 *
 * Each message's opaque is a heap context, never the request: the request
 * detaches from it in a pool cleanup, and a late delivery report then only
 * frees it.  Each message also holds a non-cancelable timer, so that a
 * gracefully exiting worker (reload) stays until every pending delivery is
 * resolved; exit_process flushes what is left, bounded by the flush
 * timeout, then destroys the producer.
 *
 * The timer first fires at commerce_kafka_delivery_timeout: the request is
 * told (NGX_AGAIN) and answers 503 at once, librdkafka's own report, whose
 * timeout scan lags while the brokers are unreachable, follows.  Every
 * report ends in ngx_http_commerce_kafka_ended() and every change of the
 * breaker in ngx_http_commerce_kafka_breaker_changed(): the places for
 * metrics.
 *
 * librdkafka's threads (a broker thread per broker, its main thread) run
 * in the worker process, on the worker's CPU (worker_cpu_affinity), and
 * each produce and each response wakes one of them.  At the default
 * policy every such wakeup preempts the nginx thread; with SCHED_BATCH
 * (commerce_kafka_thread_scheduling, the default) they wait until it
 * sleeps in epoll_wait() or its time slice ends, and take more messages
 * per wakeup: fewer context switches, larger batches, less CPU per
 * message (scripts/bench/webhook/README.md has the figures).  They get
 * the policy by inheritance: the nginx thread is SCHED_BATCH while
 * rd_kafka_new() starts them.  (An on_thread_start interceptor could set
 * it from inside, but with one on the configuration librdkafka 2.0.2
 * crashed in rd_kafka_conf_destroy() after a failed rd_kafka_new(): t/75
 * under ASan.)
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <pthread.h>

#include <librdkafka/rdkafka.h>

#include "commerce_breaker.h"

#include "ngx_http_commerce_health.h"
#include "ngx_http_commerce_kafka.h"
#include "ngx_http_commerce_kafka_producer.h"
#include "ngx_http_commerce_metrics.h"


/*
 * A delivery report is due after message.timeout.ms, but librdkafka scans
 * for timed out messages from its broker threads, which lag while the
 * brokers are unreachable (seen: 3 s with a 5 s timeout).  The request has
 * had its 503 by then; this is how long after that the report is awaited
 * before the request is let go.
 */
#define NGX_HTTP_COMMERCE_KAFKA_REPORT_MARGIN  5000

/* the error of a message refused before the breaker was asked (size) */
#define NGX_HTTP_COMMERCE_KAFKA_REFUSED  RD_KAFKA_RESP_ERR__INVALID_ARG

/* re-creation of a producer: first delay, doubling up to the last */
#define NGX_HTTP_COMMERCE_KAFKA_CREATE_MIN     250
#define NGX_HTTP_COMMERCE_KAFKA_CREATE_MAX     10000


typedef struct {
    ngx_http_request_t                   *r;       /* NULL once detached */
    ngx_pool_cleanup_t                   *cln;
    ngx_http_commerce_kafka_handler_pt    handler;
    void                                 *data;
    ngx_event_t                           timer;
    ngx_queue_t                           queue;   /* worker's pending */
    ngx_msec_t                            start;
    unsigned                              overdue:1;
} ngx_http_commerce_kafka_msg_t;


typedef struct {
    rd_kafka_t                           *rk;
    rd_kafka_queue_t                     *mainq;
    rd_kafka_topic_t                    **topics;  /* kmcf->topics */
    ngx_str_t                            *names;
    ngx_uint_t                            ntopics;
    ngx_connection_t                     *c;       /* pipe read end */
    ngx_fd_t                              wfd;     /* pipe write end */
    ngx_queue_t                           pending;
    ngx_uint_t                            in_flight;
    ngx_msec_t                            report_timeout;
    ngx_log_t                            *log;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;
    commerce_breaker_t                    breaker;
    ngx_event_t                           create;  /* (re)creation timer */
    ngx_msec_t                            backoff;
    unsigned                              exiting:1;
    unsigned                              fatal:1;
} ngx_http_commerce_kafka_worker_t;


static ngx_int_t ngx_http_commerce_kafka_open_pipe(ngx_cycle_t *cycle);
static void ngx_http_commerce_kafka_create_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_commerce_kafka_create(ngx_cycle_t *cycle);
static void ngx_http_commerce_kafka_discard(ngx_msec_t flush);
static void ngx_http_commerce_kafka_destroy(rd_kafka_t *rk);
static void *ngx_http_commerce_kafka_destroy_thread(void *data);
static void ngx_http_commerce_kafka_close_pipe(void);
static void ngx_http_commerce_kafka_read_handler(ngx_event_t *rev);
static void ngx_http_commerce_kafka_serve(void);
static void ngx_http_commerce_kafka_dr(rd_kafka_t *rk,
    const rd_kafka_message_t *m, void *opaque);
static void ngx_http_commerce_kafka_log(const rd_kafka_t *rk, int level,
    const char *fac, const char *buf);
static void ngx_http_commerce_kafka_error(rd_kafka_t *rk, int err,
    const char *reason, void *opaque);
static ngx_uint_t ngx_http_commerce_kafka_result(rd_kafka_resp_err_t err);
static void ngx_http_commerce_kafka_ended(ngx_msec_t start, ngx_uint_t result,
    rd_kafka_resp_err_t err);
static ngx_uint_t ngx_http_commerce_kafka_allow(time_t *retry_after);
static void ngx_http_commerce_kafka_breaker_changed(
    commerce_breaker_state_e from, commerce_breaker_state_e to);
static void ngx_http_commerce_kafka_msg_timeout(ngx_event_t *ev);
static void ngx_http_commerce_kafka_msg_cleanup(void *data);
static void ngx_http_commerce_kafka_msg_free(
    ngx_http_commerce_kafka_msg_t *msg);
static rd_kafka_topic_t *ngx_http_commerce_kafka_topic(ngx_str_t *topic);
static ngx_int_t ngx_http_commerce_kafka_batch(ngx_log_t *log,
    int *policy, struct sched_param *saved);
static void ngx_http_commerce_kafka_unbatch(ngx_log_t *log, int policy,
    struct sched_param *saved);


/* one producer per worker process; wfd is set in init_process */
static ngx_http_commerce_kafka_worker_t  ngx_http_commerce_kafka_worker;


/*
 * Sets up this worker's delivery report pipe and creates its producer.  A
 * producer that cannot be created is not fatal: publishing locations
 * answer 503, the error log says why, and creation is tried again with
 * backoff.
 */
ngx_int_t
ngx_http_commerce_kafka_init_process(ngx_cycle_t *cycle)
{
    ngx_http_commerce_kafka_worker_t     *w;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    w = &ngx_http_commerce_kafka_worker;
    w->wfd = NGX_INVALID_FILE;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    kmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_commerce_kafka_module);
    if (kmcf == NULL || kmcf->brokers.len == 0) {
        return NGX_OK;
    }

    w->log = cycle->log;
    w->kmcf = kmcf;
    w->report_timeout = kmcf->delivery_timeout;
    w->backoff = NGX_HTTP_COMMERCE_KAFKA_CREATE_MIN;
    ngx_queue_init(&w->pending);

    w->create.handler = ngx_http_commerce_kafka_create_handler;
    w->create.data = w;
    w->create.log = cycle->log;
    w->create.cancelable = 1;

    if (ngx_http_commerce_kafka_open_pipe(cycle) != NGX_OK) {
        return NGX_OK;
    }

    ngx_http_commerce_kafka_create_handler(&w->create);

    return NGX_OK;
}


/* the pipe librdkafka writes to when its main queue becomes non-empty */
static ngx_int_t
ngx_http_commerce_kafka_open_pipe(ngx_cycle_t *cycle)
{
    int                                fds[2];
    ngx_connection_t                  *c;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    if (pipe2(fds, O_NONBLOCK|O_CLOEXEC) == -1) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_errno,
                      "commerce kafka: pipe2() failed, no producer");
        return NGX_ERROR;
    }

    c = ngx_get_connection(fds[0], cycle->log);
    if (c == NULL) {
        close(fds[0]);
        close(fds[1]);
        return NGX_ERROR;
    }

    c->data = w;
    c->read->handler = ngx_http_commerce_kafka_read_handler;
    c->read->log = cycle->log;
    c->write->log = cycle->log;

    w->c = c;
    w->wfd = fds[1];

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_http_commerce_kafka_close_pipe();
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * (Re)creates the producer: at worker start, after a failed creation, and
 * after a fatal error (the discarded producer's messages end as failures
 * first).  A failure plans the next try with exponential backoff.
 */
static void
ngx_http_commerce_kafka_create_handler(ngx_event_t *ev)
{
    ngx_http_commerce_kafka_worker_t  *w;

    w = ev->data;

    if (w->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (w->rk) {
        ngx_http_commerce_kafka_discard(0);
    }

    if (ngx_http_commerce_kafka_create((ngx_cycle_t *) ngx_cycle) == NGX_OK) {
        w->backoff = NGX_HTTP_COMMERCE_KAFKA_CREATE_MIN;
        return;
    }

    ngx_log_error(NGX_LOG_WARN, w->log, 0,
                  "commerce kafka: creating the producer again in %M ms",
                  w->backoff);

    ngx_add_timer(&w->create, w->backoff);

    w->backoff = ngx_min(w->backoff * 2, NGX_HTTP_COMMERCE_KAFKA_CREATE_MAX);
}


/* The producer, its topic handles, its queue hooked to the pipe. */
static ngx_int_t
ngx_http_commerce_kafka_create(ngx_cycle_t *cycle)
{
    int                                   policy;
    char                                  errstr[512];
    ngx_uint_t                            i, batch;
    struct sched_param                    saved;
    rd_kafka_t                           *rk;
    rd_kafka_conf_t                      *kconf;
    ngx_http_commerce_kafka_worker_t     *w;
    ngx_http_commerce_kafka_main_conf_t  *kmcf;

    w = &ngx_http_commerce_kafka_worker;
    kmcf = w->kmcf;

    kconf = rd_kafka_conf_dup(kmcf->conf);
    if (kconf == NULL) {
        return NGX_ERROR;
    }

    rd_kafka_conf_set_dr_msg_cb(kconf, ngx_http_commerce_kafka_dr);
    rd_kafka_conf_set_log_cb(kconf, ngx_http_commerce_kafka_log);
    rd_kafka_conf_set_error_cb(kconf, ngx_http_commerce_kafka_error);
    ngx_http_commerce_health_kafka_conf(kconf);

    batch = kmcf->threads == NGX_HTTP_COMMERCE_KAFKA_THREADS_BATCH
            && ngx_http_commerce_kafka_batch(cycle->log, &policy, &saved)
               == NGX_OK;

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, sizeof(errstr));

    if (batch) {
        ngx_http_commerce_kafka_unbatch(cycle->log, policy, &saved);
    }

    if (rk == NULL) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "commerce kafka: cannot create the producer: %s",
                      errstr);
        rd_kafka_conf_destroy(kconf);
        return NGX_ERROR;
    }

    /* logs are served by rd_kafka_poll() in this thread, never by others */
    (void) rd_kafka_set_log_queue(rk, NULL);

    w->rk = rk;
    w->fatal = 0;
    w->mainq = rd_kafka_queue_get_main(rk);

    commerce_breaker_init(&w->breaker, kmcf->breaker_threshold,
                          kmcf->breaker_timeout, 1);
    ngx_http_commerce_metrics_breaker(NGX_HTTP_COMMERCE_BREAKER_KAFKA,
                                      &kmcf->brokers, &w->breaker);

    /* a topic handle makes the producer fetch the topic's metadata now */

    w->names = kmcf->topics.elts;
    w->ntopics = 0;

    if (w->topics == NULL) {
        w->topics = ngx_pcalloc(cycle->pool, (kmcf->topics.nelts + 1)
                                             * sizeof(rd_kafka_topic_t *));
        if (w->topics == NULL) {
            ngx_http_commerce_kafka_discard(0);
            return NGX_ERROR;
        }
    }

    for (i = 0; i < kmcf->topics.nelts; i++) {
        w->topics[i] = rd_kafka_topic_new(rk, (char *) w->names[i].data,
                                          NULL);
        if (w->topics[i] == NULL) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "commerce kafka: topic \"%V\": %s", &w->names[i],
                          rd_kafka_err2str(rd_kafka_last_error()));
            break;
        }

        w->ntopics++;
    }

    rd_kafka_queue_io_event_enable(w->mainq, w->wfd, "1", 1);

    /* whatever was queued before the pipe was attached */
    ngx_http_commerce_kafka_serve();

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "commerce kafka: producer %s created for %V",
                  rd_kafka_name(rk), &kmcf->brokers);

    return NGX_OK;
}


/*
 * The nginx thread becomes SCHED_BATCH, its own policy kept in *policy
 * and *saved, so that the threads rd_kafka_new() starts inherit it (and
 * those they start in turn: the broker threads learnt from metadata);
 * _unbatch() gives the nginx thread its policy back right after.
 */
static ngx_int_t
ngx_http_commerce_kafka_batch(ngx_log_t *log, int *policy,
    struct sched_param *saved)
{
    int                 err;
    struct sched_param  sp;

    err = pthread_getschedparam(pthread_self(), policy, saved);

    if (err == 0) {
        ngx_memzero(&sp, sizeof(struct sched_param));
        err = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    }

    if (err != 0) {
        ngx_log_error(NGX_LOG_ALERT, log, err,
                      "commerce kafka: pthread_setschedparam(SCHED_BATCH) "
                      "failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_commerce_kafka_unbatch(ngx_log_t *log, int policy,
    struct sched_param *saved)
{
    int  err;

    err = pthread_setschedparam(pthread_self(), policy, saved);

    if (err != 0) {
        ngx_log_error(NGX_LOG_ALERT, log, err,
                      "commerce kafka: pthread_setschedparam() of the "
                      "worker's own policy failed");
    }
}


/*
 * Destroys the producer.  flush > 0 (worker exit): what is in flight may
 * be delivered within that time.  The rest is purged; their reports end
 * the messages, as failures (503) while the worker is not exiting, so that
 * a re-created producer never leaves a request waiting and never
 * acknowledges a message it did not deliver.
 */
static void
ngx_http_commerce_kafka_discard(ngx_msec_t flush)
{
    int                                left;
    void                              *data;
    ngx_uint_t                         i;
    ngx_queue_t                       *q;
    ngx_connection_t                  *c;
    ngx_http_request_t                *r;
    ngx_http_commerce_kafka_msg_t     *msg;
    ngx_http_commerce_kafka_worker_t  *w;
    ngx_http_commerce_kafka_handler_pt handler;

    w = &ngx_http_commerce_kafka_worker;

    if (flush && rd_kafka_outq_len(w->rk) > 0) {
        (void) rd_kafka_flush(w->rk, (int) flush);
    }

    left = rd_kafka_outq_len(w->rk);

    if (left > 0) {
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "commerce kafka: %d messages not delivered%s, "
                      "dropped", left,
                      flush ? " within the flush timeout" : "");

        (void) rd_kafka_purge(w->rk, RD_KAFKA_PURGE_F_QUEUE
                                     |RD_KAFKA_PURGE_F_INFLIGHT);
    }

    rd_kafka_queue_io_event_enable(w->mainq, -1, NULL, 0);

    /* delivery reports of the purged messages end them */
    ngx_http_commerce_kafka_serve();

    for (i = 0; i < w->ntopics; i++) {
        rd_kafka_topic_destroy(w->topics[i]);
    }

    w->ntopics = 0;

    rd_kafka_queue_destroy(w->mainq);

    if (w->exiting) {
        rd_kafka_destroy(w->rk);

    } else {
        ngx_http_commerce_kafka_destroy(w->rk);
    }

    w->mainq = NULL;
    w->rk = NULL;

    /* reports that never came: the requests still get their failure */

    while (!ngx_queue_empty(&w->pending)) {
        q = ngx_queue_head(&w->pending);
        msg = ngx_queue_data(q, ngx_http_commerce_kafka_msg_t, queue);
        r = msg->r;
        handler = msg->handler;
        data = msg->data;

        ngx_http_commerce_kafka_ended(msg->start,
                                      NGX_HTTP_COMMERCE_KAFKA_ERROR,
                                      RD_KAFKA_RESP_ERR__DESTROY);
        ngx_http_commerce_kafka_msg_free(msg);

        if (r && !w->exiting) {
            c = r->connection;
            handler(r, data, NGX_ERROR, -1, -1, "producer discarded");
            ngx_http_run_posted_requests(c);
        }
    }
}


/*
 * Flushes what is still in flight (bounded), drops the rest, then
 * destroys the producer.  The requests are going away with the cycle, so
 * no handler is called.
 */
void
ngx_http_commerce_kafka_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    w->exiting = 1;

    if (w->create.timer_set) {
        ngx_del_timer(&w->create);
    }

    if (w->rk) {
        ngx_http_commerce_kafka_discard(w->kmcf->flush_timeout);
    }

    ngx_http_commerce_kafka_close_pipe();
}


static void
ngx_http_commerce_kafka_close_pipe(void)
{
    ngx_connection_t                  *c;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;
    c = w->c;

    if (c) {
        w->c = NULL;

        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        (void) close(c->fd);
        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
    }

    if (w->wfd != NGX_INVALID_FILE) {
        (void) close(w->wfd);
        w->wfd = NGX_INVALID_FILE;
    }
}


/*
 * librdkafka signalled a non-empty main queue: empty the pipe, serve it.
 * librdkafka writes one byte per wakeup and none until the queue is
 * served, so one read() nearly always empties the pipe: a short read ends
 * the loop without a second read() for EAGAIN (the event is level
 * triggered, so a byte left behind is reported again).
 */
static void
ngx_http_commerce_kafka_read_handler(ngx_event_t *rev)
{
    u_char            buf[64];
    ssize_t           n;
    ngx_connection_t  *c;

    c = rev->data;

    for ( ;; ) {
        n = read(c->fd, buf, sizeof(buf));

        if (n == (ssize_t) sizeof(buf)) {
            continue;
        }

        if (n == -1 && ngx_errno == NGX_EINTR) {
            continue;
        }

        break;
    }

    ngx_http_commerce_kafka_serve();
}


/*
 * The pipe only signals an empty queue becoming non-empty, so the queue is
 * served until nothing is left.
 */
static void
ngx_http_commerce_kafka_serve(void)
{
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    while (w->rk && rd_kafka_poll(w->rk, 0) > 0) {
        /* void */
    }
}


/* The delivery report of one message, served in the nginx thread. */
static void
ngx_http_commerce_kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
    void *opaque)
{
    void                                *data;
    ngx_int_t                            rc;
    ngx_uint_t                           result;
    ngx_connection_t                    *c;
    ngx_http_request_t                  *r;
    ngx_http_commerce_kafka_msg_t       *msg;
    ngx_http_commerce_kafka_handler_pt   handler;

    msg = m->_private;
    r = msg->r;
    result = ngx_http_commerce_kafka_result(m->err);

    ngx_http_commerce_kafka_ended(msg->start, result, m->err);

    if (r == NULL || ngx_http_commerce_kafka_worker.exiting) {
        if (m->err) {
            ngx_log_error(NGX_LOG_WARN, ngx_http_commerce_kafka_worker.log,
                          0, "commerce kafka: delivery to %s failed after "
                          "the request was gone: %s",
                          rd_kafka_topic_name(m->rkt),
                          rd_kafka_err2str(m->err));
        }

        ngx_http_commerce_kafka_msg_free(msg);
        return;
    }

    handler = msg->handler;
    data = msg->data;
    c = r->connection;

    ngx_http_commerce_kafka_msg_free(msg);

    if (m->err) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "commerce kafka: delivery to %s failed: %s",
                      rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));

        rc = (result == NGX_HTTP_COMMERCE_KAFKA_TOO_LARGE)
             ? NGX_HTTP_REQUEST_ENTITY_TOO_LARGE : NGX_ERROR;

        handler(r, data, rc, -1, -1, rd_kafka_err2str(m->err));

    } else {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "commerce kafka: delivered to %s [%D] at %L",
                       rd_kafka_topic_name(m->rkt), m->partition, m->offset);

        handler(r, data, NGX_OK, m->partition, m->offset, NULL);
    }

    ngx_http_run_posted_requests(c);
}


static ngx_uint_t
ngx_http_commerce_kafka_result(rd_kafka_resp_err_t err)
{
    switch (err) {

    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return NGX_HTTP_COMMERCE_KAFKA_OK;

    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case NGX_HTTP_COMMERCE_KAFKA_REFUSED:
        return NGX_HTTP_COMMERCE_KAFKA_TOO_LARGE;

    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
        return NGX_HTTP_COMMERCE_KAFKA_TIMEOUT;

    default:
        return NGX_HTTP_COMMERCE_KAFKA_ERROR;
    }
}


/*
 * Where every message ends, exactly once: reported, given up on, or
 * refused when produced (start is then now).  The breaker learns from it,
 * and this is the place for the metrics of deliveries by result and their
 * latency (ngx_current_msec - start); the in-flight count is
 * ngx_http_commerce_kafka_worker.in_flight.  Messages we purged ourselves
 * (re-creation, exit) and our own size refusals (made before the breaker
 * is asked) say nothing about the brokers.
 */
static void
ngx_http_commerce_kafka_ended(ngx_msec_t start, ngx_uint_t result,
    rd_kafka_resp_err_t err)
{
    commerce_breaker_state_e           from;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    ngx_http_commerce_metrics_kafka(result, ngx_current_msec - start);

    if (w->kmcf->breaker_threshold == 0
        || err == RD_KAFKA_RESP_ERR__PURGE_QUEUE
        || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT
        || err == RD_KAFKA_RESP_ERR__DESTROY
        || err == RD_KAFKA_RESP_ERR__FATAL
        || err == NGX_HTTP_COMMERCE_KAFKA_REFUSED)
    {
        return;
    }

    from = w->breaker.state;

    if (result == NGX_HTTP_COMMERCE_KAFKA_OK
        || result == NGX_HTTP_COMMERCE_KAFKA_TOO_LARGE)
    {
        commerce_breaker_success(&w->breaker);

    } else {
        commerce_breaker_failure(&w->breaker, ngx_current_msec);
    }

    if (w->breaker.state != from) {
        ngx_http_commerce_kafka_breaker_changed(from, w->breaker.state);
    }
}


/*
 * Whether a message may be produced now: not while the breaker is open,
 * and only one probe while it is half-open.
 */
static ngx_uint_t
ngx_http_commerce_kafka_allow(time_t *retry_after)
{
    ngx_uint_t                         ok;
    ngx_msec_t                         left;
    commerce_breaker_state_e           from;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    if (w->kmcf->breaker_threshold == 0) {
        return 1;
    }

    from = w->breaker.state;

    ok = commerce_breaker_allow(&w->breaker, ngx_current_msec);

    if (w->breaker.state != from) {
        ngx_http_commerce_kafka_breaker_changed(from, w->breaker.state);
    }

    if (!ok) {
        left = (ngx_msec_t) commerce_breaker_retry_after(&w->breaker,
                                                         ngx_current_msec);
        *retry_after = (time_t) ngx_max((left + 999) / 1000, 1);
    }

    return ok;
}


/*
 * Every change of the producer's breaker passes here: the log, and the
 * place for the breaker state metric (kind kafka).
 */
static void
ngx_http_commerce_kafka_breaker_changed(commerce_breaker_state_e from,
    commerce_breaker_state_e to)
{
    ngx_uint_t                         level;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    level = (to == COMMERCE_BREAKER_OPEN) ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, w->log, 0, "commerce kafka: breaker %s -> %s for %V",
                  commerce_breaker_state_name(from),
                  commerce_breaker_state_name(to), &w->kmcf->brokers);

    ngx_http_commerce_metrics_breaker(NGX_HTTP_COMMERCE_BREAKER_KAFKA,
                                      &w->kmcf->brokers, &w->breaker);
}


/* librdkafka logs (syslog levels), served by rd_kafka_poll() */
static void
ngx_http_commerce_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
    ngx_uint_t  nlevel;

    if (level <= 3) {
        nlevel = NGX_LOG_ERR;

    } else if (level == 4) {
        nlevel = NGX_LOG_WARN;

    } else if (level <= 6) {
        nlevel = NGX_LOG_INFO;

    } else {
        nlevel = NGX_LOG_DEBUG;
    }

    ngx_log_error(nlevel, ngx_http_commerce_kafka_worker.log, 0,
                  "commerce kafka: %s: %s", fac, buf);
}


/*
 * librdkafka's errors, served by rd_kafka_poll(): all brokers down opens
 * the breaker at once; a fatal error (idempotence state lost) makes the
 * producer useless: it is replaced as soon as this callback is left.
 */
static void
ngx_http_commerce_kafka_error(rd_kafka_t *rk, int err, const char *reason,
    void *opaque)
{
    commerce_breaker_state_e           from;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "commerce kafka: fatal error: %s (%s), the producer "
                      "is re-created", reason,
                      rd_kafka_err2name(rd_kafka_fatal_error(rk, NULL, 0)));

        if (!w->fatal && !w->exiting) {
            w->fatal = 1;
            w->backoff = NGX_HTTP_COMMERCE_KAFKA_CREATE_MIN;

            if (w->create.timer_set) {
                ngx_del_timer(&w->create);
            }

            ngx_add_timer(&w->create, 1);
        }

        return;
    }

    ngx_log_error(NGX_LOG_WARN, w->log, 0, "commerce kafka: %s: %s",
                  rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);

    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN
        && w->kmcf->breaker_threshold)
    {
        from = w->breaker.state;

        commerce_breaker_trip(&w->breaker, ngx_current_msec);

        if (w->breaker.state != from) {
            ngx_http_commerce_kafka_breaker_changed(from, w->breaker.state);
        }
    }
}


/*
 * The report is overdue.  First at commerce_kafka_delivery_timeout: the
 * request is told and answers 503, while it waits on for the outcome.  A
 * margin later the request is let go (a final failure) and the context
 * stays pending, librdkafka still owns the message, until the report or
 * exit_process.
 */
static void
ngx_http_commerce_kafka_msg_timeout(ngx_event_t *ev)
{
    void                                *data;
    ngx_uint_t                           last;
    ngx_connection_t                    *c;
    ngx_http_request_t                  *r;
    ngx_http_commerce_kafka_msg_t       *msg;
    ngx_http_commerce_kafka_handler_pt   handler;

    msg = ev->data;
    r = msg->r;

    if (r == NULL) {
        return;
    }

    c = r->connection;
    handler = msg->handler;
    data = msg->data;
    last = msg->overdue;

    ngx_log_error(NGX_LOG_ERR, c->log, 0,
                  "commerce kafka: no delivery report after %M ms%s",
                  ngx_current_msec - msg->start,
                  last ? ", given up" : ", answered 503");

    if (last) {
        msg->r = NULL;
        msg->cln->handler = NULL;

        handler(r, data, NGX_ERROR, -1, -1, "delivery report overdue");

    } else {
        msg->overdue = 1;

        /* msg->timer.cancelable = 0: a reload waits for the report */
        ngx_add_timer(&msg->timer, NGX_HTTP_COMMERCE_KAFKA_REPORT_MARGIN);

        handler(r, data, NGX_AGAIN, -1, -1, "delivery timed out");
    }

    ngx_http_run_posted_requests(c);
}


/*
 * The request is being freed first: detach it.  The timer stays, so that
 * an exiting worker still waits for the report.
 */
static void
ngx_http_commerce_kafka_msg_cleanup(void *data)
{
    ngx_http_commerce_kafka_msg_t  *msg = data;

    msg->r = NULL;
}


static void
ngx_http_commerce_kafka_msg_free(ngx_http_commerce_kafka_msg_t *msg)
{
    if (msg->r) {
        msg->cln->handler = NULL;
        msg->r = NULL;
    }

    if (msg->timer.timer_set) {
        ngx_del_timer(&msg->timer);
    }

    ngx_queue_remove(&msg->queue);
    ngx_free(msg);

    ngx_http_commerce_kafka_worker.in_flight--;
    ngx_http_commerce_metrics_add(kafka_in_flight, -1);
}


/* the worker's handle of a topic declared in advance, else NULL */
static rd_kafka_topic_t *
ngx_http_commerce_kafka_topic(ngx_str_t *topic)
{
    ngx_uint_t                         i;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;

    for (i = 0; i < w->ntopics; i++) {
        if (w->names[i].len == topic->len
            && ngx_strncmp(w->names[i].data, topic->data, topic->len) == 0)
        {
            return w->topics[i];
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_commerce_kafka_produce(ngx_http_request_t *r, ngx_str_t *topic,
    ngx_str_t *key, ngx_str_t *value, rd_kafka_headers_t *hdrs,
    ngx_http_commerce_kafka_handler_pt handler, void *data,
    time_t *retry_after)
{
    u_char                            *payload, *name;
    size_t                             len;
    ngx_int_t                          rc;
    rd_kafka_topic_t                  *rkt, *own;
    rd_kafka_resp_err_t                err;
    ngx_pool_cleanup_t                *cln;
    ngx_http_commerce_kafka_msg_t     *msg;
    ngx_http_commerce_kafka_worker_t  *w;

    w = &ngx_http_commerce_kafka_worker;
    *retry_after = 1;

    if (w->rk == NULL || w->exiting || w->fatal) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce kafka: no producer in this worker");
        rd_kafka_headers_destroy(hdrs);
        return NGX_DECLINED;
    }

    len = value->len;

    if (len > ngx_http_commerce_kafka_body_max(r, key ? key->len : 0, hdrs)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "commerce kafka: a message of %uz body bytes to %V "
                      "exceeds message.max.bytes", len, topic);
        ngx_http_commerce_kafka_ended(ngx_current_msec,
                                      NGX_HTTP_COMMERCE_KAFKA_TOO_LARGE,
                                      NGX_HTTP_COMMERCE_KAFKA_REFUSED);
        rd_kafka_headers_destroy(hdrs);
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    if (!ngx_http_commerce_kafka_allow(retry_after)) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "commerce kafka: breaker open, message refused");
        rd_kafka_headers_destroy(hdrs);
        return NGX_DECLINED;
    }

    name = ngx_pnalloc(r->pool, topic->len + 1);
    cln = ngx_pool_cleanup_add(r->pool, 0);
    msg = ngx_calloc(sizeof(ngx_http_commerce_kafka_msg_t), r->connection->log);

    /* the request pool may be gone before the report: librdkafka frees it */
    payload = (name && cln && msg)
              ? ngx_alloc(len ? len : 1, r->connection->log) : NULL;

    if (payload == NULL) {
        rc = NGX_ERROR;
        goto failed;
    }

    ngx_memcpy(payload, value->data, len);

    ngx_cpystrn(name, topic->data, topic->len + 1);

    msg->r = r;
    msg->cln = cln;
    msg->handler = handler;
    msg->data = data;
    msg->start = ngx_current_msec;

    own = NULL;
    rkt = ngx_http_commerce_kafka_topic(topic);

    if (rkt == NULL) {
        /* a topic not declared in advance: a reference for this call */
        own = rd_kafka_topic_new(w->rk, (char *) name, NULL);
        rkt = own;

        if (rkt == NULL) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "commerce kafka: topic \"%V\": %s", topic,
                          rd_kafka_err2str(rd_kafka_last_error()));
            ngx_free(payload);
            rc = NGX_DECLINED;
            goto failed;
        }
    }

    err = rd_kafka_producev(w->rk,
                            RD_KAFKA_V_RKT(rkt),
                            RD_KAFKA_V_VALUE(payload, len),
                            RD_KAFKA_V_KEY(key && key->len ? key->data : NULL,
                                           key ? key->len : 0),
                            RD_KAFKA_V_HEADERS(hdrs),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                            RD_KAFKA_V_OPAQUE(msg),
                            RD_KAFKA_V_END);

    if (own) {
        /* a queued message holds its own reference */
        rd_kafka_topic_destroy(own);
    }

    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce kafka: cannot queue a message to %V: %s",
                      topic, rd_kafka_err2str(err));
        ngx_free(payload);

        /* the breaker's probe, if it was one, ends here */
        ngx_http_commerce_kafka_ended(msg->start,
                                      ngx_http_commerce_kafka_result(err),
                                      err);

        rc = (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
             ? NGX_HTTP_REQUEST_ENTITY_TOO_LARGE : NGX_DECLINED;
        goto failed;
    }

    msg->timer.handler = ngx_http_commerce_kafka_msg_timeout;
    msg->timer.data = msg;
    msg->timer.log = w->log;

    /* msg->timer.cancelable = 0: a reload waits for the report */

    ngx_add_timer(&msg->timer, w->report_timeout);
    ngx_queue_insert_tail(&w->pending, &msg->queue);
    w->in_flight++;
    ngx_http_commerce_metrics_inc(kafka_in_flight);

    cln->handler = ngx_http_commerce_kafka_msg_cleanup;
    cln->data = msg;

    return NGX_OK;

failed:

    if (msg) {
        ngx_free(msg);
    }

    /* librdkafka took the headers only if it took the message */
    rd_kafka_headers_destroy(hdrs);

    return rc;
}


/*
 * A producer given up while the worker serves requests: rd_kafka_destroy()
 * joins librdkafka's threads, which may wait on its brokers' sockets, so
 * it runs on a thread of its own.  Nothing of it calls back into nginx:
 * its reports, logs and errors come only through rd_kafka_poll() here,
 * and its queues and topics are gone already.
 */
static void
ngx_http_commerce_kafka_destroy(rd_kafka_t *rk)
{
    pthread_t       tid;
    pthread_attr_t  attr;

    if (pthread_attr_init(&attr) == 0) {
        if (pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0
            && pthread_create(&tid, &attr,
                              ngx_http_commerce_kafka_destroy_thread, rk)
               == 0)
        {
            (void) pthread_attr_destroy(&attr);
            return;
        }

        (void) pthread_attr_destroy(&attr);
    }

    /* no thread to be had: destroyed here, as before */
    rd_kafka_destroy(rk);
}


static void *
ngx_http_commerce_kafka_destroy_thread(void *data)
{
    rd_kafka_destroy(data);

    return NULL;
}
