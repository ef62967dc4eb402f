//! The city hall's overview (docs/statistics.md, "Overview"): every venue's fill rate by day, doses
//! given and the no-show rate — aggregates only, in the tenant's time zone. The admin UI draws the
//! charts (server-side SVG) from these numbers.
//!
//! **Doses given / no-shows** come from the intake records (`vaccination_records`,
//! `booking_visits`; docs/intake.md): a dose counts when the venue recorded it, a no-show when the
//! venue marked it, and bookings of past days nobody recorded anything for are counted apart as
//! "unrecorded" rather than guessed to be either.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::staff::authz::Scope;

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

/// Doses given (by dose 1, 2, booster) and what became of the day's bookings, on one local day.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DayOutcome {
    pub day: NaiveDate,
    /// Vaccinations recorded at intake (`vaccination_records`) on this local day, by dose.
    pub doses: [i64; 3],
    /// Live bookings of slots that have begun (the no-show rate's denominator).
    pub booked: i64,
    /// Of those, marked "no-show" at the venue.
    pub no_show: i64,
    /// Of those, on a day already over and never touched at the venue (no check-in, no no-show):
    /// the venue did not record what happened. Shown beside the rate, never guessed into it.
    pub unrecorded: i64,
}

impl DayOutcome {
    pub fn given(&self) -> i64 {
        self.doses.iter().sum()
    }
    pub fn no_show_percent(&self) -> Option<i64> {
        percent(self.no_show, self.booked)
    }
}

/// Doses given and no-shows per local day of `from..=to`, up to now, from the intake records:
/// doses by the local day of `vaccination_records.vaccinated_at`; bookings, no-shows and unrecorded
/// visits by the local day of the slot (live bookings only — a cancelled booking had no visit).
pub async fn outcomes_by_day(
    scope: &mut Scope,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayOutcome>, sqlx::Error> {
    let given: Vec<(NaiveDate, i16, i64)> = sqlx::query_as(
        "SELECT (r.vaccinated_at AT TIME ZONE t.time_zone)::date AS day, r.dose, count(*) \
           FROM vaccination_records r \
           JOIN tenants t ON t.id = r.tenant_id \
          WHERE r.tenant_id = $1 AND (r.vaccinated_at AT TIME ZONE t.time_zone)::date BETWEEN $2 AND $3 \
          GROUP BY 1, 2",
    )
    .bind(scope.tenant_id().0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *scope.tx)
    .await?;
    let visits: Vec<(NaiveDate, i64, i64, i64)> = sqlx::query_as(
        "SELECT (s.starts_at AT TIME ZONE t.time_zone)::date AS day, count(*), \
                count(*) FILTER (WHERE v.status = 'no_show'), \
                count(*) FILTER (WHERE coalesce(v.status, 'booked') = 'booked' \
                                   AND (s.starts_at AT TIME ZONE t.time_zone)::date \
                                       < (now() AT TIME ZONE t.time_zone)::date) \
           FROM bookings b \
           JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
           JOIN tenants t ON t.id = b.tenant_id \
           LEFT JOIN booking_visits v ON v.tenant_id = b.tenant_id AND v.booking_id = b.id \
          WHERE b.tenant_id = $1 AND b.status = 'booked' AND s.starts_at <= now() \
            AND (s.starts_at AT TIME ZONE t.time_zone)::date BETWEEN $2 AND $3 \
          GROUP BY 1",
    )
    .bind(scope.tenant_id().0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *scope.tx)
    .await?;
    Ok(merge_outcomes(&given, &visits))
}

/// One [`DayOutcome`] per day present in either list, in day order.
fn merge_outcomes(
    given: &[(NaiveDate, i16, i64)],
    visits: &[(NaiveDate, i64, i64, i64)],
) -> Vec<DayOutcome> {
    let mut days: std::collections::BTreeMap<NaiveDate, DayOutcome> = Default::default();
    for &(day, dose, n) in given {
        let d = days.entry(day).or_insert_with(|| DayOutcome {
            day,
            ..Default::default()
        });
        d.doses[(dose.clamp(1, 3) - 1) as usize] += n;
    }
    for &(day, booked, no_show, unrecorded) in visits {
        let d = days.entry(day).or_insert_with(|| DayOutcome {
            day,
            ..Default::default()
        });
        d.booked += booked;
        d.no_show += no_show;
        d.unrecorded += unrecorded;
    }
    days.into_values().collect()
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

    #[test]
    fn outcomes_merge_doses_and_visits_by_day() {
        let out = merge_outcomes(
            &[(d(2), 1, 3), (d(2), 2, 1), (d(3), 3, 2)],
            &[(d(1), 5, 1, 4), (d(2), 6, 2, 0)],
        );
        assert_eq!(out.len(), 3);
        assert_eq!(
            (out[0].day, out[0].given(), out[0].unrecorded),
            (d(1), 0, 4)
        );
        assert_eq!(
            (out[1].doses, out[1].booked, out[1].no_show),
            ([3, 1, 0], 6, 2)
        );
        assert_eq!(out[1].no_show_percent(), Some(33));
        assert_eq!((out[2].doses, out[2].no_show_percent()), ([0, 0, 2], None));
    }
}
