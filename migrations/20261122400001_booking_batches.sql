-- Booking batches (issue 4, acceptance 6): first-dose bookings that arrive together are decided by
-- one statement instead of one each (docs/architecture.md, "Booking batches").
--
-- `book_first_doses` is `book_first_dose` (20261122000001) for many requests of ONE tenant at
-- once, as one statement under row-level security, with the same invariants:
--  * seats are taken by one conditional UPDATE per slot, `booked + n <= capacity` (and the dose-2
--    hold, deadline and opening), never read-then-write; a slot whose n seats are not all free
--    takes none, and its requests are answered 'fallback';
--  * a request the batch cannot decide exactly is answered 'fallback' and nothing is written for
--    it: the caller then runs it alone through `book_first_dose` (which answers full / deadline /
--    not open / already booked precisely). That covers: a second request of the same resident in
--    the batch, a resident who already holds a live dose-1 booking, and a slot that could not
--    give all its requested seats;
--  * a committed key answers 'replay' / 'key_reused' as in the single function;
--  * booking row, notification job and idempotency key are written by the same statement as the
--    seats, so they commit together or not at all. A concurrent duplicate that slips past the
--    checks (same resident or key in another transaction) makes the statement fail as a whole;
--    the caller then runs every request of the batch alone.
-- Slots are asked for in slot order, so two batches usually lock common slots in the same order;
-- should they deadlock all the same, the losing statement fails as a whole and its requests are
-- decided alone (as above).

-- Bookings of a slot are found by slot first. Led by tenant_id, this index also matched any
-- lookup "bookings of this tenant where …", and the planner, with statistics taken while bookings
-- was still empty (as it is when booking first opens), picked it for the "does this resident
-- already hold a live dose 1" probe below — reading every booking of the city per request.
-- Led by slot_id, it can only serve lookups by slot; the per-resident probe then takes
-- bookings_one_live_per_dose whatever the statistics say. (Every query names the tenant, through
-- row-level security at least, so tenant_id stays in the key.)
DROP INDEX bookings_by_slot;
CREATE INDEX bookings_by_slot ON bookings (slot_id, tenant_id) WHERE status = 'booked';

CREATE FUNCTION book_first_doses(
    p_tenant      uuid,
    p_token_hash  bytea[],  -- per request: a resident session's token hash, or NULL with p_resident
    p_resident    uuid[],
    p_slot        uuid[],
    p_key_prefix  text[],   -- per request as in book_first_dose
    p_key         text[],
    p_booking     uuid[],   -- the booking's id, also its group id
    p_job         uuid[],
    p_job_key     text[],
    p_payload     jsonb[]
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
        -- THE seat statement (the conditions of booking.rs take_seats, for n seats at once)
        UPDATE slots s SET booked = s.booked + w.seats
          FROM wanted w, venues v
          JOIN vaccines x ON x.tenant_id = v.tenant_id AND x.id = v.vaccine_id
          LEFT JOIN booking_settings bs ON bs.tenant_id = v.tenant_id
         WHERE s.tenant_id = p_tenant AND s.id = w.slot
           AND v.tenant_id = s.tenant_id AND v.id = s.venue_id
           AND s.booked + w.seats <= s.capacity
           AND s.booked - s.booked_dose2 + w.seats
               <= s.capacity - dose2_held_seats(s.capacity, bs.dose2_reserve_percent, bs.dose2_reserve_until)
           AND s.starts_at - make_interval(hours => v.booking_deadline_hours) > now()
           AND (v.booking_opens_at IS NULL OR v.booking_opens_at <= now())
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
        INSERT INTO notification_jobs (tenant_id, id, queue, idempotency_key, payload)
        SELECT p_tenant, bk.job, 'notifications', bk.job_key, bk.payload FROM booked bk
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
