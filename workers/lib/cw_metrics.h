/*
 * cw_metrics: Prometheus metrics for workers.
 *
 * Series are registered by name, help and label pairs, and updated with
 * lock-free atomics, so the worker's hot path never waits for a scrape:
 *
 *   cw_metric_t *ok = cw_metrics_counter(m, "projector_events_total",
 *       "Events applied.", "topic", "commerce.events", NULL);
 *   cw_counter_inc(ok);
 *
 * cw_metrics_serve() starts a thread answering GET and HEAD /metrics on
 * a loopback port in the text exposition format (version 0.0.4), many
 * connections at once, keep-alive included (cw_metrics_http.h).
 * Registration and rendering share a mutex that updates never take.
 * cw_metrics_process() adds the process_* series of Prometheus' process
 * collector, read from /proc/self at each scrape:
 *
 *   m = cw_metrics_new();
 *   cw_metrics_process(m);
 *   cw_metrics_serve(m, 9464, err, sizeof(err));
 */

#ifndef CW_METRICS_H
#define CW_METRICS_H

#include <stddef.h>

#include "cw_buf.h"
#include "cw_config.h"

typedef struct cw_metrics_s  cw_metrics_t;
typedef struct cw_metric_s   cw_metric_t;

cw_metrics_t *cw_metrics_new(void);

/* Stops the server thread if running and frees every series. */
void cw_metrics_free(cw_metrics_t *m);

/* Each returns the series for these label values, creating it on first
 * use (the same call twice returns the same pointer). Labels are
 * name/value pairs ended by NULL. NULL is returned if the name is
 * already registered with another type or help, or on bad names. */
cw_metric_t *cw_metrics_counter(cw_metrics_t *m, const char *name,
    const char *help, ...) __attribute__((sentinel));
cw_metric_t *cw_metrics_gauge(cw_metrics_t *m, const char *name,
    const char *help, ...) __attribute__((sentinel));

/* bounds: ascending upper bounds (without +Inf, which is implied). The
 * first registration of a name fixes its buckets. */
cw_metric_t *cw_metrics_histogram(cw_metrics_t *m, const char *name,
    const char *help, const double *bounds, size_t nbounds, ...)
    __attribute__((sentinel));

void cw_counter_inc(cw_metric_t *c);
void cw_counter_add(cw_metric_t *c, double v);     /* v >= 0 */
void cw_gauge_set(cw_metric_t *g, double v);
void cw_gauge_add(cw_metric_t *g, double v);
void cw_histogram_observe(cw_metric_t *h, double v);

/* A counter kept elsewhere (the kernel's CPU time) is set, not added to:
 * v must not be less than what it was. */
void cw_counter_set(cw_metric_t *c, double v);

/* Removes a series (a partition this process no longer owns) and frees
 * it: the pointer, and any other copy of it, must not be used again. */
void cw_metrics_drop(cw_metrics_t *m, cw_metric_t *s);

/* fn(m, ud) runs at the start of every rendering (on the server's
 * thread), one collector at a time, to set series from elsewhere; it may
 * register series. Collectors stay until cw_metrics_free. */
typedef void (*cw_metrics_collect_pt)(cw_metrics_t *m, void *ud);

int cw_metrics_collector(cw_metrics_t *m, cw_metrics_collect_pt fn,
    void *ud);

/* Registers process_resident_memory_bytes, process_cpu_seconds_total,
 * process_open_fds and process_start_time_seconds, and their collector.
 * Returns 0, or -1 (out of memory, /proc not mounted). */
int cw_metrics_process(cw_metrics_t *m);

/* Current value of a counter or gauge (tests, health checks). */
double cw_metric_value(const cw_metric_t *c);

/* Appends the exposition text of every family, in registration order. */
void cw_metrics_render(cw_metrics_t *m, cw_buf_t *out);

/* Serves GET and HEAD /metrics on 127.0.0.1:port from its own thread;
 * port 0 binds an ephemeral port (see cw_metrics_port). Returns -1 with
 * err. */
int cw_metrics_serve(cw_metrics_t *m, int port, char *err, size_t errlen);
int cw_metrics_port(const cw_metrics_t *m);

/* Declares metrics.port (INT, default given; 0 disables the server). */
int cw_metrics_declare(cw_config_t *cfg, const char *default_port);

#endif /* CW_METRICS_H */
