/*
 * proj_batch: a batch prepared once, outside any transaction: its
 * messages read, adapted and validated (proj_msg.c), its archive's
 * parameters built (see proj_batch.h).
 */

#include <stdlib.h>
#include <sys/time.h>

#include "cw_log.h"
#include "cw_time.h"
#include "proj_batch.h"


/* For the stage trace (debug log): how long ago, in wall-clock ms, the
 * newest and oldest message of the batch were produced (Kafka's
 * CreateTime), as seen when the batch reaches the projector. */
static void
proj_batch_ages(proj_batch_t *b)
{
    size_t                     i;
    int64_t                    now, ts;
    struct timeval             tv;
    rd_kafka_timestamp_type_t  tstype;

    b->age_min = -1;
    b->age_max = -1;

    if (!cw_log_enabled(CW_LOG_DEBUG)) {
        return;
    }

    gettimeofday(&tv, NULL);
    now = (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;

    for (i = 0; i < b->n; i++) {
        ts = rd_kafka_message_timestamp(b->kmsgs[i], &tstype);
        if (ts < 0) {
            continue;
        }
        if (b->age_min < 0 || now - ts < b->age_min) {
            b->age_min = now - ts;
        }
        if (now - ts > b->age_max) {
            b->age_max = now - ts;
        }
    }
}


/* Takes the messages over (their entries in msgs become NULL) and
 * prepares them. NULL when out of memory (the messages then stay the
 * caller's). */
proj_batch_t *
proj_batch_new(proj_store_t *st, rd_kafka_message_t **msgs, size_t n)
{
    size_t         i;
    proj_batch_t  *b;

    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }

    b->st = st;
    b->msgs = calloc(n, sizeof(*b->msgs));
    b->kmsgs = malloc(n * sizeof(*b->kmsgs));
    if (b->msgs == NULL || b->kmsgs == NULL) {
        goto failed;
    }

    b->t_prep = cw_now_ms();

    for (i = 0; i < n; i++) {
        b->kmsgs[i] = msgs[i];
        proj_msg_prepare(&b->msgs[i], msgs[i]);
        b->n++;
    }

    proj_batch_ages(b);

    if (proj_archive_init(&b->arc, b->msgs, n) != 0) {
        goto failed;
    }

    for (i = 0; i < n; i++) {
        msgs[i] = NULL;
    }

    return b;

failed:

    /* The messages are still the caller's. */
    free(b->kmsgs);
    b->kmsgs = NULL;
    proj_batch_free(b);

    return NULL;
}


void
proj_batch_free(proj_batch_t *b)
{
    size_t  i;

    if (b == NULL) {
        return;
    }

    proj_archive_free(&b->arc);
    proj_offsets_free(&b->off);

    for (i = 0; b->msgs != NULL && i < b->n; i++) {
        proj_msg_free(&b->msgs[i]);
    }
    free(b->msgs);

    for (i = 0; b->kmsgs != NULL && i < b->n; i++) {
        rd_kafka_message_destroy(b->kmsgs[i]);
    }
    free(b->kmsgs);

    json_decref(b->stores_new);
    free(b);
}
