/*
 * proj_drainer: a thread that drains the outbox rows of one kind, so that
 * consumption waits for neither Redis nor Kafka.
 *
 * The projector runs two: the publisher (events and dead letters to
 * Kafka) and the read-model writer (values to Redis), each on an outbox
 * with a PostgreSQL connection of its own. A drainer drains its rows when
 * kicked after a commit, and every 100 ms anyway: rows left by a crash or
 * by a failed try (retried after a backoff). The read-model writer is
 * also handed the keys row of each batch just committed and writes it at
 * once, without a scan of the outbox.
 *
 *   d = proj_drainer_start("publisher", outbox, NULL);
 *                                                 starts with a drain
 *   proj_drainer_kick(d);                         after each commit
 *   proj_drainer_push(d, id, json);               keys row of a commit
 *   proj_drainer_stop(d, 1);                      drains what is left
 *   proj_outbox_free(outbox);                     the caller's, after stop
 *
 * Kicks, pushes and the stop come from one thread (the consumer's); the
 * outbox belongs to the caller and must outlive the drainer.
 */

#ifndef PROJ_DRAINER_H
#define PROJ_DRAINER_H

#include "proj_outbox.h"
#include "proj_readmodel.h"

typedef struct proj_drainer_s  proj_drainer_t;

/* Starts the thread; name is for log lines; rm, the read model's writer
 * (NULL for the publisher), writes the keys rows handed over. NULL
 * (logged) if it cannot be started. */
proj_drainer_t *proj_drainer_start(const char *name, proj_outbox_t *outbox,
    proj_readmodel_t *rm);

/* Asks for a drain now. */
void proj_drainer_kick(proj_drainer_t *d);

/* Hands over the read-model keys row id of a committed batch, whose
 * payload json (proj_store_take_rm_keys) is taken over. */
void proj_drainer_push(proj_drainer_t *d, long long id, char *json);

/* Stops the thread, after writing what was handed over and, with final,
 * draining every row left; frees the drainer. NULL is ignored. */
void proj_drainer_stop(proj_drainer_t *d, int final);

#endif /* PROJ_DRAINER_H */
