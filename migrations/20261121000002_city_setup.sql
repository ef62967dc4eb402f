-- What a city configures before residents can book: vaccines, venues, slots and eligible residents.
--
-- Rules every tenant-owned table follows (DESIGN.md, Tenancy and isolation):
--  * tenant_id is the first column of the primary key and of every index and foreign key, so the
--    tables can later be distributed by tenant_id (Citus) with joins kept local;
--  * ENABLE + FORCE ROW LEVEL SECURITY with one policy comparing tenant_id with the transaction-local
--    setting app.tenant_id. NULLIF turns the empty string that a pooled connection keeps after a
--    transaction-local setting ends into NULL, so "no tenant" means "no rows", never an error.
-- A test (tests/e2e/isolation.rs) fails if a table with a tenant_id column misses any of this.

CREATE TABLE vaccines (
    tenant_id                uuid NOT NULL REFERENCES tenants (id),
    id                       uuid NOT NULL,
    name                     text NOT NULL CHECK (length(btrim(name)) > 0),
    maker                    text NOT NULL,
    doses                    int  NOT NULL CHECK (doses BETWEEN 1 AND 5),
    min_interval_days        int  NOT NULL CHECK (min_interval_days >= 0),
    booster_interval_months  int  NOT NULL CHECK (booster_interval_months >= 0),
    days_until_effective     int  NOT NULL CHECK (days_until_effective >= 0),
    validity_days            int  NOT NULL CHECK (validity_days > 0),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE venues (
    tenant_id               uuid NOT NULL REFERENCES tenants (id),
    id                      uuid NOT NULL,
    name                    text NOT NULL CHECK (length(btrim(name)) > 0),
    address                 text NOT NULL DEFAULT '',
    kind                    text NOT NULL CHECK (kind IN ('mass', 'hospital')),
    vaccine_id              uuid NOT NULL,
    -- residents may book from this moment on (NULL: open now)
    booking_opens_at        timestamptz,
    -- residents may book a slot until this many hours before it starts
    booking_deadline_hours  int NOT NULL DEFAULT 24 CHECK (booking_deadline_hours >= 0),
    -- residents may change or cancel until this many days before the slot
    cancel_cutoff_days      int NOT NULL DEFAULT 2 CHECK (cancel_cutoff_days >= 0),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id, vaccine_id) REFERENCES vaccines (tenant_id, id)
);

CREATE TABLE slots (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid NOT NULL,
    venue_id   uuid NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    capacity   int NOT NULL CHECK (capacity >= 0),
    booked     int NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, venue_id) REFERENCES venues (tenant_id, id),
    UNIQUE (tenant_id, venue_id, starts_at),
    CHECK (ends_at > starts_at),
    -- the last wall against overbooking: even a buggy statement cannot commit booked > capacity
    CHECK (booked >= 0 AND booked <= capacity)
);

-- Eligible residents as imported from the city's register (接種券 = vaccination ticket).
CREATE TABLE residents (
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    id                uuid NOT NULL,
    ticket_no         text NOT NULL CHECK (ticket_no ~ '^[0-9]{10}$'),
    birth_date        date NOT NULL,
    kana_name         text NOT NULL,
    sex               text NOT NULL CHECK (sex IN ('female', 'male', 'other', 'unknown')),
    phone             text,
    email             text,
    postal_code       text,
    preferred_locale  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, ticket_no)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['vaccines', 'venues', 'slots', 'residents'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                 USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)
                 WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;
