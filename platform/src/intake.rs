//! Venue and hospital intake (issue 6): the day's list per venue and what happens to each booking
//! there — checked in → vaccinated (lot number, amount, vaccinator) → observed → released, or no-show
//! — with undo of a wrong step, the pre-vaccination questionnaire, side-effect notes and booking the
//! next dose on the spot.
//!
//! * `bookings.status` keeps its meaning ('booked' / 'cancelled'): a vaccinated booking still holds
//!   its seat. The visit's state lives in `booking_visits` (no row = still booked).
//! * Every step and every undo is one transaction that locks the visit row, checks the transition
//!   from the state the staff member saw, and writes the change, an event row and an audit entry
//!   together — two tablets pressing "check in" at once give one check-in and one clear refusal.
//! * Access is two checks ([`enter`]): the role may do intake at all (`Object::Intake`) and the
//!   actor may touch this venue (`Object::Venue`), so venue and hospital staff stay on their assigned
//!   venues, the auditor only reads, and the call centre has no intake.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::PgConnection;
use sqlx::Row as _;
use tenants::{Tenant, TenantId};
use uuid::Uuid;

use crate::audit;
use crate::authz::{Act, Actor, Authz, Denied, Object, Scope};
use crate::booking::{self, BookRequest, Booking, BookingError, Dose};

/// Where a booking stands at the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Booked,
    CheckedIn,
    Vaccinated,
    Observed,
    Released,
    NoShow,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Booked,
        Status::CheckedIn,
        Status::Vaccinated,
        Status::Observed,
        Status::Released,
        Status::NoShow,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Booked => "booked",
            Status::CheckedIn => "checked_in",
            Status::Vaccinated => "vaccinated",
            Status::Observed => "observed",
            Status::Released => "released",
            Status::NoShow => "no_show",
        }
    }
    pub fn parse(raw: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw.trim())
    }
    /// The state an undo returns to (None: nothing to undo).
    pub fn previous(self) -> Option<Status> {
        match self {
            Status::Booked => None,
            Status::CheckedIn | Status::NoShow => Some(Status::Booked),
            Status::Vaccinated => Some(Status::CheckedIn),
            Status::Observed => Some(Status::Vaccinated),
            Status::Released => Some(Status::Observed),
        }
    }
    /// The person has had the vaccination in this visit.
    pub fn is_vaccinated(self) -> bool {
        matches!(
            self,
            Status::Vaccinated | Status::Observed | Status::Released
        )
    }
}

/// A step that needs nothing but the button press (vaccination has its own form: [`vaccinate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CheckIn,
    NoShow,
    Observe,
    Release,
}

impl Step {
    pub fn parse(raw: &str) -> Option<Step> {
        match raw.trim() {
            "check_in" => Some(Step::CheckIn),
            "no_show" => Some(Step::NoShow),
            "observe" => Some(Step::Observe),
            "release" => Some(Step::Release),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CheckIn => "check_in",
            Step::NoShow => "no_show",
            Step::Observe => "observe",
            Step::Release => "release",
        }
    }
    /// (from, to) of the step.
    pub fn transition(self) -> (Status, Status) {
        match self {
            Step::CheckIn => (Status::Booked, Status::CheckedIn),
            Step::NoShow => (Status::Booked, Status::NoShow),
            Step::Observe => (Status::Vaccinated, Status::Observed),
            Step::Release => (Status::Observed, Status::Released),
        }
    }
}

/// Why an intake action was refused; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("no such booking at this venue")]
    NotFound,
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    /// The row changed meanwhile (another tablet) or the step does not fit its state.
    #[error("this booking is now {}", .current.as_str())]
    WrongState { current: Status },
    #[error(transparent)]
    Booking(BookingError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The intake guard: the role may do intake (`Object::Intake`), and the actor may touch the venue
/// (`Object::Venue`). The first refusal is 403 for a member whose role has no intake (call centre,
/// auditor writing); the second is "not found" for someone else's venue (no existence oracle).
pub async fn enter(
    authz: &Authz,
    actor: &Actor,
    tenant: TenantId,
    venue: Uuid,
    act: Act,
) -> Result<Scope, Denied> {
    authz.allow(actor, tenant, Object::Intake, act).await?;
    authz.enter(actor, tenant, Object::Venue(venue), act).await
}

/// The intake decision alone ([`enter`] without the transaction).
pub async fn allow(
    authz: &Authz,
    actor: &Actor,
    tenant: TenantId,
    venue: Uuid,
    act: Act,
) -> Result<(), Denied> {
    authz.allow(actor, tenant, Object::Intake, act).await?;
    authz.allow(actor, tenant, Object::Venue(venue), act).await
}

/// The questionnaire flags shown on the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Questionnaire {
    pub conditions: String,
    pub allergies: String,
    pub anaphylaxis: bool,
    pub answered_by: String,
    pub answered_at: Option<DateTime<Utc>>,
}

impl Questionnaire {
    pub fn has_conditions(&self) -> bool {
        !self.conditions.trim().is_empty()
    }
    pub fn has_allergies(&self) -> bool {
        !self.allergies.trim().is_empty()
    }
    /// Anything a vaccinator should look at before the injection.
    pub fn flagged(&self) -> bool {
        self.has_conditions() || self.has_allergies() || self.anaphylaxis
    }
}

/// What a resident or staff member declares.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub conditions: String,
    pub allergies: String,
    pub anaphylaxis: bool,
}

impl Answers {
    pub fn is_empty(&self) -> bool {
        self.conditions.trim().is_empty() && self.allergies.trim().is_empty() && !self.anaphylaxis
    }
    pub(crate) fn validate(&self) -> Result<(), IntakeError> {
        if self.conditions.chars().count() > 1000 {
            return Err(IntakeError::Invalid {
                field: "conditions",
                reason: "at most 1000 characters",
            });
        }
        if self.allergies.chars().count() > 1000 {
            return Err(IntakeError::Invalid {
                field: "allergies",
                reason: "at most 1000 characters",
            });
        }
        Ok(())
    }
}

/// A side effect as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideEffect {
    pub id: Uuid,
    pub booking_id: Uuid,
    pub venue_name: String,
    pub dose: i16,
    pub kind: String,
    pub severity: String,
    pub onset_at: DateTime<Utc>,
    pub note: String,
    pub recorded_by: String,
    pub created_at: DateTime<Utc>,
}

pub const SIDE_EFFECT_KINDS: [&str; 8] = [
    "injection_site",
    "fever",
    "fatigue",
    "headache",
    "allergic",
    "anaphylaxis",
    "vasovagal",
    "other",
];
pub const SEVERITIES: [&str; 3] = ["mild", "moderate", "severe"];

/// A new side-effect note (parsed at the edge; checked again here).
#[derive(Debug, Clone)]
pub struct NewSideEffect {
    pub kind: String,
    pub severity: String,
    pub onset_at: DateTime<Utc>,
    pub note: String,
}

/// A vaccination to record.
#[derive(Debug, Clone)]
pub struct NewVaccination {
    pub lot_number: String,
    /// Millilitres injected.
    pub dose_ml: f64,
    pub vaccinator: String,
    pub vaccinated_at: DateTime<Utc>,
}

/// A vaccination as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct VaccinationRecord {
    pub id: Uuid,
    pub lot_number: String,
    pub dose_ml: String,
    pub vaccinator: String,
    pub vaccinated_at: DateTime<Utc>,
    pub recorded_by: String,
}

/// One line of the day's list.
#[derive(Debug, Clone)]
pub struct Row {
    pub booking_id: Uuid,
    pub resident_id: Uuid,
    pub ticket_no: String,
    pub kana_name: String,
    pub birth_date: NaiveDate,
    pub starts_at: DateTime<Utc>,
    pub dose: i16,
    pub vaccine_name: String,
    pub status: Status,
    pub version: i64,
    pub questionnaire: Option<Questionnaire>,
    /// Side-effect notes of the resident from any visit (the earlier dose's venue included).
    pub side_effects: Vec<(String, String)>,
    pub lot_number: Option<String>,
}

fn row_status(r: &sqlx::postgres::PgRow) -> Result<Status, sqlx::Error> {
    let raw: String = r.try_get("visit_status")?;
    Ok(Status::parse(&raw).unwrap_or(Status::Booked))
}

macro_rules! row_select {
    () => {
        concat!(
            "SELECT b.id AS booking_id, b.resident_id, r.ticket_no, r.kana_name, r.birth_date, s.starts_at, b.dose, ",
            "x.name AS vaccine_name, COALESCE(bv.status, 'booked') AS visit_status, COALESCE(bv.version, 0) AS version, ",
            "q.conditions, q.allergies, q.anaphylaxis, q.answered_by, q.answered_at, vr.lot_number, ",
            "COALESCE((SELECT array_agg(n.kind || ':' || n.severity ORDER BY n.created_at) FROM side_effect_notes n ",
            "  WHERE n.tenant_id = b.tenant_id AND n.resident_id = b.resident_id), '{}') AS side_effects ",
            "FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id ",
            "JOIN residents r ON r.tenant_id = b.tenant_id AND r.id = b.resident_id ",
            "JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id ",
            "LEFT JOIN booking_visits bv ON bv.tenant_id = b.tenant_id AND bv.booking_id = b.id ",
            "LEFT JOIN health_questionnaires q ON q.tenant_id = b.tenant_id AND q.resident_id = b.resident_id ",
            "LEFT JOIN vaccination_records vr ON vr.tenant_id = b.tenant_id AND vr.booking_id = b.id ",
        )
    };
}

fn row_from(r: &sqlx::postgres::PgRow) -> Result<Row, sqlx::Error> {
    let answered_by: Option<String> = r.try_get("answered_by")?;
    let questionnaire = match answered_by {
        Some(by) => Some(Questionnaire {
            conditions: r.try_get("conditions")?,
            allergies: r.try_get("allergies")?,
            anaphylaxis: r.try_get("anaphylaxis")?,
            answered_by: by,
            answered_at: r.try_get("answered_at")?,
        }),
        None => None,
    };
    let effects: Vec<String> = r.try_get("side_effects")?;
    Ok(Row {
        booking_id: r.try_get("booking_id")?,
        resident_id: r.try_get("resident_id")?,
        ticket_no: r.try_get("ticket_no")?,
        kana_name: r.try_get("kana_name")?,
        birth_date: r.try_get("birth_date")?,
        starts_at: r.try_get("starts_at")?,
        dose: r.try_get("dose")?,
        vaccine_name: r.try_get("vaccine_name")?,
        status: row_status(r)?,
        version: r.try_get("version")?,
        questionnaire,
        side_effects: effects
            .into_iter()
            .map(|e| match e.split_once(':') {
                Some((k, s)) => (k.to_owned(), s.to_owned()),
                None => (e, String::new()),
            })
            .collect(),
        lot_number: r.try_get("lot_number")?,
    })
}

/// The live bookings of `venue` on `day` (the tenant's local day), by appointment time. Reading it
/// is not audited here: the caller audits the page view once (the live refresh re-reads it).
pub async fn day_list(
    scope: &mut Scope,
    tenant: &Tenant,
    venue: Uuid,
    day: NaiveDate,
) -> Result<Vec<Row>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        row_select!(),
        "WHERE b.tenant_id = $1 AND s.venue_id = $2 AND b.status = 'booked' ",
        "AND s.starts_at >= ($3::date)::timestamp AT TIME ZONE $4 ",
        "AND s.starts_at < ($3::date + 1)::timestamp AT TIME ZONE $4 ",
        "ORDER BY s.starts_at, r.kana_name, b.id"
    ))
    .bind(scope.tenant_id().0)
    .bind(venue)
    .bind(day)
    .bind(tenant.time_zone.name())
    .fetch_all(&mut *scope.tx)
    .await?;
    rows.iter().map(row_from).collect()
}

/// Records that the actor viewed the list (personal data) of a venue's day.
pub async fn audit_list_view(
    scope: &mut Scope,
    venue: Uuid,
    day: NaiveDate,
    rows: usize,
) -> Result<(), sqlx::Error> {
    audit::record(
        scope,
        "intake.list.view",
        &format!("venue/{venue}"),
        json!({ "day": day, "rows": rows }),
    )
    .await
}

/// One booking at the venue, with everything the visit page shows.
#[derive(Debug, Clone)]
pub struct Visit {
    pub row: Row,
    pub venue_id: Uuid,
    pub vaccine_id: Uuid,
    pub record: Option<VaccinationRecord>,
    pub side_effects: Vec<SideEffect>,
    /// The resident's other live bookings (the next dose, once booked).
    pub other_bookings: Vec<OtherBooking>,
}

/// Another live booking of the same resident.
#[derive(Debug, Clone)]
pub struct OtherBooking {
    pub id: Uuid,
    pub dose: i16,
    pub venue_name: String,
    pub starts_at: DateTime<Utc>,
}

async fn row_at_venue(
    conn: &mut PgConnection,
    tenant: Uuid,
    venue: Uuid,
    booking_id: Uuid,
) -> Result<Row, IntakeError> {
    let row = sqlx::query(concat!(
        row_select!(),
        "WHERE b.tenant_id = $1 AND s.venue_id = $2 AND b.id = $3 AND b.status = 'booked'"
    ))
    .bind(tenant)
    .bind(venue)
    .bind(booking_id)
    .fetch_optional(conn)
    .await?
    .ok_or(IntakeError::NotFound)?;
    Ok(row_from(&row)?)
}

/// The visit page's data; viewing it is audited (personal and health data).
pub async fn visit(scope: &mut Scope, venue: Uuid, booking_id: Uuid) -> Result<Visit, IntakeError> {
    let tid = scope.tenant_id().0;
    let row = row_at_venue(&mut scope.tx, tid, venue, booking_id).await?;
    let vaccine_id: Uuid =
        sqlx::query_scalar("SELECT vaccine_id FROM bookings WHERE tenant_id = $1 AND id = $2")
            .bind(tid)
            .bind(booking_id)
            .fetch_one(&mut *scope.tx)
            .await?;
    let record = sqlx::query(
        "SELECT id, lot_number, dose_ml::text AS dose_ml, vaccinator, vaccinated_at, recorded_by \
         FROM vaccination_records WHERE tenant_id = $1 AND booking_id = $2",
    )
    .bind(tid)
    .bind(booking_id)
    .fetch_optional(&mut *scope.tx)
    .await?
    .map(|r| {
        Ok::<_, sqlx::Error>(VaccinationRecord {
            id: r.try_get("id")?,
            lot_number: r.try_get("lot_number")?,
            dose_ml: r.try_get("dose_ml")?,
            vaccinator: r.try_get("vaccinator")?,
            vaccinated_at: r.try_get("vaccinated_at")?,
            recorded_by: r.try_get("recorded_by")?,
        })
    })
    .transpose()?;
    let side_effects = side_effects_of(&mut scope.tx, tid, row.resident_id).await?;
    let other_bookings = sqlx::query(
        "SELECT b.id, b.dose, v.name, s.starts_at FROM bookings b \
         JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
         JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
         WHERE b.tenant_id = $1 AND b.resident_id = $2 AND b.status = 'booked' AND b.id <> $3 \
         ORDER BY s.starts_at",
    )
    .bind(tid)
    .bind(row.resident_id)
    .bind(booking_id)
    .fetch_all(&mut *scope.tx)
    .await?
    .iter()
    .map(|r| {
        Ok::<_, sqlx::Error>(OtherBooking {
            id: r.try_get(0)?,
            dose: r.try_get(1)?,
            venue_name: r.try_get(2)?,
            starts_at: r.try_get(3)?,
        })
    })
    .collect::<Result<Vec<_>, _>>()?;
    audit::record(
        scope,
        "intake.visit.view",
        &format!("booking/{booking_id}"),
        json!({ "venue": venue, "resident": row.resident_id }),
    )
    .await?;
    Ok(Visit {
        row,
        venue_id: venue,
        vaccine_id,
        record,
        side_effects,
        other_bookings,
    })
}

async fn side_effects_of(
    conn: &mut PgConnection,
    tenant: Uuid,
    resident: Uuid,
) -> Result<Vec<SideEffect>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT n.id, n.booking_id, v.name AS venue_name, b.dose, n.kind, n.severity, n.onset_at, \
                n.note, n.recorded_by, n.created_at \
         FROM side_effect_notes n \
         JOIN venues v ON v.tenant_id = n.tenant_id AND v.id = n.venue_id \
         JOIN bookings b ON b.tenant_id = n.tenant_id AND b.id = n.booking_id \
         WHERE n.tenant_id = $1 AND n.resident_id = $2 ORDER BY n.created_at",
    )
    .bind(tenant)
    .bind(resident)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SideEffect {
                id: r.try_get("id")?,
                booking_id: r.try_get("booking_id")?,
                venue_name: r.try_get("venue_name")?,
                dose: r.try_get("dose")?,
                kind: r.try_get("kind")?,
                severity: r.try_get("severity")?,
                onset_at: r.try_get("onset_at")?,
                note: r.try_get("note")?,
                recorded_by: r.try_get("recorded_by")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Makes sure the visit row exists and locks it for this transaction; returns its status. The
/// booking must be live and at `venue`, else "not found".
async fn lock_visit(
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
async fn set_status(
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

async fn upsert_answers(
    conn: &mut PgConnection,
    tenant: Uuid,
    resident: Uuid,
    a: &Answers,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO health_questionnaires (tenant_id, resident_id, conditions, allergies, anaphylaxis, answered_by) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, resident_id) DO UPDATE SET conditions = EXCLUDED.conditions, \
           allergies = EXCLUDED.allergies, anaphylaxis = EXCLUDED.anaphylaxis, \
           answered_by = EXCLUDED.answered_by, answered_at = now()",
    )
    .bind(tenant)
    .bind(resident)
    .bind(a.conditions.trim())
    .bind(a.allergies.trim())
    .bind(a.anaphylaxis)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Staff take (or correct) the questionnaire at check-in.
pub async fn save_questionnaire(
    scope: &mut Scope,
    venue: Uuid,
    booking_id: Uuid,
    a: &Answers,
) -> Result<(), IntakeError> {
    a.validate()?;
    let tid = scope.tenant_id().0;
    let row = row_at_venue(&mut scope.tx, tid, venue, booking_id).await?;
    let by = scope.actor.label.clone();
    upsert_answers(&mut scope.tx, tid, row.resident_id, a, &by).await?;
    audit::record(
        scope,
        "intake.questionnaire",
        &format!("resident/{}", row.resident_id),
        json!({ "venue": venue, "booking": booking_id, "flagged": !a.is_empty() }),
    )
    .await?;
    Ok(())
}

/// The resident's own answers, declared when booking, written in the caller's transaction (the
/// booking's: [`crate::residents::desk`] saves them together with the booking, so both commit or
/// neither does). Empty answers store nothing.
pub(crate) async fn save_resident_answers(
    conn: &mut PgConnection,
    tenant: TenantId,
    resident: Uuid,
    a: &Answers,
) -> Result<(), IntakeError> {
    if a.is_empty() {
        return Ok(());
    }
    a.validate()?;
    upsert_answers(conn, tenant.0, resident, a, "resident").await?;
    Ok(())
}

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
