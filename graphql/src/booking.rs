//! The resident API: public availability per tenant, the login-code flow returning a resident
//! token, and book / change / cancel / my bookings for the holder of that token. Thin: parse,
//! call `platform`, shape. Messages follow the request's Accept-Language.
//!
//! The token goes in `Authorization: Bearer <token>`; it names its tenant, so the booking calls
//! need no tenant argument. A token for another tenant's data simply finds nothing.

use async_graphql::{Context, Enum, ErrorExtensions, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use platform::ResidentServices;
use platform::availability::Mark;
use platform::booking::{self, BookRequest, BookingError, Dose};
use platform::i18n::Lang;
use platform::residents::auth::{self, AuthError};
use tenants::Tenant;
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

fn booking_error(e: BookingError, lang: Lang) -> async_graphql::Error {
    if let BookingError::Database(db) = e {
        return ApiError::from(db).into();
    }
    let code = e.code();
    async_graphql::Error::new(e.message(lang)).extend_with(|_, ext| ext.set("code", code))
}

fn auth_error(e: AuthError, lang: Lang) -> async_graphql::Error {
    if let AuthError::Database(db) = e {
        return ApiError::from(db).into();
    }
    let code = e.code();
    let retry = match e {
        AuthError::RateLimited { retry_after_secs } => Some(retry_after_secs),
        _ => None,
    };
    async_graphql::Error::new(e.message(lang)).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some(r) = retry {
            ext.set("retryAfter", r);
        }
    })
}

async fn tenant_by_slug(ctx: &Context<'_>, slug: &str) -> Result<Tenant> {
    let s = ctx.data::<ResidentServices>()?;
    match s.tenant(slug).await.map_err(ApiError::from)? {
        Some(t) if t.status != tenants::TenantStatus::Suspended => {
            tenants::record_in_span(t.id);
            Ok(t)
        }
        _ => Err(ApiError::NotFound("tenant".into()).into()),
    }
}

/// The resident behind the bearer token, or an error a client can branch on.
async fn resident(ctx: &Context<'_>) -> Result<(Tenant, Uuid)> {
    let s = ctx.data::<ResidentServices>()?;
    let lang = info(ctx).lang;
    let unauthenticated = || {
        async_graphql::Error::new(AuthError::Expired.message(lang))
            .extend_with(|_, e| e.set("code", "UNAUTHENTICATED"))
    };
    let token = info(ctx).bearer.as_deref().ok_or_else(unauthenticated)?;
    let tenant_id = auth::tenant_of_token(token).ok_or_else(unauthenticated)?;
    let tenant = s
        .tenant_by_id(tenant_id)
        .await
        .map_err(ApiError::from)?
        .filter(|t| t.status != tenants::TenantStatus::Suspended)
        .ok_or_else(unauthenticated)?;
    let session = auth::session(&s.pool, tenant.id, token)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(unauthenticated)?;
    tenants::record_in_span(tenant.id);
    Ok((tenant, session.resident_id))
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
    /// Any unique string (8–200 characters) per intended booking; a retry with the same key
    /// returns the first result and books nothing new.
    idempotency_key: String,
}

#[derive(Default)]
pub struct BookingQuery;

#[Object]
impl BookingQuery {
    /// The venues of a municipality. Public.
    async fn venues(&self, ctx: &Context<'_>, tenant: String) -> Result<Vec<VenueView>> {
        let t = tenant_by_slug(ctx, &tenant).await?;
        let s = ctx.data::<ResidentServices>()?;
        let list = platform::availability::venues(&s.pool, &t)
            .await
            .map_err(ApiError::from)?;
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

    /// A venue's upcoming slots (optionally one day, in the city's time zone) with availability
    /// marks. Public; served from memory for up to a second.
    async fn availability(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        venue_id: Uuid,
        date: Option<NaiveDate>,
    ) -> Result<Vec<SlotView>> {
        let t = tenant_by_slug(ctx, &tenant).await?;
        let s = ctx.data::<ResidentServices>()?;
        let lang = info(ctx).lang;
        let slots = s
            .availability
            .venue_slots(&s.pool, &t, venue_id)
            .await
            .map_err(ApiError::from)?;
        if let Some(deps) = ctx.data_opt::<std::sync::Arc<crate::web::AvailabilityDeps>>() {
            deps.record(t.id, venue_id, slots.clone());
        }
        let tz = t.time_zone.0;
        Ok(slots
            .iter()
            .filter(|sl| date.is_none_or(|d| sl.starts_at.with_timezone(&tz).date_naive() == d))
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
        let (t, r) = resident(ctx).await?;
        let s = ctx.data::<ResidentServices>()?;
        let list = booking::my_bookings(&s.pool, &t, r)
            .await
            .map_err(ApiError::from)?;
        Ok(list.into_iter().map(BookingView::from).collect())
    }
}

/// The commonest booking — the token holder alone, dose 1, one slot — in one database round trip
/// (`booking::book_first_dose`). `None` when the request needs the general path.
async fn book_fast(
    ctx: &Context<'_>,
    s: &ResidentServices,
    input: &BookInput,
) -> Result<Option<Vec<BookingView>>> {
    let lang = info(ctx).lang;
    let plain = input.companions.is_empty()
        && input.second_dose_slot_id.is_none()
        && input.dose == DoseValue::First;
    let Some(token) = info(ctx).bearer.as_deref().filter(|_| plain) else {
        return Ok(None);
    };
    let Some(tenant_id) = auth::tenant_of_token(token) else {
        return Ok(None);
    };
    let Some(t) = s
        .tenant_by_id(tenant_id)
        .await
        .map_err(ApiError::from)?
        .filter(|t| t.status != tenants::TenantStatus::Suspended)
    else {
        return Ok(None);
    };
    let outcome = s
        .booker
        .book_first_dose(
            &t,
            booking::Caller::Token(token),
            input.slot_id,
            &input.idempotency_key,
        )
        .await
        .map_err(|e| booking_error(e, lang))?;
    Ok(match outcome {
        booking::FastOutcome::Done(booked) => {
            tenants::record_in_span(t.id);
            for b in &booked {
                s.availability.invalidate_venue(t.id, b.venue_id);
            }
            Some(booked.into_iter().map(BookingView::from).collect())
        }
        // the general path answers both exactly (UNAUTHENTICATED, or the precise refusal)
        booking::FastOutcome::Unauthenticated | booking::FastOutcome::Fallback => None,
    })
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
        let t = tenant_by_slug(ctx, &tenant).await?;
        let s = ctx.data::<ResidentServices>()?;
        let i = info(ctx);
        let sent = auth::request_code(
            &s.pool,
            &t,
            &ticket_no,
            birth_date,
            phone.as_deref(),
            &i.client_ip,
            i.lang,
            &s.secret,
        )
        .await
        .map_err(|e| auth_error(e, i.lang))?;
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
        let t = tenant_by_slug(ctx, &tenant).await?;
        let s = ctx.data::<ResidentServices>()?;
        let session = auth::verify_code(&s.pool, &t, &ticket_no, &code)
            .await
            .map_err(|e| auth_error(e, info(ctx).lang))?;
        Ok(ResidentToken {
            token: session.token,
        })
    }

    /// Books a seat (or a group's seats, or doses 1 and 2): all or nothing. A full slot answers
    /// CONFLICT with a message saying so.
    async fn book(&self, ctx: &Context<'_>, input: BookInput) -> Result<Vec<BookingView>> {
        let s = ctx.data::<ResidentServices>()?;
        let lang = info(ctx).lang;
        if let Some(done) = book_fast(ctx, s, &input).await? {
            return Ok(done);
        }
        let (t, r) = resident(ctx).await?;
        let mut companions = Vec::new();
        if !input.companions.is_empty() {
            let mut tx = tenants::begin(&s.pool, t.id)
                .await
                .map_err(ApiError::from)?;
            for c in &input.companions {
                let found =
                    platform::residents::find_by_ticket(&mut tx, &c.ticket_no, c.birth_date)
                        .await
                        .map_err(ApiError::from)?;
                companions.push(found.ok_or_else(|| auth_error(AuthError::NotRecognised, lang))?);
            }
            tx.commit().await.map_err(ApiError::from)?;
        }
        let req = BookRequest {
            resident_id: r,
            slot_id: input.slot_id,
            dose: input.dose.into(),
            companions,
            second_dose_slot: input.second_dose_slot_id,
            idempotency_key: format!("api:{r}:{}", input.idempotency_key),
        };
        let booked = if input.allow_adjacent_slots {
            booking::book_allowing_adjacent(&s.pool, &t, &req).await
        } else {
            booking::book_batched(&s.booker, &s.pool, &t, &req).await
        }
        .map_err(|e| booking_error(e, lang))?;
        for b in &booked {
            s.availability.invalidate_venue(t.id, b.venue_id);
        }
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
        let (t, r) = resident(ctx).await?;
        let s = ctx.data::<ResidentServices>()?;
        let key = format!("api:{r}:{idempotency_key}");
        let moved = booking::change(&s.pool, &t, r, booking_id, slot_id, &key)
            .await
            .map_err(|e| booking_error(e, info(ctx).lang))?;
        s.availability.invalidate_tenant(t.id);
        Ok(moved.into())
    }

    /// Cancels a booking and releases its seat at once.
    async fn cancel_booking(
        &self,
        ctx: &Context<'_>,
        booking_id: Uuid,
        idempotency_key: String,
    ) -> Result<BookingView> {
        let (t, r) = resident(ctx).await?;
        let s = ctx.data::<ResidentServices>()?;
        let key = format!("api:{r}:{idempotency_key}");
        let cancelled = booking::cancel(&s.pool, &t, r, booking_id, &key)
            .await
            .map_err(|e| booking_error(e, info(ctx).lang))?;
        s.availability.invalidate_tenant(t.id);
        Ok(cancelled.into())
    }
}
