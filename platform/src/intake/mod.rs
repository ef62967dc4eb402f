//! Venue and hospital intake (issue 6): the day's list per venue and what happens to each booking
//! there — checked in → vaccinated (lot number, amount, vaccinator) → observed → released, or no-show
//! — with undo of a wrong step, the pre-vaccination questionnaire, side-effect notes and booking the
//! next dose on the spot.
//!
//! * `bookings.status` keeps its meaning ('booked' / 'cancelled'): a vaccinated booking still holds
//!   its seat. The visit's state lives in `booking_visits` (no row = still booked).
//! * Every step and every undo is one transaction that locks the visit row, checks the transition
//!   from the state the staff member saw, and writes the change, an event row and an audit entry
//!   together — two tablets pressing "check in" at once give one check-in and one clear refusal.
//! * Access is two checks ([`enter`]): the role may do intake at all (`Object::Intake`) and the
//!   actor may touch this venue (`Object::Venue`), so venue and hospital staff stay on their assigned
//!   venues, the auditor only reads, and the call centre has no intake.
//!
//! Files: [`types`], [`day`] (access, the day list, one visit), [`steps`], [`questionnaire`],
//! [`next_dose`], [`records`] (the city's vaccination records, page by page).

pub mod day;
pub mod next_dose;
pub mod questionnaire;
pub mod records;
pub mod steps;
pub mod types;

pub use day::{
    OtherBooking, Row, Visit, allow, audit_list_view, day_list, enter, side_effect, visit,
};
pub use next_dose::{SlotChoice, book_next_dose, next_dose, next_dose_slots};
pub use questionnaire::save_questionnaire;
pub(crate) use questionnaire::save_resident_answers;
pub use steps::{add_side_effect, step, undo, vaccinate};
pub use types::{
    Answers, IntakeError, NewSideEffect, NewVaccination, Questionnaire, SEVERITIES,
    SIDE_EFFECT_KINDS, SideEffect, Status, Step, VaccinationRecord,
};
