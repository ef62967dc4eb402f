//! The steps of a visit: check in, vaccinate (lot, amount, vaccinator), observe, release, no-show,
//! undo, side-effect notes — each one transaction that locks the visit, checks the transition from
//! the state the staff member saw, and writes the change, an event and an audit entry together.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::Row as _;
use uuid::Uuid;

use super::day::row_at_venue;
use super::types::{
    IntakeError, NewSideEffect, NewVaccination, SEVERITIES, SIDE_EFFECT_KINDS, Status, Step,
};
use crate::staff::audit;
use crate::staff::authz::Scope;
use crate::webhooks::{EventType, events as webhook_events};

/// Makes sure the visit row exists and locks it for this transaction; returns its status. The
/// booking must be live and at `venue`, else "not found".
pub(crate) async fn lock_visit(
    scope: &mut Scope,
    venue: Uuid,
    booking_id: Uuid,
) -> Result<Status, IntakeError> {
    let tid = scope.tenant_id().0;
    let at_venue: Option<Uuid> = sqlx::query_scalar(
        "SELECT b.id FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
         WHERE b.tenant_id = $1 AND b.id = $2 AND s.venue_id = $3 AND b.status = 'booked'",
    )
    .bind(tid)
    .bind(booking_id)
    .bind(venue)
    .fetch_optional(&mut *scope.tx)
    .await?;
    if at_venue.is_none() {
        return Err(IntakeError::NotFound);
    }
    let actor = scope.actor.label.clone();
    sqlx::query(
        "INSERT INTO booking_visits (tenant_id, booking_id, venue_id, status, version, updated_by) \
         VALUES ($1, $2, $3, 'booked', 0, $4) ON CONFLICT DO NOTHING",
    )
    .bind(tid)
    .bind(booking_id)
    .bind(venue)
    .bind(actor)
    .execute(&mut *scope.tx)
    .await?;
    let status: String = sqlx::query_scalar(
        "SELECT status FROM booking_visits WHERE tenant_id = $1 AND booking_id = $2 FOR UPDATE",
    )
    .bind(tid)
    .bind(booking_id)
    .fetch_one(&mut *scope.tx)
    .await?;
    Ok(Status::parse(&status).unwrap_or(Status::Booked))
}

/// Writes the new status, the event row and the audit entry (same transaction).
pub(crate) async fn set_status(
    scope: &mut Scope,
    venue: Uuid,
    booking_id: Uuid,
    from: Status,
    to: Status,
    undo: bool,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let tid = scope.tenant_id().0;
    let actor = scope.actor.label.clone();
    sqlx::query(
        "UPDATE booking_visits SET status = $3, version = version + 1, updated_by = $4, updated_at = now() \
         WHERE tenant_id = $1 AND booking_id = $2",
    )
    .bind(tid)
    .bind(booking_id)
    .bind(to.as_str())
    .bind(&actor)
    .execute(&mut *scope.tx)
    .await?;
    sqlx::query(
        "INSERT INTO booking_visit_events (tenant_id, id, booking_id, venue_id, from_status, to_status, undo, actor) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tid)
    .bind(Uuid::now_v7())
    .bind(booking_id)
    .bind(venue)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(undo)
    .bind(&actor)
    .execute(&mut *scope.tx)
    .await?;
    let mut detail = detail;
    if let Some(map) = detail.as_object_mut() {
        map.insert("venue".into(), json!(venue));
        map.insert("from".into(), json!(from.as_str()));
        map.insert("to".into(), json!(to.as_str()));
    }
    let action = if undo {
        "intake.undo".to_owned()
    } else {
        format!("intake.{}", to.as_str())
    };
    audit::record(scope, &action, &format!("booking/{booking_id}"), detail).await
}

/// A button step (check in, no-show, observed, released). The caller commits.
pub async fn step(
    scope: &mut Scope,
    venue: Uuid,
    booking_id: Uuid,
    step: Step,
) -> Result<Status, IntakeError> {
    let current = lock_visit(scope, venue, booking_id).await?;
    let (from, to) = step.transition();
    if current != from {
        return Err(IntakeError::WrongState { current });
    }
    set_status(scope, venue, booking_id, from, to, false, json!({})).await?;
    Ok(to)
}

/// Records the vaccination of a checked-in person: the record and the status change together.
pub async fn vaccinate(
    scope: &mut Scope,
    venue: Uuid,
    booking_id: Uuid,
    v: &NewVaccination,
) -> Result<Uuid, IntakeError> {
    let lot = v.lot_number.trim();
    if lot.is_empty() || lot.chars().count() > 40 {
        return Err(IntakeError::Invalid {
            field: "lot_number",
            reason: "1 to 40 characters",
        });
    }
    let vaccinator = v.vaccinator.trim();
    if vaccinator.is_empty() || vaccinator.chars().count() > 100 {
        return Err(IntakeError::Invalid {
            field: "vaccinator",
            reason: "1 to 100 characters",
        });
    }
    if !(v.dose_ml > 0.0 && v.dose_ml <= 5.0) {
        return Err(IntakeError::Invalid {
            field: "dose_ml",
            reason: "more than 0 and at most 5 mL",
        });
    }
    let current = lock_visit(scope, venue, booking_id).await?;
    if current != Status::CheckedIn {
        return Err(IntakeError::WrongState { current });
    }
    let tid = scope.tenant_id().0;
    let id = Uuid::now_v7();
    let recorder = scope.actor.label.clone();
    sqlx::query(
        "INSERT INTO vaccination_records (tenant_id, id, booking_id, resident_id, venue_id, dose, vaccine_id, \
         lot_number, dose_ml, vaccinator, vaccinated_at, recorded_by) \
         SELECT b.tenant_id, $2, b.id, b.resident_id, $3, b.dose, b.vaccine_id, $4, round($5::float8::numeric, 2), $6, $7, $8 \
         FROM bookings b WHERE b.tenant_id = $1 AND b.id = $9",
    )
    .bind(tid)
    .bind(id)
    .bind(venue)
    .bind(lot)
    .bind(v.dose_ml)
    .bind(vaccinator)
    .bind(v.vaccinated_at)
    .bind(recorder)
    .bind(booking_id)
    .execute(&mut *scope.tx)
    .await?;
    set_status(
        scope,
        venue,
        booking_id,
        Status::CheckedIn,
        Status::Vaccinated,
        false,
        json!({ "record": id, "lot_number": lot, "dose_ml": v.dose_ml, "vaccinator": vaccinator }),
    )
    .await?;
    // the integrators' event, in this transaction
    if webhook_events::wanted(&mut scope.tx, tid, EventType::VaccinationRecorded).await?
        && let Some(data) = webhook_events::vaccination_data(&mut scope.tx, tid, id).await?
    {
        webhook_events::queue(&mut scope.tx, tid, EventType::VaccinationRecorded, &data).await?;
    }
    Ok(id)
}

/// Undoes the last step. `seen` is the state the staff member saw: if another tablet changed the
/// row meanwhile, nothing is undone. Undoing "vaccinated" deletes the vaccination record (its
/// content goes to the audit entry).
pub async fn undo(
    scope: &mut Scope,
    venue: Uuid,
    booking_id: Uuid,
    seen: Status,
) -> Result<Status, IntakeError> {
    let current = lock_visit(scope, venue, booking_id).await?;
    if current != seen {
        return Err(IntakeError::WrongState { current });
    }
    let Some(back) = current.previous() else {
        return Err(IntakeError::WrongState { current });
    };
    let tid = scope.tenant_id().0;
    let mut detail = json!({});
    if current == Status::Vaccinated {
        // the record as the integrators' event carries it, read before it goes
        let mut withdrawn = None;
        if webhook_events::wanted(&mut scope.tx, tid, EventType::VaccinationRemoved).await? {
            let record: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM vaccination_records WHERE tenant_id = $1 AND booking_id = $2",
            )
            .bind(tid)
            .bind(booking_id)
            .fetch_optional(&mut *scope.tx)
            .await?;
            if let Some(record) = record {
                withdrawn = webhook_events::vaccination_data(&mut scope.tx, tid, record).await?;
            }
        }
        if let Some(data) = withdrawn {
            webhook_events::queue(&mut scope.tx, tid, EventType::VaccinationRemoved, &data).await?;
        }
        let removed = sqlx::query(
            "DELETE FROM vaccination_records WHERE tenant_id = $1 AND booking_id = $2 \
             RETURNING id, lot_number, dose_ml::text, vaccinator, vaccinated_at",
        )
        .bind(tid)
        .bind(booking_id)
        .fetch_optional(&mut *scope.tx)
        .await?;
        if let Some(r) = removed {
            let (id, lot, ml, who, at): (Uuid, String, String, String, DateTime<Utc>) = (
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            );
            detail = json!({ "removed_record": { "id": id, "lot_number": lot, "dose_ml": ml,
                                                 "vaccinator": who, "vaccinated_at": at } });
        }
    }
    set_status(scope, venue, booking_id, current, back, true, detail).await?;
    Ok(back)
}

/// Adds a side-effect note to a visit where the vaccination was given (or to any visit of the
/// resident at this venue, for effects reported from an earlier dose).
pub async fn add_side_effect(
    scope: &mut Scope,
    venue: Uuid,
    booking_id: Uuid,
    n: &NewSideEffect,
) -> Result<Uuid, IntakeError> {
    if !SIDE_EFFECT_KINDS.contains(&n.kind.as_str()) {
        return Err(IntakeError::Invalid {
            field: "kind",
            reason: "choose one of the listed kinds",
        });
    }
    if !SEVERITIES.contains(&n.severity.as_str()) {
        return Err(IntakeError::Invalid {
            field: "severity",
            reason: "choose mild, moderate or severe",
        });
    }
    if n.note.chars().count() > 2000 {
        return Err(IntakeError::Invalid {
            field: "note",
            reason: "at most 2000 characters",
        });
    }
    if n.onset_at > Utc::now() + chrono::Duration::minutes(5) {
        return Err(IntakeError::Invalid {
            field: "onset",
            reason: "the onset cannot be in the future",
        });
    }
    let tid = scope.tenant_id().0;
    let row = row_at_venue(&mut scope.tx, tid, venue, booking_id).await?;
    let id = Uuid::now_v7();
    let recorder = scope.actor.label.clone();
    sqlx::query(
        "INSERT INTO side_effect_notes (tenant_id, id, resident_id, booking_id, venue_id, kind, severity, \
         onset_at, note, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(tid)
    .bind(id)
    .bind(row.resident_id)
    .bind(booking_id)
    .bind(venue)
    .bind(&n.kind)
    .bind(&n.severity)
    .bind(n.onset_at)
    .bind(n.note.trim())
    .bind(recorder)
    .execute(&mut *scope.tx)
    .await?;
    audit::record(
        scope,
        "intake.side_effect",
        &format!("booking/{booking_id}"),
        json!({ "venue": venue, "note": id, "kind": n.kind, "severity": n.severity }),
    )
    .await?;
    Ok(id)
}
