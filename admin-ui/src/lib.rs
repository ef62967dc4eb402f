//! The staff and operator web UI at `/admin`: server-rendered (maud), works without JavaScript,
//! Japanese and English. Thin by design: parse the form, ask the guard for a scope, call `platform`,
//! render. Every page that touches a tenant goes through [`platform::staff::authz::Authz::enter`].

mod auth;
mod billing;
mod callcenter;
mod city;
pub mod csrf;
mod exports;
mod format;
mod i18n;
mod intake;
mod jobs;
mod notifications;
mod operator;
mod overview;
mod page;
pub mod routes;
mod rules;
mod shell;
mod sms_budget;
mod state;
mod webhooks;

use axum::{Router, http::HeaderMap};

pub use i18n::{K, Lang};
pub use page::{PageError, Staff, csrf_field, page};
use routes::Route;
pub use routes::{Access, Method, RouteSpec};
pub use state::{AdminState, CSRF_COOKIE, ClientIp, SESSION_COOKIE, client_ip, cookie, set_cookie};

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
    all.extend(webhooks::routes());
    all.extend(jobs::routes());
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
