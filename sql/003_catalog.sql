-- 003: the canonical catalog.
--
-- Every row that feeds a read model has a version column: it is bumped by
-- each change of the projected value (for stock levels this includes a
-- change of the store's effective price) and is the version the Redis read
-- model is guarded by. Writers update rows under the row lock, so versions
-- of one row strictly increase in commit order.

CREATE TABLE IF NOT EXISTS merchants (
    id              text        PRIMARY KEY,
    name            text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS stores (
    id              text        PRIMARY KEY,
    merchant_id     text        REFERENCES merchants (id),
    name            text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS products (
    id                  text        PRIMARY KEY,
    merchant_id         text        REFERENCES merchants (id),
    sku                 text,
    name                text        NOT NULL,
    description         text,
    brand               text,
    tags                jsonb       NOT NULL DEFAULT '[]'::jsonb,
    attributes          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    source              text        NOT NULL,
    source_updated_at   timestamptz,
    version             bigint      NOT NULL DEFAULT 1,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS variants (
    sku             text        PRIMARY KEY,
    item_id         text        NOT NULL REFERENCES products (id)
                                ON DELETE CASCADE,
    position        integer     NOT NULL,
    name            text,
    options         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS variants_item_idx ON variants (item_id, position);

CREATE TABLE IF NOT EXISTS addon_groups (
    item_id         text        NOT NULL REFERENCES products (id)
                                ON DELETE CASCADE,
    group_id        text        NOT NULL,
    position        integer     NOT NULL,
    name            text        NOT NULL,
    min_select      integer     NOT NULL DEFAULT 0 CHECK (min_select >= 0),
    max_select      integer     NOT NULL DEFAULT 1 CHECK (max_select >= 0),
    addons          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    PRIMARY KEY (item_id, group_id)
);

-- Price book: one base price per sku (store_id = '') and optional store
-- overrides. Amounts are integers in minor units (cents).
CREATE TABLE IF NOT EXISTS price_book (
    sku             text        NOT NULL,
    store_id        text        NOT NULL DEFAULT '',
    amount_minor    bigint      NOT NULL CHECK (amount_minor >= 0),
    currency        char(3)     NOT NULL,
    source_ts       timestamptz,
    version         bigint      NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, store_id)
);

-- Vendor ids to canonical ids: ('shopify', 'product', '632910392') ->
-- 'shopify-632910392'; ('shopify', 'inventory_item', '808950810') -> sku;
-- ('shopify', 'location', '655441491') -> store id.
CREATE TABLE IF NOT EXISTS source_mappings (
    source          text        NOT NULL,
    kind            text        NOT NULL,
    external_id     text        NOT NULL,
    canonical_id    text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, kind, external_id)
);

-- Current stock per store and sku, with the version used for optimistic
-- locking and for guarding the read model.
CREATE TABLE IF NOT EXISTS stock_levels (
    store_id        text        NOT NULL,
    sku             text        NOT NULL,
    on_hand         bigint      NOT NULL CHECK (on_hand >= 0),
    reserved        bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    source_ts       timestamptz,
    version         bigint      NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, sku)
);

CREATE INDEX IF NOT EXISTS stock_levels_sku_idx ON stock_levels (sku);

-- Every stock movement: absolute counts (movement 'set', delta = the
-- difference it made) and deltas ('adjust', with a reason).
CREATE TABLE IF NOT EXISTS stock_ledger (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id        text        NOT NULL,
    sku             text        NOT NULL,
    event_id        uuid        NOT NULL UNIQUE,
    movement        text        NOT NULL CHECK (movement IN ('set', 'adjust')),
    delta           bigint      NOT NULL,
    on_hand_after   bigint      NOT NULL,
    reason          text,
    source_ts       timestamptz,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS stock_ledger_store_sku_idx
    ON stock_ledger (store_id, sku, id);
