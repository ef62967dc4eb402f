//! THE seat statement: every seat any booking path takes is taken by [`take_seats_with`] (or, on the
//! fast and batched paths, by the same predicate inside `book_first_dose` / `book_first_doses`, which
//! call the SQL function `seat_available`); seats are given back by [`release_seat`].

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tenants::Tenant;
use uuid::Uuid;

use super::dose::Dose;
use super::error::BookingError;

/// Rules staff may pass on a resident's behalf. Only the call centre hands one out, and only to roles
/// the guard allows `booking_override` (city admins); everything else (seats, dose rules, booking
/// opening) holds as for residents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Book a slot past its booking deadline (until it ends), and change or cancel past the
    /// change/cancel cut-off.
    pub deadlines: bool,
}

impl Pass {
    pub const NONE: Pass = Pass { deadlines: false };
    pub const DEADLINES: Pass = Pass { deadlines: true };
}

/// THE seat statement: takes `seats` seats in `slot` if (and only if) they are free and the slot is
/// still bookable. One conditional UPDATE whose condition is the one seat predicate, the SQL
/// function `seat_available` (migrations/20261201000001_one_seat_predicate.sql states the rule:
/// capacity, seats held for dose 2, deadline, opening); when it matches no row, nothing changed and
/// the caller rolls back. Returns why it refused.
pub async fn take_seats(
    conn: &mut PgConnection,
    tenant: Uuid,
    slot: Uuid,
    seats: i32,
    dose: Dose,
) -> Result<(), BookingError> {
    take_seats_with(conn, tenant, slot, seats, dose, Pass::NONE).await
}

/// [`take_seats`], where `pass.deadlines` moves the deadline to the slot's end (staff override).
pub async fn take_seats_with(
    conn: &mut PgConnection,
    tenant: Uuid,
    slot: Uuid,
    seats: i32,
    dose: Dose,
    pass: Pass,
) -> Result<(), BookingError> {
    let taken = sqlx::query(
        "UPDATE slots s SET booked = s.booked + $3, \
                booked_dose2 = s.booked_dose2 + CASE WHEN $4 THEN $3 ELSE 0 END \
         FROM venues v LEFT JOIN booking_settings bs ON bs.tenant_id = v.tenant_id \
         WHERE s.tenant_id = $1 AND s.id = $2 AND v.tenant_id = s.tenant_id AND v.id = s.venue_id \
           AND seat_available(s.booked, s.booked_dose2, s.capacity, $3, $4, \
                   bs.dose2_reserve_percent, bs.dose2_reserve_until, s.starts_at, s.ends_at, \
                   v.booking_deadline_hours, v.booking_opens_at, $5) \
         RETURNING s.id",
    )
    .bind(tenant)
    .bind(slot)
    .bind(seats)
    .bind(dose == Dose::Second)
    .bind(pass.deadlines)
    .fetch_optional(&mut *conn)
    .await?;
    if taken.is_some() {
        return Ok(());
    }
    // Diagnosis only (nothing is written on this path): say why, so the resident can act.
    let why: Option<(bool, bool)> = sqlx::query_as(
        "SELECT CASE WHEN $3 THEN s.ends_at <= now() \
                     ELSE s.starts_at - make_interval(hours => v.booking_deadline_hours) <= now() END, \
                COALESCE(v.booking_opens_at > now(), false) \
         FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
         WHERE s.tenant_id = $1 AND s.id = $2",
    )
    .bind(tenant)
    .bind(slot)
    .bind(pass.deadlines)
    .fetch_optional(conn)
    .await?;
    Err(match why {
        None => BookingError::NotFound,
        Some((true, _)) => BookingError::DeadlinePassed,
        Some((_, true)) => BookingError::NotOpenYet,
        _ => BookingError::Full,
    })
}

/// Gives seats back (cancel, or the old side of a change). Never below zero (CHECK on slots).
pub(crate) async fn release_seat(
    conn: &mut PgConnection,
    tenant: Uuid,
    slot: Uuid,
    dose: Dose,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE slots SET booked = booked - 1, \
                booked_dose2 = booked_dose2 - CASE WHEN $3 THEN 1 ELSE 0 END \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(slot)
    .bind(dose == Dose::Second)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a group that does not fit in `slot` could sit: `(slot, seats there)` for the chosen slot
/// and one neighbour. The free counts read here are only a plan; the seat statements decide.
pub(crate) async fn adjacent_split(
    conn: &mut PgConnection,
    tenant: &Tenant,
    slot: Uuid,
    dose: Dose,
    people: i32,
) -> Result<Option<Vec<(Uuid, i32)>>, BookingError> {
    let rows: Vec<(Uuid, DateTime<Utc>, i32)> = sqlx::query_as(
        "WITH me AS (SELECT venue_id, starts_at FROM slots WHERE tenant_id = $1 AND id = $2) \
         SELECT s.id, s.starts_at, GREATEST(0, LEAST(s.capacity - s.booked, CASE WHEN $3 THEN s.capacity ELSE \
                s.capacity - dose2_held_seats(s.capacity, bs.dose2_reserve_percent, bs.dose2_reserve_until) \
                - (s.booked - s.booked_dose2) END)) \
         FROM slots s JOIN me ON s.venue_id = me.venue_id \
         LEFT JOIN booking_settings bs ON bs.tenant_id = s.tenant_id \
         WHERE s.tenant_id = $1 AND s.starts_at BETWEEN me.starts_at - interval '1 day' AND me.starts_at + interval '1 day' \
         ORDER BY s.starts_at",
    )
    .bind(tenant.id.0)
    .bind(slot)
    .bind(dose == Dose::Second)
    .fetch_all(&mut *conn)
    .await?;
    let Some(i) = rows.iter().position(|r| r.0 == slot) else {
        return Ok(None);
    };
    let tz = tenant.time_zone.0;
    let day = |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
    let here = rows[i].2.min(people - 1);
    if here < 1 {
        return Ok(None);
    }
    let neighbours = [i.checked_add(1), i.checked_sub(1)];
    for j in neighbours.into_iter().flatten() {
        if let Some(n) = rows.get(j)
            && day(n.1) == day(rows[i].1)
            && n.2 >= people - here
        {
            return Ok(Some(vec![(slot, here), (n.0, people - here)]));
        }
    }
    Ok(None)
}
