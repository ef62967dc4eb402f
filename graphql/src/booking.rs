//! The resident API: public availability per tenant, the login-code flow returning a resident
//! token, and book / change / cancel / my bookings for the holder of that token. Thin: parse, call
//! the resident desk (`platform::residents::desk`, where tenant status, the session check, the
//! booking path, the questionnaire and cache invalidation live), shape. Messages follow the
//! request's Accept-Language.
//!
//! The token goes in `Authorization: Bearer <token>`; it names its tenant, so the booking calls
//! need no tenant argument. A token for another tenant's data simply finds nothing.

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use platform::ResidentDesk;
use platform::booking::availability::Mark;
use platform::booking::{self, Dose};
use platform::i18n::Lang;
use platform::residents::desk::{self, Bearer, DeskError, Entered, Resident, Visit};
use uuid::Uuid;

use crate::ApiError;

/// Per-request data put in by the HTTP handler.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    /// The resident token from `Authorization: Bearer …`, if any.
    pub bearer: Option<String>,
    pub lang: Lang,
    pub client_ip: String,
}

fn info<'a>(ctx: &'a Context<'_>) -> &'a RequestInfo {
    static NONE: std::sync::OnceLock<RequestInfo> = std::sync::OnceLock::new();
    ctx.data_opt::<RequestInfo>()
        .unwrap_or_else(|| NONE.get_or_init(RequestInfo::default))
}

/// The desk's refusal as GraphQL says it ([`ApiError::desk`]).
fn desk_error(e: DeskError, lang: Lang) -> async_graphql::Error {
    ApiError::desk(e, lang).into()
}

/// The desk and the request's language.
fn desk<'a>(ctx: &'a Context<'_>) -> Result<(&'a ResidentDesk, Lang)> {
    Ok((ctx.data::<ResidentDesk>()?, info(ctx).lang))
}

async fn visit(ctx: &Context<'_>, slug: &str) -> Result<Visit> {
    let (d, lang) = desk(ctx)?;
    d.visit(slug).await.map_err(|e| desk_error(e, lang))
}

fn token<'a>(ctx: &'a Context<'_>) -> Result<&'a str> {
    info(ctx)
        .bearer
        .as_deref()
        .ok_or_else(|| desk_error(DeskError::SignedOut, info(ctx).lang))
}

async fn bearer(ctx: &Context<'_>) -> Result<Bearer> {
    let (d, lang) = desk(ctx)?;
    d.bearer(token(ctx)?).await.map_err(|e| desk_error(e, lang))
}

/// The resident behind the bearer token, or an error a client can branch on.
async fn resident(ctx: &Context<'_>) -> Result<Resident> {
    let (d, lang) = desk(ctx)?;
    let b = bearer(ctx).await?;
    d.resident_of(&b).await.map_err(|e| desk_error(e, lang))
}

/// ○ free, △ few left, × full or past the booking deadline.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AvailabilityMark {
    Free,
    FewLeft,
    Full,
}

impl From<Mark> for AvailabilityMark {
    fn from(m: Mark) -> Self {
        match m {
            Mark::Free => Self::Free,
            Mark::FewLeft => Self::FewLeft,
            Mark::Full => Self::Full,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Dose")]
pub enum DoseValue {
    First,
    Second,
    Booster,
}

impl From<DoseValue> for Dose {
    fn from(d: DoseValue) -> Self {
        match d {
            DoseValue::First => Dose::First,
            DoseValue::Second => Dose::Second,
            DoseValue::Booster => Dose::Booster,
        }
    }
}

impl From<Dose> for DoseValue {
    fn from(d: Dose) -> Self {
        match d {
            Dose::First => DoseValue::First,
            Dose::Second => DoseValue::Second,
            Dose::Booster => DoseValue::Booster,
        }
    }
}

/// A vaccination venue.
#[derive(SimpleObject)]
#[graphql(name = "PublicVenue")]
pub struct VenueView {
    id: Uuid,
    name: String,
    address: String,
    /// The venue's vaccine fixes the product booked there.
    vaccine_name: String,
}

/// One bookable time slot and how full it is.
#[derive(SimpleObject)]
#[graphql(name = "AvailableSlot")]
pub struct SlotView {
    id: Uuid,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    capacity: i32,
    /// Seats free for dose 1 and boosters (the mark is about these).
    free: i32,
    /// Seats free for a second dose: also the seats the city holds for dose 2.
    free_for_second_dose: i32,
    mark: AvailabilityMark,
    /// The mark as a symbol (○ △ ×) followed by its meaning in the request's language.
    mark_text: String,
}

/// A booking.
#[derive(SimpleObject)]
#[graphql(name = "Booking")]
pub struct BookingView {
    id: Uuid,
    slot_id: Uuid,
    venue_id: Uuid,
    venue_name: String,
    vaccine_name: String,
    dose: DoseValue,
    /// booked or cancelled
    status: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    /// Bookings made in one step (a group, or dose 1 with dose 2) share this id.
    group_id: Uuid,
    /// Changes and cancellations are accepted until this moment.
    change_until: DateTime<Utc>,
}

impl From<booking::Booking> for BookingView {
    fn from(b: booking::Booking) -> Self {
        Self {
            id: b.id,
            slot_id: b.slot_id,
            venue_id: b.venue_id,
            venue_name: b.venue_name,
            vaccine_name: b.vaccine_name,
            dose: b.dose.into(),
            status: b.status,
            starts_at: b.starts_at,
            ends_at: b.ends_at,
            group_id: b.group_id,
            change_until: b.change_until,
        }
    }
}

/// Where the login code went.
#[derive(SimpleObject)]
pub struct LoginCodeSent {
    /// e.g. 090****5678
    masked_phone: String,
}

/// A resident session for API clients: send it as `Authorization: Bearer <token>`.
#[derive(SimpleObject)]
pub struct ResidentToken {
    token: String,
}

/// Another person in a group booking, identified like at login.
#[derive(InputObject)]
pub struct CompanionInput {
    ticket_no: String,
    birth_date: NaiveDate,
}

/// The resident's own pre-vaccination questionnaire (optional), read by the venue's doctor and
/// nurses. Saved together with the booking or not at all.
#[derive(InputObject, Default)]
pub struct QuestionnaireInput {
    /// Illnesses under treatment / underlying conditions (at most 1000 characters).
    #[graphql(default)]
    conditions: String,
    /// Allergies to medicines, food, … (at most 1000 characters).
    #[graphql(default)]
    allergies: String,
    /// Has had a severe allergic reaction (anaphylaxis) before.
    #[graphql(default)]
    anaphylaxis: bool,
}

#[derive(InputObject)]
pub struct BookInput {
    slot_id: Uuid,
    dose: DoseValue,
    /// Up to the city's group size; everyone gets a seat in the same slot, or nobody does.
    #[graphql(default)]
    companions: Vec<CompanionInput>,
    /// Book dose 2 in this slot in the same step (cities that allow it); both or neither.
    second_dose_slot_id: Option<Uuid>,
    /// A group may be split over this slot and the one right before or after it (same venue, same
    /// day) when this slot has too few seats for everyone; still all seats or none.
    #[graphql(default)]
    allow_adjacent_slots: bool,
    /// The resident's health questionnaire: if it cannot be saved, nothing is booked.
    questionnaire: Option<QuestionnaireInput>,
    /// Any unique string (8–200 characters) per intended booking; a retry with the same key
    /// returns the first result and books nothing new.
    idempotency_key: String,
}

impl From<BookInput> for desk::BookOrder {
    fn from(i: BookInput) -> Self {
        let q = i.questionnaire.unwrap_or_default();
        Self {
            slot: i.slot_id,
            dose: i.dose.into(),
            companions: i
                .companions
                .into_iter()
                .map(|c| desk::Companion {
                    ticket_no: c.ticket_no,
                    birth_date: Some(c.birth_date),
                })
                .collect(),
            second_dose_slot: i.second_dose_slot_id,
            allow_adjacent_slots: i.allow_adjacent_slots,
            questionnaire: platform::intake::Answers {
                conditions: q.conditions,
                allergies: q.allergies,
                anaphylaxis: q.anaphylaxis,
            },
            idempotency_key: i.idempotency_key,
        }
    }
}

/// Days of availability answered when `days` is not given (the demo's three weeks fit).
pub const AVAILABILITY_DAYS: i32 = 31;
/// Most days of availability one field answers.
pub const MAX_AVAILABILITY_DAYS: i32 = 62;

/// Complexity of `availability`: its fields once per started week of the window (a day: once).
fn availability_cost(child: usize, one_day: bool, days: Option<i32>) -> usize {
    let weeks = if one_day {
        1
    } else {
        let d = days
            .unwrap_or(AVAILABILITY_DAYS)
            .clamp(1, MAX_AVAILABILITY_DAYS);
        d.unsigned_abs().div_ceil(7) as usize
    };
    1 + child.max(1) * weeks
}

#[derive(Default)]
pub struct BookingQuery;

#[Object]
impl BookingQuery {
    /// The venues of a municipality. Public.
    async fn venues(&self, ctx: &Context<'_>, tenant: String) -> Result<Vec<VenueView>> {
        let v = visit(ctx, &tenant).await?;
        let (d, lang) = desk(ctx)?;
        let list = d.venues(&v).await.map_err(|e| desk_error(e, lang))?;
        Ok(list
            .into_iter()
            .map(|v| VenueView {
                id: v.id,
                name: v.name,
                address: v.address,
                vaccine_name: v.vaccine_name,
            })
            .collect())
    }

    /// A venue's upcoming slots with availability marks, a window of days at a time (in the city's
    /// time zone): `days` days (1–62, default 31) from `from` (default today), or the one day
    /// `date`. Public; served from memory for up to a second. Each started week of the window
    /// counts its fields once more in the query's complexity.
    #[graphql(complexity = "availability_cost(child_complexity, date.is_some(), days)")]
    async fn availability(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        venue_id: Uuid,
        date: Option<NaiveDate>,
        from: Option<NaiveDate>,
        days: Option<i32>,
    ) -> Result<Vec<SlotView>> {
        let window = days.unwrap_or(AVAILABILITY_DAYS);
        if !(1..=MAX_AVAILABILITY_DAYS).contains(&window) {
            return Err(ApiError::Validation(format!(
                "days must be between 1 and {MAX_AVAILABILITY_DAYS}"
            ))
            .into());
        }
        if date.is_some() && (from.is_some() || days.is_some()) {
            return Err(
                ApiError::Validation("give either date or from/days, not both".into()).into(),
            );
        }
        let v = visit(ctx, &tenant).await?;
        let (d, lang) = desk(ctx)?;
        let slots = d
            .venue_slots(&v, venue_id)
            .await
            .map_err(|e| desk_error(e, lang))?;
        let t = v.tenant();
        if let Some(deps) = ctx.data_opt::<std::sync::Arc<crate::web::AvailabilityDeps>>() {
            deps.record(t.id, venue_id, slots.clone());
        }
        let tz = t.time_zone.0;
        let (first, last) = match date {
            Some(d) => (d, d),
            None => {
                let first = from.unwrap_or_else(|| Utc::now().with_timezone(&tz).date_naive());
                let last = first
                    .checked_add_days(chrono::Days::new(u64::from(window.unsigned_abs() - 1)))
                    .unwrap_or(NaiveDate::MAX);
                (first, last)
            }
        };
        Ok(slots
            .iter()
            .filter(|sl| {
                let day = sl.starts_at.with_timezone(&tz).date_naive();
                first <= day && day <= last
            })
            .map(|sl| SlotView {
                id: sl.slot_id,
                starts_at: sl.starts_at,
                ends_at: sl.ends_at,
                capacity: sl.capacity,
                free: sl.free,
                free_for_second_dose: sl.free_dose2,
                mark: sl.mark.into(),
                mark_text: format!("{} {}", sl.mark.symbol(), sl.mark.text(lang)),
            })
            .collect())
    }

    /// The bookings of the resident holding the token (their own and those they made for others).
    async fn my_bookings(&self, ctx: &Context<'_>) -> Result<Vec<BookingView>> {
        let r = resident(ctx).await?;
        let (d, lang) = desk(ctx)?;
        let list = d.my_bookings(&r).await.map_err(|e| desk_error(e, lang))?;
        Ok(list.into_iter().map(BookingView::from).collect())
    }
}

#[derive(Default)]
pub struct BookingMutation;

#[Object]
impl BookingMutation {
    /// Step 1 of logging in: ticket number + birth date (+ mobile number the first time) → a
    /// 6-digit code by SMS. Throttled (RATE_LIMITED with `extensions.retryAfter` seconds).
    async fn request_login_code(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        ticket_no: String,
        birth_date: NaiveDate,
        phone: Option<String>,
    ) -> Result<LoginCodeSent> {
        let v = visit(ctx, &tenant).await?;
        let (d, lang) = desk(ctx)?;
        let sent = d
            .request_code(
                &v,
                &ticket_no,
                birth_date,
                phone.as_deref(),
                &info(ctx).client_ip,
                lang,
            )
            .await
            .map_err(|e| desk_error(e, lang))?;
        Ok(LoginCodeSent {
            masked_phone: sent.masked_phone,
        })
    }

    /// Step 2: the code from the SMS → a resident token.
    async fn verify_login_code(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        ticket_no: String,
        code: String,
    ) -> Result<ResidentToken> {
        let v = visit(ctx, &tenant).await?;
        let (d, lang) = desk(ctx)?;
        let session = d
            .verify_code(&v, &ticket_no, &code)
            .await
            .map_err(|e| desk_error(e, lang))?;
        Ok(ResidentToken {
            token: session.token,
        })
    }

    /// Books a seat (or a group's seats, or doses 1 and 2) with the optional questionnaire: all or
    /// nothing. A full slot answers CONFLICT with a message saying so.
    async fn book(&self, ctx: &Context<'_>, input: BookInput) -> Result<Vec<BookingView>> {
        let b = bearer(ctx).await?;
        let (d, lang) = desk(ctx)?;
        let booked = d
            .book_as_bearer(&b, &input.into())
            .await
            .map_err(|e| desk_error(e, lang))?;
        Ok(booked.into_iter().map(BookingView::from).collect())
    }

    /// Moves a booking to another slot; the old seat is released only if the new one is taken.
    async fn change_booking(
        &self,
        ctx: &Context<'_>,
        booking_id: Uuid,
        slot_id: Uuid,
        idempotency_key: String,
    ) -> Result<BookingView> {
        let r = resident(ctx).await?;
        let (d, lang) = desk(ctx)?;
        let moved = d
            .change(&r, booking_id, slot_id, &idempotency_key)
            .await
            .map_err(|e| desk_error(e, lang))?;
        Ok(moved.into())
    }

    /// Cancels a booking and releases its seat at once.
    async fn cancel_booking(
        &self,
        ctx: &Context<'_>,
        booking_id: Uuid,
        idempotency_key: String,
    ) -> Result<BookingView> {
        let r = resident(ctx).await?;
        let (d, lang) = desk(ctx)?;
        let cancelled = d
            .cancel(&r, booking_id, &idempotency_key)
            .await
            .map_err(|e| desk_error(e, lang))?;
        Ok(cancelled.into())
    }
}
