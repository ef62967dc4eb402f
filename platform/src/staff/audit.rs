//! The audit trail: who did what, when, from where. Append-only (the runtime role may not UPDATE or
//! DELETE it). Tenant events go to `audit_log` inside the same transaction as the change they
//! describe, so a change and its record commit together; platform-wide events (operator logins,
//! onboarding) go to `platform_audit_log`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::staff::authz::{Actor, Scope};

/// Records an event in the scope's tenant, in the scope's transaction.
pub(crate) async fn record(
    scope: &mut Scope,
    action: &str,
    object: &str,
    detail: Value,
) -> Result<(), sqlx::Error> {
    let tenant = scope.tenant_id().0;
    let actor = scope.actor.label.clone();
    let ip = scope.actor.ip.clone();
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, actor, action, object, detail, ip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(actor)
    .bind(action)
    .bind(object)
    .bind(detail)
    .bind(ip)
    .execute(&mut *scope.tx)
    .await?;
    Ok(())
}

/// Records a platform-wide event.
pub(crate) async fn record_platform(
    pool: &PgPool,
    actor: &Actor,
    action: &str,
    object: &str,
    detail: Value,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    record_platform_in(&mut conn, actor, action, object, detail).await
}

/// Records a platform-wide event on `conn` (inside the transaction of the change it records).
pub(crate) async fn record_platform_in(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    object: &str,
    detail: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO platform_audit_log (id, actor, action, object, detail, ip) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(&actor.label)
    .bind(action)
    .bind(object)
    .bind(detail)
    .bind(&actor.ip)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub detail: Value,
    pub ip: Option<String>,
}

impl AuditEntry {
    /// The entry's place in the newest-first order of [`page`]: pass it back as `after` to
    /// continue behind it.
    pub fn position(&self) -> AuditPosition {
        AuditPosition {
            at: self.at,
            id: self.id,
        }
    }
}

/// A place in the audit log's newest-first order: `(at, id)`, both never changed (the log is
/// append-only), so the order is stable while entries are appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPosition {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

const ENTRY_COLUMNS: &str = "id, at, actor, action, object, detail, ip";

fn entry_from_row(r: &sqlx::postgres::PgRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        object: r.try_get("object")?,
        detail: r.try_get("detail")?,
        ip: r.try_get("ip")?,
    })
}

/// The newest `limit` entries of the scope's tenant (the guard decided who may read them).
pub async fn recent(scope: &mut Scope, limit: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE tenant_id = $1 ORDER BY at DESC, id DESC LIMIT $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(limit)
        .fetch_all(&mut *scope.tx)
        .await?;
    rows.iter().map(entry_from_row).collect()
}

/// One page of the scope's tenant's log, newest first by `(at, id)`: the entries after `after`
/// (all from the newest when `None`), at most `first + 1` of them — one more than asked for tells
/// the caller whether another page follows. Keyset paging on values that never change: paging
/// to the end sees every entry that existed when paging began exactly once, however many are
/// appended meanwhile (those land before the first page, or — an entry whose transaction began
/// before paging did — wherever its `at` puts it).
pub async fn page(
    scope: &mut Scope,
    after: Option<AuditPosition>,
    first: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let Some(after) = after else {
        return recent(scope, first + 1).await;
    };
    // `at <= $2` lets the (tenant_id, at DESC) index bound the scan; the row comparison decides
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE tenant_id = $1 \
         AND at <= $2 AND (at, id) < ($2, $3) ORDER BY at DESC, id DESC LIMIT $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(after.at)
        .bind(after.id)
        .bind(first + 1)
        .fetch_all(&mut *scope.tx)
        .await?;
    rows.iter().map(entry_from_row).collect()
}

/// A staff login: in the platform log, and in the log of every tenant the person works for (the
/// city's auditors see who logged in to their data).
pub(crate) async fn record_login(
    pool: &PgPool,
    actor: &Actor,
    tenants: &[tenants::TenantId],
) -> Result<(), sqlx::Error> {
    record_platform(pool, actor, "staff.login", "", serde_json::json!({})).await?;
    for tenant in tenants {
        let mut tx = tenants::begin(pool, *tenant).await?;
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, id, actor, action, object, detail, ip) \
             VALUES ($1, $2, $3, 'staff.login', '', '{}', $4)",
        )
        .bind(tenant.0)
        .bind(Uuid::now_v7())
        .bind(&actor.label)
        .bind(&actor.ip)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
