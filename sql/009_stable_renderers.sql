-- 009: the rendering helpers are STABLE, like what they call.
--
-- commerce_money builds its value with json_build_object and commerce_ts
-- with to_char, both STABLE (their output follows session settings).
-- Declared IMMUTABLE, the two could not be inlined into the queries that
-- call them (PostgreSQL does not inline an IMMUTABLE function over a less
-- immutable body), so every call started an executor of its own: for
-- every price and timestamp of every read-model value rendered. Inlined,
-- they return the same values for a fraction of the cost.
ALTER FUNCTION commerce_money(bigint, text) STABLE;
ALTER FUNCTION commerce_ts(timestamptz) STABLE;
