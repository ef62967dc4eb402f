//! Issue 17, GraphQL coverage for staff and API keys, continued (docs/api.md): the webhook
//! delivery log and secret rotation, undoing an intake step, side-effect notes and the visit that
//! lists them — each through the platform function the admin UI uses.
//!
//! For every new query and mutation: it works with a key holding the scope; a key of the same
//! city without the scope is refused (FORBIDDEN, no data); a key of another city is refused
//! (NOT_FOUND, nothing of the first city in the answer, nothing changed). The rotated secret signs
//! the next delivery and the old one no longer verifies (the documented check,
//! `plugins::webhook::verify`); an undo over GraphQL leaves what the visit page's undo leaves; a
//! bad input is a VALIDATION user error that changes nothing. The role matrix is
//! `surface::FIELDS` / `authz_matrix.rs`.

use std::sync::{Arc, Mutex};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode};
use platform::booking;
use platform::demo::demo_resident;
use platform::staff::authz::Role;
use plugins::webhook::{DEFAULT_TOLERANCE, VerifyError, verify};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, book_request, demo_app_manual_worker, spawn_app};
use crate::surface::api_key;

fn code(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

/// Nothing but nulls (an object of nulls, at any depth).
fn no_data(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().all(no_data),
        _ => false,
    }
}

/// A refused field: the code, and no data (a nullable field is null, a non-null one nulls its
/// parent).
fn assert_refused(who: &str, answer: &Value, expected: &str) {
    assert_eq!(code(answer), Some(expected), "{who}: {answer}");
    assert!(no_data(&answer["data"]), "{who}: no data: {answer}");
}

async fn count(app: &TestApp, sql: &'static str, bind: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&app.owner)
        .await
        .expect("count")
}

// ---- webhook delivery log ------------------------------------------------------------------

const CREATE_HOOK: &str = "mutation($slug: String!, $url: String!) { createWebhookSubscription(city: $slug, \
    input: { url: $url, events: [BOOKING_CREATED] }) { subscription { id secretHint } secret errors { code field } } }";

const DELIVERIES: &str = "query($slug: String!, $first: Int!, $after: String, $sub: UUID) { city(city: $slug) { \
    webhookDeliveries(first: $first, after: $after, subscriptionId: $sub) { \
    edges { cursor node { id at subscriptionId url eventId eventType attempt outcome httpStatus latencyMs error nextAttemptAt } } \
    nodes { id } pageInfo { hasNextPage endCursor } } } }";

/// Subscribes `url` over GraphQL with `key`; answers the subscription's id and its secret.
async fn subscribe(app: &TestApp, key: &str, slug: &str, url: &str) -> (Uuid, String) {
    let made = app
        .graphql_with_key(key, CREATE_HOOK, json!({ "slug": slug, "url": url }))
        .await;
    let p = &made["data"]["createWebhookSubscription"];
    assert_eq!(p["errors"], json!([]), "{made}");
    let id = Uuid::try_parse(p["subscription"]["id"].as_str().expect("id")).expect("uuid");
    (id, p["secret"].as_str().expect("secret").to_owned())
}

#[tokio::test]
async fn graphql_webhook_deliveries_are_paged_newest_first_once_each_and_only_for_the_scope() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let writer = api_key(&app, &a, &["webhooks:write"]).await;
    let reader = api_key(&app, &a, &["webhooks:read"]).await;
    let no_scope = api_key(&app, &a, &["exports:read", "intake:read"]).await;
    let other_city = api_key(&app, &b, &["webhooks:read", "webhooks:write"]).await;
    let (first_sub, _) = subscribe(&app, &writer, "yokohama", "https://crm.example.org/a").await;
    let (second_sub, _) = subscribe(&app, &writer, "yokohama", "https://crm.example.org/b").await;
    // the log as the worker writes it: 23 attempts, some at the same instant (the id breaks the tie)
    sqlx::query(
        "INSERT INTO webhook_events (tenant_id, id, event_type, data) VALUES ($1, $2, 'booking.created', '{}')",
    )
    .bind(a.id.0)
    .bind(Uuid::now_v7())
    .execute(&app.owner)
    .await
    .expect("event");
    sqlx::query(
        "INSERT INTO webhook_deliveries (tenant_id, id, subscription_id, event_id, attempt, at, outcome, \
                http_status, latency_ms, error, next_attempt_at) \
         SELECT $1, gen_random_uuid(), CASE WHEN n % 3 = 0 THEN $3 ELSE $2 END, \
                (SELECT id FROM webhook_events WHERE tenant_id = $1), n, \
                timestamptz '2031-03-03 01:00:00+00' + (n / 2) * interval '1 minute', \
                CASE WHEN n % 2 = 0 THEN 'delivered' ELSE 'failed' END, \
                CASE WHEN n % 2 = 0 THEN 200 ELSE 503 END, 40 + n, \
                CASE WHEN n % 2 = 0 THEN NULL ELSE 'HTTP 503' END, \
                CASE WHEN n % 2 = 0 THEN NULL ELSE now() + interval '30 seconds' END \
           FROM generate_series(1, 23) n",
    )
    .bind(a.id.0)
    .bind(first_sub)
    .bind(second_sub)
    .execute(&app.owner)
    .await
    .expect("deliveries");
    let expected: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM webhook_deliveries WHERE tenant_id = $1 ORDER BY at DESC, id DESC",
    )
    .bind(a.id.0)
    .fetch_all(&app.owner)
    .await
    .expect("ids");

    for key in [&reader, &writer] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let answer = app
                .graphql_with_key(
                    key,
                    DELIVERIES,
                    json!({ "slug": "yokohama", "first": 10, "after": after }),
                )
                .await;
            assert!(answer["errors"].is_null(), "{answer}");
            let conn = &answer["data"]["city"]["webhookDeliveries"];
            let edges = conn["edges"].as_array().expect("edges");
            let nodes = conn["nodes"].as_array().expect("nodes");
            assert_eq!(edges.len(), nodes.len());
            for (e, n) in edges.iter().zip(nodes) {
                assert_eq!(e["node"]["id"], n["id"]);
                let node = &e["node"];
                assert_eq!(node["eventType"], "BOOKING_CREATED");
                match node["outcome"].as_str() {
                    Some("DELIVERED") => {
                        assert_eq!(node["httpStatus"], 200);
                        assert!(node["error"].is_null() && node["nextAttemptAt"].is_null());
                    }
                    Some("FAILED") => {
                        assert_eq!(node["httpStatus"], 503);
                        assert_eq!(node["error"], "HTTP 503");
                        assert!(node["nextAttemptAt"].is_string(), "{node}");
                    }
                    other => panic!("outcome {other:?}"),
                }
                seen.push(Uuid::try_parse(node["id"].as_str().expect("id")).expect("uuid"));
            }
            pages += 1;
            if !conn["pageInfo"]["hasNextPage"].as_bool().expect("bool") {
                break;
            }
            after = Some(
                conn["pageInfo"]["endCursor"]
                    .as_str()
                    .expect("end")
                    .to_owned(),
            );
        }
        assert_eq!(seen, expected, "newest first, each attempt exactly once");
        assert_eq!(pages, 3);
    }
    // one subscription's attempts only
    let only = app
        .graphql_with_key(
            &reader,
            DELIVERIES,
            json!({ "slug": "yokohama", "first": 50, "sub": second_sub }),
        )
        .await;
    let nodes = only["data"]["city"]["webhookDeliveries"]["edges"]
        .as_array()
        .expect("edges");
    assert_eq!(nodes.len(), 7, "n = 3, 6, … 21: {only}");
    assert!(
        nodes
            .iter()
            .all(|e| e["node"]["subscriptionId"] == json!(second_sub)
                && e["node"]["url"] == "https://crm.example.org/b")
    );
    // a cursor that is not ours, and a page size out of range: VALIDATION
    for vars in [
        json!({ "slug": "yokohama", "first": 10, "after": "bm90LWEtY3Vyc29y" }),
        json!({ "slug": "yokohama", "first": 0 }),
        json!({ "slug": "yokohama", "first": 201 }),
    ] {
        let bad = app.graphql_with_key(&reader, DELIVERIES, vars).await;
        assert_eq!(code(&bad), Some("VALIDATION"), "{bad}");
    }
    // refused: no data
    for (who, key, expected) in [
        ("key without webhook scopes", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, DELIVERIES, json!({ "slug": "yokohama", "first": 10 }))
            .await;
        assert_refused(who, &answer, expected);
        assert!(!answer.to_string().contains("crm.example.org"), "{who}");
    }
    // another city's key on its own city sees its own (empty) log, even naming this city's subscription
    let own = app
        .graphql_with_key(
            &other_city,
            DELIVERIES,
            json!({ "slug": "kawasaki", "first": 10, "sub": first_sub }),
        )
        .await;
    assert_eq!(
        own["data"]["city"]["webhookDeliveries"]["edges"],
        json!([]),
        "{own}"
    );
}

// ---- rotating the signing secret -----------------------------------------------------------

/// What the receiver got: the signature header and the raw body of each request.
type Inbox = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("yoyaku-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    inbox
        .lock()
        .expect("inbox")
        .push((signature, body.to_vec()));
    StatusCode::OK
}

/// An integrator's endpoint on this machine that keeps every request.
async fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks"), inbox)
}

fn check(secret: &str, (signature, body): &(String, Vec<u8>)) -> Result<(), VerifyError> {
    verify(
        secret,
        signature,
        body,
        chrono::Utc::now().timestamp(),
        DEFAULT_TOLERANCE,
    )
}

const ROTATE: &str = "mutation($slug: String!, $id: UUID!) { rotateWebhookSecret(city: $slug, input: { id: $id }) { \
    subscription { id secretHint } secret errors { code message field } } }";

#[tokio::test]
async fn graphql_rotated_webhook_secret_signs_the_next_delivery_and_the_old_one_no_longer_does() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let writer = api_key(&app, &tenant, &["webhooks:write"]).await;
    let reader = api_key(&app, &tenant, &["webhooks:read"]).await;
    let no_scope = api_key(&app, &tenant, &["exports:write"]).await;
    let other_city = api_key(&app, &b, &["webhooks:write"]).await;
    let (url, inbox) = receiver().await;
    let (sub, old) = subscribe(&app, &writer, "demo", &url).await;
    let hint = "SELECT secret_hint FROM webhook_subscriptions WHERE id = $1";
    let hint_of = async |app: &TestApp| -> String {
        sqlx::query_scalar(hint)
            .bind(sub)
            .fetch_one(&app.owner)
            .await
            .expect("hint")
    };
    let first_hint = hint_of(&app).await;

    let r1 = app.resident_id(&demo_resident(1).ticket_no).await;
    booking::book(
        &app.pool,
        &tenant,
        &book_request(r1, app.demo_slot(0).await),
    )
    .await
    .expect("booking");
    app.webhooks.run_once().await.expect("deliver");
    let before = inbox.lock().expect("inbox").clone();
    assert_eq!(before.len(), 1);
    assert_eq!(
        check(&old, &before[0]),
        Ok(()),
        "signed with the first secret"
    );

    // refused callers change nothing
    for (who, key, expected) in [
        ("read-only key", &reader, "FORBIDDEN"),
        ("key without webhook scopes", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, ROTATE, json!({ "slug": "demo", "id": sub }))
            .await;
        assert_refused(who, &answer, expected);
        assert!(!answer.to_string().contains("whsec_"), "{who}: {answer}");
    }
    // another city's key with its own city, and an id nobody has: NOT_FOUND on `id`
    for (key, slug, id) in [
        (&other_city, "kawasaki", sub),
        (&writer, "demo", Uuid::now_v7()),
    ] {
        let answer = app
            .graphql_with_key(key, ROTATE, json!({ "slug": slug, "id": id }))
            .await;
        let p = &answer["data"]["rotateWebhookSecret"];
        assert_eq!(
            (
                p["errors"][0]["code"].as_str(),
                p["errors"][0]["field"].as_str()
            ),
            (Some("NOT_FOUND"), Some("id")),
            "{answer}"
        );
        assert!(p["secret"].is_null() && p["subscription"].is_null());
    }
    assert_eq!(
        hint_of(&app).await,
        first_hint,
        "not rotated by refused callers"
    );

    let rotated = app
        .graphql_with_key(&writer, ROTATE, json!({ "slug": "demo", "id": sub }))
        .await;
    let p = &rotated["data"]["rotateWebhookSecret"];
    assert_eq!(p["errors"], json!([]), "{rotated}");
    let new = p["secret"]
        .as_str()
        .expect("the new secret, once")
        .to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    let shown = p["subscription"]["secretHint"].as_str().expect("hint");
    assert_eq!(shown, hint_of(&app).await);
    assert!(new.ends_with(&shown[shown.len() - 4..]), "{shown}");
    let audited = count(
        &app,
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'webhook.rotate_secret' AND actor LIKE 'API key %'",
        tenant.id.0,
    )
    .await;
    assert_eq!(audited, 1);
    // the secret is shown once: the list has only the hint
    let list = app
        .graphql_with_key(
            &reader,
            "query { city(city: \"demo\") { webhookSubscriptions { secretHint } } }",
            json!({}),
        )
        .await;
    assert!(!list.to_string().contains(&new), "{list}");

    // the next delivery is signed with the new secret; the old one no longer verifies it
    let r2 = app.resident_id(&demo_resident(2).ticket_no).await;
    booking::book(
        &app.pool,
        &tenant,
        &book_request(r2, app.demo_slot(1).await),
    )
    .await
    .expect("booking");
    app.webhooks.run_once().await.expect("deliver");
    let after = inbox.lock().expect("inbox").clone();
    assert_eq!(after.len(), 2);
    assert_eq!(check(&new, &after[1]), Ok(()), "signed with the new secret");
    assert_eq!(check(&old, &after[1]), Err(VerifyError::Mismatch));
    assert_eq!(check(&new, &after[0]), Err(VerifyError::Mismatch));

    // both attempts are in the log, delivered
    let log = app
        .graphql_with_key(
            &reader,
            DELIVERIES,
            json!({ "slug": "demo", "first": 10, "sub": sub }),
        )
        .await;
    let edges = log["data"]["city"]["webhookDeliveries"]["edges"]
        .as_array()
        .expect("edges");
    assert_eq!(edges.len(), 2, "{log}");
    for e in edges {
        assert_eq!(e["node"]["outcome"], "DELIVERED");
        assert_eq!(e["node"]["httpStatus"], 200);
        assert_eq!(e["node"]["attempt"], 1);
        assert_eq!(e["node"]["url"], url.as_str());
    }
}

// ---- intake: undo, side effects, the visit -------------------------------------------------

const STEP: &str = "mutation($slug: String!, $venue: UUID!, $booking: UUID!) { intakeStep(city: $slug, \
    input: { venueId: $venue, bookingId: $booking, step: CHECK_IN }) { status errors { code } } }";

const VACCINATE: &str = "mutation($slug: String!, $venue: UUID!, $booking: UUID!) { recordVaccination(city: $slug, \
    input: { venueId: $venue, bookingId: $booking, lotNumber: \"LOT-7\", doseMl: 0.3, vaccinator: \"Dr. Sato\", \
    vaccinatedAt: \"2031-03-03T01:05:00Z\" }) { vaccination { id } errors { code } } }";

const UNDO: &str = "mutation($slug: String!, $venue: UUID!, $booking: UUID!, $seen: IntakeStatus!) { \
    undoIntakeStep(city: $slug, input: { venueId: $venue, bookingId: $booking, seen: $seen }) { \
    status errors { code message field } } }";

const ADD_NOTE: &str = "mutation($slug: String!, $venue: UUID!, $booking: UUID!, $note: String!, $onset: DateTime!) { \
    addSideEffect(city: $slug, input: { venueId: $venue, bookingId: $booking, kind: FEVER, severity: MODERATE, \
    onsetAt: $onset, note: $note }) { sideEffect { id bookingId venueName dose kind severity onsetAt note recordedBy createdAt } \
    errors { code message field } } }";

const VISIT: &str = "query($slug: String!, $venue: UUID!, $booking: UUID!) { city(city: $slug) { \
    intakeVisit(venueId: $venue, bookingId: $booking) { booking { bookingId status lotNumber sideEffects { kind severity } } \
    sideEffectNotes { id bookingId kind severity note recordedBy } } } }";

/// A city, its first mass venue and two bookings there on 2031-03-03 (10:00 Tokyo).
struct Visits {
    app: TestApp,
    tenant: tenants::Tenant,
    venue: Uuid,
    bookings: [Uuid; 2],
}

async fn visits() -> Visits {
    let app = spawn_app().await;
    let tenant = app.seeded_tenant("yokohama", "141003").await;
    let venue: Uuid = sqlx::query_scalar(
        "SELECT id FROM venues WHERE tenant_id = $1 AND kind = 'mass' ORDER BY name LIMIT 1",
    )
    .bind(tenant.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("venue");
    let slot = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity, booked) \
         VALUES ($1, $2, $3, '2031-03-03T01:00:00Z', '2031-03-03T01:30:00Z', 5, 2)",
    )
    .bind(tenant.id.0)
    .bind(slot)
    .bind(venue)
    .execute(&app.owner)
    .await
    .expect("slot");
    let residents: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM residents r WHERE tenant_id = $1 AND NOT EXISTS \
         (SELECT 1 FROM bookings b WHERE b.tenant_id = r.tenant_id AND b.resident_id = r.id) ORDER BY ticket_no LIMIT 2",
    )
    .bind(tenant.id.0)
    .fetch_all(&app.owner)
    .await
    .expect("residents");
    let mut bookings = [Uuid::nil(); 2];
    for (i, resident) in residents.iter().enumerate() {
        bookings[i] = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, booked_by, group_id) \
             SELECT $1, $2, $3, $4, vaccine_id, 1, $3, $2 FROM venues WHERE id = $5",
        )
        .bind(tenant.id.0)
        .bind(bookings[i])
        .bind(resident)
        .bind(slot)
        .bind(venue)
        .execute(&app.owner)
        .await
        .expect("booking");
    }
    Visits {
        app,
        tenant,
        venue,
        bookings,
    }
}

impl Visits {
    fn vars(&self, booking: Uuid) -> Value {
        json!({ "slug": "yokohama", "venue": self.venue, "booking": booking })
    }

    /// The visit's status, its record, and its steps (to, undo) in order.
    async fn state(&self, booking: Uuid) -> (String, i64, Vec<(String, String, bool)>) {
        let status: String = sqlx::query_scalar(
            "SELECT COALESCE((SELECT status FROM booking_visits WHERE booking_id = $1), 'booked')",
        )
        .bind(booking)
        .fetch_one(&self.app.owner)
        .await
        .expect("status");
        let records = count(
            &self.app,
            "SELECT count(*) FROM vaccination_records WHERE booking_id = $1",
            booking,
        )
        .await;
        let steps = sqlx::query_as(
            "SELECT from_status, to_status, undo FROM booking_visit_events WHERE booking_id = $1 ORDER BY at, id",
        )
        .bind(booking)
        .fetch_all(&self.app.owner)
        .await
        .expect("steps");
        (status, records, steps)
    }
}

#[tokio::test]
async fn graphql_undo_intake_step_leaves_what_the_visit_pages_undo_leaves_and_refuses_the_rest() {
    let v = visits().await;
    let app = &v.app;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let writer = api_key(app, &v.tenant, &["intake:write"]).await;
    let reader = api_key(app, &v.tenant, &["intake:read"]).await;
    let no_scope = api_key(app, &v.tenant, &["records:read", "residents:read"]).await;
    let other_city = api_key(app, &b, &["intake:write"]).await;
    let [by_api, by_page] = v.bookings;
    for booking in v.bookings {
        for op in [STEP, VACCINATE] {
            let done = app.graphql_with_key(&writer, op, v.vars(booking)).await;
            assert!(done["errors"].is_null(), "{done}");
        }
        assert_eq!(v.state(booking).await.0, "vaccinated");
    }
    let undo = |booking: Uuid, seen: &str| {
        let mut vars = v.vars(booking);
        vars["seen"] = json!(seen);
        vars
    };

    // refused callers change nothing
    for (who, key, expected) in [
        ("read-only key", &reader, "FORBIDDEN"),
        ("key without intake scopes", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, UNDO, undo(by_api, "VACCINATED"))
            .await;
        assert_refused(who, &answer, expected);
    }
    let mut cross = undo(by_api, "VACCINATED");
    cross["slug"] = json!("kawasaki");
    let answer = app.graphql_with_key(&other_city, UNDO, cross).await;
    assert_eq!(
        answer["data"]["undoIntakeStep"]["errors"][0]["code"], "NOT_FOUND",
        "{answer}"
    );
    // a stale `seen` (another tablet moved on) and an unknown booking: user errors
    let stale = app
        .graphql_with_key(&writer, UNDO, undo(by_api, "OBSERVED"))
        .await;
    let err = &stale["data"]["undoIntakeStep"]["errors"][0];
    assert_eq!(
        (err["code"].as_str(), err["field"].as_str()),
        (Some("CONFLICT"), Some("seen")),
        "{stale}"
    );
    assert!(err["message"].as_str().unwrap_or("").contains("VACCINATED"));
    assert!(stale["data"]["undoIntakeStep"]["status"].is_null());
    let unknown = app
        .graphql_with_key(&writer, UNDO, undo(Uuid::now_v7(), "VACCINATED"))
        .await;
    assert_eq!(
        unknown["data"]["undoIntakeStep"]["errors"][0]["field"], "bookingId",
        "{unknown}"
    );
    let untouched = v.state(by_api).await;
    assert_eq!((untouched.0.as_str(), untouched.1), ("vaccinated", 1));
    assert_eq!(untouched.2.len(), 2, "no undo step written");

    // the undo: over GraphQL for one booking, on the visit page for the other
    let undone = app
        .graphql_with_key(&writer, UNDO, undo(by_api, "VACCINATED"))
        .await;
    assert_eq!(
        undone["data"]["undoIntakeStep"],
        json!({ "status": "CHECKED_IN", "errors": [] }),
        "{undone}"
    );
    let mut admin = app
        .staff_client(
            "admin@undo.yokohama.example",
            Some((v.tenant.id, Role::CityAdmin, &[])),
        )
        .await;
    let res = admin
        .post(
            &format!("/admin/t/yokohama/intake/{}/b/{by_page}/undo", v.venue),
            &[("seen", "vaccinated")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    let (api, page) = (v.state(by_api).await, v.state(by_page).await);
    assert_eq!(api, page, "the same state, record and steps either way");
    assert_eq!((api.0.as_str(), api.1), ("checked_in", 0));
    assert_eq!(
        api.2.last(),
        Some(&("vaccinated".to_owned(), "checked_in".to_owned(), true))
    );
    // both audited as the same action, the removed record kept in the entry, each with its actor
    let entries: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT object, actor, detail->'removed_record'->>'lot_number' FROM audit_log \
         WHERE tenant_id = $1 AND action = 'intake.undo' ORDER BY at",
    )
    .bind(v.tenant.id.0)
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].0, format!("booking/{by_api}"));
    assert!(entries[0].1.starts_with("API key"), "{entries:?}");
    assert_eq!(entries[1].1, "admin@undo.yokohama.example");
    assert!(entries.iter().all(|e| e.2.as_deref() == Some("LOT-7")));
    // the list shows both the same way
    let reader_view = async |booking: Uuid| {
        let a = app.graphql_with_key(&reader, VISIT, v.vars(booking)).await;
        assert!(a["errors"].is_null(), "{a}");
        a["data"]["city"]["intakeVisit"]["booking"].clone()
    };
    let (x, y) = (reader_view(by_api).await, reader_view(by_page).await);
    assert_eq!(
        (&x["status"], &x["lotNumber"]),
        (&json!("CHECKED_IN"), &Value::Null)
    );
    assert_eq!(
        (&x["status"], &x["lotNumber"]),
        (&y["status"], &y["lotNumber"])
    );
    // back to booked, and nothing left to undo there: CONFLICT on `seen`
    let back = app
        .graphql_with_key(&writer, UNDO, undo(by_api, "CHECKED_IN"))
        .await;
    assert_eq!(back["data"]["undoIntakeStep"]["status"], "BOOKED", "{back}");
    let nothing = app
        .graphql_with_key(&writer, UNDO, undo(by_api, "BOOKED"))
        .await;
    assert_eq!(
        nothing["data"]["undoIntakeStep"]["errors"][0]["code"], "CONFLICT",
        "{nothing}"
    );
}

#[tokio::test]
async fn graphql_side_effect_notes_are_added_and_read_with_intake_rights_only() {
    let v = visits().await;
    let app = &v.app;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let writer = api_key(app, &v.tenant, &["intake:write"]).await;
    let reader = api_key(app, &v.tenant, &["intake:read"]).await;
    let no_scope = api_key(app, &v.tenant, &["records:read", "residents:read"]).await;
    let other_city = api_key(app, &b, &["intake:read", "intake:write"]).await;
    let booking = v.bookings[0];
    let notes = "SELECT count(*) FROM side_effect_notes WHERE booking_id = $1";
    let note_vars = |note: &str, onset: &str| {
        let mut vars = v.vars(booking);
        vars["note"] = json!(note);
        vars["onset"] = json!(onset);
        vars
    };
    // the onset may not be in the future (checked against now)
    let good = note_vars("37.8℃、翌朝に解熱 SECRET-NOTE", "2026-01-05T03:00:00Z");

    // refused callers record nothing and read nothing
    for (who, key, expected) in [
        ("read-only key", &reader, "FORBIDDEN"),
        ("key without intake scopes", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app.graphql_with_key(key, ADD_NOTE, good.clone()).await;
        assert_refused(who, &answer, expected);
    }
    assert_eq!(count(app, notes, booking).await, 0);
    // bad input: VALIDATION on the field, nothing recorded
    for (vars, field) in [
        (note_vars(&"x".repeat(2001), "2026-01-05T03:00:00Z"), "note"),
        (note_vars("fever", "2099-01-01T00:00:00Z"), "onsetAt"),
    ] {
        let bad = app.graphql_with_key(&writer, ADD_NOTE, vars).await;
        let p = &bad["data"]["addSideEffect"];
        assert_eq!(
            (
                p["errors"][0]["code"].as_str(),
                p["errors"][0]["field"].as_str()
            ),
            (Some("VALIDATION"), Some(field)),
            "{bad}"
        );
        assert!(p["sideEffect"].is_null());
    }
    let mut unknown = good.clone();
    unknown["booking"] = json!(Uuid::now_v7());
    let answer = app.graphql_with_key(&writer, ADD_NOTE, unknown).await;
    assert_eq!(
        answer["data"]["addSideEffect"]["errors"][0]["code"], "NOT_FOUND",
        "{answer}"
    );
    assert_eq!(count(app, notes, booking).await, 0);

    let added = app.graphql_with_key(&writer, ADD_NOTE, good.clone()).await;
    let p = &added["data"]["addSideEffect"];
    assert_eq!(p["errors"], json!([]), "{added}");
    let note = &p["sideEffect"];
    assert_eq!(note["bookingId"], json!(booking));
    assert_eq!(
        (note["kind"].as_str(), note["severity"].as_str()),
        (Some("FEVER"), Some("MODERATE"))
    );
    assert_eq!(note["onsetAt"], "2026-01-05T03:00:00+00:00");
    assert_eq!(note["dose"], "FIRST");
    assert!(note["note"].as_str().unwrap_or("").contains("SECRET-NOTE"));
    assert!(
        note["recordedBy"]
            .as_str()
            .unwrap_or("")
            .starts_with("API key")
    );
    assert_eq!(count(app, notes, booking).await, 1);
    let audited = count(
        app,
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'intake.side_effect' AND actor LIKE 'API key %'",
        v.tenant.id.0,
    )
    .await;
    assert_eq!(audited, 1);

    // the visit lists it for intake readers, and the view is audited
    let visit = app.graphql_with_key(&reader, VISIT, v.vars(booking)).await;
    assert!(visit["errors"].is_null(), "{visit}");
    let found = &visit["data"]["city"]["intakeVisit"];
    assert_eq!(found["sideEffectNotes"][0]["id"], note["id"]);
    assert!(
        found["sideEffectNotes"][0]["note"]
            .as_str()
            .unwrap_or("")
            .contains("SECRET-NOTE")
    );
    assert_eq!(
        found["booking"]["sideEffects"],
        json!([{ "kind": "FEVER", "severity": "MODERATE" }])
    );
    let viewed = count(
        app,
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'intake.visit.view' AND actor LIKE 'API key %'",
        v.tenant.id.0,
    )
    .await;
    assert_eq!(viewed, 1);
    let none = app
        .graphql_with_key(&reader, VISIT, v.vars(Uuid::now_v7()))
        .await;
    assert!(none["errors"].is_null(), "{none}");
    assert!(none["data"]["city"]["intakeVisit"].is_null());
    for (who, key, expected) in [
        ("key without intake scopes", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app.graphql_with_key(key, VISIT, v.vars(booking)).await;
        assert_refused(who, &answer, expected);
        assert!(!answer.to_string().contains("SECRET-NOTE"), "{who}");
    }
    // roles as on the intake pages: the auditor reads, the call centre does not
    for (email, role, expected) in [
        ("auditor@notes.example", Role::Auditor, None),
        (
            "callcenter@notes.example",
            Role::CallCenter,
            Some("FORBIDDEN"),
        ),
    ] {
        let mut staff = app
            .staff_client(email, Some((v.tenant.id, role, &[])))
            .await;
        let answer = staff.graphql(VISIT, v.vars(booking)).await;
        assert_eq!(code(&answer), expected, "{email}: {answer}");
        assert_eq!(
            answer.to_string().contains("SECRET-NOTE"),
            expected.is_none(),
            "{email}: {answer}"
        );
    }
}
