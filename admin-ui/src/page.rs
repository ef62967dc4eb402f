//! What every admin page is built from: the logged-in staff member ([`Staff`], an extractor), the
//! error page ([`PageError`]), the page frame ([`page`]) and the hidden CSRF field of a form.

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{StatusCode, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
};
use maud::{DOCTYPE, Markup, html};
use platform::staff::authz::{Actor, Denied};
use platform::staff::identity::{self, Session};

use crate::i18n::{K, Lang};
use crate::state::{AdminState, SESSION_COOKIE, client_ip, cookie};

/// A session whose CSRF token this request has shown; only the CSRF layer ([`crate::csrf`])
/// creates one.
#[derive(Clone)]
pub(crate) struct Checked(pub(crate) Session);

/// A logged-in staff member; extracting it redirects to the login page when there is no session.
#[derive(Clone)]
pub struct Staff {
    pub session: Session,
    pub actor: Actor,
    pub lang: Lang,
}

impl<S> FromRequestParts<S> for Staff
where
    AdminState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // the route's guard (routes.rs) read the session already
        if let Some(staff) = parts.extensions.get::<Staff>() {
            return Ok(staff.clone());
        }
        let state = AdminState::from_ref(state);
        let lang = Lang::from_headers(&parts.headers);
        let token = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned);
        let session = match (parts.extensions.remove::<Checked>(), token) {
            // a form post: the CSRF layer looked the session up already
            (Some(Checked(s)), _) => Some(s),
            (None, Some(t)) => identity::session(&state.pool, &state.policy, &t)
                .await
                .map_err(|e| PageError::from(e).into_response())?,
            (None, None) => None,
        };
        match session {
            Some(session) => {
                let actor =
                    Actor::staff(session.account.id, &session.account.email, client_ip(parts));
                Ok(Staff {
                    session,
                    actor,
                    lang,
                })
            }
            None => Err(Redirect::to("/admin/login").into_response()),
        }
    }
}

/// A page that could not be shown: status and a message a person can act on.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
    pub lang: Lang,
}

impl PageError {
    pub fn not_found(lang: Lang) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: lang.t(K::NotFound).into(),
            lang,
        }
    }
    pub fn csrf(lang: Lang) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: lang.t(K::Csrf).into(),
            lang,
        }
    }
    pub fn denied(d: Denied, lang: Lang) -> Self {
        match d {
            Denied::NotFound => Self::not_found(lang),
            Denied::Forbidden => Self {
                status: StatusCode::FORBIDDEN,
                message: lang.t(K::Forbidden).into(),
                lang,
            },
            Denied::Suspended => Self {
                status: StatusCode::FORBIDDEN,
                message: match lang {
                    Lang::Ja => platform::staff::authz::SUSPENDED_MESSAGE.0,
                    Lang::En => platform::staff::authz::SUSPENDED_MESSAGE.1,
                }
                .into(),
                lang,
            },
            Denied::Database(e) => Self::from(e),
        }
    }
    pub fn bad_request(message: impl Into<String>, lang: Lang) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            lang,
        }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "admin page failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message:
                "Something went wrong on our side; please try again. / 一時的な問題が発生しました。"
                    .into(),
            lang: Lang::Ja,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = page(
            self.lang,
            self.lang.t(K::Error),
            None,
            html! {
                p.error role="alert" { (self.message) }
                p { a href="/admin" { (self.lang.t(K::BackHome)) } }
            },
        );
        (self.status, body).into_response()
    }
}

/// The page frame: phone-usable (viewport, fluid layout), a header with navigation and logout.
pub fn page(lang: Lang, title: &str, staff: Option<&Staff>, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang=(lang.code()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " – Yoyaku admin" }
                    style { (maud::PreEscaped(CSS)) }
                }
                body {
                    header {
                        a href="/admin" { "Yoyaku " (lang.t(K::Admin)) }
                        @if let Some(s) = staff {
                            span.who { (s.session.account.email) }
                            form method="post" action="/admin/logout" {
                                input type="hidden" name="csrf" value=(s.session.csrf_token);
                                button type="submit" { (lang.t(K::Logout)) }
                            }
                        }
                    }
                    main {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
}

/// The hidden CSRF field every form of a session carries.
pub fn csrf_field(staff: &Staff) -> Markup {
    html! { input type="hidden" name="csrf" value=(staff.session.csrf_token); }
}

const CSS: &str = "body{font-family:system-ui,'Noto Sans CJK JP',sans-serif;margin:0;line-height:1.5}\
header{display:flex;gap:1em;align-items:center;flex-wrap:wrap;padding:.5em 1em;background:#0b4f6c;color:#fff}\
header a{color:#fff;font-weight:bold}header form{margin:0}.who{margin-left:auto}\
main{padding:1em;max-width:60em}label{display:block;margin:.5em 0}input,select,button{font-size:1em;padding:.3em;max-width:100%}\
table{border-collapse:collapse;width:100%;overflow-x:auto;display:block}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}\
.error{color:#a00;font-weight:bold}.ok{color:#060;font-weight:bold}nav a{margin-right:1em}fieldset{margin:1em 0}";
