//! Notifications: every message a resident or a city receives (booking confirmations, changes,
//! cancellations, reminders, login codes, budget alerts).
//!
//! Rules:
//! * A message is queued in the same transaction as what it announces ([`outbox::push`]) and sent
//!   later, outside any transaction, by the [`worker`]: a booking never waits on a provider, and a
//!   rolled-back booking announces nothing.
//! * Sent at most once: a job is claimed and committed before the provider is called; a worker
//!   that vanished mid-send leaves it `dead`, never resent.
//! * Billed once: each send records one usage event keyed by the job.
//! * Secrets stay sealed: channel credentials are encrypted at rest ([`channels`]) and shown masked.
//! * The SMS budget is set in one place ([`channels::set_sms_budget`]) and checked before each SMS.
//! * Templates are data ([`templates`]); staff see what was sent in the [`delivery_log`].

pub mod channels;
pub mod delivery_log;
pub mod outbox;
pub mod templates;
pub mod worker;

pub use outbox::{NOTIFY_QUEUE, Notification, push, push_once, schedule_reminders};
pub use worker::{InFlightGuard, LEASE_SECS, MAX_ATTEMPTS, Pacing, Worker, budget_alert_text};
