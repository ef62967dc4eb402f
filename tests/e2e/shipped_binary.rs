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
            "mutation($t: String!, $b: NaiveDate!) { requestLoginCode(tenant: \"demo\", ticketNo: $t, birthDate: $b) { maskedPhone } }",
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
        .graphql("{ tenant(slug: \"demo\") { name } }", json!({}))
        .await;
    assert_eq!(answer["data"]["tenant"]["name"], "デモ市", "{answer}");
}
