//! The change feed between server processes: what one process changes, every process's caches
//! forget (docs/architecture.md, "Caches and the change feed").
//!
//! * **One channel** ([`CHANNEL`]), one listener task per process ([`listen`]), holding a
//!   `sqlx::postgres::PgListener` on a connection of its own (not one of the pool's).
//! * **Announced in the writer's own transaction** ([`announce`], `pg_notify`): PostgreSQL
//!   delivers a notification when that transaction commits and never when it rolls back, so a
//!   change that did not happen is never announced, and one that did is announced after it is
//!   visible to every reader.
//! * **What is announced** ([`Change`]): a resident session ended (logout), a city's registry entry
//!   changed (status, settings; the city deleted or imported), staff changed what a venue offers
//!   (capacity, slots), staff changed the city's booking rules (the marks). **Bookings are not
//!   announced**: the booking path (`booking/fast.rs`, `booking/batch.rs`) stays one statement,
//!   and a transaction that notifies takes a database-wide lock while it commits (see "No NOTIFY
//!   per task" in docs/architecture.md). A booking made through another process therefore shows
//!   within the availability cache's TTL ([`crate::booking::availability::CACHE_TTL`], 1 s), as
//!   before; one made through this process drops its venue at once (the resident desk).
//! * **The TTLs stay the bound.** Every cache the feed serves keeps its own TTL
//!   ([`crate::tenant_cache::TENANT_TTL`], [`crate::booking::availability::CACHE_TTL`],
//!   [`crate::residents::sessions::SESSION_CACHE_TTL`]): while the listener is down an entry is
//!   believed at most that long, as without the feed. When the listener (re)connects — and when
//!   it loses its connection — every cache of the process is cleared ([`Caches::clear`]), since
//!   notifications sent meanwhile are lost.
//! * **A fill that raced a change is not kept**: each cache counts the forgets it received, and an
//!   entry whose database read began before a forget is not stored (the request that read it is
//!   still answered with what it read, as it would have been a moment earlier).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use tenants::TenantId;
use uuid::Uuid;

use crate::booking::availability::AvailabilityCache;
use crate::residents::sessions::{SessionCache, SessionKey};
use crate::tenant_cache::TenantCache;

/// The one notification channel of the change feed.
pub const CHANNEL: &str = "yoyaku_changes";

/// The first wait before connecting the listener again after a failure (doubled up to
/// [`RETRY_MAX`]).
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// One change every process must hear of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A resident session ended (logout): the SHA-256 of its token, never the token.
    SessionEnded { tenant: TenantId, key: SessionKey },
    /// A city's registry entry changed (status, settings), or the city was deleted or imported:
    /// its tenant record, its availability and its residents' sessions are forgotten.
    Tenant(TenantId),
    /// Staff changed what one venue offers (a slot's capacity, new slots, a new venue).
    Venue { tenant: TenantId, venue: Uuid },
    /// Staff changed what decides every mark of the city (its booking rules).
    Availability(TenantId),
}

impl Change {
    /// The notification's payload: `s:<tenant>:<hash hex>`, `t:<tenant>`, `v:<tenant>:<venue>`,
    /// `a:<tenant>` (ids in simple form; ~100 bytes at most, far below NOTIFY's 8,000).
    pub fn payload(&self) -> String {
        match self {
            Change::SessionEnded { tenant, key } => {
                format!("s:{}:{}", tenant.0.simple(), hex::encode(key))
            }
            Change::Tenant(t) => format!("t:{}", t.0.simple()),
            Change::Venue { tenant, venue } => {
                format!("v:{}:{}", tenant.0.simple(), venue.simple())
            }
            Change::Availability(t) => format!("a:{}", t.0.simple()),
        }
    }

    /// The change a payload names; `None` for anything else (the receiver then forgets
    /// everything rather than guess).
    pub fn parse(payload: &str) -> Option<Change> {
        let mut parts = payload.split(':');
        let kind = parts.next()?;
        let tenant = TenantId(Uuid::parse_str(parts.next()?).ok()?);
        let third = parts.next();
        if parts.next().is_some() {
            return None;
        }
        match (kind, third) {
            ("s", Some(h)) => {
                let key: SessionKey = hex::decode(h).ok()?.try_into().ok()?;
                Some(Change::SessionEnded { tenant, key })
            }
            ("t", None) => Some(Change::Tenant(tenant)),
            ("v", Some(v)) => Some(Change::Venue {
                tenant,
                venue: Uuid::parse_str(v).ok()?,
            }),
            ("a", None) => Some(Change::Availability(tenant)),
            _ => None,
        }
    }
}

/// Announces `change` to every process (this one included), in the caller's transaction:
/// delivered when it commits, never if it rolls back. Not for the booking path (module doc).
pub async fn announce(conn: &mut PgConnection, change: &Change) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(change.payload())
        .execute(conn)
        .await?;
    Ok(())
}

/// The caches of one process that the feed keeps honest. Cheap to clone; clones share entries.
#[derive(Clone, Debug, Default)]
pub struct Caches {
    pub tenants: TenantCache,
    pub availability: AvailabilityCache,
    pub sessions: SessionCache,
}

impl Caches {
    /// Forgets what `change` makes stale.
    pub fn apply(&self, change: &Change) {
        match change {
            Change::SessionEnded { key, .. } => self.sessions.forget(key),
            Change::Tenant(t) => {
                self.tenants.forget(*t);
                self.availability.forget_tenant(*t);
                self.sessions.forget_tenant(*t);
            }
            Change::Venue { tenant, venue } => self.availability.forget_venue(*tenant, *venue),
            Change::Availability(t) => self.availability.forget_tenant(*t),
        }
    }

    /// Forgets everything (the listener connected, or lost its connection).
    pub fn clear(&self) {
        self.tenants.clear();
        self.availability.clear();
        self.sessions.clear();
    }
}

/// The listener's state in this process, for `/readyz`-style checks, metrics and tests.
#[derive(Clone, Debug, Default)]
pub struct Feed(Arc<FeedState>);

#[derive(Debug, Default)]
struct FeedState {
    listening: AtomicBool,
    connects: AtomicU64,
    received: AtomicU64,
}

impl Feed {
    /// Whether the listener is connected and listening right now.
    pub fn is_listening(&self) -> bool {
        self.0.listening.load(Ordering::SeqCst)
    }
    /// How often it has connected (the first time included).
    pub fn connects(&self) -> u64 {
        self.0.connects.load(Ordering::SeqCst)
    }
    /// Notifications received so far.
    pub fn received(&self) -> u64 {
        self.0.received.load(Ordering::SeqCst)
    }

    /// Waits until the listener is listening, at most `within`; whether it is.
    pub async fn wait_listening(&self, within: Duration) -> bool {
        let until = tokio::time::Instant::now() + within;
        while !self.is_listening() {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// Starts this process's listener: it connects as the same role and database as `pool` (on a
/// connection of its own), applies every change it hears to `caches`, reconnects after a loss
/// (clearing the caches each time) and stops when `pool` is closed.
pub fn listen(pool: &PgPool, caches: Caches) -> Feed {
    let feed = Feed::default();
    let options = (*pool.connect_options()).clone();
    let app_pool = pool.clone();
    let state = feed.clone();
    tokio::spawn(async move {
        let own = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(RETRY_MAX)
            .connect_lazy_with(options);
        tokio::select! {
            () = app_pool.close_event() => {}
            () = run(&own, &caches, &state) => {}
        }
        state.0.listening.store(false, Ordering::SeqCst);
        own.close().await;
    });
    feed
}

async fn run(pool: &PgPool, caches: &Caches, feed: &Feed) {
    let mut wait = RETRY_MIN;
    loop {
        let mut listener = match subscribe(pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64,
                    "change feed: cannot listen; caches are believed only within their TTLs");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
                continue;
            }
        };
        wait = RETRY_MIN;
        // what was filled while nobody listened may have missed a change
        caches.clear();
        feed.0.listening.store(true, Ordering::SeqCst);
        if feed.0.connects.fetch_add(1, Ordering::SeqCst) > 0 {
            tracing::info!("change feed: listening again; caches cleared");
        }
        metrics::counter!("yoyaku_change_feed_connects_total").increment(1);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    feed.0.received.fetch_add(1, Ordering::SeqCst);
                    metrics::counter!("yoyaku_change_feed_received_total").increment(1);
                    match Change::parse(n.payload()) {
                        Some(change) => caches.apply(&change),
                        None => {
                            tracing::warn!(
                                payload = n.payload(),
                                "change feed: unknown change; clearing every cache"
                            );
                            caches.clear();
                        }
                    }
                }
                Ok(None) => {
                    tracing::warn!("change feed: connection lost; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change feed: listener failed; reconnecting");
                    break;
                }
            }
        }
        feed.0.listening.store(false, Ordering::SeqCst);
        caches.clear();
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // a lost connection ends `try_recv` with `None`; we reconnect (and clear) ourselves
    listener.eager_reconnect(false);
    // this pool is the listener's own; the app pool's closing stops the task (`listen`)
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_strangers_are_refused() {
        let tenant = TenantId(Uuid::new_v4());
        for change in [
            Change::SessionEnded {
                tenant,
                key: [7u8; 32],
            },
            Change::Tenant(tenant),
            Change::Venue {
                tenant,
                venue: Uuid::new_v4(),
            },
            Change::Availability(tenant),
        ] {
            let p = change.payload();
            assert!(p.len() < 200, "{p}");
            assert_eq!(Change::parse(&p), Some(change));
        }
        for bad in [
            "",
            "x:1",
            "t:not-a-uuid",
            &format!("t:{}:extra", tenant.0.simple()),
            &format!("s:{}:abcd", tenant.0.simple()),
            &format!("v:{}", tenant.0.simple()),
        ] {
            assert_eq!(Change::parse(bad), None, "{bad}");
        }
    }
}
