-- 006: outbox rows that stand for a whole batch.
--
-- kafka_batch  payload holds every event of one projector batch, packed
--              as frames (key, value, headers; see proj_frame_put in
--              workers/projector/proj_util.c), all for topic; published
--              in order, then the row is deleted.
-- redis_keys   payload is {"items": [id...], "stocks": [[store, sku]...]}:
--              the read-model values a batch changed. They are rendered
--              from the committed rows (views rm_item_docs and
--              rm_stock_values) and written to Redis behind the version
--              guard, then the row is deleted.
-- One row per batch instead of one per event or value: the rows are
-- written, read and deleted a thousand times less often.
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('kafka', 'redis', 'kafka_batch', 'redis_keys'));

-- A batch's payload is a megabyte of text that is read once and deleted:
-- compressing it costs more than it saves.
ALTER TABLE outbox ALTER COLUMN payload SET STORAGE EXTERNAL;
