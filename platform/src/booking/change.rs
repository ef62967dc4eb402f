//! Changing a booking to another slot and cancelling it: the resident's own live booking, locked,
//! within the change/cancel cut-off; the old seat is released only when the new one was taken.
//! A change locks its two slots in id order first, so opposite changes never deadlock.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgPool};
use tenants::Tenant;
use uuid::Uuid;

use super::bookings::{Booking, load};
use super::dose::Dose;
use super::error::BookingError;
use super::keys::{claim_key, store_result};
use super::rules::{check_dose_rules, settings, slot_info};
use super::seats::{Pass, release_seat, take_seats_with};
use crate::notifications::outbox::{self, Notification};
use crate::webhooks::{self, EventType};

/// Moves a booking to another slot atomically: the old seat is released only if the new one was taken.
pub async fn change(
    pool: &PgPool,
    tenant: &Tenant,
    resident: Uuid,
    booking_id: Uuid,
    new_slot: Uuid,
    idempotency_key: &str,
) -> Result<Booking, BookingError> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let moved = change_in(
        &mut tx,
        tenant,
        resident,
        booking_id,
        new_slot,
        idempotency_key,
        Pass::NONE,
    )
    .await?;
    tx.commit().await?;
    Ok(moved)
}

/// [`change`] in the caller's transaction (see [`book_in`] for what the caller owes on an error).
pub async fn change_in(
    tx: &mut PgConnection,
    tenant: &Tenant,
    resident: Uuid,
    booking_id: Uuid,
    new_slot: Uuid,
    idempotency_key: &str,
    pass: Pass,
) -> Result<Booking, BookingError> {
    let tid = tenant.id.0;
    if let Some(ids) = claim_key(tx, tid, idempotency_key, resident).await? {
        let found = load(tx, tid, &ids).await?;
        return found.into_iter().next().ok_or(BookingError::NotFound);
    }
    let current = lock_own_booking(tx, tid, resident, booking_id).await?;
    if current.change_until <= Utc::now() && !pass.deadlines {
        return Err(BookingError::CutoffPassed);
    }
    if current.slot_id == new_slot {
        store_result(tx, tid, idempotency_key, &[booking_id]).await?;
        return Ok(current);
    }
    let policy = settings(tx).await?;
    let target = slot_info(tx, tid, new_slot).await?;
    check_dose_rules(tx, tenant, resident, current.dose, &target, &policy, None).await?;
    if current.dose == Dose::First {
        // dose 1 may not move past a booked dose 2's interval … nor change product under it
        let dose2: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT s.starts_at FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
             WHERE b.tenant_id = $1 AND b.resident_id = $2 AND b.dose = 2 AND b.status = 'booked'",
        )
        .bind(tid)
        .bind(resident)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(d2) = dose2
            && target.starts_at + Duration::days(i64::from(target.min_interval_days)) > d2
        {
            return Err(BookingError::TooEarly {
                earliest: (d2 - Duration::days(i64::from(target.min_interval_days)))
                    .with_timezone(&tenant.time_zone.0)
                    .date_naive(),
            });
        }
    }
    lock_slots_in_order(tx, tid, current.slot_id, new_slot).await?;
    take_seats_with(tx, tid, new_slot, 1, current.dose, pass).await?;
    release_seat(tx, tid, current.slot_id, current.dose).await?;
    sqlx::query(
        "UPDATE bookings SET slot_id = $3, vaccine_id = $4, updated_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tid)
    .bind(booking_id)
    .bind(new_slot)
    .bind(target.vaccine_id)
    .execute(&mut *tx)
    .await?;
    outbox::push(
        tx,
        tid,
        &format!("booking-changed:{booking_id}:{}", idempotency_key.trim()),
        &Notification::BookingChanged { booking_id },
    )
    .await?;
    webhooks::events::queue_booking(
        tx,
        tid,
        EventType::BookingChanged,
        booking_id,
        serde_json::json!({ "previous": {
            "slot": {
                "id": current.slot_id,
                "starts_at": current.starts_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "ends_at": current.ends_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
            "venue": { "id": current.venue_id, "name": current.venue_name },
        } }),
    )
    .await?;
    store_result(tx, tid, idempotency_key, &[booking_id]).await?;
    let moved = load(tx, tid, &[booking_id]).await?;
    moved.into_iter().next().ok_or(BookingError::NotFound)
}

/// Cancels a booking and releases its seat at once.
pub async fn cancel(
    pool: &PgPool,
    tenant: &Tenant,
    resident: Uuid,
    booking_id: Uuid,
    idempotency_key: &str,
) -> Result<Booking, BookingError> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let cancelled = cancel_in(
        &mut tx,
        tenant,
        resident,
        booking_id,
        idempotency_key,
        Pass::NONE,
    )
    .await?;
    tx.commit().await?;
    Ok(cancelled)
}

/// [`cancel`] in the caller's transaction (see [`book_in`] for what the caller owes on an error).
pub async fn cancel_in(
    tx: &mut PgConnection,
    tenant: &Tenant,
    resident: Uuid,
    booking_id: Uuid,
    idempotency_key: &str,
    pass: Pass,
) -> Result<Booking, BookingError> {
    let tid = tenant.id.0;
    if let Some(ids) = claim_key(tx, tid, idempotency_key, resident).await? {
        let found = load(tx, tid, &ids).await?;
        return found.into_iter().next().ok_or(BookingError::NotFound);
    }
    let current = lock_own_booking(tx, tid, resident, booking_id).await?;
    if current.change_until <= Utc::now() && !pass.deadlines {
        return Err(BookingError::CutoffPassed);
    }
    sqlx::query("UPDATE bookings SET status = 'cancelled', updated_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tid)
        .bind(booking_id)
        .execute(&mut *tx)
        .await?;
    release_seat(tx, tid, current.slot_id, current.dose).await?;
    outbox::push(
        tx,
        tid,
        &format!("booking-cancelled:{booking_id}"),
        &Notification::BookingCancelled { booking_id },
    )
    .await?;
    webhooks::events::queue_booking(
        tx,
        tid,
        EventType::BookingCancelled,
        booking_id,
        serde_json::json!({}),
    )
    .await?;
    store_result(tx, tid, idempotency_key, &[booking_id]).await?;
    let cancelled = load(tx, tid, &[booking_id]).await?;
    cancelled.into_iter().next().ok_or(BookingError::NotFound)
}

/// Locks the two slots of a change in one global order (by id) before either seat count moves.
/// Without it, one resident moving A → B (takes B, then releases A) and another moving B → A
/// (takes A, then releases B) lock the same two rows in opposite orders and PostgreSQL aborts one
/// of them ("deadlock detected", issue 15). `FOR NO KEY UPDATE` is the lock the seat statements
/// take anyway, so new bookings' foreign-key checks (`FOR KEY SHARE`) are not held up by it.
async fn lock_slots_in_order(
    conn: &mut PgConnection,
    tenant: Uuid,
    a: Uuid,
    b: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT id FROM slots WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(tenant)
    .bind([a, b].as_slice())
    .fetch_all(conn)
    .await?;
    Ok(())
}

/// The resident's own live booking, locked for this transaction. Someone else's booking is "not
/// found" (no existence oracle).
pub(crate) async fn lock_own_booking(
    conn: &mut PgConnection,
    tenant: Uuid,
    resident: Uuid,
    booking_id: Uuid,
) -> Result<Booking, BookingError> {
    let locked: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM bookings WHERE tenant_id = $1 AND id = $2 AND status = 'booked' \
         AND (resident_id = $3 OR booked_by = $3) FOR UPDATE",
    )
    .bind(tenant)
    .bind(booking_id)
    .bind(resident)
    .fetch_optional(&mut *conn)
    .await?;
    if locked.is_none() {
        return Err(BookingError::NotFound);
    }
    load(conn, tenant, &[booking_id])
        .await?
        .into_iter()
        .next()
        .ok_or(BookingError::NotFound)
}
