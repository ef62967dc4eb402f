//! Messages go out and are paid for: a booking reaches a real SMTP server (Japanese subject and body)
//! and a fake SMS gateway (form fields, auth); gateway faults are retried with backoff and sent once;
//! a send cut short by a crash is repeated only through a channel that recognises the repeat;
//! reminders are queued once and sent once by two workers; usage is metered per sent message and the
//! SMS budget stops SMS at the cap. (A real worker process killed mid-send: tests/e2e/job_runtime.rs.)

use std::time::Duration;

use platform::booking;
use platform::demo::demo_resident;
use platform::notifications::channels::{self, SealingKey};
use plugins::testing::SmtpSink;
use serde_json::json;
use uuid::Uuid;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{TestApp, arrange_sms_budget, book_request, demo_app_manual_worker};

/// The server's own sealing key (development default), so the worker can open what we store.
fn key(app: &TestApp) -> SealingKey {
    app.worker.sealing_key.clone()
}

async fn configure(app: &TestApp, kind: &str, plugin: &str, config: serde_json::Value) {
    let tenant = app.demo_tenant().await;
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    channels::save(&mut tx, &key(app), kind, plugin, config)
        .await
        .expect("channel");
    tx.commit().await.expect("commit");
}

async fn twilio(app: &TestApp, gateway: &MockServer) {
    configure(
        app,
        "sms",
        "twilio",
        json!({ "base_url": gateway.uri(), "account_sid": "AC42", "auth_token": "gw-token", "from": "+815000000000" }),
    )
    .await;
}

/// Books dose 1 for demo resident `n` and returns the booking id.
async fn book(app: &TestApp, n: u32, slot_nth: i64) -> Uuid {
    let tenant = app.demo_tenant().await;
    let resident = app.resident_id(&demo_resident(n).ticket_no).await;
    let slot = app.demo_slot(slot_nth).await;
    booking::book(&app.pool, &tenant, &book_request(resident, slot))
        .await
        .expect("booked")[0]
        .id
}

/// The booking's confirmation (or change, cancellation) in the delivery log.
async fn job(app: &TestApp, booking: Uuid) -> (String, i32, Option<String>, Option<i32>) {
    sqlx::query_as(
        "SELECT status, attempts, last_error, units FROM notification_jobs \
          WHERE payload->>'booking_id' = $1 AND payload->>'kind' <> 'reminder' ORDER BY created_at LIMIT 1",
    )
    .bind(booking.to_string())
    .fetch_one(&app.owner)
    .await
    .expect("job")
}

/// Makes the tasks waiting to be retried due now.
async fn make_due(app: &TestApp) {
    sqlx::query(
        "UPDATE apalis.jobs SET run_at = now() - interval '1 second' WHERE status = 'Failed'",
    )
    .execute(&app.owner)
    .await
    .expect("due now");
}

async fn usage_total(app: &TestApp, kind: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(quantity), 0)::bigint FROM usage_events WHERE kind = $1",
    )
    .bind(kind)
    .fetch_one(&app.owner)
    .await
    .expect("usage")
}

#[tokio::test]
async fn a_booking_mails_a_japanese_confirmation_over_smtp_and_texts_through_the_gateway() {
    let app = demo_app_manual_worker().await;
    let sink = SmtpSink::start();
    configure(
        &app,
        "email",
        "smtp",
        json!({ "host": "127.0.0.1", "port": sink.addr.port(), "security": "plain",
                "from_address": "yoyaku@demo.example.jp", "from_name": "デモ市 予約センター" }),
    )
    .await;
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC42/Messages.json"))
        .and(header("authorization", "Basic QUM0Mjpndy10b2tlbg==")) // AC42:gw-token
        .and(body_string_contains("To=%2B819000000003"))
        .and(body_string_contains("From=%2B815000000000"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM-1" })))
        .expect(1)
        .mount(&gateway)
        .await;
    twilio(&app, &gateway).await;

    // resident 1 has an e-mail address: e-mail; resident 3 only a phone: SMS
    sqlx::query("UPDATE residents SET email = 'taro@example.jp' WHERE ticket_no = $1")
        .bind(demo_resident(1).ticket_no)
        .execute(&app.owner)
        .await
        .expect("email");
    let by_mail = book(&app, 1, 0).await;
    let by_sms = book(&app, 3, 0).await;
    app.worker.run_once().await.expect("work");

    let mail = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, vec!["taro@example.jp".to_owned()]);
    assert_eq!(
        mail[0].header("Subject").as_deref(),
        Some("【デモ市】ワクチン接種予約の確認")
    );
    let body = mail[0]
        .part("text/plain")
        .expect("text part")
        .replace("\r\n", "\n");
    assert!(
        body.starts_with(&format!(
            "{} 様\n1回目の接種を予約しました。",
            demo_resident(1).kana_name
        )),
        "{body}"
    );
    assert!(body.contains("市民ホール集団接種会場"), "{body}");

    let requests = gateway.received_requests().await.expect("requests");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&requests[0].body)
        .into_owned()
        .collect();
    let text = form
        .iter()
        .find(|(k, _)| k == "Body")
        .map(|(_, v)| v.clone())
        .expect("Body");
    assert!(text.contains("1回目の接種を予約しました"), "{text}");

    let (status, attempts, _, units) = job(&app, by_mail).await;
    assert_eq!((status.as_str(), attempts, units), ("sent", 1, Some(1)));
    let (status, _, _, sms_units) = job(&app, by_sms).await;
    assert_eq!(status, "sent");
    let segments = i64::from(plugins::sms_segments(&text));
    assert_eq!(sms_units, Some(segments as i32));
    assert_eq!(usage_total(&app, "email").await, 1);
    assert_eq!(usage_total(&app, "sms_segment").await, segments);

    // the log of deliveries shows recipients masked, never in full
    let recipients: Vec<String> = sqlx::query_scalar(
        "SELECT recipient FROM notification_jobs WHERE status = 'sent' ORDER BY recipient",
    )
    .fetch_all(&app.owner)
    .await
    .expect("recipients");
    assert_eq!(
        recipients,
        vec!["090****0003".to_owned(), "t***@example.jp".to_owned()]
    );
}

#[tokio::test]
async fn gateway_errors_are_retried_with_backoff_and_the_message_is_sent_once() {
    let app = demo_app_manual_worker().await;
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&gateway)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "2"))
        .up_to_n_times(1)
        .mount(&gateway)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM-after-retries" })),
        )
        .mount(&gateway)
        .await;
    twilio(&app, &gateway).await;
    let booking = book(&app, 3, 0).await;

    let mut waits = Vec::new();
    for attempt in 1..=3 {
        app.worker.run_once().await.expect("work");
        let (status, attempts, error, _) = job(&app, booking).await;
        assert_eq!(
            (status.as_str(), attempts),
            ("queued", attempt),
            "{error:?}"
        );
        let wait: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM run_after - now())::float8 FROM notification_jobs WHERE payload->>'booking_id' = $1",
        )
        .bind(booking.to_string())
        .fetch_one(&app.owner)
        .await
        .expect("wait");
        waits.push(wait);
        // nothing is retried before its time
        assert_eq!(app.worker.run_once().await.expect("work"), 0);
        make_due(&app).await;
    }
    assert!(
        waits[0] > 4.0 && waits[1] > waits[0],
        "exponential backoff: {waits:?}"
    );
    assert!(
        waits[2] > 1.0 && waits[2] <= 2.5,
        "the gateway's Retry-After: {waits:?}"
    );
    app.worker.run_once().await.expect("work");
    let (status, attempts, _, units) = job(&app, booking).await;
    assert_eq!((status.as_str(), attempts), ("sent", 4));
    assert_eq!(
        gateway.received_requests().await.expect("requests").len(),
        4,
        "3 failures + 1 success"
    );
    // billed once, after the retries
    assert_eq!(
        usage_total(&app, "sms_segment").await,
        i64::from(units.expect("units"))
    );
}

#[tokio::test]
async fn a_gateway_down_for_good_ends_dead_with_the_reason() {
    let app = demo_app_manual_worker().await;
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&gateway)
        .await;
    twilio(&app, &gateway).await;
    let booking = book(&app, 3, 0).await;
    for _ in 0..platform::notifications::MAX_ATTEMPTS {
        app.worker.run_once().await.expect("work");
        make_due(&app).await;
    }
    let (status, attempts, error, _) = job(&app, booking).await;
    assert_eq!(
        (status.as_str(), attempts),
        ("dead", platform::notifications::MAX_ATTEMPTS)
    );
    assert!(
        error.unwrap_or_default().contains("503"),
        "the reason is kept"
    );
    assert_eq!(
        usage_total(&app, "sms_segment").await,
        0,
        "nothing sent, nothing billed"
    );
}

/// A worker that took a job and vanished mid-send, as the job runtime finds it: the delivery-log row
/// `sending`, the task held by a worker whose heartbeats stopped long ago.
async fn crash_mid_send(app: &TestApp, booking: Uuid) {
    let tenant = app.demo_tenant().await;
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) \
         VALUES ('crashed@1', 'notify', 'PgStorage', '', now() - interval '1 hour') ON CONFLICT DO NOTHING",
    )
    .execute(&app.owner)
    .await
    .expect("a dead worker");
    let held = sqlx::query(
        "UPDATE apalis.jobs SET status = 'Running', lock_by = 'crashed@1', lock_at = now() - interval '1 hour' \
          WHERE idempotency_key = $1 || '/booking-confirmed:' || $2",
    )
    .bind(tenant.id.0.to_string())
    .bind(booking.to_string())
    .execute(&app.owner)
    .await
    .expect("held by it");
    assert_eq!(held.rows_affected(), 1);
    sqlx::query(
        "INSERT INTO notification_jobs (tenant_id, id, queue, idempotency_key, payload, status, attempts, claimed_at) \
         VALUES ($1, gen_random_uuid(), 'notifications', 'booking-confirmed:' || $2, \
                 jsonb_build_object('kind', 'booking_confirmed', 'booking_id', $2), 'sending', 1, now() - interval '1 hour')",
    )
    .bind(tenant.id.0)
    .bind(booking)
    .execute(&app.owner)
    .await
    .expect("claimed, then silence");
}

/// An SMS channel that cannot recognise a resend (as SMTP cannot), counting what it is given.
#[derive(Default)]
struct Forgetful(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl plugins::Channel for Forgetful {
    fn name(&self) -> &'static str {
        "forgetful"
    }
    fn kind(&self) -> plugins::ChannelKind {
        plugins::ChannelKind::Sms
    }
    async fn send(
        &self,
        _: &plugins::Message,
    ) -> Result<plugins::DeliveryReceipt, plugins::SendError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(plugins::SendError::Permanent {
            reason: "never called".into(),
        })
    }
}

#[tokio::test]
async fn a_send_cut_short_by_a_crash_is_repeated_once_through_the_gateway_and_never_through_a_forgetful_channel()
 {
    let app = demo_app_manual_worker().await;
    // the Twilio-compatible gateway recognises a repeat by its idempotency token: the orphaned task
    // is taken up again and sent, with the token of the first try
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM-again" })))
        .mount(&gateway)
        .await;
    twilio(&app, &gateway).await;
    let first = book(&app, 3, 0).await;
    crash_mid_send(&app, first).await;
    app.worker.run_once().await.expect("a new worker");
    let (status, attempts, _, _) = job(&app, first).await;
    assert_eq!((status.as_str(), attempts), ("sent", 2));
    let requests = gateway.received_requests().await.expect("requests");
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0]
            .headers
            .get("i-twilio-idempotency-token")
            .and_then(|v| v.to_str().ok()),
        Some(format!("booking-confirmed:{first}").as_str())
    );

    // a channel that cannot recognise a repeat: given up, never sent again
    let forgetful = std::sync::Arc::new(Forgetful::default());
    let mut worker = app.worker.clone();
    worker.fallback = Some(forgetful.clone());
    let tenant = app.demo_tenant().await;
    sqlx::query("DELETE FROM notification_channels WHERE tenant_id = $1")
        .bind(tenant.id.0)
        .execute(&app.owner)
        .await
        .expect("no channel of the city's own");
    let second = book(&app, 6, 1).await;
    crash_mid_send(&app, second).await;
    worker.run_once().await.expect("a new worker");
    let (status, _, error, _) = job(&app, second).await;
    assert_eq!(status, "dead");
    assert!(error.unwrap_or_default().contains("not resent"));
    assert_eq!(forgetful.0.load(std::sync::atomic::Ordering::SeqCst), 0);
    let task: (String, Option<String>) = sqlx::query_as(
        "SELECT status, last_result->>'Err' FROM apalis.jobs WHERE idempotency_key LIKE '%/booking-confirmed:' || $1",
    )
    .bind(second.to_string())
    .fetch_one(&app.owner)
    .await
    .expect("task");
    assert_eq!(task.0, "Killed");
    assert!(task.1.unwrap_or_default().contains("not resent"));
}

#[tokio::test]
async fn two_workers_send_each_due_reminder_once_and_none_for_a_cancelled_booking() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    // a slot exactly two days ahead (the default lead), 10:05 Tokyo time (beside the demo's slots)
    let venue: Uuid =
        sqlx::query_scalar("SELECT id FROM venues WHERE name = '市民ホール集団接種会場'")
            .fetch_one(&app.owner)
            .await
            .expect("venue");
    // cancelling two days ahead must not depend on the time of day the test runs
    sqlx::query("UPDATE venues SET cancel_cutoff_days = 0 WHERE id = $1")
        .bind(venue)
        .execute(&app.owner)
        .await
        .expect("no cut-off");
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
    let mut ids = Vec::new();
    for n in [3, 6] {
        let resident = app.resident_id(&demo_resident(n).ticket_no).await;
        ids.push(
            booking::book(&app.pool, &tenant, &book_request(resident, slot))
                .await
                .expect("book")[0]
                .id,
        );
    }
    let kept = ids[0];
    let cancelled = booking::cancel(
        &app.pool,
        &tenant,
        app.resident_id(&demo_resident(6).ticket_no).await,
        ids[1],
        "cancel-key-0001",
    )
    .await
    .expect("cancel")
    .id;

    // two workers at once: the confirmation queues the reminder (due now: the slot is two local
    // days ahead), the cancelled booking none
    let other = app.worker.clone();
    let (x, y) = tokio::join!(app.worker.run_once(), other.run_once());
    x.expect("worker 1");
    y.expect("worker 2");
    let reminders: Vec<String> = sqlx::query_scalar(
        "SELECT convert_from(job, 'UTF8')::jsonb->>'booking_id' FROM apalis.jobs \
          WHERE job_type = 'notify' AND idempotency_key LIKE '%/reminder:%:' || $1",
    )
    .bind(slot.to_string())
    .fetch_all(&app.owner)
    .await
    .expect("reminders");
    assert_eq!(reminders, vec![kept.to_string()]);
    assert!(!reminders.contains(&cancelled.to_string()));
    // working again queues nothing new and sends nothing twice
    let (x, y) = tokio::join!(app.worker.run_once(), other.run_once());
    assert_eq!(x.expect("worker 1") + y.expect("worker 2"), 0);
    let sent: Vec<_> = app
        .messages
        .recent()
        .into_iter()
        .filter(|m| m.message.idempotency_key.starts_with("reminder:"))
        .collect();
    assert_eq!(sent.len(), 1, "each due reminder sent once");
    assert!(sent[0].message.text.contains("接種日が近づいています"));
}

#[tokio::test]
async fn the_sms_budget_stops_sms_at_the_cap() {
    let app = demo_app_manual_worker().await;
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM" })))
        .mount(&gateway)
        .await;
    twilio(&app, &gateway).await;
    let first = book(&app, 3, 0).await;
    app.worker.run_once().await.expect("work");
    let used = i64::from(job(&app, first).await.3.expect("units"));
    let tenant = app.demo_tenant().await;
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    arrange_sms_budget(&mut tx, used).await;
    tx.commit().await.expect("commit");

    let second = book(&app, 6, 1).await;
    app.worker.run_once().await.expect("work");
    let (status, _, error, _) = job(&app, second).await;
    assert_eq!(status, "dead");
    assert!(error.unwrap_or_default().contains("SMS budget reached"));
    assert_eq!(
        gateway.received_requests().await.expect("requests").len(),
        1
    );
    assert_eq!(usage_total(&app, "sms_segment").await, used);
}

#[tokio::test]
async fn a_signed_delivery_report_marks_the_sms_delivered_and_a_forged_one_is_refused() {
    let app = demo_app_manual_worker().await;
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM-77" })))
        .mount(&gateway)
        .await;
    let callback = app.url("/callbacks/sms/demo");
    configure(
        &app,
        "sms",
        "twilio",
        json!({ "base_url": gateway.uri(), "account_sid": "AC42", "auth_token": "gw-token",
                "from": "+815000000000", "status_callback_url": callback }),
    )
    .await;
    let booking = book(&app, 3, 0).await;
    app.worker.run_once().await.expect("work");
    assert_eq!(job(&app, booking).await.0, "sent");

    let params = vec![
        ("MessageSid".to_owned(), "SM-77".to_owned()),
        ("MessageStatus".to_owned(), "delivered".to_owned()),
    ];
    let post = |signature: String| {
        app.client
            .post(&callback)
            .header("x-twilio-signature", signature)
            .form(&params)
            .send()
    };
    let forged = plugins::twilio::twilio_signature("not-the-token", &callback, &params);
    assert_eq!(post(forged).await.expect("post").status(), 403);
    assert_eq!(post(String::new()).await.expect("post").status(), 403);
    assert_eq!(
        job(&app, booking).await.0,
        "sent",
        "an unverified report changes nothing"
    );

    let signed = plugins::twilio::twilio_signature("gw-token", &callback, &params);
    assert_eq!(post(signed).await.expect("post").status(), 204);
    assert_eq!(job(&app, booking).await.0, "delivered");

    let unknown = app
        .client
        .post(app.url("/callbacks/sms/nowhere"))
        .form(&params)
        .send()
        .await
        .expect("post");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn during_a_rush_the_worker_sends_login_codes_and_defers_the_rest() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    // a booking confirmation, then a login code, both due
    let booking = book(&app, 3, 0).await;
    let r = demo_resident(6);
    platform::residents::auth::request_code(
        &app.pool,
        &tenant,
        &r.ticket_no,
        r.birth_date,
        None,
        "192.0.2.77",
        platform::i18n::Lang::Ja,
        &app.worker.secret,
    )
    .await
    .expect("code requested");
    let status_of = async |kind: &str| -> String {
        sqlx::query_scalar("SELECT status FROM notification_jobs WHERE payload->>'kind' = $1")
            .bind(kind)
            .fetch_optional(&app.owner)
            .await
            .expect("job")
            .unwrap_or_default()
    };
    let task_of = async |booking: Uuid| -> String {
        sqlx::query_scalar(
            "SELECT status FROM apalis.jobs WHERE idempotency_key LIKE '%/booking-confirmed:' || $1",
        )
        .bind(booking.to_string())
        .fetch_one(&app.owner)
        .await
        .expect("task")
    };

    // the server is busy: 40 requests in flight against a threshold of 32
    let mut worker = app.worker.clone();
    worker.jobs.poll = Duration::from_millis(20);
    worker.jobs.idle_poll = Duration::from_millis(20);
    worker.pacing = platform::notifications::Pacing {
        in_flight: Default::default(),
        busy_at: 32,
        max_defer: Duration::from_secs(2),
    };
    let guards: Vec<_> = (0..40)
        .map(|_| platform::notifications::InFlightGuard::enter(&worker.pacing.in_flight))
        .collect();
    assert!(worker.pacing.busy());
    // the running worker sends the waiting resident's code at once and holds the confirmation back
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.clone().run(async {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while status_of("login_code").await != "sent" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the login code was not sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        task_of(booking).await,
        "Pending",
        "deferred during the rush"
    );
    // …but not for longer than max_defer, even if the rush goes on
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let confirmation_of = async |booking: Uuid| -> String {
        sqlx::query_scalar(
            "SELECT status FROM notification_jobs WHERE payload->>'booking_id' = $1 \
               AND payload->>'kind' = 'booking_confirmed'",
        )
        .bind(booking.to_string())
        .fetch_optional(&app.owner)
        .await
        .expect("job")
        .unwrap_or_default()
    };
    while confirmation_of(booking).await != "sent" {
        assert!(tokio::time::Instant::now() < deadline, "deferred for ever");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    running.await.expect("worker stopped");

    // when the requests are done the worker is no longer busy
    drop(guards);
    assert!(!worker.pacing.busy());
    assert_eq!(
        worker
            .pacing
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // and a threshold of 0 never gives way
    worker.pacing.busy_at = 0;
    let _many: Vec<_> = (0..100)
        .map(|_| platform::notifications::InFlightGuard::enter(&worker.pacing.in_flight))
        .collect();
    assert!(!worker.pacing.busy());
}
