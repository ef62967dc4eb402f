//! Each channel against a real peer: a real SMTP server in this process, and HTTP fakes (wiremock) for
//! the third-party SMS gateway and a city's webhook. (They live in the end-to-end binary so that
//! the TLS set-up comes from the binary's start-up, `yoyaku::init_process`, not from a test.)

use std::time::Duration;

use plugins::testing::SmtpSink;
use plugins::twilio::{map_status, twilio_signature, verify_twilio_signature};
use plugins::webhook::verify_webhook_signature;
use plugins::{Channel, DeliveryState, Message, Recipient, SendError};
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn message(to: Recipient, text: &str) -> Message {
    Message {
        to,
        subject: Some("【デモ市】ワクチン接種予約の確認".into()),
        text: text.into(),
        html: Some(format!("<p>{text}</p>")),
        idempotency_key: "booking-confirmed:42".into(),
    }
}

#[tokio::test]
async fn smtp_delivers_multipart_mail_with_a_japanese_subject_to_a_real_server() {
    let sink = SmtpSink::start();
    let channel = plugins::build(
        "smtp",
        json!({
            "host": "127.0.0.1", "port": sink.addr.port(), "security": "plain",
            "from_address": "noreply@demo.example.jp", "from_name": "デモ市 予約センター"
        }),
    )
    .expect("config");
    let text = "ヤマダ タロウ 様\n12月1日 10:00 市民ホールの予約を承りました。";
    let receipt = channel
        .send(&message(Recipient::Email("taro@example.jp".into()), text))
        .await
        .expect("sent");
    assert_eq!(receipt.units, 1);
    assert_eq!(
        receipt.provider_message_id,
        "<booking-confirmed-42@demo.example.jp>"
    );

    let mail = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, vec!["taro@example.jp".to_owned()]);
    assert_eq!(
        mail[0].header("Subject").as_deref(),
        Some("【デモ市】ワクチン接種予約の確認")
    );
    assert!(
        mail[0]
            .header("From")
            .unwrap_or_default()
            .contains("デモ市 予約センター")
    );
    // SMTP bodies travel with CRLF line ends
    let plain = mail[0]
        .part("text/plain")
        .expect("text part")
        .replace("\r\n", "\n");
    assert_eq!(plain, text);
    let html = mail[0]
        .part("text/html")
        .expect("html part")
        .replace("\r\n", "\n");
    assert_eq!(html, format!("<p>{text}</p>"));
}

#[tokio::test]
async fn smtp_to_a_closed_port_is_a_transient_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let channel = plugins::build(
        "smtp",
        json!({ "host": "127.0.0.1", "port": port, "security": "plain", "from_address": "a@b.jp" }),
    )
    .expect("config");
    let err = channel
        .send(&message(Recipient::Email("x@example.jp".into()), "x"))
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, SendError::Transient { .. }), "{err:?}");
}

fn twilio(server: &MockServer) -> std::sync::Arc<dyn Channel> {
    // the binary's own start-up (`main` runs it first): these tests build channels without an app
    yoyaku::init_process();
    plugins::build(
        "twilio",
        json!({
            "base_url": server.uri(), "account_sid": "AC123", "auth_token": "tok-secret",
            "from": "+815000000000", "status_callback_url": "https://yoyaku.example/callbacks/sms/demo"
        }),
    )
    .expect("config")
}

#[tokio::test]
async fn sms_posts_the_twilio_form_with_basic_auth_and_counts_segments() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC123/Messages.json"))
        // base64("AC123:tok-secret")
        .and(header("authorization", "Basic QUMxMjM6dG9rLXNlY3JldA=="))
        .and(body_string_contains("To=%2B819012345678"))
        .and(body_string_contains("From=%2B815000000000"))
        .and(body_string_contains("StatusCallback=https"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({ "sid": "SM0001", "status": "queued" })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let text = "予".repeat(100);
    let receipt = twilio(&server)
        .send(&message(Recipient::Phone("090-1234-5678".into()), &text))
        .await
        .expect("sent");
    assert_eq!(receipt.provider_message_id, "SM0001");
    assert_eq!(
        receipt.units, 2,
        "100 Japanese characters are two UCS-2 segments"
    );
    let body = String::from_utf8(
        server.received_requests().await.expect("requests")[0]
            .body
            .clone(),
    )
    .expect("utf8");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert!(form.contains(&("Body".into(), text)), "{form:?}");
}

#[tokio::test]
async fn sms_gateway_errors_are_classified_for_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "7"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({ "code": 21211, "message": "The 'To' number is not a valid phone number." }),
        ))
        .mount(&server)
        .await;
    let channel = twilio(&server);
    let msg = message(Recipient::Phone("09012345678".into()), "code 123456");
    assert_eq!(
        channel.send(&msg).await.expect_err("429"),
        SendError::Transient {
            reason: "SMS gateway answered 429 Too Many Requests".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );
    assert!(matches!(
        channel.send(&msg).await,
        Err(SendError::Transient { .. })
    ));
    match channel.send(&msg).await {
        Err(SendError::Permanent { reason }) => assert!(reason.contains("21211"), "{reason}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[test]
fn status_callbacks_are_believed_only_with_a_valid_signature() {
    let url = "https://yoyaku.example/callbacks/sms/demo";
    let params = vec![
        ("MessageSid".to_owned(), "SM0001".to_owned()),
        ("MessageStatus".to_owned(), "delivered".to_owned()),
    ];
    let good = twilio_signature("tok-secret", url, &params);
    assert!(verify_twilio_signature("tok-secret", url, &params, &good));
    assert!(!verify_twilio_signature("other-token", url, &params, &good));
    let mut forged = params.clone();
    forged[1].1 = "failed".into();
    assert!(!verify_twilio_signature("tok-secret", url, &forged, &good));
    assert_eq!(map_status("delivered"), Some(DeliveryState::Delivered));
    assert_eq!(map_status("undelivered"), Some(DeliveryState::Failed));
    assert_eq!(map_status("nonsense"), None);
}

#[tokio::test]
async fn webhook_posts_signed_json_that_the_receiver_can_verify() {
    // the binary's own start-up (`main` runs it first): these tests build channels without an app
    yoyaku::init_process();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(header_exists("x-yoyaku-signature"))
        .and(header("idempotency-key", "booking-confirmed:42"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({ "id": "gw-77" })))
        .expect(1)
        .mount(&server)
        .await;
    let secret = "0123456789abcdef-city";
    let channel = plugins::build(
        "webhook",
        json!({ "url": format!("{}/hook", server.uri()), "secret": secret }),
    )
    .expect("config");
    let receipt = channel
        .send(&message(
            Recipient::Phone("09012345678".into()),
            "予約を承りました",
        ))
        .await
        .expect("sent");
    assert_eq!(receipt.provider_message_id, "gw-77");
    let requests: Vec<Request> = server.received_requests().await.expect("requests");
    let req = &requests[0];
    let ts = req
        .headers
        .get("x-yoyaku-timestamp")
        .and_then(|v| v.to_str().ok())
        .expect("ts");
    let sig = req
        .headers
        .get("x-yoyaku-signature")
        .and_then(|v| v.to_str().ok())
        .expect("sig");
    assert!(verify_webhook_signature(secret, ts, &req.body, sig));
    assert!(!verify_webhook_signature(
        "wrong-secret-0000",
        ts,
        &req.body,
        sig
    ));
    let body: serde_json::Value = serde_json::from_slice(&req.body).expect("json");
    assert_eq!(body["text"], "予約を承りました");
}

#[test]
fn bad_configurations_name_the_field() {
    let cases = [
        (
            "smtp",
            json!({ "host": "", "port": 25, "security": "plain", "from_address": "a@b.jp" }),
            "host",
        ),
        (
            "smtp",
            json!({ "host": "h", "port": 25, "security": "ssl", "from_address": "a@b.jp" }),
            "security",
        ),
        (
            "smtp",
            json!({ "host": "h", "port": 25, "security": "plain", "from_address": "nope" }),
            "from_address",
        ),
        (
            "smtp",
            json!({ "host": "h", "port": 25, "security": "plain", "from_address": "a@b.jp", "username": "u" }),
            "password",
        ),
        (
            "twilio",
            json!({ "account_sid": "AC1", "auth_token": "t", "from": "+81", "base_url": "ftp://x" }),
            "base_url",
        ),
        (
            "twilio",
            json!({ "account_sid": "AC1", "from": "+81" }),
            "auth_token",
        ),
        (
            "webhook",
            json!({ "url": "https://x.example/h", "secret": "short" }),
            "secret",
        ),
        (
            "webhook",
            json!({ "url": "https://x.example/h", "secret": "0123456789abcdef", "extra": 1 }),
            "extra",
        ),
        ("fax", json!({}), "plugin"),
    ];
    // the binary's own start-up (`main` runs it first): these tests build channels without an app
    yoyaku::init_process();
    for (plugin, config, field) in cases {
        match plugins::build(plugin, config.clone()) {
            Err(e) => assert_eq!(e.field, field, "{plugin} {config}: {e}"),
            Ok(_) => panic!("{plugin} {config} should be refused"),
        }
    }
}

#[test]
fn secrets_do_not_show_in_debug_output_of_configs() {
    let config: plugins::twilio::TwilioConfig = serde_json::from_value(json!({
        "account_sid": "AC1", "auth_token": "tok-very-secret", "from": "+815000000000"
    }))
    .expect("config");
    assert!(!format!("{config:?}").contains("tok-very-secret"));
}
