//! What every resident page reads off the request: the city and the language (cookie,
//! Accept-Language, the city's default), the session, the cookies and form tokens, and the answers
//! every page may give (the suspended-city refusal, an internal error, an HTML page).

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::Markup;
use platform::ResidentDesk;
use platform::i18n::Lang;
use platform::residents::desk::{DeskError, Entered, Resident, Visit};
use tenants::Tenant;

use crate::page::Ctx;

// Request context: tenant, language, session

pub(crate) const SESSION_COOKIE: &str = "yk_session";
pub(crate) const FORM_COOKIE: &str = "yk_form";
pub(crate) const LANG_COOKIE: &str = "yk_lang";

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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

pub(crate) fn random_token() -> String {
    let bytes: [u8; 18] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The desk's refusal as a page: "not found", the suspension notice (403, nothing of the city),
/// the login page for a missing or expired session, or "something went wrong".
fn refusal(slug: &str, lang: Lang, e: DeskError) -> Response {
    match e {
        DeskError::NoSuchCity => html_page(StatusCode::NOT_FOUND, crate::page::not_found(lang)),
        DeskError::Suspended => html_page(
            StatusCode::FORBIDDEN,
            crate::page::refusal(lang, &e.message(lang)),
        ),
        DeskError::SignedOut => Redirect::to(&format!("/t/{slug}/login?expired=1")).into_response(),
        DeskError::Database(e) => internal(e),
        other => html_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::page::refusal(lang, &other.message(lang)),
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
pub(crate) struct Req {
    pub(crate) visit: Visit,
    pub(crate) lang: Lang,
    pub(crate) path: String,
}

impl Req {
    pub(crate) fn tenant(&self) -> &Tenant {
        self.visit.tenant()
    }
    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            tenant: self.tenant(),
            lang: self.lang,
            path: &self.path,
        }
    }
    pub(crate) fn url(&self, rest: &str) -> String {
        format!("/t/{}/{rest}", self.tenant().slug)
    }
    /// The desk's refusal of this request as a page.
    pub(crate) fn refused(&self, e: DeskError) -> Response {
        refusal(&self.tenant().slug, self.lang, e)
    }
}

pub(crate) async fn req(
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
pub(crate) async fn resident(
    desk: &ResidentDesk,
    r: &Req,
    headers: &HeaderMap,
) -> Result<Resident, Response> {
    let token = cookie(headers, SESSION_COOKIE).unwrap_or("");
    if token.is_empty() {
        return Err(Redirect::to(&r.url("login")).into_response());
    }
    desk.resident(&r.visit, token)
        .await
        .map_err(|e| r.refused(e))
}

pub(crate) fn html_page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::response::Html(markup.into_string()),
    )
        .into_response()
}
