/*
 * cw_metrics: exposition text for counters, gauges and histograms with
 * escaped labels; registration rules; the HTTP endpoint (GET /metrics,
 * 404 otherwise) on an ephemeral loopback port.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "cw_metrics.h"


static void
test_render(void **state)
{
    static const double  bounds[] = { 0.01, 0.1, 1 };
    cw_metrics_t        *m = cw_metrics_new();
    cw_metric_t         *ok, *bad, *lag, *lat;
    cw_buf_t             b;

    ok = cw_metrics_counter(m, "events_total", "Events handled.",
                            "topic", "commerce.events", "outcome", "ok", NULL);
    bad = cw_metrics_counter(m, "events_total", "Events handled.",
                             "topic", "commerce.events", "outcome", "dlq",
                             NULL);
    lag = cw_metrics_gauge(m, "lag_seconds", "Consumer lag\nin seconds.",
                           NULL);
    lat = cw_metrics_histogram(m, "batch_seconds", "Batch time.", bounds, 3,
                               "worker", "a\"b\\c\nd", NULL);
    assert_non_null(ok);
    assert_non_null(bad);
    assert_non_null(lag);
    assert_non_null(lat);

    cw_counter_inc(ok);
    cw_counter_add(ok, 2);
    cw_counter_add(ok, -5);          /* counters never go down */
    cw_gauge_set(lag, 2.5);
    cw_gauge_add(lag, -1);
    cw_histogram_observe(lat, 0.0078125);
    cw_histogram_observe(lat, 0.0625);
    cw_histogram_observe(lat, 0.0625);
    cw_histogram_observe(lat, 4);

    assert_true(cw_metric_value(ok) == 3);
    assert_true(cw_metric_value(lag) == 1.5);

    cw_buf_init(&b);
    cw_metrics_render(m, &b);
    assert_string_equal(b.data,
        "# HELP events_total Events handled.\n"
        "# TYPE events_total counter\n"
        "events_total{topic=\"commerce.events\",outcome=\"ok\"} 3\n"
        "events_total{topic=\"commerce.events\",outcome=\"dlq\"} 0\n"
        "# HELP lag_seconds Consumer lag\\nin seconds.\n"
        "# TYPE lag_seconds gauge\n"
        "lag_seconds 1.5\n"
        "# HELP batch_seconds Batch time.\n"
        "# TYPE batch_seconds histogram\n"
        "batch_seconds_bucket{worker=\"a\\\"b\\\\c\\nd\",le=\"0.01\"} 1\n"
        "batch_seconds_bucket{worker=\"a\\\"b\\\\c\\nd\",le=\"0.1\"} 3\n"
        "batch_seconds_bucket{worker=\"a\\\"b\\\\c\\nd\",le=\"1\"} 3\n"
        "batch_seconds_bucket{worker=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 4\n"
        "batch_seconds_sum{worker=\"a\\\"b\\\\c\\nd\"} 4.1328125\n"
        "batch_seconds_count{worker=\"a\\\"b\\\\c\\nd\"} 4\n");
    cw_buf_free(&b);
    cw_metrics_free(m);
}


static void
test_registration(void **state)
{
    static const double  bounds[] = { 1, 0.5 };
    cw_metrics_t        *m = cw_metrics_new();
    cw_metric_t         *a;

    a = cw_metrics_counter(m, "x_total", "X.", "k", "v", NULL);
    assert_ptr_equal(cw_metrics_counter(m, "x_total", "X.", "k", "v", NULL), a);
    /* same name, other type or help */
    assert_null(cw_metrics_gauge(m, "x_total", "X.", NULL));
    assert_null(cw_metrics_counter(m, "x_total", "Other.", NULL));
    /* bad names, reserved label, unsorted buckets */
    assert_null(cw_metrics_counter(m, "1x", "X.", NULL));
    assert_null(cw_metrics_counter(m, "y-total", "X.", NULL));
    assert_null(cw_metrics_counter(m, "y_total", "X.", "bad-label", "v", NULL));
    assert_null(cw_metrics_histogram(m, "h", "H.", bounds, 2, NULL));
    assert_null(cw_metrics_histogram(m, "h2", "H.", bounds, 1, "le", "1",
                                     NULL));
    cw_metrics_free(m);
}


/* Sends a raw request to the server and returns the whole reply. */
static char *
http(int port, const char *req)
{
    struct sockaddr_in  sa;
    static char         buf[8192];
    size_t              len = 0;
    ssize_t             n;
    int                 fd;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    assert_int_equal(write(fd, req, strlen(req)), (int) strlen(req));
    while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
        len += (size_t) n;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}


static void
test_http(void **state)
{
    cw_metrics_t  *m = cw_metrics_new();
    cw_metric_t   *c;
    char           err[256], *r;
    int            port;

    c = cw_metrics_counter(m, "served_total", "Served.", NULL);
    cw_counter_add(c, 41);
    assert_int_equal(cw_metrics_serve(m, 0, err, sizeof(err)), 0);
    port = cw_metrics_port(m);
    assert_true(port > 0);

    r = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r, "\r\n\r\n# HELP served_total Served.\n"));
    assert_non_null(strstr(r, "served_total 41\n"));

    /* values are read live at scrape time */
    cw_counter_inc(c);
    r = http(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "served_total 42\n"));

    r = http(port, "GET / HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    r = http(port, "POST /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    r = http(port, "GET /metricsx HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));

    cw_metrics_free(m);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_registration),
        cmocka_unit_test(test_http),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
