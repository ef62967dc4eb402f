//! Typed settings, layered: built-in defaults (below, also the reference for every key), then an
//! optional TOML file (`--config FILE` or `YOYAKU_CONFIG`), then `YOYAKU_…` environment variables
//! with `__` between section and key (`YOYAKU_HTTP__PORT=9000`). Unknown keys are errors, so a typo
//! never silently falls back to a default. Secrets are `SecretString`: they print as `[REDACTED]`.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

/// The built-in defaults. Every key that exists is listed here; docs/configuration in the README
/// mirrors this table.
pub const DEFAULTS: &str = r#"
environment = "development"

[http]
host = "127.0.0.1"
port = 8080
public_url = ""
request_timeout_secs = 30
graphql_deadline_ms = 10000
body_limit_bytes = 2097152
trusted_proxies = []
forwarded_header = "x-forwarded-for"

[database]
url = "postgres://postgres@127.0.0.1:5432/yoyaku"
runtime_role = "yoyaku_app"
runtime_password = ""
max_connections = 20
connect_timeout_secs = 5

[log]
format = "auto"
level = "info,sqlx=warn"
served_lines_per_second = 200

[demo]
seed = true

[residents]
code_secret = ""
worker_busy_requests = 32
worker_max_defer_ms = 30000
[notifications]
encryption_key = ""
[auth]
argon2_memory_kib = 19456
argon2_iterations = 2
argon2_parallelism = 1
session_idle_minutes = 30
session_absolute_hours = 12
login_max_failures = 5
login_throttle_minutes = 15
invitation_valid_hours = 72
password_reset_valid_minutes = 60
policy_reload_secs = 10
api_key_requests_per_minute = 600
[metrics]
listen = ""
[exports]
ttl_hours = 24
scratch_dir = ""
[jobs]
in_serve = true
poll_ms = 250
idle_poll_ms = 1000
heartbeat_secs = 15
missed_heartbeats = 4
urgent_concurrency = 4
notify_concurrency = 4
exports_concurrency = 1
webhooks_concurrency = 4
billing_cron = "0 */5 * * * *"
[billing]
issuer_name = ""
issuer_registration_number = ""
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub environment: Environment,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub demo: DemoSettings,
    pub residents: ResidentSettings,
    pub notifications: NotificationSettings,
    pub auth: AuthSettings,
    pub exports: ExportSettings,
    pub metrics: MetricsSettings,
    pub jobs: JobSettings,
    pub billing: BillingSettings,
}

/// The admin listener (docs/operations.md, "Metrics").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `address:port` of the admin listener serving `/metrics` (e.g. `127.0.0.1:9090`); empty = none.
    pub listen: String,
}

impl MetricsSettings {
    pub fn listen_addr(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|_| {
            ConfigError(format!(
                "metrics.listen {:?} is not address:port, e.g. 127.0.0.1:9090",
                self.listen
            ))
        })
    }
}

/// The job runtime (docs/architecture.md, Jobs): the workers of `yoyaku worker`, and of
/// `yoyaku serve` unless `in_serve` is off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// `yoyaku serve` runs the workers too (off: this process serves only; run `yoyaku worker`).
    pub in_serve: bool,
    /// How often an idle login-code queue is looked at (a resident waits for each code).
    pub poll_ms: u64,
    /// How often the other idle queues (messages, exports, cron ticks) are looked at.
    pub idle_poll_ms: u64,
    /// How often a worker records in `apalis.workers` that it is alive.
    pub heartbeat_secs: u64,
    /// A worker silent for `heartbeat_secs × missed_heartbeats` is dead; its tasks are re-enqueued.
    pub missed_heartbeats: u32,
    /// Tasks worked at once per queue: login codes, other messages, exports, event webhooks.
    pub urgent_concurrency: usize,
    pub notify_concurrency: usize,
    pub exports_concurrency: usize,
    pub webhooks_concurrency: usize,
    /// When the monthly billing tick runs (cron, seconds first, UTC); once across processes.
    pub billing_cron: String,
}

/// The platform operator as the issuer of invoices (qualified-invoice rules, docs/billing.md):
/// both empty (invoices say "未設定") or both set, the number `T` + 13 digits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSettings {
    pub issuer_name: String,
    pub issuer_registration_number: String,
}

impl BillingSettings {
    /// The issuer to store at start-up, when configured.
    pub fn issuer(&self) -> Option<tenants::billing::Issuer> {
        (!self.issuer_name.trim().is_empty()).then(|| tenants::billing::Issuer {
            name: self.issuer_name.trim().to_owned(),
            registration_number: self.issuer_registration_number.trim().to_owned(),
        })
    }
}

impl JobSettings {
    pub fn runtime(&self) -> platform::jobs::Settings {
        platform::jobs::Settings {
            poll: Duration::from_millis(self.poll_ms.max(1)),
            idle_poll: Duration::from_millis(self.idle_poll_ms.max(1)),
            heartbeat: Duration::from_secs(self.heartbeat_secs.max(1)),
            missed_heartbeats: self.missed_heartbeats.max(1),
            urgent_concurrency: self.urgent_concurrency.max(1),
            notify_concurrency: self.notify_concurrency.max(1),
            exports_concurrency: self.exports_concurrency.max(1),
            webhooks_concurrency: self.webhooks_concurrency.max(1),
            billing_cron: self.billing_cron.clone(),
        }
    }
}

/// Export jobs (docs/exports.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSettings {
    /// A finished export can be downloaded for this many hours; then the worker deletes the file.
    pub ttl_hours: i64,
    /// Where files are written while being built (empty = the system's temporary directory).
    pub scratch_dir: String,
}

impl ExportSettings {
    pub fn worker(&self, pool: sqlx::PgPool) -> platform::exports::ExportWorker {
        let mut w =
            platform::exports::ExportWorker::new(pool, chrono::Duration::hours(self.ttl_hours));
        if !self.scratch_dir.is_empty() {
            w.scratch_dir = self.scratch_dir.clone().into();
        }
        w
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: IpAddr,
    pub port: u16,
    /// The address people reach the server at (for links in messages); empty = http://host:port.
    pub public_url: String,
    pub request_timeout_secs: u64,
    /// How long one GraphQL execution may run before it is stopped (`TIMEOUT`); below the request
    /// timeout.
    pub graphql_deadline_ms: u64,
    pub body_limit_bytes: usize,
    /// Reverse proxies whose forwarding header is believed (addresses or CIDR ranges); empty = none,
    /// the TCP peer is the client. A list, or in the environment a comma-separated string
    /// (`YOYAKU_HTTP__TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1`). See `crate::forwarded`.
    #[serde(deserialize_with = "list_or_commas")]
    pub trusted_proxies: Vec<String>,
    /// The header those proxies write: `x-forwarded-for` or `forwarded` (RFC 7239).
    pub forwarded_header: crate::forwarded::ForwardedHeader,
}

/// A list of strings, or one string of comma-separated items (what an environment variable holds).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(d)? {
        ListOrCommas::List(v) => v,
        ListOrCommas::Commas(s) => s
            .split(',')
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty())
            .collect(),
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// The owning role's URL: creates the database, runs migrations. May hold a password.
    pub url: SecretString,
    /// The role the server runs queries as: owns nothing, no BYPASSRLS. Created if missing.
    pub runtime_role: String,
    /// Password set on (and used for) the runtime role; empty = none (trust/peer auth).
    pub runtime_password: SecretString,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON in production, text elsewhere (the default).
    Auto,
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `yoyaku=debug,sqlx=warn`; `RUST_LOG` overrides it.
    pub level: String,
    /// Successful answers' "served" lines written per second at most (errors and answers slower
    /// than a second always are; the next line says how many went unlogged). 0: every line.
    pub served_lines_per_second: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSettings {
    /// Create the demo municipality on an empty database (never in production).
    pub seed: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidentSettings {
    /// Secret the SMS login codes are derived with; every process of a deployment needs the same
    /// one. Empty = a random secret per process (fine for one process and for development).
    pub code_secret: SecretString,
    /// While at least this many requests are in flight in this process, the worker it runs sends
    /// only login codes and lets other notifications wait (0 = never give way).
    pub worker_busy_requests: usize,
    /// …for at most this long at a time; then one full pass runs anyway.
    pub worker_max_defer_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// 32 bytes, base64: seals the cities' channel credentials at rest. Required in production;
    /// development falls back to a fixed, public key.
    pub encryption_key: SecretString,
}

impl NotificationSettings {
    pub fn sealing_key(&self, environment: Environment) -> Result<[u8; 32], ConfigError> {
        use base64::Engine;
        let raw = self.encryption_key.expose_secret().trim();
        if raw.is_empty() {
            if environment == Environment::Production {
                return Err(ConfigError(
                    "notifications.encryption_key is required in production: 32 random bytes in base64, e.g. `openssl rand -base64 32`".into(),
                ));
            }
            return Ok(*b"yoyaku-development-only-key-0000");
        }
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                ConfigError(
                    "notifications.encryption_key must be 32 bytes in base64 (44 characters), e.g. `openssl rand -base64 32`".into(),
                )
            })
    }
}

/// Staff identity: password hashing cost, session lifetimes, login throttling, link lifetimes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// argon2id memory cost in KiB (OWASP: 19456 with 2 iterations).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// A session ends after this long without a request…
    pub session_idle_minutes: i64,
    /// …and after this long in any case.
    pub session_absolute_hours: i64,
    /// Failed logins per account within the window before logins are refused (per IP: ten times).
    pub login_max_failures: i64,
    pub login_throttle_minutes: i64,
    pub invitation_valid_hours: i64,
    pub password_reset_valid_minutes: i64,
    /// How often each process re-reads the authorization rules (changes made by other processes).
    pub policy_reload_secs: u64,
    /// The request budget of an API key without its own (per key, per process; docs/api.md).
    pub api_key_requests_per_minute: u32,
}

impl AuthSettings {
    pub fn policy(&self) -> platform::staff::identity::AuthPolicy {
        platform::staff::identity::AuthPolicy {
            argon2_memory_kib: self.argon2_memory_kib,
            argon2_iterations: self.argon2_iterations,
            argon2_parallelism: self.argon2_parallelism,
            session_idle: chrono::Duration::minutes(self.session_idle_minutes),
            session_absolute: chrono::Duration::hours(self.session_absolute_hours),
            max_login_failures: self.login_max_failures,
            throttle_window: chrono::Duration::minutes(self.login_throttle_minutes),
            invitation_valid: chrono::Duration::hours(self.invitation_valid_hours),
            reset_valid: chrono::Duration::minutes(self.password_reset_valid_minutes),
        }
    }
}

/// A configuration problem, worded for the person who has to fix it. Never contains a secret.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub(crate) String);

impl Settings {
    /// Defaults, then `file` (if given), then the environment; then validated.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed("YOYAKU_").split("__").ignore(&["config"]));
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Defaults only, plus the environment — what tests start from.
    pub fn defaults() -> Result<Self, ConfigError> {
        let settings: Settings = Figment::from(Toml::string(DEFAULTS))
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The checks `load` and `defaults` make; [`crate::App::build`] makes them again, so settings
    /// changed in code after loading (the tests, the bench) pass the same checks as the binary's.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.owner_options()?;
        self.notifications.sealing_key(self.environment)?;
        let b = &self.billing;
        if (b.issuer_name.trim().is_empty() != b.issuer_registration_number.trim().is_empty())
            || b.issuer().is_some_and(|i| {
                !tenants::billing::valid_registration_number(&i.registration_number)
                    || i.name.chars().count() > 200
            })
        {
            return Err(ConfigError(format!(
                "billing.issuer_name and billing.issuer_registration_number go together, the number \
                 being T + 13 digits with a valid check digit (got {:?})",
                b.issuer_registration_number
            )));
        }
        let role = &self.database.runtime_role;
        let role_ok = !role.is_empty()
            && role.len() <= 63
            && role.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && role
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !role_ok {
            return Err(ConfigError(format!(
                "database.runtime_role {role:?} must be a lowercase SQL identifier (a-z, 0-9, _)"
            )));
        }
        if self.database.owner_options()?.get_username() == role {
            return Err(ConfigError(
                "database.runtime_role must differ from the user in database.url: the server must not run as the owner of the tables"
                    .into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections must be at least 1".into(),
            ));
        }
        if argon2::Params::new(
            self.auth.argon2_memory_kib,
            self.auth.argon2_iterations,
            self.auth.argon2_parallelism,
            None,
        )
        .is_err()
        {
            return Err(ConfigError(
                "auth.argon2_memory_kib / argon2_iterations / argon2_parallelism are not valid argon2 parameters (memory must be at least 8 × parallelism KiB, iterations at least 1)".into(),
            ));
        }
        let lifetimes = [
            self.auth.session_idle_minutes,
            self.auth.session_absolute_hours,
            self.auth.login_max_failures,
            self.auth.login_throttle_minutes,
            self.auth.invitation_valid_hours,
            self.auth.password_reset_valid_minutes,
        ];
        if lifetimes.iter().any(|v| *v < 1)
            || self.auth.policy_reload_secs == 0
            || !(1..=platform::staff::api_keys::MAX_REQUESTS_PER_MINUTE)
                .contains(&self.auth.api_key_requests_per_minute)
        {
            return Err(ConfigError(
                "auth.* lifetimes and limits must be at least 1".into(),
            ));
        }
        if self.exports.ttl_hours < 1 {
            return Err(ConfigError("exports.ttl_hours must be at least 1".into()));
        }
        if self.jobs.poll_ms == 0 || self.jobs.idle_poll_ms == 0 || self.jobs.heartbeat_secs == 0 {
            return Err(ConfigError(
                "jobs.poll_ms, jobs.idle_poll_ms and jobs.heartbeat_secs must be at least 1".into(),
            ));
        }
        self.metrics.listen_addr()?;
        if let Err(e) = platform::jobs::cron::CronJob::parse(
            platform::jobs::cron::BILLING,
            &self.jobs.billing_cron,
        ) {
            return Err(ConfigError(format!("jobs.billing_cron: {e}")));
        }
        if self.http.request_timeout_secs == 0 {
            return Err(ConfigError(
                "http.request_timeout_secs must be at least 1".into(),
            ));
        }
        if self.http.graphql_deadline_ms < 100
            || self.http.graphql_deadline_ms >= self.http.request_timeout_secs * 1000
        {
            return Err(ConfigError(format!(
                "http.graphql_deadline_ms must be at least 100 and below http.request_timeout_secs \
                 ({} ms); it is {}",
                self.http.request_timeout_secs * 1000,
                self.http.graphql_deadline_ms
            )));
        }
        if !self.http.public_url.is_empty() {
            let parsed = url::Url::parse(&self.http.public_url).map_err(|e| {
                ConfigError(format!(
                    "http.public_url is not a URL ({e}); e.g. https://yoyaku.example.jp"
                ))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError(
                    "http.public_url must start with http:// or https://".into(),
                ));
            }
        }
        self.forwarding()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            ConfigError(format!(
                "log.level {:?} is not a tracing filter: {e}",
                self.log.level
            ))
        })?;
        Ok(())
    }

    pub fn public_url(&self) -> String {
        if self.http.public_url.is_empty() {
            format!("http://{}:{}", self.http.host, self.http.port)
        } else {
            self.http.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// Whether cookies carry `Secure`: the public URL is https. Every cookie the server sets (staff,
    /// resident, language, CSRF) gets it from one layer in `src/http.rs`.
    pub fn secure_cookies(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    /// The trusted proxies (`http.trusted_proxies`, `http.forwarded_header`).
    pub fn forwarding(&self) -> Result<crate::forwarded::Forwarding, ConfigError> {
        crate::forwarded::Forwarding::new(&self.http.trusted_proxies, self.http.forwarded_header)
            .map_err(ConfigError)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.http.request_timeout_secs)
    }

    pub fn graphql_deadline(&self) -> Duration {
        Duration::from_millis(self.http.graphql_deadline_ms)
    }
}

impl DatabaseSettings {
    /// Connection options of the owning role. The error never repeats the URL (it may hold a password).
    pub fn owner_options(&self) -> Result<PgConnectOptions, ConfigError> {
        let raw = self.url.expose_secret();
        let parsed = url::Url::parse(raw).map_err(|e| {
            ConfigError(format!(
                "database.url is not a valid URL ({e}); expected postgres://user[:password]@host[:port]/database"
            ))
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(ConfigError(format!(
                "database.url must start with postgres:// (found scheme {:?})",
                parsed.scheme()
            )));
        }
        if parsed.host_str().unwrap_or_default().is_empty() {
            return Err(ConfigError("database.url names no host".into()));
        }
        let database = parsed.path().trim_start_matches('/');
        let db_ok = !database.is_empty()
            && database.len() <= 63
            && database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !db_ok {
            return Err(ConfigError(
                "database.url must name a database (letters, digits, _ or -), e.g. …/yoyaku".into(),
            ));
        }
        PgConnectOptions::from_str(raw).map_err(|_| {
            ConfigError("database.url could not be read as PostgreSQL connection options".into())
        })
    }

    /// Connection options of the runtime role: the owner's address, database and parameters (sslmode
    /// …), another user, and the runtime role's own password (or none) instead of the owner's.
    pub fn runtime_options(&self) -> Result<PgConnectOptions, ConfigError> {
        self.owner_options()?;
        let mut url = url::Url::parse(self.url.expose_secret())
            .map_err(|_| ConfigError("database.url is not a valid URL".into()))?;
        let password = self.runtime_password.expose_secret();
        let rewritten = url.set_username(&self.runtime_role).is_ok()
            && url
                .set_password((!password.is_empty()).then_some(password))
                .is_ok();
        if !rewritten {
            return Err(ConfigError(
                "database.url cannot carry a user name (is the host missing?)".into(),
            ));
        }
        PgConnectOptions::from_str(url.as_str()).map_err(|_| {
            ConfigError("database.url could not be read as PostgreSQL connection options".into())
        })
    }

    /// `user@host:port/database`, safe to print.
    pub fn display_target(&self) -> String {
        match self.owner_options() {
            Ok(o) => format!(
                "{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
            Err(_) => "(invalid database.url)".into(),
        }
    }
}

/// figment's messages name the key and where it came from; serde's "unknown field" is reworded so a
/// person sees the key they wrote and the keys they could have meant.
fn describe_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|err| {
            let key = err.path.join(".");
            let source = err
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(s) => format!("{} ({s})", m.name),
                    None => m.name.to_string(),
                })
                .unwrap_or_default();
            let what = match &err.kind {
                figment::error::Kind::UnknownField(_, expected) => {
                    format!(
                        "unknown key {key:?}; expected one of: {}",
                        expected.join(", ")
                    )
                }
                kind => format!("key {key:?}: {kind}"),
            };
            if source.is_empty() {
                what
            } else {
                format!("{what} — from {source}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_point_at_local_postgres() {
        let s = Settings::defaults().expect("defaults");
        assert_eq!(s.http.port, 8080);
        assert_eq!(
            s.database.display_target(),
            "postgres@127.0.0.1:5432/yoyaku"
        );
        assert_eq!(s.environment, Environment::Development);
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let mut s = Settings::defaults().expect("defaults");
        s.database.url = SecretString::from("postgres://postgres:hunter2@db/yoyaku");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.database.display_target(), "postgres@db:5432/yoyaku");
    }

    #[test]
    fn a_bad_database_url_is_named_without_echoing_it() {
        let mut s = Settings::defaults().expect("defaults");
        for bad in [
            "mysql://u:hunter2@h/db",
            "postgres://u:hunter2@h/",
            "not a url hunter2",
        ] {
            s.database.url = SecretString::from(bad);
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains("database.url"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn the_sealing_key_is_required_in_production_and_must_be_32_bytes() {
        let mut s = Settings::defaults().expect("defaults");
        assert!(
            s.notifications
                .sealing_key(Environment::Development)
                .is_ok()
        );
        s.environment = Environment::Production;
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("notifications.encryption_key is required"),
            "{err}"
        );
        s.notifications.encryption_key = SecretString::from("c2hvcnQ=");
        assert!(s.validate().unwrap_err().to_string().contains("32 bytes"));
        s.notifications.encryption_key =
            SecretString::from("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        assert_eq!(
            s.notifications
                .sealing_key(Environment::Production)
                .unwrap()[31],
            31
        );
    }

    #[test]
    fn the_runtime_role_must_be_an_identifier_and_not_the_owner() {
        let mut s = Settings::defaults().expect("defaults");
        s.database.runtime_role = "app; drop table x".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("runtime_role")
        );
        s.database.runtime_role = "postgres".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("must differ")
        );
    }

    #[test]
    fn trusted_proxies_come_as_a_list_or_as_an_environment_string() {
        // what `Env` does with a variable's text: parse it as a figment value
        for raw in [
            "10.0.0.0/8,127.0.0.1",
            "10.0.0.0/8, 127.0.0.1",
            r#"["10.0.0.0/8", "127.0.0.1"]"#,
        ] {
            let value: figment::value::Value = raw.parse().expect("a value");
            let s: Settings = Figment::from(Toml::string(DEFAULTS))
                .merge(("http.trusted_proxies", value))
                .extract()
                .expect(raw);
            assert_eq!(s.http.trusted_proxies, ["10.0.0.0/8", "127.0.0.1"], "{raw}");
            s.validate().expect(raw);
        }
        let mut s = Settings::defaults().expect("defaults");
        assert!(s.http.trusted_proxies.is_empty());
        s.http.trusted_proxies = vec!["proxy.internal".into()];
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("http.trusted_proxies") && err.contains("proxy.internal"),
            "{err}"
        );
    }

    #[test]
    fn runtime_options_keep_host_and_database_but_not_the_owner_password() {
        let mut s = Settings::defaults().expect("defaults");
        s.database.url = SecretString::from("postgres://owner:hunter2@db.internal:6543/city");
        let o = s.database.runtime_options().expect("options");
        assert_eq!(o.get_username(), "yoyaku_app");
        assert_eq!(o.get_host(), "db.internal");
        assert_eq!(o.get_port(), 6543);
        assert_eq!(o.get_database(), Some("city"));
        assert!(!format!("{o:?}").contains("hunter2"));
    }
}
