-- Issue 18 (docs/benchmarks.md, "Where the other 40 % went"): less work per booking row, same
-- guarantees. Each first-dose booking writes a `bookings` row, an `apalis.jobs` task and an
-- `idempotency_keys` row; every index and foreign key on them is paid per booking in the rush.

-- every migration from here on waits at most this long for a lock (docs/operations.md)
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- 1. apalis-postgres's first migration made `unique_job_id` (a second unique index on `id`, beside
--    the primary key) and `LIdx` (on `lock_by`, which its later "streamline_indices" migration
--    indexes again as `idx_apalis_jobs_lock_by`); the later migration kept both. Two index entries
--    per task for nothing: the primary key and `idx_apalis_jobs_lock_by` serve every query of
--    apalis's (queries/*.sql) and ours. `IF EXISTS`: they are apalis's, not ours to be sure of.
--    A short lock on a table that is a queue (small); not CONCURRENTLY, one transaction per file.
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS apalis.unique_job_id;
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS apalis.lidx;
-- The same first migration did it on `apalis.workers` too (a row per worker): `wtidx` and `lsidx`
-- beside the later `idx_apalis_workers_worker_type` and `idx_apalis_workers_last_seen`. (Its
-- `unique_worker_id` beside the primary key stays: apalis's foreign key `jobs.lock_by` was made on
-- it, and the table is written once per worker, not per booking.)
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS apalis.wtidx;
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS apalis.lsidx;

-- 2. `tenant_id REFERENCES tenants` on `bookings` and on `idempotency_keys` is implied: in both
--    `resident_id` is NOT NULL and `(tenant_id, resident_id) REFERENCES residents (tenant_id, id)`,
--    whose `tenant_id` references `tenants` — neither row can name a city that does not exist, nor
--    outlive it (its resident cannot go while it is there). One check per row less.
-- squawk-ignore ban-drop-constraint
ALTER TABLE bookings DROP CONSTRAINT bookings_tenant_id_fkey;
-- squawk-ignore ban-drop-constraint
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_tenant_id_fkey;
