-- Venue / hospital intake (issue 6): the day's list per venue, check-in → vaccinated → observed →
-- released (or no-show), the pre-vaccination questionnaire, vaccination records and side-effect
-- notes. platform/src/intake.rs is the only writer.
--
-- bookings.status keeps its meaning ('booked' / 'cancelled'): a vaccinated or no-show booking still
-- holds its seat, so slots.booked stays equal to the live booking rows. What happened at the venue
-- is kept here, in tables of its own.
--
-- Every table is tenant-owned (rules in 20261121000002_city_setup.sql): tenant_id leads every key,
-- index and foreign key; ENABLE + FORCE RLS with the tenant_isolation policy (DO block at the end).

-- Where a booking stands at the venue. No row = still 'booked' (nobody has touched it yet).
-- An undo moves the row one step back (an undone check-in goes back to 'booked').
CREATE TABLE booking_visits (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    booking_id  uuid NOT NULL,
    venue_id    uuid NOT NULL,
    status      text NOT NULL CHECK (status IN ('booked', 'checked_in', 'vaccinated', 'observed',
                                                'released', 'no_show')),
    -- every change bumps it: the live list compares it to see whether to redraw
    version     bigint NOT NULL DEFAULT 1,
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, booking_id),
    FOREIGN KEY (tenant_id, booking_id) REFERENCES bookings (tenant_id, id),
    FOREIGN KEY (tenant_id, venue_id) REFERENCES venues (tenant_id, id)
);
CREATE INDEX booking_visits_by_venue ON booking_visits (tenant_id, venue_id, updated_at);

-- Each step and each undo, in order (the audit log has them too, with the actor's address).
CREATE TABLE booking_visit_events (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid NOT NULL,
    booking_id   uuid NOT NULL,
    venue_id     uuid NOT NULL,
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    undo         boolean NOT NULL DEFAULT false,
    actor        text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, booking_id) REFERENCES bookings (tenant_id, id)
);
CREATE INDEX booking_visit_events_by_venue ON booking_visit_events (tenant_id, venue_id, at);

-- One vaccination given: the record other modules (exports, the vaccination pass) read. Exactly
-- one per booking; undoing "vaccinated" deletes the row (its content stays in the audit log), so a
-- reader never needs to filter voided rows.
CREATE TABLE vaccination_records (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid NOT NULL,
    booking_id     uuid NOT NULL,
    resident_id    uuid NOT NULL,
    venue_id       uuid NOT NULL,
    -- 1 = first dose, 2 = second dose, 3 = booster (the booking's)
    dose           smallint NOT NULL CHECK (dose BETWEEN 1 AND 3),
    vaccine_id     uuid NOT NULL,
    lot_number     text NOT NULL CHECK (length(lot_number) BETWEEN 1 AND 40),
    -- the amount injected, in millilitres
    dose_ml        numeric(4, 2) NOT NULL CHECK (dose_ml > 0 AND dose_ml <= 5),
    -- who gave it (a doctor's or nurse's name as written on the form)
    vaccinator     text NOT NULL CHECK (length(vaccinator) BETWEEN 1 AND 100),
    vaccinated_at  timestamptz NOT NULL,
    recorded_by    text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, booking_id),
    FOREIGN KEY (tenant_id, booking_id) REFERENCES bookings (tenant_id, id),
    FOREIGN KEY (tenant_id, resident_id) REFERENCES residents (tenant_id, id),
    FOREIGN KEY (tenant_id, venue_id) REFERENCES venues (tenant_id, id),
    FOREIGN KEY (tenant_id, vaccine_id) REFERENCES vaccines (tenant_id, id)
);
CREATE INDEX vaccination_records_by_resident ON vaccination_records (tenant_id, resident_id);
CREATE INDEX vaccination_records_by_time ON vaccination_records (tenant_id, vaccinated_at);

-- The pre-vaccination questionnaire: the latest answers per resident (from the resident site when
-- booking, or taken by staff at check-in). Staff see flags on the day's list.
CREATE TABLE health_questionnaires (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    resident_id  uuid NOT NULL,
    -- underlying conditions, free text ('' = none declared)
    conditions   text NOT NULL DEFAULT '' CHECK (length(conditions) <= 1000),
    -- allergies, free text ('' = none declared)
    allergies    text NOT NULL DEFAULT '' CHECK (length(allergies) <= 1000),
    -- ever had a severe allergic reaction (anaphylaxis)
    anaphylaxis  boolean NOT NULL DEFAULT false,
    -- 'resident' (resident site) or the staff member's e-mail
    answered_by  text NOT NULL,
    answered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, resident_id),
    FOREIGN KEY (tenant_id, resident_id) REFERENCES residents (tenant_id, id)
);

-- Side effects seen after a vaccination (structured), shown wherever the resident's next dose is.
CREATE TABLE side_effect_notes (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid NOT NULL,
    resident_id  uuid NOT NULL,
    -- the visit it was noted at
    booking_id   uuid NOT NULL,
    venue_id     uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('injection_site', 'fever', 'fatigue', 'headache',
                                               'allergic', 'anaphylaxis', 'vasovagal', 'other')),
    severity     text NOT NULL CHECK (severity IN ('mild', 'moderate', 'severe')),
    onset_at     timestamptz NOT NULL,
    note         text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    recorded_by  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, booking_id) REFERENCES bookings (tenant_id, id),
    FOREIGN KEY (tenant_id, resident_id) REFERENCES residents (tenant_id, id),
    FOREIGN KEY (tenant_id, venue_id) REFERENCES venues (tenant_id, id)
);
CREATE INDEX side_effect_notes_by_resident ON side_effect_notes (tenant_id, resident_id, created_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['booking_visits', 'booking_visit_events', 'vaccination_records',
                             'health_questionnaires', 'side_effect_notes'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                 USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)
                 WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;

-- Who may work the intake list (object 'intake', checked together with the venue object
-- 'venue/<id>/', so venue and hospital staff stay on their assigned venues). city_admin and the
-- platform operator hold '*'; the auditor reads through '*' read; the call centre gets nothing.
INSERT INTO authz_rules (ptype, v0, v1, v2, v3) VALUES
    ('p', 'city_staff', '*', 'intake', '*'),
    ('p', 'venue_staff', '*', 'intake', '*'),
    ('p', 'hospital_staff', '*', 'intake', '*');
