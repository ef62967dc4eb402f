//! The input objects of the city configuration mutations (`createVaccine`, `createVenue`;
//! [`crate::admin`]).

use async_graphql::InputObject;
use uuid::Uuid;

use crate::enums::VenueKind;
use crate::scalars::DateTime;

/// A new vaccine product.
#[derive(InputObject)]
pub struct VaccineInput {
    /// Product name, unique in the city (1–200 characters).
    pub(crate) name: String,
    /// Manufacturer (1–200 characters).
    pub(crate) maker: String,
    /// Doses in the primary series (1–5).
    pub(crate) doses: i32,
    /// Days at least between two doses of the primary series (0–3650).
    pub(crate) min_interval_days: i32,
    /// Months at least from the last dose to a booster (0–120).
    pub(crate) booster_interval_months: i32,
    /// Days from the last dose until protection is taken as effective (0–365).
    pub(crate) days_until_effective: i32,
    /// Days a completed series counts as valid (1–3650).
    pub(crate) validity_days: i32,
}

/// A new venue.
#[derive(InputObject)]
pub struct VenueInput {
    /// Display name (1–200 characters).
    pub(crate) name: String,
    /// Postal address (one line; may be empty).
    #[graphql(default)]
    pub(crate) address: String,
    /// A mass vaccination site or a hospital.
    pub(crate) kind: VenueKind,
    /// The one vaccine given at this venue.
    pub(crate) vaccine_id: Uuid,
    /// Booking opens at this moment; null: at once.
    pub(crate) booking_opens_at: Option<DateTime>,
    /// Booking closes this many hours before a slot starts.
    #[graphql(default = 24)]
    pub(crate) booking_deadline_hours: i32,
    /// Residents may change or cancel until this many days before the slot.
    #[graphql(default = 2)]
    pub(crate) cancel_cutoff_days: i32,
}
