//! The resident desk: the one door through which the resident site (`resident-ui`) and the
//! resident GraphQL fields (`graphql/src/booking.rs`) reach a city. A front end parses its input,
//! calls one function here and renders the answer; it opens no transaction and checks no rule. Both
//! front ends therefore give the same answer to the same request.
//!
//! Rules kept here, once:
//!
//! * **Entering.** Every call needs a capability that only this module makes:
//!   [`Visit`] (a city by its slug: public pages, availability, the login steps),
//!   [`Resident`] (a live session: cookie on the site via [`ResidentDesk::resident`], bearer token in
//!   the API via [`ResidentDesk::resident_of`]) or [`Bearer`] (a token whose city is open; its session
//!   is checked by the call that uses it — the fast booking path checks it inside its one statement).
//! * **City status.** A city that does not exist is [`DeskError::NoSuchCity`] (a token naming one is
//!   signed out). A **suspended** city is refused on every call with [`DeskError::Suspended`] — a
//!   message saying so, no data; onboarding and active cities are served. The city is read through a
//!   per-process cache ([`crate::tenant_cache::TENANT_TTL`], 1 s) that the status change drops at
//!   once in its own process and, through the change feed ([`crate::changes`]), in every other
//!   one within the feed's delay (at most the TTL while a listener is down).
//! * **Sessions** are checked through a per-process cache ([`crate::residents::sessions`]): a
//!   session read from the database is believed for
//!   [`crate::residents::sessions::SESSION_CACHE_TTL`] (5 s, never past its expiry), so a page
//!   view with a session cookie costs no round trip when nothing changed. A logout drops it at
//!   once here and, through the change feed, elsewhere. A session read from the database comes
//!   with the city's status read in the same statement; a remembered one is checked against the
//!   city as the tenant cache has it (above).
//! * **Booking path.** [`ResidentDesk::book`] / [`ResidentDesk::book_as_bearer`] choose it: the
//!   commonest booking — the resident alone, dose 1, one slot, no questionnaire — goes through the
//!   [`Batcher`] (one round trip: alone, `book_first_dose`; with others waiting, one
//!   `book_first_doses` statement for all). Everything else — companions (a group), dose 2 or a
//!   booster, dose 2 booked with dose 1, a group allowed into the adjacent slot, **a questionnaire**,
//!   and whatever the fast path leaves open — takes the general path: one tenant transaction in which
//!   companions are identified (ticket number + birth date; one answer for any mismatch), the booking
//!   is made ([`booking::book_in`]) and the questionnaire is saved.
//! * **Questionnaire.** Saved in the SAME transaction as the booking it came with: if it cannot be
//!   saved (too long, or the database refuses it), nothing is booked — no seat, no booking row, no
//!   notification job — and the resident is told why. That is why a booking with a questionnaire never
//!   takes the fast path: the one-statement functions carry no questionnaire.
//! * **Cache invalidation.** A booking drops its venues' availability at once; a change or a cancel
//!   drops the city's (the old venue is not at hand), so a resident sees their own change immediately.
//! * **Idempotency keys** are the front end's key prefixed with the channel and the resident
//!   (`web:<resident>:…` on the site, `api:<resident>:…` in the API), so one client can never replay
//!   another's request.

use std::sync::Arc;

use chrono::NaiveDate;
use sqlx::PgPool;
use tenants::{Tenant, TenantId, TenantStatus};
use uuid::Uuid;

use crate::booking::availability::{AvailabilityCache, DayAvailability, SlotAvailability, Venue};
use crate::booking::batch::{BatchStats, Batcher};
use crate::booking::{self, BookRequest, Booking, BookingError, Caller, Dose, FastOutcome, Pass};
use crate::i18n::Lang;
use crate::intake::{self, Answers};
use crate::residents::auth::{self, CodeSecret, CodeSent, NewSession};
use crate::residents::sessions::SessionCache;
use crate::tenant_cache::TenantCache;

pub use crate::residents::desk_error::DeskError;

/// The resident desk of one process: the runtime pool, the hot availability, tenant and session
/// caches, the booking batches and the login-code secret. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ResidentDesk {
    pool: PgPool,
    availability: AvailabilityCache,
    tenants: TenantCache,
    sessions: SessionCache,
    booker: Batcher,
    secret: CodeSecret,
}

/// Counts a resident booking decision (the booking counter, `booking::record_decision`).
fn count(tenant: tenants::TenantId, decided: &Result<Vec<Booking>, DeskError>) {
    let outcome = match decided {
        Ok(_) => "booked",
        Err(DeskError::Booking(e)) => e.outcome(),
        Err(DeskError::SignedOut | DeskError::Login(_)) => "signed_out",
        Err(DeskError::NoSuchCity) => "not_found",
        Err(DeskError::Suspended) => "suspended",
        Err(DeskError::CompanionNotRecognised | DeskError::Questionnaire { .. }) => "invalid",
        Err(DeskError::Database(_)) => "error",
    };
    booking::record_decision(tenant, booking::Door::Resident, outcome);
}

/// What every capability of the desk has: an open city. Sealed: only this module makes them.
pub trait Entered: sealed::Sealed {
    fn tenant(&self) -> &Tenant;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Visit {}
    impl Sealed for super::Resident {}
    impl Sealed for super::Bearer {}
}

/// A city entered by its slug: it exists and is not suspended.
#[derive(Debug, Clone)]
pub struct Visit {
    tenant: Tenant,
}

impl Entered for Visit {
    fn tenant(&self) -> &Tenant {
        &self.tenant
    }
}

/// Which front end a resident came through: decides the prefix of their idempotency keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Site,
    Api,
}

/// A resident with a live session in an open city.
#[derive(Clone)]
pub struct Resident {
    tenant: Tenant,
    session: auth::ResidentSession,
    token: String,
    channel: Channel,
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resident")
            .field("tenant", &self.tenant.slug)
            .field("resident_id", &self.session.resident_id)
            .finish_non_exhaustive()
    }
}

impl Entered for Resident {
    fn tenant(&self) -> &Tenant {
        &self.tenant
    }
}

impl Resident {
    pub fn id(&self) -> Uuid {
        self.session.resident_id
    }
    /// The CSRF token bound to the session (the site's forms carry it).
    pub fn csrf_token(&self) -> &str {
        &self.session.csrf_token
    }
    pub fn ticket_no(&self) -> &str {
        &self.session.ticket_no
    }
    /// The stored idempotency key: the front end's key, checked (8–200 characters, one line;
    /// `booking::keys::client_key`), after the channel and the resident.
    fn key(&self, key: &str) -> Result<String, BookingError> {
        let channel = match self.channel {
            Channel::Site => "web",
            Channel::Api => "api",
        };
        Ok(format!(
            "{channel}:{}:{}",
            self.id(),
            crate::booking::client_key(key)?
        ))
    }
}

/// A bearer token whose city is open. Its session is checked by the call that uses it.
#[derive(Clone)]
pub struct Bearer {
    tenant: Tenant,
    token: String,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bearer")
            .field("tenant", &self.tenant.slug)
            .finish_non_exhaustive()
    }
}

impl Entered for Bearer {
    fn tenant(&self) -> &Tenant {
        &self.tenant
    }
}

/// Another person of a group booking, as the resident typed them. `birth_date: None` is a date
/// that could not be read: refused like any other mismatch.
#[derive(Debug, Clone)]
pub struct Companion {
    pub ticket_no: String,
    pub birth_date: Option<NaiveDate>,
}

/// A booking as a front end asks for it, parsed (a dose is a [`Dose`], never a default).
#[derive(Debug, Clone)]
pub struct BookOrder {
    pub slot: Uuid,
    pub dose: Dose,
    /// Up to the city's group size; everyone gets a seat, or nobody does.
    pub companions: Vec<Companion>,
    /// Dose 2 in this slot in the same step (cities that offer it).
    pub second_dose_slot: Option<Uuid>,
    /// A group may be split over the chosen slot and the one right before or after it.
    pub allow_adjacent_slots: bool,
    /// The resident's own health questionnaire; empty answers are none. Saved with the booking
    /// or not at all.
    pub questionnaire: Answers,
    /// The front end's key for this intended booking (8–200 characters with its prefix).
    pub idempotency_key: String,
}

impl BookOrder {
    /// The request the one-statement path can decide (see the module doc).
    fn is_plain(&self) -> bool {
        self.companions.is_empty()
            && self.second_dose_slot.is_none()
            && self.dose == Dose::First
            && self.questionnaire.is_empty()
    }
}

fn open(tenant: Tenant) -> Result<Tenant, DeskError> {
    match tenant.status {
        TenantStatus::Suspended => Err(DeskError::Suspended),
        TenantStatus::Onboarding | TenantStatus::Active => {
            tenants::record_in_span(tenant.id);
            Ok(tenant)
        }
    }
}

impl ResidentDesk {
    /// `tenants`: the guard's tenant cache ([`crate::staff::authz::Authz::tenant_cache`]), so a
    /// suspension reaches residents and staff at the same moment.
    pub fn new(pool: PgPool, secret: CodeSecret, tenants: TenantCache) -> Self {
        Self {
            booker: Batcher::new(pool.clone()),
            pool,
            availability: AvailabilityCache::new(),
            tenants,
            sessions: SessionCache::new(),
            secret,
        }
    }

    /// The caches this desk reads through, for the change feed to keep honest across processes
    /// ([`crate::changes::listen`]).
    pub fn caches(&self) -> crate::changes::Caches {
        crate::changes::Caches {
            tenants: self.tenants.clone(),
            availability: self.availability.clone(),
            sessions: self.sessions.clone(),
        }
    }

    /// The availability cache this desk fills and invalidates (the API keeps rendered answers
    /// exactly as long as the entries they came from: `AvailabilityCache::is_current`).
    pub fn availability_cache(&self) -> &AvailabilityCache {
        &self.availability
    }

    /// What the booking batches of this process have done so far.
    pub fn batch_stats(&self) -> BatchStats {
        self.booker.stats()
    }

    /// A tenant by slug, through the shared tenant cache (hot public reads do not touch the
    /// database for it).
    async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, sqlx::Error> {
        self.tenants.by_slug(&self.pool, slug).await
    }

    /// A tenant by id, through the shared tenant cache.
    async fn tenant_by_id(&self, id: TenantId) -> Result<Option<Tenant>, sqlx::Error> {
        self.tenants.by_id(&self.pool, id).await
    }

    // -----------------------------------------------------------------------------------------
    // Entering

    /// A city by its slug, for public calls: not found, suspended, or a [`Visit`].
    pub async fn visit(&self, slug: &str) -> Result<Visit, DeskError> {
        let tenant = self
            .tenant_by_slug(slug)
            .await?
            .ok_or(DeskError::NoSuchCity)?;
        Ok(Visit {
            tenant: open(tenant)?,
        })
    }

    /// The resident whose session cookie is `token`, in the city of `visit` (the site).
    pub async fn resident(&self, visit: &Visit, token: &str) -> Result<Resident, DeskError> {
        self.session(visit.tenant.clone(), token, Channel::Site)
            .await
    }

    /// A bearer token's city, checked without touching the database when the city is cached: an
    /// unknown token or city is signed out, a suspended city refused.
    pub async fn bearer(&self, token: &str) -> Result<Bearer, DeskError> {
        let tenant_id = auth::tenant_of_token(token).ok_or(DeskError::SignedOut)?;
        let tenant = self
            .tenant_by_id(tenant_id)
            .await?
            .ok_or(DeskError::SignedOut)?;
        Ok(Bearer {
            tenant: open(tenant)?,
            token: token.to_owned(),
        })
    }

    /// The resident holding a bearer token (the API).
    pub async fn resident_of(&self, bearer: &Bearer) -> Result<Resident, DeskError> {
        self.session(bearer.tenant.clone(), &bearer.token, Channel::Api)
            .await
    }

    async fn session(
        &self,
        tenant: Tenant,
        token: &str,
        channel: Channel,
    ) -> Result<Resident, DeskError> {
        if token.is_empty() || auth::tenant_of_token(token) != Some(tenant.id) {
            return Err(DeskError::SignedOut);
        }
        let key = auth::session_key(token);
        // `tenant` came through the tenant cache and was open (`visit`, `bearer`): a session
        // this process checked moments ago needs no round trip (residents/sessions.rs)
        let (session, tenant) = match self.sessions.get(tenant.id, &key) {
            Some(session) => {
                metrics::counter!("yoyaku_session_cache_total", "result" => "hit").increment(1);
                (session, open(tenant)?)
            }
            None => {
                metrics::counter!("yoyaku_session_cache_total", "result" => "miss").increment(1);
                let generation = self.sessions.generation();
                let check = auth::check_session(&self.pool, tenant.id, token)
                    .await?
                    .ok_or(DeskError::SignedOut)?;
                let tenant = open(Tenant {
                    status: check.status,
                    ..tenant
                })?;
                self.sessions.remember(
                    generation,
                    tenant.id,
                    key,
                    check.session.clone(),
                    check.valid_for,
                );
                (check.session, tenant)
            }
        };
        tenants::record_user_in_span(&format!("resident:{}", session.resident_id));
        Ok(Resident {
            tenant,
            session,
            token: token.to_owned(),
            channel,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Logging in and out

    /// Step 1 of logging in: ticket number + birth date (+ phone the first time) → a code by SMS.
    pub async fn request_code(
        &self,
        visit: &Visit,
        ticket_no: &str,
        birth_date: NaiveDate,
        phone: Option<&str>,
        client_ip: &str,
        lang: Lang,
    ) -> Result<CodeSent, DeskError> {
        Ok(auth::request_code(
            &self.pool,
            &visit.tenant,
            ticket_no,
            birth_date,
            phone,
            client_ip,
            lang,
            &self.secret,
        )
        .await?)
    }

    /// Step 2: the code from the SMS → a session.
    pub async fn verify_code(
        &self,
        visit: &Visit,
        ticket_no: &str,
        code: &str,
    ) -> Result<NewSession, DeskError> {
        Ok(auth::verify_code(&self.pool, &visit.tenant, ticket_no, code).await?)
    }

    /// Ends the resident's session: refused at once by this process, and by every other one
    /// when the change feed delivers the logout (announced in the deleting transaction).
    pub async fn log_out(&self, resident: &Resident) -> Result<(), DeskError> {
        let ended = auth::end_session(&self.pool, resident.tenant.id, &resident.token).await;
        // forgotten even if the delete failed: the next view checks the database again
        self.sessions.forget(&auth::session_key(&resident.token));
        Ok(ended?)
    }

    // -----------------------------------------------------------------------------------------
    // Availability (public)

    /// The city's venues.
    pub async fn venues(&self, at: &impl Entered) -> Result<Vec<Venue>, DeskError> {
        Ok(crate::booking::availability::venues(&self.pool, at.tenant()).await?)
    }

    /// A venue's upcoming slots with their marks (from the cache).
    pub async fn venue_slots(
        &self,
        at: &impl Entered,
        venue: Uuid,
    ) -> Result<Arc<Vec<SlotAvailability>>, DeskError> {
        Ok(self
            .availability
            .venue_slots(&self.pool, at.tenant(), venue)
            .await?)
    }

    /// A venue's days with the best mark of each.
    pub async fn days(
        &self,
        at: &impl Entered,
        venue: Uuid,
    ) -> Result<Vec<DayAvailability>, DeskError> {
        Ok(self
            .availability
            .days(&self.pool, at.tenant(), venue)
            .await?)
    }

    /// A venue's slots on one day (in the city's time zone).
    pub async fn day(
        &self,
        at: &impl Entered,
        venue: Uuid,
        date: NaiveDate,
    ) -> Result<Vec<SlotAvailability>, DeskError> {
        Ok(self
            .availability
            .day(&self.pool, at.tenant(), venue, date)
            .await?)
    }

    /// A slot with its venue, for a confirmation page. `None` for an unknown or past slot.
    pub async fn slot(
        &self,
        at: &impl Entered,
        slot: Uuid,
    ) -> Result<Option<(Venue, SlotAvailability)>, DeskError> {
        // the slot's venue in one read, then its slots from the cache (before: every venue of the
        // city and its slots, one after another — seconds for a city of 500 venues)
        let Some(venue) =
            crate::booking::availability::venue_of_slot(&self.pool, at.tenant(), slot).await?
        else {
            return Ok(None);
        };
        let slots = self.venue_slots(at, venue.id).await?;
        Ok(slots
            .iter()
            .find(|x| x.slot_id == slot)
            .map(|sl| (venue, sl.clone())))
    }

    /// Whether a remembered answer rendered from `slots` may be served again: the city is still
    /// open and the venue's entry is (again, after a re-read of an expired one) the same.
    pub async fn still_current(
        &self,
        tenant: TenantId,
        venue: Uuid,
        slots: &Arc<Vec<SlotAvailability>>,
    ) -> Result<bool, DeskError> {
        let Some(tenant) = self.tenant_by_id(tenant).await? else {
            return Ok(false);
        };
        if tenant.status == TenantStatus::Suspended {
            return Ok(false);
        }
        Ok(self
            .availability
            .revalidate(&self.pool, &tenant, venue, slots)
            .await?)
    }

    // -----------------------------------------------------------------------------------------
    // Bookings

    /// The resident's bookings (their own and those they made for others), live ones first.
    pub async fn my_bookings(&self, resident: &Resident) -> Result<Vec<Booking>, DeskError> {
        Ok(booking::my_bookings(&self.pool, &resident.tenant, resident.id()).await?)
    }

    /// Slots where dose 2 could be booked together with dose 1 in `first_slot`; `None` when the
    /// city does not offer booking both at once.
    pub async fn second_dose_options(
        &self,
        resident: &Resident,
        first_slot: Uuid,
    ) -> Result<Option<Vec<(Uuid, chrono::DateTime<chrono::Utc>)>>, DeskError> {
        Ok(booking::second_dose_options(&self.pool, &resident.tenant, first_slot, 30).await?)
    }

    /// Books what `order` asks for, all or nothing (see the module doc for the path taken), and
    /// counts the decision ([`booking::record_decision`]).
    pub async fn book(
        &self,
        resident: &Resident,
        order: &BookOrder,
    ) -> Result<Vec<Booking>, DeskError> {
        let decided = self.book_uncounted(resident, order).await;
        count(resident.tenant.id, &decided);
        decided
    }

    async fn book_uncounted(
        &self,
        resident: &Resident,
        order: &BookOrder,
    ) -> Result<Vec<Booking>, DeskError> {
        if order.is_plain() {
            let caller = Caller::Resident(resident.id());
            let key = resident.key(&order.idempotency_key)?;
            if let Some(done) = self
                .fast(&resident.tenant, caller, order.slot, &key)
                .await?
            {
                return Ok(done);
            }
        }
        self.book_general(resident, order).await
    }

    /// [`Self::book`] for the holder of a bearer token: the plain booking checks the token inside
    /// its one statement (one round trip in all); anything else checks the session first.
    pub async fn book_as_bearer(
        &self,
        bearer: &Bearer,
        order: &BookOrder,
    ) -> Result<Vec<Booking>, DeskError> {
        let decided = self.book_as_bearer_uncounted(bearer, order).await;
        count(bearer.tenant.id, &decided);
        decided
    }

    async fn book_as_bearer_uncounted(
        &self,
        bearer: &Bearer,
        order: &BookOrder,
    ) -> Result<Vec<Booking>, DeskError> {
        if order.is_plain() {
            let caller = Caller::Token(&bearer.token);
            // the statement prefixes `api:<resident>:` itself
            let key = crate::booking::client_key(&order.idempotency_key)?;
            if let Some(done) = self.fast(&bearer.tenant, caller, order.slot, &key).await? {
                return Ok(done);
            }
        }
        let resident = self.resident_of(bearer).await?;
        self.book_general(&resident, order).await
    }

    /// The one-statement path through the batches. `None`: the general path decides.
    async fn fast(
        &self,
        tenant: &Tenant,
        caller: Caller<'_>,
        slot: Uuid,
        key: &str,
    ) -> Result<Option<Vec<Booking>>, DeskError> {
        match self
            .booker
            .book_first_dose(tenant, caller, slot, key)
            .await?
        {
            FastOutcome::Done(booked) => {
                self.booked(tenant, &booked);
                Ok(Some(booked))
            }
            FastOutcome::Unauthenticated => Err(DeskError::SignedOut),
            FastOutcome::Fallback => Ok(None),
        }
    }

    /// Companions, the booking and the questionnaire in one tenant transaction.
    async fn book_general(
        &self,
        resident: &Resident,
        order: &BookOrder,
    ) -> Result<Vec<Booking>, DeskError> {
        order.questionnaire.validate()?;
        let key = resident.key(&order.idempotency_key)?;
        let tenant = &resident.tenant;
        let mut tx = tenants::begin(&self.pool, tenant.id).await?;
        let mut companions = Vec::with_capacity(order.companions.len());
        for c in &order.companions {
            let found = match c.birth_date {
                Some(born) => crate::residents::find_by_ticket(&mut tx, &c.ticket_no, born).await?,
                None => None,
            };
            companions.push(found.ok_or(DeskError::CompanionNotRecognised)?);
        }
        let adjacent = order.allow_adjacent_slots
            && !companions.is_empty()
            && order.second_dose_slot.is_none();
        let req = BookRequest {
            resident_id: resident.id(),
            slot_id: order.slot,
            dose: order.dose,
            companions,
            second_dose_slot: order.second_dose_slot,
            idempotency_key: key,
        };
        // On any error below the transaction is dropped, i.e. rolled back: no seat, no booking,
        // no notification job, no questionnaire.
        let booked = booking::book_in(&mut tx, tenant, &req, adjacent, Pass::NONE).await?;
        intake::save_resident_answers(&mut tx, tenant.id, resident.id(), &order.questionnaire)
            .await?;
        tx.commit().await?;
        self.booked(tenant, &booked);
        Ok(booked)
    }

    fn booked(&self, tenant: &Tenant, booked: &[Booking]) {
        for b in booked {
            self.availability.invalidate_venue(tenant.id, b.venue_id);
        }
    }

    /// Moves a booking to another slot; the old seat is released only if the new one is taken.
    pub async fn change(
        &self,
        resident: &Resident,
        booking_id: Uuid,
        new_slot: Uuid,
        idempotency_key: &str,
    ) -> Result<Booking, DeskError> {
        let moved = booking::change(
            &self.pool,
            &resident.tenant,
            resident.id(),
            booking_id,
            new_slot,
            &resident.key(idempotency_key)?,
        )
        .await?;
        self.availability.invalidate_tenant(resident.tenant.id);
        Ok(moved)
    }

    /// Cancels a booking and releases its seat at once.
    pub async fn cancel(
        &self,
        resident: &Resident,
        booking_id: Uuid,
        idempotency_key: &str,
    ) -> Result<Booking, DeskError> {
        let cancelled = booking::cancel(
            &self.pool,
            &resident.tenant,
            resident.id(),
            booking_id,
            &resident.key(idempotency_key)?,
        )
        .await?;
        self.availability.invalidate_tenant(resident.tenant.id);
        Ok(cancelled)
    }
}
