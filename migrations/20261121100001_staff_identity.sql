-- Staff identity, authorization policy, audit log and the city configuration that booking needs
-- beyond the foundation's tables (capacity schedules, integrator API keys).
--
-- Cross-tenant tables (no tenant_id, no RLS), each deliberately so (docs/architecture.md, Identity):
--  * staff_accounts / staff_sessions / staff_tokens: a person logs in *before* the tenant is known,
--    and one person may work for several cities (or be the platform operator). Only the e-mail,
--    a display name and the password hash live here; what a person may do in a city lives in
--    authz_rules, keyed by tenant.
--  * login_failures: throttling by IP address has to count across tenants.
--  * authz_rules: the casbin policy. One enforcer decides for every tenant ("RBAC with domains",
--    the domain is the tenant id), so it must load every tenant's rules at once.
--  * platform_audit_log: what the platform operator does outside any tenant (logins, onboarding).

CREATE TABLE staff_accounts (
    id             uuid PRIMARY KEY,
    -- stored lower-case so that lookups and the unique key ignore case
    email          text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    display_name   text NOT NULL DEFAULT '',
    -- argon2id PHC string; NULL until the invitation is accepted
    password_hash  text CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Server-side sessions. Only a SHA-256 of the cookie value is stored, so a read of this table does
-- not let anyone log in. Idle and absolute expiry are checked against the two timestamps.
CREATE TABLE staff_sessions (
    token_hash    bytea PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES staff_accounts (id),
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_sessions_account ON staff_sessions (account_id);

-- Single-use links: invitations (first password) and password resets. Hashed like sessions.
CREATE TABLE staff_tokens (
    token_hash  bytea PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES staff_accounts (id),
    purpose     text NOT NULL CHECK (purpose IN ('invitation', 'password_reset')),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- One row per failed login, keyed 'account:<email>' and 'ip:<address>'; a sliding window over
-- these rows is the throttle. Old rows are pruned on the next failure for the same key.
CREATE TABLE login_failures (
    key  text NOT NULL,
    at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);

-- casbin rules in casbin's own shape (ptype, v0…v5). Empty strings rather than NULLs, so the unique
-- key also catches duplicates of shorter rules.
CREATE TABLE authz_rules (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ptype  text NOT NULL,
    v0     text NOT NULL DEFAULT '',
    v1     text NOT NULL DEFAULT '',
    v2     text NOT NULL DEFAULT '',
    v3     text NOT NULL DEFAULT '',
    v4     text NOT NULL DEFAULT '',
    v5     text NOT NULL DEFAULT '',
    UNIQUE (ptype, v0, v1, v2, v3, v4, v5)
);

-- What each role may do, in every tenant where a person holds it (p = role, domain, object, action;
-- domain '*' = any tenant the grouping rule grants the role in). venue_staff and hospital_staff get
-- no role-wide rule: each assignment to a venue adds a personal rule for that venue only.
INSERT INTO authz_rules (ptype, v0, v1, v2, v3) VALUES
    ('p', 'platform_operator', '*', '*', '*'),
    ('p', 'city_admin', '*', '*', '*'),
    ('p', 'city_staff', '*', 'vaccines', 'read'),
    ('p', 'city_staff', '*', 'venues', 'read'),
    ('p', 'city_staff', '*', 'venue/*', '*'),
    ('p', 'city_staff', '*', 'residents', 'read'),
    ('p', 'city_staff', '*', 'imports', 'write'),
    ('p', 'call_center', '*', 'venues', 'read'),
    ('p', 'call_center', '*', 'venue/*', 'read'),
    ('p', 'call_center', '*', 'residents', 'read'),
    ('p', 'auditor', '*', '*', 'read');

CREATE TABLE platform_audit_log (
    id      uuid PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    object  text NOT NULL DEFAULT '',
    detail  jsonb NOT NULL DEFAULT '{}',
    ip      text
);

-- Tenant-owned from here on (rules in 20261121000002_city_setup.sql).

-- The tenant's audit trail: who (actor), when, what (action + object + detail), from where (ip).
-- Append-only: the runtime role is denied UPDATE and DELETE (src/db.rs, ensure_runtime_role).
CREATE TABLE audit_log (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL,
    object     text NOT NULL DEFAULT '',
    detail     jsonb NOT NULL DEFAULT '{}',
    ip         text,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_at ON audit_log (tenant_id, at DESC);

-- A capacity schedule: on these ISO weekdays (1 = Monday) between start and end time, slots of
-- slot_minutes with capacity each, from valid_from to valid_until, except on closed_dates.
-- Slots are generated from it (platform/src/schedules.rs) and can be edited one by one afterwards.
CREATE TABLE schedules (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,
    venue_id      uuid NOT NULL,
    weekdays      int[] NOT NULL CHECK (cardinality(weekdays) > 0 AND weekdays <@ ARRAY[1,2,3,4,5,6,7]),
    start_time    time NOT NULL,
    end_time      time NOT NULL CHECK (end_time > start_time),
    slot_minutes  int NOT NULL CHECK (slot_minutes BETWEEN 5 AND 240),
    capacity      int NOT NULL CHECK (capacity BETWEEN 1 AND 10000),
    valid_from    date NOT NULL,
    valid_until   date NOT NULL CHECK (valid_until >= valid_from),
    closed_dates  date[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, venue_id) REFERENCES venues (tenant_id, id)
);
CREATE INDEX schedules_venue ON schedules (tenant_id, venue_id);

-- Integrator API keys. The key is shown once; only its SHA-256 is stored. The key names its tenant
-- (yk_<tenant>_<secret>), so the lookup runs inside that tenant's scope like everything else.
CREATE TABLE api_keys (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,
    name          text NOT NULL CHECK (length(btrim(name)) > 0),
    key_hash      bytea NOT NULL,
    scopes        text[] NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key_hash)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_log', 'schedules', 'api_keys'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                 USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)
                 WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;
