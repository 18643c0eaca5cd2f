-- 002: every consumed inbound message, byte for byte, for audit and replay,
-- and the set of messages already applied (idempotency by message).

CREATE TABLE IF NOT EXISTS inbound_archive (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    "offset"        bigint      NOT NULL,
    msg_key         bytea,
    headers         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    body            bytea       NOT NULL,
    source          text,
    delivery_id     text,
    kafka_ts        timestamptz,
    consumed_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inbound_archive_position_key UNIQUE (topic, partition, "offset")
);

CREATE INDEX IF NOT EXISTS inbound_archive_consumed_idx
    ON inbound_archive (consumed_at);

-- dedup_key is "<source>|<delivery_id>" (or "<topic>|<partition>|<offset>"
-- when the message has no delivery id): a webhook delivered twice, or a
-- message consumed twice, is applied once.
CREATE TABLE IF NOT EXISTS inbound_processed (
    dedup_key       text        PRIMARY KEY,
    archive_id      bigint      NOT NULL,
    commands        integer     NOT NULL,
    processed_at    timestamptz NOT NULL DEFAULT now()
);
