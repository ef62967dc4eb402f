//! Event webhooks (issue 17, acceptance 4; docs/webhooks.md): a city admin subscribes a receiver
//! on the admin page; bookings made on every path (one statement, a batch, the general path),
//! changed and cancelled, a vaccination recorded and withdrawn, an export finished reach it signed,
//! through the job runtime; a receiver that fails twice still processes each event once (it
//! de-duplicates by the event id, as documented); a captured delivery replayed outside the window
//! is refused by the documented check; another city's subscription never sees this city's events;
//! roles without the right cannot manage subscriptions.
//!
//! The receiver is a real HTTP server in this process (a third party's endpoint), verifying each
//! request with `plugins::webhook::verify` — the reference check the docs show.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode};
use platform::booking::{self, Dose};
use platform::demo::demo_resident;
use platform::staff::authz::{Act, Actor, Object, Role};
use platform::webhooks::{self, NewSubscription, WebhookError};
use plugins::webhook::{DEFAULT_TOLERANCE, VerifyError, verify};
use serde_json::Value;
use uuid::Uuid;

use crate::support::{AdminClient, TestApp, body, book_request, demo_app_manual_worker};

/// What the receiver saw of one request that verified.
#[derive(Debug, Clone)]
struct Received {
    event_id: String,
    event_type: String,
    attempt: String,
    idempotency_key: String,
    signature: String,
    body: Vec<u8>,
    status: u16,
}

#[derive(Default)]
struct Inbox {
    secret: Option<String>,
    /// Answer 500 to the first `fail_first` deliveries of each event.
    fail_first: u32,
    /// The receiver's clock runs this many seconds ahead of the real one.
    clock_ahead: i64,
    requests: Vec<Received>,
    /// Events processed (a de-duplicating receiver: by event id, once).
    processed: BTreeMap<String, u32>,
    /// Requests refused by the signature check, and why.
    refused: Vec<VerifyError>,
}

/// A city's integration endpoint: verifies the signature, fails the first deliveries of each
/// event on purpose, then processes each event id once.
struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start(fail_first: u32) -> Self {
        let inbox = Arc::new(Mutex::new(Inbox {
            fail_first,
            ..Inbox::default()
        }));
        let app = axum::Router::new()
            .route("/hooks/yoyaku", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/hooks/yoyaku"),
            inbox,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inbox) -> T) -> T {
        f(&mut self.inbox.lock().expect("inbox"))
    }

    fn requests(&self) -> Vec<Received> {
        self.with(|i| i.requests.clone())
    }
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut inbox = inbox.lock().expect("inbox");
    let Some(secret) = inbox.secret.clone() else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    // the documented check: over the raw body, before parsing it
    let now = chrono::Utc::now().timestamp() + inbox.clock_ahead;
    if let Err(e) = verify(
        &secret,
        &header("yoyaku-signature"),
        &body,
        now,
        DEFAULT_TOLERANCE,
    ) {
        inbox.refused.push(e);
        return StatusCode::BAD_REQUEST;
    }
    let event: Value = serde_json::from_slice(&body).expect("a JSON event");
    let event_id = event["id"].as_str().expect("an event id").to_owned();
    assert_eq!(
        event_id,
        header("yoyaku-event-id"),
        "one id in body and header"
    );
    let earlier = inbox
        .requests
        .iter()
        .filter(|r| r.event_id == event_id)
        .count() as u32;
    let status = if earlier < inbox.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        // a de-duplicating receiver: a repeat of a processed id is acknowledged, not processed
        let n = inbox.processed.entry(event_id.clone()).or_insert(0);
        if *n == 0 {
            *n = 1;
        }
        StatusCode::OK
    };
    inbox.requests.push(Received {
        event_id,
        event_type: header("yoyaku-event-type"),
        attempt: header("yoyaku-delivery-attempt"),
        idempotency_key: header("idempotency-key"),
        signature: header("yoyaku-signature"),
        body: body.to_vec(),
        status: status.as_u16(),
    });
    status
}

/// Subscribes `url` to `events` on the admin page as `admin`; returns the secret shown once.
async fn subscribe(admin: &mut AdminClient<'_>, slug: &str, url: &str, events: &[&str]) -> String {
    let keys: Vec<String> = events.iter().map(|e| format!("event_{e}")).collect();
    let mut fields: Vec<(&str, &str)> = vec![("url", url), ("description", "基幹システム")];
    fields.extend(keys.iter().map(|k| (k.as_str(), "1")));
    let (status, html) = body(
        admin
            .post(&format!("/admin/t/{slug}/webhooks"), &fields)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{html}");
    secret_in(&html).expect("the secret is shown once")
}

fn secret_in(html: &str) -> Option<String> {
    let at = html.find("id=\"webhook-secret\"")?;
    let rest = &html[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(rest[start..end].to_owned())
}

/// Works the webhook queue until it is empty, moving each retry's time forward to now after
/// checking it was scheduled `expect_wait` ahead (± jitter). Returns the rounds worked.
async fn deliver_all(app: &TestApp, waits: &[u64]) -> usize {
    let mut rounds = 0;
    for (i, wait) in waits.iter().copied().chain(std::iter::once(0)).enumerate() {
        let handled = app.webhooks.run_once().await.expect("webhook worker");
        rounds += 1;
        if handled == 0 {
            break;
        }
        let pending: Vec<(String, f64)> = sqlx::query_as(
            "SELECT status, extract(epoch FROM run_at - now())::float8 FROM apalis.jobs \
              WHERE job_type = 'webhooks' AND status NOT IN ('Done', 'Killed')",
        )
        .fetch_all(&app.owner)
        .await
        .expect("pending tasks");
        if wait == 0 {
            assert!(
                pending.is_empty(),
                "round {i}: nothing left to retry: {pending:?}"
            );
            continue;
        }
        assert!(!pending.is_empty(), "round {i}: failures are retried");
        for (status, secs) in &pending {
            assert_eq!(status, "Failed");
            // the schedule (docs/webhooks.md): 10 s, then 30 s, each + up to 10 % jitter
            assert!(
                *secs > wait as f64 - 2.0 && *secs <= wait as f64 * 1.1 + 1.0,
                "round {i}: retry in {secs} s, expected about {wait} s"
            );
        }
        // time passes
        sqlx::query(
            "UPDATE apalis.jobs SET run_at = now() - interval '1 second' \
              WHERE job_type = 'webhooks' AND status = 'Failed'",
        )
        .execute(&app.owner)
        .await
        .expect("fast-forward");
    }
    rounds
}

/// A free slot of the city's first mass venue, more than three days ahead (`demo_slot` for any
/// city: the seeded cities share venue names).
async fn free_slot(app: &TestApp, tenant: &tenants::Tenant, nth: i64) -> Uuid {
    sqlx::query_scalar(
        "SELECT s.id FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
          WHERE s.tenant_id = $1 AND v.name = '市民ホール集団接種会場' AND s.booked = 0 \
            AND s.starts_at > now() + interval '3 days' ORDER BY s.starts_at, s.id OFFSET $2 LIMIT 1",
    )
    .bind(tenant.id.0)
    .bind(nth)
    .fetch_one(&app.owner)
    .await
    .expect("a free slot")
}

async fn city_admin<'a>(app: &'a TestApp, tenant: &tenants::Tenant, who: &str) -> AdminClient<'a> {
    app.staff_client(
        &format!("{who}@{}.example", tenant.slug),
        Some((tenant.id, Role::CityAdmin, &[])),
    )
    .await
}

#[tokio::test]
async fn every_booking_change_reaches_the_receiver_signed_and_once_each_through_two_failures() {
    let app = demo_app_manual_worker().await;
    let tenant = Arc::new(app.demo_tenant().await);
    let receiver = Receiver::start(2).await;
    let mut admin = city_admin(&app, &tenant, "admin").await;
    let secret = subscribe(
        &mut admin,
        "demo",
        &receiver.url,
        &["booking.created", "booking.changed", "booking.cancelled"],
    )
    .await;
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    receiver.with(|i| i.secret = Some(secret.clone()));
    // the secret is never shown again, nor stored in the clear
    let (_, page) = body(admin.get("/admin/t/demo/webhooks").await).await;
    assert!(!page.contains(&secret) && page.contains(&receiver.url));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret FROM webhook_subscriptions")
        .fetch_one(&app.owner)
        .await
        .expect("stored secret");
    assert!(!String::from_utf8_lossy(&stored).contains(&secret[6..]));

    // bookings by every path: one statement, a batch, the general path (a group), then a change
    // and a cancel
    let resident = async |n: u32| app.resident_id(&demo_resident(n).ticket_no).await;
    let (r1, r2, r3) = (resident(1).await, resident(2).await, resident(3).await);
    let (slot_a, slot_b, roomy) = (
        app.demo_slot(0).await,
        app.demo_slot(1).await,
        app.demo_slot(2).await,
    );
    let one = booking::book(&app.pool, &tenant, &book_request(r1, slot_a))
        .await
        .expect("one-statement booking");
    let mut group = book_request(r2, slot_b);
    group.companions = vec![r3];
    let two = booking::book(&app.pool, &tenant, &group)
        .await
        .expect("group booking");
    sqlx::query("UPDATE slots SET capacity = 100 WHERE id = $1")
        .bind(roomy)
        .execute(&app.owner)
        .await
        .expect("roomy slot");
    let batcher = booking::Batcher::new(app.pool.clone());
    // the slot's row is held until every request waits, so that the first one (decided alone or
    // in a batch) blocks in PostgreSQL and the rest queue behind it into a batch, however slowly
    // the machine starts the tasks
    let hold = app.hold_slot(roomy).await;
    let residents: Vec<_> = {
        let mut v = Vec::new();
        for n in 10..18 {
            v.push(resident(n).await);
        }
        v
    };
    let mut tasks = Vec::new();
    for r in residents {
        let req = book_request(r, roomy);
        let (batcher, pool, tenant) = (batcher.clone(), app.pool.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            booking::book_batched(&batcher, &pool, &tenant, &req).await
        }));
    }
    // one statement waits for the held row; then give the other tasks their turn to queue
    assert!(
        app.lock_waiters().await > 0,
        "a booking waits for the held slot"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    hold.rollback().await.expect("release the slot");
    let mut batched = Vec::new();
    for t in tasks {
        batched.push(t.await.expect("task").expect("batched booking")[0].id);
    }
    let stats = batcher.stats();
    assert!(stats.batches >= 1 && stats.batched >= 2, "{stats:?}");
    let moved = booking::change(&app.pool, &tenant, r1, one[0].id, slot_b, "move-it-please")
        .await
        .expect("change");
    let cancelled = booking::cancel(&app.pool, &tenant, r2, two[0].id, "cancel-it-please")
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, "cancelled");

    // one task per event (one subscription), queued with what it announces
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'webhooks' AND starts_with(idempotency_key, $1)",
    )
    .bind(format!("{}/webhook:", tenant.id.0))
    .fetch_one(&app.owner)
    .await
    .expect("tasks");
    let expected_events = 1 + 2 + batched.len() + 1 + 1;
    assert_eq!(queued as usize, expected_events);

    // failed, failed (retried after 10 s, then 30 s), delivered
    deliver_all(&app, &[10, 30]).await;

    let requests = receiver.requests();
    let refused = receiver.with(|i| i.refused.clone());
    assert!(refused.is_empty(), "every delivery verifies: {refused:?}");
    let processed = receiver.with(|i| i.processed.clone());
    assert_eq!(processed.len(), expected_events, "{processed:?}");
    assert!(processed.values().all(|n| *n == 1));
    let mut per_event: BTreeMap<&str, Vec<&Received>> = BTreeMap::new();
    for r in &requests {
        per_event.entry(r.event_id.as_str()).or_default().push(r);
    }
    for (id, tries) in &per_event {
        let statuses: Vec<u16> = tries.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [500, 500, 200],
            "{id}: twice refused, then accepted, never again"
        );
        let attempts: Vec<&str> = tries.iter().map(|r| r.attempt.as_str()).collect();
        assert_eq!(attempts, ["1", "2", "3"]);
        assert!(tries.iter().all(|r| r.idempotency_key == *id));
        assert!(
            tries.windows(2).all(|w| w[0].body == w[1].body),
            "{id}: every attempt sends the same body"
        );
        assert!(tries[0].signature.starts_with("t=") && tries[0].signature.contains(",v1="));
    }

    // what the events say
    let events: Vec<Value> = per_event
        .values()
        .map(|tries| serde_json::from_slice(&tries[0].body).expect("event"))
        .collect();
    let of_type = |t: &str| -> Vec<&Value> { events.iter().filter(|e| e["type"] == t).collect() };
    let created: BTreeSet<String> = of_type("booking.created")
        .iter()
        .map(|e| e["data"]["booking"]["id"].as_str().expect("id").to_owned())
        .collect();
    let mut want: BTreeSet<String> = batched.iter().map(Uuid::to_string).collect();
    want.insert(one[0].id.to_string());
    want.extend(two.iter().map(|b| b.id.to_string()));
    assert_eq!(
        created, want,
        "one booking.created per booking, on every path"
    );
    let changed = of_type("booking.changed");
    assert_eq!(changed.len(), 1);
    let c = &changed[0]["data"];
    assert_eq!(c["booking"]["id"], moved.id.to_string());
    assert_eq!(c["booking"]["slot"]["id"], slot_b.to_string());
    assert_eq!(c["previous"]["slot"]["id"], slot_a.to_string());
    let gone = of_type("booking.cancelled");
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0]["data"]["booking"]["id"], two[0].id.to_string());
    assert_eq!(gone[0]["data"]["booking"]["status"], "cancelled");
    let first = of_type("booking.created")
        .into_iter()
        .find(|e| e["data"]["booking"]["id"] == one[0].id.to_string())
        .expect("the first booking's event");
    assert_eq!(first["city"]["slug"], "demo");
    assert_eq!(first["data"]["booking"]["dose"], 1);
    assert_eq!(
        first["data"]["booking"]["resident"]["ticket_no"],
        demo_resident(1).ticket_no
    );
    assert!(
        first["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    // the resident by ticket number only: no name, phone or e-mail in any payload
    let (kana, phone): (String, Option<String>) =
        sqlx::query_as("SELECT kana_name, phone FROM residents WHERE id = $1")
            .bind(r1)
            .fetch_one(&app.owner)
            .await
            .expect("resident");
    for r in &requests {
        let text = String::from_utf8_lossy(&r.body);
        assert!(!text.contains(&kana));
        if let Some(p) = &phone {
            assert!(!text.contains(p.as_str()));
        }
    }

    // the delivery log: per event two failures (with the status and the next attempt) and one
    // delivery, on the city's page
    let log: Vec<(String, i64, Option<i64>, bool)> = sqlx::query_as(
        "SELECT outcome, attempt, http_status, next_attempt_at IS NOT NULL FROM webhook_deliveries \
          ORDER BY event_id, attempt",
    )
    .fetch_all(&app.owner)
    .await
    .expect("log");
    assert_eq!(log.len(), expected_events * 3);
    for chunk in log.chunks(3) {
        assert_eq!(
            chunk,
            [
                ("failed".to_owned(), 1, Some(500), true),
                ("failed".to_owned(), 2, Some(500), true),
                ("delivered".to_owned(), 3, Some(200), false),
            ]
        );
    }
    let (status, page) = body(admin.get("/admin/t/demo/webhooks").await).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("data-outcome=\"delivered\"") && page.contains("data-outcome=\"failed\"")
    );
    assert!(
        page.contains("500 Internal Server Error"),
        "the reason is shown"
    );

    // a task handled again after its delivery (a worker that stopped before recording it) sends
    // nothing more
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Pending', run_at = now() - interval '1 second', \
                lock_by = NULL, done_at = NULL WHERE job_type = 'webhooks'",
    )
    .execute(&app.owner)
    .await
    .expect("put the tasks back");
    app.webhooks.run_once().await.expect("again");
    assert_eq!(
        receiver.requests().len(),
        requests.len(),
        "nothing sent twice"
    );
}

#[tokio::test]
async fn a_captured_delivery_replayed_outside_the_window_is_refused_by_the_documented_check() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let receiver = Receiver::start(0).await;
    let mut admin = city_admin(&app, &tenant, "admin").await;
    let secret = subscribe(&mut admin, "demo", &receiver.url, &["booking.created"]).await;
    receiver.with(|i| i.secret = Some(secret.clone()));
    let r1 = app.resident_id(&demo_resident(1).ticket_no).await;
    booking::book(
        &app.pool,
        &tenant,
        &book_request(r1, app.demo_slot(0).await),
    )
    .await
    .expect("booking");
    deliver_all(&app, &[]).await;
    let captured = receiver.requests().pop().expect("one delivery");
    assert_eq!(captured.status, 200);
    assert_eq!(captured.event_type, "booking.created");

    // the documented check, by hand: fine now, refused once the window has passed
    let t: i64 = captured
        .signature
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("t=");
    assert_eq!(
        verify(
            &secret,
            &captured.signature,
            &captured.body,
            t + 60,
            DEFAULT_TOLERANCE
        ),
        Ok(())
    );
    assert!(matches!(
        verify(
            &secret,
            &captured.signature,
            &captured.body,
            t + 301,
            DEFAULT_TOLERANCE
        ),
        Err(VerifyError::OutsideWindow {
            age_secs: 301,
            window_secs: 300
        })
    ));
    // the timestamp cannot be freshened: it is signed
    let later = t + 120;
    let refreshed = captured
        .signature
        .replacen(&format!("t={t}"), &format!("t={later}"), 1);
    assert_eq!(
        verify(
            &secret,
            &refreshed,
            &captured.body,
            later,
            DEFAULT_TOLERANCE
        ),
        Err(VerifyError::Mismatch)
    );

    // the replay itself, six minutes later by the receiver's clock: refused, not processed
    receiver.with(|i| i.clock_ahead = 6 * 60);
    let replay = app
        .client
        .post(&receiver.url)
        .header("content-type", "application/json")
        .header("yoyaku-signature", &captured.signature)
        .header("yoyaku-event-id", &captured.event_id)
        .body(captured.body.clone())
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), 400);
    let refused = receiver.with(|i| i.refused.clone());
    assert!(
        matches!(
            refused.as_slice(),
            [VerifyError::OutsideWindow {
                window_secs: 300,
                ..
            }]
        ),
        "{refused:?}"
    );
    assert_eq!(receiver.with(|i| i.processed.len()), 1);

    // a new secret: shown once, used from the next attempt on; the old one no longer verifies
    receiver.with(|i| {
        i.clock_ahead = 0;
        i.refused.clear();
    });
    let sub: Uuid = sqlx::query_scalar("SELECT id FROM webhook_subscriptions")
        .fetch_one(&app.owner)
        .await
        .expect("subscription");
    let (status, html) = body(
        admin
            .post(&format!("/admin/t/demo/webhooks/{sub}/rotate"), &[])
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let rotated = secret_in(&html).expect("the new secret is shown once");
    assert_ne!(rotated, secret);
    let r2 = app.resident_id(&demo_resident(2).ticket_no).await;
    booking::book(
        &app.pool,
        &tenant,
        &book_request(r2, app.demo_slot(1).await),
    )
    .await
    .expect("booking");
    app.webhooks
        .run_once()
        .await
        .expect("attempt with the new secret");
    let refused = receiver.with(|i| i.refused.clone());
    assert_eq!(
        refused,
        [VerifyError::Mismatch],
        "the receiver still has the old one"
    );
    receiver.with(|i| i.secret = Some(rotated));
    deliver_all(&app, &[]).await;
    assert_eq!(
        receiver.with(|i| i.processed.len()),
        1,
        "retried later, not yet due"
    );
    sqlx::query(
        "UPDATE apalis.jobs SET run_at = now() WHERE job_type = 'webhooks' AND status = 'Failed'",
    )
    .execute(&app.owner)
    .await
    .expect("time passes");
    deliver_all(&app, &[]).await;
    assert_eq!(receiver.with(|i| i.processed.len()), 2);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'webhook.rotate_secret'")
            .fetch_one(&app.owner)
            .await
            .expect("audit");
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn vaccinations_and_finished_exports_are_announced_with_what_they_record() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let receiver = Receiver::start(0).await;
    let mut admin = city_admin(&app, &tenant, "admin").await;
    let secret = subscribe(
        &mut admin,
        "demo",
        &receiver.url,
        &[
            "vaccination.recorded",
            "vaccination.removed",
            "export.ready",
        ],
    )
    .await;
    receiver.with(|i| i.secret = Some(secret));
    let account = app
        .staff(
            "nurse@demo.example",
            Some((tenant.id, Role::CityStaff, &[])),
        )
        .await;
    let actor = Actor::staff(account.id, &account.email, None);
    let r1 = app.resident_id(&demo_resident(1).ticket_no).await;
    let slot = app.demo_slot(0).await;
    let venue = app.venue_of(slot).await;
    let booked = booking::book(&app.pool, &tenant, &book_request(r1, slot))
        .await
        .expect("booking");
    let b = booked[0].id;
    assert_eq!(booked[0].dose, Dose::First);
    // not subscribed to booking.created: nothing queued for it
    assert_eq!(
        platform::jobs::unfinished(&app.pool, platform::jobs::WEBHOOKS)
            .await
            .expect("count"),
        0
    );

    let mut scope = platform::intake::enter(&app.authz, &actor, tenant.id, venue, Act::Write)
        .await
        .expect("intake");
    platform::intake::step(&mut scope, venue, b, platform::intake::Step::CheckIn)
        .await
        .expect("check in");
    let record = platform::intake::vaccinate(
        &mut scope,
        venue,
        b,
        &platform::intake::NewVaccination {
            lot_number: "FK8890".into(),
            dose_ml: 0.3,
            vaccinator: "山田 医師".into(),
            vaccinated_at: chrono::Utc::now(),
        },
    )
    .await
    .expect("vaccinate");
    scope.commit().await.expect("commit");
    let mut scope = platform::intake::enter(&app.authz, &actor, tenant.id, venue, Act::Write)
        .await
        .expect("intake");
    platform::intake::undo(&mut scope, venue, b, platform::intake::Status::Vaccinated)
        .await
        .expect("undo");
    scope.commit().await.expect("commit");

    let mut scope = app
        .authz
        .enter(&actor, tenant.id, Object::Exports, Act::Write)
        .await
        .expect("exports");
    let export = platform::exports::create(
        &mut scope,
        &platform::exports::ExportKind::BookingLedger,
        platform::exports::ExportFormat::CsvUtf8,
    )
    .await
    .expect("export queued");
    scope.commit().await.expect("commit");
    platform::exports::ExportWorker::new(app.pool.clone(), chrono::Duration::hours(24))
        .run_once()
        .await
        .expect("export written");

    deliver_all(&app, &[]).await;
    // (delivered concurrently: in any order)
    let events: BTreeMap<String, Value> = receiver
        .requests()
        .iter()
        .map(|r| {
            let e: Value = serde_json::from_slice(&r.body).expect("event");
            (e["type"].as_str().unwrap_or_default().to_owned(), e)
        })
        .collect();
    let types: Vec<&str> = events.keys().map(String::as_str).collect();
    assert_eq!(
        types,
        [
            "export.ready",
            "vaccination.recorded",
            "vaccination.removed"
        ]
    );
    let v = &events["vaccination.recorded"]["data"]["vaccination"];
    assert_eq!(v["id"], record.to_string());
    assert_eq!(v["booking_id"], b.to_string());
    assert_eq!(v["lot_number"], "FK8890");
    assert_eq!(v["resident"]["ticket_no"], demo_resident(1).ticket_no);
    assert!(v.get("vaccinator").is_none(), "no staff names");
    assert_eq!(
        events["vaccination.removed"]["data"]["vaccination"]["id"],
        record.to_string()
    );
    let x = &events["export.ready"]["data"]["export"];
    assert_eq!(x["id"], export.to_string());
    assert_eq!(
        (x["kind"].as_str(), x["format"].as_str()),
        (Some("booking_ledger"), Some("csv_utf8"))
    );
    assert!(x["rows"].as_i64().is_some_and(|n| n >= 1));
}

#[tokio::test]
async fn another_citys_subscription_never_gets_this_citys_events_and_only_admins_manage() {
    let app = demo_app_manual_worker().await;
    let demo = app.demo_tenant().await;
    let other = app.seeded_tenant("kawasaki", "141305").await;
    let ours = Receiver::start(0).await;
    let theirs = Receiver::start(0).await;
    let all = [
        "booking.created",
        "booking.changed",
        "booking.cancelled",
        "vaccination.recorded",
        "vaccination.removed",
        "export.ready",
    ];
    let mut admin = city_admin(&app, &demo, "admin").await;
    let secret = subscribe(&mut admin, "demo", &ours.url, &all).await;
    ours.with(|i| i.secret = Some(secret));
    let mut their_admin = city_admin(&app, &other, "admin").await;
    let their_secret = subscribe(&mut their_admin, "kawasaki", &theirs.url, &all).await;
    theirs.with(|i| i.secret = Some(their_secret));

    let r1 = app.resident_id(&demo_resident(1).ticket_no).await;
    let booked = booking::book(
        &app.pool,
        &demo,
        &book_request(r1, free_slot(&app, &demo, 0).await),
    )
    .await
    .expect("booking");
    booking::cancel(&app.pool, &demo, r1, booked[0].id, "cancel-key-0001")
        .await
        .expect("cancel");
    deliver_all(&app, &[]).await;
    assert_eq!(ours.requests().len(), 2);
    assert!(theirs.requests().is_empty(), "the other city hears nothing");
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM apalis.jobs WHERE job_type = 'webhooks'")
            .fetch_all(&app.owner)
            .await
            .expect("tasks");
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{}/", demo.id.0)))
    );
    // the other city's admin sees its own (empty) log, never ours; our ids are not found there
    let (status, page) = body(their_admin.get("/admin/t/kawasaki/webhooks").await).await;
    assert_eq!(status, 200);
    assert!(!page.contains(&ours.url) && !page.contains("data-outcome"));
    assert_eq!(
        their_admin.get("/admin/t/demo/webhooks").await.status(),
        404
    );
    let our_sub: Uuid =
        sqlx::query_scalar("SELECT id FROM webhook_subscriptions WHERE tenant_id = $1")
            .bind(demo.id.0)
            .fetch_one(&app.owner)
            .await
            .expect("our subscription");
    for action in ["pause", "delete", "rotate"] {
        let res = their_admin
            .post(
                &format!("/admin/t/kawasaki/webhooks/{our_sub}/{action}"),
                &[],
            )
            .await;
        assert_eq!(res.status(), 404, "{action} of another city's subscription");
        let res = their_admin
            .post(&format!("/admin/t/demo/webhooks/{our_sub}/{action}"), &[])
            .await;
        assert_eq!(res.status(), 404, "{action} in another city");
    }

    // roles without the right: refused, nothing written
    let count = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM webhook_subscriptions")
            .fetch_one(&app.owner)
            .await
            .expect("count")
    };
    let before = count().await;
    let venue: Uuid = sqlx::query_scalar("SELECT id FROM venues WHERE tenant_id = $1 LIMIT 1")
        .bind(demo.id.0)
        .fetch_one(&app.owner)
        .await
        .expect("venue");
    for (who, role) in [
        ("staff", Role::CityStaff),
        ("callcenter", Role::CallCenter),
        ("venue", Role::VenueStaff),
        ("auditor", Role::Auditor),
    ] {
        let venues = if role == Role::VenueStaff {
            vec![venue]
        } else {
            vec![]
        };
        let mut client = app
            .staff_client(
                &format!("{who}@demo.example"),
                Some((demo.id, role, venues.as_slice())),
            )
            .await;
        let res = client
            .post(
                "/admin/t/demo/webhooks",
                &[("url", ours.url.as_str()), ("event_booking.created", "1")],
            )
            .await;
        assert_eq!(res.status(), 403, "{who} may not subscribe");
        for action in ["pause", "resume", "rotate", "delete"] {
            let res = client
                .post(&format!("/admin/t/demo/webhooks/{our_sub}/{action}"), &[])
                .await;
            assert_eq!(res.status(), 403, "{who} may not {action}");
        }
        let (status, page) = body(client.get("/admin/t/demo/webhooks").await).await;
        if role == Role::Auditor {
            // the auditor reads the subscriptions and the log, without a form
            assert_eq!(status, 200);
            assert!(page.contains(&ours.url) && !page.contains("id=\"webhook\""));
        } else {
            assert_eq!(status, 403, "{who} does not see the page");
        }
    }
    assert_eq!(count().await, before);
    let active: bool = sqlx::query_scalar("SELECT active FROM webhook_subscriptions WHERE id = $1")
        .bind(our_sub)
        .fetch_one(&app.owner)
        .await
        .expect("still there");
    assert!(active);

    // and the platform function re-checks, whatever scope a caller holds
    let staff = app
        .staff("clerk@demo.example", Some((demo.id, Role::CityStaff, &[])))
        .await;
    let actor = Actor::staff(staff.id, &staff.email, None);
    let mut scope = app
        .authz
        .enter(&actor, demo.id, Object::Residents, Act::Read)
        .await
        .expect("a scope for something else");
    let refused = webhooks::create(
        &app.authz,
        &mut scope,
        &app.worker.sealing_key,
        webhooks::EndpointPolicy {
            allow_loopback_http: true,
        },
        &NewSubscription {
            url: ours.url.clone(),
            description: String::new(),
            events: vec!["booking.created".into()],
        },
    )
    .await;
    assert!(
        matches!(refused, Err(WebhookError::Denied(_))),
        "{refused:?}"
    );
    drop(scope);

    // a bad endpoint is refused with the reason and nothing is stored
    let (status, html) = body(
        admin
            .post(
                "/admin/t/demo/webhooks",
                &[
                    ("url", "http://hooks.example.jp/yoyaku"),
                    ("event_booking.created", "1"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("https://"), "{html}");
    assert_eq!(count().await, before);

    // pausing stops the events: queued ones are skipped, new ones are not queued
    let r2 = app.resident_id(&demo_resident(2).ticket_no).await;
    booking::book(
        &app.pool,
        &demo,
        &book_request(r2, free_slot(&app, &demo, 1).await),
    )
    .await
    .expect("booking");
    let res = admin
        .post(&format!("/admin/t/demo/webhooks/{our_sub}/pause"), &[])
        .await;
    assert_eq!(res.status(), 303);
    let r3 = app.resident_id(&demo_resident(3).ticket_no).await;
    booking::book(
        &app.pool,
        &demo,
        &book_request(r3, free_slot(&app, &demo, 2).await),
    )
    .await
    .expect("booking while paused");
    deliver_all(&app, &[]).await;
    assert_eq!(ours.requests().len(), 2, "nothing sent while paused");
    let skipped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE outcome = 'skipped'")
            .fetch_one(&app.owner)
            .await
            .expect("skipped");
    assert_eq!(skipped, 1, "the one queued before the pause");

    // every change is in the audit log, by whom
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, actor FROM audit_log WHERE tenant_id = $1 AND action LIKE 'webhook.%' ORDER BY at",
    )
    .bind(demo.id.0)
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    assert_eq!(
        audited,
        [
            ("webhook.create".to_owned(), "admin@demo.example".to_owned()),
            ("webhook.pause".to_owned(), "admin@demo.example".to_owned()),
        ]
    );
    let res = admin
        .post(&format!("/admin/t/demo/webhooks/{our_sub}/delete"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(count().await, before - 1);
}

/// The reference verification as docs/webhooks.md shows it compiles and behaves as documented
/// (a receiver in Rust may copy it).
#[test]
fn the_documented_verification_snippet_holds() {
    let secret = "whsec_example";
    let body = br#"{"id":"0193a5e0-0000-4000-8000-000000000001","type":"booking.created"}"#;
    let header = plugins::webhook::event_signature(secret, 1_800_000_000, body);
    assert!(
        verify(
            secret,
            &header,
            body,
            1_800_000_100,
            Duration::from_secs(300)
        )
        .is_ok()
    );
    assert!(
        verify(
            secret,
            &header,
            body,
            1_800_000_400,
            Duration::from_secs(300)
        )
        .is_err()
    );
}

/// Outbox by construction: an event is written in the transaction of what it announces. When the
/// event cannot be written (a trigger refuses it here), the booking, change or cancellation fails
/// as a whole — no booking row, no seat, no notification task — on the one-statement path and on
/// the general path alike; once it can, both commit.
#[tokio::test]
async fn an_event_and_what_it_announces_commit_together_or_not_at_all() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let receiver = Receiver::start(0).await;
    let mut admin = city_admin(&app, &tenant, "admin").await;
    subscribe(
        &mut admin,
        "demo",
        &receiver.url,
        &["booking.created", "booking.changed", "booking.cancelled"],
    )
    .await;
    for sql in [
        "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'no events today'; END $$",
        "CREATE TRIGGER refuse_event BEFORE INSERT ON webhook_events \
         FOR EACH ROW EXECUTE FUNCTION refuse_event()",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&app.owner)
            .await
            .expect("arrange the refusal");
    }
    let counts = async || -> (i64, i64, i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM bookings WHERE status = 'booked'), \
                    (SELECT coalesce(sum(booked), 0) FROM slots), \
                    (SELECT count(*) FROM apalis.jobs WHERE job_type IN ('notify', 'webhooks')), \
                    (SELECT count(*) FROM webhook_events)",
        )
        .fetch_one(&app.owner)
        .await
        .expect("counts")
    };
    let before = counts().await;
    let r1 = app.resident_id(&demo_resident(1).ticket_no).await;
    let r2 = app.resident_id(&demo_resident(2).ticket_no).await;
    let (slot_a, slot_b) = (app.demo_slot(0).await, app.demo_slot(1).await);
    let alone = booking::book(&app.pool, &tenant, &book_request(r1, slot_a)).await;
    assert!(alone.is_err(), "one-statement path: {alone:?}");
    let mut group = book_request(r1, slot_a);
    group.companions = vec![r2];
    let together = booking::book(&app.pool, &tenant, &group).await;
    assert!(together.is_err(), "general path: {together:?}");
    assert_eq!(
        counts().await,
        before,
        "nothing of either booking was written"
    );

    sqlx::raw_sql("DROP TRIGGER refuse_event ON webhook_events")
        .execute(&app.owner)
        .await
        .expect("allow events again");
    let booked = booking::book(&app.pool, &tenant, &book_request(r1, slot_a))
        .await
        .expect("booked once events can be written");
    sqlx::raw_sql(
        "CREATE TRIGGER refuse_event BEFORE INSERT ON webhook_events \
         FOR EACH ROW EXECUTE FUNCTION refuse_event()",
    )
    .execute(&app.owner)
    .await
    .expect("refuse again");
    let middle = counts().await;
    let moved = booking::change(
        &app.pool,
        &tenant,
        r1,
        booked[0].id,
        slot_b,
        "move-key-0001",
    )
    .await;
    assert!(moved.is_err(), "change: {moved:?}");
    let gone = booking::cancel(&app.pool, &tenant, r1, booked[0].id, "cancel-key-001").await;
    assert!(gone.is_err(), "cancel: {gone:?}");
    assert_eq!(
        counts().await,
        middle,
        "neither the change nor the cancel happened"
    );
    let (slot, status): (Uuid, String) =
        sqlx::query_as("SELECT slot_id, status FROM bookings WHERE id = $1")
            .bind(booked[0].id)
            .fetch_one(&app.owner)
            .await
            .expect("booking");
    assert_eq!((slot, status.as_str()), (slot_a, "booked"));
    assert_eq!(
        middle.3,
        before.3 + 1,
        "the one booking that happened has its one event"
    );
}
