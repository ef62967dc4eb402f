//! A city's message templates per event and language: the editor with its preview, saving and
//! resetting to the default.

use axum::{
    Form,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use maud::{Markup, html};
use platform::notifications::templates::{self, Event, Template};
use platform::staff::authz::{Act, Object, Scope};
use serde::Deserialize;
use tenants::Tenant;

use crate::i18n::Lang;
use crate::page::{PageError, Staff, csrf_field};
use crate::shell::enter;
use crate::state::AdminState;

use super::{can_write, event_label, frame, lang_label, tr, with_status};

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
