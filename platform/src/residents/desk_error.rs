//! Why the resident desk ([`crate::residents::desk`]) refused: one code a program can branch on
//! and one message a resident can act on, in their language, for every refusal.

use crate::booking::BookingError;
use crate::i18n::{Lang, pick};
use crate::intake::IntakeError;
use crate::residents::auth::AuthError;

/// Why the desk refused. Each has a code a program can branch on and a message a resident can act
/// on, in their language.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("no such city")]
    NoSuchCity,
    #[error("the city's online booking is suspended")]
    Suspended,
    #[error("not logged in, or the session has expired")]
    SignedOut,
    #[error("a companion's ticket number and birth date do not match")]
    CompanionNotRecognised,
    #[error("questionnaire: {field}: {reason}")]
    Questionnaire {
        field: &'static str,
        reason: &'static str,
    },
    #[error(transparent)]
    Booking(BookingError),
    #[error(transparent)]
    Login(AuthError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<BookingError> for DeskError {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::Database(db) => Self::Database(db),
            other => Self::Booking(other),
        }
    }
}

impl From<AuthError> for DeskError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Database(db) => Self::Database(db),
            other => Self::Login(other),
        }
    }
}

impl From<IntakeError> for DeskError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Invalid { field, reason } => Self::Questionnaire { field, reason },
            IntakeError::Database(db) => Self::Database(db),
            IntakeError::Booking(b) => b.into(),
            IntakeError::NotFound => Self::Booking(BookingError::NotFound),
            // not produced by a resident's own answers (a staff intake step)
            other @ IntakeError::WrongState { .. } => {
                Self::Database(sqlx::Error::Protocol(other.to_string()))
            }
        }
    }
}

impl DeskError {
    /// `NOT_FOUND`, `FORBIDDEN` (the city is suspended), `UNAUTHENTICATED`, `VALIDATION`,
    /// `CONFLICT`, `RATE_LIMITED` or `INTERNAL`.
    pub fn code(&self) -> &'static str {
        match self {
            DeskError::NoSuchCity => "NOT_FOUND",
            DeskError::Suspended => "FORBIDDEN",
            DeskError::SignedOut => "UNAUTHENTICATED",
            DeskError::CompanionNotRecognised | DeskError::Questionnaire { .. } => "VALIDATION",
            DeskError::Booking(e) => e.code(),
            DeskError::Login(e) => e.code(),
            DeskError::Database(_) => "INTERNAL",
        }
    }

    /// A message in the resident's language.
    pub fn message(&self, lang: Lang) -> String {
        match self {
            DeskError::NoSuchCity => pick(
                lang,
                "この自治体は見つかりません。",
                "This city was not found.",
                "找不到该城市。",
                "Esta cidade não foi encontrada.",
            )
            .into(),
            DeskError::Suspended => pick(
                lang,
                "この自治体のオンライン予約は現在停止しています。お住まいの市区町村にお問い合わせください。",
                "Online booking for this city is suspended at the moment. Please contact your city hall.",
                "该城市的在线预约目前已暂停，请联系您所在的市政府。",
                "As reservas online desta cidade estão suspensas no momento. Entre em contato com a prefeitura.",
            )
            .into(),
            DeskError::SignedOut => AuthError::Expired.message(lang),
            DeskError::CompanionNotRecognised => AuthError::NotRecognised.message(lang),
            DeskError::Questionnaire { .. } => pick(
                lang,
                "予診票の各欄は1000文字までです。短くしてもう一度お試しください。予約はまだ完了していません。",
                "Each questionnaire answer may be at most 1000 characters. Please shorten it and try again; nothing was booked yet.",
                "预诊问卷每栏最多1000字，请缩短后重试。尚未完成预约。",
                "Cada resposta do questionário pode ter no máximo 1000 caracteres. Encurte e tente de novo; nada foi reservado ainda.",
            )
            .into(),
            DeskError::Booking(e) => e.message(lang),
            DeskError::Login(e) => e.message(lang),
            DeskError::Database(_) => pick(
                lang,
                "ただいま混み合っています。少し待ってからもう一度お試しください。",
                "Something went wrong on our side. Please try again in a moment.",
                "系统繁忙，请稍后再试。",
                "Ocorreu um erro do nosso lado. Tente novamente em instantes.",
            )
            .into(),
        }
    }

    /// Seconds until a throttled login request may be tried again.
    pub fn retry_after_secs(&self) -> Option<i64> {
        match self {
            DeskError::Login(AuthError::RateLimited { retry_after_secs }) => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }
}
