//! The intake vocabulary: where a booking stands at the venue ([`Status`]), the steps between
//! states ([`Step`]), the questionnaire, side effects and vaccination records, and why a step is refused.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::booking::BookingError;

/// Where a booking stands at the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Booked,
    CheckedIn,
    Vaccinated,
    Observed,
    Released,
    NoShow,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Booked,
        Status::CheckedIn,
        Status::Vaccinated,
        Status::Observed,
        Status::Released,
        Status::NoShow,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Booked => "booked",
            Status::CheckedIn => "checked_in",
            Status::Vaccinated => "vaccinated",
            Status::Observed => "observed",
            Status::Released => "released",
            Status::NoShow => "no_show",
        }
    }
    pub fn parse(raw: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw.trim())
    }
    /// The state an undo returns to (None: nothing to undo).
    pub fn previous(self) -> Option<Status> {
        match self {
            Status::Booked => None,
            Status::CheckedIn | Status::NoShow => Some(Status::Booked),
            Status::Vaccinated => Some(Status::CheckedIn),
            Status::Observed => Some(Status::Vaccinated),
            Status::Released => Some(Status::Observed),
        }
    }
    /// The person has had the vaccination in this visit.
    pub fn is_vaccinated(self) -> bool {
        matches!(
            self,
            Status::Vaccinated | Status::Observed | Status::Released
        )
    }
}

/// A step that needs nothing but the button press (vaccination has its own form: [`vaccinate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CheckIn,
    NoShow,
    Observe,
    Release,
}

impl Step {
    pub fn parse(raw: &str) -> Option<Step> {
        match raw.trim() {
            "check_in" => Some(Step::CheckIn),
            "no_show" => Some(Step::NoShow),
            "observe" => Some(Step::Observe),
            "release" => Some(Step::Release),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CheckIn => "check_in",
            Step::NoShow => "no_show",
            Step::Observe => "observe",
            Step::Release => "release",
        }
    }
    /// (from, to) of the step.
    pub fn transition(self) -> (Status, Status) {
        match self {
            Step::CheckIn => (Status::Booked, Status::CheckedIn),
            Step::NoShow => (Status::Booked, Status::NoShow),
            Step::Observe => (Status::Vaccinated, Status::Observed),
            Step::Release => (Status::Observed, Status::Released),
        }
    }
}

/// Why an intake action was refused; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("no such booking at this venue")]
    NotFound,
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    /// The row changed meanwhile (another tablet) or the step does not fit its state.
    #[error("this booking is now {}", .current.as_str())]
    WrongState { current: Status },
    #[error(transparent)]
    Booking(BookingError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The questionnaire flags shown on the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Questionnaire {
    pub conditions: String,
    pub allergies: String,
    pub anaphylaxis: bool,
    pub answered_by: String,
    pub answered_at: Option<DateTime<Utc>>,
}

impl Questionnaire {
    pub fn has_conditions(&self) -> bool {
        !self.conditions.trim().is_empty()
    }
    pub fn has_allergies(&self) -> bool {
        !self.allergies.trim().is_empty()
    }
    /// Anything a vaccinator should look at before the injection.
    pub fn flagged(&self) -> bool {
        self.has_conditions() || self.has_allergies() || self.anaphylaxis
    }
}

/// What a resident or staff member declares.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub conditions: String,
    pub allergies: String,
    pub anaphylaxis: bool,
}

impl Answers {
    pub fn is_empty(&self) -> bool {
        self.conditions.trim().is_empty() && self.allergies.trim().is_empty() && !self.anaphylaxis
    }
    pub(crate) fn validate(&self) -> Result<(), IntakeError> {
        if self.conditions.chars().count() > 1000 {
            return Err(IntakeError::Invalid {
                field: "conditions",
                reason: "at most 1000 characters",
            });
        }
        if self.allergies.chars().count() > 1000 {
            return Err(IntakeError::Invalid {
                field: "allergies",
                reason: "at most 1000 characters",
            });
        }
        Ok(())
    }
}

/// A side effect as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideEffect {
    pub id: Uuid,
    pub booking_id: Uuid,
    pub venue_name: String,
    pub dose: i16,
    pub kind: String,
    pub severity: String,
    pub onset_at: DateTime<Utc>,
    pub note: String,
    pub recorded_by: String,
    pub created_at: DateTime<Utc>,
}

pub const SIDE_EFFECT_KINDS: [&str; 8] = [
    "injection_site",
    "fever",
    "fatigue",
    "headache",
    "allergic",
    "anaphylaxis",
    "vasovagal",
    "other",
];
pub const SEVERITIES: [&str; 3] = ["mild", "moderate", "severe"];

/// A new side-effect note (parsed at the edge; checked again here).
#[derive(Debug, Clone)]
pub struct NewSideEffect {
    pub kind: String,
    pub severity: String,
    pub onset_at: DateTime<Utc>,
    pub note: String,
}

/// A vaccination to record.
#[derive(Debug, Clone)]
pub struct NewVaccination {
    pub lot_number: String,
    /// Millilitres injected.
    pub dose_ml: f64,
    pub vaccinator: String,
    pub vaccinated_at: DateTime<Utc>,
}

/// A vaccination as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct VaccinationRecord {
    pub id: Uuid,
    pub lot_number: String,
    pub dose_ml: String,
    pub vaccinator: String,
    pub vaccinated_at: DateTime<Utc>,
    pub recorded_by: String,
}
