/*
 * cw_config: worker configuration from a table of declared options.
 *
 * Sources, lowest to highest precedence:
 *   1. the option's default from the table;
 *   2. a config file of "key = value" lines ('#' starts a comment, values
 *      may be double-quoted), named by --config=PATH or COMMERCE_CONFIG;
 *   3. the environment: COMMERCE_<KEY>, key uppercased with '.' and '-'
 *      turned into '_' (kafka.group_id -> COMMERCE_KAFKA_GROUP_ID);
 *   4. command-line flags: --key=value or --key value ('-' and '_' are
 *      interchangeable in flag names; a bare --flag sets a bool to true).
 *
 * Every value is parsed and range-checked by cw_config_load; an error
 * names the key and where the bad value came from. A CW_OPT_PREFIX entry
 * ("kafka.") accepts any undeclared key under that prefix from the file
 * or flags as a pass-through string (the environment cannot be used for
 * them: the '.' -> '_' mapping is not reversible).
 *
 * Durations are integers with units ms, s, m, h, d, combinable ("1m30s");
 * a bare integer means milliseconds. Bools: true/false, yes/no, on/off, 1/0.
 */

#ifndef CW_CONFIG_H
#define CW_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CW_CONFIG_ENV_PREFIX  "COMMERCE_"

typedef enum {
    CW_OPT_STR,
    CW_OPT_INT,
    CW_OPT_DURATION,     /* stored in milliseconds */
    CW_OPT_BOOL,
    CW_OPT_PREFIX        /* key is a prefix such as "kafka." */
} cw_opt_type_t;

#define CW_OPT_REQUIRED  0x1u   /* must be set (non-empty) by some source */

typedef struct {
    const char     *key;
    cw_opt_type_t   type;
    const char     *def;     /* default as text; NULL: unset */
    long long       min;     /* INT/DURATION(ms) inclusive range, used */
    long long       max;     /*   when min < max */
    unsigned        flags;
    const char     *help;
} cw_opt_t;

typedef enum {
    CW_SRC_UNSET = 0,
    CW_SRC_DEFAULT,
    CW_SRC_FILE,
    CW_SRC_ENV,
    CW_SRC_FLAG
} cw_source_t;

typedef struct cw_config_s cw_config_t;

/* Called for each pass-through key under a prefix; the key is given
 * with the prefix stripped. */
typedef int (*cw_config_each_pt)(void *ud, const char *key,
    const char *value);

cw_config_t *cw_config_new(const char *prog, const char *summary);
void cw_config_free(cw_config_t *c);

/* Adds a table of options; tables from several modules can be combined
 * (cw_kafka_declare, cw_pg_declare, ...). Returns -1 on a duplicate key
 * or allocation failure. The table must outlive the config. */
int cw_config_declare(cw_config_t *c, const cw_opt_t *opts, size_t n);

/* A worker's own default for a declared option (a library's table has
 * another), or for a pass-through key under a declared prefix (a
 * librdkafka property such as "kafka.fetch.wait.max.ms"): used when
 * nothing else sets it, and shown by --help. Call it before
 * cw_config_load; def must outlive the config. Returns -1 if key is
 * neither (or on allocation failure). */
int cw_config_set_default(cw_config_t *c, const char *key, const char *def);

/* Reads file, environment (envp; NULL means environ) and argv (argv[0]
 * is the program). Returns 0 on success, 1 if --help was given (nothing
 * else is validated then), -1 with a message in err. */
int cw_config_load(cw_config_t *c, int argc, char *const argv[],
    char *const envp[], char *err, size_t errlen);

/* Loads only a config file's text (tests, embedded defaults); name is
 * used in error messages. */
int cw_config_load_text(cw_config_t *c, const char *name, const char *text,
    char *err, size_t errlen);

/* Writes --help text generated from the declared options. */
void cw_config_help(const cw_config_t *c, FILE *out);

/* Typed getters. The key must be declared with the matching type (a
 * programming error aborts with a message). */
const char *cw_config_str(const cw_config_t *c, const char *key);
long long cw_config_int(const cw_config_t *c, const char *key);
long long cw_config_duration_ms(const cw_config_t *c, const char *key);
int cw_config_bool(const cw_config_t *c, const char *key);

/* Where the effective value came from, and a printable origin such as
 * "file /etc/w.conf:12", "env COMMERCE_X", "flag --x" or "default". */
cw_source_t cw_config_source(const cw_config_t *c, const char *key);
const char *cw_config_origin(const cw_config_t *c, const char *key);

/* Walks pass-through keys under a declared prefix; stops and returns the
 * callback's value if it is non-zero. */
int cw_config_each_prefixed(const cw_config_t *c, const char *prefix,
    cw_config_each_pt cb, void *ud);

/* Pure parsers, shared with code that reads values from elsewhere. */
int cw_parse_duration_ms(const char *s, long long *out);
int cw_parse_int(const char *s, long long *out);
int cw_parse_bool(const char *s, int *out);

#endif /* CW_CONFIG_H */
