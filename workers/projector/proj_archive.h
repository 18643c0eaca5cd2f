/*
 * proj_archive: every consumed message, byte for byte with its headers,
 * in inbound_archive, for audit and replay. A batch's archive is written
 * in a transaction of its own on a second connection (a cw_pg_side_t
 * thread) while the batch is applied on the first, and the batch commits
 * only once its archive has: a message past the stored offset is always
 * archived. A message archived before keeps its row.
 *
 * Use:
 *
 *   proj_archive_init(&arc, msgs, n);       with the batch, once
 *   proj_archive_start(&arc, side);         before each attempt
 *   proj_archive_wait(&arc, side, err, errlen);
 *                                           before the batch's COMMIT
 *   proj_archive_free(&arc);
 */

#ifndef PROJ_ARCHIVE_H
#define PROJ_ARCHIVE_H

#include "cw_pg.h"
#include "cw_pg_side.h"
#include "proj_msg.h"


typedef struct {
    char           *records;      /* the columns, a JSON array */
    cw_pg_array_t   bodies;       /* binary bytea arrays */
    cw_pg_array_t   keys;
    int             archived;     /* its transaction committed */
} proj_archive_t;


/* Builds the statement's parameters. Returns 0, or -1 when out of
 * memory (free it all the same). */
int proj_archive_init(proj_archive_t *arc, const proj_msg_t *msgs,
    size_t n);
void proj_archive_free(proj_archive_t *arc);

/* Starts writing it, unless that has committed already or is under
 * way. */
void proj_archive_start(proj_archive_t *arc, cw_pg_side_t *side);

/* Waits until it has committed (starting it if need be). */
cw_pg_class_t proj_archive_wait(proj_archive_t *arc, cw_pg_side_t *side,
    char *err, size_t errlen);


#endif /* PROJ_ARCHIVE_H */
