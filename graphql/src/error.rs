//! Errors as GraphQL sees them: a message a person can act on and an `extensions.code` a program can
//! branch on (docs/api.md). Internal details are logged once, here, and never returned.

use async_graphql::{Error, ErrorExtensions};

#[derive(Debug)]
pub enum ApiError {
    NotFound(String),
    Validation(String),
    /// The caller's role does not allow this.
    Forbidden,
    /// The caller's municipality is suspended (the guard's `Denied::Suspended`): FORBIDDEN with
    /// `extensions.reason = "TENANT_SUSPENDED"`.
    Suspended,
    /// No valid API key or session.
    Unauthenticated,
    Internal(String),
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
        let (code, message) = match e {
            ApiError::NotFound(what) => ("NOT_FOUND", format!("{what} not found")),
            ApiError::Validation(why) => ("VALIDATION", why),
            ApiError::Forbidden | ApiError::Suspended => (
                "FORBIDDEN",
                "your role or API key scopes do not allow this".to_owned(),
            ),
            ApiError::Unauthenticated => (
                "FORBIDDEN",
                "send an API key (Authorization: Bearer yk_…) or log in to the admin UI".to_owned(),
            ),
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
