/*
 * cw_worker: declarations, loading, checks, log level, signals and
 * metrics of a worker's start-up, and its exit.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_pg.h"
#include "cw_redis.h"
#include "cw_signal.h"
#include "cw_worker.h"

static const cw_opt_t  cw_worker_log_opt = {
    "log_level", CW_OPT_STR, "info", 0, 0, 0, "debug, info, warn or error"
};


/* Declares the worker's options, log_level and the parts' options, then
 * sets the worker's defaults. */
static int
cw_worker_declare(cw_config_t *cfg, const cw_worker_def_t *def)
{
    size_t  i;

    if (cw_config_declare(cfg, def->opts, def->nopts) != 0
        || cw_config_declare(cfg, &cw_worker_log_opt, 1) != 0
        || ((def->uses & CW_WORKER_PG) && cw_pg_declare(cfg) != 0)
        || ((def->uses & CW_WORKER_REDIS) && cw_redis_declare(cfg) != 0)
        || ((def->uses & CW_WORKER_KAFKA) && cw_kafka_declare(cfg) != 0)
        || ((def->uses & CW_WORKER_METRICS)
            && cw_metrics_declare(cfg, "0") != 0))
    {
        return -1;
    }

    for (i = 0; i < def->ndefaults; i++) {
        if (cw_config_set_default(cfg, def->defaults[i].key,
                                  def->defaults[i].value) != 0)
        {
            return -1;
        }
    }

    return 0;
}


/* Checks what cw_config does not know about: the log level, then the
 * worker's own rules. */
static int
cw_worker_check(const cw_config_t *cfg, const cw_worker_def_t *def,
    cw_log_level_t *level, char *err, size_t errlen)
{
    const char  *v = cw_config_str(cfg, "log_level");

    if (cw_log_level_parse(v, level) != 0) {
        snprintf(err, errlen, "option \"log_level\" from %s: \"%s\" is not "
                 "one of debug, info, warn, error",
                 cw_config_origin(cfg, "log_level"), v);
        return -1;
    }

    return def->check != NULL ? def->check(cfg, err, errlen) : 0;
}


/* Signal handlers, then the metrics registry with the process_* series
 * and its thread (which blocks the signals meant for the main thread). */
static int
cw_worker_parts(cw_worker_t *w, const cw_worker_def_t *def)
{
    int   port;
    char  err[512];

    if ((def->uses & CW_WORKER_SIGNALS) && cw_signal_install() != 0) {
        cw_log(CW_LOG_ERROR, "cannot install signal handlers: %s",
               strerror(errno));
        return -1;
    }

    if (!(def->uses & CW_WORKER_METRICS)) {
        return 0;
    }

    w->metrics = cw_metrics_new();
    if (w->metrics == NULL) {
        cw_log(CW_LOG_ERROR, "metrics: out of memory");
        return -1;
    }
    if (cw_metrics_process(w->metrics) != 0) {
        cw_log(CW_LOG_WARN, "metrics: no process_* series (no /proc?)");
    }

    port = (int) cw_config_int(w->cfg, "metrics.port");
    if (port > 0 && cw_metrics_serve(w->metrics, port, err, sizeof(err)) != 0)
    {
        cw_log(CW_LOG_ERROR, "metrics: %s", err);
        return -1;
    }

    return 0;
}


int
cw_worker_start(cw_worker_t *w, const cw_worker_def_t *def, int argc,
    char *const argv[])
{
    int             rc;
    char            prog[128], err[512];
    cw_log_level_t  level;

    memset(w, 0, sizeof(*w));
    w->status = 1;
    cw_log_init(def->name, CW_LOG_INFO);

    snprintf(prog, sizeof(prog), "commerce-%s", def->name);
    w->cfg = cw_config_new(prog, def->summary);
    if (w->cfg == NULL || cw_worker_declare(w->cfg, def) != 0) {
        cw_log(CW_LOG_ERROR, "setting up configuration failed");
        return -1;
    }

    rc = cw_config_load(w->cfg, argc, argv, NULL, err, sizeof(err));
    if (rc == 1) {
        cw_config_help(w->cfg, stdout);
        w->help = 1;
        w->status = 0;
        return -1;
    }

    if (rc != 0 || cw_worker_check(w->cfg, def, &level, err, sizeof(err))
                   != 0)
    {
        cw_log(CW_LOG_ERROR, "config: %s", err);
        w->status = 2;
        return -1;
    }

    cw_log_set_level(level);

    return cw_worker_parts(w, def);
}


int
cw_worker_exit(cw_worker_t *w, int status)
{
    cw_metrics_free(w->metrics);
    cw_config_free(w->cfg);
    w->metrics = NULL;
    w->cfg = NULL;

    if (!w->help) {
        cw_log(CW_LOG_INFO, "exit %d", status);
    }

    return status;
}
