//! The resident booking site: server-rendered, phone first, works without JavaScript, in ja / en /
//! zh-Hans / pt. Thin by design: parse the form, call the resident desk
//! (`platform::residents::desk`: city status, session, booking path, questionnaire, cache), render.
//! A suspended city answers every page with 403 and a notice saying so.
//!
//! Pages under `/t/{tenant}/`: `login` → `code` → `bookings` (my bookings) → `venues` →
//! `venues/{venue}` (days) → `venues/{venue}/{date}` (times) → `confirm` → `done`; `cancel/{booking}`.
//! Changing a booking walks the same venue → day → time pages with `?change={booking}`. Every
//! route is a row of one table ([`routes`]), which the router is built from.
//!
//! * Language: the `yk_lang` cookie (set by the switch at the foot of every page), else
//!   Accept-Language with q-values, else the city's default.
//! * Session: cookie `yk_session` (HttpOnly, SameSite=Lax, path `/t/{tenant}`; `Secure`, like every
//!   cookie, is added by the server when `http.public_url` is https). Every form carries a
//!   CSRF token (bound to the session; before login, to a `yk_form` cookie) and an idempotency key.

mod book;
mod browse;
mod cancel;
mod context;
mod login;
mod page;
mod questionnaire;
pub mod routes;
mod text;

use axum::Router;
use platform::ResidentDesk;

pub use routes::{Method, RouteSpec};
use routes::{Route, get, post};

use book::{book_submit, change_submit, confirm_page, done};
use browse::{days, my_bookings, times, venues};
use cancel::{cancel_page, cancel_submit};
use login::{code_page, code_submit, login_page, login_submit, logout, start, switch_language};

/// Every resident route: the one list the router is built from (see [`routes`]).
fn table() -> Vec<Route> {
    vec![
        get("/t/{tenant}", start),
        get("/t/{tenant}/", start),
        get("/t/{tenant}/login", login_page),
        post("/t/{tenant}/login", login_submit),
        get("/t/{tenant}/code", code_page),
        post("/t/{tenant}/code", code_submit),
        post("/t/{tenant}/logout", logout),
        get("/t/{tenant}/lang/{tag}", switch_language),
        get("/t/{tenant}/bookings", my_bookings),
        get("/t/{tenant}/venues", venues),
        get("/t/{tenant}/venues/{venue}", days),
        get("/t/{tenant}/venues/{venue}/{date}", times),
        get("/t/{tenant}/confirm", confirm_page),
        post("/t/{tenant}/book", book_submit),
        post("/t/{tenant}/change", change_submit),
        get("/t/{tenant}/done", done),
        get("/t/{tenant}/cancel/{booking}", cancel_page),
        post("/t/{tenant}/cancel/{booking}", cancel_submit),
    ]
}

/// The route table: method and path of every resident route. The router is built from it, so a
/// test reading it requests every route there is.
pub fn routes() -> Vec<RouteSpec> {
    table().into_iter().map(|r| r.spec).collect()
}

/// The resident router: every row of [`routes`]. Rows with the same path (a page and its form
/// post) share one route.
pub fn router<S: Clone + Send + Sync + 'static>(desk: ResidentDesk) -> Router<S> {
    let mut router = Router::new();
    for route in table() {
        router = router.route(route.spec.path, route.handler);
    }
    router.with_state(desk)
}
