//! The change feed between server processes and the resident session cache (issue 18,
//! acceptance 3 and 5; docs/architecture.md, "Caches and the change feed").
//!
//! Two servers are started on one database exactly as `yoyaku serve` starts them (`App::build`,
//! each with its own pool, caches and listener); what is done through the first must show through
//! the second within the stated bound, measured and printed. Nothing here mocks what we own.

use std::time::{Duration, Instant};

use platform::changes::{Change, announce};
use platform::staff::authz::Role;
use serde_json::json;

use crate::support::{Options, TestApp, demo_app, spawn_app_on, spawn_app_with};

/// The bound the tests hold the feed to: a change made through one process shows through another
/// within this (the session cache alone would believe a session for 5 s).
const FEED_BOUND: Duration = Duration::from_secs(2);

async fn listening(app: &TestApp) {
    assert!(
        app.changes.wait_listening(Duration::from_secs(10)).await,
        "the change feed's listener connects"
    );
}

async fn database_of(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&app.owner)
        .await
        .expect("database name")
}

async fn get_with(app: &TestApp, path: &str, cookie: &str) -> u16 {
    app.client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET")
        .status()
        .as_u16()
}

/// Polls `seen` every 5 ms until it holds; the time it took, or a failure after [`FEED_BOUND`].
async fn within_bound<F, Fut>(what: &str, mut seen: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if seen().await {
            let took = start.elapsed();
            println!("change feed: {what} seen by the second process after {took:?}");
            return took;
        }
        assert!(
            start.elapsed() < FEED_BOUND,
            "{what}: not seen by the second process within {FEED_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn csrf_of(app: &TestApp, resident: uuid::Uuid) -> String {
    sqlx::query_scalar(
        "SELECT csrf_token FROM resident_sessions WHERE resident_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(resident)
    .fetch_one(&app.owner)
    .await
    .expect("csrf token")
}

async fn free_seats(app: &TestApp, venue: uuid::Uuid, slot: uuid::Uuid) -> i64 {
    let answer = app
        .graphql(
            "query($v: UUID!) { availability(city: \"demo\", venueId: $v) { id free } }",
            json!({ "v": venue }),
        )
        .await;
    let slots = answer["data"]["availability"]
        .as_array()
        .unwrap_or_else(|| panic!("availability: {answer}"));
    slots
        .iter()
        .find(|s| s["id"] == slot.to_string())
        .and_then(|s| s["free"].as_i64())
        .unwrap_or_else(|| panic!("slot {slot} in {answer}"))
}

#[tokio::test]
async fn a_second_process_sees_a_logout_a_capacity_change_and_a_suspension_made_through_the_first()
{
    let first = demo_app().await;
    let second = spawn_app_on(
        &database_of(&first).await,
        Options {
            demo: true,
            ..Options::default()
        },
    )
    .await;
    listening(&first).await;
    listening(&second).await;
    let received_before = second.changes.received();
    let tenant = first.demo_tenant().await;
    let slot = first.demo_slot(0).await;
    let venue = first.venue_of(slot).await;
    let page = format!("/t/demo/venues/{venue}");

    // 1. logout through the first; the second had the session cached (5 s) and must refuse it
    let token = first.resident_token(1).await;
    let cookie = format!("yk_session={token}; yk_lang=en");
    for _ in 0..2 {
        assert_eq!(get_with(&second, &page, &cookie).await, 200);
    }
    let resident = first
        .resident_id(&platform::demo::demo_resident(1).ticket_no)
        .await;
    let csrf = csrf_of(&first, resident).await;
    let out = first
        .client
        .post(first.url("/t/demo/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(
        get_with(&first, &page, &cookie).await,
        303,
        "the first process refuses the cookie at once"
    );
    within_bound("a logout", || async {
        get_with(&second, &page, &cookie).await == 303
    })
    .await;

    // 2. a slot's capacity changed by staff through the first
    let free_before = free_seats(&second, venue, slot).await;
    assert!(free_before > 4, "{free_before}");
    let mut staff = first
        .staff_client(
            "staff@demo.example",
            Some((tenant.id, Role::CityStaff, &[])),
        )
        .await;
    let res = staff
        .post(
            &format!("/admin/t/demo/venues/{venue}/slots/{slot}"),
            &[("capacity", "4")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    within_bound("a capacity change", || async {
        free_seats(&second, venue, slot).await <= 4
    })
    .await;

    // 3. the city suspended by the operator through the first
    let token = first.resident_token(2).await;
    let cookie = format!("yk_session={token}; yk_lang=en");
    // both processes remember the session and the open city
    for _ in 0..2 {
        assert_eq!(get_with(&first, &page, &cookie).await, 200);
        assert_eq!(get_with(&second, &page, &cookie).await, 200);
    }
    let mut operator = first.staff_client("op@platform.example", None).await;
    let res = operator
        .post("/admin/tenants/demo/status", &[("status", "suspended")])
        .await;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(
        get_with(&first, &page, &cookie).await,
        403,
        "the first process refuses the city at once, its remembered session notwithstanding"
    );
    within_bound("a suspension", || async {
        get_with(&second, &page, &cookie).await == 403
    })
    .await;
    // and the reactivation, the same way
    let res = operator
        .post("/admin/tenants/demo/status", &[("status", "active")])
        .await;
    assert_eq!(res.status().as_u16(), 303);
    within_bound("a reactivation", || async {
        get_with(&second, &page, &cookie).await == 200
    })
    .await;

    assert!(
        second.changes.received() >= received_before + 4,
        "the second process heard the logout, the capacity change and both status changes"
    );
}

#[tokio::test]
async fn a_logged_out_cookie_is_refused_at_once_by_the_process_that_logged_it_out() {
    let app = demo_app().await;
    let slot = app.demo_slot(0).await;
    let venue = app.venue_of(slot).await;
    let page = format!("/t/demo/venues/{venue}");
    let token = app.resident_token(1).await;
    let cookie = format!("yk_session={token}; yk_lang=en");
    // the session is now cached in this process (the second view is served from memory)
    for _ in 0..3 {
        assert_eq!(get_with(&app, &page, &cookie).await, 200);
    }
    let me = "query { myBookings { id } }";
    let answer = app.graphql_as(&token, "en", me, json!({})).await;
    assert!(answer["errors"].is_null(), "{answer}");
    // the logout form's token is the session's own: the cached session carries it, so the logout
    // (which checks it) happens — after which the very next view is refused
    let resident = app
        .resident_id(&platform::demo::demo_resident(1).ticket_no)
        .await;
    let csrf = csrf_of(&app, resident).await;
    let wrong = app
        .client
        .post(app.url("/t/demo/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", "not-the-token")])
        .send()
        .await
        .expect("logout");
    assert_eq!(wrong.status().as_u16(), 303);
    assert_eq!(
        get_with(&app, &page, &cookie).await,
        200,
        "a logout without the session's CSRF token ends nothing"
    );
    let out = app
        .client
        .post(app.url("/t/demo/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(get_with(&app, &page, &cookie).await, 303, "site");
    let answer = app.graphql_as(&token, "en", me, json!({})).await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "API: {answer}"
    );
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM resident_sessions WHERE resident_id = $1")
            .bind(resident)
            .fetch_one(&app.owner)
            .await
            .expect("sessions");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_rolled_back_change_announces_nothing() {
    let app = demo_app().await;
    listening(&app).await;
    let tenant = app.demo_tenant().await;
    let before = app.changes.received();
    // a staff capacity change that fails after its announcement: rolled back, so never delivered
    let slot = app.demo_slot(0).await;
    let venue = app.venue_of(slot).await;
    let admin = app
        .staff(
            "admin@demo.example",
            Some((tenant.id, Role::CityAdmin, &[])),
        )
        .await;
    let actor = platform::staff::authz::Actor::staff(admin.id, &admin.email, None);
    let mut scope = app
        .authz
        .enter(
            &actor,
            tenant.id,
            platform::staff::authz::Object::Venue(venue),
            platform::staff::authz::Act::Write,
        )
        .await
        .expect("scope");
    platform::city::setup::set_slot_capacity(&mut scope, venue, slot, 3)
        .await
        .expect("capacity");
    drop(scope); // rolled back
    // and one written by hand, rolled back too
    let mut tx = app.pool.begin().await.expect("begin");
    announce(&mut tx, &Change::Tenant(tenant.id))
        .await
        .expect("announce");
    tx.rollback().await.expect("rollback");
    // a committed change after both: once it arrives, anything sent before it would have too
    let mut tx = app.pool.begin().await.expect("begin");
    announce(&mut tx, &Change::Availability(tenant.id))
        .await
        .expect("announce");
    tx.commit().await.expect("commit");
    let start = Instant::now();
    while app.changes.received() == before {
        assert!(start.elapsed() < FEED_BOUND, "the committed change arrives");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        app.changes.received(),
        before + 1,
        "only the committed change was delivered"
    );
    let capacity: i32 = sqlx::query_scalar("SELECT capacity FROM slots WHERE id = $1")
        .bind(slot)
        .fetch_one(&app.owner)
        .await
        .expect("capacity");
    assert_eq!(capacity, 10, "the capacity change was rolled back");
}

#[tokio::test]
async fn a_day_page_with_a_cached_session_asks_the_database_nothing_when_nothing_changed() {
    // the app's every database connection goes through a proxy that counts what the app sends;
    // no job worker runs (it polls the queues on its own)
    let app = spawn_app_with(Options {
        demo: true,
        via_proxy: true,
        manual_worker: true,
        ..Options::default()
    })
    .await;
    listening(&app).await;
    let slot = app.demo_slot(0).await;
    let venue = app.venue_of(slot).await;
    let date: String = sqlx::query_scalar(
        "SELECT (starts_at AT TIME ZONE 'Asia/Tokyo')::date::text FROM slots WHERE id = $1",
    )
    .bind(slot)
    .fetch_one(&app.owner)
    .await
    .expect("date");
    let token = app.resident_token(1).await;
    let cookie = format!("yk_session={token}; yk_lang=en");
    let pages = [
        format!("/t/demo/venues/{venue}"),
        format!("/t/demo/venues/{venue}/{date}"),
    ];
    for p in &pages {
        assert_eq!(get_with(&app, p, &cookie).await, 200, "{p}");
    }
    let proxy = app.proxy.as_ref().expect("proxy");
    let views = 400;
    let sent_before = proxy.sent();
    let start = Instant::now();
    for i in 0..views {
        assert_eq!(get_with(&app, &pages[i % 2], &cookie).await, 200);
    }
    let took = start.elapsed();
    let sent = proxy.sent() - sent_before;
    // Without the session cache each view is a transaction of its own (BEGIN, set_config, the
    // session SELECT, COMMIT: at least one write each, ≥ 400 here). With it, what remains is
    // what the caches' one-second TTLs re-read: the city (1 write) and the venue's availability
    // (a transaction, ~5 writes) at most once a second, plus the policy reload.
    let seconds = took.as_secs() + 1;
    println!(
        "session cache: {views} day pages in {took:?} sent {sent} writes to PostgreSQL ({:.3} per page)",
        sent as f64 / views as f64
    );
    assert!(
        sent <= seconds * 20,
        "{views} page views in {took:?} cost {sent} database writes: more than the caches' TTLs explain"
    );
    // the observable is real: a session this process has not seen yet is read from PostgreSQL
    let other = app.resident_token(2).await;
    let before = proxy.sent();
    assert_eq!(
        get_with(&app, &pages[0], &format!("yk_session={other}; yk_lang=en")).await,
        200
    );
    assert!(
        proxy.sent() > before,
        "a session not cached yet costs a round trip"
    );
}

#[tokio::test]
async fn when_the_listener_loses_its_connection_every_cache_is_cleared_and_listening_resumes() {
    let app = spawn_app_with(Options {
        demo: true,
        via_proxy: true,
        manual_worker: true,
        ..Options::default()
    })
    .await;
    listening(&app).await;
    assert_eq!(app.changes.connects(), 1);
    let slot = app.demo_slot(0).await;
    let venue = app.venue_of(slot).await;
    let page = format!("/t/demo/venues/{venue}");
    let token = app.resident_token(1).await;
    let cookie = format!("yk_session={token}; yk_lang=en");
    assert_eq!(get_with(&app, &page, &cookie).await, 200);
    let cached_at = Instant::now();
    // the session is removed behind the feed's back (as if its notification were lost)
    sqlx::query("DELETE FROM resident_sessions")
        .execute(&app.owner)
        .await
        .expect("delete");
    assert_eq!(
        get_with(&app, &page, &cookie).await,
        200,
        "remembered for now"
    );
    // the database goes away for a moment, then comes back
    let proxy = app.proxy.as_ref().expect("proxy");
    proxy.down();
    let start = Instant::now();
    while app.changes.is_listening() {
        assert!(
            start.elapsed() < FEED_BOUND,
            "the listener notices the loss"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.up();
    listening(&app).await;
    assert!(app.changes.connects() >= 2, "it connected again");
    let status = get_with(&app, &page, &cookie).await;
    println!(
        "change feed: listening again {:?} after the session was cached",
        cached_at.elapsed()
    );
    assert_eq!(
        status, 303,
        "what was remembered before the loss is forgotten (the session no longer exists)"
    );
}
