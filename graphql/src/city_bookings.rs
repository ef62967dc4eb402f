//! A city's bookings for staff and integrators: `city(slug:) { bookings(…) }`, a Relay-style
//! connection over the platform's keyset page (`platform::booking::city_page`), and booking,
//! changing and cancelling on a resident's behalf through the call centre's platform functions
//! (`platform::callcenter`), answering payloads with user errors. Guard object `bookings`
//! (API key scopes `bookings:read` / `bookings:write`).

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use platform::booking::{self, BookingError, BookingFilter, PageError};
use platform::callcenter;
use platform::i18n::Lang;
use platform::staff::authz::{Act, Authz, Object as Obj, Scope};
use sqlx::PgPool;
use tenants::{Tenant, TenantId};
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::booking::DoseValue;

/// Whether a booking holds its seat.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BookingStatus {
    /// Holds a seat.
    Booked,
    /// Cancelled; the seat was released.
    Cancelled,
}

impl From<BookingStatus> for booking::BookingStatus {
    fn from(s: BookingStatus) -> Self {
        match s {
            BookingStatus::Booked => Self::Booked,
            BookingStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// A booking of the city as staff and integrators see it (names the resident by id; the
/// resident's details are `city { resident(ticketNo:) }`, scope `residents:read`).
#[derive(SimpleObject)]
pub struct CityBooking {
    id: Uuid,
    /// The resident who is vaccinated.
    resident_id: Uuid,
    slot_id: Uuid,
    venue_id: Uuid,
    venue_name: String,
    vaccine_name: String,
    dose: DoseValue,
    status: BookingStatus,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    /// Bookings made in one step (a group, or dose 1 with dose 2) share this id.
    group_id: Uuid,
    /// The resident may change or cancel it until this moment (staff with the override later).
    change_until: DateTime<Utc>,
}

impl From<booking::Booking> for CityBooking {
    fn from(b: booking::Booking) -> Self {
        Self {
            id: b.id,
            resident_id: b.resident_id,
            slot_id: b.slot_id,
            venue_id: b.venue_id,
            venue_name: b.venue_name,
            vaccine_name: b.vaccine_name,
            dose: b.dose.into(),
            status: match booking::BookingStatus::parse(&b.status) {
                Some(booking::BookingStatus::Cancelled) => BookingStatus::Cancelled,
                _ => BookingStatus::Booked,
            },
            starts_at: b.starts_at,
            ends_at: b.ends_at,
            group_id: b.group_id,
            change_until: b.change_until,
        }
    }
}

/// One booking of a page and the cursor to continue after it.
#[derive(SimpleObject)]
pub struct CityBookingEdge {
    /// Opaque; pass it as `after` to continue after this booking.
    cursor: String,
    node: CityBooking,
}

/// Where a page ends.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// More items follow this page.
    pub(crate) has_next_page: bool,
    /// The cursor of the page's last item (null for an empty page): pass it as `after`.
    pub(crate) end_cursor: Option<String>,
}

/// A page of the city's bookings in a stable order (booking id): paging to the end with
/// `endCursor` sees every booking that existed when paging began exactly once.
pub struct CityBookingConnection {
    tenant: TenantId,
    filter: BookingFilter,
    edges: Vec<CityBookingEdge>,
    page_info: PageInfo,
}

#[Object]
impl CityBookingConnection {
    async fn edges(&self) -> &[CityBookingEdge] {
        &self.edges
    }

    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many bookings match the filter, all pages together (counted when asked for).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Bookings, Act::Read).await?;
        let n = booking::city_count(&mut scope, &self.filter)
            .await
            .map_err(page_error)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(n)
    }
}

fn page_error(e: PageError) -> ApiError {
    match e {
        PageError::Database(e) => e.into(),
        other => ApiError::Validation(other.to_string()),
    }
}

/// `city { bookings(…) }`: one audited page.
pub async fn page(
    ctx: &Context<'_>,
    tenant: TenantId,
    filter: BookingFilter,
    first: i64,
    after: Option<String>,
) -> Result<CityBookingConnection> {
    // input first: a bad cursor or size is VALIDATION before anything is read or audited
    if let Some(a) = &after {
        booking::parse_cursor(a).map_err(page_error)?;
    }
    let mut scope = auth::enter(ctx, tenant, Obj::Bookings, Act::Read).await?;
    let page = booking::city_page(&mut scope, &filter, after.as_deref(), first)
        .await
        .map_err(page_error)?;
    scope.commit().await.map_err(ApiError::from)?;
    let end_cursor = page.bookings.last().map(|b| booking::cursor_of(b.id));
    Ok(CityBookingConnection {
        tenant,
        filter,
        edges: page
            .bookings
            .into_iter()
            .map(|b| CityBookingEdge {
                cursor: booking::cursor_of(b.id),
                node: b.into(),
            })
            .collect(),
        page_info: PageInfo {
            has_next_page: page.has_next,
            end_cursor,
        },
    })
}

/// The filter of `city { bookings(…) }`.
pub fn filter(
    venue_id: Option<Uuid>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    status: Option<BookingStatus>,
) -> BookingFilter {
    BookingFilter {
        venue: venue_id,
        from,
        to,
        status: status.map(Into::into),
    }
}

/// A refusal the caller can act on (the slot is full, the cut-off has passed, …).
#[derive(SimpleObject)]
pub struct UserError {
    /// Stable: `NOT_FOUND`, `CONFLICT` or `VALIDATION` (docs/api.md).
    code: String,
    /// For people, in the request's language.
    message: String,
    /// The input field it is about, when there is one (e.g. `slotId`).
    field: Option<String>,
}

impl UserError {
    /// A refusal for a payload's `errors` (`code`: `NOT_FOUND`, `CONFLICT` or `VALIDATION`).
    pub(crate) fn new(code: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }
}

/// What a booking on a resident's behalf did: the bookings, or why not (`errors`, nothing changed).
#[derive(SimpleObject)]
pub struct OnBehalfPayload {
    /// The bookings booked, moved or cancelled (empty when `errors` is not).
    bookings: Vec<CityBooking>,
    /// A deadline or cut-off was passed with `overrideDeadline` (audited as an override).
    overridden: bool,
    errors: Vec<UserError>,
}

impl OnBehalfPayload {
    fn done(bookings: Vec<booking::Booking>, overridden: bool) -> Self {
        Self {
            bookings: bookings.into_iter().map(CityBooking::from).collect(),
            overridden,
            errors: Vec::new(),
        }
    }
}

fn field_of(e: &BookingError) -> Option<&'static str> {
    match e {
        BookingError::Full
        | BookingError::DeadlinePassed
        | BookingError::NotOpenYet
        | BookingError::OtherVaccine => Some("slotId"),
        BookingError::AlreadyBooked { .. }
        | BookingError::TooEarly { .. }
        | BookingError::NeedsEarlierDose
        | BookingError::PairingNotOffered => Some("dose"),
        BookingError::KeyReused | BookingError::BadKey => Some("idempotencyKey"),
        BookingError::CutoffPassed => Some("bookingId"),
        _ => None,
    }
}

/// The payload for a refused booking; a database failure stays a top-level INTERNAL error.
fn refused(ctx: &Context<'_>, e: BookingError) -> Result<OnBehalfPayload> {
    if let BookingError::Database(db) = e {
        return Err(ApiError::from(db).into());
    }
    let lang = ctx
        .data_opt::<crate::RequestInfo>()
        .map(|i| i.lang)
        .unwrap_or(Lang::En);
    Ok(OnBehalfPayload {
        bookings: Vec::new(),
        overridden: false,
        errors: vec![UserError {
            code: e.code().to_owned(),
            message: e.message(lang),
            field: field_of(&e).map(str::to_owned),
        }],
    })
}

/// Book one resident into a slot on their behalf.
#[derive(InputObject)]
pub struct BookOnBehalfInput {
    resident_id: Uuid,
    slot_id: Uuid,
    dose: DoseValue,
    /// 8–200 characters, unique per intended booking: a retry books nothing new.
    idempotency_key: String,
    /// Go ahead past the booking deadline (city admins only; audited). FORBIDDEN for others.
    #[graphql(default)]
    override_deadline: bool,
}

/// Move a booking to another slot on the resident's behalf.
#[derive(InputObject)]
pub struct ChangeBookingOnBehalfInput {
    booking_id: Uuid,
    slot_id: Uuid,
    idempotency_key: String,
    /// Go ahead past the change cut-off or the new slot's booking deadline (city admins only).
    #[graphql(default)]
    override_deadline: bool,
}

/// Cancel a booking on the resident's behalf.
#[derive(InputObject)]
pub struct CancelBookingOnBehalfInput {
    booking_id: Uuid,
    idempotency_key: String,
    /// Go ahead past the cancel cut-off (city admins only; audited).
    #[graphql(default)]
    override_deadline: bool,
}

/// Booking on a resident's behalf (API key scope `bookings:write`, or a city admin's, city staff's
/// or call centre's session), with the resident site's rules; audited as the call centre's
/// `callcenter.book` / `.change` / `.cancel` with the key or person as actor.
#[derive(Default)]
pub struct CityBookingMutation;

/// The city (NOT_FOUND for an unknown slug) and the guard's scope for booking on behalf.
async fn enter_write(ctx: &Context<'_>, city: &str) -> Result<(Tenant, Scope), ApiError> {
    let pool = ctx
        .data::<PgPool>()
        .map_err(|e| ApiError::Internal(e.message))?;
    let tenant = tenants::find_by_slug(pool, city)
        .await?
        .ok_or_else(|| ApiError::NotFound("city".into()))?;
    let scope = auth::enter(ctx, tenant.id, Obj::Bookings, Act::Write).await?;
    Ok((tenant, scope))
}

/// The override capability when asked for; FORBIDDEN (nothing changes) when the caller may not.
async fn override_of(
    ctx: &Context<'_>,
    scope: &Scope,
    asked: bool,
) -> Result<Option<callcenter::DeadlineOverride>, ApiError> {
    if !asked {
        return Ok(None);
    }
    let authz = ctx
        .data::<Authz>()
        .map_err(|e| ApiError::Internal(e.message))?;
    callcenter::may_override(authz, scope)
        .await
        .map(Some)
        .ok_or(ApiError::Forbidden)
}

#[Object]
impl CityBookingMutation {
    /// Books a resident into a slot (dose rules, deadlines, seats and idempotency as on the
    /// resident site). Refusals come back in `errors`; nothing is booked then.
    async fn book_on_behalf(
        &self,
        ctx: &Context<'_>,
        city: String,
        input: BookOnBehalfInput,
    ) -> Result<OnBehalfPayload> {
        let (tenant, mut scope) = enter_write(ctx, &city).await?;
        let pass = override_of(ctx, &scope, input.override_deadline).await?;
        match callcenter::book_for(
            &mut scope,
            &tenant,
            input.resident_id,
            input.slot_id,
            input.dose.into(),
            &input.idempotency_key,
            pass,
        )
        .await
        {
            Ok((booked, overridden)) => {
                scope.commit().await.map_err(ApiError::from)?;
                Ok(OnBehalfPayload::done(booked, overridden))
            }
            Err(e) => refused(ctx, e),
        }
    }

    /// Moves a booking to another slot of the city (rules as on the resident site).
    async fn change_booking_on_behalf(
        &self,
        ctx: &Context<'_>,
        city: String,
        input: ChangeBookingOnBehalfInput,
    ) -> Result<OnBehalfPayload> {
        let (tenant, mut scope) = enter_write(ctx, &city).await?;
        let pass = override_of(ctx, &scope, input.override_deadline).await?;
        match callcenter::change_booking(
            &mut scope,
            &tenant,
            input.booking_id,
            input.slot_id,
            &input.idempotency_key,
            pass,
        )
        .await
        {
            Ok((moved, overridden)) => {
                scope.commit().await.map_err(ApiError::from)?;
                Ok(OnBehalfPayload::done(vec![moved], overridden))
            }
            Err(e) => refused(ctx, e),
        }
    }

    /// Cancels a booking (the seat is released, the resident is notified).
    async fn cancel_booking_on_behalf(
        &self,
        ctx: &Context<'_>,
        city: String,
        input: CancelBookingOnBehalfInput,
    ) -> Result<OnBehalfPayload> {
        let (tenant, mut scope) = enter_write(ctx, &city).await?;
        let pass = override_of(ctx, &scope, input.override_deadline).await?;
        match callcenter::cancel_booking(
            &mut scope,
            &tenant,
            input.booking_id,
            &input.idempotency_key,
            pass,
        )
        .await
        {
            Ok((cancelled, overridden)) => {
                scope.commit().await.map_err(ApiError::from)?;
                Ok(OnBehalfPayload::done(vec![cancelled], overridden))
            }
            Err(e) => refused(ctx, e),
        }
    }
}
