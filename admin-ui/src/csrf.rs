//! CSRF protection for the whole admin router, as one layer ([`protect`]) rather than a call in
//! every handler: a route added to the router is covered without anyone remembering it.
//!
//! Every request under `/admin` whose method is not GET, HEAD or OPTIONS must carry the expected
//! token, in the form field `csrf` (URL-encoded or multipart forms) or in the `x-csrf-token`
//! header. The expected token is
//! * before a session exists (the login form, the invitation and password-reset forms: see
//!   [`before_session`]) the random `yoyaku_csrf` cookie that the form repeats (double submit);
//! * otherwise the CSRF token stored with the staff session of the `yoyaku_staff` cookie.
//!
//! A request without a session is sent to the login page; one with a session but without the
//! session's token gets 403. Either way it never reaches a handler, so nothing changes. A request
//! that passes carries its checked session on to the [`crate::Staff`] extractor, so the session is
//! looked up once.

use axum::{
    Form,
    body::{Body, to_bytes},
    extract::{FromRequest, Multipart, Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use platform::staff::identity::{self};

use crate::i18n::Lang;
use crate::page::{Checked, PageError};
use crate::state::{AdminState, CSRF_COOKIE, SESSION_COOKIE, cookie};

/// The header a script may use instead of the form field.
pub const HEADER: &str = "x-csrf-token";
/// The form field every admin form carries ([`crate::csrf_field`]).
pub const FIELD: &str = "csrf";

/// The forms shown before there is a session, which use the double-submit cookie.
pub fn before_session(path: &str) -> bool {
    path == "/admin/login"
        || path.starts_with("/admin/invitation/")
        || path.starts_with("/admin/password-reset/")
}

/// Methods that change nothing (and so carry no token).
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The layer: `axum::middleware::from_fn_with_state(state, csrf::protect)` on the whole admin
/// router.
pub async fn protect(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if is_safe(request.method()) {
        return next.run(request).await;
    }
    let lang = Lang::from_headers(request.headers());
    let path = request.uri().path().to_owned();
    let (expected, session) = if before_session(&path) {
        match cookie(request.headers(), CSRF_COOKIE) {
            Some(t) if !t.is_empty() => (t.to_owned(), None),
            _ => return PageError::csrf(lang).into_response(),
        }
    } else {
        let session = match cookie(request.headers(), SESSION_COOKIE) {
            Some(t) => match identity::session(&state.pool, &state.policy, t).await {
                Ok(s) => s,
                Err(e) => return PageError::from(e).into_response(),
            },
            None => None,
        };
        match session {
            Some(s) => (s.csrf_token.clone(), Some(s)),
            None => return Redirect::to("/admin/login").into_response(),
        }
    };
    let (mut parts, body) = request.into_parts();
    // the server's body limit (tower-http, outside this layer) bounds what is read here
    let bytes = match to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                PageError::bad_request("the form is too large", lang),
            )
                .into_response();
        }
    };
    let shown = match parts.headers.get(HEADER).and_then(|v| v.to_str().ok()) {
        Some(t) => Some(t.to_owned()),
        None => form_token(&parts, &bytes).await,
    };
    if !shown.is_some_and(|t| identity::constant_time_eq(&t, &expected)) {
        tracing::info!(path = %path, "form without a valid CSRF token refused");
        return PageError::csrf(lang).into_response();
    }
    if let Some(s) = session {
        parts.extensions.insert(Checked(s));
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The `csrf` field of a URL-encoded or multipart body.
async fn form_token(
    parts: &axum::http::request::Parts,
    bytes: &axum::body::Bytes,
) -> Option<String> {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let probe = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(probe, &()).await.ok()?;
        while let Ok(Some(field)) = form.next_field().await {
            if field.name() == Some(FIELD) {
                return field.text().await.ok();
            }
        }
        None
    } else {
        let Form(fields) = Form::<Vec<(String, String)>>::from_request(probe, &())
            .await
            .ok()?;
        fields.into_iter().find(|(k, _)| k == FIELD).map(|(_, v)| v)
    }
}
