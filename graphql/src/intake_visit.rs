//! One visit at intake over GraphQL, through the intake UI's platform functions
//! (`platform::intake`): the visit with every side-effect note of the resident
//! (`city { intakeVisit }`, scope `intake:read`, audited `intake.visit.view` like the visit page),
//! and the visit page's `undo` and side-effect form as `undoIntakeStep` / `addSideEffect` (scope
//! `intake:write`). The guard is the intake guard (`platform::intake::enter`: intake rights for
//! the role and the venue), so side-effect notes — medical data — are read by exactly those who
//! may read the intake pages: city admins, city staff, venue and hospital staff at their venues,
//! auditors; never the call centre.

use async_graphql::{Context, InputObject, Result, SimpleObject};
use platform::intake::{self, IntakeError, NewSideEffect, SideEffect};
use platform::staff::authz::Act;
use tenants::TenantId;
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::booking::DoseValue;
use crate::intake::{
    IntakeEntry, IntakeStatus, SideEffectKind, SideEffectSeverity, dose_of, kind_of, severity_of,
};
use crate::payload::{self, Payload, Refusal, UserError};
use crate::scalars::DateTime;

/// A side-effect note as recorded at intake (medical data; readable with intake rights only).
#[derive(SimpleObject)]
pub struct SideEffectNote {
    /// The note's id.
    id: Uuid,
    /// The booking (visit) it was noted at.
    booking_id: Uuid,
    /// The venue it was noted at.
    venue_name: String,
    /// The dose of that visit.
    dose: DoseValue,
    /// What it was.
    kind: SideEffectKind,
    /// How severe.
    severity: SideEffectSeverity,
    /// When it began.
    onset_at: DateTime,
    /// Free text (may be empty).
    note: String,
    /// Who recorded it (a staff member's e-mail or `API key <name>`).
    recorded_by: String,
    /// When it was recorded.
    created_at: DateTime,
}

impl From<SideEffect> for SideEffectNote {
    fn from(n: SideEffect) -> Self {
        Self {
            id: n.id,
            booking_id: n.booking_id,
            venue_name: n.venue_name,
            dose: dose_of(n.dose),
            kind: kind_of(&n.kind),
            severity: severity_of(&n.severity),
            onset_at: n.onset_at.into(),
            note: n.note,
            recorded_by: n.recorded_by,
            created_at: n.created_at.into(),
        }
    }
}

/// One booking at the venue as the visit page shows it (personal and health data).
#[derive(SimpleObject)]
pub struct IntakeVisit {
    /// The booking as the day's list shows it (status, questionnaire, lot number).
    booking: IntakeEntry,
    /// Every side-effect note of the resident, oldest first — from any visit, with the venue and
    /// dose it was noted at.
    side_effect_notes: Vec<SideEffectNote>,
}

/// `city { intakeVisit(venueId, bookingId) }`: null when the venue has no such live booking; the
/// view is audited (`intake.visit.view`).
pub async fn visit(
    ctx: &Context<'_>,
    tenant: TenantId,
    venue: Uuid,
    booking: Uuid,
) -> Result<Option<IntakeVisit>> {
    let mut scope = auth::enter_intake(ctx, tenant, venue, Act::Read).await?;
    let v = match intake::visit(&mut scope, venue, booking).await {
        Ok(v) => v,
        Err(IntakeError::NotFound) => return Ok(None),
        Err(IntakeError::Database(e)) => return Err(ApiError::from(e).into()),
        Err(other) => return Err(ApiError::Internal(other.to_string()).into()),
    };
    scope.commit().await.map_err(ApiError::from)?;
    Ok(Some(IntakeVisit {
        booking: v.row.into(),
        side_effect_notes: v.side_effects.into_iter().map(Into::into).collect(),
    }))
}

/// Undo the last step of a visit.
#[derive(InputObject)]
pub struct UndoIntakeStepInput {
    /// The venue of the booking.
    pub venue_id: Uuid,
    /// The booking.
    pub booking_id: Uuid,
    /// The status the caller saw (e.g. from `intakeList`): if the visit changed meanwhile (another
    /// tablet), nothing is undone (CONFLICT).
    pub seen: IntakeStatus,
}

/// Note a side effect at a visit.
#[derive(InputObject)]
pub struct AddSideEffectInput {
    /// The venue of the booking.
    pub venue_id: Uuid,
    /// The booking (visit) it is noted at; the note belongs to its resident.
    pub booking_id: Uuid,
    /// What it was.
    pub kind: SideEffectKind,
    /// How severe.
    pub severity: SideEffectSeverity,
    /// When it began (not in the future).
    pub onset_at: DateTime,
    /// Free text, at most 2000 characters.
    #[graphql(default)]
    pub note: String,
}

/// What `undoIntakeStep` did: the status the visit went back to, or why not (`errors`, nothing
/// changed).
#[derive(SimpleObject)]
pub struct UndoIntakeStepPayload {
    /// The booking's status after the undo (null when `errors` is not empty).
    status: Option<IntakeStatus>,
    /// Refusals the caller can act on: NOT_FOUND (`bookingId`), CONFLICT (`seen`: the visit is
    /// no longer in that status, or BOOKED has nothing to undo; the message names the status).
    errors: Vec<UserError>,
}

impl Payload for UndoIntakeStepPayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            status: None,
            errors,
        }
    }
}

/// What `addSideEffect` did: the note, or why not (`errors`, nothing recorded).
#[derive(SimpleObject)]
pub struct AddSideEffectPayload {
    /// The note as recorded (null when `errors` is not empty).
    side_effect: Option<SideEffectNote>,
    /// Refusals the caller can act on: NOT_FOUND (`bookingId`), VALIDATION (`note`, `onsetAt`).
    errors: Vec<UserError>,
}

impl Payload for AddSideEffectPayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            side_effect: None,
            errors,
        }
    }
}

/// An intake refusal about its input field (the schema's names); a database failure is a
/// top-level INTERNAL error.
fn refusal(e: IntakeError, state_field: &str) -> Refusal {
    match e {
        IntakeError::Database(db) => db.into(),
        IntakeError::NotFound => {
            ApiError::NotFound("live booking at this venue".into()).on(Some("bookingId"))
        }
        IntakeError::Invalid { field, reason } => {
            let field = match field {
                "onset" => "onsetAt",
                other => other,
            };
            let field = payload::camel(field);
            ApiError::Validation(format!("{field}: {reason}")).on(Some(&field))
        }
        IntakeError::WrongState { current } => ApiError::Conflict(format!(
            "this booking is now {}; reload the list and choose a step that fits",
            current.as_str().to_uppercase()
        ))
        .on(Some(state_field)),
        IntakeError::Booking(b) => ApiError::Refused {
            code: b.code(),
            message: b.to_string(),
            retry_after_secs: None,
            reason: None,
        }
        .into(),
    }
}

/// `undoIntakeStep`: `platform::intake::undo` in the intake guard's write scope.
pub async fn undo(
    ctx: &Context<'_>,
    city: &str,
    input: UndoIntakeStepInput,
) -> Result<UndoIntakeStepPayload> {
    let mut scope = crate::intake::enter_write(ctx, city, input.venue_id).await?;
    let outcome = async move {
        let back = intake::undo(
            &mut scope,
            input.venue_id,
            input.booking_id,
            input.seen.into(),
        )
        .await
        .map_err(|e| refusal(e, "seen"))?;
        scope.commit().await?;
        Ok(UndoIntakeStepPayload {
            status: Some(back.into()),
            errors: Vec::new(),
        })
    }
    .await;
    payload::answer(outcome)
}

/// `addSideEffect`: `platform::intake::add_side_effect` in the intake guard's write scope.
pub async fn add_side_effect(
    ctx: &Context<'_>,
    city: &str,
    input: AddSideEffectInput,
) -> Result<AddSideEffectPayload> {
    let mut scope = crate::intake::enter_write(ctx, city, input.venue_id).await?;
    let outcome = async move {
        let n = NewSideEffect {
            kind: input.kind.as_platform().to_owned(),
            severity: input.severity.as_platform().to_owned(),
            onset_at: input.onset_at.0,
            note: input.note,
        };
        let id = intake::add_side_effect(&mut scope, input.venue_id, input.booking_id, &n)
            .await
            .map_err(|e| refusal(e, "bookingId"))?;
        let note = intake::side_effect(&mut scope, id).await?;
        scope.commit().await?;
        Ok(AddSideEffectPayload {
            side_effect: note.map(Into::into),
            errors: Vec::new(),
        })
    }
    .await;
    payload::answer(outcome)
}
