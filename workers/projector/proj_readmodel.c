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

/* Those of a 'redis_keys' payload (proj_effects.h), written in as
 * literals (cw_pg_exec_inline) so that each lookup is planned for its
 * size: $1 the item ids; $2, $3 the stores and skus of stock values; $4
 * skus, in every store that has them now; $5, $6, $7 the stores, skus and
 * price versions of the values the batch rendered itself: those whose
 * prices' versions are no longer these, a price committed by another
 * projector while the batch was applied, are rendered again. Each stock
 * value once, each looked up by its keys (LATERAL ... OFFSET 0): without
 * statistics (a table that grew since it was last analyzed) the planner
 * would rather hash all of price_book for every part of the statement. */
static const char  proj_rm_render_sql[] =
    PROJ_RM_ITEM_ROWS " WHERE id = ANY($1::text[])"
    " UNION ALL"
    " SELECT '" COMMERCE_RK_STOCK "' || v.store_id, v.sku, v.version::text,"
    " v.value FROM (SELECT * FROM unnest($2::text[], $3::text[])"
    " AS p(store, sku)"
    " UNION SELECT s.store_id, k.sku FROM unnest($4::text[]) AS k(sku)"
    " CROSS JOIN LATERAL (SELECT s.store_id FROM stock_levels s"
    " WHERE s.sku = k.sku OFFSET 0) s"
    " UNION SELECT c.store, c.sku"
    " FROM unnest($5::text[], $6::text[], $7::bigint[]) AS c(store, sku, pv)"
    " WHERE c.pv <> COALESCE((SELECT o.version FROM price_book o"
    " WHERE o.sku = c.sku AND o.store_id = c.store), 0)"
    " + COALESCE((SELECT b.version FROM price_book b"
    " WHERE b.sku = c.sku AND b.store_id = ''), 0)) AS p"
    " CROSS JOIN LATERAL (SELECT * FROM rm_stock_values v"
    " WHERE v.store_id = p.store AND v.sku = p.sku OFFSET 0) v";

/* The arrays of that statement. */
enum {
    PROJ_RM_ITEMS = 0,
    PROJ_RM_PAIR_STORES,
    PROJ_RM_PAIR_SKUS,
    PROJ_RM_SKUS_ALL,
    PROJ_RM_CHECK_STORES,
    PROJ_RM_CHECK_SKUS,
    PROJ_RM_CHECK_PRICES,
    PROJ_RM_NPARAMS
};

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

    /* Connected now rather than by the first value written (a Redis
     * that is not there yet is connected to when it is). */
    {
        char  ignore[256];

        (void) cw_redis_ensure(redis, ignore, sizeof(ignore));
    }

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
 * value, price_version]; a stock value's store, sku and price version
 * go to the arrays a (the check of its prices: proj_rm_render). Rows
 * written before the price versions were (without the fifth element)
 * are not checked. */
static int
proj_rm_values(proj_readmodel_t *rm, json_t *vals, cw_buf_t *a, char *err,
    size_t errlen)
{
    char         ver[24];
    size_t       i;
    json_t      *e, *pv;
    const char  *key;

    json_array_foreach(vals, i, e) {
        key = json_string_value(json_array_get(e, 0));
        pv = json_array_get(e, 4);

        if (key == NULL
            || !json_is_integer(json_array_get(e, 2))
            || !json_is_string(json_array_get(e, 3))
            || (pv != NULL && !json_is_integer(pv)))
        {
            snprintf(err, errlen, "outbox: bad redis_keys value");
            return -1;
        }

        if (pv != NULL && json_is_string(json_array_get(e, 1))
            && strncmp(key, COMMERCE_RK_STOCK,
                       COMMERCE_LEN(COMMERCE_RK_STOCK)) == 0)
        {
            proj_arr(&a[PROJ_RM_CHECK_STORES],
                     key + COMMERCE_LEN(COMMERCE_RK_STOCK));
            proj_arr(&a[PROJ_RM_CHECK_SKUS],
                     json_string_value(json_array_get(e, 1)));
            proj_arr_ll(&a[PROJ_RM_CHECK_PRICES],
                        (long long) json_integer_value(pv));
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


/* The values of the items, stock levels and skus named, and of the
 * values checked (in a), rendered from the committed rows. */
static int
proj_rm_render(proj_readmodel_t *rm, cw_pg_t *pg, json_t *k, cw_buf_t *a,
    char *err, size_t errlen)
{
    int             rc;
    size_t          j;
    json_t         *items, *stocks, *skus, *pair;
    PGresult       *res;
    const char     *p[PROJ_RM_NPARAMS];
    cw_pg_class_t   cls;

    items = json_object_get(k, "items");
    stocks = json_object_get(k, "stocks");
    skus = json_object_get(k, "skus");

    if (json_array_size(items) == 0 && json_array_size(stocks) == 0
        && json_array_size(skus) == 0 && a[PROJ_RM_CHECK_SKUS].len <= 1)
    {
        return 0;
    }

    for (j = 0; j < json_array_size(items); j++) {
        proj_arr(&a[PROJ_RM_ITEMS],
                 json_string_value(json_array_get(items, j)));
    }
    json_array_foreach(stocks, j, pair) {
        proj_arr(&a[PROJ_RM_PAIR_STORES],
                 json_string_value(json_array_get(pair, 0)));
        proj_arr(&a[PROJ_RM_PAIR_SKUS],
                 json_string_value(json_array_get(pair, 1)));
    }
    for (j = 0; j < json_array_size(skus); j++) {
        proj_arr(&a[PROJ_RM_SKUS_ALL],
                 json_string_value(json_array_get(skus, j)));
    }

    if (proj_arrs_close(a, PROJ_RM_NPARAMS, p) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    res = cw_pg_exec_inline(pg, proj_rm_render_sql, PROJ_RM_NPARAMS, p, &cls,
                            err, errlen);
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
    int        rc;
    json_t    *k;
    cw_buf_t   a[PROJ_RM_NPARAMS];

    k = json_loads(keys, 0, NULL);
    if (k == NULL) {
        snprintf(err, errlen, "outbox: bad redis_keys payload");
        return -1;
    }

    proj_arrs_open(a, PROJ_RM_NPARAMS);

    rc = proj_rm_values(rm, json_object_get(k, "values"), a, err, errlen);
    if (rc == 0) {
        rc = proj_rm_render(rm, pg, k, a, err, errlen);
    }

    proj_arrs_free(a, PROJ_RM_NPARAMS);
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


/*
 * Stale values: the keys of the read model that PostgreSQL no longer
 * renders (a database restored or recreated beside a Redis that kept its
 * data) are removed by --rebuild once every value is written. Each page
 * of keys is read from Redis first, then looked up in PostgreSQL, then
 * each stale one deleted by a script only if it still holds the bytes
 * read: a value written meanwhile is of a row committed before its write,
 * so either the lookup saw the row or the value is not the one read.
 */
#define PROJ_RM_PAGE  "1000"

static const char  proj_rm_del_doc[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('ZREM', '" COMMERCE_RK_ITEM_INDEX "', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

static const char  proj_rm_del_field[] =
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then\n"
    "  return redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "end\n"
    "return 0\n";

/* An index member is written with its document, in one script: one
 * without its document is stale, whatever PostgreSQL holds. */
static const char  proj_rm_del_member[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  return redis.call('ZREM', '" COMMERCE_RK_ITEM_INDEX "', ARGV[1])\n"
    "end\n"
    "return 0\n";

/* The positions (1-based) of the ids of $1 (of the store $2) that have
 * no row. */
static const char  proj_rm_no_item_sql[] =
    "SELECT u.i FROM unnest($1::text[]) WITH ORDINALITY AS u(id, i)"
    " WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.id = u.id)";
static const char  proj_rm_no_stock_sql[] =
    "SELECT u.i FROM unnest($1::text[]) WITH ORDINALITY AS u(sku, i)"
    " WHERE NOT EXISTS (SELECT 1 FROM stock_levels s"
    " WHERE s.store_id = $2 AND s.sku = u.sku)";


/* One page of a SCAN, HSCAN or ZSCAN whose cursor is argv's: its array
 * of elements, in the reply (the caller frees it), and the next cursor
 * into cursor. */
static redisReply *
proj_rm_page(proj_readmodel_t *rm, int argc, const char **argv,
    char *cursor, size_t size, char *err, size_t errlen)
{
    int                i;
    size_t             lens[8];
    redisReply        *r;
    cw_redis_class_t   cls;

    for (i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }

    r = cw_redis_commandv(rm->redis, argc, argv, lens, &cls, err, errlen);
    if (r == NULL) {
        return NULL;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
        || r->element[0]->type != REDIS_REPLY_STRING
        || r->element[1]->type != REDIS_REPLY_ARRAY)
    {
        snprintf(err, errlen, "redis: %s: unexpected reply", argv[0]);
        freeReplyObject(r);
        return NULL;
    }

    snprintf(cursor, size, "%s", r->element[0]->str);

    return r;
}


/* The names (every step-th element of e from first, after skip bytes)
 * that sql finds no row for: their positions in *stale (1-based, in
 * order), or NULL with err. */
static PGresult *
proj_rm_stale(proj_readmodel_t *rm, const char *sql, const char *store,
    redisReply **e, size_t n, size_t step, size_t skip, char *err,
    size_t errlen)
{
    size_t          i;
    cw_buf_t        a;
    PGresult       *res = NULL;
    const char     *p[2];
    cw_pg_class_t   cls;

    proj_arrs_open(&a, 1);
    for (i = 0; i < n; i += step) {
        proj_arr(&a, e[i]->str + skip);
    }

    p[1] = store;
    if (proj_arrs_close(&a, 1, p) != 0) {
        snprintf(err, errlen, "out of memory");
    } else {
        res = cw_pg_exec(rm->pg, sql, store != NULL ? 2 : 1, p, &cls, err,
                         errlen);
    }
    proj_arrs_free(&a, 1);

    return res;
}


/* Runs a script on one key, pipelined; counted when it removed one. */
static int
proj_rm_del(proj_readmodel_t *rm, const char *script, const char *key,
    const char *a1, size_t l1, const char *a2, size_t l2)
{
    const char  *argv[6] = { "EVAL", script, "1", key, a1, a2 };
    size_t       lens[6];

    lens[0] = 4;
    lens[1] = strlen(script);
    lens[2] = 1;
    lens[3] = strlen(key);
    lens[4] = l1;
    lens[5] = l2;

    rm->queued++;

    return cw_redis_append(rm->redis, a2 != NULL ? 6 : 5, argv, lens);
}


/* The replies of the deletions queued: how many removed a value. */
static long long
proj_rm_del_flush(proj_readmodel_t *rm, char *err, size_t errlen)
{
    size_t        i, n = rm->queued;
    long long     removed = 0;
    redisReply  **replies;

    rm->queued = 0;
    if (n == 0) {
        return 0;
    }

    replies = calloc(n, sizeof(*replies));
    if (replies == NULL || cw_redis_exec(rm->redis, replies, n, err, errlen)
                           != 0)
    {
        free(replies);
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (replies[i]->type == REDIS_REPLY_INTEGER) {
            removed += replies[i]->integer;
        } else if (removed >= 0) {
            snprintf(err, errlen, "redis: %s", replies[i]->type
                     == REDIS_REPLY_ERROR ? replies[i]->str : "bad reply");
            removed = -1;
        }
        freeReplyObject(replies[i]);
    }
    free(replies);

    return removed;
}


/* A page of item documents: read, looked up, the stale ones removed. */
static long long
proj_rm_prune_docs(proj_readmodel_t *rm, redisReply *keys, char *err,
    size_t errlen)
{
    int            row;
    size_t         i, n = keys->elements;
    long long      k;
    PGresult      *res;
    redisReply   **vals, **e = keys->element;
    const size_t   skip = COMMERCE_LEN(COMMERCE_RK_ITEM);

    vals = calloc(n + 1, sizeof(*vals));
    if (vals == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    for (i = 0; i < n; i++) {
        const char  *argv[2] = { "GET", e[i]->str };
        size_t       lens[2] = { 3, e[i]->len };

        cw_redis_append(rm->redis, 2, argv, lens);
    }

    if (cw_redis_exec(rm->redis, vals, n, err, errlen) != 0) {
        free(vals);
        return -1;
    }

    res = proj_rm_stale(rm, proj_rm_no_item_sql, NULL, e, n, 1, skip, err,
                        errlen);

    for (row = 0; res != NULL && row < PQntuples(res); row++) {
        k = atoll(PQgetvalue(res, row, 0)) - 1;
        if (vals[k]->type == REDIS_REPLY_STRING) {
            proj_rm_del(rm, proj_rm_del_doc, e[k]->str, vals[k]->str,
                        vals[k]->len, e[k]->str + skip,
                        e[k]->len - skip);
        }
    }

    for (i = 0; i < n; i++) {
        freeReplyObject(vals[i]);
    }
    free(vals);

    if (res == NULL) {
        return -1;
    }
    PQclear(res);

    return proj_rm_del_flush(rm, err, errlen);
}


/* A page of a store's stock fields: looked up, the stale ones removed. */
static long long
proj_rm_prune_fields(proj_readmodel_t *rm, const char *key,
    redisReply *pairs, char *err, size_t errlen)
{
    int           row;
    long long     k;
    PGresult     *res;
    redisReply  **e = pairs->element;

    res = proj_rm_stale(rm, proj_rm_no_stock_sql,
                        key + COMMERCE_LEN(COMMERCE_RK_STOCK), e,
                        pairs->elements, 2, 0, err, errlen);
    if (res == NULL) {
        return -1;
    }

    for (row = 0; row < PQntuples(res); row++) {
        k = 2 * (atoll(PQgetvalue(res, row, 0)) - 1);
        proj_rm_del(rm, proj_rm_del_field, key, e[k]->str, e[k]->len,
                    e[k + 1]->str, e[k + 1]->len);
    }
    PQclear(res);

    return proj_rm_del_flush(rm, err, errlen);
}


/* The members of the item index without their document, removed. */
static long long
proj_rm_prune_index(proj_readmodel_t *rm, redisReply *members, char *err,
    size_t errlen)
{
    int          rc = 0;
    size_t       i;
    cw_buf_t     key;
    long long    n;
    redisReply  *m;

    cw_buf_init(&key);

    for (i = 0; i < members->elements; i += 2) {      /* member, score */
        m = members->element[i];
        key.len = 0;
        cw_buf_puts(&key, COMMERCE_RK_ITEM);
        cw_buf_puts(&key, m->str);
        cw_buf_putc(&key, '\0');
        if (key.oom) {
            rc = -1;
            break;
        }
        proj_rm_del(rm, proj_rm_del_member, key.data, m->str, m->len, NULL,
                    0);
    }

    cw_buf_free(&key);

    n = proj_rm_del_flush(rm, err, errlen);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    return n;
}


/* Every page of one scan (argv, its cursor at argv[cur]), each pruned as
 * what says: 'd' documents, 'i' index members, 'f' a stock hash's
 * fields, 's' stock hashes (each swept for its fields). The number of
 * values removed, or -1. */
static long long
proj_rm_sweep(proj_readmodel_t *rm, int argc, const char *const *argv,
    int cur, int what, char *err, size_t errlen)
{
    char         cursor[32] = "0";
    size_t       i;
    long long    n, total = 0;
    redisReply  *r, *page;
    const char  *a[8];

    memcpy(a, argv, (size_t) argc * sizeof(*a));
    a[cur] = cursor;

    do {
        r = proj_rm_page(rm, argc, a, cursor, sizeof(cursor), err, errlen);
        if (r == NULL) {
            return -1;
        }

        page = r->element[1];
        n = 0;

        if (what == 'd') {
            n = page->elements > 0 ? proj_rm_prune_docs(rm, page, err,
                                                         errlen) : 0;
        } else if (what == 'i') {
            n = proj_rm_prune_index(rm, page, err, errlen);
        } else if (what == 'f') {
            n = proj_rm_prune_fields(rm, argv[1], page, err, errlen);
        } else {
            for (i = 0; i < page->elements && n >= 0; i++) {
                const char  *h[5] = { "HSCAN", page->element[i]->str, "0",
                                      "COUNT", PROJ_RM_PAGE };

                n = proj_rm_sweep(rm, 5, h, 2, 'f', err, errlen);
                total += n > 0 ? n : 0;
            }
            n = n > 0 ? 0 : n;
        }

        freeReplyObject(r);

        if (n < 0) {
            return -1;
        }
        total += n;

    } while (strcmp(cursor, "0") != 0);

    return total;
}


/* The stale values removed: item documents, index members, stock
 * fields. */
static int
proj_rm_prune(proj_readmodel_t *rm, char *err, size_t errlen)
{
    long long     n[3];
    const char   *docs[8] = { "SCAN", "0", "MATCH", COMMERCE_RK_ITEM "*",
                              "COUNT", PROJ_RM_PAGE, "TYPE", "string" };
    const char   *index[5] = { "ZSCAN", COMMERCE_RK_ITEM_INDEX, "0",
                               "COUNT", PROJ_RM_PAGE };
    const char   *stock[8] = { "SCAN", "0", "MATCH", COMMERCE_RK_STOCK "*",
                               "COUNT", PROJ_RM_PAGE, "TYPE", "hash" };

    if ((n[0] = proj_rm_sweep(rm, 8, docs, 1, 'd', err, errlen)) < 0
        || (n[1] = proj_rm_sweep(rm, 5, index, 2, 'i', err, errlen)) < 0
        || (n[2] = proj_rm_sweep(rm, 8, stock, 1, 's', err, errlen)) < 0)
    {
        return -1;
    }

    {
        cw_field_t  f[] = { CW_FINT("items", n[0]),
                            CW_FINT("index_members", n[1]),
                            CW_FINT("stock_values", n[2]) };

        cw_log_kv(CW_LOG_INFO, f, 3, "stale read-model values removed");
    }

    return 0;
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

    if (proj_rm_prune(rm, err, sizeof(err)) != 0) {
        cw_log(CW_LOG_ERROR, "rebuild: removing stale values failed: %s",
               err);
        return -1;
    }

    return 0;
}
