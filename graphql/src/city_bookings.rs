//! A city's bookings for staff and integrators: `city(city:) { bookings(…) }`, a Relay-style
//! connection over the platform's keyset page (`platform::booking::city_page`), and booking,
//! changing and cancelling on a resident's behalf through the call centre's platform functions
//! (`platform::callcenter`), answering payloads with user errors. Guard object `bookings`
//! (API key scopes `bookings:read` / `bookings:write`).

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use chrono::NaiveDate;
use platform::booking::{self, BookingFilter, PageError};
use platform::callcenter;
use platform::i18n::Lang;
use platform::staff::authz::{Act, Authz, Object as Obj, Scope};
use sqlx::PgPool;
use tenants::{Tenant, TenantId};
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::booking::DoseValue;
/// Re-exported for the modules that name it from here.
pub(crate) use crate::payload::UserError;
use crate::payload::{self, Payload, Refusal};
use crate::scalars::DateTime;

/// Whether a booking holds its seat.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BookingStatus {
    /// Holds a seat.
    Booked,
    /// Cancelled; the seat was released.
    Cancelled,
}

impl BookingStatus {
    /// From the platform's value (`booked` or `cancelled`).
    pub fn from_platform(s: &str) -> Self {
        match booking::BookingStatus::parse(s) {
            Some(booking::BookingStatus::Cancelled) => Self::Cancelled,
            _ => Self::Booked,
        }
    }
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
    /// The booking's id.
    id: Uuid,
    /// The resident who is vaccinated.
    resident_id: Uuid,
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
    /// The resident may change or cancel it until this moment (staff with the override later).
    change_until: DateTime,
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
            status: BookingStatus::from_platform(&b.status),
            starts_at: DateTime(b.starts_at),
            ends_at: DateTime(b.ends_at),
            group_id: b.group_id,
            change_until: DateTime(b.change_until),
        }
    }
}

/// One booking of a page and the cursor to continue after it.
#[derive(SimpleObject)]
pub struct CityBookingEdge {
    /// Opaque; pass it as `after` to continue after this booking.
    cursor: String,
    /// The booking.
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

/// A page of the city's bookings in a stable order (booking id): paging to the end with
/// `endCursor` sees every booking that existed when paging began exactly once.
#[Object]
impl CityBookingConnection {
    /// The bookings of this page, in order.
    async fn edges(&self) -> &[CityBookingEdge] {
        &self.edges
    }

    /// Where this page ends and whether more follow.
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

/// What a booking on a resident's behalf did: the bookings, or why not (`errors`, nothing changed).
#[derive(SimpleObject)]
pub struct OnBehalfPayload {
    /// The bookings booked, moved or cancelled (empty when `errors` is not).
    bookings: Vec<CityBooking>,
    /// A deadline or cut-off was passed with `overrideDeadline` (audited as an override).
    overridden: bool,
    /// Why nothing changed (empty on success).
    errors: Vec<UserError>,
}

impl Payload for OnBehalfPayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            bookings: Vec::new(),
            overridden: false,
            errors,
        }
    }
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

/// The language of the request's messages.
fn lang(ctx: &Context<'_>) -> Lang {
    ctx.data_opt::<crate::RequestInfo>()
        .map(|i| i.lang)
        .unwrap_or(Lang::En)
}

/// Book one resident into a slot on their behalf.
#[derive(InputObject)]
pub struct BookOnBehalfInput {
    /// The resident to book for.
    resident_id: Uuid,
    /// The slot to book.
    slot_id: Uuid,
    /// The dose to book.
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
    /// The booking to move.
    booking_id: Uuid,
    /// The new slot.
    slot_id: Uuid,
    /// 8–200 characters, unique per intended change: a retry changes nothing more.
    idempotency_key: String,
    /// Go ahead past the change cut-off or the new slot's booking deadline (city admins only).
    #[graphql(default)]
    override_deadline: bool,
}

/// Cancel a booking on the resident's behalf.
#[derive(InputObject)]
pub struct CancelBookingOnBehalfInput {
    /// The booking to cancel.
    booking_id: Uuid,
    /// 8–200 characters, unique per intended cancellation: a retry changes nothing more.
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

/// A booking refusal of an on-behalf mutation as a [`Refusal`] in the request's language.
fn refusal(
    ctx: &Context<'_>,
    e: platform::booking::BookingError,
    not_found: Option<&str>,
) -> Refusal {
    payload::booking(e, lang(ctx), not_found)
}

#[Object]
impl CityBookingMutation {
    /// Books a resident into a slot (dose rules, deadlines, seats and idempotency as on the
    /// resident site). Refusals come back in `errors`; nothing is booked then.
    async fn book_on_behalf(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "Whom to book into which slot.")] input: BookOnBehalfInput,
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
            Err(e) => payload::answer(Err(refusal(ctx, e, None))),
        }
    }

    /// Moves a booking to another slot of the city (rules as on the resident site).
    async fn change_booking_on_behalf(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "Which booking to move where.")] input: ChangeBookingOnBehalfInput,
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
            // NOT_FOUND: the booking or the slot (either may be another city's)
            Err(e) => payload::answer(Err(refusal(ctx, e, None))),
        }
    }

    /// Cancels a booking (the seat is released, the resident is notified).
    async fn cancel_booking_on_behalf(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "Which booking to cancel.")] input: CancelBookingOnBehalfInput,
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
            Err(e) => payload::answer(Err(refusal(ctx, e, Some("bookingId")))),
        }
    }
}
