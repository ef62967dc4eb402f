//! The city's booking rules at `/admin/t/{slug}/booking-rules`: when a slot shows △, whether dose 2
//! may use another vaccine, booking dose 2 together with dose 1, group size, and the share of every
//! slot held for second doses until a release date. Read: whoever may read venues; write: whoever
//! may write venues (city admins). Every change is audited with the values before and after.

use axum::{
    Form,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use chrono::{NaiveDate, TimeZone};
use maud::{Markup, html};
use platform::booking::{self, BookingSettings, SettingsError};
use platform::staff::authz::{Act, Object};
use serde::Deserialize;
use tenants::Tenant;

use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, csrf_field};
use crate::routes::{Access as A, Route, get, post};
use crate::shell::{enter, render};
use crate::state::AdminState;

pub fn routes() -> Vec<Route> {
    vec![
        get(
            "/admin/t/{slug}/booking-rules",
            A::City(Object::Venues, Act::Read),
            rules_page,
        ),
        post(
            "/admin/t/{slug}/booking-rules",
            A::City(Object::Venues, Act::Write),
            save_rules,
        ),
    ]
}

pub fn title(lang: Lang) -> &'static str {
    lang.t(K::BookingRules)
}

fn label(lang: Lang, field: &str) -> &'static str {
    match (lang, field) {
        (Lang::Ja, "few_left_percent") => "「残りわずか」(△) にする空き割合 (%)",
        (Lang::En, "few_left_percent") => "Show △ (few left) below this share free (%)",
        (Lang::Ja, "few_left_seats") => "「残りわずか」(△) にする空き席数 (未満)",
        (Lang::En, "few_left_seats") => "… or below this many free seats",
        (Lang::Ja, "allow_mixing") => "2回目に1回目と別のワクチンを認める",
        (Lang::En, "allow_mixing") => "Allow another vaccine for dose 2",
        (Lang::Ja, "book_dose2_with_dose1") => "1回目と2回目を同時に予約できる",
        (Lang::En, "book_dose2_with_dose1") => "Residents may book dose 2 together with dose 1",
        (Lang::Ja, "max_group_size") => "一緒に予約できる人数 (本人以外)",
        (Lang::En, "max_group_size") => "Others one resident may book for",
        (Lang::Ja, "dose2_reserve_percent") => "各枠のうち2回目接種用に確保する割合 (%)",
        (Lang::En, "dose2_reserve_percent") => "Share of every slot held for second doses (%)",
        (Lang::Ja, "dose2_reserve_until") => "2回目用の確保を解除する日 (この日の0時に解除)",
        (Lang::En, "dose2_reserve_until") => "Release the held seats on (at 00:00 of this day)",
        _ => "",
    }
}

#[derive(Deserialize, Default)]
pub struct RulesForm {
    few_left_percent: String,
    few_left_seats: String,
    #[serde(default)]
    allow_mixing: Option<String>,
    #[serde(default)]
    book_dose2_with_dose1: Option<String>,
    max_group_size: String,
    dose2_reserve_percent: String,
    #[serde(default)]
    dose2_reserve_until: String,
}

impl RulesForm {
    fn from_settings(s: &BookingSettings, t: &Tenant) -> Self {
        Self {
            few_left_percent: s.few_left_percent.to_string(),
            few_left_seats: s.few_left_seats.to_string(),
            allow_mixing: s.allow_mixing.then(|| "on".into()),
            book_dose2_with_dose1: s.book_dose2_with_dose1.then(|| "on".into()),
            max_group_size: s.max_group_size.to_string(),
            dose2_reserve_percent: s.dose2_reserve_percent.to_string(),
            dose2_reserve_until: s
                .dose2_reserve_until
                .map(|u| u.with_timezone(&t.time_zone.0).date_naive().to_string())
                .unwrap_or_default(),
        }
    }

    fn parse(&self, t: &Tenant, lang: Lang) -> Result<BookingSettings, String> {
        let int = |field: &'static str, raw: &str| {
            raw.trim().parse::<i32>().map_err(|_| match lang {
                Lang::Ja => format!("{}: 数字で入力してください", label(lang, field)),
                Lang::En => format!("{}: enter a whole number", label(lang, field)),
            })
        };
        let until = match self.dose2_reserve_until.trim() {
            "" => None,
            raw => {
                let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| match lang {
                    Lang::Ja => format!(
                        "{}: 日付を YYYY-MM-DD で入力してください",
                        label(lang, "dose2_reserve_until")
                    ),
                    Lang::En => format!(
                        "{}: enter a date as YYYY-MM-DD",
                        label(lang, "dose2_reserve_until")
                    ),
                })?;
                t.time_zone
                    .0
                    .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
                    .earliest()
                    .map(|d| d.with_timezone(&chrono::Utc))
            }
        };
        Ok(BookingSettings {
            few_left_percent: int("few_left_percent", &self.few_left_percent)?,
            few_left_seats: int("few_left_seats", &self.few_left_seats)?,
            allow_mixing: self.allow_mixing.is_some(),
            book_dose2_with_dose1: self.book_dose2_with_dose1.is_some(),
            max_group_size: int("max_group_size", &self.max_group_size)?,
            dose2_reserve_percent: int("dose2_reserve_percent", &self.dose2_reserve_percent)?,
            dose2_reserve_until: until,
        })
    }
}

fn body(
    staff: &Staff,
    t: &Tenant,
    f: &RulesForm,
    can_write: bool,
    message: Option<&str>,
) -> Markup {
    let lang = staff.lang;
    let number = |name: &'static str, value: &str| {
        html! {
            label { (label(lang, name)) br;
                input type="number" name=(name) value=(value) required inputmode="numeric" disabled[!can_write]; }
        }
    };
    let check = |name: &'static str, on: bool| {
        html! {
            label { input type="checkbox" name=(name) checked[on] disabled[!can_write]; " " (label(lang, name)) }
        }
    };
    html! {
        h1 { (title(lang)) }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        form method="post" action={"/admin/t/" (t.slug) "/booking-rules"} id="booking-rules" {
            (csrf_field(staff))
            (number("few_left_percent", &f.few_left_percent))
            (number("few_left_seats", &f.few_left_seats))
            (check("allow_mixing", f.allow_mixing.is_some()))
            (check("book_dose2_with_dose1", f.book_dose2_with_dose1.is_some()))
            (number("max_group_size", &f.max_group_size))
            fieldset {
                legend { @match lang { Lang::Ja => "2回目接種用の確保枠", Lang::En => "Seats held for second doses" } }
                p { @match lang {
                    Lang::Ja => "確保中は、1回目・追加接種の予約は各枠の確保分を除いた席まで。2回目の予約はすべての空き席を使えます。",
                    Lang::En => "While the hold is on, first doses and boosters may fill each slot only up to the seats not held; second doses may use every free seat.",
                } }
                (number("dose2_reserve_percent", &f.dose2_reserve_percent))
                label { (label(lang, "dose2_reserve_until")) br;
                    input type="date" name="dose2_reserve_until" value=(f.dose2_reserve_until) disabled[!can_write]; }
            }
            @if can_write {
                button type="submit" { @match lang { Lang::Ja => "保存", Lang::En => "Save" } }
            }
        }
    }
}

pub async fn rules_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Venues, Act::Read).await?;
    let current = booking::city_settings(&mut scope).await?;
    scope.commit().await?;
    let can_write = state
        .authz
        .check(&staff.actor, t.id, Object::Venues, Act::Write)
        .await
        .unwrap_or(false);
    let form = RulesForm::from_settings(&current, &t);
    Ok(render(
        &staff,
        &t,
        title(staff.lang),
        body(&staff, &t, &form, can_write, None),
    ))
}

pub async fn save_rules(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(f): Form<RulesForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Venues, Act::Write).await?;
    let refused = match f.parse(&t, lang) {
        Err(m) => Some(m),
        Ok(new) => match booking::save_settings(&mut scope, &new).await {
            Ok(()) => None,
            Err(SettingsError::Invalid { field, reason }) => {
                Some(format!("{}: {reason}", label(lang, field)))
            }
            Err(SettingsError::Database(e)) => return Err(e.into()),
        },
    };
    match refused {
        None => {
            scope.commit().await?;
            Ok(Redirect::to(&format!("/admin/t/{}/booking-rules", t.slug)).into_response())
        }
        Some(m) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(
                &staff,
                &t,
                title(lang),
                body(&staff, &t, &f, true, Some(&m)),
            ),
        )
            .into_response()),
    }
}
