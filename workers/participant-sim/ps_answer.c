/*
 * ps_answer: an answer's bytes and names, made from its JSON, copied into
 * the idempotency map and out of it.
 */

#include <stdlib.h>
#include <string.h>

#include "ps.h"


static char *
ps_strdup_or_null(const char *s, int *failed)
{
    char  *d;

    if (s == NULL) {
        return NULL;
    }
    d = strdup(s);
    *failed |= d == NULL;

    return d;
}


ps_answer_t *
ps_answer_copy(const ps_answer_t *a)
{
    int           failed = 0;
    ps_answer_t  *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->webhook = a->webhook;
    c->len = a->len;
    c->body = ps_strdup_or_null(a->body, &failed);
    c->reply_type = ps_strdup_or_null(a->reply_type, &failed);
    c->event_id = ps_strdup_or_null(a->event_id, &failed);
    if (failed) {
        ps_answer_free(c);
        return NULL;
    }

    return c;
}


void
ps_answer_free(ps_answer_t *a)
{
    if (a == NULL) {
        return;
    }
    free(a->body);
    free(a->reply_type);
    free(a->event_id);
    free(a);
}


ps_answer_t *
ps_answer_new(json_t *j, const char *reply_type, const char *event_id)
{
    int           failed = 0;
    ps_answer_t  *a;

    if (j == NULL) {
        return NULL;
    }

    a = calloc(1, sizeof(*a));
    if (a != NULL) {
        a->webhook = event_id != NULL;
        a->body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        a->reply_type = ps_strdup_or_null(reply_type, &failed);
        a->event_id = ps_strdup_or_null(event_id, &failed);
        if (a->body == NULL || failed) {
            ps_answer_free(a);
            a = NULL;
        } else {
            a->len = strlen(a->body);
        }
    }
    json_decref(j);

    return a;
}
