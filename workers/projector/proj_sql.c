/*
 * proj_sql: the texts of the store's statements (see proj_sql.h for their
 * parameters and columns), and their preparation.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce_contract.h"
#include "cw_buf.h"
#include "proj_sql.h"


#define PROJ_SQL_PREPARED  0
#define PROJ_SQL_SIDE      1      /* prepared on the archive's connection */

/* In a text, the Kafka cluster's id (proj_sql_set_cluster), as a
 * literal. */
#define PROJ_SQL_CLUSTER   ":cluster"


/* The aggregate id of a stock level and of its orderability, in SQL. */
#define PROJ_SQL_STOCK_AGG                                                    \
    "'" COMMERCE_AGG_STOCK ":' || store || ':' || sku"
#define PROJ_SQL_ORDERABILITY_AGG                                             \
    "'" COMMERCE_AGG_ORDERABILITY ":' || store || ':' || sku"


typedef struct {
    const char  *name;
    int          nparams;
    int          how;
    const char  *text;
} proj_sql_t;


static const proj_sql_t  proj_sql[PROJ_SQL_N] = {

    [PROJ_SQL_OFF_ENSURE] = { "off_ensure", PROJ_OFF_ENSURE_NPARAMS,
      PROJ_SQL_PREPARED,
      "INSERT INTO consumer_offsets (group_id, cluster_id, topic, partition,"
      " next_offset) SELECT $1, " PROJ_SQL_CLUSTER ", t, p, o"
      " FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS u(t, p, o)"
      " ON CONFLICT DO NOTHING" },

    [PROJ_SQL_OFF_LOCK] = { "off_lock", PROJ_OFF_LOCK_NPARAMS,
      PROJ_SQL_PREPARED,
      "SELECT c.topic, c.partition, c.next_offset FROM consumer_offsets c"
      " JOIN unnest($2::text[], $3::integer[]) AS u(t, p)"
      " ON c.topic = u.t AND c.partition = u.p WHERE c.group_id = $1"
      " AND c.cluster_id = " PROJ_SQL_CLUSTER
      " ORDER BY c.topic, c.partition FOR UPDATE OF c" },

    [PROJ_SQL_OFF_SET] = { "off_set", PROJ_OFF_SET_NPARAMS,
      PROJ_SQL_PREPARED,
      "UPDATE consumer_offsets c SET next_offset = u.o, updated_at = now()"
      " FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS u(t, p, o)"
      " WHERE c.group_id = $1 AND c.cluster_id = " PROJ_SQL_CLUSTER
      " AND c.topic = u.t AND c.partition = u.p" },

    [PROJ_SQL_OFF_LOAD] = { "off_load", PROJ_OFF_LOAD_NPARAMS,
      PROJ_SQL_PREPARED,
      "SELECT partition, next_offset FROM consumer_offsets"
      " WHERE group_id = $1 AND cluster_id = " PROJ_SQL_CLUSTER
      " AND topic = $2" },

    /* Offsets stored before 011 (cluster ''): the cluster the group's
     * first projector since then sees is taken for theirs (a wrong guess
     * is caught: proj_check_log in main.c). */
    [PROJ_SQL_OFF_ADOPT] = { "off_adopt", PROJ_OFF_ADOPT_NPARAMS,
      PROJ_SQL_PREPARED,
      "UPDATE consumer_offsets SET cluster_id = " PROJ_SQL_CLUSTER
      " WHERE group_id = $1 AND cluster_id = '' AND NOT EXISTS"
      " (SELECT 1 FROM consumer_offsets WHERE group_id = $1"
      " AND cluster_id = " PROJ_SQL_CLUSTER ")" },

    [PROJ_SQL_CLAIM] = { "claim", PROJ_CLAIM_NPARAMS, PROJ_SQL_PREPARED,
      "INSERT INTO inbound_processed (dedup_key, cluster_id, topic, partition,"
      " \"offset\", commands) VALUES ($1, " PROJ_SQL_CLUSTER ", $2, $3, $4,"
      " $5) ON CONFLICT DO NOTHING RETURNING 1" },

    /* Keys are looked up first and the rest inserted plainly, which costs
     * less than an insert ON CONFLICT: a key claimed meanwhile by a batch
     * not yet committed (a duplicate delivery on another partition) makes
     * the insert fail, and the batch goes the careful way. */
    [PROJ_SQL_CLAIM_ALL] = { "claim_all", PROJ_CLAIM_ALL_NPARAMS,
      PROJ_SQL_PREPARED,
      "WITH x AS (SELECT dedup_key FROM inbound_processed"
      " WHERE dedup_key = ANY($1::text[]))"
      " INSERT INTO inbound_processed (dedup_key, cluster_id, topic, partition,"
      " \"offset\", commands) SELECT u.k, " PROJ_SQL_CLUSTER ", u.t, u.p, u.o,"
      " u.n FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[],"
      " $5::integer[]) AS u(k, t, p, o, n)"
      " WHERE u.k NOT IN (SELECT dedup_key FROM x) RETURNING dedup_key" },

    /* The original bytes and headers, plus the reason. */
    [PROJ_SQL_DEAD] = { "dead", PROJ_DEAD_NPARAMS, PROJ_SQL_PREPARED,
      "WITH d AS (INSERT INTO dead_letters (cluster_id, topic, partition,"
      " \"offset\", msg_key, headers, body, source, delivery_id, reason,"
      " detail, waiting_for) VALUES (" PROJ_SQL_CLUSTER ", $1, $2, $3,"
      " $4::bytea, $5::jsonb, $6::bytea, $7, $8, $9, $10, $12)"
      " ON CONFLICT (cluster_id, topic, partition, \"offset\") DO NOTHING"
      " RETURNING id)"
      " INSERT INTO outbox (kind, topic, msg_key, headers, payload)"
      " SELECT 'kafka', $11, $4::bytea, $5::jsonb || jsonb_build_array("
      " jsonb_build_object('name', '" COMMERCE_H_DLQ_REASON "',"
      " 'value', $9::text),"
      " jsonb_build_object('name', '" COMMERCE_H_DLQ_DETAIL "',"
      " 'value', $10::text),"
      " jsonb_build_object('name', '" COMMERCE_H_DLQ_ID "',"
      " 'value', d.id::text),"
      " jsonb_build_object('name', '" COMMERCE_H_DLQ_ORIGIN "', 'value',"
      " $1::text || '/' || $2::integer::text || '/' || $3::bigint::text)),"
      " $6::bytea FROM d" },

    /* One probe by key each (see STOCK_STATE). */
    [PROJ_SQL_KNOWN] = { "known", PROJ_KNOWN_NPARAMS, PROJ_SQL_PREPARED,
      "SELECT v.sku FROM unnest($1::text[]) AS u(sku)"
      " JOIN LATERAL (SELECT sku FROM variants v WHERE v.sku = u.sku"
      " OFFSET 0) v ON true" },

    /* As commerce-replay publishes them: key, body and original headers,
     * plus replay_of. */
    [PROJ_SQL_RELEASE] = { "release", PROJ_RELEASE_NPARAMS,
      PROJ_SQL_PREPARED,
      "WITH r AS (UPDATE dead_letters d SET replayed_at = now(),"
      " replay_count = d.replay_count + 1"
      " WHERE d.waiting_for = ANY($1::text[]) AND d.waiting_for IS NOT NULL"
      " AND d.replayed_at IS NULL"
      " AND EXISTS (SELECT 1 FROM variants v WHERE v.sku = d.waiting_for)"
      " RETURNING d.id, d.topic, d.msg_key, d.headers, d.body)"
      " INSERT INTO outbox (kind, topic, msg_key, headers, payload)"
      " SELECT 'kafka', r.topic, r.msg_key, r.headers || jsonb_build_array("
      " jsonb_build_object('name', '" COMMERCE_H_REPLAY_OF "',"
      " 'value', 'dlq:' || r.id)), r.body FROM r ORDER BY r.id" },

    [PROJ_SQL_MAP_GET] = { "map_get", PROJ_MAP_GET_NPARAMS,
      PROJ_SQL_PREPARED,
      "SELECT canonical_id FROM source_mappings WHERE source = $1"
      " AND kind = $2 AND external_id = $3" },

    [PROJ_SQL_MAP_PUT] = { "map_put", PROJ_MAP_PUT_NPARAMS,
      PROJ_SQL_PREPARED,
      "INSERT INTO source_mappings (source, kind, external_id, canonical_id)"
      " VALUES ($1, $2, $3, $4) ON CONFLICT (source, kind, external_id)"
      " DO UPDATE SET canonical_id = EXCLUDED.canonical_id,"
      " updated_at = now()"
      " WHERE source_mappings.canonical_id <> EXCLUDED.canonical_id" },

    [PROJ_SQL_STORE_PUT] = { "store_put", PROJ_STORE_PUT_NPARAMS,
      PROJ_SQL_PREPARED,
      "WITH m AS (INSERT INTO merchants (id) SELECT $2::text"
      " WHERE $2::text IS NOT NULL"
      " ON CONFLICT DO NOTHING RETURNING id)"
      " INSERT INTO stores (id, merchant_id)"
      " SELECT $1, (SELECT id FROM merchants WHERE id = $2::text"
      " UNION SELECT id FROM m LIMIT 1)"
      " ON CONFLICT DO NOTHING" },

    /* An older upsert than the stored one (by as_of) changes nothing. A
     * sku another item had moves: that item changed too (its version goes
     * up, and its rendering with it). Each lookup probes by key. */
    [PROJ_SQL_ITEM] = { "item", PROJ_ITEM_NPARAMS, PROJ_SQL_PREPARED,
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
      " causation_id) SELECT $13::uuid, '" COMMERCE_AGG_ITEM "', $1,"
      " i.version, '" COMMERCE_EV_ITEM_UPDATED "', $17::jsonb, $14::jsonb,"
      " $15, $16 FROM i)"
      " SELECT version, NULL FROM i UNION ALL SELECT NULL, id FROM mv" },

    /* Not locked: the write checks that each version is still the one
     * read. Every lookup is a primary-key probe per key (LATERAL ...
     * OFFSET 0): given the number of keys, the planner would rather hash
     * the whole stock_levels table, which costs twice as much. The price
     * is the one rm_stock_values renders (the batch's prices are written
     * by then) as this statement sees it: another projector may commit a
     * newer one before this batch commits, which the read-model writer
     * finds after the commit by the price versions (proj_readmodel.c). */
    [PROJ_SQL_STOCK_STATE] = { "stock_state", PROJ_STOCK_STATE_NPARAMS,
      PROJ_SQL_PREPARED,
      "SELECT s.on_hand, s.reserved, s.shortfall, s.version,"
      " (extract(epoch FROM s.source_ts) * 1000000)::bigint,"
      " to_json(k.sku)::text, COALESCE(commerce_money(o.amount_minor,"
      " o.currency), commerce_money(b.amount_minor, b.currency))::text,"
      " COALESCE(o.version, 0) + COALESCE(b.version, 0),"
      " commerce_ts(GREATEST(o.updated_at, b.updated_at)),"
      " CASE WHEN k.i = 1 THEN commerce_ts(now()) END"
      " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(store, sku, i)"
      " LEFT JOIN LATERAL (SELECT * FROM stock_levels s"
      " WHERE s.store_id = k.store AND s.sku = k.sku OFFSET 0) s ON true"
      " LEFT JOIN LATERAL (SELECT * FROM price_book o"
      " WHERE o.sku = k.sku AND o.store_id = k.store OFFSET 0) o ON true"
      " LEFT JOIN LATERAL (SELECT * FROM price_book b"
      " WHERE b.sku = k.sku AND b.store_id = '' OFFSET 0) b ON true"
      " ORDER BY k.i" },

    [PROJ_SQL_AS_OF] = { "as_of", PROJ_AS_OF_NPARAMS, PROJ_SQL_PREPARED,
      "SELECT (extract(epoch FROM t::timestamptz) * 1000000)::bigint"
      " FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i" },

    /* A level is updated only if its version is still the one read, and
     * inserted only if there was none (else the insert fails). The
     * levels are locked in key order first (lk, before the update's
     * first row): the saga worker's reservations (sql/012_sagas.sql)
     * lock theirs in that order too, so the two wait for each other and
     * never deadlock. The events' Kafka copies are in the batch's
     * 'kafka_batch' row. */
    [PROJ_SQL_STOCK_WRITE] = { "stock_write", PROJ_STOCK_WRITE_NPARAMS,
      PROJ_SQL_PREPARED,
      "WITH c AS (SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[],"
      " $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[],"
      " $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],"
      " $14::uuid[], $15::text[], $16::bigint[], $17::bigint[])"
      " WITH ORDINALITY AS c(store, sku, eid, version, on_hand, delta,"
      " movement, reason, as_of, data, meta, corr, caus, oeid, odata,"
      " rdelta, reserved, ord)),"
      " k AS (SELECT * FROM unnest($18::text[], $19::text[], $20::bigint[],"
      " $21::bigint[], $22::timestamptz[], $23::bigint[], $24::bigint[],"
      " $25::bigint[])"
      " AS k(store, sku, on_hand, version, ts, read, reserved, shortfall)),"
      " lk AS MATERIALIZED (SELECT 1 FROM stock_levels s JOIN k"
      " ON s.store_id = k.store AND s.sku = k.sku WHERE k.read > 0"
      " ORDER BY s.store_id, s.sku FOR UPDATE OF s),"
      " lv AS (UPDATE stock_levels s SET on_hand = k.on_hand,"
      " reserved = k.reserved, shortfall = k.shortfall,"
      " version = k.version, source_ts = COALESCE(k.ts, s.source_ts),"
      " updated_at = now() FROM k WHERE k.read > 0"
      " AND (SELECT count(*) FROM lk) >= 0"
      " AND s.store_id = k.store AND s.sku = k.sku AND s.version = k.read"
      " RETURNING 1),"
      " nl AS (INSERT INTO stock_levels (store_id, sku, on_hand, version,"
      " source_ts) SELECT store, sku, on_hand, version, ts FROM k"
      " WHERE read = 0),"
      " e AS (INSERT INTO event_store (event_id, aggregate_type,"
      " aggregate_id, version, event_type, data, metadata, correlation_id,"
      " causation_id) SELECT id, atype, agg, version, etype, d::jsonb,"
      " meta::jsonb, corr, caus FROM (SELECT eid AS id,"
      " '" COMMERCE_AGG_STOCK "' AS atype, " PROJ_SQL_STOCK_AGG " AS agg,"
      " version, '" COMMERCE_EV_STOCK_CHANGED "' AS etype, data AS d, meta,"
      " corr, caus, ord, 0 AS k FROM c UNION ALL SELECT oeid,"
      " '" COMMERCE_AGG_ORDERABILITY "', " PROJ_SQL_ORDERABILITY_AGG ","
      " version, '" COMMERCE_EV_ORDERABILITY "', odata, meta, corr, caus,"
      " ord, 1 FROM c WHERE oeid IS NOT NULL) AS x ORDER BY ord, k),"
      " l AS (INSERT INTO stock_ledger (store_id, sku, event_id, movement,"
      " delta, on_hand_after, reason, source_ts, reserved_delta,"
      " reserved_after) SELECT store, sku, eid, movement, delta, on_hand,"
      " reason, as_of::timestamptz, rdelta, reserved FROM c"
      " ORDER BY ord)"
      " SELECT count(*) FROM lv" },

    [PROJ_SQL_PRICE_STATE] = { "price_state", PROJ_PRICE_STATE_NPARAMS,
      PROJ_SQL_PREPARED,
      "SELECT k.i, b.version,"
      " (extract(epoch FROM b.source_ts) * 1000000)::bigint"
      " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(sku, store, i)"
      " JOIN price_book b ON b.sku = k.sku AND b.store_id = k.store"
      " ORDER BY b.sku, b.store_id FOR UPDATE OF b" },

    /* The rows are written in key order, as PRICE_STATE locked those
     * that existed: two batches writing the same prices (another
     * projector's, whose partition carries prices of the same skus) wait
     * for each other, never deadlock. The renderings a price is part of:
     * items with a variant of the sku for a base price, their versions
     * bumped (the rows locked in id order, for the same reason).
     * Stock values are versioned by their prices already: the stores to
     * render them in are looked up after the commit (proj_effects.h). */
    [PROJ_SQL_PRICE_WRITE] = { "price_write", PROJ_PRICE_WRITE_NPARAMS,
      PROJ_SQL_PREPARED,
      "WITH k AS (INSERT INTO price_book (sku, store_id, amount_minor,"
      " currency, version, source_ts) SELECT * FROM unnest($8::text[],"
      " $9::text[], $10::bigint[], $11::text[], $12::bigint[],"
      " $13::timestamptz[]) AS u(sku, store_id) ORDER BY sku, store_id"
      " ON CONFLICT (sku, store_id) DO UPDATE"
      " SET amount_minor = EXCLUDED.amount_minor,"
      " currency = EXCLUDED.currency,"
      " version = GREATEST(EXCLUDED.version, price_book.version + 1),"
      " source_ts = COALESCE(EXCLUDED.source_ts, price_book.source_ts),"
      " updated_at = now()),"
      " e AS (INSERT INTO event_store (event_id, aggregate_type,"
      " aggregate_id, version, event_type, data, metadata, correlation_id,"
      " causation_id) SELECT eid, '" COMMERCE_AGG_PRICE "', agg, version,"
      " '" COMMERCE_EV_PRICE_UPDATED "', data::jsonb, meta::jsonb, corr,"
      " caus FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[],"
      " $5::text[], $6::text[], $7::text[]) WITH ORDINALITY"
      " AS c(eid, agg, version, data, meta, corr, caus, ord) ORDER BY ord),"
      " il AS (SELECT p.id FROM products p WHERE p.id IN (SELECT v.item_id"
      " FROM variants v WHERE v.sku = ANY($14::text[])) ORDER BY p.id"
      " FOR UPDATE OF p),"
      " bi AS (UPDATE products p SET version = p.version + 1,"
      " updated_at = now() FROM il WHERE p.id = il.id RETURNING p.id)"
      " SELECT id FROM bi" },

    [PROJ_SQL_EVENTS_ROW] = { "events_row", PROJ_EVENTS_ROW_NPARAMS,
      PROJ_SQL_PREPARED,
      "INSERT INTO outbox (kind, topic, payload)"
      " VALUES ('kafka_batch', $1, $2::bytea)" },

    [PROJ_SQL_KEYS_ROW] = { "keys_row", PROJ_KEYS_ROW_NPARAMS,
      PROJ_SQL_PREPARED,
      "INSERT INTO outbox (kind, payload)"
      " VALUES ('redis_keys', convert_to($1, 'UTF8')) RETURNING id" },

    /* A message archived before (the batch is being tried again, or was
     * consumed before a crash) keeps its row. */
    [PROJ_SQL_ARCHIVE] = { "archive", PROJ_ARCHIVE_NPARAMS, PROJ_SQL_SIDE,
      "INSERT INTO inbound_archive (cluster_id, topic, partition, \"offset\","
      " msg_key, headers, body, source, delivery_id, kafka_ts)"
      " SELECT " PROJ_SQL_CLUSTER ", topic, partition, \"offset\", msg_key,"
      " headers, body, source, delivery_id, to_timestamp(kafka_ts / 1000)"
      " FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (topic text,"
      " partition integer, \"offset\" bigint, headers jsonb, source text,"
      " delivery_id text, kafka_ts double precision), unnest($2::bytea[]),"
      " unnest($3::bytea[])) AS r(topic, partition, \"offset\", headers,"
      " source, delivery_id, kafka_ts, body, msg_key)"
      " ON CONFLICT (cluster_id, topic, partition, \"offset\") DO NOTHING" },
};


/* The cluster's id as a literal (ids are letters, digits, '-' and '_':
 * checked when set). */
static char  proj_sql_cluster[PROJ_SQL_CLUSTER_MAX + 3];


const char *
proj_sql_name(proj_sql_id_t id)
{
    return proj_sql[id].name;
}


const char *
proj_sql_text(proj_sql_id_t id)
{
    return proj_sql[id].text;
}


int
proj_sql_set_cluster(const char *id)
{
    size_t  n = strlen(id);

    if (n == 0 || n > PROJ_SQL_CLUSTER_MAX
        || strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789-_") != n)
    {
        return -1;
    }

    snprintf(proj_sql_cluster, sizeof(proj_sql_cluster), "'%s'", id);

    return 0;
}


/* A statement's text with the cluster's id written in, into b. */
static int
proj_sql_expand(cw_buf_t *b, const char *text)
{
    const char  *p, *at;

    if (strstr(text, PROJ_SQL_CLUSTER) != NULL
        && proj_sql_cluster[0] == '\0')
    {
        return -1;
    }

    b->len = 0;
    for (p = text; (at = strstr(p, PROJ_SQL_CLUSTER)) != NULL;
         p = at + sizeof(PROJ_SQL_CLUSTER) - 1)
    {
        cw_buf_printf(b, "%.*s%s", (int) (at - p), p, proj_sql_cluster);
    }
    cw_buf_puts(b, p);
    cw_buf_putc(b, '\0');

    return b->oom ? -1 : 0;
}


int
proj_sql_prepare(cw_pg_t *pg, int side, char *err, size_t errlen)
{
    int       rc = 0;
    char      ignore[256];
    size_t    i;
    cw_buf_t  b;
    int       how = side ? PROJ_SQL_SIDE : PROJ_SQL_PREPARED;

    /* Connected now, not by the first batch (the archive's connection
     * would add its connect and its statements' preparation to the
     * first message's way); one that fails connects when first used. */
    (void) cw_pg_ensure(pg, ignore, sizeof(ignore));

    cw_buf_init(&b);

    for (i = 0; i < PROJ_SQL_N && rc == 0; i++) {
        if (proj_sql[i].how != how) {
            continue;
        }
        if (proj_sql_expand(&b, proj_sql[i].text) != 0) {
            snprintf(err, errlen, "%s: no Kafka cluster id",
                     proj_sql[i].name);
            rc = -1;
        } else {
            rc = cw_pg_prepare(pg, proj_sql[i].name, b.data,
                               proj_sql[i].nparams, err, errlen);
        }
    }

    cw_buf_free(&b);

    return rc;
}
