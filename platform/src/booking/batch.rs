//! Booking batches: first-dose bookings of one tenant that arrive while an earlier batch is being
//! decided are decided together, by ONE statement (`book_first_doses`,
//! migrations/20261122400001_booking_batches.sql) instead of one statement each.
//!
//! Why: when booking opens, thousands of residents book at once, and PostgreSQL spends most of a
//! single booking's time starting up statements, not doing the work (docs/benchmarks.md). A batch
//! pays that once for all of its requests. The invariants are those of [`crate::booking`] (its module doc): seats
//! by one conditional `UPDATE … booked + n <= capacity` per slot, booking + job + key in the same
//! statement, idempotency keys honoured. Whatever a batch cannot decide exactly (a slot without
//! room for all of its requests, a resident twice in the batch or already booked, any database
//! error of the batch as a whole) is run again alone through `book_first_dose`, which answers it
//! precisely; nothing of a failed batch is written.
//!
//! Per tenant there are [`LANES`] lanes. A lane takes every request waiting for it (at most
//! [`MAX_BATCH`]) and decides them; requests that arrive meanwhile wait for the next batch. A
//! request alone is sent straight to `book_first_dose`, so a quiet day costs nothing extra.
//!
//! Under load a free lane does not start a batch of one or two while another lane of the tenant is
//! deciding: it waits up to [`LINGER`] for [`GATHER`] requests (or for the other lane to finish).
//! A request decided alone costs PostgreSQL several times a batched one (its own statement and
//! commit), and without the wait a lane freed in a rush took each request the moment it arrived:
//! 2.5 % of the rush's bookings went alone, about a tenth of PostgreSQL's booking time
//! (docs/benchmarks.md, runs 73–82).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tenants::{Tenant, TenantId};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::book::{BookRequest, book_via};
use super::bookings::Booking;
use super::error::BookingError;
use super::fast::{
    Caller, FastOutcome, FastPath, FastRequest, book_first_dose, book_one_first_dose, fast_outcome,
    fast_request,
};
use super::keys::is_unique_violation;

/// Batches decided at the same time per tenant.
pub const LANES: usize = 2;
/// Requests in one batch at most.
pub const MAX_BATCH: usize = 128;
/// While another lane of the tenant is deciding, a free lane gathers this many requests before it
/// starts (or waits [`LINGER`], or until that lane is done).
pub const GATHER: usize = 8;
/// The longest a request waits for others while another lane is deciding ([`Batcher::new`]).
pub const LINGER: Duration = Duration::from_millis(2);

type Reply = oneshot::Sender<Result<FastOutcome, BookingError>>;

struct Pending {
    tenant: Tenant,
    req: FastRequest,
    reply: Reply,
}

type Queue = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>;
/// Lanes of one tenant deciding a batch right now.
type Busy = Arc<AtomicUsize>;

/// Sends first-dose bookings through per-tenant batches. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Batcher {
    pool: PgPool,
    lanes: Arc<Mutex<HashMap<TenantId, mpsc::UnboundedSender<Pending>>>>,
    counts: Arc<Counts>,
    linger: Duration,
}

#[derive(Default)]
struct Counts {
    batches: AtomicU64,
    batched: AtomicU64,
    alone: AtomicU64,
}

/// What the batches of a process have done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Statements of `book_first_doses` that answered.
    pub batches: u64,
    /// Requests answered by those statements (booked, replayed or refused there).
    pub batched: u64,
    /// Requests decided alone by `book_first_dose`: a lone request, or one a batch left open.
    pub alone: u64,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    pub fn new(pool: PgPool) -> Self {
        Self::with_linger(pool, LINGER)
    }

    /// With another bound on the wait for more requests while a lane is deciding (the tests
    /// make it long, so what is gathered does not depend on the machine's speed).
    pub fn with_linger(pool: PgPool, linger: Duration) -> Self {
        Self {
            pool,
            lanes: Arc::default(),
            counts: Arc::default(),
            linger,
        }
    }

    pub fn stats(&self) -> BatchStats {
        BatchStats {
            batches: self.counts.batches.load(Ordering::Relaxed),
            batched: self.counts.batched.load(Ordering::Relaxed),
            alone: self.counts.alone.load(Ordering::Relaxed),
        }
    }

    /// [`book_first_dose`], decided in a batch with whatever else of the same
    /// tenant is waiting.
    pub async fn book_first_dose(
        &self,
        tenant: &Tenant,
        caller: Caller<'_>,
        slot: Uuid,
        key: &str,
    ) -> Result<FastOutcome, BookingError> {
        let req = match fast_request(tenant, caller, slot, key)? {
            Ok(req) => req,
            Err(early) => return Ok(early),
        };
        let (reply, answer) = oneshot::channel();
        let sent = self.sender(tenant.id).send(Pending {
            tenant: tenant.clone(),
            req,
            reply,
        });
        if sent.is_ok()
            && let Ok(done) = answer.await
        {
            return done;
        }
        // The lane is gone (its runtime shut down), before or while deciding the request: it is
        // decided again alone, which its idempotency key makes safe; the next request of the
        // tenant starts new lanes.
        self.lanes.lock().map(|mut l| l.remove(&tenant.id)).ok();
        book_first_dose(&self.pool, tenant, caller, slot, key).await
    }

    fn sender(&self, tenant: TenantId) -> mpsc::UnboundedSender<Pending> {
        let mut lanes = match self.lanes.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tx) = lanes.get(&tenant).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queue: Queue = Arc::new(tokio::sync::Mutex::new(rx));
        let busy = Busy::default();
        for _ in 0..LANES {
            tokio::spawn(lane(
                self.pool.clone(),
                queue.clone(),
                busy.clone(),
                self.counts.clone(),
                self.linger,
            ));
        }
        lanes.insert(tenant, tx.clone());
        tx
    }
}

async fn lane(pool: PgPool, queue: Queue, busy: Busy, counts: Arc<Counts>, linger: Duration) {
    loop {
        let (batch, _deciding) = {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            take_waiting(&mut rx, &mut batch);
            // another lane is deciding: gather a few more rather than start a batch of one
            let until = tokio::time::Instant::now() + linger;
            while batch.len() < GATHER && busy.load(Ordering::Acquire) > 0 {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(p)) => {
                        batch.push(p);
                        take_waiting(&mut rx, &mut batch);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            // counted before the next lane may look
            (batch, Deciding::start(&busy))
        };
        // a request whose caller has gone (timed out, disconnected) is not booked at all
        let batch: Vec<Pending> = batch.into_iter().filter(|p| !p.reply.is_closed()).collect();
        decide(&pool, batch, &counts).await;
    }
}

/// A lane counted in [`Busy`] while it decides (and no longer when it stops, however it stops).
struct Deciding<'a>(&'a AtomicUsize);

impl<'a> Deciding<'a> {
    fn start(busy: &'a AtomicUsize) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        Self(busy)
    }
}

impl Drop for Deciding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Adds what is waiting now to the batch, up to [`MAX_BATCH`].
fn take_waiting(rx: &mut mpsc::UnboundedReceiver<Pending>, batch: &mut Vec<Pending>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
}

async fn decide(pool: &PgPool, batch: Vec<Pending>, counts: &Counts) {
    // a request alone gains nothing from the batch statement
    let alone = if batch.len() > 1 {
        decide_together(pool, batch, counts).await
    } else {
        batch
    };
    counts
        .alone
        .fetch_add(alone.len() as u64, Ordering::Relaxed);
    let again = alone.into_iter().map(|p| async move {
        let done = self::alone(pool, &p).await;
        let _ = p.reply.send(done);
    });
    futures::future::join_all(again).await;
}

/// Runs `book_first_doses` for the batch and answers what it decided; returns the requests left
/// to decide alone.
async fn decide_together(pool: &PgPool, batch: Vec<Pending>, counts: &Counts) -> Vec<Pending> {
    let tenant = batch[0].tenant.clone();
    match run_batch(pool, &tenant, &batch).await {
        Ok(rows) if rows.len() == batch.len() => {
            counts.batches.fetch_add(1, Ordering::Relaxed);
            let mut alone = Vec::new();
            for (p, row) in batch.into_iter().zip(rows) {
                match fast_outcome(pool, &tenant, p.req.booking, &row).await {
                    Ok(FastOutcome::Fallback) => alone.push(p),
                    done => {
                        counts.batched.fetch_add(1, Ordering::Relaxed);
                        let _ = p.reply.send(done);
                    }
                }
            }
            alone
        }
        Ok(rows) => {
            tracing::error!(
                asked = batch.len(),
                answered = rows.len(),
                "a booking batch answered a different number of rows; deciding each alone"
            );
            batch
        }
        Err(e) => {
            if !is_unique_violation(&e) {
                tracing::warn!(error = %e, size = batch.len(), "a booking batch failed; deciding each alone");
            }
            batch
        }
    }
}

/// One request through `book_first_dose`. A deadlock (possible only against a batch of another
/// lane or process holding the same resident's key and slot) is retried once: PostgreSQL rolled
/// back all of the losing statement.
async fn alone(pool: &PgPool, p: &Pending) -> Result<FastOutcome, BookingError> {
    match book_one_first_dose(pool, &p.tenant, &p.req).await {
        Err(BookingError::Database(e))
            if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("40P01") =>
        {
            book_one_first_dose(pool, &p.tenant, &p.req).await
        }
        done => done,
    }
}

async fn run_batch(
    pool: &PgPool,
    tenant: &Tenant,
    batch: &[Pending],
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    let reqs = || batch.iter().map(|p| &p.req);
    sqlx::query(
        "SELECT * FROM book_first_doses($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ORDER BY out_item",
    )
    .bind(tenant.id.0)
    .bind(reqs().map(|r| r.token_hash.clone()).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.resident).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.slot).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.prefix).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.key.clone()).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.booking).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.job.clone()).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.job_key.clone()).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.payload.clone()).collect::<Vec<_>>())
    .fetch_all(pool)
    .await
}

impl FastPath for Batcher {
    fn book_first_dose(
        &self,
        tenant: &Tenant,
        caller: Caller<'_>,
        slot: Uuid,
        key: &str,
    ) -> impl Future<Output = Result<FastOutcome, BookingError>> + Send {
        Batcher::book_first_dose(self, tenant, caller, slot, key)
    }
}

/// Like [`super::book`], with the fast path decided in a batch: what the resident-facing front ends
/// use (through the resident desk).
pub async fn book_batched(
    batcher: &Batcher,
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookRequest,
) -> Result<Vec<Booking>, BookingError> {
    book_via(batcher, pool, tenant, req).await
}
