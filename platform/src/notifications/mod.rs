//! Notifications: every message a resident or a city receives (booking confirmations, changes,
//! cancellations, reminders, login codes, budget alerts).
//!
//! Rules:
//! * A message is queued in the same transaction as what it announces ([`outbox::push`]: one task
//!   in the job runtime, [`crate::jobs`]) and sent later, outside any transaction, by the
//!   [`worker`]: a booking never waits on a provider, and a rolled-back booking announces nothing.
//! * Sent once: a job is claimed (its delivery-log row `sending`, committed) before the provider
//!   is called; a job whose worker vanished mid-send is sent again only through a channel that
//!   recognises the resend by the message's key (so the resident still receives it once), and is
//!   otherwise left `dead`, never sent twice.
//! * Billed once: each send records one usage event keyed by the delivery-log row.
//! * Secrets stay sealed: channel credentials are encrypted at rest ([`channels`]) and shown masked.
//! * The SMS budget is set in one place ([`channels::set_sms_budget`]) and checked before each SMS.
//! * Templates are data ([`templates`]); staff see what was sent in the [`delivery_log`].

pub mod channels;
pub mod delivery_log;
pub mod outbox;
mod plan;
pub mod templates;
pub mod worker;

pub use outbox::{NOTIFY_QUEUE, Notification, NotifyTask, push, push_once, queued_keys};
pub use plan::budget_alert_text;
pub use worker::{InFlightGuard, MAX_ATTEMPTS, Pacing, Worker, reminder_due};
