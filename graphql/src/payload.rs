//! Mutation payloads and their user errors, written once (issue 17). Every mutation answers a
//! payload with `errors: [UserError!]!`:
//!
//! * a refusal the caller can act on — `VALIDATION`, `CONFLICT`, or `NOT_FOUND` of an id in the
//!   input — comes back in the payload's `errors`, with the input `field` it is about, and nothing
//!   changed ([`answer`]);
//! * everything else — `UNAUTHENTICATED`, `FORBIDDEN` (also a suspended city), `NOT_FOUND` of the
//!   city itself, `RATE_LIMITED`, `INTERNAL` — stays a top-level error with `extensions.code`
//!   ([`ApiError`]), and the field is `null`.
//!
//! Resolvers return `Result<TheirPayload, Refusal>` from the part that may be refused and hand it
//! to [`answer`]; nothing else decides which refusal goes where.

use async_graphql::{Enum, SimpleObject};
use platform::booking::BookingError;
use platform::i18n::Lang;
use platform::residents::auth::AuthError;
use platform::residents::desk::DeskError;

use crate::ApiError;

/// What kind of refusal a user error is (stable; docs/api.md "Errors").
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum UserErrorCode {
    /// An id in the input names nothing this caller can see (also another city's ids).
    NotFound,
    /// The state of things says no: the slot is full, a deadline or cut-off has passed, already
    /// booked for this dose, the idempotency key was used for something else.
    Conflict,
    /// The input says no: a value out of range, a wrong login code, text with control characters.
    Validation,
}

/// A refusal the caller can act on (the slot is full, the cut-off has passed, …); nothing changed.
#[derive(SimpleObject, Clone, Debug)]
pub struct UserError {
    /// What kind of refusal this is; branch on it (the message may change).
    pub code: UserErrorCode,
    /// For people, in the request's language where the platform has it translated.
    pub message: String,
    /// The input field it is about (as named in the schema, e.g. `slotId`, `capacity`), when
    /// there is one.
    pub field: Option<String>,
}

impl UserError {
    /// A user error from a platform code string (`NOT_FOUND`, `CONFLICT`; anything else is
    /// `VALIDATION`), for payloads built by hand rather than through [`answer`].
    #[allow(dead_code)] // the constructor the newer payloads (intake, exports, imports, webhooks) use
    pub(crate) fn new(code: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self {
            code: match code {
                "NOT_FOUND" => UserErrorCode::NotFound,
                "CONFLICT" => UserErrorCode::Conflict,
                _ => UserErrorCode::Validation,
            },
            message: message.into(),
            field: field.map(camel),
        }
    }
}

/// Why a mutation did nothing, before it is told ([`answer`] decides: user error or top-level).
#[derive(Debug)]
pub struct Refusal {
    error: ApiError,
    field: Option<String>,
    /// Told as a top-level error whatever its code (e.g. NOT_FOUND of the city itself).
    top_level: bool,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            field: None,
            top_level: false,
        }
    }
}

impl Refusal {
    /// A refusal told as a top-level error whatever its code.
    pub fn top_level(error: ApiError) -> Self {
        Self {
            error,
            field: None,
            top_level: true,
        }
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl ApiError {
    /// This error, about the input field `field` (schema name, or a snake_case form name, which
    /// is turned into the schema's camelCase).
    pub fn on(self, field: Option<&str>) -> Refusal {
        Refusal {
            error: self,
            field: field.map(camel),
            top_level: false,
        }
    }
}

/// `min_interval_days` → `minIntervalDays` (names already in camelCase stay as they are).
pub fn camel(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A payload that can carry user errors instead of a result.
pub trait Payload {
    /// The payload of a mutation that changed nothing because of `errors`.
    fn refused(errors: Vec<UserError>) -> Self;
}

/// The one mapping from a mutation's outcome to its answer: the payload, a payload with user
/// errors (nothing changed), or a top-level error.
pub fn answer<P: Payload>(outcome: Result<P, Refusal>) -> async_graphql::Result<P> {
    match outcome {
        Ok(p) => Ok(p),
        Err(r) => match user_error(r) {
            Ok(e) => Ok(P::refused(vec![e])),
            Err(top) => Err(top.into()),
        },
    }
}

fn user_error(r: Refusal) -> Result<UserError, ApiError> {
    if r.top_level {
        return Err(r.error);
    }
    let (code, message) = match r.error {
        ApiError::NotFound(what) => (UserErrorCode::NotFound, format!("{what} not found")),
        ApiError::Validation(why) => (UserErrorCode::Validation, why),
        ApiError::Conflict(why) => (UserErrorCode::Conflict, why),
        ApiError::Refused {
            code,
            message,
            retry_after_secs: None,
            reason: None,
        } if matches!(code, "NOT_FOUND" | "CONFLICT" | "VALIDATION") => (
            match code {
                "NOT_FOUND" => UserErrorCode::NotFound,
                "CONFLICT" => UserErrorCode::Conflict,
                _ => UserErrorCode::Validation,
            },
            message,
        ),
        other => return Err(other),
    };
    Ok(UserError {
        code,
        message,
        field: r.field,
    })
}

/// The input field a booking refusal is about.
pub fn booking_field(e: &BookingError) -> Option<&'static str> {
    match e {
        BookingError::Full
        | BookingError::DeadlinePassed
        | BookingError::NotOpenYet
        | BookingError::OtherVaccine => Some("slotId"),
        BookingError::AlreadyBooked { .. }
        | BookingError::TooEarly { .. }
        | BookingError::NeedsEarlierDose
        | BookingError::PairingNotOffered => Some("dose"),
        BookingError::GroupTooLarge { .. } => Some("companions"),
        BookingError::KeyReused | BookingError::BadKey => Some("idempotencyKey"),
        BookingError::CutoffPassed => Some("bookingId"),
        BookingError::NotFound | BookingError::Database(_) => None,
    }
}

/// A booking refusal (the platform's code and message in `lang`), about its input field;
/// `not_found` names the field an unknown id was given in (`slotId`, `bookingId`, …).
pub fn booking(e: BookingError, lang: Lang, not_found: Option<&str>) -> Refusal {
    if let BookingError::Database(db) = e {
        return db.into();
    }
    let field = match e {
        BookingError::NotFound => not_found,
        ref other => booking_field(other),
    };
    ApiError::Refused {
        code: e.code(),
        message: e.message(lang),
        retry_after_secs: None,
        reason: None,
    }
    .on(field)
}

/// The resident desk's refusal in `lang`, about its input field; `not_found` as for [`booking`].
pub fn desk(e: DeskError, lang: Lang, not_found: Option<&str>) -> Refusal {
    if matches!(e, DeskError::NoSuchCity) {
        return Refusal::top_level(ApiError::desk(e, lang));
    }
    let field = match &e {
        DeskError::Booking(BookingError::NotFound) => not_found,
        DeskError::Booking(b) => booking_field(b),
        DeskError::CompanionNotRecognised => Some("companions"),
        DeskError::Questionnaire { .. } => Some("questionnaire"),
        DeskError::Login(AuthError::NotRecognised) => Some("ticketNo"),
        DeskError::Login(AuthError::PhoneNeeded | AuthError::BadPhone) => Some("phone"),
        DeskError::Login(
            AuthError::WrongCode { .. } | AuthError::Expired | AuthError::TooManyTries,
        ) => Some("code"),
        DeskError::Login(AuthError::BadText(b)) => Some(b.field),
        _ => None,
    };
    ApiError::desk(e, lang).on(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct P(Vec<UserError>);
    impl Payload for P {
        fn refused(errors: Vec<UserError>) -> Self {
            P(errors)
        }
    }

    #[test]
    fn refusals_the_caller_can_act_on_are_user_errors_and_the_rest_top_level() {
        let p = answer::<P>(Err(
            ApiError::Validation("capacity: too big".into()).on(Some("slot_minutes"))
        ))
        .unwrap();
        assert_eq!(p.0[0].code, UserErrorCode::Validation);
        assert_eq!(p.0[0].field.as_deref(), Some("slotMinutes"));
        let p = answer::<P>(Err(booking(BookingError::Full, Lang::En, None))).unwrap();
        assert_eq!(p.0[0].code, UserErrorCode::Conflict);
        assert_eq!(p.0[0].field.as_deref(), Some("slotId"));
        let p = answer::<P>(Err(booking(
            BookingError::NotFound,
            Lang::En,
            Some("bookingId"),
        )))
        .unwrap();
        assert_eq!(p.0[0].code, UserErrorCode::NotFound);
        assert_eq!(p.0[0].field.as_deref(), Some("bookingId"));
        for top in [
            ApiError::Forbidden,
            ApiError::Suspended,
            ApiError::Unauthenticated,
            ApiError::Internal("x".into()),
        ] {
            assert!(answer::<P>(Err(top.into())).is_err());
        }
        let throttled = desk(
            DeskError::Login(AuthError::RateLimited {
                retry_after_secs: 30,
            }),
            Lang::En,
            None,
        );
        assert!(answer::<P>(Err(throttled)).is_err());
        assert!(answer::<P>(Err(desk(DeskError::SignedOut, Lang::En, None))).is_err());
        assert!(answer::<P>(Err(desk(DeskError::Suspended, Lang::En, None))).is_err());
        assert!(answer::<P>(Err(desk(DeskError::NoSuchCity, Lang::En, None))).is_err());
    }
}
