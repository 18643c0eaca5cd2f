-- 011: projectors that share the partitions.
--
-- A stock value is versioned by composition: the version of its level
-- plus those of the sku's base price and of the store's override, each
-- of which only goes up, so their sum goes up with every change of any
-- of them. A price change therefore no longer writes the stock rows of
-- every store it shows in (two projectors deadlocked on those rows); its
-- values are rendered again from the committed rows. The stock rows'
-- own versions count stock changes only from now on; a value's version
-- never goes back, as it was at least the row's version before.
-- updated_at is the latest change of any of the three.
CREATE OR REPLACE VIEW rm_stock_values AS
SELECT s.store_id, s.sku,
    s.version + COALESCE(o.version, 0) + COALESCE(b.version, 0) AS version,
    json_build_object(
    'sku', s.sku,
    'on_hand', s.on_hand,
    'reserved', s.reserved,
    'available', s.on_hand - s.reserved,
    'orderable', s.on_hand - s.reserved > 0,
    'version', s.version + COALESCE(o.version, 0) + COALESCE(b.version, 0),
    'updated_at', commerce_ts(GREATEST(s.updated_at, o.updated_at,
                                       b.updated_at)),
    'price', COALESCE(commerce_money(o.amount_minor, o.currency),
                      commerce_money(b.amount_minor, b.currency)))::text
    AS value
FROM stock_levels s
LEFT JOIN price_book o ON o.sku = s.sku AND o.store_id = s.store_id
LEFT JOIN price_book b ON b.sku = s.sku AND b.store_id = '';

-- The positions of the Kafka log are those of one cluster: a new cluster
-- (a broker that lost its data, a devbroker restarted) starts its offsets
-- at 0 again, and must not be taken for the old one (its messages would
-- be skipped as consumed, or their archive rows as written). Offsets,
-- the archive, dead letters and dedup claims name the cluster
-- (rd_kafka_clusterid). Rows from before have none (''): a projector
-- takes the group's offsets for the first cluster it sees; archived rows
-- and dead letters keep theirs.
ALTER TABLE consumer_offsets
    ADD COLUMN IF NOT EXISTS cluster_id text NOT NULL DEFAULT '';
ALTER TABLE consumer_offsets DROP CONSTRAINT IF EXISTS consumer_offsets_pkey;
ALTER TABLE consumer_offsets
    ADD PRIMARY KEY (group_id, cluster_id, topic, partition);

ALTER TABLE inbound_archive
    ADD COLUMN IF NOT EXISTS cluster_id text NOT NULL DEFAULT '';
ALTER TABLE inbound_archive
    DROP CONSTRAINT IF EXISTS inbound_archive_position_key;
ALTER TABLE inbound_archive ADD CONSTRAINT inbound_archive_position_key
    UNIQUE (cluster_id, topic, partition, "offset");

ALTER TABLE dead_letters
    ADD COLUMN IF NOT EXISTS cluster_id text NOT NULL DEFAULT '';
ALTER TABLE dead_letters DROP CONSTRAINT IF EXISTS dead_letters_position_key;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_position_key
    UNIQUE (cluster_id, topic, partition, "offset");

ALTER TABLE inbound_processed
    ADD COLUMN IF NOT EXISTS cluster_id text NOT NULL DEFAULT '';
