//! The operator's page of the job runtime (`/admin/jobs`): queues with pending / running / failed /
//! done and the oldest due task's age, the workers' heartbeats, the failed tasks with their reason,
//! and retry / discard for each (audited by `platform::jobs::overview`).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use platform::jobs::overview::{self, JobAdminError, Overview};
use platform::staff::authz::{Act, PlatformScope};

use crate::i18n::Lang;
use crate::page::{PageError, Staff, csrf_field, page};
use crate::routes::{Access::Operator, Route, get, post};
use crate::state::AdminState;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        get("/admin/jobs", Operator, jobs),
        post("/admin/jobs/{id}/retry", Operator, retry),
        post("/admin/jobs/{id}/discard", Operator, discard),
    ]
}

fn tr(lang: Lang, ja: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

async fn scope(state: &AdminState, staff: &Staff, act: Act) -> Result<PlatformScope, PageError> {
    state
        .authz
        .enter_platform(&staff.actor, act)
        .await
        .map_err(|d| PageError::denied(d, staff.lang))
}

fn age(secs: Option<i64>) -> String {
    match secs {
        None => "–".into(),
        Some(s) if s < 120 => format!("{s} s"),
        Some(s) if s < 7200 => format!("{} min", s / 60),
        Some(s) => format!("{} h", s / 3600),
    }
}

fn render(staff: &Staff, o: &Overview) -> Markup {
    let lang = staff.lang;
    html! {
        table #queues {
            tr {
                th { (tr(lang, "キュー", "Queue")) } th { (tr(lang, "待機", "Pending")) }
                th { (tr(lang, "実行中", "Running")) } th { (tr(lang, "失敗", "Failed")) }
                th { (tr(lang, "完了", "Done")) } th { (tr(lang, "最古の待ち", "Oldest due")) }
            }
            @for q in &o.queues {
                tr data-queue=(q.queue) {
                    td { (q.queue) } td.pending { (q.pending) } td.running { (q.running) }
                    td.failed { (q.failed) } td.done { (q.done) } td.oldest { (age(q.oldest_due_secs)) }
                }
            }
        }
        h2 { (tr(lang, "ワーカー（過去1時間）", "Workers (last hour)")) }
        @if o.workers.is_empty() { p { (tr(lang, "なし", "None")) } }
        ul #workers {
            @for w in &o.workers {
                li { code { (w.id) } " · " (w.queue) " · " (w.last_seen.format("%Y-%m-%d %H:%M:%S UTC")) }
            }
        }
        h2 { (tr(lang, "失敗したジョブ", "Failed jobs")) }
        @if o.failed.is_empty() { p #no-failed { (tr(lang, "なし", "None")) } }
        @else {
            table #failed {
                tr {
                    th { (tr(lang, "キュー", "Queue")) } th { (tr(lang, "キー", "Key")) }
                    th { (tr(lang, "試行", "Attempts")) } th { (tr(lang, "理由", "Reason")) }
                    th { (tr(lang, "日時", "When")) } th {}
                }
                @for f in &o.failed {
                    tr data-task=(f.id) {
                        td { (f.queue) } td { code { (f.key.as_deref().unwrap_or("")) } }
                        td { (f.attempts) } td.reason { (f.reason.as_deref().unwrap_or("")) }
                        td { @if let Some(at) = f.at { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
                        td {
                            form method="post" action={"/admin/jobs/" (f.id) "/retry"} {
                                (csrf_field(staff))
                                button type="submit" { (tr(lang, "再実行", "Retry")) }
                            }
                            form method="post" action={"/admin/jobs/" (f.id) "/discard"} {
                                (csrf_field(staff))
                                button type="submit" { (tr(lang, "破棄", "Discard")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn jobs(State(state): State<AdminState>, staff: Staff) -> Result<Response, PageError> {
    let scope = scope(&state, &staff, Act::Read).await?;
    let o = overview::overview(&scope).await?;
    Ok(page(
        staff.lang,
        tr(staff.lang, "ジョブ", "Jobs"),
        Some(&staff),
        render(&staff, &o),
    )
    .into_response())
}

fn answer(result: Result<(), JobAdminError>, lang: Lang) -> Result<Response, PageError> {
    match result {
        Ok(()) => Ok(Redirect::to("/admin/jobs").into_response()),
        Err(JobAdminError::NotFound) => Ok((
            StatusCode::NOT_FOUND,
            page(
                lang,
                tr(lang, "ジョブ", "Jobs"),
                None,
                html! { p.error role="alert" { (tr(lang, "この失敗したジョブは見つかりません（再実行または破棄済みかもしれません）。", "No failed job with this id (it may have been retried or discarded already).")) } p { a href="/admin/jobs" { (tr(lang, "ジョブ一覧へ", "Back to the jobs")) } } },
            ),
        )
            .into_response()),
        Err(JobAdminError::Database(e)) => Err(e.into()),
    }
}

pub async fn retry(
    State(state): State<AdminState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let scope = scope(&state, &staff, Act::Write).await?;
    answer(overview::retry(&scope, &id).await, staff.lang)
}

pub async fn discard(
    State(state): State<AdminState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let scope = scope(&state, &staff, Act::Write).await?;
    answer(overview::discard(&scope, &id).await, staff.lang)
}
