//! Booking and changing a booking: the confirm page (companions, doses, the questionnaire), the
//! booking and change posts, and the done page.

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use platform::ResidentDesk;
use platform::booking::Dose;
use platform::residents::desk::{self, DeskError, Resident};
use platform::residents::parse_birth_date;
use serde::Deserialize;
use uuid::Uuid;

use crate::context::{Req, html_page, random_token, req, resident};
use crate::page::layout;
use crate::text::{T, t};

#[derive(Deserialize, Default)]
pub(crate) struct ConfirmQuery {
    slot: Option<Uuid>,
    change: Option<Uuid>,
}

#[derive(Deserialize, Default, Clone)]
pub(crate) struct BookForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key: String,
    slot: Uuid,
    #[serde(default)]
    dose: String,
    #[serde(default)]
    change: Option<Uuid>,
    #[serde(default)]
    ticket1: String,
    #[serde(default)]
    birth1: String,
    #[serde(default)]
    ticket2: String,
    #[serde(default)]
    birth2: String,
    /// "on": a group may sit in the slot right before or after when this one has too few seats.
    #[serde(default)]
    adjacent: Option<String>,
    /// Dose 2 booked in the same step (cities that offer it): a slot id, or empty.
    #[serde(default)]
    second: String,
    // the optional questionnaire (resident-ui/src/questionnaire.rs)
    #[serde(default)]
    hq_conditions: String,
    #[serde(default)]
    hq_allergies: String,
    #[serde(default)]
    hq_anaphylaxis: String,
}

impl BookForm {
    fn questionnaire(&self) -> crate::questionnaire::Fields {
        crate::questionnaire::Fields {
            hq_conditions: self.hq_conditions.clone(),
            hq_allergies: self.hq_allergies.clone(),
            hq_anaphylaxis: self.hq_anaphylaxis.clone(),
        }
    }
}

/// The slot's place and time, for the confirm page (from the availability cache).
async fn slot_summary(
    s: &ResidentDesk,
    r: &Req,
    slot: Uuid,
) -> Result<Option<(String, String, String)>, Response> {
    Ok(s.slot(&r.visit, slot)
        .await
        .map_err(|e| r.refused(e))?
        .map(|(v, sl)| {
            (
                v.name,
                v.vaccine_name,
                crate::text::when(r.lang, r.tenant().time_zone.0, sl.starts_at),
            )
        }))
}

pub(crate) async fn confirm_page(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    Query(q): Query<ConfirmQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "confirm".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(slot) = q.slot else {
        return html_page(StatusCode::NOT_FOUND, crate::page::not_found(r.lang));
    };
    let form = BookForm {
        slot,
        change: q.change,
        key: random_token(),
        csrf: me.csrf_token().to_owned(),
        ..BookForm::default()
    };
    confirm_markup(&s, &r, &me, &form, None, StatusCode::OK).await
}

async fn confirm_markup(
    s: &ResidentDesk,
    r: &Req,
    me: &Resident,
    form: &BookForm,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = r.lang;
    let summary = match slot_summary(s, r, form.slot).await {
        Ok(Some(x)) => x,
        Ok(None) => return html_page(StatusCode::NOT_FOUND, crate::page::not_found(lang)),
        Err(resp) => return resp,
    };
    let existing = match s.my_bookings(me).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    // The next dose the resident has not booked yet is preselected.
    let next = [Dose::First, Dose::Second, Dose::Booster]
        .into_iter()
        .find(|d| {
            !existing
                .iter()
                .any(|b| b.dose == *d && b.status == "booked" && b.resident_id == me.id())
        })
        .unwrap_or(Dose::First);
    // the radio shows what the resident chose (a malformed choice is refused on submit, and
    // shows the preselection again)
    let chosen = form.dose.parse::<Dose>().unwrap_or(next);
    let (venue, vaccine, when) = summary;
    // Offered only while dose 1 is still to book and the city allows both at once.
    let pairing = if form.change.is_none() && next == Dose::First {
        match s.second_dose_options(me, form.slot).await {
            Ok(o) => o,
            Err(e) => return r.refused(e),
        }
    } else {
        None
    };
    let tz = r.tenant().time_zone.0;
    let action = if form.change.is_some() {
        "change"
    } else {
        "book"
    };
    html_page(
        status,
        layout(
            &r.ctx(),
            t(lang, T::ConfirmTitle),
            html! {
                @if let Some(m) = message { p class="error" role="alert" { (m) } }
                dl class="summary" {
                    dt { (t(lang, T::When)) } dd class="when" { (when) }
                    dt { (t(lang, T::Venue)) } dd { (venue) }
                    dt { (t(lang, T::Vaccine)) } dd { (vaccine) }
                }
                form method="post" action=(r.url(action)) {
                    input type="hidden" name="csrf" value=(form.csrf);
                    input type="hidden" name="key" value=(form.key);
                    input type="hidden" name="slot" value=(form.slot);
                    @if let Some(c) = form.change {
                        input type="hidden" name="change" value=(c);
                        button type="submit" id="confirm" { (t(lang, T::ConfirmChange)) }
                    } @else {
                        fieldset {
                            legend { (t(lang, T::Dose)) }
                            @for d in [Dose::First, Dose::Second, Dose::Booster] {
                                label class="radio" {
                                    input type="radio" name="dose" value=(d.number()) checked[d == chosen];
                                    " " (d.label(lang))
                                }
                            }
                        }
                        details open[!form.ticket1.is_empty() || !form.ticket2.is_empty()] {
                            summary { (t(lang, T::Companions)) }
                            p class="small" { (t(lang, T::CompanionsHint)) }
                            @for (i, (tk, bd)) in [(&form.ticket1, &form.birth1), (&form.ticket2, &form.birth2)].into_iter().enumerate() {
                                @let n = i + 1;
                                p class="small" { (n + 1) " " (t(lang, T::Person)) }
                                label for=(format!("ticket{n}")) { (t(lang, T::Ticket)) }
                                input id=(format!("ticket{n}")) name=(format!("ticket{n}")) inputmode="numeric" value=(tk);
                                label for=(format!("birth{n}")) { (t(lang, T::BirthDate)) }
                                input id=(format!("birth{n}")) name=(format!("birth{n}")) inputmode="numeric"
                                    placeholder=(t(lang, T::BirthDateHint)) value=(bd);
                            }
                            label class="radio" {
                                input type="checkbox" name="adjacent" value="on" checked[form.adjacent.is_some()];
                                " " (t(lang, T::AdjacentSlots))
                            }
                        }
                        @if let Some(options) = &pairing {
                            fieldset {
                                legend { (t(lang, T::SecondDoseToo)) }
                                p class="small" { (t(lang, T::SecondDoseTooHint)) }
                                select name="second" id="second" {
                                    option value="" selected[form.second.is_empty()] { (t(lang, T::SecondDoseLater)) }
                                    @for (id, at) in options {
                                        option value=(id) selected[form.second == id.to_string()] { (crate::text::when(lang, tz, *at)) }
                                    }
                                }
                            }
                        }
                        (crate::questionnaire::markup(lang, &form.questionnaire()))
                        button type="submit" id="confirm" { (t(lang, T::ConfirmBook)) }
                    }
                }
                a href=(r.url("venues")) { (t(lang, T::Back)) }
            },
        ),
    )
}

pub(crate) async fn book_submit(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<BookForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, "confirm".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if form.csrf != me.csrf_token() {
        return confirm_markup(
            &s,
            &r,
            &me,
            &form,
            Some(t(r.lang, T::FormExpired)),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let refused = |e: DeskError| {
        let form = form.clone();
        let (s, r, me) = (&s, &r, &me);
        async move {
            match e {
                DeskError::Database(_) | DeskError::Suspended | DeskError::SignedOut => {
                    r.refused(e)
                }
                e => {
                    confirm_markup(
                        s,
                        r,
                        me,
                        &form,
                        Some(&e.message(r.lang)),
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await
                }
            }
        }
    };
    let dose = match form.dose.parse::<Dose>() {
        Ok(d) => d,
        Err(bad) => {
            return confirm_markup(
                &s,
                &r,
                &me,
                &form,
                Some(&bad.message(r.lang)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let second_dose_slot = match form.second.trim() {
        "" => None,
        raw => match raw.parse::<Uuid>() {
            Ok(id) => Some(id),
            Err(_) => {
                return refused(DeskError::Booking(
                    platform::booking::BookingError::NotFound,
                ))
                .await;
            }
        },
    };
    // Companions: the rows the resident filled in (a row left blank is no one).
    let companions = [(&form.ticket1, &form.birth1), (&form.ticket2, &form.birth2)]
        .into_iter()
        .filter(|(ticket, birth)| !(ticket.trim().is_empty() && birth.trim().is_empty()))
        .map(|(ticket, birth)| desk::Companion {
            ticket_no: ticket.clone(),
            birth_date: parse_birth_date(birth),
        })
        .collect();
    let order = desk::BookOrder {
        slot: form.slot,
        dose,
        companions,
        second_dose_slot,
        allow_adjacent_slots: form.adjacent.is_some(),
        questionnaire: form.questionnaire().answers(),
        idempotency_key: form.key.clone(),
    };
    match s.book(&me, &order).await {
        Ok(booked) => {
            let first = booked.first().map(|b| b.id).unwrap_or_default();
            Redirect::to(&r.url(&format!("done?booking={first}"))).into_response()
        }
        Err(e) => refused(e).await,
    }
}

pub(crate) async fn change_submit(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<BookForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, "confirm".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(booking_id) = form.change else {
        return html_page(StatusCode::NOT_FOUND, crate::page::not_found(r.lang));
    };
    if form.csrf != me.csrf_token() {
        return confirm_markup(
            &s,
            &r,
            &me,
            &form,
            Some(t(r.lang, T::FormExpired)),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    match s.change(&me, booking_id, form.slot, &form.key).await {
        Ok(moved) => {
            Redirect::to(&r.url(&format!("done?booking={}&changed=1", moved.id))).into_response()
        }
        Err(e @ (DeskError::Database(_) | DeskError::Suspended | DeskError::SignedOut)) => {
            r.refused(e)
        }
        Err(e) => {
            confirm_markup(
                &s,
                &r,
                &me,
                &form,
                Some(&e.message(r.lang)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct DoneQuery {
    booking: Option<Uuid>,
    changed: Option<String>,
}

pub(crate) async fn done(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    Query(q): Query<DoneQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "done".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let list = match s.my_bookings(&me).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    let lang = r.lang;
    let tz = r.tenant().time_zone.0;
    let Some(b) = list.iter().find(|b| Some(b.id) == q.booking) else {
        return Redirect::to(&r.url("bookings")).into_response();
    };
    let group: Vec<_> = list
        .iter()
        .filter(|x| x.group_id == b.group_id && x.status == "booked")
        .collect();
    html_page(
        StatusCode::OK,
        layout(
            &r.ctx(),
            if q.changed.is_some() {
                t(lang, T::ChangedText)
            } else {
                t(lang, T::DoneTitle)
            },
            html! {
                dl class="summary" {
                    dt { (t(lang, T::When)) } dd class="when" { (crate::text::when(lang, tz, b.starts_at)) }
                    dt { (t(lang, T::Venue)) } dd { (b.venue_name) }
                    dt { (t(lang, T::Vaccine)) } dd { (b.vaccine_name) }
                    dt { (t(lang, T::Dose)) } dd { (b.dose.label(lang)) @if group.len() > 1 { " × " (group.len()) } }
                }
                p { (t(lang, T::DoneText)) }
                a class="button" id="my-bookings" href=(r.url("bookings")) { (t(lang, T::MyBookings)) }
            },
        ),
    )
}
