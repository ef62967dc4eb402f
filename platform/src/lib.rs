//! The booking platform every tenant runs: every rule of the product, once. Knows nothing of HTTP;
//! the resident site, the admin UI and GraphQL parse their input, call one function here and render
//! the answer (docs/architecture.md, "Platform is the only door").
//!
//! Grouped by area, each with a module doc stating its rules:
//!
//! * [`booking`] — seats, booking, changing, cancelling, availability; the booking invariants.
//! * [`residents`] — resident login, the resident desk (the door of the resident site and the
//!   resident GraphQL fields), the eligible-resident import.
//! * [`staff`] — staff identity, the guard ([`staff::authz`]: roles, tenant status, the scope every
//!   staff function takes), onboarding and members, integrator API keys, the audit trail.
//! * [`jobs`] — the one job runtime (apalis-postgres): queues, workers, cron ticks.
//! * [`notifications`] — the outbox, the worker, channels, templates and the delivery log.
//! * [`intake`] — the venue's day: check-in, vaccination records, questionnaire, side effects.
//! * [`callcenter`] — booking on a caller's behalf with the resident site's rules.
//! * [`exports`] — export jobs and the spreadsheet writers.
//! * [`stats`] — cross tabulations and the city hall's overview.
//! * [`caps`] — a plan's hard caps on e-mail, API calls and exports, at the point of use, with
//!   their 80 % / 100 % alerts.
//! * [`city`] — what a city configures (vaccines, venues, schedules) and its contract and bills.
//! * [`operator`] — the platform operator's work on whole cities: export, delete, import.
//! * [`webhooks`] — event webhooks for integrators: subscriptions, events, signed delivery.
//! * [`changes`] — the change feed between server processes (PostgreSQL LISTEN/NOTIFY): what one
//!   process changes, every process's caches forget.
//!
//! Every tenant function takes a tenant-scoped transaction ([`tenants::TenantTx`]) or the guard's
//! [`staff::authz::Scope`]; only this crate opens one.

pub mod booking;
pub mod callcenter;
pub mod caps;
pub mod changes;
pub mod city;
pub mod client_ip;
pub mod demo;
pub mod exports;
pub mod i18n;
pub mod intake;
pub mod jobs;
pub mod notifications;
pub mod operator;
pub mod residents;
pub mod staff;
pub mod stats;
pub mod tenant_cache;
pub mod text;
pub mod webhooks;

pub use client_ip::ClientIp;
pub use residents::desk::ResidentDesk;
