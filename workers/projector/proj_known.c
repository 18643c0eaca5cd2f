/*
 * proj_known: the skus of a batch's price and stock commands checked
 * against the catalog before the batch is applied (see proj_known.h).
 */

#include <stdio.h>
#include <string.h>

#include "commerce_contract.h"
#include "proj_known.h"
#include "proj_sql.h"
#include "proj_util.h"


/* The sku a price or stock command names directly (NULL: none, or it is
 * given by a vendor reference, resolved later). */
static const char *
proj_known_sku(json_t *cmd)
{
    const char  *type = json_string_value(json_object_get(cmd, "type"));

    if (strcmp(type, COMMERCE_CMD_ITEM_UPSERT) == 0) {
        return NULL;
    }

    return json_string_value(json_object_get(cmd, "sku"));
}


/* The messages the check is about: valid, and applied by this attempt
 * unless found applied before. */
static int
proj_known_takes(const proj_msg_t *pm)
{
    return !pm->fenced && pm->cmds != NULL;
}


/* Every sku the batch's commands name, once each, as an array literal;
 * *n of them. */
static void
proj_known_ask(proj_batch_t *b, json_t *asked, cw_buf_t *a, size_t *n)
{
    size_t       i, k;
    json_t      *cmd;
    const char  *sku;

    for (i = 0; i < b->n; i++) {
        if (!proj_known_takes(&b->msgs[i])) {
            continue;
        }
        json_array_foreach(b->msgs[i].cmds, k, cmd) {
            sku = proj_known_sku(cmd);
            if (sku != NULL && json_object_get(asked, sku) == NULL) {
                json_object_set_new(asked, sku, json_true());
                proj_arr(a, sku);
                (*n)++;
            }
        }
    }
}


/* The first sku of pm's commands that neither the catalog (known) nor
 * an earlier command of the batch has, or NULL; the skus its item
 * upserts bring are added to known when it has none. */
static const char *
proj_known_missing(proj_msg_t *pm, json_t *known, json_t *mine)
{
    size_t       k, v;
    json_t      *cmd, *var;
    const char  *sku;

    json_object_clear(mine);

    json_array_foreach(pm->cmds, k, cmd) {
        sku = proj_known_sku(cmd);
        if (sku != NULL && json_object_get(known, sku) == NULL
            && json_object_get(mine, sku) == NULL)
        {
            return sku;
        }

        if (sku == NULL) {
            json_array_foreach(json_object_get(json_object_get(cmd, "item"),
                                               "variants"), v, var)
            {
                json_object_set(mine, json_string_value(
                                json_object_get(var, "sku")), json_true());
            }
        }
    }

    json_object_update(known, mine);

    return NULL;
}


/* The message parked: its commands dropped for this batch, so that both
 * kinds of attempt dead-letter it (waiting for sku). */
static int
proj_known_park(proj_msg_t *pm, const char *sku)
{
    pm->waiting = strdup(sku);
    if (pm->waiting == NULL) {
        return -1;
    }

    proj_error_set(&pm->err, "unknown_sku", "sku %.200s is no item's "
                   "variant (yet): parked until one has it", sku);
    json_decref(pm->cmds);
    pm->cmds = NULL;

    return 0;
}


cw_pg_class_t
proj_known_check(proj_txn_t *t, char *err, size_t errlen)
{
    int             row;
    size_t          i, n = 0;
    json_t         *known, *mine;
    cw_buf_t        a;
    PGresult       *res = NULL;
    const char     *p[PROJ_KNOWN_NPARAMS], *sku;
    cw_pg_class_t   cls = CW_PG_PERMANENT;

    known = json_object();
    mine = json_object();
    proj_arrs_open(&a, 1);

    if (known == NULL || mine == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    proj_known_ask(t->b, known, &a, &n);
    json_object_clear(known);

    if (proj_arrs_close(&a, 1, p) != 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    if (n > 0) {
        res = cw_pg_execp(t->pg, proj_sql_name(PROJ_SQL_KNOWN),
                          PROJ_KNOWN_NPARAMS, p, &cls, err, errlen);
        if (res == NULL) {
            goto done;
        }
        for (row = 0; row < PQntuples(res); row++) {
            json_object_set_new(known, PQgetvalue(res, row, PROJ_KNOWN_SKU),
                                json_true());
        }
    }

    cls = CW_PG_OK;

    for (i = 0; i < t->b->n && cls == CW_PG_OK; i++) {
        if (!proj_known_takes(&t->b->msgs[i])) {
            continue;
        }
        sku = proj_known_missing(&t->b->msgs[i], known, mine);
        if (sku != NULL && proj_known_park(&t->b->msgs[i], sku) != 0) {
            snprintf(err, errlen, "out of memory");
            cls = CW_PG_PERMANENT;
        }
    }

done:

    PQclear(res);
    proj_arrs_free(&a, 1);
    json_decref(known);
    json_decref(mine);

    return cls;
}
