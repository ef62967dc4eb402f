//! Metering (issue 17, acceptance 6): a month with known bookings, SMS and API calls gives an
//! invoice whose lines match, to the yen, amounts computed here from the plan's prices; a plan's
//! hard cap on SMS segments stops sending at exactly the cap, with the 80 % / 100 % alerts once.
//! Times are the real clock, but the invoice is built for the month the events fell in (read back
//! from them), and the contract starts a month earlier, so no proration depends on the date.

use std::collections::BTreeMap;

use chrono::{Datelike, Months, Utc};
use serde_json::json;
use tenants::billing::{self, MeteredKind, NewPlan, Price};
use uuid::Uuid;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use platform::booking;
use platform::demo::demo_resident;
use platform::staff::authz::Role;

use crate::support::{TestApp, book_request, demo_app_manual_worker};

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
    book(&app, 3, 0).await;
    book(&app, 6, 1).await;
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
    let segments = scalar(
        &app,
        "SELECT COALESCE(sum(units), 0)::bigint FROM notification_jobs WHERE status = 'sent' AND channel <> 'email'",
    )
    .await;
    assert!(bookings >= 2 && segments >= 1, "{bookings} {segments}");
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
}
