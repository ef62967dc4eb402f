//! The resident booking site: server-rendered, phone first, works without JavaScript, in ja / en /
//! zh-Hans / pt. Thin by design: parse the form, call `platform`, render.
//!
//! Pages under `/t/{tenant}/`: `login` → `code` → `bookings` (my bookings) → `venues` →
//! `venues/{venue}` (days) → `venues/{venue}/{date}` (times) → `confirm` → `done`; `cancel/{booking}`.
//! Changing a booking walks the same venue → day → time pages with `?change={booking}`.
//!
//! * Language: the `yk_lang` cookie (set by the switch at the foot of every page), else
//!   Accept-Language with q-values, else the city's default.
//! * Session: cookie `yk_session` (HttpOnly, SameSite=Lax, path `/t/{tenant}`). Every form carries a
//!   CSRF token (bound to the session; before login, to a `yk_form` cookie) and an idempotency key.

mod page;
mod questionnaire;
mod text;

use std::net::SocketAddr;

use axum::{
    Form, Router,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use chrono::NaiveDate;
use maud::{Markup, html};
use platform::ResidentServices;
use platform::availability::Mark;
use platform::booking::{self, BookRequest, Dose};
use platform::i18n::Lang;
use platform::residents::auth::{self, AuthError, ResidentSession};
use serde::Deserialize;
use tenants::Tenant;
use uuid::Uuid;

use page::{Ctx, layout};
use text::{T, t};

const SESSION_COOKIE: &str = "yk_session";
const FORM_COOKIE: &str = "yk_form";
const LANG_COOKIE: &str = "yk_lang";

pub fn router<S: Clone + Send + Sync + 'static>(services: ResidentServices) -> Router<S> {
    Router::new()
        .route("/t/{tenant}", get(start))
        .route("/t/{tenant}/", get(start))
        .route("/t/{tenant}/login", get(login_page).post(login_submit))
        .route("/t/{tenant}/code", get(code_page).post(code_submit))
        .route("/t/{tenant}/logout", post(logout))
        .route("/t/{tenant}/lang/{tag}", get(switch_language))
        .route("/t/{tenant}/bookings", get(my_bookings))
        .route("/t/{tenant}/venues", get(venues))
        .route("/t/{tenant}/venues/{venue}", get(days))
        .route("/t/{tenant}/venues/{venue}/{date}", get(times))
        .route("/t/{tenant}/confirm", get(confirm_page))
        .route("/t/{tenant}/book", post(book_submit))
        .route("/t/{tenant}/change", post(change_submit))
        .route("/t/{tenant}/done", get(done))
        .route(
            "/t/{tenant}/cancel/{booking}",
            get(cancel_page).post(cancel_submit),
        )
        .with_state(services)
}

// ---------------------------------------------------------------------------------------------
// Request context: tenant, language, session

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn language(headers: &HeaderMap, tenant: &Tenant) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::from_tag)
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::negotiate)
        })
        .or_else(|| Lang::from_tag(&tenant.default_locale))
        .unwrap_or_default()
}

fn random_token() -> String {
    let bytes: [u8; 18] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn tenant(services: &ResidentServices, slug: &str) -> Result<Tenant, Response> {
    match services.tenant(slug).await {
        Ok(Some(t)) if t.status != tenants::TenantStatus::Suspended => {
            tenants::record_in_span(t.id);
            Ok(t)
        }
        Ok(_) => Err(html_page(
            StatusCode::NOT_FOUND,
            page::not_found(Lang::default()),
        )),
        Err(e) => Err(internal(e)),
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "resident site failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side. Please try again. / ただいま混み合っています。",
    )
        .into_response()
}

/// Everything a page handler needs before it does its own work.
struct Req {
    tenant: Tenant,
    lang: Lang,
    path: String,
}

impl Req {
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            tenant: &self.tenant,
            lang: self.lang,
            path: &self.path,
        }
    }
    fn url(&self, rest: &str) -> String {
        format!("/t/{}/{rest}", self.tenant.slug)
    }
}

async fn req(
    services: &ResidentServices,
    slug: &str,
    headers: &HeaderMap,
    path: String,
) -> Result<Req, Response> {
    let tenant = tenant(services, slug).await?;
    let lang = language(headers, &tenant);
    Ok(Req { tenant, lang, path })
}

/// The resident's session, or a redirect to the login page.
async fn resident(
    services: &ResidentServices,
    r: &Req,
    headers: &HeaderMap,
) -> Result<(ResidentSession, String), Response> {
    let token = cookie(headers, SESSION_COOKIE).unwrap_or("");
    if token.is_empty() {
        return Err(Redirect::to(&r.url("login")).into_response());
    }
    match auth::session(&services.pool, r.tenant.id, token).await {
        Ok(Some(s)) => Ok((s, token.to_owned())),
        Ok(None) => Err(Redirect::to(&r.url("login?expired=1")).into_response()),
        Err(e) => Err(internal(e)),
    }
}

fn html_page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::response::Html(markup.into_string()),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Login

#[derive(Deserialize, Default)]
struct LoginQuery {
    ticket: Option<String>,
    expired: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
struct LoginForm {
    ticket: String,
    birth_date: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    form_token: String,
}

async fn start(Path(slug): Path<String>) -> Redirect {
    Redirect::to(&format!("/t/{slug}/login"))
}

fn form_cookie(r: &Req, token: &str) -> (header::HeaderName, String) {
    (
        header::SET_COOKIE,
        format!(
            "{FORM_COOKIE}={token}; Path=/t/{}; HttpOnly; SameSite=Lax; Max-Age=3600",
            r.tenant.slug
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

async fn login_page(
    State(s): State<ResidentServices>,
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

/// 1980-04-01, 1980/4/1, 19800401.
fn parse_birth_date(raw: &str) -> Option<NaiveDate> {
    let cleaned: String = raw
        .trim()
        .chars()
        .map(|c| if c == '/' || c == '.' { '-' } else { c })
        .collect();
    NaiveDate::parse_from_str(&cleaned, "%Y-%m-%d")
        .ok()
        .or_else(|| NaiveDate::parse_from_str(&cleaned, "%Y%m%d").ok())
}

fn client_ip(info: Option<&ConnectInfo<SocketAddr>>) -> String {
    info.map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

async fn login_submit(
    State(s): State<ResidentServices>,
    Path(slug): Path<String>,
    headers: HeaderMap,
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
    let err = |e: AuthError| {
        let status = match e {
            AuthError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let mut resp = html_page(
            status,
            login_markup(&r, &form, &token, Some(&e.message(r.lang))),
        );
        if let AuthError::RateLimited { retry_after_secs } = e
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    };
    let Some(birth) = parse_birth_date(&form.birth_date) else {
        return err(AuthError::NotRecognised);
    };
    let ip = client_ip(info.as_ref().map(|e| &e.0));
    let phone = Some(form.phone.as_str()).filter(|p| !p.trim().is_empty());
    match auth::request_code(
        &s.pool,
        &r.tenant,
        &form.ticket,
        birth,
        phone,
        &ip,
        r.lang,
        &s.secret,
    )
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
struct CodeQuery {
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    to: String,
}

#[derive(Deserialize, Default)]
struct CodeForm {
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

async fn code_page(
    State(s): State<ResidentServices>,
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

async fn code_submit(
    State(s): State<ResidentServices>,
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
    match auth::verify_code(&s.pool, &r.tenant, &form.ticket, &form.code).await {
        Ok(session) => {
            let mut resp = Redirect::to(&r.url("bookings")).into_response();
            let value = format!(
                "{SESSION_COOKIE}={}; Path=/t/{}; HttpOnly; SameSite=Lax; Max-Age={}",
                session.token,
                r.tenant.slug,
                auth::SESSION_HOURS * 3600
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => {
            let status = match e {
                AuthError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            html_page(
                status,
                code_markup(&r, &form.ticket, &form.to, &token, Some(&e.message(r.lang))),
            )
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(s): State<ResidentServices>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, "logout".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Ok((session, token)) = resident(&s, &r, &headers).await
        && session.csrf_token == form.csrf
        && let Err(e) = auth::end_session(&s.pool, r.tenant.id, &token).await
    {
        return internal(e);
    }
    let mut resp = Redirect::to(&r.url("login")).into_response();
    let value = format!(
        "{SESSION_COOKIE}=; Path=/t/{}; HttpOnly; SameSite=Lax; Max-Age=0",
        r.tenant.slug
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize, Default)]
struct BackQuery {
    back: Option<String>,
}

async fn switch_language(
    Path((slug, tag)): Path<(String, String)>,
    Query(q): Query<BackQuery>,
) -> Response {
    let lang = Lang::from_tag(&tag).unwrap_or_default();
    // Only paths inside this tenant's site: no open redirect.
    let back = q
        .back
        .filter(|b| !b.contains("//") && !b.contains('\\'))
        .map(|b| format!("/t/{slug}/{}", b.trim_start_matches('/')))
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

// ---------------------------------------------------------------------------------------------
// Bookings

#[derive(Deserialize, Default)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn my_bookings(
    State(s): State<ResidentServices>,
    Path(slug): Path<String>,
    Query(q): Query<NoticeQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "bookings".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (session, _) = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let list = match booking::my_bookings(&s.pool, &r.tenant, session.resident_id).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let lang = r.lang;
    let tz = r.tenant.time_zone.0;
    let notice = match q.notice.as_deref() {
        Some("cancelled") => Some(t(lang, T::CancelledText)),
        _ => None,
    };
    html_page(
        StatusCode::OK,
        layout(
            &r.ctx(),
            t(lang, T::MyBookings),
            html! {
                @if let Some(n) = notice { p class="notice" role="status" { (n) } }
                @if list.is_empty() { p { (t(lang, T::NoBookings)) } }
                ul class="cards" {
                    @for b in &list {
                        li class={ "booking " (b.status) } {
                            p class="title" { strong { (b.dose.label(lang)) } @if b.status == "cancelled" { " — " (t(lang, T::Cancelled)) } }
                            p { (t(lang, T::When)) ": " span class="when" { (text::when(lang, tz, b.starts_at)) } }
                            p { (t(lang, T::Venue)) ": " (b.venue_name) }
                            p { (t(lang, T::Vaccine)) ": " (b.vaccine_name) }
                            @if b.status == "booked" {
                                p class="small" { (t(lang, T::ChangeUntil)) ": " (text::when(lang, tz, b.change_until)) }
                                @if b.resident_id != session.resident_id { p class="small" { "👥" } }
                                @if b.change_until > chrono::Utc::now() { div class="actions" {
                                    a class="button secondary" href=(r.url(&format!("venues?change={}", b.id))) { (t(lang, T::Change)) }
                                    a class="button secondary" href=(r.url(&format!("cancel/{}", b.id))) { (t(lang, T::Cancel)) }
                                } }
                            }
                        }
                    }
                }
                a class="button" id="book-new" href=(r.url("venues")) { (t(lang, T::BookNew)) }
                form method="post" action=(r.url("logout")) {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    button type="submit" class="link" { (t(lang, T::LogOut)) }
                }
            },
        ),
    )
}

#[derive(Deserialize, Default)]
struct ChangeQuery {
    change: Option<Uuid>,
}

fn with_change(url: String, change: Option<Uuid>) -> String {
    match change {
        Some(c) => format!("{url}?change={c}"),
        None => url,
    }
}

fn mark_html(lang: Lang, mark: Mark) -> Markup {
    html! { span class={ "mark " (mark.as_str()) } { span aria-hidden="true" { (mark.symbol()) } " " (mark.text(lang)) } }
}

async fn venues(
    State(s): State<ResidentServices>,
    Path(slug): Path<String>,
    Query(q): Query<ChangeQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "venues".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = resident(&s, &r, &headers).await {
        return resp;
    }
    let list = match platform::availability::venues(&s.pool, &r.tenant).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let lang = r.lang;
    html_page(
        StatusCode::OK,
        layout(
            &r.ctx(),
            t(lang, T::ChooseVenue),
            html! {
                ul class="choices" {
                    @for v in &list {
                        li { a class="choice" href=(with_change(r.url(&format!("venues/{}", v.id)), q.change)) {
                            strong { (v.name) } br; span class="small" { (v.address) " · " (t(lang, T::Vaccine)) ": " (v.vaccine_name) }
                        } }
                    }
                }
                a href=(r.url("bookings")) { (t(lang, T::Back)) }
            },
        ),
    )
}

async fn days(
    State(s): State<ResidentServices>,
    Path((slug, venue)): Path<(String, Uuid)>,
    Query(q): Query<ChangeQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, format!("venues/{venue}")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = resident(&s, &r, &headers).await {
        return resp;
    }
    let list = match s.availability.days(&s.pool, &r.tenant, venue).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let lang = r.lang;
    html_page(
        StatusCode::OK,
        layout(
            &r.ctx(),
            t(lang, T::ChooseDay),
            html! {
                @if list.is_empty() { p { (t(lang, T::NoSlots)) } }
                ul class="choices" {
                    @for d in &list {
                        li {
                            @if d.mark == Mark::Full && !d.dose2_only {
                                span class="choice disabled" { (text::date(lang, d.date)) " " (mark_html(lang, d.mark)) }
                            } @else if d.dose2_only {
                                a class="choice" href=(with_change(r.url(&format!("venues/{venue}/{}", d.date)), q.change)) {
                                    (text::date(lang, d.date)) " " (mark_html(lang, d.mark)) " · " (t(lang, T::SecondDoseOnly))
                                }
                            } @else {
                                a class="choice" href=(with_change(r.url(&format!("venues/{venue}/{}", d.date)), q.change)) {
                                    (text::date(lang, d.date)) " " (mark_html(lang, d.mark))
                                }
                            }
                        }
                    }
                }
                a href=(with_change(r.url("venues"), q.change)) { (t(lang, T::Back)) }
            },
        ),
    )
}

async fn times(
    State(s): State<ResidentServices>,
    Path((slug, venue, date)): Path<(String, Uuid, NaiveDate)>,
    Query(q): Query<ChangeQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, format!("venues/{venue}/{date}")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = resident(&s, &r, &headers).await {
        return resp;
    }
    let list = match s.availability.day(&s.pool, &r.tenant, venue, date).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let lang = r.lang;
    let tz = r.tenant.time_zone.0;
    let change = q.change.map(|c| format!("&change={c}")).unwrap_or_default();
    html_page(
        StatusCode::OK,
        layout(
            &r.ctx(),
            t(lang, T::ChooseTime),
            html! {
                p { (text::date(lang, date)) }
                @if list.is_empty() { p { (t(lang, T::NoSlots)) } }
                ul class="choices" {
                    @for sl in &list {
                        @let label = html! { (sl.starts_at.with_timezone(&tz).format("%H:%M")) "–" (sl.ends_at.with_timezone(&tz).format("%H:%M")) " " (mark_html(lang, sl.mark)) };
                        li {
                            @if sl.mark == Mark::Full && sl.mark_dose2 == Mark::Full {
                                span class="choice disabled" { (label) }
                            } @else if sl.mark == Mark::Full {
                                a class="choice slot" href=(r.url(&format!("confirm?slot={}{change}", sl.slot_id))) {
                                    (label) " · " (t(lang, T::SecondDoseOnly)) " " (sl.free_dose2)
                                }
                            } @else {
                                a class="choice slot" href=(r.url(&format!("confirm?slot={}{change}", sl.slot_id))) {
                                    (label) " · " (t(lang, T::FreeSeats)) " " (sl.free)
                                }
                            }
                        }
                    }
                }
                a href=(with_change(r.url(&format!("venues/{venue}")), q.change)) { (t(lang, T::Back)) }
            },
        ),
    )
}

#[derive(Deserialize, Default)]
struct ConfirmQuery {
    slot: Option<Uuid>,
    change: Option<Uuid>,
}

#[derive(Deserialize, Default, Clone)]
struct BookForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key: String,
    slot: Uuid,
    #[serde(default)]
    dose: String,
    #[serde(default)]
    change: Option<Uuid>,
    #[serde(default)]
    ticket1: String,
    #[serde(default)]
    birth1: String,
    #[serde(default)]
    ticket2: String,
    #[serde(default)]
    birth2: String,
    /// "on": a group may sit in the slot right before or after when this one has too few seats.
    #[serde(default)]
    adjacent: Option<String>,
    /// Dose 2 booked in the same step (cities that offer it): a slot id, or empty.
    #[serde(default)]
    second: String,
    // the optional questionnaire (resident-ui/src/questionnaire.rs)
    #[serde(default)]
    hq_conditions: String,
    #[serde(default)]
    hq_allergies: String,
    #[serde(default)]
    hq_anaphylaxis: String,
}

impl BookForm {
    fn questionnaire(&self) -> questionnaire::Fields {
        questionnaire::Fields {
            hq_conditions: self.hq_conditions.clone(),
            hq_allergies: self.hq_allergies.clone(),
            hq_anaphylaxis: self.hq_anaphylaxis.clone(),
        }
    }
}

/// The slot's place and time, for the confirm page (from the availability cache).
async fn slot_summary(
    s: &ResidentServices,
    r: &Req,
    slot: Uuid,
) -> Result<Option<(String, String, String)>, Response> {
    let venues = platform::availability::venues(&s.pool, &r.tenant)
        .await
        .map_err(internal)?;
    for v in venues {
        let slots = s
            .availability
            .venue_slots(&s.pool, &r.tenant, v.id)
            .await
            .map_err(internal)?;
        if let Some(sl) = slots.iter().find(|x| x.slot_id == slot) {
            return Ok(Some((
                v.name,
                v.vaccine_name,
                text::when(r.lang, r.tenant.time_zone.0, sl.starts_at),
            )));
        }
    }
    Ok(None)
}

async fn confirm_page(
    State(s): State<ResidentServices>,
    Path(slug): Path<String>,
    Query(q): Query<ConfirmQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "confirm".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (session, _) = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(slot) = q.slot else {
        return html_page(StatusCode::NOT_FOUND, page::not_found(r.lang));
    };
    let form = BookForm {
        slot,
        change: q.change,
        key: random_token(),
        csrf: session.csrf_token.clone(),
        ..BookForm::default()
    };
    confirm_markup(&s, &r, &session, &form, None, StatusCode::OK).await
}

async fn confirm_markup(
    s: &ResidentServices,
    r: &Req,
    session: &ResidentSession,
    form: &BookForm,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = r.lang;
    let summary = match slot_summary(s, r, form.slot).await {
        Ok(Some(x)) => x,
        Ok(None) => return html_page(StatusCode::NOT_FOUND, page::not_found(lang)),
        Err(resp) => return resp,
    };
    let existing = match booking::my_bookings(&s.pool, &r.tenant, session.resident_id).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    // The next dose the resident has not booked yet is preselected.
    let next = [Dose::First, Dose::Second, Dose::Booster]
        .into_iter()
        .find(|d| {
            !existing.iter().any(|b| {
                b.dose == *d && b.status == "booked" && b.resident_id == session.resident_id
            })
        })
        .unwrap_or(Dose::First);
    let chosen = parse_dose(&form.dose).unwrap_or(next);
    let (venue, vaccine, when) = summary;
    // Offered only while dose 1 is still to book and the city allows both at once.
    let pairing = if form.change.is_none() && next == Dose::First {
        match booking::second_dose_options(&s.pool, &r.tenant, form.slot, 30).await {
            Ok(o) => o,
            Err(e) => return internal(e),
        }
    } else {
        None
    };
    let tz = r.tenant.time_zone.0;
    let action = if form.change.is_some() {
        "change"
    } else {
        "book"
    };
    html_page(
        status,
        layout(
            &r.ctx(),
            t(lang, T::ConfirmTitle),
            html! {
                @if let Some(m) = message { p class="error" role="alert" { (m) } }
                dl class="summary" {
                    dt { (t(lang, T::When)) } dd class="when" { (when) }
                    dt { (t(lang, T::Venue)) } dd { (venue) }
                    dt { (t(lang, T::Vaccine)) } dd { (vaccine) }
                }
                form method="post" action=(r.url(action)) {
                    input type="hidden" name="csrf" value=(form.csrf);
                    input type="hidden" name="key" value=(form.key);
                    input type="hidden" name="slot" value=(form.slot);
                    @if let Some(c) = form.change {
                        input type="hidden" name="change" value=(c);
                        button type="submit" id="confirm" { (t(lang, T::ConfirmChange)) }
                    } @else {
                        fieldset {
                            legend { (t(lang, T::Dose)) }
                            @for d in [Dose::First, Dose::Second, Dose::Booster] {
                                label class="radio" {
                                    input type="radio" name="dose" value=(d.number()) checked[d == chosen];
                                    " " (d.label(lang))
                                }
                            }
                        }
                        details open[!form.ticket1.is_empty() || !form.ticket2.is_empty()] {
                            summary { (t(lang, T::Companions)) }
                            p class="small" { (t(lang, T::CompanionsHint)) }
                            @for (i, (tk, bd)) in [(&form.ticket1, &form.birth1), (&form.ticket2, &form.birth2)].into_iter().enumerate() {
                                @let n = i + 1;
                                p class="small" { (n + 1) " " (t(lang, T::Person)) }
                                label for=(format!("ticket{n}")) { (t(lang, T::Ticket)) }
                                input id=(format!("ticket{n}")) name=(format!("ticket{n}")) inputmode="numeric" value=(tk);
                                label for=(format!("birth{n}")) { (t(lang, T::BirthDate)) }
                                input id=(format!("birth{n}")) name=(format!("birth{n}")) inputmode="numeric"
                                    placeholder=(t(lang, T::BirthDateHint)) value=(bd);
                            }
                            label class="radio" {
                                input type="checkbox" name="adjacent" value="on" checked[form.adjacent.is_some()];
                                " " (t(lang, T::AdjacentSlots))
                            }
                        }
                        @if let Some(options) = &pairing {
                            fieldset {
                                legend { (t(lang, T::SecondDoseToo)) }
                                p class="small" { (t(lang, T::SecondDoseTooHint)) }
                                select name="second" id="second" {
                                    option value="" selected[form.second.is_empty()] { (t(lang, T::SecondDoseLater)) }
                                    @for (id, at) in options {
                                        option value=(id) selected[form.second == id.to_string()] { (text::when(lang, tz, *at)) }
                                    }
                                }
                            }
                        }
                        (questionnaire::markup(lang, &form.questionnaire()))
                        button type="submit" id="confirm" { (t(lang, T::ConfirmBook)) }
                    }
                }
                a href=(r.url("venues")) { (t(lang, T::Back)) }
            },
        ),
    )
}

fn parse_dose(raw: &str) -> Option<Dose> {
    raw.trim().parse::<i16>().ok().and_then(Dose::from_number)
}

async fn book_submit(
    State(s): State<ResidentServices>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<BookForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, "confirm".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (session, _) = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if form.csrf != session.csrf_token {
        return confirm_markup(
            &s,
            &r,
            &session,
            &form,
            Some(t(r.lang, T::FormExpired)),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let refused = |message: String| {
        let form = form.clone();
        let (s, r, session) = (&s, &r, &session);
        async move {
            confirm_markup(
                s,
                r,
                session,
                &form,
                Some(&message),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    // Companions: each by ticket number + birth date; one answer for any mismatch.
    let mut companions = Vec::new();
    for (ticket, birth) in [(&form.ticket1, &form.birth1), (&form.ticket2, &form.birth2)] {
        if ticket.trim().is_empty() && birth.trim().is_empty() {
            continue;
        }
        let found = match parse_birth_date(birth) {
            Some(b) => match tenants::begin(&s.pool, r.tenant.id).await {
                Ok(mut tx) => {
                    let f = platform::residents::find_by_ticket(&mut tx, ticket, b).await;
                    let _ = tx.commit().await;
                    f.unwrap_or(None)
                }
                Err(e) => return internal(e),
            },
            None => None,
        };
        match found {
            Some(id) => companions.push(id),
            None => return refused(AuthError::NotRecognised.message(r.lang)).await,
        }
    }
    let req = BookRequest {
        resident_id: session.resident_id,
        slot_id: form.slot,
        dose: parse_dose(&form.dose).unwrap_or(Dose::First),
        companions,
        second_dose_slot: form.second.trim().parse().ok(),
        idempotency_key: format!("web:{}:{}", session.resident_id, form.key),
    };
    let result = if form.adjacent.is_some() {
        booking::book_allowing_adjacent(&s.pool, &r.tenant, &req).await
    } else {
        booking::book_batched(&s.booker, &s.pool, &r.tenant, &req).await
    };
    match result {
        Ok(booked) => {
            for b in &booked {
                s.availability.invalidate_venue(r.tenant.id, b.venue_id);
            }
            // the questionnaire is a courtesy: its failure never undoes the booking
            let answers = form.questionnaire().answers();
            if let Err(e) = platform::intake::save_questionnaire_by_resident(
                &s.pool,
                &r.tenant,
                session.resident_id,
                &answers,
            )
            .await
            {
                tracing::warn!(error = %e, "storing the questionnaire failed");
            }
            let first = booked.first().map(|b| b.id).unwrap_or_default();
            Redirect::to(&r.url(&format!("done?booking={first}"))).into_response()
        }
        Err(booking::BookingError::Database(e)) => internal(e),
        Err(e) => refused(e.message(r.lang)).await,
    }
}

async fn change_submit(
    State(s): State<ResidentServices>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<BookForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, "confirm".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (session, _) = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(booking_id) = form.change else {
        return html_page(StatusCode::NOT_FOUND, page::not_found(r.lang));
    };
    if form.csrf != session.csrf_token {
        return confirm_markup(
            &s,
            &r,
            &session,
            &form,
            Some(t(r.lang, T::FormExpired)),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let key = format!("web:{}:{}", session.resident_id, form.key);
    match booking::change(
        &s.pool,
        &r.tenant,
        session.resident_id,
        booking_id,
        form.slot,
        &key,
    )
    .await
    {
        Ok(moved) => {
            s.availability.invalidate_tenant(r.tenant.id);
            Redirect::to(&r.url(&format!("done?booking={}&changed=1", moved.id))).into_response()
        }
        Err(booking::BookingError::Database(e)) => internal(e),
        Err(e) => {
            confirm_markup(
                &s,
                &r,
                &session,
                &form,
                Some(&e.message(r.lang)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    booking: Option<Uuid>,
    changed: Option<String>,
}

async fn done(
    State(s): State<ResidentServices>,
    Path(slug): Path<String>,
    Query(q): Query<DoneQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "done".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (session, _) = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let list = match booking::my_bookings(&s.pool, &r.tenant, session.resident_id).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let lang = r.lang;
    let tz = r.tenant.time_zone.0;
    let Some(b) = list.iter().find(|b| Some(b.id) == q.booking) else {
        return Redirect::to(&r.url("bookings")).into_response();
    };
    let group: Vec<_> = list
        .iter()
        .filter(|x| x.group_id == b.group_id && x.status == "booked")
        .collect();
    html_page(
        StatusCode::OK,
        layout(
            &r.ctx(),
            if q.changed.is_some() {
                t(lang, T::ChangedText)
            } else {
                t(lang, T::DoneTitle)
            },
            html! {
                dl class="summary" {
                    dt { (t(lang, T::When)) } dd class="when" { (text::when(lang, tz, b.starts_at)) }
                    dt { (t(lang, T::Venue)) } dd { (b.venue_name) }
                    dt { (t(lang, T::Vaccine)) } dd { (b.vaccine_name) }
                    dt { (t(lang, T::Dose)) } dd { (b.dose.label(lang)) @if group.len() > 1 { " × " (group.len()) } }
                }
                p { (t(lang, T::DoneText)) }
                a class="button" id="my-bookings" href=(r.url("bookings")) { (t(lang, T::MyBookings)) }
            },
        ),
    )
}

async fn cancel_page(
    State(s): State<ResidentServices>,
    Path((slug, booking_id)): Path<(String, Uuid)>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, format!("cancel/{booking_id}")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (session, _) = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    cancel_markup(
        &s,
        &r,
        &session,
        booking_id,
        &random_token(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn cancel_markup(
    s: &ResidentServices,
    r: &Req,
    session: &ResidentSession,
    booking_id: Uuid,
    key: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = r.lang;
    let list = match booking::my_bookings(&s.pool, &r.tenant, session.resident_id).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let Some(b) = list
        .iter()
        .find(|b| b.id == booking_id && b.status == "booked")
    else {
        return html_page(StatusCode::NOT_FOUND, page::not_found(lang));
    };
    let tz = r.tenant.time_zone.0;
    html_page(
        status,
        layout(
            &r.ctx(),
            t(lang, T::CancelTitle),
            html! {
                @if let Some(m) = message { p class="error" role="alert" { (m) } }
                p { (t(lang, T::CancelQuestion)) }
                dl class="summary" {
                    dt { (t(lang, T::When)) } dd class="when" { (text::when(lang, tz, b.starts_at)) }
                    dt { (t(lang, T::Venue)) } dd { (b.venue_name) }
                    dt { (t(lang, T::Dose)) } dd { (b.dose.label(lang)) }
                }
                form method="post" action=(r.url(&format!("cancel/{booking_id}"))) {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    input type="hidden" name="key" value=(key);
                    button type="submit" id="cancel" class="danger" { (t(lang, T::CancelYes)) }
                }
                a href=(r.url("bookings")) { (t(lang, T::Back)) }
            },
        ),
    )
}

#[derive(Deserialize)]
struct CancelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key: String,
}

async fn cancel_submit(
    State(s): State<ResidentServices>,
    Path((slug, booking_id)): Path<(String, Uuid)>,
    headers: HeaderMap,
    Form(form): Form<CancelForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, format!("cancel/{booking_id}")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (session, _) = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if form.csrf != session.csrf_token {
        return cancel_markup(
            &s,
            &r,
            &session,
            booking_id,
            &form.key,
            Some(t(r.lang, T::FormExpired)),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let key = format!("web:{}:{}", session.resident_id, form.key);
    match booking::cancel(&s.pool, &r.tenant, session.resident_id, booking_id, &key).await {
        Ok(_) => {
            s.availability.invalidate_tenant(r.tenant.id);
            Redirect::to(&r.url("bookings?notice=cancelled")).into_response()
        }
        Err(booking::BookingError::Database(e)) => internal(e),
        Err(e) => {
            cancel_markup(
                &s,
                &r,
                &session,
                booking_id,
                &form.key,
                Some(&e.message(r.lang)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}
