//! One visit at intake: the booking, the resident, the questionnaire and every action's form.

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use maud::{Markup, html};
use platform::intake::{self, IntakeError, Status};
use platform::staff::authz::Act;
use tenants::Tenant;
use uuid::Uuid;

use crate::page::{PageError, Staff, csrf_field};
use crate::state::AdminState;

use super::day::flags;
use super::{
    base, can_write, dose_label, frame, kind_label, local, severity_label, status_label,
    step_label, steps_from, tenant, tr, venue_name,
};

pub(super) async fn visit_body(
    state: &AdminState,
    staff: &Staff,
    t: &Tenant,
    venue: Uuid,
    booking: Uuid,
    message: Option<&str>,
) -> Result<(String, Markup), PageError> {
    let lang = staff.lang;
    let mut scope = intake::enter(&state.authz, &staff.actor, t.id, venue, Act::Read)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    let vname = venue_name(&mut scope, venue, lang).await?;
    let v = match intake::visit(&mut scope, venue, booking).await {
        Ok(v) => v,
        Err(IntakeError::Database(e)) => return Err(e.into()),
        Err(_) => return Err(PageError::not_found(lang)),
    };
    let next = intake::next_dose(v.row.dose);
    let next_booked = next.is_some_and(|d| v.other_bookings.iter().any(|o| o.dose == d.number()));
    let slots = if v.row.status.is_vaccinated() && next.is_some() && !next_booked {
        intake::next_dose_slots(&mut scope, t, &v, 60).await?
    } else {
        Vec::new()
    };
    scope.commit().await?;
    let write = can_write(state, staff, t, venue).await;
    let b = format!("{}/b/{booking}", base(t, venue));
    let day = local(t, v.row.starts_at, "%Y-%m-%d");
    let back = format!("visit:{day}");
    let now_local = local(t, Utc::now(), "%Y-%m-%dT%H:%M");
    let r = &v.row;
    let q = r.questionnaire.clone().unwrap_or_default();
    let body = html! {
        p { a href={(base(t, venue)) "?day=" (day)} { "← " (vname) " " (day) } }
        @if let Some(m) = message { p.error #message role="alert" { (m) } }
        dl #visit {
            dt { (tr(lang, "氏名（カナ）", "Name (kana)")) } dd { (r.kana_name) }
            dt { (tr(lang, "接種券番号", "Ticket no.")) } dd { (r.ticket_no) }
            dt { (tr(lang, "生年月日", "Birth date")) } dd { (r.birth_date) }
            dt { (tr(lang, "予約", "Appointment")) } dd { (local(t, r.starts_at, "%Y-%m-%d %H:%M")) " · " (dose_label(lang, r.dose)) " · " (r.vaccine_name) }
            dt { (tr(lang, "状態", "Status")) }
            dd { span.status #visit-status data-status=(r.status.as_str()) { (status_label(lang, r.status)) } }
            dt { (tr(lang, "注意", "Flags")) } dd { (flags(lang, r)) }
        }
        @if write {
            div.actions #steps {
                @for s in steps_from(r.status) {
                    form method="post" action={(b) "/step"} id={"step-" (s.as_str())} style="display:inline-block;margin-right:.5em" {
                        (csrf_field(staff))
                        input type="hidden" name="step" value=(s.as_str());
                        input type="hidden" name="back" value=(back);
                        button type="submit" { (step_label(lang, *s)) }
                    }
                }
                @if let Some(prev) = r.status.previous() {
                    form method="post" action={(b) "/undo"} id="undo" style="display:inline-block" {
                        (csrf_field(staff))
                        input type="hidden" name="seen" value=(r.status.as_str());
                        input type="hidden" name="back" value=(back);
                        button type="submit" { (tr(lang, "取り消し", "Undo")) " → " (status_label(lang, prev)) }
                    }
                }
            }
        }

        h2 { (tr(lang, "接種記録", "Vaccination")) }
        @if let Some(rec) = &v.record {
            dl #record {
                dt { (tr(lang, "ロット番号", "Lot number")) } dd.lot { (rec.lot_number) }
                dt { (tr(lang, "接種量 (mL)", "Amount (mL)")) } dd { (rec.dose_ml) }
                dt { (tr(lang, "接種者", "Vaccinator")) } dd { (rec.vaccinator) }
                dt { (tr(lang, "接種日時", "Vaccinated at")) } dd { (local(t, rec.vaccinated_at, "%Y-%m-%d %H:%M")) }
                dt { (tr(lang, "記録者", "Recorded by")) } dd { (rec.recorded_by) }
            }
        } @else if write && r.status == Status::CheckedIn {
            form method="post" action={(b) "/vaccinate"} id="vaccinate" {
                (csrf_field(staff))
                input type="hidden" name="back" value=(back);
                label { (tr(lang, "ロット番号", "Lot number")) br; input name="lot_number" required maxlength="40" autocomplete="off"; }
                label { (tr(lang, "接種量 (mL)", "Amount (mL)")) br; input name="dose_ml" required inputmode="decimal" size="5"; }
                label { (tr(lang, "接種者", "Vaccinator")) br; input name="vaccinator" required maxlength="100"; }
                label { (tr(lang, "接種日時", "Vaccinated at")) br; input type="datetime-local" name="vaccinated_at" value=(now_local) required; }
                button type="submit" { (tr(lang, "接種を記録", "Record vaccination")) }
            }
        } @else {
            p { (tr(lang, "まだ接種していません。", "Not vaccinated in this visit.")) }
        }

        h2 { (tr(lang, "予診票", "Questionnaire")) }
        @if let Some(at) = q.answered_at {
            p { small { (tr(lang, "回答", "Answered")) ": " (local(t, at, "%Y-%m-%d %H:%M")) " · " (q.answered_by) } }
        }
        @if write {
            form method="post" action={(b) "/questionnaire"} id="questionnaire" {
                (csrf_field(staff))
                input type="hidden" name="back" value=(back);
                label { (tr(lang, "基礎疾患", "Underlying conditions")) br; textarea name="conditions" rows="2" maxlength="1000" { (q.conditions) } }
                label { (tr(lang, "アレルギー", "Allergies")) br; textarea name="allergies" rows="2" maxlength="1000" { (q.allergies) } }
                label { input type="checkbox" name="anaphylaxis" value="1" checked[q.anaphylaxis]; " " (tr(lang, "アナフィラキシーの既往あり", "History of anaphylaxis")) }
                button type="submit" { (tr(lang, "予診票を保存", "Save questionnaire")) }
            }
        } @else {
            dl {
                dt { (tr(lang, "基礎疾患", "Underlying conditions")) } dd { (q.conditions) }
                dt { (tr(lang, "アレルギー", "Allergies")) } dd { (q.allergies) }
            }
        }

        h2 { (tr(lang, "副反応", "Side effects")) }
        table #side-effects {
            tr {
                th { (tr(lang, "接種", "Dose")) } th { (tr(lang, "会場", "Venue")) } th { (tr(lang, "種類", "Kind")) }
                th { (tr(lang, "程度", "Severity")) } th { (tr(lang, "発現", "Onset")) } th { (tr(lang, "メモ", "Note")) } th { (tr(lang, "記録者", "By")) }
            }
            @for n in &v.side_effects {
                tr data-kind=(n.kind) {
                    td { (dose_label(lang, n.dose)) } td { (n.venue_name) } td { (kind_label(lang, &n.kind)) }
                    td { (severity_label(lang, &n.severity)) } td { (local(t, n.onset_at, "%Y-%m-%d %H:%M")) }
                    td { (n.note) } td { (n.recorded_by) }
                }
            }
        }
        @if write {
            form method="post" action={(b) "/side-effects"} id="side-effect" {
                (csrf_field(staff))
                input type="hidden" name="back" value=(back);
                label { (tr(lang, "種類", "Kind")) br;
                    select name="kind" required {
                        @for k in intake::SIDE_EFFECT_KINDS { option value=(k) { (kind_label(lang, k)) } }
                    }
                }
                label { (tr(lang, "程度", "Severity")) br;
                    select name="severity" required {
                        @for s in intake::SEVERITIES { option value=(s) { (severity_label(lang, s)) } }
                    }
                }
                label { (tr(lang, "発現日時", "Onset")) br; input type="datetime-local" name="onset" value=(now_local) required; }
                label { (tr(lang, "メモ", "Note")) br; textarea name="note" rows="2" maxlength="2000" {} }
                button type="submit" { (tr(lang, "副反応を記録", "Add side-effect note")) }
            }
        }

        h2 { (tr(lang, "次回の予約", "Next dose")) }
        ul #other-bookings {
            @for o in &v.other_bookings {
                li data-dose=(o.dose) { (dose_label(lang, o.dose)) " · " (local(t, o.starts_at, "%Y-%m-%d %H:%M")) " · " (o.venue_name) }
            }
        }
        @if write && !slots.is_empty() {
            @if let Some(d) = next {
                form method="post" action={(b) "/next-dose"} id="next-dose" {
                    (csrf_field(staff))
                    input type="hidden" name="back" value=(back);
                    input type="hidden" name="key" value=(Uuid::new_v4().simple());
                    label { (dose_label(lang, d.number())) br;
                        select name="slot" required {
                            @for s in &slots {
                                option value=(s.slot_id) { (local(t, s.starts_at, "%Y-%m-%d %H:%M")) " · " (s.venue_name) " (" (tr(lang, "残り", "free")) " " (s.free) ")" }
                            }
                        }
                    }
                    button type="submit" { (tr(lang, "この枠で予約", "Book this slot")) }
                }
            }
        } @else if write && r.status.is_vaccinated() && next.is_some() && !next_booked {
            p { (tr(lang, "予約できる枠がありません。", "No free slot for the next dose.")) }
        }
    };
    Ok((r.kana_name.clone(), body))
}

pub async fn visit_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue, booking)): Path<(String, Uuid, Uuid)>,
) -> Result<Response, PageError> {
    let t = tenant(&state, &staff, &slug).await?;
    let (name, body) = visit_body(&state, &staff, &t, venue, booking, None).await?;
    Ok(frame(&staff, &t, &name, body).into_response())
}
