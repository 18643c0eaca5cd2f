/*
 * proj_outbox: the after-commit half of the projector.
 *
 * Rows are taken with FOR UPDATE SKIP LOCKED in id order and deleted once
 * done, in one transaction, so two projectors never process the same row
 * at the same time. Most drains start after the highest id done so far
 * (a scan from the bottom would walk every deleted, not yet vacuumed row)
 * but one a second starts from the bottom, so a transaction that
 * committed late with a lower id is picked up then: nothing is ever
 * skipped. A crash after publishing but before the delete publishes again
 * on the next drain (at least once; consumers dedupe by event_id), and
 * writes the same read-model value again, which the version guard makes
 * a no-op; so the deletes do not wait for the disk.
 *
 * Each drainer takes one kind of row, on a thread and a connection of its
 * own: the publisher the events and dead letters ('kafka', 'kafka_batch'),
 * the read-model thread the values ('redis', 'redis_keys'). The latter is
 * handed each batch's 'redis_keys' row in memory right after the commit
 * (proj_outbox_write_keys; its drain is only the safety net for rows of a
 * crash or a failed write), so neither the read model nor consumption
 * waits for Kafka.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "cw_buf.h"
#include "cw_log.h"
#include "cw_time.h"
#include "commerce_contract.h"
#include "proj_frame.h"
#include "proj_outbox.h"
#include "proj_util.h"

struct proj_outbox_s {
    cw_pg_t                *pg;
    cw_redis_t             *redis;
    cw_kafka_producer_t    *producer;
    const char             *kinds;     /* rows drained, as a text[] */
    int                     page;
    int                     load_queued; /* SCRIPT LOAD in the pipeline */
    proj_outbox_metrics_t   m;

    /* Deleted rows stay in the index until vacuumed, and a scan from the
     * lowest id walks over all of them: most drains start after the
     * highest id done so far; one a second starts from the bottom, for
     * rows of transactions that committed after a higher id was done. */
    long long               after;
    int64_t                 next_full;
};

/*
 * The version guard, run atomically in Redis. KEYS[1] the key; ARGV:
 * field ('' for a string key), value, version, cat:index member ('' for
 * none). The stored value is kept when its "version" is higher, or equal
 * with the same bytes. Returns 1 if written, 0 if kept.
 */
static const char  proj_guard_lua[] =
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
    "        redis.call('ZADD', 'cat:index', 0, ARGV[4])\n"
    "      end\n"
    "      return 0\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if ARGV[1] == '' then redis.call('SET', KEYS[1], ARGV[2])\n"
    "else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end\n"
    "if ARGV[4] ~= '' then redis.call('ZADD', 'cat:index', 0, ARGV[4]) end\n"
    "return 1\n";


/* The read-model values of a 'redis_keys' payload: rows key, field (NULL
 * for string keys), version, value. $1 the item ids, $2 and $3 the
 * stores and skus of the stock levels, written in as literals
 * (cw_pg_exec_inline) so that each lookup is planned for its size. */
static const char  proj_rm_render_sql[] =
    "SELECT 'cat:item:' || id, NULL::text, version::text, doc"
    " FROM rm_item_docs WHERE id = ANY($1::text[])"
    " UNION ALL"
    " SELECT 'inv:' || store_id, sku, version::text, value"
    " FROM rm_stock_values WHERE (store_id, sku) IN"
    " (SELECT * FROM unnest($2::text[], $3::text[]))";


/* Its SHA-1, as EVALSHA wants it (filled by proj_outbox_new). */
static char  proj_guard_sha[41];


proj_outbox_t *
proj_outbox_new(cw_pg_t *pg, cw_redis_t *redis, cw_kafka_producer_t *producer,
    const char *kind, int page, const proj_outbox_metrics_t *metrics)
{
    proj_outbox_t  *o;

    o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return NULL;
    }

    o->pg = pg;
    o->redis = redis;
    o->producer = producer;
    o->kinds = strcmp(kind, "kafka") == 0 ? "{kafka,kafka_batch}"
                                          : "{redis,redis_keys}";
    o->page = page;
    o->m = *metrics;

    if (proj_guard_sha[0] == '\0') {
        unsigned char  md[EVP_MAX_MD_SIZE];
        unsigned int   mdlen = 0, i;

        if (EVP_Digest(proj_guard_lua, sizeof(proj_guard_lua) - 1, md, &mdlen,
                       EVP_sha1(), NULL) != 1 || mdlen != 20)
        {
            free(o);
            return NULL;
        }
        for (i = 0; i < 20; i++) {
            snprintf(proj_guard_sha + 2 * i, 3, "%02x", md[i]);
        }
    }

    return o;
}


void
proj_outbox_free(proj_outbox_t *o)
{
    free(o);
}


/* Queues the guarded write of one value in the Redis pipeline. */
static int
proj_rm_append(proj_outbox_t *o, const char *key, const char *field,
    const char *value, const char *version)
{
    const char  *argv[8], *member = "";
    size_t       lens[8];
    int          i;

    if (field == NULL && strncmp(key, "cat:item:", 9) == 0) {
        member = key + 9;
    }

    /* The script is loaded once per pipeline (cheap when Redis has it,
     * and a Redis that restarted gets it again), then run by its sha. */
    if (!o->load_queued) {
        const char  *lv[3] = { "SCRIPT", "LOAD", proj_guard_lua };
        size_t       ll[3] = { 6, 4, sizeof(proj_guard_lua) - 1 };

        if (cw_redis_append(o->redis, 3, lv, ll) != 0) {
            return -1;
        }
        o->load_queued = 1;
    }

    argv[0] = "EVALSHA";
    argv[1] = proj_guard_sha;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = field != NULL ? field : "";
    argv[5] = value;
    argv[6] = version;
    argv[7] = member;

    for (i = 0; i < 8; i++) {
        lens[i] = strlen(argv[i]);
    }

    return cw_redis_append(o->redis, 8, argv, lens);
}


/* Reads the replies of n queued guarded writes. */
static int
proj_rm_flush(proj_outbox_t *o, size_t n, char *err, size_t errlen)
{
    redisReply  **replies;
    size_t        i, first = o->load_queued;
    int           rc = 0;

    o->load_queued = 0;
    n += first;

    if (n == 0) {
        return 0;
    }

    replies = calloc(n, sizeof(*replies));
    if (replies == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (cw_redis_exec(o->redis, replies, n, err, errlen) != 0) {
        free(replies);
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (i < first) {
            if (replies[i]->type != REDIS_REPLY_STRING && rc == 0) {
                snprintf(err, errlen, "redis: SCRIPT LOAD: %s",
                         replies[i]->type == REDIS_REPLY_ERROR
                         ? replies[i]->str : "unexpected reply");
                rc = -1;
            }
        } else if (replies[i]->type == REDIS_REPLY_INTEGER) {
            cw_counter_inc(replies[i]->integer ? o->m.rm_written
                                               : o->m.rm_kept);
        } else if (rc == 0) {
            snprintf(err, errlen, "redis: %s",
                     replies[i]->type == REDIS_REPLY_ERROR
                     ? replies[i]->str : "unexpected reply");
            rc = -1;
        }
        freeReplyObject(replies[i]);
    }

    free(replies);

    return rc;
}


static rd_kafka_headers_t *
proj_headers(const char *text)
{
    json_t              *a, *h;
    size_t               i;
    const char          *name, *value;
    rd_kafka_headers_t  *hdrs;

    a = json_loads(text, 0, NULL);
    if (!json_is_array(a) || json_array_size(a) == 0) {
        json_decref(a);
        return NULL;
    }

    hdrs = rd_kafka_headers_new(json_array_size(a));

    json_array_foreach(a, i, h) {
        name = json_string_value(json_object_get(h, "name"));
        value = json_string_value(json_object_get(h, "value"));
        if (name != NULL && value != NULL) {
            rd_kafka_header_add(hdrs, name, -1, value, -1);
        }
    }

    json_decref(a);

    return hdrs;
}


/* Queues the guarded writes of rendered rows (key, field or NULL,
 * version, value as PostgreSQL writes it, compacted here). *queued counts
 * the writes queued, also on failure. Returns 0 or -1. */
static int
proj_rm_append_rows(proj_outbox_t *o, PGresult *res, size_t *queued,
    char *err, size_t errlen)
{
    int    i;
    char  *value;

    for (i = 0; i < PQntuples(res); i++) {
        value = proj_json_compact(PQgetvalue(res, i, 3),
                                  (size_t) PQgetlength(res, i, 3));
        if (value == NULL
            || proj_rm_append(o, PQgetvalue(res, i, 0),
                              PQgetisnull(res, i, 1)
                              ? NULL : PQgetvalue(res, i, 1),
                              value, PQgetvalue(res, i, 2)) != 0)
        {
            free(value);
            snprintf(err, errlen, "redis unavailable");
            return -1;
        }
        free(value);
        (*queued)++;
    }

    return 0;
}


/* Queues in the Redis pipeline the guarded writes of the read-model
 * values of a 'redis_keys' payload: those the committing projector
 * rendered, and those rendered here from the committed rows. *queued
 * counts the writes queued, also on failure (their replies must still be
 * read). Returns 0 or -1. */
static int
proj_rm_render(proj_outbox_t *o, cw_pg_t *pg, const char *keys,
    size_t *queued, char *err, size_t errlen)
{
    int             i, rc = 0;
    char            ver[24];
    size_t          j;
    json_t         *k, *items, *stocks, *pair, *vals, *e;
    cw_buf_t        a[3];
    PGresult       *res = NULL;
    const char     *p[3];
    cw_pg_class_t   cls;

    *queued = 0;

    k = json_loads(keys, 0, NULL);
    items = json_object_get(k, "items");
    stocks = json_object_get(k, "stocks");
    vals = json_object_get(k, "values");

    if (k == NULL) {
        snprintf(err, errlen, "outbox: bad redis_keys payload");
        return -1;
    }

    for (j = 0; j < json_array_size(vals); j++) {
        e = json_array_get(vals, j);

        if (!json_is_string(json_array_get(e, 0))
            || !json_is_integer(json_array_get(e, 2))
            || !json_is_string(json_array_get(e, 3)))
        {
            snprintf(err, errlen, "outbox: bad redis_keys value");
            json_decref(k);
            return -1;
        }

        snprintf(ver, sizeof(ver), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_array_get(e, 2)));

        if (proj_rm_append(o, json_string_value(json_array_get(e, 0)),
                           json_string_value(json_array_get(e, 1)),
                           json_string_value(json_array_get(e, 3)), ver)
            != 0)
        {
            snprintf(err, errlen, "redis unavailable");
            json_decref(k);
            return -1;
        }

        (*queued)++;
    }

    if (json_array_size(items) == 0 && json_array_size(stocks) == 0) {
        json_decref(k);
        return 0;
    }

    for (i = 0; i < 3; i++) {
        cw_buf_init(&a[i]);
        cw_buf_putc(&a[i], '{');
    }
    for (j = 0; j < json_array_size(items); j++) {
        proj_arr(&a[0], json_string_value(json_array_get(items, j)));
    }
    for (j = 0; j < json_array_size(stocks); j++) {
        pair = json_array_get(stocks, j);
        proj_arr(&a[1], json_string_value(json_array_get(pair, 0)));
        proj_arr(&a[2], json_string_value(json_array_get(pair, 1)));
    }
    for (i = 0; i < 3; i++) {
        cw_buf_putc(&a[i], '}');
        p[i] = a[i].data;
    }

    if (a[0].oom || a[1].oom || a[2].oom) {
        snprintf(err, errlen, "out of memory");
    } else {
        res = cw_pg_exec_inline(pg, proj_rm_render_sql, 3, p, &cls, err,
                                errlen);
    }

    json_decref(k);
    for (i = 0; i < 3; i++) {
        cw_buf_free(&a[i]);
    }

    if (res == NULL) {
        return -1;
    }

    rc = proj_rm_append_rows(o, res, queued, err, errlen);
    PQclear(res);

    return rc;
}


/* Publishes the frames of a 'kafka_batch' row. Returns how many, or -1
 * (malformed frames are an error: the row stays). */
static int
proj_publish_frames(proj_outbox_t *o, const char *topic,
    const unsigned char *p, size_t len, char *err, size_t errlen)
{
    int                  n = 0, r;
    size_t               off = 0, hoff, nlen, vlen;
    const char          *name, *value;
    proj_frame_t         f;
    rd_kafka_headers_t  *hdrs;

    while ((r = proj_frame_next(p, len, &off, &f)) == 1) {
        hdrs = f.nhdrs > 0 ? rd_kafka_headers_new(f.nhdrs) : NULL;
        hoff = 0;

        while (hdrs != NULL
               && (r = proj_frame_header(&f, &hoff, &name, &nlen, &value,
                                         &vlen)) == 1)
        {
            rd_kafka_header_add(hdrs, name, (ssize_t) nlen, value,
                                (ssize_t) vlen);
        }

        if (hdrs != NULL && r != 0) {
            rd_kafka_headers_destroy(hdrs);
            break;
        }

        if (cw_kafka_produce(o->producer, topic, -1, f.key, f.klen, f.value,
                             f.vlen, hdrs, err, errlen) != 0)
        {
            if (hdrs != NULL) {
                rd_kafka_headers_destroy(hdrs);
            }
            return -1;
        }

        n++;
    }

    if (r != 0) {
        snprintf(err, errlen, "outbox: malformed kafka_batch frames");
        return -1;
    }

    return n;
}


/* One drain; the times (monotonic ms) are the stage trace of the debug
 * log: page selected, read-model values written, Kafka acks in. */
typedef struct {
    proj_outbox_t  *o;
    int             done;
    size_t          nredis;
    size_t          nkafka;
    int64_t         t_select;
    int64_t         t_redis;
    int64_t         t_kafka;
    long long       last;         /* highest id done */
} proj_drain_t;


/* At most this many payload bytes per drain: a 'kafka_batch' row holds a
 * whole batch of events. */
#define PROJ_DRAIN_BYTES  (16 * 1024 * 1024)


static cw_pg_class_t
proj_drain_txn(cw_pg_t *pg, void *ud, char *err, size_t errlen)
{
    size_t               queued;
    char                 limit[16], ignore[256], after[24], *value;
    int                  i, nrows, n, rc = 0, fmt[1] = { 0 };
    size_t               klen, plen, nredis = 0, nkafka = 0, bytes = 0;
    long long            last = 0;
    cw_buf_t             ids;
    PGresult            *res, *del;
    proj_drain_t        *d = ud;
    proj_outbox_t       *o = d->o;
    cw_pg_class_t        cls;
    const char          *p[3], *kind;
    unsigned char       *key, *payload;
    rd_kafka_headers_t  *hdrs;

    if (cw_now_ms() >= o->next_full) {
        o->after = 0;
        o->next_full = cw_now_ms() + 1000;
    }

    /* Losing the delete in a crash only does the rows again (at least
     * once; the read model's guard and the consumers' dedup by event id
     * make that harmless), so this commit need not wait for the disk. */
    cls = cw_pg_command(pg, "SET LOCAL synchronous_commit = off", err,
                        errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    snprintf(limit, sizeof(limit), "%d", o->page);
    snprintf(after, sizeof(after), "%lld", o->after);
    p[0] = limit;
    p[1] = o->kinds;
    p[2] = after;

    /* The page is locked first, its payloads read up to a byte budget. */
    res = cw_pg_exec(pg, "SELECT id, octet_length(payload) FROM outbox"
                     " WHERE kind = ANY($2::text[]) AND id > $3 ORDER BY id"
                     " LIMIT $1 FOR UPDATE SKIP LOCKED", 3, p, &cls, err,
                     errlen);
    if (res == NULL) {
        return cls;
    }

    nrows = PQntuples(res);
    cw_gauge_set(o->m.pending, nrows);

    cw_buf_init(&ids);
    cw_buf_putc(&ids, '{');

    for (i = 0; i < nrows && (i == 0 || bytes < PROJ_DRAIN_BYTES); i++) {
        cw_buf_printf(&ids, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
        bytes += (size_t) atoll(PQgetvalue(res, i, 1));
    }

    cw_buf_putc(&ids, '}');
    PQclear(res);

    nrows = i;
    d->done = nrows;

    if (nrows == 0 || ids.oom) {
        cls = ids.oom ? CW_PG_TRANSIENT : CW_PG_OK;
        cw_buf_free(&ids);
        return cls;
    }

    p[0] = ids.data;
    res = cw_pg_execb(pg, "SELECT id::text, kind, topic, msg_key,"
                      " headers::text, payload, rm_key, rm_field,"
                      " rm_version::text FROM outbox"
                      " WHERE id = ANY($1::bigint[]) ORDER BY id", 1, p,
                      NULL, fmt, 1, &cls, err, errlen);
    if (res == NULL) {
        cw_buf_free(&ids);
        return cls;
    }

    d->t_select = cw_now_ms();
    nrows = PQntuples(res);

    for (i = 0; i < nrows && rc == 0; i++) {
        last = atoll(PQgetvalue(res, i, 0));
        kind = PQgetvalue(res, i, 1);
        payload = (unsigned char *) PQgetvalue(res, i, 5);
        plen = (size_t) PQgetlength(res, i, 5);

        if (strcmp(kind, "redis") == 0) {
            value = proj_json_compact((const char *) payload, plen);
            rc = value == NULL
                 || proj_rm_append(o, PQgetvalue(res, i, 6),
                                   PQgetisnull(res, i, 7)
                                   ? NULL : PQgetvalue(res, i, 7),
                                   value, PQgetvalue(res, i, 8)) != 0;
            if (rc != 0) {
                snprintf(err, errlen, "redis unavailable");
            }
            free(value);
            if (rc == 0) {
                nredis++;
            }

        } else if (strcmp(kind, "redis_keys") == 0) {
            rc = proj_rm_render(o, pg, (const char *) payload, &queued, err,
                                errlen);
            nredis += queued;

        } else if (strcmp(kind, "kafka_batch") == 0) {
            n = proj_publish_frames(o, PQgetvalue(res, i, 2), payload, plen,
                                    err, errlen);
            if (n < 0) {
                rc = -1;
            } else {
                nkafka += (size_t) n;
            }

        } else {
            key = PQgetisnull(res, i, 3)
                  ? NULL : (unsigned char *) PQgetvalue(res, i, 3);
            klen = key != NULL ? (size_t) PQgetlength(res, i, 3) : 0;
            hdrs = proj_headers(PQgetvalue(res, i, 4));
            rc = cw_kafka_produce(o->producer, PQgetvalue(res, i, 2), -1,
                                  key, klen, payload, plen, hdrs, err,
                                  errlen);
            if (rc != 0 && hdrs != NULL) {
                rd_kafka_headers_destroy(hdrs);
            }
            nkafka++;
        }
    }

    PQclear(res);

    /* Replies of queued writes are read even when a later row failed,
     * so the connection stays in step. */
    if (proj_rm_flush(o, nredis, rc ? ignore : err, sizeof(ignore)) != 0
        && rc == 0)
    {
        rc = -1;
    }

    d->t_redis = cw_now_ms();

    if (rc == 0 && nkafka > 0) {
        rc = cw_kafka_producer_flush(o->producer, 10000, err, errlen);
    }

    d->t_kafka = cw_now_ms();
    d->nredis = nredis;
    d->nkafka = nkafka;

    if (rc != 0) {
        cw_buf_free(&ids);
        return CW_PG_TRANSIENT;
    }

    cw_counter_add(o->m.published, (double) nkafka);

    p[0] = ids.data;
    del = cw_pg_exec(pg, "DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                     1, p, &cls, err, errlen);
    cw_buf_free(&ids);

    if (del == NULL) {
        return cls;
    }

    PQclear(del);
    d->last = last;

    return CW_PG_OK;
}


int
proj_outbox_drain(proj_outbox_t *o, char *err, size_t errlen)
{
    int64_t        t0;
    proj_drain_t   d;
    cw_pg_class_t  cls;

    memset(&d, 0, sizeof(d));
    d.o = o;
    t0 = cw_now_ms();

    cls = cw_pg_txn(o->pg, proj_drain_txn, &d, 1, err, errlen);
    if (cls != CW_PG_OK) {
        cw_counter_inc(o->m.failures);
        return -1;
    }

    if (d.last > o->after) {
        o->after = d.last;
    }

    if (d.done > 0 && cw_log_enabled(CW_LOG_DEBUG)) {
        cw_field_t  f[] = { CW_FINT("redis_rows", (long long) d.nredis),
                            CW_FINT("kafka_rows", (long long) d.nkafka),
                            CW_FINT("select_ms", d.t_select - t0),
                            CW_FINT("redis_ms", d.t_redis - t0),
                            CW_FINT("kafka_ms", d.t_kafka - t0),
                            CW_FINT("commit_ms", cw_now_ms() - t0) };

        cw_log_kv(CW_LOG_DEBUG, f, 6, "outbox drained");
    }

    return d.done;
}


int
proj_outbox_write_keys(proj_outbox_t *o, const char *keys, char *err,
    size_t errlen)
{
    char    ignore[256];
    int     rc;
    size_t  n;

    rc = proj_rm_render(o, o->pg, keys, &n, err, errlen);

    /* Replies of queued writes are read even when rendering failed half
     * way, so the connection stays in step. */
    if (proj_rm_flush(o, n, rc ? ignore : err,
                      rc ? sizeof(ignore) : errlen) != 0)
    {
        rc = -1;
    }

    if (rc != 0) {
        cw_counter_inc(o->m.failures);
        return -1;
    }

    return (int) n;
}


static cw_pg_class_t
proj_forget_txn(cw_pg_t *pg, void *ud, char *err, size_t errlen)
{
    PGresult       *res;
    const char     *p[1];
    cw_pg_class_t   cls;

    /* As in the drain: a delete lost in a crash only writes the values
     * again. */
    cls = cw_pg_command(pg, "SET LOCAL synchronous_commit = off", err,
                        errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    p[0] = ud;
    res = cw_pg_exec(pg, "DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                     1, p, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }

    PQclear(res);

    return CW_PG_OK;
}


int
proj_outbox_forget(proj_outbox_t *o, const char *ids, char *err,
    size_t errlen)
{
    return cw_pg_txn(o->pg, proj_forget_txn, (void *) ids, 1, err, errlen)
           == CW_PG_OK ? 0 : -1;
}


static cw_pg_class_t
proj_rebuild_txn(cw_pg_t *pg, void *ud, char *err, size_t errlen)
{
    char             ignore[256];
    int              n, rc;
    size_t           queued;
    long long        total = 0;
    PGresult        *res;
    proj_outbox_t   *o = ud;
    cw_pg_class_t    cls;

    res = cw_pg_exec(pg, "DECLARE rm CURSOR FOR"
                     " SELECT 'cat:item:' || id, NULL, version::text, doc"
                     " FROM rm_item_docs UNION ALL"
                     " SELECT 'inv:' || store_id, sku, version::text, value"
                     " FROM rm_stock_values", 0, NULL, &cls, err, errlen);
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
        if (n == 0) {
            PQclear(res);
            break;
        }

        queued = 0;
        rc = proj_rm_append_rows(o, res, &queued, err, errlen);
        PQclear(res);

        /* The replies of what was queued are read in any case, so that
         * the connection stays in step. */
        if (proj_rm_flush(o, queued, rc ? ignore : err,
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
proj_outbox_rebuild(proj_outbox_t *o, volatile int *stop)
{
    char           err[512];
    cw_pg_class_t  cls;

    cls = cw_pg_txn(o->pg, proj_rebuild_txn, o, 5, err, sizeof(err));
    if (cls != CW_PG_OK) {
        cw_log(CW_LOG_ERROR, "rebuild failed: %s", err);
        return -1;
    }

    return 0;
}
