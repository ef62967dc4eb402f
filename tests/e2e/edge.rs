//! The server's edge (issue 15, findings 6, 7, 9 and 10): Secure on every cookie when the public URL
//! is https, the security headers on pages and `/graphql`, malformed addresses answered 400, and
//! the client address behind a configured reverse proxy (and not without one).

use std::net::SocketAddr;

use platform::demo::{DEMO_STAFF, DEMO_STAFF_PASSWORD, demo_resident};
use tokio::{net::TcpListener, sync::oneshot};
use yoyaku::{App, config::Settings};

use crate::support::{AdminClient, fresh_database, http_client, settings_for};

/// The demo city served with settings the test changes (the same `App::build` as the binary).
struct Server {
    addr: SocketAddr,
    client: reqwest::Client,
    app_messages: plugins::LogChannel,
    worker: platform::notifications::Worker,
    _stop: oneshot::Sender<()>,
}

async fn serve(configure: impl FnOnce(&mut Settings)) -> Server {
    let database = fresh_database().await;
    let mut settings = settings_for(&database);
    settings.demo.seed = true;
    // the test works notification jobs itself (login codes)
    settings.jobs.in_serve = false;
    configure(&mut settings);
    let app = App::build(settings).await.expect("build app");
    let app_messages = app.messages.clone();
    let worker = app.worker.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        client: http_client(),
        app_messages,
        worker,
        _stop: stop,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// Posts the resident login form (ticket and birth date) with a valid pre-login form token,
    /// `forwarded_for` as `X-Forwarded-For`.
    async fn ask_code(&self, ticket: &str, birth_date: &str, forwarded_for: &str) -> u16 {
        let token = "edge-form-token-0123456789";
        self.client
            .post(self.url("/t/demo/login"))
            .header("cookie", format!("yk_form={token}"))
            .header("x-forwarded-for", forwarded_for)
            .form(&[
                ("ticket", ticket),
                ("birth_date", birth_date),
                ("form_token", token),
            ])
            .send()
            .await
            .expect("POST login")
            .status()
            .as_u16()
    }

    /// Asks for a login code through GraphQL (`requestLoginCode`) with `forwarded_for` as
    /// `X-Forwarded-For`; the error code (top-level or the payload's), if refused.
    async fn ask_code_graphql(&self, ticket: &str, forwarded_for: &str) -> Option<String> {
        let answer: serde_json::Value = self
            .client
            .post(self.url("/graphql"))
            .header("x-forwarded-for", forwarded_for)
            .json(&serde_json::json!({
                "query": "mutation($t: String!) { requestLoginCode(city: \"demo\", ticketNo: $t, birthDate: \"1970-01-01\") { maskedPhone errors { code } } }",
                "variables": { "t": ticket },
            }))
            .send()
            .await
            .expect("POST graphql")
            .json()
            .await
            .expect("json");
        // throttling is a top-level error; other refusals are user errors of the payload
        answer["errors"][0]["extensions"]["code"]
            .as_str()
            .or(answer["data"]["requestLoginCode"]["errors"][0]["code"].as_str())
            .map(str::to_owned)
    }

    async fn code_sent_to(&self, phone: &str) -> String {
        for _ in 0..50 {
            self.worker.run_once().await.expect("work jobs");
            let found = self.app_messages.recent().into_iter().find_map(|m| {
                let to = matches!(&m.message.to, plugins::Recipient::Phone(p) if p == phone);
                let code = m
                    .message
                    .text
                    .split(|c: char| !c.is_ascii_digit())
                    .find(|w| w.len() == 6)?
                    .to_owned();
                to.then_some(code)
            });
            if let Some(code) = found {
                return code;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no login code sent to {phone}");
    }
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII cookie").to_owned())
        .collect()
}

fn is_secure(cookie: &str) -> bool {
    cookie
        .split(';')
        .skip(1)
        .any(|a| a.trim().eq_ignore_ascii_case("secure"))
}

/// Every cookie the resident site and the admin UI set: the resident form token, session and
/// language, the staff CSRF and session cookies.
async fn every_cookie(s: &Server) -> Vec<String> {
    let mut all = Vec::new();
    // resident: the pre-login form token, then a whole login for the session cookie
    let page = s.get("/t/demo/login").await;
    let cookies = set_cookies(&page);
    let form = cookies
        .iter()
        .find_map(|c| c.strip_prefix("yk_form="))
        .and_then(|c| c.split(';').next())
        .expect("yk_form cookie")
        .to_owned();
    all.extend(cookies);
    let r = demo_resident(3); // phone on file: 090 + 8 digits
    let birth = r.birth_date.format("%Y-%m-%d").to_string();
    let res = s
        .client
        .post(s.url("/t/demo/login"))
        .header("cookie", format!("yk_form={form}"))
        .form(&[
            ("ticket", r.ticket_no.as_str()),
            ("birth_date", birth.as_str()),
            ("form_token", form.as_str()),
        ])
        .send()
        .await
        .expect("POST login");
    assert_eq!(res.status(), 303, "code requested");
    let code = s.code_sent_to("09000000003").await;
    let res = s
        .client
        .post(s.url("/t/demo/code"))
        .header("cookie", format!("yk_form={form}"))
        .form(&[
            ("ticket", r.ticket_no.as_str()),
            ("code", code.as_str()),
            ("form_token", form.as_str()),
        ])
        .send()
        .await
        .expect("POST code");
    assert_eq!(res.status(), 303, "logged in");
    all.extend(set_cookies(&res));
    // the language switch
    all.extend(set_cookies(&s.get("/t/demo/lang/en?back=login").await));
    // staff: the login form's CSRF cookie, then the session
    let mut staff = AdminClient::at(format!("http://{}", s.addr), http_client());
    all.extend(set_cookies(&staff.get("/admin/login").await));
    let res = staff
        .attempt_login(DEMO_STAFF[1].0, DEMO_STAFF_PASSWORD)
        .await;
    assert_eq!(res.status(), 303, "staff logged in");
    all.extend(set_cookies(&res));
    for name in [
        "yk_form=",
        "yk_session=",
        "yk_lang=",
        "yoyaku_csrf=",
        "yoyaku_staff=",
    ] {
        assert!(
            all.iter().any(|c| c.starts_with(name)),
            "{name} was set: {all:?}"
        );
    }
    all
}

#[tokio::test]
async fn every_cookie_is_secure_when_the_public_url_is_https_and_only_then() {
    let https = serve(|s| s.http.public_url = "https://yoyaku.example.jp".into()).await;
    for cookie in every_cookie(&https).await {
        assert!(is_secure(&cookie), "https public URL, no Secure: {cookie}");
    }
    // and browsers are told to keep to https (HSTS), only then
    let res = https.get("/t/demo/login").await;
    assert_eq!(
        res.headers()
            .get("strict-transport-security")
            .map(|v| v.as_bytes()),
        Some(&b"max-age=31536000"[..])
    );
    let http = serve(|s| s.http.public_url = "http://yoyaku.example.jp".into()).await;
    for cookie in every_cookie(&http).await {
        assert!(!is_secure(&cookie), "http public URL, Secure: {cookie}");
    }
    let res = http.get("/t/demo/login").await;
    assert!(res.headers().get("strict-transport-security").is_none());
}

#[tokio::test]
async fn pages_and_graphql_carry_the_security_headers() {
    let s = serve(|_| {}).await;
    let staff_page = {
        let mut staff = AdminClient::at(format!("http://{}", s.addr), http_client());
        staff.log_in(DEMO_STAFF[1].0, DEMO_STAFF_PASSWORD).await;
        staff.get("/admin").await
    };
    let graphql_post = s
        .client
        .post(s.url("/graphql"))
        .json(&serde_json::json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("POST /graphql");
    let answers = [
        ("resident page", s.get("/t/demo/login").await),
        ("admin login page", s.get("/admin/login").await),
        ("admin page", staff_page),
        (
            "GraphiQL",
            s.client
                .get(s.url("/graphql"))
                .header("accept", "text/html")
                .send()
                .await
                .expect("GET /graphql"),
        ),
        ("GraphQL answer", graphql_post),
        ("home", s.get("/").await),
        ("not found", s.get("/t/demo/nowhere").await),
    ];
    for (what, res) in answers {
        assert!(res.status().as_u16() < 500, "{what}: {}", res.status());
        let h = res.headers();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"))
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
        assert_eq!(
            h.get("x-frame-options").map(|v| v.as_bytes()),
            Some(&b"DENY"[..]),
            "{what}"
        );
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{what}"
        );
        assert_eq!(
            h.get("referrer-policy").map(|v| v.as_bytes()),
            Some(&b"same-origin"[..]),
            "{what}"
        );
        // nothing with personal data is kept by a browser or a proxy
        assert_eq!(
            h.get("cache-control").map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "{what}"
        );
    }
    // static assets keep their own caching
    let asset = s.get("/graphql/assets/graphiql.min.css").await;
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"),
        "{:?}",
        asset.headers()
    );
}

#[tokio::test]
async fn malformed_paths_and_query_strings_answer_400() {
    let s = serve(|_| {}).await;
    for path in [
        "/t/%01/",
        "/t/%00/login",
        "/t/demo/lang/en?back=login%0D%0ASet-Cookie:%20x=1",
        "/t/demo/lang/en?back=%0A",
        "/t/demo/login?ticket=1%00",
        "/t/%FF/",
        "/admin/t/demo%0D%0A/overview",
    ] {
        let res = s.get(path).await;
        assert_eq!(res.status(), 400, "{path}");
        assert!(res.headers().get("set-cookie").is_none(), "{path}");
        let text = res.text().await.unwrap();
        assert!(text.contains("control character"), "{path}: {text}");
    }
    // a back path with characters a Location header cannot carry as they are is encoded, not a 500
    let res = s
        .get("/t/demo/lang/en?back=venues%3Fq%3D%E6%9D%B1%20x")
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "/t/demo/venues?q=%E6%9D%B1%20x"
    );
    // and a plain one still goes back where it came from
    let res = s.get("/t/demo/lang/en?back=venues").await;
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "/t/demo/venues"
    );
}

/// The per-address limit of login-code requests (platform/src/residents/auth.rs, `LIMITS`).
fn ip_limit() -> i64 {
    platform::residents::auth::LIMITS
        .iter()
        .find(|(kind, _, _)| *kind == "ip")
        .map(|(_, max, _)| *max)
        .expect("an ip limit")
}

/// `ip_limit()` code requests from `forwarded_for`, each for a different (unknown) ticket so only
/// the per-address throttle can refuse them; none may be refused.
async fn use_up_the_address_limit(s: &Server, forwarded_for: &str) {
    for i in 0..ip_limit() {
        let status = s
            .ask_code(&format!("77{i:08}"), "1970-01-01", forwarded_for)
            .await;
        assert_ne!(status, 429, "request {i} from {forwarded_for} refused");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_residents_are_throttled_by_their_forwarded_address() {
    // tests connect from loopback: the proxy is 127.0.0.1
    let s = serve(|s| s.http.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    use_up_the_address_limit(&s, "203.0.113.1").await;
    assert_eq!(
        s.ask_code("7799999999", "1970-01-01", "203.0.113.1").await,
        429
    );
    // another resident behind the same proxy is not refused
    assert_ne!(
        s.ask_code("7799999998", "1970-01-01", "203.0.113.2").await,
        429
    );
    // a forged entry left of the proxy's own changes nothing: the right-most one counts
    assert_eq!(
        s.ask_code("7799999997", "1970-01-01", "198.51.100.7, 203.0.113.1")
            .await,
        429
    );
    // GraphQL reads the same resolved address: the used-up one is refused there too, another not
    assert_eq!(
        s.ask_code_graphql("7799999996", "203.0.113.1")
            .await
            .as_deref(),
        Some("RATE_LIMITED"),
    );
    assert_ne!(
        s.ask_code_graphql("7799999995", "203.0.113.3")
            .await
            .as_deref(),
        Some("RATE_LIMITED"),
    );
}

#[tokio::test]
async fn without_trusted_proxies_a_forwarded_address_changes_nothing() {
    let s = serve(|_| {}).await;
    use_up_the_address_limit(&s, "203.0.113.1").await;
    // a forged header from an untrusted peer: still the peer's address, still refused
    assert_eq!(
        s.ask_code("7799999998", "1970-01-01", "203.0.113.2").await,
        429
    );
    // and a proxy list that does not hold the peer is no different
    let s = serve(|s| s.http.trusted_proxies = vec!["10.0.0.0/8".into()]).await;
    use_up_the_address_limit(&s, "203.0.113.1").await;
    assert_eq!(
        s.ask_code("7799999998", "1970-01-01", "203.0.113.2").await,
        429
    );
}
