-- Issue 17, a plan's hard caps on e-mail, API calls and exports (docs/billing.md, "Hard caps"):
-- each cap is enforced where the thing is used (platform::caps); its 80 % / 100 % alerts are
-- recorded here, one row per city, kind, month and level, inserted in the transaction that queues
-- the alert e-mails to the city's admins, so each alert goes out once however many processes run.
-- (SMS keeps `sms_budget_alerts`: one row per month and level for the tighter of the city's own SMS
-- budget and the plan's SMS cap.)

-- every migration from here on waits at most this long for a lock (docs/operations.md)
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE plan_cap_alerts (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    kind        text NOT NULL CHECK (kind IN ('email', 'api_call', 'export')),
    -- first day of the month in the city's time zone
    month       date NOT NULL,
    level       bigint NOT NULL CHECK (level IN (80, 100)),
    used        bigint NOT NULL,
    cap         bigint NOT NULL,
    recipients  bigint NOT NULL DEFAULT 0,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, month, level)
);

ALTER TABLE plan_cap_alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE plan_cap_alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON plan_cap_alerts
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
