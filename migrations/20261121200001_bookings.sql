-- Residents book (issue 4): booking rows, the city's booking policy, idempotency keys, resident
-- login codes and sessions, login throttling and the notification outbox.
--
-- Every table below is tenant-owned and follows the rules in 20261121000002_city_setup.sql:
-- tenant_id leads every key, index and foreign key; ENABLE + FORCE RLS with the tenant_isolation
-- policy (DO block at the end).

-- The city's booking policy: one row per tenant, read by every booking. Defaults are the issue's.
CREATE TABLE booking_settings (
    tenant_id              uuid NOT NULL REFERENCES tenants (id),
    -- △ ("few left") when fewer than this share of seats is free …
    few_left_percent       int  NOT NULL DEFAULT 20 CHECK (few_left_percent BETWEEN 0 AND 100),
    -- … or fewer than this many seats
    few_left_seats         int  NOT NULL DEFAULT 3 CHECK (few_left_seats >= 0),
    -- dose 2 / booster may use another vaccine than dose 1
    allow_mixing           bool NOT NULL DEFAULT false,
    -- a resident may book dose 2 in the same step as dose 1 (both seats or neither)
    book_dose2_with_dose1  bool NOT NULL DEFAULT false,
    -- how many other people one resident may book for in a group booking
    max_group_size         int  NOT NULL DEFAULT 4 CHECK (max_group_size >= 0),
    PRIMARY KEY (tenant_id)
);

-- One row per seat taken. A change moves the row to another slot (same id); a cancel keeps the row
-- for the record with status 'cancelled'. slots.booked is kept equal to the number of 'booked' rows
-- of the slot by platform/src/booking.rs, in the same transaction.
CREATE TABLE bookings (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,
    resident_id   uuid NOT NULL,
    slot_id       uuid NOT NULL,
    -- the venue's vaccine at booking time: the venue fixes the product
    vaccine_id    uuid NOT NULL,
    -- 1 = first dose, 2 = second dose, 3 = booster
    dose          smallint NOT NULL CHECK (dose BETWEEN 1 AND 3),
    status        text NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
    -- who made it: the resident themself or the group's organiser
    booked_by     uuid NOT NULL,
    -- bookings made in one step (group, or dose 1 + dose 2) share this id
    group_id      uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, resident_id) REFERENCES residents (tenant_id, id),
    FOREIGN KEY (tenant_id, booked_by) REFERENCES residents (tenant_id, id),
    FOREIGN KEY (tenant_id, slot_id) REFERENCES slots (tenant_id, id),
    FOREIGN KEY (tenant_id, vaccine_id) REFERENCES vaccines (tenant_id, id)
);
-- One live booking per resident and dose: the database, not the code, has the last word.
CREATE UNIQUE INDEX bookings_one_live_per_dose
    ON bookings (tenant_id, resident_id, dose) WHERE status = 'booked';
CREATE INDEX bookings_by_slot ON bookings (tenant_id, slot_id) WHERE status = 'booked';

-- A retried request with the same key returns the first result. The row is inserted first in the
-- booking's own transaction, so a concurrent duplicate waits on the unique key and then sees the
-- committed result (or, if the first rolled back, books itself).
CREATE TABLE idempotency_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    key          text NOT NULL CHECK (length(key) BETWEEN 8 AND 200),
    resident_id  uuid NOT NULL,
    result       jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key),
    FOREIGN KEY (tenant_id, resident_id) REFERENCES residents (tenant_id, id)
);

-- SMS login codes. The code itself is never stored: it is derived from the row id with a server
-- secret when the SMS is sent, and only a salted hash is kept for checking what the resident types.
CREATE TABLE login_codes (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid NOT NULL,
    resident_id  uuid NOT NULL,
    phone        text NOT NULL,
    code_hash    bytea NOT NULL,
    attempts     int NOT NULL DEFAULT 0,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, resident_id) REFERENCES residents (tenant_id, id)
);
CREATE INDEX login_codes_by_resident ON login_codes (tenant_id, resident_id, created_at);

-- Every code request, for throttling per ticket, phone and IP. The bucket is a hash, so the table
-- holds no ticket numbers, phone numbers or addresses in clear.
CREATE TABLE login_throttle (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid NOT NULL,
    bucket     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX login_throttle_by_bucket ON login_throttle (tenant_id, bucket, at);

-- Resident sessions: only the token's hash is stored; the CSRF token is bound to the session.
CREATE TABLE resident_sessions (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    token_hash   bytea NOT NULL,
    resident_id  uuid NOT NULL,
    csrf_token   text NOT NULL,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, resident_id) REFERENCES residents (tenant_id, id)
);

-- The notification outbox (docs/architecture.md, Jobs): pushed in the same transaction as the
-- booking or login code it announces, worked by a SKIP LOCKED worker. The unique key means one
-- logical message is queued once; a duplicate push aborts the pushing transaction.
CREATE TABLE notification_jobs (
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    id                   uuid NOT NULL,
    queue                text NOT NULL,
    idempotency_key      text NOT NULL,
    payload              jsonb NOT NULL,
    status               text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'dead')),
    attempts             int NOT NULL DEFAULT 0,
    run_after            timestamptz NOT NULL DEFAULT now(),
    last_error           text,
    provider_message_id  text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    sent_at              timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX notification_jobs_due ON notification_jobs (tenant_id, run_after) WHERE status = 'queued';

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['booking_settings', 'bookings', 'idempotency_keys', 'login_codes',
                             'login_throttle', 'resident_sessions', 'notification_jobs'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                 USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)
                 WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;
