//! Venue / hospital intake at `/admin/t/{slug}/intake/…` (docs/intake.md): the day's list per
//! venue, one page per visit, and plain form posts for every step — usable on a tablet without
//! JavaScript (a `<noscript>` meta refresh keeps the list current). With JavaScript, our own small
//! script (`/admin/static/intake.js`, no CDN) re-reads the list's rows every two seconds, so another
//! tablet's change shows without a reload.
//!
//! Every handler goes through [`platform::intake::enter`]: intake rights for the role AND the venue.

use axum::{
    extract::{Path, State},
    http::header,
    response::{Html, IntoResponse, Response},
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use maud::{Markup, PreEscaped, html};
use platform::intake::{self, Status, Step};
use platform::staff::authz::{Act, Object, Scope};
use tenants::Tenant;
use uuid::Uuid;

use crate::i18n::Lang;
use crate::page::{PageError, Staff, page};
use crate::routes::{Access as A, Route, get, post};
use crate::state::AdminState;

mod actions;
mod day;
mod visit;

use actions::{next_dose, questionnaire, side_effect, step, undo, vaccinate};
use day::{list, rows};
use visit::visit_page;

const SCRIPT: &str = include_str!("../../static/intake.js");

pub fn routes() -> Vec<Route> {
    let (read, write) = (A::Intake(Act::Read), A::Intake(Act::Write));
    vec![
        get("/admin/static/intake.js", A::Public, script),
        get(
            "/admin/t/{slug}/intake",
            A::City(Object::Intake, Act::Read),
            index,
        ),
        get("/admin/t/{slug}/intake/{venue}", read, list),
        get("/admin/t/{slug}/intake/{venue}/rows", read, rows),
        get(
            "/admin/t/{slug}/intake/{venue}/b/{booking}",
            read,
            visit_page,
        ),
        post(
            "/admin/t/{slug}/intake/{venue}/b/{booking}/step",
            write,
            step,
        ),
        post(
            "/admin/t/{slug}/intake/{venue}/b/{booking}/vaccinate",
            write,
            vaccinate,
        ),
        post(
            "/admin/t/{slug}/intake/{venue}/b/{booking}/undo",
            write,
            undo,
        ),
        post(
            "/admin/t/{slug}/intake/{venue}/b/{booking}/side-effects",
            write,
            side_effect,
        ),
        post(
            "/admin/t/{slug}/intake/{venue}/b/{booking}/questionnaire",
            write,
            questionnaire,
        ),
        post(
            "/admin/t/{slug}/intake/{venue}/b/{booking}/next-dose",
            write,
            next_dose,
        ),
    ]
}

fn tr(lang: Lang, ja: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

fn status_label(lang: Lang, s: Status) -> &'static str {
    match s {
        Status::Booked => tr(lang, "予約済み", "Booked"),
        Status::CheckedIn => tr(lang, "受付済み", "Checked in"),
        Status::Vaccinated => tr(lang, "接種済み", "Vaccinated"),
        Status::Observed => tr(lang, "経過観察済み", "Observed"),
        Status::Released => tr(lang, "退場", "Released"),
        Status::NoShow => tr(lang, "来場なし", "No-show"),
    }
}

fn step_label(lang: Lang, s: Step) -> &'static str {
    match s {
        Step::CheckIn => tr(lang, "受付", "Check in"),
        Step::NoShow => tr(lang, "来場なし", "No-show"),
        Step::Observe => tr(lang, "経過観察終了", "Observation done"),
        Step::Release => tr(lang, "退場", "Release"),
    }
}

fn kind_label(lang: Lang, k: &str) -> &'static str {
    match k {
        "injection_site" => tr(lang, "接種部位の反応", "Injection-site reaction"),
        "fever" => tr(lang, "発熱", "Fever"),
        "fatigue" => tr(lang, "倦怠感", "Fatigue"),
        "headache" => tr(lang, "頭痛", "Headache"),
        "allergic" => tr(lang, "アレルギー反応", "Allergic reaction"),
        "anaphylaxis" => tr(lang, "アナフィラキシー", "Anaphylaxis"),
        "vasovagal" => tr(lang, "血管迷走神経反射", "Vasovagal reaction"),
        _ => tr(lang, "その他", "Other"),
    }
}

fn severity_label(lang: Lang, s: &str) -> &'static str {
    match s {
        "mild" => tr(lang, "軽度", "Mild"),
        "moderate" => tr(lang, "中等度", "Moderate"),
        _ => tr(lang, "重度", "Severe"),
    }
}

fn dose_label(lang: Lang, d: i16) -> &'static str {
    match d {
        1 => tr(lang, "1回目", "Dose 1"),
        2 => tr(lang, "2回目", "Dose 2"),
        _ => tr(lang, "追加接種", "Booster"),
    }
}

/// Steps offered from a state (vaccination has its own form on the visit page).
fn steps_from(s: Status) -> &'static [Step] {
    match s {
        Status::Booked => &[Step::CheckIn, Step::NoShow],
        Status::Vaccinated => &[Step::Observe],
        Status::Observed => &[Step::Release],
        _ => &[],
    }
}

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// The tenant by slug (404 when unknown). Whether the caller may see it — role, venue, and the
/// tenant's status — is the guard's answer ([`intake::enter`], `Authz::enter`), rendered as is.
async fn tenant(state: &AdminState, staff: &Staff, slug: &str) -> Result<Tenant, PageError> {
    tenants::find_by_slug(&state.pool, slug)
        .await?
        .ok_or(PageError::not_found(staff.lang))
}

/// The tenant and the intake scope for the venue, or 404 / 403.
async fn enter(
    state: &AdminState,
    staff: &Staff,
    slug: &str,
    venue: Uuid,
    act: Act,
) -> Result<(Tenant, Scope), PageError> {
    let t = tenant(state, staff, slug).await?;
    let scope = intake::enter(&state.authz, &staff.actor, t.id, venue, act)
        .await
        .map_err(|d| PageError::denied(d, staff.lang))?;
    Ok((t, scope))
}

/// May this person change rows here (decides whether buttons are shown; the posts check again)?
async fn can_write(state: &AdminState, staff: &Staff, t: &Tenant, venue: Uuid) -> bool {
    let a = &state.authz;
    a.check(&staff.actor, t.id, Object::Intake, Act::Write)
        .await
        .unwrap_or(false)
        && a.check(&staff.actor, t.id, Object::Venue(venue), Act::Write)
            .await
            .unwrap_or(false)
}

async fn venue_name(scope: &mut Scope, venue: Uuid, lang: Lang) -> Result<String, PageError> {
    platform::city::setup::venue(scope, venue)
        .await
        .map(|v| v.name)
        .map_err(|e| match e {
            platform::city::setup::SetupError::Database(e) => PageError::from(e),
            _ => PageError::not_found(lang),
        })
}

fn today(t: &Tenant) -> NaiveDate {
    Utc::now().with_timezone(&t.time_zone.0).date_naive()
}

fn base(t: &Tenant, venue: Uuid) -> String {
    format!("/admin/t/{}/intake/{venue}", t.slug)
}

fn local(t: &Tenant, at: DateTime<Utc>, fmt: &str) -> String {
    at.with_timezone(&t.time_zone.0).format(fmt).to_string()
}

/// `YYYY-MM-DDTHH:MM` (an `<input type=datetime-local>`) in the city's time zone.
fn parse_local(t: &Tenant, raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    let naive = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M"))
        .ok()?;
    t.time_zone
        .0
        .from_local_datetime(&naive)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

fn frame(staff: &Staff, t: &Tenant, title: &str, body: Markup) -> Html<String> {
    let lang = staff.lang;
    page(
        lang,
        &format!("{} – {title}", t.name),
        Some(staff),
        html! {
            nav {
                a href={"/admin/t/" (t.slug)} { (t.name) }
                a href={"/admin/t/" (t.slug) "/intake"} { (tr(lang, "受付", "Intake")) }
            }
            style { (PreEscaped(CSS)) }
            (body)
        },
    )
}

const CSS: &str = ".flag{display:inline-block;padding:0 .3em;margin:0 .2em .2em 0;border:1px solid #a60;color:#a60;border-radius:.2em;font-size:.9em}\
.flag.severe{border-color:#a00;color:#a00;font-weight:bold}\
td.actions form{display:inline-block;margin:0 .3em .3em 0}td.actions button{min-height:2.5em;min-width:5em}\
#intake td{vertical-align:top}.status{font-weight:bold}textarea{width:100%;max-width:40em}";

// ---- the venue index -----------------------------------------------------------------------------

pub async fn index(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let t = tenant(&state, &staff, &slug).await?;
    let mut scope = state
        .authz
        .enter(&staff.actor, t.id, Object::Intake, Act::Read)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    let mut venues = Vec::new();
    for v in platform::city::setup::list_venues(&mut scope).await? {
        if state
            .authz
            .check(&staff.actor, t.id, Object::Venue(v.id), Act::Read)
            .await
            .unwrap_or(false)
        {
            venues.push(v);
        }
    }
    drop(scope);
    let body = html! {
        ul #intake-venues {
            @for v in &venues {
                li { a href=(base(&t, v.id)) { (v.name) } }
            }
        }
    };
    Ok(frame(&staff, &t, tr(lang, "受付", "Intake"), body).into_response())
}
