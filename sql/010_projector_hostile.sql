-- 010: dead letters that wait for something, and dedup keys made exact.
--
-- A price or stock command for a sku that no item has (yet) is not
-- applied: its message is dead-lettered with reason unknown_sku and
-- waiting_for = that sku. Sources send updates out of order (inventory
-- before the product), so the message is parked, not lost: the item
-- upsert that brings the sku puts it back on its topic, in the same
-- transaction (an outbox row; replayed_at and replay_count are set as
-- commerce-replay sets them). A message still waiting can also be
-- replayed by hand (commerce-replay --dlq-reason unknown_sku).
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS waiting_for text;

CREATE INDEX IF NOT EXISTS dead_letters_waiting_idx
    ON dead_letters (waiting_for)
    WHERE waiting_for IS NOT NULL AND replayed_at IS NULL;

-- Dedup keys (inbound_processed.dedup_key) stay "<source>|<delivery_id>"
-- up to 599 bytes, byte for byte what earlier versions stored, so a
-- message deduplicated before the upgrade is still a duplicate after it.
-- Longer ones are now "<source>|sha256:<hex>" of the whole source and id
-- (earlier versions cut them at 599 bytes, so different ids sharing a
-- prefix were taken for one; and ids over 1,024 bytes fell back to the
-- Kafka position). Such cut keys already stored are left as they are:
-- they cannot be told apart, and the messages they stand for are behind
-- the stored offsets. Nothing to change in the table.
