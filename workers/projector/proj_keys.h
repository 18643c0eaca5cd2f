/*
 * proj_keys: what the price and stock writers fold over: the distinct
 * keys (two columns: sku and store, store and sku) of a batch's queued
 * commands, in order of first appearance, as array literals for the
 * lookup of their stored state; and the instants of the commands'
 * as_of texts, in microseconds as PostgreSQL reads them, so that C
 * compares them exactly as SQL would.
 *
 * Use:
 *
 *   proj_keys_init(&ks);
 *   for each command: cmd->key = proj_keys_add(&ks, a, b, cmd->as_of,
 *                                              &fresh);
 *   proj_keys_close(&ks, p)            p[0], p[1]: the key columns
 *   proj_keys_as_of(&ks, pg, err, errlen)
 *                                      ks.as_of_us[i]: command i's as_of
 *                                      in microseconds, or -1
 *   proj_keys_free(&ks);
 */

#ifndef PROJ_KEYS_H
#define PROJ_KEYS_H

#include <jansson.h>

#include "cw_buf.h"
#include "cw_pg.h"
#include "proj_sql.h"


typedef struct {
    json_t         *index;        /* "a\nb" -> key number */
    cw_buf_t        col[2];
    cw_buf_t        as_of;        /* one per command, NULL for none */
    size_t          n;            /* keys */
    size_t          ncmds;
    size_t          nstamped;     /* commands with an as_of */
    long long      *as_of_us;     /* proj_keys_as_of: per command, -1
                                     for none */
} proj_keys_t;


/* Returns 0, or -1 when out of memory (free it all the same). */
int proj_keys_init(proj_keys_t *ks);
void proj_keys_free(proj_keys_t *ks);

/* The number of the key (a, b) of the next command, whose as_of is
 * as_of (NULL: none); *fresh says whether the key is new. */
size_t proj_keys_add(proj_keys_t *ks, const char *a, const char *b,
    const char *as_of, int *fresh);

/* Closes the literals: p[0] and p[1] the key columns. Returns 0, or -1
 * when out of memory. */
int proj_keys_close(proj_keys_t *ks, const char **p);

/* Runs the state lookup id of the keys, whose parameters are p (the key
 * columns first): prepared when the keys are few, where its generic plan
 * probes each key by its index; with the values written in when they
 * are many, so that it is planned for their number. The result as
 * cw_pg_execp returns it. */
PGresult *proj_keys_state(proj_keys_t *ks, cw_pg_t *pg, proj_sql_id_t id,
    int n, const char *const *p, cw_pg_class_t *cls, char *err,
    size_t errlen);

/* The commands' as_of instants, one per command added, into
 * ks->as_of_us. */
cw_pg_class_t proj_keys_as_of(proj_keys_t *ks, cw_pg_t *pg, char *err,
    size_t errlen);


#endif /* PROJ_KEYS_H */
