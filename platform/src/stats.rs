//! Statistics: cross tabulations of live bookings (status 'booked') by period × age band × sex ×
//! venue × dose. No HTTP here; every function runs in a tenant-scoped transaction.
//!
//! * The period is the appointment's (slot start's) day, ISO week (Monday first) or month in the
//!   **tenant's time zone**: a booking at Sunday 23:30 JST and one at Monday 00:10 JST fall on the
//!   same UTC day but in different weeks.
//! * Age bands are 10-year bands 0–9 … 50–59, then 60–64 and 65+, by the age on the appointment's
//!   local date.
//! * Sex is as stored (female, male, other, unknown); the venue is its name.

use chrono::NaiveDate;
use tenants::TenantTx;

use crate::export::{Cell, Column, ColumnKind, ExportError, XlsxExport};

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

const CROSSTAB: &str = "\
WITH b AS (
    SELECT (s.starts_at AT TIME ZONE t.time_zone) AS local_at, r.birth_date, r.sex,
           v.name AS venue, bk.dose
      FROM bookings bk
      JOIN slots s ON s.tenant_id = bk.tenant_id AND s.id = bk.slot_id
      JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id
      JOIN residents r ON r.tenant_id = bk.tenant_id AND r.id = bk.resident_id
      JOIN tenants t ON t.id = bk.tenant_id
     WHERE bk.tenant_id = $2 AND bk.status = 'booked'
)
SELECT date_trunc($1, local_at)::date AS period_start,
       date_part('year', age(local_at::date, birth_date))::int AS age,
       sex, venue, dose, count(*) AS n
  FROM b
 GROUP BY 1, 2, 3, 4, 5";

/// The cross tab for one period kind, sorted by period, age band, sex, venue, dose; cells with
/// no bookings are left out.
pub async fn crosstab(tx: &mut TenantTx, period: Period) -> Result<Vec<StatRow>, sqlx::Error> {
    let tenant = tx.tenant_id();
    let rows: Vec<(NaiveDate, i32, String, String, i16, i64)> = sqlx::query_as(CROSSTAB)
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

/// The statistics workbook: one sheet per table (日別, 週別, 月別), pivoted by dose.
pub async fn stats_xlsx(tx: &mut TenantTx) -> Result<Vec<u8>, StatsError> {
    let mut tables = Vec::new();
    for period in Period::ALL {
        tables.push((period, pivot(&crosstab(tx, period).await?)));
    }
    Ok(write_xlsx(&tables)?)
}

/// Writes already computed tables as a workbook.
pub fn write_xlsx(tables: &[(Period, Vec<PivotRow>)]) -> Result<Vec<u8>, ExportError> {
    let mut book = XlsxExport::new();
    let columns = sheet_columns();
    for (period, rows) in tables {
        let mut sheet = book.sheet(period.sheet_name(), &columns)?;
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
