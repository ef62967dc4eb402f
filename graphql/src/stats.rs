//! Booking statistics for integrators and staff (city admin, city staff, auditor, platform operator;
//! API keys with `statistics:read`): the same numbers as the admin UI and the Excel workbook, from
//! `platform::stats`. Another tenant's slug answers NOT_FOUND.

use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use platform::staff::authz::{Act, Object as Obj};
use platform::stats;
use sqlx::PgPool;

use crate::ApiError;
use crate::auth;
use crate::booking::DoseValue;
use crate::enums::Sex;
use crate::scalars::Date;

/// Booking statistics.
#[derive(Default)]
pub struct StatsQuery;

/// How bookings are grouped in time (in the city's time zone; weeks start on Monday).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum StatPeriod {
    /// One local day.
    Day,
    /// Monday to Sunday.
    Week,
    /// A calendar month.
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

/// An age band: age on the appointment day (or on the day the dose was given).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AgeBand {
    /// 0 to 9 years.
    #[graphql(name = "AGE_0_9")]
    Age0To9,
    /// 10 to 19 years.
    #[graphql(name = "AGE_10_19")]
    Age10To19,
    /// 20 to 29 years.
    #[graphql(name = "AGE_20_29")]
    Age20To29,
    /// 30 to 39 years.
    #[graphql(name = "AGE_30_39")]
    Age30To39,
    /// 40 to 49 years.
    #[graphql(name = "AGE_40_49")]
    Age40To49,
    /// 50 to 59 years.
    #[graphql(name = "AGE_50_59")]
    Age50To59,
    /// 60 to 64 years.
    #[graphql(name = "AGE_60_64")]
    Age60To64,
    /// 65 years and older.
    #[graphql(name = "AGE_65_PLUS")]
    Age65Plus,
}

impl AgeBand {
    /// In the order of `platform::stats::AGE_BANDS`.
    const ALL: [AgeBand; 8] = [
        Self::Age0To9,
        Self::Age10To19,
        Self::Age20To29,
        Self::Age30To39,
        Self::Age40To49,
        Self::Age50To59,
        Self::Age60To64,
        Self::Age65Plus,
    ];

    /// From the platform's band label (`0-9` … `65+`).
    fn from_platform(band: &str) -> Self {
        stats::AGE_BANDS
            .iter()
            .position(|b| *b == band)
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(Self::Age65Plus)
    }
}

/// The number of live bookings (or doses given) in one period, age band, sex, venue and dose (empty cells left out).
#[derive(SimpleObject)]
pub struct StatCell {
    /// First local day of the period (the Monday of a week, the 1st of a month).
    period_start: Date,
    /// Age band (age on the appointment day, or on the day the dose was given).
    age_band: AgeBand,
    /// Sex as the register records it.
    sex: Sex,
    /// Venue name.
    venue: String,
    /// The dose.
    dose: DoseValue,
    /// Bookings (or doses given) in this cell; never 0 (empty cells are left out).
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
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "How the counts are grouped in time.")] period: StatPeriod,
        #[graphql(default, desc = "What is counted (default: live bookings).")]
        measure: StatMeasure,
    ) -> Result<Vec<StatCell>> {
        let pool = ctx.data::<PgPool>()?;
        let tenant = tenants::find_by_slug(pool, &city)
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
                period_start: Date(r.period_start),
                age_band: AgeBand::from_platform(r.age_band),
                sex: Sex::from_platform(&r.sex),
                venue: r.venue,
                dose: platform::booking::Dose::from_number(r.dose)
                    .map_or(DoseValue::Booster, DoseValue::from),
                count: r.count,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_age_band_has_its_own_enum_value() {
        for (i, band) in stats::AGE_BANDS.iter().enumerate() {
            assert_eq!(AgeBand::from_platform(band), AgeBand::ALL[i]);
        }
    }
}
