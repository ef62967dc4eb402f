//! The city's notification pages at `/admin/t/{slug}/notifications` (docs/notifications.md):
//! channels with masked credentials and a test send, templates per event and language with preview
//! and reset, the monthly SMS budget with its 80 % / 100 % banner, and the delivery log.
//!
//! Guarded by two objects: `notifications` (channels, templates, budget: city admin; auditor and
//! operator read) and `delivery_log` (also city staff, read-only). Secrets never come back to a
//! page: the channel form shows the masked value and an empty field that keeps it when left empty.

use axum::{
    Form,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use platform::notifications::channels::{self};
use platform::notifications::templates::{self, Event};
use platform::staff::authz::{Act, Object, Scope};
use serde::Deserialize;
use serde_json::Value;
use tenants::Tenant;

use crate::format::thousands;
use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, csrf_field, page};
use crate::routes::{Access as A, Route, get, post};
use crate::shell::enter;
use crate::sms_budget;
use crate::state::AdminState;

mod channel_settings;
mod log;
mod template_editor;

use channel_settings::{channel_page, channel_page_error, save_channel, test_channel};
use log::log_page;
use template_editor::{post_template, reset_template, template_page};

pub fn routes() -> Vec<Route> {
    let (read, write) = (
        A::City(Object::Notifications, Act::Read),
        A::City(Object::Notifications, Act::Write),
    );
    let log = A::City(Object::DeliveryLog, Act::Read);
    vec![
        get(
            "/admin/t/{slug}/notifications",
            A::CityEither(
                (Object::Notifications, Act::Read),
                (Object::DeliveryLog, Act::Read),
            ),
            overview,
        ),
        post("/admin/t/{slug}/notifications/budget", write, set_budget),
        get(
            "/admin/t/{slug}/notifications/channels/{kind}",
            read,
            channel_page,
        ),
        post(
            "/admin/t/{slug}/notifications/channels/{kind}",
            write,
            save_channel,
        ),
        post(
            "/admin/t/{slug}/notifications/channels/{kind}/test",
            write,
            test_channel,
        ),
        get(
            "/admin/t/{slug}/notifications/templates/{event}/{lang}",
            read,
            template_page,
        ),
        // a preview needs read, saving needs write (the handler asks the guard for that)
        post(
            "/admin/t/{slug}/notifications/templates/{event}/{lang}",
            read,
            post_template,
        ),
        post(
            "/admin/t/{slug}/notifications/templates/{event}/{lang}/reset",
            write,
            reset_template,
        ),
        get("/admin/t/{slug}/notifications/log", log, log_page),
    ]
}

const KINDS: [&str; 3] = ["email", "sms", "webhook"];

fn tr(lang: Lang, ja: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

fn kind_label(lang: Lang, kind: &str) -> &'static str {
    match kind {
        "email" => tr(lang, "メール", "E-mail"),
        "sms" => "SMS",
        "webhook" => "Webhook",
        "log" => tr(lang, "開発用ログ", "development log"),
        _ => "?",
    }
}

fn event_label(lang: Lang, event: &str) -> &'static str {
    match event {
        "login_code" => tr(lang, "認証コード", "Login code"),
        "booking_confirmed" => tr(lang, "予約確定", "Booking confirmed"),
        "booking_changed" => tr(lang, "予約変更", "Booking changed"),
        "booking_cancelled" => tr(lang, "予約キャンセル", "Booking cancelled"),
        "reminder" => tr(lang, "接種日のお知らせ", "Reminder"),
        "sms_budget_alert" => tr(lang, "SMS予算の通知", "SMS budget alert"),
        "plan_cap_alert" => tr(lang, "プラン上限の通知", "Plan cap alert"),
        _ => "?",
    }
}

fn lang_label(lang: &str) -> &'static str {
    match lang {
        "ja" => "日本語",
        "en" => "English",
        "zh-Hans" => "简体中文",
        "pt" => "Português",
        _ => "?",
    }
}

fn status_label(lang: Lang, status: &str) -> &'static str {
    match status {
        "queued" => tr(lang, "送信待ち", "queued"),
        "sending" => tr(lang, "送信中", "sending"),
        "sent" => tr(lang, "送信済み", "sent"),
        "delivered" => tr(lang, "配達済み", "delivered"),
        "failed" => tr(lang, "配達失敗", "failed"),
        "skipped" => tr(lang, "送信せず", "skipped"),
        "dead" => tr(lang, "送信不能（再送なし）", "failed (not retried)"),
        _ => "?",
    }
}

fn title(lang: Lang) -> &'static str {
    lang.t(K::Notifications)
}

async fn can_write(state: &AdminState, staff: &Staff, t: &Tenant) -> bool {
    state
        .authz
        .check(&staff.actor, t.id, Object::Notifications, Act::Write)
        .await
        .unwrap_or(false)
}

fn frame(staff: &Staff, t: &Tenant, heading: &str, body: Markup) -> Response {
    let lang = staff.lang;
    let s = &t.slug;
    let framed = html! {
        nav {
            a href={"/admin/t/" (s)} { (t.name) }
            a href={"/admin/t/" (s) "/notifications"} { (title(lang)) }
            a href={"/admin/t/" (s) "/notifications/log"} { (tr(lang, "配信ログ", "Delivery log")) }
        }
        (body)
    };
    page(
        lang,
        &format!("{} – {heading}", t.name),
        Some(staff),
        framed,
    )
    .into_response()
}

fn with_status(status: StatusCode, response: Response) -> Response {
    (status, response).into_response()
}

// ---- overview -------------------------------------------------------------------------------------

async fn overview_body(
    state: &AdminState,
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    budget_input: Option<&str>,
    message: Option<&str>,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let s = &t.slug;
    let can_set_budget = channels::may_set_sms_budget(&state.authz, &staff.actor, t.id)
        .await
        .unwrap_or(false);
    let status = channels::sms_budget_status(scope, t.time_zone.name(), chrono::Utc::now()).await?;
    let alerts = channels::sms_budget_alerts(scope).await?;
    let mut configured = Vec::new();
    for kind in KINDS {
        let masked = channels::masked_channel(scope, &state.sealing_key, kind)
            .await
            .map_err(|e| channel_page_error(e, lang))?;
        configured.push((kind, masked));
    }
    let own = templates::own_templates(scope).await?;
    let tz = t.time_zone.0;
    Ok(html! {
        @if let Some(b) = sms_budget::budget_banner_markup(lang, &status) { (b) }
        @if let Some(m) = message { p.error role="alert" { (m) } }

        h2 { (tr(lang, "SMS予算", "SMS budget")) }
        p #sms-budget-status {
            @match status.budget {
                Some(b) => { (tr(lang, "今月", "This month")) ": " (thousands(status.used)) " / " (thousands(b)) " "
                    (tr(lang, "通", "segments")) " (" (status.percent()) " %)" }
                None => { (tr(lang, "予算は設定されていません（今月 ", "No budget set (this month: ")) (thousands(status.used))
                    (tr(lang, " 通）", " segments)")) }
            }
        }
        p { (tr(lang, "80%で市の管理者にメールでお知らせします。予算に達すると、SMSの代わりに可能な場合メールで送ります（メールアドレスのない方には送りません）。",
                "City admins are e-mailed at 80 %. At the budget, messages go by e-mail instead of SMS where possible (residents without an e-mail address get none).")) }
        @if can_set_budget {
            form method="post" action={"/admin/t/" (s) "/notifications/budget"} #budget-form {
                (csrf_field(staff))
                label { (tr(lang, "SMS月間予算（通、空欄で上限なし）", "Monthly SMS budget (segments; empty for none)")) br;
                    input #budget name="budget" inputmode="numeric"
                        value=(budget_input.map(str::to_owned).or(status.budget.map(|b| b.to_string())).unwrap_or_default()); }
                button type="submit" { (tr(lang, "保存", "Save")) }
            }
        }
        @if !alerts.is_empty() {
            table #budget-alerts {
                tr { th { (tr(lang, "月", "Month")) } th { (tr(lang, "段階", "Level")) } th { (tr(lang, "送信日時", "Sent")) } th { (tr(lang, "宛先数", "Admins e-mailed")) } }
                @for (month, level, at, n) in &alerts {
                    tr { td { (month.format("%Y-%m")) } td { (level) " %" } td { (at.with_timezone(&tz).format("%Y-%m-%d %H:%M")) } td { (n) } }
                }
            }
        }

        h2 { (tr(lang, "送信チャネル", "Channels")) }
        table #channels {
            tr { th { (tr(lang, "種類", "Kind")) } th { (tr(lang, "方式", "Plugin")) } th { (tr(lang, "設定", "Settings")) } th {} }
            @for (kind, masked) in &configured {
                tr {
                    td { (kind_label(lang, kind)) }
                    @match masked {
                        Some(m) => {
                            td { (m.plugin) }
                            td { @for (k, v) in &m.fields { code { (k) "=" (display_value(v)) } " " } }
                        }
                        None => { td { "–" } td { (tr(lang, "未設定", "not configured")) } }
                    }
                    td { a href={"/admin/t/" (s) "/notifications/channels/" (kind)} { (tr(lang, "開く", "Open")) } }
                }
            }
        }

        h2 { (tr(lang, "文面", "Templates")) }
        table #templates {
            tr { th { (tr(lang, "お知らせ", "Event")) } @for l in templates::LANGS { th { (lang_label(l)) } } }
            @for event in Event::ALL {
                tr {
                    td { (event_label(lang, event.as_str())) }
                    @for l in templates::LANGS {
                        td {
                            a href={"/admin/t/" (s) "/notifications/templates/" (event.as_str()) "/" (l)} {
                                @if own.iter().any(|(e, x, _, _)| e == event.as_str() && x == l) {
                                    (tr(lang, "独自", "custom"))
                                } @else {
                                    (tr(lang, "既定", "default"))
                                }
                            }
                        }
                    }
                }
            }
        }
        p { a href={"/admin/t/" (s) "/notifications/log"} #delivery-log-link { (tr(lang, "配信ログを見る", "Open the delivery log")) } }
    })
}

fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn overview(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = match enter(&state, &staff, &slug, Object::Notifications, Act::Read).await
    {
        Ok(x) => x,
        // city staff may read the delivery log only: take them there
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            let (_, scope) = enter(&state, &staff, &slug, Object::DeliveryLog, Act::Read).await?;
            drop(scope);
            return Ok(Redirect::to(&format!("/admin/t/{slug}/notifications/log")).into_response());
        }
        Err(e) => return Err(e),
    };
    let body = overview_body(&state, &staff, &t, &mut scope, None, None).await?;
    scope.commit().await?;
    Ok(frame(&staff, &t, title(lang), body))
}

#[derive(Deserialize)]
pub struct BudgetForm {
    #[serde(default)]
    budget: String,
}

pub async fn set_budget(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<BudgetForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    match sms_budget::save_budget(&state, &staff, &slug, &form.budget).await? {
        Ok(()) => Ok(Redirect::to(&format!("/admin/t/{slug}/notifications")).into_response()),
        Err(m) => {
            let (t, mut scope) =
                enter(&state, &staff, &slug, Object::Notifications, Act::Read).await?;
            let body =
                overview_body(&state, &staff, &t, &mut scope, Some(&form.budget), Some(&m)).await?;
            drop(scope);
            Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                frame(&staff, &t, title(lang), body),
            ))
        }
    }
}
