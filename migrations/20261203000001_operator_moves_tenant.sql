-- Issue 19: the platform operator exports, deletes (offboarding) and imports whole cities
-- (platform/src/operator/, docs/operations.md "Moving and removing a city").
--
-- A final invoice stays immutable for the application. Only a transaction of a role that owns the
-- invoice tables (the owning role of `database.url`, never the runtime role, which owns nothing)
-- and that has set `yoyaku.operator_tenant` to the invoice's city may delete the invoice or its
-- lines (offboarding) or insert lines under a final invoice (re-importing an archive).

-- every migration from here on waits at most this long for a lock (docs/operations.md)
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE FUNCTION operator_moves_tenant(tenant uuid, rel oid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(current_setting('yoyaku.operator_tenant', true) = tenant::text, false)
       AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = rel), 'MEMBER')
$$;

CREATE OR REPLACE FUNCTION refuse_final_invoice_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status = 'final'
       AND NOT (TG_OP = 'DELETE' AND operator_moves_tenant(OLD.tenant_id, TG_RELID)) THEN
        RAISE EXCEPTION 'invoice % is final and cannot be changed; issue a credit note', OLD.number
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION refuse_final_invoice_line_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    SELECT status INTO st FROM invoices
     WHERE tenant_id = COALESCE(NEW.tenant_id, OLD.tenant_id)
       AND id = COALESCE(NEW.invoice_id, OLD.invoice_id);
    IF st = 'final'
       AND NOT (TG_OP <> 'UPDATE'
                AND operator_moves_tenant(COALESCE(NEW.tenant_id, OLD.tenant_id), TG_RELID)) THEN
        RAISE EXCEPTION 'lines of a final invoice cannot be changed; issue a credit note'
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$;
