//! Booking the next dose on the spot, after a vaccination: the slots that keep the dose rules and
//! the booking itself, through the booking area's rules and seat statement.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::Row as _;
use tenants::Tenant;
use uuid::Uuid;

use super::day::{Visit, row_at_venue};
use super::types::IntakeError;
use crate::booking::{self, BookRequest, Booking, BookingError, Dose};
use crate::staff::audit;
use crate::staff::authz::Scope;

/// A slot the next dose could go in.
#[derive(Debug, Clone)]
pub struct SlotChoice {
    pub slot_id: Uuid,
    pub venue_name: String,
    pub starts_at: DateTime<Utc>,
    pub free: i32,
}

/// The dose that follows `dose` (None after the booster).
pub fn next_dose(dose: i16) -> Option<Dose> {
    match dose {
        1 => Some(Dose::Second),
        2 => Some(Dose::Booster),
        _ => None,
    }
}

/// Free slots for the next dose: venues with the same vaccine, from the first day the interval
/// allows, at most `limit`. The booking itself checks everything again.
pub async fn next_dose_slots(
    scope: &mut Scope,
    tenant: &Tenant,
    visit: &Visit,
    limit: i64,
) -> Result<Vec<SlotChoice>, sqlx::Error> {
    let rows = sqlx::query(
        "WITH this AS ( \
           SELECT s.starts_at, x.min_interval_days, x.booster_interval_months, b.dose \
           FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
           JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id \
           WHERE b.tenant_id = $1 AND b.id = $2) \
         SELECT s.id, v.name, s.starts_at, s.capacity - s.booked AS free \
         FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id, this \
         WHERE s.tenant_id = $1 AND v.vaccine_id = $3 AND s.booked < s.capacity \
           AND s.starts_at - make_interval(hours => v.booking_deadline_hours) > now() \
           AND (s.starts_at AT TIME ZONE $4)::date >= (this.starts_at AT TIME ZONE $4)::date \
               + CASE WHEN this.dose = 1 THEN make_interval(days => this.min_interval_days) \
                      ELSE make_interval(months => this.booster_interval_months) END \
         ORDER BY s.starts_at, v.name LIMIT $5",
    )
    .bind(scope.tenant_id().0)
    .bind(visit.row.booking_id)
    .bind(visit.vaccine_id)
    .bind(tenant.time_zone.name())
    .bind(limit)
    .fetch_all(&mut *scope.tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SlotChoice {
                slot_id: r.try_get(0)?,
                venue_name: r.try_get(1)?,
                starts_at: r.try_get(2)?,
                free: r.try_get(3)?,
            })
        })
        .collect()
}

/// Books the next dose on the spot (at check-out) through the platform's own booking function, so
/// every booking rule holds (intervals, product, seats, one live booking per dose). Only after this
/// visit's vaccination. `key` makes a double-tap book once. The booking and its audit entry are
/// written in `scope` (a savepoint for the booking), which the caller commits.
pub async fn book_next_dose(
    scope: &mut Scope,
    tenant: &Tenant,
    venue: Uuid,
    booking_id: Uuid,
    slot: Uuid,
    key: &str,
) -> Result<Booking, IntakeError> {
    let tid = scope.tenant_id().0;
    let row = row_at_venue(&mut scope.tx, tid, venue, booking_id).await?;
    if !row.status.is_vaccinated() {
        return Err(IntakeError::WrongState {
            current: row.status,
        });
    }
    let Some(dose) = next_dose(row.dose) else {
        return Err(IntakeError::Invalid {
            field: "dose",
            reason: "there is no further dose to book",
        });
    };
    let key = key.trim();
    if key.len() < 8 || key.len() > 150 {
        return Err(IntakeError::Invalid {
            field: "key",
            reason: "the form is incomplete; reload the page",
        });
    }
    let req = BookRequest {
        resident_id: row.resident_id,
        slot_id: slot,
        dose,
        companions: Vec::new(),
        second_dose_slot: None,
        idempotency_key: format!("intake:{booking_id}:{key}"),
    };
    let booked: Result<_, BookingError> = booking::in_savepoint!(scope, |conn| booking::book_in(
        conn,
        tenant,
        &req,
        false,
        booking::Pass::NONE
    ));
    booking::record_decision(
        tenant.id,
        booking::Door::Intake,
        booked
            .as_ref()
            .map_or_else(BookingError::outcome, |_| "booked"),
    );
    let booked = booked
        .map_err(|e| match e {
            BookingError::Database(e) => IntakeError::Database(e),
            other => IntakeError::Booking(other),
        })?
        .into_iter()
        .next()
        .ok_or(IntakeError::NotFound)?;
    audit::record(
        scope,
        "intake.next_dose_booked",
        &format!("booking/{}", booked.id),
        json!({ "venue": venue, "from_booking": booking_id, "slot": slot, "dose": dose.number(),
                "resident": row.resident_id }),
    )
    .await?;
    Ok(booked)
}
