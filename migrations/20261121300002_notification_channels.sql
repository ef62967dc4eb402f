-- How each city reaches its residents: one configured channel per kind (sms, email, webhook).
-- Non-secret settings are plain JSON (shown in the admin UI); secret fields (passwords, tokens)
-- are encrypted with the server's key (notifications.encryption_key) as nonce || ciphertext and are
-- never shown again in full.
CREATE TABLE notification_channels (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    kind        text NOT NULL CHECK (kind IN ('sms', 'email', 'webhook')),
    plugin      text NOT NULL,
    settings    jsonb NOT NULL,
    secrets     bytea NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind)
);

-- Per-city messaging policy: SMS budget (segments per month; NULL = unlimited) and reminder lead.
CREATE TABLE notification_settings (
    tenant_id                  uuid NOT NULL REFERENCES tenants (id),
    sms_monthly_budget         bigint CHECK (sms_monthly_budget IS NULL OR sms_monthly_budget >= 0),
    reminder_days_before       int NOT NULL DEFAULT 2 CHECK (reminder_days_before BETWEEN 1 AND 14),
    PRIMARY KEY (tenant_id)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['notification_channels', 'notification_settings'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                 USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)
                 WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;
