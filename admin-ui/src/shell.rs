//! The frame of a city's pages at `/admin/t/{slug}/…`: entering the city through the guard
//! ([`enter`]), the city's menu (drawn from [`crate::routes::CITY_MENU`], so this module knows no
//! feature module) and the framed page ([`render`], [`unprocessable`]). Feature modules import it;
//! it imports none of them.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use maud::{Markup, html};
use platform::staff::authz::{Act, Object, Scope};
use tenants::Tenant;

use crate::i18n::Lang;
use crate::page::{PageError, Staff, page};
use crate::routes::CITY_MENU;
use crate::state::AdminState;

/// The tenant and the guard's scope, or 404 (unknown tenant, not a member, another venue) / 403
/// (role too small, or the city is suspended: the guard decides, this only renders).
pub(crate) async fn enter(
    state: &AdminState,
    staff: &Staff,
    slug: &str,
    object: Object,
    act: Act,
) -> Result<(Tenant, Scope), PageError> {
    let lang = staff.lang;
    let tenant = tenants::find_by_slug(&state.pool, slug)
        .await?
        .ok_or(PageError::not_found(lang))?;
    let scope = state
        .authz
        .enter(&staff.actor, tenant.id, object, act)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    Ok((tenant, scope))
}

/// The city's menu, from [`crate::routes::CITY_MENU`].
fn nav(lang: Lang, slug: &str) -> Markup {
    html! {
        nav {
            @for entry in CITY_MENU {
                a href=(entry.path.replace("{slug}", slug)) { (lang.t(entry.label)) }
            }
        }
    }
}

pub(crate) fn render(staff: &Staff, t: &Tenant, title: &str, body: Markup) -> Response {
    let framed = html! { (nav(staff.lang, &t.slug)) (body) };
    page(
        staff.lang,
        &format!("{} – {title}", t.name),
        Some(staff),
        framed,
    )
    .into_response()
}

pub(crate) fn unprocessable(staff: &Staff, t: &Tenant, title: &str, body: Markup) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        render(staff, t, title, body),
    )
        .into_response()
}
