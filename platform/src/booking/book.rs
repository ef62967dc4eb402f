//! Booking: the general path (groups, dose 2 and boosters, dose 1 + 2 together, a group split over
//! adjacent slots), and [`book`], which tries the one-statement fast path first.

use sqlx::{PgConnection, PgPool};
use tenants::Tenant;
use uuid::Uuid;

use super::bookings::{Booking, load};
use super::dose::Dose;
use super::error::BookingError;
use super::fast::{Caller, FastOutcome, FastPath};
use super::keys::{claim_key, store_result, unique_violation_to_already};
use super::rules::{check_dose_rules, settings, slot_info};
use super::seats::{Pass, adjacent_split, take_seats_with};
use crate::notifications::outbox::{self, Notification};
use crate::webhooks::{self, EventType};

/// What to book: `resident` books `dose` in `slot`, for themself and `companions` (other residents,
/// already identified by ticket number and birth date), optionally with dose 2 in `second_dose_slot`.
#[derive(Debug, Clone)]
pub struct BookRequest {
    pub resident_id: Uuid,
    pub slot_id: Uuid,
    pub dose: Dose,
    pub companions: Vec<Uuid>,
    pub second_dose_slot: Option<Uuid>,
    pub idempotency_key: String,
}

/// Books a seat (or a group's seats, or dose 1 and dose 2) — all or nothing. The commonest booking
/// (the resident alone, dose 1, one slot) goes by the one-statement fast path; everything else, and
/// whatever the fast path leaves open, by the general path, which says precisely why it refuses.
pub async fn book(
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookRequest,
) -> Result<Vec<Booking>, BookingError> {
    book_via(pool, pool, tenant, req).await
}

/// [`book`] with the fast path decided by `fast` (the database, or a batch).
pub(crate) async fn book_via(
    fast: &impl FastPath,
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookRequest,
) -> Result<Vec<Booking>, BookingError> {
    if req.companions.is_empty() && req.second_dose_slot.is_none() && req.dose == Dose::First {
        let caller = Caller::Resident(req.resident_id);
        let outcome = fast
            .book_first_dose(tenant, caller, req.slot_id, &req.idempotency_key)
            .await?;
        if let FastOutcome::Done(booked) = outcome {
            return Ok(booked);
        }
    }
    book_general(pool, tenant, req, false).await
}

/// Like [`book`], for a group that may be split over the chosen slot and the one right before or
/// after it at the same venue on the same day when the chosen slot has too few seats for everyone:
/// still all seats or none, each taken by the conditional seat statement. (Not with dose 2 booked in
/// the same step.)
pub async fn book_allowing_adjacent(
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookRequest,
) -> Result<Vec<Booking>, BookingError> {
    if req.companions.is_empty() || req.second_dose_slot.is_some() {
        return book(pool, tenant, req).await;
    }
    book_general(pool, tenant, req, true).await
}

/// The general path of [`book`]: groups, dose 2 and boosters, dose 1 + dose 2 together.
pub(crate) async fn book_general(
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookRequest,
    adjacent: bool,
) -> Result<Vec<Booking>, BookingError> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let booked = book_in(&mut tx, tenant, req, adjacent, Pass::NONE).await?;
    tx.commit().await?;
    Ok(booked)
}

/// The booking itself, in the caller's transaction (`conn` must be scoped to `tenant`): staff
/// modules run it inside their own scope so that the booking and its audit entry commit together.
/// On an error the caller must roll back (or run this inside a savepoint it drops): seats may
/// already have been taken. `adjacent`: see [`book_allowing_adjacent`].
pub async fn book_in(
    tx: &mut PgConnection,
    tenant: &Tenant,
    req: &BookRequest,
    adjacent: bool,
    pass: Pass,
) -> Result<Vec<Booking>, BookingError> {
    let tid = tenant.id.0;
    if let Some(ids) = claim_key(tx, tid, &req.idempotency_key, req.resident_id).await? {
        return Ok(load(tx, tid, &ids).await?);
    }
    let policy = settings(tx).await?;
    if req.companions.len() > policy.max_group_size.max(0) as usize {
        return Err(BookingError::GroupTooLarge {
            max: policy.max_group_size,
        });
    }
    if req.second_dose_slot.is_some() && (!policy.book_dose2_with_dose1 || req.dose != Dose::First)
    {
        return Err(BookingError::PairingNotOffered);
    }
    let mut people = vec![req.resident_id];
    people.extend(
        req.companions
            .iter()
            .copied()
            .filter(|c| *c != req.resident_id),
    );
    people.dedup();

    let first = slot_info(tx, tid, req.slot_id).await?;
    let second = match req.second_dose_slot {
        Some(s) => Some((s, slot_info(tx, tid, s).await?)),
        None => None,
    };
    for person in &people {
        check_dose_rules(tx, tenant, *person, req.dose, &first, &policy, None).await?;
        if let Some((_, info)) = &second {
            check_dose_rules(
                tx,
                tenant,
                *person,
                Dose::Second,
                info,
                &policy,
                Some(&first),
            )
            .await?;
        }
    }

    // Seats: one statement per slot, in slot-id order so two transactions never wait on each other
    // in opposite orders.
    let n = people.len() as i32;
    // Where each person sits for the first booking of the request (all in the chosen slot, unless
    // a group may spill into the adjacent slot).
    let mut seat_of = vec![req.slot_id; people.len()];
    let mut slots = vec![(req.slot_id, req.dose, n)];
    if adjacent && n > 1 && second.is_none() {
        match take_seats_with(tx, tid, req.slot_id, n, req.dose, pass).await {
            Ok(()) => slots.clear(),
            Err(BookingError::Full) => {
                let split = adjacent_split(tx, tenant, req.slot_id, req.dose, n)
                    .await?
                    .ok_or(BookingError::Full)?;
                let mut at = 0;
                for (slot, seats) in &split {
                    for s in seat_of.iter_mut().skip(at).take(*seats as usize) {
                        *s = *slot;
                    }
                    at += *seats as usize;
                }
                slots = split.into_iter().map(|(s, k)| (s, req.dose, k)).collect();
            }
            Err(other) => return Err(other),
        }
    }
    if let Some((s, _)) = &second {
        slots.push((*s, Dose::Second, n));
    }
    slots.sort_by_key(|(s, _, _)| *s);
    for (s, dose, seats) in &slots {
        take_seats_with(tx, tid, *s, *seats, *dose, pass).await?;
    }

    let group_id = Uuid::now_v7();
    let mut ids = Vec::new();
    for (person, first_slot) in people.iter().zip(&seat_of) {
        let mut plan = vec![(*first_slot, req.dose, first.vaccine_id)];
        if let Some((s, info)) = &second {
            plan.push((*s, Dose::Second, info.vaccine_id));
        }
        for (slot, dose, vaccine) in &plan {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, booked_by, group_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tid)
            .bind(id)
            .bind(person)
            .bind(slot)
            .bind(vaccine)
            .bind(dose.number())
            .bind(req.resident_id)
            .bind(group_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_violation_to_already(e, *dose))?;
            outbox::push(
                tx,
                tid,
                &format!("booking-confirmed:{id}"),
                &Notification::BookingConfirmed { booking_id: id },
            )
            .await?;
            webhooks::events::queue_booking(
                tx,
                tid,
                EventType::BookingCreated,
                id,
                serde_json::json!({}),
            )
            .await?;
            ids.push(id);
        }
    }
    store_result(tx, tid, &req.idempotency_key, &ids).await?;
    Ok(load(tx, tid, &ids).await?)
}
