/*
 * proj_readmodel: read-model values written to Redis behind the version
 * guard (see proj_readmodel.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "commerce_contract.h"
#include "cw_buf.h"
#include "cw_log.h"
#include "proj_readmodel.h"
#include "proj_util.h"


/*
 * The version guard, run atomically in Redis. KEYS[1] the key; ARGV:
 * field ('' for a string key), value, version, item index member (''
 * for none). The stored value is kept when its "version" is higher, or
 * equal with the same bytes. Returns 1 if written, 0 if kept.
 */
static const char  proj_rm_guard[] =
    "local cur\n"
    "if ARGV[1] == '' then cur = redis.call('GET', KEYS[1])\n"
    "else cur = redis.call('HGET', KEYS[1], ARGV[1]) end\n"
    "local new = tonumber(ARGV[3])\n"
    "if cur then\n"
    "  local ok, doc = pcall(cjson.decode, cur)\n"
    "  if ok and type(doc) == 'table' then\n"
    "    local v = tonumber(doc['version'])\n"
    "    if v and (v > new or (v == new and cur == ARGV[2])) then\n"
    "      if ARGV[4] ~= '' then\n"
    "        redis.call('ZADD', '" COMMERCE_RK_ITEM_INDEX "', 0, ARGV[4])\n"
    "      end\n"
    "      return 0\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if ARGV[1] == '' then redis.call('SET', KEYS[1], ARGV[2])\n"
    "else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end\n"
    "if ARGV[4] ~= '' then\n"
    "  redis.call('ZADD', '" COMMERCE_RK_ITEM_INDEX "', 0, ARGV[4])\n"
    "end\n"
    "return 1\n";


/* The values PostgreSQL renders: rows key, field (NULL for string keys),
 * version, value. */
#define PROJ_RM_ITEM_ROWS                                                     \
    "SELECT '" COMMERCE_RK_ITEM "' || id, NULL::text, version::text, doc"     \
    " FROM rm_item_docs"
#define PROJ_RM_STOCK_ROWS                                                    \
    "SELECT '" COMMERCE_RK_STOCK "' || store_id, sku, version::text, value"   \
    " FROM rm_stock_values"

/* Those of a 'redis_keys' payload: $1 the item ids, $2 and $3 the
 * stores and skus of the stock levels, written in as literals
 * (cw_pg_exec_inline) so that each lookup is planned for its size. */
static const char  proj_rm_render_sql[] =
    PROJ_RM_ITEM_ROWS " WHERE id = ANY($1::text[])"
    " UNION ALL "
    PROJ_RM_STOCK_ROWS " WHERE (store_id, sku) IN"
    " (SELECT * FROM unnest($2::text[], $3::text[]))";

/* All of them, for --rebuild. */
static const char  proj_rm_rebuild_sql[] =
    "DECLARE rm CURSOR FOR "
    PROJ_RM_ITEM_ROWS " UNION ALL " PROJ_RM_STOCK_ROWS;


struct proj_readmodel_s {
    cw_pg_t                *pg;
    cw_redis_t             *redis;
    char                    sha[41];      /* of the guard, for EVALSHA */
    int                     load_queued;  /* SCRIPT LOAD in the pipeline */
    size_t                  queued;       /* guarded writes queued */
    proj_outbox_metrics_t   m;
};


proj_readmodel_t *
proj_readmodel_new(cw_pg_t *pg, cw_redis_t *redis,
    const proj_outbox_metrics_t *metrics)
{
    unsigned int       mdlen = 0, i;
    unsigned char      md[EVP_MAX_MD_SIZE];
    proj_readmodel_t  *rm;

    rm = calloc(1, sizeof(*rm));
    if (rm == NULL) {
        return NULL;
    }

    rm->pg = pg;
    rm->redis = redis;
    rm->m = *metrics;

    if (EVP_Digest(proj_rm_guard, sizeof(proj_rm_guard) - 1, md, &mdlen,
                   EVP_sha1(), NULL) != 1 || mdlen != 20)
    {
        free(rm);
        return NULL;
    }

    for (i = 0; i < 20; i++) {
        snprintf(rm->sha + 2 * i, 3, "%02x", md[i]);
    }

    return rm;
}


void
proj_readmodel_free(proj_readmodel_t *rm)
{
    free(rm);
}


/* Queues the guarded write of one value in the Redis pipeline. The
 * script is loaded once per pipeline (cheap when Redis has it, and a
 * Redis that restarted gets it again), then run by its sha. */
static int
proj_rm_append(proj_readmodel_t *rm, const char *key, const char *field,
    const char *value, const char *version)
{
    int          i;
    size_t       lens[8];
    const char  *argv[8], *member = "";

    if (field == NULL
        && strncmp(key, COMMERCE_RK_ITEM, COMMERCE_LEN(COMMERCE_RK_ITEM))
           == 0)
    {
        member = key + COMMERCE_LEN(COMMERCE_RK_ITEM);
    }

    if (!rm->load_queued) {
        const char  *lv[3] = { "SCRIPT", "LOAD", proj_rm_guard };
        size_t       ll[3] = { 6, 4, sizeof(proj_rm_guard) - 1 };

        if (cw_redis_append(rm->redis, 3, lv, ll) != 0) {
            return -1;
        }
        rm->load_queued = 1;
    }

    argv[0] = "EVALSHA";
    argv[1] = rm->sha;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = field != NULL ? field : "";
    argv[5] = value;
    argv[6] = version;
    argv[7] = member;

    for (i = 0; i < 8; i++) {
        lens[i] = strlen(argv[i]);
    }

    if (cw_redis_append(rm->redis, 8, argv, lens) != 0) {
        return -1;
    }

    rm->queued++;

    return 0;
}


/* Reads the replies of everything queued. */
static int
proj_rm_flush(proj_readmodel_t *rm, char *err, size_t errlen)
{
    int            rc = 0;
    size_t         i, n, first = (size_t) rm->load_queued;
    redisReply   **replies;
    redisReply    *r;

    n = rm->queued + first;
    rm->load_queued = 0;
    rm->queued = 0;

    if (n == 0) {
        return 0;
    }

    replies = calloc(n, sizeof(*replies));
    if (replies == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (cw_redis_exec(rm->redis, replies, n, err, errlen) != 0) {
        free(replies);
        return -1;
    }

    for (i = 0; i < n; i++) {
        r = replies[i];

        if (i >= first && r->type == REDIS_REPLY_INTEGER) {
            cw_counter_inc(r->integer ? rm->m.rm_written : rm->m.rm_kept);

        } else if (i < first ? r->type != REDIS_REPLY_STRING : 1) {
            if (rc == 0) {
                snprintf(err, errlen, "redis: %s%s",
                         i < first ? "SCRIPT LOAD: " : "",
                         r->type == REDIS_REPLY_ERROR
                         ? r->str : "unexpected reply");
            }
            rc = -1;
        }

        freeReplyObject(r);
    }

    free(replies);

    return rc;
}


/* Queues the writes of rendered rows (key, field or NULL, version, value
 * as PostgreSQL writes it, compacted here). */
static int
proj_rm_rows(proj_readmodel_t *rm, PGresult *res, char *err, size_t errlen)
{
    int    row;
    char  *value;

    for (row = 0; row < PQntuples(res); row++) {
        value = proj_json_compact(PQgetvalue(res, row, 3),
                                  (size_t) PQgetlength(res, row, 3));
        if (value == NULL
            || proj_rm_append(rm, PQgetvalue(res, row, 0),
                              PQgetisnull(res, row, 1)
                              ? NULL : PQgetvalue(res, row, 1),
                              value, PQgetvalue(res, row, 2)) != 0)
        {
            free(value);
            snprintf(err, errlen, "redis unavailable");
            return -1;
        }
        free(value);
    }

    return 0;
}


/* The values the committing batch rendered: [key, field, version,
 * value]. */
static int
proj_rm_values(proj_readmodel_t *rm, json_t *vals, char *err, size_t errlen)
{
    char     ver[24];
    size_t   i;
    json_t  *e;

    json_array_foreach(vals, i, e) {
        if (!json_is_string(json_array_get(e, 0))
            || !json_is_integer(json_array_get(e, 2))
            || !json_is_string(json_array_get(e, 3)))
        {
            snprintf(err, errlen, "outbox: bad redis_keys value");
            return -1;
        }

        snprintf(ver, sizeof(ver), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_array_get(e, 2)));

        if (proj_rm_append(rm, json_string_value(json_array_get(e, 0)),
                           json_string_value(json_array_get(e, 1)),
                           json_string_value(json_array_get(e, 3)), ver)
            != 0)
        {
            snprintf(err, errlen, "redis unavailable");
            return -1;
        }
    }

    return 0;
}


/* The values of the items and stock levels named, rendered from the
 * committed rows. */
static int
proj_rm_render(proj_readmodel_t *rm, cw_pg_t *pg, json_t *items,
    json_t *stocks, char *err, size_t errlen)
{
    int             rc;
    size_t          j;
    json_t         *pair;
    cw_buf_t        a[3];
    PGresult       *res;
    const char     *p[3];
    cw_pg_class_t   cls;

    if (json_array_size(items) == 0 && json_array_size(stocks) == 0) {
        return 0;
    }

    proj_arrs_open(a, 3);
    for (j = 0; j < json_array_size(items); j++) {
        proj_arr(&a[0], json_string_value(json_array_get(items, j)));
    }
    json_array_foreach(stocks, j, pair) {
        proj_arr(&a[1], json_string_value(json_array_get(pair, 0)));
        proj_arr(&a[2], json_string_value(json_array_get(pair, 1)));
    }

    res = NULL;
    if (proj_arrs_close(a, 3, p) != 0) {
        snprintf(err, errlen, "out of memory");
    } else {
        res = cw_pg_exec_inline(pg, proj_rm_render_sql, 3, p, &cls, err,
                                errlen);
    }
    proj_arrs_free(a, 3);

    if (res == NULL) {
        return -1;
    }

    rc = proj_rm_rows(rm, res, err, errlen);
    PQclear(res);

    return rc;
}


/* Queues the writes of a 'redis_keys' payload (proj_effects.h). */
static int
proj_rm_keys(proj_readmodel_t *rm, cw_pg_t *pg, const char *keys,
    char *err, size_t errlen)
{
    int      rc;
    json_t  *k;

    k = json_loads(keys, 0, NULL);
    if (k == NULL) {
        snprintf(err, errlen, "outbox: bad redis_keys payload");
        return -1;
    }

    rc = proj_rm_values(rm, json_object_get(k, "values"), err, errlen);
    if (rc == 0) {
        rc = proj_rm_render(rm, pg, json_object_get(k, "items"),
                            json_object_get(k, "stocks"), err, errlen);
    }

    json_decref(k);

    return rc;
}


static int
proj_readmodel_take(void *ud, cw_pg_t *pg, const proj_outbox_row_t *row,
    char *err, size_t errlen)
{
    int                rc;
    char              *value;
    proj_readmodel_t  *rm = ud;

    if (strcmp(row->kind, "redis_keys") == 0) {
        /* The payload is text: the row's bytes end with a NUL (libpq). */
        return proj_rm_keys(rm, pg, (const char *) row->payload, err,
                            errlen);
    }

    value = proj_json_compact((const char *) row->payload, row->plen);
    rc = value == NULL
         || proj_rm_append(rm, row->rm_key, row->rm_field, value,
                           row->rm_version) != 0;
    free(value);

    if (rc != 0) {
        snprintf(err, errlen, "redis unavailable");
        return -1;
    }

    return 0;
}


static int
proj_readmodel_finish(void *ud, int failed, char *err, size_t errlen)
{
    return proj_rm_flush(ud, err, errlen);
}


void
proj_readmodel_sink(proj_readmodel_t *rm, proj_outbox_sink_t *sink)
{
    sink->kinds = "{redis,redis_keys}";
    sink->take = proj_readmodel_take;
    sink->finish = proj_readmodel_finish;
    sink->ud = rm;
}


int
proj_readmodel_write_keys(proj_readmodel_t *rm, const char *keys, char *err,
    size_t errlen)
{
    int     rc;
    char    ignore[256];
    size_t  n;

    rc = proj_rm_keys(rm, rm->pg, keys, err, errlen);
    n = rm->queued;

    /* Replies of queued writes are read even when rendering failed half
     * way, so the connection stays in step. */
    if (proj_rm_flush(rm, rc ? ignore : err, rc ? sizeof(ignore) : errlen)
        != 0)
    {
        rc = -1;
    }

    if (rc != 0) {
        cw_counter_inc(rm->m.failures);
        return -1;
    }

    return (int) n;
}


static cw_pg_class_t
proj_rm_rebuild_txn(cw_pg_t *pg, void *ud, char *err, size_t errlen)
{
    int                rc, n;
    char               ignore[256];
    PGresult          *res;
    long long          total = 0;
    proj_readmodel_t  *rm = ud;
    cw_pg_class_t      cls;

    res = cw_pg_exec(pg, proj_rm_rebuild_sql, 0, NULL, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }
    PQclear(res);

    for ( ;; ) {
        res = cw_pg_exec(pg, "FETCH 1000 FROM rm", 0, NULL, &cls, err,
                         errlen);
        if (res == NULL) {
            return cls;
        }

        n = PQntuples(res);
        rc = n > 0 ? proj_rm_rows(rm, res, err, errlen) : 0;
        PQclear(res);

        if (n == 0) {
            break;
        }

        /* The replies of what was queued are read in any case, so that
         * the connection stays in step. */
        if (proj_rm_flush(rm, rc ? ignore : err,
                          rc ? sizeof(ignore) : errlen) != 0 || rc != 0)
        {
            return CW_PG_TRANSIENT;
        }

        total += n;
    }

    {
        cw_field_t  f[] = { CW_FINT("values", total) };

        cw_log_kv(CW_LOG_INFO, f, 1, "read model rebuilt from PostgreSQL");
    }

    return CW_PG_OK;
}


int
proj_readmodel_rebuild(proj_readmodel_t *rm, volatile int *stop)
{
    char           err[512];
    cw_pg_class_t  cls;

    (void) stop;

    cls = cw_pg_txn(rm->pg, proj_rm_rebuild_txn, rm, 5, err, sizeof(err));
    if (cls != CW_PG_OK) {
        cw_log(CW_LOG_ERROR, "rebuild failed: %s", err);
        return -1;
    }

    return 0;
}
