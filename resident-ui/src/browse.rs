//! The resident's bookings and the way to a slot: my bookings, venues, a venue's days, a day's
//! times (also used to change a booking, with `?change={booking}`).

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chrono::NaiveDate;
use maud::{Markup, html};
use platform::ResidentDesk;
use platform::booking::availability::Mark;
use platform::i18n::Lang;
use serde::Deserialize;
use uuid::Uuid;

use crate::context::{html_page, req, resident};
use crate::page::layout;
use crate::text::{T, t};

// Bookings

#[derive(Deserialize, Default)]
pub(crate) struct NoticeQuery {
    notice: Option<String>,
}

pub(crate) async fn my_bookings(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    Query(q): Query<NoticeQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "bookings".into()).await {
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
    let notice = match q.notice.as_deref() {
        Some("cancelled") => Some(t(lang, T::CancelledText)),
        _ => None,
    };
    html_page(
        StatusCode::OK,
        layout(
            &r.ctx(),
            t(lang, T::MyBookings),
            html! {
                @if let Some(n) = notice { p class="notice" role="status" { (n) } }
                @if list.is_empty() { p { (t(lang, T::NoBookings)) } }
                ul class="cards" {
                    @for b in &list {
                        li class={ "booking " (b.status) } {
                            p class="title" { strong { (b.dose.label(lang)) } @if b.status == "cancelled" { " — " (t(lang, T::Cancelled)) } }
                            p { (t(lang, T::When)) ": " span class="when" { (crate::text::when(lang, tz, b.starts_at)) } }
                            p { (t(lang, T::Venue)) ": " (b.venue_name) }
                            p { (t(lang, T::Vaccine)) ": " (b.vaccine_name) }
                            @if b.status == "booked" {
                                p class="small" { (t(lang, T::ChangeUntil)) ": " (crate::text::when(lang, tz, b.change_until)) }
                                @if b.resident_id != me.id() { p class="small" { "👥" } }
                                @if b.change_until > chrono::Utc::now() { div class="actions" {
                                    a class="button secondary" href=(r.url(&format!("venues?change={}", b.id))) { (t(lang, T::Change)) }
                                    a class="button secondary" href=(r.url(&format!("cancel/{}", b.id))) { (t(lang, T::Cancel)) }
                                } }
                            }
                        }
                    }
                }
                a class="button" id="book-new" href=(r.url("venues")) { (t(lang, T::BookNew)) }
                form method="post" action=(r.url("logout")) {
                    input type="hidden" name="csrf" value=(me.csrf_token());
                    button type="submit" class="link" { (t(lang, T::LogOut)) }
                }
            },
        ),
    )
}

#[derive(Deserialize, Default)]
pub(crate) struct ChangeQuery {
    change: Option<Uuid>,
}

fn with_change(url: String, change: Option<Uuid>) -> String {
    match change {
        Some(c) => format!("{url}?change={c}"),
        None => url,
    }
}

fn mark_html(lang: Lang, mark: Mark) -> Markup {
    html! { span class={ "mark " (mark.as_str()) } { span aria-hidden="true" { (mark.symbol()) } " " (mark.text(lang)) } }
}

pub(crate) async fn venues(
    State(s): State<ResidentDesk>,
    Path(slug): Path<String>,
    Query(q): Query<ChangeQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, "venues".into()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = resident(&s, &r, &headers).await {
        return resp;
    }
    let list = match s.venues(&r.visit).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    let lang = r.lang;
    html_page(
        StatusCode::OK,
        layout(
            &r.ctx(),
            t(lang, T::ChooseVenue),
            html! {
                ul class="choices" {
                    @for v in &list {
                        li { a class="choice" href=(with_change(r.url(&format!("venues/{}", v.id)), q.change)) {
                            strong { (v.name) } br; span class="small" { (v.address) " · " (t(lang, T::Vaccine)) ": " (v.vaccine_name) }
                        } }
                    }
                }
                a href=(r.url("bookings")) { (t(lang, T::Back)) }
            },
        ),
    )
}

pub(crate) async fn days(
    State(s): State<ResidentDesk>,
    Path((slug, venue)): Path<(String, Uuid)>,
    Query(q): Query<ChangeQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, format!("venues/{venue}")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = resident(&s, &r, &headers).await {
        return resp;
    }
    let list = match s.days(&r.visit, venue).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    let lang = r.lang;
    html_page(
        StatusCode::OK,
        layout(
            &r.ctx(),
            t(lang, T::ChooseDay),
            html! {
                @if list.is_empty() { p { (t(lang, T::NoSlots)) } }
                ul class="choices" {
                    @for d in &list {
                        li {
                            @if d.mark == Mark::Full && !d.dose2_only {
                                span class="choice disabled" { (crate::text::date(lang, d.date)) " " (mark_html(lang, d.mark)) }
                            } @else if d.dose2_only {
                                a class="choice" href=(with_change(r.url(&format!("venues/{venue}/{}", d.date)), q.change)) {
                                    (crate::text::date(lang, d.date)) " " (mark_html(lang, d.mark)) " · " (t(lang, T::SecondDoseOnly))
                                }
                            } @else {
                                a class="choice" href=(with_change(r.url(&format!("venues/{venue}/{}", d.date)), q.change)) {
                                    (crate::text::date(lang, d.date)) " " (mark_html(lang, d.mark))
                                }
                            }
                        }
                    }
                }
                a href=(with_change(r.url("venues"), q.change)) { (t(lang, T::Back)) }
            },
        ),
    )
}

pub(crate) async fn times(
    State(s): State<ResidentDesk>,
    Path((slug, venue, date)): Path<(String, Uuid, NaiveDate)>,
    Query(q): Query<ChangeQuery>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, format!("venues/{venue}/{date}")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = resident(&s, &r, &headers).await {
        return resp;
    }
    let list = match s.day(&r.visit, venue, date).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    let lang = r.lang;
    let tz = r.tenant().time_zone.0;
    let change = q.change.map(|c| format!("&change={c}")).unwrap_or_default();
    html_page(
        StatusCode::OK,
        layout(
            &r.ctx(),
            t(lang, T::ChooseTime),
            html! {
                p { (crate::text::date(lang, date)) }
                @if list.is_empty() { p { (t(lang, T::NoSlots)) } }
                ul class="choices" {
                    @for sl in &list {
                        @let label = html! { (sl.starts_at.with_timezone(&tz).format("%H:%M")) "–" (sl.ends_at.with_timezone(&tz).format("%H:%M")) " " (mark_html(lang, sl.mark)) };
                        li {
                            @if sl.mark == Mark::Full && sl.mark_dose2 == Mark::Full {
                                span class="choice disabled" { (label) }
                            } @else if sl.mark == Mark::Full {
                                a class="choice slot" href=(r.url(&format!("confirm?slot={}{change}", sl.slot_id))) {
                                    (label) " · " (t(lang, T::SecondDoseOnly)) " " (sl.free_dose2)
                                }
                            } @else {
                                a class="choice slot" href=(r.url(&format!("confirm?slot={}{change}", sl.slot_id))) {
                                    (label) " · " (t(lang, T::FreeSeats)) " " (sl.free)
                                }
                            }
                        }
                    }
                }
                a href=(with_change(r.url(&format!("venues/{venue}")), q.change)) { (t(lang, T::Back)) }
            },
        ),
    )
}
