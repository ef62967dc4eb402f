//! The staff and operator web UI at `/admin`: server-rendered (maud), works without JavaScript,
//! Japanese and English. Thin by design: parse the form, ask the guard for a scope, call `platform`,
//! render. Every page that touches a tenant goes through [`platform::staff::authz::Authz::enter`].

mod auth;
mod billing;
mod callcenter;
mod city;
pub mod csrf;
mod exports;
mod i18n;
mod intake;
mod notifications;
mod operator;
mod overview;
pub mod routes;
mod rules;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Router,
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
};
use maud::{DOCTYPE, Markup, html};
use platform::staff::authz::{Actor, Authz, Denied};
use platform::staff::identity::{self, AuthPolicy, Session};
use sqlx::PgPool;

pub use i18n::Lang;
use routes::Route;
pub use routes::{Access, Method, RouteSpec};

/// What every admin handler needs.
#[derive(Clone)]
pub struct AdminState {
    pub pool: PgPool,
    pub authz: Authz,
    pub policy: Arc<AuthPolicy>,
    /// Set the cookies' Secure flag (the server is reached over https).
    pub secure_cookies: bool,
    /// Base of links handed to people (invitations, password resets).
    pub public_url: String,
    /// Seals and opens the cities' notification channel credentials (notifications page).
    pub sealing_key: platform::notifications::channels::SealingKey,
}

pub const SESSION_COOKIE: &str = "yoyaku_staff";
/// Double-submit CSRF cookie for the forms shown before login.
pub const CSRF_COOKIE: &str = "yoyaku_csrf";

/// Every admin route with who may use it (see [`routes`]): the one list the router is built from.
fn table() -> Vec<Route> {
    use routes::{Access::*, get, post};
    let mut all = vec![
        get("/admin", Session, auth::dashboard),
        get("/admin/login", Public, auth::login_page),
        post("/admin/login", Public, auth::login),
        post("/admin/logout", Session, auth::logout),
        get("/admin/invitation/{token}", Public, auth::invitation_page),
        post("/admin/invitation/{token}", Public, auth::accept_invitation),
        get("/admin/password-reset/{token}", Public, auth::reset_page),
        post(
            "/admin/password-reset/{token}",
            Public,
            auth::reset_password,
        ),
        get("/admin/tenants", Operator, operator::tenants),
        post("/admin/tenants", Operator, operator::onboard),
        get("/admin/tenants/{slug}", Operator, operator::tenant),
        post(
            "/admin/tenants/{slug}/invite",
            Operator,
            operator::invite_admin,
        ),
        post(
            "/admin/tenants/{slug}/status",
            Operator,
            operator::set_status,
        ),
    ];
    all.extend(city::routes());
    all.extend(billing::routes());
    all.extend(rules::routes());
    all.extend(callcenter::routes());
    all.extend(exports::routes());
    all.extend(overview::routes());
    all.extend(intake::routes());
    all.extend(notifications::routes());
    all
}

/// The route table: method, path and the access each route needs. The router is built from it and
/// the authorization matrix test reads it, so no route escapes the test.
pub fn routes() -> Vec<RouteSpec> {
    table().into_iter().map(|r| r.spec).collect()
}

/// The admin router: every row of [`routes`] behind the guard for its access.
pub fn router<S>(state: AdminState) -> Router<S> {
    let mut router = Router::new();
    for route in table() {
        let path = route.spec.path;
        router = router.route(path, route.guarded(&state));
    }
    router
        // every other path under /admin is this router's too (404), so the layer below covers it
        .route("/admin/{*rest}", axum::routing::any(not_found))
        // last, so it wraps every route above: no POST reaches a handler without its CSRF token
        // (csrf.rs)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::protect,
        ))
        .with_state(state)
}

/// Any other address under /admin.
async fn not_found(headers: HeaderMap) -> PageError {
    PageError::not_found(Lang::from_headers(&headers))
}

/// The client's address, from the connection (the server does not trust forwarding headers).
pub fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// The client's address as an extractor (None when the server was not started with connect info).
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts)))
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Path=/ so that `/graphql` (GraphiQL) sees the staff session too; SameSite=Lax keeps it off
/// cross-site posts.
pub fn set_cookie(state: &AdminState, name: &str, value: &str, max_age_secs: i64) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{}",
        if state.secure_cookies { "; Secure" } else { "" }
    )
}

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
        let session = match (parts.extensions.remove::<csrf::Checked>(), token) {
            // a form post: the CSRF layer looked the session up already
            (Some(csrf::Checked(s)), _) => Some(s),
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
            message: lang.t("not_found").into(),
            lang,
        }
    }
    pub fn csrf(lang: Lang) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: lang.t("csrf").into(),
            lang,
        }
    }
    pub fn denied(d: Denied, lang: Lang) -> Self {
        match d {
            Denied::NotFound => Self::not_found(lang),
            Denied::Forbidden => Self {
                status: StatusCode::FORBIDDEN,
                message: lang.t("forbidden").into(),
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
            self.lang.t("error"),
            None,
            html! {
                p.error role="alert" { (self.message) }
                p { a href="/admin" { (self.lang.t("back_home")) } }
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
                        a href="/admin" { "Yoyaku " (lang.t("admin")) }
                        @if let Some(s) = staff {
                            span.who { (s.session.account.email) }
                            form method="post" action="/admin/logout" {
                                input type="hidden" name="csrf" value=(s.session.csrf_token);
                                button type="submit" { (lang.t("logout")) }
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
