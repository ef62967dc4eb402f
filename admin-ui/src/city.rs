//! A city's own pages at `/admin/t/{slug}/…`: staff and roles, vaccines, venues, schedules and
//! slots, resident import and lookup, the audit log. Each handler first asks the guard for a scope.

use axum::{
    Form,
    extract::{Multipart, Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use chrono::{NaiveDate, NaiveTime, Utc};
use maud::{Markup, html};
use platform::authz::{Act, Object, ROLES, Role, Scope};
use platform::identity;
use platform::import::{self, ImportError};
use platform::setup::{self, NewSchedule, NewVaccine, NewVenue, SetupError};
use platform::staff::{self, StaffError};
use serde::Deserialize;
use tenants::Tenant;
use uuid::Uuid;

use crate::i18n::{K, Lang, field_label, venue_kind};
use crate::page::{PageError, Staff, csrf_field};
use crate::routes::{Access as A, Route, get, post};
use crate::shell::{enter, render, unprocessable};
use crate::sms_budget;
use crate::state::AdminState;

pub fn routes() -> Vec<Route> {
    vec![
        get("/admin/t/{slug}", A::Member, home),
        get(
            "/admin/t/{slug}/staff",
            A::City(Object::Staff, Act::Read),
            staff_page,
        ),
        post(
            "/admin/t/{slug}/staff",
            A::City(Object::Staff, Act::Write),
            invite,
        ),
        post(
            "/admin/t/{slug}/staff/{account}/remove",
            A::City(Object::Staff, Act::Write),
            remove_staff,
        ),
        post(
            "/admin/t/{slug}/staff/{account}/reset",
            A::City(Object::Staff, Act::Write),
            reset_link,
        ),
        get(
            "/admin/t/{slug}/vaccines",
            A::City(Object::Vaccines, Act::Read),
            vaccines,
        ),
        post(
            "/admin/t/{slug}/vaccines",
            A::City(Object::Vaccines, Act::Write),
            create_vaccine,
        ),
        get(
            "/admin/t/{slug}/venues",
            A::City(Object::Venues, Act::Read),
            venues,
        ),
        post(
            "/admin/t/{slug}/venues",
            A::City(Object::Venues, Act::Write),
            create_venue,
        ),
        get("/admin/t/{slug}/venues/{venue}", A::Venue(Act::Read), venue),
        post(
            "/admin/t/{slug}/venues/{venue}/schedules",
            A::Venue(Act::Write),
            create_schedule,
        ),
        post(
            "/admin/t/{slug}/venues/{venue}/slots/{slot}",
            A::Venue(Act::Write),
            set_capacity,
        ),
        get(
            "/admin/t/{slug}/import",
            A::City(Object::Imports, Act::Write),
            import_page,
        ),
        post(
            "/admin/t/{slug}/import",
            A::City(Object::Imports, Act::Write),
            import_upload,
        ),
        get(
            "/admin/t/{slug}/residents",
            A::City(Object::Residents, Act::Read),
            residents,
        ),
        get(
            "/admin/t/{slug}/audit",
            A::City(Object::Audit, Act::Read),
            audit,
        ),
        get(
            "/admin/t/{slug}/statistics",
            A::City(Object::Statistics, Act::Read),
            statistics,
        ),
        get(
            "/admin/t/{slug}/statistics.xlsx",
            A::City(Object::Statistics, Act::Read),
            statistics_xlsx,
        ),
        get(
            "/admin/t/{slug}/api-keys",
            A::City(Object::ApiKeys, Act::Read),
            api_keys,
        ),
        post(
            "/admin/t/{slug}/api-keys",
            A::City(Object::ApiKeys, Act::Write),
            create_api_key,
        ),
        post(
            "/admin/t/{slug}/api-keys/{id}/revoke",
            A::City(Object::ApiKeys, Act::Write),
            revoke_api_key,
        ),
    ]
}

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

pub async fn home(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let tenant = tenants::find_by_slug(&state.pool, &slug)
        .await?
        .ok_or(PageError::not_found(lang))?;
    state
        .authz
        .admit(&staff.actor, tenant.id)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    let mut assigned = Vec::new();
    for id in state
        .authz
        .assigned_venues(&staff.actor.subject, tenant.id)
        .await
    {
        let (_, mut scope) = enter(&state, &staff, &slug, Object::Venue(id), Act::Read).await?;
        if let Ok(v) = setup::venue(&mut scope, id).await {
            assigned.push(v);
        }
    }
    let banner = sms_budget::budget_banner(&state, &staff, &tenant).await?;
    let body = html! {
        @if let Some(b) = banner { (b) }
        @if !assigned.is_empty() {
            h2 { (lang.t(K::Venues)) }
            ul { @for v in &assigned { li { a href={"/admin/t/" (slug) "/venues/" (v.id)} { (v.name) } } } }
        }
    };
    Ok(render(&staff, &tenant, lang.t(K::Dashboard), body))
}

// ---- staff -------------------------------------------------------------------------------------

async fn staff_body(
    state: &AdminState,
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    notice: Option<Markup>,
    message: Option<&str>,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let members = staff::members(scope, &state.authz, &state.pool)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "listing staff failed");
            PageError::bad_request("something went wrong on our side; please try again", lang)
        })?;
    let venues = setup::list_venues(scope).await?;
    Ok(html! {
        @if let Some(n) = notice { (n) }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        table {
            tr { th { (lang.t(K::Email)) } th { (lang.t(K::Role)) } th { (lang.t(K::Venues)) } th {} }
            @for m in &members {
                tr {
                    td { (m.email) }
                    td { (m.roles.join(", ")) }
                    td { @for v in &m.venues { (venues.iter().find(|x| x.id == *v).map(|x| x.name.as_str()).unwrap_or("?")) " " } }
                    td {
                        form method="post" action={"/admin/t/" (t.slug) "/staff/" (m.account_id) "/remove"} {
                            (csrf_field(staff)) button type="submit" { (lang.t(K::Remove)) }
                        }
                        @if m.active {
                            form method="post" action={"/admin/t/" (t.slug) "/staff/" (m.account_id) "/reset"} {
                                (csrf_field(staff)) button type="submit" { (lang.t(K::Forgot)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { (lang.t(K::Invite)) }
        form method="post" action={"/admin/t/" (t.slug) "/staff"} id="invite-staff" {
            (csrf_field(staff))
            label { (lang.t(K::Email)) br; input type="email" name="email" required; }
            label { (lang.t(K::Role)) br;
                select name="role" {
                    @for r in ROLES.iter().filter(|r| **r != Role::PlatformOperator) {
                        option value=(r.as_str()) { (r.as_str()) }
                    }
                }
            }
            label { (lang.t(K::Venue)) br;
                select name="venue" {
                    option value="" { "—" }
                    @for v in &venues { option value=(v.id) { (v.name) } }
                }
            }
            button type="submit" { (lang.t(K::Invite)) }
        }
    })
}

pub async fn staff_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Staff, Act::Read).await?;
    let body = staff_body(&state, &staff, &t, &mut scope, None, None).await?;
    Ok(render(&staff, &t, staff.lang.t(K::Staff), body))
}

#[derive(Deserialize)]
pub struct InviteStaffForm {
    email: String,
    role: String,
    #[serde(default)]
    venue: String,
}

pub async fn invite(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<InviteStaffForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Staff, Act::Write).await?;
    let role = Role::parse(&form.role).ok_or(PageError::bad_request("unknown role", lang))?;
    let venues: Vec<Uuid> = Uuid::parse_str(form.venue.trim())
        .ok()
        .into_iter()
        .collect();
    let result = staff::invite(
        &mut scope,
        &state.authz,
        &state.policy,
        &state.pool,
        &form.email,
        role,
        &venues,
    )
    .await;
    match result {
        Ok(invitation) => {
            let notice = match invitation {
                Some(inv) => {
                    let link = format!("{}/admin/invitation/{}", state.public_url, inv.token);
                    html! { p.ok { (lang.t(K::InvitationLink)) ": " (inv.email) } p { a #invitation-link href=(link) { (link) } } }
                }
                None => html! { p.ok { (lang.t(K::InvitedExisting)) } },
            };
            let body = staff_body(&state, &staff, &t, &mut scope, Some(notice), None).await?;
            scope.commit().await?;
            Ok(render(&staff, &t, lang.t(K::Staff), body))
        }
        Err(StaffError::Invalid(m))
        | Err(StaffError::Identity(identity::IdentityError::Invalid(m))) => {
            let body = staff_body(&state, &staff, &t, &mut scope, None, Some(&m)).await?;
            Ok(unprocessable(&staff, &t, lang.t(K::Staff), body))
        }
        Err(e) => {
            tracing::error!(error = %e, "invitation failed");
            Err(PageError::bad_request(
                "something went wrong on our side; please try again",
                lang,
            ))
        }
    }
}

pub async fn remove_staff(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, account)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Staff, Act::Write).await?;
    staff::remove(&mut scope, &state.authz, account)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "removing staff failed");
            PageError::bad_request(
                "something went wrong on our side; please try again",
                staff.lang,
            )
        })?;
    scope.commit().await?;
    Ok(Redirect::to(&format!("/admin/t/{}/staff", t.slug)).into_response())
}

/// A password reset link for a member, handed over by the admin like an invitation (there is no
/// e-mail channel yet, and a link shown to whoever asks would be a takeover).
pub async fn reset_link(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, account)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Staff, Act::Write).await?;
    let token = match staff::password_reset_link(
        &mut scope,
        &state.authz,
        &state.policy,
        &state.pool,
        account,
    )
    .await
    {
        Ok(token) => token,
        Err(StaffError::NotFound) => return Err(PageError::not_found(lang)),
        Err(StaffError::Invalid(m)) => {
            let body = staff_body(&state, &staff, &t, &mut scope, None, Some(&m)).await?;
            return Ok(unprocessable(&staff, &t, lang.t(K::Staff), body));
        }
        Err(e) => {
            tracing::error!(error = %e, "issuing a reset link failed");
            return Err(PageError::bad_request(
                "something went wrong on our side; please try again",
                lang,
            ));
        }
    };
    let link = format!("{}/admin/password-reset/{token}", state.public_url);
    let notice = html! { p.ok { (lang.t(K::Forgot)) } p { a #reset-link href=(link) { (link) } } };
    let body = staff_body(&state, &staff, &t, &mut scope, Some(notice), None).await?;
    scope.commit().await?;
    Ok(render(&staff, &t, lang.t(K::Staff), body))
}

// ---- vaccines ----------------------------------------------------------------------------------

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

// ---- residents ---------------------------------------------------------------------------------

fn import_form(staff: &Staff, t: &Tenant) -> Markup {
    let lang = staff.lang;
    html! {
        p { "ticket_no, birth_date, kana_name, sex, phone, email, postal_code, preferred_language" }
        form method="post" action={"/admin/t/" (t.slug) "/import"} enctype="multipart/form-data" id="import" {
            (csrf_field(staff))
            label { (lang.t(K::File)) br; input type="file" name="file" accept=".csv,text/csv" required; }
            label { input type="checkbox" name="import_valid_rows" value="1"; " " (lang.t(K::ImportValidRows)) }
            button type="submit" { (lang.t(K::DoImport)) }
        }
    }
}

pub async fn import_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (t, scope) = enter(&state, &staff, &slug, Object::Imports, Act::Write).await?;
    drop(scope);
    Ok(render(
        &staff,
        &t,
        staff.lang.t(K::Import),
        import_form(&staff, &t),
    ))
}

pub async fn import_upload(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    mut multipart: Multipart,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (mut bytes, mut filename, mut valid_only) = (Vec::new(), String::new(), false);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| PageError::bad_request(e.to_string(), lang))?
    {
        match field.name() {
            Some("import_valid_rows") => valid_only = true,
            Some("file") => {
                filename = field.file_name().unwrap_or("upload.csv").to_owned();
                bytes = field
                    .bytes()
                    .await
                    .map_err(|e| PageError::bad_request(e.to_string(), lang))?
                    .to_vec();
            }
            _ => {}
        }
    }
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Imports, Act::Write).await?;
    let parsed = match import::parse(&bytes) {
        Ok(p) => p,
        Err(e) => {
            let body = html! { p.error role="alert" { (e.to_string()) } (import_form(&staff, &t)) };
            return Ok(unprocessable(&staff, &t, lang.t(K::Import), body));
        }
    };
    match import::import(&mut scope, &parsed, valid_only, &filename, |_, _| {}).await {
        Ok(outcome) => {
            scope.commit().await?;
            let body = html! {
                p.ok #import-result {
                    (lang.t(K::Imported)) ": " (outcome.inserted) " new, " (outcome.updated) " updated, "
                    (outcome.unchanged) " unchanged, " (outcome.skipped_invalid) " skipped"
                }
                @if !parsed.errors.is_empty() { (error_table(lang, &parsed.errors)) }
                (import_form(&staff, &t))
            };
            Ok(render(&staff, &t, lang.t(K::Import), body))
        }
        Err(ImportError::InvalidRows(errors)) => {
            let body = html! {
                p.error role="alert" #import-result { (lang.t(K::NothingImported)) " (" (errors.len()) ")" }
                (error_table(lang, &errors))
                (import_form(&staff, &t))
            };
            Ok(unprocessable(&staff, &t, lang.t(K::Import), body))
        }
        Err(ImportError::Database(e)) => Err(e.into()),
        Err(e) => Err(PageError::bad_request(e.to_string(), lang)),
    }
}

fn error_table(lang: Lang, errors: &[import::RowError]) -> Markup {
    html! {
        table #import-errors {
            tr { th { (lang.t(K::Line)) } th { (lang.t(K::Column)) } th { (lang.t(K::Reason)) } }
            @for e in errors { tr { td { (e.line) } td { (e.column) } td { (e.reason) } } }
        }
    }
}

#[derive(Deserialize)]
pub struct LookupQuery {
    #[serde(default)]
    ticket: String,
}

pub async fn residents(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Query(q): Query<LookupQuery>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Residents, Act::Read).await?;
    let found = if q.ticket.trim().is_empty() {
        None
    } else {
        Some(setup::resident_by_ticket(&mut scope, &q.ticket).await?)
    };
    scope.commit().await?;
    let body = html! {
        form method="get" action={"/admin/t/" (t.slug) "/residents"} {
            label { (lang.t(K::TicketNo)) br; input name="ticket" value=(q.ticket) inputmode="numeric"; }
            button type="submit" { (lang.t(K::Search)) }
        }
        @match found {
            Some(Some(r)) => {
                dl #resident {
                    dt { (lang.t(K::TicketNo)) } dd { (r.ticket_no) }
                    dt { "カナ氏名 / name" } dd { (r.kana_name) }
                    dt { "生年月日 / birth date" } dd { (r.birth_date) }
                    dt { "性別 / sex" } dd { (r.sex) }
                    dt { "電話 / phone" } dd { (r.phone.unwrap_or_default()) }
                    dt { (lang.t(K::Email)) } dd { (r.email.unwrap_or_default()) }
                    dt { "〒" } dd { (r.postal_code.unwrap_or_default()) }
                }
            }
            Some(None) => p { (lang.t(K::NoResident)) },
            None => {}
        }
    };
    Ok(render(&staff, &t, lang.t(K::Lookup), body))
}

pub async fn audit(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Audit, Act::Read).await?;
    let entries = platform::audit::recent(&mut scope, 500).await?;
    let tz = t.time_zone.0;
    let body = html! {
        table #audit {
            tr { th { (lang.t(K::When)) } th { (lang.t(K::Who)) } th { (lang.t(K::What)) } th { (lang.t(K::Object)) } th { (lang.t(K::From)) } }
            @for e in &entries {
                tr {
                    td { (e.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S")) }
                    td { (e.actor) } td { (e.action) } td { (e.object) } td { (e.ip.clone().unwrap_or_default()) }
                }
            }
        }
    };
    Ok(render(&staff, &t, lang.t(K::Audit), body))
}

// ---- Statistics ----------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct StatsParams {
    period: Option<String>,
    measure: Option<String>,
}

/// Cross tab of live bookings (docs/statistics.md): one table per period kind, doses side by side.
pub async fn statistics(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Query(q): Query<StatsParams>,
) -> Result<Response, PageError> {
    use platform::stats::{self, Measure, Period};
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Statistics, Act::Read).await?;
    let period = match q.period.as_deref() {
        Some("day") => Period::Day,
        Some("month") => Period::Month,
        _ => Period::Week,
    };
    let measure = match q.measure.as_deref() {
        Some("doses") => Measure::DosesGiven,
        _ => Measure::Bookings,
    };
    let rows = stats::pivot(&stats::crosstab_for(&mut scope, period, measure).await?);
    let title = staff.lang.t(K::Statistics);
    let measure_label = |m: Measure| match (m, staff.lang) {
        (Measure::Bookings, Lang::Ja) => "予約数（接種予定日別）",
        (Measure::Bookings, Lang::En) => "Bookings (by appointment date)",
        (Measure::DosesGiven, Lang::Ja) => "接種実績（接種日別）",
        (Measure::DosesGiven, Lang::En) => "Doses given (by date given)",
    };
    let body = html! {
        p #measures {
            @for m in Measure::ALL {
                @if m == measure { strong { (measure_label(m)) } " " }
                @else { a href={"/admin/t/" (t.slug) "/statistics?period=" (period.as_str()) "&measure=" (m.as_str())} { (measure_label(m)) } " " }
            }
        }
        p {
            @for p in Period::ALL {
                a href={"/admin/t/" (t.slug) "/statistics?period=" (p.as_str()) "&measure=" (measure.as_str())} { (p.sheet_name()) } " "
            }
            a href={"/admin/t/" (t.slug) "/statistics.xlsx"} { "Excel" }
        }
        table #statistics {
            @for c in stats::sheet_columns() { th { (c.title) } }
            @for r in &rows {
                tr {
                    td { (r.period_start) } td { (r.venue) } td { (r.age_band) } td { (r.sex) }
                    td { (r.doses[0]) } td { (r.doses[1]) } td { (r.doses[2]) } td { (r.total) }
                }
            }
        }
    };
    Ok(render(&staff, &t, title, body))
}

/// The statistics workbook (日別, 週別, 月別, 接種日別, 接種週別, 接種月別).
pub async fn statistics_xlsx(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (_t, mut scope) = enter(&state, &staff, &slug, Object::Statistics, Act::Read).await?;
    let bytes = platform::stats::workbook(&mut scope)
        .await
        .map_err(|e| PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
            lang: staff.lang,
        })?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"statistics.xlsx\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

// ---- API keys ----------------------------------------------------------------------------------

async fn api_keys_body(
    staff: &Staff,
    t: &Tenant,
    scope: &mut Scope,
    notice: Option<Markup>,
    message: Option<&str>,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let keys = platform::api_keys::list(scope).await?;
    Ok(html! {
        @if let Some(n) = notice { (n) }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        table #api-keys {
            tr { th { (lang.t(K::Name)) } th { "scopes" } th { (lang.t(K::Who)) } th { "last used" } th {} }
            @for k in &keys {
                tr {
                    td { (k.name) } td { (k.scopes.join(", ")) } td { (k.created_by) }
                    td { (k.last_used_at.map(|d| d.to_rfc3339()).unwrap_or_default()) }
                    td {
                        @if let Some(r) = k.revoked_at { "revoked " (r.to_rfc3339()) } @else {
                            form method="post" action={"/admin/t/" (t.slug) "/api-keys/" (k.id) "/revoke"} {
                                (csrf_field(staff)) button type="submit" { (lang.t(K::Remove)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { (lang.t(K::Create)) }
        form method="post" action={"/admin/t/" (t.slug) "/api-keys"} id="api-key" {
            (csrf_field(staff))
            label { (lang.t(K::Name)) br; input name="name" required; }
            @for (scope_name, _) in platform::api_keys::SCOPES {
                label { input type="checkbox" name={"scope_" (scope_name)} value="1"; " " (scope_name) }
            }
            button type="submit" { (lang.t(K::Create)) }
        }
    })
}

pub async fn api_keys(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::ApiKeys, Act::Read).await?;
    let body = api_keys_body(&staff, &t, &mut scope, None, None).await?;
    Ok(render(&staff, &t, staff.lang.t(K::ApiKeys), body))
}

pub async fn create_api_key(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::ApiKeys, Act::Write).await?;
    let scopes: Vec<String> = platform::api_keys::SCOPES
        .iter()
        .filter(|(n, _)| form.contains_key(&format!("scope_{n}")))
        .map(|(n, _)| (*n).to_owned())
        .collect();
    let name = form.get("name").cloned().unwrap_or_default();
    match platform::api_keys::create(&mut scope, &state.authz, &name, &scopes).await {
        Ok((_, key)) => {
            let notice = html! {
                p.ok { "The key is shown only now; store it safely. / このキーは今だけ表示されます。" }
                p { code #new-api-key { (key) } }
            };
            let body = api_keys_body(&staff, &t, &mut scope, Some(notice), None).await?;
            scope.commit().await?;
            Ok(render(&staff, &t, lang.t(K::ApiKeys), body))
        }
        Err(platform::api_keys::ApiKeyError::Invalid(m)) => {
            let body = api_keys_body(&staff, &t, &mut scope, None, Some(&m)).await?;
            Ok(unprocessable(&staff, &t, lang.t(K::ApiKeys), body))
        }
        Err(e) => {
            tracing::error!(error = %e, "creating an API key failed");
            Err(PageError::bad_request(
                "something went wrong on our side; please try again",
                lang,
            ))
        }
    }
}

pub async fn revoke_api_key(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<Response, PageError> {
    let (t, mut scope) = enter(&state, &staff, &slug, Object::ApiKeys, Act::Write).await?;
    match platform::api_keys::revoke(&mut scope, &state.authz, id).await {
        Ok(()) => {
            scope.commit().await?;
            Ok(Redirect::to(&format!("/admin/t/{}/api-keys", t.slug)).into_response())
        }
        Err(platform::api_keys::ApiKeyError::NotFound) => Err(PageError::not_found(staff.lang)),
        Err(e) => {
            tracing::error!(error = %e, "revoking an API key failed");
            Err(PageError::bad_request(
                "something went wrong on our side; please try again",
                staff.lang,
            ))
        }
    }
}
