//! The booking platform every tenant runs. Knows nothing of HTTP; every function takes a
//! tenant-scoped transaction ([`tenants::TenantTx`]) or a pool plus a tenant id.

pub mod api_keys;
pub mod audit;
pub mod authz;
pub mod availability;
pub mod billing;
pub mod booking;
pub mod booking_batch;
pub mod callcenter;
pub mod channels;
pub mod delivery_log;
pub mod demo;
pub mod export;
pub mod exports;
pub mod i18n;
pub mod identity;
pub mod import;
pub mod intake;
pub mod jobs;
pub mod overview;
pub mod residents;
pub mod setup;
pub mod staff;
pub mod stats;
pub mod templates;

pub use residents::desk::ResidentDesk;
