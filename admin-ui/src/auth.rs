//! Login, logout, the start page, and the single-use links (invitation, password reset).

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use platform::staff::identity::{self, IdentityError, LinkPurpose};
use serde::Deserialize;
use tenants::TenantId;
use uuid::Uuid;

use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, page};
use crate::state::{AdminState, CSRF_COOKIE, ClientIp, SESSION_COOKIE, cookie, set_cookie};

fn login_form(lang: Lang, csrf: &str, email: &str, message: Option<&str>) -> maud::Markup {
    html! {
        @if let Some(m) = message { p.error role="alert" { (m) } }
        form method="post" action="/admin/login" {
            input type="hidden" name="csrf" value=(csrf);
            label { (lang.t(K::Email)) br; input type="email" name="email" value=(email) required autocomplete="username"; }
            label { (lang.t(K::Password)) br; input type="password" name="password" required autocomplete="current-password"; }
            button type="submit" id="login" { (lang.t(K::Login)) }
        }
    }
}

/// The anonymous CSRF token: the one in the cookie when there is one, else a new one.
fn anon_csrf(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE) {
        Some(t) if t.len() >= 32 => (t.to_owned(), false),
        _ => (identity::random_token(), true),
    }
}

fn with_anon_csrf(token: &str, fresh: bool, body: impl IntoResponse) -> Response {
    if fresh {
        (
            [(header::SET_COOKIE, set_cookie(CSRF_COOKIE, token, 3600))],
            body,
        )
            .into_response()
    } else {
        body.into_response()
    }
}

pub async fn login_page(headers: HeaderMap) -> Response {
    let lang = Lang::from_headers(&headers);
    let (csrf, fresh) = anon_csrf(&headers);
    let body = page(
        lang,
        lang.t(K::Login),
        None,
        login_form(lang, &csrf, "", None),
    );
    with_anon_csrf(&csrf, fresh, body)
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

pub async fn login(
    State(state): State<AdminState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let lang = Lang::from_headers(&headers);
    let expected = cookie(&headers, CSRF_COOKIE).unwrap_or("");
    let ip = ip.unwrap_or_else(|| "unknown".into());
    match identity::staff_login(
        &state.pool,
        &state.policy,
        &state.authz,
        &form.email,
        &form.password,
        &ip,
    )
    .await
    {
        Ok((token, session, _)) => {
            tracing::info!(account.id = %session.account.id, "staff login");
            let max_age = state.policy.session_absolute.num_seconds();
            Ok((
                [(
                    header::SET_COOKIE,
                    set_cookie(SESSION_COOKIE, &token, max_age),
                )],
                Redirect::to("/admin"),
            )
                .into_response())
        }
        Err(e @ (IdentityError::BadCredentials | IdentityError::Throttled(_))) => {
            let status = if matches!(e, IdentityError::Throttled(_)) {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            tracing::info!(
                throttled = matches!(e, IdentityError::Throttled(_)),
                "login refused"
            );
            let message = match (lang, &e) {
                (Lang::Ja, IdentityError::Throttled(m)) => {
                    format!("ログインの失敗が続いたため、{m}分間ログインできません。")
                }
                (Lang::Ja, _) => "メールアドレスまたはパスワードが違います。".to_owned(),
                (Lang::En, e) => e.to_string(),
            };
            let body = page(
                lang,
                lang.t(K::Login),
                None,
                login_form(lang, expected, &form.email, Some(&message)),
            );
            Ok((status, body).into_response())
        }
        Err(IdentityError::Database(e)) => Err(e.into()),
        Err(e) => Err(PageError::bad_request(e.to_string(), lang)),
    }
}

/// Ends the session (the CSRF layer has checked the session's token).
pub async fn logout(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        identity::logout(&state.pool, token).await?;
    }
    Ok((
        [(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0))],
        Redirect::to("/admin/login"),
    )
        .into_response())
}

/// The start page: the operator's tenant list link, and every city this person works for.
pub async fn dashboard(
    State(state): State<AdminState>,
    staff: Staff,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let operator = state.authz.is_platform_operator(&staff.actor).await;
    let mut cities = Vec::new();
    for (domain, role) in state.authz.memberships(&staff.actor.subject).await {
        let Ok(id) = Uuid::parse_str(&domain) else {
            continue;
        };
        if let Some(t) = tenants::find_by_id(&state.pool, TenantId(id)).await? {
            cities.push((t, role));
        }
    }
    let body = html! {
        @if operator {
            p { a href="/admin/tenants" id="municipalities" { (lang.t(K::Municipalities)) } }
            p { a href="/admin/jobs" id="jobs" { (match lang { Lang::Ja => "ジョブ", Lang::En => "Jobs" }) } }
        }
        h2 { (lang.t(K::YourCities)) }
        @if cities.is_empty() { p { (lang.t(K::None)) } }
        ul {
            @for (t, role) in &cities {
                li { a href={"/admin/t/" (t.slug)} { (t.name) } " (" (role) ")" }
            }
        }
    };
    Ok(page(lang, lang.t(K::Dashboard), Some(&staff), body).into_response())
}

fn password_form(
    lang: Lang,
    action: &str,
    csrf: &str,
    email: &str,
    message: Option<&str>,
) -> maud::Markup {
    html! {
        @if let Some(m) = message { p.error role="alert" { (m) } }
        p { (email) }
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            label { (lang.t(K::NewPassword)) br; input type="password" name="password" required minlength="10" autocomplete="new-password"; }
            button type="submit" id="set-password" { (lang.t(K::SetPassword)) }
        }
    }
}

async fn link_page(
    state: &AdminState,
    headers: &HeaderMap,
    token: &str,
    purpose: LinkPurpose,
    action: &str,
) -> Result<Response, PageError> {
    let lang = Lang::from_headers(headers);
    let account = match identity::peek_link(&state.pool, token, purpose).await {
        Ok(a) => a,
        Err(IdentityError::Database(e)) => return Err(e.into()),
        Err(e) => {
            return Err(PageError {
                status: StatusCode::NOT_FOUND,
                message: e.to_string(),
                lang,
            });
        }
    };
    let (csrf, fresh) = anon_csrf(headers);
    let body = page(
        lang,
        lang.t(K::SetPassword),
        None,
        password_form(lang, action, &csrf, &account.email, None),
    );
    Ok(with_anon_csrf(&csrf, fresh, body))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    password: String,
}

async fn redeem(
    state: &AdminState,
    headers: &HeaderMap,
    token: &str,
    purpose: LinkPurpose,
    action: &str,
    form: PasswordForm,
) -> Result<Response, PageError> {
    let lang = Lang::from_headers(headers);
    let expected = cookie(headers, CSRF_COOKIE).unwrap_or("");
    match identity::redeem_link(&state.pool, &state.policy, token, purpose, &form.password).await {
        Ok(_) => Ok(Redirect::to("/admin/login").into_response()),
        Err(IdentityError::Invalid(why)) => {
            let account = identity::peek_link(&state.pool, token, purpose)
                .await
                .map(|a| a.email)
                .unwrap_or_default();
            let body = page(
                lang,
                lang.t(K::SetPassword),
                None,
                password_form(lang, action, expected, &account, Some(&why)),
            );
            Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response())
        }
        Err(IdentityError::Database(e)) => Err(e.into()),
        Err(e) => Err(PageError {
            status: StatusCode::NOT_FOUND,
            message: e.to_string(),
            lang,
        }),
    }
}

pub async fn invitation_page(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let action = format!("/admin/invitation/{token}");
    link_page(&state, &headers, &token, LinkPurpose::Invitation, &action).await
}

pub async fn accept_invitation(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    let action = format!("/admin/invitation/{token}");
    redeem(
        &state,
        &headers,
        &token,
        LinkPurpose::Invitation,
        &action,
        form,
    )
    .await
}

pub async fn reset_page(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let action = format!("/admin/password-reset/{token}");
    link_page(
        &state,
        &headers,
        &token,
        LinkPurpose::PasswordReset,
        &action,
    )
    .await
}

pub async fn reset_password(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    let action = format!("/admin/password-reset/{token}");
    redeem(
        &state,
        &headers,
        &token,
        LinkPurpose::PasswordReset,
        &action,
        form,
    )
    .await
}
