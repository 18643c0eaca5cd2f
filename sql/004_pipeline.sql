-- 004: consumer offsets, outbox, dead letters, and the read-model views.

-- Offsets of the projector's consumer group, written in the same
-- transaction as the data they cover: next_offset is the next message to
-- read. Used on partition assignment instead of Kafka's committed offsets.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id        text        NOT NULL,
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Work to do after commit: kind 'kafka' publishes payload to topic;
-- kind 'redis' writes the read-model value rm_value of rm_key (field
-- rm_field for hashes) guarded by rm_version. Rows are deleted once done;
-- the drainer takes whatever rows exist (FOR UPDATE SKIP LOCKED), never a
-- range after a remembered id, so a transaction that commits late with a
-- lower id is not skipped.
CREATE TABLE IF NOT EXISTS outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('kafka', 'redis')),
    topic           text,
    msg_key         bytea,
    headers         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    payload         bytea,
    rm_key          text,
    rm_field        text,
    rm_version      bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Messages that failed validation, with the original bytes and headers
-- and a machine-readable reason; commerce-replay republishes them.
CREATE TABLE IF NOT EXISTS dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    "offset"        bigint      NOT NULL,
    msg_key         bytea,
    headers         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    body            bytea       NOT NULL,
    source          text,
    delivery_id     text,
    reason          text        NOT NULL,
    detail          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    replayed_at     timestamptz,
    replay_count    integer     NOT NULL DEFAULT 0,
    CONSTRAINT dead_letters_position_key UNIQUE (topic, partition, "offset")
);

CREATE INDEX IF NOT EXISTS dead_letters_reason_idx
    ON dead_letters (reason, id);

-- Read-model renderings: the projector writes exactly these texts, live
-- and on --rebuild, so both give the same bytes.
CREATE OR REPLACE FUNCTION commerce_money(amount bigint, currency text)
RETURNS json LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN amount IS NULL THEN NULL ELSE json_build_object(
        'amount', (amount / 100)::text || '.'
                  || lpad((amount % 100)::text, 2, '0'),
        'currency', currency) END
$$;

CREATE OR REPLACE FUNCTION commerce_ts(t timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE OR REPLACE VIEW rm_item_docs AS
SELECT p.id, p.version, json_build_object(
    'id', p.id,
    'sku', p.sku,
    'name', p.name,
    'description', p.description,
    'brand', p.brand,
    'price', (SELECT commerce_money(b.amount_minor, b.currency)
              FROM variants v JOIN price_book b
                ON b.sku = v.sku AND b.store_id = ''
              WHERE v.item_id = p.id
              ORDER BY b.amount_minor, v.position LIMIT 1),
    'variants', COALESCE((SELECT json_agg(json_build_object(
                    'sku', v.sku,
                    'name', v.name,
                    'options', v.options,
                    'price', commerce_money(b.amount_minor, b.currency))
                    ORDER BY v.position)
                FROM variants v LEFT JOIN price_book b
                  ON b.sku = v.sku AND b.store_id = ''
                WHERE v.item_id = p.id), '[]'::json),
    'addon_groups', COALESCE((SELECT json_agg(json_build_object(
                    'id', g.group_id,
                    'name', g.name,
                    'min', g.min_select,
                    'max', g.max_select,
                    'addons', g.addons)
                    ORDER BY g.position)
                FROM addon_groups g WHERE g.item_id = p.id), '[]'::json),
    'tags', p.tags,
    'attributes', p.attributes,
    'merchant_id', p.merchant_id,
    'updated_at', commerce_ts(p.updated_at),
    'version', p.version)::text AS doc
FROM products p;

CREATE OR REPLACE VIEW rm_stock_values AS
SELECT s.store_id, s.sku, s.version, json_build_object(
    'sku', s.sku,
    'on_hand', s.on_hand,
    'reserved', s.reserved,
    'available', s.on_hand - s.reserved,
    'orderable', s.on_hand - s.reserved > 0,
    'version', s.version,
    'updated_at', commerce_ts(s.updated_at),
    'price', (SELECT commerce_money(b.amount_minor, b.currency)
              FROM price_book b
              WHERE b.sku = s.sku AND b.store_id IN (s.store_id, '')
              ORDER BY b.store_id DESC LIMIT 1))::text AS value
FROM stock_levels s;
