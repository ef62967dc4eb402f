//! Export jobs in the admin UI (docs/exports.md) at `/admin/t/{slug}/exports`: queue an export,
//! watch its progress (the page refreshes itself while a job runs; no JavaScript needed), download
//! the file until it expires. Guard object `exports`: read = list and download, write = create.
//! The call centre holds neither.

use axum::{
    Form,
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use chrono::{Duration, NaiveDate, Utc};
use maud::html;
use platform::exports::{self, ExportFormat, ExportJobError, ExportKind, ExportStatus};
use platform::staff::authz::{Act, Object};
use serde::Deserialize;
use uuid::Uuid;

use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, csrf_field};
use crate::routes::{Access as A, Route, get, post};
use crate::shell::{enter, render};
use crate::state::AdminState;

pub fn routes() -> Vec<Route> {
    vec![
        get(
            "/admin/t/{slug}/exports",
            A::City(Object::Exports, Act::Read),
            list,
        ),
        post(
            "/admin/t/{slug}/exports",
            A::City(Object::Exports, Act::Write),
            create,
        ),
        get(
            "/admin/t/{slug}/exports/{id}/download",
            A::City(Object::Exports, Act::Read),
            download,
        ),
    ]
}

fn tr(lang: Lang, ja: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

pub fn menu_label(lang: Lang) -> &'static str {
    lang.t(K::Exports)
}

fn kind_label(lang: Lang, kind: &str) -> &'static str {
    match kind {
        "booked_list" => tr(
            lang,
            "予約者一覧（会場・日別）",
            "Booked list (venue and day)",
        ),
        "unbooked_residents" => tr(lang, "未予約の対象者", "Eligible residents not yet booked"),
        "booking_ledger" => tr(lang, "予約台帳", "Booking ledger"),
        "vaccination_records" => tr(lang, "接種記録", "Vaccination records"),
        _ => "?",
    }
}

fn format_label(lang: Lang, f: ExportFormat) -> &'static str {
    match f {
        ExportFormat::Xlsx => "Excel (.xlsx)",
        ExportFormat::CsvUtf8 => tr(lang, "CSV（UTF-8・BOM付き）", "CSV (UTF-8 with BOM)"),
        ExportFormat::CsvShiftJis => "CSV (Shift_JIS)",
    }
}

fn state_label(lang: Lang, status: ExportStatus) -> &'static str {
    match status {
        ExportStatus::Queued => tr(lang, "待機中", "queued"),
        ExportStatus::Running => tr(lang, "作成中", "running"),
        ExportStatus::Done => tr(lang, "完了", "done"),
        ExportStatus::Failed => tr(lang, "失敗", "failed"),
        ExportStatus::Expired => tr(lang, "期限切れ（削除済み）", "expired (deleted)"),
    }
}

pub async fn list(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Exports, Act::Read).await?;
    let jobs = exports::list(&mut scope, 50).await?;
    let venues = platform::city::setup::list_venues(&mut scope).await?;
    scope.commit().await?;
    let may_create = state
        .authz
        .check(&staff.actor, t.id, Object::Exports, Act::Write)
        .await
        .unwrap_or(false);
    let now = Utc::now();
    let busy = jobs
        .iter()
        .any(|j| matches!(j.status(now), ExportStatus::Queued | ExportStatus::Running));
    let tz = t.time_zone.0;
    let today = now.with_timezone(&tz).date_naive();
    let body = html! {
        @if busy {
            // progress without JavaScript: the page reloads itself while something runs
            meta http-equiv="refresh" content="2";
        }
        @if may_create {
            form method="post" action={"/admin/t/" (t.slug) "/exports"} #export-form {
                (csrf_field(&staff))
                label { (tr(lang, "種類", "Kind")) br;
                    select name="kind" {
                        @for k in ["booked_list", "unbooked_residents", "booking_ledger", "vaccination_records"] { option value=(k) { (kind_label(lang, k)) } }
                    }
                }
                label { (tr(lang, "会場（予約者一覧のみ）", "Venue (booked list only)")) br;
                    select name="venue" { @for v in &venues { option value=(v.id) { (v.name) } } }
                }
                label { (tr(lang, "日付（予約者一覧のみ）", "Day (booked list only)")) br;
                    input type="date" name="date" value=(today + Duration::days(1));
                }
                label { (tr(lang, "形式", "Format")) br;
                    select name="format" {
                        @for f in ExportFormat::ALL { option value=(f.as_str()) { (format_label(lang, f)) } }
                    }
                }
                button type="submit" { (tr(lang, "作成", "Create")) }
            }
        }
        table #exports {
            tr {
                th { (tr(lang, "作成日時", "Created")) } th { (tr(lang, "種類", "Kind")) } th { (tr(lang, "形式", "Format")) }
                th { (tr(lang, "状態", "State")) } th { (tr(lang, "進捗", "Progress")) } th { (tr(lang, "作成者", "By")) }
                th { (tr(lang, "有効期限", "Expires")) } th {}
            }
            @for (j, status) in jobs.iter().map(|j| (j, j.status(now))) {
                tr data-state=(status.as_str()) {
                    td { (j.created_at.with_timezone(&tz).format("%Y-%m-%d %H:%M")) }
                    td { (kind_label(lang, &j.kind))
                        @if let Some(d) = j.params.get("date").and_then(|d| d.as_str()) { " " (d) } }
                    td { (ExportFormat::parse(&j.format).map(|f| format_label(lang, f)).unwrap_or("?")) }
                    td { (state_label(lang, status))
                        @if let Some(e) = &j.error { br; span.error { (e) } } }
                    td {
                        @if let Some(p) = j.percent() {
                            progress max="100" value=(p) { (p) "%" } " " (j.rows_done)
                            @if let Some(total) = j.rows_total { " / " (total) } " " (tr(lang, "行", "rows"))
                        } @else { (j.rows_done) " " (tr(lang, "行", "rows")) }
                    }
                    td { (j.created_by) }
                    td { (j.expires_at.map(|e| e.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()) }
                    td {
                        @if status == ExportStatus::Done {
                            a.download href={"/admin/t/" (t.slug) "/exports/" (j.id) "/download"} { (tr(lang, "ダウンロード", "Download")) }
                        }
                    }
                }
            }
        }
        p { (tr(lang, "ダウンロードはすべて監査ログに記録されます。ファイルは有効期限を過ぎると削除されます。", "Every download is recorded in the audit log. Files are deleted when they expire.")) }
    };
    Ok(render(&staff, &t, menu_label(lang), body))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    venue: String,
    #[serde(default)]
    date: String,
}

pub async fn create(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<CreateForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Exports, Act::Write).await?;
    let invalid = |m: &'static str| PageError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: m.into(),
        lang,
    };
    let kind = match form.kind.as_str() {
        "booked_list" => {
            let venue_id: Uuid = form
                .venue
                .trim()
                .parse()
                .map_err(|_| invalid(tr(lang, "会場を選んでください。", "Choose a venue.")))?;
            let date: NaiveDate = form.date.trim().parse().map_err(|_| {
                invalid(tr(
                    lang,
                    "日付を 2026-12-01 の形で入力してください。",
                    "Enter the day as 2026-12-01.",
                ))
            })?;
            ExportKind::BookedList { venue_id, date }
        }
        "unbooked_residents" => ExportKind::UnbookedResidents,
        "booking_ledger" => ExportKind::BookingLedger,
        "vaccination_records" => ExportKind::VaccinationRecords,
        _ => {
            return Err(invalid(tr(
                lang,
                "種類を選んでください。",
                "Choose a kind.",
            )));
        }
    };
    let format = ExportFormat::parse(&form.format)
        .ok_or_else(|| invalid(tr(lang, "形式を選んでください。", "Choose a format.")))?;
    match exports::create(&mut scope, &kind, format).await {
        Ok(_) => {}
        Err(ExportJobError::NotFound) => return Err(PageError::not_found(lang)),
        Err(ExportJobError::PlanLimit(reached)) => {
            // nothing was queued; the cap's alert (if this was the first at 100 %) is kept
            scope.commit().await?;
            return Err(PageError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: match lang {
                    Lang::Ja => reached.ja(),
                    Lang::En => reached.to_string(),
                },
                lang,
            });
        }
        Err(ExportJobError::Database(e)) => return Err(e.into()),
        Err(e) => return Err(PageError::bad_request(e.to_string(), lang)),
    }
    scope.commit().await?;
    Ok(Redirect::to(&format!("/admin/t/{}/exports", t.slug)).into_response())
}

pub async fn download(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (_t, mut scope) = enter(&state, &staff, &slug, Object::Exports, Act::Read).await?;
    let d = match exports::open_download(&mut scope, id).await {
        Ok(d) => d,
        Err(ExportJobError::NotFound) => return Err(PageError::not_found(lang)),
        Err(ExportJobError::Expired) => {
            return Err(PageError {
                status: StatusCode::GONE,
                message: tr(
                    lang,
                    "このファイルは有効期限を過ぎたため削除されました。もう一度作成してください。",
                    "This file has expired and was deleted. Please create the export again.",
                )
                .into(),
                lang,
            });
        }
        Err(ExportJobError::NotReady) => {
            return Err(PageError {
                status: StatusCode::CONFLICT,
                message: tr(
                    lang,
                    "まだ作成中です。少し待ってから開いてください。",
                    "This export is not ready yet; please wait a moment.",
                )
                .into(),
                lang,
            });
        }
        Err(ExportJobError::Database(e)) => return Err(e.into()),
        Err(e) => return Err(PageError::bad_request(e.to_string(), lang)),
    };
    // the audit entry commits before a byte leaves
    scope.commit().await?;
    let stream = exports::chunks(state.pool.clone(), &d);
    Ok((
        [
            (header::CONTENT_TYPE, d.content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", d.file_name),
            ),
            (header::CONTENT_LENGTH, d.byte_size.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
