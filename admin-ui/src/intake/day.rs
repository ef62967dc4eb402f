//! A venue's day at intake: the list of the day's bookings with their flags and steps, and the rows
//! alone for the page's script.

use axum::{
    extract::{Path, Query, State},
    http::header,
    response::{Html, IntoResponse, Response},
};
use chrono::NaiveDate;
use maud::{Markup, html};
use platform::intake::{self, Status};
use platform::staff::authz::Act;
use serde::Deserialize;
use tenants::Tenant;
use uuid::Uuid;

use crate::i18n::Lang;
use crate::page::{PageError, Staff, csrf_field};
use crate::state::AdminState;

use super::{
    base, can_write, dose_label, enter, frame, kind_label, local, severity_label, status_label,
    step_label, steps_from, today, tr, venue_name,
};

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

pub(super) fn flags(lang: Lang, row: &intake::Row) -> Markup {
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
