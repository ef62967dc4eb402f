//! The compiled `yoyaku` binary, started as an operator starts it (`yoyaku serve`), used as a city
//! admin and a resident would: nothing here runs in the test's own process but the fakes of the
//! third-party SMS gateway and the city's webhook receiver. If the binary's start-up forgot
//! something the in-process tests get another way (the TLS crypto provider, for one), these fail.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{AdminClient, body, fresh_database, http_client, pg_base};

/// `yoyaku serve` on a fresh database (demo city seeded, development environment), killed on drop.
struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start() -> Self {
        let db = fresh_database().await;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let child = Command::new(env!("CARGO_BIN_EXE_yoyaku"))
            .arg("serve")
            .env_remove("RUST_LOG")
            .env("YOYAKU_LOG__LEVEL", "warn")
            .env("YOYAKU_DATABASE__URL", format!("{}/{db}", pg_base()))
            .env("YOYAKU_HTTP__PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn yoyaku serve");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: http_client(),
        };
        for _ in 0..300 {
            if let Ok(res) = server.client.get(server.url("/readyz")).send().await
                && res.status() == 200
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("yoyaku serve did not become ready");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The demo city's admin, signed in through the login form.
    async fn demo_admin(&self) -> AdminClient<'static> {
        let mut admin = AdminClient::at(self.base.clone(), self.client.clone());
        admin
            .log_in("admin@demo.example", platform::demo::DEMO_STAFF_PASSWORD)
            .await;
        admin
    }

    async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("GraphQL JSON")
    }
}

/// Waits until the fake has received `n` requests (or 20 s pass), then a little longer, so a
/// duplicate send would be seen; returns what it received.
async fn received_after(server: &MockServer, n: usize) -> Vec<wiremock::Request> {
    for _ in 0..200 {
        if server.received_requests().await.unwrap_or_default().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test]
async fn the_shipped_binary_sends_a_login_code_through_the_sms_channel_a_city_admin_saved() {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC31/Messages.json"))
        .and(body_string_contains("To=%2B819000000003"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM-bin-1" })))
        .mount(&gateway)
        .await;
    let server = Server::start().await;
    let mut admin = server.demo_admin().await;
    let (status, page) = body(
        admin
            .post(
                "/admin/t/demo/notifications/channels/sms",
                &[
                    ("base_url", gateway.uri().as_str()),
                    ("account_sid", "AC31"),
                    ("auth_token", "tok-binary-test-0031"),
                    ("from", "+815000000000"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "saving the SMS channel answers a page: {page}");
    assert!(page.contains("AC31"), "the saved channel is shown: {page}");

    // demo resident 3 has 090-0000-0003 on file
    let r = platform::demo::demo_resident(3);
    let sent = server
        .graphql(
            "mutation($t: String!, $b: Date!) { requestLoginCode(city: \"demo\", ticketNo: $t, birthDate: $b) { maskedPhone } }",
            json!({ "t": r.ticket_no, "b": r.birth_date }),
        )
        .await;
    assert_eq!(
        sent["data"]["requestLoginCode"]["maskedPhone"], "090****0003",
        "{sent}"
    );
    let got = received_after(&gateway, 1).await;
    assert_eq!(got.len(), 1, "the gateway gets the code exactly once");
    let form = String::from_utf8_lossy(&got[0].body).into_owned();
    assert!(form.contains("To=%2B819000000003"), "{form}");
    assert!(
        form.split('&')
            .any(|kv| kv.starts_with("Body=")
                && kv.chars().filter(char::is_ascii_digit).count() >= 6),
        "the message carries the code: {form}"
    );
}

#[tokio::test]
async fn the_shipped_binary_sends_a_webhook_channels_test_message_once() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(header_exists("x-yoyaku-signature"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({ "id": "hook-1" })))
        .mount(&receiver)
        .await;
    let server = Server::start().await;
    let mut admin = server.demo_admin().await;
    let url = format!("{}/hook", receiver.uri());
    let (status, page) = body(
        admin
            .post(
                "/admin/t/demo/notifications/channels/webhook",
                &[("url", url.as_str()), ("secret", "binary-test-secret-0042")],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "saving the webhook channel: {page}");
    let (status, page) = body(
        admin
            .post(
                "/admin/t/demo/notifications/channels/webhook/test",
                &[("to", "ops@demo.example.jp")],
            )
            .await,
    )
    .await;
    assert!(status < 500, "the test send answers: {status} {page}");
    let got = received_after(&receiver, 1).await;
    assert_eq!(
        got.len(),
        1,
        "the receiver gets the test message exactly once"
    );
}

/// A handler that panics answers 500 with the request id (an HTML page, or a GraphQL-shaped
/// `INTERNAL` error for JSON clients), and the server keeps serving.
#[tokio::test]
async fn a_panicking_handler_answers_500_with_the_request_id_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let res = server
        .client
        .get(server.url("/dev/panic"))
        .send()
        .await
        .expect("an answer, not a closed connection");
    assert_eq!(res.status(), 500);
    let id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id header")
        .to_owned();
    assert!(!id.is_empty());
    let page = res.text().await.expect("body");
    assert!(page.contains(&id), "the page names the request id: {page}");
    assert!(!page.contains("deliberate"), "no panic text leaks: {page}");

    let res = server
        .client
        .get(server.url("/dev/panic"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), 500);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INTERNAL",
        "{body}"
    );
    assert!(
        !body["errors"][0]["extensions"]["requestId"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{body}"
    );

    for _ in 0..3 {
        let ok = server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .expect("still serving");
        assert_eq!(ok.status(), 200);
    }
    let answer = server
        .graphql("{ tenant(city: \"demo\") { name } }", json!({}))
        .await;
    assert_eq!(answer["data"]["tenant"]["name"], "デモ市", "{answer}");
}

/// In production the binary logs JSON lines by default, each request's lines carrying its
/// `request_id` and `tenant.id`; and its start-up installs the metrics recorder, whose `/metrics`
/// is served on the admin listener only (issue 19).
#[tokio::test]
async fn in_production_the_binary_logs_json_with_the_request_id_and_serves_metrics_on_the_admin_port()
 {
    let db = fresh_database().await;
    let free_port = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let (port, admin) = (free_port(), free_port());
    let url = format!("{}/{db}", pg_base());
    let created = Command::new(env!("CARGO_BIN_EXE_yoyaku"))
        .args([
            "tenant",
            "create",
            "--slug",
            "yokohama",
            "--name",
            "横浜市",
            "--code",
            "141003",
        ])
        .env_remove("RUST_LOG")
        .env("YOYAKU_DATABASE__URL", &url)
        .output()
        .expect("tenant create");
    assert!(created.status.success(), "{created:?}");
    let log = std::env::temp_dir().join(format!("yoyaku-log-{}.jsonl", uuid::Uuid::new_v4()));
    let child = Command::new(env!("CARGO_BIN_EXE_yoyaku"))
        .arg("serve")
        .env_remove("RUST_LOG")
        .env("YOYAKU_ENVIRONMENT", "production")
        .env(
            "YOYAKU_NOTIFICATIONS__ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .env("YOYAKU_LOG__LEVEL", "info,sqlx=warn")
        .env("YOYAKU_DATABASE__URL", &url)
        .env("YOYAKU_HTTP__PORT", port.to_string())
        .env("YOYAKU_METRICS__LISTEN", format!("127.0.0.1:{admin}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn yoyaku serve");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        client: http_client(),
    };
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(res) = server.client.get(server.url("/readyz")).send().await
            && res.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "yoyaku serve did not become ready");
    let res = server
        .client
        .post(server.url("/graphql"))
        .json(&json!({ "query": "{ tenant(city: \"yokohama\") { name } }" }))
        .send()
        .await
        .expect("graphql");
    let request_id = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let answer: Value = res.json().await.expect("json");
    assert_eq!(answer["data"]["tenant"]["name"], "横浜市", "{answer}");

    // the request's "served" line: JSON, with its request id and the tenant it resolved
    let mut served = None;
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        served = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "served" && l["span"]["request_id"] == request_id.as_str());
        if served.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let served = served.unwrap_or_else(|| panic!("no JSON line for {request_id}: {text}"));
    assert!(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "every log line is JSON: {text}"
    );
    assert_eq!(served["status"], 200, "{served}");
    assert_eq!(served["span"]["path"], "/graphql", "{served}");
    assert!(
        served["span"]["tenant.id"]
            .as_str()
            .is_some_and(|t| t.len() == 36),
        "{served}"
    );

    // metrics: on the admin port, recorded by the binary's own start-up path; not on the public one
    assert_eq!(
        server
            .client
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("public")
            .status(),
        404
    );
    let metrics = server
        .client
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .expect("admin port")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("yoyaku_http_request_duration_seconds_bucket{")
            && metrics.contains("route=\"/graphql\""),
        "{metrics}"
    );
    let _ = std::fs::remove_file(&log);
}
