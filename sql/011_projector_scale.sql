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
