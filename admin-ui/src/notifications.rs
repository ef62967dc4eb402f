//! The city's notification pages at `/admin/t/{slug}/notifications` (docs/notifications.md):
//! channels with masked credentials and a test send, templates per event and language with preview
//! and reset, the monthly SMS budget with its 80 % / 100 % banner, and the delivery log.
//!
//! Guarded by two objects: `notifications` (channels, templates, budget: city admin; auditor and
//! operator read) and `delivery_log` (also city staff, read-only). Secrets never come back to a
//! page: the channel form shows the masked value and an empty field that keeps it when left empty.

use axum::{
    Form,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use platform::authz::{Act, Object, Scope};
use platform::channels::{self, ChannelError, TestSendError};
use platform::delivery_log::{self, LogFilter, RawFilter};
use platform::templates::{self, Event, Template};
use serde::Deserialize;
use serde_json::{Map, Value};
use tenants::Tenant;

use crate::format::thousands;
use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, csrf_field, page};
use crate::routes::{Access as A, Route, get, post};
use crate::shell::enter;
use crate::sms_budget;
use crate::state::AdminState;

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

// ---- channels -------------------------------------------------------------------------------------

fn channel_page_error(e: ChannelError, lang: Lang) -> PageError {
    match e {
        ChannelError::Database(e) => e.into(),
        other => PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: other.to_string(),
            lang,
        },
    }
}

fn check_kind(kind: &str, lang: Lang) -> Result<&'static str, PageError> {
    KINDS
        .into_iter()
        .find(|k| *k == kind)
        .ok_or(PageError::not_found(lang))
}

/// What the channel page shows next to the form.
enum Outcome {
    None,
    Saved,
    Error(String),
    TestSent(String),
    TestFailed(String),
}

#[expect(
    clippy::too_many_arguments,
    reason = "one page, its state and its form"
)]
async fn channel_body(
    state: &AdminState,
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    kind: &'static str,
    typed: Option<&Map<String, Value>>,
    outcome: Outcome,
    test_to: &str,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let writable = can_write(state, staff, t).await;
    let masked = channels::masked_channel(scope, &state.sealing_key, kind)
        .await
        .map_err(|e| channel_page_error(e, lang))?;
    let Some(plugin) = channels::plugin_for_kind(kind) else {
        return Err(PageError::not_found(lang));
    };
    let action = format!("/admin/t/{}/notifications/channels/{kind}", t.slug);
    let shown = |name: &str| -> String {
        typed
            .and_then(|f| f.get(name))
            .or_else(|| masked.as_ref().and_then(|m| m.fields.get(name)))
            .map(display_value)
            .unwrap_or_default()
    };
    Ok(html! {
        @match &outcome {
            Outcome::Saved => p.ok #result role="status" { (tr(lang, "保存しました。", "Saved.")) },
            Outcome::Error(m) => p.error #result role="alert" { (m) },
            Outcome::TestSent(m) => p.ok #test-result role="status" { (m) },
            Outcome::TestFailed(m) => p.error #test-result role="alert" { (m) },
            Outcome::None => {},
        }
        p {
            (tr(lang, "方式", "Plugin")) ": " code { (plugin.name) } " – "
            @match &masked {
                Some(m) => { (tr(lang, "設定済み（", "configured (")) (m.updated_at.with_timezone(&t.time_zone.0).format("%Y-%m-%d %H:%M")) (tr(lang, "更新）", ")")) }
                None => (tr(lang, "未設定", "not configured")),
            }
        }
        p { (tr(lang, "パスワードやトークンは暗号化して保存し、二度と全体を表示しません。空欄のまま保存すると、保存済みの値をそのまま使います。",
                "Passwords and tokens are stored encrypted and never shown again in full. Leave them empty to keep the stored value.")) }
        form method="post" action=(action) #channel-form {
            (csrf_field(staff))
            @for f in &plugin.fields {
                label {
                    code { (f.name) } @if f.required { " *" } " – " (f.help) br;
                    @if f.secret {
                        @let saved = masked.as_ref().and_then(|m| m.fields.get(f.name)).map(display_value);
                        input type="password" name=(f.name) id=(f.name) value="" autocomplete="new-password"
                            placeholder=(saved.clone().unwrap_or_default()) disabled[!writable];
                        @if let Some(saved) = saved {
                            br; small.masked { (tr(lang, "保存済み：", "stored: ")) (saved) }
                        }
                    } @else if let Some(options) = f.kind.strip_prefix("enum:") {
                        @let current = shown(f.name);
                        select name=(f.name) id=(f.name) disabled[!writable] {
                            @for o in options.split('|') {
                                option value=(o) selected[current == o] { (o) }
                            }
                        }
                    } @else {
                        input name=(f.name) id=(f.name) value=(shown(f.name))
                            inputmode=[(f.kind == "integer").then_some("numeric")] disabled[!writable];
                    }
                }
            }
            @if writable { button type="submit" #save-channel { (tr(lang, "保存", "Save")) } }
        }
        @if writable && masked.is_some() {
            h2 { (tr(lang, "テスト送信", "Send a test message")) }
            form method="post" action={(action) "/test"} #test-form {
                (csrf_field(staff))
                label {
                    @match kind {
                        "sms" => (tr(lang, "送信先の携帯電話番号", "Mobile number to send to")),
                        "email" => (tr(lang, "送信先のメールアドレス", "E-mail address to send to")),
                        _ => (tr(lang, "送信先（メールアドレスまたは電話番号）", "Recipient (e-mail address or phone number)")),
                    }
                    br; input name="to" id="to" value=(test_to) required;
                }
                button type="submit" #send-test { (tr(lang, "テスト送信", "Send test message")) }
            }
        }
    })
}

pub async fn channel_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, kind)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let kind = check_kind(&kind, lang)?;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Notifications, Act::Read).await?;
    let body = channel_body(
        &state,
        &staff,
        &t,
        &mut scope,
        kind,
        None,
        Outcome::None,
        "",
    )
    .await?;
    scope.commit().await?;
    Ok(frame(&staff, &t, kind_label(lang, kind), body))
}

/// The form's fields as the plugin's JSON configuration: numbers for integer fields.
fn config_from_form(
    kind: &str,
    fields: &[(String, String)],
    lang: Lang,
) -> Result<Map<String, Value>, String> {
    let Some(plugin) = channels::plugin_for_kind(kind) else {
        return Ok(Map::new());
    };
    let mut config = Map::new();
    for f in &plugin.fields {
        let raw = fields
            .iter()
            .find(|(k, _)| k == f.name)
            .map(|(_, v)| v.trim())
            .unwrap_or("");
        if raw.is_empty() {
            continue;
        }
        let value = if f.kind == "integer" {
            match raw.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    return Err(match lang {
                        Lang::Ja => format!("{}: 整数で入力してください（{raw:?}）", f.name),
                        Lang::En => format!("{}: must be a whole number, not {raw:?}", f.name),
                    });
                }
            }
        } else {
            Value::String(raw.to_owned())
        };
        config.insert(f.name.to_owned(), value);
    }
    Ok(config)
}

pub async fn save_channel(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, kind)): Path<(String, String)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let kind = check_kind(&kind, lang)?;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Notifications, Act::Write).await?;
    let Some(plugin) = channels::plugin_for_kind(kind) else {
        return Err(PageError::not_found(lang));
    };
    let secret_names: Vec<&str> = plugin
        .fields
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name)
        .collect();
    // what the admin typed comes back on a refusal, secrets excepted
    let without_secrets = |mut typed: Map<String, Value>| {
        for name in &secret_names {
            typed.remove(*name);
        }
        typed
    };
    let config = match config_from_form(kind, &fields, lang) {
        Ok(c) => c,
        Err(m) => {
            let typed = without_secrets(
                fields
                    .iter()
                    .filter(|(k, _)| k != "csrf")
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            );
            let body = channel_body(
                &state,
                &staff,
                &t,
                &mut scope,
                kind,
                Some(&typed),
                Outcome::Error(m),
                "",
            )
            .await?;
            return Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                frame(&staff, &t, kind_label(lang, kind), body),
            ));
        }
    };
    match channels::save_channel(
        &mut scope,
        &state.sealing_key,
        kind,
        plugin.name,
        config.clone(),
    )
    .await
    {
        Ok(()) => {
            scope.commit().await?;
            let (t, mut scope) =
                enter(&state, &staff, &slug, Object::Notifications, Act::Read).await?;
            let body = channel_body(
                &state,
                &staff,
                &t,
                &mut scope,
                kind,
                None,
                Outcome::Saved,
                "",
            )
            .await?;
            scope.commit().await?;
            Ok(frame(&staff, &t, kind_label(lang, kind), body))
        }
        Err(ChannelError::Database(e)) => Err(e.into()),
        Err(e) => {
            drop(scope);
            let message = match lang {
                Lang::Ja => format!("保存できません（何も変更していません）：{e}"),
                Lang::En => format!("Not saved (nothing was changed): {e}"),
            };
            let (t, mut scope) =
                enter(&state, &staff, &slug, Object::Notifications, Act::Read).await?;
            let typed = without_secrets(config);
            let body = channel_body(
                &state,
                &staff,
                &t,
                &mut scope,
                kind,
                Some(&typed),
                Outcome::Error(message),
                "",
            )
            .await?;
            drop(scope);
            Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                frame(&staff, &t, kind_label(lang, kind), body),
            ))
        }
    }
}

#[derive(Deserialize)]
pub struct TestForm {
    #[serde(default)]
    to: String,
}

pub async fn test_channel(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, kind)): Path<(String, String)>,
    Form(form): Form<TestForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let kind = check_kind(&kind, lang)?;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Notifications, Act::Write).await?;
    let prepared =
        channels::prepare_test_send(&mut scope, &state.sealing_key, kind, &form.to, &t.name).await;
    // no transaction is held while the provider is called
    drop(scope);
    let (outcome, status) = match prepared {
        Err(TestSendError::Channel(ChannelError::Database(e))) => return Err(e.into()),
        Err(e) => (
            Outcome::Error(e.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Ok((channel, message)) => {
            let result = channel.send(&message).await;
            let (_, mut scope) =
                enter(&state, &staff, &slug, Object::Notifications, Act::Write).await?;
            let masked_to = platform::jobs::mask(&message.to);
            channels::record_test_send(&mut scope, kind, &message, result.as_ref()).await?;
            let outcome = match &result {
                Ok(receipt) => Outcome::TestSent(match lang {
                    Lang::Ja => format!(
                        "{masked_to} に送信しました（プロバイダーのID：{}、{}通）。",
                        receipt.provider_message_id, receipt.units
                    ),
                    Lang::En => format!(
                        "Sent to {masked_to} (provider message id {}, {} unit(s)).",
                        receipt.provider_message_id, receipt.units
                    ),
                }),
                Err(e) => Outcome::TestFailed(match lang {
                    Lang::Ja => format!("{masked_to} に送信できませんでした：{e}"),
                    Lang::En => format!("Not sent to {masked_to}: {e}"),
                }),
            };
            scope.commit().await?;
            (outcome, StatusCode::OK)
        }
    };
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Notifications, Act::Read).await?;
    let body = channel_body(
        &state, &staff, &t, &mut scope, kind, None, outcome, &form.to,
    )
    .await?;
    scope.commit().await?;
    Ok(with_status(
        status,
        frame(&staff, &t, kind_label(lang, kind), body),
    ))
}

// ---- templates ------------------------------------------------------------------------------------

fn parse_template_path(
    event: &str,
    tlang: &str,
    lang: Lang,
) -> Result<(Event, &'static str), PageError> {
    let event = Event::parse(event).ok_or(PageError::not_found(lang))?;
    let tlang = templates::LANGS
        .into_iter()
        .find(|l| *l == tlang)
        .ok_or(PageError::not_found(lang))?;
    Ok((event, tlang))
}

enum TemplateOutcome {
    None,
    Saved,
    Reset,
    Refused(String),
}

#[expect(
    clippy::too_many_arguments,
    reason = "one page, its state and its form"
)]
async fn template_body(
    state: &AdminState,
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    event: Event,
    tlang: &'static str,
    typed: Option<&Template>,
    preview: bool,
    outcome: TemplateOutcome,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let writable = can_write(state, staff, t).await;
    let (stored, custom) = templates::template_for(scope, event, tlang).await?;
    let shown = typed.cloned().unwrap_or(stored);
    let action = format!(
        "/admin/t/{}/notifications/templates/{}/{tlang}",
        t.slug,
        event.as_str()
    );
    let rendered = preview.then(|| {
        templates::validate(event, &shown).and_then(|()| {
            templates::render(&shown, &templates::sample_values(event, &t.name, tlang))
        })
    });
    let sms_only = event == Event::LoginCode;
    Ok(html! {
        @match &outcome {
            TemplateOutcome::Saved => p.ok #result role="status" { (tr(lang, "保存しました。次のお知らせからこの文面を使います。", "Saved. The next messages use this wording.")) },
            TemplateOutcome::Reset => p.ok #result role="status" { (tr(lang, "既定の文面に戻しました。", "Back to the built-in wording.")) },
            TemplateOutcome::Refused(m) => p.error #result role="alert" { (m) },
            TemplateOutcome::None => {},
        }
        p {
            (event_label(lang, event.as_str())) " – " (lang_label(tlang)) " – "
            @if custom { (tr(lang, "この市の独自の文面", "this city's own wording")) } @else { (tr(lang, "既定の文面", "built-in wording")) }
        }
        p #variables {
            (tr(lang, "使える差し込み項目：", "Placeholders you can use: "))
            @for v in event.variables() { code { "{{" (v) "}}" } " " }
        }
        @if sms_only { p { (tr(lang, "認証コードはSMSだけで送ります（件名は使いません）。", "Login codes go by SMS only (the subject is not used).")) } }
        form method="post" action=(action) #template-form {
            (csrf_field(staff))
            label { (tr(lang, "件名（メール）", "Subject (e-mail)")) br;
                input name="subject" #subject value=(shown.subject) size="70"; }
            label { (tr(lang, "本文（SMSとメール）", "Body (SMS and e-mail)")) br;
                textarea name="body" #body rows="8" cols="70" { (shown.body) } }
            button type="submit" name="action" value="preview" #preview-button { (tr(lang, "プレビュー", "Preview")) }
            @if writable { " " button type="submit" name="action" value="save" #save-template { (tr(lang, "保存", "Save")) } }
        }
        @if writable && custom {
            form method="post" action={(action) "/reset"} #reset-form {
                (csrf_field(staff))
                button type="submit" #reset-template { (tr(lang, "既定の文面に戻す", "Reset to default")) }
            }
        }
        @if let Some(r) = rendered {
            section #preview {
                h2 { (tr(lang, "プレビュー（見本のデータ）", "Preview (sample data)")) }
                @match r {
                    Ok(r) => {
                        @if !sms_only { p { strong { (tr(lang, "件名：", "Subject: ")) } span #preview-subject { (r.subject) } } }
                        pre #preview-text { (r.text) }
                        p #preview-segments {
                            (tr(lang, "SMSで送る場合：", "As an SMS: ")) (plugins_segments(&r.text)) (tr(lang, "通分", " segment(s)"))
                            " (" (r.text.chars().count()) (tr(lang, "文字）", " characters)"))
                        }
                    }
                    Err(e) => p.error role="alert" { (template_error(lang, &e.to_string())) },
                }
            }
        }
    })
}

fn plugins_segments(text: &str) -> u32 {
    templates::sms_segments(text)
}

fn template_error(lang: Lang, e: &str) -> String {
    match lang {
        Lang::Ja => format!("この文面は使えません（保存していません）：{e}"),
        Lang::En => format!("This wording cannot be used (not saved): {e}"),
    }
}

pub async fn template_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, event, tlang)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (event, tlang) = parse_template_path(&event, &tlang, lang)?;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Notifications, Act::Read).await?;
    let body = template_body(
        &state,
        &staff,
        &t,
        &mut scope,
        event,
        tlang,
        None,
        false,
        TemplateOutcome::None,
    )
    .await?;
    scope.commit().await?;
    Ok(frame(&staff, &t, event_label(lang, event.as_str()), body))
}

#[derive(Deserialize)]
pub struct TemplateForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
}

pub async fn post_template(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, event, tlang)): Path<(String, String, String)>,
    Form(form): Form<TemplateForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (event, tlang) = parse_template_path(&event, &tlang, lang)?;
    let typed = Template {
        subject: form.subject.replace("\r\n", "\n"),
        body: form.body.replace("\r\n", "\n"),
    };
    let heading = event_label(lang, event.as_str());
    if form.action != "save" {
        // a preview changes nothing: read access is enough
        let (t, mut scope) = enter(&state, &staff, &slug, Object::Notifications, Act::Read).await?;
        let body = template_body(
            &state,
            &staff,
            &t,
            &mut scope,
            event,
            tlang,
            Some(&typed),
            true,
            TemplateOutcome::None,
        )
        .await?;
        scope.commit().await?;
        return Ok(frame(&staff, &t, heading, body));
    }
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Notifications, Act::Write).await?;
    match templates::save_template(&mut scope, event, tlang, &typed).await {
        Ok(()) => {
            let body = template_body(
                &state,
                &staff,
                &t,
                &mut scope,
                event,
                tlang,
                None,
                true,
                TemplateOutcome::Saved,
            )
            .await?;
            scope.commit().await?;
            Ok(frame(&staff, &t, heading, body))
        }
        Err(templates::SaveError::Database(e)) => Err(e.into()),
        Err(e) => {
            let body = template_body(
                &state,
                &staff,
                &t,
                &mut scope,
                event,
                tlang,
                Some(&typed),
                false,
                TemplateOutcome::Refused(template_error(lang, &e.to_string())),
            )
            .await?;
            drop(scope);
            Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                frame(&staff, &t, heading, body),
            ))
        }
    }
}

pub async fn reset_template(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, event, tlang)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (event, tlang) = parse_template_path(&event, &tlang, lang)?;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Notifications, Act::Write).await?;
    templates::reset_template(&mut scope, event, tlang).await?;
    let body = template_body(
        &state,
        &staff,
        &t,
        &mut scope,
        event,
        tlang,
        None,
        false,
        TemplateOutcome::Reset,
    )
    .await?;
    scope.commit().await?;
    Ok(frame(&staff, &t, event_label(lang, event.as_str()), body))
}

// ---- delivery log ---------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct LogParams {
    #[serde(default)]
    status: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    page: String,
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn log_link(slug: &str, q: &LogParams, page: i64) -> String {
    format!(
        "/admin/t/{slug}/notifications/log?status={}&channel={}&event={}&from={}&to={}&ticket={}&page={page}",
        enc(&q.status),
        enc(&q.channel),
        enc(&q.event),
        enc(&q.from),
        enc(&q.to),
        enc(&q.ticket)
    )
}

pub async fn log_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Query(q): Query<LogParams>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::DeliveryLog, Act::Read).await?;
    let parsed = LogFilter::parse(&RawFilter {
        status: &q.status,
        channel: &q.channel,
        event: &q.event,
        from: &q.from,
        to: &q.to,
        ticket: &q.ticket,
        page: &q.page,
    });
    let (filter, error) = match parsed {
        Ok(f) => (Some(f), None),
        Err(m) => (None, Some(m)),
    };
    let result = match &filter {
        Some(f) => Some(delivery_log::list(&mut scope, f, t.time_zone.name()).await?),
        None => None,
    };
    scope.commit().await?;
    let tz = t.time_zone.0;
    let s = &t.slug;
    let select = |name: &'static str,
                  current: &str,
                  options: &[&'static str],
                  label: &dyn Fn(&str) -> &'static str| {
        html! {
            select name=(name) id=(name) {
                option value="" { (tr(lang, "すべて", "all")) }
                @for o in options { option value=(o) selected[current == *o] { (label(o)) } }
            }
        }
    };
    let body = html! {
        p { (tr(lang, "宛先は一部を伏せて表示します。この画面の表示は監査ログに記録されます。",
                "Recipients are shown masked. Viewing this page is recorded in the audit log.")) }
        form method="get" action={"/admin/t/" (s) "/notifications/log"} #log-filter {
            label { (tr(lang, "状態", "Status")) " " (select("status", &q.status, &delivery_log::STATUSES, &|o| status_label(lang, o))) }
            label { (tr(lang, "チャネル", "Channel")) " " (select("channel", &q.channel, &delivery_log::CHANNELS, &|o| kind_label(lang, o))) }
            label { (tr(lang, "お知らせ", "Event")) " " (select("event", &q.event, &platform::jobs::Notification::KINDS, &|o| event_label(lang, o))) }
            label { (tr(lang, "期間（から）", "From")) " " input type="date" name="from" id="from" value=(q.from); }
            label { (tr(lang, "期間（まで）", "To")) " " input type="date" name="to" id="to" value=(q.to); }
            label { (tr(lang, "接種券番号（この方のお知らせだけ）", "Ticket number (this resident only)")) " " input name="ticket" id="ticket" value=(q.ticket) inputmode="numeric"; }
            button type="submit" #filter { (tr(lang, "絞り込む", "Filter")) }
        }
        @if let Some(m) = &error { p.error role="alert" { (m) } }
        @if let Some(r) = &result {
            @if r.unknown_ticket {
                p.error role="alert" { (tr(lang, "この接種券番号の方は見つかりません。", "No resident holds this ticket number.")) }
            }
            table #delivery-log {
                tr {
                    th { (tr(lang, "登録日時", "Queued at")) } th { (tr(lang, "お知らせ", "Event")) }
                    th { (tr(lang, "チャネル", "Channel")) } th { (tr(lang, "宛先", "Recipient")) }
                    th { (tr(lang, "状態", "Status")) } th { (tr(lang, "試行", "Attempts")) }
                    th { (tr(lang, "理由", "Reason")) } th { (tr(lang, "プロバイダーID", "Provider id")) }
                    th { (tr(lang, "送信日時", "Sent at")) }
                }
                @for e in &r.entries {
                    tr.entry data-status=(e.status) {
                        td { (e.created_at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S")) }
                        td { (event_label(lang, &e.event)) }
                        td { (e.channel.as_deref().map(|c| kind_label(lang, c)).unwrap_or("–")) }
                        td.recipient { (e.recipient.as_deref().unwrap_or("–")) }
                        td.status { (status_label(lang, &e.status)) }
                        td { (e.attempts) }
                        td.reason { (e.reason.as_deref().unwrap_or("")) }
                        td.provider { (e.provider_message_id.as_deref().unwrap_or("")) }
                        td { (e.sent_at.map(|d| d.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()) }
                    }
                }
            }
            @if r.entries.is_empty() && !r.unknown_ticket { p #empty { (tr(lang, "該当するお知らせはありません。", "No messages match.")) } }
            @let page_no = filter.as_ref().map(|f| f.page).unwrap_or(1);
            p.pages {
                @if page_no > 1 { a #prev-page href=(log_link(s, &q, page_no - 1)) { (tr(lang, "← 新しい", "← Newer")) } " " }
                (tr(lang, "ページ ", "Page ")) (page_no)
                @if r.has_next { " " a #next-page href=(log_link(s, &q, page_no + 1)) { (tr(lang, "古い →", "Older →")) } }
            }
        }
    };
    let response = frame(&staff, &t, tr(lang, "配信ログ", "Delivery log"), body);
    Ok(if error.is_some() {
        with_status(StatusCode::BAD_REQUEST, response)
    } else {
        response
    })
}
