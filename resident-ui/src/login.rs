//! Logging in and out: the ticket / birth date / phone form, the SMS code, logout, and the language
//! switch.

use std::net::SocketAddr;

use axum::{
    Form,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use platform::ResidentDesk;
use platform::i18n::Lang;
use platform::residents::auth::{self, AuthError};
use platform::residents::desk::DeskError;
use platform::residents::parse_birth_date;
use serde::Deserialize;

use crate::context::{
    FORM_COOKIE, LANG_COOKIE, Req, SESSION_COOKIE, cookie, html_page, random_token, req, resident,
};
use crate::page::layout;
use crate::text::{T, t};

// Login

#[derive(Deserialize, Default)]
pub(crate) struct LoginQuery {
    ticket: Option<String>,
    expired: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
pub(crate) struct LoginForm {
    ticket: String,
    birth_date: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    form_token: String,
}

pub(crate) async fn start(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    match req(&s, &slug, &headers, "login".into()).await {
        Ok(r) => Redirect::to(&r.url("login")).into_response(),
        Err(resp) => resp,
    }
}

fn form_cookie(r: &Req, token: &str) -> (header::HeaderName, String) {
    (
        header::SET_COOKIE,
        format!(
            "{FORM_COOKIE}={token}; Path=/t/{}; HttpOnly; SameSite=Lax; Max-Age=3600",
            r.tenant().slug
        ),
    )
}

/// The pre-login form token: reuse the cookie's, or make one.
fn form_token(headers: &HeaderMap) -> String {
    cookie(headers, FORM_COOKIE)
        .filter(|v| v.len() >= 16)
        .map(str::to_owned)
        .unwrap_or_else(random_token)
}

pub(crate) async fn login_page(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    let path = match &q.ticket {
        Some(ticket) => format!("login?ticket={}", ticket.trim()),
        None => "login".into(),
    };
    let r = match req(&s, &slug, &headers, path).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let token = form_token(&headers);
    let form = LoginForm {
        ticket: q.ticket.unwrap_or_default(),
        ..LoginForm::default()
    };
    let message = q.expired.map(|_| t(r.lang, T::SessionExpired).to_owned());
    let mut resp = html_page(
        StatusCode::OK,
        login_markup(&r, &form, &token, message.as_deref()),
    );
    let (name, value) = form_cookie(&r, &token);
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(name, v);
    }
    resp
}

fn login_markup(r: &Req, form: &LoginForm, token: &str, message: Option<&str>) -> Markup {
    let lang = r.lang;
    layout(
        &r.ctx(),
        t(lang, T::LoginTitle),
        html! {
            p { (t(lang, T::LoginIntro)) }
            @if let Some(m) = message { p class="error" role="alert" { (m) } }
            form method="post" action=(r.url("login")) {
                input type="hidden" name="form_token" value=(token);
                label for="ticket" { (t(lang, T::Ticket)) }
                input id="ticket" name="ticket" inputmode="numeric" autocomplete="off" required
                    placeholder=(t(lang, T::TicketHint)) value=(form.ticket);
                label for="birth_date" { (t(lang, T::BirthDate)) }
                input id="birth_date" name="birth_date" inputmode="numeric" required
                    placeholder=(t(lang, T::BirthDateHint)) value=(form.birth_date);
                label for="phone" { (t(lang, T::Phone)) }
                input id="phone" name="phone" type="tel" inputmode="tel" autocomplete="tel"
                    placeholder=(t(lang, T::PhoneHint)) value=(form.phone);
                button type="submit" id="send-code" { (t(lang, T::SendCode)) }
            }
        },
    )
}

/// The client's address as the server resolved it ([`platform::ClientIp`], set by `src/http.rs`:
/// the TCP peer, or the forwarded address when the peer is a configured trusted proxy); the bare
/// peer when the router runs without that layer. Forwarding headers are never read here.
fn client_ip(
    resolved: Option<&platform::ClientIp>,
    info: Option<&ConnectInfo<SocketAddr>>,
) -> String {
    resolved
        .map(|c| c.0)
        .or_else(|| info.map(|c| c.0.ip()))
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) async fn login_submit(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    resolved: Option<axum::Extension<platform::ClientIp>>,
    info: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, "login".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let token = form_token(&headers);
    if cookie(&headers, FORM_COOKIE) != Some(form.form_token.as_str()) {
        return html_page(
            StatusCode::FORBIDDEN,
            login_markup(&r, &form, &token, Some(t(r.lang, T::FormExpired))),
        );
    }
    let err = |e: DeskError| {
        let status = match e.code() {
            "RATE_LIMITED" => StatusCode::TOO_MANY_REQUESTS,
            "VALIDATION" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => return r.refused(e),
        };
        let mut resp = html_page(
            status,
            login_markup(&r, &form, &token, Some(&e.message(r.lang))),
        );
        if let Some(secs) = e.retry_after_secs()
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    };
    let Some(birth) = parse_birth_date(&form.birth_date) else {
        return err(AuthError::NotRecognised.into());
    };
    let ip = client_ip(resolved.as_ref().map(|e| &e.0), info.as_ref().map(|e| &e.0));
    let phone = Some(form.phone.as_str()).filter(|p| !p.trim().is_empty());
    match s
        .request_code(&r.visit, &form.ticket, birth, phone, &ip, r.lang)
        .await
    {
        Ok(sent) => Redirect::to(&r.url(&format!(
            "code?ticket={}&to={}",
            form.ticket.trim(),
            sent.masked_phone.replace('+', "%2B")
        )))
        .into_response(),
        Err(e) => err(e),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct CodeQuery {
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    to: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct CodeForm {
    ticket: String,
    code: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    form_token: String,
}

fn code_markup(r: &Req, ticket: &str, to: &str, token: &str, message: Option<&str>) -> Markup {
    let lang = r.lang;
    layout(
        &r.ctx(),
        t(lang, T::CodeTitle),
        html! {
            @if !to.is_empty() { p { (t(lang, T::CodeSentTo)) " " strong { (to) } } }
            @if let Some(m) = message { p class="error" role="alert" { (m) } }
            form method="post" action=(r.url("code")) {
                input type="hidden" name="form_token" value=(token);
                input type="hidden" name="ticket" value=(ticket);
                input type="hidden" name="to" value=(to);
                label for="code" { (t(lang, T::Code)) }
                input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required maxlength="6";
                button type="submit" id="log-in" { (t(lang, T::LogIn)) }
            }
            p { a href=(r.url(&format!("login?ticket={ticket}"))) { (t(lang, T::AskAgain)) } }
        },
    )
}

pub(crate) async fn code_page(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    Query(q): Query<CodeQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "code".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let token = form_token(&headers);
    let mut resp = html_page(
        StatusCode::OK,
        code_markup(&r, q.ticket.trim(), &q.to, &token, None),
    );
    let (name, value) = form_cookie(&r, &token);
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(name, v);
    }
    resp
}

pub(crate) async fn code_submit(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, "code".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let token = form_token(&headers);
    if cookie(&headers, FORM_COOKIE) != Some(form.form_token.as_str()) {
        return html_page(
            StatusCode::FORBIDDEN,
            code_markup(
                &r,
                &form.ticket,
                &form.to,
                &token,
                Some(t(r.lang, T::FormExpired)),
            ),
        );
    }
    match s.verify_code(&r.visit, &form.ticket, &form.code).await {
        Ok(session) => {
            let mut resp = Redirect::to(&r.url("bookings")).into_response();
            let value = format!(
                "{SESSION_COOKIE}={}; Path=/t/{}; HttpOnly; SameSite=Lax; Max-Age={}",
                session.token,
                r.tenant().slug,
                auth::SESSION_HOURS * 3600
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) if e.code() == "VALIDATION" => html_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            code_markup(&r, &form.ticket, &form.to, &token, Some(&e.message(r.lang))),
        ),
        Err(e) => r.refused(e),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn logout(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, "logout".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Ok(me) = resident(&s, &r, &headers).await
        && me.csrf_token() == form.csrf
        && let Err(e) = s.log_out(&me).await
    {
        return r.refused(e);
    }
    let mut resp = Redirect::to(&r.url("login")).into_response();
    let value = format!(
        "{SESSION_COOKIE}=; Path=/t/{}; HttpOnly; SameSite=Lax; Max-Age=0",
        r.tenant().slug
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize, Default)]
pub(crate) struct BackQuery {
    back: Option<String>,
}

/// `raw` with every byte that is not visible ASCII percent-encoded (a valid `Location` value).
fn location_safe(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_graphic() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(crate) async fn switch_language(
    State(s): State<ResidentDesk>,
    Path((slug, tag)): Path<(String, String)>,
    Query(q): Query<BackQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = req(&s, &slug, &headers, "lang".into()).await {
        return resp;
    }
    let lang = Lang::from_tag(&tag).unwrap_or_default();
    // Only paths inside this tenant's site: no open redirect. Control characters never get here
    // (the server answers 400 first); anything else a Location header cannot carry as it is
    // (spaces, non-ASCII) is percent-encoded, so the redirect is always well-formed.
    let back = q
        .back
        .filter(|b| !b.contains("//") && !b.contains('\\') && !b.chars().any(char::is_control))
        .map(|b| format!("/t/{slug}/{}", location_safe(b.trim_start_matches('/'))))
        .unwrap_or_else(|| format!("/t/{slug}/login"));
    let mut resp = Redirect::to(&back).into_response();
    let value = format!(
        "{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000",
        lang.tag()
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
