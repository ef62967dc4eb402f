//! Cancelling a booking: the confirmation page and the post.

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use platform::ResidentDesk;
use platform::residents::desk::{DeskError, Resident};
use serde::Deserialize;
use uuid::Uuid;

use crate::context::{Req, html_page, random_token, req, resident};
use crate::page::layout;
use crate::text::{T, t};

pub(crate) async fn cancel_page(
    State(s): State<ResidentDesk>,
    Path((slug, booking_id)): Path<(String, Uuid)>,
    headers: HeaderMap,
) -> Response {
    let r = match req(&s, &slug, &headers, format!("cancel/{booking_id}")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    cancel_markup(
        &s,
        &r,
        &me,
        booking_id,
        &random_token(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn cancel_markup(
    s: &ResidentDesk,
    r: &Req,
    me: &Resident,
    booking_id: Uuid,
    key: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = r.lang;
    let list = match s.my_bookings(me).await {
        Ok(l) => l,
        Err(e) => return r.refused(e),
    };
    let Some(b) = list
        .iter()
        .find(|b| b.id == booking_id && b.status == "booked")
    else {
        return html_page(StatusCode::NOT_FOUND, crate::page::not_found(lang));
    };
    let tz = r.tenant().time_zone.0;
    html_page(
        status,
        layout(
            &r.ctx(),
            t(lang, T::CancelTitle),
            html! {
                @if let Some(m) = message { p class="error" role="alert" { (m) } }
                p { (t(lang, T::CancelQuestion)) }
                dl class="summary" {
                    dt { (t(lang, T::When)) } dd class="when" { (crate::text::when(lang, tz, b.starts_at)) }
                    dt { (t(lang, T::Venue)) } dd { (b.venue_name) }
                    dt { (t(lang, T::Dose)) } dd { (b.dose.label(lang)) }
                }
                form method="post" action=(r.url(&format!("cancel/{booking_id}"))) {
                    input type="hidden" name="csrf" value=(me.csrf_token());
                    input type="hidden" name="key" value=(key);
                    button type="submit" id="cancel" class="danger" { (t(lang, T::CancelYes)) }
                }
                a href=(r.url("bookings")) { (t(lang, T::Back)) }
            },
        ),
    )
}

#[derive(Deserialize)]
pub(crate) struct CancelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key: String,
}

pub(crate) async fn cancel_submit(
    State(s): State<ResidentDesk>,
    Path((slug, booking_id)): Path<(String, Uuid)>,
    headers: HeaderMap,
    Form(form): Form<CancelForm>,
) -> Response {
    let r = match req(&s, &slug, &headers, format!("cancel/{booking_id}")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let me = match resident(&s, &r, &headers).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if form.csrf != me.csrf_token() {
        return cancel_markup(
            &s,
            &r,
            &me,
            booking_id,
            &form.key,
            Some(t(r.lang, T::FormExpired)),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    match s.cancel(&me, booking_id, &form.key).await {
        Ok(_) => Redirect::to(&r.url("bookings?notice=cancelled")).into_response(),
        Err(e @ (DeskError::Database(_) | DeskError::Suspended | DeskError::SignedOut)) => {
            r.refused(e)
        }
        Err(e) => {
            cancel_markup(
                &s,
                &r,
                &me,
                booking_id,
                &form.key,
                Some(&e.message(r.lang)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}
