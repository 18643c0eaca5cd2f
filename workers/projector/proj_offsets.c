/*
 * proj_offsets: consumer offsets in PostgreSQL (see proj_offsets.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_log.h"
#include "cw_retry.h"
#include "cw_time.h"
#include "proj_offsets.h"
#include "proj_sql.h"
#include "proj_util.h"


static proj_part_t *
proj_offsets_part(proj_offsets_t *off, const proj_msg_t *pm)
{
    size_t  i;

    for (i = 0; i < off->n; i++) {
        if (off->parts[i].partition == pm->m->partition
            && strcmp(off->parts[i].topic, pm->topic) == 0)
        {
            return &off->parts[i];
        }
    }

    return NULL;
}


/* The batch's partitions, and their columns for the statements. */
static int
proj_offsets_parts(proj_offsets_t *off, proj_msg_t *msgs, size_t n,
    cw_buf_t *a)
{
    size_t        i;
    proj_part_t  *pt;

    free(off->parts);
    off->n = 0;
    off->parts = calloc(n, sizeof(*off->parts));
    if (off->parts == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (proj_offsets_part(off, &msgs[i]) != NULL) {
            continue;
        }
        pt = &off->parts[off->n++];
        pt->topic = msgs[i].topic;
        pt->partition = msgs[i].m->partition;
        pt->last = -1;
        pt->stored = 0;
        proj_arr(&a[0], pt->topic);
        proj_arr_ll(&a[1], pt->partition);
        proj_arr_ll(&a[2], msgs[i].m->offset);
    }

    return 0;
}


/* Locks the offset rows of the batch's partitions (created at their
 * first offset when missing), two statements for all of them, and
 * fences the messages below their partition's stored offset. */
cw_pg_class_t
proj_offsets_lock(proj_offsets_t *off, cw_pg_t *pg, const char *group,
    proj_msg_t *msgs, size_t n, char *err, size_t errlen)
{
    int             row;
    size_t          i;
    cw_buf_t        a[3];
    PGresult       *res = NULL;
    proj_part_t    *pt;
    const char     *p[PROJ_OFF_ENSURE_NPARAMS];
    cw_pg_class_t   cls = CW_PG_PERMANENT;

    proj_arrs_open(a, 3);
    p[PROJ_OFF_ENSURE_GROUP] = group;

    if (proj_offsets_parts(off, msgs, n, a) != 0
        || proj_arrs_close(a, 3, p + PROJ_OFF_ENSURE_TOPICS) != 0)
    {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    res = cw_pg_execp(pg, proj_sql_name(PROJ_SQL_OFF_ENSURE),
                      PROJ_OFF_ENSURE_NPARAMS, p, &cls, err, errlen);
    if (res == NULL) {
        goto done;
    }
    PQclear(res);

    res = cw_pg_execp(pg, proj_sql_name(PROJ_SQL_OFF_LOCK),
                      PROJ_OFF_LOCK_NPARAMS, p, &cls, err, errlen);
    if (res == NULL) {
        goto done;
    }

    for (row = 0; row < PQntuples(res); row++) {
        for (pt = off->parts; pt < off->parts + off->n; pt++) {
            if (pt->partition
                == atoi(PQgetvalue(res, row, PROJ_OFF_LOCK_PARTITION))
                && strcmp(pt->topic,
                          PQgetvalue(res, row, PROJ_OFF_LOCK_TOPIC)) == 0)
            {
                pt->stored = atoll(PQgetvalue(res, row, PROJ_OFF_LOCK_NEXT));
            }
        }
    }
    PQclear(res);

    for (i = 0; i < n; i++) {
        msgs[i].fenced = msgs[i].m->offset
                         < proj_offsets_part(off, &msgs[i])->stored;
    }

done:

    proj_arrs_free(a, 3);

    return cls;
}


cw_pg_class_t
proj_offsets_store(proj_offsets_t *off, cw_pg_t *pg, const char *group,
    const proj_msg_t *msgs, size_t n, char *err, size_t errlen)
{
    size_t          i, nset = 0;
    cw_buf_t        a[3];
    PGresult       *res;
    proj_part_t    *pt;
    const char     *p[PROJ_OFF_SET_NPARAMS];
    cw_pg_class_t   cls = CW_PG_OK;

    for (pt = off->parts; pt < off->parts + off->n; pt++) {
        pt->last = -1;
    }

    for (i = 0; i < n; i++) {
        if (!msgs[i].fenced) {
            proj_offsets_part(off, &msgs[i])->last = msgs[i].m->offset;
        }
    }

    proj_arrs_open(a, 3);

    for (pt = off->parts; pt < off->parts + off->n; pt++) {
        if (pt->last >= 0) {
            proj_arr(&a[0], pt->topic);
            proj_arr_ll(&a[1], pt->partition);
            proj_arr_ll(&a[2], pt->last + 1);
            nset++;
        }
    }

    p[PROJ_OFF_SET_GROUP] = group;

    if (proj_arrs_close(a, 3, p + PROJ_OFF_SET_TOPICS) != 0) {
        snprintf(err, errlen, "out of memory");
        cls = CW_PG_PERMANENT;

    } else if (nset > 0) {
        res = cw_pg_execp(pg, proj_sql_name(PROJ_SQL_OFF_SET),
                          PROJ_OFF_SET_NPARAMS, p, &cls, err, errlen);
        PQclear(res);
    }

    proj_arrs_free(a, 3);

    return cls;
}


void
proj_offsets_free(proj_offsets_t *off)
{
    free(off->parts);
    off->parts = NULL;
    off->n = 0;
}


int
proj_offsets_load(cw_pg_t *pg, const char *group,
    rd_kafka_topic_partition_list_t *parts, volatile int *stop)
{
    int             i, row;
    char            err[512];
    PGresult       *res;
    cw_backoff_t    bo;
    const char     *p[PROJ_OFF_LOAD_NPARAMS];
    cw_pg_class_t   cls;

    cw_backoff_init(&bo, 100, 5000, 0.5, 0, 0);

    for (i = 0; i < parts->cnt; i++) {
        parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }

    p[PROJ_OFF_LOAD_GROUP] = group;
    p[PROJ_OFF_LOAD_TOPIC] = parts->cnt > 0 ? parts->elems[0].topic : "";

    for ( ;; ) {
        res = cw_pg_execp(pg, proj_sql_name(PROJ_SQL_OFF_LOAD),
                          PROJ_OFF_LOAD_NPARAMS, p, &cls, err, sizeof(err));
        if (res != NULL) {
            break;
        }

        if (cls == CW_PG_PERMANENT || *stop) {
            cw_log(CW_LOG_ERROR, "loading offsets: %s", err);
            return -1;
        }

        cw_log(CW_LOG_WARN, "loading offsets, will retry: %s", err);
        cw_sleep_ms(cw_backoff_next(&bo), stop);
    }

    for (row = 0; row < PQntuples(res); row++) {
        for (i = 0; i < parts->cnt; i++) {
            if (parts->elems[i].partition
                == atoi(PQgetvalue(res, row, PROJ_OFF_LOAD_PARTITION))
                && strcmp(parts->elems[i].topic,
                          p[PROJ_OFF_LOAD_TOPIC]) == 0)
            {
                parts->elems[i].offset =
                    atoll(PQgetvalue(res, row, PROJ_OFF_LOAD_NEXT));
            }
        }
    }

    PQclear(res);

    return 0;
}


int
proj_offsets_cluster(rd_kafka_t *rk, volatile int *stop)
{
    int            rc;
    char          *id;
    cw_backoff_t   bo;

    cw_backoff_init(&bo, 200, 5000, 0.5, 0, 0);

    while ((id = rd_kafka_clusterid(rk, 5000)) == NULL) {
        if (*stop) {
            return -1;
        }
        cw_log(CW_LOG_WARN, "no Kafka cluster id yet (brokers unreachable, "
               "or too old to say), will retry");
        cw_sleep_ms(cw_backoff_next(&bo), stop);
    }

    rc = proj_sql_set_cluster(id);
    if (rc == 0) {
        proj_msg_set_cluster(id);
        cw_log(CW_LOG_INFO, "kafka cluster %s", id);
    } else {
        cw_log(CW_LOG_ERROR, "kafka cluster id \"%.64s\" is not an id", id);
    }

    rd_kafka_mem_free(rk, id);

    return rc;
}


int
proj_offsets_adopt(cw_pg_t *pg, const char *group, char *err, size_t errlen)
{
    PGresult       *res;
    const char     *p[PROJ_OFF_ADOPT_NPARAMS];
    cw_pg_class_t   cls;

    p[PROJ_OFF_ADOPT_GROUP] = group;

    res = cw_pg_execp(pg, proj_sql_name(PROJ_SQL_OFF_ADOPT),
                      PROJ_OFF_ADOPT_NPARAMS, p, &cls, err, errlen);
    if (res == NULL) {
        return -1;
    }

    if (atoi(PQcmdTuples(res)) > 0) {
        cw_log(CW_LOG_WARN, "%s partition offsets stored without a Kafka "
               "cluster (before migration 011) taken as this cluster's",
               PQcmdTuples(res));
    }
    PQclear(res);

    return 0;
}
