//! Statistics: cross tabulations by period × age band × sex × venue × dose of either live bookings
//! (status 'booked', by appointment) or doses given (`vaccination_records`, by the time of the
//! vaccination) — [`Measure`]. No HTTP here; every function runs in a tenant-scoped transaction.
//!
//! * The period is the appointment's (slot start's) day, ISO week (Monday first) or month in the
//!   **tenant's time zone**: a booking at Sunday 23:30 JST and one at Monday 00:10 JST fall on the
//!   same UTC day but in different weeks.
//! * Age bands are 10-year bands 0–9 … 50–59, then 60–64 and 65+, by the age on the appointment's
//!   local date.
//! * Sex is as stored (female, male, other, unknown); the venue is its name.

pub mod overview;

use chrono::NaiveDate;
use tenants::TenantTx;

use crate::exports::spreadsheet::{Cell, Column, ColumnKind, ExportError, XlsxExport};

/// The age bands, in order.
pub const AGE_BANDS: [&str; 8] = [
    "0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-64", "65+",
];

/// The doses a booking can be for (1 = first, 2 = second, 3 = booster).
pub const DOSES: [i16; 3] = [1, 2, 3];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    /// The `date_trunc` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The Excel sheet name.
    pub fn sheet_name(self) -> &'static str {
        match self {
            Self::Day => "日別",
            Self::Week => "週別",
            Self::Month => "月別",
        }
    }
}

/// What a cross tab counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Measure {
    /// Live bookings, by the appointment's (slot start's) local date.
    #[default]
    Bookings,
    /// Vaccinations recorded at intake, by the local date they were given, at the venue that gave
    /// them; the age is on that date.
    DosesGiven,
}

impl Measure {
    pub const ALL: [Measure; 2] = [Measure::Bookings, Measure::DosesGiven];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bookings => "bookings",
            Self::DosesGiven => "doses",
        }
    }

    /// The Excel sheet name of a table of this measure and period.
    pub fn sheet_name(self, period: Period) -> &'static str {
        match (self, period) {
            (Self::Bookings, p) => p.sheet_name(),
            (Self::DosesGiven, Period::Day) => "接種日別",
            (Self::DosesGiven, Period::Week) => "接種週別",
            (Self::DosesGiven, Period::Month) => "接種月別",
        }
    }
}

/// One cell of a cross tab: the number of live bookings in a period, age band, sex, venue and dose.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StatRow {
    /// First local day of the period (the Monday for weeks, the 1st for months).
    pub period_start: NaiveDate,
    pub age_band: &'static str,
    pub sex: String,
    pub venue: String,
    pub dose: i16,
    pub count: i64,
}

/// The age band of someone born on `birth` on the day `on`.
pub fn age_band(birth: NaiveDate, on: NaiveDate) -> &'static str {
    let age = on.years_since(birth).unwrap_or(0);
    AGE_BANDS[band_index(age as i32)]
}

fn band_index(age: i32) -> usize {
    match age {
        65.. => 7,
        60..=64 => 6,
        a => (a.max(0) / 10) as usize,
    }
}

/// Groups the rows of CTE `b` (local_at, birth_date, sex, venue, dose); `$1` the period.
macro_rules! crosstab_of {
    ($source:literal) => {
        concat!(
            "WITH b AS (",
            $source,
            ")
SELECT date_trunc($1, local_at)::date AS period_start,
       date_part('year', age(local_at::date, birth_date))::int AS age,
       sex, venue, dose, count(*) AS n
  FROM b
 GROUP BY 1, 2, 3, 4, 5"
        )
    };
}

const CROSSTAB: &str = crosstab_of!(
    "
    SELECT (s.starts_at AT TIME ZONE t.time_zone) AS local_at, r.birth_date, r.sex,
           v.name AS venue, bk.dose
      FROM bookings bk
      JOIN slots s ON s.tenant_id = bk.tenant_id AND s.id = bk.slot_id
      JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id
      JOIN residents r ON r.tenant_id = bk.tenant_id AND r.id = bk.resident_id
      JOIN tenants t ON t.id = bk.tenant_id
     WHERE bk.tenant_id = $2 AND bk.status = 'booked'
"
);

const DOSES_CROSSTAB: &str = crosstab_of!(
    "
    SELECT (c.vaccinated_at AT TIME ZONE t.time_zone) AS local_at, r.birth_date, r.sex,
           v.name AS venue, c.dose
      FROM vaccination_records c
      JOIN venues v ON v.tenant_id = c.tenant_id AND v.id = c.venue_id
      JOIN residents r ON r.tenant_id = c.tenant_id AND r.id = c.resident_id
      JOIN tenants t ON t.id = c.tenant_id
     WHERE c.tenant_id = $2
"
);

/// The cross tab of bookings for one period kind (see [`crosstab_of`]).
pub async fn crosstab(tx: &mut TenantTx, period: Period) -> Result<Vec<StatRow>, sqlx::Error> {
    crosstab_of(tx, period, Measure::Bookings).await
}

/// The cross tab of `measure` for one period kind, sorted by period, age band, sex, venue, dose;
/// empty cells are left out.
pub async fn crosstab_of(
    tx: &mut TenantTx,
    period: Period,
    measure: Measure,
) -> Result<Vec<StatRow>, sqlx::Error> {
    let tenant = tx.tenant_id();
    let sql = match measure {
        Measure::Bookings => CROSSTAB,
        Measure::DosesGiven => DOSES_CROSSTAB,
    };
    let rows: Vec<(NaiveDate, i32, String, String, i16, i64)> = sqlx::query_as(sql)
        .bind(period.as_str())
        .bind(tenant.0)
        .fetch_all(&mut **tx)
        .await?;
    // ages are grouped one by one in SQL, bands here: merge rows that share a band
    let mut merged =
        std::collections::BTreeMap::<(NaiveDate, usize, String, String, i16), i64>::new();
    for (period_start, age, sex, venue, dose, n) in rows {
        *merged
            .entry((period_start, band_index(age), sex, venue, dose))
            .or_default() += n;
    }
    Ok(merged
        .into_iter()
        .map(|((period_start, band, sex, venue, dose), count)| StatRow {
            period_start,
            age_band: AGE_BANDS[band],
            sex,
            venue,
            dose,
            count,
        })
        .collect())
}

/// Bookings by local day.
pub async fn by_day(tx: &mut TenantTx) -> Result<Vec<StatRow>, sqlx::Error> {
    crosstab(tx, Period::Day).await
}

/// Bookings by local ISO week (Monday first).
pub async fn by_week(tx: &mut TenantTx) -> Result<Vec<StatRow>, sqlx::Error> {
    crosstab(tx, Period::Week).await
}

/// Bookings by local month.
pub async fn by_month(tx: &mut TenantTx) -> Result<Vec<StatRow>, sqlx::Error> {
    crosstab(tx, Period::Month).await
}

/// One row of a pivoted table: the doses side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PivotRow {
    pub period_start: NaiveDate,
    pub venue: String,
    pub age_band: &'static str,
    pub sex: String,
    /// Bookings for dose 1, 2 and 3 (booster).
    pub doses: [i64; 3],
    pub total: i64,
}

/// Pivots cross-tab rows so each (period, venue, age band, sex) is one row with the doses as
/// columns; sorted by period, venue, age band (in band order), sex.
pub fn pivot(rows: &[StatRow]) -> Vec<PivotRow> {
    let mut map = std::collections::BTreeMap::<(NaiveDate, String, usize, String), [i64; 3]>::new();
    for r in rows {
        let band = AGE_BANDS.iter().position(|b| *b == r.age_band).unwrap_or(0);
        let cell = map
            .entry((r.period_start, r.venue.clone(), band, r.sex.clone()))
            .or_default();
        if let Some(i) = DOSES.iter().position(|d| *d == r.dose) {
            cell[i] += r.count;
        }
    }
    map.into_iter()
        .map(|((period_start, venue, band, sex), doses)| PivotRow {
            period_start,
            venue,
            age_band: AGE_BANDS[band],
            sex,
            total: doses.iter().sum(),
            doses,
        })
        .collect()
}

/// The column titles of each statistics sheet.
pub fn sheet_columns() -> Vec<Column> {
    vec![
        Column::new("期間開始", ColumnKind::Date),
        Column::new("会場", ColumnKind::Text),
        Column::new("年齢区分", ColumnKind::Text),
        Column::new("性別", ColumnKind::Text),
        Column::new("1回目", ColumnKind::Integer),
        Column::new("2回目", ColumnKind::Integer),
        Column::new("追加接種", ColumnKind::Integer),
        Column::new("合計", ColumnKind::Integer),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// The statistics workbook: one sheet per table, pivoted by dose — bookings (日別, 週別, 月別), then
/// doses given (接種日別, 接種週別, 接種月別).
pub async fn stats_xlsx(tx: &mut TenantTx) -> Result<Vec<u8>, StatsError> {
    let mut tables = Vec::new();
    for measure in Measure::ALL {
        for period in Period::ALL {
            tables.push((
                measure.sheet_name(period),
                pivot(&crosstab_of(tx, period, measure).await?),
            ));
        }
    }
    Ok(write_xlsx(&tables)?)
}

/// The cross tab of `measure` in the scope's tenant ([`crosstab_of`]).
pub async fn crosstab_for(
    scope: &mut crate::staff::authz::Scope,
    period: Period,
    measure: Measure,
) -> Result<Vec<StatRow>, sqlx::Error> {
    crosstab_of(&mut scope.tx, period, measure).await
}

/// The statistics workbook of the scope's tenant ([`stats_xlsx`]).
pub async fn workbook(scope: &mut crate::staff::authz::Scope) -> Result<Vec<u8>, StatsError> {
    stats_xlsx(&mut scope.tx).await
}

/// Writes already computed tables (sheet name, rows) as a workbook.
pub fn write_xlsx(tables: &[(&str, Vec<PivotRow>)]) -> Result<Vec<u8>, ExportError> {
    let mut book = XlsxExport::new();
    let columns = sheet_columns();
    for (name, rows) in tables {
        let mut sheet = book.sheet(name, &columns)?;
        for r in rows {
            sheet.push(&[
                Cell::Date(r.period_start),
                Cell::Text(r.venue.clone()),
                Cell::Text(r.age_band.to_owned()),
                Cell::Text(r.sex.clone()),
                Cell::Int(r.doses[0]),
                Cell::Int(r.doses[1]),
                Cell::Int(r.doses[2]),
                Cell::Int(r.total),
            ])?;
        }
        sheet.finish()?;
    }
    book.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("test data")
    }

    #[test]
    fn age_bands_follow_birthdays() {
        assert_eq!(age_band(d(2000, 6, 1), d(2010, 5, 31)), "0-9");
        assert_eq!(age_band(d(2000, 6, 1), d(2010, 6, 1)), "10-19");
        assert_eq!(age_band(d(1960, 1, 1), d(2024, 12, 31)), "60-64");
        assert_eq!(age_band(d(1960, 1, 1), d(2025, 1, 1)), "65+");
        assert_eq!(age_band(d(1970, 3, 1), d(2025, 3, 1)), "50-59");
    }

    #[test]
    fn pivot_puts_doses_side_by_side() {
        let row = |dose, count| StatRow {
            period_start: d(2026, 1, 5),
            age_band: "65+",
            sex: "female".into(),
            venue: "A".into(),
            dose,
            count,
        };
        let p = pivot(&[row(1, 2), row(3, 1)]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].doses, [2, 0, 1]);
        assert_eq!(p[0].total, 3);
    }
}
