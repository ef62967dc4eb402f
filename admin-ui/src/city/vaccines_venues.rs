//! Setting a city up: vaccines, venues (`/admin/t/{slug}/vaccines`, `/venues`) and one venue's
//! capacity schedules and slots (`/admin/t/{slug}/venues/{venue}`).

use axum::{
    Form,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use chrono::{NaiveDate, NaiveTime, Utc};
use maud::{Markup, html};
use platform::city::setup::{self, NewSchedule, NewVaccine, NewVenue, SetupError};
use platform::staff::authz::{Act, Object, Scope};
use serde::Deserialize;
use tenants::Tenant;
use uuid::Uuid;

use crate::i18n::{K, Lang, field_label, venue_kind};
use crate::page::{PageError, Staff, csrf_field};
use crate::shell::{enter, render, unprocessable};
use crate::state::AdminState;

fn setup_message(e: SetupError, lang: Lang) -> Result<String, PageError> {
    match e {
        SetupError::Invalid { field, reason } => {
            Ok(format!("{}: {reason}", field_label(lang, field)))
        }
        SetupError::Conflict(m) => Ok(m),
        SetupError::NotFound => Err(PageError::not_found(lang)),
        SetupError::Database(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
pub struct VaccineForm {
    name: String,
    maker: String,
    doses: String,
    min_interval_days: String,
    booster_interval_months: String,
    days_until_effective: String,
    validity_days: String,
}

async fn vaccines_body(
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    f: &VaccineForm,
    message: Option<&str>,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let list = setup::list_vaccines(scope).await?;
    let field = |label: K, name: &'static str, value: &str| {
        html! {
            label { (lang.t(label)) br; input name=(name) value=(value) required inputmode=(if name == "name" || name == "maker" { "text" } else { "numeric" }); }
        }
    };
    Ok(html! {
        table {
            tr { th { (lang.t(K::Name)) } th { (lang.t(K::Maker)) } th { (lang.t(K::Doses)) } th { (lang.t(K::MinIntervalDays)) } th { (lang.t(K::BoosterIntervalMonths)) } th { (lang.t(K::DaysUntilEffective)) } th { (lang.t(K::ValidityDays)) } }
            @for v in &list {
                tr { td { (v.name) } td { (v.maker) } td { (v.doses) } td { (v.min_interval_days) } td { (v.booster_interval_months) } td { (v.days_until_effective) } td { (v.validity_days) } }
            }
        }
        h2 { (lang.t(K::Create)) }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        form method="post" action={"/admin/t/" (t.slug) "/vaccines"} id="vaccine" {
            (csrf_field(staff))
            (field(K::Name, "name", &f.name)) (field(K::Maker, "maker", &f.maker)) (field(K::Doses, "doses", &f.doses))
            (field(K::MinIntervalDays, "min_interval_days", &f.min_interval_days)) (field(K::BoosterIntervalMonths, "booster_interval_months", &f.booster_interval_months))
            (field(K::DaysUntilEffective, "days_until_effective", &f.days_until_effective)) (field(K::ValidityDays, "validity_days", &f.validity_days))
            button type="submit" { (lang.t(K::Create)) }
        }
    })
}

pub async fn vaccines(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Vaccines, Act::Read).await?;
    let body = vaccines_body(&staff, &t, &mut scope, &VaccineForm::default(), None).await?;
    Ok(render(&staff, &t, staff.lang.t(K::Vaccines), body))
}

fn int(field: K, raw: &str, lang: Lang) -> Result<i32, String> {
    raw.trim().parse().map_err(|_| match lang {
        Lang::Ja => format!("{}: 数字で入力してください", lang.t(field)),
        Lang::En => format!("{}: enter a whole number", lang.t(field)),
    })
}

pub async fn create_vaccine(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(f): Form<VaccineForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Vaccines, Act::Write).await?;
    let parsed = (|| {
        Ok::<_, String>(NewVaccine {
            name: f.name.clone(),
            maker: f.maker.clone(),
            doses: int(K::Doses, &f.doses, lang)?,
            min_interval_days: int(K::MinIntervalDays, &f.min_interval_days, lang)?,
            booster_interval_months: int(
                K::BoosterIntervalMonths,
                &f.booster_interval_months,
                lang,
            )?,
            days_until_effective: int(K::DaysUntilEffective, &f.days_until_effective, lang)?,
            validity_days: int(K::ValidityDays, &f.validity_days, lang)?,
        })
    })();
    let result = match parsed {
        Ok(v) => match setup::create_vaccine(&mut scope, &v).await {
            Ok(_) => Ok(()),
            Err(e) => Err(setup_message(e, lang)?),
        },
        Err(m) => Err(m),
    };
    match result {
        Ok(()) => {
            scope.commit().await?;
            Ok(Redirect::to(&format!("/admin/t/{}/vaccines", t.slug)).into_response())
        }
        Err(m) => {
            // the failed statement aborted the transaction: read the list in a fresh scope
            drop(scope);
            let (_, mut scope) = enter(&state, &staff, &slug, Object::Vaccines, Act::Write).await?;
            let body = vaccines_body(&staff, &t, &mut scope, &f, Some(&m)).await?;
            Ok(unprocessable(&staff, &t, lang.t(K::Vaccines), body))
        }
    }
}

// ---- venues ------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct VenueForm {
    name: String,
    #[serde(default)]
    address: String,
    kind: String,
    vaccine_id: String,
    #[serde(default)]
    booking_opens_at: String,
    booking_deadline_hours: String,
    cancel_cutoff_days: String,
}

async fn venues_body(
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    f: &VenueForm,
    message: Option<&str>,
    can_write: bool,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let list = setup::list_venues(scope).await?;
    let vaccines = setup::list_vaccines(scope).await?;
    let deadline = if f.booking_deadline_hours.is_empty() {
        "24"
    } else {
        &f.booking_deadline_hours
    };
    let cutoff = if f.cancel_cutoff_days.is_empty() {
        "2"
    } else {
        &f.cancel_cutoff_days
    };
    Ok(html! {
        table {
            tr { th { (lang.t(K::Name)) } th { (lang.t(K::Kind)) } th { (lang.t(K::Vaccine)) } th { (lang.t(K::Address)) } }
            @for v in &list {
                tr {
                    td { a href={"/admin/t/" (t.slug) "/venues/" (v.id)} { (v.name) } }
                    td { (venue_kind(lang, &v.kind)) }
                    td { (vaccines.iter().find(|x| x.id == v.vaccine_id).map(|x| x.name.as_str()).unwrap_or("")) }
                    td { (v.address) }
                }
            }
        }
        @if can_write {
            h2 { (lang.t(K::Create)) }
            @if let Some(m) = message { p.error role="alert" { (m) } }
            form method="post" action={"/admin/t/" (t.slug) "/venues"} id="venue" {
                (csrf_field(staff))
                label { (lang.t(K::Name)) br; input name="name" value=(f.name) required; }
                label { (lang.t(K::Address)) br; input name="address" value=(f.address); }
                label { (lang.t(K::Kind)) br;
                    select name="kind" {
                        option value="mass" selected[f.kind != "hospital"] { (lang.t(K::Mass)) }
                        option value="hospital" selected[f.kind == "hospital"] { (lang.t(K::Hospital)) }
                    }
                }
                label { (lang.t(K::Vaccine)) br;
                    select name="vaccine_id" required {
                        @for v in &vaccines { option value=(v.id) selected[f.vaccine_id == v.id.to_string()] { (v.name) } }
                    }
                }
                label { (lang.t(K::BookingOpensAt)) br; input type="datetime-local" name="booking_opens_at" value=(f.booking_opens_at); }
                label { (lang.t(K::BookingDeadlineHours)) br; input name="booking_deadline_hours" value=(deadline) inputmode="numeric"; }
                label { (lang.t(K::CancelCutoffDays)) br; input name="cancel_cutoff_days" value=(cutoff) inputmode="numeric"; }
                button type="submit" { (lang.t(K::Create)) }
            }
        }
    })
}

pub async fn venues(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Venues, Act::Read).await?;
    let can_write = state
        .authz
        .check(&staff.actor, t.id, Object::Venues, Act::Write)
        .await
        .map_err(|d| PageError::denied(d, staff.lang))?;
    let body = venues_body(
        &staff,
        &t,
        &mut scope,
        &VenueForm::default(),
        None,
        can_write,
    )
    .await?;
    Ok(render(&staff, &t, staff.lang.t(K::Venues), body))
}

pub async fn create_venue(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(f): Form<VenueForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Venues, Act::Write).await?;
    let parsed = (|| {
        let booking_opens_at = if f.booking_opens_at.trim().is_empty() {
            None
        } else {
            let local =
                chrono::NaiveDateTime::parse_from_str(f.booking_opens_at.trim(), "%Y-%m-%dT%H:%M")
                    .map_err(|_| format!("{}: YYYY-MM-DDTHH:MM", lang.t(K::BookingOpensAt)))?;
            Some(
                local
                    .and_local_timezone(t.time_zone.0)
                    .earliest()
                    .ok_or_else(|| format!("{}: ?", lang.t(K::BookingOpensAt)))?
                    .with_timezone(&Utc),
            )
        };
        Ok::<_, String>(NewVenue {
            name: f.name.clone(),
            address: f.address.clone(),
            kind: f.kind.clone(),
            vaccine_id: Uuid::parse_str(&f.vaccine_id)
                .map_err(|_| format!("{}: ?", lang.t(K::Vaccine)))?,
            booking_opens_at,
            booking_deadline_hours: int(K::BookingDeadlineHours, &f.booking_deadline_hours, lang)?,
            cancel_cutoff_days: int(K::CancelCutoffDays, &f.cancel_cutoff_days, lang)?,
        })
    })();
    let result = match parsed {
        Ok(v) => match setup::create_venue(&mut scope, &v).await {
            Ok(id) => Ok(id),
            Err(e) => Err(setup_message(e, lang)?),
        },
        Err(m) => Err(m),
    };
    match result {
        Ok(id) => {
            scope.commit().await?;
            Ok(Redirect::to(&format!("/admin/t/{}/venues/{id}", t.slug)).into_response())
        }
        Err(m) => {
            drop(scope);
            let (_, mut scope) = enter(&state, &staff, &slug, Object::Venues, Act::Write).await?;
            let body = venues_body(&staff, &t, &mut scope, &f, Some(&m), true).await?;
            Ok(unprocessable(&staff, &t, lang.t(K::Venues), body))
        }
    }
}

// ---- one venue: schedules and slots ------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct ScheduleForm {
    wd1: Option<String>,
    wd2: Option<String>,
    wd3: Option<String>,
    wd4: Option<String>,
    wd5: Option<String>,
    wd6: Option<String>,
    wd7: Option<String>,
    start_time: String,
    end_time: String,
    slot_minutes: String,
    capacity: String,
    valid_from: String,
    valid_until: String,
    #[serde(default)]
    closed_dates: String,
}

impl ScheduleForm {
    fn weekdays(&self) -> Vec<i32> {
        [
            &self.wd1, &self.wd2, &self.wd3, &self.wd4, &self.wd5, &self.wd6, &self.wd7,
        ]
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_some())
        .map(|(i, _)| i as i32 + 1)
        .collect()
    }
}

const WEEKDAYS_JA: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
const WEEKDAYS_EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

async fn venue_body(
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    venue_id: Uuid,
    f: &ScheduleForm,
    notice: Option<Markup>,
    message: Option<&str>,
) -> Result<(String, Markup), PageError> {
    let lang = staff.lang;
    let v = setup::venue(scope, venue_id).await.map_err(|e| match e {
        SetupError::Database(e) => PageError::from(e),
        _ => PageError::not_found(lang),
    })?;
    let schedules = setup::list_schedules(scope, venue_id).await?;
    let slots = setup::list_slots(scope, venue_id, Utc::now(), 200).await?;
    let tz = t.time_zone.0;
    let names = if lang == Lang::Ja {
        WEEKDAYS_JA
    } else {
        WEEKDAYS_EN
    };
    let wd_checked = f.weekdays();
    let base = format!("/admin/t/{}/venues/{}", t.slug, v.id);
    let body = html! {
        p { (venue_kind(lang, &v.kind)) " · " (v.address) " · " (lang.t(K::BookingDeadlineHours)) ": " (v.booking_deadline_hours) " · " (lang.t(K::CancelCutoffDays)) ": " (v.cancel_cutoff_days) }
        @if let Some(n) = notice { (n) }
        h2 { (lang.t(K::Schedules)) }
        ul {
            @for s in &schedules {
                li {
                    @for d in &s.weekdays { (names.get((*d - 1) as usize).copied().unwrap_or("?")) }
                    " " (s.start_time.format("%H:%M")) "–" (s.end_time.format("%H:%M"))
                    " / " (s.slot_minutes) "min × " (s.capacity)
                    " / " (s.valid_from) " – " (s.valid_until)
                }
            }
        }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        form method="post" action={(base) "/schedules"} id="schedule" {
            (csrf_field(staff))
            fieldset {
                legend { (lang.t(K::Weekdays)) }
                @for (i, n) in names.iter().enumerate() {
                    label style="display:inline-block;margin-right:.8em" {
                        input type="checkbox" name={"wd" (i + 1)} value="1" checked[wd_checked.contains(&(i as i32 + 1))];
                        (n)
                    }
                }
            }
            label { (lang.t(K::StartTime)) br; input type="time" name="start_time" value=(f.start_time) required; }
            label { (lang.t(K::EndTime)) br; input type="time" name="end_time" value=(f.end_time) required; }
            label { (lang.t(K::SlotMinutes)) br; input name="slot_minutes" value=(f.slot_minutes) required inputmode="numeric"; }
            label { (lang.t(K::Capacity)) br; input name="capacity" value=(f.capacity) required inputmode="numeric"; }
            label { (lang.t(K::ValidFrom)) br; input type="date" name="valid_from" value=(f.valid_from) required; }
            label { (lang.t(K::ValidUntil)) br; input type="date" name="valid_until" value=(f.valid_until) required; }
            label { (lang.t(K::ClosedDates)) br; input name="closed_dates" value=(f.closed_dates); }
            button type="submit" { (lang.t(K::Create)) }
        }
        h2 { (lang.t(K::Slots)) " (" span #slot-count { (slots.len()) } ")" }
        table #slots {
            tr { th { (lang.t(K::When)) } th { (lang.t(K::Booked)) } th { (lang.t(K::Capacity)) } }
            @for s in &slots {
                tr {
                    td { (s.starts_at.with_timezone(&tz).format("%Y-%m-%d %H:%M")) "–" (s.ends_at.with_timezone(&tz).format("%H:%M")) }
                    td { (s.booked) }
                    td {
                        form method="post" action={(base) "/slots/" (s.id)} style="display:flex;gap:.3em" {
                            (csrf_field(staff))
                            input name="capacity" value=(s.capacity) size="4" inputmode="numeric" aria-label=(lang.t(K::Capacity));
                            button type="submit" { (lang.t(K::Save)) }
                        }
                    }
                }
            }
        }
    };
    Ok((v.name, body))
}

pub async fn venue(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue_id)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Venue(venue_id), Act::Read).await?;
    let (name, body) = venue_body(
        &staff,
        &t,
        &mut scope,
        venue_id,
        &ScheduleForm::default(),
        None,
        None,
    )
    .await?;
    Ok(render(&staff, &t, &name, body))
}

fn parse_schedule(f: &ScheduleForm, venue_id: Uuid, lang: Lang) -> Result<NewSchedule, String> {
    let time = |field: K, raw: &str| {
        NaiveTime::parse_from_str(raw.trim(), "%H:%M")
            .map_err(|_| format!("{}: HH:MM", lang.t(field)))
    };
    let date = |field: K, raw: &str| {
        NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
            .map_err(|_| format!("{}: YYYY-MM-DD", lang.t(field)))
    };
    Ok(NewSchedule {
        venue_id,
        weekdays: f.weekdays(),
        start_time: time(K::StartTime, &f.start_time)?,
        end_time: time(K::EndTime, &f.end_time)?,
        slot_minutes: int(K::SlotMinutes, &f.slot_minutes, lang)?,
        capacity: int(K::Capacity, &f.capacity, lang)?,
        valid_from: date(K::ValidFrom, &f.valid_from)?,
        valid_until: date(K::ValidUntil, &f.valid_until)?,
        closed_dates: f
            .closed_dates
            .split([',', ' ', '、'])
            .filter(|d| !d.trim().is_empty())
            .map(|d| date(K::ClosedDates, d))
            .collect::<Result<_, _>>()?,
    })
}

pub async fn create_schedule(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue_id)): Path<(String, Uuid)>,
    Form(f): Form<ScheduleForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Venue(venue_id), Act::Write).await?;
    let result = match parse_schedule(&f, venue_id, lang) {
        Ok(s) => match setup::create_schedule(&mut scope, &s).await {
            Ok((_, created)) => Ok(created),
            Err(e) => Err(setup_message(e, lang)?),
        },
        Err(m) => Err(m),
    };
    match result {
        Ok(created) => {
            let notice = html! { p.ok #notice { (created) " " (lang.t(K::SlotsCreated)) } };
            let (name, body) = venue_body(
                &staff,
                &t,
                &mut scope,
                venue_id,
                &ScheduleForm::default(),
                Some(notice),
                None,
            )
            .await?;
            scope.commit().await?;
            Ok(render(&staff, &t, &name, body))
        }
        Err(m) => {
            drop(scope);
            let (_, mut scope) =
                enter(&state, &staff, &slug, Object::Venue(venue_id), Act::Write).await?;
            let (name, body) =
                venue_body(&staff, &t, &mut scope, venue_id, &f, None, Some(&m)).await?;
            Ok(unprocessable(&staff, &t, &name, body))
        }
    }
}

#[derive(Deserialize)]
pub struct CapacityForm {
    capacity: String,
}

pub async fn set_capacity(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, venue_id, slot_id)): Path<(String, Uuid, Uuid)>,
    Form(f): Form<CapacityForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Venue(venue_id), Act::Write).await?;
    let result = match int(K::Capacity, &f.capacity, lang) {
        Ok(c) => match setup::set_slot_capacity(&mut scope, venue_id, slot_id, c).await {
            Ok(()) => Ok(()),
            Err(e) => Err(setup_message(e, lang)?),
        },
        Err(m) => Err(m),
    };
    match result {
        Ok(()) => {
            scope.commit().await?;
            Ok(Redirect::to(&format!("/admin/t/{}/venues/{venue_id}", t.slug)).into_response())
        }
        Err(m) => {
            drop(scope);
            let (_, mut scope) =
                enter(&state, &staff, &slug, Object::Venue(venue_id), Act::Read).await?;
            let (name, body) = venue_body(
                &staff,
                &t,
                &mut scope,
                venue_id,
                &ScheduleForm::default(),
                None,
                Some(&m),
            )
            .await?;
            Ok(unprocessable(&staff, &t, &name, body))
        }
    }
}
