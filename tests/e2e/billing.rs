//! Invoices to the yen: a known month (plan change on the 21st, duplicated usage events, usage either
//! side of a JST day boundary) against numbers computed by hand below; then the life cycle: grace
//! period, gapless numbers, immutability of final invoices, credit notes.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use serde_json::json;
use tenants::TenantId;
use tenants::billing::{self, BillingError, Line, MeteredKind, NewPlan, Price, usage};

use crate::support::{jst, spawn_app};

fn price(included: i64, unit: i64) -> Price {
    Price {
        included_quantity: included,
        unit_price_yen: unit,
        hard_cap: false,
    }
}

fn plan(
    code: &str,
    fees: [i64; 3],
    prices: [(MeteredKind, Price); 4],
    addons: &[(&str, &str, i64)],
) -> NewPlan {
    NewPlan {
        code: code.into(),
        name: code.into(),
        setup_fee_yen: fees[0],
        system_fee_yen: fees[1],
        cloud_fee_yen: fees[2],
        prices: prices.into_iter().collect(),
        addons: addons
            .iter()
            .map(|(c, n, f)| (c.to_string(), n.to_string(), *f))
            .collect(),
    }
}

/// Two plans on the price list (created by the runtime role, as the operator console would).
pub async fn price_list(pool: &sqlx::PgPool) {
    use MeteredKind::*;
    let mut conn = pool.acquire().await.expect("conn");
    billing::create_plan(
        &mut conn,
        &plan(
            "basic",
            [300_000, 100_000, 30_000],
            [
                (SmsSegment, price(1_000, 10)),
                (Email, price(5_000, 1)),
                (Booking, price(2_000, 5)),
                (Resident, price(50_000, 1)),
            ],
            &[("multilingual", "多言語表示", 20_000)],
        ),
    )
    .await
    .expect("basic plan");
    billing::create_plan(
        &mut conn,
        &plan(
            "standard",
            [500_000, 150_000, 45_000],
            [
                (SmsSegment, price(3_000, 8)),
                (Email, price(10_000, 1)),
                (Booking, price(5_000, 4)),
                (Resident, price(100_000, 1)),
            ],
            &[
                ("multilingual", "多言語表示", 15_000),
                ("call_center_seat", "コールセンター席", 12_000),
            ],
        ),
    )
    .await
    .expect("standard plan");
}

async fn city(pool: &sqlx::PgPool) -> TenantId {
    crate::support::bare_tenant(pool, "billingcity", "請求市").await
}

fn line(
    description_starts: &str,
    quantity: i64,
    unit: i64,
    amount: i64,
) -> (String, i64, i64, i64) {
    (description_starts.to_owned(), quantity, unit, amount)
}

#[tokio::test]
async fn a_known_month_with_a_plan_change_and_duplicate_events_is_invoiced_to_the_yen() {
    let app = spawn_app().await;
    price_list(&app.pool).await;
    let tenant = city(&app.pool).await;
    let mut tx = tenants::begin(&app.pool, tenant).await.expect("scope");
    let nov = |d| NaiveDate::from_ymd_opt(2026, 11, d).expect("date");
    billing::start_contract(
        &mut tx,
        "basic",
        nov(1),
        json!({ "prices": { "sms_segment": { "unit_price_yen": 9 } } }),
        BTreeMap::from([("multilingual".to_owned(), 1)]),
    )
    .await
    .expect("basic contract");
    billing::start_contract(
        &mut tx,
        "standard",
        nov(21),
        json!({}),
        BTreeMap::from([("call_center_seat".to_owned(), 3)]),
    )
    .await
    .expect("plan change");

    use MeteredKind::*;
    let events = [
        ("sms-a", SmsSegment, 1_100, jst(2026, 11, 5, 10, 0)),
        ("sms-b", SmsSegment, 100, jst(2026, 11, 20, 23, 30)), // last half hour of the basic period
        ("sms-b", SmsSegment, 100, jst(2026, 11, 20, 23, 30)), // duplicate: counts once
        ("sms-c", SmsSegment, 1_000, jst(2026, 11, 21, 0, 10)), // first minutes of the standard period
        ("mail-a", Email, 4_000, jst(2026, 11, 10, 9, 0)),
        ("mail-b", Email, 100, jst(2026, 11, 25, 9, 0)),
        ("book-a", Booking, 1_500, jst(2026, 11, 12, 9, 0)),
        ("book-b", Booking, 2_000, jst(2026, 11, 22, 9, 0)),
        ("book-b", Booking, 2_000, jst(2026, 11, 22, 9, 0)), // duplicate
        ("res-11-01", Resident, 40_000, jst(2026, 11, 1, 3, 0)),
        ("res-11-15", Resident, 45_000, jst(2026, 11, 15, 3, 0)),
        ("res-11-25", Resident, 46_000, jst(2026, 11, 25, 3, 0)),
        ("sms-oct", SmsSegment, 999, jst(2026, 10, 31, 23, 59)), // October: not this invoice
        ("sms-dec", SmsSegment, 999, jst(2026, 12, 1, 0, 0)),    // December: not this invoice
    ];
    let mut fresh = 0;
    for (key, kind, qty, at) in events {
        fresh += usage::record(&mut tx, key, kind, qty, at)
            .await
            .expect("usage") as i32;
    }
    assert_eq!(fresh, 12, "the two duplicates were not recorded");

    let draft = billing::build_draft(&mut tx, nov(1), "Asia/Tokyo", Duration::days(5))
        .await
        .expect("draft");
    tx.commit().await.expect("commit");

    // Expected, by hand. November has 30 days: basic 11/1–11/20 (20 days), standard 11/21–11/30 (10).
    let expected = [
        line("初期設定費", 1, 300_000, 300_000), // first contract starts this month
        line("システム利用料（basic）", 1, 66_666, 66_666), // 100,000 × 20/30 = 66,666.67 ↓
        line("クラウド利用料（basic）", 1, 20_000, 20_000), // 30,000 × 20/30
        line("多言語表示（basic）", 1, 13_333, 13_333), // 20,000 × 20/30 = 13,333.3 ↓
        line("SMS送信（通）（basic）", 534, 9, 4_806), // 1,200 − ⌊1,000×20/30⌋=666 → 534 × 9 (override)
        line("メール送信（basic）", 667, 1, 667),      // 4,000 − 3,333
        line("予約件数（basic）", 167, 5, 835),        // 1,500 − 1,333
        line("管理対象者数（月間最大）（basic）", 11_667, 1, 11_667), // peak 45,000 − 33,333
        line("システム利用料（standard）", 1, 50_000, 50_000), // 150,000 × 10/30
        line("クラウド利用料（standard）", 1, 15_000, 15_000), // 45,000 × 10/30
        line("コールセンター席 ×3（standard）", 1, 12_000, 12_000), // 3 × 12,000 × 10/30
        // SMS 1,000 ≤ ⌊3,000×10/30⌋ = 1,000 and e-mail 100 ≤ 3,333: nothing to bill
        line("予約件数（standard）", 334, 4, 1_336), // 2,000 − 1,666
        line("管理対象者数（月間最大）（standard）", 12_667, 1, 12_667), // 46,000 − 33,333
    ];
    let got: Vec<(String, i64, i64, i64)> = draft
        .lines
        .iter()
        .map(|l| {
            (
                l.description.clone(),
                l.quantity,
                l.unit_price_yen,
                l.amount_yen,
            )
        })
        .collect();
    assert_eq!(got.len(), expected.len(), "lines: {got:#?}");
    for (g, e) in got.iter().zip(expected.iter()) {
        assert!(
            g.0.starts_with(&e.0),
            "line {:?} should start with {:?}",
            g.0,
            e.0
        );
        assert_eq!((g.1, g.2, g.3), (e.1, e.2, e.3), "{}", g.0);
    }
    let subtotal = 300_000
        + 66_666
        + 20_000
        + 13_333
        + 4_806
        + 667
        + 835
        + 11_667
        + 50_000
        + 15_000
        + 12_000
        + 1_336
        + 12_667;
    assert_eq!(subtotal, 508_977);
    assert_eq!(draft.totals.subtotal_yen, 508_977);
    assert_eq!(draft.totals.tax_yen, 50_897, "10 % rounded down");
    assert_eq!(draft.totals.total_yen, 559_874);
    assert_eq!(draft.status, "draft");
}

#[tokio::test]
async fn a_final_invoice_cannot_change_and_a_credit_note_corrects_it() {
    let app = spawn_app().await;
    price_list(&app.pool).await;
    let tenant = city(&app.pool).await;
    let nov1 = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
    let mut tx = tenants::begin(&app.pool, tenant).await.expect("scope");
    billing::start_contract(&mut tx, "basic", nov1, json!({}), BTreeMap::new())
        .await
        .expect("contract");
    let draft = billing::build_draft(&mut tx, nov1, "Asia/Tokyo", Duration::days(5))
        .await
        .expect("draft");

    // within the grace period the draft is rebuilt with late usage, and cannot be finalised yet
    usage::record(
        &mut tx,
        "late-receipt",
        MeteredKind::SmsSegment,
        1_010,
        jst(2026, 11, 30, 22, 0),
    )
    .await
    .expect("late usage");
    let rebuilt = billing::build_draft(&mut tx, nov1, "Asia/Tokyo", Duration::days(5))
        .await
        .expect("rebuild");
    assert_eq!(rebuilt.id, draft.id);
    assert_eq!(
        rebuilt.totals.subtotal_yen,
        draft.totals.subtotal_yen + 10 * 10
    );
    let early = billing::finalize(&mut tx, draft.id, jst(2026, 12, 3, 12, 0), false).await;
    assert!(
        matches!(early, Err(BillingError::GraceNotOver(_))),
        "{early:?}"
    );

    let fin = billing::finalize(&mut tx, draft.id, jst(2026, 12, 7, 12, 0), false)
        .await
        .expect("finalise");
    assert_eq!(fin.status, "final");
    assert_eq!(fin.number.as_deref(), Some("YYK-2026-000001"));
    tx.commit().await.expect("commit");

    // no path of the application can change it: the database refuses, whoever asks
    for attempt in [
        "UPDATE invoices SET total_yen = 1, subtotal_yen = 1, tax_yen = 0",
        "DELETE FROM invoices",
        "UPDATE invoice_lines SET amount_yen = 0",
        "DELETE FROM invoice_lines",
    ] {
        let mut tx = tenants::begin(&app.pool, tenant).await.expect("scope");
        let result = sqlx::query(attempt).execute(&mut *tx).await;
        assert!(result.is_err(), "{attempt} must be refused");
    }
    let mut tx = tenants::begin(&app.pool, tenant).await.expect("scope");
    let again = billing::build_draft(&mut tx, nov1, "Asia/Tokyo", Duration::days(5)).await;
    assert!(
        matches!(again, Err(BillingError::Final(ref n)) if n == "YYK-2026-000001"),
        "{again:?}"
    );
    let refinal = billing::finalize(&mut tx, fin.id, jst(2026, 12, 8, 0, 0), true).await;
    assert!(matches!(refinal, Err(BillingError::Final(_))));

    let credit = billing::credit_note(
        &mut tx,
        fin.id,
        &[Line {
            description: "SMS送信 誤請求分".into(),
            quantity: 10,
            unit_price_yen: 10,
            amount_yen: 100,
        }],
        jst(2026, 12, 8, 9, 0),
    )
    .await
    .expect("credit note");
    assert_eq!(credit.kind, "credit_note");
    assert_eq!(
        credit.number.as_deref(),
        Some("YYK-2026-000002"),
        "numbers are gapless across kinds"
    );
    assert_eq!(credit.corrects, Some(fin.id));
    assert_eq!(
        (
            credit.totals.subtotal_yen,
            credit.totals.tax_yen,
            credit.totals.total_yen
        ),
        (-100, -10, -110)
    );
    let too_much = billing::credit_note(
        &mut tx,
        fin.id,
        &[Line {
            description: "x".into(),
            quantity: 1,
            unit_price_yen: 9_999_999,
            amount_yen: 9_999_999,
        }],
        jst(2026, 12, 8, 9, 0),
    )
    .await;
    assert!(matches!(too_much, Err(BillingError::Validation(_))));
    let unchanged = billing::load_invoice(&mut tx, fin.id)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(unchanged.totals, fin.totals);
    assert_eq!(
        billing::list_invoices(&mut tx).await.expect("list").len(),
        2
    );
}

#[tokio::test]
async fn bad_contract_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    price_list(&app.pool).await;
    let tenant = city(&app.pool).await;
    let nov1 = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
    let mut tx = tenants::begin(&app.pool, tenant).await.expect("scope");
    let cases = [
        ("gold", json!({}), BTreeMap::new()),
        ("basic", json!({ "system_fee_yen": -1 }), BTreeMap::new()),
        ("basic", json!({ "discount": 5 }), BTreeMap::new()),
        (
            "basic",
            json!({}),
            BTreeMap::from([("call_center_seat".to_owned(), 2)]),
        ),
    ];
    for (plan, overrides, addons) in cases {
        assert!(
            billing::start_contract(&mut tx, plan, nov1, overrides.clone(), addons)
                .await
                .is_err(),
            "{plan} {overrides}"
        );
    }
    let contracts: i64 = sqlx::query_scalar("SELECT count(*) FROM contracts")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(contracts, 0);
    billing::start_contract(&mut tx, "basic", nov1, json!({}), BTreeMap::new())
        .await
        .expect("contract");
    let backwards = billing::start_contract(
        &mut tx,
        "standard",
        nov1 - Duration::days(1),
        json!({}),
        BTreeMap::new(),
    )
    .await;
    assert!(matches!(backwards, Err(BillingError::Validation(_))));
}
