-- The job runtime on apalis (issue 16, docs/architecture.md "Jobs"). apalis-postgres's own
-- migrations (schema `apalis`, tables `apalis.jobs` / `apalis.workers`, ledger
-- `apalis._sqlx_migrations`) are applied by `yoyaku migrate` just before this set.
--
-- 1. No NOTIFY per task. apalis's trigger `notify_workers` calls pg_notify for every inserted
--    task; a transaction that notified takes a database-wide lock while it commits, so every
--    booking's commit would queue behind the previous one's during a rush. Workers poll instead
--    (`jobs.poll_ms`), with apalis's own `apalis.get_jobs`.
DROP TRIGGER IF EXISTS notify_workers ON apalis.jobs;

-- 2. The booking statements queue the confirmation in apalis.jobs, in the booking's own
--    transaction and statement, the way apalis's sink (queries/task/sink.sql) writes a task: one
--    INSERT per booking, as before into notification_jobs. The delivery log row is written by the
--    worker when it takes the task. Queue `notify`, priority 5 (confirmations before reminders),
--    apalis's default of 25 attempts; the key `<tenant>/booking-confirmed:<booking>` is unique per
--    queue, so a duplicate aborts the statement as before.
DROP FUNCTION book_first_dose(uuid, bytea, uuid, uuid, text, text, uuid, uuid, uuid, text, jsonb);
DROP FUNCTION book_first_doses(uuid, bytea[], uuid[], uuid[], text[], text[], uuid[], uuid[], text[], jsonb[]);

CREATE FUNCTION book_first_dose(
    p_tenant       uuid,
    p_token_hash   bytea,   -- a resident session's token hash, or NULL when p_resident is given
    p_resident     uuid,
    p_slot         uuid,
    p_key_prefix   text,    -- NULL: p_key is the whole idempotency key; else prefix || resident || ':' || p_key
    p_key          text,
    p_booking      uuid,
    p_group        uuid,
    p_job          text,    -- the task's id (a ULID, as apalis's sink makes them)
    p_job_key      text,    -- <tenant>/<key>: the task's idempotency key
    p_payload      bytea    -- the task's arguments (JSON)
)
RETURNS TABLE (
    out_outcome       text,  -- booked | replay | key_reused | unauthenticated | not_found | deadline | not_open | full
    out_resident      uuid,
    out_result        jsonb, -- booking ids (booked, replay)
    out_slot          uuid,
    out_venue         uuid,
    out_venue_name    text,
    out_vaccine_name  text,
    out_starts_at     timestamptz,
    out_ends_at       timestamptz,
    out_change_until  timestamptz
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_resident  uuid := p_resident;
    v_key       text;
    v_owner     uuid;
    v_result    jsonb;
    v_vaccine   uuid;
    v_known     boolean;
    v_late      boolean;
    v_early     boolean;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);

    IF v_resident IS NULL THEN
        SELECT s.resident_id INTO v_resident FROM resident_sessions s
         WHERE s.tenant_id = p_tenant AND s.token_hash = p_token_hash AND s.expires_at > now();
        IF v_resident IS NULL THEN
            RETURN QUERY SELECT 'unauthenticated'::text, NULL::uuid, NULL::jsonb, NULL::uuid, NULL::uuid,
                                NULL::text, NULL::text, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz;
            RETURN;
        END IF;
    END IF;

    v_key := CASE WHEN p_key_prefix IS NULL THEN p_key
                  ELSE p_key_prefix || v_resident::text || ':' || p_key END;
    SELECT k.resident_id, k.result INTO v_owner, v_result FROM idempotency_keys k
     WHERE k.tenant_id = p_tenant AND k.key = v_key;
    IF v_owner IS NOT NULL THEN
        RETURN QUERY SELECT CASE WHEN v_owner = v_resident THEN 'replay' ELSE 'key_reused' END,
                            v_resident, v_result, NULL::uuid, NULL::uuid, NULL::text, NULL::text,
                            NULL::timestamptz, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;

    -- THE seat statement: one seat of dose 1, by the one seat predicate.
    UPDATE slots s SET booked = s.booked + 1
      FROM venues v LEFT JOIN booking_settings bs ON bs.tenant_id = v.tenant_id
     WHERE s.tenant_id = p_tenant AND s.id = p_slot AND v.tenant_id = s.tenant_id AND v.id = s.venue_id
       AND seat_available(s.booked, s.booked_dose2, s.capacity, 1, false,
                          bs.dose2_reserve_percent, bs.dose2_reserve_until, s.starts_at, s.ends_at,
                          v.booking_deadline_hours, v.booking_opens_at, false)
    RETURNING v.vaccine_id INTO v_vaccine;
    IF v_vaccine IS NULL THEN
        -- Diagnosis only; nothing has been written.
        SELECT true, s.starts_at - make_interval(hours => v.booking_deadline_hours) <= now(),
               COALESCE(v.booking_opens_at > now(), false)
          INTO v_known, v_late, v_early
          FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id
         WHERE s.tenant_id = p_tenant AND s.id = p_slot;
        RETURN QUERY SELECT CASE WHEN v_known IS NULL THEN 'not_found'
                                 WHEN v_late THEN 'deadline'
                                 WHEN v_early THEN 'not_open'
                                 ELSE 'full' END,
                            v_resident, NULL::jsonb, NULL::uuid, NULL::uuid, NULL::text, NULL::text,
                            NULL::timestamptz, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;

    INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, booked_by, group_id)
    VALUES (p_tenant, p_booking, v_resident, p_slot, v_vaccine, 1, v_resident, p_group);
    INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority,
                             idempotency_key)
    VALUES (p_job, 'notify', p_payload, 'Pending', 0, 25, now(), 5, p_job_key);
    INSERT INTO idempotency_keys (tenant_id, key, resident_id, result)
    VALUES (p_tenant, v_key, v_resident, jsonb_build_array(p_booking));

    RETURN QUERY
    SELECT 'booked'::text, v_resident, jsonb_build_array(p_booking), s.id, s.venue_id, v.name, x.name,
           s.starts_at, s.ends_at, s.starts_at - make_interval(days => v.cancel_cutoff_days)
      FROM slots s
      JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id
      JOIN vaccines x ON x.tenant_id = v.tenant_id AND x.id = v_vaccine
     WHERE s.tenant_id = p_tenant AND s.id = p_slot;
END
$$;

-- The batch (20261122400001_booking_batches.sql), unchanged but for its seat statement.
CREATE FUNCTION book_first_doses(
    p_tenant      uuid,
    p_token_hash  bytea[],  -- per request: a resident session's token hash, or NULL with p_resident
    p_resident    uuid[],
    p_slot        uuid[],
    p_key_prefix  text[],   -- per request as in book_first_dose
    p_key         text[],
    p_booking     uuid[],   -- the booking's id, also its group id
    p_job         text[],   -- per request as in book_first_dose
    p_job_key     text[],
    p_payload     bytea[]
)
RETURNS TABLE (
    out_item          int,   -- 1-based position in the arrays
    out_outcome       text,  -- booked | replay | key_reused | unauthenticated | fallback
    out_resident      uuid,
    out_result        jsonb,
    out_slot          uuid,
    out_venue         uuid,
    out_venue_name    text,
    out_vaccine_name  text,
    out_starts_at     timestamptz,
    out_ends_at       timestamptz,
    out_change_until  timestamptz
)
LANGUAGE plpgsql
-- Every lookup here is by key, and must stay so however the tables looked when the plan was
-- made: when booking opens, bookings and keys are nearly empty (a sequential scan looks cheapest)
-- and then grow by thousands a second while the cached plan stays.
SET enable_seqscan = off
AS $$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    RETURN QUERY
    WITH req AS (
        SELECT i.n::int AS n, i.token_hash, i.resident AS given, i.slot, i.prefix, i.key, i.booking,
               i.job, i.job_key, i.payload
          FROM unnest(p_token_hash, p_resident, p_slot, p_key_prefix, p_key, p_booking, p_job,
                      p_job_key, p_payload)
               WITH ORDINALITY AS i(token_hash, resident, slot, prefix, key, booking, job, job_key,
                                    payload, n)
    ), who AS (
        SELECT r.*, COALESCE(r.given, s.resident_id) AS resident
          FROM req r
          LEFT JOIN resident_sessions s
                 ON r.given IS NULL AND s.tenant_id = p_tenant AND s.token_hash = r.token_hash
                AND s.expires_at > now()
    ), keyed AS MATERIALIZED (
        SELECT w.*, CASE WHEN w.prefix IS NULL THEN w.key
                         ELSE w.prefix || w.resident::text || ':' || w.key END AS full_key
          FROM who w
    ), judged AS (
        -- the key and the live booking are looked up per request (LATERAL … LIMIT 1: an index
        -- probe each), never by hashing the whole table, which grows all through a rush
        SELECT k.*, ik.resident_id AS key_owner, ik.result AS key_result,
               k.resident IS NOT NULL AND ik.found IS NULL AND live.found IS NULL
               AND row_number() OVER (PARTITION BY k.resident ORDER BY k.n) = 1 AS eligible
          FROM keyed k
          LEFT JOIN LATERAL (SELECT true AS found, i.resident_id, i.result FROM idempotency_keys i
                              WHERE i.tenant_id = p_tenant AND i.key = k.full_key LIMIT 1) ik ON true
          LEFT JOIN LATERAL (SELECT true AS found FROM bookings b
                              WHERE b.tenant_id = p_tenant AND b.resident_id = k.resident
                                AND b.dose = 1 AND b.status = 'booked' LIMIT 1) live ON true
    ), wanted AS (
        SELECT j.slot, count(*)::int AS seats FROM judged j WHERE j.eligible
         GROUP BY j.slot ORDER BY j.slot
    ), taken AS (
        -- THE seat statement: n seats of dose 1 at once, by the one seat predicate
        UPDATE slots s SET booked = s.booked + w.seats
          FROM wanted w, venues v
          JOIN vaccines x ON x.tenant_id = v.tenant_id AND x.id = v.vaccine_id
          LEFT JOIN booking_settings bs ON bs.tenant_id = v.tenant_id
         WHERE s.tenant_id = p_tenant AND s.id = w.slot
           AND v.tenant_id = s.tenant_id AND v.id = s.venue_id
           AND seat_available(s.booked, s.booked_dose2, s.capacity, w.seats, false,
                              bs.dose2_reserve_percent, bs.dose2_reserve_until, s.starts_at,
                              s.ends_at, v.booking_deadline_hours, v.booking_opens_at, false)
        RETURNING s.id AS slot, v.vaccine_id, s.venue_id, v.name AS venue_name, x.name AS vaccine_name,
                  s.starts_at, s.ends_at,
                  s.starts_at - make_interval(days => v.cancel_cutoff_days) AS change_until
    ), booked AS (
        SELECT j.n, j.resident, j.booking, j.job, j.job_key, j.payload, j.full_key, t.*
          FROM judged j JOIN taken t ON t.slot = j.slot
         WHERE j.eligible
    ), b AS (
        INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, booked_by, group_id)
        SELECT p_tenant, bk.booking, bk.resident, bk.slot, bk.vaccine_id, 1, bk.resident, bk.booking
          FROM booked bk
    ), jb AS (
        INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority,
                                 idempotency_key)
        SELECT bk.job, 'notify', bk.payload, 'Pending', 0, 25, now(), 5, bk.job_key FROM booked bk
    ), kk AS (
        INSERT INTO idempotency_keys (tenant_id, key, resident_id, result)
        SELECT p_tenant, bk.full_key, bk.resident, jsonb_build_array(bk.booking) FROM booked bk
    )
    SELECT j.n,
           CASE WHEN j.resident IS NULL THEN 'unauthenticated'
                WHEN j.key_owner IS NOT NULL AND j.key_owner = j.resident THEN 'replay'
                WHEN j.key_owner IS NOT NULL THEN 'key_reused'
                WHEN bk.n IS NOT NULL THEN 'booked'
                ELSE 'fallback' END,
           j.resident,
           CASE WHEN bk.n IS NOT NULL THEN jsonb_build_array(bk.booking) ELSE j.key_result END,
           bk.slot, bk.venue_id, bk.venue_name, bk.vaccine_name, bk.starts_at, bk.ends_at,
           bk.change_until
      FROM judged j
      LEFT JOIN booked bk ON bk.n = j.n
     ORDER BY j.n;
END
$$;
