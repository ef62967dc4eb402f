//! The resident booking site: server-rendered, phone first, works without JavaScript, in ja / en /
//! zh-Hans / pt. Thin by design: parse the form, call the resident desk
//! (`platform::residents::desk`: city status, session, booking path, questionnaire, cache), render.
//! A suspended city answers every page with 403 and a notice saying so.
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
use platform::ResidentDesk;
use platform::booking::Dose;
use platform::booking::availability::Mark;
use platform::i18n::Lang;
use platform::residents::auth::{self, AuthError};
use platform::residents::desk::{self, DeskError, Entered, Resident, Visit};
use platform::residents::parse_birth_date;
use serde::Deserialize;
use tenants::Tenant;
use uuid::Uuid;

use page::{Ctx, layout};
use text::{T, t};

const SESSION_COOKIE: &str = "yk_session";
const FORM_COOKIE: &str = "yk_form";
const LANG_COOKIE: &str = "yk_lang";

pub fn router<S: Clone + Send + Sync + 'static>(desk: ResidentDesk) -> Router<S> {
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
        .with_state(desk)
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

/// The language the request asks for (cookie, then Accept-Language), if any.
fn asked_language(headers: &HeaderMap) -> Option<Lang> {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::from_tag)
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::negotiate)
        })
}

fn language(headers: &HeaderMap, tenant: &Tenant) -> Lang {
    asked_language(headers)
        .or_else(|| Lang::from_tag(&tenant.default_locale))
        .unwrap_or_default()
}

fn random_token() -> String {
    let bytes: [u8; 18] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The desk's refusal as a page: "not found", the suspension notice (403, nothing of the city),
/// the login page for a missing or expired session, or "something went wrong".
fn refusal(slug: &str, lang: Lang, e: DeskError) -> Response {
    match e {
        DeskError::NoSuchCity => html_page(StatusCode::NOT_FOUND, page::not_found(lang)),
        DeskError::Suspended => {
            html_page(StatusCode::FORBIDDEN, page::refusal(lang, &e.message(lang)))
        }
        DeskError::SignedOut => Redirect::to(&format!("/t/{slug}/login?expired=1")).into_response(),
        DeskError::Database(e) => internal(e),
        other => html_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            page::refusal(lang, &other.message(lang)),
        ),
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

/// Everything a page handler needs before it does its own work: the city entered through the
/// desk, the language, the page's path.
struct Req {
    visit: Visit,
    lang: Lang,
    path: String,
}

impl Req {
    fn tenant(&self) -> &Tenant {
        self.visit.tenant()
    }
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            tenant: self.tenant(),
            lang: self.lang,
            path: &self.path,
        }
    }
    fn url(&self, rest: &str) -> String {
        format!("/t/{}/{rest}", self.tenant().slug)
    }
    /// The desk's refusal of this request as a page.
    fn refused(&self, e: DeskError) -> Response {
        refusal(&self.tenant().slug, self.lang, e)
    }
}

async fn req(
    desk: &ResidentDesk,
    slug: &str,
    headers: &HeaderMap,
    path: String,
) -> Result<Req, Response> {
    match desk.visit(slug).await {
        Ok(visit) => {
            let lang = language(headers, visit.tenant());
            Ok(Req { visit, lang, path })
        }
        Err(e) => Err(refusal(
            slug,
            asked_language(headers).unwrap_or_default(),
            e,
        )),
    }
}

/// The resident of the session cookie, or a redirect to the login page.
async fn resident(desk: &ResidentDesk, r: &Req, headers: &HeaderMap) -> Result<Resident, Response> {
    let token = cookie(headers, SESSION_COOKIE).unwrap_or("");
    if token.is_empty() {
        return Err(Redirect::to(&r.url("login")).into_response());
    }
    desk.resident(&r.visit, token)
        .await
        .map_err(|e| r.refused(e))
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

async fn start(
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

async fn login_page(
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

fn client_ip(info: Option<&ConnectInfo<SocketAddr>>) -> String {
    info.map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

async fn login_submit(
    State(s): State<ResidentDesk>,
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
    let ip = client_ip(info.as_ref().map(|e| &e.0));
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

async fn code_submit(
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
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
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
struct BackQuery {
    back: Option<String>,
}

async fn switch_language(
    State(s): State<ResidentDesk>,
    Path((slug, tag)): Path<(String, String)>,
    Query(q): Query<BackQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = req(&s, &slug, &headers, "lang".into()).await {
        return resp;
    }
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
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    Query(q): Query<NoticeQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "bookings".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let list = match s.my_bookings(&me).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    let lang = r.lang;
    let tz = r.tenant().time_zone.0;
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
                                @if b.resident_id != me.id() { p class="small" { "👥" } }
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
                    input type="hidden" name="csrf" value=(me.csrf_token());
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
    State(s): State<ResidentDesk>,
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
    let list = match s.venues(&r.visit).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
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
    State(s): State<ResidentDesk>,
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
    let list = match s.days(&r.visit, venue).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
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
    State(s): State<ResidentDesk>,
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
    let list = match s.day(&r.visit, venue, date).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    let lang = r.lang;
    let tz = r.tenant().time_zone.0;
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
    s: &ResidentDesk,
    r: &Req,
    slot: Uuid,
) -> Result<Option<(String, String, String)>, Response> {
    Ok(s.slot(&r.visit, slot)
        .await
        .map_err(|e| r.refused(e))?
        .map(|(v, sl)| {
            (
                v.name,
                v.vaccine_name,
                text::when(r.lang, r.tenant().time_zone.0, sl.starts_at),
            )
        }))
}

async fn confirm_page(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    Query(q): Query<ConfirmQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "confirm".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
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
        csrf: me.csrf_token().to_owned(),
        ..BookForm::default()
    };
    confirm_markup(&s, &r, &me, &form, None, StatusCode::OK).await
}

async fn confirm_markup(
    s: &ResidentDesk,
    r: &Req,
    me: &Resident,
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
    let existing = match s.my_bookings(me).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    // The next dose the resident has not booked yet is preselected.
    let next = [Dose::First, Dose::Second, Dose::Booster]
        .into_iter()
        .find(|d| {
            !existing
                .iter()
                .any(|b| b.dose == *d && b.status == "booked" && b.resident_id == me.id())
        })
        .unwrap_or(Dose::First);
    // the radio shows what the resident chose (a malformed choice is refused on submit, and
    // shows the preselection again)
    let chosen = form.dose.parse::<Dose>().unwrap_or(next);
    let (venue, vaccine, when) = summary;
    // Offered only while dose 1 is still to book and the city allows both at once.
    let pairing = if form.change.is_none() && next == Dose::First {
        match s.second_dose_options(me, form.slot).await {
            Ok(o) => o,
            Err(e) => return r.refused(e),
        }
    } else {
        None
    };
    let tz = r.tenant().time_zone.0;
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

async fn book_submit(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<BookForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, "confirm".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if form.csrf != me.csrf_token() {
        return confirm_markup(
            &s,
            &r,
            &me,
            &form,
            Some(t(r.lang, T::FormExpired)),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let refused = |e: DeskError| {
        let form = form.clone();
        let (s, r, me) = (&s, &r, &me);
        async move {
            match e {
                DeskError::Database(_) | DeskError::Suspended | DeskError::SignedOut => {
                    r.refused(e)
                }
                e => {
                    confirm_markup(
                        s,
                        r,
                        me,
                        &form,
                        Some(&e.message(r.lang)),
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await
                }
            }
        }
    };
    let dose = match form.dose.parse::<Dose>() {
        Ok(d) => d,
        Err(bad) => {
            return confirm_markup(
                &s,
                &r,
                &me,
                &form,
                Some(&bad.message(r.lang)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let second_dose_slot = match form.second.trim() {
        "" => None,
        raw => match raw.parse::<Uuid>() {
            Ok(id) => Some(id),
            Err(_) => {
                return refused(DeskError::Booking(
                    platform::booking::BookingError::NotFound,
                ))
                .await;
            }
        },
    };
    // Companions: the rows the resident filled in (a row left blank is no one).
    let companions = [(&form.ticket1, &form.birth1), (&form.ticket2, &form.birth2)]
        .into_iter()
        .filter(|(ticket, birth)| !(ticket.trim().is_empty() && birth.trim().is_empty()))
        .map(|(ticket, birth)| desk::Companion {
            ticket_no: ticket.clone(),
            birth_date: parse_birth_date(birth),
        })
        .collect();
    let order = desk::BookOrder {
        slot: form.slot,
        dose,
        companions,
        second_dose_slot,
        allow_adjacent_slots: form.adjacent.is_some(),
        questionnaire: form.questionnaire().answers(),
        idempotency_key: form.key.clone(),
    };
    match s.book(&me, &order).await {
        Ok(booked) => {
            let first = booked.first().map(|b| b.id).unwrap_or_default();
            Redirect::to(&r.url(&format!("done?booking={first}"))).into_response()
        }
        Err(e) => refused(e).await,
    }
}

async fn change_submit(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<BookForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, "confirm".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(booking_id) = form.change else {
        return html_page(StatusCode::NOT_FOUND, page::not_found(r.lang));
    };
    if form.csrf != me.csrf_token() {
        return confirm_markup(
            &s,
            &r,
            &me,
            &form,
            Some(t(r.lang, T::FormExpired)),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    match s.change(&me, booking_id, form.slot, &form.key).await {
        Ok(moved) => {
            Redirect::to(&r.url(&format!("done?booking={}&changed=1", moved.id))).into_response()
        }
        Err(e @ (DeskError::Database(_) | DeskError::Suspended | DeskError::SignedOut)) => {
            r.refused(e)
        }
        Err(e) => {
            confirm_markup(
                &s,
                &r,
                &me,
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
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    Query(q): Query<DoneQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "done".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let list = match s.my_bookings(&me).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    let lang = r.lang;
    let tz = r.tenant().time_zone.0;
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
    State(s): State<ResidentDesk>,
    Path((slug, booking_id)): Path<(String, Uuid)>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, format!("cancel/{booking_id}")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    cancel_markup(
        &s,
        &r,
        &me,
        booking_id,
        &random_token(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn cancel_markup(
    s: &ResidentDesk,
    r: &Req,
    me: &Resident,
    booking_id: Uuid,
    key: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = r.lang;
    let list = match s.my_bookings(me).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    let Some(b) = list
        .iter()
        .find(|b| b.id == booking_id && b.status == "booked")
    else {
        return html_page(StatusCode::NOT_FOUND, page::not_found(lang));
    };
    let tz = r.tenant().time_zone.0;
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
                    input type="hidden" name="csrf" value=(me.csrf_token());
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
    State(s): State<ResidentDesk>,
    Path((slug, booking_id)): Path<(String, Uuid)>,
    headers: HeaderMap,
    Form(form): Form<CancelForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, format!("cancel/{booking_id}")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if form.csrf != me.csrf_token() {
        return cancel_markup(
            &s,
            &r,
            &me,
            booking_id,
            &form.key,
            Some(t(r.lang, T::FormExpired)),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    match s.cancel(&me, booking_id, &form.key).await {
        Ok(_) => Redirect::to(&r.url("bookings?notice=cancelled")).into_response(),
        Err(e @ (DeskError::Database(_) | DeskError::Suspended | DeskError::SignedOut)) => {
            r.refused(e)
        }
        Err(e) => {
            cancel_markup(
                &s,
                &r,
                &me,
                booking_id,
                &form.key,
                Some(&e.message(r.lang)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}
