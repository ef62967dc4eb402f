//! `city { auditLog }`: the city's audit log as staff and integrators read it.

use async_graphql::SimpleObject;

use crate::scalars::DateTime;

/// One entry of the city's append-only audit log.
#[derive(SimpleObject)]
pub struct AuditEntry {
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

impl From<platform::staff::audit::AuditEntry> for AuditEntry {
    fn from(e: platform::staff::audit::AuditEntry) -> Self {
        Self {
            at: DateTime(e.at),
            actor: e.actor,
            action: e.action,
            object: e.object,
            ip: e.ip,
        }
    }
}
