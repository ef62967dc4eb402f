//! The city hall's configuration and contract.
//!
//! Rules:
//! * Every function takes the guard's [`crate::staff::authz::Scope`]; configuration changes and
//!   views of personal data write their audit entry in the same transaction ([`setup`]).
//! * A city configures vaccines, venues, capacity schedules (which generate slots) and slot
//!   capacity; capacity never drops below the seats already booked.
//! * Plans, contracts, usage and invoices ([`billing`]): the arithmetic lives in
//!   `tenants::billing`; who may see or change what is decided here.

pub mod billing;
pub mod setup;
