//! What intake changes: steps and their undo, the vaccination, side effects, the questionnaire and
//! the next dose; each a platform call, then back to the page.

use axum::{
    Form,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use chrono::{NaiveDate, Utc};
use platform::intake::{self, IntakeError, Status, Step};
use platform::staff::authz::{Act, Scope};
use serde::Deserialize;
use tenants::Tenant;
use uuid::Uuid;

use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff};
use crate::state::AdminState;

use super::visit::visit_body;
use super::{base, enter, frame, parse_local, status_label, tr};

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
