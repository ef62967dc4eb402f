//! The test harness: `spawn_app()` starts the real app on port 0 against a fresh database cloned from
//! a migrated template (built once per migration set, shared across test processes), plus helpers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use platform::staff::authz::Role;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OnceCell, oneshot, watch};
use yoyaku::{App, config::Settings};

/// The PostgreSQL server the tests use (superuser); override with YOYAKU_TEST_PG.
pub fn pg_base() -> String {
    std::env::var("YOYAKU_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// A migrated, empty database to clone; named after the migration set so a change rebuilds it.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for m in yoyaku::db::MIGRATOR.iter() {
                for b in m.checksum.iter().chain(m.version.to_le_bytes().iter()) {
                    hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
                }
            }
            let prefix = format!("yoyaku_tpl_{hash:016x}");
            let mut admin = admin_conn().await;
            // Several test processes may start at once: one builds, the others wait.
            admin
                .execute("SELECT pg_advisory_lock(hashtext('yoyaku.test_template'))")
                .await
                .expect("template lock");
            // yoyaku_tpl_<migration hash>_<build time>: the time lets old ones be dropped by age.
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT datname::text FROM pg_database \
                 WHERE starts_with(datname, $1 || '_') AND datname NOT LIKE '%building' \
                 ORDER BY datname DESC LIMIT 1",
            )
            .bind(&prefix)
            .fetch_optional(&mut admin)
            .await
            .expect("look up template");
            let name = match existing {
                Some(name) => name,
                None => {
                    drop_stale_databases(&mut admin).await;
                    let name = format!("{prefix}_{}", unix_now());
                    let building = format!("{name}_building");
                    drop_database(&mut admin, &building).await;
                    let mut settings = settings_for(&building);
                    settings.demo.seed = false;
                    let dbs = yoyaku::db::prepare(&settings)
                        .await
                        .expect("build template database");
                    dbs.app.close().await;
                    dbs.owner.close().await;
                    admin
                        .execute(sqlx::AssertSqlSafe(format!(
                            "ALTER DATABASE \"{building}\" RENAME TO \"{name}\""
                        )))
                        .await
                        .expect("publish template");
                    name
                }
            };
            admin
                .execute("SELECT pg_advisory_unlock(hashtext('yoyaku.test_template'))")
                .await
                .expect("template unlock");
            name
        })
        .await
}

async fn admin_conn() -> PgConnection {
    PgConnection::connect(&format!("{}/postgres", pg_base()))
        .await
        .expect("connect to PostgreSQL as postgres (is it running on 127.0.0.1:5432?)")
}

async fn drop_database(admin: &mut PgConnection, name: &str) {
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .await
        .expect("drop database");
}

/// Templates and test databases older than two hours, from earlier runs. By age, not by name: other
/// checkouts (with other migration sets) may be testing against the same server right now.
async fn drop_stale_databases(admin: &mut PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'yoyaku\\_tpl\\_%' OR datname LIKE 'yoyaku\\_test\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    let cutoff = unix_now().saturating_sub(2 * 3600);
    for name in names {
        // yoyaku_test_<time>_<uuid> and yoyaku_tpl_<hash>_<time>
        let time = match name.strip_prefix("yoyaku_test_") {
            Some(rest) => rest.split('_').next(),
            None => name.rsplit('_').next(),
        };
        let stale = time
            .and_then(|t| t.parse::<u64>().ok())
            .is_some_and(|t| t < cutoff);
        if stale {
            drop_database(admin, &name).await;
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Settings for the given database on the test server, demo off, quiet logs.
pub fn settings_for(database: &str) -> Settings {
    let mut s = Settings::defaults().expect("default settings");
    s.database.url = SecretString::from(format!("{}/{database}", pg_base()));
    s.database.connect_timeout_secs = 2;
    s.demo.seed = false;
    // cheap password hashing keeps login tests fast; production parameters are in config.rs
    s.auth.argon2_memory_kib = 64;
    s.auth.argon2_iterations = 1;
    s
}

/// A new database cloned from the template; returns its name.
pub async fn fresh_database() -> String {
    let template = template().await;
    let name = format!(
        "yoyaku_test_{}_{}",
        unix_now(),
        uuid::Uuid::new_v4().simple()
    );
    let mut admin = admin_conn().await;
    let create = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
    // A clone fails while another session is briefly connected to the template; retry.
    for attempt in 0.. {
        match admin.execute(sqlx::AssertSqlSafe(create.clone())).await {
            Ok(_) => break,
            Err(e) if attempt < 50 && e.to_string().contains("being accessed") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("clone template: {e}"),
        }
    }
    name
}

#[derive(Default)]
pub struct Options {
    pub demo: bool,
    /// Route the app's database connections through a proxy the test can cut.
    pub via_proxy: bool,
    /// Run with `environment = "production"` (no demo city, no development pages).
    pub production: bool,
    /// The server runs no notification worker (`jobs.in_serve = false`); the test drives
    /// `worker.run_once()` itself, so the two never race for the same job.
    pub manual_worker: bool,
    /// Open the admin listener (`metrics.listen = 127.0.0.1:0`); its address is `TestApp::admin`.
    pub metrics: bool,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// The app's own pool: runtime role, row-level security applies.
    pub pool: PgPool,
    /// A superuser pool on the same database, for arranging and inspecting.
    pub owner: PgPool,
    pub proxy: Option<DbProxy>,
    /// The admin listener (`/metrics`), with `Options { metrics: true, .. }`.
    pub admin: Option<SocketAddr>,
    /// The app's authorization guard (same enforcer the server uses).
    pub authz: platform::staff::authz::Authz,
    pub auth_policy: platform::staff::identity::AuthPolicy,
    /// What the development log channel "sent" (SMS codes, booking confirmations).
    pub messages: plugins::LogChannel,
    /// The notification worker (also running in the background), to work jobs on demand.
    pub worker: platform::notifications::Worker,
    /// The event webhook worker (also running in the background unless `manual_worker`).
    pub webhooks: platform::webhooks::WebhookWorker,
    /// The server's per-key request budgets (`key_limits.advance(..)` moves their clock on).
    pub key_limits: platform::staff::api_keys::KeyLimits,
    /// The server's listener on the change feed (`platform::changes`).
    pub changes: platform::changes::Feed,
    _shutdown: oneshot::Sender<()>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// The app with the demo municipality seeded (`Options { demo: true, .. }`).
pub async fn demo_app() -> TestApp {
    spawn_app_with(Options {
        demo: true,
        ..Options::default()
    })
    .await
}

/// The demo app without a background notification worker: the test works jobs itself with
/// `app.worker.run_once()` (`Options { demo: true, manual_worker: true, .. }`).
pub async fn demo_app_manual_worker() -> TestApp {
    spawn_app_with(Options {
        demo: true,
        manual_worker: true,
        ..Options::default()
    })
    .await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let database = fresh_database().await;
    spawn_app_on(&database, options).await
}

/// The app on an existing database (a restored backup, say), started like `yoyaku serve`.
pub async fn spawn_app_on(database: &str, options: Options) -> TestApp {
    let mut settings = settings_for(database);
    settings.demo.seed = options.demo;
    if options.production {
        // production requires a real key for channel secrets
        settings.notifications.encryption_key =
            SecretString::from("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        settings.environment = yoyaku::config::Environment::Production;
    }
    if options.manual_worker {
        settings.jobs.in_serve = false;
    }
    if options.metrics {
        settings.metrics.listen = "127.0.0.1:0".into();
    }
    let proxy = if options.via_proxy {
        let proxy = DbProxy::start("127.0.0.1:5432").await;
        settings.database.url =
            SecretString::from(format!("postgres://postgres@{}/{database}", proxy.addr));
        Some(proxy)
    } else {
        None
    };
    let auth_policy = settings.auth.policy();
    let app = App::build(settings).await.expect("build app");
    let pool = app.pool.clone();
    let authz = app.authz.clone();
    let messages = app.messages.clone();
    let worker = app.worker.clone();
    let webhooks = app.webhooks.clone();
    let key_limits = app.key_limits.clone();
    let changes = app.changes.clone();
    let admin = app.admin_addr;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel();
    tokio::spawn(app.serve(listener, async {
        let _ = rx.await;
    }));
    let owner = PgPoolOptions::new()
        .max_connections(4)
        .connect(&format!("{}/{database}", pg_base()))
        .await
        .expect("owner pool");
    TestApp {
        addr,
        client: http_client(),
        pool,
        owner,
        proxy,
        admin,
        authz,
        auth_policy,
        messages,
        worker,
        webhooks,
        key_limits,
        changes,
        _shutdown: tx,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET request")
    }

    /// Runs a GraphQL operation and returns the whole JSON answer (data and errors).
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let res = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("POST /graphql");
        assert!(res.status().is_success(), "graphql status {}", res.status());
        res.json().await.expect("graphql JSON")
    }
}

/// A password every test account gets.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// A GraphQL operation with an API key.
    pub async fn graphql_with_key(&self, key: &str, query: &str, variables: Value) -> Value {
        self.client
            .post(self.url("/graphql"))
            .bearer_auth(key)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("graphql JSON")
    }

    /// A tenant created through the registry and filled by `platform::demo::seed_city`.
    pub async fn seeded_tenant(&self, slug: &str, code: &str) -> tenants::Tenant {
        let tenant = tenants::create_tenant(&self.pool, &new_tenant(slug, slug, code))
            .await
            .expect("create tenant");
        let mut tx = tenants::begin(&self.pool, tenant.id).await.expect("scope");
        platform::demo::seed_city(
            &mut tx,
            tenants::TimeZone::default(),
            chrono::Utc::now().date_naive(),
        )
        .await
        .expect("seed city");
        tx.commit().await.expect("commit");
        tenant
    }

    /// An account with [`PASSWORD`] and `role` in `tenant` (None: the platform operator).
    pub async fn staff(
        &self,
        email: &str,
        role: Option<(tenants::TenantId, Role, &[uuid::Uuid])>,
    ) -> platform::staff::identity::StaffAccount {
        let account = platform::staff::identity::create_with_password(
            &self.pool,
            &self.auth_policy,
            email,
            PASSWORD,
        )
        .await
        .expect("create account");
        let subject = platform::staff::authz::staff_subject(account.id);
        match role {
            Some((tenant, role, venues)) => self
                .authz
                .grant(&subject, tenant, role, venues)
                .await
                .expect("grant"),
            None => self
                .authz
                .grant_platform_operator(&subject)
                .await
                .expect("grant operator"),
        }
        account
    }

    /// Logs in through the login form and returns a client that carries the session.
    pub async fn login(&self, email: &str, password: &str) -> AdminClient<'_> {
        let mut client = self.anonymous();
        client.log_in(email, password).await;
        client
    }

    /// A client without a session (for login attempts).
    pub fn anonymous(&self) -> AdminClient<'_> {
        AdminClient::at(self.url(""), self.client.clone())
    }

    /// A staff-session client for the given new account.
    pub async fn staff_client(
        &self,
        email: &str,
        role: Option<(tenants::TenantId, Role, &[uuid::Uuid])>,
    ) -> AdminClient<'_> {
        self.staff(email, role).await;
        self.login(email, PASSWORD).await
    }
}

/// The roles `role_clients` logs in, in its order (the operator first).
pub const ROLES: [(&str, Option<Role>); 7] = [
    ("operator", None),
    ("city_admin", Some(Role::CityAdmin)),
    ("city_staff", Some(Role::CityStaff)),
    ("venue_staff", Some(Role::VenueStaff)),
    ("hospital_staff", Some(Role::HospitalStaff)),
    ("call_center", Some(Role::CallCenter)),
    ("auditor", Some(Role::Auditor)),
];

/// One logged-in client per role in the demo city (venue staff assigned to the first venue).
pub async fn role_clients<'a>(app: &'a TestApp, tenant: &tenants::Tenant) -> Vec<AdminClient<'a>> {
    let venue: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM venues WHERE tenant_id = $1 ORDER BY name LIMIT 1")
            .bind(tenant.id.0)
            .fetch_one(&app.owner)
            .await
            .expect("venue");
    let mut out = Vec::new();
    for (who, role) in ROLES {
        let venues = if matches!(role, Some(Role::VenueStaff | Role::HospitalStaff)) {
            vec![venue]
        } else {
            vec![]
        };
        out.push(
            app.staff_client(
                &format!("{who}@roles.example"),
                role.map(|r| (tenant.id, r, venues.as_slice())),
            )
            .await,
        );
    }
    out
}

/// A browser-like HTTP client for the admin UI: keeps cookies, knows the session's CSRF token.
pub struct AdminClient<'a> {
    /// `http://host:port` of the server (in this process, or the shipped binary).
    pub base: String,
    pub client: reqwest::Client,
    pub cookies: Vec<(String, String)>,
    pub csrf: String,
    _app: std::marker::PhantomData<&'a TestApp>,
}

/// The value of the first `name="csrf"` hidden field in a page.
pub fn csrf_in(html: &str) -> Option<String> {
    field_in(html, "csrf")
}

/// The value of the first form field `name="<name>"` in a page (hidden fields: `csrf`, `key`).
pub fn field_in(html: &str, name: &str) -> Option<String> {
    let prefix = format!("name=\"{name}\" value=\"");
    let at = html.find(&prefix)? + prefix.len();
    Some(html[at..].split('"').next()?.to_owned())
}

impl AdminClient<'_> {
    /// A client without a session for the server at `base`.
    pub fn at(base: String, client: reqwest::Client) -> Self {
        Self {
            base,
            client,
            cookies: Vec::new(),
            csrf: String::new(),
            _app: std::marker::PhantomData,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The session's cookies as one `Cookie` header value (for requests made without this client).
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let Some((k, rest)) = v.to_str().unwrap_or("").split_once('=') else {
                continue;
            };
            let value = rest.split(';').next().unwrap_or("").to_owned();
            self.cookies.retain(|(name, _)| name != k);
            if !value.is_empty() {
                self.cookies.push((k.to_owned(), value));
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let res = self
            .client
            .get(self.url(path))
            .header("cookie", self.cookie_header())
            .header("accept-language", "en")
            .send()
            .await
            .expect("GET");
        self.keep_cookies(&res);
        res
    }

    /// Posts a form with the session's CSRF token added.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let csrf = self.csrf.clone();
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", &csrf));
        self.post_raw(path, &all).await
    }

    /// Posts exactly these fields (no CSRF token unless given).
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let res = self
            .client
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .header("accept-language", "en")
            .form(fields)
            .send()
            .await
            .expect("POST");
        self.keep_cookies(&res);
        res
    }

    /// A GraphQL operation with this client's session cookie.
    pub async fn graphql(&mut self, query: &str, variables: Value) -> Value {
        let res = self
            .client
            .post(self.url("/graphql"))
            .header("cookie", self.cookie_header())
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("POST /graphql");
        res.json().await.expect("graphql JSON")
    }

    pub async fn refresh_csrf(&mut self) {
        let html = self.get("/admin").await.text().await.expect("body");
        self.csrf = csrf_in(&html).expect("a csrf field on the start page");
    }

    /// Logs in through the login form (asserting the redirect of a successful login) and takes the
    /// session's CSRF token from the start page.
    pub async fn log_in(&mut self, email: &str, password: &str) {
        let res = self.attempt_login(email, password).await;
        assert_eq!(res.status(), 303, "login of {email} failed");
        self.refresh_csrf().await;
    }

    /// Fetches the login form (for its CSRF cookie and token) and posts the credentials.
    pub async fn attempt_login(&mut self, email: &str, password: &str) -> reqwest::Response {
        let html = self
            .get("/admin/login")
            .await
            .text()
            .await
            .expect("login page");
        let csrf = csrf_in(&html).expect("csrf on the login page");
        self.post_raw(
            "/admin/login",
            &[("email", email), ("password", password), ("csrf", &csrf)],
        )
        .await
    }
}

impl TestApp {
    /// The demo municipality (needs `Options { demo: true, .. }`).
    pub async fn demo_tenant(&self) -> tenants::Tenant {
        tenants::find_by_slug(&self.pool, platform::demo::DEMO_SLUG)
            .await
            .expect("look up demo")
            .expect("demo city exists (spawn with demo: true)")
    }

    /// Works due notification jobs now, then returns the newest login code sent to `phone`.
    pub async fn login_code_sent_to(&self, phone: &str) -> Option<String> {
        for _ in 0..50 {
            self.worker.run_once().await.expect("work jobs");
            let found = self.messages.recent().into_iter().find_map(|m| {
                let to_phone = matches!(&m.message.to, plugins::Recipient::Phone(p) if p == phone);
                let code: String = m
                    .message
                    .text
                    .split(|c: char| !c.is_ascii_digit())
                    .find(|w| w.len() == 6)?
                    .to_owned();
                to_phone.then_some(code)
            });
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Runs a GraphQL operation as the resident holding `token` (Authorization: Bearer), in `lang`.
    pub async fn graphql_as(
        &self,
        token: &str,
        lang: &str,
        query: &str,
        variables: Value,
    ) -> Value {
        let res = self
            .client
            .post(self.url("/graphql"))
            .bearer_auth(token)
            .header("accept-language", lang)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("POST /graphql");
        assert!(res.status().is_success(), "graphql status {}", res.status());
        res.json().await.expect("graphql JSON")
    }

    /// A resident session token for demo resident `n` without the SMS step (arranging only).
    pub async fn resident_token(&self, n: u32) -> String {
        let tenant = self.demo_tenant().await;
        let id = self
            .resident_id(&platform::demo::demo_resident(n).ticket_no)
            .await;
        let mut tx = tenants::begin(&self.pool, tenant.id).await.expect("scope");
        let session = platform::residents::auth::create_session(&mut tx, tenant.id, id)
            .await
            .expect("session");
        tx.commit().await.expect("commit");
        session.token
    }

    /// A resident's id by ticket number (owner pool, bypassing RLS: arranging only).
    pub async fn resident_id(&self, ticket_no: &str) -> uuid::Uuid {
        sqlx::query_scalar("SELECT id FROM residents WHERE ticket_no = $1")
            .bind(ticket_no)
            .fetch_one(&self.owner)
            .await
            .expect("resident by ticket")
    }

    /// The venue of a slot.
    pub async fn venue_of(&self, slot: uuid::Uuid) -> uuid::Uuid {
        sqlx::query_scalar("SELECT venue_id FROM slots WHERE id = $1")
            .bind(slot)
            .fetch_one(&self.owner)
            .await
            .expect("venue of slot")
    }

    /// The `nth` bookable slot (none booked, more than three days out) of the demo's first mass
    /// venue (capacity 10), earliest first.
    pub async fn demo_slot(&self, nth: i64) -> uuid::Uuid {
        sqlx::query_scalar(
            "SELECT s.id FROM slots s JOIN venues v ON v.id = s.venue_id \
             WHERE v.name = '市民ホール集団接種会場' AND s.booked = 0 \
               AND s.starts_at > now() + interval '3 days' ORDER BY s.starts_at OFFSET $1 LIMIT 1",
        )
        .bind(nth)
        .fetch_one(&self.owner)
        .await
        .expect("a demo slot")
    }

    /// Holds a slot's row (`FOR UPDATE`) in an owner transaction until it ends: a booking of that
    /// slot waits in PostgreSQL meanwhile.
    pub async fn hold_slot(&self, slot: uuid::Uuid) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let mut hold = self.owner.begin().await.expect("begin");
        sqlx::query("SELECT 1 FROM slots WHERE id = $1 FOR UPDATE")
            .bind(slot)
            .execute(&mut *hold)
            .await
            .expect("hold the slot");
        hold
    }

    /// Waits (up to 30 s) until a statement of this app's database waits for a lock; returns how
    /// many wait then (0 when none came).
    pub async fn lock_waiters(&self) -> i64 {
        let mut waiting = 0;
        for _ in 0..600 {
            waiting = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&self.owner)
            .await
            .expect("lock waits");
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        waiting
    }
}

/// A TCP proxy between the app and PostgreSQL. `down()` drops every open connection and refuses new
/// ones, which is what the app sees when PostgreSQL stops; `up()` lets connections through again.
pub struct DbProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    /// Writes the app made to PostgreSQL through the proxy (every statement, `BEGIN` and `COMMIT`
    /// included, is at least one: what the app asks of the database, observed on the wire).
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl DbProxy {
    pub async fn start(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (up.clone(), cut.clone());
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sent2 = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut_rx = cut2.subscribe();
                let sent = sent2.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut from_app, mut to_app) = client.split();
                    let (mut from_db, mut to_db) = server.split();
                    let up = async {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match from_app.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    sent.fetch_add(1, Ordering::SeqCst);
                                    if to_db.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = tokio::io::copy(&mut from_db, &mut to_app) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            cut,
            sent,
        }
    }

    /// How many writes the app has made to PostgreSQL through this proxy so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Runs the `yoyaku` binary against the test app's database, quietly.
pub async fn yoyaku_cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let db: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&app.owner)
        .await
        .expect("database name");
    let url = format!("{}/{db}", pg_base());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_yoyaku"))
            .args(&args)
            .env_remove("RUST_LOG")
            .env("YOYAKU_LOG__LEVEL", "warn")
            .env("YOYAKU_DATABASE__URL", url)
            .env("YOYAKU_DEMO__SEED", "false")
            .output()
            .expect("run yoyaku")
    })
    .await
    .expect("join")
}

/// A new tenant's registry entry: Japanese, in the default time zone.
pub fn new_tenant(slug: &str, name: &str, code: &str) -> tenants::NewTenant {
    tenants::NewTenant {
        slug: tenants::Slug::parse(slug).expect("slug"),
        name: tenants::TenantName::parse(name).expect("name"),
        code: tenants::LocalGovernmentCode::parse(code).expect("code"),
        time_zone: tenants::TimeZone::default(),
        default_locale: tenants::Locale::default(),
        locales: vec![tenants::Locale::default()],
    }
}

/// A tenant with nothing in it, for tests that arrange their own data.
pub async fn empty_tenant(pool: &PgPool, slug: &str, name: &str, code: &str) -> tenants::TenantId {
    tenants::create_tenant(pool, &new_tenant(slug, name, code))
        .await
        .expect("tenant")
        .id
}

/// A tenant with nothing in it (local-government code 141003), for tests that arrange their own data.
pub async fn bare_tenant(pool: &PgPool, slug: &str, name: &str) -> tenants::TenantId {
    empty_tenant(pool, slug, name, "141003").await
}

/// Sets the tenant's monthly SMS budget (in segments) inside its scoped transaction `tx`. Arranged
/// directly: the one setter (`channels::set_sms_budget`) is for staff and audits.
pub async fn arrange_sms_budget(tx: &mut PgConnection, segments: i64) {
    sqlx::query(
        "INSERT INTO notification_settings (tenant_id, sms_monthly_budget) \
         SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid, $1",
    )
    .bind(segments)
    .execute(&mut *tx)
    .await
    .expect("budget");
}

/// A response's status and body text.
pub async fn body(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// A dose-1 booking of `slot` for `resident`, alone, with a fresh idempotency key.
pub fn book_request(resident: uuid::Uuid, slot: uuid::Uuid) -> platform::booking::BookRequest {
    platform::booking::BookRequest {
        resident_id: resident,
        slot_id: slot,
        dose: platform::booking::Dose::First,
        companions: vec![],
        second_dose_slot: None,
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    }
}

/// A wall-clock time in Japan (Asia/Tokyo) as UTC, for pinning test times to fixed points.
pub fn jst(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone as _;
    chrono_tz::Asia::Tokyo
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("valid JST time")
        .with_timezone(&chrono::Utc)
}

/// An HTTP client for the test's own side that carries its TLS configuration with it, so the test
/// process installs nothing process-wide (it only talks plain HTTP to the server anyway).
pub fn http_client() -> reqwest::Client {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}
