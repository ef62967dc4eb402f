//! Tenancy: the registry of municipalities and the scoped unit of work that makes PostgreSQL's
//! row-level security see exactly one tenant. This crate knows nothing of vaccines.

pub mod billing;
mod domain;
mod registry;
mod scope;

pub use domain::{
    DomainError, LocalGovernmentCode, Locale, SUPPORTED_LOCALES, Slug, TenantName, TenantStatus,
    TimeZone,
};
pub use registry::{NewTenant, RegistryError, Tenant, TenantId, find_by_id, find_by_slug, list};
pub use registry::{create as create_tenant, set_status};
pub use scope::{TenantTx, begin};

/// Fills the `tenant.id` field of the current request span once the tenant is known, so every log
/// line of the request carries it (the field is declared by the server's trace layer).
pub fn record_in_span(id: TenantId) {
    tracing::Span::current().record("tenant.id", tracing::field::display(id));
}

/// Fills the `user` field of the current request span once the caller is known: a subject such as
/// `staff:<uuid>`, `apikey:<uuid>` or `resident:<uuid>` — an id, never a name, e-mail or ticket.
pub fn record_user_in_span(subject: &str) {
    tracing::Span::current().record("user", subject);
}
