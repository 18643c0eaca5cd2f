-- 012: order sagas and stock reservations (issue 14).
--
-- The saga worker keeps each order's saga here, written in the same
-- transaction as the Kafka offsets of what caused the change, so a crash
-- at any point neither loses a transition nor repeats one. Its offsets
-- are rows of consumer_offsets (004, keyed by cluster since 011) under
-- its own group id: the table is keyed by group, cluster, topic and
-- partition, and the projector's offset statements fit any group.

-- One saga per order; its id is the order id. status: running (forward
-- steps), compensating (undoing the completed steps in reverse), and the
-- ends completed, compensated (reason says why) and failed (a
-- compensation gave up: it needs a person). step is the current step.
-- command is the order.place command as received; next_deadline the
-- earliest deadline of its steps (NULL: none); version goes up with
-- every change, and guards the order's read model.
CREATE TABLE IF NOT EXISTS sagas (
    id              uuid        PRIMARY KEY,
    status          text        NOT NULL DEFAULT 'running'
                                CHECK (status IN ('running', 'compensating',
                                                  'completed', 'compensated',
                                                  'failed')),
    step            text        NOT NULL
                                CHECK (step IN ('reserve', 'authorize',
                                                'ship', 'capture')),
    reason          text,
    sub             text        NOT NULL,
    store_id        text        NOT NULL,
    command         jsonb       NOT NULL,
    traceparent     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    next_deadline   timestamptz,
    version         bigint      NOT NULL DEFAULT 1
);

-- The timer: sagas whose deadline has passed, earliest first, found
-- without reading the ones that wait for nothing.
CREATE INDEX IF NOT EXISTS sagas_due_idx
    ON sagas (next_deadline) WHERE next_deadline IS NOT NULL;

-- A saga's steps, a row each (reserve, authorize, ship, capture: the
-- decision core's step table, workers/saga/saga_def.c), in the core's
-- step states (saga_machine.h): forward pending, in_flight,
-- waiting_retry, succeeded, failed; undoing compensating,
-- comp_waiting_retry, compensated, comp_failed; skipped (nothing of its
-- own to undo). attempts counts the attempts of the direction in
-- progress (0 again on an admin retry), attempt_no is the number the last
-- one carried (it never goes back); next_deadline is when the attempt in
-- flight times out or the next one is due; unknown marks a forward
-- outcome never learnt (it is undone as if done). The participant's
-- idempotency key is {order id}:{command type}, the same on every
-- attempt (docs/contract.md): made from the row, not stored.
CREATE TABLE IF NOT EXISTS saga_steps (
    saga_id         uuid        NOT NULL REFERENCES sagas (id)
                                ON DELETE CASCADE,
    step            text        NOT NULL
                                CHECK (step IN ('reserve', 'authorize',
                                                'ship', 'capture')),
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'in_flight',
                                                  'waiting_retry',
                                                  'succeeded', 'failed',
                                                  'compensating',
                                                  'comp_waiting_retry',
                                                  'compensated',
                                                  'comp_failed',
                                                  'skipped')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    attempt_no      integer     NOT NULL DEFAULT 0 CHECK (attempt_no >= 0),
    next_deadline   timestamptz,
    unknown         boolean     NOT NULL DEFAULT false,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (saga_id, step)
);

-- Commands applied (order.place, order.cancel, admin retry and
-- compensate, participants' replies by their command id): a command is
-- applied at most once, its row written with what it changed.
CREATE TABLE IF NOT EXISTS saga_commands_seen (
    command_id      uuid        PRIMARY KEY,
    saga_id         uuid        NOT NULL,
    type            text        NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now()
);


-- Stock reservations.
--
-- One rule, here: stock_reserve, stock_release, stock_sell and
-- stock_release_expired below are the only writers of reservations, and
-- the projector's stock writes keep to the same invariant.
--
-- A level's demand is the quantity of its reservations that are still
-- 'reserved'. reserved is the part of it that on_hand covers and
-- shortfall the rest:
--
--     reserved = least(on_hand, demand),  shortfall = demand - reserved
--
-- so on_hand - reserved is never negative (the CHECK below), and a
-- shortfall only exists while nothing is available. It appears when a
-- source's count (stock.set from a POS) or movement comes in below what
-- is reserved: the source is authoritative, the projector applies it
-- and moves what the count no longer covers from reserved to shortfall
-- (the same rule folded in C, proj_stock_fold). The newest reservations
-- are the short ones (stock_short_lines): the saga worker finds them
-- there and acts (stock_sell refuses a short line). Stock that comes
-- back (a count, a delivery, a release) covers the shortfall before
-- anything becomes available again.
--
-- Every writer of a level locks the levels it changes in key order
-- (store_id, sku) before anything else, so reservations, releases and
-- the projector's batches wait for each other and never deadlock.

ALTER TABLE stock_levels
    ADD COLUMN IF NOT EXISTS shortfall bigint NOT NULL DEFAULT 0;
ALTER TABLE stock_levels DROP CONSTRAINT IF EXISTS stock_levels_shortfall_check;
ALTER TABLE stock_levels ADD CONSTRAINT stock_levels_shortfall_check
    CHECK (shortfall >= 0 AND (shortfall = 0 OR reserved = on_hand));
ALTER TABLE stock_levels DROP CONSTRAINT IF EXISTS stock_levels_available_check;
ALTER TABLE stock_levels ADD CONSTRAINT stock_levels_available_check
    CHECK (on_hand - reserved >= 0);

CREATE INDEX IF NOT EXISTS stock_levels_short_idx
    ON stock_levels (store_id, sku) WHERE shortfall > 0;

-- An order's lines in one store. status: reserved, then released (the
-- stock came back: compensation, cancellation, expiry) or sold (the
-- order was confirmed: on_hand and reserved went down). A reservation
-- still 'reserved' after expires_at whose saga is not running is
-- released by stock_release_expired.
CREATE TABLE IF NOT EXISTS stock_reservations (
    order_id        uuid        NOT NULL,
    store_id        text        NOT NULL,
    sku             text        NOT NULL,
    quantity        bigint      NOT NULL CHECK (quantity > 0),
    status          text        NOT NULL DEFAULT 'reserved'
                                CHECK (status IN ('reserved', 'released',
                                                  'sold')),
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, store_id, sku)
);

CREATE INDEX IF NOT EXISTS stock_reservations_expiry_idx
    ON stock_reservations (expires_at) WHERE status = 'reserved';
CREATE INDEX IF NOT EXISTS stock_reservations_level_idx
    ON stock_reservations (store_id, sku, created_at)
    WHERE status = 'reserved';

-- A reservation refused (out_of_stock, unknown_sku) is a decline, final
-- for its order: asked again, stock_reserve gives the same answer.
CREATE TABLE IF NOT EXISTS stock_refusals (
    order_id        uuid        PRIMARY KEY,
    store_id        text        NOT NULL,
    sku             text        NOT NULL,
    reason          text        NOT NULL,
    refused_at      timestamptz NOT NULL DEFAULT now()
);

-- The ledger records reservations too: movement 'reserve' and 'release'
-- (delta 0: on_hand does not change) and 'sale' (delta -quantity), each
-- with its order. reserved_delta and reserved_after say what a movement
-- did to reserved (a count that left part of the demand uncovered
-- lowers it too); rows from before 012 have reserved_after NULL.
ALTER TABLE stock_ledger DROP CONSTRAINT IF EXISTS stock_ledger_movement_check;
ALTER TABLE stock_ledger ADD CONSTRAINT stock_ledger_movement_check
    CHECK (movement IN ('set', 'adjust', 'reserve', 'release', 'sale'));
ALTER TABLE stock_ledger
    ADD COLUMN IF NOT EXISTS order_id uuid,
    ADD COLUMN IF NOT EXISTS reserved_delta bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS reserved_after bigint;

-- The reservations the shortfall of their level falls on, newest first,
-- and how much of each is short.
CREATE OR REPLACE VIEW stock_short_lines AS
SELECT order_id, store_id, sku, quantity, short
FROM (SELECT r.order_id, r.store_id, r.sku, r.quantity,
             least(r.quantity, s.shortfall
                   - (sum(r.quantity) OVER w - r.quantity)) AS short
      FROM stock_levels s
      JOIN stock_reservations r
        ON r.store_id = s.store_id AND r.sku = s.sku
       AND r.status = 'reserved'
      WHERE s.shortfall > 0
      WINDOW w AS (PARTITION BY r.store_id, r.sku
                   ORDER BY r.created_at DESC, r.order_id DESC)) x
WHERE short > 0;

-- The id of the ledger rows of one movement of an order (every line's):
-- the saga worker can give its event the same.
CREATE OR REPLACE FUNCTION stock_movement_id(p_order uuid, p_movement text)
RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
    SELECT md5(p_order::text || '/' || p_movement)::uuid
$$;

-- Locks the levels of (store, sku) pairs in key order: the first thing
-- every writer of levels does.
CREATE OR REPLACE FUNCTION stock_lock(p_stores text[], p_skus text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM stock_levels s
       JOIN unnest(p_stores, p_skus) AS k(store, sku)
         ON s.store_id = k.store AND s.sku = k.sku
      ORDER BY s.store_id, s.sku FOR UPDATE OF s;
END
$$;

-- The read-model values of the levels of the order's lines, rendered
-- again after the commit by the projector's read-model writer from the
-- committed rows (rm_stock_values, behind the version guard): a
-- 'redis_keys' outbox row (006). Returns its id.
CREATE OR REPLACE FUNCTION stock_outbox(p_order uuid)
RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO outbox (kind, payload)
    SELECT 'redis_keys', convert_to(json_build_object('stocks',
           json_agg(json_build_array(store_id, sku)
                    ORDER BY store_id, sku))::text, 'UTF8')
    FROM stock_reservations WHERE order_id = p_order
    RETURNING id
$$;

-- Reserves every line of an order, or none.
--
-- p_lines is the order.place command's: [{"sku", "quantity"}...], each
-- sku once, each quantity a positive integer (else an error, SQLSTATE
-- 22023). Answers ok, or the first line (in p_lines' order) that cannot
-- be reserved: reason unknown_sku (no item has it) or out_of_stock (the
-- store's on_hand - reserved is below its quantity; no level counts as
-- 0), and nothing is reserved. Each line checks and takes its stock
-- under the lock of its level, taken in key order for all lines first:
-- on_hand - reserved >= quantity, then reserved goes up by it and the
-- level's version by one.
--
-- Asked again for the same order it changes nothing and answers the
-- same: ok while reserved, the refusal after a refusal, ok = false and
-- reason sold after the sale. A reservation released is reserved again
-- (an admin retry after a compensation or an expiry). outbox_id is the
-- 'redis_keys' row this call wrote (NULL: it changed nothing).
CREATE OR REPLACE FUNCTION stock_reserve(p_order uuid, p_store text,
    p_lines jsonb, p_expires_at timestamptz, OUT ok boolean,
    OUT reason text, OUT sku text, OUT outbox_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_skus   text[];
    v_qty    bigint[];
    v_state  text;
    v_miss   record;
BEGIN
    IF p_order IS NULL OR p_store IS NULL OR p_expires_at IS NULL THEN
        RAISE EXCEPTION 'stock_reserve: order, store and expiry are required'
            USING ERRCODE = '22023';
    END IF;

    IF jsonb_typeof(p_lines) IS DISTINCT FROM 'array'
       OR jsonb_array_length(p_lines) = 0
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_lines) e
                  WHERE jsonb_typeof(e) <> 'object'
                     OR jsonb_typeof(e->'sku') IS DISTINCT FROM 'string'
                     OR e->>'sku' = ''
                     OR jsonb_typeof(e->'quantity') IS DISTINCT FROM 'number'
                     OR e->>'quantity' !~ '^[1-9][0-9]{0,17}$')
    THEN
        RAISE EXCEPTION 'stock_reserve: lines must be a non-empty array of'
            ' {"sku": text, "quantity": positive integer}: %', p_lines
            USING ERRCODE = '22023';
    END IF;

    SELECT array_agg(e->>'sku' ORDER BY o), array_agg((e->>'quantity')::bigint
           ORDER BY o)
      INTO v_skus, v_qty
      FROM jsonb_array_elements(p_lines) WITH ORDINALITY AS l(e, o);

    IF (SELECT count(DISTINCT s) FROM unnest(v_skus) s)
       <> cardinality(v_skus)
    THEN
        RAISE EXCEPTION 'stock_reserve: a sku appears twice in %', p_lines
            USING ERRCODE = '22023';
    END IF;

    PERFORM stock_lock(array_fill(p_store, ARRAY[cardinality(v_skus)]),
                       v_skus);

    -- What was answered before, seen under the locks.
    SELECT min(r.status) INTO v_state
      FROM stock_reservations r WHERE r.order_id = p_order;

    IF v_state = 'reserved' THEN
        ok := true;
        RETURN;
    END IF;

    IF v_state = 'sold' THEN
        ok := false;
        reason := 'sold';
        RETURN;
    END IF;

    SELECT false, f.reason, f.sku INTO ok, reason, sku
      FROM stock_refusals f WHERE f.order_id = p_order;
    IF FOUND THEN
        RETURN;
    END IF;

    SELECT l.sku, s.sku IS NULL AND NOT EXISTS (SELECT 1 FROM variants v
                                                WHERE v.sku = l.sku)
           AS unknown
      INTO v_miss
      FROM unnest(v_skus, v_qty) WITH ORDINALITY AS l(sku, qty, o)
      LEFT JOIN stock_levels s ON s.store_id = p_store AND s.sku = l.sku
     WHERE s.sku IS NULL OR s.on_hand - s.reserved < l.qty
     ORDER BY l.o LIMIT 1;

    IF FOUND THEN
        ok := false;
        reason := CASE WHEN v_miss.unknown THEN 'unknown_sku'
                       ELSE 'out_of_stock' END;
        sku := v_miss.sku;
        INSERT INTO stock_refusals (order_id, store_id, sku, reason)
        VALUES (p_order, p_store, sku, reason);
        RETURN;
    END IF;

    WITH l AS (SELECT * FROM unnest(v_skus, v_qty) AS l(sku, qty)),
    u AS (UPDATE stock_levels s SET reserved = s.reserved + l.qty,
                 version = s.version + 1, updated_at = now()
            FROM l WHERE s.store_id = p_store AND s.sku = l.sku
          RETURNING s.sku, s.on_hand, s.reserved, l.qty),
    r AS (INSERT INTO stock_reservations (order_id, store_id, sku, quantity,
                                          expires_at)
          SELECT p_order, p_store, l.sku, l.qty, p_expires_at FROM l
          ON CONFLICT (order_id, store_id, sku) DO UPDATE
          SET quantity = EXCLUDED.quantity, status = 'reserved',
              expires_at = EXCLUDED.expires_at, updated_at = now())
    INSERT INTO stock_ledger (store_id, sku, event_id, movement, delta,
                              on_hand_after, order_id, reserved_delta,
                              reserved_after)
    SELECT p_store, u.sku, stock_movement_id(p_order, 'reserve'), 'reserve',
           0, u.on_hand, p_order, u.qty, u.reserved
      FROM u ORDER BY u.sku;

    ok := true;
    outbox_id := stock_outbox(p_order);
END
$$;

-- Locks the levels of an order's reservation in key order, then its
-- lines; returns the reservation's status (NULL: there is none).
CREATE OR REPLACE FUNCTION stock_lock_order(p_order uuid, OUT p_state text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM stock_lock(array_agg(r.store_id), array_agg(r.sku))
       FROM stock_reservations r WHERE r.order_id = p_order;

    PERFORM 1 FROM stock_reservations r WHERE r.order_id = p_order
      ORDER BY r.store_id, r.sku FOR UPDATE;

    SELECT min(r.status) INTO p_state
      FROM stock_reservations r WHERE r.order_id = p_order;
END
$$;

-- Gives an order's reserved stock back: each level's demand goes down by
-- the line's quantity (reserved = least(on_hand, demand): a shortfall is
-- covered first). p_reason goes to the ledger rows. Answers ok (released
-- now or before), ok with reason not_reserved (nothing was), or ok =
-- false and reason sold. Asked again it changes nothing and answers the
-- same.
CREATE OR REPLACE FUNCTION stock_release(p_order uuid,
    p_reason text DEFAULT NULL, OUT ok boolean, OUT reason text,
    OUT outbox_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_state  text;
BEGIN
    v_state := stock_lock_order(p_order);

    IF v_state IS NULL THEN
        ok := true;
        reason := 'not_reserved';
        RETURN;
    END IF;

    IF v_state = 'sold' THEN
        ok := false;
        reason := 'sold';
        RETURN;
    END IF;

    ok := true;

    IF v_state = 'released' THEN
        RETURN;
    END IF;

    WITH r AS (UPDATE stock_reservations r SET status = 'released',
                      updated_at = now()
                WHERE r.order_id = p_order AND r.status = 'reserved'
               RETURNING r.store_id, r.sku, r.quantity),
    o AS (SELECT s.store_id, s.sku, s.reserved FROM stock_levels s
          JOIN r ON s.store_id = r.store_id AND s.sku = r.sku),
    u AS (UPDATE stock_levels s
             SET reserved = least(s.on_hand,
                                  s.reserved + s.shortfall - r.quantity),
                 shortfall = s.reserved + s.shortfall - r.quantity
                             - least(s.on_hand,
                                     s.reserved + s.shortfall - r.quantity),
                 version = s.version + 1, updated_at = now()
            FROM r WHERE s.store_id = r.store_id AND s.sku = r.sku
          RETURNING s.store_id, s.sku, s.on_hand, s.reserved)
    INSERT INTO stock_ledger (store_id, sku, event_id, movement, delta,
                              on_hand_after, reason, order_id,
                              reserved_delta, reserved_after)
    SELECT u.store_id, u.sku, stock_movement_id(p_order, 'release'),
           'release', 0, u.on_hand, p_reason, p_order,
           u.reserved - o.reserved, u.reserved
      FROM u JOIN o ON o.store_id = u.store_id AND o.sku = u.sku
     ORDER BY u.store_id, u.sku;

    outbox_id := stock_outbox(p_order);
END
$$;

-- Turns an order's reservation into a sale: each level's on_hand and
-- demand go down by the line's quantity (so reserved too, by as much).
-- Answers ok (sold now or before), or ok = false with reason
-- not_reserved, released, or short (sku: the first line, in key order,
-- that its level's shortfall falls on: stock_short_lines; nothing is
-- sold). Asked again it changes nothing and answers the same.
CREATE OR REPLACE FUNCTION stock_sell(p_order uuid, OUT ok boolean,
    OUT reason text, OUT sku text, OUT outbox_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_state  text;
BEGIN
    v_state := stock_lock_order(p_order);

    IF v_state IS NULL OR v_state = 'released' THEN
        ok := false;
        reason := COALESCE(v_state, 'not_reserved');
        RETURN;
    END IF;

    ok := true;

    IF v_state = 'sold' THEN
        RETURN;
    END IF;

    SELECT 'short', x.sku INTO reason, sku
      FROM stock_short_lines x WHERE x.order_id = p_order
     ORDER BY x.store_id, x.sku LIMIT 1;
    IF FOUND THEN
        ok := false;
        RETURN;
    END IF;

    WITH r AS (UPDATE stock_reservations r SET status = 'sold',
                      updated_at = now()
                WHERE r.order_id = p_order AND r.status = 'reserved'
               RETURNING r.store_id, r.sku, r.quantity),
    u AS (UPDATE stock_levels s
             SET on_hand = s.on_hand - r.quantity,
                 reserved = least(s.on_hand - r.quantity,
                                  s.reserved + s.shortfall - r.quantity),
                 shortfall = s.reserved + s.shortfall - r.quantity
                             - least(s.on_hand - r.quantity,
                                     s.reserved + s.shortfall - r.quantity),
                 version = s.version + 1, updated_at = now()
            FROM r WHERE s.store_id = r.store_id AND s.sku = r.sku
          RETURNING s.store_id, s.sku, s.on_hand, s.reserved, r.quantity)
    INSERT INTO stock_ledger (store_id, sku, event_id, movement, delta,
                              on_hand_after, order_id, reserved_delta,
                              reserved_after)
    SELECT u.store_id, u.sku, stock_movement_id(p_order, 'sale'), 'sale',
           -u.quantity, u.on_hand, p_order, -u.quantity, u.reserved
      FROM u ORDER BY u.store_id, u.sku;

    outbox_id := stock_outbox(p_order);
END
$$;

-- Releases (reason expired) up to p_limit reservations past their
-- expiry whose saga is not running (there is none, or it ended, failed
-- or is compensating), the earliest first; returns the orders released
-- by this call. The levels of all of them are locked in key order
-- first.
CREATE OR REPLACE FUNCTION stock_release_expired(
    p_now timestamptz DEFAULT now(), p_limit integer DEFAULT 100)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
DECLARE
    v_orders  uuid[];
    v_order   uuid;
BEGIN
    SELECT array_agg(x.order_id) INTO v_orders
      FROM (SELECT r.order_id FROM stock_reservations r
             WHERE r.status = 'reserved' AND r.expires_at <= p_now
               AND NOT EXISTS (SELECT 1 FROM sagas g WHERE g.id = r.order_id
                               AND g.status = 'running')
             GROUP BY r.order_id ORDER BY min(r.expires_at), r.order_id
             LIMIT p_limit) x;

    IF v_orders IS NULL THEN
        RETURN;
    END IF;

    PERFORM stock_lock(array_agg(r.store_id), array_agg(r.sku))
       FROM stock_reservations r WHERE r.order_id = ANY (v_orders);

    FOREACH v_order IN ARRAY v_orders LOOP
        IF (SELECT x.outbox_id FROM stock_release(v_order, 'expired') x)
           IS NOT NULL
        THEN
            RETURN NEXT v_order;
        END IF;
    END LOOP;
END
$$;
