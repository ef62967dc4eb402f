//! The resident site's routes as one table: method and path of every page and form post, each with
//! its handler. [`crate::router`] is built from this table only, and [`crate::routes`] hands the
//! same rows (without handlers) to tests, so a test can request every resident route without a
//! list of its own (like `admin_ui::routes()` for the admin UI).

use axum::{handler::Handler, routing::MethodRouter};
use platform::ResidentDesk;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// One row of the table. `{tenant}` in the path is the city's slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
}

/// A row and its handler.
pub(crate) struct Route {
    pub(crate) spec: RouteSpec,
    pub(crate) handler: MethodRouter<ResidentDesk>,
}

pub(crate) fn get<H, T>(path: &'static str, handler: H) -> Route
where
    H: Handler<T, ResidentDesk>,
    T: 'static,
{
    Route {
        spec: RouteSpec {
            method: Method::Get,
            path,
        },
        handler: axum::routing::get(handler),
    }
}

pub(crate) fn post<H, T>(path: &'static str, handler: H) -> Route
where
    H: Handler<T, ResidentDesk>,
    T: 'static,
{
    Route {
        spec: RouteSpec {
            method: Method::Post,
            path,
        },
        handler: axum::routing::post(handler),
    }
}
