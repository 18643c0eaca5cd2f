/*
 * cw_worker: the start-up every worker shares, without servers: options
 * of the worker and of the parts it uses merged from file < environment
 * < flags, the worker's defaults (also pass-through ones) shown by
 * --help, configuration errors that exit 2 naming the key and its
 * origin, --help that exits 0, the log level, the signal handlers and
 * the metrics thread.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cw_log.h"
#include "cw_signal.h"
#include "cw_worker.h"
#include "unit_file.h"

static const cw_opt_t  opts[] = {
    { "name", CW_OPT_STR, "dflt", 0, 0, 0, "a string" },
    { "count", CW_OPT_INT, "2", 1, 16, 0, "an int in 1..16" },
};

static const cw_worker_default_t  defaults[] = {
    { "kafka.batch_max", "2500" },
    { "kafka.fetch.wait.max.ms", "10" },
};

static int check_calls;


/* count 13 is refused by the worker's own rule. */
static int
check(const cw_config_t *cfg, char *err, size_t errlen)
{
    check_calls++;
    if (cw_config_int(cfg, "count") == 13) {
        snprintf(err, errlen, "option \"count\" from %s: 13 is unlucky",
                 cw_config_origin(cfg, "count"));
        return -1;
    }
    return 0;
}


static const cw_worker_def_t  def = {
    "tester", "a test worker", opts, sizeof(opts) / sizeof(opts[0]),
    CW_WORKER_PG | CW_WORKER_KAFKA | CW_WORKER_METRICS | CW_WORKER_SIGNALS,
    defaults, sizeof(defaults) / sizeof(defaults[0]), check
};

static char    *logbuf;
static size_t   loglen;
static FILE    *logf;


static int
setup(void **state)
{
    unsetenv("COMMERCE_NAME");
    unsetenv("COMMERCE_CONFIG");
    check_calls = 0;
    logf = open_memstream(&logbuf, &loglen);
    cw_log_set_stream(logf);
    return 0;
}


static int
teardown(void **state)
{
    cw_log_set_stream(NULL);
    fclose(logf);
    free(logbuf);
    logbuf = NULL;
    return 0;
}


/* What was logged so far. */
static const char *
logged(void)
{
    fflush(logf);
    return logbuf != NULL ? logbuf : "";
}


/* Starts with the flags given after the program name. */
static int
start(cw_worker_t *w, const cw_worker_def_t *d, const char *const *flags,
    int n)
{
    char  *argv[16];
    int    i;

    argv[0] = "commerce-tester";
    for (i = 0; i < n; i++) {
        argv[i + 1] = (char *) flags[i];
    }
    argv[n + 1] = NULL;
    return cw_worker_start(w, d, n + 1, argv);
}


static int
collect(void *ud, const char *key, const char *value)
{
    char  *out = ud;

    snprintf(out + strlen(out), 256 - strlen(out), "%s=%s;", key, value);
    return 0;
}


/* The worker's options and the parts' merge file < environment < flags,
 * and the worker's defaults hold where nothing sets them. */
static void
test_merge(void **state)
{
    cw_worker_t   w;
    char          flag[128], seen[256] = "";
    char         *path;
    const char   *flags[3];

    path = unit_write_file("name = file\ncount = 3\nkafka.batch_max = 100\n"
                      "kafka.group_id = from-file\n");
    snprintf(flag, sizeof(flag), "--config=%s", path);
    setenv("COMMERCE_NAME", "env", 1);
    flags[0] = flag;
    flags[1] = "--kafka.batch-max=200";
    flags[2] = "--pg.conninfo=host=nowhere";

    assert_int_equal(start(&w, &def, flags, 3), 0);
    assert_string_equal(cw_config_str(w.cfg, "name"), "env");
    assert_int_equal(cw_config_int(w.cfg, "count"), 3);
    assert_int_equal(cw_config_int(w.cfg, "kafka.batch_max"), 200);
    assert_string_equal(cw_config_str(w.cfg, "kafka.group_id"), "from-file");
    assert_string_equal(cw_config_str(w.cfg, "pg.conninfo"), "host=nowhere");
    assert_string_equal(cw_config_str(w.cfg, "log_level"), "info");
    assert_int_equal(cw_config_int(w.cfg, "metrics.port"), 0);
    assert_int_equal(cw_config_each_prefixed(w.cfg, "kafka.", collect, seen),
                     0);
    assert_string_equal(seen, "fetch.wait.max.ms=10;");
    assert_non_null(w.metrics);
    assert_int_equal(cw_metrics_port(w.metrics), 0);     /* not served */
    assert_int_equal(check_calls, 1);

    assert_int_equal(cw_worker_exit(&w, 0), 0);
    assert_null(w.cfg);
    assert_non_null(strstr(logged(),
                           "\"worker\":\"tester\",\"msg\":\"exit 0\""));
    unlink(path);
}


/* A flag or the file replaces a pass-through default. */
static void
test_passthrough_default(void **state)
{
    cw_worker_t   w;
    char          seen[256] = "";
    const char   *flags[] = { "--kafka.fetch.wait.max.ms=50" };

    assert_int_equal(start(&w, &def, flags, 1), 0);
    assert_int_equal(cw_config_each_prefixed(w.cfg, "kafka.", collect, seen),
                     0);
    assert_string_equal(seen, "fetch.wait.max.ms=50;");
    cw_worker_exit(&w, 0);
}


/* What cw_worker_start writes to stdout with these flags. */
static char *
stdout_of(cw_worker_t *w, const char *const *flags, int n, int *rc)
{
    static char  text[16384];
    char        *path;
    FILE        *f;
    size_t       len;
    int          fd, saved;

    path = unit_write_file("");
    fflush(stdout);
    saved = dup(1);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);

    *rc = start(w, &def, flags, n);

    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    f = fopen(path, "r");
    assert_non_null(f);
    len = fread(text, 1, sizeof(text) - 1, f);
    text[len] = '\0';
    fclose(f);
    unlink(path);
    return text;
}


/* --help: the text of every declaration with the worker's defaults, the
 * worker's options first and log_level after them; exit 0 and no
 * "exit" line, even with a bad value. */
static void
test_help(void **state)
{
    cw_worker_t   w;
    int           rc;
    char         *help, *own, *level, *pg;
    const char   *flags[] = { "--count=99", "--help" };

    help = stdout_of(&w, flags, 2, &rc);
    assert_int_equal(rc, -1);
    assert_int_equal(w.status, 0);
    assert_int_equal(check_calls, 0);

    assert_non_null(strstr(help, "Usage: commerce-tester [--option=value"));
    assert_non_null(strstr(help, "a test worker\n"));
    assert_non_null(strstr(help, "--kafka.batch-max=INT [COMMERCE_KAFKA_"
                                 "BATCH_MAX] default \"2500\""));
    assert_non_null(strstr(help, "--kafka.fetch.wait.max.ms=VALUE (file or "
                                 "flag only) default \"10\""));
    assert_non_null(strstr(help, "--metrics.port=INT [COMMERCE_METRICS_PORT] "
                                 "default \"0\""));
    own = strstr(help, "--count=INT");
    level = strstr(help, "--log-level=STR [COMMERCE_LOG_LEVEL] default "
                         "\"info\"");
    pg = strstr(help, "--pg.conninfo=STR");
    assert_true(own != NULL && level != NULL && pg != NULL);
    assert_true(own < level && level < pg);
    assert_null(strstr(help, "redis."));            /* not used */

    assert_int_equal(cw_worker_exit(&w, w.status), 0);
    assert_null(strstr(logged(), "exit"));
}


static void
expect_exit(const char *const *flags, int n, int status, const char *msg)
{
    cw_worker_t  w;

    assert_int_equal(start(&w, &def, flags, n), -1);
    assert_int_equal(w.status, status);
    assert_int_equal(cw_worker_exit(&w, w.status), status);
    if (strstr(logged(), msg) == NULL) {
        fail_msg("log \"%s\" lacks \"%s\"", logged(), msg);
    }
}


/* Every configuration error exits 2, its log line naming the key and
 * where the value came from. */
static void
test_bad_config(void **state)
{
    char         *path, flag[128];
    const char   *range[] = { "--kafka.batch-max=0" };
    const char   *level[] = { "--log-level=loud" };
    const char   *own[] = { "--count=13" };
    const char   *unknown[] = { "--nope" };
    const char   *file[1];

    expect_exit(range, 1, 2, "config: option \\\"kafka.batch_max\\\" from "
                "flag --kafka.batch-max: 0 is out of range");
    expect_exit(level, 1, 2, "config: option \\\"log_level\\\" from flag "
                "--log-level: \\\"loud\\\" is not one of debug, info, warn, "
                "error");
    expect_exit(own, 1, 2, "config: option \\\"count\\\" from flag --count: "
                "13 is unlucky");
    expect_exit(unknown, 1, 2, "config: unknown flag --nope (see --help)");

    path = unit_write_file("log_level = loud\n");
    snprintf(flag, sizeof(flag), "--config=%s", path);
    file[0] = flag;
    expect_exit(file, 1, 2, "from file /tmp/cw_unit_");
    unlink(path);
    assert_non_null(strstr(logged(), "\"msg\":\"exit 2\""));
}


/* A default for an option of a part the worker does not use is a bug in
 * the worker: exit 1. */
static void
test_bad_def(void **state)
{
    static const cw_worker_default_t  bad[] = {
        { "redis.address", "127.0.0.1:6379" },
    };
    cw_worker_t                       w;
    cw_worker_def_t                   d = def;

    d.defaults = bad;
    d.ndefaults = 1;
    assert_int_equal(start(&w, &d, NULL, 0), -1);
    assert_int_equal(w.status, 1);
    assert_int_equal(cw_worker_exit(&w, w.status), 1);
    assert_non_null(strstr(logged(), "setting up configuration failed"));
}


static void
test_log_level(void **state)
{
    cw_worker_t   w;
    const char   *flags[] = { "--log-level=warn" };

    assert_int_equal(start(&w, &def, flags, 1), 0);
    assert_false(cw_log_enabled(CW_LOG_INFO));
    assert_true(cw_log_enabled(CW_LOG_WARN));
    cw_worker_exit(&w, 0);
    cw_log_set_level(CW_LOG_INFO);
}


/* Serves an empty registry on port (0: any); NULL if the port is taken. */
static cw_metrics_t *
serve(int port)
{
    char           err[256];
    cw_metrics_t  *m = cw_metrics_new();

    assert_non_null(m);
    if (cw_metrics_serve(m, port, err, sizeof(err)) != 0) {
        cw_metrics_free(m);
        return NULL;
    }
    return m;
}


/* metrics.port > 0: the thread listens there until exit; a port that
 * cannot be had exits 1. */
static void
test_metrics_thread(void **state)
{
    cw_worker_t    w;
    char           flag[64];
    const char    *flags[1];
    cw_metrics_t  *m;
    int            port;

    m = serve(0);
    assert_non_null(m);
    port = cw_metrics_port(m);
    cw_metrics_free(m);                         /* free again */

    snprintf(flag, sizeof(flag), "--metrics.port=%d", port);
    flags[0] = flag;
    assert_int_equal(start(&w, &def, flags, 1), 0);
    assert_int_equal(cw_metrics_port(w.metrics), port);
    assert_null(serve(port));                   /* the worker's */
    cw_worker_exit(&w, 0);

    m = serve(port);                            /* given back, taken */
    assert_non_null(m);
    expect_exit(flags, 1, 1, "metrics: metrics listen 127.0.0.1:");
    cw_metrics_free(m);
}


/* With CW_WORKER_SIGNALS, SIGTERM raises the stop flag instead of ending
 * the process. */
static void
test_signals(void **state)
{
    cw_worker_t  w;

    assert_int_equal(start(&w, &def, NULL, 0), 0);
    assert_false(cw_signal_stop_requested());
    raise(SIGTERM);
    assert_true(cw_signal_stop_requested());
    assert_int_equal(cw_signal_which(), SIGTERM);
    cw_worker_exit(&w, 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passthrough_default, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_def, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_thread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_signals, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
