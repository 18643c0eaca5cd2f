/*
 * proj_error: the rejection reason of a message (see proj.h).
 */

#include <stdarg.h>
#include <stdio.h>

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
