//! Message templates: per event and language, with `{{variable}}` placeholders drawn from a fixed
//! list per event. Templates are data, never code: a placeholder is replaced by text (HTML-escaped in
//! HTML bodies), an unknown placeholder is refused when the city saves the template, and a missing
//! value is refused when rendering, so a resident never receives "{{venue}}".
//!
//! A city may replace a built-in template per event and language (`notification_templates`); the
//! worker uses [`effective`], which falls back to [`default_template`]. Removing the override
//! ([`reset`]) brings the default back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tenants::TenantTx;

use crate::staff::audit;
use crate::staff::authz::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    LoginCode,
    BookingConfirmed,
    BookingChanged,
    BookingCancelled,
    Reminder,
}

impl Event {
    pub const ALL: [Event; 5] = [
        Self::LoginCode,
        Self::BookingConfirmed,
        Self::BookingChanged,
        Self::BookingCancelled,
        Self::Reminder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginCode => "login_code",
            Self::BookingConfirmed => "booking_confirmed",
            Self::BookingChanged => "booking_changed",
            Self::BookingCancelled => "booking_cancelled",
            Self::Reminder => "reminder",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The placeholders a template of this event may use.
    pub fn variables(self) -> &'static [&'static str] {
        match self {
            Self::LoginCode => &["city", "code", "minutes"],
            Self::BookingConfirmed | Self::BookingChanged | Self::BookingCancelled => &[
                "city", "name", "venue", "address", "date", "time", "dose", "url",
            ],
            Self::Reminder => &[
                "city", "name", "venue", "address", "date", "time", "dose", "url", "days",
            ],
        }
    }
}

/// A subject (e-mail only) and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{{{name}}}}}; this message can use: {allowed}")]
    Unknown { name: String, allowed: String },
    #[error("no value for {{{{{0}}}}}")]
    Missing(String),
    #[error("a placeholder is not closed: write {{{{name}}}}")]
    Unclosed,
    #[error("the message is empty")]
    Empty,
}

/// Placeholders in `text`, in order.
fn placeholders(text: &str) -> Result<Vec<&str>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        out.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Checks a template a city wants to save.
pub fn validate(event: Event, template: &Template) -> Result<(), TemplateError> {
    if template.body.trim().is_empty() {
        return Err(TemplateError::Empty);
    }
    for text in [&template.subject, &template.body] {
        for name in placeholders(text)? {
            if !event.variables().contains(&name) {
                return Err(TemplateError::Unknown {
                    name: name.to_owned(),
                    allowed: event.variables().join(", "),
                });
            }
        }
    }
    Ok(())
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn fill(text: &str, values: &BTreeMap<&str, String>, html: bool) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after[..end].trim();
        let value = values
            .get(name)
            .ok_or_else(|| TemplateError::Missing(name.to_owned()))?;
        out.push_str(&if html {
            escape_html(value)
        } else {
            value.clone()
        });
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A rendered message: subject, plain text, and an HTML version with every value escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn render(
    template: &Template,
    values: &BTreeMap<&str, String>,
) -> Result<Rendered, TemplateError> {
    let text = fill(&template.body, values, false)?;
    let html_body = fill(&escape_html(&template.body), values, true)?;
    Ok(Rendered {
        subject: fill(&template.subject, values, false)?,
        html: format!(
            "<!doctype html><html><body><p>{}</p></body></html>",
            html_body.replace('\n', "<br>\n")
        ),
        text,
    })
}

/// The built-in template for an event in a language (ja, en, zh-Hans, pt); other languages get
/// Japanese, the language every city supports.
pub fn default_template(event: Event, lang: &str) -> Template {
    let (subject, body) = match (event, lang) {
        (Event::LoginCode, "en") => (
            "{{city}} login code",
            "{{city}} vaccination booking code: {{code}}. Valid for {{minutes}} minutes. Do not share it.",
        ),
        (Event::LoginCode, "zh-Hans") => (
            "{{city}} 验证码",
            "{{city}}疫苗接种预约：您的验证码是 {{code}}，{{minutes}}分钟内有效。请勿告诉他人。",
        ),
        (Event::LoginCode, "pt") => (
            "{{city}} código de acesso",
            "{{city}} agendamento de vacina: seu código é {{code}}. Válido por {{minutes}} minutos. Não o compartilhe.",
        ),
        (Event::LoginCode, _) => (
            "{{city}} 認証コード",
            "【{{city}}】ワクチン接種予約の認証コードは {{code}} です。{{minutes}}分以内に入力してください。他人に教えないでください。",
        ),

        (Event::BookingConfirmed, "en") => (
            "[{{city}}] Your vaccination is booked",
            "{{name}},\nyour vaccination (dose {{dose}}) is booked:\n{{date}} {{time}}, {{venue}} ({{address}}).\nChange or cancel: {{url}}",
        ),
        (Event::BookingConfirmed, "zh-Hans") => (
            "【{{city}}】疫苗接种预约成功",
            "{{name}}：\n您的第{{dose}}剂接种已预约：\n{{date}} {{time}}，{{venue}}（{{address}}）。\n变更或取消：{{url}}",
        ),
        (Event::BookingConfirmed, "pt") => (
            "[{{city}}] Vacinação agendada",
            "{{name}},\nsua vacinação (dose {{dose}}) está agendada:\n{{date}} {{time}}, {{venue}} ({{address}}).\nAlterar ou cancelar: {{url}}",
        ),
        (Event::BookingConfirmed, _) => (
            "【{{city}}】ワクチン接種予約の確認",
            "{{name}} 様\n{{dose}}回目の接種を予約しました。\n日時：{{date}} {{time}}\n会場：{{venue}}（{{address}}）\n変更・キャンセル：{{url}}",
        ),

        (Event::BookingChanged, "en") => (
            "[{{city}}] Your booking was changed",
            "{{name}},\nyour vaccination (dose {{dose}}) is now on {{date}} {{time}} at {{venue}} ({{address}}).\n{{url}}",
        ),
        (Event::BookingChanged, "zh-Hans") => (
            "【{{city}}】预约已变更",
            "{{name}}：\n您的第{{dose}}剂接种已变更为 {{date}} {{time}}，{{venue}}（{{address}}）。\n{{url}}",
        ),
        (Event::BookingChanged, "pt") => (
            "[{{city}}] Agendamento alterado",
            "{{name}},\nsua vacinação (dose {{dose}}) agora é em {{date}} {{time}}, {{venue}} ({{address}}).\n{{url}}",
        ),
        (Event::BookingChanged, _) => (
            "【{{city}}】予約変更の確認",
            "{{name}} 様\n{{dose}}回目の接種の予約を変更しました。\n日時：{{date}} {{time}}\n会場：{{venue}}（{{address}}）\n{{url}}",
        ),

        (Event::BookingCancelled, "en") => (
            "[{{city}}] Your booking was cancelled",
            "{{name}},\nyour vaccination (dose {{dose}}) on {{date}} {{time}} at {{venue}} is cancelled.\nBook again: {{url}}",
        ),
        (Event::BookingCancelled, "zh-Hans") => (
            "【{{city}}】预约已取消",
            "{{name}}：\n您 {{date}} {{time}} 在{{venue}}的第{{dose}}剂接种预约已取消。\n重新预约：{{url}}",
        ),
        (Event::BookingCancelled, "pt") => (
            "[{{city}}] Agendamento cancelado",
            "{{name}},\nsua vacinação (dose {{dose}}) em {{date}} {{time}}, {{venue}}, foi cancelada.\nAgendar de novo: {{url}}",
        ),
        (Event::BookingCancelled, _) => (
            "【{{city}}】予約キャンセルの確認",
            "{{name}} 様\n{{date}} {{time}} {{venue}}での{{dose}}回目の接種予約をキャンセルしました。\n再予約：{{url}}",
        ),

        (Event::Reminder, "en") => (
            "[{{city}}] Reminder: vaccination in {{days}} days",
            "{{name}},\na reminder: your vaccination (dose {{dose}}) is on {{date}} {{time}} at {{venue}} ({{address}}).\nBring your vaccination ticket. {{url}}",
        ),
        (Event::Reminder, "zh-Hans") => (
            "【{{city}}】{{days}}天后接种提醒",
            "{{name}}：\n提醒您：第{{dose}}剂接种在 {{date}} {{time}}，{{venue}}（{{address}}）。\n请携带接种券。{{url}}",
        ),
        (Event::Reminder, "pt") => (
            "[{{city}}] Lembrete: vacinação em {{days}} dias",
            "{{name}},\nlembrete: sua vacinação (dose {{dose}}) é em {{date}} {{time}}, {{venue}} ({{address}}).\nTraga o cupom de vacinação. {{url}}",
        ),
        (Event::Reminder, _) => (
            "【{{city}}】接種日のお知らせ（{{days}}日前）",
            "{{name}} 様\n{{dose}}回目の接種日が近づいています。\n日時：{{date}} {{time}}\n会場：{{venue}}（{{address}}）\n接種券をお持ちください。{{url}}",
        ),
    };
    Template {
        subject: subject.to_owned(),
        body: body.to_owned(),
    }
}

/// How many SMS segments `text` takes (what a preview shows and the city pays per message).
pub fn sms_segments(text: &str) -> u32 {
    plugins::sms_segments(text)
}

/// The languages a city can write templates in (the resident site's languages).
pub const LANGS: [&str; 4] = ["ja", "en", "zh-Hans", "pt"];

/// The template language for a resident's locale: one of [`LANGS`], Japanese otherwise.
pub fn template_lang(locale: &str) -> &'static str {
    LANGS
        .into_iter()
        .find(|l| l.eq_ignore_ascii_case(locale))
        .or_else(|| {
            let prefix = locale.split(['-', '_']).next().unwrap_or("");
            LANGS.into_iter().find(|l| {
                l.split('-')
                    .next()
                    .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            })
        })
        .unwrap_or("ja")
}

/// Made-up values for every placeholder of `event`, for previews (never a real resident).
pub fn sample_values(event: Event, city: &str, lang: &str) -> BTreeMap<&'static str, String> {
    let (name, venue, address) = match lang {
        "ja" => ("ヤマダ タロウ", "市民ホール集団接種会場", "中央区1-2-3"),
        _ => ("Taro Yamada", "Civic Hall vaccination site", "1-2-3 Chuo"),
    };
    event
        .variables()
        .iter()
        .map(|v| {
            let value = match *v {
                "city" => city.to_owned(),
                "code" => "123456".into(),
                "minutes" => "10".into(),
                "name" => name.into(),
                "venue" => venue.into(),
                "address" => address.into(),
                "date" => "2027-04-01".into(),
                "time" => "10:30".into(),
                "dose" => "1".into(),
                "url" => "https://yoyaku.example.jp/t/demo/bookings".into(),
                "days" => "2".into(),
                other => other.to_owned(),
            };
            (*v, value)
        })
        .collect()
}

/// The template the worker uses for `event` in `lang`: the city's own, else the built-in one.
/// `true` when it is the city's own.
pub async fn effective(
    tx: &mut TenantTx,
    event: Event,
    lang: &str,
) -> Result<(Template, bool), sqlx::Error> {
    let lang = template_lang(lang);
    let own: Option<(String, String)> = sqlx::query_as(
        "SELECT subject, body FROM notification_templates WHERE event = $1 AND lang = $2",
    )
    .bind(event.as_str())
    .bind(lang)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match own {
        Some((subject, body)) => (Template { subject, body }, true),
        None => (default_template(event, lang), false),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Invalid(#[from] TemplateError),
    #[error("language {0:?} is not one of ja, en, zh-Hans, pt")]
    Lang(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Stores the city's own template after [`validate`]; nothing is stored when it is refused.
pub async fn save_override(
    tx: &mut TenantTx,
    event: Event,
    lang: &str,
    template: &Template,
    by: &str,
) -> Result<(), SaveError> {
    if !LANGS.contains(&lang) {
        return Err(SaveError::Lang(lang.to_owned()));
    }
    validate(event, template)?;
    sqlx::query(
        "INSERT INTO notification_templates (tenant_id, event, lang, subject, body, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, now(), $6) \
         ON CONFLICT (tenant_id, event, lang) DO UPDATE SET subject = $4, body = $5, updated_at = now(), updated_by = $6",
    )
    .bind(tx.tenant_id().0)
    .bind(event.as_str())
    .bind(lang)
    .bind(template.subject.trim())
    .bind(template.body.trim_end())
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes the city's own template, so the built-in default applies again; `true` if there was one.
pub async fn reset(tx: &mut TenantTx, event: Event, lang: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM notification_templates WHERE event = $1 AND lang = $2")
        .bind(event.as_str())
        .bind(lang)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The city's own templates: (event, language, last change, by whom).
pub async fn overrides(
    tx: &mut TenantTx,
) -> Result<Vec<(String, String, DateTime<Utc>, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event, lang, updated_at, updated_by FROM notification_templates ORDER BY event, lang",
    )
    .fetch_all(&mut **tx)
    .await
}

/// The template shown for `event` in `lang` in the scope's tenant ([`effective`]).
pub async fn template_for(
    scope: &mut Scope,
    event: Event,
    lang: &str,
) -> Result<(Template, bool), sqlx::Error> {
    effective(&mut scope.tx, event, lang).await
}

/// The scope's tenant's own templates ([`overrides`]).
pub async fn own_templates(
    scope: &mut Scope,
) -> Result<Vec<(String, String, DateTime<Utc>, String)>, sqlx::Error> {
    overrides(&mut scope.tx).await
}

/// Stores the city's own template ([`save_override`], by the scope's actor) and records
/// `notification_template.save`; nothing is written when it is refused.
pub async fn save_template(
    scope: &mut Scope,
    event: Event,
    lang: &str,
    template: &Template,
) -> Result<(), SaveError> {
    let by = scope.actor.label.clone();
    save_override(&mut scope.tx, event, lang, template, &by).await?;
    audit::record(
        scope,
        "notification_template.save",
        &format!("notification_template/{}/{lang}", event.as_str()),
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

/// Removes the city's own template ([`reset`]); when there was one, records
/// `notification_template.reset`. `true` if there was one.
pub async fn reset_template(
    scope: &mut Scope,
    event: Event,
    lang: &str,
) -> Result<bool, sqlx::Error> {
    let removed = reset(&mut scope.tx, event, lang).await?;
    if removed {
        audit::record(
            scope,
            "notification_template.reset",
            &format!("notification_template/{}/{lang}", event.as_str()),
            serde_json::json!({}),
        )
        .await?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn every_default_template_is_valid_in_every_language() {
        for event in Event::ALL {
            for lang in ["ja", "en", "zh-Hans", "pt"] {
                let t = default_template(event, lang);
                assert_eq!(validate(event, &t), Ok(()), "{event:?} {lang}");
                let all: BTreeMap<&str, String> = event
                    .variables()
                    .iter()
                    .map(|v| (*v, format!("<{v}>")))
                    .collect();
                let r = render(&t, &all).expect("renders with every variable");
                assert!(
                    !r.text.contains("{{") && !r.subject.contains("{{"),
                    "{event:?} {lang}"
                );
            }
        }
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_refused_with_the_allowed_list() {
        let t = Template {
            subject: String::new(),
            body: "{{code}} {{password}}".into(),
        };
        let err = validate(Event::LoginCode, &t).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown placeholder {{password}}; this message can use: city, code, minutes"
        );
        let t = Template {
            subject: String::new(),
            body: "{{code".into(),
        };
        assert_eq!(validate(Event::LoginCode, &t), Err(TemplateError::Unclosed));
        assert_eq!(
            validate(
                Event::LoginCode,
                &Template {
                    subject: "s".into(),
                    body: " ".into()
                }
            ),
            Err(TemplateError::Empty)
        );
    }

    #[test]
    fn values_are_text_and_escaped_in_html() {
        let t = Template {
            subject: "{{city}}".into(),
            body: "{{name}} 様".into(),
        };
        let r = render(
            &t,
            &values(&[("city", "デモ市"), ("name", "<script>alert(1)</script>")]),
        )
        .unwrap();
        assert_eq!(r.text, "<script>alert(1)</script> 様");
        assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt; 様"));
        assert!(!r.html.contains("<script>"));
        assert_eq!(
            render(&t, &values(&[("city", "x")])),
            Err(TemplateError::Missing("name".into()))
        );
    }

    #[test]
    fn locales_map_to_template_languages_and_samples_fill_every_placeholder() {
        assert_eq!(template_lang("zh-hans"), "zh-Hans");
        assert_eq!(template_lang("pt-BR"), "pt");
        assert_eq!(template_lang("en-US"), "en");
        assert_eq!(template_lang("ko"), "ja");
        for event in Event::ALL {
            for lang in LANGS {
                let r = render(
                    &default_template(event, lang),
                    &sample_values(event, "デモ市", lang),
                )
                .expect("a preview renders");
                assert!(!r.text.contains("{{"));
            }
        }
    }

    #[test]
    fn the_japanese_login_code_fits_one_sms_segment() {
        let r = render(
            &default_template(Event::LoginCode, "ja"),
            &values(&[("city", "デモ市"), ("code", "123456"), ("minutes", "10")]),
        )
        .unwrap();
        assert_eq!(
            plugins::sms_segments(&r.text),
            1,
            "{} chars",
            r.text.chars().count()
        );
    }
}
