//! The job runtime with real `yoyaku worker` processes (docs/architecture.md, Jobs): a worker killed
//! with SIGKILL in the middle of a send — after a restart the message reaches the resident once
//! (the fake gateway counts by idempotency token) and the orphaned task is taken up again; three
//! worker processes on one database send each reminder once and run each billing tick once; an
//! idle worker over 1,000 cities costs a small, fixed number of transactions per second.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use platform::booking;
use platform::demo::demo_resident;
use platform::notifications::channels;
use serde_json::json;
use uuid::Uuid;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::{TestApp, book_request, demo_app_manual_worker, pg_base};

/// A Twilio-compatible gateway that counts what it receives per idempotency token and holds the
/// first request of `slow` (if any) for a minute, as a provider that is slow to answer.
#[derive(Clone, Default)]
struct Gateway {
    seen: Arc<Mutex<HashMap<String, usize>>>,
    slow: Option<String>,
}

impl Respond for Gateway {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let token = request
            .headers
            .get("i-twilio-idempotency-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let n = {
            let mut seen = self.seen.lock().expect("lock");
            let n = seen.entry(token.clone()).or_default();
            *n += 1;
            *n
        };
        // the provider keeps one message per token: a repeat gets the same id
        let reply =
            ResponseTemplate::new(201).set_body_json(json!({ "sid": format!("SM-{token}") }));
        if n == 1 && self.slow.as_deref() == Some(token.as_str()) {
            reply.set_delay(Duration::from_secs(60))
        } else {
            reply
        }
    }
}

impl Gateway {
    fn count(&self, token: &str) -> usize {
        self.seen
            .lock()
            .expect("lock")
            .get(token)
            .copied()
            .unwrap_or(0)
    }
}

async fn gateway_for(app: &TestApp, gateway: Gateway) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(gateway)
        .mount(&server)
        .await;
    let tenant = app.demo_tenant().await;
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    channels::save(
        &mut tx,
        &app.worker.sealing_key,
        "sms",
        "twilio",
        json!({ "base_url": server.uri(), "account_sid": "AC42", "auth_token": "gw-token", "from": "+815000000000" }),
    )
    .await
    .expect("channel");
    tx.commit().await.expect("commit");
    server
}

/// Demo resident `n` reachable by SMS only.
async fn sms_only(app: &TestApp, n: u32) -> Uuid {
    let ticket = demo_resident(n).ticket_no;
    sqlx::query("UPDATE residents SET email = NULL, phone = $2 WHERE ticket_no = $1")
        .bind(&ticket)
        .bind(format!("090{:08}", n))
        .execute(&app.owner)
        .await
        .expect("phone only");
    app.resident_id(&ticket).await
}

/// A `yoyaku worker` process on the test's database, with a fast heartbeat (a silent worker is
/// dead after 2 s) and quick polling.
fn spawn_worker(app_db: &str, extra: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yoyaku"));
    cmd.arg("worker")
        .env("YOYAKU_DATABASE__URL", format!("{}/{app_db}", pg_base()))
        .env("YOYAKU_LOG__LEVEL", "warn")
        .env("YOYAKU_JOBS__HEARTBEAT_SECS", "1")
        .env("YOYAKU_JOBS__MISSED_HEARTBEATS", "2")
        .env("YOYAKU_JOBS__POLL_MS", "50")
        .env("YOYAKU_JOBS__IDLE_POLL_MS", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn yoyaku worker")
}

async fn database_of(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&app.owner)
        .await
        .expect("database")
}

async fn stop(mut child: Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .expect("join");
    assert!(status.success(), "graceful exit, got {status:?}");
}

/// Polls `check` every 100 ms for up to `secs` seconds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {secs} s");
}

async fn delivery(app: &TestApp, key: &str) -> Option<(String, i32)> {
    sqlx::query_as("SELECT status, attempts FROM notification_jobs WHERE idempotency_key = $1")
        .bind(key)
        .fetch_optional(&app.owner)
        .await
        .expect("delivery log")
}

#[tokio::test]
async fn a_worker_killed_mid_send_sends_the_message_once_after_a_restart() {
    let app = demo_app_manual_worker().await;
    let db = database_of(&app).await;
    let tenant = app.demo_tenant().await;
    let resident = sms_only(&app, 3).await;
    let slot = app.demo_slot(0).await;
    let booking = booking::book(&app.pool, &tenant, &book_request(resident, slot))
        .await
        .expect("booked")[0]
        .id;
    let key = format!("booking-confirmed:{booking}");
    let gateway = Gateway {
        slow: Some(key.clone()),
        ..Gateway::default()
    };
    let _server = gateway_for(&app, gateway.clone()).await;

    // the worker takes the job and calls the gateway, which does not answer; then SIGKILL
    let mut first = spawn_worker(&db, &[]);
    eventually(30, "the first worker calls the gateway", || async {
        gateway.count(&key) == 1
    })
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    assert_eq!(
        delivery(&app, &key).await,
        Some(("sending".to_owned(), 1)),
        "claimed before the send, nothing recorded after it"
    );
    let orphan: (String, String) = sqlx::query_as(
        "SELECT status, lock_by FROM apalis.jobs WHERE idempotency_key = $1 || '/' || $2",
    )
    .bind(tenant.id.0.to_string())
    .bind(&key)
    .fetch_one(&app.owner)
    .await
    .expect("the orphaned task");
    assert!(orphan.0 == "Queued" || orphan.0 == "Running", "{orphan:?}");

    // a new worker finds the task orphaned (its worker's heartbeats stopped), takes it up again and
    // sends it with the same idempotency token: the gateway keeps one message
    let second = spawn_worker(&db, &[]);
    eventually(30, "the message is recorded as sent", || async {
        delivery(&app, &key).await.is_some_and(|(s, _)| s == "sent")
    })
    .await;
    stop(second).await;
    assert_eq!(delivery(&app, &key).await, Some(("sent".to_owned(), 2)));
    assert_eq!(
        gateway.count(&key),
        2,
        "the interrupted call and its repeat"
    );
    let tokens_for_booking = gateway
        .seen
        .lock()
        .expect("lock")
        .keys()
        .filter(|t| t.contains(&booking.to_string()))
        .count();
    assert_eq!(tokens_for_booking, 1, "one message at the provider");
    let (status, lock_by, attempts): (String, String, i32) = sqlx::query_as(
        "SELECT status, lock_by, attempts FROM apalis.jobs WHERE idempotency_key = $1 || '/' || $2",
    )
    .bind(tenant.id.0.to_string())
    .bind(&key)
    .fetch_one(&app.owner)
    .await
    .expect("task");
    assert_eq!(status, "Done");
    assert_ne!(lock_by, orphan.1, "taken up by the new worker");
    assert_eq!(attempts, 2, "re-enqueued once, then done");
    // billed once
    let billed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM usage_events WHERE kind = 'sms_segment'")
            .fetch_one(&app.owner)
            .await
            .expect("usage");
    assert_eq!(billed, 1);
}

#[tokio::test]
async fn three_worker_processes_send_each_reminder_once_and_run_each_billing_tick_once() {
    let app = demo_app_manual_worker().await;
    let db = database_of(&app).await;
    let tenant = app.demo_tenant().await;
    let gateway = Gateway::default();
    let _server = gateway_for(&app, gateway.clone()).await;
    // a slot two local days ahead (the default lead): its reminders are due today
    let venue: Uuid =
        sqlx::query_scalar("SELECT id FROM venues WHERE name = '市民ホール集団接種会場'")
            .fetch_one(&app.owner)
            .await
            .expect("venue");
    let slot: Uuid = sqlx::query_scalar(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
         SELECT $1, gen_random_uuid(), $2, d, d + interval '30 minutes', 10 \
         FROM (SELECT (((now() AT TIME ZONE 'Asia/Tokyo')::date + 2) + time '10:05') AT TIME ZONE 'Asia/Tokyo' AS d) x \
         RETURNING id",
    )
    .bind(tenant.id.0)
    .bind(venue)
    .fetch_one(&app.owner)
    .await
    .expect("slot");
    let mut bookings = Vec::new();
    for n in [3, 6, 9, 12, 15] {
        let resident = sms_only(&app, n).await;
        bookings.push(
            booking::book(&app.pool, &tenant, &book_request(resident, slot))
                .await
                .expect("book")[0]
                .id,
        );
    }

    // three processes, the billing tick every second
    let every_second = [("YOYAKU_JOBS__BILLING_CRON", "* * * * * *")];
    let workers: Vec<Child> = (0..3).map(|_| spawn_worker(&db, &every_second)).collect();
    let reminder_keys: Vec<String> = bookings
        .iter()
        .map(|b| format!("reminder:{b}:{slot}"))
        .collect();
    eventually(60, "every reminder is sent", || async {
        let mut all = true;
        for k in &reminder_keys {
            all &= delivery(&app, k).await.is_some_and(|(s, _)| s == "sent");
        }
        all
    })
    .await;
    // let the three schedule a few billing ticks together
    eventually(30, "three billing ticks done", || async {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = 'cron' AND status = 'Done'",
        )
        .fetch_one(&app.owner)
        .await
        .expect("ticks");
        done >= 3
    })
    .await;
    let alive: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT split_part(id, '@', 2)) FROM apalis.workers \
          WHERE worker_type = 'cron' AND last_seen > now() - interval '5 seconds'",
    )
    .fetch_one(&app.owner)
    .await
    .expect("workers");
    for w in workers {
        stop(w).await;
    }
    assert_eq!(alive, 3, "three processes worked the cron queue");

    for k in &reminder_keys {
        assert_eq!(gateway.count(k), 1, "{k} reached the gateway once");
        assert_eq!(delivery(&app, k).await, Some(("sent".to_owned(), 1)));
    }
    // every tick: one task (pushed by three processes under one key), run by one worker, once
    let ticks: Vec<(String, i32, String)> = sqlx::query_as(
        "SELECT idempotency_key, attempts, status FROM apalis.jobs WHERE job_type = 'cron' AND idempotency_key LIKE 'billing@%' \
          AND status <> 'Pending' ORDER BY run_at",
    )
    .fetch_all(&app.owner)
    .await
    .expect("ticks");
    assert!(ticks.len() >= 3, "{ticks:?}");
    let mut keys: Vec<&String> = ticks.iter().map(|t| &t.0).collect();
    keys.dedup();
    assert_eq!(keys.len(), ticks.len(), "one task per tick");
    for (key, attempts, status) in &ticks {
        assert!(key.starts_with("billing@"), "{key}");
        assert_eq!(
            (*attempts, status.as_str()),
            (1, "Done"),
            "{key} ran once, by one worker"
        );
    }
}

#[tokio::test]
async fn an_idle_worker_over_a_thousand_cities_costs_a_few_transactions_a_second() {
    let app = demo_app_manual_worker().await;
    let db = database_of(&app).await;
    sqlx::query(
        "INSERT INTO tenants (id, slug, name, local_government_code, time_zone, locales, default_locale, status) \
         SELECT gen_random_uuid(), 'idle-' || n, 'Idle ' || n, lpad(n::text, 6, '0'), 'Asia/Tokyo', \
                ARRAY['ja'], 'ja', 'active' \
           FROM generate_series(1, 1000) n",
    )
    .execute(&app.owner)
    .await
    .expect("1,000 cities");
    // nothing due anywhere: the demo's sample confirmations done first
    app.worker.run_once().await.expect("drain");
    let worker = spawn_worker(
        &db,
        &[
            ("YOYAKU_JOBS__POLL_MS", "250"),
            ("YOYAKU_JOBS__IDLE_POLL_MS", "1000"),
            ("YOYAKU_JOBS__HEARTBEAT_SECS", "15"),
        ],
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let commits = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&app.owner)
        .await
        .expect("stats")
    };
    let window = 10.0;
    let before = commits().await;
    tokio::time::sleep(Duration::from_secs_f64(window)).await;
    let after = commits().await;
    stop(worker).await;
    // the two measuring statements are counted too; PostgreSQL flushes a backend's counts at least
    // every second while it works, so the window sees the worker's transactions
    let per_second = (after - before) as f64 / window;
    println!("idle worker over 1,000 cities: {per_second:.1} transactions/s");
    assert!(
        per_second < 20.0,
        "an idle worker must not walk the cities: {per_second:.1} transactions/s"
    );
}

/// The Twilio-compatible channel of the demo city pointed at `uri`.
async fn sms_gateway_at(app: &TestApp, uri: &str) {
    let tenant = app.demo_tenant().await;
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    channels::save(
        &mut tx,
        &app.worker.sealing_key,
        "sms",
        "twilio",
        json!({ "base_url": uri, "account_sid": "AC42", "auth_token": "gw-token", "from": "+815000000000" }),
    )
    .await
    .expect("channel");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn the_operator_sees_the_queues_and_retries_or_discards_a_failed_job_audited() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    // the gateway refuses the first two messages for good, then accepts
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({ "code": 21211, "message": "not a valid phone number" })),
        )
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM-ok" })))
        .mount(&server)
        .await;
    sms_gateway_at(&app, &server.uri()).await;
    let mut keys = Vec::new();
    for (n, slot_nth) in [(3, 0), (6, 1)] {
        let resident = sms_only(&app, n).await;
        let slot = app.demo_slot(slot_nth).await;
        let booking = booking::book(&app.pool, &tenant, &book_request(resident, slot))
            .await
            .expect("booked")[0]
            .id;
        keys.push(format!("booking-confirmed:{booking}"));
    }
    app.worker.run_once().await.expect("work");
    for k in &keys {
        assert_eq!(
            delivery(&app, k).await.map(|d| d.0).as_deref(),
            Some("dead")
        );
    }
    let task_of = async |key: &str| -> Option<(String, String)> {
        sqlx::query_as("SELECT id, status FROM apalis.jobs WHERE idempotency_key = $1 || '/' || $2")
            .bind(tenant.id.0.to_string())
            .bind(key)
            .fetch_optional(&app.owner)
            .await
            .expect("task")
    };
    let (retry_id, status) = task_of(&keys[0]).await.expect("task");
    assert_eq!(status, "Killed");
    let (discard_id, _) = task_of(&keys[1]).await.expect("task");

    // the page: queues with counts, the failed tasks with their reason and buttons
    let mut operator = app.staff_client("operator@jobs.example", None).await;
    let res = operator.get("/admin/jobs").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("page");
    for queue in platform::jobs::QUEUES {
        assert!(html.contains(&format!("data-queue=\"{queue}\"")), "{queue}");
    }
    assert!(html.contains(&format!("data-task=\"{retry_id}\"")));
    assert!(
        html.contains("not a valid phone number"),
        "the reason is shown"
    );
    assert!(html.contains(&format!("/admin/jobs/{retry_id}/retry")));
    assert!(html.contains(&format!("/admin/jobs/{discard_id}/discard")));
    // a city admin does not even learn that it exists
    let mut admin = app
        .staff_client(
            "admin@jobs.example",
            Some((tenant.id, platform::staff::authz::Role::CityAdmin, &[])),
        )
        .await;
    assert_eq!(admin.get("/admin/jobs").await.status(), 404);
    assert_eq!(
        admin
            .post(&format!("/admin/jobs/{retry_id}/retry"), &[])
            .await
            .status(),
        404
    );

    // retry: the task and its delivery-log row go back to queued; the next worker sends it
    let res = operator
        .post(&format!("/admin/jobs/{retry_id}/retry"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        task_of(&keys[0]).await.map(|t| t.1).as_deref(),
        Some("Pending")
    );
    assert_eq!(
        delivery(&app, &keys[0]).await,
        Some(("queued".to_owned(), 0))
    );
    app.worker.run_once().await.expect("work");
    assert_eq!(delivery(&app, &keys[0]).await, Some(("sent".to_owned(), 1)));
    // discard: the task is gone, the delivery log keeps the message as dead
    let res = operator
        .post(&format!("/admin/jobs/{discard_id}/discard"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert!(task_of(&keys[1]).await.is_none());
    assert_eq!(
        delivery(&app, &keys[1]).await.map(|d| d.0).as_deref(),
        Some("dead")
    );
    // a second discard finds nothing: a message a person can act on, nothing changed
    let res = operator
        .post(&format!("/admin/jobs/{discard_id}/discard"), &[])
        .await;
    assert_eq!(res.status(), 404);
    let page = res.text().await.expect("page");
    assert!(
        page.contains("No failed job with this id")
            || page.contains("この失敗したジョブは見つかりません"),
        "{page}"
    );

    let audit: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT actor, action, object FROM platform_audit_log WHERE action LIKE 'job.%' ORDER BY at, id",
    )
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    assert_eq!(
        audit,
        vec![
            (
                "operator@jobs.example".to_owned(),
                "job.retry".to_owned(),
                format!("job/{retry_id}")
            ),
            (
                "operator@jobs.example".to_owned(),
                "job.discard".to_owned(),
                format!("job/{discard_id}")
            ),
        ]
    );
}
