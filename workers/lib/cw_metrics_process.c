/*
 * cw_metrics_process: the process_* series every worker serves, as
 * Prometheus' own process collector defines them, read from /proc at
 * each scrape (nothing on the worker's path).
 */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cw_metrics.h"

/* The series, looked up by name at each scrape (the registry returns the
 * one registered), so the collector keeps no state of its own. */
#define CW_RSS    "process_resident_memory_bytes", \
                  "Resident memory size in bytes."
#define CW_CPU    "process_cpu_seconds_total", \
                  "Total user and system CPU time spent in seconds."
#define CW_FDS    "process_open_fds", "Number of open file descriptors."
#define CW_START  "process_start_time_seconds", \
                  "Start time of the process since unix epoch in seconds."

/* The fields of /proc/self/stat used, numbered as in proc(5). */
typedef struct {
    unsigned long long   utime;         /* 14, clock ticks */
    unsigned long long   stime;         /* 15 */
    unsigned long long   starttime;     /* 22, ticks after boot */
    long long            rss;           /* 24, pages */
} cw_proc_stat_t;


/* Parses /proc/self/stat; the command name (field 2) may hold spaces
 * and parentheses, so fields are counted after its last ')'. */
static int
cw_proc_stat(cw_proc_stat_t *st)
{
    char     buf[1024], *p, *tok, *save;
    size_t   n;
    FILE    *f;
    int      field;

    f = fopen("/proc/self/stat", "re");
    if (f == NULL) {
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';

    p = strrchr(buf, ')');
    if (p == NULL) {
        return -1;
    }
    memset(st, 0, sizeof(*st));
    field = 3;
    for (tok = strtok_r(p + 1, " ", &save); tok != NULL;
         tok = strtok_r(NULL, " ", &save), field++)
    {
        if (field == 14) {
            st->utime = strtoull(tok, NULL, 10);
        } else if (field == 15) {
            st->stime = strtoull(tok, NULL, 10);
        } else if (field == 22) {
            st->starttime = strtoull(tok, NULL, 10);
        } else if (field == 24) {
            st->rss = strtoll(tok, NULL, 10);
            return 0;
        }
    }
    return -1;
}


/* The boot time, seconds since the epoch ("btime" of /proc/stat). */
static double
cw_boot_time(void)
{
    char     line[256];
    double   btime = 0;
    FILE    *f;

    f = fopen("/proc/stat", "re");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtod(line + 6, NULL);
            break;
        }
    }
    fclose(f);
    return btime;
}


/* Open descriptors, not counting the one that reads the directory. */
static int
cw_open_fds(void)
{
    DIR            *d;
    struct dirent  *e;
    int             n = 0;

    d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1;
}


static void
cw_process_collect(cw_metrics_t *m, void *ud)
{
    cw_proc_stat_t   st;
    cw_metric_t     *s;
    double           hz = (double) sysconf(_SC_CLK_TCK);
    int              fds;

    if (cw_proc_stat(&st) == 0) {
        s = cw_metrics_counter(m, CW_CPU, NULL);
        if (s != NULL) {
            cw_counter_set(s, (double) (st.utime + st.stime) / hz);
        }
        s = cw_metrics_gauge(m, CW_RSS, NULL);
        if (s != NULL) {
            cw_gauge_set(s, (double) st.rss * (double) sysconf(_SC_PAGESIZE));
        }
    }
    fds = cw_open_fds();
    s = cw_metrics_gauge(m, CW_FDS, NULL);
    if (fds >= 0 && s != NULL) {
        cw_gauge_set(s, fds);
    }
}


int
cw_metrics_process(cw_metrics_t *m)
{
    cw_proc_stat_t   st;
    cw_metric_t     *start;

    if (cw_metrics_gauge(m, CW_RSS, NULL) == NULL
        || cw_metrics_counter(m, CW_CPU, NULL) == NULL
        || cw_metrics_gauge(m, CW_FDS, NULL) == NULL
        || (start = cw_metrics_gauge(m, CW_START, NULL)) == NULL
        || cw_proc_stat(&st) != 0)
    {
        return -1;
    }

    cw_gauge_set(start, cw_boot_time()
                 + (double) st.starttime / (double) sysconf(_SC_CLK_TCK));

    return cw_metrics_collector(m, cw_process_collect, NULL);
}
