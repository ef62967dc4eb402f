//! Availability per venue and day: ○ free, △ few left, × full or past the booking deadline.
//!
//! Reads are served from a small in-memory cache ([`AvailabilityCache`]): a venue-day is read from
//! PostgreSQL at most once per [`CACHE_TTL`] per process, and a booking, change or cancel made
//! through this process drops the affected venue-day at once. Staleness is bounded by the TTL for
//! bookings made by other processes (bookings are not announced on the change feed, so the booking
//! path stays one statement); what staff change — capacity, new slots, the city's booking rules —
//! is announced on the change feed ([`crate::changes`]) and dropped in every process when it
//! arrives (at most the TTL later while a listener is down). Staleness never matters for
//! correctness, because a seat is only ever taken by the conditional UPDATE in `booking.rs`. An
//! expired entry is re-read, and when nothing changed the same entry is kept, so answers rendered
//! from it stay usable without re-rendering.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tenants::{Tenant, TenantId};
use uuid::Uuid;

use crate::booking::{self, BookingSettings};
use crate::i18n::{Lang, pick};

pub const CACHE_TTL: Duration = Duration::from_millis(1000);

/// The availability mark; always shown with its text, never colour alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mark {
    Free,
    FewLeft,
    Full,
}

impl Mark {
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Free => "○",
            Mark::FewLeft => "△",
            Mark::Full => "×",
        }
    }
    pub fn text(self, lang: Lang) -> &'static str {
        match self {
            Mark::Free => pick(lang, "空きあり", "available", "有空位", "disponível"),
            Mark::FewLeft => pick(lang, "残りわずか", "few left", "余位不多", "poucas vagas"),
            Mark::Full => pick(
                lang,
                "満員・受付終了",
                "full or closed",
                "已满或已截止",
                "lotado ou encerrado",
            ),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Free => "FREE",
            Mark::FewLeft => "FEW_LEFT",
            Mark::Full => "FULL",
        }
    }

    /// △ when fewer than `few_left_percent` % or fewer than `few_left_seats` seats are free.
    pub fn of(free: i32, capacity: i32, closed: bool, policy: &BookingSettings) -> Mark {
        if closed || free <= 0 {
            Mark::Full
        } else if i64::from(free) * 100 < i64::from(capacity) * i64::from(policy.few_left_percent)
            || free < policy.few_left_seats
        {
            Mark::FewLeft
        } else {
            Mark::Free
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Venue {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub vaccine_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotAvailability {
    pub slot_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub capacity: i32,
    /// Seats free for dose 1 and boosters (seats held for dose 2 left out while the hold is on).
    pub free: i32,
    /// Seats free for a dose-2 booking (every free seat).
    pub free_dose2: i32,
    pub mark: Mark,
    /// The mark for someone booking dose 2 (differs from `mark` only while seats are held).
    pub mark_dose2: Mark,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayAvailability {
    pub date: NaiveDate,
    pub free: i32,
    pub mark: Mark,
    /// Full for first doses, but seats held for dose 2 are free.
    pub dose2_only: bool,
}

/// id, name, address, vaccine name: what [`Venue`] is read from.
type VenueRow = (Uuid, String, String, String);

impl From<VenueRow> for Venue {
    fn from((id, name, address, vaccine_name): VenueRow) -> Self {
        Venue {
            id,
            name,
            address,
            vaccine_name,
        }
    }
}

pub async fn venues(pool: &PgPool, tenant: &Tenant) -> Result<Vec<Venue>, sqlx::Error> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let rows: Vec<VenueRow> = sqlx::query_as(
        "SELECT v.id, v.name, v.address, x.name FROM venues v \
         JOIN vaccines x ON x.tenant_id = v.tenant_id AND x.id = v.vaccine_id \
         WHERE v.tenant_id = $1 ORDER BY v.name",
    )
    .bind(tenant.id.0)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(Venue::from).collect())
}

/// The venue of a slot of the city (`None`: no such slot in this city).
pub async fn venue_of_slot(
    pool: &PgPool,
    tenant: &Tenant,
    slot: Uuid,
) -> Result<Option<Venue>, sqlx::Error> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let row: Option<VenueRow> = sqlx::query_as(
        "SELECT v.id, v.name, v.address, x.name FROM slots s \
         JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
         JOIN vaccines x ON x.tenant_id = v.tenant_id AND x.id = v.vaccine_id \
         WHERE s.tenant_id = $1 AND s.id = $2",
    )
    .bind(tenant.id.0)
    .bind(slot)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(Venue::from))
}

type Key = (TenantId, Uuid);
type Entries = HashMap<Key, (Instant, Arc<Vec<SlotAvailability>>)>;
/// id, starts_at, ends_at, capacity, booked, booked_dose2, held for dose 2, closed
type SlotRow = (Uuid, DateTime<Utc>, DateTime<Utc>, i32, i32, i32, i32, bool);

/// Hot availability in memory: one venue's upcoming slots per entry.
#[derive(Clone, Default, Debug)]
pub struct AvailabilityCache {
    entries: Arc<RwLock<Entries>>,
    /// Counts the change feed's forgets (not this process's own booking invalidations, which
    /// come by the thousand in a rush): a read that began before one is not stored.
    forgets: Arc<AtomicU64>,
}

impl AvailabilityCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `slots` is still what this cache would answer for the venue: the same entry, not
    /// expired, not invalidated since. Lets a caller keep something derived from the slots (the
    /// API keeps the rendered response) exactly as long as the slots themselves.
    pub fn is_current(
        &self,
        tenant: TenantId,
        venue: Uuid,
        slots: &Arc<Vec<SlotAvailability>>,
    ) -> bool {
        self.entries.read().is_ok_and(|e| {
            e.get(&(tenant, venue)).is_some_and(|(at, current)| {
                at.elapsed() < CACHE_TTL && Arc::ptr_eq(current, slots)
            })
        })
    }

    /// Drops a venue's cached availability (after a booking, change or cancel touching it).
    pub fn invalidate_venue(&self, tenant: TenantId, venue: Uuid) {
        if let Ok(mut e) = self.entries.write() {
            e.remove(&(tenant, venue));
        }
    }

    /// Drops everything cached for a tenant (when the venue of a slot is not known at hand).
    pub fn invalidate_tenant(&self, tenant: TenantId) {
        if let Ok(mut e) = self.entries.write() {
            e.retain(|k, _| k.0 != tenant);
        }
    }

    /// The change feed's drop of one venue (staff changed its capacity or slots): a read already
    /// on its way is not stored either.
    pub fn forget_venue(&self, tenant: TenantId, venue: Uuid) {
        self.forget(|k| *k == (tenant, venue));
    }

    /// The change feed's drop of a city (its booking rules or registry entry changed).
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.forget(|k| k.0 == tenant);
    }

    /// Drops everything (the change feed's listener connected or lost its connection).
    pub fn clear(&self) {
        self.forget(|_| true);
    }

    fn forget(&self, gone: impl Fn(&Key) -> bool) {
        let mut e = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.forgets.fetch_add(1, Ordering::SeqCst);
        e.retain(|k, _| !gone(k));
    }

    /// Every upcoming slot of a venue with its mark. An unknown venue answers an empty list.
    pub async fn venue_slots(
        &self,
        pool: &PgPool,
        tenant: &Tenant,
        venue: Uuid,
    ) -> Result<Arc<Vec<SlotAvailability>>, sqlx::Error> {
        let key = (tenant.id, venue);
        let stale = match self.entries.read().ok().and_then(|e| e.get(&key).cloned()) {
            Some((at, slots)) if at.elapsed() < CACHE_TTL => {
                metrics::counter!("yoyaku_availability_cache_total", "result" => "hit")
                    .increment(1);
                return Ok(slots);
            }
            expired => expired.map(|(_, slots)| slots),
        };
        metrics::counter!("yoyaku_availability_cache_total", "result" => "miss").increment(1);
        let generation = self.forgets.load(Ordering::SeqCst);
        let read = read_venue_slots(pool, tenant, venue).await?;
        // Nothing changed since the expired read (same seats, same marks): keep the same entry,
        // so whatever was derived from it (the API's rendered answers) stays valid for another
        // TTL without being rendered again. An invalidated venue has no entry: always new.
        let fresh = match stale {
            Some(old) if *old == read => old,
            _ => Arc::new(read),
        };
        if let Ok(mut e) = self.entries.write()
            && self.forgets.load(Ordering::SeqCst) == generation
        {
            e.insert(key, (Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// Whether `slots` is (again) what this cache answers for the venue, re-reading an expired
    /// entry from PostgreSQL first: an expired entry whose slots did not change is kept (see
    /// [`AvailabilityCache::venue_slots`]), so an answer derived from it can be served again.
    pub async fn revalidate(
        &self,
        pool: &PgPool,
        tenant: &Tenant,
        venue: Uuid,
        slots: &Arc<Vec<SlotAvailability>>,
    ) -> Result<bool, sqlx::Error> {
        let current = self.venue_slots(pool, tenant, venue).await?;
        Ok(Arc::ptr_eq(&current, slots))
    }

    /// One venue's days with the best mark of the day.
    pub async fn days(
        &self,
        pool: &PgPool,
        tenant: &Tenant,
        venue: Uuid,
    ) -> Result<Vec<DayAvailability>, sqlx::Error> {
        let slots = self.venue_slots(pool, tenant, venue).await?;
        let tz = tenant.time_zone.0;
        let mut days: Vec<DayAvailability> = Vec::new();
        for s in slots.iter() {
            let date = s.starts_at.with_timezone(&tz).date_naive();
            let rank = |m: Mark| match m {
                Mark::Free => 2,
                Mark::FewLeft => 1,
                Mark::Full => 0,
            };
            let held_only = s.mark == Mark::Full && s.mark_dose2 != Mark::Full;
            match days.last_mut() {
                Some(d) if d.date == date => {
                    d.free += if s.mark == Mark::Full { 0 } else { s.free };
                    if rank(s.mark) > rank(d.mark) {
                        d.mark = s.mark;
                    }
                    d.dose2_only |= held_only;
                }
                _ => days.push(DayAvailability {
                    date,
                    free: if s.mark == Mark::Full { 0 } else { s.free },
                    mark: s.mark,
                    dose2_only: held_only,
                }),
            }
        }
        for d in &mut days {
            d.dose2_only &= d.mark == Mark::Full;
        }
        Ok(days)
    }

    /// One venue's slots on one day (in the city's time zone).
    pub async fn day(
        &self,
        pool: &PgPool,
        tenant: &Tenant,
        venue: Uuid,
        date: NaiveDate,
    ) -> Result<Vec<SlotAvailability>, sqlx::Error> {
        let tz = tenant.time_zone.0;
        Ok(self
            .venue_slots(pool, tenant, venue)
            .await?
            .iter()
            .filter(|s| s.starts_at.with_timezone(&tz).date_naive() == date)
            .cloned()
            .collect())
    }
}

async fn read_venue_slots(
    pool: &PgPool,
    tenant: &Tenant,
    venue: Uuid,
) -> Result<Vec<SlotAvailability>, sqlx::Error> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let policy = booking::settings(&mut tx).await?;
    let rows: Vec<SlotRow> = sqlx::query_as(
        "SELECT s.id, s.starts_at, s.ends_at, s.capacity, s.booked, s.booked_dose2, \
                dose2_held_seats(s.capacity, bs.dose2_reserve_percent, bs.dose2_reserve_until), \
                s.starts_at - make_interval(hours => v.booking_deadline_hours) <= now() \
                OR COALESCE(v.booking_opens_at > now(), false) \
         FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
         LEFT JOIN booking_settings bs ON bs.tenant_id = s.tenant_id \
         WHERE s.tenant_id = $1 AND s.venue_id = $2 AND s.starts_at > now() \
         ORDER BY s.starts_at",
    )
    .bind(tenant.id.0)
    .bind(venue)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(
            |(slot_id, starts_at, ends_at, capacity, booked, booked_dose2, held, closed)| {
                let free_dose2 = (capacity - booked).max(0);
                let free = free_dose2
                    .min(capacity - held - (booked - booked_dose2))
                    .max(0);
                SlotAvailability {
                    slot_id,
                    starts_at,
                    ends_at,
                    capacity,
                    free,
                    free_dose2,
                    mark: Mark::of(free, capacity - held, closed, &policy),
                    mark_dose2: Mark::of(free_dose2, capacity, closed, &policy),
                }
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_follow_the_city_thresholds() {
        let p = BookingSettings::default();
        assert_eq!(Mark::of(10, 10, false, &p), Mark::Free);
        assert_eq!(Mark::of(2, 100, false, &p), Mark::FewLeft);
        assert_eq!(Mark::of(19, 100, false, &p), Mark::FewLeft);
        assert_eq!(Mark::of(20, 100, false, &p), Mark::Free);
        assert_eq!(Mark::of(0, 10, false, &p), Mark::Full);
        assert_eq!(Mark::of(10, 10, true, &p), Mark::Full);
    }
}
