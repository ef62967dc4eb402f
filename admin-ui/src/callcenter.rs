//! The call centre's pages (docs/callcenter.md) at `/admin/t/{slug}/callcenter…`: find a caller by
//! kana name + birth date + ticket number, see their bookings, book / change / cancel for them.
//! Guard object `callcenter` (call centre, city staff, city admin; auditors read). Every search,
//! every caller view and every action is audited by `platform::callcenter`.

use axum::{
    Form,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use chrono::{Duration, NaiveDate, Utc};
use maud::html;
use platform::booking::{BookingError, Dose};
use platform::callcenter::{self, CallerQuery};
use platform::staff::authz::{Act, Object};
use serde::Deserialize;
use uuid::Uuid;

use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, csrf_field};
use crate::routes::{Access as A, Route, get, post};
use crate::shell::{enter, render};
use crate::state::AdminState;

pub fn routes() -> Vec<Route> {
    let (read, write) = (
        A::City(Object::CallCenter, Act::Read),
        A::City(Object::CallCenter, Act::Write),
    );
    vec![
        get("/admin/t/{slug}/callcenter", read, search),
        get("/admin/t/{slug}/callcenter/{resident}", read, caller),
        post("/admin/t/{slug}/callcenter/{resident}/book", write, book),
        post(
            "/admin/t/{slug}/callcenter/{resident}/change",
            write,
            change,
        ),
        post(
            "/admin/t/{slug}/callcenter/{resident}/bookings/{booking}/cancel",
            write,
            cancel,
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
    lang.t(K::CallCenter)
}

fn platform_lang(lang: Lang) -> platform::i18n::Lang {
    match lang {
        Lang::Ja => platform::i18n::Lang::Ja,
        Lang::En => platform::i18n::Lang::En,
    }
}

fn sex_label(lang: Lang, sex: &str) -> &'static str {
    match sex {
        "female" => tr(lang, "女", "female"),
        "male" => tr(lang, "男", "male"),
        "other" => tr(lang, "その他", "other"),
        _ => tr(lang, "不明", "unknown"),
    }
}

#[derive(Deserialize, Default)]
pub struct SearchParams {
    #[serde(default)]
    kana: String,
    #[serde(default)]
    birth: String,
    #[serde(default)]
    ticket: String,
}

pub async fn search(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Query(q): Query<SearchParams>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::CallCenter, Act::Read).await?;
    let asked =
        !(q.kana.trim().is_empty() && q.birth.trim().is_empty() && q.ticket.trim().is_empty());
    let (found, problem) = if asked {
        match CallerQuery::parse(&q.kana, &q.birth, &q.ticket) {
            Ok(query) => (Some(callcenter::search(&mut scope, &query).await?), None),
            Err(e) => (
                None,
                Some(match lang {
                    Lang::Ja => e.message_ja().to_owned(),
                    Lang::En => e.to_string(),
                }),
            ),
        }
    } else {
        (None, None)
    };
    scope.commit().await?;
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let body = html! {
        form method="get" action={"/admin/t/" (t.slug) "/callcenter"} #caller-search {
            label { (tr(lang, "カナ氏名（ひらがな・半角カナも可、一部でも可）", "Kana name (hiragana or half-width kana, part of it is enough)")) br;
                input name="kana" value=(q.kana) autocomplete="off"; }
            label { (tr(lang, "生年月日（例 1956-04-04）", "Birth date (e.g. 1956-04-04)")) br;
                input name="birth" value=(q.birth) inputmode="numeric" placeholder="1956-04-04"; }
            label { (tr(lang, "接種券番号（先頭からの一部でも可）", "Ticket number (or its first digits)")) br;
                input name="ticket" value=(q.ticket) inputmode="numeric"; }
            button type="submit" { (tr(lang, "検索", "Search")) }
        }
        @if let Some(p) = &problem { p.error role="alert" { (p) } }
        @if let Some(list) = &found {
            @if list.is_empty() {
                p #no-callers { (tr(lang, "該当する方はいません。", "Nobody matches.")) }
            } @else {
                @if list.len() > callcenter::SEARCH_LIMIT {
                    p.error { (tr(lang, "該当が多すぎます。生年月日などで絞り込んでください。", "Too many matches; narrow the search (e.g. add the birth date).")) }
                }
                table #callers {
                    tr { th { (tr(lang, "カナ氏名", "Kana name")) } th { (tr(lang, "生年月日", "Birth date")) } th { (tr(lang, "接種券番号", "Ticket no.")) } th { (tr(lang, "性別", "Sex")) } }
                    @for c in list.iter().take(callcenter::SEARCH_LIMIT) {
                        tr {
                            td { a href={"/admin/t/" (t.slug) "/callcenter/" (c.id)} { (c.kana_name) } }
                            td { (c.birth_date) } td { (c.ticket_no) } td { (sex_label(lang, &c.sex)) }
                        }
                    }
                }
            }
        }
    };
    Ok((status, render(&staff, &t, menu_label(lang), body)).into_response())
}

#[derive(Deserialize, Default)]
pub struct CallerParams {
    venue: Option<Uuid>,
    day: Option<NaiveDate>,
    done: Option<String>,
}

pub async fn caller(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, resident)): Path<(String, Uuid)>,
    Query(q): Query<CallerParams>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::CallCenter, Act::Read).await?;
    let detail = callcenter::caller(&mut scope, resident)
        .await?
        .ok_or(PageError::not_found(lang))?;
    let venues = platform::city::setup::list_venues(&mut scope).await?;
    let tz = t.time_zone.0;
    let day = q.day.unwrap_or_else(|| {
        (Utc::now() + Duration::days(3))
            .with_timezone(&tz)
            .date_naive()
    });
    let venue = q.venue.or_else(|| venues.first().map(|v| v.id));
    let slots = match venue {
        Some(v) => callcenter::free_slots(&mut scope, v, day).await?,
        None => Vec::new(),
    };
    let may_write = state
        .authz
        .check(&staff.actor, t.id, Object::CallCenter, Act::Write)
        .await
        .unwrap_or(false);
    let may_override = callcenter::may_override(&state.authz, &scope)
        .await
        .is_some();
    scope.commit().await?;
    let bookings = callcenter::bookings(&state.pool, &t, resident).await?;
    let live: Vec<_> = bookings.iter().filter(|b| b.status == "booked").collect();
    let base = format!("/admin/t/{}/callcenter/{}", t.slug, resident);
    let body = html! {
        p { a href={"/admin/t/" (t.slug) "/callcenter"} { (tr(lang, "← 検索に戻る", "← back to search")) } }
        @if let Some(done) = &q.done {
            p.ok role="status" #done { (match done.as_str() {
                "booked" => tr(lang, "予約しました。", "Booked."),
                "changed" => tr(lang, "予約を変更しました。", "Booking changed."),
                "cancelled" => tr(lang, "予約を取り消しました。", "Booking cancelled."),
                "override" => tr(lang, "期限を過ぎていましたが、権限により実行しました（監査ログに記録）。", "Done past the deadline by override (recorded in the audit log)."),
                _ => "",
            }) }
        }
        dl #caller {
            dt { (tr(lang, "カナ氏名", "Kana name")) } dd { (detail.kana_name) }
            dt { (tr(lang, "生年月日", "Birth date")) } dd { (detail.birth_date) }
            dt { (tr(lang, "接種券番号", "Ticket no.")) } dd { (detail.ticket_no) }
            dt { (tr(lang, "性別", "Sex")) } dd { (sex_label(lang, &detail.sex)) }
            dt { (tr(lang, "電話", "Phone")) } dd { (detail.phone.clone().unwrap_or_default()) }
            dt { (tr(lang, "メール", "E-mail")) } dd { (detail.email.clone().unwrap_or_default()) }
        }
        h2 { (tr(lang, "予約", "Bookings")) }
        @if bookings.is_empty() { p { (tr(lang, "予約はありません。", "No bookings.")) } }
        @else {
            table #bookings {
                tr { th { (tr(lang, "日時", "When")) } th { (tr(lang, "会場", "Venue")) } th { (tr(lang, "回数", "Dose")) } th { (tr(lang, "状態", "Status")) } th { (tr(lang, "変更期限", "Change until")) } th {} }
                @for b in &bookings {
                    tr {
                        td { (b.starts_at.with_timezone(&tz).format("%Y-%m-%d %H:%M")) }
                        td { (b.venue_name) }
                        td { (b.dose.label(platform_lang(lang))) }
                        td { (if b.status == "booked" { tr(lang, "予約中", "booked") } else { tr(lang, "取消", "cancelled") }) }
                        td { (b.change_until.with_timezone(&tz).format("%Y-%m-%d %H:%M")) }
                        td {
                            @if may_write && b.status == "booked" {
                                form method="post" action={(base) "/bookings/" (b.id) "/cancel"} {
                                    (csrf_field(&staff))
                                    input type="hidden" name="key" value=(Uuid::now_v7());
                                    @if may_override && b.change_until <= Utc::now() {
                                        label { input type="checkbox" name="override" value="1"; " " (tr(lang, "期限超過を承認して取り消す", "override the cut-off")) }
                                    }
                                    button type="submit" { (tr(lang, "取消", "Cancel")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_write {
            h2 { (tr(lang, "空き枠を探す", "Find a free slot")) }
            form method="get" action=(base) #slot-search {
                label { (tr(lang, "会場", "Venue")) br;
                    select name="venue" {
                        @for v in &venues { option value=(v.id) selected[Some(v.id) == venue] { (v.name) } }
                    }
                }
                label { (tr(lang, "日付", "Day")) br; input type="date" name="day" value=(day); }
                button type="submit" { (tr(lang, "表示", "Show")) }
            }
            @if slots.is_empty() {
                p #no-slots { (tr(lang, "この日に空き枠はありません。", "No free slots on this day.")) }
            } @else {
                form method="post" action={(base) "/book"} #book-form {
                    (csrf_field(&staff))
                    input type="hidden" name="key" value=(Uuid::now_v7());
                    fieldset {
                        legend { (tr(lang, "枠", "Slot")) }
                        @for (i, s) in slots.iter().enumerate() {
                            label { input type="radio" name="slot" value=(s.id) checked[i == 0];
                                " " (s.starts_at.with_timezone(&tz).format("%H:%M")) "–" (s.ends_at.with_timezone(&tz).format("%H:%M"))
                                " (" (tr(lang, "空き", "free")) " " (s.free) ")"
                                @if s.past_deadline { " " span.past-deadline { (tr(lang, "［予約締切後］", "[past the booking deadline]")) } } }
                        }
                    }
                    label { (tr(lang, "回数", "Dose")) br;
                        select name="dose" {
                            @for d in [Dose::First, Dose::Second, Dose::Booster] { option value=(d.number()) { (d.label(platform_lang(lang))) } }
                        }
                    }
                    @if may_override {
                        label #override-deadline { input type="checkbox" name="override" value="1"; " " (tr(lang, "予約締切・変更期限を過ぎていても実行する（監査ログに記録）", "go ahead past the booking deadline or change cut-off (audited)")) }
                    }
                    button type="submit" { (tr(lang, "この枠で予約", "Book this slot")) }
                    @if !live.is_empty() {
                        label { (tr(lang, "変更する予約", "Booking to move")) br;
                            select name="booking" {
                                @for b in &live { option value=(b.id) { (b.starts_at.with_timezone(&tz).format("%Y-%m-%d %H:%M")) " " (b.venue_name) " " (b.dose.label(platform_lang(lang))) } }
                            }
                        }
                        button type="submit" formaction={(base) "/change"} { (tr(lang, "選んだ予約をこの枠へ変更", "Move the chosen booking here")) }
                    }
                }
            }
        }
    };
    Ok(render(&staff, &t, menu_label(lang), body))
}

#[derive(Deserialize)]
pub struct BookForm {
    #[serde(default)]
    key: String,
    slot: Option<Uuid>,
    dose: Option<i16>,
    booking: Option<Uuid>,
    #[serde(default)]
    r#override: String,
}

fn booking_failed(e: BookingError, lang: Lang) -> PageError {
    match e {
        BookingError::Database(e) => PageError::from(e),
        BookingError::NotFound => PageError::not_found(lang),
        other => PageError {
            status: if other.code() == "CONFLICT" {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            },
            message: other.message(platform_lang(lang)),
            lang,
        },
    }
}

/// The override the operator asked for with the form's checkbox: the capability when their role
/// allows it; asked for but not allowed is refused outright (403).
async fn asked_override(
    state: &AdminState,
    scope: &platform::staff::authz::Scope,
    form: &BookForm,
    lang: Lang,
) -> Result<Option<callcenter::DeadlineOverride>, PageError> {
    if form.r#override != "1" {
        return Ok(None);
    }
    match callcenter::may_override(&state.authz, scope).await {
        Some(o) => Ok(Some(o)),
        None => Err(PageError::denied(
            platform::staff::authz::Denied::Forbidden,
            lang,
        )),
    }
}

fn done_url(t: &tenants::Tenant, resident: Uuid, done: &str, overridden: bool) -> String {
    let done = if overridden { "override" } else { done };
    format!("/admin/t/{}/callcenter/{resident}?done={done}", t.slug)
}

pub async fn book(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, resident)): Path<(String, Uuid)>,
    Form(form): Form<BookForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::CallCenter, Act::Write).await?;
    let (Some(slot), Some(dose)) = (form.slot, form.dose.and_then(Dose::from_number)) else {
        return Err(PageError::bad_request(
            tr(
                lang,
                "枠と回数を選んでください。",
                "Choose a slot and a dose.",
            ),
            lang,
        ));
    };
    let over = asked_override(&state, &scope, &form, lang).await?;
    let (_, overridden) =
        callcenter::book_for(&mut scope, &t, resident, slot, dose, &form.key, over)
            .await
            .map_err(|e| booking_failed(e, lang))?;
    scope.commit().await?;
    Ok(Redirect::to(&done_url(&t, resident, "booked", overridden)).into_response())
}

pub async fn change(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, resident)): Path<(String, Uuid)>,
    Form(form): Form<BookForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::CallCenter, Act::Write).await?;
    let (Some(slot), Some(booking)) = (form.slot, form.booking) else {
        return Err(PageError::bad_request(
            tr(
                lang,
                "変更する予約と枠を選んでください。",
                "Choose the booking and the new slot.",
            ),
            lang,
        ));
    };
    let over = asked_override(&state, &scope, &form, lang).await?;
    let (_, overridden) =
        callcenter::change_for(&mut scope, &t, resident, booking, slot, &form.key, over)
            .await
            .map_err(|e| booking_failed(e, lang))?;
    scope.commit().await?;
    Ok(Redirect::to(&done_url(&t, resident, "changed", overridden)).into_response())
}

pub async fn cancel(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, resident, booking)): Path<(String, Uuid, Uuid)>,
    Form(form): Form<BookForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::CallCenter, Act::Write).await?;
    let over = asked_override(&state, &scope, &form, lang).await?;
    let (_, overridden) =
        callcenter::cancel_for(&mut scope, &t, resident, booking, &form.key, over)
            .await
            .map_err(|e| booking_failed(e, lang))?;
    scope.commit().await?;
    Ok(Redirect::to(&done_url(&t, resident, "cancelled", overridden)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_exist_in_both_languages() {
        assert_eq!(menu_label(Lang::Ja), "コールセンター");
        assert_eq!(sex_label(Lang::En, "female"), "female");
    }
}
