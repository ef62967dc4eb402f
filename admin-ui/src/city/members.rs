//! A city's staff and their roles (`/admin/t/{slug}/staff`): the member list, invitations,
//! removing a member and issuing a password reset link.

use axum::{
    Form,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use platform::city::setup::{self};
use platform::staff::authz::{Act, Object, ROLES, Role, Scope};
use platform::staff::identity;
use platform::staff::{self, StaffError};
use serde::Deserialize;
use tenants::Tenant;
use uuid::Uuid;

use crate::i18n::K;
use crate::page::{PageError, Staff, csrf_field};
use crate::shell::{enter, render, unprocessable};
use crate::state::AdminState;

async fn staff_body(
    state: &AdminState,
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    notice: Option<Markup>,
    message: Option<&str>,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let members = staff::members(scope, &state.authz, &state.pool)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "listing staff failed");
            PageError::bad_request("something went wrong on our side; please try again", lang)
        })?;
    let venues = setup::list_venues(scope).await?;
    Ok(html! {
        @if let Some(n) = notice { (n) }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        table {
            tr { th { (lang.t(K::Email)) } th { (lang.t(K::Role)) } th { (lang.t(K::Venues)) } th {} }
            @for m in &members {
                tr {
                    td { (m.email) }
                    td { (m.roles.join(", ")) }
                    td { @for v in &m.venues { (venues.iter().find(|x| x.id == *v).map(|x| x.name.as_str()).unwrap_or("?")) " " } }
                    td {
                        form method="post" action={"/admin/t/" (t.slug) "/staff/" (m.account_id) "/remove"} {
                            (csrf_field(staff)) button type="submit" { (lang.t(K::Remove)) }
                        }
                        @if m.active {
                            form method="post" action={"/admin/t/" (t.slug) "/staff/" (m.account_id) "/reset"} {
                                (csrf_field(staff)) button type="submit" { (lang.t(K::Forgot)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { (lang.t(K::Invite)) }
        form method="post" action={"/admin/t/" (t.slug) "/staff"} id="invite-staff" {
            (csrf_field(staff))
            label { (lang.t(K::Email)) br; input type="email" name="email" required; }
            label { (lang.t(K::Role)) br;
                select name="role" {
                    @for r in ROLES.iter().filter(|r| **r != Role::PlatformOperator) {
                        option value=(r.as_str()) { (r.as_str()) }
                    }
                }
            }
            label { (lang.t(K::Venue)) br;
                select name="venue" {
                    option value="" { "—" }
                    @for v in &venues { option value=(v.id) { (v.name) } }
                }
            }
            button type="submit" { (lang.t(K::Invite)) }
        }
    })
}

pub async fn staff_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Staff, Act::Read).await?;
    let body = staff_body(&state, &staff, &t, &mut scope, None, None).await?;
    Ok(render(&staff, &t, staff.lang.t(K::Staff), body))
}

#[derive(Deserialize)]
pub struct InviteStaffForm {
    email: String,
    role: String,
    #[serde(default)]
    venue: String,
}

pub async fn invite(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<InviteStaffForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Staff, Act::Write).await?;
    let role = Role::parse(&form.role).ok_or(PageError::bad_request("unknown role", lang))?;
    let venues: Vec<Uuid> = Uuid::parse_str(form.venue.trim())
        .ok()
        .into_iter()
        .collect();
    let result = staff::invite(
        &mut scope,
        &state.authz,
        &state.policy,
        &state.pool,
        &form.email,
        role,
        &venues,
    )
    .await;
    match result {
        Ok(invitation) => {
            let notice = match invitation {
                Some(inv) => {
                    let link = format!("{}/admin/invitation/{}", state.public_url, inv.token);
                    html! { p.ok { (lang.t(K::InvitationLink)) ": " (inv.email) } p { a #invitation-link href=(link) { (link) } } }
                }
                None => html! { p.ok { (lang.t(K::InvitedExisting)) } },
            };
            let body = staff_body(&state, &staff, &t, &mut scope, Some(notice), None).await?;
            scope.commit().await?;
            Ok(render(&staff, &t, lang.t(K::Staff), body))
        }
        Err(StaffError::Invalid(m))
        | Err(StaffError::Identity(identity::IdentityError::Invalid(m))) => {
            let body = staff_body(&state, &staff, &t, &mut scope, None, Some(&m)).await?;
            Ok(unprocessable(&staff, &t, lang.t(K::Staff), body))
        }
        Err(e) => {
            tracing::error!(error = %e, "invitation failed");
            Err(PageError::bad_request(
                "something went wrong on our side; please try again",
                lang,
            ))
        }
    }
}

pub async fn remove_staff(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, account)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Staff, Act::Write).await?;
    staff::remove(&mut scope, &state.authz, account)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "removing staff failed");
            PageError::bad_request(
                "something went wrong on our side; please try again",
                staff.lang,
            )
        })?;
    scope.commit().await?;
    Ok(Redirect::to(&format!("/admin/t/{}/staff", t.slug)).into_response())
}

/// A password reset link for a member, handed over by the admin like an invitation (there is no
/// e-mail channel yet, and a link shown to whoever asks would be a takeover).
pub async fn reset_link(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, account)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Staff, Act::Write).await?;
    let token = match staff::password_reset_link(
        &mut scope,
        &state.authz,
        &state.policy,
        &state.pool,
        account,
    )
    .await
    {
        Ok(token) => token,
        Err(StaffError::NotFound) => return Err(PageError::not_found(lang)),
        Err(StaffError::Invalid(m)) => {
            let body = staff_body(&state, &staff, &t, &mut scope, None, Some(&m)).await?;
            return Ok(unprocessable(&staff, &t, lang.t(K::Staff), body));
        }
        Err(e) => {
            tracing::error!(error = %e, "issuing a reset link failed");
            return Err(PageError::bad_request(
                "something went wrong on our side; please try again",
                lang,
            ));
        }
    };
    let link = format!("{}/admin/password-reset/{token}", state.public_url);
    let notice = html! { p.ok { (lang.t(K::Forgot)) } p { a #reset-link href=(link) { (link) } } };
    let body = staff_body(&state, &staff, &t, &mut scope, Some(notice), None).await?;
    scope.commit().await?;
    Ok(render(&staff, &t, lang.t(K::Staff), body))
}
