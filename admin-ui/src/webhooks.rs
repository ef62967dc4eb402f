//! A city's event webhooks (`/admin/t/{slug}/webhooks`, docs/webhooks.md): the subscriptions
//! (endpoint, events, secret hint, active), adding one (its signing secret shown once), pausing,
//! resuming, a new secret, deleting, and the recent delivery attempts. Every rule, the audit entry
//! and the log are `platform::webhooks`'; this page parses, calls and renders.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use platform::staff::authz::{Act, Object, Scope};
use platform::webhooks::{self, EventType, NewSubscription, WebhookError};
use serde::Deserialize;
use tenants::Tenant;
use uuid::Uuid;

use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, csrf_field};
use crate::routes::{Access as A, Route, get, post};
use crate::shell::{enter, render};
use crate::state::AdminState;

pub fn routes() -> Vec<Route> {
    let read = A::City(Object::Webhooks, Act::Read);
    let write = A::City(Object::Webhooks, Act::Write);
    vec![
        get("/admin/t/{slug}/webhooks", read, page),
        post("/admin/t/{slug}/webhooks", write, create),
        post("/admin/t/{slug}/webhooks/{id}/pause", write, pause),
        post("/admin/t/{slug}/webhooks/{id}/resume", write, resume),
        post("/admin/t/{slug}/webhooks/{id}/rotate", write, rotate),
        post("/admin/t/{slug}/webhooks/{id}/delete", write, delete),
    ]
}

fn both(lang: Lang, ja: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

fn event_label(lang: Lang, raw: &str) -> String {
    match EventType::parse(raw) {
        Some(t) => {
            let (ja, en) = t.describe();
            format!("{raw} ({})", both(lang, ja, en))
        }
        None => raw.to_owned(),
    }
}

fn outcome_label(lang: Lang, outcome: &str) -> &str {
    match outcome {
        "delivered" => both(lang, "配信済み", "delivered"),
        "failed" => both(lang, "失敗（再送予定）", "failed (will retry)"),
        "gave_up" => both(lang, "失敗（再送終了）", "failed (given up)"),
        "skipped" => both(lang, "送信せず（一時停止中）", "skipped (paused)"),
        other => other,
    }
}

#[derive(Deserialize, Default)]
pub struct PageParams {
    #[serde(default)]
    subscription: String,
}

/// What the page shows above the lists (a secret shown once, an error).
#[derive(Default)]
struct Notice {
    secret: Option<(Uuid, String)>,
    error: Option<String>,
    form: Option<NewSubscription>,
}

async fn body(
    state: &AdminState,
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    filter: Option<Uuid>,
    notice: Notice,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let tz = t.time_zone.0;
    let subs = webhooks::list(&state.authz, scope)
        .await
        .map_err(|e| error(e, lang))?;
    let log = webhooks::deliveries(&state.authz, scope, filter, 50)
        .await
        .map_err(|e| error(e, lang))?;
    let may_manage = state
        .authz
        .check(&staff.actor, t.id, Object::Webhooks, Act::Write)
        .await
        .unwrap_or(false);
    let base = format!("/admin/t/{}/webhooks", t.slug);
    let form = notice.form.unwrap_or_default();
    let time = |d: chrono::DateTime<chrono::Utc>| {
        d.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()
    };
    Ok(html! {
        p { (both(lang,
            "登録したURLに、選んだ出来事（予約・変更・取消、接種記録、エクスポート完成）を署名付きのJSONで送ります。受け取り側は Yoyaku-Signature を検証し、イベントIDで重複を除いてください（docs/webhooks.md）。",
            "Each chosen event (bookings made, changed, cancelled; vaccinations; exports ready) is sent to the endpoint as signed JSON. Receivers verify Yoyaku-Signature and de-duplicate by the event id (docs/webhooks.md)."))
        }
        @if let Some((id, secret)) = &notice.secret {
            section #new-secret {
                p.ok { (both(lang,
                    "署名用シークレットは今だけ表示されます。受け取り側に安全に設定してください。",
                    "The signing secret is shown only now; store it safely at the receiver.")) }
                p { code #webhook-secret data-subscription=(id) { (secret) } }
            }
        }
        @if let Some(m) = &notice.error { p.error role="alert" { (m) } }
        h2 { (both(lang, "登録先", "Endpoints")) }
        @if subs.is_empty() {
            p { (both(lang, "登録はありません。", "No endpoint is subscribed.")) }
        } @else {
            table #webhooks {
                tr {
                    th { "URL" } th { (both(lang, "出来事", "Events")) }
                    th { (both(lang, "シークレット", "Secret")) } th { (lang.t(K::Status)) }
                    th { (lang.t(K::Who)) } th {}
                }
                @for s in &subs {
                    tr data-subscription=(s.id) {
                        td {
                            code { (s.url) }
                            @if !s.description.is_empty() { br; (s.description) }
                        }
                        td { @for e in &s.events { (event_label(lang, e)) br; } }
                        td { code { (s.secret_hint) } }
                        td.status {
                            @if s.active { (both(lang, "有効", "active")) }
                            @else { (both(lang, "一時停止中", "paused")) }
                        }
                        td { (s.created_by) br; (time(s.created_at)) }
                        td {
                            a href={(base) "?subscription=" (s.id) "#deliveries"} {
                                (both(lang, "配信記録", "Deliveries"))
                            }
                            @if may_manage {
                                @let action = if s.active { "pause" } else { "resume" };
                                form method="post" action={(base) "/" (s.id) "/" (action)} {
                                    (csrf_field(staff))
                                    button type="submit" {
                                        @if s.active { (both(lang, "一時停止", "Pause")) }
                                        @else { (both(lang, "再開", "Resume")) }
                                    }
                                }
                                form method="post" action={(base) "/" (s.id) "/rotate"} {
                                    (csrf_field(staff))
                                    button type="submit" { (both(lang, "シークレットを再発行", "New secret")) }
                                }
                                form method="post" action={(base) "/" (s.id) "/delete"} {
                                    (csrf_field(staff))
                                    button type="submit" { (lang.t(K::Remove)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_manage {
            h2 { (both(lang, "登録する", "Subscribe an endpoint")) }
            form method="post" action=(base) id="webhook" {
                (csrf_field(staff))
                label {
                    (both(lang, "URL（https://）", "URL (https://)")) br;
                    input name="url" type="url" required value=(form.url) size="60";
                }
                label {
                    (both(lang, "説明（任意）", "Description (optional)")) br;
                    input name="description" value=(form.description) maxlength="200";
                }
                fieldset {
                    legend { (both(lang, "送る出来事", "Events to send")) }
                    @for t in EventType::ALL {
                        label {
                            input type="checkbox" name={"event_" (t.as_str())} value="1"
                                checked[form.events.iter().any(|e| e == t.as_str())];
                            " " (event_label(lang, t.as_str()))
                        }
                    }
                }
                button type="submit" { (lang.t(K::Create)) }
            }
        }
        h2 #deliveries {
            (both(lang, "最近の配信", "Recent deliveries"))
            @if filter.is_some() {
                " " a href=(base) { (both(lang, "（すべて表示）", "(show all)")) }
            }
        }
        @if log.is_empty() {
            p { (both(lang, "配信記録はまだありません。", "No delivery yet.")) }
        } @else {
            table #webhook-deliveries {
                tr {
                    th { (lang.t(K::When)) } th { "URL" } th { (both(lang, "出来事", "Event")) }
                    th { (both(lang, "回", "Attempt")) } th { (both(lang, "結果", "Outcome")) }
                    th { "HTTP" } th { (both(lang, "所要", "Latency")) } th { (lang.t(K::Reason)) }
                }
                @for d in &log {
                    tr data-event=(d.event_id) data-outcome=(d.outcome) {
                        td { (time(d.at)) }
                        td { code { (d.url) } }
                        td { (d.event_type) br; small { (d.event_id) } }
                        td { (d.attempt) }
                        td { (outcome_label(lang, &d.outcome)) }
                        td { (d.http_status.map(|s| s.to_string()).unwrap_or_default()) }
                        td { (d.latency_ms.map(|ms| format!("{ms} ms")).unwrap_or_default()) }
                        td {
                            (d.error.clone().unwrap_or_default())
                            @if let Some(next) = d.next_attempt_at {
                                br; (both(lang, "次回：", "next: ")) (time(next))
                            }
                        }
                    }
                }
            }
        }
    })
}

fn error(e: WebhookError, lang: Lang) -> PageError {
    match e {
        WebhookError::NotFound => PageError::not_found(lang),
        WebhookError::Denied(d) => PageError::denied(d, lang),
        WebhookError::Database(e) => PageError::from(e),
        other => {
            tracing::error!(error = %other, "webhook page failed");
            PageError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: other.to_string(),
                lang,
            }
        }
    }
}

fn title(lang: Lang) -> &'static str {
    lang.t(K::Webhooks)
}

pub async fn page(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Query(q): Query<PageParams>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Webhooks, Act::Read).await?;
    let filter = match q.subscription.trim() {
        "" => None,
        raw => Some(Uuid::try_parse(raw).map_err(|_| {
            PageError::bad_request(
                both(
                    staff.lang,
                    "登録先の指定が正しくありません。",
                    "Not a subscription id.",
                ),
                staff.lang,
            )
        })?),
    };
    let body = body(&state, &staff, &t, &mut scope, filter, Notice::default()).await?;
    scope.commit().await?;
    Ok(render(&staff, &t, title(staff.lang), body))
}

pub async fn create(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Webhooks, Act::Write).await?;
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let input = NewSubscription {
        url: field("url"),
        description: field("description"),
        events: form
            .iter()
            .filter_map(|(k, _)| k.strip_prefix("event_").map(str::to_owned))
            .collect(),
    };
    let created = webhooks::create(
        &state.authz,
        &mut scope,
        &state.sealing_key,
        state.webhook_endpoints,
        &input,
    )
    .await;
    match created {
        Ok((sub, secret)) => {
            let notice = Notice {
                secret: Some((sub.id, secret)),
                ..Notice::default()
            };
            let body = body(&state, &staff, &t, &mut scope, None, notice).await?;
            scope.commit().await?;
            Ok(render(&staff, &t, title(lang), body))
        }
        Err(WebhookError::Invalid { field, reason }) => {
            let label = match field {
                "url" => "URL",
                "description" => both(lang, "説明", "Description"),
                _ => both(lang, "出来事", "Events"),
            };
            let notice = Notice {
                error: Some(format!(
                    "{}{label}: {reason}",
                    both(lang, "登録できませんでした。", "Not subscribed. ")
                )),
                form: Some(input),
                ..Notice::default()
            };
            // nothing was written; the page is shown again with the input
            let body = body(&state, &staff, &t, &mut scope, None, notice).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&staff, &t, title(lang), body),
            )
                .into_response())
        }
        Err(e) => Err(error(e, lang)),
    }
}

async fn set_active(
    state: AdminState,
    staff: Staff,
    slug: String,
    id: Uuid,
    active: bool,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Webhooks, Act::Write).await?;
    webhooks::set_active(&state.authz, &mut scope, id, active)
        .await
        .map_err(|e| error(e, staff.lang))?;
    scope.commit().await?;
    Ok(Redirect::to(&format!("/admin/t/{}/webhooks", t.slug)).into_response())
}

pub async fn pause(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    set_active(state, staff, slug, id, false).await
}

pub async fn resume(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    set_active(state, staff, slug, id, true).await
}

pub async fn rotate(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Webhooks, Act::Write).await?;
    let secret = webhooks::rotate_secret(&state.authz, &mut scope, &state.sealing_key, id)
        .await
        .map_err(|e| error(e, staff.lang))?;
    let notice = Notice {
        secret: Some((id, secret)),
        ..Notice::default()
    };
    let body = body(&state, &staff, &t, &mut scope, None, notice).await?;
    scope.commit().await?;
    Ok(render(&staff, &t, title(staff.lang), body))
}

pub async fn delete(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Webhooks, Act::Write).await?;
    webhooks::delete(&state.authz, &mut scope, id)
        .await
        .map_err(|e| error(e, staff.lang))?;
    scope.commit().await?;
    Ok(Redirect::to(&format!("/admin/t/{}/webhooks", t.slug)).into_response())
}
