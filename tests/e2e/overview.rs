//! The city hall's overview (docs/statistics.md, "Overview"): fill rate by day for all venues and
//! per venue, doses given (booked doses of past days until intake lands, labelled as such), the
//! server-drawn SVG charts, and who may open the page.

use chrono::{Duration, NaiveDate, Utc};
use platform::staff::authz::Role;
use sqlx::PgPool;
use tenants::TenantId;
use uuid::Uuid;

use crate::support::{PASSWORD, bare_tenant, role_clients, spawn_app};

async fn slot(
    owner: &PgPool,
    t: TenantId,
    venue: Uuid,
    day: NaiveDate,
    capacity: i32,
    booked: i32,
) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity, booked) \
         VALUES ($1, $2, $3, ($4::date + time '10:00') AT TIME ZONE 'Asia/Tokyo', \
                 ($4::date + time '10:30') AT TIME ZONE 'Asia/Tokyo', $5, $6)",
    )
    .bind(t.0)
    .bind(id)
    .bind(venue)
    .bind(day)
    .bind(capacity)
    .bind(booked)
    .execute(owner)
    .await
    .expect("slot");
    id
}

/// Venue 会場A: yesterday 4 of 10 booked (three 1st doses, one 2nd), tomorrow 20 of 20;
/// venue 会場B: yesterday 0 of 10. A cancelled booking yesterday counts nowhere. At 会場A the
/// venue recorded yesterday: the 1st dose of booking 0 and the 2nd dose of booking 3 given, booking 1
/// a no-show; booking 2 nothing at all.
async fn arrange(owner: &PgPool, t: TenantId, today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let (yesterday, tomorrow) = (today - Duration::days(1), today + Duration::days(1));
    let vaccine = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO vaccines (tenant_id, id, name, maker, doses, min_interval_days, booster_interval_months, \
         days_until_effective, validity_days) VALUES ($1, $2, 'テストワクチン', 'maker', 2, 21, 6, 14, 180)",
    )
    .bind(t.0)
    .bind(vaccine)
    .execute(owner)
    .await
    .expect("vaccine");
    let mut venues = Vec::new();
    for name in ["会場A", "会場B"] {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO venues (tenant_id, id, name, kind, vaccine_id) VALUES ($1, $2, $3, 'mass', $4)",
        )
        .bind(t.0)
        .bind(id)
        .bind(name)
        .bind(vaccine)
        .execute(owner)
        .await
        .expect("venue");
        venues.push(id);
    }
    let past = slot(owner, t, venues[0], yesterday, 10, 4).await;
    slot(owner, t, venues[0], tomorrow, 20, 20).await;
    slot(owner, t, venues[1], yesterday, 10, 0).await;
    for (n, (dose, status)) in [
        (1, "booked"),
        (1, "booked"),
        (1, "booked"),
        (2, "booked"),
        (1, "cancelled"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = Uuid::now_v7();
        let booking = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO residents (tenant_id, id, ticket_no, birth_date, kana_name, sex) \
             VALUES ($1, $2, $3, '1960-01-01', 'テスト', 'female')",
        )
        .bind(t.0)
        .bind(r)
        .bind(format!("30000000{n:02}"))
        .execute(owner)
        .await
        .expect("resident");
        sqlx::query(
            "INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, status, booked_by, group_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $3, $2)",
        )
        .bind(t.0)
        .bind(booking)
        .bind(r)
        .bind(past)
        .bind(vaccine)
        .bind(dose as i16)
        .bind(status)
        .execute(owner)
        .await
        .expect("booking");
        let visit = match n {
            0 | 3 => "released",
            1 => "no_show",
            _ => continue,
        };
        sqlx::query(
            "INSERT INTO booking_visits (tenant_id, booking_id, venue_id, status, updated_by) \
             VALUES ($1, $2, $3, $4, 'nurse@ovcity.example')",
        )
        .bind(t.0)
        .bind(booking)
        .bind(venues[0])
        .bind(visit)
        .execute(owner)
        .await
        .expect("visit");
        if visit == "released" {
            sqlx::query(
                "INSERT INTO vaccination_records (tenant_id, id, booking_id, resident_id, venue_id, dose, \
                 vaccine_id, lot_number, dose_ml, vaccinator, vaccinated_at, recorded_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'LOT-1', 0.3, 'Dr. Kato', \
                         ($8::date + time '10:05') AT TIME ZONE 'Asia/Tokyo', 'nurse@ovcity.example')",
            )
            .bind(t.0)
            .bind(Uuid::now_v7())
            .bind(booking)
            .bind(r)
            .bind(venues[0])
            .bind(dose as i16)
            .bind(vaccine)
            .bind(yesterday)
            .execute(owner)
            .await
            .expect("record");
        }
    }
    (yesterday, tomorrow)
}

#[tokio::test]
async fn the_overview_shows_fill_rates_by_day_and_doses_and_no_shows_from_the_intake_records() {
    let app = spawn_app().await;
    let t = bare_tenant(&app.pool, "ovcity", "概況市").await;
    let today = (Utc::now() + Duration::hours(9)).date_naive();
    let (yesterday, tomorrow) = arrange(&app.owner, t, today).await;
    let mut admin = app
        .staff_client("admin@ovcity.example", Some((t, Role::CityAdmin, &[])))
        .await;
    let res = admin
        .get(&format!(
            "/admin/t/ovcity/overview?from={yesterday}&to={tomorrow}"
        ))
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("page");

    // all venues: yesterday 4 / 20 = 20 %, today nothing offered, tomorrow 20 / 20 = 100 %
    assert!(
        html.contains(&format!("data-day=\"{yesterday}\" data-percent=\"20\"")),
        "{html}"
    );
    assert!(html.contains(&format!("data-day=\"{tomorrow}\" data-percent=\"100\"")));
    assert!(!html.contains(&format!("data-day=\"{today}\" data-percent")));
    assert!(html.contains("24 / 40"), "period total: {html}");
    // per venue and day
    assert!(html.contains(">40%<") && html.contains(">0%<") && html.contains(">100%<"));
    // doses given: the two vaccinations recorded yesterday (one 1st, one 2nd dose), not the
    // bookings; stacked 1 + 1 in the chart
    assert!(html.contains("id=\"doses-total\">2<"), "{html}");
    assert!(html.contains(&format!("class=\"total\" data-day=\"{yesterday}\"")));
    assert!(html.contains("1st: 1") && html.contains("2nd: 1"));
    // no-shows: one marked of the four live bookings begun; the untouched one is counted apart
    assert!(html.contains("id=\"no-show\">25% (1 / 4)<"), "{html}");
    assert!(html.contains("id=\"unrecorded\">1<"), "{html}");
    assert!(html.contains(&format!("data-day=\"{yesterday}\"><td>")));
    assert!(html.contains("class=\"no-show-rate\">25%<"));
    // both charts are inline SVG images with a text alternative
    assert_eq!(html.matches("<svg").count(), 2);
    assert_eq!(html.matches("role=\"img\"").count(), 2);
}

#[tokio::test]
async fn every_role_gets_the_overview_only_if_it_may_read_statistics() {
    let app = spawn_app().await;
    let t = bare_tenant(&app.pool, "ovroles", "概況市").await;
    let today = (Utc::now() + Duration::hours(9)).date_naive();
    arrange(&app.owner, t, today).await;
    let tenant = tenants::find_by_slug(&app.pool, "ovroles")
        .await
        .expect("find")
        .expect("tenant");
    let mut people = role_clients(&app, &tenant).await;
    //                      op   admin staff venue hosp  cc   auditor
    let want: [u16; 7] = [200, 200, 200, 403, 403, 403, 200];
    for (i, client) in people.iter_mut().enumerate() {
        let s = client
            .get("/admin/t/ovroles/overview")
            .await
            .status()
            .as_u16();
        assert_eq!(s, want[i], "client {i}");
    }
}

#[tokio::test]
async fn the_charts_draw_bars_in_proportion_in_a_real_browser() {
    use crate::browser::{DESKTOP, goto, launch};
    let app = spawn_app().await;
    let t = bare_tenant(&app.pool, "ovchart", "概況市").await;
    let today = (Utc::now() + Duration::hours(9)).date_naive();
    let (yesterday, tomorrow) = arrange(&app.owner, t, today).await;
    app.staff("viewer@ovchart.example", Some((t, Role::CityStaff, &[])))
        .await;
    let base = app.url("");
    let browser = launch(DESKTOP).await;
    let page = browser
        .staff_page(&base, "viewer@ovchart.example", PASSWORD)
        .await;
    goto(
        &page,
        format!("{base}/admin/t/ovchart/overview?from={yesterday}&to={tomorrow}"),
    )
    .await;
    // rendered heights of the fill-rate bars (20 % and 100 %) and the chart's width on screen
    let heights: Vec<f64> = page
        .evaluate(
            "[...document.querySelectorAll('#fill-chart g.bar rect')].map(r => r.getBoundingClientRect().height)",
        )
        .await
        .expect("evaluate")
        .into_value()
        .expect("numbers");
    assert_eq!(heights.len(), 2, "{heights:?}");
    assert!(heights[0] > 0.0);
    let ratio = heights[1] / heights[0];
    assert!(
        (ratio - 5.0).abs() < 0.2,
        "100 % is five times 20 %: {heights:?}"
    );
    let width: f64 = page
        .evaluate("document.querySelector('#fill-chart svg').getBoundingClientRect().width")
        .await
        .expect("evaluate")
        .into_value()
        .expect("number");
    assert!(
        width > 300.0,
        "the chart is drawn at a readable size: {width}"
    );
    browser.close().await;
}
