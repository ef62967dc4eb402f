//! A city's API keys (`/admin/t/{slug}/api-keys`): the list (expiry, last use, budget), creating a
//! key (shown once), rotating its secret (the new one shown once) and revoking one.

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
    state: &AdminState,
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    notice: Option<Markup>,
    message: Option<&str>,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let keys = platform::staff::api_keys::list(scope).await?;
    let default_rate = state.api_key_default_rate;
    let now = chrono::Utc::now();
    let when = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%d %H:%M UTC").to_string();
    Ok(html! {
        @if let Some(n) = notice { (n) }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        table #api-keys {
            tr {
                th { (lang.t(K::Name)) } th { "scopes" } th { (lang.t(K::Who)) }
                th { "expires / 有効期限" } th { "last used / 最終利用" } th { "requests per minute / 毎分の上限" } th {}
            }
            @for k in &keys {
                tr.api-key data-key-id=(k.id) {
                    td { (k.name) } td { (k.scopes.join(", ")) } td { (k.created_by) }
                    td.expires {
                        @match k.expires_at {
                            None => "never / 無期限",
                            Some(e) if k.expired(now) => strong { "expired / 期限切れ " (when(e)) },
                            Some(e) => (when(e)),
                        }
                    }
                    td.last-used { (k.last_used_at.map(when).unwrap_or_else(|| "never / 未使用".into())) }
                    td.rate {
                        @match k.requests_per_minute {
                            Some(r) => (r),
                            None => { (default_rate) " (default)" }
                        }
                    }
                    td {
                        @if let Some(r) = k.revoked_at { "revoked " (when(r)) } @else {
                            form method="post" action={"/admin/t/" (t.slug) "/api-keys/" (k.id) "/rotate"} {
                                (csrf_field(staff)) button type="submit" { "rotate / 再発行" }
                            }
                            form method="post" action={"/admin/t/" (t.slug) "/api-keys/" (k.id) "/revoke"} {
                                (csrf_field(staff)) button type="submit" { (lang.t(K::Remove)) }
                            }
                        }
                    }
                }
            }
        }
        p { "Rotating gives the key a new secret at once; the old secret stops working immediately. / 再発行すると旧キーは直ちに無効になります。" }
        h2 { (lang.t(K::Create)) }
        form method="post" action={"/admin/t/" (t.slug) "/api-keys"} id="api-key" {
            (csrf_field(staff))
            label { (lang.t(K::Name)) br; input name="name" required; }
            @for (scope_name, _) in platform::staff::api_keys::SCOPES {
                label { input type="checkbox" name={"scope_" (scope_name)} value="1"; " " (scope_name) }
            }
            label {
                "expires / 有効期限" br;
                select name="expires_in_days" {
                    @for choice in platform::staff::api_keys::EXPIRY_CHOICES {
                        @match choice {
                            Some(d) => option value=(d) selected[d == 90] { (d) " days" },
                            None => option value="never" { "never / 無期限" },
                        }
                    }
                }
            }
            label {
                "requests per minute / 毎分の上限 (empty: " (default_rate) ")" br;
                input type="number" name="requests_per_minute" min="1"
                    max=(platform::staff::api_keys::MAX_REQUESTS_PER_MINUTE);
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
    let body = api_keys_body(&state, &staff, &t, &mut scope, None, None).await?;
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
    let expires_in_days = match form.get("expires_in_days").map(|s| s.trim()) {
        None | Some("never") | Some("") => Ok(None),
        Some(d) => d.parse::<u32>().map(Some),
    };
    let requests_per_minute = match form.get("requests_per_minute").map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(r) => r.parse::<u32>().map(Some),
    };
    let (Ok(expires_in_days), Ok(requests_per_minute)) = (expires_in_days, requests_per_minute)
    else {
        let body = api_keys_body(
            &state,
            &staff,
            &t,
            &mut scope,
            None,
            Some("expiry and requests per minute are whole numbers"),
        )
        .await?;
        return Ok(unprocessable(&staff, &t, lang.t(K::ApiKeys), body));
    };
    let new = platform::staff::api_keys::NewKey {
        name,
        scopes,
        expires_in_days,
        requests_per_minute,
    };
    match platform::staff::api_keys::create_with(&mut scope, &state.authz, &new).await {
        Ok((_, key)) => {
            let notice = html! {
                p.ok { "The key is shown only now; store it safely. / このキーは今だけ表示されます。" }
                p { code #new-api-key { (key) } }
            };
            let body = api_keys_body(&state, &staff, &t, &mut scope, Some(notice), None).await?;
            scope.commit().await?;
            Ok(render(&staff, &t, lang.t(K::ApiKeys), body))
        }
        Err(platform::staff::api_keys::ApiKeyError::Invalid(m)) => {
            let body = api_keys_body(&state, &staff, &t, &mut scope, None, Some(&m)).await?;
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

pub async fn rotate_api_key(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::ApiKeys, Act::Write).await?;
    match platform::staff::api_keys::rotate(&mut scope, id).await {
        Ok(key) => {
            let notice = html! {
                p.ok { "The new secret is shown only now; the old one no longer works. / 新しいキーは今だけ表示されます。旧キーは無効です。" }
                p { code #new-api-key { (key) } }
            };
            let body = api_keys_body(&state, &staff, &t, &mut scope, Some(notice), None).await?;
            scope.commit().await?;
            Ok(render(&staff, &t, lang.t(K::ApiKeys), body))
        }
        Err(platform::staff::api_keys::ApiKeyError::NotFound) => Err(PageError::not_found(lang)),
        Err(e) => {
            tracing::error!(error = %e, "rotating an API key failed");
            Err(PageError::bad_request(
                "something went wrong on our side; please try again",
                lang,
            ))
        }
    }
}
