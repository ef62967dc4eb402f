//! The city's booking rules (`booking_settings`) and the dose rules they drive: dose order, intervals,
//! product mixing; the staff functions that read and save the rules.

use chrono::{DateTime, Duration, Months, Utc};
use sqlx::{PgConnection, PgPool, Row};
use tenants::Tenant;
use uuid::Uuid;

use super::dose::Dose;
use super::error::BookingError;

/// The city's booking policy (table `booking_settings`; defaults when the city has no row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingSettings {
    pub few_left_percent: i32,
    pub few_left_seats: i32,
    pub allow_mixing: bool,
    pub book_dose2_with_dose1: bool,
    pub max_group_size: i32,
    /// Share of every slot held for dose 2 (0–100 %) …
    pub dose2_reserve_percent: i32,
    /// … until this moment (no hold when `None` or past).
    pub dose2_reserve_until: Option<DateTime<Utc>>,
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self {
            few_left_percent: 20,
            few_left_seats: 3,
            allow_mixing: false,
            book_dose2_with_dose1: false,
            max_group_size: 4,
            dose2_reserve_percent: 0,
            dose2_reserve_until: None,
        }
    }
}

pub async fn settings(conn: &mut PgConnection) -> Result<BookingSettings, sqlx::Error> {
    let row = sqlx::query(
        "SELECT few_left_percent, few_left_seats, allow_mixing, book_dose2_with_dose1, max_group_size, \
                dose2_reserve_percent, dose2_reserve_until \
         FROM booking_settings WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid",
    )
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => BookingSettings::default(),
        Some(r) => BookingSettings {
            few_left_percent: r.try_get(0)?,
            few_left_seats: r.try_get(1)?,
            allow_mixing: r.try_get(2)?,
            book_dose2_with_dose1: r.try_get(3)?,
            max_group_size: r.try_get(4)?,
            dose2_reserve_percent: r.try_get(5)?,
            dose2_reserve_until: r.try_get(6)?,
        },
    })
}

pub(crate) struct SlotInfo {
    pub(crate) starts_at: DateTime<Utc>,
    pub(crate) vaccine_id: Uuid,
    pub(crate) min_interval_days: i32,
    pub(crate) booster_interval_months: i32,
}

pub(crate) async fn slot_info(
    conn: &mut PgConnection,
    tenant: Uuid,
    slot: Uuid,
) -> Result<SlotInfo, BookingError> {
    let row = sqlx::query(
        "SELECT s.starts_at, v.vaccine_id, x.min_interval_days, x.booster_interval_months \
         FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
         JOIN vaccines x ON x.tenant_id = v.tenant_id AND x.id = v.vaccine_id \
         WHERE s.tenant_id = $1 AND s.id = $2",
    )
    .bind(tenant)
    .bind(slot)
    .fetch_optional(conn)
    .await?
    .ok_or(BookingError::NotFound)?;
    Ok(SlotInfo {
        starts_at: row.try_get(0)?,
        vaccine_id: row.try_get(1)?,
        min_interval_days: row.try_get(2)?,
        booster_interval_months: row.try_get(3)?,
    })
}

/// Dose order, intervals and product for one person booking `dose` in `slot`. Reads the person's own
/// earlier booking only; the seat itself is never read here.
pub(crate) async fn check_dose_rules(
    conn: &mut PgConnection,
    tenant: &Tenant,
    resident: Uuid,
    dose: Dose,
    slot: &SlotInfo,
    policy: &BookingSettings,
    earlier_in_this_request: Option<&SlotInfo>,
) -> Result<(), BookingError> {
    let previous = match dose {
        Dose::First => return Ok(()),
        Dose::Second => 1i16,
        Dose::Booster => 2i16,
    };
    let earlier: Option<(DateTime<Utc>, Uuid, i32, i32)> =
        match earlier_in_this_request {
            Some(e) => Some((
                e.starts_at,
                e.vaccine_id,
                e.min_interval_days,
                e.booster_interval_months,
            )),
            None => sqlx::query_as(
                "SELECT s.starts_at, b.vaccine_id, x.min_interval_days, x.booster_interval_months \
             FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
             JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id \
             WHERE b.tenant_id = $1 AND b.resident_id = $2 AND b.dose = $3 AND b.status = 'booked'",
            )
            .bind(tenant.id.0)
            .bind(resident)
            .bind(previous)
            .fetch_optional(&mut *conn)
            .await?,
        };
    let Some((earlier_start, earlier_vaccine, interval_days, booster_months)) = earlier else {
        return Err(BookingError::NeedsEarlierDose);
    };
    if dose == Dose::Second && earlier_vaccine != slot.vaccine_id && !policy.allow_mixing {
        return Err(BookingError::OtherVaccine);
    }
    let earliest = match dose {
        Dose::Second => earlier_start + Duration::days(i64::from(interval_days)),
        _ => earlier_start
            .checked_add_months(Months::new(booster_months.max(0) as u32))
            .unwrap_or(earlier_start),
    };
    let tz = tenant.time_zone.0;
    // Intervals count in calendar days of the city: a dose on day D + interval is on time.
    let earliest_day = earliest.with_timezone(&tz).date_naive();
    if slot.starts_at.with_timezone(&tz).date_naive() < earliest_day {
        return Err(BookingError::TooEarly {
            earliest: earliest_day,
        });
    }
    Ok(())
}

/// Why the city's booking rules were not saved: the field and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl BookingSettings {
    /// The rules a city may set, each within its range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |field, reason| Err(SettingsError::Invalid { field, reason });
        if !(0..=100).contains(&self.few_left_percent) {
            return bad("few_left_percent", "0–100");
        }
        if !(0..=1000).contains(&self.few_left_seats) {
            return bad("few_left_seats", "0–1000");
        }
        if !(0..=20).contains(&self.max_group_size) {
            return bad("max_group_size", "0–20");
        }
        if !(0..=100).contains(&self.dose2_reserve_percent) {
            return bad("dose2_reserve_percent", "0–100");
        }
        if self.dose2_reserve_percent > 0 && self.dose2_reserve_until.is_none() {
            return bad("dose2_reserve_until", "required when seats are held");
        }
        Ok(())
    }
}

/// The city's booking rules as the scope's tenant has them ([`settings`]).
pub async fn city_settings(
    scope: &mut crate::staff::authz::Scope,
) -> Result<BookingSettings, sqlx::Error> {
    settings(&mut scope.tx).await
}

/// Saves the city's booking rules (thresholds, mixing, dose 1 + 2 together, group size, seats
/// held for dose 2) and records the change in the audit log. Nothing changes when a value is out
/// of range.
pub async fn save_settings(
    scope: &mut crate::staff::authz::Scope,
    new: &BookingSettings,
) -> Result<(), SettingsError> {
    new.validate()?;
    let before = settings(&mut scope.tx).await?;
    sqlx::query(
        "INSERT INTO booking_settings (tenant_id, few_left_percent, few_left_seats, allow_mixing, \
             book_dose2_with_dose1, max_group_size, dose2_reserve_percent, dose2_reserve_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id) DO UPDATE SET few_left_percent = EXCLUDED.few_left_percent, \
             few_left_seats = EXCLUDED.few_left_seats, allow_mixing = EXCLUDED.allow_mixing, \
             book_dose2_with_dose1 = EXCLUDED.book_dose2_with_dose1, \
             max_group_size = EXCLUDED.max_group_size, \
             dose2_reserve_percent = EXCLUDED.dose2_reserve_percent, \
             dose2_reserve_until = EXCLUDED.dose2_reserve_until",
    )
    .bind(scope.tenant_id().0)
    .bind(new.few_left_percent)
    .bind(new.few_left_seats)
    .bind(new.allow_mixing)
    .bind(new.book_dose2_with_dose1)
    .bind(new.max_group_size)
    .bind(new.dose2_reserve_percent)
    .bind(new.dose2_reserve_until)
    .execute(&mut *scope.tx)
    .await?;
    crate::staff::audit::record(
        scope,
        "booking_rules.update",
        "booking_settings",
        serde_json::json!({
            "before": settings_json(&before),
            "after": settings_json(new),
        }),
    )
    .await?;
    // the marks of every venue follow the rules: every process drops the city's availability
    let tenant = scope.tenant_id();
    crate::changes::announce(&mut scope.tx, &crate::changes::Change::Availability(tenant)).await?;
    Ok(())
}

pub(crate) fn settings_json(s: &BookingSettings) -> serde_json::Value {
    serde_json::json!({
        "few_left_percent": s.few_left_percent,
        "few_left_seats": s.few_left_seats,
        "allow_mixing": s.allow_mixing,
        "book_dose2_with_dose1": s.book_dose2_with_dose1,
        "max_group_size": s.max_group_size,
        "dose2_reserve_percent": s.dose2_reserve_percent,
        "dose2_reserve_until": s.dose2_reserve_until,
    })
}

/// Slots where dose 2 could be booked together with dose 1 in `first_slot`: at the same venue, on
/// or after the vaccine's interval (calendar days in the city), still bookable, with a seat for a
/// second dose; the first `limit` by time. `None` when the city does not offer booking both at once.
pub async fn second_dose_options(
    pool: &PgPool,
    tenant: &Tenant,
    first_slot: Uuid,
    limit: i64,
) -> Result<Option<Vec<(Uuid, DateTime<Utc>)>>, sqlx::Error> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    if !settings(&mut tx).await?.book_dose2_with_dose1 {
        tx.commit().await?;
        return Ok(None);
    }
    let tz = tenant.time_zone.0.name();
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT s.id, s.starts_at FROM slots f \
         JOIN venues v ON v.tenant_id = f.tenant_id AND v.id = f.venue_id \
         JOIN vaccines x ON x.tenant_id = v.tenant_id AND x.id = v.vaccine_id \
         JOIN slots s ON s.tenant_id = f.tenant_id AND s.venue_id = f.venue_id \
         WHERE f.tenant_id = $1 AND f.id = $2 \
           AND (s.starts_at AT TIME ZONE $3)::date >= (f.starts_at AT TIME ZONE $3)::date + x.min_interval_days \
           AND seat_available(s.booked, s.booked_dose2, s.capacity, 1, true, NULL, NULL, \
                   s.starts_at, s.ends_at, v.booking_deadline_hours, v.booking_opens_at, false) \
         ORDER BY s.starts_at LIMIT $4",
    )
    .bind(tenant.id.0)
    .bind(first_slot)
    .bind(tz)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(rows))
}
