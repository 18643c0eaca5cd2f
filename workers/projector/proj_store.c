/*
 * proj_store: the transactional heart of the projector.
 *
 * One batch = one transaction:
 *
 *   lock the consumer_offsets rows of the batch's partitions; messages
 *       below the stored offset were applied by another member already
 *       (fencing after a rebalance) and are skipped;
 *   claim the dedup key of every valid message (inbound_processed): a
 *       key claimed before means the message was applied before, and
 *       nothing more is done;
 *   invalid -> dead_letters + an outbox copy for commerce.dlq;
 *   else apply each command to the catalog and append its events to the
 *       event store (event ids derived from the message, unique);
 *   queue the effects in the outbox, one row each for the whole batch:
 *       its events for commerce.events ('kafka_batch'), and the read-model
 *       values it changed ('redis_keys': stock levels rendered here, items
 *       and repriced levels to render after the commit);
 *   store the next offset of each partition; COMMIT, once the archive
 *       has committed.
 *
 * Meanwhile every message's raw bytes and headers go to inbound_archive
 * in a transaction of their own, on a second connection (st->side).
 *
 * The fast path (proj_fast_txn) does all of it set-based, a statement for
 * the dedup claims, one for the prices and one for the stock movements of
 * the whole batch; the careful path (proj_batch_txn) goes message by message
 * in savepoints, so that a command the store rejects (unmapped reference,
 * stock underflow, a value PostgreSQL refuses) dead-letters just its
 * message. A batch the fast path cannot apply is applied the careful way.
 *
 * A transient failure (connection lost, serialization failure, deadlock)
 * rolls everything back and the same batch is retried with backoff, so a
 * crash or an outage at any point neither loses nor duplicates anything.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "cw_buf.h"
#include "cw_log.h"
#include "cw_pg_side.h"
#include "cw_retry.h"
#include "cw_time.h"
#include "proj_store.h"

#define PROJ_HDR_MAX   1024

typedef struct {
    rd_kafka_message_t  *m;
    const char          *topic;
    char                *source;
    char                *wtopic;       /* header "topic" */
    char                *delivery_id;
    char                *traceparent;
    char                *key;
    json_t              *headers;      /* [{"name":..,"value":..}] */
    char                *headers_text;
    char                *meta;         /* metadata of its events */
    json_t              *cmds;         /* NULL when invalid */
    proj_error_t         err;
    char                 dedup[600];
    int                  fenced;       /* below the stored offset */
    int                  dup;          /* its dedup key came earlier */
    int                  claimed;      /* its dedup key was claimed by a
                                          batch committed before */
} proj_msg_t;

typedef struct proj_pending_s  proj_pending_t;

static void proj_pending_free(proj_pending_t *pb);

struct proj_store_s {
    cw_pg_t               *pg;
    cw_pg_t               *arc_pg;     /* the archive's, until side has it */
    cw_pg_side_t          *side;       /* writes the archive */
    const char            *group_id;
    const char            *events_topic;
    const char            *dlq_topic;
    proj_store_metrics_t   m;

    /* Per attempt of a batch. */
    json_t                *items;      /* set: item id -> true */
    json_t                *stocks;     /* set: store "\n" sku -> [s, sku] */
    long long              n_applied, n_dup, n_skip, n_dead, n_events;
    long long              n_stale;

    /* Stores known to exist (committed), and those this attempt adds. */
    json_t                *stores_known;
    json_t                *stores_new;

    /* The events of the fast path's attempt, packed as frames for one
     * 'kafka_batch' outbox row, and how many; scratch space. */
    cw_buf_t               kblob;
    size_t                 kblob_n;
    cw_buf_t               scratch;
    cw_buf_t               rvals;      /* values rendered in C, JSON */

    /* The 'redis_keys' row of the attempt: id (0: none) and payload. */
    long long              keys_id;
    char                  *keys_json;

    /* The batch whose COMMIT is in flight, and who hears of commits. */
    proj_pending_t        *pending;
    void                 (*on_commit)(void *ud);
    void                  *on_commit_ud;
};

/* n PostgreSQL array literals being built: opened, closed (0, or -1 if
 * out of memory; p, when not NULL, gets their texts), freed. */
static void
proj_arrs_open(cw_buf_t *a, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        cw_buf_init(&a[i]);
        cw_buf_putc(&a[i], '{');
    }
}


static int
proj_arrs_close(cw_buf_t *a, size_t n, const char **p)
{
    size_t  i;
    int     rc = 0;

    for (i = 0; i < n; i++) {
        cw_buf_putc(&a[i], '}');
        if (a[i].oom) {
            rc = -1;
        }
        if (p != NULL) {
            p[i] = a[i].data;
        }
    }

    return rc;
}


static void
proj_arrs_free(cw_buf_t *a, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        cw_buf_free(&a[i]);
    }
}


/* The index of the key (a, b) among the distinct keys of a fold, in order
 * of first appearance; a new key is added, with its two columns to the
 * array literals ka, and *fresh says so. */
static size_t
proj_key_index(json_t *index, const char *a, const char *b, cw_buf_t *ka,
    size_t *nk, int *fresh)
{
    char     kbuf[2 * PROJ_ID_MAX + 2];
    json_t  *v;

    snprintf(kbuf, sizeof(kbuf), "%s\n%s", a, b);

    v = json_object_get(index, kbuf);
    *fresh = v == NULL;
    if (v != NULL) {
        return (size_t) json_integer_value(v);
    }

    json_object_set_new(index, kbuf, json_integer((json_int_t) *nk));
    proj_arr(&ka[0], a);
    proj_arr(&ka[1], b);

    return (*nk)++;
}


/* The instants of the as_of values of n commands (an array literal, NULL
 * elements for none), in microseconds as PostgreSQL reads them, -1 for
 * none: counts and prices older than the stored one are stale. */
static cw_pg_class_t
proj_as_of_us(proj_store_t *st, const char *arr, size_t n, long long *out,
    char *err, size_t errlen)
{
    size_t          i;
    PGresult       *res;
    cw_pg_class_t   cls;

    res = cw_pg_execp(st->pg, "bulk_stock_ts", 1, &arr, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }

    for (i = 0; i < n; i++) {
        out[i] = i < (size_t) PQntuples(res) && !PQgetisnull(res, (int) i, 0)
                 ? atoll(PQgetvalue(res, (int) i, 0)) : -1;
    }
    PQclear(res);

    return CW_PG_OK;
}


/* The partitions of a batch, in order of first appearance, with the
 * offset stored for them and the offset of their last message not
 * fenced. */
typedef struct {
    const char     *topic;
    int32_t         partition;
    int64_t         last;         /* -1: none */
    int64_t         stored;
} proj_part_t;

typedef struct {
    proj_store_t   *st;
    proj_msg_t     *msgs;
    size_t          n;
    proj_part_t    *parts;
    size_t          nparts;
    int             careful;      /* fast path gave up: go message by
                                     message with savepoints */
    char            why[256];     /* why the fast path gave up */
    int             again;        /* the fast path found messages
                                     claimed before: apply it again
                                     without them, at once */

    /* The archive of the batch, written on the side connection: the
     * parameters of PROJ_ARCHIVE_SQL, and whether it has committed. */
    char           *arc_records;
    cw_pg_array_t   arc_bodies;
    cw_pg_array_t   arc_keys;
    int             archived;

    int             commit_sent;  /* its COMMIT is in flight */
} proj_batch_t;

/* Every message of a batch, byte for byte, in one statement on the side
 * connection while the batch transaction runs on the main one: $1 their
 * columns as JSON records, $2 the bodies and $3 the keys as binary bytea
 * arrays in the same order. A message archived before (the batch is
 * being tried again, or was consumed before a crash) keeps its row. */
#define PROJ_ARCHIVE_SQL                                                      \
    "INSERT INTO inbound_archive (topic, partition, \"offset\", msg_key,"     \
    " headers, body, source, delivery_id, kafka_ts)"                          \
    " SELECT topic, partition, \"offset\", msg_key, headers, body, source,"   \
    " delivery_id, to_timestamp(kafka_ts / 1000)"                             \
    " FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (topic text,"          \
    " partition integer, \"offset\" bigint, headers jsonb, source text,"      \
    " delivery_id text, kafka_ts double precision), unnest($2::bytea[]),"     \
    " unnest($3::bytea[])) AS r(topic, partition, \"offset\", headers,"       \
    " source, delivery_id, kafka_ts, body, msg_key)"                          \
    " ON CONFLICT (topic, partition, \"offset\") DO NOTHING"

/* Outcome of one command: ok, a rejection that dead-letters the
 * message, or a database error of the given class. */
typedef enum {
    PROJ_OK = 0,
    PROJ_REJECT,
    PROJ_DB
} proj_rc_t;

typedef struct {
    proj_store_t   *st;
    proj_msg_t     *msg;
    json_t         *cmd;
    size_t          index;        /* command index in the message */
    int             nevent;       /* events emitted by this command */
    proj_error_t   *err;          /* rejection reason */
    cw_pg_class_t   cls;          /* database error class */
    char           *dberr;
    size_t          dberrlen;
} proj_ctx_t;


/* Statements marked PROJ_INLINE are lookups by arrays of keys: they run
 * with their values written in (cw_pg_exec_inline), so each is planned
 * for its real number of keys; the others are prepared once. */
#define PROJ_INLINE  -1

static const struct {
    const char  *name;
    int          nparams;
    const char  *sql;
} proj_stmts[] = {

    /* The offset rows of a batch's partitions: $2 topics, $3 partitions
     * and, for rows not there yet, $4 the partition's first offset. */
    { "off_ensure", 4,
      "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
      " SELECT $1, t, p, o FROM unnest($2::text[], $3::integer[],"
      " $4::bigint[]) AS u(t, p, o) ON CONFLICT DO NOTHING" },

    { "off_lock", 3,
      "SELECT c.topic, c.partition, c.next_offset FROM consumer_offsets c"
      " JOIN unnest($2::text[], $3::integer[]) AS u(t, p)"
      " ON c.topic = u.t AND c.partition = u.p WHERE c.group_id = $1"
      " ORDER BY c.topic, c.partition FOR UPDATE OF c" },

    { "off_set", 4,
      "UPDATE consumer_offsets c SET next_offset = u.o, updated_at = now()"
      " FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS u(t, p, o)"
      " WHERE c.group_id = $1 AND c.topic = u.t AND c.partition = u.p" },

    { "off_load", 2,
      "SELECT partition, next_offset FROM consumer_offsets"
      " WHERE group_id = $1 AND topic = $2" },

    { "processed", 5,
      "INSERT INTO inbound_processed (dedup_key, topic, partition, \"offset\","
      " commands) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
      " RETURNING 1" },

    /* The DLQ row and its Kafka copy: original bytes, original headers
     * plus the reason. */
    { "dead", 11,
      "WITH d AS (INSERT INTO dead_letters (topic, partition, \"offset\","
      " msg_key, headers, body, source, delivery_id, reason, detail)"
      " VALUES ($1, $2, $3, $4::bytea, $5::jsonb, $6::bytea, $7, $8, $9, $10)"
      " ON CONFLICT (topic, partition, \"offset\") DO NOTHING RETURNING id)"
      " INSERT INTO outbox (kind, topic, msg_key, headers, payload)"
      " SELECT 'kafka', $11, $4::bytea, $5::jsonb || jsonb_build_array("
      " jsonb_build_object('name', 'dlq_reason', 'value', $9::text),"
      " jsonb_build_object('name', 'dlq_detail', 'value', $10::text),"
      " jsonb_build_object('name', 'dlq_id', 'value', d.id::text),"
      " jsonb_build_object('name', 'dlq_origin', 'value',"
      " $1::text || '/' || $2::integer::text || '/' || $3::bigint::text)),"
      " $6::bytea FROM d" },

    { "map_get", 3,
      "SELECT canonical_id FROM source_mappings WHERE source = $1"
      " AND kind = $2 AND external_id = $3" },

    { "map_put", 4,
      "INSERT INTO source_mappings (source, kind, external_id, canonical_id)"
      " VALUES ($1, $2, $3, $4) ON CONFLICT (source, kind, external_id)"
      " DO UPDATE SET canonical_id = EXCLUDED.canonical_id,"
      " updated_at = now()"
      " WHERE source_mappings.canonical_id <> EXCLUDED.canonical_id" },

    { "merchant_put", 1,
      "INSERT INTO merchants (id) VALUES ($1) ON CONFLICT DO NOTHING" },

    { "store_put", 2,
      "WITH m AS (INSERT INTO merchants (id) SELECT $2::text"
      " WHERE $2::text IS NOT NULL"
      " ON CONFLICT DO NOTHING RETURNING id)"
      " INSERT INTO stores (id, merchant_id)"
      " SELECT $1, (SELECT id FROM merchants WHERE id = $2::text"
      " UNION SELECT id FROM m LIMIT 1)"
      " ON CONFLICT DO NOTHING" },

    { "item_put", 10,
      "INSERT INTO products (id, merchant_id, sku, name, description, brand,"
      " tags, attributes, source, source_updated_at)"
      " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9,"
      " $10::timestamptz)"
      " ON CONFLICT (id) DO UPDATE SET merchant_id = EXCLUDED.merchant_id,"
      " sku = EXCLUDED.sku, name = EXCLUDED.name,"
      " description = EXCLUDED.description, brand = EXCLUDED.brand,"
      " tags = EXCLUDED.tags, attributes = EXCLUDED.attributes,"
      " source = EXCLUDED.source,"
      " source_updated_at = COALESCE(EXCLUDED.source_updated_at,"
      " products.source_updated_at),"
      " version = products.version + 1, updated_at = now()"
      " WHERE products.source_updated_at IS NULL"
      " OR EXCLUDED.source_updated_at IS NULL"
      " OR EXCLUDED.source_updated_at >= products.source_updated_at"
      " RETURNING version" },

    /* An item's variants replaced. A sku another item had moves: that
     * item changed too (its version goes up, and its rendering with it);
     * returns the ids of such items. */
    { "variants_sync", 2,
      "WITH v AS (SELECT e->>'sku' AS sku, e->>'name' AS name,"
      " COALESCE(e->'options', '{}'::jsonb) AS options, ord"
      " FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord)),"
      " d AS (DELETE FROM variants WHERE item_id = $1"
      " AND sku NOT IN (SELECT sku FROM v)),"
      " mv AS (UPDATE products p SET version = p.version + 1,"
      " updated_at = now() WHERE p.id <> $1 AND p.id = ANY (ARRAY(SELECT"
      " (SELECT o.item_id FROM variants o WHERE o.sku = v.sku) FROM v))"
      " RETURNING p.id),"
      " vi AS (INSERT INTO variants (sku, item_id, position, name, options)"
      " SELECT sku, $1, ord, name, options FROM v"
      " ON CONFLICT (sku) DO UPDATE SET item_id = EXCLUDED.item_id,"
      " position = EXCLUDED.position, name = EXCLUDED.name,"
      " options = EXCLUDED.options, updated_at = now())"
      " SELECT id FROM mv" },

    { "addons_sync", 2,
      "WITH g AS (SELECT e->>'id' AS id, e->>'name' AS name,"
      " (e->>'min')::int AS min_select, (e->>'max')::int AS max_select,"
      " e->'addons' AS addons, ord"
      " FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord)),"
      " d AS (DELETE FROM addon_groups WHERE item_id = $1"
      " AND group_id NOT IN (SELECT id FROM g))"
      " INSERT INTO addon_groups (item_id, group_id, position, name,"
      " min_select, max_select, addons)"
      " SELECT $1, id, ord, name, min_select, max_select, addons FROM g"
      " ON CONFLICT (item_id, group_id) DO UPDATE"
      " SET position = EXCLUDED.position, name = EXCLUDED.name,"
      " min_select = EXCLUDED.min_select, max_select = EXCLUDED.max_select,"
      " addons = EXCLUDED.addons" },

    { "price_put", 5,
      "INSERT INTO price_book (sku, store_id, amount_minor, currency,"
      " source_ts) VALUES ($1, $2, $3, $4, $5::timestamptz)"
      " ON CONFLICT (sku, store_id) DO UPDATE"
      " SET amount_minor = EXCLUDED.amount_minor,"
      " currency = EXCLUDED.currency,"
      " source_ts = COALESCE(EXCLUDED.source_ts, price_book.source_ts),"
      " version = price_book.version + 1, updated_at = now()"
      " WHERE price_book.source_ts IS NULL OR EXCLUDED.source_ts IS NULL"
      " OR EXCLUDED.source_ts >= price_book.source_ts"
      " RETURNING version" },

    /* A price change changes the rendered item and stock values: bump
     * their versions so the read model accepts the new renderings. */
    { "price_bump_item", 1,
      "UPDATE products p SET version = p.version + 1, updated_at = now()"
      " FROM variants v WHERE v.sku = $1 AND p.id = v.item_id"
      " RETURNING p.id" },

    { "price_bump_stock", 2,
      "UPDATE stock_levels SET version = version + 1, updated_at = now()"
      " WHERE sku = $1 AND ($2 = '' OR store_id = $2) RETURNING store_id" },

    /* prev is joined into the inserted row so that it is read (and
     * locked) before the upsert changes the row; referenced only from
     * RETURNING it would run after and see nothing. */
    { "stock_set", 4,
      "WITH prev AS (SELECT on_hand, reserved FROM stock_levels"
      " WHERE store_id = $1 AND sku = $2 FOR UPDATE)"
      " INSERT INTO stock_levels (store_id, sku, on_hand, source_ts)"
      " SELECT $1, $2, $3, $4::timestamptz FROM (SELECT 1) AS one"
      " LEFT JOIN prev ON true"
      " ON CONFLICT (store_id, sku) DO UPDATE SET on_hand = EXCLUDED.on_hand,"
      " source_ts = COALESCE(EXCLUDED.source_ts, stock_levels.source_ts),"
      " version = stock_levels.version + 1, updated_at = now()"
      " WHERE stock_levels.source_ts IS NULL OR EXCLUDED.source_ts IS NULL"
      " OR EXCLUDED.source_ts >= stock_levels.source_ts"
      " RETURNING version, on_hand, reserved,"
      " (SELECT on_hand FROM prev), (SELECT reserved FROM prev)" },

    { "stock_add", 3,
      "WITH prev AS (SELECT on_hand, reserved FROM stock_levels"
      " WHERE store_id = $1 AND sku = $2 FOR UPDATE)"
      " INSERT INTO stock_levels (store_id, sku, on_hand)"
      " SELECT $1, $2, $3 FROM (SELECT 1) AS one LEFT JOIN prev ON true"
      " ON CONFLICT (store_id, sku) DO UPDATE"
      " SET on_hand = stock_levels.on_hand + EXCLUDED.on_hand,"
      " version = stock_levels.version + 1, updated_at = now()"
      " RETURNING version, on_hand, reserved,"
      " (SELECT on_hand FROM prev), (SELECT reserved FROM prev)" },

    { "stock_sub", 3,
      "UPDATE stock_levels SET on_hand = on_hand + $3,"
      " version = version + 1, updated_at = now()"
      " WHERE store_id = $1 AND sku = $2 AND on_hand + $3 >= 0"
      " RETURNING version, on_hand, reserved, on_hand - $3, reserved" },

    { "event", 12,
      "WITH e AS (INSERT INTO event_store (event_id, aggregate_type,"
      " aggregate_id, version, event_type, data, metadata, correlation_id,"
      " causation_id) VALUES ($1::uuid, $2, $3, $4, $5, $6::jsonb,"
      " $7::jsonb, $8, $9) ON CONFLICT (event_id) DO NOTHING"
      " RETURNING event_id)"
      " INSERT INTO outbox (kind, topic, msg_key, headers, payload)"
      " SELECT 'kafka', $10, convert_to($3, 'UTF8'), $11::jsonb,"
      " convert_to($12, 'UTF8') FROM e" },

    { "stock_event", 19,
      "WITH e AS (INSERT INTO event_store (event_id, aggregate_type,"
      " aggregate_id, version, event_type, data, metadata, correlation_id,"
      " causation_id) VALUES ($1::uuid, $2, $3, $4, $5, $6::jsonb,"
      " $7::jsonb, $8, $9) ON CONFLICT (event_id) DO NOTHING"
      " RETURNING event_id),"
      " l AS (INSERT INTO stock_ledger (store_id, sku, event_id, movement,"
      " delta, on_hand_after, reason, source_ts)"
      " SELECT $13, $14, e.event_id, $15, $16, $17, $18, $19::timestamptz"
      " FROM e)"
      " INSERT INTO outbox (kind, topic, msg_key, headers, payload)"
      " SELECT 'kafka', $10, convert_to($3, 'UTF8'), $11::jsonb,"
      " convert_to($12, 'UTF8') FROM e" },

    /* The fast path (see proj_fast_txn): the dedup claims of the
     * batch's valid messages, $1 keys, $2 .. $4 the positions of the
     * messages, $5 how many commands each has. Returns the keys claimed
     * now; the others were claimed by a committed batch. Keys are looked
     * up first and the rest inserted plainly, which costs less than an
     * insert ON CONFLICT: a key claimed meanwhile by a batch not yet
     * committed (a duplicate delivery on another partition) makes the
     * insert fail, and the batch goes the careful way. */
    { "fast_claim", 5,
      "WITH x AS (SELECT dedup_key FROM inbound_processed"
      " WHERE dedup_key = ANY($1::text[]))"
      " INSERT INTO inbound_processed (dedup_key, topic, partition, \"offset\","
      " commands) SELECT * FROM unnest($1::text[], $2::text[],"
      " $3::integer[], $4::bigint[], $5::integer[]) AS u(k, t, p, o, n)"
      " WHERE u.k NOT IN (SELECT dedup_key FROM x) RETURNING dedup_key" },

    /* The stock commands of a batch are folded in C (proj_bulk_stock):
     * first, per key they touch ($1 stores, $2 skus; one row per key, in
     * order), its current level if any, not locked: the write checks
     * that the version is still the one read. With it what the values
     * of the read model need: the sku as JSON and the store's effective
     * price as rm_stock_values renders them (the batch's prices are
     * written by then), and in the first row the transaction's now(),
     * which the write gives the rows' updated_at. Every lookup is a
     * primary-key probe per key (LATERAL ... OFFSET 0): given the number
     * of keys, the planner would rather hash the whole stock_levels
     * table, which costs twice as much. And the as_of instants of the
     * counts in microseconds (one per command, NULL when absent),
     * compared in C as PostgreSQL would ... */
    { "bulk_stock_state", PROJ_INLINE,
      "SELECT s.on_hand, s.reserved, s.version,"
      " (extract(epoch FROM s.source_ts) * 1000000)::bigint,"
      " to_json(k.sku)::text, COALESCE(commerce_money(o.amount_minor,"
      " o.currency), commerce_money(b.amount_minor, b.currency))::text,"
      " CASE WHEN k.i = 1 THEN commerce_ts(now()) END"
      " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(store, sku, i)"
      " LEFT JOIN LATERAL (SELECT * FROM stock_levels s"
      " WHERE s.store_id = k.store AND s.sku = k.sku OFFSET 0) s ON true"
      " LEFT JOIN LATERAL (SELECT * FROM price_book o"
      " WHERE o.sku = k.sku AND o.store_id = k.store OFFSET 0) o ON true"
      " LEFT JOIN LATERAL (SELECT * FROM price_book b"
      " WHERE b.sku = k.sku AND b.store_id = '' OFFSET 0) b ON true"
      " ORDER BY k.i" },

    { "bulk_stock_ts", 1,
      "SELECT (extract(epoch FROM t::timestamptz) * 1000000)::bigint"
      " FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i" },

    /* ... then every level, event and ledger row in one statement. Per
     * applied command, in order: $1 store, $2 sku, $3 event id, $4
     * version, $5 on_hand, $6 delta, $7 movement, $8 reason, $9 as_of,
     * $10 event data, $11 metadata, $12 correlation, $13 causation, $14
     * orderability event id (NULL: availability did not cross zero), $15
     * its data. Per key, the final state: $16 store, $17 sku, $18
     * on_hand, $19 version, $20 latest as_of (NULL: keep), and $21 the
     * version read (0: no level yet). A level is updated only if its
     * version is still the one read, and inserted only if there was
     * none (else the insert fails): returns how many were updated, and
     * fewer than were read means another transaction changed one in
     * between. The events' Kafka copies are in the batch's 'kafka_batch'
     * outbox row, built in C from the same values. */
    { "bulk_stock_write", 21,
      "WITH c AS (SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[],"
      " $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[],"
      " $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],"
      " $14::uuid[], $15::text[])"
      " WITH ORDINALITY AS c(store, sku, eid, version, on_hand, delta,"
      " movement, reason, as_of, data, meta, corr, caus, oeid, odata, ord)),"
      " k AS (SELECT * FROM unnest($16::text[], $17::text[], $18::bigint[],"
      " $19::bigint[], $20::timestamptz[], $21::bigint[])"
      " AS k(store, sku, on_hand, version, ts, read)),"
      " lv AS (UPDATE stock_levels s SET on_hand = k.on_hand,"
      " version = k.version, source_ts = COALESCE(k.ts, s.source_ts),"
      " updated_at = now() FROM k WHERE k.read > 0"
      " AND s.store_id = k.store AND s.sku = k.sku AND s.version = k.read"
      " RETURNING 1),"
      " nl AS (INSERT INTO stock_levels (store_id, sku, on_hand, version,"
      " source_ts) SELECT store, sku, on_hand, version, ts FROM k"
      " WHERE read = 0),"
      " e AS (INSERT INTO event_store (event_id, aggregate_type,"
      " aggregate_id, version, event_type, data, metadata, correlation_id,"
      " causation_id) SELECT id, atype, agg, version, etype, d::jsonb,"
      " meta::jsonb, corr, caus FROM (SELECT eid AS id, 'stock' AS atype,"
      " 'stock:' || store || ':' || sku AS agg, version,"
      " 'inventory.stock.changed' AS etype, data AS d, meta, corr, caus,"
      " ord, 0 AS k FROM c UNION ALL SELECT oeid, 'orderability',"
      " 'orderability:' || store || ':' || sku, version,"
      " 'inventory.orderability.changed', odata, meta, corr, caus, ord, 1"
      " FROM c WHERE oeid IS NOT NULL) AS x ORDER BY ord, k),"
      " l AS (INSERT INTO stock_ledger (store_id, sku, event_id, movement,"
      " delta, on_hand_after, reason, source_ts) SELECT store, sku, eid,"
      " movement, delta, on_hand, reason, as_of::timestamptz FROM c"
      " ORDER BY ord)"
      " SELECT count(*) FROM lv" },

    /* The price commands of a batch are folded in C (proj_bulk_price)
     * like the stock commands: first the current rows of every key they
     * touch, locked in key order ($1 skus, $2 stores, '' for the base
     * price) ... */
    { "bulk_price_state", PROJ_INLINE,
      "SELECT k.i, b.version,"
      " (extract(epoch FROM b.source_ts) * 1000000)::bigint"
      " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(sku, store, i)"
      " JOIN price_book b ON b.sku = k.sku AND b.store_id = k.store"
      " ORDER BY b.sku, b.store_id FOR UPDATE OF b" },

    /* ... then the rows, the events and the version bumps of the
     * renderings a price is part of (items with a variant of the sku for
     * a base price; the sku's stock levels in every store for a base
     * price, in its store for an override). Per applied command, in
     * order: $1 event id, $2 aggregate id, $3 version, $4 event data, $5
     * metadata, $6 correlation, $7 causation. Per key, the final state:
     * $8 sku, $9 store, $10 amount_minor, $11 currency, $12 version, $13
     * latest as_of (NULL: keep). The changed keys again: $14 the skus of
     * base prices, $15 and $16 the skus and stores of overrides. Returns
     * the bumped renderings: ('i', item id, NULL) and ('s', store, sku);
     * a stock level both bumps reach is bumped once or twice. */
    { "bulk_price_write", 16,
      "WITH k AS (INSERT INTO price_book (sku, store_id, amount_minor,"
      " currency, version, source_ts) SELECT * FROM unnest($8::text[],"
      " $9::text[], $10::bigint[], $11::text[], $12::bigint[],"
      " $13::timestamptz[])"
      " ON CONFLICT (sku, store_id) DO UPDATE"
      " SET amount_minor = EXCLUDED.amount_minor,"
      " currency = EXCLUDED.currency,"
      " version = GREATEST(EXCLUDED.version, price_book.version + 1),"
      " source_ts = COALESCE(EXCLUDED.source_ts, price_book.source_ts),"
      " updated_at = now()),"
      " e AS (INSERT INTO event_store (event_id, aggregate_type,"
      " aggregate_id, version, event_type, data, metadata, correlation_id,"
      " causation_id) SELECT eid, 'price', agg, version,"
      " 'pricing.price.updated', data::jsonb, meta::jsonb, corr, caus"
      " FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[],"
      " $5::text[], $6::text[], $7::text[]) WITH ORDINALITY"
      " AS c(eid, agg, version, data, meta, corr, caus, ord) ORDER BY ord),"
      " bi AS (UPDATE products p SET version = p.version + 1,"
      " updated_at = now() WHERE p.id IN (SELECT v.item_id FROM variants v"
      " WHERE v.sku = ANY($14::text[])) RETURNING p.id),"
      " bs AS (UPDATE stock_levels s SET version = s.version + 1,"
      " updated_at = now() WHERE s.sku = ANY($14::text[])"
      " RETURNING s.store_id, s.sku),"
      " bo AS (UPDATE stock_levels s SET version = s.version + 1,"
      " updated_at = now() FROM unnest($15::text[], $16::text[]) AS o(sku,"
      " store) WHERE s.store_id = o.store AND s.sku = o.sku"
      " RETURNING s.store_id, s.sku)"
      " SELECT 'i', id, NULL FROM bi UNION ALL"
      " SELECT 's', store_id, sku FROM bs UNION ALL"
      " SELECT 's', store_id, sku FROM bo" },

    /* item.upsert (without vendor references) in one statement: merchant,
     * item, variants and addon groups replaced, the event. $1 id, $2
     * merchant, $3 sku, $4 name, $5 description, $6 brand, $7 tags, $8
     * attributes, $9 source, $10 as_of, $11 variants, $12 addon groups,
     * $13 event id, $14 metadata, $15 correlation, $16 causation, $17
     * event data. Returns (version, NULL), or no such row when stale, and
     * (NULL, id) for every other item a sku moved from (see
     * variants_sync). */
    { "fast_item", 17,
      "WITH m AS (INSERT INTO merchants (id) SELECT $2::text"
      " WHERE $2::text IS NOT NULL ON CONFLICT DO NOTHING),"
      " i AS (INSERT INTO products (id, merchant_id, sku, name, description,"
      " brand, tags, attributes, source, source_updated_at)"
      " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9,"
      " $10::timestamptz)"
      " ON CONFLICT (id) DO UPDATE SET merchant_id = EXCLUDED.merchant_id,"
      " sku = EXCLUDED.sku, name = EXCLUDED.name,"
      " description = EXCLUDED.description, brand = EXCLUDED.brand,"
      " tags = EXCLUDED.tags, attributes = EXCLUDED.attributes,"
      " source = EXCLUDED.source,"
      " source_updated_at = COALESCE(EXCLUDED.source_updated_at,"
      " products.source_updated_at),"
      " version = products.version + 1, updated_at = now()"
      " WHERE products.source_updated_at IS NULL"
      " OR EXCLUDED.source_updated_at IS NULL"
      " OR EXCLUDED.source_updated_at >= products.source_updated_at"
      " RETURNING version),"
      " v AS (SELECT e->>'sku' AS sku, e->>'name' AS name,"
      " COALESCE(e->'options', '{}'::jsonb) AS options, ord"
      " FROM jsonb_array_elements($11::jsonb) WITH ORDINALITY AS t(e, ord)),"
      " vd AS (DELETE FROM variants WHERE item_id = $1"
      " AND sku NOT IN (SELECT sku FROM v) AND EXISTS (SELECT 1 FROM i)),"
      " mv AS (UPDATE products p SET version = p.version + 1,"
      " updated_at = now() WHERE p.id <> $1 AND p.id = ANY (ARRAY(SELECT"
      " (SELECT o.item_id FROM variants o WHERE o.sku = v.sku) FROM v))"
      " AND EXISTS (SELECT 1 FROM i) RETURNING p.id),"
      " vi AS (INSERT INTO variants (sku, item_id, position, name, options)"
      " SELECT sku, $1, ord, name, options FROM v, i"
      " ON CONFLICT (sku) DO UPDATE SET item_id = EXCLUDED.item_id,"
      " position = EXCLUDED.position, name = EXCLUDED.name,"
      " options = EXCLUDED.options, updated_at = now()),"
      " g AS (SELECT e->>'id' AS id, e->>'name' AS name,"
      " (e->>'min')::int AS min_select, (e->>'max')::int AS max_select,"
      " e->'addons' AS addons, ord"
      " FROM jsonb_array_elements($12::jsonb) WITH ORDINALITY AS t(e, ord)),"
      " gd AS (DELETE FROM addon_groups WHERE item_id = $1"
      " AND group_id NOT IN (SELECT id FROM g) AND EXISTS (SELECT 1 FROM i)),"
      " gi AS (INSERT INTO addon_groups (item_id, group_id, position, name,"
      " min_select, max_select, addons)"
      " SELECT $1, g.id, ord, name, min_select, max_select, addons FROM g, i"
      " ON CONFLICT (item_id, group_id) DO UPDATE"
      " SET position = EXCLUDED.position, name = EXCLUDED.name,"
      " min_select = EXCLUDED.min_select, max_select = EXCLUDED.max_select,"
      " addons = EXCLUDED.addons),"
      " e AS (INSERT INTO event_store (event_id, aggregate_type,"
      " aggregate_id, version, event_type, data, metadata, correlation_id,"
      " causation_id) SELECT $13::uuid, 'item', $1, i.version,"
      " 'catalog.item.updated', $17::jsonb, $14::jsonb, $15, $16 FROM i)"
      " SELECT version, NULL FROM i UNION ALL SELECT NULL, id FROM mv" },

    /* The read-model values a batch changed (see proj_render): written to
     * Redis after the commit by the read-model thread, or by its drain
     * after a crash. */
    { "rm_keys", 1,
      "INSERT INTO outbox (kind, payload)"
      " VALUES ('redis_keys', convert_to($1, 'UTF8')) RETURNING id" },
};


/* The SQL of a statement by name. */
static const char *
proj_sql(const char *name)
{
    size_t  i;

    for (i = 0; i < sizeof(proj_stmts) / sizeof(proj_stmts[0]); i++) {
        if (strcmp(proj_stmts[i].name, name) == 0) {
            return proj_stmts[i].sql;
        }
    }

    return NULL;
}


proj_store_t *
proj_store_new(cw_pg_t *pg, cw_pg_t *arc_pg, const char *group_id,
    const char *events_topic, const char *dlq_topic,
    const proj_store_metrics_t *metrics)
{
    proj_store_t  *st;

    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        cw_pg_free(arc_pg);
        return NULL;
    }

    st->pg = pg;
    st->arc_pg = arc_pg;
    st->group_id = group_id;
    st->events_topic = events_topic;
    st->dlq_topic = dlq_topic;
    st->m = *metrics;
    st->stores_known = json_object();

    if (st->stores_known == NULL) {
        cw_pg_free(arc_pg);
        free(st);
        return NULL;
    }

    return st;
}


void
proj_store_free(proj_store_t *st)
{
    if (st != NULL) {
        proj_pending_free(st->pending);
        cw_pg_side_stop(st->side);
        cw_pg_free(st->arc_pg);
        json_decref(st->items);
        json_decref(st->stocks);
        json_decref(st->stores_known);
        json_decref(st->stores_new);
        cw_buf_free(&st->kblob);
        cw_buf_free(&st->scratch);
        cw_buf_free(&st->rvals);
        free(st->keys_json);
        free(st);
    }
}


int
proj_store_prepare(proj_store_t *st, char *err, size_t errlen)
{
    size_t  i;

    for (i = 0; i < sizeof(proj_stmts) / sizeof(proj_stmts[0]); i++) {
        if (proj_stmts[i].nparams == PROJ_INLINE) {
            continue;
        }
        if (cw_pg_prepare(st->pg, proj_stmts[i].name, proj_stmts[i].sql,
                          proj_stmts[i].nparams, err, errlen) != 0)
        {
            return -1;
        }
    }

    if (st->side != NULL) {
        return 0;
    }

    if (cw_pg_prepare(st->arc_pg, "archive_batch", PROJ_ARCHIVE_SQL, 3, err,
                      errlen) != 0)
    {
        return -1;
    }

    st->side = cw_pg_side_start(st->arc_pg);
    st->arc_pg = NULL;
    if (st->side == NULL) {
        snprintf(err, errlen, "cannot start the archive thread");
        return -1;
    }

    return 0;
}


int
proj_store_load_offsets(proj_store_t *st,
    rd_kafka_topic_partition_list_t *parts, volatile int *stop)
{
    int            i, j;
    char           err[512];
    PGresult      *res;
    cw_backoff_t   bo;
    cw_pg_class_t  cls;
    const char    *p[2];

    /* The connection is busy until the COMMIT in flight is confirmed. */
    if (proj_store_settle(st, stop) != 0) {
        return -1;
    }

    cw_backoff_init(&bo, 100, 5000, 0.5, 0, 0);

    for (i = 0; i < parts->cnt; i++) {
        parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }

    for ( ;; ) {
        p[0] = st->group_id;
        p[1] = parts->cnt > 0 ? parts->elems[0].topic : "";

        res = cw_pg_execp(st->pg, "off_load", 2, p, &cls, err, sizeof(err));
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

    for (j = 0; j < PQntuples(res); j++) {
        for (i = 0; i < parts->cnt; i++) {
            if (parts->elems[i].partition == atoi(PQgetvalue(res, j, 0))
                && strcmp(parts->elems[i].topic, p[1]) == 0)
            {
                parts->elems[i].offset = atoll(PQgetvalue(res, j, 1));
            }
        }
    }

    PQclear(res);

    return 0;
}


/* ------------------------------------------------------------------ */
/* Message preparation (outside the transaction, once per batch).      */

static char *
proj_strndup_or_null(const void *p, size_t n)
{
    return p == NULL ? NULL : strndup(p, n);
}


static void
proj_msg_headers(proj_msg_t *pm)
{
    size_t        i, size;
    const char   *name;
    const void   *value;
    cw_buf_t      b;
    rd_kafka_headers_t  *hdrs;

    cw_buf_init(&b);
    cw_buf_putc(&b, '[');

    if (rd_kafka_message_headers(pm->m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
    {
        for (i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size)
                    == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
        {
            if (i > 0) {
                cw_buf_putc(&b, ',');
            }
            cw_buf_puts(&b, "{\"name\":");
            cw_buf_json_str(&b, name);
            cw_buf_puts(&b, ",\"value\":\"");
            if (value != NULL) {
                cw_buf_json_escape(&b, value, size);
            }
            cw_buf_puts(&b, "\"}");

            if (value == NULL || size > PROJ_HDR_MAX) {
                continue;
            }

            if (strcmp(name, "source") == 0 && pm->source == NULL) {
                pm->source = proj_strndup_or_null(value, size);
            } else if (strcmp(name, "topic") == 0 && pm->wtopic == NULL) {
                pm->wtopic = proj_strndup_or_null(value, size);
            } else if (strcmp(name, "delivery_id") == 0
                       && pm->delivery_id == NULL)
            {
                pm->delivery_id = proj_strndup_or_null(value, size);
            } else if (strcmp(name, "traceparent") == 0
                       && pm->traceparent == NULL)
            {
                pm->traceparent = proj_strndup_or_null(value, size);
            }
        }
    }

    cw_buf_putc(&b, ']');

    pm->headers_text = b.oom ? strdup("[]") : strdup(b.data);
    cw_buf_free(&b);
}


static void
proj_msg_prepare(proj_msg_t *pm, rd_kafka_message_t *m)
{
    proj_input_t  in;

    memset(pm, 0, sizeof(*pm));
    pm->m = m;
    pm->topic = rd_kafka_topic_name(m->rkt);

    proj_msg_headers(pm);

    if (m->key != NULL && m->key_len > 0 && m->key_len <= PROJ_ID_MAX
        && memchr(m->key, '\0', m->key_len) == NULL)
    {
        pm->key = strndup(m->key, m->key_len);
    }

    if (pm->source != NULL && pm->delivery_id != NULL
        && pm->delivery_id[0] != '\0')
    {
        snprintf(pm->dedup, sizeof(pm->dedup), "%s|%s", pm->source,
                 pm->delivery_id);
    } else {
        snprintf(pm->dedup, sizeof(pm->dedup), "%s|%" PRId32 "|%" PRId64,
                 pm->topic, m->partition, m->offset);
    }

    in.source = pm->source;
    in.topic = pm->wtopic;
    in.key = pm->key;
    in.body = m->payload != NULL ? m->payload : "";
    in.len = m->len;

    pm->cmds = proj_adapt(&in, &pm->err);
}


static void
proj_msg_free(proj_msg_t *pm)
{
    free(pm->source);
    free(pm->wtopic);
    free(pm->delivery_id);
    free(pm->traceparent);
    free(pm->key);
    free(pm->headers_text);
    free(pm->meta);
    json_decref(pm->cmds);
}


/* ------------------------------------------------------------------ */
/* Commands.                                                           */

static proj_rc_t
proj_exec(proj_ctx_t *c, const char *stmt, int n, const char *const *p,
    PGresult **out)
{
    PGresult  *res;

    res = cw_pg_execp(c->st->pg, stmt, n, p, &c->cls, c->dberr, c->dberrlen);
    if (res == NULL) {
        return PROJ_DB;
    }

    if (out != NULL) {
        *out = res;
    } else {
        PQclear(res);
    }

    return PROJ_OK;
}


static const char *
proj_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}


/* "s" (escaped), or null. */
static void
proj_json_str_or_null(cw_buf_t *b, const char *s)
{
    if (s != NULL) {
        cw_buf_json_str(b, s);
    } else {
        cw_buf_puts(b, "null");
    }
}


/* The id of the command's next event: a function of the message's dedup
 * key, the command's index, the event's rank in the command and the
 * message's Kafka timestamp, so that a redelivery makes the same ids. */
static int
proj_event_id(proj_ctx_t *c, char id[37])
{
    char                        name[700];
    int                         n;
    int64_t                     ts;
    rd_kafka_timestamp_type_t   tstype;

    n = snprintf(name, sizeof(name), "%s#%zu#%d", c->msg->dedup, c->index,
                 c->nevent++);
    ts = rd_kafka_message_timestamp(c->msg->m, &tstype);

    return proj_event_uuid(name, (size_t) n, ts, id);
}


/* The metadata of every event of a message, built once per message:
 * {"source","delivery_id","traceparent","inbound":{topic,partition,
 * offset}}. NULL when out of memory. */
static const char *
proj_msg_meta(proj_msg_t *pm)
{
    cw_buf_t  b;

    if (pm->meta != NULL) {
        return pm->meta;
    }

    cw_buf_init(&b);
    cw_buf_puts(&b, "{\"source\":");
    proj_json_str_or_null(&b, pm->source);
    cw_buf_puts(&b, ",\"delivery_id\":");
    proj_json_str_or_null(&b, pm->delivery_id);
    cw_buf_puts(&b, ",\"traceparent\":");
    proj_json_str_or_null(&b, pm->traceparent);
    cw_buf_puts(&b, ",\"inbound\":{\"topic\":");
    cw_buf_json_str(&b, pm->topic);
    cw_buf_printf(&b, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 "}}",
                  pm->m->partition, pm->m->offset);

    if (b.oom) {
        cw_buf_free(&b);
        return NULL;
    }

    pm->meta = b.data;

    return pm->meta;
}


/* The version-independent parts of an event: its id, the message's
 * metadata (owned by the message) and the event's Kafka headers
 * (malloc()ed). */
static int
proj_event_parts(proj_ctx_t *c, const char *type, char id[37],
    const char **meta, char **hdrs)
{
    cw_buf_t  b;

    *hdrs = NULL;
    *meta = proj_msg_meta(c->msg);

    if (*meta == NULL || proj_event_id(c, id) != 0) {
        return -1;
    }

    cw_buf_init(&b);
    cw_buf_puts(&b, "[{\"name\":\"event_type\",\"value\":");
    cw_buf_json_str(&b, type);
    cw_buf_puts(&b, "},{\"name\":\"event_id\",\"value\":\"");
    cw_buf_puts(&b, id);
    cw_buf_puts(&b, "\"},{\"name\":\"traceparent\",\"value\":");
    proj_json_str_or_null(&b, c->msg->traceparent);
    cw_buf_puts(&b, "}]");

    if (b.oom) {
        cw_buf_free(&b);
        return -1;
    }

    *hdrs = b.data;

    return 0;
}


/* The Kafka copy of an event: {"event_id","type","aggregate_type",
 * "aggregate_id","version","occurred_at","data","metadata"}. */
static void
proj_event_json(cw_buf_t *b, const char *id, const char *type,
    const char *agg_type, const char *agg_id, long long version,
    const char *ts, const char *data, const char *meta)
{
    cw_buf_puts(b, "{\"event_id\":\"");
    cw_buf_puts(b, id);
    cw_buf_puts(b, "\",\"type\":");
    cw_buf_json_str(b, type);
    cw_buf_puts(b, ",\"aggregate_type\":");
    cw_buf_json_str(b, agg_type);
    cw_buf_puts(b, ",\"aggregate_id\":");
    cw_buf_json_str(b, agg_id);
    cw_buf_printf(b, ",\"version\":%lld,\"occurred_at\":\"%s\",\"data\":",
                  version, ts);
    cw_buf_puts(b, data);
    cw_buf_puts(b, ",\"metadata\":");
    cw_buf_puts(b, meta);
    cw_buf_putc(b, '}');
}


/* Appends an event of the fast path to the batch's 'kafka_batch' frames:
 * keyed by its aggregate, with the headers event_type, event_id and
 * traceparent, as the careful path's one-event rows have. */
static void
proj_batch_event(proj_store_t *st, proj_msg_t *pm, const char *id,
    const char *type, const char *agg_type, const char *agg_id,
    long long version, const char *ts, const char *data)
{
    const char  *h[6];

    h[0] = "event_type";
    h[1] = type;
    h[2] = "event_id";
    h[3] = id;
    h[4] = "traceparent";
    h[5] = pm->traceparent;

    cw_buf_reset(&st->scratch);
    proj_event_json(&st->scratch, id, type, agg_type, agg_id, version, ts,
                    data, proj_msg_meta(pm));
    if (st->scratch.oom) {
        st->kblob.oom = 1;
        return;
    }

    proj_frame_put(&st->kblob, agg_id, strlen(agg_id), st->scratch.data,
                   st->scratch.len, h, 3);
    st->kblob_n++;
}


/* Appends one event to the event store and the outbox. stock is NULL,
 * or the ledger columns of a stock event. */
static proj_rc_t
proj_emit(proj_ctx_t *c, const char *agg_type, const char *agg_id,
    long long version, const char *type, json_t *data,
    const char *const *stock)
{
    char          id[37], ver[24], ts[32];
    char         *data_s, *hdr_s = NULL;
    const char   *meta_s = NULL;
    cw_buf_t      payload;
    proj_rc_t     rc;
    proj_msg_t   *pm = c->msg;
    const char   *p[19];
    int           i;

    snprintf(ver, sizeof(ver), "%lld", version);
    cw_wall_ts(ts, sizeof(ts));

    cw_buf_init(&payload);
    data_s = json_dumps(data, JSON_COMPACT);

    if (data_s != NULL
        && proj_event_parts(c, type, id, &meta_s, &hdr_s) == 0)
    {
        proj_event_json(&payload, id, type, agg_type, agg_id, version, ts,
                        data_s, meta_s);
    } else {
        payload.oom = 1;
    }

    p[0] = id;
    p[1] = agg_type;
    p[2] = agg_id;
    p[3] = ver;
    p[4] = type;
    p[5] = data_s;
    p[6] = meta_s;
    p[7] = pm->delivery_id != NULL ? pm->delivery_id : pm->dedup;
    p[8] = pm->dedup;
    p[9] = c->st->events_topic;
    p[10] = hdr_s;
    p[11] = payload.data;

    if (payload.oom) {
        snprintf(c->dberr, c->dberrlen, "out of memory");
        c->cls = CW_PG_PERMANENT;
        rc = PROJ_DB;

    } else if (stock != NULL) {
        for (i = 0; i < 7; i++) {
            p[12 + i] = stock[i];
        }
        rc = proj_exec(c, "stock_event", 19, p, NULL);

    } else {
        rc = proj_exec(c, "event", 12, p, NULL);
    }

    if (rc == PROJ_OK) {
        c->st->n_events++;
    }

    free(data_s);
    free(hdr_s);
    cw_buf_free(&payload);

    return rc;
}


static void
proj_touch_stock(proj_store_t *st, const char *store, const char *sku)
{
    char  k[2 * PROJ_ID_MAX + 2];

    snprintf(k, sizeof(k), "%s\n%s", store, sku);
    json_object_set_new(st->stocks, k, json_pack("[s, s]", store, sku));
}


/* Resolves a {"kind","external_id"[,"default"]} reference of the
 * command's source to a canonical id. With a default, an unknown
 * reference is created pointing at it. */
static proj_rc_t
proj_resolve(proj_ctx_t *c, json_t *ref, char *out, size_t size)
{
    PGresult    *res;
    proj_rc_t    rc;
    const char  *p[4], *def;

    p[0] = proj_str(c->cmd, "source");
    p[1] = proj_str(ref, "kind");
    p[2] = proj_str(ref, "external_id");

    rc = proj_exec(c, "map_get", 3, p, &res);
    if (rc != PROJ_OK) {
        return rc;
    }

    if (PQntuples(res) == 1) {
        snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        return PROJ_OK;
    }

    PQclear(res);

    def = proj_str(ref, "default");
    if (def == NULL) {
        proj_error_set(c->err, "unmapped_reference", "no %s mapping for %s "
                       "%s id %s", p[0], p[0], p[1], p[2]);
        return PROJ_REJECT;
    }

    p[3] = def;
    snprintf(out, size, "%s", def);

    return proj_exec(c, "map_put", 4, p, NULL);
}


static proj_rc_t
proj_item_upsert(proj_ctx_t *c)
{
    char         id[PROJ_ID_MAX + 1], ver[24];
    char        *tags, *attrs, *variants, *addons;
    json_t      *item, *ref, *maps, *m;
    size_t       i;
    PGresult    *res;
    proj_rc_t    rc;
    long long    version;
    const char  *p[10];

    item = json_object_get(c->cmd, "item");
    snprintf(id, sizeof(id), "%s", proj_str(item, "id"));

    ref = json_object_get(c->cmd, "id_ref");
    if (ref != NULL) {
        json_t  *r = json_deep_copy(ref);

        json_object_set_new(r, "default", json_string(id));
        rc = proj_resolve(c, r, id, sizeof(id));
        json_decref(r);
        if (rc != PROJ_OK) {
            return rc;
        }
        json_object_set_new(item, "id", json_string(id));
    }

    maps = json_object_get(c->cmd, "mappings");
    json_array_foreach(maps, i, m) {
        p[0] = proj_str(c->cmd, "source");
        p[1] = proj_str(m, "kind");
        p[2] = proj_str(m, "external_id");
        p[3] = proj_str(m, "canonical_id");
        if (strcmp(p[1], "product") == 0) {
            p[3] = id;
        }
        rc = proj_exec(c, "map_put", 4, p, NULL);
        if (rc != PROJ_OK) {
            return rc;
        }
    }

    p[0] = proj_str(c->cmd, "merchant_id");
    if (p[0] != NULL) {
        rc = proj_exec(c, "merchant_put", 1, p, NULL);
        if (rc != PROJ_OK) {
            return rc;
        }
    }

    tags = json_dumps(json_object_get(item, "tags"), JSON_COMPACT);
    attrs = json_dumps(json_object_get(item, "attributes"), JSON_COMPACT);
    variants = json_dumps(json_object_get(item, "variants"), JSON_COMPACT);
    addons = json_dumps(json_object_get(item, "addon_groups"), JSON_COMPACT);

    p[0] = id;
    p[1] = proj_str(c->cmd, "merchant_id");
    p[2] = proj_str(item, "sku");
    p[3] = proj_str(item, "name");
    p[4] = proj_str(item, "description");
    p[5] = proj_str(item, "brand");
    p[6] = tags;
    p[7] = attrs;
    p[8] = proj_str(c->cmd, "source");
    p[9] = proj_str(c->cmd, "as_of");

    rc = proj_exec(c, "item_put", 10, p, &res);
    if (rc != PROJ_OK) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        /* Older than what we have: the source sent them out of order. */
        PQclear(res);
        c->st->n_stale++;
        goto done;
    }

    version = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);

    p[1] = variants;
    rc = proj_exec(c, "variants_sync", 2, p, &res);
    if (rc != PROJ_OK) {
        goto done;
    }
    for (i = 0; i < (size_t) PQntuples(res); i++) {
        json_object_set_new(c->st->items, PQgetvalue(res, (int) i, 0),
                            json_true());
    }
    PQclear(res);

    p[1] = addons;
    rc = proj_exec(c, "addons_sync", 2, p, NULL);
    if (rc != PROJ_OK) {
        goto done;
    }

    snprintf(ver, sizeof(ver), "%lld", version);
    json_object_set_new(c->st->items, id, json_true());

    rc = proj_emit(c, "item", id, version, "catalog.item.updated", item,
                   NULL);

done:

    free(tags);
    free(attrs);
    free(variants);
    free(addons);

    return rc;
}


static proj_rc_t
proj_price_set(proj_ctx_t *c)
{
    char         amount[24], agg[2 * PROJ_ID_MAX + 32];
    json_t      *price, *data;
    int          i;
    PGresult    *res;
    proj_rc_t    rc;
    long long    version;
    const char  *p[5], *store;

    price = json_object_get(c->cmd, "price");
    store = proj_str(c->cmd, "store_id");
    snprintf(amount, sizeof(amount), "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(price, "amount_minor")));

    if (store != NULL) {
        p[0] = store;
        p[1] = proj_str(c->cmd, "merchant_id");
        rc = proj_exec(c, "store_put", 2, p, NULL);
        if (rc != PROJ_OK) {
            return rc;
        }
    }

    p[0] = proj_str(c->cmd, "sku");
    p[1] = store != NULL ? store : "";
    p[2] = amount;
    p[3] = proj_str(price, "currency");
    p[4] = proj_str(c->cmd, "as_of");

    rc = proj_exec(c, "price_put", 5, p, &res);
    if (rc != PROJ_OK) {
        return rc;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        c->st->n_stale++;
        return PROJ_OK;
    }

    version = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);

    if (store == NULL) {
        rc = proj_exec(c, "price_bump_item", 1, p, &res);
        if (rc != PROJ_OK) {
            return rc;
        }
        for (i = 0; i < PQntuples(res); i++) {
            json_object_set_new(c->st->items, PQgetvalue(res, i, 0),
                                json_true());
        }
        PQclear(res);
    }

    rc = proj_exec(c, "price_bump_stock", 2, p, &res);
    if (rc != PROJ_OK) {
        return rc;
    }
    for (i = 0; i < PQntuples(res); i++) {
        proj_touch_stock(c->st, PQgetvalue(res, i, 0), p[0]);
    }
    PQclear(res);

    snprintf(agg, sizeof(agg), "price:%s@%s", p[0], store ? store : "*");
    data = json_pack("{s:s, s:s?, s:{s:s, s:s}}", "sku", p[0],
                     "store_id", store, "price",
                     "amount", proj_str(price, "amount"),
                     "currency", p[3]);

    rc = proj_emit(c, "price", agg, version, "pricing.price.updated", data,
                   NULL);
    json_decref(data);

    return rc;
}


/* stock.set and stock.adjust: one statement changes the level under its
 * row lock and returns before/after; then the ledger and events. */
static proj_rc_t
proj_stock(proj_ctx_t *c, int absolute)
{
    char         sku[PROJ_ID_MAX + 1], store[PROJ_ID_MAX + 1], q[24];
    char         sdelta[24], safter[24], agg[2 * PROJ_ID_MAX + 32];
    json_t      *ref, *data;
    PGresult    *res;
    proj_rc_t    rc;
    long long    version, on_hand, reserved, prev, prev_res, delta;
    int          was, now;
    const char  *p[4], *stmt, *ledger[7];

    ref = json_object_get(c->cmd, "sku_ref");
    if (proj_str(c->cmd, "sku") == NULL && ref != NULL) {
        rc = proj_resolve(c, ref, sku, sizeof(sku));
        if (rc != PROJ_OK) {
            return rc;
        }
    } else {
        snprintf(sku, sizeof(sku), "%s", proj_str(c->cmd, "sku"));
    }

    ref = json_object_get(c->cmd, "store_ref");
    if (proj_str(c->cmd, "store_id") == NULL && ref != NULL) {
        rc = proj_resolve(c, ref, store, sizeof(store));
        if (rc != PROJ_OK) {
            return rc;
        }
    } else {
        snprintf(store, sizeof(store), "%s", proj_str(c->cmd, "store_id"));
    }

    p[0] = store;
    p[1] = proj_str(c->cmd, "merchant_id");
    rc = proj_exec(c, "store_put", 2, p, NULL);
    if (rc != PROJ_OK) {
        return rc;
    }

    delta = json_integer_value(json_object_get(c->cmd,
                                               absolute ? "on_hand" : "delta"));
    snprintf(q, sizeof(q), "%lld", delta);

    p[1] = sku;
    p[2] = q;
    p[3] = proj_str(c->cmd, "as_of");
    stmt = absolute ? "stock_set" : delta > 0 ? "stock_add" : "stock_sub";

    rc = proj_exec(c, stmt, absolute ? 4 : 3, p, &res);
    if (rc != PROJ_OK) {
        return rc;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        if (absolute) {
            c->st->n_stale++;
            return PROJ_OK;
        }
        proj_error_set(c->err, "stock_underflow", "delta %lld would take "
                       "%s at %s below zero", delta, sku, store);
        return PROJ_REJECT;
    }

    version = atoll(PQgetvalue(res, 0, 0));
    on_hand = atoll(PQgetvalue(res, 0, 1));
    reserved = atoll(PQgetvalue(res, 0, 2));
    prev = PQgetisnull(res, 0, 3) ? 0 : atoll(PQgetvalue(res, 0, 3));
    prev_res = PQgetisnull(res, 0, 4) ? 0 : atoll(PQgetvalue(res, 0, 4));
    was = !PQgetisnull(res, 0, 3) && prev - prev_res > 0;
    now = on_hand - reserved > 0;
    PQclear(res);

    proj_touch_stock(c->st, store, sku);

    snprintf(sdelta, sizeof(sdelta), "%lld", on_hand - prev);
    snprintf(safter, sizeof(safter), "%lld", on_hand);
    ledger[0] = store;
    ledger[1] = sku;
    ledger[2] = absolute ? "set" : "adjust";
    ledger[3] = sdelta;
    ledger[4] = safter;
    ledger[5] = absolute ? "count" : proj_str(c->cmd, "reason");
    ledger[6] = proj_str(c->cmd, "as_of");

    snprintf(agg, sizeof(agg), "stock:%s:%s", store, sku);
    data = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:b}",
                     "store_id", store, "sku", sku,
                     "on_hand", (json_int_t) on_hand,
                     "reserved", (json_int_t) reserved,
                     "available", (json_int_t) (on_hand - reserved),
                     "delta", (json_int_t) (on_hand - prev),
                     "movement", ledger[2], "reason", ledger[5],
                     "orderable", now);

    rc = proj_emit(c, "stock", agg, version, "inventory.stock.changed", data,
                   ledger);
    json_decref(data);

    if (rc != PROJ_OK || was == now) {
        return rc;
    }

    snprintf(agg, sizeof(agg), "orderability:%s:%s", store, sku);
    data = json_pack("{s:s, s:s, s:b, s:I}", "store_id", store, "sku", sku,
                     "orderable", now,
                     "available", (json_int_t) (on_hand - reserved));
    rc = proj_emit(c, "orderability", agg, version,
                   "inventory.orderability.changed", data, NULL);
    json_decref(data);

    return rc;
}


static proj_rc_t
proj_command(proj_ctx_t *c)
{
    const char  *type = proj_str(c->cmd, "type");

    c->nevent = 0;

    if (strcmp(type, "item.upsert") == 0) {
        return proj_item_upsert(c);
    }
    if (strcmp(type, "price.set") == 0) {
        return proj_price_set(c);
    }
    if (strcmp(type, "stock.set") == 0) {
        return proj_stock(c, 1);
    }

    return proj_stock(c, 0);
}


/* ------------------------------------------------------------------ */
/* The batch transaction.                                              */

static cw_pg_class_t
proj_dead_letter(proj_store_t *st, proj_msg_t *pm, const char *body_hex,
    const char *key_hex, const char *part, const char *off,
    const proj_error_t *why, char *err, size_t errlen)
{
    PGresult       *res;
    cw_pg_class_t   cls;
    const char     *p[11];
    cw_field_t      f[] = { CW_FSTR("reason", why->reason),
                            CW_FSTR("detail", why->detail),
                            CW_FSTR("topic", pm->topic),
                            CW_FINT("partition", pm->m->partition),
                            CW_FINT("offset", pm->m->offset) };

    p[0] = pm->topic;
    p[1] = part;
    p[2] = off;
    p[3] = key_hex;
    p[4] = pm->headers_text;
    p[5] = body_hex;
    p[6] = pm->source;
    p[7] = pm->delivery_id;
    p[8] = why->reason;
    p[9] = why->detail;
    p[10] = st->dlq_topic;

    res = cw_pg_execp(st->pg, "dead", 11, p, &cls, err, errlen);
    if (res == NULL) {
        return cls;
    }

    PQclear(res);
    st->n_dead++;
    cw_log_kv(CW_LOG_WARN, f, 5, "message dead-lettered");

    return CW_PG_OK;
}


/* Savepoint helpers: a message's failure undoes only that message. */
static cw_pg_class_t
proj_sp(proj_store_t *st, const char *sql, char *err, size_t errlen)
{
    return cw_pg_command(st->pg, sql, err, errlen);
}


static cw_pg_class_t
proj_apply_msg(proj_store_t *st, proj_msg_t *pm, char *err, size_t errlen)
{
    char            part[16], off[24], ncmds[24];
    char           *body_hex, *key_hex = NULL;
    PGresult       *res;
    proj_ctx_t      c;
    proj_rc_t       rc = PROJ_OK;
    proj_error_t    why;
    cw_pg_class_t   cls;
    const char     *p[5];
    size_t          i;

    snprintf(part, sizeof(part), "%" PRId32, pm->m->partition);
    snprintf(off, sizeof(off), "%" PRId64, pm->m->offset);

    body_hex = proj_bytea_hex(pm->m->payload, pm->m->len);
    if (pm->m->key != NULL) {
        key_hex = proj_bytea_hex(pm->m->key, pm->m->key_len);
    }

    if (body_hex == NULL || (pm->m->key != NULL && key_hex == NULL)) {
        free(body_hex);
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    cls = proj_sp(st, "SAVEPOINT msg", err, errlen);
    if (cls != CW_PG_OK) {
        goto done;
    }

    if (pm->cmds == NULL) {
        cls = proj_dead_letter(st, pm, body_hex, key_hex, part, off,
                               &pm->err, err, errlen);
        goto release;
    }

    p[0] = pm->dedup;
    p[1] = pm->topic;
    p[2] = part;
    p[3] = off;
    snprintf(ncmds, sizeof(ncmds), "%zu", json_array_size(pm->cmds));
    p[4] = ncmds;

    res = cw_pg_execp(st->pg, "processed", 5, p, &cls, err, errlen);
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        st->n_dup++;
        goto release;
    }

    PQclear(res);

    memset(&c, 0, sizeof(c));
    memset(&why, 0, sizeof(why));
    c.st = st;
    c.msg = pm;
    c.err = &why;
    c.dberr = err;
    c.dberrlen = errlen;

    for (i = 0; i < json_array_size(pm->cmds) && rc == PROJ_OK; i++) {
        c.cmd = json_array_get(pm->cmds, i);
        c.index = i;
        rc = proj_command(&c);
    }

    if (rc == PROJ_DB && c.cls == CW_PG_PERMANENT) {
        /* PostgreSQL refused a value (e.g. a date out of range): the
         * message is at fault, not the database. */
        proj_error_set(&why, "rejected_by_store", "%s", err);
        rc = PROJ_REJECT;
    }

    if (rc == PROJ_DB) {
        cls = c.cls;
        goto done;
    }

    if (rc == PROJ_REJECT) {
        cls = proj_sp(st, "ROLLBACK TO SAVEPOINT msg", err, errlen);
        if (cls != CW_PG_OK) {
            goto done;
        }

        cls = proj_dead_letter(st, pm, body_hex, key_hex, part, off, &why,
                               err, errlen);
        goto release;
    }

    st->n_applied++;

release:

    if (cls == CW_PG_OK) {
        cls = proj_sp(st, "RELEASE SAVEPOINT msg", err, errlen);
    }

done:

    free(body_hex);
    free(key_hex);

    return cls;
}


/* Queues the renderings of everything the batch touched. */
/* Queues the read-model values the attempt changed as one 'redis_keys'
 * outbox row: {"items":[id...],"stocks":[[store,sku]...],"values":[[key,
 * field,version,value]...]}, the first two to render from the committed
 * rows, the last already rendered (proj_render_stock). */
static cw_pg_class_t
proj_render(proj_store_t *st, char *err, size_t errlen)
{
    char           *s;
    json_t         *ids, *pairs, *v;
    cw_buf_t        b;
    PGresult       *res;
    const char     *k;
    cw_pg_class_t   cls = CW_PG_OK;

    if (json_object_size(st->items) == 0
        && json_object_size(st->stocks) == 0 && st->rvals.len == 0)
    {
        return CW_PG_OK;
    }

    ids = json_array();
    pairs = json_array();

    json_object_foreach(st->items, k, v) {
        json_array_append_new(ids, json_string(k));
    }

    json_object_foreach(st->stocks, k, v) {
        json_array_append(pairs, v);
    }

    cw_buf_init(&b);
    cw_buf_puts(&b, "{\"items\":");
    s = json_dumps(ids, JSON_COMPACT);
    cw_buf_puts(&b, s != NULL ? s : "");
    free(s);
    cw_buf_puts(&b, ",\"stocks\":");
    s = json_dumps(pairs, JSON_COMPACT);
    cw_buf_puts(&b, s != NULL ? s : "");
    free(s);
    cw_buf_puts(&b, ",\"values\":[");
    cw_buf_append(&b, st->rvals.data != NULL ? st->rvals.data : "",
                  st->rvals.len);
    cw_buf_puts(&b, "]}");

    json_decref(ids);
    json_decref(pairs);

    if (b.oom || ids == NULL || pairs == NULL) {
        cw_buf_free(&b);
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    s = b.data;
    res = cw_pg_execp(st->pg, "rm_keys", 1, (const char *const *) &s, &cls,
                      err, errlen);
    if (res == NULL) {
        free(s);
        return cls;
    }

    st->keys_id = atoll(PQgetvalue(res, 0, 0));
    st->keys_json = s;
    PQclear(res);

    return CW_PG_OK;
}


static void proj_attempt_reset(proj_store_t *st);


static proj_part_t *
proj_part_of(proj_part_t *parts, size_t n, const proj_msg_t *pm)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (parts[i].partition == pm->m->partition
            && strcmp(parts[i].topic, pm->topic) == 0)
        {
            return &parts[i];
        }
    }

    return NULL;
}


/* Locks the offset rows of the batch's partitions (created at their first
 * offset when missing), two statements for all of them, and fences the
 * messages below their partition's stored offset: another member (or an
 * earlier life of this one) applied them already. */
static cw_pg_class_t
proj_offsets_lock(proj_batch_t *b, char *err, size_t errlen)
{
    size_t          i, np = 0;
    cw_buf_t        a[3];
    PGresult       *res = NULL;
    proj_msg_t     *pm;
    proj_part_t    *pt;
    const char     *p[4];
    cw_pg_class_t   cls = CW_PG_OK;

    free(b->parts);
    b->parts = calloc(b->n, sizeof(*b->parts));
    if (b->parts == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    proj_arrs_open(a, 3);

    for (i = 0; i < b->n; i++) {
        pm = &b->msgs[i];
        if (proj_part_of(b->parts, np, pm) == NULL) {
            pt = &b->parts[np++];
            pt->topic = pm->topic;
            pt->partition = pm->m->partition;
            pt->last = -1;
            pt->stored = 0;
            proj_arr(&a[0], pm->topic);
            proj_arr_ll(&a[1], pm->m->partition);
            proj_arr_ll(&a[2], pm->m->offset);
        }
    }
    b->nparts = np;

    p[0] = b->st->group_id;

    if (proj_arrs_close(a, 3, p + 1) != 0) {
        snprintf(err, errlen, "out of memory");
        cls = CW_PG_PERMANENT;
        goto done;
    }

    res = cw_pg_execp(b->st->pg, "off_ensure", 4, p, &cls, err, errlen);
    if (res == NULL) {
        goto done;
    }
    PQclear(res);

    res = cw_pg_execp(b->st->pg, "off_lock", 3, p, &cls, err, errlen);
    if (res == NULL) {
        goto done;
    }

    for (i = 0; i < (size_t) PQntuples(res); i++) {
        for (pt = b->parts; pt < b->parts + np; pt++) {
            if (pt->partition == atoi(PQgetvalue(res, (int) i, 1))
                && strcmp(pt->topic, PQgetvalue(res, (int) i, 0)) == 0)
            {
                pt->stored = atoll(PQgetvalue(res, (int) i, 2));
            }
        }
    }
    PQclear(res);

    for (i = 0; i < b->n; i++) {
        pm = &b->msgs[i];
        pm->fenced = pm->m->offset < proj_part_of(b->parts, np, pm)->stored;
    }

done:

    proj_arrs_free(a, 3);

    return cls;
}


/* Stores, for each partition, the offset after its last message not
 * fenced, in one statement. */
static cw_pg_class_t
proj_offsets_store(proj_batch_t *b, char *err, size_t errlen)
{
    size_t          i, n = 0;
    cw_buf_t        a[3];
    PGresult       *res;
    proj_msg_t     *pm;
    proj_part_t    *pt;
    const char     *p[4];
    cw_pg_class_t   cls = CW_PG_OK;

    for (i = 0; i < b->nparts; i++) {
        b->parts[i].last = -1;
    }

    for (i = 0; i < b->n; i++) {
        pm = &b->msgs[i];
        if (!pm->fenced) {
            proj_part_of(b->parts, b->nparts, pm)->last = pm->m->offset;
        }
    }

    proj_arrs_open(a, 3);

    for (pt = b->parts; pt < b->parts + b->nparts; pt++) {
        if (pt->last >= 0) {
            proj_arr(&a[0], pt->topic);
            proj_arr_ll(&a[1], pt->partition);
            proj_arr_ll(&a[2], pt->last + 1);
            n++;
        }
    }

    p[0] = b->st->group_id;

    if (proj_arrs_close(a, 3, p + 1) != 0) {
        snprintf(err, errlen, "out of memory");
        cls = CW_PG_PERMANENT;

    } else if (n > 0) {
        res = cw_pg_execp(b->st->pg, "off_set", 4, p, &cls, err, errlen);
        PQclear(res);
    }

    proj_arrs_free(a, 3);

    return cls;
}


/* The archive's transaction, on the side connection. It need not wait
 * for the disk: the batch transaction commits after it, so its commit
 * record comes later in the WAL, and the batch's commit waits until the
 * WAL is on disk up to that record. */
static cw_pg_class_t
proj_archive_txn(cw_pg_t *pg, void *ud, char *err, size_t errlen)
{
    int             len[3], fmt[3] = { 0, 1, 1 };
    PGresult       *res;
    const char     *p[3];
    proj_batch_t   *b = ud;
    cw_pg_class_t   cls;

    cls = cw_pg_command(pg, "SET LOCAL synchronous_commit = off", err,
                        errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    p[0] = b->arc_records;
    p[1] = b->arc_bodies.buf.data;
    p[2] = b->arc_keys.buf.data;
    len[0] = 0;
    len[1] = (int) b->arc_bodies.buf.len;
    len[2] = (int) b->arc_keys.buf.len;

    res = cw_pg_execpb(pg, "archive_batch", 3, p, len, fmt, &cls, err,
                       errlen);
    if (res == NULL) {
        return cls;
    }
    PQclear(res);

    return CW_PG_OK;
}


/* Starts archiving the batch on the side connection, unless that has
 * committed already or is under way. */
static void
proj_archive_start(proj_batch_t *b)
{
    if (!b->archived && !cw_pg_side_pending(b->st->side)) {
        cw_pg_side_run(b->st->side, proj_archive_txn, b);
    }
}


/* Waits until the batch's archive has committed: a batch transaction
 * commits only after it. */
static cw_pg_class_t
proj_archive_wait(proj_batch_t *b, char *err, size_t errlen)
{
    char            why[512];
    cw_pg_class_t   cls;

    if (b->archived) {
        return CW_PG_OK;
    }

    proj_archive_start(b);

    cls = cw_pg_side_wait(b->st->side, why, sizeof(why));
    if (cls != CW_PG_OK) {
        snprintf(err, errlen, "archive: %s", why);
        return cls;
    }

    b->archived = 1;

    return CW_PG_OK;
}


static cw_pg_class_t
proj_batch_txn(cw_pg_t *pg, void *ud, char *err, size_t errlen)
{
    size_t          i;
    proj_batch_t   *b = ud;
    proj_store_t   *st = b->st;
    cw_pg_class_t   cls;

    proj_attempt_reset(st);

    cls = proj_offsets_lock(b, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    for (i = 0; i < b->n; i++) {
        if (b->msgs[i].fenced) {
            st->n_skip++;
            continue;
        }

        cls = proj_apply_msg(st, &b->msgs[i], err, errlen);
        if (cls != CW_PG_OK) {
            return cls;
        }
    }

    cls = proj_archive_wait(b, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    cls = proj_offsets_store(b, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    return proj_render(st, err, errlen);
}


/* ------------------------------------------------------------------ */
/* The fast path.                                                      */
/*
 * The same batch transaction with far fewer round trips: one statement
 * claims the dedup keys of the valid messages, the first in libpq's
 * pipeline mode, and the batch does not wait for it: a key claimed
 * before fails the attempt, which goes again at once without its
 * message; item upserts are one self-contained statement each (rows and
 * event), pipelined after it a chunk at a time, with no savepoint;
 * price and stock commands, most of the traffic, are folded per key in C
 * over their locked rows and written set-based, one statement for the
 * prices and one for the stock (proj_bulk_price, proj_bulk_stock), which
 * run after the pipeline, prices first. Their events are framed in C into
 * the batch's 'kafka_batch' row (the stock events while the stock
 * statement runs). Events of one message stay in command order, and
 * those of one aggregate in batch order. Validation already happened in
 * C, so a refusal by the database (stock underflow, a row that
 * conflicts, a value PostgreSQL refuses) is rare: when one happens the
 * whole attempt is rolled back and the batch is applied again message by
 * message with savepoints (proj_batch_txn), which dead-letters exactly
 * that message. Commands that need a lookup first (vendor references)
 * run synchronously, after everything queued before them, through the
 * careful code.
 */

#define PROJ_PIPE_MAX  256

typedef enum {
    PROJ_Q_STORE = 0,
    PROJ_Q_ITEM,
    PROJ_Q_CLAIM
} proj_q_kind_t;

/* An event of a pipelined statement, waiting for the version the
 * database gives it before it can be framed. */
typedef struct {
    char            id[37];
    char            ts[32];       /* occurred_at */
    const char     *type;
    const char     *agg_type;
    char           *agg;
    char           *data;
    proj_msg_t     *msg;
} proj_pev_t;

typedef struct {
    proj_q_kind_t   kind;
    const char     *item;         /* points into the command's JSON */
    proj_pev_t     *ev;           /* ITEM: its event */
} proj_q_t;


static void
proj_pev_free(proj_pev_t *ev)
{
    if (ev != NULL) {
        free(ev->agg);
        free(ev->data);
        free(ev);
    }
}


/* The event of a price or item command; data is taken over. */
static proj_pev_t *
proj_pev_new(proj_ctx_t *c, const char *type, const char *agg_type,
    const char *agg, char *data)
{
    proj_pev_t  *ev;

    ev = calloc(1, sizeof(*ev));
    if (ev == NULL || data == NULL || proj_msg_meta(c->msg) == NULL
        || proj_event_id(c, ev->id) != 0
        || (ev->agg = strdup(agg)) == NULL)
    {
        free(data);
        proj_pev_free(ev);
        return NULL;
    }

    ev->type = type;
    ev->agg_type = agg_type;
    ev->data = data;
    ev->msg = c->msg;
    cw_wall_ts(ev->ts, sizeof(ev->ts));

    return ev;
}


/* A stock command waiting for the batch's stock statement. Strings
 * without a buffer point into the message's commands. */
typedef struct {
    const char     *store;
    const char     *sku;
    const char     *as_of;
    const char     *reason;
    const char     *corr;
    const char     *caus;
    int             absolute;
    long long       qty;
    char            id0[37];      /* inventory.stock.changed */
    char            id1[37];      /* inventory.orderability.changed */
    char            ts[32];       /* occurred_at */
    const char     *meta;
    size_t          key;          /* index in proj_sk_t keys */
    proj_msg_t     *msg;          /* the message it belongs to */
} proj_sc_t;

/* A price command waiting for the batch's price statement. Strings
 * without a buffer point into the message's commands. */
typedef struct {
    const char     *sku;
    const char     *store;        /* "" for the base price */
    const char     *currency;
    const char     *as_of;
    long long       amount;
    char           *data;         /* event data */
    char            id[37];
    char            ts[32];       /* occurred_at */
    size_t          key;          /* index in proj_pk_t keys */
    proj_msg_t     *msg;
} proj_pc_t;

/* A price row as the fold goes: read locked, then changed in C. */
typedef struct {
    const char     *sku;
    const char     *store;
    int             exists;
    long long       version;
    long long       ts_us;        /* source_ts; -1: none */
    const char     *as_of;        /* latest as_of applied; NULL: keep */
    long long       amount;
    const char     *currency;
    int             changed;
} proj_pk_t;

/* A stock level as the fold goes: read, then changed in C. */
typedef struct {
    const char     *store;
    const char     *sku;
    const char     *sku_json;     /* as PostgreSQL's to_json writes it */
    const char     *price;        /* its rendering; NULL: none */
    int             exists;
    long long       on_hand;
    long long       reserved;
    long long       version;
    long long       version_read; /* 0: no level */
    long long       ts_us;        /* source_ts; -1: none */
    const char     *as_of;        /* latest as_of applied; NULL: keep */
    int             changed;
} proj_sk_t;

typedef struct {
    proj_store_t   *st;
    proj_batch_t   *b;
    PGconn         *conn;
    int             on;           /* in pipeline mode */
    size_t          nclaim;       /* dedup keys the claim was sent */
    int             reject;       /* a command the database refused */
    size_t          n;
    proj_q_t        q[PROJ_PIPE_MAX];
    proj_sc_t      *sc;           /* stock commands not yet applied */
    size_t          nsc;
    size_t          capsc;
    proj_pc_t      *pc;           /* price commands not yet applied */
    size_t          npc;
    size_t          cappc;
} proj_pipe_t;


/* The attempt-scoped state, reset before every try of a batch. */
static void
proj_attempt_reset(proj_store_t *st)
{
    json_decref(st->items);
    json_decref(st->stocks);
    json_decref(st->stores_new);
    st->items = json_object();
    st->stocks = json_object();
    st->stores_new = json_object();
    st->n_applied = st->n_dup = st->n_skip = st->n_dead = 0;
    st->n_events = st->n_stale = 0;
    cw_buf_reset(&st->kblob);
    cw_buf_reset(&st->rvals);
    st->kblob_n = 0;
    free(st->keys_json);
    st->keys_json = NULL;
    st->keys_id = 0;
}


static void
proj_pipe_error(proj_pipe_t *pp, const PGresult *res, char *err,
    size_t errlen)
{
    const char  *msg = res != NULL ? PQresultErrorMessage(res) : "";
    const char  *state = res != NULL
                         ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (msg == NULL || msg[0] == '\0') {
        msg = PQerrorMessage(pp->conn);
    }

    snprintf(err, errlen, "pipeline: [%s] %.*s", state ? state : "-",
             (int) strcspn(msg, "\n"), msg);
}


/* Whether a valid message's dedup key goes into the batch's claim. */
static int
proj_claims(const proj_msg_t *pm)
{
    return !pm->fenced && pm->cmds != NULL && !pm->dup && !pm->claimed;
}


/* The claim returned fewer keys than it was sent: the others were
 * claimed by a batch committed before, and their messages were applied
 * then. They are marked, and the attempt fails so that the batch is
 * applied again at once without them (proj_pending_apply). */
static cw_pg_class_t
proj_claim_result(proj_pipe_t *pp, PGresult *res, char *err, size_t errlen)
{
    size_t       i, n = 0;
    json_t      *got;
    proj_msg_t  *pm;

    if ((size_t) PQntuples(res) == pp->nclaim) {
        return CW_PG_OK;
    }

    got = json_object();
    if (got == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }
    for (i = 0; i < (size_t) PQntuples(res); i++) {
        json_object_set_new(got, PQgetvalue(res, (int) i, 0), json_true());
    }

    for (i = 0; i < pp->b->n; i++) {
        pm = &pp->b->msgs[i];
        if (proj_claims(pm) && json_object_get(got, pm->dedup) == NULL) {
            pm->claimed = 1;
            n++;
        }
    }
    json_decref(got);

    if (n == 0) {
        /* Not one of the keys sent: nothing to leave out, so no reason to
         * expect another attempt to go otherwise. */
        snprintf(err, errlen, "fast_claim: %d keys of %zu", PQntuples(res),
                 pp->nclaim);
        return CW_PG_PERMANENT;
    }

    pp->b->again = 1;
    snprintf(err, errlen, "%zu message(s) applied before", n);

    return CW_PG_TRANSIENT;
}


/* What one pipelined statement returned. */
static cw_pg_class_t
proj_pipe_result(proj_pipe_t *pp, const proj_q_t *q, PGresult *res,
    char *err, size_t errlen)
{
    size_t         i;
    int            applied = 0;
    proj_store_t  *st = pp->st;
    proj_pev_t    *ev = q->ev;

    if (q->kind == PROJ_Q_STORE) {
        return CW_PG_OK;
    }

    if (q->kind == PROJ_Q_CLAIM) {
        return proj_claim_result(pp, res, err, errlen);
    }

    for (i = 0; i < (size_t) PQntuples(res); i++) {
        if (PQgetisnull(res, (int) i, 0)) {
            /* Another item a sku moved from. */
            json_object_set_new(st->items, PQgetvalue(res, (int) i, 1),
                                json_true());
            continue;
        }
        proj_batch_event(st, ev->msg, ev->id, ev->type, ev->agg_type,
                         ev->agg, atoll(PQgetvalue(res, (int) i, 0)), ev->ts,
                         ev->data);
        st->n_events++;
        json_object_set_new(st->items, q->item, json_true());
        applied = 1;
    }

    if (!applied) {
        st->n_stale++;
    }

    return CW_PG_OK;
}


/* Sends the queued statements' sync, reads every result in order and
 * leaves pipeline mode. */
static cw_pg_class_t
proj_pipe_flush(proj_pipe_t *pp, char *err, size_t errlen)
{
    size_t          i;
    PGresult       *res;
    cw_pg_class_t   cls = CW_PG_OK;
    ExecStatusType  rs;

    if (!pp->on) {
        return CW_PG_OK;
    }

    if (PQpipelineSync(pp->conn) != 1) {
        proj_pipe_error(pp, NULL, err, errlen);
        cls = CW_PG_TRANSIENT;
        goto out;
    }

    for (i = 0; i < pp->n; i++) {
        res = PQgetResult(pp->conn);
        if (res == NULL) {
            proj_pipe_error(pp, NULL, err, errlen);
            cls = CW_PG_TRANSIENT;
            goto out;
        }

        rs = PQresultStatus(res);

        if (rs == PGRES_TUPLES_OK || rs == PGRES_COMMAND_OK) {
            if (cls == CW_PG_OK) {
                cls = proj_pipe_result(pp, &pp->q[i], res, err, errlen);
            }

        } else if (rs != PGRES_PIPELINE_ABORTED && cls == CW_PG_OK) {
            cls = cw_pg_classify(pp->conn, res);
            if (cls == CW_PG_OK) {
                cls = CW_PG_PERMANENT;
            }
            proj_pipe_error(pp, res, err, errlen);
        }

        PQclear(res);

        res = PQgetResult(pp->conn);        /* the end of this query */
        if (res != NULL) {
            PQclear(res);
            snprintf(err, errlen, "pipeline: unexpected extra result");
            cls = CW_PG_TRANSIENT;
            goto out;
        }
    }

    res = PQgetResult(pp->conn);
    rs = PQresultStatus(res);
    PQclear(res);

    if (rs != PGRES_PIPELINE_SYNC) {
        snprintf(err, errlen, "pipeline: no sync result");
        cls = CW_PG_TRANSIENT;
    }

out:

    if (PQexitPipelineMode(pp->conn) != 1) {
        /* Out of step with the server: make the connection fail so that
         * the next call reconnects and prepares again. */
        shutdown(PQsocket(pp->conn), SHUT_RDWR);
        if (cls == CW_PG_OK) {
            snprintf(err, errlen, "pipeline: cannot leave pipeline mode");
            cls = CW_PG_TRANSIENT;
        }
    }

    for (i = 0; i < pp->n; i++) {
        proj_pev_free(pp->q[i].ev);
    }

    pp->on = 0;
    pp->n = 0;

    return cls;
}


static cw_pg_class_t
proj_pipe_send(proj_pipe_t *pp, const char *stmt, int n,
    const char *const *p, const proj_q_t *q, char *err, size_t errlen)
{
    cw_pg_class_t  cls;

    if (pp->n == PROJ_PIPE_MAX) {
        cls = proj_pipe_flush(pp, err, errlen);
        if (cls != CW_PG_OK) {
            return cls;
        }
    }

    if (!pp->on) {
        if (PQenterPipelineMode(pp->conn) != 1) {
            proj_pipe_error(pp, NULL, err, errlen);
            return CW_PG_TRANSIENT;
        }
        pp->on = 1;
    }

    if (PQsendQueryPrepared(pp->conn, stmt, n, p, NULL, NULL, 0) != 1) {
        proj_pipe_error(pp, NULL, err, errlen);
        return CW_PG_TRANSIENT;
    }

    pp->q[pp->n++] = *q;

    return CW_PG_OK;
}


/* Registers a store once per process (stores are never deleted): the
 * first time it is seen, a store_put goes into the pipeline. */
static cw_pg_class_t
proj_fast_store(proj_pipe_t *pp, proj_ctx_t *c, const char *store,
    char *err, size_t errlen)
{
    proj_q_t       q = { PROJ_Q_STORE, NULL, NULL };
    const char    *p[2];
    proj_store_t  *st = pp->st;

    if (json_object_get(st->stores_known, store) != NULL
        || json_object_get(st->stores_new, store) != NULL)
    {
        return CW_PG_OK;
    }

    json_object_set_new(st->stores_new, store, json_true());

    p[0] = store;
    p[1] = proj_str(c->cmd, "merchant_id");

    return proj_pipe_send(pp, "store_put", 2, p, &q, err, errlen);
}


/* The next slot of a queue grown by doubling (zeroed), or NULL when out
 * of memory. */
static void *
proj_queue_slot(void **items, size_t *n, size_t *cap, size_t size)
{
    size_t  c;
    void   *p;

    if (*n == *cap) {
        c = *cap ? *cap * 2 : 64;
        p = realloc(*items, c * size);
        if (p == NULL) {
            return NULL;
        }
        *items = p;
        *cap = c;
    }

    p = (char *) *items + (*n)++ * size;
    memset(p, 0, size);

    return p;
}


/* Queues a stock command for the batch's stock statement (its store
 * goes into the pipeline now, the first time it is seen). */
static cw_pg_class_t
proj_fast_stock(proj_pipe_t *pp, proj_ctx_t *c, int absolute, char *err,
    size_t errlen)
{
    proj_sc_t      *sc;
    const char     *store = proj_str(c->cmd, "store_id");
    cw_pg_class_t   cls;

    cls = proj_fast_store(pp, c, store, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    sc = proj_queue_slot((void **) &pp->sc, &pp->nsc, &pp->capsc,
                         sizeof(*sc));
    if (sc == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    sc->store = store;
    sc->sku = proj_str(c->cmd, "sku");
    sc->as_of = proj_str(c->cmd, "as_of");
    sc->absolute = absolute;
    sc->reason = absolute ? "count" : proj_str(c->cmd, "reason");
    sc->qty = json_integer_value(json_object_get(c->cmd,
                                                 absolute ? "on_hand"
                                                          : "delta"));
    sc->corr = c->msg->delivery_id != NULL ? c->msg->delivery_id
                                           : c->msg->dedup;
    sc->caus = c->msg->dedup;
    sc->msg = c->msg;
    sc->meta = proj_msg_meta(c->msg);

    if (sc->meta == NULL || proj_event_id(c, sc->id0) != 0
        || proj_event_id(c, sc->id1) != 0)
    {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    cw_wall_ts(sc->ts, sizeof(sc->ts));

    return CW_PG_OK;
}


static void
proj_stock_clear(proj_pipe_t *pp)
{
    pp->nsc = 0;
}


/* Renders, as rm_stock_values does (then compacted, like every value),
 * the read-model values of the stock levels a bulk stock statement
 * changed, into st->rvals: ["inv:<store>", sku, version, value]; now is
 * the transaction's now() as commerce_ts writes it. */
static cw_pg_class_t
proj_render_stock(proj_store_t *st, proj_sk_t *keys, size_t nk,
    const char *now, char *err, size_t errlen)
{
    char           *value;
    size_t          i;
    cw_buf_t        v;
    proj_sk_t      *k;

    cw_buf_init(&v);

    for (i = 0; i < nk; i++) {
        k = &keys[i];
        if (!k->changed) {
            continue;
        }

        cw_buf_reset(&v);
        cw_buf_puts(&v, "{\"sku\":");
        cw_buf_puts(&v, k->sku_json);
        cw_buf_printf(&v, ",\"on_hand\":%lld,\"reserved\":%lld,"
                      "\"available\":%lld,\"orderable\":%s,\"version\":%lld,"
                      "\"updated_at\":\"%s\",\"price\":%s}", k->on_hand,
                      k->reserved, k->on_hand - k->reserved,
                      k->on_hand - k->reserved > 0 ? "true" : "false",
                      k->version, now,
                      k->price != NULL ? k->price : "null");

        value = v.oom ? NULL : proj_json_compact(v.data, v.len);
        if (value == NULL) {
            st->rvals.oom = 1;
            break;
        }

        cw_buf_puts(&st->rvals, st->rvals.len > 0 ? ",[\"inv:" : "[\"inv:");
        cw_buf_json_escape(&st->rvals, k->store, strlen(k->store));
        cw_buf_puts(&st->rvals, "\",");
        cw_buf_json_str(&st->rvals, k->sku);
        cw_buf_printf(&st->rvals, ",%lld,", k->version);
        cw_buf_json_str(&st->rvals, value);
        cw_buf_putc(&st->rvals, ']');
        free(value);
    }

    cw_buf_free(&v);

    if (st->rvals.oom) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    return CW_PG_OK;
}


#define PROJ_BULK_CMD   15
#define PROJ_BULK_KEY   6

/* The events of an applied stock command, framed while the server runs
 * the stock statement: their data at offsets in one buffer. */
typedef struct {
    proj_sc_t      *sc;
    long long       version;
    size_t          data;
    size_t          odata;        /* orderability; PROJ_NO_EVENT: none */
} proj_se_t;

#define PROJ_NO_EVENT  ((size_t) -1)

/*
 * Applies the queued stock commands: their levels are read under lock,
 * the commands folded over them in C in batch order (the same rules as
 * the one-command statements of the careful path: a count older than
 * the stored one is stale and changes nothing, a movement below zero is
 * refused), and everything written back by one statement. A refused
 * movement sets pp->reject: the batch is then applied again message by
 * message, which dead-letters exactly that message.
 */
static cw_pg_class_t
proj_bulk_stock(proj_pipe_t *pp, char *err, size_t errlen)
{
    char            agg[2 * PROJ_ID_MAX + 32];
    int             fresh;
    size_t          i, j, nk = 0, napplied = 0, nexpect = 0, nread = 0;
    json_t         *index = NULL;
    PGresult       *res, *state = NULL;
    cw_pg_class_t   rcls;
    cw_buf_t        ka[2], ts, data, evd, ca[PROJ_BULK_CMD];
    cw_buf_t        fa[PROJ_BULK_KEY];
    proj_sc_t      *sc;
    proj_se_t      *evs = NULL, *e;
    proj_sk_t      *keys = NULL, *k;
    const char     *p[PROJ_BULK_CMD + PROJ_BULK_KEY];
    proj_store_t   *st = pp->st;
    cw_pg_class_t   cls = CW_PG_OK;
    long long      *as_of_us = NULL, prev_on, prev_res, delta;
    int             prev, was, now;

    if (pp->nsc == 0) {
        return CW_PG_OK;
    }

    proj_arrs_open(ka, 2);
    proj_arrs_open(ca, PROJ_BULK_CMD);
    proj_arrs_open(fa, PROJ_BULK_KEY);
    proj_arrs_open(&ts, 1);
    cw_buf_init(&data);
    cw_buf_init(&evd);

    index = json_object();
    keys = calloc(pp->nsc, sizeof(*keys));
    evs = calloc(pp->nsc, sizeof(*evs));
    as_of_us = calloc(pp->nsc, sizeof(*as_of_us));
    if (index == NULL || keys == NULL || evs == NULL || as_of_us == NULL) {
        goto oom;
    }

    /* The distinct keys, in order of first appearance. */
    for (i = 0; i < pp->nsc; i++) {
        sc = &pp->sc[i];
        sc->key = proj_key_index(index, sc->store, sc->sku, ka, &nk, &fresh);
        if (fresh) {
            keys[sc->key].store = sc->store;
            keys[sc->key].sku = sc->sku;
            keys[sc->key].ts_us = -1;
        }
        proj_arr(&ts, sc->absolute ? sc->as_of : NULL);
    }

    if (proj_arrs_close(ka, 2, p) != 0 || proj_arrs_close(&ts, 1, NULL) != 0) {
        goto oom;
    }

    state = cw_pg_exec_inline(st->pg, proj_sql("bulk_stock_state"), 2, p,
                              &cls, err, errlen);
    if (state == NULL) {
        goto done;
    }
    if ((size_t) PQntuples(state) != nk) {
        snprintf(err, errlen, "bulk_stock_state: %d rows for %zu keys",
                 PQntuples(state), nk);
        cls = CW_PG_PERMANENT;
        goto done;
    }

    for (i = 0; i < nk; i++) {
        k = &keys[i];
        k->sku_json = PQgetvalue(state, (int) i, 4);
        k->price = PQgetisnull(state, (int) i, 5)
                   ? NULL : PQgetvalue(state, (int) i, 5);
        if (PQgetisnull(state, (int) i, 2)) {
            continue;
        }
        k->exists = 1;
        k->on_hand = atoll(PQgetvalue(state, (int) i, 0));
        k->reserved = atoll(PQgetvalue(state, (int) i, 1));
        k->version = atoll(PQgetvalue(state, (int) i, 2));
        k->version_read = k->version;
        k->ts_us = PQgetisnull(state, (int) i, 3)
                   ? -1 : atoll(PQgetvalue(state, (int) i, 3));
    }

    cls = proj_as_of_us(st, ts.data, pp->nsc, as_of_us, err, errlen);
    if (cls != CW_PG_OK) {
        goto done;
    }

    /* The fold, command by command in batch order. */
    for (i = 0; i < pp->nsc; i++) {
        sc = &pp->sc[i];
        k = &keys[sc->key];

        prev = k->exists;
        prev_on = k->on_hand;
        prev_res = k->reserved;

        if (sc->absolute) {
            if (k->exists && as_of_us[i] >= 0 && k->ts_us >= 0
                && as_of_us[i] < k->ts_us)
            {
                st->n_stale++;
                continue;
            }
            k->on_hand = sc->qty;
            if (as_of_us[i] >= 0) {
                k->ts_us = as_of_us[i];
                k->as_of = sc->as_of;
            }

        } else if (sc->qty > 0) {
            k->on_hand = (k->exists ? k->on_hand : 0) + sc->qty;

        } else {
            if (!k->exists || k->on_hand + sc->qty < 0) {
                pp->reject = 1;             /* underflow */
                goto done;
            }
            k->on_hand += sc->qty;
        }

        if (k->exists) {
            k->version++;
        } else {
            k->exists = 1;
            k->version = 1;                 /* the column's default */
            k->reserved = 0;
        }
        k->changed = 1;

        was = prev && prev_on - prev_res > 0;
        now = k->on_hand - k->reserved > 0;
        delta = k->on_hand - (prev ? prev_on : 0);

        cw_buf_reset(&data);
        cw_buf_puts(&data, "{\"store_id\":");
        cw_buf_json_str(&data, sc->store);
        cw_buf_puts(&data, ",\"sku\":");
        cw_buf_json_str(&data, sc->sku);
        cw_buf_printf(&data, ",\"on_hand\":%lld,\"reserved\":%lld,"
                      "\"available\":%lld,\"delta\":%lld,\"movement\":\"%s\","
                      "\"reason\":", k->on_hand, k->reserved,
                      k->on_hand - k->reserved, delta,
                      sc->absolute ? "set" : "adjust");
        proj_json_str_or_null(&data, sc->reason);
        cw_buf_printf(&data, ",\"orderable\":%s}", now ? "true" : "false");
        e = &evs[napplied];
        e->sc = sc;
        e->version = k->version;
        e->data = evd.len;
        e->odata = PROJ_NO_EVENT;
        cw_buf_append(&evd, data.data, data.len + 1);

        proj_arr(&ca[0], sc->store);
        proj_arr(&ca[1], sc->sku);
        proj_arr(&ca[2], sc->id0);
        proj_arr_ll(&ca[3], k->version);
        proj_arr_ll(&ca[4], k->on_hand);
        proj_arr_ll(&ca[5], delta);
        proj_arr(&ca[6], sc->absolute ? "set" : "adjust");
        proj_arr(&ca[7], sc->reason);
        proj_arr(&ca[8], sc->as_of);
        proj_arr(&ca[9], data.data);
        proj_arr(&ca[10], sc->meta);
        proj_arr(&ca[11], sc->corr);
        proj_arr(&ca[12], sc->caus);

        if (was != now) {
            cw_buf_reset(&data);
            cw_buf_puts(&data, "{\"store_id\":");
            cw_buf_json_str(&data, sc->store);
            cw_buf_puts(&data, ",\"sku\":");
            cw_buf_json_str(&data, sc->sku);
            cw_buf_printf(&data, ",\"orderable\":%s,\"available\":%lld}",
                          now ? "true" : "false", k->on_hand - k->reserved);
            e->odata = evd.len;
            cw_buf_append(&evd, data.data, data.len + 1);
            proj_arr(&ca[13], sc->id1);
            proj_arr(&ca[14], data.data);
            nexpect++;

        } else {
            proj_arr(&ca[13], NULL);
            proj_arr(&ca[14], NULL);
        }

        if (data.oom || evd.oom) {
            goto oom;
        }

        napplied++;
        nexpect++;
    }

    if (napplied == 0) {
        goto done;
    }

    for (j = 0; j < nk; j++) {
        k = &keys[j];
        if (!k->changed) {
            continue;
        }
        proj_arr(&fa[0], k->store);
        proj_arr(&fa[1], k->sku);
        proj_arr_ll(&fa[2], k->on_hand);
        proj_arr_ll(&fa[3], k->version);
        proj_arr(&fa[4], k->as_of);
        proj_arr_ll(&fa[5], k->version_read);
        nread += k->version_read > 0;
    }

    if (proj_arrs_close(ca, PROJ_BULK_CMD, p) != 0
        || proj_arrs_close(fa, PROJ_BULK_KEY, p + PROJ_BULK_CMD) != 0)
    {
        goto oom;
    }
    cls = cw_pg_sendp(st->pg, "bulk_stock_write",
                      PROJ_BULK_CMD + PROJ_BULK_KEY, p, err, errlen);
    if (cls != CW_PG_OK) {
        goto done;
    }

    /* While the server writes: the events' frames and the values. */
    for (i = 0; i < napplied; i++) {
        e = &evs[i];
        sc = e->sc;
        snprintf(agg, sizeof(agg), "stock:%s:%s", sc->store, sc->sku);
        proj_batch_event(st, sc->msg, sc->id0, "inventory.stock.changed",
                         "stock", agg, e->version, sc->ts,
                         evd.data + e->data);
        if (e->odata != PROJ_NO_EVENT) {
            snprintf(agg, sizeof(agg), "orderability:%s:%s", sc->store,
                     sc->sku);
            proj_batch_event(st, sc->msg, sc->id1,
                             "inventory.orderability.changed",
                             "orderability", agg, e->version, sc->ts,
                             evd.data + e->odata);
        }
    }

    rcls = proj_render_stock(st, keys, nk, PQgetvalue(state, 0, 6), err,
                             errlen);

    res = cw_pg_getp(st->pg, &cls, err, errlen);
    if (res == NULL) {
        goto done;
    }
    if (rcls != CW_PG_OK) {
        PQclear(res);
        cls = rcls;
        goto done;
    }
    if ((size_t) atoll(PQgetvalue(res, 0, 0)) != nread) {
        /* Rolled back and tried again: the next read sees it. */
        snprintf(err, errlen, "a stock level changed while the batch was "
                 "applied (%s of %zu updated)", PQgetvalue(res, 0, 0), nread);
        PQclear(res);
        cls = CW_PG_TRANSIENT;
        goto done;
    }
    PQclear(res);
    st->n_events += (long long) nexpect;

    goto done;

oom:

    snprintf(err, errlen, "out of memory");
    cls = CW_PG_PERMANENT;

done:

    PQclear(state);
    proj_arrs_free(ka, 2);
    proj_arrs_free(ca, PROJ_BULK_CMD);
    proj_arrs_free(fa, PROJ_BULK_KEY);
    cw_buf_free(&ts);
    cw_buf_free(&data);
    cw_buf_free(&evd);
    json_decref(index);
    free(keys);
    free(evs);
    free(as_of_us);
    proj_stock_clear(pp);

    return cls;
}


/* Queues a price command for the batch's price statement (its store goes
 * into the pipeline now, the first time it is seen). */
static cw_pg_class_t
proj_fast_price(proj_pipe_t *pp, proj_ctx_t *c, char *err, size_t errlen)
{
    json_t         *price;
    cw_buf_t        data;
    proj_pc_t      *pc;
    const char     *store = proj_str(c->cmd, "store_id");
    cw_pg_class_t   cls;

    if (store != NULL) {
        cls = proj_fast_store(pp, c, store, err, errlen);
        if (cls != CW_PG_OK) {
            return cls;
        }
    }

    pc = proj_queue_slot((void **) &pp->pc, &pp->npc, &pp->cappc,
                         sizeof(*pc));
    if (pc == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    price = json_object_get(c->cmd, "price");
    pc->sku = proj_str(c->cmd, "sku");
    pc->store = store != NULL ? store : "";
    pc->currency = proj_str(price, "currency");
    pc->as_of = proj_str(c->cmd, "as_of");
    pc->amount = json_integer_value(json_object_get(price, "amount_minor"));
    pc->msg = c->msg;

    cw_buf_init(&data);
    cw_buf_puts(&data, "{\"sku\":");
    cw_buf_json_str(&data, pc->sku);
    cw_buf_puts(&data, ",\"store_id\":");
    proj_json_str_or_null(&data, store);
    cw_buf_puts(&data, ",\"price\":{\"amount\":");
    proj_json_str_or_null(&data, proj_str(price, "amount"));
    cw_buf_puts(&data, ",\"currency\":");
    proj_json_str_or_null(&data, pc->currency);
    cw_buf_puts(&data, "}}");

    if (data.oom || proj_msg_meta(c->msg) == NULL
        || proj_event_id(c, pc->id) != 0)
    {
        cw_buf_free(&data);
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    pc->data = data.data;
    cw_wall_ts(pc->ts, sizeof(pc->ts));

    return CW_PG_OK;
}


static void
proj_price_clear(proj_pipe_t *pp)
{
    size_t  i;

    for (i = 0; i < pp->npc; i++) {
        free(pp->pc[i].data);
    }
    pp->npc = 0;
}


#define PROJ_PRICE_CMD  7
#define PROJ_PRICE_KEY  9

/*
 * Applies the queued price commands: their rows are read under lock,
 * the commands folded over them in C in batch order (a price older than
 * the stored one is stale and changes nothing, as in the careful path's
 * price_put), and everything written back by one statement, which also
 * bumps the versions of the renderings the prices are part of.
 */
static cw_pg_class_t
proj_bulk_price(proj_pipe_t *pp, char *err, size_t errlen)
{
    char            agg[2 * PROJ_ID_MAX + 32];
    int             fresh;
    size_t          i, nk = 0, napplied = 0;
    json_t         *index = NULL;
    PGresult       *res;
    cw_buf_t        ka[2], ts, ca[PROJ_PRICE_CMD], fa[PROJ_PRICE_KEY];
    proj_pc_t      *pc;
    proj_pk_t      *keys = NULL, *k;
    const char     *p[PROJ_PRICE_CMD + PROJ_PRICE_KEY];
    proj_store_t   *st = pp->st;
    cw_pg_class_t   cls = CW_PG_OK;
    long long      *as_of_us = NULL;

    if (pp->npc == 0) {
        return CW_PG_OK;
    }

    proj_arrs_open(ka, 2);
    proj_arrs_open(ca, PROJ_PRICE_CMD);
    proj_arrs_open(fa, PROJ_PRICE_KEY);
    proj_arrs_open(&ts, 1);

    index = json_object();
    keys = calloc(pp->npc, sizeof(*keys));
    as_of_us = calloc(pp->npc, sizeof(*as_of_us));
    if (index == NULL || keys == NULL || as_of_us == NULL) {
        goto oom;
    }

    /* The distinct keys, in order of first appearance. */
    for (i = 0; i < pp->npc; i++) {
        pc = &pp->pc[i];
        pc->key = proj_key_index(index, pc->sku, pc->store, ka, &nk, &fresh);
        if (fresh) {
            keys[pc->key].sku = pc->sku;
            keys[pc->key].store = pc->store;
            keys[pc->key].ts_us = -1;
        }
        proj_arr(&ts, pc->as_of);
    }

    if (proj_arrs_close(ka, 2, p) != 0 || proj_arrs_close(&ts, 1, NULL) != 0) {
        goto oom;
    }

    res = cw_pg_exec_inline(st->pg, proj_sql("bulk_price_state"), 2, p, &cls,
                           err, errlen);
    if (res == NULL) {
        goto done;
    }

    for (i = 0; i < (size_t) PQntuples(res); i++) {
        k = &keys[atoll(PQgetvalue(res, (int) i, 0)) - 1];
        k->exists = 1;
        k->version = atoll(PQgetvalue(res, (int) i, 1));
        k->ts_us = PQgetisnull(res, (int) i, 2)
                   ? -1 : atoll(PQgetvalue(res, (int) i, 2));
    }
    PQclear(res);

    cls = proj_as_of_us(st, ts.data, pp->npc, as_of_us, err, errlen);
    if (cls != CW_PG_OK) {
        goto done;
    }

    /* The fold, command by command in batch order. */
    for (i = 0; i < pp->npc; i++) {
        pc = &pp->pc[i];
        k = &keys[pc->key];

        if (k->exists && as_of_us[i] >= 0 && k->ts_us >= 0
            && as_of_us[i] < k->ts_us)
        {
            st->n_stale++;
            continue;
        }

        k->version = k->exists ? k->version + 1 : 1;
        k->exists = 1;
        k->amount = pc->amount;
        k->currency = pc->currency;
        if (as_of_us[i] >= 0) {
            k->ts_us = as_of_us[i];
            k->as_of = pc->as_of;
        }
        k->changed = 1;

        snprintf(agg, sizeof(agg), "price:%s@%s", pc->sku,
                 pc->store[0] != '\0' ? pc->store : "*");
        proj_batch_event(st, pc->msg, pc->id, "pricing.price.updated",
                         "price", agg, k->version, pc->ts, pc->data);

        proj_arr(&ca[0], pc->id);
        proj_arr(&ca[1], agg);
        proj_arr_ll(&ca[2], k->version);
        proj_arr(&ca[3], pc->data);
        proj_arr(&ca[4], pc->msg->meta);
        proj_arr(&ca[5], pc->msg->delivery_id != NULL
                         ? pc->msg->delivery_id : pc->msg->dedup);
        proj_arr(&ca[6], pc->msg->dedup);
        napplied++;
    }

    if (napplied == 0) {
        goto done;
    }

    for (i = 0; i < nk; i++) {
        k = &keys[i];
        if (!k->changed) {
            continue;
        }
        proj_arr(&fa[0], k->sku);
        proj_arr(&fa[1], k->store);
        proj_arr_ll(&fa[2], k->amount);
        proj_arr(&fa[3], k->currency);
        proj_arr_ll(&fa[4], k->version);
        proj_arr(&fa[5], k->as_of);
        if (k->store[0] == '\0') {
            proj_arr(&fa[6], k->sku);
        } else {
            proj_arr(&fa[7], k->sku);
            proj_arr(&fa[8], k->store);
        }
    }

    if (proj_arrs_close(ca, PROJ_PRICE_CMD, p) != 0
        || proj_arrs_close(fa, PROJ_PRICE_KEY, p + PROJ_PRICE_CMD) != 0)
    {
        goto oom;
    }

    res = cw_pg_execp(st->pg, "bulk_price_write",
                      PROJ_PRICE_CMD + PROJ_PRICE_KEY, p, &cls, err, errlen);
    if (res == NULL) {
        goto done;
    }

    for (i = 0; i < (size_t) PQntuples(res); i++) {
        if (PQgetvalue(res, (int) i, 0)[0] == 'i') {
            json_object_set_new(st->items, PQgetvalue(res, (int) i, 1),
                                json_true());
        } else {
            proj_touch_stock(st, PQgetvalue(res, (int) i, 1),
                             PQgetvalue(res, (int) i, 2));
        }
    }
    PQclear(res);

    st->n_events += (long long) napplied;

    goto done;

oom:

    snprintf(err, errlen, "out of memory");
    cls = CW_PG_PERMANENT;

done:

    proj_arrs_free(ka, 2);
    proj_arrs_free(ca, PROJ_PRICE_CMD);
    proj_arrs_free(fa, PROJ_PRICE_KEY);
    cw_buf_free(&ts);
    json_decref(index);
    free(keys);
    free(as_of_us);
    proj_price_clear(pp);

    return cls;
}


/* Everything queued so far, in order: the pipeline (stores, prices,
 * items), then the stock statement. */
static cw_pg_class_t
proj_fast_flush(proj_pipe_t *pp, char *err, size_t errlen)
{
    cw_pg_class_t  cls;

    cls = proj_pipe_flush(pp, err, errlen);
    if (cls != CW_PG_OK || pp->reject) {
        return cls;
    }

    cls = proj_bulk_price(pp, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    return proj_bulk_stock(pp, err, errlen);
}


static cw_pg_class_t
proj_fast_item(proj_pipe_t *pp, proj_ctx_t *c, char *err, size_t errlen)
{
    char           *s[4] = { NULL, NULL, NULL, NULL };
    json_t         *item;
    proj_q_t        q = { PROJ_Q_ITEM, NULL, NULL };
    const char     *p[17];
    cw_pg_class_t   cls = CW_PG_PERMANENT;
    int             i;

    item = json_object_get(c->cmd, "item");
    q.item = proj_str(item, "id");

    s[0] = json_dumps(json_object_get(item, "tags"), JSON_COMPACT);
    s[1] = json_dumps(json_object_get(item, "attributes"), JSON_COMPACT);
    s[2] = json_dumps(json_object_get(item, "variants"), JSON_COMPACT);
    s[3] = json_dumps(json_object_get(item, "addon_groups"), JSON_COMPACT);
    q.ev = proj_pev_new(c, "catalog.item.updated", "item", q.item,
                        json_dumps(item, JSON_COMPACT));

    if (q.ev == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    for (i = 0; i < 4; i++) {
        if (s[i] == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    }

    p[0] = q.item;
    p[1] = proj_str(c->cmd, "merchant_id");
    p[2] = proj_str(item, "sku");
    p[3] = proj_str(item, "name");
    p[4] = proj_str(item, "description");
    p[5] = proj_str(item, "brand");
    p[6] = s[0];
    p[7] = s[1];
    p[8] = proj_str(c->cmd, "source");
    p[9] = proj_str(c->cmd, "as_of");
    p[10] = s[2];
    p[11] = s[3];
    p[12] = q.ev->id;
    p[13] = c->msg->meta;
    p[14] = c->msg->delivery_id != NULL ? c->msg->delivery_id : c->msg->dedup;
    p[15] = c->msg->dedup;
    p[16] = q.ev->data;

    cls = proj_pipe_send(pp, "fast_item", 17, p, &q, err, errlen);

done:

    if (cls != CW_PG_OK) {
        proj_pev_free(q.ev);
    }
    for (i = 0; i < 4; i++) {
        free(s[i]);
    }

    return cls;
}


/* One command: pipelined when it needs no lookup, else synchronously
 * through the careful code (after the pipeline is flushed). */
static cw_pg_class_t
proj_fast_command(proj_pipe_t *pp, proj_batch_t *b, proj_ctx_t *c,
    char *err, size_t errlen)
{
    int             stock_pending, price_pending;
    const char     *type = proj_str(c->cmd, "type");
    proj_rc_t       rc;
    cw_pg_class_t   cls;

    c->nevent = 0;

    /* Prices and stock commands wait for the batch's price and stock
     * statements, which run after the pipeline, prices first. The events
     * of one message stay in command order: its pending commands that
     * would run later are applied before one that would run earlier. */
    stock_pending = pp->nsc > 0 && pp->sc[pp->nsc - 1].msg == c->msg;
    price_pending = pp->npc > 0 && pp->pc[pp->npc - 1].msg == c->msg;

    if ((strcmp(type, "item.upsert") == 0 && (stock_pending || price_pending))
        || (strcmp(type, "price.set") == 0 && stock_pending))
    {
        cls = proj_fast_flush(pp, err, errlen);
        if (cls != CW_PG_OK || pp->reject) {
            return cls;
        }
    }

    if (strcmp(type, "item.upsert") == 0) {
        if (json_object_get(c->cmd, "id_ref") == NULL
            && json_object_get(c->cmd, "mappings") == NULL
            && proj_str(json_object_get(c->cmd, "item"), "id") != NULL)
        {
            return proj_fast_item(pp, c, err, errlen);
        }

    } else if (strcmp(type, "price.set") == 0) {
        if (proj_str(c->cmd, "sku") != NULL) {
            return proj_fast_price(pp, c, err, errlen);
        }

    } else if (proj_str(c->cmd, "sku") != NULL
               && proj_str(c->cmd, "store_id") != NULL)
    {
        return proj_fast_stock(pp, c, strcmp(type, "stock.set") == 0, err,
                               errlen);
    }

    cls = proj_fast_flush(pp, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    if (pp->reject) {
        return CW_PG_OK;
    }

    rc = proj_command(c);

    if (rc == PROJ_REJECT
        || (rc == PROJ_DB && c->cls == CW_PG_PERMANENT))
    {
        snprintf(b->why, sizeof(b->why), "%s", rc == PROJ_REJECT
                 ? c->err->reason : "rejected_by_store");
        pp->reject = 1;
        return CW_PG_OK;
    }

    return rc == PROJ_OK ? CW_PG_OK : c->cls;
}


/* The archive rows of the batch for PROJ_ARCHIVE_SQL: the columns as
 * one JSON array, the bodies and keys as binary arrays. */
static char *
proj_archive_records(proj_batch_t *b, cw_pg_array_t *bodies,
    cw_pg_array_t *keys)
{
    size_t          i;
    int64_t         kts;
    cw_buf_t        j;
    proj_msg_t     *pm;
    rd_kafka_timestamp_type_t  tstype;

    cw_buf_init(&j);
    cw_buf_putc(&j, '[');

    for (i = 0; i < b->n; i++) {
        pm = &b->msgs[i];

        kts = rd_kafka_message_timestamp(pm->m, &tstype);

        cw_buf_printf(&j, "%s{\"topic\":", j.len > 1 ? "," : "");
        cw_buf_json_str(&j, pm->topic);
        cw_buf_printf(&j, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64
                      ",\"kafka_ts\":%" PRId64, pm->m->partition,
                      pm->m->offset, kts >= 0 ? kts : 0);

        cw_buf_puts(&j, ",\"headers\":");
        cw_buf_puts(&j, pm->headers_text != NULL ? pm->headers_text : "[]");

        if (pm->source != NULL) {
            cw_buf_puts(&j, ",\"source\":");
            cw_buf_json_str(&j, pm->source);
        }
        if (pm->delivery_id != NULL) {
            cw_buf_puts(&j, ",\"delivery_id\":");
            cw_buf_json_str(&j, pm->delivery_id);
        }
        cw_buf_putc(&j, '}');

        cw_pg_array_add(bodies, pm->m->payload != NULL ? pm->m->payload : "",
                        pm->m->len);
        cw_pg_array_add(keys, pm->m->key, pm->m->key_len);
    }

    cw_buf_putc(&j, ']');

    if (j.oom || cw_pg_array_finish(bodies) != 0
        || cw_pg_array_finish(keys) != 0)
    {
        cw_buf_free(&j);
        return NULL;
    }

    return j.data;
}


static cw_pg_class_t
proj_fast_txn(cw_pg_t *pg, void *ud, char *err, size_t errlen)
{
    json_t         *seen;
    char            part[16], off[24];
    cw_buf_t        ca[5];
    const char     *ap[5];
    size_t          i, k;
    PGresult       *res;
    proj_ctx_t      c;
    proj_pipe_t    *pp;
    proj_msg_t     *pm;
    proj_batch_t   *b = ud;
    proj_store_t   *st = b->st;
    proj_error_t    why;
    cw_pg_class_t   cls;
    int64_t         t0, t1, t2, t3;

    proj_attempt_reset(st);
    t0 = cw_now_ms();

    /* The statements below are planned once per connection: custom
     * plans would plan them again at every execution, which costs more
     * than executing them. */
    cls = cw_pg_command(pg, "SET LOCAL plan_cache_mode = force_generic_plan",
                        err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    /* Offsets first: lock each partition's row, fence what is below. */
    cls = proj_offsets_lock(b, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    /* A dedup key claimed twice in one batch: the later ones are
     * duplicates (only valid messages claim keys). */
    seen = json_object();
    if (seen == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }
    for (i = 0; i < b->n; i++) {
        pm = &b->msgs[i];
        pm->dup = 0;
        if (pm->fenced || pm->cmds == NULL) {
            continue;
        }
        if (json_object_get(seen, pm->dedup) != NULL) {
            pm->dup = 1;
        } else {
            json_object_set_new(seen, pm->dedup, json_true());
        }
    }
    json_decref(seen);

    pp = calloc(1, sizeof(*pp));
    if (pp == NULL) {
        snprintf(err, errlen, "out of memory");
        return CW_PG_PERMANENT;
    }

    pp->st = st;
    pp->b = b;
    pp->conn = cw_pg_conn(pg);

    /* The dedup keys of the valid messages, claimed by the pipeline's
     * first statement: the commands follow it without waiting for it.
     * Nearly always every key is new; when one is not, the attempt fails
     * at its result and the batch goes again without that message
     * (proj_claim_result). */
    proj_arrs_open(ca, 5);
    for (i = 0; i < b->n; i++) {
        pm = &b->msgs[i];
        if (!proj_claims(pm)) {
            continue;
        }
        proj_arr(&ca[0], pm->dedup);
        proj_arr(&ca[1], pm->topic);
        proj_arr_ll(&ca[2], pm->m->partition);
        proj_arr_ll(&ca[3], pm->m->offset);
        proj_arr_ll(&ca[4], (long long) json_array_size(pm->cmds));
        pp->nclaim++;
    }

    if (pp->nclaim > 0) {
        proj_q_t  q = { PROJ_Q_CLAIM, NULL, NULL };

        if (proj_arrs_close(ca, 5, ap) != 0) {
            snprintf(err, errlen, "out of memory");
            cls = CW_PG_PERMANENT;
        } else {
            cls = proj_pipe_send(pp, "fast_claim", 5, ap, &q, err, errlen);
        }
    }
    proj_arrs_free(ca, 5);

    t1 = cw_now_ms();

    for (i = 0; i < b->n && cls == CW_PG_OK && !pp->reject; i++) {
        pm = &b->msgs[i];

        if (pm->fenced) {
            st->n_skip++;
            continue;
        }

        if (pm->cmds == NULL) {
            char  *body_hex, *key_hex = NULL;

            cls = proj_pipe_flush(pp, err, errlen);
            if (cls != CW_PG_OK) {
                break;
            }

            snprintf(part, sizeof(part), "%" PRId32, pm->m->partition);
            snprintf(off, sizeof(off), "%" PRId64, pm->m->offset);
            body_hex = proj_bytea_hex(pm->m->payload, pm->m->len);
            if (pm->m->key != NULL) {
                key_hex = proj_bytea_hex(pm->m->key, pm->m->key_len);
            }

            if (body_hex == NULL || (pm->m->key != NULL && key_hex == NULL)) {
                snprintf(err, errlen, "out of memory");
                cls = CW_PG_PERMANENT;
            } else {
                cls = proj_dead_letter(st, pm, body_hex, key_hex, part, off,
                                       &pm->err, err, errlen);
            }

            free(body_hex);
            free(key_hex);
            continue;
        }

        if (pm->dup || pm->claimed) {
            st->n_dup++;
            continue;
        }

        memset(&c, 0, sizeof(c));
        memset(&why, 0, sizeof(why));
        c.st = st;
        c.msg = pm;
        c.err = &why;
        c.dberr = err;
        c.dberrlen = errlen;

        for (k = 0; k < json_array_size(pm->cmds) && cls == CW_PG_OK
                    && !pp->reject; k++)
        {
            c.cmd = json_array_get(pm->cmds, k);
            c.index = k;
            cls = proj_fast_command(pp, b, &c, err, errlen);
        }

        st->n_applied++;
    }

    if (cls == CW_PG_OK && !pp->reject) {
        cls = proj_fast_flush(pp, err, errlen);
    } else if (pp->on) {
        char  ignore[256];

        proj_pipe_flush(pp, ignore, sizeof(ignore));
    }

    if (cls == CW_PG_OK && pp->reject) {
        if (b->why[0] == '\0') {
            snprintf(b->why, sizeof(b->why), "stock_underflow");
        }
        cls = CW_PG_PERMANENT;
    }

    proj_stock_clear(pp);
    free(pp->sc);
    proj_price_clear(pp);
    free(pp->pc);
    free(pp);

    if (cls == CW_PG_PERMANENT) {
        /* Rolled back by cw_pg_txn; proj_store_apply_batch then applies
         * the batch message by message. */
        if (b->why[0] == '\0') {
            snprintf(b->why, sizeof(b->why), "%s", err);
        }
        b->careful = 1;
        return cls;
    }

    if (cls != CW_PG_OK) {
        return cls;
    }

    t2 = cw_now_ms();

    cls = proj_archive_wait(b, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    t3 = cw_now_ms();

    cls = proj_offsets_store(b, err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }

    /* The events of the batch, one row for the publisher. */
    if (st->kblob_n > 0) {
        const char  *kp[2];
        int          klen[2], kfmt[2] = { 0, 1 };

        if (st->kblob.oom) {
            snprintf(err, errlen, "out of memory");
            return CW_PG_PERMANENT;
        }

        kp[0] = st->events_topic;
        kp[1] = st->kblob.data;
        klen[0] = 0;
        klen[1] = (int) st->kblob.len;

        res = cw_pg_execb(pg, "INSERT INTO outbox (kind, topic, payload)"
                          " VALUES ('kafka_batch', $1, $2::bytea)", 2, kp,
                          klen, kfmt, 0, &cls, err, errlen);
        if (res == NULL) {
            return cls;
        }
        PQclear(res);
    }

    cls = proj_render(st, err, errlen);

    if (cls == CW_PG_OK && cw_log_enabled(CW_LOG_DEBUG)) {
        cw_field_t  f[] = { CW_FINT("start_ms", t1 - t0),
                            CW_FINT("commands_ms", t2 - t1),
                            CW_FINT("archive_wait_ms", t3 - t2),
                            CW_FINT("render_ms", cw_now_ms() - t3) };

        cw_log_kv(CW_LOG_DEBUG, f, 4, "batch statements done");
    }

    return cls;
}


long long
proj_store_take_rm_keys(proj_store_t *st, char **json)
{
    long long  id = st->keys_id;

    *json = st->keys_json;
    st->keys_json = NULL;
    st->keys_id = 0;

    return id;
}


/* Stores registered by a committed fast-path batch exist for good. */
static void
proj_stores_commit(proj_store_t *st)
{
    json_object_update(st->stores_known, st->stores_new);
    json_object_clear(st->stores_new);
}


/* For the stage trace (debug log): how long ago, in wall-clock ms, the
 * newest and oldest message of the batch were produced (Kafka's
 * CreateTime), as seen when the batch reaches the projector. */
static void
proj_batch_ages(rd_kafka_message_t **msgs, size_t n, int64_t *age_min,
    int64_t *age_max)
{
    size_t          i;
    int64_t         now, ts;
    struct timeval  tv;
    rd_kafka_timestamp_type_t  tstype;

    *age_min = -1;
    *age_max = -1;

    if (!cw_log_enabled(CW_LOG_DEBUG)) {
        return;
    }

    gettimeofday(&tv, NULL);
    now = (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;

    for (i = 0; i < n; i++) {
        ts = rd_kafka_message_timestamp(msgs[i], &tstype);
        if (ts < 0) {
            continue;
        }
        if (*age_min < 0 || now - ts < *age_min) {
            *age_min = now - ts;
        }
        if (now - ts > *age_max) {
            *age_max = now - ts;
        }
    }
}


/* A batch from its preparation until its COMMIT is confirmed: it keeps
 * the Kafka messages, which a batch must be able to apply again if the
 * COMMIT it left in flight fails. */
struct proj_pending_s {
    proj_batch_t           b;
    rd_kafka_message_t   **msgs;
    int64_t                t_prep, t0, age_min, age_max;
};


static void
proj_pending_free(proj_pending_t *pb)
{
    size_t  i;

    if (pb == NULL) {
        return;
    }

    free(pb->b.arc_records);
    cw_pg_array_free(&pb->b.arc_bodies);
    cw_pg_array_free(&pb->b.arc_keys);
    if (pb->b.msgs != NULL) {
        for (i = 0; i < pb->b.n; i++) {
            proj_msg_free(&pb->b.msgs[i]);
        }
    }
    free(pb->b.msgs);
    free(pb->b.parts);

    if (pb->msgs != NULL) {
        for (i = 0; i < pb->b.n; i++) {
            rd_kafka_message_destroy(pb->msgs[i]);
        }
    }
    free(pb->msgs);
    free(pb);
}


/* Takes the messages over (their entries in msgs become NULL) and
 * prepares them: parsed, adapted, validated, and the archive's
 * parameters built. NULL when out of memory (the messages then stay the
 * caller's). */
static proj_pending_t *
proj_pending_new(proj_store_t *st, rd_kafka_message_t **msgs, size_t n)
{
    size_t           i;
    proj_pending_t  *pb;

    pb = calloc(1, sizeof(*pb));
    if (pb == NULL) {
        return NULL;
    }

    pb->b.msgs = calloc(n, sizeof(*pb->b.msgs));
    pb->msgs = malloc(n * sizeof(*pb->msgs));
    cw_pg_array_init(&pb->b.arc_bodies, 17);        /* bytea */
    cw_pg_array_init(&pb->b.arc_keys, 17);
    if (pb->b.msgs == NULL || pb->msgs == NULL) {
        free(pb->msgs);
        pb->msgs = NULL;
        proj_pending_free(pb);
        return NULL;
    }

    pb->t_prep = cw_now_ms();
    proj_batch_ages(msgs, n, &pb->age_min, &pb->age_max);

    for (i = 0; i < n; i++) {
        pb->msgs[i] = msgs[i];
        msgs[i] = NULL;
        proj_msg_prepare(&pb->b.msgs[i], pb->msgs[i]);
    }

    pb->b.st = st;
    pb->b.n = n;
    pb->b.arc_records = proj_archive_records(&pb->b, &pb->b.arc_bodies,
                                             &pb->b.arc_keys);
    if (pb->b.arc_records == NULL) {
        for (i = 0; i < n; i++) {
            msgs[i] = pb->msgs[i];
        }
        free(pb->msgs);
        pb->msgs = NULL;
        proj_pending_free(pb);
        return NULL;
    }

    return pb;
}


/* Applies a prepared batch until it commits, is stopped, or fails for
 * a reason that is not the messages' fault. With send_commit, a fast
 * path transaction leaves its COMMIT in flight (b.commit_sent), to be
 * confirmed by proj_store_settle. Returns the class of the outcome. */
static cw_pg_class_t
proj_pending_apply(proj_store_t *st, proj_pending_t *pb, int send_commit,
    volatile int *stop, char *err, size_t errlen)
{
    char            why[512];
    cw_backoff_t    bo;
    cw_pg_class_t   cls;
    proj_batch_t   *b = &pb->b;

    cw_backoff_init(&bo, 100, 5000, 0.5, 0, 0);

    for ( ;; ) {
        /* The archive is written while the batch is applied. */
        proj_archive_start(b);

        if (!b->careful) {
            if (send_commit) {
                cls = cw_pg_txn_send_commit(st->pg, proj_fast_txn, b, err,
                                            errlen);
                b->commit_sent = cls == CW_PG_OK;
            } else {
                cls = cw_pg_txn(st->pg, proj_fast_txn, b, 1, err, errlen);
            }

            if (cls == CW_PG_OK) {
                break;
            }

            if (b->again) {
                cw_field_t  f[] = { CW_FSTR("why", err),
                                    CW_FINT("messages", (long long) b->n) };

                b->again = 0;
                cw_log_kv(CW_LOG_INFO, f, 2, "batch applied again without "
                          "the messages applied before");
                continue;
            }

            /* Whatever the database refused (a command, or a row that
             * conflicts): message by message, each in a savepoint, the
             * careful path finds which message it was and what to do. */
            if (cls == CW_PG_PERMANENT && !b->careful) {
                snprintf(b->why, sizeof(b->why), "%.200s", err);
                b->careful = 1;
            }

            if (b->careful) {
                cw_field_t  f[] = { CW_FSTR("why", b->why),
                                    CW_FINT("messages", (long long) b->n) };

                cw_log_kv(CW_LOG_INFO, f, 2,
                          "batch applied again message by message");
                continue;
            }

        } else {
            cls = cw_pg_txn(st->pg, proj_batch_txn, b, 1, err, errlen);
        }

        if (cls == CW_PG_OK || cls == CW_PG_PERMANENT || *stop) {
            break;
        }

        cw_counter_inc(st->m.retries);
        cw_log(CW_LOG_WARN, "batch of %zu not committed, will retry: %s",
               b->n, err);
        cw_sleep_ms(cw_backoff_next(&bo), stop);
    }

    /* The side connection may still be reading the batch. */
    cw_pg_side_wait(st->side, why, sizeof(why));

    return cls;
}


/* A batch committed: the counters, the stage trace, and the handover
 * of what it changed (proj_store_on_commit). */
static void
proj_pending_done(proj_store_t *st, proj_pending_t *pb, int64_t wait_ms)
{
    proj_stores_commit(st);

    cw_counter_add(st->m.applied, (double) st->n_applied);
    cw_counter_add(st->m.duplicates, (double) st->n_dup);
    cw_counter_add(st->m.skipped, (double) st->n_skip);
    cw_counter_add(st->m.dead, (double) st->n_dead);
    cw_counter_add(st->m.events, (double) st->n_events);
    cw_counter_add(st->m.stale, (double) st->n_stale);
    cw_histogram_observe(st->m.batch_seconds,
                         (double) (cw_now_ms() - pb->t0) / 1000.0);

    if (cw_log_enabled(CW_LOG_DEBUG)) {
        cw_field_t  f[] = { CW_FINT("messages", (long long) pb->b.n),
                            CW_FINT("applied", st->n_applied),
                            CW_FINT("duplicates", st->n_dup),
                            CW_FINT("skipped", st->n_skip),
                            CW_FINT("dead_lettered", st->n_dead),
                            CW_FINT("events", st->n_events),
                            CW_FINT("oldest_age_ms", pb->age_max),
                            CW_FINT("newest_age_ms", pb->age_min),
                            CW_FINT("prepare_ms", pb->t0 - pb->t_prep),
                            CW_FINT("txn_ms", cw_now_ms() - pb->t0),
                            CW_FINT("commit_wait_ms", wait_ms) };

        cw_log_kv(CW_LOG_DEBUG, f, 11, "batch committed");
    }

    if (st->on_commit != NULL) {
        st->on_commit(st->on_commit_ud);
    }
}


void
proj_store_on_commit(proj_store_t *st, void (*fn)(void *ud), void *ud)
{
    st->on_commit = fn;
    st->on_commit_ud = ud;
}


int
proj_store_settle(proj_store_t *st, volatile int *stop)
{
    char             err[1024];
    int64_t          t;
    cw_pg_class_t    cls;
    proj_pending_t  *pb = st->pending;

    if (pb == NULL) {
        return 0;
    }

    st->pending = NULL;

    t = cw_now_ms();
    cls = cw_pg_commit_wait(st->pg, err, sizeof(err));
    t = cw_now_ms() - t;
    pb->b.commit_sent = 0;

    if (cls != CW_PG_OK) {
        /* Rolled back, or lost with the connection: applied again, which
         * fences whatever did commit. */
        cw_counter_inc(st->m.retries);
        cw_log(CW_LOG_WARN, "batch of %zu not committed, will retry: %s",
               pb->b.n, err);
        cls = proj_pending_apply(st, pb, 0, stop, err, sizeof(err));
    }

    if (cls != CW_PG_OK) {
        if (cls == CW_PG_PERMANENT) {
            cw_log(CW_LOG_ERROR, "batch failed: %s", err);
        }
        proj_pending_free(pb);
        return -1;
    }

    proj_pending_done(st, pb, t);
    proj_pending_free(pb);

    return 0;
}


int
proj_store_apply_batch(proj_store_t *st, rd_kafka_message_t **msgs,
    size_t n, int in_flight, volatile int *stop)
{
    char             err[1024];
    cw_pg_class_t    cls;
    proj_pending_t  *pb;

    /* Prepared while the previous batch's COMMIT is under way. */
    pb = proj_pending_new(st, msgs, n);
    if (pb == NULL) {
        cw_log(CW_LOG_ERROR, "out of memory for a batch of %zu", n);
        proj_store_settle(st, stop);
        return -1;
    }

    if (proj_store_settle(st, stop) != 0) {
        proj_pending_free(pb);
        return -1;
    }

    pb->t0 = cw_now_ms();

    cls = proj_pending_apply(st, pb, in_flight, stop, err, sizeof(err));
    if (cls != CW_PG_OK) {
        if (cls == CW_PG_PERMANENT) {
            cw_log(CW_LOG_ERROR, "batch failed: %s", err);
        }
        proj_pending_free(pb);
        return -1;
    }

    if (pb->b.commit_sent) {
        st->pending = pb;
        return 0;
    }

    proj_pending_done(st, pb, 0);
    proj_pending_free(pb);

    return 0;
}
