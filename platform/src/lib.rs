//! The booking platform every tenant runs. Knows nothing of HTTP; every function takes a
//! tenant-scoped transaction ([`tenants::TenantTx`]) or a pool plus a tenant id.

pub mod availability;
pub mod booking;
pub mod channels;
pub mod demo;
pub mod export;
pub mod i18n;
pub mod jobs;
pub mod residents;
pub mod templates;

/// What the resident-facing front ends (web site, GraphQL) share: the runtime pool, the hot
/// availability cache and the login-code secret. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ResidentServices {
    pub pool: sqlx::PgPool,
    pub availability: availability::AvailabilityCache,
    pub secret: residents::auth::CodeSecret,
}
