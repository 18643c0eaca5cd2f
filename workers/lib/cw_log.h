/*
 * cw_log: one JSON object per line on stderr.
 *
 *   {"ts":"2026-01-31T12:00:00.123Z","level":"info","worker":"projector",
 *    "msg":"assigned","topic":"commerce.events","partition":3}
 *
 * The message is printf-style; extra fields are typed key/value pairs:
 *
 *   cw_field_t f[] = { CW_FSTR("topic", t), CW_FINT("partition", p) };
 *   cw_log_kv(CW_LOG_INFO, f, 2, "assigned %d partitions", n);
 *
 * Each line is written with a single write under a mutex, so lines from
 * several threads never interleave.
 */

#ifndef CW_LOG_H
#define CW_LOG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    CW_LOG_DEBUG = 0,
    CW_LOG_INFO,
    CW_LOG_WARN,
    CW_LOG_ERROR
} cw_log_level_t;

typedef enum {
    CW_FIELD_STR,
    CW_FIELD_INT,
    CW_FIELD_DBL,
    CW_FIELD_BOOL
} cw_field_type_t;

typedef struct {
    const char       *key;
    cw_field_type_t   type;
    const char       *s;
    long long         i;
    double            d;
} cw_field_t;

#define CW_FSTR(k, v)  ((cw_field_t) { (k), CW_FIELD_STR, (v), 0, 0 })
#define CW_FINT(k, v)  ((cw_field_t) { (k), CW_FIELD_INT, NULL, (v), 0 })
#define CW_FDBL(k, v)  ((cw_field_t) { (k), CW_FIELD_DBL, NULL, 0, (v) })
#define CW_FBOOL(k, v) ((cw_field_t) { (k), CW_FIELD_BOOL, NULL, !!(v), 0 })

/* Sets the worker name and the minimum level. May be called again. */
void cw_log_init(const char *worker, cw_log_level_t min_level);

/* Redirects output (tests); NULL restores stderr. */
void cw_log_set_stream(FILE *f);

void cw_log_set_level(cw_log_level_t min_level);
int cw_log_enabled(cw_log_level_t level);

/* "debug", "info", "warn"/"warning", "error"; returns -1 if unknown. */
int cw_log_level_parse(const char *s, cw_log_level_t *out);
const char *cw_log_level_name(cw_log_level_t level);

void cw_log(cw_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void cw_log_kv(cw_log_level_t level, const cw_field_t *fields,
    size_t nfields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* CW_LOG_H */
