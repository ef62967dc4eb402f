//! The city hall's overview (docs/statistics.md, "Overview"): every venue's fill rate by day, doses
//! given and the no-show rate — aggregates only, in the tenant's time zone. The admin UI draws the
//! charts (server-side SVG) from these numbers.
//!
//! **Doses given / no-shows** need the intake records (`booking_visits` / `vaccination_records`),
//! which are being built on another branch. Until they land, [`outcomes_by_day`] — the ONE function
//! to switch — counts live bookings whose slot has already started as "given", knows no no-shows,
//! and says so in [`OutcomeSource`], which the page prints next to the chart.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::authz::Scope;

/// One venue on one local day: seats offered and seats booked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFill {
    pub day: NaiveDate,
    pub venue_id: Uuid,
    pub venue: String,
    pub capacity: i64,
    pub booked: i64,
}

impl DayFill {
    /// Booked seats in percent of capacity (None without capacity), rounded down.
    pub fn percent(&self) -> Option<i64> {
        percent(self.booked, self.capacity)
    }
}

pub fn percent(part: i64, whole: i64) -> Option<i64> {
    (whole > 0).then(|| part * 100 / whole)
}

/// Seats offered and booked per venue and local day, for days `from..=to`.
pub async fn fill_by_day(
    scope: &mut Scope,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayFill>, sqlx::Error> {
    let rows: Vec<(NaiveDate, Uuid, String, i64, i64)> = sqlx::query_as(
        "SELECT (s.starts_at AT TIME ZONE t.time_zone)::date AS day, v.id, v.name, \
                sum(s.capacity)::bigint, sum(s.booked)::bigint \
           FROM slots s \
           JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
           JOIN tenants t ON t.id = s.tenant_id \
          WHERE s.tenant_id = $1 AND (s.starts_at AT TIME ZONE t.time_zone)::date BETWEEN $2 AND $3 \
          GROUP BY 1, 2, 3 ORDER BY 1, 3",
    )
    .bind(scope.tenant_id().0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *scope.tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(day, venue_id, venue, capacity, booked)| DayFill {
            day,
            venue_id,
            venue,
            capacity,
            booked,
        })
        .collect())
}

/// All venues together per day: (day, capacity, booked), every day of `from..=to` present.
pub fn total_by_day(
    rows: &[DayFill],
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<(NaiveDate, i64, i64)> {
    from.iter_days()
        .take_while(|d| *d <= to)
        .map(|day| {
            let (c, b) = rows
                .iter()
                .filter(|r| r.day == day)
                .fold((0, 0), |(c, b), r| (c + r.capacity, b + r.booked));
            (day, c, b)
        })
        .collect()
}

/// Where the "doses given" and "no-show" numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeSource {
    /// Live bookings of days already begun (an estimate: everyone booked is counted as vaccinated;
    /// no-shows are unknown).
    BookedDoses,
    /// Recorded visits and vaccinations (intake).
    Visits,
}

impl OutcomeSource {
    pub fn label_ja(self) -> &'static str {
        match self {
            Self::BookedDoses => {
                "※ 接種実績（受付・接種記録）の導入前のため、実施済みの日の「予約数」を接種数の代わりに表示しています。無断キャンセル率はまだ集計できません。"
            }
            Self::Visits => "接種記録にもとづく実績です。",
        }
    }
    pub fn label_en(self) -> &'static str {
        match self {
            Self::BookedDoses => {
                "Note: vaccination records (intake) do not exist yet, so past days show BOOKED doses in place of doses given. The no-show rate cannot be computed yet."
            }
            Self::Visits => "From recorded vaccinations.",
        }
    }
}

/// Doses given (by dose 1, 2, booster) and no-shows on one local day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayOutcome {
    pub day: NaiveDate,
    pub doses: [i64; 3],
    /// People booked for the day who did not come; None while unknown.
    pub no_show: Option<i64>,
    /// People booked for the day (the no-show rate's denominator).
    pub booked: i64,
}

impl DayOutcome {
    pub fn given(&self) -> i64 {
        self.doses.iter().sum()
    }
    pub fn no_show_percent(&self) -> Option<i64> {
        self.no_show.and_then(|n| percent(n, self.booked))
    }
}

/// Doses given and no-shows per local day of `from..=to`, up to now. THE switch point: when the
/// intake tables land, count `vaccination_records` per day and dose here, no-shows as bookings of
/// past days without a visit, and return [`OutcomeSource::Visits`].
pub async fn outcomes_by_day(
    scope: &mut Scope,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(OutcomeSource, Vec<DayOutcome>), sqlx::Error> {
    let rows: Vec<(NaiveDate, i16, i64)> = sqlx::query_as(
        "SELECT (s.starts_at AT TIME ZONE t.time_zone)::date AS day, b.dose, count(*) \
           FROM bookings b \
           JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
           JOIN tenants t ON t.id = b.tenant_id \
          WHERE b.tenant_id = $1 AND b.status = 'booked' AND s.starts_at <= now() \
            AND (s.starts_at AT TIME ZONE t.time_zone)::date BETWEEN $2 AND $3 \
          GROUP BY 1, 2",
    )
    .bind(scope.tenant_id().0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *scope.tx)
    .await?;
    let mut days: Vec<DayOutcome> = Vec::new();
    for (day, dose, n) in rows {
        let i = days.iter().position(|d| d.day == day).unwrap_or_else(|| {
            days.push(DayOutcome {
                day,
                doses: [0; 3],
                no_show: None,
                booked: 0,
            });
            days.len() - 1
        });
        if let Some(slot) = days[i].doses.get_mut((dose.clamp(1, 3) - 1) as usize) {
            *slot += n;
        }
        days[i].booked += n;
    }
    days.sort_by_key(|d| d.day);
    Ok((OutcomeSource::BookedDoses, days))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, day).expect("date")
    }

    #[test]
    fn totals_cover_every_day_and_sum_venues() {
        let rows = vec![
            DayFill {
                day: d(2),
                venue_id: Uuid::nil(),
                venue: "A".into(),
                capacity: 10,
                booked: 5,
            },
            DayFill {
                day: d(2),
                venue_id: Uuid::max(),
                venue: "B".into(),
                capacity: 30,
                booked: 30,
            },
        ];
        let t = total_by_day(&rows, d(1), d(3));
        assert_eq!(t, vec![(d(1), 0, 0), (d(2), 40, 35), (d(3), 0, 0)]);
        assert_eq!(percent(35, 40), Some(87));
        assert_eq!(percent(0, 0), None);
    }
}
