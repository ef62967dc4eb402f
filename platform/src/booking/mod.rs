//! The booking area: booking, changing and cancelling seats, and availability. The invariants of
//! DESIGN.md ("Booking invariants") hold here, and only here:
//!
//! * **Never overbook.** A seat is taken by ONE conditional statement ([`seats`]), whose predicate is
//!   the SQL function `seat_available` (migrations/20261201000001_one_seat_predicate.sql) — the same on
//!   the general, the fast and the batched path — `UPDATE slots SET booked = booked + n WHERE … AND
//!   seat_available(…) RETURNING …`, in the same
//!   transaction as the booking rows. No read-then-write: when it updates no row the slot is full (or
//!   past its deadline) and the transaction rolls back. A group takes all its seats in that one
//!   statement, so it gets all or none. The CHECK on `slots` is the last wall.
//! * **One live booking per resident and dose**: the partial unique index `bookings_one_live_per_dose`.
//! * **Dose order and intervals**: dose 2 at least the vaccine's `min_interval_days` after dose 1 (same
//!   vaccine unless the city allows mixing); booster at least `booster_interval_months` after dose 2.
//! * **Deadlines**: a slot can be booked until `booking_deadline_hours` before it starts (checked inside
//!   the seat statement); a booking can be changed or cancelled until `cancel_cutoff_days` before.
//! * **Idempotency**: every mutation carries a key; the key row is inserted first in the same
//!   transaction, so a replay (even a concurrent one) returns the first result and books nothing.
//! * **Outbox**: each booking, change and cancel pushes its notification job in the same transaction.
//! * **Short transactions**: no network calls here; the notification is sent later by the worker.
//!
//! Files: [`dose`] and [`error`] (the types every path shares), [`seats`] (the seat statement),
//! [`keys`] (idempotency, savepoints), [`book`] (general path), [`fast`] (one statement), [`batch`]
//! (many requests in one statement), [`change`] (change, cancel), [`bookings`] (reading bookings
//! back), [`rules`] (the city's booking rules, dose order and intervals), [`availability`] (○ △ ×
//! per venue and day, cached). Front ends reach this area through the resident desk
//! (`crate::residents::desk`), the call centre and intake, never directly.

pub mod availability;
pub mod batch;
mod book;
mod bookings;
mod change;
mod dose;
mod error;
mod fast;
mod keys;
mod rules;
mod seats;

pub use batch::{Batcher, book_batched};
pub use book::{BookRequest, book, book_allowing_adjacent, book_in};
pub use bookings::{
    Booking, BookingFilter, BookingPage, BookingStatus, MAX_PAGE, PageError, city_count, city_page,
    cursor_of, my_bookings, parse_cursor,
};
pub use change::{cancel, cancel_in, change, change_in};
pub use dose::{BadDose, Dose};
pub use error::BookingError;
pub use fast::{Caller, FastOutcome, book_first_dose};
pub(crate) use keys::{client_key, in_savepoint};
pub use rules::{
    BookingSettings, SettingsError, city_settings, save_settings, second_dose_options, settings,
};
pub use seats::{Pass, take_seats, take_seats_with};

/// Which door a booking decision came through (the `door` label of `yoyaku_bookings_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The resident site and the resident GraphQL fields (`crate::ResidentDesk`).
    Resident,
    /// The call centre, on a caller's behalf.
    CallCentre,
    /// Intake staff booking the next dose at check-out.
    Intake,
}

impl Door {
    fn label(self) -> &'static str {
        match self {
            Door::Resident => "resident",
            Door::CallCentre => "callcenter",
            Door::Intake => "intake",
        }
    }
}

/// The booking counter, `yoyaku_bookings_total{outcome, door, tenant}`: one count per booking
/// request as its door decided it — `booked` (a replayed key included) or why not
/// ([`BookingError::outcome`]; `signed_out`, `invalid`… from the resident desk). Every door calls
/// this once per request, after the decision; nothing else counts bookings. Labels are bounded:
/// outcomes and doors are these enums, tenants are the cities of the deployment.
pub fn record_decision(tenant: tenants::TenantId, door: Door, outcome: &'static str) {
    metrics::counter!(
        "yoyaku_bookings_total",
        "outcome" => outcome,
        "door" => door.label(),
        "tenant" => tenant.to_string()
    )
    .increment(1);
}
