//! Integrator API keys: created by a city admin with scopes, shown once, stored as a SHA-256 hash,
//! revocable, with an expiry chosen at creation, rotation (a new secret for the same key), its own
//! request budget ([`KeyLimits`]) and its last use recorded (at most once a minute). A key reads `yk_<tenant id>_<secret>`: the tenant part lets the
//! lookup run inside that tenant's scope (RLS) like every other tenant-owned read. Scopes become
//! personal casbin rules of the key's subject, so keys go through the same guard as staff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgPool, Row};
use tenants::{TenantId, TenantStatus};
use uuid::Uuid;

use crate::staff::audit;
use crate::staff::authz::{Actor, Authz, AuthzError, Denied, Scope};
use crate::staff::identity::{random_token, token_hash};

/// The scopes a key can have, and the (object, action) rules each one stands for.
/// One scope per area and access (`area:read` / `area:write`); docs/api.md lists what each opens.
pub const SCOPES: [(&str, &[(&str, &str)]); 16] = [
    ("vaccines:read", &[("vaccines", "read")]),
    ("venues:read", &[("venues", "read"), ("venue/*", "read")]),
    ("residents:read", &[("residents", "read")]),
    ("audit:read", &[("audit", "read")]),
    ("statistics:read", &[("statistics", "read")]),
    // the intake list is always checked together with its venue (intake::enter)
    ("intake:read", &[("intake", "read"), ("venue/*", "read")]),
    // recording at intake (check-in, vaccination, …) at every venue of the city; the venue is
    // checked for reading (intake::enter), so this scope does not open the venues' configuration
    (
        "intake:write",
        &[("intake", "read"), ("intake", "write"), ("venue/*", "read")],
    ),
    ("records:read", &[("records", "read")]),
    ("exports:read", &[("exports", "read")]),
    (
        "exports:write",
        &[("exports", "read"), ("exports", "write")],
    ),
    ("imports:write", &[("imports", "write")]),
    ("bookings:read", &[("bookings", "read")]),
    ("bookings:write", &[("bookings", "write")]),
    ("webhooks:read", &[("webhooks", "read")]),
    (
        "webhooks:write",
        &[("webhooks", "read"), ("webhooks", "write")],
    ),
    (
        "config:write",
        &[
            ("vaccines", "write"),
            ("venues", "write"),
            ("venue/*", "write"),
        ],
    ),
];

/// The lifetimes a key can be given at creation, in days (`None` = never expires).
pub const EXPIRY_CHOICES: [Option<u32>; 4] = [Some(30), Some(90), Some(365), None];

/// The budget of a key without its own (`auth.api_key_requests_per_minute` overrides it).
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 600;
/// The largest budget a key can be given.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 60_000;
/// `last_used_at` is written at most this often per key (a read per request, a write per minute).
pub const LAST_USED_RESOLUTION_SECS: i64 = 60;

pub fn subject(id: Uuid) -> String {
    format!("apikey:{id}")
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Authz(#[from] AuthzError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the current secret was issued by a rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// The key's own budget; `None`: the deployment's default ([`KeyLimits::default_per_minute`]).
    pub requests_per_minute: Option<u32>,
}

impl ApiKey {
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// What a new key is made with.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<String>,
    /// Lifetime in days, one of [`EXPIRY_CHOICES`]; `None` = never expires.
    pub expires_in_days: Option<u32>,
    /// Its own budget (1..=[`MAX_REQUESTS_PER_MINUTE`]); `None` = the deployment's default.
    pub requests_per_minute: Option<u32>,
}

/// Creates a key that never expires, with the default budget; see [`create_with`].
pub async fn create(
    scope: &mut Scope,
    authz: &Authz,
    name: &str,
    scopes: &[String],
) -> Result<(Uuid, String), ApiKeyError> {
    let new = NewKey {
        name: name.to_owned(),
        scopes: scopes.to_vec(),
        ..NewKey::default()
    };
    create_with(scope, authz, &new).await
}

fn new_secret(tenant: TenantId) -> String {
    format!("yk_{}_{}", tenant.0.simple(), random_token())
}

/// Creates a key; returns its id and the key itself (the only time it is visible).
pub async fn create_with(
    scope: &mut Scope,
    authz: &Authz,
    new: &NewKey,
) -> Result<(Uuid, String), ApiKeyError> {
    let scopes = &new.scopes;
    let name = new.name.trim();
    if !EXPIRY_CHOICES.contains(&new.expires_in_days) {
        return Err(ApiKeyError::Invalid(
            "choose an expiry of 30, 90 or 365 days, or never".into(),
        ));
    }
    if new
        .requests_per_minute
        .is_some_and(|r| r == 0 || r > MAX_REQUESTS_PER_MINUTE)
    {
        return Err(ApiKeyError::Invalid(format!(
            "the request budget is 1 to {MAX_REQUESTS_PER_MINUTE} requests per minute"
        )));
    }
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiKeyError::Invalid(
            "give the key a name (at most 100 characters)".into(),
        ));
    }
    if scopes.is_empty() {
        return Err(ApiKeyError::Invalid("choose at least one scope".into()));
    }
    let mut rules = Vec::new();
    for s in scopes {
        let Some((_, r)) = SCOPES.iter().find(|(n, _)| n == s) else {
            return Err(ApiKeyError::Invalid(format!("unknown scope {s:?}")));
        };
        rules.extend_from_slice(r);
    }
    let tenant = scope.tenant_id();
    let id = Uuid::now_v7();
    let key = new_secret(tenant);
    sqlx::query(
        "INSERT INTO api_keys (tenant_id, id, name, key_hash, scopes, created_by, expires_at, requests_per_minute) \
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7), $8)",
    )
    .bind(tenant.0)
    .bind(id)
    .bind(name)
    .bind(token_hash(&key))
    .bind(scopes)
    .bind(&scope.actor.label)
    .bind(new.expires_in_days.map(|d| d as i32))
    .bind(new.requests_per_minute.map(i64::from))
    .execute(&mut *scope.tx)
    .await?;
    for (object, act) in rules {
        authz.grant_rule(&subject(id), tenant, object, act).await?;
    }
    audit::record(
        scope,
        "api_key.create",
        &format!("api_key/{id}"),
        json!({
            "name": name,
            "scopes": scopes,
            "expires_in_days": new.expires_in_days,
            "requests_per_minute": new.requests_per_minute,
        }),
    )
    .await?;
    Ok((id, key))
}

/// Gives a live key a new secret and returns it (shown once). The key keeps its id, name, scopes and
/// budget; the old secret stops working at once (no overlap: an integrator who needs one creates a
/// second key, switches, then revokes the first). A key with an expiry gets the same lifetime again,
/// counted from now. Audited.
pub async fn rotate(scope: &mut Scope, id: Uuid) -> Result<String, ApiKeyError> {
    let key = new_secret(scope.tenant_id());
    let row = sqlx::query(
        "UPDATE api_keys SET key_hash = $2, rotated_at = now(), \
             expires_at = now() + (expires_at - COALESCE(rotated_at, created_at)) \
         WHERE id = $1 AND revoked_at IS NULL RETURNING name, expires_at",
    )
    .bind(id)
    .bind(token_hash(&key))
    .fetch_optional(&mut *scope.tx)
    .await?
    .ok_or(ApiKeyError::NotFound)?;
    let name: String = row.try_get("name")?;
    let expires_at: Option<DateTime<Utc>> = row.try_get("expires_at")?;
    audit::record(
        scope,
        "api_key.rotate",
        &format!("api_key/{id}"),
        json!({ "name": name, "expires_at": expires_at }),
    )
    .await?;
    Ok(key)
}

pub async fn list(scope: &mut Scope) -> Result<Vec<ApiKey>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, scopes, created_by, created_at, last_used_at, revoked_at, expires_at, \
                rotated_at, requests_per_minute FROM api_keys ORDER BY created_at",
    )
    .fetch_all(&mut *scope.tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ApiKey {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                scopes: r.try_get("scopes")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
                expires_at: r.try_get("expires_at")?,
                rotated_at: r.try_get("rotated_at")?,
                requests_per_minute: r
                    .try_get::<Option<i64>, _>("requests_per_minute")?
                    .map(|n| n.clamp(1, i64::from(MAX_REQUESTS_PER_MINUTE)) as u32),
            })
        })
        .collect()
}

pub async fn revoke(scope: &mut Scope, authz: &Authz, id: Uuid) -> Result<(), ApiKeyError> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .execute(&mut *scope.tx)
            .await?;
    if done.rows_affected() == 0 {
        return Err(ApiKeyError::NotFound);
    }
    authz.forget_subject(&subject(id)).await?;
    audit::record(scope, "api_key.revoke", &format!("api_key/{id}"), json!({})).await?;
    Ok(())
}

/// A presented key that may call: who it is, for which city, with which budget.
#[derive(Debug, Clone)]
pub struct KeyHolder {
    pub id: Uuid,
    pub tenant: TenantId,
    pub actor: Actor,
    /// The key's own budget; `None`: the deployment's default.
    pub requests_per_minute: Option<u32>,
}

/// Why a presented key may not call.
#[derive(Debug)]
pub enum KeyRefused {
    /// Malformed, unknown, rotated away or revoked (one answer: no oracle).
    Unknown,
    /// A real key past its expiry.
    Expired(DateTime<Utc>),
    /// The guard's refusal (a suspended city) or a database error.
    Denied(Denied),
    /// The city's plan caps API calls and this month's are used up (not counted, not served):
    /// docs/billing.md, "Hard caps".
    PlanLimit(crate::caps::CapReached),
    /// The key has used its budget of requests per minute ([`KeyLimits`]): try again after
    /// `wait`. Not counted, not served.
    OverBudget { wait: Duration, per_minute: u32 },
}

impl From<Denied> for KeyRefused {
    fn from(d: Denied) -> Self {
        Self::Denied(d)
    }
}

impl From<sqlx::Error> for KeyRefused {
    fn from(e: sqlx::Error) -> Self {
        Self::Denied(Denied::Database(e))
    }
}

/// The key holder behind a presented key. A read per request; `last_used_at` is written only when
/// it is older than [`LAST_USED_RESOLUTION_SECS`]. A valid key of a suspended city is refused here
/// already (`Denied::Suspended`, the guard's own status check), so it reaches no field at all; an
/// expired key is [`KeyRefused::Expired`].
///
/// With `limits`, the key's budget of requests per minute is taken before the request is metered
/// or counted against the plan's cap, so a request refused by the budget is neither billed nor
/// counted ([`KeyRefused::OverBudget`]).
pub async fn check(
    pool: &PgPool,
    authz: &Authz,
    key: &str,
    ip: Option<String>,
    limits: Option<&KeyLimits>,
) -> Result<KeyHolder, KeyRefused> {
    let Some(tenant) = key
        .strip_prefix("yk_")
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(t, _)| Uuid::try_parse(t).ok())
        .map(TenantId)
    else {
        return Err(KeyRefused::Unknown);
    };
    let mut tx = tenants::begin(pool, tenant).await?;
    // `capped`: whether any contract around today might cap API calls (the plan's price or an
    // override mentions it) — a cheap superset in the same read; only then is the exact rule asked
    // (`caps::take`), so a city without a cap pays nothing more per request.
    let row = sqlx::query(
        "SELECT id, name, expires_at, requests_per_minute, \
                (expires_at IS NOT NULL AND expires_at <= now()) AS expired, \
                (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2)) AS stale, \
                EXISTS (SELECT 1 FROM contracts c \
                         WHERE c.starts_on <= current_date + 1 \
                           AND (c.ends_on IS NULL OR c.ends_on >= current_date - 1) \
                           AND (c.overrides -> 'prices' -> 'api_call' ? 'hard_cap' \
                                OR EXISTS (SELECT 1 FROM plan_prices p WHERE p.plan_id = c.plan_id \
                                            AND p.kind = 'api_call' AND p.hard_cap))) AS capped \
         FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(token_hash(key))
    .bind(LAST_USED_RESOLUTION_SECS as f64)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(KeyRefused::Unknown);
    };
    let id: Uuid = row.try_get("id")?;
    let Some(city) = authz.tenant_cache().by_id(pool, tenant).await? else {
        return Err(KeyRefused::Unknown);
    };
    if city.status == TenantStatus::Suspended {
        return Err(KeyRefused::Denied(Denied::Suspended));
    }
    if row.try_get::<bool, _>("expired")? {
        let at: Option<DateTime<Utc>> = row.try_get("expires_at")?;
        return Err(KeyRefused::Expired(at.unwrap_or_else(Utc::now)));
    }
    let requests_per_minute = row
        .try_get::<Option<i64>, _>("requests_per_minute")?
        .map(|n| n.clamp(1, i64::from(MAX_REQUESTS_PER_MINUTE)) as u32);
    // the key's own budget first: a request it refuses is not metered and uses none of the cap
    if let Some(limits) = limits
        && let Err(wait) = limits.take_for(id, requests_per_minute)
    {
        return Err(KeyRefused::OverBudget {
            wait,
            per_minute: requests_per_minute.unwrap_or(limits.default_per_minute()),
        });
    }
    // the plan's hard cap on API calls: exactly the cap is served; the refusal is not counted
    // (its alert, if it is the first at 100 %, is kept)
    if row.try_get::<bool, _>("capped")?
        && let Err(reached) =
            crate::caps::take(&mut tx, &city, crate::caps::Use::ApiCall, Utc::now()).await?
    {
        tx.commit().await?;
        return Err(KeyRefused::PlanLimit(reached));
    }
    // One statement: the call's metering (`api_call`, one counter row per key and UTC hour,
    // `api:<key id>:<YYYY-MM-DDTHH>`, docs/billing.md) and, when it is stale, the key's time of use.
    // The counter row is written by every request of the key (they queue on it for the moment of
    // the update): exact, and kept through a crash.
    sqlx::query(
        "WITH u AS (UPDATE api_keys SET last_used_at = now() \
                    WHERE tenant_id = $1 AND id = $2 AND $3 RETURNING 1) \
         INSERT INTO usage_events (tenant_id, idempotency_key, kind, quantity, occurred_at) \
         VALUES ($1, 'api:' || $2::text || ':' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24'), \
                 'api_call', 1, now()) \
         ON CONFLICT (tenant_id, idempotency_key) DO UPDATE SET quantity = usage_events.quantity + 1",
    )
    .bind(tenant.0)
    .bind(id)
    .bind(row.try_get::<bool, _>("stale")?)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let name: String = row.try_get("name")?;
    Ok(KeyHolder {
        id,
        tenant,
        actor: Actor {
            subject: subject(id),
            label: format!("API key {name}"),
            ip,
        },
        requests_per_minute,
    })
}

/// Per-key request budgets: a token bucket per key holding up to a minute's budget and refilled
/// continuously (`requests_per_minute / 60` a second), so a key may burst its whole minute and then
/// goes on at its rate. Kept in this process's memory: with N server processes behind a load
/// balancer a key can make up to N times its budget (docs/api.md says so); nothing is written per
/// request. Entries are one per key that called (bounded by the keys that exist; idle full buckets
/// are dropped past [`KeyLimits::MAX_TRACKED`]). Cheap to clone (shared).
#[derive(Clone)]
pub struct KeyLimits {
    buckets: Arc<Mutex<HashMap<Uuid, Bucket>>>,
    default_per_minute: u32,
    /// Added to the clock: tests move time forward instead of sleeping ([`Self::advance`]).
    skew_ms: Arc<AtomicU64>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for KeyLimits {
    fn default() -> Self {
        Self::new(DEFAULT_REQUESTS_PER_MINUTE)
    }
}

impl KeyLimits {
    /// Past this many tracked keys, buckets that have filled up again are forgotten.
    pub const MAX_TRACKED: usize = 10_000;

    pub fn new(default_per_minute: u32) -> Self {
        Self {
            buckets: Arc::default(),
            default_per_minute: default_per_minute.clamp(1, MAX_REQUESTS_PER_MINUTE),
            skew_ms: Arc::default(),
        }
    }

    pub fn default_per_minute(&self) -> u32 {
        self.default_per_minute
    }

    /// Moves this limiter's clock forward (tests: "a minute later" without waiting a minute).
    pub fn advance(&self, by: Duration) {
        self.skew_ms
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }

    fn now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Takes one request from the key's budget, or says how long until one is available
    /// (whole seconds, at least one: the `Retry-After` of the 429).
    pub fn take(&self, key: &KeyHolder) -> Result<(), Duration> {
        self.take_for(key.id, key.requests_per_minute)
    }

    /// [`Self::take`] for the key `id` with its own budget (`None`: the default).
    pub fn take_for(&self, id: Uuid, requests_per_minute: Option<u32>) -> Result<(), Duration> {
        let per_minute = f64::from(requests_per_minute.unwrap_or(self.default_per_minute));
        let per_sec = per_minute / 60.0;
        let now = self.now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= Self::MAX_TRACKED && !buckets.contains_key(&id) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < per_minute
            });
        }
        let b = buckets.entry(id).or_insert(Bucket {
            tokens: per_minute,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(per_minute);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / per_sec).ceil().max(1.0);
            Err(Duration::from_secs(wait as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(per_minute: Option<u32>) -> KeyHolder {
        KeyHolder {
            id: Uuid::now_v7(),
            tenant: TenantId(Uuid::nil()),
            actor: Actor {
                subject: "apikey:test".into(),
                label: "test".into(),
                ip: None,
            },
            requests_per_minute: per_minute,
        }
    }

    #[test]
    fn a_key_bursts_its_minute_then_waits_then_recovers() {
        let limits = KeyLimits::new(600);
        let k = holder(Some(6));
        for _ in 0..6 {
            assert!(limits.take(&k).is_ok());
        }
        let wait = limits.take(&k).expect_err("over budget");
        assert!((9..=10).contains(&wait.as_secs()), "{wait:?}");
        limits.advance(wait);
        assert!(limits.take(&k).is_ok());
        assert!(limits.take(&k).is_err());
        limits.advance(Duration::from_secs(60));
        for _ in 0..6 {
            assert!(limits.take(&k).is_ok());
        }
        // another key has its own budget, the default one
        let other = holder(None);
        for _ in 0..600 {
            assert!(limits.take(&other).is_ok());
        }
        assert!(limits.take(&other).is_err());
    }
}
