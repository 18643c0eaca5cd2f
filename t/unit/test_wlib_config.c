/*
 * cw_config: precedence of default < file < environment < flags, typed
 * parsing, validation errors that name the key and source, --help.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cw_config.h"
#include "unit_file.h"

static const cw_opt_t  opts[] = {
    { "name", CW_OPT_STR, "dflt", 0, 0, 0, "a string" },
    { "workers", CW_OPT_INT, "2", 1, 16, 0, "an int in 1..16" },
    { "poll", CW_OPT_DURATION, "250ms", 0, 0, 0, "a duration" },
    { "verbose", CW_OPT_BOOL, "false", 0, 0, 0, "a bool" },
    { "kafka.group_id", CW_OPT_STR, NULL, 0, 0, 0, "a dotted key" },
    { "bootstrap_file", CW_OPT_STR, NULL, 0, 0, 0, "an underscored key" },
    { "kafka.", CW_OPT_PREFIX, NULL, 0, 0, 0, "pass-through" },
};

static char  err[512];


static cw_config_t *
new_config(void)
{
    cw_config_t *c = cw_config_new("test", "a test program");

    assert_non_null(c);
    assert_int_equal(cw_config_declare(c, opts, sizeof(opts) / sizeof(opts[0])), 0);
    return c;
}


static void
test_defaults(void **state)
{
    cw_config_t  *c = new_config();
    char         *argv[] = { "test", NULL };
    char         *envp[] = { NULL };

    assert_int_equal(cw_config_load(c, 1, argv, envp, err, sizeof(err)), 0);
    assert_string_equal(cw_config_str(c, "name"), "dflt");
    assert_int_equal(cw_config_int(c, "workers"), 2);
    assert_int_equal(cw_config_duration_ms(c, "poll"), 250);
    assert_int_equal(cw_config_bool(c, "verbose"), 0);
    assert_null(cw_config_str(c, "kafka.group_id"));
    assert_int_equal(cw_config_source(c, "name"), CW_SRC_DEFAULT);
    assert_int_equal(cw_config_source(c, "kafka.group_id"), CW_SRC_UNSET);
    cw_config_free(c);
}


static void
test_precedence(void **state)
{
    cw_config_t  *c = new_config();
    char         *path, flag[128];
    char         *envp[] = { "COMMERCE_WORKERS=5", "COMMERCE_POLL=2s",
                             "COMMERCE_KAFKA_GROUP_ID=from-env", NULL };
    char         *argv[4];

    path = unit_write_file("# comment\n"
                      "name = from-file\n"
                      "workers = 3\n"
                      "  poll=1s  \n"
                      "\n"
                      "kafka.group_id = \"quoted file\"\n");
    snprintf(flag, sizeof(flag), "--config=%s", path);
    argv[0] = "test";
    argv[1] = flag;
    argv[2] = "--poll=1m30s";
    argv[3] = NULL;

    assert_int_equal(cw_config_load(c, 3, argv, envp, err, sizeof(err)), 0);
    /* file beats default */
    assert_string_equal(cw_config_str(c, "name"), "from-file");
    assert_int_equal(cw_config_source(c, "name"), CW_SRC_FILE);
    assert_non_null(strstr(cw_config_origin(c, "name"), ":2"));
    /* env beats file */
    assert_int_equal(cw_config_int(c, "workers"), 5);
    assert_int_equal(cw_config_source(c, "workers"), CW_SRC_ENV);
    assert_string_equal(cw_config_str(c, "kafka.group_id"), "from-env");
    /* flag beats env and file */
    assert_int_equal(cw_config_duration_ms(c, "poll"), 90000);
    assert_int_equal(cw_config_source(c, "poll"), CW_SRC_FLAG);
    unlink(path);
    cw_config_free(c);
}


static void
test_flag_forms(void **state)
{
    cw_config_t  *c = new_config();
    char         *envp[] = { NULL };
    char         *argv[] = { "test", "--workers", "7", "--verbose",
                             "--bootstrap-file=/tmp/b", "--kafka.fetch.wait.max.ms=50",
                             NULL };

    assert_int_equal(cw_config_load(c, 6, argv, envp, err, sizeof(err)), 0);
    assert_int_equal(cw_config_int(c, "workers"), 7);
    assert_int_equal(cw_config_bool(c, "verbose"), 1);
    assert_string_equal(cw_config_str(c, "bootstrap_file"), "/tmp/b");
    cw_config_free(c);
}


static int
collect(void *ud, const char *key, const char *value)
{
    char  *out = ud;

    strcat(out, key);
    strcat(out, "=");
    strcat(out, value);
    strcat(out, ";");
    return 0;
}


static void
test_passthrough(void **state)
{
    cw_config_t  *c = new_config();
    char         *path, flag[128], seen[256] = "";
    char         *envp[] = { NULL };
    char         *argv[4];

    path = unit_write_file("kafka.session.timeout.ms = 10000\n"
                      "kafka.fetch.wait.max.ms = 500\n");
    snprintf(flag, sizeof(flag), "--config=%s", path);
    argv[0] = "test";
    argv[1] = flag;
    argv[2] = "--kafka.fetch.wait.max.ms=50";
    argv[3] = NULL;
    assert_int_equal(cw_config_load(c, 3, argv, envp, err, sizeof(err)), 0);
    assert_int_equal(cw_config_each_prefixed(c, "kafka.", collect, seen), 0);
    /* declared kafka.group_id is not a pass-through; the flag wins */
    assert_string_equal(seen, "session.timeout.ms=10000;fetch.wait.max.ms=50;");
    unlink(path);
    cw_config_free(c);
}


/* The pass-through properties once argv is loaded over a worker's
 * default fetch.wait.max.ms = 10. */
static const char *
passthrough_over_default(int argc, char **argv)
{
    static char   seen[256];
    cw_config_t  *c = new_config();
    char         *none[] = { NULL };

    assert_int_equal(cw_config_set_default(c, "kafka.fetch.wait.max.ms",
                                           "10"), 0);
    assert_int_equal(cw_config_load(c, argc, argv, none, err, sizeof(err)),
                     0);
    seen[0] = '\0';
    assert_int_equal(cw_config_each_prefixed(c, "kafka.", collect, seen), 0);
    cw_config_free(c);
    return seen;
}


/* A worker's default for a pass-through property: passed through when
 * nothing sets it, replaced by the file and by a flag, shown by --help. */
static void
test_passthrough_default(void **state)
{
    cw_config_t  *c;
    char         *path, flag[128], *buf = NULL;
    char         *none[] = { NULL };
    char         *argv[] = { "test", NULL, NULL };
    char         *help[] = { "test", "--help", NULL };
    size_t        len = 0;
    FILE         *f;

    assert_string_equal(passthrough_over_default(1, argv),
                        "fetch.wait.max.ms=10;");

    path = unit_write_file("kafka.fetch.wait.max.ms = 500\n");
    snprintf(flag, sizeof(flag), "--config=%s", path);
    argv[1] = flag;
    assert_string_equal(passthrough_over_default(2, argv),
                        "fetch.wait.max.ms=500;");
    unlink(path);

    argv[1] = "--kafka.fetch.wait.max.ms=50";
    assert_string_equal(passthrough_over_default(2, argv),
                        "fetch.wait.max.ms=50;");

    c = new_config();
    assert_int_equal(cw_config_set_default(c, "kafka.fetch.wait.max.ms",
                                           "10"), 0);
    assert_int_equal(cw_config_load(c, 2, help, none, err, sizeof(err)), 1);
    f = open_memstream(&buf, &len);
    cw_config_help(c, f);
    fclose(f);
    assert_non_null(strstr(buf, "  --kafka.<name>=VALUE (file or flag only)\n"
                                "      pass-through\n"
                                "  --kafka.fetch.wait.max.ms=VALUE (file or "
                                "flag only) default \"10\"\n"));
    free(buf);
    cw_config_free(c);
}


static void
expect_error(const char *const *args, int n, const char *const *env,
    const char *needle)
{
    cw_config_t  *c = new_config();
    char         *argv[16];
    char         *envp[8];
    int           i;

    argv[0] = "test";
    for (i = 0; i < n; i++) {
        argv[i + 1] = (char *) args[i];
    }
    argv[n + 1] = NULL;
    for (i = 0; env != NULL && env[i] != NULL; i++) {
        envp[i] = (char *) env[i];
    }
    envp[i] = NULL;
    err[0] = '\0';
    assert_int_equal(cw_config_load(c, n + 1, argv, envp, err, sizeof(err)), -1);
    if (strstr(err, needle) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
    }
    cw_config_free(c);
}


static void
test_validation(void **state)
{
    const char  *a1[] = { "--workers=17" };
    const char  *a2[] = { "--poll=5x" };
    const char  *a3[] = { "--verbose=maybe" };
    const char  *a4[] = { "--nope=1" };
    const char  *a5[] = { "positional" };
    const char  *a6[] = { "--workers" };
    const char  *a7[] = { "--nope" };
    const char  *e1[] = { "COMMERCE_WORKERS=abc", NULL };

    expect_error(a1, 1, NULL,
                 "option \"workers\" from flag --workers: 17 is out of range [1, 16]");
    expect_error(a2, 1, NULL, "option \"poll\" from flag --poll: invalid duration \"5x\"");
    expect_error(a3, 1, NULL, "invalid bool \"maybe\"");
    expect_error(a4, 1, NULL, "unknown flag --nope");
    expect_error(a5, 1, NULL, "unexpected argument \"positional\"");
    expect_error(a6, 1, NULL, "flag --workers needs a value");
    expect_error(a7, 1, NULL, "unknown flag --nope (see --help)");
    expect_error(NULL, 0, e1,
                 "option \"workers\" from env COMMERCE_WORKERS: invalid integer \"abc\"");
}


static void
test_file_errors(void **state)
{
    cw_config_t  *c = new_config();

    assert_int_equal(cw_config_load_text(c, "w.conf", "name = x\nbogus = 1\n",
                                         err, sizeof(err)), -1);
    assert_string_equal(err, "file w.conf:2: unknown option \"bogus\"");
    assert_int_equal(cw_config_load_text(c, "w.conf", "just words\n", err,
                                         sizeof(err)), -1);
    assert_string_equal(err, "file w.conf:1: expected \"key = value\"");
    cw_config_free(c);
}


static void
test_required(void **state)
{
    static const cw_opt_t  req[] = {
        { "pg.conninfo", CW_OPT_STR, NULL, 0, 0, CW_OPT_REQUIRED, "needed" },
    };
    cw_config_t  *c = cw_config_new("test", "");
    char         *argv[] = { "test", NULL };
    char         *envp[] = { NULL };

    cw_config_declare(c, req, 1);
    assert_int_equal(cw_config_load(c, 1, argv, envp, err, sizeof(err)), -1);
    assert_string_equal(err, "option \"pg.conninfo\" is required but not set");
    cw_config_free(c);
}


static void
test_durations(void **state)
{
    long long  v;

    assert_int_equal(cw_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(cw_parse_duration_ms("5s", &v), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(cw_parse_duration_ms("2m", &v), 0);
    assert_int_equal(v, 120000);
    assert_int_equal(cw_parse_duration_ms("1h30m", &v), 0);
    assert_int_equal(v, 5400000);
    assert_int_equal(cw_parse_duration_ms("1d", &v), 0);
    assert_int_equal(v, 86400000);
    assert_int_equal(cw_parse_duration_ms("1s500ms", &v), 0);
    assert_int_equal(v, 1500);
    assert_int_equal(cw_parse_duration_ms("42", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cw_parse_duration_ms(" 3s ", &v), 0);
    assert_int_equal(v, 3000);

    assert_int_equal(cw_parse_duration_ms("", &v), -1);
    assert_int_equal(cw_parse_duration_ms("-5s", &v), -1);
    assert_int_equal(cw_parse_duration_ms("5", &v), 0);
    assert_int_equal(cw_parse_duration_ms("5 s", &v), -1);
    assert_int_equal(cw_parse_duration_ms("s", &v), -1);
    assert_int_equal(cw_parse_duration_ms("1.5s", &v), -1);
    assert_int_equal(cw_parse_duration_ms("10us", &v), -1);
    assert_int_equal(cw_parse_duration_ms("99999999999999999999d", &v), -1);
}


static void
test_bool_int(void **state)
{
    long long  v;
    int        b;

    assert_int_equal(cw_parse_bool("Yes", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(cw_parse_bool("off", &b), 0);
    assert_int_equal(b, 0);
    assert_int_equal(cw_parse_bool("2", &b), -1);
    assert_int_equal(cw_parse_int("-12", &v), 0);
    assert_int_equal(v, -12);
    assert_int_equal(cw_parse_int("12abc", &v), -1);
    assert_int_equal(cw_parse_int("99999999999999999999", &v), -1);
}


static void
test_help(void **state)
{
    cw_config_t  *c = new_config();
    char         *buf = NULL, *argv[] = { "test", "--workers=99", "--help",
                                          NULL };
    size_t        len = 0;
    FILE         *f;

    /* --help wins even over invalid values */
    assert_int_equal(cw_config_load(c, 3, argv, NULL, err, sizeof(err)), 1);
    f = open_memstream(&buf, &len);
    cw_config_help(c, f);
    fclose(f);
    assert_non_null(strstr(buf, "Usage: test"));
    assert_non_null(strstr(buf, "--workers=INT [COMMERCE_WORKERS] default \"2\" range 1..16"));
    assert_non_null(strstr(buf, "--bootstrap-file=STR [COMMERCE_BOOTSTRAP_FILE]"));
    assert_non_null(strstr(buf, "--kafka.group-id=STR [COMMERCE_KAFKA_GROUP_ID]"));
    assert_non_null(strstr(buf, "--kafka.<name>=VALUE"));
    free(buf);
    cw_config_free(c);
}


/* A worker's own default for a library's option: used when nothing sets
 * it, beaten by the environment (and so by file and flags), shown by
 * --help; only declared keys and keys under a declared prefix take one. */
static void
test_worker_default(void **state)
{
    cw_config_t  *c;
    char         *buf = NULL, *argv[] = { "test", NULL };
    char         *help[] = { "test", "--help", NULL };
    char         *none[] = { NULL };
    char         *envp[] = { "COMMERCE_WORKERS=7", NULL };
    size_t        len = 0;
    FILE         *f;

    c = new_config();
    assert_int_equal(cw_config_set_default(c, "workers", "4"), 0);
    assert_int_equal(cw_config_set_default(c, "kafka.group_id", "mine"), 0);
    assert_int_equal(cw_config_set_default(c, "nope", "1"), -1);
    assert_int_equal(cw_config_set_default(c, "kafka.", "1"), -1);
    assert_int_equal(cw_config_set_default(c, "other.fetch.wait.max.ms",
                                           "1"), -1);
    assert_int_equal(cw_config_load(c, 1, argv, none, err, sizeof(err)), 0);
    assert_int_equal(cw_config_int(c, "workers"), 4);
    assert_int_equal(cw_config_source(c, "workers"), CW_SRC_DEFAULT);
    assert_string_equal(cw_config_str(c, "kafka.group_id"), "mine");
    cw_config_free(c);

    c = new_config();
    assert_int_equal(cw_config_set_default(c, "workers", "4"), 0);
    assert_int_equal(cw_config_load(c, 1, argv, envp, err, sizeof(err)), 0);
    assert_int_equal(cw_config_int(c, "workers"), 7);
    assert_int_equal(cw_config_source(c, "workers"), CW_SRC_ENV);
    cw_config_free(c);

    c = new_config();
    assert_int_equal(cw_config_set_default(c, "workers", "4"), 0);
    assert_int_equal(cw_config_load(c, 2, help, none, err, sizeof(err)), 1);
    f = open_memstream(&buf, &len);
    cw_config_help(c, f);
    fclose(f);
    assert_non_null(strstr(buf, "--workers=INT [COMMERCE_WORKERS] default \"4\""));
    free(buf);
    cw_config_free(c);
}


static void
test_duplicate_declare(void **state)
{
    cw_config_t  *c = new_config();

    assert_int_equal(cw_config_declare(c, opts, 1), -1);
    cw_config_free(c);
}


/*
 * A program's own defaults, loaded as text after cw_config_load, must
 * change what the typed getters return (the projector's batch settings
 * once did not take effect).
 */
static void
test_text_after_load(void **state)
{
    cw_config_t  *c = new_config();
    char         *argv[] = { "test", NULL };
    char         *envp[] = { NULL };

    assert_int_equal(cw_config_load(c, 1, argv, envp, err, sizeof(err)), 0);
    assert_int_equal(cw_config_int(c, "workers"), 2);
    assert_int_equal(cw_config_duration_ms(c, "poll"), 250);

    assert_int_equal(cw_config_load_text(c, "defaults",
                                         "workers = 5\npoll = 5ms\n", err,
                                         sizeof(err)), 0);
    assert_int_equal(cw_config_int(c, "workers"), 5);
    assert_int_equal(cw_config_duration_ms(c, "poll"), 5);

    cw_config_free(c);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_flag_forms),
        cmocka_unit_test(test_passthrough),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_bool_int),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_worker_default),
        cmocka_unit_test(test_passthrough_default),
        cmocka_unit_test(test_duplicate_declare),
        cmocka_unit_test(test_text_after_load),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
