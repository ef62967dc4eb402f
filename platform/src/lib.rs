//! The booking platform every tenant runs. Knows nothing of HTTP; every function takes a
//! tenant-scoped transaction ([`tenants::TenantTx`]) or a pool plus a tenant id.

pub mod api_keys;
pub mod audit;
pub mod authz;
pub mod channels;
pub mod demo;
pub mod export;
pub mod identity;
pub mod import;
pub mod setup;
pub mod staff;
pub mod templates;
