-- Plans, contracts, metered usage and invoices (the SaaS side). Money is integer yen (bigint), never
-- floating point.

-- The operator's price list: not tenant-owned, so no tenant_id and no RLS; the runtime role reads it.
CREATE TABLE plans (
    id               uuid PRIMARY KEY,
    code             text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9-]{2,40}$'),
    name             text NOT NULL,
    setup_fee_yen    bigint NOT NULL CHECK (setup_fee_yen >= 0),
    system_fee_yen   bigint NOT NULL CHECK (system_fee_yen >= 0),   -- monthly
    cloud_fee_yen    bigint NOT NULL CHECK (cloud_fee_yen >= 0),    -- monthly
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Per metered kind: how much is included each month and what each further unit costs.
CREATE TABLE plan_prices (
    plan_id           uuid NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('sms_segment', 'email', 'booking', 'resident', 'export')),
    included_quantity bigint NOT NULL DEFAULT 0 CHECK (included_quantity >= 0),
    unit_price_yen    bigint NOT NULL CHECK (unit_price_yen >= 0),
    -- hard: usage beyond the included quantity is refused rather than billed
    hard_cap          boolean NOT NULL DEFAULT false,
    PRIMARY KEY (plan_id, kind)
);

-- Optional monthly add-ons (multilingual site, reminders, call-centre seats …).
CREATE TABLE plan_addons (
    plan_id         uuid NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    code            text NOT NULL CHECK (code ~ '^[a-z0-9_]{2,40}$'),
    name            text NOT NULL,
    monthly_fee_yen bigint NOT NULL CHECK (monthly_fee_yen >= 0),
    PRIMARY KEY (plan_id, code)
);

-- A tenant's contract: a plan from a date, with per-tenant overrides. A plan change is a new row
-- starting the day the old one ends; the invoice prorates each by day.
CREATE TABLE contracts (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid NOT NULL,
    plan_id      uuid NOT NULL REFERENCES plans (id),
    starts_on    date NOT NULL,
    ends_on      date,                       -- exclusive; NULL = open-ended
    -- {"system_fee_yen": 40000, "prices": {"sms_segment": {"unit_price_yen": 9}}}
    overrides    jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- {"call_center_seat": 3, "multilingual": 1}
    addons       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (ends_on IS NULL OR ends_on > starts_on)
);

-- Every billable thing, once: the idempotency key makes a retried or duplicated event count once.
CREATE TABLE usage_events (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    idempotency_key  text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('sms_segment', 'email', 'booking', 'resident', 'export')),
    quantity         bigint NOT NULL CHECK (quantity >= 0),
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX usage_events_by_month ON usage_events (tenant_id, kind, occurred_at);

-- Gapless invoice numbers per issuer: a counter row updated in the finalising transaction.
CREATE TABLE invoice_counters (
    issuer  text PRIMARY KEY,
    last    bigint NOT NULL DEFAULT 0
);

CREATE TABLE invoices (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid NOT NULL,
    month            date NOT NULL CHECK (extract(day FROM month) = 1),
    kind             text NOT NULL DEFAULT 'invoice' CHECK (kind IN ('invoice', 'credit_note')),
    status           text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'final')),
    number           text,                   -- set when final
    corrects         uuid,                   -- a credit note names the invoice it corrects
    subtotal_yen     bigint NOT NULL,
    tax_yen          bigint NOT NULL,
    total_yen        bigint NOT NULL,
    grace_until      timestamptz NOT NULL,   -- editable draft until then
    created_at       timestamptz NOT NULL DEFAULT now(),
    finalized_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, number),
    FOREIGN KEY (tenant_id, corrects) REFERENCES invoices (tenant_id, id),
    CHECK ((status = 'final') = (number IS NOT NULL)),
    CHECK (total_yen = subtotal_yen + tax_yen)
);
-- one (draft or final) invoice per tenant and month; credit notes are extra
CREATE UNIQUE INDEX invoices_one_per_month ON invoices (tenant_id, month) WHERE kind = 'invoice';

CREATE TABLE invoice_lines (
    tenant_id       uuid NOT NULL,
    invoice_id      uuid NOT NULL,
    position        int NOT NULL,
    description     text NOT NULL,
    quantity        bigint NOT NULL,
    unit_price_yen  bigint NOT NULL,
    amount_yen      bigint NOT NULL,
    PRIMARY KEY (tenant_id, invoice_id, position),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id) ON DELETE CASCADE
);

-- A final invoice is immutable: corrections are credit notes. Enforced here so that no page, API
-- or hand-written SQL of the application can change one.
CREATE FUNCTION refuse_final_invoice_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status = 'final' THEN
        RAISE EXCEPTION 'invoice % is final and cannot be changed; issue a credit note', OLD.number
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_final_immutable BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION refuse_final_invoice_change();

CREATE FUNCTION refuse_final_invoice_line_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    SELECT status INTO st FROM invoices
     WHERE tenant_id = COALESCE(NEW.tenant_id, OLD.tenant_id)
       AND id = COALESCE(NEW.invoice_id, OLD.invoice_id);
    IF st = 'final' THEN
        RAISE EXCEPTION 'lines of a final invoice cannot be changed; issue a credit note'
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoice_lines_final_immutable BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION refuse_final_invoice_line_change();

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['contracts', 'usage_events', 'invoices', 'invoice_lines'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                 USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)
                 WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;
