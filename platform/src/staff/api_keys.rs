//! Integrator API keys: created by a city admin with scopes, shown once, stored as a SHA-256 hash,
//! revocable, last use recorded. A key reads `yk_<tenant id>_<secret>`: the tenant part lets the
//! lookup run inside that tenant's scope (RLS) like every other tenant-owned read. Scopes become
//! personal casbin rules of the key's subject, so keys go through the same guard as staff.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgPool, Row};
use tenants::{TenantId, TenantStatus};
use uuid::Uuid;

use crate::staff::audit;
use crate::staff::authz::{Actor, Authz, AuthzError, Denied, Scope};
use crate::staff::identity::{random_token, token_hash};

/// The scopes a key can have, and the (object, action) rules each one stands for.
pub const SCOPES: [(&str, &[(&str, &str)]); 9] = [
    ("vaccines:read", &[("vaccines", "read")]),
    ("venues:read", &[("venues", "read"), ("venue/*", "read")]),
    ("residents:read", &[("residents", "read")]),
    ("audit:read", &[("audit", "read")]),
    ("statistics:read", &[("statistics", "read")]),
    ("imports:write", &[("imports", "write")]),
    ("bookings:read", &[("bookings", "read")]),
    ("bookings:write", &[("bookings", "write")]),
    (
        "config:write",
        &[
            ("vaccines", "write"),
            ("venues", "write"),
            ("venue/*", "write"),
        ],
    ),
];

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
}

/// Creates a key; returns its id and the key itself (the only time it is visible).
pub async fn create(
    scope: &mut Scope,
    authz: &Authz,
    name: &str,
    scopes: &[String],
) -> Result<(Uuid, String), ApiKeyError> {
    let name = name.trim();
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
    let key = format!("yk_{}_{}", tenant.0.simple(), random_token());
    sqlx::query(
        "INSERT INTO api_keys (tenant_id, id, name, key_hash, scopes, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.0)
    .bind(id)
    .bind(name)
    .bind(token_hash(&key))
    .bind(scopes)
    .bind(&scope.actor.label)
    .execute(&mut *scope.tx)
    .await?;
    for (object, act) in rules {
        authz.grant_rule(&subject(id), tenant, object, act).await?;
    }
    audit::record(
        scope,
        "api_key.create",
        &format!("api_key/{id}"),
        json!({ "name": name, "scopes": scopes }),
    )
    .await?;
    Ok((id, key))
}

pub async fn list(scope: &mut Scope) -> Result<Vec<ApiKey>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, scopes, created_by, created_at, last_used_at, revoked_at FROM api_keys ORDER BY created_at",
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

/// The actor and tenant behind a presented key, or None (unknown, malformed or revoked).
/// Records the time of use. A valid key of a suspended city is refused here already
/// (`Denied::Suspended`, the guard's own status check), so it reaches no field at all.
pub async fn authenticate(
    pool: &PgPool,
    authz: &Authz,
    key: &str,
    ip: Option<String>,
) -> Result<Option<(Actor, TenantId)>, Denied> {
    let Some(tenant) = key
        .strip_prefix("yk_")
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(t, _)| Uuid::try_parse(t).ok())
        .map(TenantId)
    else {
        return Ok(None);
    };
    let mut tx = tenants::begin(pool, tenant).await?;
    let row = sqlx::query(
        "UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1 AND revoked_at IS NULL RETURNING id, name",
    )
    .bind(token_hash(key))
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    if row.is_some() && authz.tenant_status(tenant).await? == Some(TenantStatus::Suspended) {
        return Err(Denied::Suspended);
    }
    Ok(match row {
        Some(r) => {
            let id: Uuid = r.try_get("id")?;
            let name: String = r.try_get("name")?;
            Some((
                Actor {
                    subject: subject(id),
                    label: format!("API key {name}"),
                    ip,
                },
                tenant,
            ))
        }
        None => None,
    })
}
