//! City configuration for integrators and staff: vaccines, venues, schedules, slots, resident
//! lookup and the audit log. Every field asks the guard (`auth::enter`) for a scope first; another
//! tenant's city or ids answer NOT_FOUND.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use platform::city::setup;
use platform::staff::authz::{Act, Object as Obj};
use sqlx::PgPool;
use tenants::TenantId;
use uuid::Uuid;

use crate::ApiError;
use crate::admin_input::{VaccineInput, VenueInput};
use crate::audit::AuditEntry;
use crate::auth;
use crate::enums::{VenueKind, Weekday};
use crate::payload::{self, Payload, Refusal, UserError};
use crate::residents::Resident;
use crate::scalars::{Date, DateTime};
use crate::slots::Slot;

/// City configuration (needs an API key or a staff session).
#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// The configuration of a municipality the caller works for (NOT_FOUND otherwise).
    async fn city(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug (`Tenant.slug`).")] city: String,
    ) -> Result<City> {
        let pool = ctx.data::<PgPool>()?;
        let tenant = tenants::find_by_slug(pool, &city)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("city".into()))?;
        auth::admit(ctx, tenant.id, "city").await?;
        Ok(City {
            tenant: tenant.id,
            slug: tenant.slug,
        })
    }
}

/// A municipality's configuration, as its staff and integrators see it.
pub struct City {
    tenant: TenantId,
    slug: String,
}

/// A vaccine product the city offers.
#[derive(SimpleObject)]
pub struct Vaccine {
    /// The vaccine's id.
    id: Uuid,
    /// Product name, unique in the city.
    name: String,
    /// Manufacturer.
    maker: String,
    /// Doses in the primary series (1–5).
    doses: i32,
    /// Days at least between two doses of the primary series.
    min_interval_days: i32,
    /// Months at least from the last dose to a booster.
    booster_interval_months: i32,
    /// Days from the last dose until protection is taken as effective.
    days_until_effective: i32,
    /// Days a completed series counts as valid.
    validity_days: i32,
}

impl From<setup::Vaccine> for Vaccine {
    fn from(v: setup::Vaccine) -> Self {
        Self {
            id: v.id,
            name: v.name,
            maker: v.maker,
            doses: v.doses,
            min_interval_days: v.min_interval_days,
            booster_interval_months: v.booster_interval_months,
            days_until_effective: v.days_until_effective,
            validity_days: v.validity_days,
        }
    }
}

/// A vaccination venue with its booking rules.
#[derive(SimpleObject)]
pub struct Venue {
    /// The venue's id.
    id: Uuid,
    /// Display name.
    name: String,
    /// Postal address (may be empty).
    address: String,
    /// A mass vaccination site or a hospital.
    kind: VenueKind,
    /// The one vaccine given at this venue.
    vaccine_id: Uuid,
    /// Booking opens at this moment; null when it is open already.
    booking_opens_at: Option<DateTime>,
    /// Booking closes this many hours before a slot starts.
    booking_deadline_hours: i32,
    /// Residents may change or cancel until this many days before the slot.
    cancel_cutoff_days: i32,
}

impl From<setup::Venue> for Venue {
    fn from(v: setup::Venue) -> Self {
        Self {
            id: v.id,
            name: v.name,
            address: v.address,
            kind: VenueKind::from_platform(&v.kind),
            vaccine_id: v.vaccine_id,
            booking_opens_at: v.booking_opens_at.map(DateTime),
            booking_deadline_hours: v.booking_deadline_hours,
            cancel_cutoff_days: v.cancel_cutoff_days,
        }
    }
}

/// A capacity schedule of a venue: the slots it generates.
#[derive(SimpleObject)]
pub struct Schedule {
    /// The schedule's id.
    id: Uuid,
    /// The days of the week it has slots on.
    weekdays: Vec<Weekday>,
    /// Start of the first slot of a day, `HH:MM` local time of the city.
    start_time: String,
    /// End of the last slot of a day, `HH:MM` local time of the city.
    end_time: String,
    /// Length of one slot in minutes.
    slot_minutes: i32,
    /// Seats per slot.
    capacity: i32,
    /// First day with slots (local day of the city).
    valid_from: Date,
    /// Last day with slots (local day of the city).
    valid_until: Date,
    /// Days without slots.
    closed_dates: Vec<Date>,
}

impl From<setup::Schedule> for Schedule {
    fn from(s: setup::Schedule) -> Self {
        Self {
            id: s.id,
            weekdays: s
                .weekdays
                .into_iter()
                .filter_map(Weekday::from_iso)
                .collect(),
            start_time: s.start_time.format("%H:%M").to_string(),
            end_time: s.end_time.format("%H:%M").to_string(),
            slot_minutes: s.slot_minutes,
            capacity: s.capacity,
            valid_from: Date(s.valid_from),
            valid_until: Date(s.valid_until),
            closed_dates: s.closed_dates.into_iter().map(Date).collect(),
        }
    }
}

/// A municipality's configuration, as its staff and integrators see it (each field asks the guard).
#[Object]
impl City {
    /// The city's slug (URL identifier).
    async fn slug(&self) -> &str {
        &self.slug
    }

    /// The city's vaccines, by name.
    async fn vaccines(&self, ctx: &Context<'_>) -> Result<Vec<Vaccine>> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Vaccines, Act::Read).await?;
        let list = setup::list_vaccines(&mut scope)
            .await
            .map_err(ApiError::from)?;
        Ok(list.into_iter().map(Vaccine::from).collect())
    }

    /// The city's venues (venue and hospital staff: the ones they are assigned to), by name.
    async fn venues(&self, ctx: &Context<'_>) -> Result<Vec<Venue>> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Venues, Act::Read).await?;
        let list = setup::list_venues(&mut scope)
            .await
            .map_err(ApiError::from)?;
        Ok(list.into_iter().map(Venue::from).collect())
    }

    /// One venue (NOT_FOUND for another tenant's id or a venue the caller is not assigned to).
    async fn venue(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The venue's id.")] id: Uuid,
    ) -> Result<Venue> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Venue(id), Act::Read).await?;
        match setup::venue(&mut scope, id).await {
            Ok(v) => Ok(v.into()),
            Err(setup::SetupError::Database(e)) => Err(ApiError::from(e).into()),
            Err(_) => Err(ApiError::NotFound("venue".into()).into()),
        }
    }

    /// A venue's capacity schedules, earliest first.
    async fn schedules(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The venue's id.")] venue_id: Uuid,
    ) -> Result<Vec<Schedule>> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Venue(venue_id), Act::Read).await?;
        let list = setup::list_schedules(&mut scope, venue_id)
            .await
            .map_err(ApiError::from)?;
        Ok(list.into_iter().map(Schedule::from).collect())
    }

    /// Slots of a venue from `from` (default: now), earliest first, at most `first` (≤ 500).
    /// Counts its fields once per started ten of `first` in the complexity. Deprecated: a plain
    /// list cannot be paged; `venueSlots` is its connection.
    #[graphql(
        complexity = "1 + child_complexity.max(1) * (first.clamp(1, 500) as usize).div_ceil(10)",
        deprecation = "Use `venueSlots` (a connection: `first`, `after`) instead; removed after 2027-06-30."
    )]
    async fn slots(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The venue's id.")] venue_id: Uuid,
        #[graphql(desc = "Slots starting at or after this moment (default: now).")] from: Option<
            DateTime,
        >,
        #[graphql(default = 100, desc = "At most this many slots (1–500).")] first: i64,
    ) -> Result<Vec<Slot>> {
        crate::slots::list(ctx, self.tenant, venue_id, from, first).await
    }

    /// A venue's slots starting at or after `from`, a page at a time, earliest first (API key
    /// scope `venues:read`; staff who may see the venue). Ordered by start, then id, which never
    /// change: paging on with `after: pageInfo.endCursor` until `hasNextPage` is false (keeping
    /// `from` the same) sees every slot that existed when paging began exactly once. `first` is
    /// 1–500 (default 100) and counts the fields once per started ten in the complexity.
    #[graphql(
        complexity = "2 + child_complexity.max(1) * (first.clamp(1, 500) as usize).div_ceil(10)"
    )]
    async fn venue_slots(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The venue's id.")] venue_id: Uuid,
        #[graphql(
            desc = "Slots starting at or after this moment (default: now; keep it the same while paging)."
        )]
        from: Option<DateTime>,
        #[graphql(default = 100, desc = "Page size, 1–500.")] first: i64,
        #[graphql(desc = "Continue after this cursor (an edge's `cursor` or `endCursor`).")]
        after: Option<String>,
    ) -> Result<crate::slots::SlotConnection> {
        crate::slots::page(ctx, self.tenant, venue_id, from, first, after).await
    }

    /// The city's bookings, a page at a time (API key scope `bookings:read`; city admins, city
    /// staff, the call centre, auditors). Ordered by booking id, which never changes: paging on
    /// with `after: pageInfo.endCursor` until `hasNextPage` is false sees every booking that
    /// existed when paging began exactly once (bookings made meanwhile may or may not appear).
    /// `from` / `to` are local days of the city (inclusive) of the slot; `first` is 1–200
    /// (default 50) and counts the fields once per started ten in the complexity. A page names
    /// residents: each page is recorded in the audit log (`bookings.list`).
    #[graphql(
        complexity = "2 + child_complexity.max(1) * (first.clamp(1, 200) as usize).div_ceil(10)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn bookings(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, desc = "Bookings in this page (1–200).")] first: i64,
        #[graphql(desc = "Continue after this cursor (`pageInfo.endCursor` of the page before).")]
        after: Option<String>,
        #[graphql(desc = "Only this venue's bookings.")] venue_id: Option<Uuid>,
        #[graphql(desc = "Only slots on or after this local day of the city.")] from: Option<Date>,
        #[graphql(desc = "Only slots on or before this local day of the city.")] to: Option<Date>,
        #[graphql(desc = "Only bookings in this status.")] status: Option<
            crate::city_bookings::BookingStatus,
        >,
    ) -> Result<crate::city_bookings::CityBookingConnection> {
        crate::city_bookings::page(
            ctx,
            self.tenant,
            crate::city_bookings::filter(venue_id, from.map(|d| d.0), to.map(|d| d.0), status),
            first,
            after,
        )
        .await
    }

    /// A resident by ticket number; null when there is none. Audited.
    async fn resident(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The vaccination ticket number.")] ticket_no: String,
    ) -> Result<Option<Resident>> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Residents, Act::Read).await?;
        let found = setup::resident_by_ticket(&mut scope, &ticket_no)
            .await
            .map_err(lookup_error)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(found.map(Resident::from))
    }

    /// The city's eligible residents, a page at a time, in ticket-number order (API key scope
    /// `residents:read`; city admins, city staff, the call centre, auditors). Paging on with
    /// `after: pageInfo.endCursor` until `hasNextPage` is false sees every resident that existed
    /// when paging began exactly once. Personal data: each page is recorded in the audit log
    /// (`residents.list`). Counts its fields once per started ten of `first` in the complexity.
    #[graphql(
        complexity = "2 + child_complexity.max(1) * (first.clamp(1, 200) as usize).div_ceil(10)"
    )]
    async fn residents(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, desc = "Page size, 1–200.")] first: i64,
        #[graphql(desc = "Continue after this cursor (an edge's `cursor` or `endCursor`).")]
        after: Option<String>,
        #[graphql(
            desc = "Digits: a ticket-number prefix; other text: part of the kana name (hiragana, half-width and spaces do not matter). Keep it the same while paging."
        )]
        search: Option<String>,
    ) -> Result<crate::residents::ResidentConnection> {
        crate::residents::page(ctx, self.tenant, first, after, search).await
    }

    /// A venue's intake list of one local day (default: the city's today), by appointment time,
    /// with each booking's intake status, questionnaire flags and side effects, as the intake page
    /// shows it (API key scope `intake:read`; staff who may do intake at the venue — venue and
    /// hospital staff at their own venues). Personal and health data: the view is recorded in the
    /// audit log (`intake.list.view`).
    #[graphql(complexity = "5 + child_complexity.max(1) * 30")]
    async fn intake_list(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The venue.")] venue_id: Uuid,
        #[graphql(desc = "The local day (YYYY-MM-DD); default: today in the city.")] day: Option<
            crate::scalars::Date,
        >,
    ) -> Result<Vec<crate::intake::IntakeEntry>> {
        crate::intake::day_list(ctx, self.tenant, venue_id, day).await
    }

    /// One booking at a venue as the visit page shows it, with every side-effect note of the
    /// resident (medical data; API key scope `intake:read`, the same people as `intakeList`);
    /// null when the venue has no such live booking. The view is audited (`intake.visit.view`).
    async fn intake_visit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The venue.")] venue_id: Uuid,
        #[graphql(desc = "The booking.")] booking_id: Uuid,
    ) -> Result<Option<crate::intake_visit::IntakeVisit>> {
        crate::intake_visit::visit(ctx, self.tenant, venue_id, booking_id).await
    }

    /// The city's vaccination records (doses given, as recorded at intake), a page at a time in
    /// the order they were recorded (API key scope `records:read`; city admins, city staff,
    /// auditors). Each page is recorded in the audit log (`vaccinations.list`). Counts its fields
    /// once per started ten of `first` in the complexity.
    #[graphql(
        complexity = "2 + child_complexity.max(1) * (first.clamp(1, 200) as usize).div_ceil(10)"
    )]
    async fn vaccinations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, desc = "Page size, 1–200.")] first: i64,
        #[graphql(desc = "Continue after this cursor (an edge's `cursor` or `endCursor`).")]
        after: Option<String>,
        #[graphql(desc = "Only this resident's doses.")] resident_id: Option<Uuid>,
        #[graphql(desc = "Only doses given at this venue.")] venue_id: Option<Uuid>,
    ) -> Result<crate::intake::VaccinationConnection> {
        let filter = platform::intake::records::RecordFilter {
            resident: resident_id,
            venue: venue_id,
        };
        crate::intake::vaccinations(ctx, self.tenant, filter, first, after).await
    }

    /// An eligible-resident import with its outcome and per-row errors (API key scope
    /// `imports:write`; city admins and city staff); null when the city has no such import.
    async fn resident_import(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The import's id, from `startResidentImport`.")] id: Uuid,
    ) -> Result<Option<crate::imports::ResidentImport>> {
        crate::imports::get(ctx, self.tenant, id).await
    }

    /// One export with its progress and, once done, its download link (API key scope
    /// `exports:read`; city admins, city staff, auditors); null when the city has no such export.
    async fn export(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The export's id, from `startExport`.")] id: Uuid,
    ) -> Result<Option<crate::exports::Export>> {
        crate::exports::get(ctx, self.tenant, &self.slug, id).await
    }

    /// The city's event webhook subscriptions, oldest first (API key scope `webhooks:read`; city
    /// admins, auditors). A city has at most 20, so this is a plain list.
    async fn webhook_subscriptions(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::webhooks::WebhookSubscription>> {
        crate::webhooks::list(ctx, self.tenant).await
    }

    /// The city's webhook delivery log, a page at a time, newest first: every attempt of every
    /// event to every endpoint, with its outcome (API key scope `webhooks:read`; city admins,
    /// auditors). `first` is 1–200 (default 50) and counts the fields once per started ten in
    /// the complexity.
    #[graphql(
        complexity = "2 + child_complexity.max(1) * (first.clamp(1, 200) as usize).div_ceil(10)"
    )]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, desc = "Page size, 1–200.")] first: i64,
        #[graphql(desc = "Continue after this cursor (an edge's `cursor` or `endCursor`).")]
        after: Option<String>,
        #[graphql(desc = "Only this subscription's attempts.")] subscription_id: Option<Uuid>,
    ) -> Result<crate::webhook_log::WebhookDeliveryConnection> {
        crate::webhook_log::page(ctx, self.tenant, first, after, subscription_id).await
    }

    /// The city's exports, newest first, a page at a time (API key scope `exports:read`).
    #[graphql(
        complexity = "2 + child_complexity.max(1) * (first.clamp(1, 200) as usize).div_ceil(10)"
    )]
    async fn exports(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "Page size, 1–200.")] first: i64,
        #[graphql(desc = "Continue after this cursor (an edge's `cursor` or `endCursor`).")]
        after: Option<String>,
    ) -> Result<crate::exports::ExportConnection> {
        crate::exports::page(ctx, self.tenant, &self.slug, first, after).await
    }

    /// The newest audit entries (city admins and auditors), at most `limit` (1–1000). Counts its
    /// fields once per started ten of `limit` in the complexity. Deprecated: a plain list cannot
    /// be paged; `auditEntries` is its connection.
    #[graphql(
        complexity = "1 + child_complexity.max(1) * (limit.clamp(1, 1000) as usize).div_ceil(10)",
        deprecation = "Use `auditEntries` (a connection: `first`, `after`) instead; removed after 2027-06-30."
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default = 100,
            desc = "At most this many entries (1–1000), newest first."
        )]
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        crate::audit::recent(ctx, self.tenant, limit).await
    }

    /// The city's audit log, a page at a time, newest first (API key scope `audit:read`; city
    /// admins and auditors). Ordered by time, then id, which never change: paging on with
    /// `after: pageInfo.endCursor` until `hasNextPage` is false sees every entry that existed when
    /// paging began exactly once, however many are recorded meanwhile (new ones come before the
    /// first page). `first` is 1–200 (default 50) and counts the fields once per started ten in
    /// the complexity.
    #[graphql(
        complexity = "2 + child_complexity.max(1) * (first.clamp(1, 200) as usize).div_ceil(10)"
    )]
    async fn audit_entries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, desc = "Page size, 1–200.")] first: i64,
        #[graphql(desc = "Continue after this cursor (an edge's `cursor` or `endCursor`).")]
        after: Option<String>,
    ) -> Result<crate::audit::AuditEntryConnection> {
        crate::audit::page(ctx, self.tenant, first, after).await
    }
}

/// City configuration changes (API key scope `config:write`, or a city admin's session). Each is
/// recorded in the audit log with the key or person.
#[derive(Default)]
pub struct AdminMutation;

/// A capacity schedule: slots of `slotMinutes` from `startTime` to `endTime` on `weekdays`
/// between `validFrom` and `validUntil`, except `closedDates`.
#[derive(InputObject)]
pub struct ScheduleInput {
    /// The venue the slots are for.
    venue_id: Uuid,
    /// The days of the week with slots (at least one).
    weekdays: Vec<Weekday>,
    /// HH:MM, local time of the city: start of the first slot of a day.
    start_time: String,
    /// HH:MM, local time of the city: end of the last slot of a day (after `startTime`).
    end_time: String,
    /// Length of one slot in minutes.
    slot_minutes: i32,
    /// Seats per slot.
    capacity: i32,
    /// First day with slots.
    valid_from: Date,
    /// Last day with slots.
    valid_until: Date,
    /// Days without slots.
    #[graphql(default)]
    closed_dates: Vec<Date>,
}

/// What `createVaccine` did: the new vaccine, or why not (`errors`, nothing changed).
#[derive(SimpleObject)]
pub struct CreateVaccinePayload {
    /// The vaccine created (null when `errors` is not empty).
    vaccine: Option<Vaccine>,
    /// Why nothing was created (empty on success).
    errors: Vec<UserError>,
}

impl Payload for CreateVaccinePayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            vaccine: None,
            errors,
        }
    }
}

/// What `createVenue` did: the new venue, or why not (`errors`, nothing changed).
#[derive(SimpleObject)]
pub struct CreateVenuePayload {
    /// The venue created (null when `errors` is not empty).
    venue: Option<Venue>,
    /// Why nothing was created (empty on success).
    errors: Vec<UserError>,
}

impl Payload for CreateVenuePayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            venue: None,
            errors,
        }
    }
}

/// What `createSchedule` did: the schedule and the slots it generated, or why not.
#[derive(SimpleObject)]
pub struct CreateSchedulePayload {
    /// The schedule saved (null when `errors` is not empty).
    schedule: Option<Schedule>,
    /// Slots generated (slots that existed already at the same start are kept, not counted).
    slots_created: i64,
    /// Why nothing was saved (empty on success).
    errors: Vec<UserError>,
}

impl Payload for CreateSchedulePayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            schedule: None,
            slots_created: 0,
            errors,
        }
    }
}

/// What `setSlotCapacity` did: the slot with its new capacity, or why not.
#[derive(SimpleObject)]
pub struct SetSlotCapacityPayload {
    /// The slot as it is now (null when `errors` is not empty).
    slot: Option<Slot>,
    /// Why nothing changed (empty on success).
    errors: Vec<UserError>,
}

impl Payload for SetSlotCapacityPayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self { slot: None, errors }
    }
}

async fn tenant_of(ctx: &Context<'_>, slug: &str) -> Result<TenantId, ApiError> {
    let pool = ctx
        .data::<PgPool>()
        .map_err(|e| ApiError::Internal(e.message))?;
    tenants::find_by_slug(pool, slug)
        .await?
        .map(|t| t.id)
        .ok_or_else(|| ApiError::NotFound("city".into()))
}

/// A setup refusal about its input field; `not_found` names the field an unknown id was in.
fn setup_refusal(e: setup::SetupError, not_found: Option<&str>) -> Refusal {
    match e {
        setup::SetupError::Invalid { field, reason } => {
            let field = payload::camel(field);
            ApiError::Validation(format!("{field}: {reason}")).on(Some(&field))
        }
        setup::SetupError::NotFound => {
            let what = not_found.map_or("object", |f| f.trim_end_matches("Id"));
            ApiError::NotFound(what.into()).on(not_found)
        }
        setup::SetupError::Conflict(m) => ApiError::Conflict(m).into(),
        setup::SetupError::Database(e) => e.into(),
    }
}

/// A setup error outside a mutation (a lookup): a top-level error.
fn lookup_error(e: setup::SetupError) -> ApiError {
    match e {
        setup::SetupError::Invalid { field, reason } => {
            ApiError::Validation(format!("{}: {reason}", payload::camel(field)))
        }
        setup::SetupError::NotFound => ApiError::NotFound("object".into()),
        setup::SetupError::Conflict(m) => ApiError::Conflict(m),
        setup::SetupError::Database(e) => e.into(),
    }
}

fn hh_mm(field: &str, raw: &str) -> Result<chrono::NaiveTime, Refusal> {
    chrono::NaiveTime::parse_from_str(raw.trim(), "%H:%M").map_err(|_| {
        ApiError::Validation(format!("{field}: use HH:MM, e.g. 09:00")).on(Some(field))
    })
}

#[Object]
impl AdminMutation {
    /// Adds a vaccine product to the city.
    async fn create_vaccine(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The vaccine.")] input: VaccineInput,
    ) -> Result<CreateVaccinePayload> {
        let tenant = tenant_of(ctx, &city).await?;
        let mut scope = auth::enter(ctx, tenant, Obj::Vaccines, Act::Write).await?;
        payload::answer(
            async {
                let id = setup::create_vaccine(
                    &mut scope,
                    &setup::NewVaccine {
                        name: input.name,
                        maker: input.maker,
                        doses: input.doses,
                        min_interval_days: input.min_interval_days,
                        booster_interval_months: input.booster_interval_months,
                        days_until_effective: input.days_until_effective,
                        validity_days: input.validity_days,
                    },
                )
                .await
                .map_err(|e| setup_refusal(e, None))?;
                let vaccine = setup::vaccine(&mut scope, id)
                    .await
                    .map_err(|e| setup_refusal(e, None))?;
                scope.commit().await?;
                Ok(CreateVaccinePayload {
                    vaccine: Some(vaccine.into()),
                    errors: Vec::new(),
                })
            }
            .await,
        )
    }

    /// Adds a venue to the city.
    async fn create_venue(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The venue.")] input: VenueInput,
    ) -> Result<CreateVenuePayload> {
        let tenant = tenant_of(ctx, &city).await?;
        let mut scope = auth::enter(ctx, tenant, Obj::Venues, Act::Write).await?;
        payload::answer(
            async {
                let id = setup::create_venue(
                    &mut scope,
                    &setup::NewVenue {
                        name: input.name,
                        address: input.address,
                        kind: input.kind.as_platform().to_owned(),
                        vaccine_id: input.vaccine_id,
                        booking_opens_at: input.booking_opens_at.map(|t| t.0),
                        booking_deadline_hours: input.booking_deadline_hours,
                        cancel_cutoff_days: input.cancel_cutoff_days,
                    },
                )
                .await
                .map_err(|e| setup_refusal(e, Some("vaccineId")))?;
                let venue = setup::venue(&mut scope, id)
                    .await
                    .map_err(|e| setup_refusal(e, None))?;
                scope.commit().await?;
                Ok(CreateVenuePayload {
                    venue: Some(venue.into()),
                    errors: Vec::new(),
                })
            }
            .await,
        )
    }

    /// Saves a capacity schedule and generates its slots at once.
    async fn create_schedule(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The schedule.")] input: ScheduleInput,
    ) -> Result<CreateSchedulePayload> {
        let tenant = tenant_of(ctx, &city).await?;
        let mut scope = auth::enter(ctx, tenant, Obj::Venue(input.venue_id), Act::Write).await?;
        payload::answer(
            async {
                let (id, slots_created) = setup::create_schedule(
                    &mut scope,
                    &setup::NewSchedule {
                        venue_id: input.venue_id,
                        weekdays: input.weekdays.iter().map(|d| d.iso()).collect(),
                        start_time: hh_mm("startTime", &input.start_time)?,
                        end_time: hh_mm("endTime", &input.end_time)?,
                        slot_minutes: input.slot_minutes,
                        capacity: input.capacity,
                        valid_from: input.valid_from.0,
                        valid_until: input.valid_until.0,
                        closed_dates: input.closed_dates.iter().map(|d| d.0).collect(),
                    },
                )
                .await
                .map_err(|e| setup_refusal(e, Some("venueId")))?;
                let schedule = setup::schedule(&mut scope, input.venue_id, id)
                    .await
                    .map_err(|e| setup_refusal(e, None))?;
                scope.commit().await?;
                Ok(CreateSchedulePayload {
                    schedule: Some(schedule.into()),
                    slots_created: i64::try_from(slots_created).unwrap_or(i64::MAX),
                    errors: Vec::new(),
                })
            }
            .await,
        )
    }

    /// Sets one slot's capacity (never below what is booked: a VALIDATION user error).
    async fn set_slot_capacity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The venue of the slot.")] venue_id: Uuid,
        #[graphql(desc = "The slot.")] slot_id: Uuid,
        #[graphql(desc = "Seats in the slot (0–10,000; not below those booked).")] capacity: i32,
    ) -> Result<SetSlotCapacityPayload> {
        let tenant = tenant_of(ctx, &city).await?;
        let mut scope = auth::enter(ctx, tenant, Obj::Venue(venue_id), Act::Write).await?;
        payload::answer(
            async {
                setup::set_slot_capacity(&mut scope, venue_id, slot_id, capacity)
                    .await
                    .map_err(|e| setup_refusal(e, Some("slotId")))?;
                let slot = setup::slot(&mut scope, venue_id, slot_id)
                    .await
                    .map_err(|e| setup_refusal(e, Some("slotId")))?;
                scope.commit().await?;
                Ok(SetSlotCapacityPayload {
                    slot: Some(slot.into()),
                    errors: Vec::new(),
                })
            }
            .await,
        )
    }
}
