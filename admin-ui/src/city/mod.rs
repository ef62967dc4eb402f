//! A city's own pages at `/admin/t/{slug}/…`: staff and roles, vaccines, venues, schedules and
//! slots, resident import and lookup, the audit log. Each handler first asks the guard for a scope.

use axum::{
    extract::{Path, State},
    response::Response,
};
use maud::html;
use platform::city::setup;
use platform::staff::authz::{Act, Object};

use crate::i18n::K;
use crate::page::{PageError, Staff};
use crate::routes::{Access as A, Route, get, post};
use crate::shell::{enter, render};
use crate::sms_budget;
use crate::state::AdminState;

mod api_keys;
mod members;
mod records;
mod residents;
mod vaccines_venues;

use api_keys::{api_keys, create_api_key, revoke_api_key, rotate_api_key};
use members::{invite, remove_staff, reset_link, staff_page};
use records::{audit, statistics, statistics_xlsx};
use residents::{import_page, import_upload, residents};
use vaccines_venues::{
    create_schedule, create_vaccine, create_venue, set_capacity, vaccines, venue, venues,
};

pub fn routes() -> Vec<Route> {
    vec![
        get("/admin/t/{slug}", A::Member, home),
        get(
            "/admin/t/{slug}/staff",
            A::City(Object::Staff, Act::Read),
            staff_page,
        ),
        post(
            "/admin/t/{slug}/staff",
            A::City(Object::Staff, Act::Write),
            invite,
        ),
        post(
            "/admin/t/{slug}/staff/{account}/remove",
            A::City(Object::Staff, Act::Write),
            remove_staff,
        ),
        post(
            "/admin/t/{slug}/staff/{account}/reset",
            A::City(Object::Staff, Act::Write),
            reset_link,
        ),
        get(
            "/admin/t/{slug}/vaccines",
            A::City(Object::Vaccines, Act::Read),
            vaccines,
        ),
        post(
            "/admin/t/{slug}/vaccines",
            A::City(Object::Vaccines, Act::Write),
            create_vaccine,
        ),
        get(
            "/admin/t/{slug}/venues",
            A::City(Object::Venues, Act::Read),
            venues,
        ),
        post(
            "/admin/t/{slug}/venues",
            A::City(Object::Venues, Act::Write),
            create_venue,
        ),
        get("/admin/t/{slug}/venues/{venue}", A::Venue(Act::Read), venue),
        post(
            "/admin/t/{slug}/venues/{venue}/schedules",
            A::Venue(Act::Write),
            create_schedule,
        ),
        post(
            "/admin/t/{slug}/venues/{venue}/slots/{slot}",
            A::Venue(Act::Write),
            set_capacity,
        ),
        get(
            "/admin/t/{slug}/import",
            A::City(Object::Imports, Act::Write),
            import_page,
        ),
        post(
            "/admin/t/{slug}/import",
            A::City(Object::Imports, Act::Write),
            import_upload,
        ),
        get(
            "/admin/t/{slug}/residents",
            A::City(Object::Residents, Act::Read),
            residents,
        ),
        get(
            "/admin/t/{slug}/audit",
            A::City(Object::Audit, Act::Read),
            audit,
        ),
        get(
            "/admin/t/{slug}/statistics",
            A::City(Object::Statistics, Act::Read),
            statistics,
        ),
        get(
            "/admin/t/{slug}/statistics.xlsx",
            A::City(Object::Statistics, Act::Read),
            statistics_xlsx,
        ),
        get(
            "/admin/t/{slug}/api-keys",
            A::City(Object::ApiKeys, Act::Read),
            api_keys,
        ),
        post(
            "/admin/t/{slug}/api-keys",
            A::City(Object::ApiKeys, Act::Write),
            create_api_key,
        ),
        post(
            "/admin/t/{slug}/api-keys/{id}/revoke",
            A::City(Object::ApiKeys, Act::Write),
            revoke_api_key,
        ),
        post(
            "/admin/t/{slug}/api-keys/{id}/rotate",
            A::City(Object::ApiKeys, Act::Write),
            rotate_api_key,
        ),
    ]
}

pub async fn home(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let tenant = tenants::find_by_slug(&state.pool, &slug)
        .await?
        .ok_or(PageError::not_found(lang))?;
    state
        .authz
        .admit(&staff.actor, tenant.id)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    let mut assigned = Vec::new();
    for id in state
        .authz
        .assigned_venues(&staff.actor.subject, tenant.id)
        .await
    {
        let (_, mut scope) = enter(&state, &staff, &slug, Object::Venue(id), Act::Read).await?;
        if let Ok(v) = setup::venue(&mut scope, id).await {
            assigned.push(v);
        }
    }
    let banner = sms_budget::budget_banner(&state, &staff, &tenant).await?;
    let body = html! {
        @if let Some(b) = banner { (b) }
        @if !assigned.is_empty() {
            h2 { (lang.t(K::Venues)) }
            ul { @for v in &assigned { li { a href={"/admin/t/" (slug) "/venues/" (v.id)} { (v.name) } } } }
        }
    };
    Ok(render(&staff, &tenant, lang.t(K::Dashboard), body))
}
