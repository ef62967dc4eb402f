//! Staff and authorization: who works for which city, what each role may do, and the record of
//! what they did.
//!
//! Rules:
//! * One guard ([`authz::Authz`]): every admin route, GraphQL field and staff function is decided
//!   there — role in the city (casbin RBAC with domains, the domain being the tenant), the venue
//!   for venue-bound roles, and the tenant's status (a suspended or onboarding city is refused for
//!   every caller but the operator).
//! * A staff function takes the guard's [`authz::Scope`] (a tenant transaction opened by the guard
//!   for an admitted actor) and writes its own audit entry ([`audit`]) in that transaction.
//! * Staff log in with e-mail + password ([`identity`]); integrators with API keys ([`api_keys`]),
//!   which the same guard admits.
//! * Onboarding a city and managing its staff: [`members`].

pub mod api_keys;
pub mod audit;
pub mod authz;
pub mod identity;
pub mod members;
mod policy_store;

pub use members::{
    Invitation, Member, StaffError, invite, invite_first_admin, members, onboard,
    password_reset_link, remove, set_status,
};
