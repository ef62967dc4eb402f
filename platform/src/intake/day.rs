//! Who may do intake where ([`enter`], [`allow`]), the venue's day list, and one visit as the venue
//! sees it (the booking, the resident, the questionnaire, side effects, other bookings).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::PgConnection;
use sqlx::Row as _;
use tenants::{Tenant, TenantId};
use uuid::Uuid;

use super::types::{IntakeError, Questionnaire, SideEffect, Status, VaccinationRecord};
use crate::staff::audit;
use crate::staff::authz::{Act, Actor, Authz, Denied, Object, Scope};

/// The intake guard: the role may do intake (`Object::Intake`, with `act`), and the actor may
/// touch the venue (`Object::Venue`, read: the venue assignment; writing at intake is not writing
/// the venue's configuration, so an API key with `intake:write` cannot change schedules). The
/// first refusal is 403 for a member whose role has no intake (call centre, auditor writing); the
/// second is "not found" for someone else's venue (no existence oracle).
pub async fn enter(
    authz: &Authz,
    actor: &Actor,
    tenant: TenantId,
    venue: Uuid,
    act: Act,
) -> Result<Scope, Denied> {
    authz.allow(actor, tenant, Object::Intake, act).await?;
    authz
        .enter(actor, tenant, Object::Venue(venue), Act::Read)
        .await
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
    authz
        .allow(actor, tenant, Object::Venue(venue), Act::Read)
        .await
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

pub(crate) fn row_status(r: &sqlx::postgres::PgRow) -> Result<Status, sqlx::Error> {
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

pub(crate) fn row_from(r: &sqlx::postgres::PgRow) -> Result<Row, sqlx::Error> {
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

pub(crate) async fn row_at_venue(
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

macro_rules! side_effect_select {
    () => {
        concat!(
            "SELECT n.id, n.booking_id, v.name AS venue_name, b.dose, n.kind, n.severity, n.onset_at, ",
            "n.note, n.recorded_by, n.created_at FROM side_effect_notes n ",
            "JOIN venues v ON v.tenant_id = n.tenant_id AND v.id = n.venue_id ",
            "JOIN bookings b ON b.tenant_id = n.tenant_id AND b.id = n.booking_id ",
        )
    };
}

fn side_effect_from(r: &sqlx::postgres::PgRow) -> Result<SideEffect, sqlx::Error> {
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
}

pub(crate) async fn side_effects_of(
    conn: &mut PgConnection,
    tenant: Uuid,
    resident: Uuid,
) -> Result<Vec<SideEffect>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        side_effect_select!(),
        "WHERE n.tenant_id = $1 AND n.resident_id = $2 ORDER BY n.created_at"
    ))
    .bind(tenant)
    .bind(resident)
    .fetch_all(conn)
    .await?;
    rows.iter().map(side_effect_from).collect()
}

/// One side-effect note of the scope's city, as the visit page lists it (the answer of whoever
/// just added it with [`super::add_side_effect`], in the same intake scope; not audited again).
pub async fn side_effect(scope: &mut Scope, id: Uuid) -> Result<Option<SideEffect>, sqlx::Error> {
    let row = sqlx::query(concat!(
        side_effect_select!(),
        "WHERE n.tenant_id = $1 AND n.id = $2"
    ))
    .bind(scope.tenant_id().0)
    .bind(id)
    .fetch_optional(&mut *scope.tx)
    .await?;
    row.as_ref().map(side_effect_from).transpose()
}
