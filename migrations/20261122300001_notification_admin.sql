-- Issue 5, the city's notification pages: per-tenant template overrides, the record of SMS budget
-- alerts (so each level is e-mailed once per month), and who may see what.

-- A city's own wording for one event in one language; without a row the built-in default
-- (platform::templates::default_template) is used, so "reset to default" deletes the row.
-- Validated before it is stored (only the event's placeholders), never executed.
CREATE TABLE notification_templates (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    event       text NOT NULL CHECK (event IN ('login_code', 'booking_confirmed', 'booking_changed',
                                               'booking_cancelled', 'reminder')),
    lang        text NOT NULL CHECK (lang IN ('ja', 'en', 'zh-Hans', 'pt')),
    subject     text NOT NULL,
    body        text NOT NULL CHECK (body <> ''),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, event, lang)
);

-- One row per city, month (first day, in the city's time zone) and level (80 = alert, 100 = cap
-- reached): inserted by the worker that first sees the level, in the transaction that queues the
-- alert e-mails to the city admins, so each alert goes out once however many workers run.
CREATE TABLE sms_budget_alerts (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    month       date NOT NULL,
    level       int NOT NULL CHECK (level IN (80, 100)),
    used        bigint NOT NULL,
    budget      bigint NOT NULL,
    recipients  int NOT NULL DEFAULT 0,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, month, level)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['notification_templates', 'sms_budget_alerts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                 USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)
                 WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;

-- The delivery log's filters (event = payload kind; the per-resident view joins bookings / codes).
CREATE INDEX notification_jobs_by_created ON notification_jobs (tenant_id, created_at DESC, id DESC);

-- Objects: 'notifications' (channels, templates, SMS budget) stays with city_admin (and the
-- auditor's and operator's wildcards); 'delivery_log' may also be read by city staff. Venue and
-- hospital staff and the call centre get neither.
INSERT INTO authz_rules (ptype, v0, v1, v2, v3) VALUES
    ('p', 'city_staff', '*', 'delivery_log', 'read');
