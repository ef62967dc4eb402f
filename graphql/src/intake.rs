//! Intake and vaccination records over GraphQL, through the intake UI's platform functions
//! (`platform::intake`): a venue's day list with each booking's intake status
//! (`city { intakeList }`, guard `intake` + the venue, scope `intake:read`, audited like the
//! page), the city's vaccination records (`city { vaccinations }`, guard `records`, scope
//! `records:read`, audited per page), and the steps `intakeStep` / `recordVaccination`, with
//! `undoIntakeStep` / `addSideEffect` ([`crate::intake_visit`]) (scope `intake:write`; each step
//! audited by the platform with the key or person).

use crate::scalars::DateTime;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use chrono::Utc;
use platform::booking::Dose;
use platform::intake::records::{self, DoseGiven, RecordFilter, RecordsError};
use platform::intake::{self, IntakeError, Status, Step};
use platform::staff::authz::{Act, Object as Obj, Scope};
use sqlx::PgPool;
use tenants::{Tenant, TenantId};
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::booking::DoseValue;
use crate::city_bookings::{PageInfo, UserError};
use crate::scalars::Date;

/// Where a booking stands at the venue (the intake list's status column).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum IntakeStatus {
    /// Booked; the person has not arrived (yet).
    Booked,
    /// Arrived and checked in.
    CheckedIn,
    /// Vaccinated (a vaccination record exists).
    Vaccinated,
    /// Vaccinated and under observation after the injection.
    Observed,
    /// Vaccinated, observed and sent home.
    Released,
    /// Did not come; not vaccinated.
    NoShow,
}

impl From<Status> for IntakeStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Booked => Self::Booked,
            Status::CheckedIn => Self::CheckedIn,
            Status::Vaccinated => Self::Vaccinated,
            Status::Observed => Self::Observed,
            Status::Released => Self::Released,
            Status::NoShow => Self::NoShow,
        }
    }
}

impl From<IntakeStatus> for Status {
    fn from(s: IntakeStatus) -> Self {
        match s {
            IntakeStatus::Booked => Status::Booked,
            IntakeStatus::CheckedIn => Status::CheckedIn,
            IntakeStatus::Vaccinated => Status::Vaccinated,
            IntakeStatus::Observed => Status::Observed,
            IntakeStatus::Released => Status::Released,
            IntakeStatus::NoShow => Status::NoShow,
        }
    }
}

/// A step of the visit that needs nothing but the button press (vaccinating is
/// `recordVaccination`).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum IntakeStep {
    /// BOOKED → CHECKED_IN.
    CheckIn,
    /// BOOKED → NO_SHOW.
    NoShow,
    /// VACCINATED → OBSERVED.
    Observe,
    /// OBSERVED → RELEASED.
    Release,
}

impl From<IntakeStep> for Step {
    fn from(s: IntakeStep) -> Self {
        match s {
            IntakeStep::CheckIn => Step::CheckIn,
            IntakeStep::NoShow => Step::NoShow,
            IntakeStep::Observe => Step::Observe,
            IntakeStep::Release => Step::Release,
        }
    }
}

/// What a side effect was.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SideEffectKind {
    /// Pain, swelling or redness where the injection was given.
    InjectionSite,
    /// Fever.
    Fever,
    /// Fatigue.
    Fatigue,
    /// Headache.
    Headache,
    /// An allergic reaction.
    Allergic,
    /// Anaphylaxis.
    Anaphylaxis,
    /// A vasovagal reaction (fainting).
    Vasovagal,
    /// Anything else (see the note on the visit).
    Other,
}

/// How severe a side effect was.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SideEffectSeverity {
    /// Mild.
    Mild,
    /// Moderate.
    Moderate,
    /// Severe.
    Severe,
}

impl SideEffectKind {
    /// The platform's name (`platform::intake::SIDE_EFFECT_KINDS`).
    pub(crate) fn as_platform(self) -> &'static str {
        match self {
            Self::InjectionSite => "injection_site",
            Self::Fever => "fever",
            Self::Fatigue => "fatigue",
            Self::Headache => "headache",
            Self::Allergic => "allergic",
            Self::Anaphylaxis => "anaphylaxis",
            Self::Vasovagal => "vasovagal",
            Self::Other => "other",
        }
    }
}

impl SideEffectSeverity {
    /// The platform's name (`platform::intake::SEVERITIES`).
    pub(crate) fn as_platform(self) -> &'static str {
        match self {
            Self::Mild => "mild",
            Self::Moderate => "moderate",
            Self::Severe => "severe",
        }
    }
}

pub(crate) fn kind_of(raw: &str) -> SideEffectKind {
    match raw {
        "injection_site" => SideEffectKind::InjectionSite,
        "fever" => SideEffectKind::Fever,
        "fatigue" => SideEffectKind::Fatigue,
        "headache" => SideEffectKind::Headache,
        "allergic" => SideEffectKind::Allergic,
        "anaphylaxis" => SideEffectKind::Anaphylaxis,
        "vasovagal" => SideEffectKind::Vasovagal,
        _ => SideEffectKind::Other,
    }
}

pub(crate) fn severity_of(raw: &str) -> SideEffectSeverity {
    match raw {
        "severe" => SideEffectSeverity::Severe,
        "moderate" => SideEffectSeverity::Moderate,
        _ => SideEffectSeverity::Mild,
    }
}

pub(crate) fn dose_of(n: i16) -> DoseValue {
    Dose::from_number(n).unwrap_or(Dose::First).into()
}

/// The resident's answers to the pre-vaccination questionnaire (health data).
#[derive(SimpleObject)]
pub struct IntakeQuestionnaire {
    /// Underlying conditions, as declared (empty: none).
    conditions: String,
    /// Allergies, as declared (empty: none).
    allergies: String,
    /// Has had anaphylaxis before.
    anaphylaxis: bool,
    /// Anything a vaccinator should look at before the injection.
    flagged: bool,
    /// Who answered: the resident or a staff member.
    answered_by: String,
    /// When it was answered.
    answered_at: Option<DateTime>,
}

/// A side effect noted for the resident at any visit.
#[derive(SimpleObject)]
pub struct IntakeSideEffect {
    /// What it was.
    kind: SideEffectKind,
    /// How severe.
    severity: SideEffectSeverity,
}

/// One booking of the venue's day as the intake list shows it (personal and health data).
#[derive(SimpleObject)]
pub struct IntakeEntry {
    /// The booking.
    booking_id: Uuid,
    /// The resident who is vaccinated.
    resident_id: Uuid,
    /// The resident's vaccination ticket number.
    ticket_no: String,
    /// The resident's name in katakana.
    kana_name: String,
    /// The resident's birth date.
    birth_date: Date,
    /// The appointment.
    starts_at: DateTime,
    /// Which dose.
    dose: DoseValue,
    /// The vaccine of the booking.
    vaccine_name: String,
    /// Where the visit stands.
    status: IntakeStatus,
    /// The questionnaire, when answered.
    questionnaire: Option<IntakeQuestionnaire>,
    /// Side effects noted for the resident (any visit, the earlier dose's included).
    side_effects: Vec<IntakeSideEffect>,
    /// The vaccine lot, once vaccinated.
    lot_number: Option<String>,
}

impl From<intake::Row> for IntakeEntry {
    fn from(r: intake::Row) -> Self {
        Self {
            booking_id: r.booking_id,
            resident_id: r.resident_id,
            ticket_no: r.ticket_no,
            kana_name: r.kana_name,
            birth_date: r.birth_date.into(),
            starts_at: r.starts_at.into(),
            dose: dose_of(r.dose),
            vaccine_name: r.vaccine_name,
            status: r.status.into(),
            questionnaire: r.questionnaire.map(|q| IntakeQuestionnaire {
                flagged: q.flagged(),
                conditions: q.conditions,
                allergies: q.allergies,
                anaphylaxis: q.anaphylaxis,
                answered_by: q.answered_by,
                answered_at: q.answered_at.map(DateTime),
            }),
            side_effects: r
                .side_effects
                .iter()
                .map(|(k, s)| IntakeSideEffect {
                    kind: kind_of(k),
                    severity: severity_of(s),
                })
                .collect(),
            lot_number: r.lot_number,
        }
    }
}

/// A dose given: a vaccination as recorded at intake.
#[derive(SimpleObject)]
pub struct Vaccination {
    /// The record.
    id: Uuid,
    /// The booking it was given for.
    booking_id: Uuid,
    /// Who was vaccinated (details: `city { residents }`, scope `residents:read`).
    resident_id: Uuid,
    /// Where.
    venue_id: Uuid,
    /// The venue's name.
    venue_name: String,
    /// The vaccine.
    vaccine_id: Uuid,
    /// The vaccine's name.
    vaccine_name: String,
    /// Which dose.
    dose: DoseValue,
    /// The vaccine lot.
    lot_number: String,
    /// Millilitres injected, as recorded (e.g. "0.30").
    dose_ml: String,
    /// Who gave it (as written on the form).
    vaccinator: String,
    /// When it was given.
    vaccinated_at: DateTime,
    /// Who recorded it (a staff member's e-mail or `API key <name>`).
    recorded_by: String,
}

impl From<DoseGiven> for Vaccination {
    fn from(d: DoseGiven) -> Self {
        Self {
            id: d.id,
            booking_id: d.booking_id,
            resident_id: d.resident_id,
            venue_id: d.venue_id,
            venue_name: d.venue_name,
            vaccine_id: d.vaccine_id,
            vaccine_name: d.vaccine_name,
            dose: dose_of(d.dose),
            lot_number: d.lot_number,
            dose_ml: d.dose_ml,
            vaccinator: d.vaccinator,
            vaccinated_at: d.vaccinated_at.into(),
            recorded_by: d.recorded_by,
        }
    }
}

/// One record of a page and the cursor to continue after it.
#[derive(SimpleObject)]
pub struct VaccinationEdge {
    /// Opaque; pass it as `after` to continue after this record.
    cursor: String,
    /// The record.
    node: Vaccination,
}

/// A page of the city's vaccination records in a stable order (record id, i.e. the order they
/// were recorded in).
pub struct VaccinationConnection {
    tenant: TenantId,
    filter: RecordFilter,
    edges: Vec<VaccinationEdge>,
    page_info: PageInfo,
}

/// A page of the city's vaccination records, in the order they were recorded.
#[Object]
impl VaccinationConnection {
    /// The records of this page.
    async fn edges(&self) -> &[VaccinationEdge] {
        &self.edges
    }

    /// Where this page ends and whether more follow.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many records match the filter, all pages together (counted when asked for).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Records, Act::Read).await?;
        let n = records::count(&mut scope, &self.filter)
            .await
            .map_err(ApiError::from)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(n)
    }
}

fn tenant_or_not_found(found: Option<Tenant>) -> Result<Tenant, ApiError> {
    found.ok_or_else(|| ApiError::NotFound("city".into()))
}

/// `city { intakeList(venueId, day) }`: the venue's live bookings of the local day (default: the
/// city's today), by appointment time; the view is audited (`intake.list.view`).
pub async fn day_list(
    ctx: &Context<'_>,
    tenant: TenantId,
    venue: Uuid,
    day: Option<Date>,
) -> Result<Vec<IntakeEntry>> {
    let mut scope = auth::enter_intake(ctx, tenant, venue, Act::Read).await?;
    let pool = ctx
        .data::<PgPool>()
        .map_err(|e| ApiError::Internal(e.message))?;
    let t = tenant_or_not_found(
        tenants::find_by_id(pool, tenant)
            .await
            .map_err(ApiError::from)?,
    )?;
    let day = day
        .map(|d| d.0)
        .unwrap_or_else(|| Utc::now().with_timezone(&t.time_zone.0).date_naive());
    let rows = intake::day_list(&mut scope, &t, venue, day)
        .await
        .map_err(ApiError::from)?;
    intake::audit_list_view(&mut scope, venue, day, rows.len())
        .await
        .map_err(ApiError::from)?;
    scope.commit().await.map_err(ApiError::from)?;
    Ok(rows.into_iter().map(IntakeEntry::from).collect())
}

fn records_error(e: RecordsError) -> ApiError {
    match e {
        RecordsError::Database(e) => e.into(),
        other => ApiError::Validation(other.to_string()),
    }
}

/// `city { vaccinations(…) }`: one audited page.
pub async fn vaccinations(
    ctx: &Context<'_>,
    tenant: TenantId,
    filter: RecordFilter,
    first: i64,
    after: Option<String>,
) -> Result<VaccinationConnection> {
    let mut scope = auth::enter(ctx, tenant, Obj::Records, Act::Read).await?;
    let page = records::page(&mut scope, &filter, after.as_deref(), first)
        .await
        .map_err(records_error)?;
    scope.commit().await.map_err(ApiError::from)?;
    let end_cursor = page.records.last().map(|r| records::cursor_of(r.id));
    Ok(VaccinationConnection {
        tenant,
        filter,
        edges: page
            .records
            .into_iter()
            .map(|r| VaccinationEdge {
                cursor: records::cursor_of(r.id),
                node: r.into(),
            })
            .collect(),
        page_info: PageInfo {
            has_next_page: page.has_next,
            end_cursor,
        },
    })
}

/// Record the vaccination of a checked-in person.
#[derive(InputObject)]
pub struct RecordVaccinationInput {
    /// The venue of the booking.
    venue_id: Uuid,
    /// The booking (it must be CHECKED_IN).
    booking_id: Uuid,
    /// The vaccine lot, 1–40 characters.
    lot_number: String,
    /// Millilitres injected: more than 0, at most 5.
    dose_ml: f64,
    /// Who gave it, 1–100 characters.
    vaccinator: String,
    /// When it was given (default: now).
    vaccinated_at: Option<DateTime>,
}

/// Take one step of a visit.
#[derive(InputObject)]
pub struct IntakeStepInput {
    /// The venue of the booking.
    venue_id: Uuid,
    /// The booking.
    booking_id: Uuid,
    /// The step; it must fit the booking's status (CONFLICT otherwise).
    step: IntakeStep,
}

/// What `recordVaccination` did: the record, or why not (`errors`, nothing changed).
#[derive(SimpleObject)]
pub struct RecordVaccinationPayload {
    /// The new record (null when `errors` is not empty).
    vaccination: Option<Vaccination>,
    /// Refusals the caller can act on: NOT_FOUND (`bookingId`), VALIDATION (`lotNumber`,
    /// `doseMl`, `vaccinator`), CONFLICT (the booking is not CHECKED_IN).
    errors: Vec<UserError>,
}

/// What `intakeStep` did: the booking's new status, or why not (`errors`, nothing changed).
#[derive(SimpleObject)]
pub struct IntakeStepPayload {
    /// The booking's status after the step (null when `errors` is not empty).
    status: Option<IntakeStatus>,
    /// Refusals the caller can act on: NOT_FOUND (`bookingId`), CONFLICT (the step does not fit
    /// the booking's status; the message names the status).
    errors: Vec<UserError>,
}

/// An intake refusal as a user error; a database failure stays a top-level INTERNAL error.
fn refusal(e: IntakeError) -> Result<UserError, ApiError> {
    Ok(match e {
        IntakeError::Database(db) => return Err(db.into()),
        IntakeError::NotFound => UserError::new(
            "NOT_FOUND",
            "no such live booking at this venue",
            Some("bookingId"),
        ),
        IntakeError::Invalid { field, reason } => {
            let field = match field {
                "lot_number" => "lotNumber",
                "dose_ml" => "doseMl",
                "vaccinated_at" => "vaccinatedAt",
                other => other,
            };
            UserError::new("VALIDATION", format!("{field}: {reason}"), Some(field))
        }
        IntakeError::WrongState { current } => UserError::new(
            "CONFLICT",
            format!(
                "this booking is now {}; reload the list and choose a step that fits",
                current.as_str().to_uppercase()
            ),
            Some("bookingId"),
        ),
        IntakeError::Booking(b) => UserError::new(b.code(), b.to_string(), None),
    })
}

/// The city (NOT_FOUND for an unknown slug) and the intake guard's scope for writing.
pub(crate) async fn enter_write(
    ctx: &Context<'_>,
    city: &str,
    venue: Uuid,
) -> Result<Scope, ApiError> {
    let pool = ctx
        .data::<PgPool>()
        .map_err(|e| ApiError::Internal(e.message))?;
    let tenant = tenants::find_by_slug(pool, city)
        .await?
        .ok_or_else(|| ApiError::NotFound("city".into()))?;
    auth::enter_intake(ctx, tenant.id, venue, Act::Write).await
}

/// Intake steps over GraphQL (API key scope `intake:write`; staff who may do intake at the venue).
#[derive(Default)]
pub struct IntakeMutation;

#[Object]
impl IntakeMutation {
    /// Records the vaccination of a checked-in person (lot, amount, vaccinator, time): the record
    /// and the status VACCINATED together, audited (`intake.vaccinated`), announced to webhooks
    /// (`vaccination.recorded`). Refusals come back in `errors`; nothing changes then.
    async fn record_vaccination(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The booking and what was given.")] input: RecordVaccinationInput,
    ) -> Result<RecordVaccinationPayload> {
        let mut scope = enter_write(ctx, &city, input.venue_id).await?;
        let v = intake::NewVaccination {
            lot_number: input.lot_number,
            dose_ml: input.dose_ml,
            vaccinator: input.vaccinator,
            vaccinated_at: input.vaccinated_at.map(|t| t.0).unwrap_or_else(Utc::now),
        };
        match intake::vaccinate(&mut scope, input.venue_id, input.booking_id, &v).await {
            Ok(id) => {
                let record = records::get(&mut scope, id).await.map_err(ApiError::from)?;
                scope.commit().await.map_err(ApiError::from)?;
                Ok(RecordVaccinationPayload {
                    vaccination: record.map(Vaccination::from),
                    errors: Vec::new(),
                })
            }
            Err(e) => Ok(RecordVaccinationPayload {
                vaccination: None,
                errors: vec![refusal(e)?],
            }),
        }
    }

    /// Takes one step of a visit (check in, no-show, observe, release), as the intake list's
    /// buttons do; audited (`intake.<status>`). Refusals come back in `errors`.
    async fn intake_step(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The booking and the step.")] input: IntakeStepInput,
    ) -> Result<IntakeStepPayload> {
        let mut scope = enter_write(ctx, &city, input.venue_id).await?;
        match intake::step(
            &mut scope,
            input.venue_id,
            input.booking_id,
            input.step.into(),
        )
        .await
        {
            Ok(status) => {
                scope.commit().await.map_err(ApiError::from)?;
                Ok(IntakeStepPayload {
                    status: Some(status.into()),
                    errors: Vec::new(),
                })
            }
            Err(e) => Ok(IntakeStepPayload {
                status: None,
                errors: vec![refusal(e)?],
            }),
        }
    }

    /// Undoes the last step of a visit, as the visit page's undo does (RELEASED → OBSERVED →
    /// VACCINATED → CHECKED_IN → BOOKED, NO_SHOW → BOOKED); undoing VACCINATED deletes the
    /// vaccination record (kept in the audit entry) and announces `vaccination.removed`. Audited
    /// (`intake.undo`). Refusals come back in `errors`; nothing changes then.
    async fn undo_intake_step(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The booking and the status the caller saw.")]
        input: crate::intake_visit::UndoIntakeStepInput,
    ) -> Result<crate::intake_visit::UndoIntakeStepPayload> {
        crate::intake_visit::undo(ctx, &city, input).await
    }

    /// Notes a side effect at a visit, as the visit page's form does; the note belongs to the
    /// resident (the next dose's venue sees it). Medical data. Audited (`intake.side_effect`).
    /// Refusals come back in `errors`; nothing is recorded then.
    async fn add_side_effect(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The visit and the side effect.")]
        input: crate::intake_visit::AddSideEffectInput,
    ) -> Result<crate::intake_visit::AddSideEffectPayload> {
        crate::intake_visit::add_side_effect(ctx, &city, input).await
    }
}
