/*
 * proj_error: the rejection reason of a message (see proj.h).
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proj.h"


void
proj_error_set(proj_error_t *e, const char *reason, const char *fmt, ...)
{
    va_list  ap;

    snprintf(e->reason, sizeof(e->reason), "%s", reason);

    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
}


void
proj_error_store(proj_error_t *e, const char *err)
{
    const char  *s = strchr(err, '[');

    if (s != NULL && strlen(s) >= 7 && s[6] == ']') {
        proj_error_set(e, "rejected_by_store", "the database refused a "
                       "value of the message (SQLSTATE %.5s)", s + 1);
        return;
    }

    proj_error_set(e, "rejected_by_store", "the database refused a value "
                   "of the message");
}
