//! The city's audit log as staff and integrators read it: `city { auditEntries(first, after) }`,
//! a Relay-style connection over the platform's keyset page (`platform::staff::audit::page`),
//! newest first; and the deprecated `city { auditLog(limit) }` list. Guard object `audit` (API key
//! scope `audit:read`).

use async_graphql::{Context, Result, SimpleObject};
use platform::staff::audit::{self, AuditPosition};
use platform::staff::authz::{Act, Object as Obj};
use tenants::TenantId;
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::city_bookings::PageInfo;
use crate::cursor;
use crate::scalars::DateTime;

/// One entry of the city's append-only audit log.
#[derive(SimpleObject)]
pub struct AuditEntry {
    /// The entry's id.
    id: Uuid,
    /// When it happened.
    at: DateTime,
    /// Who did it: a staff member, an API key (`API key <name>`), a resident or the system.
    actor: String,
    /// What was done, e.g. `vaccine.create`.
    action: String,
    /// What it was done to, e.g. `venue/<id>`.
    object: String,
    /// The client's IP address, when there was one.
    ip: Option<String>,
}

impl From<audit::AuditEntry> for AuditEntry {
    fn from(e: audit::AuditEntry) -> Self {
        Self {
            id: e.id,
            at: DateTime(e.at),
            actor: e.actor,
            action: e.action,
            object: e.object,
            ip: e.ip,
        }
    }
}

/// One audit entry of a page and the cursor to continue after it.
#[derive(SimpleObject)]
pub struct AuditEntryEdge {
    /// Opaque; pass it as `after` to continue after this entry.
    cursor: String,
    /// The entry.
    node: AuditEntry,
}

/// A page of the city's audit log, newest first (by time, then id: an order that never changes,
/// so paging to the end with `endCursor` sees every entry that existed when paging began exactly
/// once, however many are recorded meanwhile). No `totalCount`: the log only grows, and counting
/// it is not cheap.
#[derive(SimpleObject)]
pub struct AuditEntryConnection {
    /// The entries of this page, newest first.
    edges: Vec<AuditEntryEdge>,
    /// Where this page ends and whether more follow.
    page_info: PageInfo,
}

fn cursor_of(at: AuditPosition) -> String {
    cursor::encode("audit", &format!("{}:{}", cursor::micros(at.at), at.id))
}

fn parse_cursor(c: &str) -> Result<AuditPosition, ApiError> {
    cursor::decode("audit", c, |p| {
        let (at, id) = p.split_once(':')?;
        Some(AuditPosition {
            at: cursor::from_micros(at)?,
            id: Uuid::try_parse(id).ok()?,
        })
    })
}

/// `city { auditEntries(first, after) }`: one page (the guard first: another city or a missing
/// scope sees no validation hint; then a bad size or cursor is VALIDATION before anything is read).
pub async fn page(
    ctx: &Context<'_>,
    tenant: TenantId,
    first: i64,
    after: Option<String>,
) -> Result<AuditEntryConnection> {
    let mut scope = auth::enter(ctx, tenant, Obj::Audit, Act::Read).await?;
    cursor::page_size(first, 200)?;
    let after = after.as_deref().map(parse_cursor).transpose()?;
    let mut entries = audit::page(&mut scope, after, first)
        .await
        .map_err(ApiError::from)?;
    scope.commit().await.map_err(ApiError::from)?;
    let has_next = entries.len() as i64 > first;
    entries.truncate(first as usize);
    let edges: Vec<AuditEntryEdge> = entries
        .into_iter()
        .map(|e| AuditEntryEdge {
            cursor: cursor_of(e.position()),
            node: e.into(),
        })
        .collect();
    Ok(AuditEntryConnection {
        page_info: PageInfo {
            has_next_page: has_next,
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
    })
}

/// The deprecated `city { auditLog(limit) }`: the newest `limit` entries (1–1000, clamped).
pub async fn recent(ctx: &Context<'_>, tenant: TenantId, limit: i64) -> Result<Vec<AuditEntry>> {
    let mut scope = auth::enter(ctx, tenant, Obj::Audit, Act::Read).await?;
    let list = audit::recent(&mut scope, limit.clamp(1, 1000))
        .await
        .map_err(ApiError::from)?;
    Ok(list.into_iter().map(AuditEntry::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_cursor_reads_back_exactly() {
        let at = AuditPosition {
            at: chrono::DateTime::from_timestamp_micros(1_796_000_000_000_001).expect("instant"),
            id: Uuid::now_v7(),
        };
        assert_eq!(parse_cursor(&cursor_of(at)).ok(), Some(at));
        assert!(parse_cursor(&cursor::encode("audit", "1:not-a-uuid")).is_err());
        assert!(parse_cursor(&cursor::encode("slot", &format!("1:{}", at.id))).is_err());
    }
}
