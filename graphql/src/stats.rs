//! Booking statistics for integrators and staff (city admin, city staff, auditor, platform operator;
//! API keys with `statistics:read`): the same numbers as the admin UI and the Excel workbook, from
//! `platform::stats`. Another tenant's slug answers NOT_FOUND.

use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use chrono::NaiveDate;
use platform::staff::authz::{Act, Object as Obj};
use platform::stats;
use sqlx::PgPool;

use crate::ApiError;
use crate::auth;

#[derive(Default)]
pub struct StatsQuery;

/// How bookings are grouped in time (in the city's time zone; weeks start on Monday).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum StatPeriod {
    Day,
    Week,
    Month,
}

impl From<StatPeriod> for stats::Period {
    fn from(p: StatPeriod) -> Self {
        match p {
            StatPeriod::Day => Self::Day,
            StatPeriod::Week => Self::Week,
            StatPeriod::Month => Self::Month,
        }
    }
}

/// What a cross tab counts.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum StatMeasure {
    /// Live bookings, by appointment date.
    #[default]
    Bookings,
    /// Vaccinations recorded at the venues, by the date given.
    DosesGiven,
}

impl From<StatMeasure> for stats::Measure {
    fn from(m: StatMeasure) -> Self {
        match m {
            StatMeasure::Bookings => Self::Bookings,
            StatMeasure::DosesGiven => Self::DosesGiven,
        }
    }
}

/// The number of live bookings (or doses given) in one period, age band, sex, venue and dose (empty cells left out).
#[derive(SimpleObject)]
pub struct StatCell {
    /// First local day of the period (the Monday of a week, the 1st of a month).
    period_start: NaiveDate,
    /// 0-9, 10-19, … 50-59, 60-64 or 65+ (age on the appointment day).
    age_band: String,
    /// female, male, other or unknown.
    sex: String,
    /// Venue name.
    venue: String,
    /// 1, 2 or 3 (booster).
    dose: i32,
    count: i64,
}

#[Object]
impl StatsQuery {
    /// Cross tabulation of a municipality by period × age band × sex × venue × dose: of live
    /// bookings by appointment date (the default), or with `measure: DOSES_GIVEN` of the
    /// vaccinations recorded at the venues by the date given (NOT_FOUND for a city the caller does
    /// not work for).
    async fn booking_statistics(
        &self,
        ctx: &Context<'_>,
        slug: String,
        period: StatPeriod,
        #[graphql(default)] measure: StatMeasure,
    ) -> Result<Vec<StatCell>> {
        let pool = ctx.data::<PgPool>()?;
        let tenant = tenants::find_by_slug(pool, &slug)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("city".into()))?;
        let mut scope = auth::enter(ctx, tenant.id, Obj::Statistics, Act::Read).await?;
        let rows = stats::crosstab_for(&mut scope, period.into(), measure.into())
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|r| StatCell {
                period_start: r.period_start,
                age_band: r.age_band.to_owned(),
                sex: r.sex,
                venue: r.venue,
                dose: r.dose.into(),
                count: r.count,
            })
            .collect())
    }
}
