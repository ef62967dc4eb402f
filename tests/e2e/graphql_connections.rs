//! Issue 17, cursor connections wherever a list can grow (docs/api.md): `city { auditEntries }`,
//! `city { venueSlots }` and `billing { invoiceHistory }`.
//!
//! For each: paging to the end in small pages returns every item that existed when paging began
//! exactly once, in the documented order, while new items are added between the pages (new audit
//! entries come before the first page and never show up behind the cursor); a cursor this list did
//! not hand out, or a page size out of range, is VALIDATION; a caller without the scope or role is
//! refused (FORBIDDEN) and one of another city gets NOT_FOUND and no data. The deprecated lists
//! (`auditLog`, `slots`, `invoices`) still answer, in the same order. The role matrix of every
//! field is `surface::FIELDS` / `authz_matrix.rs`.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use platform::staff::authz::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{AdminClient, TestApp, spawn_app};
use crate::surface::api_key;

fn code(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

/// A refused field: the code, and nothing of the city in `data`.
fn assert_refused(who: &str, answer: &Value, expected: &str, container: &str) {
    assert_eq!(code(answer), Some(expected), "{who}: {answer}");
    assert!(
        answer["data"].is_null() || answer["data"][container].is_null(),
        "{who}: no data: {answer}"
    );
}

/// A cursor of another list, well formed for it.
fn foreign_cursor(list: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{list}:1796000000000000:{}", Uuid::nil()))
}

/// The edges of a connection at `path` and where it goes on (None at the end).
fn edges_of(answer: &Value, path: [&str; 2]) -> (Vec<Value>, Option<String>) {
    assert!(answer["errors"].is_null(), "{answer}");
    let conn = &answer["data"][path[0]][path[1]];
    let edges = conn["edges"].as_array().expect("edges").clone();
    for e in &edges {
        assert!(e["cursor"].as_str().is_some_and(|c| !c.is_empty()), "{e}");
    }
    let next = conn["pageInfo"]["hasNextPage"]
        .as_bool()
        .expect("hasNextPage")
        .then(|| {
            conn["pageInfo"]["endCursor"]
                .as_str()
                .expect("endCursor")
                .to_owned()
        });
    if let Some(last) = edges.last() {
        assert_eq!(conn["pageInfo"]["endCursor"], last["cursor"], "{answer}");
    }
    (edges, next)
}

fn uuid_of(v: &Value) -> Uuid {
    Uuid::try_parse(v.as_str().expect("id")).expect("uuid")
}

fn instant(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("instant"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

// ---- the audit log -------------------------------------------------------------------------

const ENTRIES: &str = "query($slug: String!, $first: Int!, $after: String) { city(city: $slug) { \
    auditEntries(first: $first, after: $after) { edges { cursor node { id at actor action object } } \
    pageInfo { hasNextPage endCursor } } } }";

const CREATE_VACCINE: &str = "mutation($slug: String!, $name: String!) { createVaccine(city: $slug, \
    input: { name: $name, maker: \"M\", doses: 1, minIntervalDays: 0, boosterIntervalMonths: 0, \
    daysUntilEffective: 0, validityDays: 1 }) { vaccine { id } errors { code message } } }";

#[tokio::test]
async fn graphql_audit_entries_page_newest_first_each_once_while_actions_are_audited() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let reader = api_key(&app, &a, &["audit:read"]).await;
    let writer = api_key(&app, &a, &["config:write"]).await;
    let no_scope = api_key(&app, &a, &["venues:read", "residents:read"]).await;
    let other_city = api_key(&app, &b, &["audit:read"]).await;
    // 60 more entries, three at each instant: the id decides among them
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, at, actor, action, object) \
         SELECT $1, gen_random_uuid(), timestamptz '2026-11-30 00:00:00+00' + (n / 3) * interval '1 second', \
                'test', 'paging.seed', 'seed/' || n FROM generate_series(1, 60) n",
    )
    .bind(a.id.0)
    .execute(&app.owner)
    .await
    .expect("entries");
    let before: HashSet<Uuid> = sqlx::query_scalar("SELECT id FROM audit_log WHERE tenant_id = $1")
        .bind(a.id.0)
        .fetch_all(&app.owner)
        .await
        .expect("ids")
        .into_iter()
        .collect();
    assert!(before.len() > 60, "{}", before.len());

    // small pages, and an audited change between every two of them
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    let mut last: Option<(DateTime<Utc>, Uuid)> = None;
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let answer = app
            .graphql_with_key(
                &reader,
                ENTRIES,
                json!({ "slug": "yokohama", "first": 7, "after": after }),
            )
            .await;
        let (edges, next) = edges_of(&answer, ["city", "auditEntries"]);
        assert!(edges.len() <= 7);
        for e in &edges {
            let key = (instant(&e["node"]["at"]), uuid_of(&e["node"]["id"]));
            assert!(
                last.is_none_or(|l| key < l),
                "newest first by (at, id): {e}"
            );
            last = Some(key);
            *seen.entry(key.1).or_default() += 1;
        }
        pages += 1;
        let made = app
            .graphql_with_key(
                &writer,
                CREATE_VACCINE,
                json!({ "slug": "yokohama", "name": format!("Paging {pages}") }),
            )
            .await;
        assert_eq!(made["data"]["createVaccine"]["errors"], json!([]), "{made}");
        match next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert!(seen.values().all(|n| *n == 1), "no entry twice");
    let got: HashSet<Uuid> = seen.keys().copied().collect();
    assert_eq!(got, before, "every entry that existed when paging began");
    assert_eq!(pages, before.len().div_ceil(7));

    // what was recorded meanwhile is newer: it leads a fresh first page
    let made: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'vaccine.create' AND actor LIKE 'API key %'",
    )
    .bind(a.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("count");
    assert_eq!(made, pages as i64);
    let fresh = app
        .graphql_with_key(&reader, ENTRIES, json!({ "slug": "yokohama", "first": 5 }))
        .await;
    let (top, _) = edges_of(&fresh, ["city", "auditEntries"]);
    assert!(
        top.iter().all(|e| e["node"]["action"] == "vaccine.create"),
        "{fresh}"
    );
    // the deprecated list still answers, in the same order
    let old = app
        .graphql_with_key(
            &reader,
            "query { city(city: \"yokohama\") { auditLog(limit: 5) { id action } } }",
            json!({}),
        )
        .await;
    let old_ids: Vec<&Value> = old["data"]["city"]["auditLog"]
        .as_array()
        .expect("auditLog")
        .iter()
        .map(|e| &e["id"])
        .collect();
    let new_ids: Vec<&Value> = top.iter().map(|e| &e["node"]["id"]).collect();
    assert_eq!(old_ids, new_ids, "{old}");

    // input: VALIDATION, nothing of the log in the answer
    for (what, first, after) in [
        ("not a cursor", 5, Some("bm90LWEtY3Vyc29y".to_owned())),
        ("a slot cursor", 5, Some(foreign_cursor("slot"))),
        ("no page", 0, None),
        ("too big a page", 201, None),
    ] {
        let answer = app
            .graphql_with_key(
                &reader,
                ENTRIES,
                json!({ "slug": "yokohama", "first": first, "after": after }),
            )
            .await;
        assert_refused(what, &answer, "VALIDATION", "city");
    }
    // a key without audit:read, a key of another city
    for (who, key, expected) in [
        ("key without audit:read", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, ENTRIES, json!({ "slug": "yokohama", "first": 5 }))
            .await;
        assert_refused(who, &answer, expected, "city");
        assert!(!answer.to_string().contains("paging.seed"), "{who}");
    }
    // the other city's own log has none of the first city's entries
    let theirs = app
        .graphql_with_key(
            &other_city,
            ENTRIES,
            json!({ "slug": "kawasaki", "first": 200 }),
        )
        .await;
    let (edges, _) = edges_of(&theirs, ["city", "auditEntries"]);
    assert!(
        edges
            .iter()
            .all(|e| !got.contains(&uuid_of(&e["node"]["id"])))
    );
}

// ---- a venue's slots -----------------------------------------------------------------------

const SLOTS: &str = "query($slug: String!, $venue: UUID!, $first: Int!, $after: String) { city(city: $slug) { \
    venueSlots(venueId: $venue, from: \"2031-05-01T00:00:00Z\", first: $first, after: $after) { totalCount \
    edges { cursor node { id startsAt capacity booked } } pageInfo { hasNextPage endCursor } } } }";

async fn add_slot(app: &TestApp, tenant: &tenants::Tenant, venue: Uuid, at: DateTime<Utc>) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
         VALUES ($1, $2, $3, $4, $4 + interval '15 minutes', 5)",
    )
    .bind(tenant.id.0)
    .bind(id)
    .bind(venue)
    .bind(at)
    .execute(&app.owner)
    .await
    .expect("slot");
    id
}

#[tokio::test]
async fn graphql_venue_slots_page_earliest_first_each_once_from_a_fixed_moment() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let venue: Uuid = sqlx::query_scalar(
        "SELECT id FROM venues WHERE tenant_id = $1 AND kind = 'mass' ORDER BY name LIMIT 1",
    )
    .bind(a.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("venue");
    let from = DateTime::parse_from_rfc3339("2031-05-01T00:00:00Z")
        .expect("from")
        .with_timezone(&Utc);
    add_slot(&app, &a, venue, from - Duration::hours(1)).await; // before `from`
    let mut before = Vec::new();
    for n in 0..23 {
        before.push((
            from + Duration::minutes(30 * n),
            add_slot(&app, &a, venue, from + Duration::minutes(30 * n)).await,
        ));
    }
    before.sort();
    let reader = api_key(&app, &a, &["venues:read"]).await;
    let no_scope = api_key(&app, &a, &["audit:read"]).await;
    let other_city = api_key(&app, &b, &["venues:read"]).await;
    let vars = |first: i64, after: Option<String>| json!({ "slug": "yokohama", "venue": venue, "first": first, "after": after });

    let mut order = Vec::new();
    let mut after = None;
    let (mut behind, mut ahead) = (Vec::new(), Vec::new());
    loop {
        let answer = app
            .graphql_with_key(&reader, SLOTS, vars(4, after.clone()))
            .await;
        if after.is_none() {
            let total = &answer["data"]["city"]["venueSlots"]["totalCount"];
            assert_eq!(total.as_i64(), Some(23), "{answer}");
        }
        let (edges, next) = edges_of(&answer, ["city", "venueSlots"]);
        for e in &edges {
            order.push((instant(&e["node"]["startsAt"]), uuid_of(&e["node"]["id"])));
        }
        // a slot added behind the cursor is not seen; one ahead of it is (while pages follow)
        let Some(next) = next else { break };
        let n = behind.len() as i64;
        behind.push(add_slot(&app, &a, venue, from + Duration::minutes(30 * n + 1)).await);
        ahead.push(
            add_slot(
                &app,
                &a,
                venue,
                from + Duration::days(2) + Duration::minutes(n),
            )
            .await,
        );
        after = Some(next);
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "earliest first by (startsAt, id)");
    let ids: Vec<Uuid> = order.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "no slot twice"
    );
    for (_, id) in &before {
        assert_eq!(ids.iter().filter(|i| *i == id).count(), 1, "{id} once");
    }
    assert!(
        ids.iter()
            .all(|i| before.iter().any(|(_, b)| b == i) || ahead.contains(i))
    );
    assert!(
        ahead.iter().all(|i| ids.contains(i)),
        "added ahead of the cursor: seen"
    );
    // the deprecated list: the same slots in the same order
    let old = app
        .graphql_with_key(
            &reader,
            "query($slug: String!, $venue: UUID!) { city(city: $slug) { slots(venueId: $venue, from: \"2031-05-01T00:00:00Z\", first: 500) { id } } }",
            json!({ "slug": "yokohama", "venue": venue }),
        )
        .await;
    let old_ids: Vec<Uuid> = old["data"]["city"]["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| uuid_of(&s["id"]))
        .collect();
    let mut now_all: Vec<(DateTime<Utc>, Uuid)> = sqlx::query_as(
        "SELECT starts_at, id FROM slots WHERE tenant_id = $1 AND venue_id = $2 AND starts_at >= $3",
    )
    .bind(a.id.0)
    .bind(venue)
    .bind(from)
    .fetch_all(&app.owner)
    .await
    .expect("slots");
    now_all.sort();
    assert_eq!(
        old_ids,
        now_all.iter().map(|(_, id)| *id).collect::<Vec<_>>()
    );

    for (what, first, after) in [
        ("not a cursor", 4, Some("bm90LWEtY3Vyc29y".to_owned())),
        ("an audit cursor", 4, Some(foreign_cursor("audit"))),
        ("no page", 0, None),
        ("too big a page", 501, None),
    ] {
        let answer = app
            .graphql_with_key(&reader, SLOTS, vars(first, after))
            .await;
        assert_refused(what, &answer, "VALIDATION", "city");
    }
    for (who, key, expected) in [
        // the guard answers a venue a key may not read as not found (as `slots` always did)
        ("key without venues:read", &no_scope, "NOT_FOUND"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app.graphql_with_key(key, SLOTS, vars(4, None)).await;
        assert_refused(who, &answer, expected, "city");
        assert!(
            !answer.to_string().contains(&before[0].1.to_string()),
            "{who}"
        );
    }
}

// ---- invoices ------------------------------------------------------------------------------

const INVOICES: &str = "query($slug: String!, $first: Int!, $after: String) { billing(city: $slug) { \
    invoiceHistory(first: $first, after: $after) { totalCount edges { cursor node { id month kind } } \
    pageInfo { hasNextPage endCursor } } } }";

/// A draft document of `month`, issued at `created` (a credit note when it `corrects` one).
async fn add_invoice(
    app: &TestApp,
    tenant: &tenants::Tenant,
    month: NaiveDate,
    created: DateTime<Utc>,
    corrects: Option<Uuid>,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO invoices (tenant_id, id, month, kind, corrects, subtotal_yen, tax_yen, total_yen, grace_until, created_at) \
         VALUES ($1, $2, $3, $4, $5, 1000, 100, 1100, $6 + interval '5 days', $6)",
    )
    .bind(tenant.id.0)
    .bind(id)
    .bind(month)
    .bind(if corrects.is_some() { "credit_note" } else { "invoice" })
    .bind(corrects)
    .bind(created)
    .execute(&app.owner)
    .await
    .expect("invoice");
    id
}

async fn invoice_page(client: &mut AdminClient<'_>, first: i64, after: Option<String>) -> Value {
    client
        .graphql(
            INVOICES,
            json!({ "slug": "yokohama", "first": first, "after": after }),
        )
        .await
}

#[tokio::test]
async fn graphql_invoice_history_pages_newest_month_first_each_once() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    // 14 months of invoices; June 2026 also has two credit notes, issued later
    let mut expected: Vec<Uuid> = Vec::new();
    let mut june = None;
    for m in 0..14 {
        let month = NaiveDate::from_ymd_opt(2025, 10, 1)
            .expect("month")
            .checked_add_months(chrono::Months::new(m))
            .expect("month");
        let issued = month.and_hms_opt(0, 0, 0).expect("time").and_utc() + Duration::days(32);
        let id = add_invoice(&app, &a, month, issued, None).await;
        expected.push(id);
        if month == NaiveDate::from_ymd_opt(2026, 6, 1).expect("june") {
            june = Some((month, id, issued));
        }
    }
    let (month, corrected, issued) = june.expect("june");
    let cn1 = add_invoice(
        &app,
        &a,
        month,
        issued + Duration::days(40),
        Some(corrected),
    )
    .await;
    let cn2 = add_invoice(
        &app,
        &a,
        month,
        issued + Duration::days(41),
        Some(corrected),
    )
    .await;
    add_invoice(&app, &b, month, issued, None).await;
    // newest month first; within June: the invoice, then its credit notes as issued
    expected.reverse();
    let at = expected.iter().position(|i| *i == corrected).expect("june") + 1;
    expected.insert(at, cn2);
    expected.insert(at, cn1);

    let mut admin = app
        .staff_client("admin@yokohama.example", Some((a.id, Role::CityAdmin, &[])))
        .await;
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let answer = invoice_page(&mut admin, 3, after.clone()).await;
        if after.is_none() {
            let total = &answer["data"]["billing"]["invoiceHistory"]["totalCount"];
            assert_eq!(total.as_i64(), Some(16), "{answer}");
        }
        let (edges, next) = edges_of(&answer, ["billing", "invoiceHistory"]);
        got.extend(edges.iter().map(|e| uuid_of(&e["node"]["id"])));
        match next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(got, expected);
    let old = admin
        .graphql(
            "{ billing(city: \"yokohama\") { invoices { id } } }",
            json!({}),
        )
        .await;
    let old_ids: Vec<Uuid> = old["data"]["billing"]["invoices"]
        .as_array()
        .expect("invoices")
        .iter()
        .map(|i| uuid_of(&i["id"]))
        .collect();
    assert_eq!(old_ids, expected, "the deprecated list, same order");

    for (what, first, after) in [
        ("not a cursor", 3, Some("bm90LWEtY3Vyc29y".to_owned())),
        ("an audit cursor", 3, Some(foreign_cursor("audit"))),
        ("too big a page", 201, None),
    ] {
        let answer = invoice_page(&mut admin, first, after).await;
        assert_refused(what, &answer, "VALIDATION", "billing");
    }
    let mut staff = app
        .staff_client("staff@yokohama.example", Some((a.id, Role::CityStaff, &[])))
        .await;
    let mut stranger = app
        .staff_client("admin@kawasaki.example", Some((b.id, Role::CityAdmin, &[])))
        .await;
    for (who, client, expected) in [
        ("city staff", &mut staff, "FORBIDDEN"),
        ("another city's admin", &mut stranger, "NOT_FOUND"),
    ] {
        let answer = invoice_page(client, 3, None).await;
        assert_refused(who, &answer, expected, "billing");
        assert!(
            !answer.to_string().contains(&corrected.to_string()),
            "{who}"
        );
    }
}
