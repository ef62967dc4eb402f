//! The city's notification pages (issue 5): channels configured in the admin UI reach a real SMTP
//! server and a fake SMS gateway when a resident books on the resident site (Chromium); credentials
//! are shown masked only and never logged; a test message goes through the real channel; templates
//! are validated, previewed, used and reset; the SMS budget is validated, shows its 80 % / 100 %
//! banners and e-mails the city admins once a month; the delivery log shows failures with their
//! reason, filters, pages, masks recipients and audits every view; each role sees what it may.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use platform::booking;
use platform::demo::demo_resident;
use platform::staff::authz::Role;
use plugins::testing::SmtpSink;
use serde_json::json;
use uuid::Uuid;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::browser::{
    PHONE, demo_login_path, go, html_now, launch, log_in_resident, switch_language,
};
use crate::support::{AdminClient, TestApp, body, book_request, demo_app};

const GW_TOKEN: &str = "gw-token";
/// base64("AC42:gw-token")
const GW_BASIC: &str = "Basic QUM0Mjpndy10b2tlbg==";

async fn city_admin<'a>(app: &'a TestApp, email: &str) -> AdminClient<'a> {
    let tenant = app.demo_tenant().await;
    app.staff_client(email, Some((tenant.id, Role::CityAdmin, &[])))
        .await
}

/// Configures the e-mail channel through the admin page (SMTP sink, plain).
async fn configure_email(admin: &mut AdminClient<'_>, sink: &SmtpSink) {
    let port = sink.addr.port().to_string();
    let (status, page) = body(
        admin
            .post(
                "/admin/t/demo/notifications/channels/email",
                &[
                    ("host", "127.0.0.1"),
                    ("port", port.as_str()),
                    ("security", "plain"),
                    ("from_address", "yoyaku@demo.example.jp"),
                    ("from_name", "デモ市 予約センター"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Saved."), "{page}");
}

/// Configures the SMS channel through the admin page (the fake gateway).
async fn configure_sms(admin: &mut AdminClient<'_>, gateway: &MockServer) {
    let (status, page) = body(
        admin
            .post(
                "/admin/t/demo/notifications/channels/sms",
                &[
                    ("base_url", gateway.uri().as_str()),
                    ("account_sid", "AC42"),
                    ("auth_token", GW_TOKEN),
                    ("from", "+815000000000"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Saved."), "{page}");
}

async fn gateway_accepting() -> MockServer {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC42/Messages.json"))
        .and(header("authorization", GW_BASIC))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM-ok" })))
        .mount(&gateway)
        .await;
    gateway
}

/// An SMS the gateway received: its form fields and Authorization header.
struct Sms {
    form: Vec<(String, String)>,
    authorization: String,
}

impl Sms {
    fn field(&self, name: &str) -> &str {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

async fn sms_received(gateway: &MockServer) -> Vec<Sms> {
    gateway
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| Sms {
            form: url::form_urlencoded::parse(&r.body).into_owned().collect(),
            authorization: r
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
        })
        .collect()
}

/// Waits for an SMS to `to` whose body contains `needle`.
async fn wait_for_sms(gateway: &MockServer, to: &str, needle: &str) -> Sms {
    for _ in 0..150 {
        if let Some(sms) = sms_received(gateway)
            .await
            .into_iter()
            .find(|s| s.field("To") == to && s.field("Body").contains(needle))
        {
            return sms;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no SMS to {to} containing {needle:?}; got {:?}",
        sms_received(gateway)
            .await
            .iter()
            .map(|s| s.form.clone())
            .collect::<Vec<_>>()
    );
}

// ---- the resident site in Chromium -------------------------------------------------------------

/// Logs demo resident `n` in on the resident site (the code comes by SMS through the gateway) and
/// books the first time of a day a week out; returns the booking's slot start in Tokyo time.
async fn book_on_the_resident_site(app: &TestApp, gateway: &MockServer, n: u32) -> String {
    let r = demo_resident(n);
    let browser = launch(PHONE).await;
    let page = browser.open(&app.url(&demo_login_path(n))).await;
    // Japanese, as a resident would pick it with the language links
    switch_language(&page, "ja", "接種券に書いてある番号").await;
    log_in_resident(&page, r.birth_date, async || {
        let sms = wait_for_sms(gateway, &format!("+8190{n:08}"), "認証コード").await;
        sms.field("Body")
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .expect("a 6-digit code in the SMS")
            .to_owned()
    })
    .await;
    go(&page, "#book-new", "venues").await;
    go(&page, "a.choice", "days").await;
    go(&page, "ul.choices li:nth-child(6) a.choice", "times").await;
    go(&page, "a.choice.slot", "confirm").await;
    go(&page, "#confirm", "done").await;
    let done = html_now(&page).await;
    assert!(done.contains("予約が完了しました"), "{done}");
    browser.close().await;
    let (starts,): (chrono::DateTime<Utc>,) = sqlx::query_as(
        "SELECT s.starts_at FROM bookings b JOIN residents r ON r.id = b.resident_id \
         JOIN slots s ON s.id = b.slot_id WHERE r.ticket_no = $1 AND b.status = 'booked'",
    )
    .bind(&r.ticket_no)
    .fetch_one(&app.owner)
    .await
    .expect("the booking");
    starts
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// Acceptance 1, through the resident site: channels set up on the admin pages; a resident with an
/// e-mail address books in Chromium ⇒ the Japanese confirmation arrives at the SMTP server; a
/// resident with only a phone books ⇒ the SMS reaches the gateway with the right fields and auth.
#[tokio::test]
async fn a_booking_on_the_resident_site_mails_and_texts_through_the_channels_set_in_the_admin_ui() {
    let app = demo_app().await;
    let sink = SmtpSink::start();
    let gateway = gateway_accepting().await;
    let mut admin = city_admin(&app, "admin@city.example").await;
    configure_email(&mut admin, &sink).await;
    configure_sms(&mut admin, &gateway).await;

    // resident 36 has an e-mail address: the confirmation goes by e-mail
    let by_mail = demo_resident(36);
    sqlx::query("UPDATE residents SET email = 'hanako@example.jp' WHERE ticket_no = $1")
        .bind(&by_mail.ticket_no)
        .execute(&app.owner)
        .await
        .expect("email");
    let when = book_on_the_resident_site(&app, &gateway, 36).await;
    let mail = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mail.len(), 1, "one confirmation e-mail");
    assert_eq!(mail[0].to, vec!["hanako@example.jp".to_owned()]);
    assert_eq!(
        mail[0].header("Subject").as_deref(),
        Some("【デモ市】ワクチン接種予約の確認")
    );
    let text = mail[0]
        .part("text/plain")
        .expect("text part")
        .replace("\r\n", "\n");
    assert!(
        text.starts_with(&format!(
            "{} 様\n1回目の接種を予約しました。\n日時：{when}\n会場：",
            by_mail.kana_name
        )),
        "{text}"
    );
    assert!(text.contains("変更・キャンセル：http://"), "{text}");

    // resident 39 has only a phone: the confirmation goes by SMS
    let by_sms = demo_resident(39);
    let when = book_on_the_resident_site(&app, &gateway, 39).await;
    let sms = wait_for_sms(&gateway, "+819000000039", "1回目の接種を予約しました").await;
    assert_eq!(sms.field("From"), "+815000000000");
    assert_eq!(sms.authorization, GW_BASIC);
    assert!(
        sms.field("Body").starts_with(&format!(
            "{} 様\n1回目の接種を予約しました。\n日時：{when}",
            by_sms.kana_name
        )),
        "{}",
        sms.field("Body")
    );
    // the resident with an e-mail address got no SMS confirmation
    assert!(
        !sms_received(&gateway)
            .await
            .iter()
            .any(|s| s.field("To") == "+819000000036" && s.field("Body").contains("予約しました"))
    );
    // both are in the delivery log as sent, masked
    let (status, log) = body(
        admin
            .get("/admin/t/demo/notifications/log?event=booking_confirmed")
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        log.contains("090****0039") && log.contains("h***@example.jp"),
        "{log}"
    );
    assert!(
        !log.contains("09000000039") && !log.contains("hanako@"),
        "{log}"
    );
}

// ---- credentials --------------------------------------------------------------------------------

/// Everything the app logs while the test runs (this thread's subscriber; the app's tasks run on
/// the test's single-threaded runtime).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

const SMTP_PASSWORD: &str = "smtp-pass-SECRET-7731";
const SMS_TOKEN: &str = "twilio-tok-SECRET-5519";
const HOOK_SECRET: &str = "hook-secret-SECRET-0042";

/// Acceptance 4 and 5: credentials typed into the channel forms are sealed, shown only masked on
/// every admin page (also after a refused edit), kept when the field is left empty, and appear in
/// neither the application log nor the audit log, also when sending fails.
#[tokio::test]
async fn channel_credentials_are_masked_on_every_admin_page_and_never_logged() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug,sqlx=warn")
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = demo_app().await;
    let gateway = MockServer::start().await;
    let token_auth = format!("Basic {}", base64_of(&format!("AC42:{SMS_TOKEN}")));
    Mock::given(method("POST"))
        .and(header("authorization", token_auth.as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM-test-1" })))
        .up_to_n_times(1)
        .mount(&gateway)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({ "message": "Authenticate" })),
        )
        .mount(&gateway)
        .await;
    let mut admin = city_admin(&app, "admin@city.example").await;
    let save = |kind: &'static str| format!("/admin/t/demo/notifications/channels/{kind}");
    let (status, page) = body(
        admin
            .post(
                &save("sms"),
                &[
                    ("base_url", gateway.uri().as_str()),
                    ("account_sid", "AC42"),
                    ("auth_token", SMS_TOKEN),
                    ("from", "+815000000000"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("••••••19"),
        "the token's last two characters: {page}"
    );
    let (status, page) = body(
        admin
            .post(
                &save("email"),
                &[
                    ("host", "127.0.0.1"),
                    ("port", "1"),
                    ("security", "starttls"),
                    ("username", "mailer"),
                    ("password", SMTP_PASSWORD),
                    ("from_address", "yoyaku@demo.example.jp"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let (status, _) = body(
        admin
            .post(
                &save("webhook"),
                &[
                    ("url", "https://hooks.example.jp/yoyaku"),
                    ("secret", HOOK_SECRET),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);

    // a refused edit (bad port) with a new secret typed: the secret is not echoed back
    let (status, page) = body(
        admin
            .post(
                &save("email"),
                &[
                    ("host", "127.0.0.1"),
                    ("port", "twenty-five"),
                    ("security", "starttls"),
                    ("password", "another-SECRET-pass"),
                    ("from_address", "yoyaku@demo.example.jp"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(page.contains("port: must be a whole number"), "{page}");
    assert!(!page.contains("another-SECRET-pass"));

    // an edit that leaves the token empty keeps it: the test message authenticates with it
    let (status, page) = body(
        admin
            .post(
                &save("sms"),
                &[
                    ("base_url", gateway.uri().as_str()),
                    ("account_sid", "AC42"),
                    ("auth_token", ""),
                    ("from", "+815000000001"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let (status, page) = body(
        admin
            .post(&format!("{}/test", save("sms")), &[("to", "090-1234-5678")])
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Sent to 090****5678") && page.contains("SM-test-1"),
        "{page}"
    );
    // the gateway now refuses: the failure is shown, nothing secret in it
    let (_, page) = body(
        admin
            .post(&format!("{}/test", save("sms")), &[("to", "09012345678")])
            .await,
    )
    .await;
    assert!(page.contains("Not sent to 090****5678"), "{page}");
    // the e-mail server is unreachable: the failure is shown too
    let (_, page) = body(
        admin
            .post(
                &format!("{}/test", save("email")),
                &[("to", "staff@example.jp")],
            )
            .await,
    )
    .await;
    assert!(page.contains("Not sent to s***@example.jp"), "{page}");
    // a booking's SMS through the worker (its log lines too)
    let tenant = app.demo_tenant().await;
    let resident = app.resident_id(&demo_resident(3).ticket_no).await;
    let slot = app.demo_slot(0).await;
    booking::book(&app.pool, &tenant, &book_request(resident, slot))
        .await
        .expect("booked");
    app.worker.run_once().await.expect("work");

    let pages = [
        "/admin",
        "/admin/t/demo",
        "/admin/t/demo/notifications",
        "/admin/t/demo/notifications/channels/sms",
        "/admin/t/demo/notifications/channels/email",
        "/admin/t/demo/notifications/channels/webhook",
        "/admin/t/demo/notifications/log",
        "/admin/t/demo/notifications/templates/login_code/ja",
        "/admin/t/demo/audit",
        "/admin/t/demo/billing",
    ];
    let secrets = [SMS_TOKEN, SMTP_PASSWORD, HOOK_SECRET, "another-SECRET-pass"];
    for p in pages {
        let (status, html) = body(admin.get(p).await).await;
        assert_eq!(status, 200, "{p}");
        for s in secrets {
            assert!(!html.contains(s), "{s} shown on {p}");
        }
    }
    let (_, sms_page) = body(admin.get(&save("sms")).await).await;
    assert!(sms_page.contains("••••••19") && sms_page.contains("AC42"));
    let (_, email_page) = body(admin.get(&save("email")).await).await;
    assert!(email_page.contains("••••••31"), "{email_page}");
    let (_, hook_page) = body(admin.get(&save("webhook")).await).await;
    assert!(hook_page.contains("••••••42"), "{hook_page}");

    // not in the audit log, the delivery log or the application log
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT action || ' ' || object || ' ' || detail::text FROM audit_log")
            .fetch_all(&app.owner)
            .await
            .expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.starts_with("notification_channel.save notification_channel/sms"))
    );
    assert!(
        audit
            .iter()
            .any(|a| a.starts_with("notification_channel.test"))
    );
    let jobs: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', payload::text, last_error, recipient, provider_message_id) FROM notification_jobs",
    )
    .fetch_all(&app.owner)
    .await
    .expect("jobs");
    let logged = logs.text();
    assert!(
        logged.contains("notification not sent") || logged.contains("request"),
        "the capture works: {logged}"
    );
    for s in secrets {
        assert!(!audit.iter().any(|a| a.contains(s)), "{s} in the audit log");
        assert!(
            !jobs.iter().any(|a| a.contains(s)),
            "{s} in the delivery log"
        );
        assert!(!logged.contains(s), "{s} in the application log");
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn a_test_message_goes_through_the_real_channel_and_bad_recipients_are_refused() {
    let app = demo_app().await;
    let sink = SmtpSink::start();
    let gateway = gateway_accepting().await;
    let mut admin = city_admin(&app, "admin@city.example").await;
    // nothing configured yet: said so
    let (status, page) = body(
        admin
            .post(
                "/admin/t/demo/notifications/channels/sms/test",
                &[("to", "09012345678")],
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(page.contains("no sms channel is configured yet"), "{page}");
    configure_email(&mut admin, &sink).await;
    configure_sms(&mut admin, &gateway).await;

    let (status, page) = body(
        admin
            .post(
                "/admin/t/demo/notifications/channels/email/test",
                &[("to", "clerk@city.example.jp")],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Sent to c***@city.example.jp"), "{page}");
    let mail = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail[0].to, vec!["clerk@city.example.jp".to_owned()]);
    assert_eq!(
        mail[0].header("Subject").as_deref(),
        Some("【デモ市】テスト送信 / test message")
    );

    let (status, page) = body(
        admin
            .post(
                "/admin/t/demo/notifications/channels/sms/test",
                &[("to", "+819011112222")],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("SM-ok"), "{page}");
    let sms = wait_for_sms(&gateway, "+819011112222", "テスト送信").await;
    assert_eq!(sms.authorization, GW_BASIC);

    for (kind, bad) in [("sms", "not-a-number"), ("email", "clerk-at-city")] {
        let before = sms_received(&gateway).await.len() + sink.received().len();
        let (status, page) = body(
            admin
                .post(
                    &format!("/admin/t/demo/notifications/channels/{kind}/test"),
                    &[("to", bad)],
                )
                .await,
        )
        .await;
        assert_eq!(status, 422, "{kind}");
        assert!(page.contains("enter a"), "{page}");
        assert_eq!(
            sms_received(&gateway).await.len() + sink.received().len(),
            before
        );
    }
    // a bad configuration is refused with the field named, the stored one stays
    let (status, page) = body(
        admin
            .post(
                "/admin/t/demo/notifications/channels/sms",
                &[
                    ("base_url", "ftp://nowhere"),
                    ("account_sid", "AC99"),
                    ("auth_token", ""),
                    ("from", "+815000000000"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        page.contains("Not saved (nothing was changed): base_url:"),
        "{page}"
    );
    let sid: String = sqlx::query_scalar(
        "SELECT settings->>'account_sid' FROM notification_channels WHERE kind = 'sms'",
    )
    .fetch_one(&app.owner)
    .await
    .expect("stored");
    assert_eq!(sid, "AC42");
    // billed like any message; audited with the masked recipient
    let units: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM usage_events WHERE idempotency_key LIKE 'notify-test:%'",
    )
    .fetch_one(&app.owner)
    .await
    .expect("usage");
    assert_eq!(units, 2);
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT detail->>'to' FROM audit_log WHERE action = 'notification_channel.test' ORDER BY at",
    )
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    assert_eq!(
        audited,
        vec!["c***@city.example.jp".to_owned(), "819*****2222".to_owned()]
    );
}

// ---- templates ----------------------------------------------------------------------------------

#[tokio::test]
async fn templates_are_validated_previewed_used_by_the_worker_and_reset() {
    let app = demo_app().await;
    let mut admin = city_admin(&app, "admin@city.example").await;
    let url = "/admin/t/demo/notifications/templates/booking_confirmed/ja";
    let (status, page) = body(admin.get(url).await).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("1回目の接種を予約しました")
            || page.contains("{{dose}}回目の接種を予約しました"),
        "{page}"
    );
    assert!(page.contains("{{venue}}") && page.contains("built-in wording"));

    // an unknown placeholder: refused with the allowed list, nothing stored
    let (status, page) = body(
        admin
            .post(
                url,
                &[
                    ("action", "save"),
                    ("subject", "【{{city}}】予約"),
                    ("body", "{{name}} 様 {{password}}"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        page.contains("unknown placeholder {{password}}; this message can use: city, name, venue, address, date, time, dose, url"),
        "{page}"
    );
    assert!(
        page.contains("{{name}} 様 {{password}}"),
        "what was typed stays in the form"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_templates")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert_eq!(stored, 0);

    // a preview renders sample data and stores nothing
    let custom_body =
        "{{name}} 様\n{{date}} {{time}} に {{venue}} でお待ちしています（{{dose}}回目）。";
    let (status, page) = body(
        admin
            .post(
                url,
                &[
                    ("action", "preview"),
                    ("subject", "【{{city}}】ご予約ありがとうございます"),
                    ("body", custom_body),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("【デモ市】ご予約ありがとうございます"),
        "{page}"
    );
    assert!(page.contains("ヤマダ タロウ 様\n2027-04-01 10:30 に 市民ホール集団接種会場 でお待ちしています（1回目）。"), "{page}");
    assert!(page.contains("segment(s)"));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_templates")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert_eq!(stored, 0, "a preview stores nothing");

    // saved: the worker uses it for the next confirmation
    let (status, page) = body(
        admin
            .post(
                url,
                &[
                    ("action", "save"),
                    ("subject", "【{{city}}】ご予約ありがとうございます"),
                    ("body", custom_body),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Saved."));
    let (_, overview) = body(admin.get("/admin/t/demo/notifications").await).await;
    assert!(overview.contains("custom"), "{overview}");
    let tenant = app.demo_tenant().await;
    let resident = app.resident_id(&demo_resident(3).ticket_no).await;
    booking::book(
        &app.pool,
        &tenant,
        &book_request(resident, app.demo_slot(0).await),
    )
    .await
    .expect("booked");
    app.worker.run_once().await.expect("work");
    let sent = app
        .messages
        .recent()
        .into_iter()
        .find(|m| m.message.text.contains("でお待ちしています"))
        .expect("the city's wording was used");
    assert!(
        sent.message
            .text
            .starts_with(&format!("{} 様\n", demo_resident(3).kana_name))
    );

    // English is still the default; other languages are separate
    let (_, en) = body(
        admin
            .get("/admin/t/demo/notifications/templates/booking_confirmed/en")
            .await,
    )
    .await;
    assert!(
        en.contains("your vaccination (dose {{dose}}) is booked")
            && en.contains("built-in wording"),
        "{en}"
    );
    assert_eq!(
        admin
            .get("/admin/t/demo/notifications/templates/booking_confirmed/ko")
            .await
            .status(),
        404
    );
    assert_eq!(
        admin
            .get("/admin/t/demo/notifications/templates/birthday/ja")
            .await
            .status(),
        404
    );

    // reset to default
    let (status, page) = body(admin.post(&format!("{url}/reset"), &[]).await).await;
    assert_eq!(status, 200);
    assert!(page.contains("Back to the built-in wording") && page.contains("built-in wording"));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_templates")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert_eq!(stored, 0);
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'notification_template.%' ORDER BY at",
    )
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    assert_eq!(
        actions,
        vec!["notification_template.save", "notification_template.reset"]
    );
}

// ---- the SMS budget -----------------------------------------------------------------------------

async fn use_sms(app: &TestApp, segments: i64) {
    let tenant = app.demo_tenant().await;
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    tenants::billing::usage::record(
        &mut tx,
        &format!("arranged-{}", Uuid::new_v4()),
        tenants::billing::MeteredKind::SmsSegment,
        segments,
        Utc::now(),
    )
    .await
    .expect("usage");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn the_sms_budget_is_validated_and_its_banners_show_on_the_notifications_page_and_dashboard()
{
    let app = demo_app().await;
    let mut admin = city_admin(&app, "admin@city.example").await;
    for bad in ["abc", "-5", "1.5"] {
        let (status, page) = body(
            admin
                .post("/admin/t/demo/notifications/budget", &[("budget", bad)])
                .await,
        )
        .await;
        assert_eq!(status, 422, "{bad}");
        assert!(page.contains("The SMS budget was not saved"), "{page}");
        assert!(
            page.contains(&format!("value=\"{bad}\"")),
            "what was typed stays"
        );
    }
    let stored: Option<Option<i64>> =
        sqlx::query_scalar("SELECT sms_monthly_budget FROM notification_settings")
            .fetch_optional(&app.owner)
            .await
            .expect("settings");
    assert_eq!(stored.flatten(), None, "nothing saved");
    let res = admin
        .post("/admin/t/demo/notifications/budget", &[("budget", "1,000")])
        .await;
    assert_eq!(res.status(), 303);
    let (_, page) = body(admin.get("/admin/t/demo/notifications").await).await;
    assert!(page.contains("0 / 1,000 segments"), "{page}");
    assert!(!page.contains("sms-budget-banner"));

    use_sms(&app, 800).await;
    for p in ["/admin/t/demo/notifications", "/admin/t/demo"] {
        let (_, page) = body(admin.get(p).await).await;
        assert!(
            page.contains("80 % of this month&#39;s SMS budget used")
                || page.contains("80 % of this month's SMS budget used"),
            "{p}: {page}"
        );
    }
    use_sms(&app, 200).await;
    for p in ["/admin/t/demo/notifications", "/admin/t/demo"] {
        let (_, page) = body(admin.get(p).await).await;
        assert!(
            page.contains("SMS budget reached: messages go by e-mail where possible"),
            "{p}: {page}"
        );
    }
    // in Japanese too
    let ja = app
        .client
        .get(app.url("/admin/t/demo"))
        .header("cookie", admin.cookie_header())
        .header("accept-language", "ja")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(ja.contains("SMS予算に達しました"), "{ja}");
    // cleared: no banner
    assert_eq!(
        admin
            .post("/admin/t/demo/notifications/budget", &[("budget", "")])
            .await
            .status(),
        303
    );
    let (_, page) = body(admin.get("/admin/t/demo").await).await;
    assert!(!page.contains("sms-budget-banner"));
}

/// The text of a page's first alert paragraph.
fn alert(page: &str) -> String {
    page.split("role=\"alert\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or("")
        .to_owned()
}

/// One SMS-budget setter (`platform::notifications::channels::set_sms_budget`) behind both forms: the same bad
/// input gets the same answer from the notifications page and the billing page and changes
/// nothing; the budget is SMS segments on both; each role gets the same answer from both.
#[tokio::test]
async fn both_budget_forms_give_the_same_answer_through_the_one_setter() {
    let app = demo_app().await;
    let tenant = app.demo_tenant().await;
    let mut admin = city_admin(&app, "admin@city.example").await;
    let forms = [
        "/admin/t/demo/notifications/budget",
        "/admin/t/demo/billing/budget",
    ];
    for bad in ["abc", "-5", "1.5", "100000001", "12円", "¥100", "1e3"] {
        let mut answers = Vec::new();
        for form in forms {
            let (status, page) = body(admin.post(form, &[("budget", bad)]).await).await;
            assert_eq!(status, 422, "{form} {bad}: {page}");
            assert!(
                page.contains(&format!("value=\"{bad}\"")),
                "what was typed stays: {form}"
            );
            answers.push(alert(&page));
        }
        assert_eq!(answers[0], answers[1], "{bad}");
        assert!(
            answers[0].starts_with("The SMS budget was not saved: "),
            "{answers:?}"
        );
        assert!(answers[0].contains("segments"), "{answers:?}");
    }
    let (_, page) = body(admin.post(forms[1], &[("budget", "-5")]).await).await;
    assert!(
        alert(&page).contains("between 0 and 100,000,000 segments"),
        "{page}"
    );
    // in Japanese too, the same on both pages
    let cookies = admin.cookie_header();
    let mut ja = Vec::new();
    for form in forms {
        let page = app
            .client
            .post(app.url(form))
            .header("cookie", cookies.as_str())
            .header("accept-language", "ja")
            .form(&[("budget", "abc"), ("csrf", admin.csrf.as_str())])
            .send()
            .await
            .expect("POST")
            .text()
            .await
            .expect("body");
        ja.push(alert(&page));
    }
    assert_eq!(ja[0], ja[1]);
    assert!(ja[0].starts_with("SMS予算を保存できません"), "{ja:?}");
    let stored: Option<Option<i64>> =
        sqlx::query_scalar("SELECT sms_monthly_budget FROM notification_settings")
            .fetch_optional(&app.owner)
            .await
            .expect("settings");
    assert_eq!(stored.flatten(), None, "bad input changes nothing");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'sms_budget.set'")
            .fetch_one(&app.owner)
            .await
            .expect("audit");
    assert_eq!(audited, 0);

    // a good value from the billing page is what the notifications page shows, in segments
    assert_eq!(
        admin
            .post(forms[1], &[("budget", "２,０００")])
            .await
            .status(),
        303
    );
    let (_, page) = body(admin.get("/admin/t/demo/notifications").await).await;
    assert!(page.contains("0 / 2,000 segments"), "{page}");
    assert_eq!(
        admin.post(forms[0], &[("budget", "3000")]).await.status(),
        303
    );
    let (_, page) = body(admin.get("/admin/t/demo/billing").await).await;
    assert!(page.contains("/ 3,000 segments"), "{page}");
    let details: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'sms_budget.set' ORDER BY at",
    )
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    assert_eq!(
        details,
        vec![
            json!({ "budget": 2000, "unit": "sms_segment" }),
            json!({ "budget": 3000, "unit": "sms_segment" })
        ]
    );

    // one permission: the same answer from both forms for every role
    let mut auditor = app
        .staff_client(
            "auditor@city.example",
            Some((tenant.id, Role::Auditor, &[])),
        )
        .await;
    let mut staff = app
        .staff_client(
            "staff@city.example",
            Some((tenant.id, Role::CityStaff, &[])),
        )
        .await;
    for form in forms {
        assert_eq!(
            auditor.post(form, &[("budget", "1")]).await.status(),
            403,
            "{form}"
        );
        assert_eq!(
            staff.post(form, &[("budget", "1")]).await.status(),
            403,
            "{form}"
        );
    }
    // and neither page offers the auditor the form
    for p in ["/admin/t/demo/notifications", "/admin/t/demo/billing"] {
        let (status, page) = body(auditor.get(p).await).await;
        assert_eq!(status, 200, "{p}");
        assert!(!page.contains("budget-form"), "{p}: {page}");
    }
}

/// The 80 % and 100 % alerts go by e-mail to every city admin, once each per month, and the cap
/// stops SMS (the message is in the log as failed with the reason).
#[tokio::test]
async fn budget_alerts_are_mailed_to_the_city_admins_once_a_month() {
    let app = demo_app().await;
    let sink = SmtpSink::start();
    let gateway = gateway_accepting().await;
    let mut admin = city_admin(&app, "admin@city.example").await;
    city_admin(&app, "second-admin@city.example").await;
    let tenant = app.demo_tenant().await;
    app.staff_client(
        "clerk@city.example",
        Some((tenant.id, Role::CityStaff, &[])),
    )
    .await;
    configure_email(&mut admin, &sink).await;
    configure_sms(&mut admin, &gateway).await;
    assert_eq!(
        admin
            .post("/admin/t/demo/notifications/budget", &[("budget", "100")])
            .await
            .status(),
        303
    );
    use_sms(&app, 79).await;

    // this SMS passes 80 %
    book_for(&app, 3, 0).await;
    for _ in 0..3 {
        app.worker.run_once().await.expect("work");
    }
    // the demo city's own admin (admin@demo.example) and the two made here; not the clerk
    let mail = sink.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 3, "one alert per city admin");
    let mut to: Vec<String> = mail.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        vec![
            "admin@city.example".to_owned(),
            "admin@demo.example".to_owned(),
            "second-admin@city.example".to_owned()
        ]
    );
    // (spaces between RFC 2047 encoded words are not part of the text, so compare without them)
    let subject = |m: &plugins::testing::ReceivedMail| {
        m.header("Subject").unwrap_or_default().replace(' ', "")
    };
    assert!(mail[..3].iter().all(|m| subject(m)
        == "【デモ市】今月のSMS予算の80%を使用しました/80%ofthismonth'sSMSbudgetused"));
    // another SMS under the cap: no second 80 % alert
    book_for(&app, 6, 1).await;
    for _ in 0..3 {
        app.worker.run_once().await.expect("work");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 3);

    // the cap: the next SMS is not sent, the 100 % alert goes out once
    use_sms(&app, 20).await;
    let stopped = book_for(&app, 9, 2).await;
    for _ in 0..3 {
        app.worker.run_once().await.expect("work");
    }
    let mail = sink.wait_for(6, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 6);
    assert!(
        mail[3..]
            .iter()
            .all(|m| subject(m) == "【デモ市】今月のSMS予算に達しました/SMSbudgetreached")
    );
    let text = mail[5]
        .part("text/plain")
        .expect("text")
        .replace("\r\n", "\n");
    assert!(
        text.contains("Messages go by e-mail where possible"),
        "{text}"
    );
    let (status, reason): (String, Option<String>) = sqlx::query_as(
        "SELECT status, last_error FROM notification_jobs WHERE payload->>'booking_id' = $1 \
           AND payload->>'kind' = 'booking_confirmed'",
    )
    .bind(stopped.to_string())
    .fetch_one(&app.owner)
    .await
    .expect("job");
    assert_eq!(status, "dead");
    assert!(reason.unwrap_or_default().contains("SMS budget reached"));
    book_for(&app, 12, 3).await;
    for _ in 0..3 {
        app.worker.run_once().await.expect("work");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 6, "each alert once a month");
    let alerts: Vec<(i32, i32)> =
        sqlx::query_as("SELECT level, recipients FROM sms_budget_alerts ORDER BY level")
            .fetch_all(&app.owner)
            .await
            .expect("alerts");
    assert_eq!(alerts, vec![(80, 3), (100, 3)]);
    // alerts are not billed to the city as e-mails
    let emails: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(quantity), 0)::bigint FROM usage_events WHERE kind = 'email'",
    )
    .fetch_one(&app.owner)
    .await
    .expect("usage");
    assert_eq!(emails, 0);
    // the overview lists the alerts sent
    let (_, page) = body(admin.get("/admin/t/demo/notifications").await).await;
    assert!(
        page.contains("budget-alerts") && page.contains("100 %"),
        "{page}"
    );
}

/// Books dose 1 for demo resident `n` on the `nth` free demo slot through the platform.
async fn book_for(app: &TestApp, n: u32, nth: i64) -> Uuid {
    let tenant = app.demo_tenant().await;
    let resident = app.resident_id(&demo_resident(n).ticket_no).await;
    booking::book(
        &app.pool,
        &tenant,
        &book_request(resident, app.demo_slot(nth).await),
    )
    .await
    .expect("booked")[0]
        .id
}

// ---- the delivery log ---------------------------------------------------------------------------

/// Acceptance 2 on the page: a message the gateway never took ends dead with the reason, and city
/// staff see it in the delivery log with that reason; filters, per-resident view, masking, paging,
/// and every view audited.
#[tokio::test]
async fn the_delivery_log_shows_a_dead_message_with_its_reason_filters_pages_and_is_audited() {
    let app = demo_app().await;
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&gateway)
        .await;
    let mut admin = city_admin(&app, "admin@city.example").await;
    configure_sms(&mut admin, &gateway).await;
    let tenant = app.demo_tenant().await;
    let resident = app.resident_id(&demo_resident(3).ticket_no).await;
    booking::book(
        &app.pool,
        &tenant,
        &book_request(resident, app.demo_slot(0).await),
    )
    .await
    .expect("booked");
    // retried until it is given up (the background worker may take some of the attempts)
    for _ in 0..100 {
        let dead: bool = sqlx::query_scalar(
            "SELECT status = 'dead' FROM notification_jobs WHERE payload->>'booking_id' IS NOT NULL \
             AND channel = 'sms' ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_optional(&app.owner)
        .await
        .expect("status")
        .unwrap_or(false);
        if dead {
            break;
        }
        app.worker.run_once().await.expect("work");
        sqlx::query(
            "UPDATE apalis.jobs SET run_at = now() - interval '1 second' WHERE status = 'Failed'",
        )
        .execute(&app.owner)
        .await
        .expect("due");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // another resident's message, sent by the development log channel (no e-mail channel)
    sqlx::query("UPDATE residents SET email = 'jiro@example.jp' WHERE ticket_no = $1")
        .bind(demo_resident(4).ticket_no)
        .execute(&app.owner)
        .await
        .expect("email");
    let other = app.resident_id(&demo_resident(4).ticket_no).await;
    booking::book(
        &app.pool,
        &tenant,
        &book_request(other, app.demo_slot(1).await),
    )
    .await
    .expect("booked");
    app.worker.run_once().await.expect("work");

    let mut clerk = app
        .staff_client(
            "clerk@city.example",
            Some((tenant.id, Role::CityStaff, &[])),
        )
        .await;
    let (status, page) = body(clerk.get("/admin/t/demo/notifications/log").await).await;
    assert_eq!(status, 200, "{page}");
    let dead_row = page
        .split("<tr class=\"entry\"")
        .find(|r| r.contains("data-status=\"dead\""))
        .unwrap_or_else(|| panic!("the dead message is listed: {page}"));
    assert!(dead_row.contains("failed (not retried)"), "{dead_row}");
    assert!(dead_row.contains("503"), "the reason: {dead_row}");
    assert!(dead_row.contains("090****0003"), "{dead_row}");
    assert!(
        dead_row.contains(&format!(">{}<", platform::notifications::MAX_ATTEMPTS)),
        "{dead_row}"
    );
    assert!(page.contains("j***@example.jp"));
    assert!(
        !page.contains("09000000003") && !page.contains("jiro@example.jp"),
        "masked only"
    );

    let rows = |html: &str| html.matches("<tr class=\"entry\"").count();
    let (_, dead) = body(
        clerk
            .get("/admin/t/demo/notifications/log?status=dead")
            .await,
    )
    .await;
    assert_eq!(rows(&dead), 1);
    let (_, sms) = body(
        clerk
            .get("/admin/t/demo/notifications/log?channel=sms&event=booking_confirmed")
            .await,
    )
    .await;
    assert_eq!(rows(&sms), 1);
    let (_, log_channel) = body(
        clerk
            .get("/admin/t/demo/notifications/log?channel=log")
            .await,
    )
    .await;
    assert_eq!(rows(&log_channel), 1);
    let today = Utc::now()
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .date_naive();
    let (_, todays) = body(
        clerk
            .get(&format!(
                "/admin/t/demo/notifications/log?from={today}&to={today}"
            ))
            .await,
    )
    .await;
    let all_today: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_jobs")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert!(all_today >= 2);
    assert_eq!(rows(&todays) as i64, all_today);
    let tomorrow = today.succ_opt().expect("tomorrow");
    let (_, none) = body(
        clerk
            .get(&format!("/admin/t/demo/notifications/log?from={tomorrow}"))
            .await,
    )
    .await;
    assert_eq!(rows(&none), 0);
    assert!(none.contains("No messages match."));
    // per resident
    let ticket = demo_resident(4).ticket_no;
    let (_, one) = body(
        clerk
            .get(&format!("/admin/t/demo/notifications/log?ticket={ticket}"))
            .await,
    )
    .await;
    assert_eq!(rows(&one), 1);
    assert!(one.contains("j***@example.jp") && !one.contains("090****0003"));
    let (_, unknown) = body(
        clerk
            .get("/admin/t/demo/notifications/log?ticket=9999999999")
            .await,
    )
    .await;
    assert!(unknown.contains("No resident holds this ticket number."));
    // bad filters: a clear message
    let (status, bad) = body(
        clerk
            .get("/admin/t/demo/notifications/log?status=lost")
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        bad.contains("status &quot;lost&quot; is not one of")
            || bad.contains("status \"lost\" is not one of"),
        "{bad}"
    );
    let (status, bad) = body(
        clerk
            .get("/admin/t/demo/notifications/log?from=2026-12-01&to=2026-11-01")
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(bad.contains("after it ends"));

    // pages of 50
    sqlx::query(
        "INSERT INTO notification_jobs (tenant_id, id, queue, idempotency_key, payload, status, created_at) \
         SELECT $1, gen_random_uuid(), 'notifications', 'arranged-' || g, '{\"kind\":\"reminder\"}', 'skipped', now() - g * interval '1 second' \
         FROM generate_series(1, 60) g",
    )
    .bind(tenant.id.0)
    .execute(&app.owner)
    .await
    .expect("arrange jobs");
    let (_, first) = body(
        clerk
            .get("/admin/t/demo/notifications/log?event=reminder")
            .await,
    )
    .await;
    assert_eq!(rows(&first), 50);
    assert!(first.contains("id=\"next-page\"") && !first.contains("id=\"prev-page\""));
    let (_, second) = body(
        clerk
            .get("/admin/t/demo/notifications/log?event=reminder&page=2")
            .await,
    )
    .await;
    assert_eq!(rows(&second), 10);
    assert!(second.contains("id=\"prev-page\"") && !second.contains("id=\"next-page\""));
    assert!(
        second.contains("event=reminder&amp;") || second.contains("event=reminder&"),
        "filters kept in the links"
    );

    // every view is in the audit log, with who and which resident
    let views: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, object FROM audit_log WHERE action = 'delivery_log.view' ORDER BY at",
    )
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    assert!(views.len() >= 9, "{views:?}");
    assert!(
        views
            .iter()
            .all(|(a, _)| a == "clerk@city.example" || a == "admin@city.example")
    );
    assert!(views.iter().any(|(_, o)| *o == format!("resident/{other}")));
}

// ---- who may do what ----------------------------------------------------------------------------

#[tokio::test]
async fn each_role_sees_and_changes_only_what_it_may() {
    let app = demo_app().await;
    let tenant = app.demo_tenant().await;
    let venue: Uuid = sqlx::query_scalar("SELECT id FROM venues ORDER BY name LIMIT 1")
        .fetch_one(&app.owner)
        .await
        .expect("venue");
    let pages = [
        "/admin/t/demo/notifications/channels/sms",
        "/admin/t/demo/notifications/templates/reminder/pt",
    ];
    let posts: [(&str, &[(&str, &str)]); 5] = [
        ("/admin/t/demo/notifications/budget", &[("budget", "500")]),
        (
            "/admin/t/demo/notifications/channels/webhook",
            // a closed local port: the test send fails at once
            &[
                ("url", "http://127.0.0.1:9/y"),
                ("secret", "0123456789abcdef-x"),
            ],
        ),
        (
            "/admin/t/demo/notifications/channels/webhook/test",
            &[("to", "a@example.jp")],
        ),
        (
            "/admin/t/demo/notifications/templates/reminder/pt",
            &[
                ("action", "save"),
                ("subject", "{{city}}"),
                ("body", "Olá {{name}}"),
            ],
        ),
        (
            "/admin/t/demo/notifications/templates/reminder/pt/reset",
            &[],
        ),
    ];

    // city admin: everything
    let mut admin = city_admin(&app, "admin@city.example").await;
    assert_eq!(admin.get("/admin/t/demo/notifications").await.status(), 200);
    assert_eq!(
        admin.get("/admin/t/demo/notifications/log").await.status(),
        200
    );
    for p in pages {
        assert_eq!(admin.get(p).await.status(), 200, "{p}");
    }
    let expected = [303, 200, 200, 200, 200];
    for ((p, fields), want) in posts.iter().zip(expected) {
        assert_eq!(admin.post(p, fields).await.status(), want, "{p}");
    }
    // a post without the CSRF token is refused
    assert_eq!(
        admin
            .post_raw("/admin/t/demo/notifications/budget", &[("budget", "1")])
            .await
            .status(),
        403
    );

    // city staff: the delivery log, read-only; the settings are not theirs
    let mut clerk = app
        .staff_client(
            "clerk@city.example",
            Some((tenant.id, Role::CityStaff, &[])),
        )
        .await;
    assert_eq!(
        clerk.get("/admin/t/demo/notifications/log").await.status(),
        200
    );
    let res = clerk.get("/admin/t/demo/notifications").await;
    assert_eq!(res.status(), 303, "taken to the log");
    assert_eq!(
        res.headers()["location"].to_str().expect("location"),
        "/admin/t/demo/notifications/log"
    );
    for p in pages {
        assert_eq!(clerk.get(p).await.status(), 403, "{p}");
    }
    for (p, fields) in posts {
        assert_eq!(clerk.post(p, fields).await.status(), 403, "{p}");
    }
    let (_, dash) = body(clerk.get("/admin/t/demo").await).await;
    assert!(!dash.contains("sms-budget-banner"));

    // auditor: reads everything (previews too), changes nothing
    let mut auditor = app
        .staff_client(
            "auditor@city.example",
            Some((tenant.id, Role::Auditor, &[])),
        )
        .await;
    assert_eq!(
        auditor.get("/admin/t/demo/notifications").await.status(),
        200
    );
    assert_eq!(
        auditor
            .get("/admin/t/demo/notifications/log")
            .await
            .status(),
        200
    );
    for p in pages {
        let (status, html) = body(auditor.get(p).await).await;
        assert_eq!(status, 200, "{p}");
        assert!(
            !html.contains("id=\"save-channel\"") && !html.contains("id=\"save-template\""),
            "no save buttons for {p}"
        );
    }
    assert_eq!(
        auditor
            .post(
                "/admin/t/demo/notifications/templates/reminder/pt",
                &[
                    ("action", "preview"),
                    ("subject", "{{city}}"),
                    ("body", "Olá {{name}}")
                ]
            )
            .await
            .status(),
        200
    );
    for (p, fields) in posts {
        assert_eq!(auditor.post(p, fields).await.status(), 403, "{p}");
    }

    // venue staff, hospital staff, call centre: neither the settings nor the log
    for (email, role, venues) in [
        ("venue@city.example", Role::VenueStaff, vec![venue]),
        ("hospital@city.example", Role::HospitalStaff, vec![venue]),
        ("callcentre@city.example", Role::CallCenter, vec![]),
    ] {
        let mut c = app
            .staff_client(email, Some((tenant.id, role, venues.as_slice())))
            .await;
        for p in [
            "/admin/t/demo/notifications",
            "/admin/t/demo/notifications/log",
        ]
        .into_iter()
        .chain(pages)
        {
            assert_eq!(c.get(p).await.status(), 403, "{email} {p}");
        }
        for (p, fields) in posts {
            assert_eq!(c.post(p, fields).await.status(), 403, "{email} {p}");
        }
    }

    // another city's staff: not found, not forbidden
    let other = crate::support::bare_tenant(&app.pool, "othercity", "他市").await;
    let mut outsider = app
        .staff_client(
            "outsider@other.example",
            Some((other, Role::CityAdmin, &[])),
        )
        .await;
    assert_eq!(
        outsider.get("/admin/t/demo/notifications").await.status(),
        404
    );
    assert_eq!(
        outsider
            .get("/admin/t/demo/notifications/log")
            .await
            .status(),
        404
    );

    // only the admin's changes happened
    let budget: Option<i64> =
        sqlx::query_scalar("SELECT sms_monthly_budget FROM notification_settings")
            .fetch_one(&app.owner)
            .await
            .expect("budget");
    assert_eq!(budget, Some(500));
}
