//! What a city configures before residents can book: vaccines, venues, capacity schedules that
//! generate slots, manual slot capacity edits, and resident lookups. Every function takes a
//! [`Scope`] (the guard's capability) and records configuration changes and personal-data views in
//! the audit log in the same transaction.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::json;
use sqlx::Row;
use uuid::Uuid;

use crate::staff::audit;
use crate::staff::authz::Scope;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A value a person typed is not acceptable; `field` names the form field.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SetupError {
    SetupError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Announces on the change feed, in the scope's transaction, that what `venue` offers changed:
/// every process drops its availability when (and only if) the change commits.
async fn announce_venue(scope: &mut Scope, venue: Uuid) -> Result<(), sqlx::Error> {
    let tenant = scope.tenant_id();
    crate::changes::announce(
        &mut scope.tx,
        &crate::changes::Change::Venue { tenant, venue },
    )
    .await
}

fn unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23505")
}

fn in_range(field: &'static str, v: i32, lo: i32, hi: i32) -> Result<(), SetupError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be between {lo} and {hi}")))
    }
}

/// One line of text (see [`crate::text::clean_line`]: no NUL or other control characters).
fn one_line(field: &'static str, v: &str) -> Result<String, SetupError> {
    crate::text::clean_line(field, v).map_err(|e| invalid(e.field, crate::text::BadText::REASON))
}

fn non_empty(field: &'static str, v: &str) -> Result<String, SetupError> {
    let t = one_line(field, v)?;
    if t.is_empty() || t.chars().count() > 200 {
        Err(invalid(field, "must not be empty (at most 200 characters)"))
    } else {
        Ok(t)
    }
}

#[derive(Debug, Clone)]
pub struct Vaccine {
    pub id: Uuid,
    pub name: String,
    pub maker: String,
    pub doses: i32,
    pub min_interval_days: i32,
    pub booster_interval_months: i32,
    pub days_until_effective: i32,
    pub validity_days: i32,
}

/// A vaccine to create; validated by [`create_vaccine`].
#[derive(Debug, Clone)]
pub struct NewVaccine {
    pub name: String,
    pub maker: String,
    pub doses: i32,
    pub min_interval_days: i32,
    pub booster_interval_months: i32,
    pub days_until_effective: i32,
    pub validity_days: i32,
}

pub async fn list_vaccines(scope: &mut Scope) -> Result<Vec<Vaccine>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, maker, doses, min_interval_days, booster_interval_months, \
         days_until_effective, validity_days FROM vaccines ORDER BY name",
    )
    .fetch_all(&mut *scope.tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Vaccine {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                maker: r.try_get("maker")?,
                doses: r.try_get("doses")?,
                min_interval_days: r.try_get("min_interval_days")?,
                booster_interval_months: r.try_get("booster_interval_months")?,
                days_until_effective: r.try_get("days_until_effective")?,
                validity_days: r.try_get("validity_days")?,
            })
        })
        .collect()
}

/// One vaccine of the scope's tenant; another tenant's id is simply not there (RLS).
pub async fn vaccine(scope: &mut Scope, id: Uuid) -> Result<Vaccine, SetupError> {
    let row = sqlx::query(
        "SELECT id, name, maker, doses, min_interval_days, booster_interval_months, \
         days_until_effective, validity_days FROM vaccines WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *scope.tx)
    .await?
    .ok_or(SetupError::NotFound)?;
    Ok(Vaccine {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        maker: row.try_get("maker")?,
        doses: row.try_get("doses")?,
        min_interval_days: row.try_get("min_interval_days")?,
        booster_interval_months: row.try_get("booster_interval_months")?,
        days_until_effective: row.try_get("days_until_effective")?,
        validity_days: row.try_get("validity_days")?,
    })
}

pub async fn create_vaccine(scope: &mut Scope, v: &NewVaccine) -> Result<Uuid, SetupError> {
    let name = non_empty("name", &v.name)?;
    let maker = non_empty("maker", &v.maker)?;
    in_range("doses", v.doses, 1, 5)?;
    in_range("min_interval_days", v.min_interval_days, 0, 3650)?;
    in_range("booster_interval_months", v.booster_interval_months, 0, 120)?;
    in_range("days_until_effective", v.days_until_effective, 0, 365)?;
    in_range("validity_days", v.validity_days, 1, 3650)?;
    let id = Uuid::now_v7();
    let tenant = scope.tenant_id().0;
    sqlx::query(
        "INSERT INTO vaccines (tenant_id, id, name, maker, doses, min_interval_days, \
         booster_interval_months, days_until_effective, validity_days) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant)
    .bind(id)
    .bind(&name)
    .bind(&maker)
    .bind(v.doses)
    .bind(v.min_interval_days)
    .bind(v.booster_interval_months)
    .bind(v.days_until_effective)
    .bind(v.validity_days)
    .execute(&mut *scope.tx)
    .await
    .map_err(|e| {
        if unique_violation(&e) {
            invalid("name", "a vaccine with this name exists already")
        } else {
            e.into()
        }
    })?;
    audit::record(
        scope,
        "vaccine.create",
        &format!("vaccine/{id}"),
        json!({ "name": name, "maker": maker, "doses": v.doses }),
    )
    .await?;
    Ok(id)
}

#[derive(Debug, Clone)]
pub struct Venue {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub kind: String,
    pub vaccine_id: Uuid,
    pub booking_opens_at: Option<DateTime<Utc>>,
    pub booking_deadline_hours: i32,
    pub cancel_cutoff_days: i32,
}

#[derive(Debug, Clone)]
pub struct NewVenue {
    pub name: String,
    pub address: String,
    pub kind: String,
    pub vaccine_id: Uuid,
    pub booking_opens_at: Option<DateTime<Utc>>,
    pub booking_deadline_hours: i32,
    pub cancel_cutoff_days: i32,
}

fn venue_from_row(r: &sqlx::postgres::PgRow) -> Result<Venue, sqlx::Error> {
    Ok(Venue {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        address: r.try_get("address")?,
        kind: r.try_get("kind")?,
        vaccine_id: r.try_get("vaccine_id")?,
        booking_opens_at: r.try_get("booking_opens_at")?,
        booking_deadline_hours: r.try_get("booking_deadline_hours")?,
        cancel_cutoff_days: r.try_get("cancel_cutoff_days")?,
    })
}

pub async fn list_venues(scope: &mut Scope) -> Result<Vec<Venue>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, address, kind, vaccine_id, booking_opens_at, booking_deadline_hours, \
         cancel_cutoff_days FROM venues ORDER BY name",
    )
    .fetch_all(&mut *scope.tx)
    .await?;
    rows.iter().map(venue_from_row).collect()
}

/// One venue of the scope's tenant; another tenant's id is simply not there (RLS).
pub async fn venue(scope: &mut Scope, id: Uuid) -> Result<Venue, SetupError> {
    let row = sqlx::query(
        "SELECT id, name, address, kind, vaccine_id, booking_opens_at, booking_deadline_hours, \
         cancel_cutoff_days FROM venues WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *scope.tx)
    .await?;
    row.as_ref()
        .map(venue_from_row)
        .transpose()?
        .ok_or(SetupError::NotFound)
}

pub async fn create_venue(scope: &mut Scope, v: &NewVenue) -> Result<Uuid, SetupError> {
    let name = non_empty("name", &v.name)?;
    let address = one_line("address", &v.address)?;
    if !matches!(v.kind.as_str(), "mass" | "hospital") {
        return Err(invalid("kind", "choose mass venue or hospital"));
    }
    in_range(
        "booking_deadline_hours",
        v.booking_deadline_hours,
        0,
        24 * 60,
    )?;
    in_range("cancel_cutoff_days", v.cancel_cutoff_days, 0, 60)?;
    let id = Uuid::now_v7();
    let tenant = scope.tenant_id().0;
    let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM vaccines WHERE id = $1)")
        .bind(v.vaccine_id)
        .fetch_one(&mut *scope.tx)
        .await?;
    if !known {
        return Err(invalid("vaccine_id", "choose one of the city's vaccines"));
    }
    sqlx::query(
        "INSERT INTO venues (tenant_id, id, name, address, kind, vaccine_id, booking_opens_at, \
         booking_deadline_hours, cancel_cutoff_days) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant)
    .bind(id)
    .bind(&name)
    .bind(&address)
    .bind(&v.kind)
    .bind(v.vaccine_id)
    .bind(v.booking_opens_at)
    .bind(v.booking_deadline_hours)
    .bind(v.cancel_cutoff_days)
    .execute(&mut *scope.tx)
    .await
    .map_err(|e| {
        if unique_violation(&e) {
            invalid("name", "a venue with this name exists already")
        } else {
            e.into()
        }
    })?;
    audit::record(
        scope,
        "venue.create",
        &format!("venue/{id}"),
        json!({ "name": name, "kind": v.kind, "vaccine_id": v.vaccine_id }),
    )
    .await?;
    announce_venue(scope, id).await?;
    Ok(id)
}

#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub venue_id: Uuid,
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub weekdays: Vec<i32>,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
    pub slot_minutes: i32,
    pub capacity: i32,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
    pub closed_dates: Vec<NaiveDate>,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: Uuid,
    pub weekdays: Vec<i32>,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
    pub slot_minutes: i32,
    pub capacity: i32,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
    pub closed_dates: Vec<NaiveDate>,
}

/// Saves the schedule and generates its slots (slots that exist already at the same start are left
/// as they are, so re-running never changes booked slots). Returns the schedule id and how many
/// slots were created.
pub async fn create_schedule(
    scope: &mut Scope,
    s: &NewSchedule,
) -> Result<(Uuid, u64), SetupError> {
    if s.weekdays.is_empty() || s.weekdays.iter().any(|d| !(1..=7).contains(d)) {
        return Err(invalid("weekdays", "choose at least one weekday"));
    }
    if s.end_time <= s.start_time {
        return Err(invalid("end_time", "must be after the start time"));
    }
    in_range("slot_minutes", s.slot_minutes, 5, 240)?;
    in_range("capacity", s.capacity, 1, 10_000)?;
    if s.valid_until < s.valid_from {
        return Err(invalid("valid_until", "must not be before the first day"));
    }
    if (s.valid_until - s.valid_from).num_days() > 366 {
        return Err(invalid("valid_until", "a schedule covers at most one year"));
    }
    venue(scope, s.venue_id).await?;
    let tenant = scope.tenant_id().0;
    let tz: String = sqlx::query_scalar("SELECT time_zone FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_one(&mut *scope.tx)
        .await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO schedules (tenant_id, id, venue_id, weekdays, start_time, end_time, slot_minutes, \
         capacity, valid_from, valid_until, closed_dates) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(tenant)
    .bind(id)
    .bind(s.venue_id)
    .bind(&s.weekdays)
    .bind(s.start_time)
    .bind(s.end_time)
    .bind(s.slot_minutes)
    .bind(s.capacity)
    .bind(s.valid_from)
    .bind(s.valid_until)
    .bind(&s.closed_dates)
    .execute(&mut *scope.tx)
    .await?;
    // Wall-clock times in the tenant's zone, converted once here; DST-safe because each slot's start
    // and end are converted separately.
    let created = sqlx::query(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
         SELECT $1, gen_random_uuid(), $2, (d + t) AT TIME ZONE $9, \
                (d + t + make_interval(mins => $6)) AT TIME ZONE $9, $7 \
         FROM generate_series($3::date, $4::date, interval '1 day') AS g(day), \
              LATERAL (SELECT g.day::date AS d) AS dd, \
              LATERAL generate_series(0, ((extract(epoch FROM ($10::time - $5::time)) / 60)::int - $6) / $6) AS i(n), \
              LATERAL (SELECT $5::time + n * make_interval(mins => $6) AS t) AS tt \
         WHERE extract(isodow FROM d)::int = ANY ($8) AND NOT (d = ANY ($11)) \
         ON CONFLICT (tenant_id, venue_id, starts_at) DO NOTHING",
    )
    .bind(tenant)
    .bind(s.venue_id)
    .bind(s.valid_from)
    .bind(s.valid_until)
    .bind(s.start_time)
    .bind(s.slot_minutes)
    .bind(s.capacity)
    .bind(&s.weekdays)
    .bind(&tz)
    .bind(s.end_time)
    .bind(&s.closed_dates)
    .execute(&mut *scope.tx)
    .await?
    .rows_affected();
    audit::record(
        scope,
        "schedule.create",
        &format!("venue/{}/schedule/{id}", s.venue_id),
        json!({
            "weekdays": s.weekdays, "start": s.start_time.to_string(), "end": s.end_time.to_string(),
            "slot_minutes": s.slot_minutes, "capacity": s.capacity,
            "from": s.valid_from, "until": s.valid_until, "closed": s.closed_dates,
            "slots_created": created,
        }),
    )
    .await?;
    announce_venue(scope, s.venue_id).await?;
    Ok((id, created))
}

/// One schedule of a venue (`NotFound` for another venue's or tenant's id).
pub async fn schedule(scope: &mut Scope, venue_id: Uuid, id: Uuid) -> Result<Schedule, SetupError> {
    list_schedules(scope, venue_id)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or(SetupError::NotFound)
}

pub async fn list_schedules(
    scope: &mut Scope,
    venue_id: Uuid,
) -> Result<Vec<Schedule>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, weekdays, start_time, end_time, slot_minutes, capacity, valid_from, valid_until, \
         closed_dates FROM schedules WHERE venue_id = $1 ORDER BY valid_from, start_time",
    )
    .bind(venue_id)
    .fetch_all(&mut *scope.tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Schedule {
                id: r.try_get("id")?,
                weekdays: r.try_get("weekdays")?,
                start_time: r.try_get("start_time")?,
                end_time: r.try_get("end_time")?,
                slot_minutes: r.try_get("slot_minutes")?,
                capacity: r.try_get("capacity")?,
                valid_from: r.try_get("valid_from")?,
                valid_until: r.try_get("valid_until")?,
                closed_dates: r.try_get("closed_dates")?,
            })
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Slot {
    pub id: Uuid,
    pub venue_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub capacity: i32,
    pub booked: i32,
}

const SLOT_COLUMNS: &str = "id, venue_id, starts_at, ends_at, capacity, booked";

fn slot_from_row(r: &sqlx::postgres::PgRow) -> Result<Slot, sqlx::Error> {
    Ok(Slot {
        id: r.try_get("id")?,
        venue_id: r.try_get("venue_id")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        capacity: r.try_get("capacity")?,
        booked: r.try_get("booked")?,
    })
}

/// Slots of a venue from `from` on, earliest first (by start, then id), at most `limit`.
pub async fn list_slots(
    scope: &mut Scope,
    venue_id: Uuid,
    from: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Slot>, sqlx::Error> {
    // a page reads one more than `first`
    slot_page(scope, venue_id, from, None, limit - 1).await
}

/// A place in a venue's slots in the order of [`slot_page`]: `(starts_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotPosition {
    pub starts_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Slot {
    /// The slot's place in the order of [`slot_page`]: pass it back as `after`.
    pub fn position(&self) -> SlotPosition {
        SlotPosition {
            starts_at: self.starts_at,
            id: self.id,
        }
    }
}

/// One page of a venue's slots starting at or after `from`, earliest first by `(starts_at, id)`:
/// the slots after `after` (from the first when `None`), at most `first + 1` of them — one more
/// than asked for tells the caller whether another page follows. A slot's id never changes and its
/// start is never edited (only its capacity), so paging to the end sees every slot that existed
/// when paging began exactly once.
pub async fn slot_page(
    scope: &mut Scope,
    venue_id: Uuid,
    from: DateTime<Utc>,
    after: Option<SlotPosition>,
    first: i64,
) -> Result<Vec<Slot>, sqlx::Error> {
    let sql = format!(
        "SELECT {SLOT_COLUMNS} FROM slots WHERE tenant_id = $1 AND venue_id = $2 AND starts_at >= $3 \
         AND ($4::timestamptz IS NULL OR (starts_at >= $4 AND (starts_at, id) > ($4, $5::uuid))) \
         ORDER BY starts_at, id LIMIT $6"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(venue_id)
        .bind(from)
        .bind(after.map(|a| a.starts_at))
        .bind(after.map(|a| a.id))
        .bind(first + 1)
        .fetch_all(&mut *scope.tx)
        .await?;
    rows.iter().map(slot_from_row).collect()
}

/// How many slots of a venue start at or after `from`.
pub async fn slot_count(
    scope: &mut Scope,
    venue_id: Uuid,
    from: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM slots WHERE tenant_id = $1 AND venue_id = $2 AND starts_at >= $3",
    )
    .bind(scope.tenant_id().0)
    .bind(venue_id)
    .bind(from)
    .fetch_one(&mut *scope.tx)
    .await
}

/// One slot of a venue (`NotFound` for another venue's or tenant's id).
pub async fn slot(scope: &mut Scope, venue_id: Uuid, id: Uuid) -> Result<Slot, SetupError> {
    let sql = format!("SELECT {SLOT_COLUMNS} FROM slots WHERE id = $1 AND venue_id = $2");
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(venue_id)
        .fetch_optional(&mut *scope.tx)
        .await?
        .ok_or(SetupError::NotFound)?;
    Ok(slot_from_row(&r)?)
}

/// Sets one slot's capacity; never below what is booked already (checked in the same statement, so
/// a booking racing this edit cannot slip under it).
pub async fn set_slot_capacity(
    scope: &mut Scope,
    venue_id: Uuid,
    slot_id: Uuid,
    capacity: i32,
) -> Result<(), SetupError> {
    in_range("capacity", capacity, 0, 10_000)?;
    let row = sqlx::query(
        "WITH s AS (SELECT capacity, booked FROM slots WHERE id = $1 AND venue_id = $2 FOR UPDATE) \
         UPDATE slots SET capacity = $3 FROM s WHERE slots.id = $1 AND slots.venue_id = $2 AND $3 >= s.booked \
         RETURNING s.capacity AS old",
    )
    .bind(slot_id)
    .bind(venue_id)
    .bind(capacity)
    .fetch_optional(&mut *scope.tx)
    .await?;
    let Some(row) = row else {
        let booked: Option<i32> =
            sqlx::query_scalar("SELECT booked FROM slots WHERE id = $1 AND venue_id = $2")
                .bind(slot_id)
                .bind(venue_id)
                .fetch_optional(&mut *scope.tx)
                .await?;
        return match booked {
            None => Err(SetupError::NotFound),
            Some(b) => Err(invalid(
                "capacity",
                format!("{b} places are booked already; the capacity cannot be lower"),
            )),
        };
    };
    let old: i32 = row.try_get("old")?;
    audit::record(
        scope,
        "slot.capacity",
        &format!("venue/{venue_id}/slot/{slot_id}"),
        json!({ "from": old, "to": capacity }),
    )
    .await?;
    announce_venue(scope, venue_id).await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Resident {
    pub id: Uuid,
    pub ticket_no: String,
    pub birth_date: NaiveDate,
    pub kana_name: String,
    pub sex: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub postal_code: Option<String>,
    pub preferred_locale: Option<String>,
}

/// Looks a resident up by ticket number. Every lookup — found or not — is a view of personal data
/// and goes to the audit log. A ticket number holding a NUL or another control character
/// ([`crate::text::clean_line`]) is refused as `Invalid { field: "ticket_no" }` at once (the person
/// typing it is told why), nothing read or written.
pub async fn resident_by_ticket(
    scope: &mut Scope,
    ticket_no: &str,
) -> Result<Option<Resident>, SetupError> {
    let ticket_no = one_line("ticket_no", ticket_no)?;
    let ticket_no = ticket_no.as_str();
    let row = sqlx::query(
        "SELECT id, ticket_no, birth_date, kana_name, sex, phone, email, postal_code, preferred_locale \
         FROM residents WHERE ticket_no = $1",
    )
    .bind(ticket_no)
    .fetch_optional(&mut *scope.tx)
    .await?;
    let resident = row
        .map(|r| {
            Ok::<_, sqlx::Error>(Resident {
                id: r.try_get("id")?,
                ticket_no: r.try_get("ticket_no")?,
                birth_date: r.try_get("birth_date")?,
                kana_name: r.try_get("kana_name")?,
                sex: r.try_get("sex")?,
                phone: r.try_get("phone")?,
                email: r.try_get("email")?,
                postal_code: r.try_get("postal_code")?,
                preferred_locale: r.try_get("preferred_locale")?,
            })
        })
        .transpose()?;
    audit::record(
        scope,
        "resident.view",
        &resident
            .as_ref()
            .map(|r| format!("resident/{}", r.id))
            .unwrap_or_else(|| "resident/(none)".into()),
        json!({ "ticket_no": ticket_no, "found": resident.is_some() }),
    )
    .await?;
    Ok(resident)
}
