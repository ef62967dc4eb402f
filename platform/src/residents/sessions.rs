//! The resident sessions this process checked lately, so a page view with a session cookie does
//! not cost a database round trip when nothing changed (docs/architecture.md, "Caches and the
//! change feed").
//!
//! * Keyed by the SHA-256 of the token (the token itself is never kept), with the city it belongs
//!   to; holds the session as read (resident, CSRF token, ticket number).
//! * An entry is believed for [`SESSION_CACHE_TTL`] after its read, and **never past the
//!   session's own expiry** (the database tells how long the session has left, so the server's
//!   clock does not matter).
//! * **Logout** drops the entry at once in this process ([`SessionCache::forget`], called by the
//!   resident desk after the deleting transaction commits) and, through the change feed, in every
//!   other process (the delete announces it in its own transaction: `crate::changes`).
//! * The city's status is not kept here: the desk reads it through the tenant cache on every call
//!   (a suspension is refused at once in the process that made it, elsewhere when the feed
//!   delivers it, at most [`crate::tenant_cache::TENANT_TTL`] later without the feed).
//! * At most [`SESSION_CACHE_MAX`] entries: expired ones are swept (at most once a second) when it
//!   is full, and while it is still full new sessions are simply checked in the database.
//! * A read that raced a forget is not stored ([`SessionCache::generation`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tenants::TenantId;

use crate::residents::auth::ResidentSession;

/// How long a session read from the database is believed (never past its own expiry).
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(5);

/// The most sessions one process remembers (~250 bytes each: ~12 MB when full).
pub const SESSION_CACHE_MAX: usize = 50_000;

/// Sweeps of a full cache happen at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The SHA-256 of a session token.
pub type SessionKey = [u8; 32];

struct Entry {
    tenant: TenantId,
    until: Instant,
    session: ResidentSession,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<SessionKey, Entry>,
    swept: Option<Instant>,
}

/// Cheap to clone; clones share the entries.
#[derive(Clone, Default)]
pub struct SessionCache {
    inner: Arc<RwLock<Inner>>,
    /// Counts forgets; a fill whose read began before one is not stored.
    forgets: Arc<AtomicU64>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl SessionCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session of `key` in `tenant`, if this process read it less than
    /// [`SESSION_CACHE_TTL`] ago, it has not expired and nothing dropped it since.
    pub fn get(&self, tenant: TenantId, key: &SessionKey) -> Option<ResidentSession> {
        let inner = self.read();
        let e = inner.entries.get(key)?;
        (e.tenant == tenant && Instant::now() < e.until).then(|| e.session.clone())
    }

    /// Take this before reading a session from the database and hand it to
    /// [`SessionCache::remember`]: a forget in between keeps the read out of the cache.
    pub fn generation(&self) -> u64 {
        self.forgets.load(Ordering::SeqCst)
    }

    /// Remembers a session read from the database when `generation` was current; `valid_for` is
    /// how long the session had left then.
    pub fn remember(
        &self,
        generation: u64,
        tenant: TenantId,
        key: SessionKey,
        session: ResidentSession,
        valid_for: Duration,
    ) {
        let believed = valid_for.min(SESSION_CACHE_TTL);
        if believed.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut inner = self.write();
        if self.forgets.load(Ordering::SeqCst) != generation {
            return;
        }
        if inner.entries.len() >= SESSION_CACHE_MAX && !inner.entries.contains_key(&key) {
            if inner
                .swept
                .is_some_and(|at| now.duration_since(at) < SWEEP_EVERY)
            {
                return;
            }
            inner.swept = Some(now);
            inner.entries.retain(|_, e| now < e.until);
            if inner.entries.len() >= SESSION_CACHE_MAX {
                return;
            }
        }
        inner.entries.insert(
            key,
            Entry {
                tenant,
                until: now + believed,
                session,
            },
        );
    }

    /// Drops one session (it ended).
    pub fn forget(&self, key: &SessionKey) {
        let mut inner = self.write();
        self.forgets.fetch_add(1, Ordering::SeqCst);
        inner.entries.remove(key);
    }

    /// Drops every session of a city.
    pub fn forget_tenant(&self, tenant: TenantId) {
        let mut inner = self.write();
        self.forgets.fetch_add(1, Ordering::SeqCst);
        inner.entries.retain(|_, e| e.tenant != tenant);
    }

    /// Drops everything.
    pub fn clear(&self) {
        let mut inner = self.write();
        self.forgets.fetch_add(1, Ordering::SeqCst);
        inner.entries.clear();
    }

    /// How many sessions are remembered (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn session() -> ResidentSession {
        ResidentSession {
            resident_id: Uuid::new_v4(),
            csrf_token: "csrf".into(),
            ticket_no: "T1".into(),
        }
    }

    #[test]
    fn entries_follow_forgets_tenants_and_expiry() {
        let cache = SessionCache::new();
        let (a, b) = (TenantId(Uuid::new_v4()), TenantId(Uuid::new_v4()));
        let g = cache.generation();
        cache.remember(g, a, [1; 32], session(), Duration::from_secs(3600));
        cache.remember(g, b, [2; 32], session(), Duration::from_secs(3600));
        assert!(cache.get(a, &[1; 32]).is_some());
        // another city's key is no session here
        assert!(cache.get(b, &[1; 32]).is_none());
        cache.forget(&[1; 32]);
        assert!(cache.get(a, &[1; 32]).is_none());
        assert!(cache.get(b, &[2; 32]).is_some());
        cache.forget_tenant(b);
        assert!(cache.is_empty());
        // a session with no time left is not remembered
        let g = cache.generation();
        cache.remember(g, a, [3; 32], session(), Duration::ZERO);
        assert!(cache.get(a, &[3; 32]).is_none());
    }

    #[test]
    fn a_read_that_raced_a_forget_is_not_kept() {
        let cache = SessionCache::new();
        let t = TenantId(Uuid::new_v4());
        let before = cache.generation();
        // the logout lands while the read is on its way
        cache.forget(&[9; 32]);
        cache.remember(before, t, [9; 32], session(), Duration::from_secs(3600));
        assert!(cache.get(t, &[9; 32]).is_none());
    }
}
