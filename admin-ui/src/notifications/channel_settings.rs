//! A city's notification channels (`/admin/t/{slug}/notifications/channels/{kind}`): the settings
//! form per kind (e-mail, SMS, webhook), saving them sealed, and a test send.

use axum::{
    Form,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use maud::{Markup, html};
use platform::notifications::channels::{self, ChannelError, TestSendError};
use platform::staff::authz::{Act, Object, Scope};
use serde::Deserialize;
use serde_json::{Map, Value};
use tenants::Tenant;

use crate::i18n::Lang;
use crate::page::{PageError, Staff, csrf_field};
use crate::shell::enter;
use crate::state::AdminState;

use super::{KINDS, can_write, display_value, frame, kind_label, tr, with_status};

pub(super) fn channel_page_error(e: ChannelError, lang: Lang) -> PageError {
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
            let masked_to = platform::notifications::channels::mask(&message.to);
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
