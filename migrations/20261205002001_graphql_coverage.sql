-- Issue 17, GraphQL coverage (docs/api.md):
--
-- 1. `resident_imports`: one row per eligible-resident import (admin UI upload or GraphQL
--    `startResidentImport`), so an import can be looked up afterwards by id with its outcome and
--    its per-row errors (line, column, reason). Written by platform::residents::import::run in
--    the import's own transaction (a refused import writes only this row).
-- 2. The guard object `records` (a city's vaccination records, city-wide: personal and health
--    data, audited per page): city staff read it; city admins, auditors (read) and the operator
--    hold wildcard rules already. API keys get it through the scope `records:read`.
-- a new table and a few rules: quick, but never wait on a lock for long (docs/operations.md)
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE resident_imports (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid NOT NULL,
    -- completed (rows written), rejected (invalid rows and nothing written)
    status           text NOT NULL CHECK (status IN ('completed', 'rejected')),
    source           text NOT NULL,
    encoding         text NOT NULL,
    import_valid_rows boolean NOT NULL,
    rows_total       bigint NOT NULL,
    rows_done        bigint NOT NULL,
    inserted         bigint NOT NULL,
    updated          bigint NOT NULL,
    unchanged        bigint NOT NULL,
    skipped_invalid  bigint NOT NULL,
    -- [{ "line": 3, "column": "birth_date", "reason": "…" }, …]
    errors           jsonb NOT NULL DEFAULT '[]',
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

ALTER TABLE resident_imports ENABLE ROW LEVEL SECURITY;
ALTER TABLE resident_imports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON resident_imports
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

INSERT INTO authz_rules (ptype, v0, v1, v2, v3) VALUES
    ('p', 'city_staff', '*', 'records', 'read');
