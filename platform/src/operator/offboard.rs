//! Offboarding: deleting every row of one city, after a confirmation and a retention check.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::archive::{Moved, detail};
use super::catalog::tenant_tables;
use super::{OperatorError, enter_tenant};
use crate::staff::audit;
use crate::staff::authz::Actor;

/// Why the city `slug` may not be deleted at `now` (empty: it may). Read in `conn`'s transaction.
async fn retention_reasons(
    conn: &mut sqlx::PgConnection,
    tenant: Uuid,
    status: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    let mut reasons = Vec::new();
    if status == "active" {
        reasons.push(
            "it is active: suspend it first (admin UI, Municipalities), so that nobody books or \
             signs in while it is removed"
                .to_owned(),
        );
    }
    let (live, last): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT count(*), max(s.starts_at) FROM bookings b \
           JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
          WHERE b.tenant_id = $1 AND b.status = 'booked' AND s.starts_at > $2",
    )
    .bind(tenant)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    if let Some(last) = last.filter(|_| live > 0) {
        reasons.push(format!(
            "it has {live} live booking(s) on slots that have not started yet (the last at {}): \
             cancel them, or wait until then",
            last.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    Ok(reasons)
}

/// Deletes every row of the city `slug` — its tenant tables (children first), its authorization
/// rules and its registry entry — in one transaction of the owning role, and records
/// `tenant.delete` in the platform audit log in the same transaction. Refused unless `confirm`
/// repeats the slug and the retention check passes at `now`.
pub async fn delete(
    owner: &PgPool,
    slug: &str,
    confirm: &str,
    now: DateTime<Utc>,
    actor: &Actor,
) -> Result<Moved, OperatorError> {
    if confirm != slug {
        return Err(OperatorError::NotConfirmed(slug.to_owned()));
    }
    let mut tx = owner.begin().await?;
    // the row lock keeps a concurrent reactivation out until we are done
    let (tenant_id, status): (Uuid, String) =
        sqlx::query_as("SELECT id, status FROM tenants WHERE slug = $1 FOR UPDATE")
            .bind(slug)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| OperatorError::UnknownSlug(slug.to_owned()))?;
    enter_tenant(&mut tx, tenant_id).await?;
    let reasons = retention_reasons(&mut tx, tenant_id, &status, now).await?;
    if !reasons.is_empty() {
        return Err(OperatorError::Retained {
            slug: slug.to_owned(),
            reasons,
        });
    }
    let mut rows = Vec::new();
    for table in tenant_tables(&mut tx).await?.into_iter().rev() {
        let sql = format!("DELETE FROM {} WHERE tenant_id = $1", table.quoted);
        let n = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| OperatorError::Table {
                table: table.name.clone(),
                reason: format!("{e}; nothing was deleted"),
            })?
            .rows_affected();
        rows.push((table.name, n));
    }
    let rules = sqlx::query(
        "DELETE FROM authz_rules WHERE (ptype LIKE 'g%' AND v2 = $1) OR (ptype LIKE 'p%' AND v1 = $1)",
    )
    .bind(tenant_id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    rows.push(("authz_rules".to_owned(), rules));
    sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    rows.push(("tenants".to_owned(), 1));
    let moved = Moved {
        slug: slug.to_owned(),
        tenant_id,
        rows,
    };
    audit::record_platform_in(&mut tx, actor, "tenant.delete", slug, detail(&moved)).await?;
    // every server process forgets the city (its record, availability and sessions) on commit
    crate::changes::announce(
        &mut tx,
        &crate::changes::Change::Tenant(tenants::TenantId(tenant_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(moved)
}
