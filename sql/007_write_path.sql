-- 007: a cheaper write path.
--
-- Two indexes every event paid for and nothing read:
-- stock_ledger.event_id was unique on its own, but a ledger row is only
-- ever written together with its event, whose id event_store already
-- keeps unique; the column stays, the second index goes.
-- event_store_type_idx (aggregate_type, recorded_at) served no query:
-- readers of events by type consume commerce.events, and the event store
-- is read by aggregate (event_store_aggregate_version_key) or position.
ALTER TABLE stock_ledger DROP CONSTRAINT IF EXISTS stock_ledger_event_id_key;
DROP INDEX IF EXISTS event_store_type_idx;

-- The rows the projector updates over and over (a stock level at every
-- movement, a price, an item, an offset per batch) leave room in their
-- pages, so that an update stays on the page and leaves the indexes
-- alone (a HOT update). Pages written from now on.
ALTER TABLE stock_levels SET (fillfactor = 70);
ALTER TABLE price_book SET (fillfactor = 70);
ALTER TABLE products SET (fillfactor = 70);
ALTER TABLE consumer_offsets SET (fillfactor = 50);
