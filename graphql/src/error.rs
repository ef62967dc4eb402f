//! Errors as GraphQL sees them: a message a person can act on and an `extensions.code` a program can
//! branch on (docs/api.md). Internal details are logged once, here, and never returned. This is the
//! one mapping from platform errors to GraphQL errors: resolvers return `ApiError` (or `?` a
//! platform error into it) and nothing else builds an `async_graphql::Error`.

use async_graphql::{Error, ErrorExtensions};
use platform::i18n::Lang;
use platform::residents::desk::DeskError;

#[derive(Debug)]
pub enum ApiError {
    NotFound(String),
    Validation(String),
    /// The state of things refuses the input (CONFLICT).
    Conflict(String),
    /// The caller's role does not allow this.
    Forbidden,
    /// The caller's municipality is suspended (the guard's `Denied::Suspended`): FORBIDDEN with
    /// `extensions.reason = "TENANT_SUSPENDED"`.
    Suspended,
    /// No valid API key or session.
    Unauthenticated,
    Internal(String),
    /// The resident desk's refusal, already in the caller's language (`code` is the desk's own:
    /// `NOT_FOUND`, `VALIDATION`, `CONFLICT`, `UNAUTHENTICATED`, …).
    Refused {
        code: &'static str,
        message: String,
        retry_after_secs: Option<i64>,
        /// `TENANT_SUSPENDED` for a suspended city, as with [`ApiError::Suspended`].
        reason: Option<&'static str>,
    },
}

impl ApiError {
    /// The resident desk's refusal in the request's language.
    pub fn desk(e: DeskError, lang: Lang) -> Self {
        match e {
            DeskError::Database(db) => db.into(),
            other => Self::Refused {
                code: other.code(),
                message: other.message(lang),
                retry_after_secs: other.retry_after_secs(),
                reason: matches!(other, DeskError::Suspended).then_some("TENANT_SUSPENDED"),
            },
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        if let ApiError::Suspended = e {
            return Error::new(platform::staff::authz::SUSPENDED_MESSAGE.1).extend_with(
                |_, ext| {
                    ext.set("code", "FORBIDDEN");
                    ext.set("reason", "TENANT_SUSPENDED");
                },
            );
        }
        if let ApiError::Refused {
            code,
            message,
            retry_after_secs,
            reason,
        } = e
        {
            return Error::new(message).extend_with(|_, ext| {
                ext.set("code", code);
                if let Some(r) = retry_after_secs {
                    ext.set("retryAfter", r);
                }
                if let Some(r) = reason {
                    ext.set("reason", r);
                }
            });
        }
        let (code, message) = match e {
            ApiError::NotFound(what) => ("NOT_FOUND", format!("{what} not found")),
            ApiError::Validation(why) => ("VALIDATION", why),
            ApiError::Conflict(why) => ("CONFLICT", why),
            ApiError::Forbidden | ApiError::Suspended => (
                "FORBIDDEN",
                "your role or API key scopes do not allow this".to_owned(),
            ),
            ApiError::Unauthenticated => (
                "FORBIDDEN",
                "send an API key (Authorization: Bearer yk_…) or log in to the admin UI".to_owned(),
            ),
            ApiError::Refused { .. } => unreachable!("answered above"),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "graphql resolver failed");
                (
                    "INTERNAL",
                    "something went wrong on our side; please try again".to_owned(),
                )
            }
        };
        Error::new(message).extend_with(|_, ext| ext.set("code", code))
    }
}
