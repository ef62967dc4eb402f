//! Issue 17: a city's bookings over GraphQL for staff and API keys — the cursor connection
//! `city { bookings }` and booking / changing / cancelling on a resident's behalf.
//!
//! * Paging through 10,000 bookings while others are booked sees each pre-existing one once.
//! * Every new field with a key lacking the scope (FORBIDDEN, no data), a key of another city
//!   (NOT_FOUND, no data, nothing changed) and the right key (works, audited).
//! * A cursor that is not one of ours is VALIDATION, before anything is read.
//!
//! The role matrix (every staff role against these fields) is `surface::FIELDS` /
//! `authz_matrix.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, spawn_app};
use crate::surface::api_key;

fn code(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

const PAGE: &str = "query($slug: String!, $after: String, $first: Int!) { city(city: $slug) { \
    bookings(first: $first, after: $after) { edges { cursor node { id } } \
    pageInfo { hasNextPage endCursor } } } }";

const BOOK: &str = "mutation($slug: String!, $resident: UUID!, $slot: UUID!, $key: String!) { \
    bookOnBehalf(city: $slug, input: { residentId: $resident, slotId: $slot, dose: FIRST, idempotencyKey: $key }) { \
    bookings { id residentId slotId status dose } overridden errors { code message field } } }";

const CHANGE: &str = "mutation($slug: String!, $booking: UUID!, $slot: UUID!, $key: String!) { \
    changeBookingOnBehalf(city: $slug, input: { bookingId: $booking, slotId: $slot, idempotencyKey: $key }) { \
    bookings { id slotId status } errors { code field } } }";

const CANCEL: &str = "mutation($slug: String!, $booking: UUID!, $key: String!) { \
    cancelBookingOnBehalf(city: $slug, input: { bookingId: $booking, idempotencyKey: $key }) { \
    bookings { id status } errors { code field } } }";

/// Future slots of one bookable venue of the tenant (clear of deadlines and cut-offs).
async fn future_slots(app: &TestApp, tenant: &tenants::Tenant, n: i64) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT s.id FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
         WHERE s.tenant_id = $1 AND s.starts_at > now() + interval '5 days' AND s.booked < s.capacity \
           AND (v.booking_opens_at IS NULL OR v.booking_opens_at <= now()) \
           AND v.id = (SELECT id FROM venues WHERE tenant_id = $1 AND kind = 'mass' ORDER BY name LIMIT 1) \
         ORDER BY s.starts_at LIMIT $2",
    )
    .bind(tenant.id.0)
    .bind(n)
    .fetch_all(&app.owner)
    .await
    .expect("future slots")
}

/// Residents of the tenant without any booking.
async fn free_residents(app: &TestApp, tenant: &tenants::Tenant, n: i64) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT id FROM residents r WHERE tenant_id = $1 AND NOT EXISTS \
         (SELECT 1 FROM bookings b WHERE b.tenant_id = r.tenant_id AND b.resident_id = r.id) \
         ORDER BY ticket_no LIMIT $2",
    )
    .bind(tenant.id.0)
    .bind(n)
    .fetch_all(&app.owner)
    .await
    .expect("free residents")
}

async fn bookings_of(app: &TestApp, tenant: &tenants::Tenant) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bookings WHERE tenant_id = $1")
        .bind(tenant.id.0)
        .fetch_one(&app.owner)
        .await
        .expect("count")
}

#[tokio::test]
async fn graphql_paging_through_10000_bookings_while_others_are_booked_sees_each_once() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let t = a.id.0;
    // 10,000 residents with a booking each (random v4 ids, so the bookings made meanwhile sort
    // between them), plus 300 without, for the bookings made while paging
    sqlx::query(
        "INSERT INTO residents (tenant_id, id, ticket_no, birth_date, kana_name, sex) \
         SELECT $1, gen_random_uuid(), (3000000000 + n)::text, date '1970-01-01' + (n % 20000), 'ページ', 'unknown' \
         FROM generate_series(1, 10300) n",
    )
    .bind(t)
    .execute(&app.owner)
    .await
    .expect("residents");
    sqlx::query(
        "WITH s AS (SELECT s.id, v.vaccine_id, row_number() OVER (ORDER BY s.id) - 1 AS i, count(*) OVER () AS n \
                      FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id WHERE s.tenant_id = $1), \
              r AS (SELECT id, row_number() OVER (ORDER BY ticket_no) - 1 AS i FROM residents \
                     WHERE tenant_id = $1 AND ticket_no BETWEEN '3000000001' AND '3000010000') \
         INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, booked_by, group_id) \
         SELECT $1, gen_random_uuid(), r.id, s.id, s.vaccine_id, 1, r.id, gen_random_uuid() \
         FROM r JOIN s ON s.i = r.i % s.n",
    )
    .bind(t)
    .execute(&app.owner)
    .await
    .expect("bookings");
    let before: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM bookings WHERE tenant_id = $1")
        .bind(t)
        .fetch_all(&app.owner)
        .await
        .expect("ids");
    assert!(before.len() >= 10_000, "{}", before.len());
    let newcomers: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM residents WHERE tenant_id = $1 AND ticket_no > '3000010000' AND ticket_no <= '3000010300' ORDER BY ticket_no",
    )
    .bind(t)
    .fetch_all(&app.owner)
    .await
    .expect("newcomers");
    let slot = future_slots(&app, &a, 1).await[0];
    sqlx::query("UPDATE slots SET capacity = capacity + 1000 WHERE id = $1")
        .bind(slot)
        .execute(&app.owner)
        .await
        .expect("room");

    let reader = api_key(&app, &a, &["bookings:read"]).await;
    let writer = api_key(&app, &a, &["bookings:write"]).await;
    let first = app
        .graphql_with_key(
            &reader,
            "query($slug: String!) { city(city: $slug) { bookings(first: 1) { totalCount } } }",
            json!({ "slug": "yokohama" }),
        )
        .await;
    assert_eq!(
        first["data"]["city"]["bookings"]["totalCount"].as_i64(),
        Some(before.len() as i64),
        "{first}"
    );

    // bookings made through the API while the pager runs
    let app = Arc::new(app);
    let done = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let inserter = {
        let (app, done, made, writer) = (app.clone(), done.clone(), made.clone(), writer.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for resident in newcomers {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let answer = app
                    .graphql_with_key(
                        &writer,
                        BOOK,
                        json!({ "slug": "yokohama", "resident": resident, "slot": slot,
                                "key": format!("paging-{resident}") }),
                    )
                    .await;
                let booked = &answer["data"]["bookOnBehalf"];
                assert_eq!(booked["errors"], json!([]), "{answer}");
                ids.push(
                    booked["bookings"][0]["id"]
                        .as_str()
                        .and_then(|s| Uuid::try_parse(s).ok())
                        .expect("booking id"),
                );
                made.fetch_add(1, Ordering::SeqCst);
            }
            ids
        })
    };

    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    let made_during;
    loop {
        let answer = app
            .graphql_with_key(
                &reader,
                PAGE,
                json!({ "slug": "yokohama", "after": after, "first": 200 }),
            )
            .await;
        assert!(answer["errors"].is_null(), "{answer}");
        let conn = &answer["data"]["city"]["bookings"];
        for edge in conn["edges"].as_array().expect("edges") {
            let id = Uuid::try_parse(edge["node"]["id"].as_str().expect("id")).expect("uuid");
            *seen.entry(id).or_default() += 1;
        }
        pages += 1;
        if pages == 1 {
            // let the inserter get going before the second page
            for _ in 0..200 {
                if made.load(Ordering::SeqCst) >= 5 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        if !conn["pageInfo"]["hasNextPage"]
            .as_bool()
            .expect("hasNextPage")
        {
            made_during = made.load(Ordering::SeqCst);
            break;
        }
        after = Some(
            conn["pageInfo"]["endCursor"]
                .as_str()
                .expect("endCursor")
                .to_owned(),
        );
    }
    done.store(true, Ordering::SeqCst);
    let new_ids = inserter.await.expect("inserter");
    assert!(
        made_during >= 5,
        "bookings were made while paging ({made_during})"
    );

    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "seen more than once: {twice:?}");
    let missing: Vec<_> = before.iter().filter(|id| !seen.contains_key(id)).collect();
    assert!(
        missing.is_empty(),
        "{} pre-existing bookings missing",
        missing.len()
    );
    // whatever the pager saw besides them was booked meanwhile
    let known: HashSet<&Uuid> = before.iter().chain(new_ids.iter()).collect();
    assert!(
        seen.keys().all(|id| known.contains(id)),
        "only real bookings"
    );
    assert!(pages >= 50, "{pages} pages of at most 200");
    // each page is a view of personal data: one audit entry per page, by the key
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'bookings.list' AND actor LIKE 'API key %'",
    )
    .bind(t)
    .fetch_one(&app.owner)
    .await
    .expect("audit");
    assert_eq!(
        audited,
        pages as i64 + 1,
        "one entry per page (and the count's page)"
    );
}

#[tokio::test]
async fn graphql_bookings_fields_refuse_a_key_without_the_scope_or_of_another_city() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let read = api_key(&app, &a, &["bookings:read"]).await;
    let write = api_key(&app, &a, &["bookings:write"]).await;
    let other_scope = api_key(&app, &a, &["venues:read", "residents:read"]).await;
    let other_city = api_key(&app, &b, &["bookings:read", "bookings:write"]).await;
    let slots = future_slots(&app, &a, 2).await;
    let people = free_residents(&app, &a, 2).await;
    let (slot, slot2, resident) = (slots[0], slots[1], people[0]);
    let vars =
        |key: &str| json!({ "slug": "yokohama", "resident": resident, "slot": slot, "key": key });

    // --- bookOnBehalf
    let count = bookings_of(&app, &a).await;
    for (who, key, expected) in [
        ("read-only key", &read, "FORBIDDEN"),
        ("key without bookings scopes", &other_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, BOOK, vars("contract-book-refused"))
            .await;
        assert_eq!(code(&answer), Some(expected), "{who}: {answer}");
        assert!(answer["data"].is_null(), "{who}: no data: {answer}");
    }
    // another city's key naming its own city with this city's ids: not found, nothing booked
    let answer = app
        .graphql_with_key(
            &other_city,
            BOOK,
            json!({ "slug": "kawasaki", "resident": resident, "slot": slot, "key": "contract-cross-ids" }),
        )
        .await;
    assert_eq!(
        answer["data"]["bookOnBehalf"]["errors"][0]["code"], "NOT_FOUND",
        "{answer}"
    );
    assert_eq!(answer["data"]["bookOnBehalf"]["bookings"], json!([]));
    assert_eq!(bookings_of(&app, &a).await, count, "nothing was booked");

    // a key may not pass deadlines (only city admins hold the override)
    let answer = app
        .graphql_with_key(
            &write,
            "mutation($slug: String!, $resident: UUID!, $slot: UUID!) { bookOnBehalf(city: $slug, input: { \
               residentId: $resident, slotId: $slot, dose: FIRST, idempotencyKey: \"contract-override\", overrideDeadline: true }) { errors { code } } }",
            json!({ "slug": "yokohama", "resident": resident, "slot": slot }),
        )
        .await;
    assert_eq!(code(&answer), Some("FORBIDDEN"), "{answer}");
    assert_eq!(bookings_of(&app, &a).await, count);

    let answer = app
        .graphql_with_key(&write, BOOK, vars("contract-book-ok"))
        .await;
    let booked = &answer["data"]["bookOnBehalf"];
    assert_eq!(booked["errors"], json!([]), "{answer}");
    assert_eq!(booked["overridden"], false);
    assert_eq!(booked["bookings"][0]["residentId"], json!(resident));
    assert_eq!(booked["bookings"][0]["status"], "BOOKED");
    let booking: Uuid = serde_json::from_value(booked["bookings"][0]["id"].clone()).expect("id");
    // a retry with the same key books nothing new and answers the same booking
    let again = app
        .graphql_with_key(&write, BOOK, vars("contract-book-ok"))
        .await;
    assert_eq!(
        again["data"]["bookOnBehalf"]["bookings"][0]["id"],
        json!(booking),
        "{again}"
    );
    assert_eq!(bookings_of(&app, &a).await, count + 1);
    // a refusal of the booking rules is a user error naming the field
    let answer = app
        .graphql_with_key(&write, BOOK, vars("contract-book-twice"))
        .await;
    let err = &answer["data"]["bookOnBehalf"]["errors"][0];
    assert_eq!(err["code"], "CONFLICT", "{answer}");
    assert_eq!(err["field"], "dose", "{answer}");
    assert!(!err["message"].as_str().unwrap_or("").is_empty());
    let audited: String = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE tenant_id = $1 AND action = 'callcenter.book' AND object = $2",
    )
    .bind(a.id.0)
    .bind(format!("resident/{resident}"))
    .fetch_one(&app.owner)
    .await
    .expect("audited");
    assert!(audited.starts_with("API key"), "{audited}");

    // --- city { bookings }
    let list = "query($slug: String!, $status: BookingStatus) { city(city: $slug) { \
        bookings(first: 200, status: $status) { totalCount edges { node { id residentId status } } pageInfo { hasNextPage } } } }";
    for (who, key, expected) in [
        ("write-only key", &write, "FORBIDDEN"),
        ("key without bookings scopes", &other_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, list, json!({ "slug": "yokohama" }))
            .await;
        assert_eq!(code(&answer), Some(expected), "{who}: {answer}");
        assert!(answer["data"]["city"].is_null(), "{who}: no data: {answer}");
        assert!(!answer.to_string().contains(&booking.to_string()), "{who}");
    }
    let answer = app
        .graphql_with_key(&read, list, json!({ "slug": "yokohama" }))
        .await;
    let conn = &answer["data"]["city"]["bookings"];
    assert!(answer["errors"].is_null(), "{answer}");
    assert!(
        conn["edges"].as_array().expect("edges").iter().any(
            |e| e["node"]["id"] == json!(booking) && e["node"]["residentId"] == json!(resident)
        ),
        "{answer}"
    );
    assert_eq!(
        conn["totalCount"].as_u64(),
        conn["edges"].as_array().map(|e| e.len() as u64)
    );
    // the other city's key sees its own city's bookings, never this one
    let theirs = app
        .graphql_with_key(&other_city, list, json!({ "slug": "kawasaki" }))
        .await;
    assert!(theirs["errors"].is_null(), "{theirs}");
    assert!(!theirs.to_string().contains(&booking.to_string()));

    // --- changeBookingOnBehalf
    let change_vars =
        |key: &str| json!({ "slug": "yokohama", "booking": booking, "slot": slot2, "key": key });
    for (who, key, expected) in [
        ("read-only key", &read, "FORBIDDEN"),
        ("key without bookings scopes", &other_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, CHANGE, change_vars("contract-change-refused"))
            .await;
        assert_eq!(code(&answer), Some(expected), "{who}: {answer}");
        assert!(answer["data"].is_null(), "{who}: {answer}");
    }
    let cross = app
        .graphql_with_key(
            &other_city,
            CHANGE,
            json!({ "slug": "kawasaki", "booking": booking, "slot": slot2, "key": "contract-cross-change" }),
        )
        .await;
    assert_eq!(
        cross["data"]["changeBookingOnBehalf"]["errors"][0]["code"], "NOT_FOUND",
        "{cross}"
    );
    let slot_now: Uuid = sqlx::query_scalar("SELECT slot_id FROM bookings WHERE id = $1")
        .bind(booking)
        .fetch_one(&app.owner)
        .await
        .expect("slot");
    assert_eq!(slot_now, slot, "not moved by refused callers");
    let answer = app
        .graphql_with_key(&write, CHANGE, change_vars("contract-change-ok"))
        .await;
    let moved = &answer["data"]["changeBookingOnBehalf"];
    assert_eq!(moved["errors"], json!([]), "{answer}");
    assert_eq!(moved["bookings"][0]["slotId"], json!(slot2), "{answer}");
    let moved_id: Uuid = serde_json::from_value(moved["bookings"][0]["id"].clone()).expect("id");

    // --- cancelBookingOnBehalf
    let cancel_vars = |key: &str| json!({ "slug": "yokohama", "booking": moved_id, "key": key });
    for (who, key, expected) in [
        ("read-only key", &read, "FORBIDDEN"),
        ("key without bookings scopes", &other_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, CANCEL, cancel_vars("contract-cancel-refused"))
            .await;
        assert_eq!(code(&answer), Some(expected), "{who}: {answer}");
        assert!(answer["data"].is_null(), "{who}: {answer}");
    }
    let live: String = sqlx::query_scalar("SELECT status FROM bookings WHERE id = $1")
        .bind(moved_id)
        .fetch_one(&app.owner)
        .await
        .expect("status");
    assert_eq!(live, "booked", "not cancelled by refused callers");
    let answer = app
        .graphql_with_key(&write, CANCEL, cancel_vars("contract-cancel-ok"))
        .await;
    let cancelled = &answer["data"]["cancelBookingOnBehalf"];
    assert_eq!(cancelled["errors"], json!([]), "{answer}");
    assert_eq!(cancelled["bookings"][0]["status"], "CANCELLED", "{answer}");
    let answer = app
        .graphql_with_key(
            &read,
            list,
            json!({ "slug": "yokohama", "status": "CANCELLED" }),
        )
        .await;
    let nodes = answer["data"]["city"]["bookings"]["edges"]
        .as_array()
        .expect("edges")
        .clone();
    assert!(
        nodes.iter().any(|e| e["node"]["id"] == json!(moved_id)),
        "{answer}"
    );
    assert!(nodes.iter().all(|e| e["node"]["status"] == "CANCELLED"));
}

#[tokio::test]
async fn graphql_bookings_a_bad_cursor_or_page_size_is_validation() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let read = api_key(&app, &a, &["bookings:read"]).await;
    for after in [
        "nope",
        "Ym9va2luZzpub3QtYS11dWlk", // base64url of "booking:not-a-uuid"
        "c2xvdDowMTkzYTdmMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDA", // "slot:…", not a booking's
    ] {
        let answer = app
            .graphql_with_key(
                &read,
                PAGE,
                json!({ "slug": "yokohama", "after": after, "first": 10 }),
            )
            .await;
        assert_eq!(code(&answer), Some("VALIDATION"), "{after}: {answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains("cursor"), "{message}");
    }
    for first in [0, 201] {
        let answer = app
            .graphql_with_key(
                &read,
                PAGE,
                json!({ "slug": "yokohama", "after": null, "first": first }),
            )
            .await;
        assert_eq!(code(&answer), Some("VALIDATION"), "{first}: {answer}");
    }
    // a real cursor works, and nothing was audited for the refused pages
    let answer = app
        .graphql_with_key(
            &read,
            PAGE,
            json!({ "slug": "yokohama", "after": null, "first": 1 }),
        )
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'bookings.list'",
    )
    .bind(a.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("audit");
    assert_eq!(audited, 1);
}
