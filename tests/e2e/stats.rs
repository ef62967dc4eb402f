//! Statistics (issue 6): a seeded data set with known answers; every cross-tab cell is computed
//! again here in plain Rust over the seed list and compared; weeks follow the tenant's time zone
//! (Asia/Tokyo), not UTC; the Excel workbook and the GraphQL query give the same numbers.

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use platform::staff::authz::Role;
use platform::stats::{self, Period};
use serde_json::json;
use tenants::TenantId;
use uuid::Uuid;

use crate::support::{empty_tenant, spawn_app};

struct Seed {
    birth: (i32, u32, u32),
    sex: &'static str,
    venue: usize,
    /// Local (JST) appointment time.
    at: (i32, u32, u32, u32, u32),
    dose: i16,
    cancelled: bool,
}

const VENUES: [&str; 2] = ["市民ホール", "中央病院"];

const fn s(
    birth: (i32, u32, u32),
    sex: &'static str,
    venue: usize,
    at: (i32, u32, u32, u32, u32),
    dose: i16,
    cancelled: bool,
) -> Seed {
    Seed {
        birth,
        sex,
        venue,
        at,
        dose,
        cancelled,
    }
}

/// 2026-01-04 is a Sunday, 2026-01-05 a Monday.
const SEEDS: [Seed; 14] = [
    // either side of a local week boundary, both on UTC day 2026-01-04
    s((1950, 5, 1), "female", 0, (2026, 1, 4, 23, 30), 1, false),
    s((1950, 5, 1), "female", 0, (2026, 1, 5, 0, 10), 1, false),
    // birthday on the appointment day: 65 that day (65+), 64 the day before (60-64)
    s((1961, 1, 6), "male", 0, (2026, 1, 6, 9, 0), 1, false),
    s((1961, 1, 6), "male", 0, (2026, 1, 5, 9, 0), 2, false),
    // a cancelled booking that must not count
    s((1990, 7, 7), "male", 0, (2026, 1, 5, 10, 0), 1, true),
    s((1990, 7, 7), "male", 1, (2026, 1, 5, 10, 0), 1, false),
    s((2016, 3, 3), "other", 1, (2026, 1, 7, 14, 0), 1, false),
    s((2017, 3, 3), "unknown", 1, (2026, 1, 7, 14, 0), 3, false),
    s((1980, 12, 31), "female", 1, (2026, 1, 7, 14, 30), 2, false),
    // either side of a local month boundary, both on UTC day 2026-01-31
    s((1975, 2, 2), "female", 0, (2026, 1, 31, 23, 50), 1, false),
    s((1975, 2, 2), "female", 0, (2026, 2, 1, 8, 0), 1, false),
    s((2000, 2, 29), "male", 1, (2026, 2, 28, 12, 0), 3, false),
    s((1955, 8, 8), "female", 1, (2026, 3, 2, 0, 5), 1, false),
    s((1999, 1, 1), "male", 1, (2026, 3, 2, 0, 5), 2, false),
];

fn local(at: (i32, u32, u32, u32, u32)) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(at.0, at.1, at.2)
        .expect("test data")
        .and_hms_opt(at.3, at.4, 0)
        .expect("test data")
}

fn expected_band(birth: NaiveDate, on: NaiveDate) -> &'static str {
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    match age {
        a if a >= 65 => "65+",
        a if a >= 60 => "60-64",
        a if a >= 50 => "50-59",
        a if a >= 40 => "40-49",
        a if a >= 30 => "30-39",
        a if a >= 20 => "20-29",
        a if a >= 10 => "10-19",
        _ => "0-9",
    }
}

type Key = (NaiveDate, String, String, String, i16);

fn expected(period: Period) -> BTreeMap<Key, i64> {
    tally(
        period,
        SEEDS
            .iter()
            .filter(|s| !s.cancelled)
            .map(|s| (s, local(s.at))),
    )
}

/// Counts seeds per cell, each on the local time given with it.
fn tally<'a>(
    period: Period,
    items: impl Iterator<Item = (&'a Seed, NaiveDateTime)>,
) -> BTreeMap<Key, i64> {
    let mut map = BTreeMap::new();
    for (seed, at) in items {
        let day = at.date();
        let start = match period {
            Period::Day => day,
            Period::Week => day - Duration::days(day.weekday().num_days_from_monday().into()),
            Period::Month => day.with_day(1).expect("test data"),
        };
        let birth =
            NaiveDate::from_ymd_opt(seed.birth.0, seed.birth.1, seed.birth.2).expect("test data");
        *map.entry((
            start,
            expected_band(birth, day).to_owned(),
            seed.sex.to_owned(),
            VENUES[seed.venue].to_owned(),
            seed.dose,
        ))
        .or_insert(0) += 1;
    }
    map
}

fn as_map(rows: &[stats::StatRow]) -> BTreeMap<Key, i64> {
    let mut map = BTreeMap::new();
    for r in rows {
        let old = map.insert(
            (
                r.period_start,
                r.age_band.to_owned(),
                r.sex.clone(),
                r.venue.clone(),
                r.dose,
            ),
            r.count,
        );
        assert!(old.is_none(), "a cell appears twice: {r:?}");
    }
    map
}

/// Inserts the seed list with the owner's pool (arranging, not the code under test).
async fn seed(owner: &sqlx::PgPool, t: TenantId) {
    let t = t.0;
    let vaccine = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO vaccines (tenant_id, id, name, maker, doses, min_interval_days, \
         booster_interval_months, days_until_effective, validity_days) \
         VALUES ($1, $2, 'テストワクチン', 'maker', 3, 21, 6, 14, 365)",
    )
    .bind(t)
    .bind(vaccine)
    .execute(owner)
    .await
    .expect("vaccine");
    let mut venues = Vec::new();
    for (i, name) in VENUES.iter().enumerate() {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO venues (tenant_id, id, name, kind, vaccine_id) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(t)
        .bind(id)
        .bind(*name)
        .bind(if i == 0 { "mass" } else { "hospital" })
        .bind(vaccine)
        .execute(owner)
        .await
        .expect("venue");
        venues.push(id);
    }
    let mut slots = BTreeMap::<(usize, NaiveDateTime), Uuid>::new();
    for (n, sd) in SEEDS.iter().enumerate() {
        let at = local(sd.at);
        let slot = match slots.get(&(sd.venue, at)) {
            Some(id) => *id,
            None => {
                let id = Uuid::new_v4();
                // JST has no daylight saving: UTC = local - 9 h
                let starts = (at - Duration::hours(9)).and_utc();
                sqlx::query(
                    "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
                     VALUES ($1, $2, $3, $4, $5, 20)",
                )
                .bind(t)
                .bind(id)
                .bind(venues[sd.venue])
                .bind(starts)
                .bind(starts + Duration::minutes(30))
                .execute(owner)
                .await
                .expect("slot");
                slots.insert((sd.venue, at), id);
                id
            }
        };
        let resident = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO residents (tenant_id, id, ticket_no, birth_date, kana_name, sex) \
             VALUES ($1, $2, $3, $4, 'テスト', $5)",
        )
        .bind(t)
        .bind(resident)
        .bind(format!("{:010}", n + 1))
        .bind(NaiveDate::from_ymd_opt(sd.birth.0, sd.birth.1, sd.birth.2).expect("test data"))
        .bind(sd.sex)
        .execute(owner)
        .await
        .expect("resident");
        sqlx::query(
            "INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, status, \
             booked_by, group_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $3, $2)",
        )
        .bind(t)
        .bind(Uuid::new_v4())
        .bind(resident)
        .bind(slot)
        .bind(vaccine)
        .bind(sd.dose)
        .bind(if sd.cancelled { "cancelled" } else { "booked" })
        .execute(owner)
        .await
        .expect("booking");
    }
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("test data")
}

#[tokio::test]
async fn stats_every_cell_matches_an_independent_count_and_weeks_follow_tokyo() {
    let app = spawn_app().await;
    let t = empty_tenant(&app.pool, "statcity", "statcity", "141003").await;
    seed(&app.owner, t).await;

    for period in Period::ALL {
        let mut tx = tenants::begin(&app.pool, t).await.expect("scope");
        let rows = stats::crosstab(&mut tx, period).await.expect("crosstab");
        tx.commit().await.expect("commit");
        assert_eq!(as_map(&rows), expected(period), "{period:?}");
        let total: i64 = rows.iter().map(|r| r.count).sum();
        assert_eq!(
            total, 13,
            "{period:?}: the cancelled booking does not count"
        );
    }

    // Sunday 23:30 and Monday 00:10 JST are the same UTC day but different local weeks.
    let mut tx = tenants::begin(&app.pool, t).await.expect("scope");
    let weeks = stats::by_week(&mut tx).await.expect("weeks");
    let days = stats::by_day(&mut tx).await.expect("days");
    let months = stats::by_month(&mut tx).await.expect("months");
    tx.commit().await.expect("commit");
    let cell = |rows: &[stats::StatRow], start, band: &str, sex: &str, venue: &str, dose| {
        rows.iter()
            .find(|r| {
                r.period_start == start
                    && r.age_band == band
                    && r.sex == sex
                    && r.venue == venue
                    && r.dose == dose
            })
            .map_or(0, |r| r.count)
    };
    assert_eq!(
        cell(&weeks, d(2025, 12, 29), "65+", "female", "市民ホール", 1),
        1
    );
    assert_eq!(
        cell(&weeks, d(2026, 1, 5), "65+", "female", "市民ホール", 1),
        1
    );
    assert_eq!(
        cell(&days, d(2026, 1, 4), "65+", "female", "市民ホール", 1),
        1
    );
    assert_eq!(
        cell(&days, d(2026, 1, 5), "65+", "female", "市民ホール", 1),
        1
    );
    assert!(
        weeks
            .iter()
            .all(|r| r.period_start.weekday() == chrono::Weekday::Mon)
    );
    // the month boundary, likewise in local time
    assert_eq!(
        cell(&months, d(2026, 1, 1), "50-59", "female", "市民ホール", 1),
        1
    );
    assert_eq!(
        cell(&months, d(2026, 2, 1), "50-59", "female", "市民ホール", 1),
        1
    );
    // a birthday on the appointment day counts
    assert_eq!(
        cell(&days, d(2026, 1, 6), "65+", "male", "市民ホール", 1),
        1
    );
    assert_eq!(
        cell(&days, d(2026, 1, 5), "60-64", "male", "市民ホール", 2),
        1
    );

    // pivot: doses side by side, totals add up
    let pivot = stats::pivot(&weeks);
    assert_eq!(pivot.iter().map(|p| p.total).sum::<i64>(), 13);
    for p in &pivot {
        assert_eq!(p.total, p.doses.iter().sum::<i64>());
    }
}

#[tokio::test]
async fn stats_xlsx_has_one_japanese_sheet_per_table_matching_the_numbers() {
    let app = spawn_app().await;
    let t = empty_tenant(&app.pool, "statxlsx", "statxlsx", "141003").await;
    seed(&app.owner, t).await;
    let mut tx = tenants::begin(&app.pool, t).await.expect("scope");
    let bytes = stats::stats_xlsx(&mut tx).await.expect("xlsx");
    tx.commit().await.expect("commit");

    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("open");
    assert_eq!(
        wb.sheet_names(),
        vec!["日別", "週別", "月別", "接種日別", "接種週別", "接種月別"]
    );
    for period in Period::ALL {
        let range = wb.worksheet_range(period.sheet_name()).expect("sheet");
        assert_eq!(range.get((0, 0)), Some(&Data::String("期間開始".into())));
        assert_eq!(range.get((0, 7)), Some(&Data::String("合計".into())));
        // the expected pivot, built from the independent count
        let mut want = BTreeMap::<(NaiveDate, String, String, String), [i64; 3]>::new();
        for ((start, band, sex, venue, dose), n) in expected(period) {
            want.entry((start, venue, band, sex)).or_default()[(dose - 1) as usize] += n;
        }
        let mut got = BTreeMap::new();
        for row in range.rows().skip(1) {
            let start = match &row[0] {
                Data::DateTime(x) => x.as_datetime().expect("test data").date(),
                other => panic!("not a date: {other:?}"),
            };
            let text = |c: &Data| c.to_string();
            let num = |c: &Data| match c {
                Data::Float(f) => *f as i64,
                Data::Int(i) => *i,
                other => panic!("not a number: {other:?}"),
            };
            let doses = [num(&row[4]), num(&row[5]), num(&row[6])];
            assert_eq!(num(&row[7]), doses.iter().sum::<i64>());
            got.insert((start, text(&row[1]), text(&row[2]), text(&row[3])), doses);
        }
        assert_eq!(got, want, "{period:?}");
    }
}

/// Every live seed with an even index was given its dose 20 minutes after its appointment began:
/// a vaccination record as intake writes it (owner pool: arranging only).
async fn record_doses(owner: &sqlx::PgPool, t: TenantId) {
    sqlx::query(
        "INSERT INTO vaccination_records (tenant_id, id, booking_id, resident_id, venue_id, dose, \
         vaccine_id, lot_number, dose_ml, vaccinator, vaccinated_at, recorded_by) \
         SELECT b.tenant_id, gen_random_uuid(), b.id, b.resident_id, s.venue_id, b.dose, b.vaccine_id, \
                'LOT-1', 0.3, 'Dr. Kato', s.starts_at + interval '20 minutes', 'nurse@stat.test' \
           FROM bookings b JOIN slots s ON s.id = b.slot_id JOIN residents r ON r.id = b.resident_id \
          WHERE b.tenant_id = $1 AND b.status = 'booked' AND r.ticket_no::bigint % 2 = 1",
    )
    .bind(t.0)
    .execute(owner)
    .await
    .expect("records");
}

fn expected_doses(period: Period) -> BTreeMap<Key, i64> {
    tally(
        period,
        SEEDS
            .iter()
            .enumerate()
            .filter(|(n, s)| !s.cancelled && n % 2 == 0)
            .map(|(_, s)| (s, local(s.at) + Duration::minutes(20))),
    )
}

#[tokio::test]
async fn doses_given_count_vaccinations_on_the_local_day_they_were_given() {
    let app = spawn_app().await;
    let t = empty_tenant(&app.pool, "statdoses", "statdoses", "141003").await;
    seed(&app.owner, t).await;
    record_doses(&app.owner, t).await;
    // 23:50 on 31 January plus 20 minutes is 1 February: a dose given in another month than its
    // appointment's day, which only counting by the vaccination's own time gets right
    let doses = expected_doses(Period::Month);
    assert!(doses.keys().any(|k| k.0 == d(2026, 2, 1) && k.4 == 1));
    for period in Period::ALL {
        let mut tx = tenants::begin(&app.pool, t).await.expect("scope");
        let rows = stats::crosstab_of(&mut tx, period, stats::Measure::DosesGiven)
            .await
            .expect("crosstab");
        tx.commit().await.expect("commit");
        assert_eq!(as_map(&rows), expected_doses(period), "{period:?}");
    }
    // the same numbers over GraphQL (measure: DOSES_GIVEN) and on the admin page
    let mut admin = app
        .staff_client("admin@statdoses.test", Some((t, Role::CityAdmin, &[][..])))
        .await;
    let v = admin
        .graphql(
            "query($slug: String!) { bookingStatistics(city: $slug, period: MONTH, measure: DOSES_GIVEN) \
             { periodStart ageBand sex venue dose count } }",
            json!({ "slug": "statdoses" }),
        )
        .await;
    let cells = v["data"]["bookingStatistics"].as_array().expect("cells");
    let total: i64 = cells
        .iter()
        .map(|c| c["count"].as_i64().expect("count"))
        .sum();
    assert_eq!(
        total,
        expected_doses(Period::Month).values().sum::<i64>(),
        "{v}"
    );
    let page = admin
        .get("/admin/t/statdoses/statistics?period=month&measure=doses")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("<strong>Doses given (by date given)</strong>"),
        "{page}"
    );
    let rows = stats::pivot(
        &expected_doses(Period::Month)
            .into_iter()
            .map(
                |((period_start, band, sex, venue, dose), count)| stats::StatRow {
                    period_start,
                    age_band: stats::AGE_BANDS
                        .iter()
                        .copied()
                        .find(|b| *b == band)
                        .expect("band"),
                    sex,
                    venue,
                    dose,
                    count,
                },
            )
            .collect::<Vec<_>>(),
    );
    let table = page
        .split("id=\"statistics\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("the table");
    assert_eq!(
        table.matches("<tr>").count(),
        rows.len(),
        "one row per pivot row"
    );
}

/// The platform's age band of a GraphQL `AgeBand` value (`AGE_0_9` → `0-9`, `AGE_65_PLUS` → `65+`).
fn band_of(value: &str) -> String {
    let band = value.strip_prefix("AGE_").expect("an AgeBand value");
    match band.strip_suffix("_PLUS") {
        Some(from) => format!("{from}+"),
        None => band.replace('_', "-"),
    }
}

/// The platform's dose number of a GraphQL `Dose` value.
fn dose_of(value: &str) -> i16 {
    match value {
        "FIRST" => 1,
        "SECOND" => 2,
        "BOOSTER" => 3,
        other => panic!("not a Dose: {other}"),
    }
}

const QUERY: &str = "query($slug: String!, $period: StatPeriod!) {
    bookingStatistics(city: $slug, period: $period) { periodStart ageBand sex venue dose count } }";

#[tokio::test]
async fn stats_graphql_matches_the_domain_numbers_and_is_guarded() {
    let app = spawn_app().await;
    let t = empty_tenant(&app.pool, "statgql", "statgql", "141003").await;
    let other = empty_tenant(&app.pool, "statother", "statother", "141305").await;
    seed(&app.owner, t).await;

    let roles = [
        ("admin@stat.test", Some((t, Role::CityAdmin, &[][..]))),
        ("staff@stat.test", Some((t, Role::CityStaff, &[][..]))),
        ("auditor@stat.test", Some((t, Role::Auditor, &[][..]))),
        ("operator@stat.test", None),
    ];
    for (email, role) in roles {
        let mut client = app.staff_client(email, role).await;
        for (period, name) in [
            (Period::Day, "DAY"),
            (Period::Week, "WEEK"),
            (Period::Month, "MONTH"),
        ] {
            let v = client
                .graphql(QUERY, json!({ "slug": "statgql", "period": name }))
                .await;
            assert!(v["errors"].is_null(), "{email}: {v}");
            let mut got = BTreeMap::new();
            for c in v["data"]["bookingStatistics"].as_array().expect("list") {
                got.insert(
                    (
                        c["periodStart"]
                            .as_str()
                            .expect("test data")
                            .parse::<NaiveDate>()
                            .expect("test data"),
                        band_of(c["ageBand"].as_str().expect("test data")),
                        c["sex"].as_str().expect("test data").to_lowercase(),
                        c["venue"].as_str().expect("test data").to_owned(),
                        dose_of(c["dose"].as_str().expect("test data")),
                    ),
                    c["count"].as_i64().expect("test data"),
                );
            }
            let mut tx = tenants::begin(&app.pool, t).await.expect("scope");
            let rows = stats::crosstab(&mut tx, period).await.expect("crosstab");
            tx.commit().await.expect("commit");
            assert_eq!(got, as_map(&rows), "{email} {name}");
            assert_eq!(got, expected(period), "{email} {name}");
        }
    }

    let code = |v: &serde_json::Value| {
        v["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_owned)
    };
    // another tenant's admin: the city does not exist for them
    let mut outsider = app
        .staff_client("other@stat.test", Some((other, Role::CityAdmin, &[][..])))
        .await;
    let v = outsider
        .graphql(QUERY, json!({ "slug": "statgql", "period": "DAY" }))
        .await;
    assert_eq!(code(&v).as_deref(), Some("NOT_FOUND"), "{v}");
    let v = outsider
        .graphql(QUERY, json!({ "slug": "nosuchcity", "period": "DAY" }))
        .await;
    assert_eq!(code(&v).as_deref(), Some("NOT_FOUND"), "{v}");
    // the call centre has no statistics rights
    let mut call = app
        .staff_client("call@stat.test", Some((t, Role::CallCenter, &[][..])))
        .await;
    let v = call
        .graphql(QUERY, json!({ "slug": "statgql", "period": "DAY" }))
        .await;
    assert_eq!(code(&v).as_deref(), Some("FORBIDDEN"), "{v}");
    // anonymous callers learn nothing
    let v = app
        .graphql(QUERY, json!({ "slug": "statgql", "period": "DAY" }))
        .await;
    assert!(
        v["data"].is_null() || v["data"]["bookingStatistics"].is_null(),
        "{v}"
    );
}

#[tokio::test]
async fn stats_admin_page_and_workbook_download_per_role() {
    let app = spawn_app().await;
    let t = empty_tenant(&app.pool, "statpage", "statpage", "141003").await;
    seed(&app.owner, t).await;
    let mut staff = app
        .staff_client("staff@page.test", Some((t, Role::CityStaff, &[][..])))
        .await;
    let res = staff.get("/admin/t/statpage/statistics?period=week").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("body");
    assert!(
        html.contains("2025-12-29") && html.contains("市民ホール"),
        "{html}"
    );
    let res = staff.get("/admin/t/statpage/statistics.xlsx").await;
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.expect("body");
    let wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("open");
    assert_eq!(
        wb.sheet_names(),
        vec!["日別", "週別", "月別", "接種日別", "接種週別", "接種月別"]
    );

    let mut call = app
        .staff_client("call@page.test", Some((t, Role::CallCenter, &[][..])))
        .await;
    assert_eq!(call.get("/admin/t/statpage/statistics").await.status(), 403);
    assert_eq!(
        call.get("/admin/t/statpage/statistics.xlsx").await.status(),
        403
    );
}
