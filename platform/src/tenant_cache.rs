//! The tenants this process read lately: the ONE cache of tenant records (status, slug, time zone,
//! languages) that the guard ([`crate::staff::authz::Authz`]) and the resident desk
//! ([`crate::ResidentDesk`]) read a city through, so both see a status change at the same moment.
//!
//! An entry lives [`TENANT_TTL`]; the operator's status change (`staff::set_status`) drops it at
//! once in this process ([`TenantCache::forget`]) and announces it on the change feed
//! ([`crate::changes`]), through which every other process drops it within the feed's delay
//! (milliseconds; at most the TTL while a process's listener is down). Hot public reads
//! (availability, during a rush) therefore cost at most one `SELECT` per tenant per second per
//! process. A read that began before a forget is not stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tenants::{Tenant, TenantId};

/// How long a tenant record read from the database is believed.
pub const TENANT_TTL: Duration = Duration::from_secs(1);

/// Entries beyond which expired ones are swept (ids of tenants that do not exist are remembered
/// too, so a flood of made-up ids costs one read each per TTL).
const SWEEP_AT: usize = 10_000;

#[derive(Default, Debug)]
struct Entries {
    by_id: HashMap<TenantId, (Instant, Option<Tenant>)>,
    by_slug: HashMap<String, (Instant, TenantId)>,
    /// Counts forgets; a read that began before one is not stored.
    forgets: u64,
}

/// Cheap to clone; clones share the entries. Read-mostly: every hot read takes the read lock once.
#[derive(Clone, Default, Debug)]
pub struct TenantCache(Arc<RwLock<Entries>>, Arc<AtomicU64>);

impl TenantCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh_by_id(&self, id: TenantId) -> Option<Option<Tenant>> {
        let e = self.read();
        e.by_id
            .get(&id)
            .filter(|(at, _)| at.elapsed() < TENANT_TTL)
            .map(|(_, t)| t.clone())
    }

    fn fresh_by_slug(&self, slug: &str) -> Option<Tenant> {
        let e = self.read();
        let (at, id) = e.by_slug.get(slug)?;
        if at.elapsed() >= TENANT_TTL {
            return None;
        }
        let (at, tenant) = e.by_id.get(id)?;
        let tenant = tenant.as_ref()?;
        (at.elapsed() < TENANT_TTL && tenant.slug == slug).then(|| tenant.clone())
    }

    fn generation(&self) -> u64 {
        self.1.load(Ordering::SeqCst)
    }

    fn remember(&self, generation: u64, id: TenantId, tenant: Option<Tenant>) {
        let mut e = self.write();
        if e.forgets != generation {
            return;
        }
        if e.by_id.len() > SWEEP_AT {
            e.by_id.retain(|_, (at, _)| at.elapsed() < TENANT_TTL);
            e.by_slug.retain(|_, (at, _)| at.elapsed() < TENANT_TTL);
        }
        let now = Instant::now();
        if let Some(t) = &tenant {
            e.by_slug.insert(t.slug.clone(), (now, id));
        }
        e.by_id.insert(id, (now, tenant));
    }

    /// The tenant with this id (`None`: no such tenant).
    pub async fn by_id(&self, pool: &PgPool, id: TenantId) -> Result<Option<Tenant>, sqlx::Error> {
        if let Some(t) = self.fresh_by_id(id) {
            return Ok(t);
        }
        let generation = self.generation();
        let found = tenants::find_by_id(pool, id).await?;
        self.remember(generation, id, found.clone());
        Ok(found)
    }

    /// The tenant with this slug (`None`: no such tenant; unknown slugs are not remembered).
    pub async fn by_slug(&self, pool: &PgPool, slug: &str) -> Result<Option<Tenant>, sqlx::Error> {
        if let Some(t) = self.fresh_by_slug(slug) {
            return Ok(Some(t));
        }
        let generation = self.generation();
        let found = tenants::find_by_slug(pool, slug).await?;
        if let Some(t) = &found {
            self.remember(generation, t.id, Some(t.clone()));
        }
        Ok(found)
    }

    /// Drops what this process knows of the tenant (its status or settings just changed).
    pub fn forget(&self, id: TenantId) {
        let mut e = self.write();
        e.forgets += 1;
        self.1.store(e.forgets, Ordering::SeqCst);
        e.by_id.remove(&id);
        e.by_slug.retain(|_, (_, t)| *t != id);
    }

    /// Drops everything (the change feed's listener connected or lost its connection).
    pub fn clear(&self) {
        let mut e = self.write();
        e.forgets += 1;
        self.1.store(e.forgets, Ordering::SeqCst);
        e.by_id.clear();
        e.by_slug.clear();
    }
}
