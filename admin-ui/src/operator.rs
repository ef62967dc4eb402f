//! The platform operator's pages: list and onboard municipalities, invite the first city admin,
//! suspend or re-activate a tenant.

use axum::{
    Form,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use platform::staff::authz::{Act, PlatformScope};
use platform::staff::{self, StaffError};
use serde::Deserialize;
use tenants::{
    LocalGovernmentCode, Locale, NewTenant, Slug, Tenant, TenantName, TenantStatus, TimeZone,
};

use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, csrf_field, page};
use crate::state::AdminState;

async fn platform_scope(
    state: &AdminState,
    staff: &Staff,
    act: Act,
) -> Result<PlatformScope, PageError> {
    state
        .authz
        .enter_platform(&staff.actor, act)
        .await
        .map_err(|d| PageError::denied(d, staff.lang))
}

#[derive(Deserialize, Default)]
pub struct OnboardForm {
    name: String,
    slug: String,
    code: String,
    time_zone: String,
    locales: String,
}

fn onboard_form(staff: &Staff, f: &OnboardForm, message: Option<&str>) -> Markup {
    let lang = staff.lang;
    html! {
        h2 { (lang.t(K::Onboard)) }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        form method="post" action="/admin/tenants" id="onboard" {
            (csrf_field(staff))
            label { (lang.t(K::Name)) br; input name="name" value=(f.name) required; }
            label { (lang.t(K::Slug)) br; input name="slug" value=(f.slug) required pattern="[a-z][a-z0-9-]+"; }
            label { (lang.t(K::Code)) br; input name="code" value=(f.code) required inputmode="numeric"; }
            label { (lang.t(K::TimeZone)) br; input name="time_zone" value=(if f.time_zone.is_empty() { "Asia/Tokyo" } else { &f.time_zone }); }
            label { (lang.t(K::Locales)) br; input name="locales" value=(if f.locales.is_empty() { "ja,en" } else { &f.locales }); }
            button type="submit" { (lang.t(K::Onboard)) }
        }
    }
}

async fn tenants_page(
    state: &AdminState,
    staff: &Staff,
    form: &OnboardForm,
    message: Option<&str>,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let all = tenants::list(&state.pool).await?;
    let billing = crate::billing::summaries(state, staff, &all).await?;
    Ok(html! {
        p { a href="/admin/plans" { (crate::billing::plans_label(lang)) } }
        table #tenants {
            tr { th { (lang.t(K::Name)) } th { (lang.t(K::Slug)) } th { (lang.t(K::Code)) } th { (lang.t(K::Status)) } (crate::billing::summary_headers(lang)) }
            @for (t, b) in all.iter().zip(&billing) {
                tr {
                    td { a href={"/admin/tenants/" (t.slug)} { (t.name) } }
                    td { (t.slug) } td { (t.local_government_code) } td { (t.status.as_str()) }
                    (b)
                }
            }
        }
        (onboard_form(staff, form, message))
    })
}

pub async fn tenants(State(state): State<AdminState>, staff: Staff) -> Result<Response, PageError> {
    platform_scope(&state, &staff, Act::Read).await?;
    let body = tenants_page(&state, &staff, &OnboardForm::default(), None).await?;
    Ok(page(
        staff.lang,
        staff.lang.t(K::Municipalities),
        Some(&staff),
        body,
    )
    .into_response())
}

fn parse_new_tenant(f: &OnboardForm) -> Result<NewTenant, tenants::DomainError> {
    let locales = f
        .locales
        .split(',')
        .filter(|l| !l.trim().is_empty())
        .map(Locale::parse)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NewTenant {
        slug: Slug::parse(f.slug.trim())?,
        name: TenantName::parse(&f.name)?,
        code: LocalGovernmentCode::parse(&f.code)?,
        time_zone: TimeZone::parse(if f.time_zone.trim().is_empty() {
            "Asia/Tokyo"
        } else {
            &f.time_zone
        })?,
        default_locale: locales.first().cloned().unwrap_or_default(),
        locales: if locales.is_empty() {
            vec![Locale::default()]
        } else {
            locales
        },
    })
}

pub async fn onboard(
    State(state): State<AdminState>,
    staff: Staff,
    Form(form): Form<OnboardForm>,
) -> Result<Response, PageError> {
    let scope = platform_scope(&state, &staff, Act::Write).await?;
    let result = match parse_new_tenant(&form) {
        Ok(new) => staff::onboard(&scope, &new).await.map_err(|e| match e {
            StaffError::Registry(r) => r.to_string(),
            other => {
                tracing::error!(error = %other, "onboarding failed");
                "something went wrong on our side; please try again".into()
            }
        }),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(t) => Ok(Redirect::to(&format!("/admin/tenants/{}", t.slug)).into_response()),
        Err(message) => {
            let body = tenants_page(&state, &staff, &form, Some(&message)).await?;
            let html = page(
                staff.lang,
                staff.lang.t(K::Municipalities),
                Some(&staff),
                body,
            );
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html).into_response())
        }
    }
}

async fn find(state: &AdminState, slug: &str, lang: Lang) -> Result<Tenant, PageError> {
    tenants::find_by_slug(&state.pool, slug)
        .await?
        .ok_or(PageError::not_found(lang))
}

fn tenant_page(staff: &Staff, t: &Tenant, notice: Option<Markup>, message: Option<&str>) -> Markup {
    let lang = staff.lang;
    html! {
        p { (t.local_government_code) " · " (t.slug) " · " (t.time_zone.name()) " · " (t.locales.join(", ")) }
        p { (lang.t(K::Status)) ": " strong #status { (t.status.as_str()) } }
        p { a #billing-link href={"/admin/tenants/" (t.slug) "/billing"} { (crate::billing::billing_label(lang)) } }
        @if let Some(n) = notice { (n) }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        h2 { (lang.t(K::InviteAdmin)) }
        form method="post" action={"/admin/tenants/" (t.slug) "/invite"} id="invite-admin" {
            (csrf_field(staff))
            label { (lang.t(K::Email)) br; input type="email" name="email" required; }
            button type="submit" { (lang.t(K::Invite)) }
        }
        form method="post" action={"/admin/tenants/" (t.slug) "/status"} {
            (csrf_field(staff))
            @if t.status == TenantStatus::Suspended {
                input type="hidden" name="status" value="active";
                button type="submit" id="activate" { (lang.t(K::Activate)) }
            } @else {
                input type="hidden" name="status" value="suspended";
                button type="submit" id="suspend" { (lang.t(K::Suspend)) }
            }
        }
    }
}

pub async fn tenant(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    platform_scope(&state, &staff, Act::Read).await?;
    let t = find(&state, &slug, staff.lang).await?;
    Ok(page(
        staff.lang,
        &t.name.clone(),
        Some(&staff),
        tenant_page(&staff, &t, None, None),
    )
    .into_response())
}

#[derive(Deserialize)]
pub struct InviteForm {
    email: String,
}

pub async fn invite_admin(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<InviteForm>,
) -> Result<Response, PageError> {
    let scope = platform_scope(&state, &staff, Act::Write).await?;
    let t = find(&state, &slug, staff.lang).await?;
    match staff::invite_first_admin(&scope, &state.authz, &state.policy, t.id, &form.email).await {
        Ok(invitation) => {
            let notice = match invitation {
                Some(inv) => {
                    let link = format!("{}/admin/invitation/{}", state.public_url, inv.token);
                    html! {
                        p.ok { (staff.lang.t(K::InvitationLink)) ": " (inv.email) }
                        p { a #invitation-link href=(link) { (link) } }
                    }
                }
                None => html! { p.ok { (staff.lang.t(K::InvitedExisting)) } },
            };
            Ok(page(
                staff.lang,
                &t.name.clone(),
                Some(&staff),
                tenant_page(&staff, &t, Some(notice), None),
            )
            .into_response())
        }
        Err(StaffError::Identity(e)) => {
            let body = tenant_page(&staff, &t, None, Some(&e.to_string()));
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(staff.lang, &t.name.clone(), Some(&staff), body),
            )
                .into_response())
        }
        Err(e) => {
            tracing::error!(error = %e, "invitation failed");
            Err(PageError::bad_request(
                "something went wrong on our side; please try again",
                staff.lang,
            ))
        }
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
}

pub async fn set_status(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<StatusForm>,
) -> Result<Response, PageError> {
    let scope = platform_scope(&state, &staff, Act::Write).await?;
    let t = find(&state, &slug, staff.lang).await?;
    let status: TenantStatus = form
        .status
        .parse()
        .map_err(|e: tenants::DomainError| PageError::bad_request(e.to_string(), staff.lang))?;
    staff::set_status(&scope, &state.authz, &t, status)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "status change failed");
            PageError::bad_request(
                "something went wrong on our side; please try again",
                staff.lang,
            )
        })?;
    Ok(Redirect::to(&format!("/admin/tenants/{}", t.slug)).into_response())
}
