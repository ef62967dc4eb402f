//! The city's vaccination records (the doses given, as recorded at intake by [`super::vaccinate`]),
//! page by page, for staff and integrators (GraphQL `city { vaccinations }`, guard object
//! `Object::Records`).
//!
//! * **Order**: record id (UUIDv7, never changes), as a keyset: paging to the end sees every
//!   record that existed when paging began exactly once. An undone vaccination deletes its record
//!   (docs/intake.md): it disappears from later pages.
//! * **Filter**: one resident (their doses given), one venue, or neither.
//! * **Personal and health data**: every page is audited once (`vaccinations.list`).

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::Row as _;
use uuid::Uuid;

use crate::staff::audit;
use crate::staff::authz::Scope;

/// The largest page.
pub const MAX_PAGE: i64 = 200;

/// One dose given.
#[derive(Debug, Clone, PartialEq)]
pub struct DoseGiven {
    pub id: Uuid,
    pub booking_id: Uuid,
    pub resident_id: Uuid,
    pub venue_id: Uuid,
    pub venue_name: String,
    pub vaccine_id: Uuid,
    pub vaccine_name: String,
    /// 1, 2 or 3 (booster).
    pub dose: i16,
    pub lot_number: String,
    /// Millilitres, as recorded (e.g. "0.30").
    pub dose_ml: String,
    pub vaccinator: String,
    pub vaccinated_at: DateTime<Utc>,
    pub recorded_by: String,
}

/// Which records.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct RecordFilter {
    pub resident: Option<Uuid>,
    pub venue: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error(
        "`after` is not a cursor of this list: pass an `endCursor` or edge `cursor` exactly as it was returned"
    )]
    BadCursor,
    #[error("`first` must be between 1 and 200")]
    BadFirst,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One page of records.
#[derive(Debug, Clone)]
pub struct RecordPage {
    pub records: Vec<DoseGiven>,
    pub has_next: bool,
}

const CURSOR_PREFIX: &str = "vaccination:";

/// The opaque cursor of a record: base64url of `vaccination:<id>`.
pub fn cursor_of(id: Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

/// The record id inside a cursor from [`cursor_of`].
pub fn parse_cursor(cursor: &str) -> Result<Uuid, RecordsError> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| RecordsError::BadCursor)?;
    let text = String::from_utf8(raw).map_err(|_| RecordsError::BadCursor)?;
    text.strip_prefix(CURSOR_PREFIX)
        .and_then(|id| Uuid::try_parse(id).ok())
        .ok_or(RecordsError::BadCursor)
}

const FILTER: &str = "c.tenant_id = $1 AND ($2::uuid IS NULL OR c.resident_id = $2) AND ($3::uuid IS NULL OR c.venue_id = $3)";

const SELECT: &str = "SELECT c.id, c.booking_id, c.resident_id, c.venue_id, v.name AS venue_name, \
        c.vaccine_id, x.name AS vaccine_name, c.dose, c.lot_number, c.dose_ml::text AS dose_ml, \
        c.vaccinator, c.vaccinated_at, c.recorded_by \
     FROM vaccination_records c \
     JOIN venues v ON v.tenant_id = c.tenant_id AND v.id = c.venue_id \
     JOIN vaccines x ON x.tenant_id = c.tenant_id AND x.id = c.vaccine_id";

fn dose_from(r: &sqlx::postgres::PgRow) -> Result<DoseGiven, sqlx::Error> {
    Ok(DoseGiven {
        id: r.try_get("id")?,
        booking_id: r.try_get("booking_id")?,
        resident_id: r.try_get("resident_id")?,
        venue_id: r.try_get("venue_id")?,
        venue_name: r.try_get("venue_name")?,
        vaccine_id: r.try_get("vaccine_id")?,
        vaccine_name: r.try_get("vaccine_name")?,
        dose: r.try_get("dose")?,
        lot_number: r.try_get("lot_number")?,
        dose_ml: r.try_get("dose_ml")?,
        vaccinator: r.try_get("vaccinator")?,
        vaccinated_at: r.try_get("vaccinated_at")?,
        recorded_by: r.try_get("recorded_by")?,
    })
}

/// One record of the city, as just written by [`super::vaccinate`] in the same scope (for its
/// answer; the writer was allowed to see it). None: no such record here.
pub async fn get(scope: &mut Scope, id: Uuid) -> Result<Option<DoseGiven>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE c.tenant_id = $1 AND c.id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(id)
        .fetch_optional(&mut *scope.tx)
        .await?;
    row.as_ref().map(dose_from).transpose()
}

/// A page of the city's vaccination records in record-id order (audited: `vaccinations.list`).
pub async fn page(
    scope: &mut Scope,
    filter: &RecordFilter,
    after: Option<&str>,
    first: i64,
) -> Result<RecordPage, RecordsError> {
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(RecordsError::BadFirst);
    }
    let after_id = after.map(parse_cursor).transpose()?;
    let sql = format!("{SELECT} WHERE {FILTER} AND c.id > $4 ORDER BY c.id LIMIT $5");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(filter.resident)
        .bind(filter.venue)
        .bind(after_id.unwrap_or(Uuid::nil()))
        .bind(first + 1)
        .fetch_all(&mut *scope.tx)
        .await?;
    let mut records = rows.iter().map(dose_from).collect::<Result<Vec<_>, _>>()?;
    let has_next = records.len() as i64 > first;
    records.truncate(first as usize);
    audit::record(
        scope,
        "vaccinations.list",
        "records",
        json!({
            "filter": filter,
            "after": after_id,
            "shown": records.iter().map(|r| r.id).collect::<Vec<_>>(),
        }),
    )
    .await?;
    Ok(RecordPage { records, has_next })
}

/// How many records match the filter (all pages together).
pub async fn count(scope: &mut Scope, filter: &RecordFilter) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT count(*) FROM vaccination_records c WHERE {FILTER}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(filter.resident)
        .bind(filter.venue)
        .fetch_one(&mut *scope.tx)
        .await
}
