/*
 * cw_metrics: exposition text for counters, gauges and histograms with
 * escaped labels; registration rules and dropped series; the HTTP
 * endpoint on an ephemeral loopback port (GET and HEAD /metrics, 404
 * other paths, 405 other methods, 400 what is not HTTP), keep-alive and
 * pipelining, scrapes served while other connections sit idle; the
 * process_* series.
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
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "cw_metrics.h"
#include "cw_metrics_http.h"

/* more connections than the server keeps open */
#define CW_METRICS_TEST_MANY  (CW_METRICS_CONNS + 36)


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


/* A dropped series is no longer rendered; its family's others are, and
 * the same labels registered again make a new series from zero. */
static void
test_drop(void **state)
{
    cw_metrics_t  *m = cw_metrics_new();
    cw_metric_t   *a, *b, *c;
    cw_buf_t       out;

    a = cw_metrics_gauge(m, "lag", "Lag.", "p", "0", NULL);
    b = cw_metrics_gauge(m, "lag", "Lag.", "p", "1", NULL);
    c = cw_metrics_gauge(m, "lag", "Lag.", "p", "2", NULL);
    cw_gauge_set(a, 5);
    cw_gauge_set(b, 6);
    cw_gauge_set(c, 7);
    cw_metrics_drop(m, c);                      /* the last */
    cw_metrics_drop(m, a);                      /* the first */
    c = cw_metrics_gauge(m, "lag", "Lag.", "p", "3", NULL);
    cw_gauge_set(c, 8);
    a = cw_metrics_gauge(m, "lag", "Lag.", "p", "0", NULL);

    cw_buf_init(&out);
    cw_metrics_render(m, &out);
    assert_string_equal(out.data,
        "# HELP lag Lag.\n"
        "# TYPE lag gauge\n"
        "lag{p=\"1\"} 6\n"
        "lag{p=\"3\"} 8\n"
        "lag{p=\"0\"} 0\n");
    cw_buf_free(&out);
    cw_metrics_free(m);
}


static int
conn(int port)
{
    struct sockaddr_in  sa;
    int                 fd;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    return fd;
}


static void
send_all(int fd, const char *req)
{
    assert_int_equal(write(fd, req, strlen(req)), (int) strlen(req));
}


/* Reads one reply: its head, then Content-Length bytes of body (none
 * when head_only, the reply to a HEAD). Returns it NUL-terminated in a
 * static buffer, or NULL at EOF before a whole head. */
static char *
reply(int fd, int head_only)
{
    static char   buf[65536];
    size_t        len = 0, want = 0;
    ssize_t       n;
    char         *end, *cl;

    for ( ;; ) {
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            cl = strstr(buf, "Content-Length: ");
            assert_non_null(cl);
            want = (size_t) (end + 4 - buf)
                   + (head_only ? 0 : strtoul(cl + 16, NULL, 10));
            if (len >= want) {
                assert_int_equal(len, want);    /* nothing more sent */
                return buf;
            }
        }
        /* one byte at a time: what follows is the next reply's */
        n = read(fd, buf + len, end != NULL ? want - len : 1);
        if (n <= 0) {
            return NULL;
        }
        len += (size_t) n;
        assert_true(len < sizeof(buf));
    }
}


/* Whether the server closed the connection (EOF, nothing else sent). */
static int
closed(int fd)
{
    char  c;

    return read(fd, &c, 1) == 0;
}


/* One request on a connection of its own, closed after the reply. */
static char *
http(int port, const char *req)
{
    char  *r;
    int    fd = conn(port);

    send_all(fd, req);
    r = reply(fd, strncmp(req, "HEAD ", 5) == 0);
    close(fd);
    assert_non_null(r);
    return r;
}


static cw_metrics_t *
served(int *port)
{
    cw_metrics_t  *m = cw_metrics_new();
    cw_metric_t   *c;
    char           err[256];

    c = cw_metrics_counter(m, "served_total", "Served.", NULL);
    cw_counter_add(c, 41);
    assert_int_equal(cw_metrics_serve(m, 0, err, sizeof(err)), 0);
    *port = cw_metrics_port(m);
    assert_true(*port > 0);
    return m;
}


static void
test_http(void **state)
{
    cw_metrics_t  *m;
    char          *r, *body, len[64];
    int            port;

    m = served(&port);

    r = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r, "\r\n\r\n# HELP served_total Served.\n"));
    assert_non_null(strstr(r, "served_total 41\n"));
    body = strstr(r, "\r\n\r\n") + 4;
    snprintf(len, sizeof(len), "Content-Length: %zu\r\n", strlen(body));
    assert_non_null(strstr(r, len));

    /* values are read live at scrape time */
    cw_counter_inc(cw_metrics_counter(m, "served_total", "Served.", NULL));
    r = http(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "served_total 42\n"));
    assert_non_null(strstr(r, "Connection: close\r\n"));

    /* HEAD: the same head, the Content-Length of the body not sent */
    r = http(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, len));
    assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\n");

    r = http(port, "GET / HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    assert_non_null(strstr(r, "\r\n\r\nNot Found\n"));
    r = http(port, "HEAD / HTTP/1.1\r\n\r\n");      /* its head only */
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\n");
    r = http(port, "GET /metricsx HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    r = http(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
    r = http(port, "DELETE /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 405 Method Not Allowed\r\n"));
    r = http(port, "hello\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));

    cw_metrics_free(m);
}


/* HTTP/1.1 keeps the connection, pipelined requests are answered in
 * order; "Connection: close", HTTP/1.0, a request with a body and a bad
 * request close it after the reply. */
static void
test_keepalive(void **state)
{
    cw_metrics_t  *m;
    char          *r;
    int            port, fd;

    m = served(&port);

    fd = conn(port);
    send_all(fd, "GET /metrics HTTP/1.1\r\n\r\n");
    r = reply(fd, 0);
    assert_non_null(r);
    assert_null(strstr(r, "Connection: close"));
    send_all(fd, "HEAD /metrics HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\n\n"
                 "GET /x HTTP/1.1\r\n\r\n"
                 "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(reply(fd, 1), "200 OK"));
    assert_non_null(strstr(reply(fd, 0), "404 Not Found"));
    assert_non_null(strstr(reply(fd, 0), "404 Not Found"));
    r = reply(fd, 0);
    assert_non_null(strstr(r, "served_total 41\n"));
    assert_non_null(strstr(r, "Connection: close\r\n"));
    assert_true(closed(fd));
    close(fd);

    fd = conn(port);
    send_all(fd, "GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_non_null(reply(fd, 0));
    send_all(fd, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_non_null(reply(fd, 0));
    assert_true(closed(fd));
    close(fd);

    fd = conn(port);
    send_all(fd, "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert_non_null(strstr(reply(fd, 0), "405"));
    assert_true(closed(fd));
    close(fd);

    cw_metrics_free(m);
}


/* Scrapes are served while other connections are open and idle, or
 * send their request slowly: the idle ones are still open and served
 * afterwards. More connections than the server keeps: the idle ones
 * make room, and a scrape still succeeds. */
static void
test_idle_connections(void **state)
{
    cw_metrics_t  *m;
    int            port, idle[20], many[CW_METRICS_TEST_MANY], i;

    m = served(&port);

    for (i = 0; i < 20; i++) {
        idle[i] = conn(port);
        if (i % 2) {
            send_all(idle[i], "GET /metrics HTTP/1.1\r\nHost:");
        }
    }
    assert_non_null(strstr(http(port, "GET /metrics HTTP/1.1\r\n\r\n"),
                           "served_total 41\n"));
    for (i = 0; i < 20; i++) {
        send_all(idle[i], i % 2 ? " x\r\n\r\n"
                                : "GET /metrics HTTP/1.1\r\n\r\n");
        assert_non_null(strstr(reply(idle[i], 0), "served_total 41\n"));
        close(idle[i]);
    }

    for (i = 0; i < CW_METRICS_TEST_MANY; i++) {
        many[i] = conn(port);
    }
    assert_non_null(strstr(http(port, "GET /metrics HTTP/1.1\r\n\r\n"),
                           "served_total 41\n"));
    for (i = 0; i < CW_METRICS_TEST_MANY; i++) {
        close(many[i]);
    }

    cw_metrics_free(m);
}


/* The process_* series of every worker, read at each rendering. */
static void
test_process(void **state)
{
    cw_metrics_t  *m = cw_metrics_new();
    cw_buf_t       b;
    double         fds, fds2, rss, cpu, start;
    int            extra[3], i;
    char          *p;

    assert_int_equal(cw_metrics_process(m), 0);

    cw_buf_init(&b);
    cw_metrics_render(m, &b);
    assert_non_null(strstr(b.data, "# TYPE process_cpu_seconds_total "
                                   "counter\n"));
    assert_non_null(strstr(b.data, "# TYPE process_open_fds gauge\n"));
    p = strstr(b.data, "\nprocess_resident_memory_bytes ");
    assert_non_null(p);
    rss = strtod(p + 31, NULL);
    cpu = strtod(strstr(b.data, "\nprocess_cpu_seconds_total ") + 27, NULL);
    fds = strtod(strstr(b.data, "\nprocess_open_fds ") + 18, NULL);
    start = strtod(strstr(b.data, "\nprocess_start_time_seconds ") + 28,
                   NULL);
    assert_true(rss > 0);
    assert_true(cpu >= 0);
    assert_true(fds >= 3);                      /* stdin, stdout, stderr */
    assert_true(start > 1.5e9 && start <= (double) time(NULL) + 1);

    for (i = 0; i < 3; i++) {
        extra[i] = dup(0);
    }
    cw_buf_reset(&b);
    cw_metrics_render(m, &b);
    fds2 = strtod(strstr(b.data, "\nprocess_open_fds ") + 18, NULL);
    assert_true(fds2 == fds + 3);
    for (i = 0; i < 3; i++) {
        close(extra[i]);
    }

    cw_buf_free(&b);
    cw_metrics_free(m);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_registration),
        cmocka_unit_test(test_drop),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_idle_connections),
        cmocka_unit_test(test_process),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
