/*
 * proj_error: the rejection reason of a message (see proj.h).
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "commerce_inbound.h"
#include "proj.h"


const char *const  proj_reasons[PROJ_REASON_N + 1] = {
    /* the body (commerce_inbound.h: the edge's reasons too) */
    COMMERCE_INBOUND_INVALID_JSON, COMMERCE_INBOUND_DUPLICATE_KEY,
    COMMERCE_INBOUND_NOT_OBJECT,
    /* validation */
    "invalid_command", "missing_source", "unknown_source",
    "empty_message", "unknown_command", "missing_field", "invalid_type",
    "invalid_id", "too_long", "invalid_amount", "invalid_currency",
    "invalid_timestamp", "invalid_quantity", "out_of_range",
    "negative_stock", "invalid_reason", "unsupported_unit", "invalid_range",
    "duplicate_sku",
    /* Shopify */
    "missing_topic", "unsupported_topic",
    /* refused while applied, or parked */
    "unmapped_reference", "unknown_sku", "stock_underflow",
    "rejected_by_store",
    "internal",
    /* what a reason not in this list is counted as */
    "other",
    NULL
};


int
proj_reason_index(const char *reason)
{
    int  i;

    for (i = 0; reason != NULL && proj_reasons[i] != NULL; i++) {
        if (strcmp(proj_reasons[i], reason) == 0) {
            return i;
        }
    }

    return -1;
}


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
