/*
 * cw_worker: the start-up and the shutdown every worker shares.
 *
 * A worker describes itself in a cw_worker_def_t: its name, its own
 * options, the library parts it uses and its defaults for their options.
 * cw_worker_start then
 *   1. declares the options: the worker's, log_level (one declaration for
 *      every worker), then those of each part used (pg.*, redis.*,
 *      kafka.*, metrics.port), in that order, which is --help's order;
 *   2. sets the worker's defaults, before loading, so --help shows them;
 *   3. loads default < config file < environment < flags (cw_config.h);
 *      on --help prints the text generated from the declarations;
 *   4. checks the values: cw_config's types and ranges, log_level, then
 *      the worker's own check; every error names the key and its origin;
 *   5. sets the log level, installs the signal handlers (CW_WORKER_SIGNALS)
 *      and creates the metrics registry (CW_WORKER_METRICS) with the
 *      process_* series, whose thread
 *      serves GET /metrics when metrics.port > 0.
 * cw_worker_exit stops the metrics thread, frees the configuration, logs
 * "exit N" (not after --help) and returns N for main to return.
 *
 * Exit codes: 0 done (and --help), 1 failure, 2 bad configuration.
 *
 * Use:
 *   static const cw_worker_def_t  xx_worker = {
 *       "xx", "what xx does", xx_opts, sizeof(xx_opts) / sizeof(xx_opts[0]),
 *       CW_WORKER_PG | CW_WORKER_SIGNALS, xx_defaults, 1, xx_check
 *   };
 *
 *   if (cw_worker_start(&w, &xx_worker, argc, argv) != 0) {
 *       return cw_worker_exit(&w, w.status);
 *   }
 *   ... the worker's work: options from w.cfg, series in w.metrics ...
 *   return cw_worker_exit(&w, status);
 */

#ifndef CW_WORKER_H
#define CW_WORKER_H

#include <stddef.h>

#include "cw_config.h"
#include "cw_metrics.h"

/* The library parts a worker uses. */
#define CW_WORKER_PG       0x01u  /* pg.* (cw_pg_declare) */
#define CW_WORKER_REDIS    0x02u  /* redis.* (cw_redis_declare) */
#define CW_WORKER_KAFKA    0x04u  /* kafka.*, kafka.<property> pass-through */
#define CW_WORKER_METRICS  0x08u  /* metrics.port, registry and its thread */
#define CW_WORKER_SIGNALS  0x10u  /* SIGTERM/SIGINT raise the stop flag;
                                     without it they end the process (a
                                     one-shot tool: PostgreSQL rolls back
                                     its open transaction) */

/* A worker's default for a library option ("kafka.batch_max") or for a
 * pass-through property ("kafka.fetch.wait.max.ms"). */
typedef struct {
    const char  *key;
    const char  *value;
} cw_worker_default_t;

/* Checks what a type and a range cannot (options that go together, a
 * value from a list). Returns -1 with err naming the key and its origin
 * (cw_config_origin): the worker then exits 2. */
typedef int (*cw_worker_check_pt)(const cw_config_t *cfg, char *err,
    size_t errlen);

typedef struct {
    const char                 *name;       /* "projector": the program is
                                               commerce-projector, logs say
                                               "worker":"projector" */
    const char                 *summary;    /* --help's second line */
    const cw_opt_t             *opts;       /* the worker's own options */
    size_t                      nopts;
    unsigned                    uses;       /* CW_WORKER_* */
    const cw_worker_default_t  *defaults;
    size_t                      ndefaults;
    cw_worker_check_pt          check;      /* NULL: none */
} cw_worker_def_t;

/* Filled by cw_worker_start; the def and the strings in it must outlive
 * it. */
typedef struct {
    cw_config_t   *cfg;         /* loaded and checked */
    cw_metrics_t  *metrics;     /* CW_WORKER_METRICS, or NULL */
    int            status;      /* the exit code when start returned -1 */
    int            help;        /* --help was shown: no "exit" line */
} cw_worker_t;

/* Returns 0 when the worker is to run. Returns -1 when it is to exit now
 * with w->status: 0 after --help, 2 after a configuration error, 1 when
 * something could not be set up (each logged). Either way
 * cw_worker_exit must follow. */
int cw_worker_start(cw_worker_t *w, const cw_worker_def_t *def, int argc,
    char *const argv[]);

/* Frees what start set up (the metrics thread stops first), logs
 * "exit <status>" unless --help was shown, and returns status. */
int cw_worker_exit(cw_worker_t *w, int status);

#endif /* CW_WORKER_H */
