//! A city's API keys (`/admin/t/{slug}/api-keys`): the list, creating a key (shown once) and revoking
//! one.

use axum::{
    Form,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use platform::staff::authz::{Act, Object, Scope};
use tenants::Tenant;
use uuid::Uuid;

use crate::i18n::K;
use crate::page::{PageError, Staff, csrf_field};
use crate::shell::{enter, render, unprocessable};
use crate::state::AdminState;

async fn api_keys_body(
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    notice: Option<Markup>,
    message: Option<&str>,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let keys = platform::staff::api_keys::list(scope).await?;
    Ok(html! {
        @if let Some(n) = notice { (n) }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        table #api-keys {
            tr { th { (lang.t(K::Name)) } th { "scopes" } th { (lang.t(K::Who)) } th { "last used" } th {} }
            @for k in &keys {
                tr {
                    td { (k.name) } td { (k.scopes.join(", ")) } td { (k.created_by) }
                    td { (k.last_used_at.map(|d| d.to_rfc3339()).unwrap_or_default()) }
                    td {
                        @if let Some(r) = k.revoked_at { "revoked " (r.to_rfc3339()) } @else {
                            form method="post" action={"/admin/t/" (t.slug) "/api-keys/" (k.id) "/revoke"} {
                                (csrf_field(staff)) button type="submit" { (lang.t(K::Remove)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { (lang.t(K::Create)) }
        form method="post" action={"/admin/t/" (t.slug) "/api-keys"} id="api-key" {
            (csrf_field(staff))
            label { (lang.t(K::Name)) br; input name="name" required; }
            @for (scope_name, _) in platform::staff::api_keys::SCOPES {
                label { input type="checkbox" name={"scope_" (scope_name)} value="1"; " " (scope_name) }
            }
            button type="submit" { (lang.t(K::Create)) }
        }
    })
}

pub async fn api_keys(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::ApiKeys, Act::Read).await?;
    let body = api_keys_body(&staff, &t, &mut scope, None, None).await?;
    Ok(render(&staff, &t, staff.lang.t(K::ApiKeys), body))
}

pub async fn create_api_key(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::ApiKeys, Act::Write).await?;
    let scopes: Vec<String> = platform::staff::api_keys::SCOPES
        .iter()
        .filter(|(n, _)| form.contains_key(&format!("scope_{n}")))
        .map(|(n, _)| (*n).to_owned())
        .collect();
    let name = form.get("name").cloned().unwrap_or_default();
    match platform::staff::api_keys::create(&mut scope, &state.authz, &name, &scopes).await {
        Ok((_, key)) => {
            let notice = html! {
                p.ok { "The key is shown only now; store it safely. / このキーは今だけ表示されます。" }
                p { code #new-api-key { (key) } }
            };
            let body = api_keys_body(&staff, &t, &mut scope, Some(notice), None).await?;
            scope.commit().await?;
            Ok(render(&staff, &t, lang.t(K::ApiKeys), body))
        }
        Err(platform::staff::api_keys::ApiKeyError::Invalid(m)) => {
            let body = api_keys_body(&staff, &t, &mut scope, None, Some(&m)).await?;
            Ok(unprocessable(&staff, &t, lang.t(K::ApiKeys), body))
        }
        Err(e) => {
            tracing::error!(error = %e, "creating an API key failed");
            Err(PageError::bad_request(
                "something went wrong on our side; please try again",
                lang,
            ))
        }
    }
}

pub async fn revoke_api_key(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::ApiKeys, Act::Write).await?;
    match platform::staff::api_keys::revoke(&mut scope, &state.authz, id).await {
        Ok(()) => {
            scope.commit().await?;
            Ok(Redirect::to(&format!("/admin/t/{}/api-keys", t.slug)).into_response())
        }
        Err(platform::staff::api_keys::ApiKeyError::NotFound) => {
            Err(PageError::not_found(staff.lang))
        }
        Err(e) => {
            tracing::error!(error = %e, "revoking an API key failed");
            Err(PageError::bad_request(
                "something went wrong on our side; please try again",
                staff.lang,
            ))
        }
    }
}
