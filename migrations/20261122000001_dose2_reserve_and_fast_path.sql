-- Capacity held for second doses (issue 6) and the booking fast path (issue 4, acceptance 6).
--
-- 1. Held seats. A city may hold a share of every slot for dose-2 bookings until a release moment
--    (booking_settings.dose2_reserve_percent / dose2_reserve_until), so that people who had dose 1
--    find a seat for dose 2 at the right interval, e.g. when booked on the spot at check-out.
--    slots.booked_dose2 counts the live dose-2 seats of a slot, kept by the same statements that
--    keep slots.booked. While the hold is on, doses other than 2 may use at most
--    capacity - floor(capacity * percent / 100) seats; dose 2 may use every seat.
ALTER TABLE booking_settings
    ADD COLUMN dose2_reserve_percent int NOT NULL DEFAULT 0
        CHECK (dose2_reserve_percent BETWEEN 0 AND 100),
    ADD COLUMN dose2_reserve_until timestamptz;

ALTER TABLE slots
    ADD COLUMN booked_dose2 int NOT NULL DEFAULT 0,
    ADD CONSTRAINT slots_booked_dose2_check CHECK (booked_dose2 >= 0 AND booked_dose2 <= booked);

-- Existing live dose-2 bookings (row-level security applies to a non-superuser owner: run this
-- backfill as a superuser on a database that already holds bookings).
UPDATE slots s SET booked_dose2 = d.n
  FROM (SELECT tenant_id, slot_id, count(*)::int AS n FROM bookings
         WHERE dose = 2 AND status = 'booked' GROUP BY tenant_id, slot_id) d
 WHERE s.tenant_id = d.tenant_id AND s.id = d.slot_id;

-- Seats a slot holds for dose 2 right now under the city's policy (0 when no hold is on).
CREATE FUNCTION dose2_held_seats(p_capacity int, p_percent int, p_until timestamptz)
RETURNS int LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_until IS NOT NULL AND p_until > now() AND p_percent IS NOT NULL
                THEN p_capacity * p_percent / 100 ELSE 0 END
$$;

-- 2. The booking fast path: the commonest booking — one person, dose 1, one slot — in ONE round
--    trip to PostgreSQL instead of about fifteen.
-- `book_first_dose` runs as the caller (SECURITY INVOKER), so row-level security applies exactly as
-- for the statements in platform/src/booking.rs: it first sets app.tenant_id for its own
-- transaction, and every table it touches is filtered by the tenant_isolation policy.
--
-- Called as a single statement outside an explicit transaction, so the statement's implicit
-- transaction holds everything: nothing is written unless the booking, its notification job and
-- its idempotency key all are. The invariants (DESIGN.md, Booking invariants) hold as in the slow
-- path:
--  * the seat is taken by one conditional UPDATE (booked + 1 <= capacity, deadline, opening), no
--    read-then-write; on a refusal nothing has been written yet and the function says why;
--  * one live booking per resident and dose: the unique index raises; the caller then runs the
--    general path, which answers "already booked" (or replays, see below);
--  * idempotency: a committed key answers 'replay' with the first result. A concurrent duplicate
--    with the same key waits on the first one's seat row and then hits the unique index (same
--    resident, same dose) or the key's primary key; the caller falls back to the general path,
--    which finds the committed key and replays it;
--  * the notification job is inserted in the same transaction as the booking.
-- Payload and job key are built by the caller (platform::jobs owns their format).
CREATE FUNCTION book_first_dose(
    p_tenant       uuid,
    p_token_hash   bytea,   -- a resident session's token hash, or NULL when p_resident is given
    p_resident     uuid,
    p_slot         uuid,
    p_key_prefix   text,    -- NULL: p_key is the whole idempotency key; else prefix || resident || ':' || p_key
    p_key          text,
    p_booking      uuid,
    p_group        uuid,
    p_job          uuid,
    p_job_key      text,
    p_payload      jsonb
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

    -- THE seat statement (same conditions as booking.rs take_seats).
    UPDATE slots s SET booked = s.booked + 1
      FROM venues v LEFT JOIN booking_settings bs ON bs.tenant_id = v.tenant_id
     WHERE s.tenant_id = p_tenant AND s.id = p_slot AND v.tenant_id = s.tenant_id AND v.id = s.venue_id
       AND s.booked + 1 <= s.capacity
       AND s.booked - s.booked_dose2 + 1
           <= s.capacity - dose2_held_seats(s.capacity, bs.dose2_reserve_percent, bs.dose2_reserve_until)
       AND s.starts_at - make_interval(hours => v.booking_deadline_hours) > now()
       AND (v.booking_opens_at IS NULL OR v.booking_opens_at <= now())
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
    INSERT INTO notification_jobs (tenant_id, id, queue, idempotency_key, payload)
    VALUES (p_tenant, p_job, 'notifications', p_job_key, p_payload);
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
