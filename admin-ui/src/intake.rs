//! Venue / hospital intake at `/admin/t/{slug}/intake/…` (docs/intake.md): the day's list per
//! venue, one page per visit, and plain form posts for every step — usable on a tablet without
//! JavaScript (a `<noscript>` meta refresh keeps the list current). With JavaScript, our own small
//! script (`/admin/static/intake.js`, no CDN) re-reads the list's rows every two seconds, so another
//! tablet's change shows without a reload.
//!
//! Every handler goes through [`platform::intake::enter`]: intake rights for the role AND the venue.

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use maud::{Markup, PreEscaped, html};
use platform::authz::{Act, Object, Scope};
use platform::intake::{self, IntakeError, Status, Step};
use serde::Deserialize;
use tenants::Tenant;
use uuid::Uuid;

use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, csrf_field, page};
use crate::routes::{Access as A, Route, get, post};
use crate::state::AdminState;

const SCRIPT: &str = include_str!("../static/intake.js");

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
    platform::setup::venue(scope, venue)
        .await
        .map(|v| v.name)
        .map_err(|e| match e {
            platform::setup::SetupError::Database(e) => PageError::from(e),
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
    for v in platform::setup::list_venues(&mut scope).await? {
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

// ---- the day's list ------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct DayQuery {
    day: Option<String>,
}

fn parse_day(t: &Tenant, q: &DayQuery, lang: Lang) -> Result<NaiveDate, PageError> {
    match q.day.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => Ok(today(t)),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
            PageError::bad_request(
                tr(
                    lang,
                    "日付は YYYY-MM-DD で指定してください。",
                    "Give the day as YYYY-MM-DD.",
                ),
                lang,
            )
        }),
    }
}

fn flags(lang: Lang, row: &intake::Row) -> Markup {
    html! {
        @if let Some(q) = &row.questionnaire {
            @if q.anaphylaxis {
                span.flag.severe data-flag="anaphylaxis" { (tr(lang, "アナフィラキシー歴", "Anaphylaxis history")) }
            }
            @if q.has_allergies() {
                span.flag data-flag="allergies" title=(q.allergies) { (tr(lang, "アレルギー", "Allergies")) ": " (q.allergies) }
            }
            @if q.has_conditions() {
                span.flag data-flag="conditions" title=(q.conditions) { (tr(lang, "基礎疾患", "Conditions")) ": " (q.conditions) }
            }
        }
        @for (kind, severity) in &row.side_effects {
            span class={"flag " (severity)} data-flag="side_effect" {
                (tr(lang, "副反応", "Side effect")) ": " (kind_label(lang, kind)) " (" (severity_label(lang, severity)) ")"
            }
        }
    }
}

/// The table rows (also what the live refresh fetches).
fn rows_markup(
    staff: &Staff,
    t: &Tenant,
    venue: Uuid,
    day: NaiveDate,
    rows: &[intake::Row],
    write: bool,
) -> Markup {
    let lang = staff.lang;
    let b = base(t, venue);
    html! {
        @if rows.is_empty() {
            tr { td colspan="7" { (tr(lang, "この日の予約はありません。", "No bookings on this day.")) } }
        }
        @for r in rows {
            tr data-booking=(r.booking_id) data-status=(r.status.as_str()) {
                td { (local(t, r.starts_at, "%H:%M")) }
                td {
                    a href={(b) "/b/" (r.booking_id)} { (r.kana_name) }
                    br; small { (r.ticket_no) " · " (r.birth_date) }
                }
                td { (dose_label(lang, r.dose)) br; small { (r.vaccine_name) } }
                td.flags { (flags(lang, r)) }
                td.status data-status=(r.status.as_str()) {
                    (status_label(lang, r.status))
                    @if let Some(lot) = &r.lot_number { br; small.lot { "Lot " (lot) } }
                }
                td.actions {
                    @if write {
                        @for s in steps_from(r.status) {
                            form method="post" action={(b) "/b/" (r.booking_id) "/step"} {
                                (csrf_field(staff))
                                input type="hidden" name="step" value=(s.as_str());
                                input type="hidden" name="back" value={"list:" (day)};
                                button type="submit" name="do" value=(s.as_str()) { (step_label(lang, *s)) }
                            }
                        }
                        @if r.status == Status::CheckedIn {
                            a href={(b) "/b/" (r.booking_id) "#vaccinate"} { (tr(lang, "接種記録へ", "Record vaccination")) }
                        }
                        @if r.status.previous().is_some() {
                            form method="post" action={(b) "/b/" (r.booking_id) "/undo"} {
                                (csrf_field(staff))
                                input type="hidden" name="seen" value=(r.status.as_str());
                                input type="hidden" name="back" value={"list:" (day)};
                                button type="submit" class="undo" { (tr(lang, "取り消し", "Undo")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn list(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue)): Path<(String, Uuid)>,
    Query(q): Query<DayQuery>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, venue, Act::Read).await?;
    let day = parse_day(&t, &q, lang)?;
    let name = venue_name(&mut scope, venue, lang).await?;
    let rows = intake::day_list(&mut scope, &t, venue, day).await?;
    intake::audit_list_view(&mut scope, venue, day, rows.len()).await?;
    scope.commit().await?;
    let write = can_write(&state, &staff, &t, venue).await;
    let b = base(&t, venue);
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let body = html! {
        // Without JavaScript the list still refreshes itself (and every step is a plain form post).
        noscript { meta http-equiv="refresh" content="20"; }
        form method="get" action=(b) id="day" {
            label { (tr(lang, "日付", "Day")) " "
                input type="date" name="day" value=(day);
            }
            button type="submit" { (tr(lang, "表示", "Show")) }
            " "
            a href={(b) "?day=" (day.pred_opt().unwrap_or(day))} { "← " (tr(lang, "前日", "Previous day")) }
            " "
            a href={(b) "?day=" (day.succ_opt().unwrap_or(day))} { (tr(lang, "翌日", "Next day")) " →" }
        }
        p #summary {
            @for s in Status::ALL {
                span { (status_label(lang, s)) ": " (count(s)) " " }
            }
        }
        table #intake {
            thead {
                tr {
                    th { (tr(lang, "時刻", "Time")) }
                    th { (tr(lang, "氏名（カナ）", "Name (kana)")) }
                    th { (tr(lang, "接種", "Dose")) }
                    th { (tr(lang, "注意", "Flags")) }
                    th { (tr(lang, "状態", "Status")) }
                    th { (tr(lang, "操作", "Actions")) }
                }
            }
            tbody #intake-rows data-src={(b) "/rows?day=" (day)} {
                (rows_markup(&staff, &t, venue, day, &rows, write))
            }
        }
        p #live { small { (tr(lang, "この一覧は自動で更新されます。", "This list updates itself.")) } }
        script src="/admin/static/intake.js" defer {}
    };
    Ok(frame(
        &staff,
        &t,
        &format!("{} {name} {day}", tr(lang, "受付", "Intake")),
        body,
    )
    .into_response())
}

/// Just the rows, for the live refresh (not audited again: the page view was).
pub async fn rows(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue)): Path<(String, Uuid)>,
    Query(q): Query<DayQuery>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, venue, Act::Read).await?;
    let day = parse_day(&t, &q, lang)?;
    let rows = intake::day_list(&mut scope, &t, venue, day).await?;
    scope.commit().await?;
    let write = can_write(&state, &staff, &t, venue).await;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Html(rows_markup(&staff, &t, venue, day, &rows, write).into_string()),
    )
        .into_response())
}

// ---- one visit -----------------------------------------------------------------------------------

async fn visit_body(
    state: &AdminState,
    staff: &Staff,
    t: &Tenant,
    venue: Uuid,
    booking: Uuid,
    message: Option<&str>,
) -> Result<(String, Markup), PageError> {
    let lang = staff.lang;
    let mut scope = intake::enter(&state.authz, &staff.actor, t.id, venue, Act::Read)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    let vname = venue_name(&mut scope, venue, lang).await?;
    let v = match intake::visit(&mut scope, venue, booking).await {
        Ok(v) => v,
        Err(IntakeError::Database(e)) => return Err(e.into()),
        Err(_) => return Err(PageError::not_found(lang)),
    };
    let next = intake::next_dose(v.row.dose);
    let next_booked = next.is_some_and(|d| v.other_bookings.iter().any(|o| o.dose == d.number()));
    let slots = if v.row.status.is_vaccinated() && next.is_some() && !next_booked {
        intake::next_dose_slots(&mut scope, t, &v, 60).await?
    } else {
        Vec::new()
    };
    scope.commit().await?;
    let write = can_write(state, staff, t, venue).await;
    let b = format!("{}/b/{booking}", base(t, venue));
    let day = local(t, v.row.starts_at, "%Y-%m-%d");
    let back = format!("visit:{day}");
    let now_local = local(t, Utc::now(), "%Y-%m-%dT%H:%M");
    let r = &v.row;
    let q = r.questionnaire.clone().unwrap_or_default();
    let body = html! {
        p { a href={(base(t, venue)) "?day=" (day)} { "← " (vname) " " (day) } }
        @if let Some(m) = message { p.error #message role="alert" { (m) } }
        dl #visit {
            dt { (tr(lang, "氏名（カナ）", "Name (kana)")) } dd { (r.kana_name) }
            dt { (tr(lang, "接種券番号", "Ticket no.")) } dd { (r.ticket_no) }
            dt { (tr(lang, "生年月日", "Birth date")) } dd { (r.birth_date) }
            dt { (tr(lang, "予約", "Appointment")) } dd { (local(t, r.starts_at, "%Y-%m-%d %H:%M")) " · " (dose_label(lang, r.dose)) " · " (r.vaccine_name) }
            dt { (tr(lang, "状態", "Status")) }
            dd { span.status #visit-status data-status=(r.status.as_str()) { (status_label(lang, r.status)) } }
            dt { (tr(lang, "注意", "Flags")) } dd { (flags(lang, r)) }
        }
        @if write {
            div.actions #steps {
                @for s in steps_from(r.status) {
                    form method="post" action={(b) "/step"} id={"step-" (s.as_str())} style="display:inline-block;margin-right:.5em" {
                        (csrf_field(staff))
                        input type="hidden" name="step" value=(s.as_str());
                        input type="hidden" name="back" value=(back);
                        button type="submit" { (step_label(lang, *s)) }
                    }
                }
                @if let Some(prev) = r.status.previous() {
                    form method="post" action={(b) "/undo"} id="undo" style="display:inline-block" {
                        (csrf_field(staff))
                        input type="hidden" name="seen" value=(r.status.as_str());
                        input type="hidden" name="back" value=(back);
                        button type="submit" { (tr(lang, "取り消し", "Undo")) " → " (status_label(lang, prev)) }
                    }
                }
            }
        }

        h2 { (tr(lang, "接種記録", "Vaccination")) }
        @if let Some(rec) = &v.record {
            dl #record {
                dt { (tr(lang, "ロット番号", "Lot number")) } dd.lot { (rec.lot_number) }
                dt { (tr(lang, "接種量 (mL)", "Amount (mL)")) } dd { (rec.dose_ml) }
                dt { (tr(lang, "接種者", "Vaccinator")) } dd { (rec.vaccinator) }
                dt { (tr(lang, "接種日時", "Vaccinated at")) } dd { (local(t, rec.vaccinated_at, "%Y-%m-%d %H:%M")) }
                dt { (tr(lang, "記録者", "Recorded by")) } dd { (rec.recorded_by) }
            }
        } @else if write && r.status == Status::CheckedIn {
            form method="post" action={(b) "/vaccinate"} id="vaccinate" {
                (csrf_field(staff))
                input type="hidden" name="back" value=(back);
                label { (tr(lang, "ロット番号", "Lot number")) br; input name="lot_number" required maxlength="40" autocomplete="off"; }
                label { (tr(lang, "接種量 (mL)", "Amount (mL)")) br; input name="dose_ml" required inputmode="decimal" size="5"; }
                label { (tr(lang, "接種者", "Vaccinator")) br; input name="vaccinator" required maxlength="100"; }
                label { (tr(lang, "接種日時", "Vaccinated at")) br; input type="datetime-local" name="vaccinated_at" value=(now_local) required; }
                button type="submit" { (tr(lang, "接種を記録", "Record vaccination")) }
            }
        } @else {
            p { (tr(lang, "まだ接種していません。", "Not vaccinated in this visit.")) }
        }

        h2 { (tr(lang, "予診票", "Questionnaire")) }
        @if let Some(at) = q.answered_at {
            p { small { (tr(lang, "回答", "Answered")) ": " (local(t, at, "%Y-%m-%d %H:%M")) " · " (q.answered_by) } }
        }
        @if write {
            form method="post" action={(b) "/questionnaire"} id="questionnaire" {
                (csrf_field(staff))
                input type="hidden" name="back" value=(back);
                label { (tr(lang, "基礎疾患", "Underlying conditions")) br; textarea name="conditions" rows="2" maxlength="1000" { (q.conditions) } }
                label { (tr(lang, "アレルギー", "Allergies")) br; textarea name="allergies" rows="2" maxlength="1000" { (q.allergies) } }
                label { input type="checkbox" name="anaphylaxis" value="1" checked[q.anaphylaxis]; " " (tr(lang, "アナフィラキシーの既往あり", "History of anaphylaxis")) }
                button type="submit" { (tr(lang, "予診票を保存", "Save questionnaire")) }
            }
        } @else {
            dl {
                dt { (tr(lang, "基礎疾患", "Underlying conditions")) } dd { (q.conditions) }
                dt { (tr(lang, "アレルギー", "Allergies")) } dd { (q.allergies) }
            }
        }

        h2 { (tr(lang, "副反応", "Side effects")) }
        table #side-effects {
            tr {
                th { (tr(lang, "接種", "Dose")) } th { (tr(lang, "会場", "Venue")) } th { (tr(lang, "種類", "Kind")) }
                th { (tr(lang, "程度", "Severity")) } th { (tr(lang, "発現", "Onset")) } th { (tr(lang, "メモ", "Note")) } th { (tr(lang, "記録者", "By")) }
            }
            @for n in &v.side_effects {
                tr data-kind=(n.kind) {
                    td { (dose_label(lang, n.dose)) } td { (n.venue_name) } td { (kind_label(lang, &n.kind)) }
                    td { (severity_label(lang, &n.severity)) } td { (local(t, n.onset_at, "%Y-%m-%d %H:%M")) }
                    td { (n.note) } td { (n.recorded_by) }
                }
            }
        }
        @if write {
            form method="post" action={(b) "/side-effects"} id="side-effect" {
                (csrf_field(staff))
                input type="hidden" name="back" value=(back);
                label { (tr(lang, "種類", "Kind")) br;
                    select name="kind" required {
                        @for k in intake::SIDE_EFFECT_KINDS { option value=(k) { (kind_label(lang, k)) } }
                    }
                }
                label { (tr(lang, "程度", "Severity")) br;
                    select name="severity" required {
                        @for s in intake::SEVERITIES { option value=(s) { (severity_label(lang, s)) } }
                    }
                }
                label { (tr(lang, "発現日時", "Onset")) br; input type="datetime-local" name="onset" value=(now_local) required; }
                label { (tr(lang, "メモ", "Note")) br; textarea name="note" rows="2" maxlength="2000" {} }
                button type="submit" { (tr(lang, "副反応を記録", "Add side-effect note")) }
            }
        }

        h2 { (tr(lang, "次回の予約", "Next dose")) }
        ul #other-bookings {
            @for o in &v.other_bookings {
                li data-dose=(o.dose) { (dose_label(lang, o.dose)) " · " (local(t, o.starts_at, "%Y-%m-%d %H:%M")) " · " (o.venue_name) }
            }
        }
        @if write && !slots.is_empty() {
            @if let Some(d) = next {
                form method="post" action={(b) "/next-dose"} id="next-dose" {
                    (csrf_field(staff))
                    input type="hidden" name="back" value=(back);
                    input type="hidden" name="key" value=(Uuid::new_v4().simple());
                    label { (dose_label(lang, d.number())) br;
                        select name="slot" required {
                            @for s in &slots {
                                option value=(s.slot_id) { (local(t, s.starts_at, "%Y-%m-%d %H:%M")) " · " (s.venue_name) " (" (tr(lang, "残り", "free")) " " (s.free) ")" }
                            }
                        }
                    }
                    button type="submit" { (tr(lang, "この枠で予約", "Book this slot")) }
                }
            }
        } @else if write && r.status.is_vaccinated() && next.is_some() && !next_booked {
            p { (tr(lang, "予約できる枠がありません。", "No free slot for the next dose.")) }
        }
    };
    Ok((r.kana_name.clone(), body))
}

pub async fn visit_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue, booking)): Path<(String, Uuid, Uuid)>,
) -> Result<Response, PageError> {
    let t = tenant(&state, &staff, &slug).await?;
    let (name, body) = visit_body(&state, &staff, &t, venue, booking, None).await?;
    Ok(frame(&staff, &t, &name, body).into_response())
}

// ---- mutations -----------------------------------------------------------------------------------

/// Where to go after a post: the day's list or the visit page.
fn after(t: &Tenant, venue: Uuid, booking: Uuid, back: &str) -> Redirect {
    let b = base(t, venue);
    match back.split_once(':') {
        Some(("list", day)) if NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok() => {
            Redirect::to(&format!("{b}?day={day}#{booking}"))
        }
        _ => Redirect::to(&format!("{b}/b/{booking}")),
    }
}

fn error_message(lang: Lang, e: &IntakeError) -> (StatusCode, String) {
    match e {
        IntakeError::WrongState { current } => (
            StatusCode::CONFLICT,
            format!(
                "{} {}{}",
                tr(
                    lang,
                    "この予約の状態は変わっています（別の端末で操作されたかもしれません）。現在:",
                    "This booking has changed (perhaps on another tablet). It is now:"
                ),
                status_label(lang, *current),
                tr(lang, "。", ".")
            ),
        ),
        IntakeError::Invalid { field, reason } => {
            let f = match *field {
                "lot_number" => tr(lang, "ロット番号", "Lot number"),
                "dose_ml" => tr(lang, "接種量 (mL)", "Amount (mL)"),
                "vaccinator" => tr(lang, "接種者", "Vaccinator"),
                "vaccinated_at" => tr(lang, "接種日時", "Vaccinated at"),
                "kind" => tr(lang, "種類", "Kind"),
                "severity" => tr(lang, "程度", "Severity"),
                "onset" => tr(lang, "発現日時", "Onset"),
                "note" => tr(lang, "メモ", "Note"),
                "conditions" => tr(lang, "基礎疾患", "Underlying conditions"),
                "allergies" => tr(lang, "アレルギー", "Allergies"),
                "step" => tr(lang, "操作", "Step"),
                "slot" => tr(lang, "枠", "Slot"),
                other => other,
            };
            (StatusCode::UNPROCESSABLE_ENTITY, format!("{f}: {reason}"))
        }
        IntakeError::Booking(b) => {
            let plang = match lang {
                Lang::Ja => platform::i18n::Lang::Ja,
                Lang::En => platform::i18n::Lang::En,
            };
            let status = if b.code() == "CONFLICT" {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            (status, b.message(plang))
        }
        IntakeError::NotFound => (StatusCode::NOT_FOUND, lang.t(K::NotFound).into()),
        IntakeError::Database(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side; please try again.".into(),
        ),
    }
}

/// Runs a mutation in a write scope: commit and redirect, or show the visit page with the reason
/// (nothing changed).
async fn mutate<F>(
    state: &AdminState,
    staff: &Staff,
    slug: &str,
    venue: Uuid,
    booking: Uuid,
    back: &str,
    work: F,
) -> Result<Response, PageError>
where
    F: AsyncFnOnce(&mut Scope, &Tenant) -> Result<(), IntakeError>,
{
    let lang = staff.lang;
    let (t, mut scope) = enter(state, staff, slug, venue, Act::Write).await?;
    match work(&mut scope, &t).await {
        Ok(()) => {
            scope.commit().await?;
            Ok(after(&t, venue, booking, back).into_response())
        }
        Err(IntakeError::Database(e)) => Err(e.into()),
        Err(IntakeError::NotFound) => Err(PageError::not_found(lang)),
        Err(e) => {
            drop(scope);
            let (status, message) = error_message(lang, &e);
            let (name, body) = visit_body(state, staff, &t, venue, booking, Some(&message)).await?;
            Ok((status, frame(staff, &t, &name, body)).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct StepForm {
    #[serde(default)]
    step: String,
    #[serde(default)]
    back: String,
}

pub async fn step(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue, booking)): Path<(String, Uuid, Uuid)>,
    Form(f): Form<StepForm>,
) -> Result<Response, PageError> {
    let parsed = Step::parse(&f.step);
    mutate(
        &state,
        &staff,
        &slug,
        venue,
        booking,
        &f.back,
        async |scope, _| {
            let s = parsed.ok_or(IntakeError::Invalid {
                field: "step",
                reason: "unknown step",
            })?;
            intake::step(scope, venue, booking, s).await.map(|_| ())
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct UndoForm {
    #[serde(default)]
    seen: String,
    #[serde(default)]
    back: String,
}

pub async fn undo(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue, booking)): Path<(String, Uuid, Uuid)>,
    Form(f): Form<UndoForm>,
) -> Result<Response, PageError> {
    let seen = Status::parse(&f.seen);
    mutate(
        &state,
        &staff,
        &slug,
        venue,
        booking,
        &f.back,
        async |scope, _| {
            let seen = seen.ok_or(IntakeError::Invalid {
                field: "step",
                reason: "reload the page and try again",
            })?;
            intake::undo(scope, venue, booking, seen).await.map(|_| ())
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct VaccinateForm {
    #[serde(default)]
    lot_number: String,
    #[serde(default)]
    dose_ml: String,
    #[serde(default)]
    vaccinator: String,
    #[serde(default)]
    vaccinated_at: String,
    #[serde(default)]
    back: String,
}

pub async fn vaccinate(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue, booking)): Path<(String, Uuid, Uuid)>,
    Form(f): Form<VaccinateForm>,
) -> Result<Response, PageError> {
    mutate(
        &state,
        &staff,
        &slug,
        venue,
        booking,
        &f.back,
        async |scope, t| {
            let dose_ml = f
                .dose_ml
                .trim()
                .replace(',', ".")
                .parse::<f64>()
                .map_err(|_| IntakeError::Invalid {
                    field: "dose_ml",
                    reason: "a number such as 0.3",
                })?;
            let vaccinated_at = if f.vaccinated_at.trim().is_empty() {
                Utc::now()
            } else {
                parse_local(t, &f.vaccinated_at).ok_or(IntakeError::Invalid {
                    field: "vaccinated_at",
                    reason: "YYYY-MM-DD HH:MM",
                })?
            };
            let v = intake::NewVaccination {
                lot_number: f.lot_number.clone(),
                dose_ml,
                vaccinator: f.vaccinator.clone(),
                vaccinated_at,
            };
            intake::vaccinate(scope, venue, booking, &v)
                .await
                .map(|_| ())
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct SideEffectForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    onset: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    back: String,
}

pub async fn side_effect(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue, booking)): Path<(String, Uuid, Uuid)>,
    Form(f): Form<SideEffectForm>,
) -> Result<Response, PageError> {
    mutate(
        &state,
        &staff,
        &slug,
        venue,
        booking,
        &f.back,
        async |scope, t| {
            let onset_at = parse_local(t, &f.onset).ok_or(IntakeError::Invalid {
                field: "onset",
                reason: "YYYY-MM-DD HH:MM",
            })?;
            let n = intake::NewSideEffect {
                kind: f.kind.trim().to_owned(),
                severity: f.severity.trim().to_owned(),
                onset_at,
                note: f.note.clone(),
            };
            intake::add_side_effect(scope, venue, booking, &n)
                .await
                .map(|_| ())
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct QuestionnaireForm {
    #[serde(default)]
    conditions: String,
    #[serde(default)]
    allergies: String,
    #[serde(default)]
    anaphylaxis: String,
    #[serde(default)]
    back: String,
}

pub async fn questionnaire(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue, booking)): Path<(String, Uuid, Uuid)>,
    Form(f): Form<QuestionnaireForm>,
) -> Result<Response, PageError> {
    mutate(
        &state,
        &staff,
        &slug,
        venue,
        booking,
        &f.back,
        async |scope, _| {
            let a = intake::Answers {
                conditions: f.conditions.clone(),
                allergies: f.allergies.clone(),
                anaphylaxis: !f.anaphylaxis.is_empty(),
            };
            intake::save_questionnaire(scope, venue, booking, &a).await
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct NextDoseForm {
    #[serde(default)]
    slot: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    back: String,
}

pub async fn next_dose(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue, booking)): Path<(String, Uuid, Uuid)>,
    Form(f): Form<NextDoseForm>,
) -> Result<Response, PageError> {
    mutate(
        &state,
        &staff,
        &slug,
        venue,
        booking,
        &f.back,
        async |scope, t| {
            let slot = Uuid::parse_str(f.slot.trim()).map_err(|_| IntakeError::Invalid {
                field: "slot",
                reason: "choose a time",
            })?;
            intake::book_next_dose(scope, t, venue, booking, slot, &f.key)
                .await
                .map(|_| ())
        },
    )
    .await
}
