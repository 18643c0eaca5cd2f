/*
 * cw_log: JSON log lines.
 */

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cw_buf.h"
#include "cw_log.h"
#include "cw_time.h"


static pthread_mutex_t  cw_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char             cw_log_worker[64] = "worker";
static _Atomic int      cw_log_min = CW_LOG_INFO;
static FILE            *cw_log_stream;

static const char *cw_log_names[] = { "debug", "info", "warn", "error" };


void
cw_log_init(const char *worker, cw_log_level_t min_level)
{
    pthread_mutex_lock(&cw_log_lock);
    snprintf(cw_log_worker, sizeof(cw_log_worker), "%s", worker);
    cw_log_min = min_level;
    pthread_mutex_unlock(&cw_log_lock);
}


void
cw_log_set_stream(FILE *f)
{
    pthread_mutex_lock(&cw_log_lock);
    cw_log_stream = f;
    pthread_mutex_unlock(&cw_log_lock);
}


void
cw_log_set_level(cw_log_level_t min_level)
{
    cw_log_min = min_level;
}


int
cw_log_enabled(cw_log_level_t level)
{
    return (int) level >= cw_log_min;
}


int
cw_log_level_parse(const char *s, cw_log_level_t *out)
{
    if (strcasecmp(s, "debug") == 0) {
        *out = CW_LOG_DEBUG;
    } else if (strcasecmp(s, "info") == 0) {
        *out = CW_LOG_INFO;
    } else if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0) {
        *out = CW_LOG_WARN;
    } else if (strcasecmp(s, "error") == 0) {
        *out = CW_LOG_ERROR;
    } else {
        return -1;
    }
    return 0;
}


const char *
cw_log_level_name(cw_log_level_t level)
{
    if (level < CW_LOG_DEBUG || level > CW_LOG_ERROR) {
        return "unknown";
    }
    return cw_log_names[level];
}


/* Formats the whole line into one buffer first so that it reaches the
 * stream with a single fwrite; a failed allocation drops the line. */
static void
cw_log_write(cw_log_level_t level, const cw_field_t *fields, size_t nfields,
    const char *fmt, va_list ap)
{
    cw_buf_t  line, msg;
    char      ts[32];
    size_t    i;
    FILE     *out;

    cw_buf_init(&line);
    cw_buf_init(&msg);
    cw_wall_ts(ts, sizeof(ts));
    cw_buf_vprintf(&msg, fmt, ap);

    pthread_mutex_lock(&cw_log_lock);
    cw_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"worker\":", ts,
                  cw_log_level_name(level));
    cw_buf_json_str(&line, cw_log_worker);
    cw_buf_puts(&line, ",\"msg\":\"");
    if (msg.data != NULL) {
        cw_buf_json_escape(&line, msg.data, msg.len);
    }
    cw_buf_putc(&line, '"');

    for (i = 0; i < nfields; i++) {
        const cw_field_t *f = &fields[i];

        cw_buf_putc(&line, ',');
        cw_buf_json_str(&line, f->key);
        cw_buf_putc(&line, ':');
        switch (f->type) {
        case CW_FIELD_STR:
            if (f->s == NULL) {
                cw_buf_puts(&line, "null");
            } else {
                cw_buf_json_str(&line, f->s);
            }
            break;
        case CW_FIELD_INT:
            cw_buf_printf(&line, "%lld", f->i);
            break;
        case CW_FIELD_DBL:
            if (isfinite(f->d)) {
                cw_buf_printf(&line, "%.17g", f->d);
            } else {
                cw_buf_puts(&line, "null");
            }
            break;
        case CW_FIELD_BOOL:
            cw_buf_puts(&line, f->i ? "true" : "false");
            break;
        }
    }
    cw_buf_puts(&line, "}\n");

    out = cw_log_stream != NULL ? cw_log_stream : stderr;
    if (!line.oom) {
        fwrite(line.data, 1, line.len, out);
        fflush(out);
    }
    pthread_mutex_unlock(&cw_log_lock);

    cw_buf_free(&line);
    cw_buf_free(&msg);
}


void
cw_log(cw_log_level_t level, const char *fmt, ...)
{
    va_list  ap;

    if ((int) level < cw_log_min) {
        return;
    }
    va_start(ap, fmt);
    cw_log_write(level, NULL, 0, fmt, ap);
    va_end(ap);
}


void
cw_log_kv(cw_log_level_t level, const cw_field_t *fields, size_t nfields,
    const char *fmt, ...)
{
    va_list  ap;

    if ((int) level < cw_log_min) {
        return;
    }
    va_start(ap, fmt);
    cw_log_write(level, fields, nfields, fmt, ap);
    va_end(ap);
}
