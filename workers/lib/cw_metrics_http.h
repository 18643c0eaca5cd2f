/*
 * cw_metrics_http: the /metrics server of cw_metrics (private to it:
 * workers use cw_metrics_serve and cw_metrics_port).
 *
 * One thread multiplexes every connection with poll(): a scrape is
 * answered while other connections sit idle or send slowly. Each
 * connection has a deadline (CW_METRICS_IDLE_MS idle between requests,
 * CW_METRICS_IO_MS to finish a request or take a reply); the oldest
 * connection is closed to make room when CW_METRICS_CONNS are open, so
 * idle connections can delay no scrape.
 *
 *   GET /metrics      200, the exposition text (version 0.0.4)
 *   HEAD /metrics     200, the same headers without the body
 *   other methods     405 with Allow: GET, HEAD
 *   other paths       404
 *   not HTTP/1.x      400, then the connection is closed
 *
 * HTTP/1.1 keeps the connection open unless the request says
 * "Connection: close"; HTTP/1.0 closes it unless it says keep-alive.
 * Pipelined requests are answered in order. A request with a body is
 * answered, then the connection closed (a scrape has none).
 */

#ifndef CW_METRICS_HTTP_H
#define CW_METRICS_HTTP_H

#include <stddef.h>

#include "cw_metrics.h"

#define CW_METRICS_CONNS     64
#define CW_METRICS_IDLE_MS   60000
#define CW_METRICS_IO_MS     10000
#define CW_METRICS_REQ_MAX   8192

typedef struct cw_metrics_http_s  cw_metrics_http_t;

/* Listens on 127.0.0.1:port (0: ephemeral) and starts the thread, which
 * renders m. NULL with err. */
cw_metrics_http_t *cw_metrics_http_start(cw_metrics_t *m, int port,
    char *err, size_t errlen);
int cw_metrics_http_port(const cw_metrics_http_t *h);

/* Stops the thread, closes every connection and frees; NULL ignored. */
void cw_metrics_http_stop(cw_metrics_http_t *h);

#endif /* CW_METRICS_HTTP_H */
