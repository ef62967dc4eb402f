//! City configuration for integrators and staff: vaccines, venues, schedules, slots, resident
//! lookup and the audit log. Every field asks the guard (`auth::enter`) for a scope first; another
//! tenant's city or ids answer NOT_FOUND.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use platform::city::setup;
use platform::staff::authz::{Act, Object as Obj};
use sqlx::PgPool;
use tenants::TenantId;
use uuid::Uuid;

use crate::ApiError;
use crate::auth;

/// City configuration (needs an API key or a staff session).
#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// The configuration of a municipality the caller works for (NOT_FOUND otherwise).
    async fn city(&self, ctx: &Context<'_>, slug: String) -> Result<City> {
        let pool = ctx.data::<PgPool>()?;
        let tenant = tenants::find_by_slug(pool, &slug)
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

pub struct City {
    tenant: TenantId,
    slug: String,
}

#[derive(SimpleObject)]
pub struct Vaccine {
    id: Uuid,
    name: String,
    maker: String,
    doses: i32,
    min_interval_days: i32,
    booster_interval_months: i32,
    days_until_effective: i32,
    validity_days: i32,
}

#[derive(SimpleObject)]
pub struct Venue {
    id: Uuid,
    name: String,
    address: String,
    /// mass or hospital.
    kind: String,
    vaccine_id: Uuid,
    booking_opens_at: Option<DateTime<Utc>>,
    booking_deadline_hours: i32,
    cancel_cutoff_days: i32,
}

impl From<setup::Venue> for Venue {
    fn from(v: setup::Venue) -> Self {
        Self {
            id: v.id,
            name: v.name,
            address: v.address,
            kind: v.kind,
            vaccine_id: v.vaccine_id,
            booking_opens_at: v.booking_opens_at,
            booking_deadline_hours: v.booking_deadline_hours,
            cancel_cutoff_days: v.cancel_cutoff_days,
        }
    }
}

#[derive(SimpleObject)]
pub struct Schedule {
    id: Uuid,
    /// ISO weekdays, 1 = Monday.
    weekdays: Vec<i32>,
    start_time: String,
    end_time: String,
    slot_minutes: i32,
    capacity: i32,
    valid_from: NaiveDate,
    valid_until: NaiveDate,
    closed_dates: Vec<NaiveDate>,
}

#[derive(SimpleObject)]
pub struct Slot {
    id: Uuid,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    capacity: i32,
    booked: i32,
}

/// An eligible resident; every lookup is recorded in the audit log.
#[derive(SimpleObject)]
pub struct Resident {
    id: Uuid,
    ticket_no: String,
    birth_date: NaiveDate,
    kana_name: String,
    sex: String,
    phone: Option<String>,
    email: Option<String>,
    postal_code: Option<String>,
    preferred_locale: Option<String>,
}

impl From<setup::Resident> for Resident {
    fn from(r: setup::Resident) -> Self {
        Self {
            id: r.id,
            ticket_no: r.ticket_no,
            birth_date: r.birth_date,
            kana_name: r.kana_name,
            sex: r.sex,
            phone: r.phone,
            email: r.email,
            postal_code: r.postal_code,
            preferred_locale: r.preferred_locale,
        }
    }
}

#[derive(SimpleObject)]
pub struct AuditEntry {
    at: DateTime<Utc>,
    actor: String,
    action: String,
    object: String,
    ip: Option<String>,
}

#[Object]
impl City {
    async fn slug(&self) -> &str {
        &self.slug
    }

    async fn vaccines(&self, ctx: &Context<'_>) -> Result<Vec<Vaccine>> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Vaccines, Act::Read).await?;
        let list = setup::list_vaccines(&mut scope)
            .await
            .map_err(ApiError::from)?;
        Ok(list
            .into_iter()
            .map(|v| Vaccine {
                id: v.id,
                name: v.name,
                maker: v.maker,
                doses: v.doses,
                min_interval_days: v.min_interval_days,
                booster_interval_months: v.booster_interval_months,
                days_until_effective: v.days_until_effective,
                validity_days: v.validity_days,
            })
            .collect())
    }

    async fn venues(&self, ctx: &Context<'_>) -> Result<Vec<Venue>> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Venues, Act::Read).await?;
        let list = setup::list_venues(&mut scope)
            .await
            .map_err(ApiError::from)?;
        Ok(list.into_iter().map(Venue::from).collect())
    }

    /// One venue (NOT_FOUND for another tenant's id or a venue the caller is not assigned to).
    async fn venue(&self, ctx: &Context<'_>, id: Uuid) -> Result<Venue> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Venue(id), Act::Read).await?;
        match setup::venue(&mut scope, id).await {
            Ok(v) => Ok(v.into()),
            Err(setup::SetupError::Database(e)) => Err(ApiError::from(e).into()),
            Err(_) => Err(ApiError::NotFound("venue".into()).into()),
        }
    }

    async fn schedules(&self, ctx: &Context<'_>, venue_id: Uuid) -> Result<Vec<Schedule>> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Venue(venue_id), Act::Read).await?;
        let list = setup::list_schedules(&mut scope, venue_id)
            .await
            .map_err(ApiError::from)?;
        Ok(list
            .into_iter()
            .map(|s| Schedule {
                id: s.id,
                weekdays: s.weekdays,
                start_time: s.start_time.format("%H:%M").to_string(),
                end_time: s.end_time.format("%H:%M").to_string(),
                slot_minutes: s.slot_minutes,
                capacity: s.capacity,
                valid_from: s.valid_from,
                valid_until: s.valid_until,
                closed_dates: s.closed_dates,
            })
            .collect())
    }

    /// Slots of a venue from `from` (default: now), earliest first, at most `first` (≤ 500).
    /// Counts its fields once per started ten of `first` in the complexity.
    #[graphql(
        complexity = "1 + child_complexity.max(1) * (first.clamp(1, 500) as usize).div_ceil(10)"
    )]
    async fn slots(
        &self,
        ctx: &Context<'_>,
        venue_id: Uuid,
        from: Option<DateTime<Utc>>,
        #[graphql(default = 100)] first: i64,
    ) -> Result<Vec<Slot>> {
        if !(1..=500).contains(&first) {
            return Err(ApiError::Validation("first must be between 1 and 500".into()).into());
        }
        let mut scope = auth::enter(ctx, self.tenant, Obj::Venue(venue_id), Act::Read).await?;
        let list = setup::list_slots(&mut scope, venue_id, from.unwrap_or_else(Utc::now), first)
            .await
            .map_err(ApiError::from)?;
        Ok(list
            .into_iter()
            .map(|s| Slot {
                id: s.id,
                starts_at: s.starts_at,
                ends_at: s.ends_at,
                capacity: s.capacity,
                booked: s.booked,
            })
            .collect())
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
        #[graphql(default = 50)] first: i64,
        after: Option<String>,
        venue_id: Option<Uuid>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        status: Option<crate::city_bookings::BookingStatus>,
    ) -> Result<crate::city_bookings::CityBookingConnection> {
        crate::city_bookings::page(
            ctx,
            self.tenant,
            crate::city_bookings::filter(venue_id, from, to, status),
            first,
            after,
        )
        .await
    }

    /// A resident by ticket number; null when there is none. Audited.
    async fn resident(&self, ctx: &Context<'_>, ticket_no: String) -> Result<Option<Resident>> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Residents, Act::Read).await?;
        let found = setup::resident_by_ticket(&mut scope, &ticket_no)
            .await
            .map_err(setup_error)?;
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
    /// fields once per started ten of `limit` in the complexity.
    #[graphql(
        complexity = "1 + child_complexity.max(1) * (limit.clamp(1, 1000) as usize).div_ceil(10)"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Audit, Act::Read).await?;
        let list = platform::staff::audit::recent(&mut scope, limit.clamp(1, 1000))
            .await
            .map_err(ApiError::from)?;
        Ok(list
            .into_iter()
            .map(|e| AuditEntry {
                at: e.at,
                actor: e.actor,
                action: e.action,
                object: e.object,
                ip: e.ip,
            })
            .collect())
    }
}

/// City configuration changes (API key scope `config:write`, or a city admin's session). Each is
/// recorded in the audit log with the key or person.
#[derive(Default)]
pub struct AdminMutation;

#[derive(InputObject)]
pub struct VaccineInput {
    name: String,
    maker: String,
    doses: i32,
    min_interval_days: i32,
    booster_interval_months: i32,
    days_until_effective: i32,
    validity_days: i32,
}

#[derive(InputObject)]
pub struct VenueInput {
    name: String,
    #[graphql(default)]
    address: String,
    /// mass or hospital.
    kind: String,
    vaccine_id: Uuid,
    booking_opens_at: Option<DateTime<Utc>>,
    #[graphql(default = 24)]
    booking_deadline_hours: i32,
    #[graphql(default = 2)]
    cancel_cutoff_days: i32,
}

#[derive(InputObject)]
pub struct ScheduleInput {
    venue_id: Uuid,
    /// ISO weekdays, 1 = Monday.
    weekdays: Vec<i32>,
    /// HH:MM, local time of the city.
    start_time: String,
    end_time: String,
    slot_minutes: i32,
    capacity: i32,
    valid_from: NaiveDate,
    valid_until: NaiveDate,
    #[graphql(default)]
    closed_dates: Vec<NaiveDate>,
}

/// What a new schedule produced.
#[derive(SimpleObject)]
pub struct ScheduleCreated {
    id: Uuid,
    slots_created: u64,
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

fn setup_error(e: setup::SetupError) -> ApiError {
    match e {
        setup::SetupError::Invalid { field, reason } => {
            ApiError::Validation(format!("{field}: {reason}"))
        }
        setup::SetupError::NotFound => ApiError::NotFound("object".into()),
        setup::SetupError::Conflict(m) => ApiError::Validation(m),
        setup::SetupError::Database(e) => e.into(),
    }
}

fn hh_mm(field: &str, raw: &str) -> Result<chrono::NaiveTime, ApiError> {
    chrono::NaiveTime::parse_from_str(raw.trim(), "%H:%M")
        .map_err(|_| ApiError::Validation(format!("{field}: use HH:MM, e.g. 09:00")))
}

#[Object]
impl AdminMutation {
    async fn create_vaccine(
        &self,
        ctx: &Context<'_>,
        city: String,
        input: VaccineInput,
    ) -> Result<Uuid> {
        let tenant = tenant_of(ctx, &city).await?;
        let mut scope = auth::enter(ctx, tenant, Obj::Vaccines, Act::Write).await?;
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
        .map_err(setup_error)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(id)
    }

    async fn create_venue(
        &self,
        ctx: &Context<'_>,
        city: String,
        input: VenueInput,
    ) -> Result<Uuid> {
        let tenant = tenant_of(ctx, &city).await?;
        let mut scope = auth::enter(ctx, tenant, Obj::Venues, Act::Write).await?;
        let id = setup::create_venue(
            &mut scope,
            &setup::NewVenue {
                name: input.name,
                address: input.address,
                kind: input.kind,
                vaccine_id: input.vaccine_id,
                booking_opens_at: input.booking_opens_at,
                booking_deadline_hours: input.booking_deadline_hours,
                cancel_cutoff_days: input.cancel_cutoff_days,
            },
        )
        .await
        .map_err(setup_error)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(id)
    }

    /// Saves a capacity schedule and generates its slots at once.
    async fn create_schedule(
        &self,
        ctx: &Context<'_>,
        city: String,
        input: ScheduleInput,
    ) -> Result<ScheduleCreated> {
        let tenant = tenant_of(ctx, &city).await?;
        let mut scope = auth::enter(ctx, tenant, Obj::Venue(input.venue_id), Act::Write).await?;
        let (id, slots_created) = setup::create_schedule(
            &mut scope,
            &setup::NewSchedule {
                venue_id: input.venue_id,
                weekdays: input.weekdays,
                start_time: hh_mm("startTime", &input.start_time)?,
                end_time: hh_mm("endTime", &input.end_time)?,
                slot_minutes: input.slot_minutes,
                capacity: input.capacity,
                valid_from: input.valid_from,
                valid_until: input.valid_until,
                closed_dates: input.closed_dates,
            },
        )
        .await
        .map_err(setup_error)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(ScheduleCreated { id, slots_created })
    }

    /// Sets one slot's capacity (never below what is booked: VALIDATION).
    async fn set_slot_capacity(
        &self,
        ctx: &Context<'_>,
        city: String,
        venue_id: Uuid,
        slot_id: Uuid,
        capacity: i32,
    ) -> Result<bool> {
        let tenant = tenant_of(ctx, &city).await?;
        let mut scope = auth::enter(ctx, tenant, Obj::Venue(venue_id), Act::Write).await?;
        setup::set_slot_capacity(&mut scope, venue_id, slot_id, capacity)
            .await
            .map_err(setup_error)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(true)
    }
}
