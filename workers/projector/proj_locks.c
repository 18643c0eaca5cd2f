/*
 * proj_locks: the sku locks of price and stock writers (proj_locks.h).
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "commerce_contract.h"
#include "proj_locks.h"
#include "proj_sql.h"
#include "proj_util.h"


/* FNV-1a: the same bucket for a sku in every projector. */
unsigned
proj_lock_bucket(const char *sku)
{
    uint32_t  h = 2166136261u;

    while (*sku != '\0') {
        h ^= (unsigned char) *sku++;
        h *= 16777619u;
    }

    return h % PROJ_LOCK_BUCKETS;
}


static void
proj_locks_add(unsigned char *set, const char *sku, int mode)
{
    unsigned  b;

    if (sku == NULL) {
        return;
    }

    b = proj_lock_bucket(sku);
    if (set[b] < mode) {
        set[b] = (unsigned char) mode;
    }
}


void
proj_locks_want(proj_locks_t *l, const proj_msg_t *msgs, size_t n)
{
    size_t       i, k;
    json_t      *cmd;
    const char  *type;

    memset(l->held, 0, sizeof(l->held));
    l->taken = 0;

    for (i = 0; i < n; i++) {
        if (msgs[i].fenced || msgs[i].cmds == NULL) {
            continue;
        }

        json_array_foreach(msgs[i].cmds, k, cmd) {
            type = json_string_value(json_object_get(cmd, "type"));
            if (type == NULL) {
                continue;
            }

            if (strcmp(type, COMMERCE_CMD_PRICE_SET) == 0) {
                proj_locks_add(l->want, json_string_value(
                               json_object_get(cmd, "sku")),
                               PROJ_LOCK_EXCLUSIVE);

            } else if (strcmp(type, COMMERCE_CMD_STOCK_SET) == 0
                       || strcmp(type, COMMERCE_CMD_STOCK_ADJUST) == 0)
            {
                proj_locks_add(l->want, json_string_value(
                               json_object_get(cmd, "sku")),
                               PROJ_LOCK_SHARED);
            }
        }
    }
}


/* The statement of the buckets set in set, in bucket order. */
static cw_pg_class_t
proj_locks_run(const unsigned char *set, proj_sql_id_t id, cw_pg_t *pg,
    PGresult **out, char *err, size_t errlen)
{
    char            cls_id[16];
    size_t          b, n = 0;
    cw_buf_t        a[2];
    PGresult       *res;
    const char     *p[PROJ_LOCK_NPARAMS];
    cw_pg_class_t   cls = CW_PG_OK;

    proj_arrs_open(a, 2);

    for (b = 0; b < PROJ_LOCK_BUCKETS; b++) {
        if (set[b] != PROJ_LOCK_NONE) {
            proj_arr_ll(&a[0], (long long) b);
            proj_arr(&a[1], set[b] == PROJ_LOCK_EXCLUSIVE ? "t" : "f");
            n++;
        }
    }

    snprintf(cls_id, sizeof(cls_id), "%d", PROJ_LOCK_CLASS);
    p[PROJ_LOCK_P_CLASS] = cls_id;

    if (proj_arrs_close(a, 2, p + PROJ_LOCK_P_BUCKETS) != 0) {
        snprintf(err, errlen, "out of memory");
        cls = CW_PG_PERMANENT;

    } else if (n > 0) {
        res = cw_pg_execp(pg, proj_sql_name(id), PROJ_LOCK_NPARAMS, p, &cls,
                          err, errlen);
        if (out != NULL) {
            *out = res;
        } else {
            PQclear(res);
        }
    }

    proj_arrs_free(a, 2);

    return cls;
}


cw_pg_class_t
proj_locks_take(proj_locks_t *l, cw_pg_t *pg, char *err, size_t errlen)
{
    memcpy(l->held, l->want, sizeof(l->held));
    l->taken = 1;

    return proj_locks_run(l->want, PROJ_SQL_LOCK, pg, NULL, err, errlen);
}


cw_pg_class_t
proj_locks_cover(proj_locks_t *l, cw_pg_t *pg, const char *const *sku,
    size_t n, size_t stride, int mode, char *err, size_t errlen)
{
    size_t          i, nmiss = 0;
    unsigned        b;
    PGresult       *res = NULL;
    cw_pg_class_t   cls;
    unsigned char   miss[PROJ_LOCK_BUCKETS];

    if (!l->taken) {
        cls = proj_locks_take(l, pg, err, errlen);
        if (cls != CW_PG_OK) {
            return cls;
        }
    }

    memset(miss, 0, sizeof(miss));

    for (i = 0; i < n; i++) {
        b = proj_lock_bucket(*(const char *const *)
                             ((const char *) sku + i * stride));
        if (l->held[b] < mode && miss[b] < mode) {
            miss[b] = (unsigned char) mode;
            if (l->want[b] < mode) {
                l->want[b] = (unsigned char) mode;
            }
            nmiss++;
        }
    }

    if (nmiss == 0) {
        return CW_PG_OK;
    }

    /* Not held since the attempt began: not waited for (that could wait
     * out of order), tried. Held or not, it is taken in order next time;
     * held now, it is not counted as held, because a savepoint rolled
     * back would release it. */
    cls = proj_locks_run(miss, PROJ_SQL_TRY_LOCK, pg, &res, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    if (res == NULL || PQntuples(res) != 1
        || strcmp(PQgetvalue(res, 0, PROJ_TRY_LOCK_ALL), "t") != 0)
    {
        snprintf(err, errlen, "a sku lock resolved late is busy: taken in "
                 "order by the next attempt");
        cls = CW_PG_TRANSIENT;
    }

    PQclear(res);

    return cls;
}
