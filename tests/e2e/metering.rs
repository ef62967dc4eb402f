//! Metering (issue 17, acceptance 6): a month with known bookings, SMS and API calls gives an
//! invoice whose lines match, to the yen, amounts computed here from the plan's prices; a plan's
//! hard cap on SMS segments, e-mails, API calls and exports stops each at exactly the cap (the
//! cap-th passes, the next is refused with the reason; concurrent API calls and exports too), with
//! the 80 % / 100 % alerts recorded and e-mailed once each to a real SMTP server; login codes still
//! go out at the SMS and e-mail caps. A final invoice's Excel file and printable page are read back for
//! every qualified-invoice fact.
//! Times are the real clock, but the invoice is built for the month the events fell in (read back
//! from them), and the contract starts a month earlier, so no proration depends on the date.

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use plugins::testing::SmtpSink;

use chrono::{Datelike, Months, Utc};
use serde_json::json;
use tenants::billing::{self, MeteredKind, NewPlan, Price};
use uuid::Uuid;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use platform::booking;
use platform::demo::demo_resident;
use platform::exports::{ExportFormat, ExportJobError, ExportKind};
use platform::i18n::Lang;
use platform::residents::auth;
use platform::staff::authz::{Act, Actor, Object, Role};

use crate::support::{PASSWORD, TestApp, body, book_request, demo_app_manual_worker};

async fn twilio(app: &TestApp, gateway: &MockServer) {
    let tenant = app.demo_tenant().await;
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    platform::notifications::channels::save(
        &mut tx,
        &app.worker.sealing_key,
        "sms",
        "twilio",
        json!({ "base_url": gateway.uri(), "account_sid": "AC42", "auth_token": "gw-token", "from": "+815000000000" }),
    )
    .await
    .expect("channel");
    tx.commit().await.expect("commit");
}

fn price(included: i64, unit: i64, hard_cap: bool) -> Price {
    Price {
        included_quantity: included,
        unit_price_yen: unit,
        hard_cap,
    }
}

/// A plan with the given metered prices, no fees, on the demo city from a month ago.
async fn contract(app: &TestApp, code: &str, prices: BTreeMap<MeteredKind, Price>) {
    let mut conn = app.pool.acquire().await.expect("conn");
    billing::create_plan(
        &mut conn,
        &NewPlan {
            code: code.into(),
            name: code.into(),
            setup_fee_yen: 0,
            system_fee_yen: 0,
            cloud_fee_yen: 0,
            prices,
            addons: vec![],
        },
    )
    .await
    .expect("plan");
    drop(conn);
    let tenant = app.demo_tenant().await;
    let today = Utc::now().with_timezone(&tenant.time_zone.0).date_naive();
    let start = today.with_day(1).expect("the first of the month") - Months::new(1);
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    billing::start_contract(&mut tx, code, start, json!({}), BTreeMap::new())
        .await
        .expect("contract");
    tx.commit().await.expect("commit");
}

async fn book(app: &TestApp, n: u32, slot_nth: i64) -> Uuid {
    let tenant = app.demo_tenant().await;
    let resident = app.resident_id(&demo_resident(n).ticket_no).await;
    let slot = app.demo_slot(slot_nth).await;
    booking::book(&app.pool, &tenant, &book_request(resident, slot))
        .await
        .expect("booked")[0]
        .id
}

async fn scalar(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.owner)
        .await
        .expect("scalar")
}

#[tokio::test]
async fn a_month_of_bookings_sms_and_api_calls_invoices_to_the_yen() {
    let app = demo_app_manual_worker().await;
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM" })))
        .mount(&gateway)
        .await;
    twilio(&app, &gateway).await;
    let (booking_yen, sms_yen, api_yen) = (7, 11, 3);
    contract(
        &app,
        "metered",
        BTreeMap::from([
            (MeteredKind::Booking, price(0, booking_yen, false)),
            (MeteredKind::SmsSegment, price(0, sms_yen, false)),
            (MeteredKind::ApiCall, price(0, api_yen, false)),
        ]),
    )
    .await;
    // bookings through the resident door (the demo seed's own bookings are metered too)
    let changed = book(&app, 3, 0).await;
    let cancelled = book(&app, 6, 1).await;
    let made = scalar(&app, "SELECT count(*) FROM bookings").await;
    // a change moves the same row and a cancellation keeps it: neither bills again nor refunds
    let tenant = app.demo_tenant().await;
    let (third, sixth) = (demo_resident(3).ticket_no, demo_resident(6).ticket_no);
    booking::change(
        &app.pool,
        &tenant,
        app.resident_id(&third).await,
        changed,
        app.demo_slot(2).await,
        "metering-change",
    )
    .await
    .expect("change");
    booking::cancel(
        &app.pool,
        &tenant,
        app.resident_id(&sixth).await,
        cancelled,
        "metering-cancel",
    )
    .await
    .expect("cancel");
    app.worker.run_once().await.expect("work");
    // API calls by key: every request that presents a valid key counts once
    let tenant = app.demo_tenant().await;
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
            platform::staff::authz::Object::ApiKeys,
            platform::staff::authz::Act::Write,
        )
        .await
        .expect("scope");
    let (_, key) =
        platform::staff::api_keys::create(&mut scope, &app.authz, "meter", &["venues:read".into()])
            .await
            .expect("key");
    scope.commit().await.expect("commit");
    let calls = 4;
    for _ in 0..calls {
        app.graphql_with_key(
            &key,
            "query($slug: String!) { city(city: $slug) { __typename } }",
            json!({ "slug": "demo" }),
        )
        .await;
    }

    // independent counts: the rows themselves, not the usage events
    let bookings = scalar(&app, "SELECT count(*) FROM bookings").await;
    assert_eq!(
        bookings, made,
        "a change or a cancellation makes no booking row"
    );
    let segments = scalar(
        &app,
        "SELECT COALESCE(sum(units), 0)::bigint FROM notification_jobs WHERE status = 'sent' AND channel <> 'email'",
    )
    .await;
    assert!(bookings >= 2 && segments >= 1, "{bookings} {segments}");
    // a booking's statement writes nothing but the booking: the row is its own usage
    // (migration 20261206001001; the trigger that wrote a usage row cost ~15 % of a booking)
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM usage_events WHERE kind = 'booking'"
        )
        .await,
        0
    );
    let sent = gateway.received_requests().await.expect("requests").len() as i64;
    assert!(sent >= 1);

    let month: chrono::NaiveDate = sqlx::query_scalar(
        "SELECT min(date_trunc('month', occurred_at AT TIME ZONE 'Asia/Tokyo'))::date FROM usage_events",
    )
    .fetch_one(&app.owner)
    .await
    .expect("month");
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    let invoice = billing::build_draft(&mut tx, month, "Asia/Tokyo", chrono::Duration::days(5))
        .await
        .expect("draft");
    tx.commit().await.expect("commit");
    let line = |label: &str| {
        invoice
            .lines
            .iter()
            .find(|l| l.description.starts_with(label))
            .map(|l| (l.quantity, l.unit_price_yen, l.amount_yen))
    };
    assert_eq!(
        line("予約件数"),
        Some((bookings, booking_yen, bookings * booking_yen))
    );
    assert_eq!(
        line("SMS送信"),
        Some((segments, sms_yen, segments * sms_yen))
    );
    assert_eq!(line("API呼び出し"), Some((calls, api_yen, calls * api_yen)));
    let subtotal = bookings * booking_yen + segments * sms_yen + calls * api_yen;
    assert_eq!(invoice.totals.subtotal_yen, subtotal);
    assert_eq!(invoice.totals.tax_yen, subtotal / 10);
    assert_eq!(invoice.totals.total_yen, subtotal + subtotal / 10);
}

#[tokio::test]
async fn a_plan_hard_cap_stops_sms_at_exactly_the_cap_and_alerts_once() {
    let app = demo_app_manual_worker().await;
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM" })))
        .mount(&gateway)
        .await;
    twilio(&app, &gateway).await;
    // the cap: what two confirmations cost (each one Japanese SMS; its segments read back)
    let first = book(&app, 3, 0).await;
    app.worker.run_once().await.expect("work");
    let per: i64 = sqlx::query_scalar(
        "SELECT units::bigint FROM notification_jobs WHERE payload->>'booking_id' = $1",
    )
    .bind(first.to_string())
    .fetch_one(&app.owner)
    .await
    .expect("units");
    let cap = per * 2;
    contract(
        &app,
        "capped",
        BTreeMap::from([(MeteredKind::SmsSegment, price(cap, 10, true))]),
    )
    .await;
    let second = book(&app, 6, 1).await;
    app.worker.run_once().await.expect("work");
    let third = book(&app, 9, 2).await;
    app.worker.run_once().await.expect("work");
    let status = |b: Uuid| {
        let owner = app.owner.clone();
        async move {
            sqlx::query_as::<_, (String, Option<String>)>(
                "SELECT status, last_error FROM notification_jobs WHERE payload->>'booking_id' = $1 AND payload->>'kind' <> 'reminder'",
            )
            .bind(b.to_string())
            .fetch_one(&owner)
            .await
            .expect("job")
        }
    };
    assert_eq!(status(second).await.0, "sent");
    let (st, reason) = status(third).await;
    assert_eq!(st, "dead", "the cap+1-th message is not sent");
    assert!(
        reason
            .unwrap_or_default()
            .contains("the plan's SMS cap reached"),
        "the admin sees why"
    );
    assert_eq!(
        gateway.received_requests().await.expect("requests").len(),
        2
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COALESCE(sum(quantity), 0)::bigint FROM usage_events WHERE kind = 'sms_segment'"
        )
        .await,
        cap
    );
    // 80 % and 100 % recorded once each
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM sms_budget_alerts WHERE level IN (80, 100)"
        )
        .await,
        2
    );
    // a resident can still log in: the plan's cap never refuses a login code (it is metered)
    let tenant = app.demo_tenant().await;
    let r = demo_resident(3);
    auth::request_code(
        &app.pool,
        &tenant,
        &r.ticket_no,
        r.birth_date,
        None,
        "192.0.2.41",
        Lang::Ja,
        &app.worker.secret,
    )
    .await
    .expect("code requested");
    app.worker.run_once().await.expect("work");
    let (st, reason): (String, Option<String>) = sqlx::query_as(
        "SELECT status, last_error FROM notification_jobs WHERE payload->>'kind' = 'login_code'",
    )
    .fetch_one(&app.owner)
    .await
    .expect("login code job");
    assert_eq!(st, "sent", "{reason:?}");
    assert_eq!(
        gateway.received_requests().await.expect("requests").len(),
        3
    );
}

/// The demo city's e-mail channel: a real SMTP server in this process.
async fn smtp(app: &TestApp, sink: &SmtpSink) {
    let tenant = app.demo_tenant().await;
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    platform::notifications::channels::save(
        &mut tx,
        &app.worker.sealing_key,
        "email",
        "smtp",
        json!({ "host": "127.0.0.1", "port": sink.addr.port(), "security": "plain",
                "from_address": "yoyaku@demo.example.jp", "from_name": "デモ市" }),
    )
    .await
    .expect("channel");
    tx.commit().await.expect("commit");
}

/// The demo city's admin (who gets the alerts).
async fn city_admin(app: &TestApp) -> platform::staff::identity::StaffAccount {
    let tenant = app.demo_tenant().await;
    app.staff(
        "admin@demo.example",
        Some((tenant.id, Role::CityAdmin, &[])),
    )
    .await
}

/// Works the notification queues until nothing is due.
async fn drain(app: &TestApp) {
    for _ in 0..10 {
        if app.worker.run_once().await.expect("work") == 0 {
            return;
        }
    }
}

/// The alert e-mails the admin received, by subject.
fn alert_subjects(sink: &SmtpSink, kind_ja: &str) -> Vec<String> {
    sink.received()
        .iter()
        .filter(|m| m.to == vec!["admin@demo.example".to_owned()])
        .filter_map(|m| m.header("Subject"))
        .filter(|s| s.contains(kind_ja))
        .collect()
}

async fn cap_alert_levels(app: &TestApp, kind: &str) -> Vec<(i64, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT level, used, cap, recipients FROM plan_cap_alerts WHERE kind = $1 ORDER BY level",
    )
    .bind(kind)
    .fetch_all(&app.owner)
    .await
    .expect("alerts")
}

async fn usage_of(app: &TestApp, kind: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(quantity), 0)::bigint FROM usage_events WHERE kind = $1",
    )
    .bind(kind)
    .fetch_one(&app.owner)
    .await
    .expect("usage")
}

#[tokio::test]
async fn a_plan_hard_cap_stops_email_at_exactly_the_cap_alerts_once_and_login_codes_still_go() {
    let app = demo_app_manual_worker().await;
    let sink = SmtpSink::start();
    smtp(&app, &sink).await;
    city_admin(&app).await;
    drain(&app).await; // the demo seed's own messages (no e-mail addresses: not e-mail)
    let cap = 5;
    contract(
        &app,
        "mail-capped",
        BTreeMap::from([(MeteredKind::Email, price(cap, 10, true))]),
    )
    .await;
    // six residents with an e-mail address (resident 3 also has a phone), one booking each
    let residents = [1, 2, 3, 4, 5, 7];
    for n in residents {
        sqlx::query("UPDATE residents SET email = $2 WHERE ticket_no = $1")
            .bind(demo_resident(n).ticket_no)
            .bind(format!("r{n}@example.jp"))
            .execute(&app.owner)
            .await
            .expect("email");
    }
    let mut jobs = Vec::new();
    for (i, n) in residents.into_iter().enumerate() {
        let booking = book(&app, n, i as i64).await;
        drain(&app).await;
        let (status, reason): (String, Option<String>) = sqlx::query_as(
            "SELECT status, last_error FROM notification_jobs \
              WHERE payload->>'booking_id' = $1 AND payload->>'kind' = 'booking_confirmed'",
        )
        .bind(booking.to_string())
        .fetch_one(&app.owner)
        .await
        .expect("job");
        jobs.push((status, reason));
    }
    // the cap-th is sent, the next one is not
    for (status, reason) in &jobs[..5] {
        assert_eq!(status, "sent", "{reason:?}");
    }
    let (status, reason) = &jobs[5];
    assert_eq!(status, "dead", "the cap+1-th e-mail is not sent");
    let reason = reason.clone().unwrap_or_default();
    assert!(
        reason.contains("the plan's e-mail cap reached (5 of 5 e-mails this month)"),
        "the delivery log says why: {reason}"
    );
    let to_residents = sink
        .received()
        .iter()
        .filter(|m| m.to.iter().any(|t| t.ends_with("@example.jp")))
        .count();
    assert_eq!(to_residents, 5);
    assert_eq!(usage_of(&app, "email").await, cap);
    // 80 % (the 4th) and 100 % (the 5th), recorded once and e-mailed once each
    let levels = cap_alert_levels(&app, "email").await;
    assert_eq!(levels, vec![(80, 4, 5, 1), (100, 5, 5, 1)]);
    let subjects = alert_subjects(&sink, "メール送信数");
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("80%") && s.contains("e-mails"))
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("上限に達しました") && s.contains("reached"))
    );
    let alert = sink
        .received()
        .into_iter()
        .find(|m| {
            m.header("Subject")
                .is_some_and(|s| s.contains("上限に達しました"))
        })
        .expect("the 100 % alert");
    let text = alert
        .part("text/plain")
        .expect("text")
        .replace("\r\n", "\n");
    assert!(
        text.contains("5 / 5通") && text.contains("5 of 5"),
        "{text}"
    );

    // a resident can still log in: login codes go by SMS and are never refused for the contract
    let tenant = app.demo_tenant().await;
    let r = demo_resident(3);
    auth::request_code(
        &app.pool,
        &tenant,
        &r.ticket_no,
        r.birth_date,
        None,
        "192.0.2.40",
        Lang::Ja,
        &app.worker.secret,
    )
    .await
    .expect("code requested");
    let code = app
        .login_code_sent_to("09000000003")
        .await
        .expect("the code goes by SMS at the e-mail cap");
    auth::verify_code(&app.pool, &tenant, &r.ticket_no, &code)
        .await
        .expect("logged in");
    // nothing more was e-mailed, and no alert twice
    drain(&app).await;
    assert_eq!(alert_subjects(&sink, "メール送信数").len(), 2);
    assert_eq!(usage_of(&app, "email").await, cap);
}

/// An API key of the demo city (scope venues:read).
async fn api_key(app: &TestApp, admin: &platform::staff::identity::StaffAccount) -> String {
    let tenant = app.demo_tenant().await;
    let actor = Actor::staff(admin.id, &admin.email, None);
    let mut scope = app
        .authz
        .enter(&actor, tenant.id, Object::ApiKeys, Act::Write)
        .await
        .expect("scope");
    let (_, key) = platform::staff::api_keys::create(
        &mut scope,
        &app.authz,
        "capped",
        &["venues:read".into()],
    )
    .await
    .expect("key");
    scope.commit().await.expect("commit");
    key
}

async fn call(app: &TestApp, key: &str) -> (u16, Option<String>, serde_json::Value) {
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(key)
        .json(&json!({
            "query": "query($slug: String!) { city(city: $slug) { __typename } }",
            "variables": { "slug": "demo" },
        }))
        .send()
        .await
        .expect("POST /graphql");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, res.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_plan_hard_cap_serves_exactly_the_cap_of_api_calls_then_429s_with_the_reset() {
    let app = demo_app_manual_worker().await;
    let sink = SmtpSink::start();
    smtp(&app, &sink).await;
    let admin = city_admin(&app).await;
    let cap = 10;
    contract(
        &app,
        "api-capped",
        BTreeMap::from([(MeteredKind::ApiCall, price(cap, 1, true))]),
    )
    .await;
    let key = api_key(&app, &admin).await;
    for _ in 0..7 {
        let (status, _, answer) = call(&app, &key).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["data"]["city"]["__typename"], "City", "{answer}");
    }
    // ten at once with three left: exactly three are served
    let answers = futures::future::join_all((0..10).map(|_| call(&app, &key))).await;
    let served = answers.iter().filter(|(s, _, _)| *s == 200).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!((served, refused.len()), (3, 7), "{answers:?}");
    let (_, retry, answer) = refused[0];
    let error = &answer["errors"][0];
    assert_eq!(
        error["extensions"]["code"], "PLAN_LIMIT_REACHED",
        "{answer}"
    );
    assert_eq!(error["extensions"]["reason"], "API_CALL_CAP", "{answer}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("monthly cap on API calls is reached (10 of 10 this month)")
            && message.contains("it resets on")
            && message.contains("00:00 (Asia/Tokyo)"),
        "which limit and when it resets: {message}"
    );
    let secs: u64 = retry
        .as_deref()
        .unwrap_or("0")
        .parse()
        .expect("Retry-After");
    assert!((1..=31 * 24 * 3600).contains(&secs), "{secs}");
    // refused calls are not counted; the cap holds
    let (status, _, _) = call(&app, &key).await;
    assert_eq!(status, 429);
    assert_eq!(usage_of(&app, "api_call").await, cap);
    // 80 % at the 8th call, 100 % at the 10th, each e-mailed once
    assert_eq!(
        cap_alert_levels(&app, "api_call").await,
        vec![(80, 8, 10, 1), (100, 10, 10, 1)]
    );
    drain(&app).await;
    let subjects = alert_subjects(&sink, "API呼び出し数");
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("API calls reached")));
}

/// Starts an export as `actor` through the platform (the door every front end calls).
async fn start_export(app: &TestApp, actor: &Actor) -> Result<Uuid, ExportJobError> {
    let tenant = app.demo_tenant().await;
    let mut scope = app
        .authz
        .enter(actor, tenant.id, Object::Exports, Act::Write)
        .await
        .expect("scope");
    let made =
        platform::exports::create(&mut scope, &ExportKind::BookingLedger, ExportFormat::Xlsx).await;
    if made.is_ok() {
        scope.commit().await.expect("commit");
    }
    made
}

#[tokio::test]
async fn a_plan_hard_cap_starts_exactly_the_cap_of_exports_even_ten_at_once() {
    let app = demo_app_manual_worker().await;
    let sink = SmtpSink::start();
    smtp(&app, &sink).await;
    let admin = city_admin(&app).await;
    let cap = 4;
    contract(
        &app,
        "export-capped",
        BTreeMap::from([(MeteredKind::Export, price(cap, 100, true))]),
    )
    .await;
    // two through the admin UI
    let mut page = app.login("admin@demo.example", PASSWORD).await;
    for _ in 0..2 {
        let res = page
            .post(
                "/admin/t/demo/exports",
                &[("kind", "booking_ledger"), ("format", "xlsx")],
            )
            .await;
        assert_eq!(res.status(), 303);
    }
    // a third through the platform function the admin UI calls
    let actor = Actor::staff(admin.id, &admin.email, None);
    start_export(&app, &actor).await.expect("the third");
    // ten at once with one left under the cap: exactly one (the cap-th) is queued
    let results = futures::future::join_all((0..10).map(|_| start_export(&app, &actor))).await;
    let queued = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(queued, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, ExportJobError::PlanLimit(_))),
        "{results:?}"
    );
    let jobs = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM export_jobs")
            .fetch_one(&app.owner)
            .await
            .expect("count")
    };
    assert_eq!(jobs().await, cap);
    // the next one is refused in the admin UI with the reason; nothing is queued
    let (status, html) = body(
        page.post(
            "/admin/t/demo/exports",
            &[("kind", "booking_ledger"), ("format", "xlsx")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 429);
    assert!(
        html.contains(
            "The plan&#39;s monthly cap on exports is reached (4 of 4 this month); it resets on"
        ) || html.contains(
            "The plan's monthly cap on exports is reached (4 of 4 this month); it resets on"
        ),
        "{html}"
    );
    assert_eq!(jobs().await, cap, "nothing queued");
    // 80 % at the 4th (4 × 5 ≥ 4 × 4), 100 % at the 4th; each e-mailed once
    assert_eq!(
        cap_alert_levels(&app, "export").await,
        vec![(80, 4, 4, 1), (100, 4, 4, 1)]
    );
    drain(&app).await;
    let subjects = alert_subjects(&sink, "データ出力数");
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    // and the city's billing page lists them
    let (status, html) = body(page.get("/admin/t/demo/billing").await).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("id=\"cap-alerts\"")
            && html.contains("<td>Exports</td><td>cap reached (100 %)</td><td>4 / 4</td>"),
        "{html}"
    );
}

/// The text of an Excel cell (strings as they are, numbers as whole yen).
fn cell_text(range: &calamine::Range<Data>, row: usize, col: usize) -> String {
    match range.get((row, col)) {
        Some(Data::String(s)) => s.clone(),
        Some(Data::Float(f)) => format!("{f}"),
        Some(Data::Int(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn a_final_invoice_reads_back_every_qualified_invoice_fact_from_excel_and_print() {
    let app = crate::support::spawn_app().await;
    // the operator as issuer (what `billing.issuer_*` stores at start-up)
    let issuer = billing::Issuer {
        name: "株式会社ヨヤククラウド".into(),
        registration_number: "T9234567890123".into(),
    };
    assert!(billing::valid_registration_number(
        &issuer.registration_number
    ));
    let mut conn = app.owner.acquire().await.expect("conn");
    billing::set_issuer(&mut conn, &issuer)
        .await
        .expect("issuer");
    drop(conn);
    let mut conn = app.pool.acquire().await.expect("conn");
    billing::create_plan(
        &mut conn,
        &NewPlan {
            code: "qualified".into(),
            name: "qualified".into(),
            setup_fee_yen: 0,
            system_fee_yen: 50_000,
            cloud_fee_yen: 12_345,
            prices: BTreeMap::from([
                (MeteredKind::SmsSegment, price(100, 9, false)),
                (MeteredKind::ApiCall, price(0, 2, false)),
            ]),
            addons: vec![],
        },
    )
    .await
    .expect("plan");
    drop(conn);
    let city = crate::support::empty_tenant(&app.pool, "kawagoe", "川越市", "141003").await;
    let nov = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
    let oct = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).expect("date");
    let mut tx = tenants::begin(&app.pool, city).await.expect("scope");
    billing::start_contract(&mut tx, "qualified", oct, json!({}), BTreeMap::new())
        .await
        .expect("contract");
    let at = crate::support::jst(2026, 11, 20, 12, 0);
    billing::usage::record(&mut tx, "nov-sms", MeteredKind::SmsSegment, 1_234, at)
        .await
        .expect("sms");
    billing::usage::record(&mut tx, "nov-api", MeteredKind::ApiCall, 77, at)
        .await
        .expect("api");
    let draft = billing::build_draft(&mut tx, nov, "Asia/Tokyo", chrono::Duration::days(5))
        .await
        .expect("draft");
    // finalised on a pinned day: issued 2026-12-10 (JST), due at the end of the next month
    let invoice = billing::finalize(
        &mut tx,
        draft.id,
        crate::support::jst(2026, 12, 10, 9, 0),
        true,
    )
    .await
    .expect("final");
    tx.commit().await.expect("commit");
    // to the yen: 50,000 + 12,345 + (1,234 − 100) × 9 + 77 × 2 = 72,705; tax 10 % rounded down
    let subtotal = 50_000 + 12_345 + (1_234 - 100) * 9 + 77 * 2;
    assert_eq!(subtotal, 72_705);
    assert_eq!(
        (
            invoice.totals.subtotal_yen,
            invoice.totals.tax_yen,
            invoice.totals.total_yen
        ),
        (72_705, 7_270, 79_975)
    );
    let number = invoice.number.clone().expect("numbered");

    app.staff("admin@kawagoe.example", Some((city, Role::CityAdmin, &[])))
        .await;
    let mut page = app.login("admin@kawagoe.example", PASSWORD).await;
    // Excel
    let res = page
        .get(&format!("/admin/t/kawagoe/invoices/{}/xlsx", invoice.id))
        .await;
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.expect("bytes").to_vec();
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("xlsx");
    let range = wb.worksheet_range("請求書").expect("sheet");
    let row_of = |label: &str| {
        (0..range.height())
            .find(|r| range.get((*r, 0)) == Some(&Data::String(label.into())))
            .unwrap_or_else(|| panic!("no row {label}"))
    };
    let fact = |label: &str| cell_text(&range, row_of(label), 3);
    assert_eq!(fact("番号"), number);
    assert_eq!(fact("発行者"), "株式会社ヨヤククラウド");
    let reg = fact("登録番号");
    assert!(
        reg.len() == 14 && reg.starts_with('T') && reg[1..].bytes().all(|b| b.is_ascii_digit()),
        "{reg}"
    );
    assert_eq!(reg, "T9234567890123");
    assert_eq!(fact("発行日"), "2026年12月10日");
    assert_eq!(fact("請求先"), "川越市 御中");
    assert_eq!(fact("税率別内訳"), "10%対象 72,705 円　消費税 7,270 円");
    assert!(
        !(0..range.height()).any(|r| cell_text(&range, r, 3).contains("8%対象")),
        "no reduced-rate line, so no 8 % row"
    );
    assert_eq!(fact("支払期限"), "2027年01月31日");
    // every line and the totals, to the yen
    for (i, line) in invoice.lines.iter().enumerate() {
        let r = i + 1;
        assert_eq!(cell_text(&range, r, 0), line.description);
        assert_eq!(range.get((r, 1)), Some(&Data::Float(line.quantity as f64)));
        assert_eq!(
            range.get((r, 2)),
            Some(&Data::Float(line.unit_price_yen as f64))
        );
        assert_eq!(
            range.get((r, 3)),
            Some(&Data::Float(line.amount_yen as f64))
        );
    }
    let sms = (1..=invoice.lines.len())
        .find(|r| cell_text(&range, *r, 0).starts_with("SMS"))
        .expect("SMS line");
    assert_eq!(range.get((sms, 3)), Some(&Data::Float(10_206.0)));
    assert_eq!(range.get((row_of("小計"), 3)), Some(&Data::Float(72_705.0)));
    assert_eq!(
        range.get((row_of("消費税（10%・切り捨て）"), 3)),
        Some(&Data::Float(7_270.0))
    );
    assert_eq!(range.get((row_of("合計"), 3)), Some(&Data::Float(79_975.0)));

    // the printable page: the same facts, lines and totals
    let (status, html) = body(
        page.get(&format!("/admin/t/kawagoe/invoices/{}/print", invoice.id))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    for (label, value) in [
        ("番号", number.as_str()),
        ("発行者", "株式会社ヨヤククラウド"),
        ("登録番号", "T9234567890123"),
        ("発行日", "2026年12月10日"),
        ("請求先", "川越市 御中"),
        ("税率別内訳", "10%対象 72,705 円　消費税 7,270 円"),
        ("支払期限", "2027年01月31日"),
    ] {
        assert!(
            html.contains(&format!("<dt>{label}</dt><dd>{value}</dd>")),
            "{label}: {html}"
        );
    }
    for line in &invoice.lines {
        assert!(
            html.contains(&line.description),
            "{}: {html}",
            line.description
        );
    }
    for total in ["72,705", "7,270", "79,975", "10,206"] {
        assert!(html.contains(total), "{total}: {html}");
    }
}
