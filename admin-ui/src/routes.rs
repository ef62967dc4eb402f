//! The admin UI's routes as one table: method, path and what the guard must allow for it.
//!
//! [`crate::router`] is built from this table only, and each route is wrapped in
//! [`guard`], which asks the one guard (`platform::staff::authz`) for the route's [`Access`] before the
//! handler runs (before its form is even parsed). The authorization matrix test
//! (`tests/e2e/authz_matrix.rs`) reads the same table through [`crate::routes`], so a route cannot
//! be added without declaring who may use it, and without the test requesting it for every role.
//!
//! `Access` is the least a route needs; a handler may ask the guard for more for some of its
//! actions (saving a template needs write where previewing it needs read) and always enters its
//! own scope — the table never widens what a handler allows.

use std::collections::HashMap;

use axum::{
    extract::{FromRef, Path, Request, State},
    handler::Handler,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::MethodRouter,
};
use platform::staff::authz::{Act, Denied, Object};
use uuid::Uuid;

use crate::i18n::K;
use crate::page::{PageError, Staff};
use crate::state::AdminState;

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

/// Who may use a route. `{slug}` in the path names the city, `{venue}` the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No session needed: login, invitation and reset links, static files.
    Public,
    /// Any logged-in person, no city: the start page, logout.
    Session,
    /// The platform operator only: the registry, plans, the billing console (`{slug}` is any city).
    Operator,
    /// Working for the city at all (its start page): the guard's tenant check alone.
    Member,
    /// The guard on this object and act in the city.
    City(Object, Act),
    /// Either of two (a page that shows what the role may see, e.g. notifications or their log).
    CityEither((Object, Act), (Object, Act)),
    /// The venue `{venue}` of the city (`Object::Venue`).
    Venue(Act),
    /// Intake at the venue `{venue}` (`Object::Intake` and `Object::Venue`).
    Intake(Act),
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// One entry of a city's menu: the page's route (`{slug}` is the city), its label and the access
/// that route declares in the table (a unit test checks that each entry is a GET row of the table
/// with this access). The menu shows every entry; the guard decides when one is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MenuEntry {
    pub path: &'static str,
    pub label: K,
    pub access: Access,
}

const fn entry(path: &'static str, label: K, access: Access) -> MenuEntry {
    MenuEntry {
        path,
        label,
        access,
    }
}

/// The menu of a city's pages, in the order shown (drawn by `crate::shell`).
pub const CITY_MENU: [MenuEntry; 16] = [
    entry(
        "/admin/t/{slug}/staff",
        K::Staff,
        Access::City(Object::Staff, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/vaccines",
        K::Vaccines,
        Access::City(Object::Vaccines, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/venues",
        K::Venues,
        Access::City(Object::Venues, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/booking-rules",
        K::BookingRules,
        Access::City(Object::Venues, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/import",
        K::Import,
        Access::City(Object::Imports, Act::Write),
    ),
    entry(
        "/admin/t/{slug}/residents",
        K::Residents,
        Access::City(Object::Residents, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/audit",
        K::Audit,
        Access::City(Object::Audit, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/statistics",
        K::Statistics,
        Access::City(Object::Statistics, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/api-keys",
        K::ApiKeys,
        Access::City(Object::ApiKeys, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/billing",
        K::UsageAndInvoices,
        Access::City(Object::Billing, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/callcenter",
        K::CallCenter,
        Access::City(Object::CallCenter, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/exports",
        K::Exports,
        Access::City(Object::Exports, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/overview",
        K::Overview,
        Access::City(Object::Statistics, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/intake",
        K::Intake,
        Access::City(Object::Intake, Act::Read),
    ),
    entry(
        "/admin/t/{slug}/notifications",
        K::Notifications,
        Access::CityEither(
            (Object::Notifications, Act::Read),
            (Object::DeliveryLog, Act::Read),
        ),
    ),
    entry(
        "/admin/t/{slug}/webhooks",
        K::Webhooks,
        Access::City(Object::Webhooks, Act::Read),
    ),
];

/// A row and its handler.
pub struct Route {
    pub spec: RouteSpec,
    pub handler: MethodRouter<AdminState>,
}

pub fn get<H, T>(path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, AdminState>,
    T: 'static,
{
    Route {
        spec: RouteSpec {
            method: Method::Get,
            path,
            access,
        },
        handler: axum::routing::get(handler),
    }
}

pub fn post<H, T>(path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, AdminState>,
    T: 'static,
{
    Route {
        spec: RouteSpec {
            method: Method::Post,
            path,
            access,
        },
        handler: axum::routing::post(handler),
    }
}

impl Route {
    /// The handler behind the guard for this row's access.
    pub fn guarded(self, state: &AdminState) -> MethodRouter<AdminState> {
        match self.spec.access {
            Access::Public => self.handler,
            access => self.handler.route_layer(middleware::from_fn_with_state(
                GuardState {
                    state: state.clone(),
                    access,
                },
                guard,
            )),
        }
    }
}

#[derive(Clone)]
struct GuardState {
    state: AdminState,
    access: Access,
}

impl FromRef<GuardState> for AdminState {
    fn from_ref(g: &GuardState) -> Self {
        g.state.clone()
    }
}

/// Asks the guard for the route's access; on success the handler runs with the same `Staff`
/// (kept in the request, so the session is read once). No session: the login page, as always.
async fn guard(
    State(GuardState { state, access }): State<GuardState>,
    staff: Staff,
    params: Option<Path<HashMap<String, String>>>,
    mut request: Request,
    next: Next,
) -> Response {
    let params = params.map(|Path(p)| p).unwrap_or_default();
    match decide(&state, &staff, access, &params).await {
        Ok(()) => {
            request.extensions_mut().insert(staff);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn decide(
    state: &AdminState,
    staff: &Staff,
    access: Access,
    params: &HashMap<String, String>,
) -> Result<(), PageError> {
    let lang = staff.lang;
    let authz = &state.authz;
    let actor = &staff.actor;
    let denied = |d: Denied| PageError::denied(d, lang);
    let city = || async {
        let slug = params.get("slug").map(String::as_str).unwrap_or_default();
        tenants::find_by_slug(&state.pool, slug)
            .await?
            .map(|t| t.id)
            .ok_or(PageError::not_found(lang))
    };
    let venue = || {
        params
            .get("venue")
            .and_then(|v| Uuid::try_parse(v).ok())
            .ok_or(PageError::not_found(lang))
    };
    match access {
        Access::Public | Access::Session => Ok(()),
        Access::Operator => {
            if authz.is_platform_operator(actor).await {
                Ok(())
            } else {
                Err(PageError::not_found(lang))
            }
        }
        Access::Member => authz.admit(actor, city().await?).await.map_err(denied),
        Access::City(object, act) => authz
            .allow(actor, city().await?, object, act)
            .await
            .map_err(denied),
        Access::CityEither((o1, a1), (o2, a2)) => {
            let tenant = city().await?;
            match authz.allow(actor, tenant, o1, a1).await {
                Err(Denied::Forbidden) => authz.allow(actor, tenant, o2, a2).await,
                other => other,
            }
            .map_err(denied)
        }
        Access::Venue(act) => authz
            .allow(actor, city().await?, Object::Venue(venue()?), act)
            .await
            .map_err(denied),
        Access::Intake(act) => platform::intake::allow(authz, actor, city().await?, venue()?, act)
            .await
            .map_err(denied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_menu_entry_is_a_get_route_with_the_same_access() {
        let table = crate::routes();
        for entry in CITY_MENU {
            let row = table
                .iter()
                .find(|r| r.method == Method::Get && r.path == entry.path)
                .unwrap_or_else(|| panic!("no GET route for the menu entry {}", entry.path));
            assert_eq!(row.access, entry.access, "{}", entry.path);
        }
    }
}
