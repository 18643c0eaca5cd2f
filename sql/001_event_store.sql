-- 001: the append-only event store.
--
-- position    global order of recording (identity; gaps possible, and
--             positions may become visible out of order across concurrent
--             transactions, so readers never page by it alone)
-- event_id    unique: derived from the inbound message, so redelivery of
--             the same message produces the same ids and is a no-op
-- version     per aggregate, strictly increasing (the version column of
--             the canonical row the event changed)

CREATE TABLE IF NOT EXISTS event_store (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    version         bigint      NOT NULL CHECK (version > 0),
    event_type      text        NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    correlation_id  text,
    causation_id    text,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_store_event_id_key UNIQUE (event_id),
    CONSTRAINT event_store_aggregate_version_key
        UNIQUE (aggregate_id, version)
);

CREATE INDEX IF NOT EXISTS event_store_type_idx
    ON event_store (aggregate_type, recorded_at);

-- Append-only: updates and deletes are refused.
CREATE OR REPLACE FUNCTION event_store_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_store is append-only';
END $$;

DROP TRIGGER IF EXISTS event_store_no_change ON event_store;
CREATE TRIGGER event_store_no_change
    BEFORE UPDATE OR DELETE ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_append_only();
