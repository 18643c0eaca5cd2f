-- 005: the outbox is drained by kind. The read-model values ('redis') are
-- written right after each batch commits, by the consuming thread; the
-- events and dead letters ('kafka') are published by a thread of their
-- own, so the read model never waits for Kafka's acknowledgements. Each
-- drainer takes the rows of its kind in id order.
CREATE INDEX IF NOT EXISTS outbox_kind_id_idx ON outbox (kind, id);
