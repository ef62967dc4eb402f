//! The resident API: public availability per tenant, the login-code flow returning a resident
//! token, and book / change / cancel / my bookings for the holder of that token. Thin: parse, call
//! the resident desk (`platform::residents::desk`, where tenant status, the session check, the
//! booking path, the questionnaire and cache invalidation live), shape. Messages follow the
//! request's Accept-Language.
//!
//! The token goes in `Authorization: Bearer <token>`; it names its tenant, so the booking calls
//! need no tenant argument. A token for another tenant's data simply finds nothing.

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use chrono::{NaiveDate, Utc};
use platform::ResidentDesk;
use platform::booking::availability::Mark;
use platform::booking::{self, Dose};
use platform::i18n::Lang;
use platform::residents::desk::{self, Bearer, DeskError, Entered, Resident, Visit};
use uuid::Uuid;

use crate::ApiError;
use crate::city_bookings::BookingStatus;
use crate::payload::{self, Payload, Refusal, UserError};
use crate::scalars::{Date, DateTime};

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
    /// ○: seats are free.
    Free,
    /// △: a few seats are left.
    FewLeft,
    /// ×: full, or past the booking deadline.
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

/// Which dose of a vaccine a booking or a count is for.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Dose")]
pub enum DoseValue {
    /// The first dose of the primary series.
    First,
    /// The second dose of the primary series.
    Second,
    /// A booster after the primary series.
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
    /// The venue's id (pass it to `availability`).
    id: Uuid,
    /// Display name.
    name: String,
    /// Postal address (may be empty).
    address: String,
    /// The venue's vaccine fixes the product booked there.
    vaccine_name: String,
}

/// One bookable time slot and how full it is.
#[derive(SimpleObject)]
#[graphql(name = "AvailableSlot")]
pub struct SlotView {
    /// The slot's id (pass it to `book`).
    id: Uuid,
    /// When the slot starts.
    starts_at: DateTime,
    /// When the slot ends.
    ends_at: DateTime,
    /// Seats in the slot.
    capacity: i32,
    /// Seats free for dose 1 and boosters (the mark is about these).
    free: i32,
    /// Seats free for a second dose: also the seats the city holds for dose 2.
    free_for_second_dose: i32,
    /// How full the slot is, for dose 1 and boosters.
    mark: AvailabilityMark,
    /// The mark as a symbol (○ △ ×) followed by its meaning in the request's language.
    mark_text: String,
}

/// A booking as the resident who holds the token sees it.
#[derive(SimpleObject)]
#[graphql(name = "Booking")]
pub struct BookingView {
    /// The booking's id.
    id: Uuid,
    /// The slot booked.
    slot_id: Uuid,
    /// The venue of the slot.
    venue_id: Uuid,
    /// The venue's name.
    venue_name: String,
    /// The vaccine given at the venue.
    vaccine_name: String,
    /// The dose booked.
    dose: DoseValue,
    /// Whether the booking holds its seat.
    status: BookingStatus,
    /// When the slot starts.
    starts_at: DateTime,
    /// When the slot ends.
    ends_at: DateTime,
    /// Bookings made in one step (a group, or dose 1 with dose 2) share this id.
    group_id: Uuid,
    /// Changes and cancellations are accepted until this moment.
    change_until: DateTime,
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
            status: BookingStatus::from_platform(&b.status),
            starts_at: DateTime(b.starts_at),
            ends_at: DateTime(b.ends_at),
            group_id: b.group_id,
            change_until: DateTime(b.change_until),
        }
    }
}

/// What `requestLoginCode` did: where the code went, or why not (`errors`, nothing sent).
#[derive(SimpleObject)]
pub struct RequestLoginCodePayload {
    /// The mobile number the code was sent to, masked (e.g. 090****5678); null when `errors` is
    /// not empty.
    masked_phone: Option<String>,
    /// Why no code was sent (empty on success): the ticket number and birth date do not match
    /// (`ticketNo`), a mobile number is needed or is not one (`phone`), …
    errors: Vec<UserError>,
}

impl Payload for RequestLoginCodePayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            masked_phone: None,
            errors,
        }
    }
}

/// What `verifyLoginCode` did: a resident token, or why not (`errors`).
#[derive(SimpleObject)]
pub struct VerifyLoginCodePayload {
    /// A resident session for API clients: send it as `Authorization: Bearer <token>`. Null when
    /// `errors` is not empty.
    token: Option<String>,
    /// Why the code was not accepted (empty on success; `field: "code"` for a wrong or expired
    /// code).
    errors: Vec<UserError>,
}

impl Payload for VerifyLoginCodePayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            token: None,
            errors,
        }
    }
}

/// What `book` did: the bookings made, or why not (`errors`, nothing booked).
#[derive(SimpleObject)]
pub struct BookPayload {
    /// The bookings made in this step (the resident's, the companions', dose 2); empty when
    /// `errors` is not.
    bookings: Vec<BookingView>,
    /// Why nothing was booked (empty on success).
    errors: Vec<UserError>,
}

impl Payload for BookPayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            bookings: Vec::new(),
            errors,
        }
    }
}

/// What `changeBooking` did: the booking in its new slot, or why not (`errors`, nothing changed).
#[derive(SimpleObject)]
pub struct ChangeBookingPayload {
    /// The booking as it is now (null when `errors` is not empty).
    booking: Option<BookingView>,
    /// Why nothing changed (empty on success).
    errors: Vec<UserError>,
}

impl Payload for ChangeBookingPayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            booking: None,
            errors,
        }
    }
}

/// What `cancelBooking` did: the cancelled booking, or why not (`errors`, nothing changed).
#[derive(SimpleObject)]
pub struct CancelBookingPayload {
    /// The booking as it is now, `CANCELLED` (null when `errors` is not empty).
    booking: Option<BookingView>,
    /// Why nothing changed (empty on success).
    errors: Vec<UserError>,
}

impl Payload for CancelBookingPayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            booking: None,
            errors,
        }
    }
}

/// Another person in a group booking, identified like at login.
#[derive(InputObject)]
pub struct CompanionInput {
    /// The companion's vaccination ticket number.
    ticket_no: String,
    /// The companion's date of birth.
    birth_date: Date,
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

/// A booking to make for the resident holding the token (and companions).
#[derive(InputObject)]
pub struct BookInput {
    /// The slot to book (an `AvailableSlot.id`).
    slot_id: Uuid,
    /// The dose to book.
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
                    birth_date: Some(c.birth_date.0),
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

/// Public lookups and the resident's own bookings.
#[derive(Default)]
pub struct BookingQuery;

#[Object]
impl BookingQuery {
    /// The venues of a municipality. Public.
    async fn venues(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
    ) -> Result<Vec<VenueView>> {
        let v = visit(ctx, &city).await?;
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
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The venue (a `PublicVenue.id`).")] venue_id: Uuid,
        #[graphql(desc = "Only this one local day (not with `from` / `days`).")] date: Option<Date>,
        #[graphql(desc = "First local day of the window (default: today in the city).")]
        from: Option<Date>,
        #[graphql(desc = "Days in the window (1–62, default 31).")] days: Option<i32>,
    ) -> Result<Vec<SlotView>> {
        let (date, from) = (date.map(|d| d.0), from.map(|d| d.0));
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
        let v = visit(ctx, &city).await?;
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
                starts_at: DateTime(sl.starts_at),
                ends_at: DateTime(sl.ends_at),
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

/// Resident login and booking (the resident token).
#[derive(Default)]
pub struct BookingMutation;

#[Object]
impl BookingMutation {
    /// Step 1 of logging in: ticket number + birth date (+ mobile number the first time) → a
    /// 6-digit code by SMS. Throttled: a top-level RATE_LIMITED error with
    /// `extensions.retryAfter` seconds (back off, nothing was sent).
    async fn request_login_code(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The vaccination ticket number.")] ticket_no: String,
        #[graphql(desc = "The resident's date of birth.")] birth_date: Date,
        #[graphql(desc = "Mobile number for the code (needed the first time).")] phone: Option<
            String,
        >,
    ) -> Result<RequestLoginCodePayload> {
        let v = visit(ctx, &city).await?;
        let (d, lang) = desk(ctx)?;
        payload::answer(
            d.request_code(
                &v,
                &ticket_no,
                birth_date.0,
                phone.as_deref(),
                &info(ctx).client_ip,
                lang,
            )
            .await
            .map(|sent| RequestLoginCodePayload {
                masked_phone: Some(sent.masked_phone),
                errors: Vec::new(),
            })
            .map_err(|e| refusal(e, lang, None)),
        )
    }

    /// Step 2: the code from the SMS → a resident token.
    async fn verify_login_code(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The vaccination ticket number.")] ticket_no: String,
        #[graphql(desc = "The 6-digit code from the SMS.")] code: String,
    ) -> Result<VerifyLoginCodePayload> {
        let v = visit(ctx, &city).await?;
        let (d, lang) = desk(ctx)?;
        payload::answer(
            d.verify_code(&v, &ticket_no, &code)
                .await
                .map(|session| VerifyLoginCodePayload {
                    token: Some(session.token),
                    errors: Vec::new(),
                })
                .map_err(|e| refusal(e, lang, None)),
        )
    }

    /// Books a seat (or a group's seats, or doses 1 and 2) with the optional questionnaire: all or
    /// nothing. A full slot is a CONFLICT user error (`field: "slotId"`) saying so.
    async fn book(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to book.")] input: BookInput,
    ) -> Result<BookPayload> {
        let b = bearer(ctx).await?;
        let (d, lang) = desk(ctx)?;
        payload::answer(
            d.book_as_bearer(&b, &input.into())
                .await
                .map(|booked| BookPayload {
                    bookings: booked.into_iter().map(BookingView::from).collect(),
                    errors: Vec::new(),
                })
                .map_err(|e| refusal(e, lang, Some("slotId"))),
        )
    }

    /// Moves a booking to another slot; the old seat is released only if the new one is taken.
    async fn change_booking(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The booking to move (one of `myBookings`).")] booking_id: Uuid,
        #[graphql(desc = "The new slot.")] slot_id: Uuid,
        #[graphql(
            desc = "8–200 characters, unique per intended change: a retry changes nothing \
                          more."
        )]
        idempotency_key: String,
    ) -> Result<ChangeBookingPayload> {
        let r = resident(ctx).await?;
        let (d, lang) = desk(ctx)?;
        payload::answer(
            d.change(&r, booking_id, slot_id, &idempotency_key)
                .await
                .map(|moved| ChangeBookingPayload {
                    booking: Some(moved.into()),
                    errors: Vec::new(),
                })
                .map_err(|e| refusal(e, lang, None)),
        )
    }

    /// Cancels a booking and releases its seat at once.
    async fn cancel_booking(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The booking to cancel (one of `myBookings`).")] booking_id: Uuid,
        #[graphql(
            desc = "8–200 characters, unique per intended cancellation: a retry changes \
                          nothing more."
        )]
        idempotency_key: String,
    ) -> Result<CancelBookingPayload> {
        let r = resident(ctx).await?;
        let (d, lang) = desk(ctx)?;
        payload::answer(
            d.cancel(&r, booking_id, &idempotency_key)
                .await
                .map(|cancelled| CancelBookingPayload {
                    booking: Some(cancelled.into()),
                    errors: Vec::new(),
                })
                .map_err(|e| refusal(e, lang, Some("bookingId"))),
        )
    }
}

/// The desk's refusal of a mutation ([`payload::desk`]).
fn refusal(e: DeskError, lang: Lang, not_found: Option<&str>) -> Refusal {
    payload::desk(e, lang, not_found)
}
