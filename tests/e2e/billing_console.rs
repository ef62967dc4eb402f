//! The user-facing side of billing: the operator's console and the city's usage view (pages),
//! GraphQL usage and invoices, the monthly job's tick, and an Excel download read back with
//! calamine. The arithmetic itself is tested in `billing.rs`.

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{Datelike, NaiveDate, Utc};
use chrono_tz::Asia::Tokyo;
use platform::staff::authz::Role;
use serde_json::json;
use tenants::TenantId;
use tenants::billing::{self, MeteredKind, report, usage};
use uuid::Uuid;

use crate::billing::price_list;
use crate::browser::{DESKTOP, fill, goto, href, launch, set_value, submit, text_now};
use crate::support::{PASSWORD, TestApp, body, jst, spawn_app};

fn oct1() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 1).expect("date")
}

/// A tenant on the basic plan from 1 October 2026 with some October usage.
async fn billed_city(app: &TestApp, slug: &str, code: &str) -> TenantId {
    let t = app.seeded_tenant(slug, code).await.id;
    let mut tx = tenants::begin(&app.pool, t).await.expect("scope");
    billing::start_contract(&mut tx, "basic", oct1(), json!({}), BTreeMap::new())
        .await
        .expect("contract");
    usage::record(
        &mut tx,
        "oct-sms",
        MeteredKind::SmsSegment,
        1_200,
        jst(2026, 10, 15, 12, 0),
    )
    .await
    .expect("usage");
    tx.commit().await.expect("commit");
    t
}

async fn invoice_row(app: &TestApp, t: TenantId, month: NaiveDate) -> (Uuid, String, i64, i64) {
    let row: (Uuid, String, i64, i64) = sqlx::query_as(
        "SELECT id, status, total_yen, (SELECT count(*) FROM invoice_lines l WHERE l.invoice_id = i.id) \
         FROM invoices i WHERE tenant_id = $1 AND month = $2 AND kind = 'invoice'",
    )
    .bind(t.0)
    .bind(month)
    .fetch_one(&app.owner)
    .await
    .expect("invoice row");
    row
}

#[tokio::test]
async fn a_final_invoice_cannot_be_changed_from_the_console_or_graphql_and_a_credit_note_corrects_it()
 {
    let app = spawn_app().await;
    price_list(&app.pool).await;
    let t = billed_city(&app, "billingcity", "141003").await;
    let mut op = app.staff_client("op@yoyaku.example", None).await;
    let base = "/admin/tenants/billingcity";

    let (status, _) = body(
        op.post(&format!("{base}/invoices/draft"), &[("month", "2026-10")])
            .await,
    )
    .await;
    assert_eq!(status, 303);
    let (id, state, total, lines) = invoice_row(&app, t, oct1()).await;
    assert_eq!(state, "draft");
    // basic: 300,000 set-up + 100,000 + 30,000 + 200 SMS × 10 = 432,000; tax 43,200
    assert_eq!(total, 475_200);

    // October's grace period is over (5 days into November): no force needed
    let (_, page) = body(op.get(&format!("{base}/billing")).await).await;
    assert!(page.contains("Grace period over"), "{page}");
    let (status, _) = body(
        op.post(&format!("{base}/invoices/{id}/finalize"), &[])
            .await,
    )
    .await;
    assert_eq!(status, 303);
    let (_, state, _, _) = invoice_row(&app, t, oct1()).await;
    assert_eq!(state, "final");

    // late usage, then "refresh draft" on the final month: refused with the credit-note message
    let mut tx = tenants::begin(&app.pool, t).await.expect("scope");
    usage::record(
        &mut tx,
        "late",
        MeteredKind::SmsSegment,
        500,
        jst(2026, 10, 31, 20, 0),
    )
    .await
    .expect("late usage");
    tx.commit().await.expect("commit");
    let (status, page) = body(
        op.post(&format!("{base}/invoices/draft"), &[("month", "2026-10")])
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        page.contains("is final and cannot be changed; issue a credit note instead"),
        "{page}"
    );
    let (status, page) = body(
        op.post(
            &format!("{base}/invoices/{id}/finalize"),
            &[("force", "on")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(page.contains("is final"), "{page}");
    assert_eq!(
        invoice_row(&app, t, oct1()).await,
        (id, "final".into(), 475_200, lines)
    );

    // GraphQL has no operation that could change an invoice
    let schema = op
        .graphql(
            "{ __schema { mutationType { fields { name } } } }",
            json!({}),
        )
        .await;
    let names = schema["data"]["__schema"]["mutationType"]["fields"].to_string();
    for word in ["nvoice", "illing", "redit", "ontract"] {
        assert!(!names.contains(word), "mutation {names} touches billing");
    }

    // an invalid credit note changes nothing and says why
    let (status, page) = body(
        op.post(
            &format!("{base}/invoices/{id}/credit-note"),
            &[("description", "値引き"), ("amount", "abc")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(page.contains("whole number of yen"), "{page}");
    let (status, page) = body(
        op.post(
            &format!("{base}/invoices/{id}/credit-note"),
            &[("description", "値引き"), ("amount", "9999999")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(page.contains("cannot credit more"), "{page}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices WHERE tenant_id = $1")
        .bind(t.0)
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert_eq!(count, 1);

    // the credit note from the console corrects it
    let (status, _) = body(
        op.post(
            &format!("{base}/invoices/{id}/credit-note"),
            &[("description", "SMS 誤計上分"), ("amount", "10,000")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 303);
    let (cn_status, subtotal, tax, corrects, number): (String, i64, i64, Option<Uuid>, Option<String>) = sqlx::query_as(
        "SELECT status, subtotal_yen, tax_yen, corrects, number FROM invoices WHERE tenant_id = $1 AND kind = 'credit_note'",
    )
    .bind(t.0)
    .fetch_one(&app.owner)
    .await
    .expect("credit note");
    assert_eq!(
        (cn_status.as_str(), subtotal, tax, corrects),
        ("final", -10_000, -1_000, Some(id))
    );
    assert_eq!(number.as_deref(), Some("YYK-2026-000002"));
    let (_, page) = body(op.get(&format!("{base}/billing")).await).await;
    assert!(
        page.contains("credit note") && page.contains("-11,000円"),
        "{page}"
    );
    assert_eq!(
        invoice_row(&app, t, oct1()).await,
        (id, "final".into(), 475_200, lines)
    );
}

#[tokio::test]
async fn a_city_admin_sees_only_their_own_usage_and_invoices_and_the_operator_sees_all() {
    let app = spawn_app().await;
    price_list(&app.pool).await;
    let a = billed_city(&app, "yokohama", "141003").await;
    let b = billed_city(&app, "kawasaki", "141305").await;
    let mut ids = Vec::new();
    for t in [a, b] {
        let mut tx = tenants::begin(&app.pool, t).await.expect("scope");
        let inv = billing::build_draft(&mut tx, oct1(), "Asia/Tokyo", chrono::Duration::days(5))
            .await
            .expect("draft");
        tx.commit().await.expect("commit");
        ids.push(inv.id);
    }
    let (a_inv, b_inv) = (ids[0], ids[1]);

    let mut admin = app
        .staff_client("admin@yokohama.example", Some((a, Role::CityAdmin, &[])))
        .await;
    let (status, page) = body(admin.get("/admin/t/yokohama/billing").await).await;
    assert_eq!(status, 200);
    assert!(page.contains("Usage this month") && page.contains(&a_inv.to_string()));
    assert!(!page.contains(&b_inv.to_string()));
    for path in [
        "/admin/t/kawasaki/billing".to_owned(),
        format!("/admin/t/yokohama/invoices/{b_inv}/xlsx"),
        format!("/admin/t/kawasaki/invoices/{b_inv}/xlsx"),
        "/admin/tenants/yokohama/billing".to_owned(),
        "/admin/plans".to_owned(),
    ] {
        assert_eq!(admin.get(&path).await.status(), 404, "{path}");
    }
    let res = admin
        .get(&format!("/admin/t/yokohama/invoices/{a_inv}/xlsx"))
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.expect("xlsx").starts_with(b"PK"));
    // the printable invoice: same access rules
    let (status, printable) = body(
        admin
            .get(&format!("/admin/t/yokohama/invoices/{a_inv}/print"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        printable.contains("請求書")
            && printable.contains("合計")
            && printable.contains("yokohama"),
        "{printable}"
    );
    assert_eq!(
        admin
            .get(&format!("/admin/t/kawasaki/invoices/{b_inv}/print"))
            .await
            .status(),
        404
    );
    // the download and the usage view are in A's audit log
    let audited: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY at")
            .bind(a.0)
            .fetch_all(&app.owner)
            .await
            .unwrap_or_default();
    assert!(
        audited.contains(&"invoice.download".to_owned())
            && audited.contains(&"usage.view".to_owned()),
        "{audited:?}"
    );

    // the SMS budget: an invalid value changes nothing, a valid one is shown
    let (status, page) = body(
        admin
            .post("/admin/t/yokohama/billing/budget", &[("budget", "-5")])
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        page.contains("between 0 and 100,000,000 segments"),
        "{page}"
    );
    assert_eq!(
        admin
            .post("/admin/t/yokohama/billing/budget", &[("budget", "2,000")])
            .await
            .status(),
        303
    );
    let (_, page) = body(admin.get("/admin/t/yokohama/billing").await).await;
    assert!(page.contains("2,000"), "{page}");
    assert_eq!(
        admin
            .post("/admin/t/kawasaki/billing/budget", &[("budget", "1")])
            .await
            .status(),
        404
    );

    // GraphQL: own tenant yes, B's slug or B's invoice id NOT_FOUND
    const Q: &str = "query($slug: String!, $id: UUID!) { billing(city: $slug) { invoice(id: $id) { id kind status month totalYen lines { description amountYen } } } }";
    let own = admin
        .graphql(Q, json!({ "slug": "yokohama", "id": a_inv }))
        .await;
    assert_eq!(
        own["data"]["billing"]["invoice"]["id"],
        json!(a_inv.to_string()),
        "{own}"
    );
    assert_eq!(
        own["data"]["billing"]["invoice"]["kind"], "INVOICE",
        "{own}"
    );
    assert!(
        ["DRAFT", "FINAL"].contains(
            &own["data"]["billing"]["invoice"]["status"]
                .as_str()
                .unwrap_or("")
        ),
        "{own}"
    );
    for (slug, id) in [("yokohama", b_inv), ("kawasaki", b_inv)] {
        let res = admin.graphql(Q, json!({ "slug": slug, "id": id })).await;
        assert_eq!(
            res["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{slug}: {res}"
        );
    }
    let list = admin
        .graphql("{ billing(city: \"yokohama\") { invoiceHistory { totalCount edges { node { id } } } usage(month: \"2026-10-15\") { kind used included } } }", json!({}))
        .await;
    assert_eq!(
        list["data"]["billing"]["invoiceHistory"],
        json!({ "totalCount": 1, "edges": [{ "node": { "id": a_inv.to_string() } }] }),
        "{list}"
    );
    let sms = list["data"]["billing"]["usage"]
        .as_array()
        .and_then(|u| u.iter().find(|k| k["kind"] == "SMS_SEGMENT").cloned())
        .expect("sms usage");
    assert_eq!(
        (sms["used"].clone(), sms["included"].clone()),
        (json!(1_200), json!(1_000))
    );

    // an auditor reads but cannot set the budget; other staff roles do not see billing
    let mut auditor = app
        .staff_client("audit@yokohama.example", Some((a, Role::Auditor, &[])))
        .await;
    assert_eq!(auditor.get("/admin/t/yokohama/billing").await.status(), 200);
    assert_eq!(
        auditor
            .post("/admin/t/yokohama/billing/budget", &[("budget", "1")])
            .await
            .status(),
        403
    );
    let mut staff = app
        .staff_client("staff@yokohama.example", Some((a, Role::CityStaff, &[])))
        .await;
    assert_eq!(staff.get("/admin/t/yokohama/billing").await.status(), 403);

    // the operator sees both, in the console and in GraphQL
    let mut op = app.staff_client("op@yoyaku.example", None).await;
    for (slug, id) in [("yokohama", a_inv), ("kawasaki", b_inv)] {
        let res = op.graphql(Q, json!({ "slug": slug, "id": id })).await;
        assert_eq!(
            res["data"]["billing"]["invoice"]["id"],
            json!(id.to_string()),
            "{res}"
        );
        let (status, page) = body(op.get(&format!("/admin/tenants/{slug}/billing")).await).await;
        assert_eq!(status, 200);
        assert!(page.contains(&id.to_string()));
        assert_eq!(
            op.get(&format!("/admin/t/{slug}/invoices/{id}/xlsx"))
                .await
                .status(),
            200
        );
    }
    let (_, list) = body(op.get("/admin/tenants").await).await;
    assert!(
        list.contains("basic") && list.contains("Projected this month"),
        "{list}"
    );
}

#[tokio::test]
async fn the_monthly_tick_builds_drafts_in_grace_finalises_after_and_counts_residents_once_a_day() {
    let app = spawn_app().await;
    price_list(&app.pool).await;
    let t = billed_city(&app, "tickcity", "141003").await;
    let residents: i64 = sqlx::query_scalar("SELECT count(*) FROM residents WHERE tenant_id = $1")
        .bind(t.0)
        .fetch_one(&app.owner)
        .await
        .expect("residents");

    let in_grace = jst(2026, 11, 2, 9, 0);
    let r = report::tick(&app.pool, in_grace).await.expect("tick");
    assert!(r.ran);
    assert_eq!(
        (r.drafts_built, r.finalized, r.resident_counts, r.failures),
        (1, 0, 1, 0)
    );
    let (id, state, total, _) = invoice_row(&app, t, oct1()).await;
    assert_eq!((state.as_str(), total), ("draft", 475_200));
    let counted: i64 = sqlx::query_scalar(
        "SELECT quantity FROM usage_events WHERE tenant_id = $1 AND idempotency_key = 'residents:2026-11-02'",
    )
    .bind(t.0)
    .fetch_one(&app.owner)
    .await
    .expect("resident count recorded");
    assert_eq!(counted, residents);

    // again the same day: the draft is refreshed with late usage, residents are not counted twice
    let mut tx = tenants::begin(&app.pool, t).await.expect("scope");
    usage::record(
        &mut tx,
        "late",
        MeteredKind::SmsSegment,
        10,
        jst(2026, 10, 31, 23, 0),
    )
    .await
    .expect("late");
    tx.commit().await.expect("commit");
    let r = report::tick(&app.pool, in_grace).await.expect("tick");
    assert_eq!((r.drafts_built, r.resident_counts), (1, 0));
    assert_eq!(invoice_row(&app, t, oct1()).await.2, 475_200 + 110);

    // another process holding the job's lock: this tick does nothing
    let mut other = app.pool.begin().await.expect("tx");
    let _: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(report::JOB_LOCK)
        .fetch_one(&mut *other)
        .await
        .expect("lock");
    assert!(!report::tick(&app.pool, in_grace).await.expect("tick").ran);
    other.rollback().await.expect("release");

    // after the grace period: finalised with a number, and never rebuilt afterwards
    let after = jst(2026, 11, 10, 9, 0);
    let r = report::tick(&app.pool, after).await.expect("tick");
    assert_eq!((r.drafts_built, r.finalized, r.failures), (0, 1, 0));
    let (same, state, _, _) = invoice_row(&app, t, oct1()).await;
    assert_eq!((same, state.as_str()), (id, "final"));
    let r = report::tick(&app.pool, after).await.expect("tick");
    assert_eq!((r.drafts_built, r.finalized, r.failures), (0, 0, 0));
}

#[tokio::test]
async fn the_operator_puts_a_new_city_on_a_plan_sees_its_usage_and_downloads_the_invoice_as_excel()
{
    let app = spawn_app().await;
    app.staff("operator@yoyaku.example", None).await;
    let base = app.url("");
    let browser = launch(DESKTOP).await;
    let page = browser
        .staff_page(&base, "operator@yoyaku.example", PASSWORD)
        .await;

    // a plan through the console
    goto(&page, format!("{base}/admin/plans")).await;
    fill(&page, "#plan input[name=code]", "town").await;
    fill(&page, "#plan input[name=name]", "Town plan").await;
    fill(&page, "#plan input[name=setup_fee]", "abc").await;
    fill(&page, "#plan input[name=system_fee]", "80000").await;
    fill(&page, "#plan input[name=cloud_fee]", "20000").await;
    fill(&page, "#plan input[name=sms_segment_included]", "100").await;
    fill(&page, "#plan input[name=sms_segment_unit]", "10").await;
    fill(&page, "#plan input[name=booking_included]", "10").await;
    fill(&page, "#plan input[name=booking_unit]", "50").await;
    set_value(
        &page,
        "#plan textarea[name=addons]",
        "multilingual, 多言語表示, 20000",
    )
    .await;
    submit(&page, "#plan button", "whole number of yen").await;
    fill(&page, "#plan input[name=setup_fee]", "100000").await;
    submit(&page, "#plan button", "Town plan").await;

    // onboard the city and put it on the plan from the 1st of this month
    goto(&page, format!("{base}/admin/tenants")).await;
    fill(&page, "#onboard input[name=name]", "Billtown").await;
    fill(&page, "#onboard input[name=slug]", "billtown").await;
    fill(&page, "#onboard input[name=code]", "141003").await;
    submit(&page, "#onboard button", "141003 · billtown").await;
    submit(&page, "#billing-link", "Save contract").await;
    let today = Utc::now().with_timezone(&Tokyo).date_naive();
    let first = today.with_day(1).expect("first");
    set_value(&page, "#contract-form select[name=plan]", "town").await;
    set_value(
        &page,
        "#contract-form input[name=starts_on]",
        &first.to_string(),
    )
    .await;
    fill(&page, "#contract-form input[name=addons]", "multilingual=1").await;
    submit(&page, "#contract-form button", "Town plan (town) from").await;

    // the month's usage shows up in the console
    let tenant = tenants::find_by_slug(&app.pool, "billtown")
        .await
        .expect("db")
        .expect("tenant");
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    let now = Utc::now();
    for i in 0..3 {
        usage::record(
            &mut tx,
            &format!("sms-{i}"),
            MeteredKind::SmsSegment,
            50,
            now,
        )
        .await
        .expect("sms");
    }
    usage::record(&mut tx, "sms-0", MeteredKind::SmsSegment, 50, now)
        .await
        .expect("duplicate");
    for i in 0..12 {
        usage::record(
            &mut tx,
            &format!("booking-{i}"),
            MeteredKind::Booking,
            1,
            now,
        )
        .await
        .expect("booking");
    }
    tx.commit().await.expect("commit");
    goto(&page, format!("{base}/admin/tenants/billtown/billing")).await;
    let shown = text_now(&page).await;
    assert!(shown.contains("SMS segments\t150 (150%)\t100"), "{shown}");
    assert!(shown.contains("Bookings\t12 (120%)\t10"), "{shown}");
    // 80,000 + 20,000 + 20,000 + 100,000 set-up + 50×10 + 2×50 = 220,600; tax 22,060
    assert!(shown.contains("242,660円"), "{shown}");
    goto(&page, format!("{base}/admin/tenants")).await;
    assert!(text_now(&page).await.contains("242,660円"));

    // build and finalise the invoice, then download it
    goto(&page, format!("{base}/admin/tenants/billtown/billing")).await;
    fill(
        &page,
        "#draft-form input[name=month]",
        &today.format("%Y-%m").to_string(),
    )
    .await;
    submit(&page, "#draft-form button", "Force: finalise").await;
    page.find_element("form.finalize input[name=force]")
        .await
        .expect("force")
        .click()
        .await
        .expect("tick");
    submit(&page, "form.finalize button", "YYK-").await;
    let link = href(&page, "#invoices a.download").await;
    let cookies = page.get_cookies().await.expect("cookies");
    let cookie = cookies
        .iter()
        .map(|c| format!("{}={}", c.name, c.value))
        .collect::<Vec<_>>()
        .join("; ");
    let res = app
        .client
        .get(&link)
        .header("cookie", cookie)
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap_or("")
            .contains(".xlsx")
    );
    let bytes = res.bytes().await.expect("bytes").to_vec();
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("xlsx");
    let range = wb.worksheet_range("請求書").expect("sheet");
    let row_of = |starts: &str| {
        (0..range.height())
            .find(|r| matches!(range.get((*r, 0)), Some(Data::String(s)) if s.starts_with(starts)))
            .unwrap_or_else(|| panic!("no row {starts}"))
    };
    let cells = |r: usize| {
        (
            range.get((r, 1)).cloned(),
            range.get((r, 2)).cloned(),
            range.get((r, 3)).cloned(),
        )
    };
    let f = |v: f64| Some(Data::Float(v));
    assert_eq!(cells(row_of("SMS")), (f(50.0), f(10.0), f(500.0)));
    assert_eq!(cells(row_of("予約")), (f(2.0), f(50.0), f(100.0)));
    assert_eq!(
        range.get((row_of("初期"), 3)),
        Some(&Data::Float(100_000.0))
    );
    assert_eq!(
        range.get((row_of("小計"), 3)),
        Some(&Data::Float(220_600.0))
    );
    assert_eq!(
        range.get((row_of("合計"), 3)),
        Some(&Data::Float(242_660.0))
    );
    assert!(
        matches!(range.get((row_of("番号"), 3)), Some(Data::String(n)) if n.starts_with("YYK-"))
    );
    browser.close().await;
}
