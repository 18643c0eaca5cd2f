-- 008: the raw archive is written apart from the batch transaction.
--
-- The projector archives a batch's messages on a second connection while
-- it applies them on the first, and commits the batch (offsets included)
-- only once the archive has committed: a message past the stored offset
-- is archived, as before, and one archived twice (the batch was tried
-- again) keeps its first row. A dedup claim, which is part of the batch
-- transaction, therefore names the message that claimed it by its
-- position, not by an archive row id it cannot know yet.
ALTER TABLE inbound_processed
    ADD COLUMN IF NOT EXISTS topic text,
    ADD COLUMN IF NOT EXISTS partition integer,
    ADD COLUMN IF NOT EXISTS "offset" bigint;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_name = 'inbound_processed'
                 AND column_name = 'archive_id') THEN
        UPDATE inbound_processed p
           SET topic = a.topic, partition = a.partition, "offset" = a."offset"
          FROM inbound_archive a
         WHERE a.id = p.archive_id AND p.topic IS NULL;
        ALTER TABLE inbound_processed DROP COLUMN archive_id;
    END IF;
END
$$;
