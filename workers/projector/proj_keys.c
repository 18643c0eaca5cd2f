/*
 * proj_keys: the keys and instants the writers fold over (proj_keys.h).
 */

#include <stdio.h>
#include <stdlib.h>

#include "proj.h"
#include "proj_keys.h"
#include "proj_sql.h"
#include "proj_util.h"


int
proj_keys_init(proj_keys_t *ks)
{
    proj_arrs_open(ks->col, 2);
    proj_arrs_open(&ks->as_of, 1);
    ks->n = 0;
    ks->ncmds = 0;
    ks->nstamped = 0;
    ks->as_of_us = NULL;
    ks->index = json_object();

    return ks->index != NULL ? 0 : -1;
}


void
proj_keys_free(proj_keys_t *ks)
{
    proj_arrs_free(ks->col, 2);
    proj_arrs_free(&ks->as_of, 1);
    json_decref(ks->index);
    ks->index = NULL;
    free(ks->as_of_us);
    ks->as_of_us = NULL;
}


size_t
proj_keys_add(proj_keys_t *ks, const char *a, const char *b,
    const char *as_of, int *fresh)
{
    char     k[2 * PROJ_ID_MAX + 2];
    json_t  *v;

    proj_arr(&ks->as_of, as_of);
    ks->ncmds++;
    ks->nstamped += as_of != NULL;

    snprintf(k, sizeof(k), "%s\n%s", a, b);

    v = json_object_get(ks->index, k);
    *fresh = v == NULL;
    if (v != NULL) {
        return (size_t) json_integer_value(v);
    }

    if (json_object_set_new(ks->index, k, json_integer((json_int_t) ks->n))
        != 0)
    {
        ks->col[0].oom = 1;
    }
    proj_arr(&ks->col[0], a);
    proj_arr(&ks->col[1], b);

    return ks->n++;
}


int
proj_keys_close(proj_keys_t *ks, const char **p)
{
    int  rc;

    rc = proj_arrs_close(ks->col, 2, p);

    return proj_arrs_close(&ks->as_of, 1, NULL) != 0 ? -1 : rc;
}


/* Above this many keys a lookup is planned for their number. */
#define PROJ_KEYS_PREPARED_MAX  64


PGresult *
proj_keys_state(proj_keys_t *ks, cw_pg_t *pg, proj_sql_id_t id, int n,
    const char *const *p, cw_pg_class_t *cls, char *err, size_t errlen)
{
    if (ks->n <= PROJ_KEYS_PREPARED_MAX) {
        return cw_pg_execp(pg, proj_sql_name(id), n, p, cls, err, errlen);
    }

    return cw_pg_exec_inline(pg, proj_sql_text(id), n, p, cls, err, errlen);
}


cw_pg_class_t
proj_keys_as_of(proj_keys_t *ks, cw_pg_t *pg, char *err, size_t errlen)
{
    int             row;
    size_t          i;
    PGresult       *res;
    const char     *p[PROJ_AS_OF_NPARAMS];
    cw_pg_class_t   cls;

    ks->as_of_us = malloc((ks->ncmds + 1) * sizeof(*ks->as_of_us));
    if (ks->as_of_us == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    for (i = 0; i < ks->ncmds; i++) {
        ks->as_of_us[i] = -1;
    }

    /* Movements and unstamped counts only: nothing to ask. */
    if (ks->nstamped == 0) {
        return CW_PG_OK;
    }

    p[PROJ_AS_OF_TEXTS] = ks->as_of.data;

    res = cw_pg_execp(pg, proj_sql_name(PROJ_SQL_AS_OF), PROJ_AS_OF_NPARAMS,
                      p, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }

    for (i = 0; i < ks->ncmds; i++) {
        row = (int) i;
        if (row < PQntuples(res) && !PQgetisnull(res, row, PROJ_AS_OF_US)) {
            ks->as_of_us[i] = atoll(PQgetvalue(res, row, PROJ_AS_OF_US));
        }
    }
    PQclear(res);

    return CW_PG_OK;
}
