//! The booking platform every tenant runs. Knows nothing of HTTP; every function takes a
//! tenant-scoped transaction ([`tenants::TenantTx`]) or a pool plus a tenant id.

pub mod channels;
pub mod demo;
pub mod export;
pub mod templates;
