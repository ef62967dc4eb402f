//! A booking as residents and integrators see it, and reading bookings back (by id, a resident's
//! own, or a city's, page by page for staff and integrators).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool, Row};
use tenants::Tenant;
use uuid::Uuid;

use crate::staff::audit;
use crate::staff::authz::Scope;

use super::dose::{BadDose, Dose};

/// A booking as residents and integrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Booking {
    pub id: Uuid,
    pub resident_id: Uuid,
    pub slot_id: Uuid,
    pub venue_id: Uuid,
    pub venue_name: String,
    pub vaccine_name: String,
    pub dose: Dose,
    pub status: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub group_id: Uuid,
    /// The last moment the resident may change or cancel it.
    pub change_until: DateTime<Utc>,
}

/// The columns of [`Booking`], shared by every query that returns bookings.
macro_rules! booking_select {
    () => {
        concat!(
            "SELECT b.id, b.resident_id, b.slot_id, s.venue_id, v.name AS venue_name, x.name AS vaccine_name, ",
            "b.dose, b.status, s.starts_at, s.ends_at, b.group_id, ",
            "s.starts_at - make_interval(days => v.cancel_cutoff_days) AS change_until ",
            "FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id ",
            "JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id ",
            "JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id ",
        )
    };
}

pub(crate) fn booking_from_row(r: &sqlx::postgres::PgRow) -> Result<Booking, sqlx::Error> {
    Ok(Booking {
        id: r.try_get("id")?,
        resident_id: r.try_get("resident_id")?,
        slot_id: r.try_get("slot_id")?,
        venue_id: r.try_get("venue_id")?,
        venue_name: r.try_get("venue_name")?,
        vaccine_name: r.try_get("vaccine_name")?,
        dose: {
            let n: i16 = r.try_get("dose")?;
            Dose::from_number(n)
                .ok_or_else(|| sqlx::Error::Decode(BadDose(n.to_string()).into()))?
        },
        status: r.try_get("status")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        group_id: r.try_get("group_id")?,
        change_until: r.try_get("change_until")?,
    })
}

pub(crate) async fn load(
    conn: &mut PgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Booking>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        booking_select!(),
        "WHERE b.tenant_id = $1 AND b.id = ANY($2) ORDER BY s.starts_at, b.id"
    ))
    .bind(tenant)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    rows.iter().map(booking_from_row).collect()
}

/// The resident's bookings (their own and those they made for others), live ones first.
pub async fn my_bookings(
    pool: &PgPool,
    tenant: &Tenant,
    resident: Uuid,
) -> Result<Vec<Booking>, sqlx::Error> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let rows = sqlx::query(concat!(
        booking_select!(),
        "WHERE b.tenant_id = $1 AND (b.resident_id = $2 OR b.booked_by = $2) ",
        "ORDER BY b.status = 'booked' DESC, s.starts_at"
    ))
    .bind(tenant.id.0)
    .bind(resident)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter().map(booking_from_row).collect()
}

/// At most this many bookings per page of [`city_page`].
pub const MAX_PAGE: i64 = 200;

/// What a page of a city's bookings is narrowed to (every part optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BookingFilter {
    pub venue: Option<Uuid>,
    /// First local day (city time zone) of the slot, inclusive.
    pub from: Option<NaiveDate>,
    /// Last local day (city time zone) of the slot, inclusive.
    pub to: Option<NaiveDate>,
    /// `booked` or `cancelled`.
    pub status: Option<BookingStatus>,
}

/// A booking's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BookingStatus {
    Booked,
    Cancelled,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booked => "booked",
            Self::Cancelled => "cancelled",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Booked, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// A cursor that does not come from [`cursor_of`] (or a `first` outside 1..=[`MAX_PAGE`]).
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(
        "`after` is not a cursor of this list: pass an `endCursor` or edge `cursor` exactly as it was returned"
    )]
    BadCursor,
    #[error("`first` must be between 1 and 200")]
    BadFirst,
    #[error("`from` must not be after `to`")]
    BadWindow,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const CURSOR_PREFIX: &str = "booking:";

/// The opaque cursor of a booking in [`city_page`]'s order: base64url of `booking:<id>`.
pub fn cursor_of(id: Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

/// The booking id inside a cursor from [`cursor_of`].
pub fn parse_cursor(cursor: &str) -> Result<Uuid, PageError> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| PageError::BadCursor)?;
    let text = String::from_utf8(raw).map_err(|_| PageError::BadCursor)?;
    text.strip_prefix(CURSOR_PREFIX)
        .and_then(|id| Uuid::try_parse(id).ok())
        .ok_or(PageError::BadCursor)
}

/// One page of a city's bookings.
#[derive(Debug, Clone)]
pub struct BookingPage {
    pub bookings: Vec<Booking>,
    /// More bookings follow the last one of this page (with the same filter).
    pub has_next: bool,
}

/// Appends the filter's conditions ($3 venue, $4 from, $5 to, $6 status; $1 is the tenant).
fn push_filter(sql: &mut String, f: &BookingFilter) {
    if f.venue.is_some() {
        sql.push_str(" AND s.venue_id = $3");
    }
    // local days of the city: compare the slot's instant with the day's start there, so the
    // condition stays a range on starts_at
    if f.from.is_some() {
        sql.push_str(
            " AND s.starts_at >= ($4::date::timestamp AT TIME ZONE (SELECT time_zone FROM tenants WHERE id = $1))",
        );
    }
    if f.to.is_some() {
        sql.push_str(
            " AND s.starts_at < (($5::date + 1)::timestamp AT TIME ZONE (SELECT time_zone FROM tenants WHERE id = $1))",
        );
    }
    if f.status.is_some() {
        sql.push_str(" AND b.status = $6");
    }
}

fn check_window(f: &BookingFilter) -> Result<(), PageError> {
    match (f.from, f.to) {
        (Some(from), Some(to)) if from > to => Err(PageError::BadWindow),
        _ => Ok(()),
    }
}

/// A page of the city's bookings for staff and integrators, in booking-id order (keyset: the
/// bookings after the one `after` names, at most `first`). The order key never changes, so paging
/// to the end sees every booking that existed when it started exactly once, whatever is booked,
/// changed or cancelled meanwhile (new bookings may or may not appear). A page names residents:
/// it is a view of personal data and audited (`bookings.list`, once per page, with the ids shown).
pub async fn city_page(
    scope: &mut Scope,
    filter: &BookingFilter,
    after: Option<&str>,
    first: i64,
) -> Result<BookingPage, PageError> {
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(PageError::BadFirst);
    }
    check_window(filter)?;
    let after_id = after.map(parse_cursor).transpose()?;
    let mut sql = String::from(concat!(
        booking_select!(),
        "WHERE b.tenant_id = $1 AND b.id > $2"
    ));
    push_filter(&mut sql, filter);
    sql.push_str(" ORDER BY b.id LIMIT $7");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(after_id.unwrap_or(Uuid::nil()))
        .bind(filter.venue)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.status.map(BookingStatus::as_str))
        .bind(first + 1)
        .fetch_all(&mut *scope.tx)
        .await?;
    let mut bookings = rows
        .iter()
        .map(booking_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let has_next = bookings.len() as i64 > first;
    bookings.truncate(first as usize);
    audit::record(
        scope,
        "bookings.list",
        "bookings",
        json!({
            "filter": filter,
            "after": after_id,
            "shown": bookings.iter().map(|b| b.id).collect::<Vec<_>>(),
        }),
    )
    .await?;
    Ok(BookingPage { bookings, has_next })
}

/// How many bookings match the filter (all pages together); counts, names nobody.
pub async fn city_count(scope: &mut Scope, filter: &BookingFilter) -> Result<i64, PageError> {
    check_window(filter)?;
    let mut sql = String::from(
        "SELECT count(*) FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
         WHERE b.tenant_id = $1",
    );
    // the same parameter numbers as city_page's (unused ones are bound and ignored)
    push_filter(&mut sql, filter);
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(Uuid::nil())
        .bind(filter.venue)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.status.map(BookingStatus::as_str))
        .bind(0_i64)
        .fetch_one(&mut *scope.tx)
        .await?)
}
