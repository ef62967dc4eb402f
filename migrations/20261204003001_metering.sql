-- Issue 17, metering (docs/billing.md, "Metering"): every booking is metered by the database in the
-- statement that inserts it (all doors: resident site, GraphQL, call centre, the fast path and
-- the batch, which insert from SQL functions); API calls are a new metered kind; invoices carry
-- what Japan's qualified-invoice rules (適格請求書) ask for.

-- every migration from here on waits at most this long for a lock (docs/operations.md)
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- A new metered kind, `api_call` (GraphQL requests authenticated by an API key). The new sets are
-- supersets of the old ones, so every existing row already satisfies them; NOT VALID spares the
-- table scan under lock, new and updated rows are checked.
-- replaced at once by a wider check, in the same transaction:
-- squawk-ignore ban-drop-constraint
ALTER TABLE usage_events DROP CONSTRAINT usage_events_kind_check;
ALTER TABLE usage_events ADD CONSTRAINT usage_events_kind_check
    CHECK (kind IN ('sms_segment', 'email', 'booking', 'resident', 'export', 'api_call')) NOT VALID;
-- squawk-ignore ban-drop-constraint
ALTER TABLE plan_prices DROP CONSTRAINT plan_prices_kind_check;
ALTER TABLE plan_prices ADD CONSTRAINT plan_prices_kind_check
    CHECK (kind IN ('sms_segment', 'email', 'booking', 'resident', 'export', 'api_call')) NOT VALID;

-- One usage event per booking row, written by the INSERT that makes it, in its transaction (a
-- rolled-back booking is never billed). Statement-level with a transition table, so a batch of
-- many bookings costs one extra statement, not one per row. Keyed `booking:<id>`: a booking is
-- billed once, when made; a change moves the same row (not billed again), a cancellation does
-- not refund. Runs as the caller, so row-level security holds for the usage row too.
CREATE FUNCTION meter_bookings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_events (tenant_id, idempotency_key, kind, quantity, occurred_at)
    SELECT n.tenant_id, 'booking:' || n.id::text, 'booking', 1, n.created_at FROM new_bookings n
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER bookings_metered AFTER INSERT ON bookings
    REFERENCING NEW TABLE AS new_bookings
    FOR EACH STATEMENT EXECUTE FUNCTION meter_bookings();

-- The platform operator as the issuer of every invoice (適格請求書発行事業者): one row, the
-- operator's own data (not tenant-owned, like `plans` and `invoice_counters`), set from the
-- configuration at start-up (`billing.issuer_name`, `billing.issuer_registration_number`).
CREATE TABLE billing_issuer (
    id                   boolean PRIMARY KEY DEFAULT true CHECK (id),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- 登録番号: T + 13 digits
    registration_number  text NOT NULL CHECK (registration_number ~ '^T[0-9]{13}$'),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- What a final invoice says about its issuer and payment, fixed when it is finalised (a later
-- change of the operator's name does not rewrite issued invoices). NULL on drafts and on invoices
-- finalised before this migration.
ALTER TABLE invoices ADD COLUMN issuer_name text;
ALTER TABLE invoices ADD COLUMN issuer_registration text;
ALTER TABLE invoices ADD COLUMN due_on date;
