//! The one job runtime: every background job — notification delivery, exports, scheduled
//! reminders and export expiry, the monthly billing tick — is a task in apalis-postgres's table
//! `apalis.jobs` (apalis 1.0), worked by [`runner::Runner`]s (docs/architecture.md, Jobs).
//!
//! Rules:
//! * **Pushed in the caller's transaction.** [`push`] (apalis-postgres's own sink,
//!   `apalis_postgres::queries::push_tasks`) writes one row in whatever transaction the caller has
//!   open: committed ⇒ exactly one task, rolled back ⇒ none. The booking SQL functions
//!   (`book_first_dose`, `book_first_doses`) insert the same row themselves, the way the sink does
//!   (migrations/20261202000001_apalis_jobs.sql): still one INSERT per booking.
//! * **One logical job, one task.** Every task has an idempotency key, unique per queue
//!   (`apalis.jobs (job_type, idempotency_key)`); tenant jobs are keyed `<tenant id>/<key>`. A
//!   duplicate [`push`] fails and aborts the surrounding transaction; [`push_once`] ignores it
//!   (reminders, cron ticks, which several processes may push).
//! * **Ids only.** A task carries the tenant id and references; personal data stays in tenant
//!   tables under row-level security, read by the worker in the tenant's scope.
//! * **Named queues** ([`NOTIFY_URGENT`], [`NOTIFY`], [`EXPORTS`], [`CRON`], [`WEBHOOKS`]), priorities within a
//!   queue (apalis's `priority` column, highest first), concurrency per queue from configuration
//!   ([`Settings`]), worker heartbeats in `apalis.workers`; tasks of a worker that stopped
//!   heartbeating are re-enqueued by apalis's `reenqueue_orphaned` (and handled again: handlers are
//!   written to be safe to run twice).
//! * **Scheduled work** is a task with a future `run_at` (a reminder, an export's expiry) or a cron
//!   tick ([`cron`]) pushed by every process under the same key, so it fires once across processes.

use std::time::Duration;

use apalis::prelude::TaskBuilder;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

pub mod cron;
pub mod overview;
pub mod runner;

pub use runner::{Handler, Outcome, Runner, Task};

/// Login codes: a resident waits on screen for each; worked first and never held back.
pub const NOTIFY_URGENT: &str = "notify-urgent";
/// Every other message (confirmations, changes, cancellations, reminders, budget alerts).
pub const NOTIFY: &str = "notify";
/// Export files and their expiry.
pub const EXPORTS: &str = "exports";
/// Cron ticks (the monthly billing tick).
pub const CRON: &str = "cron";
/// Event webhooks to the cities' integrators (`crate::webhooks`).
pub const WEBHOOKS: &str = "webhooks";
/// Every queue, as the operator page lists them.
pub const QUEUES: [&str; 5] = [NOTIFY_URGENT, NOTIFY, EXPORTS, CRON, WEBHOOKS];

/// apalis's attempt ceiling for our tasks; handlers give up earlier by their own rules (a message
/// is dead after 8 failed sends) and say so in their own records.
pub const MAX_ATTEMPTS: i32 = 25;

/// How the workers of one process run (`[jobs]` in the configuration).
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often the idle login-code queue is looked at.
    pub poll: Duration,
    /// How often the other idle queues are looked at.
    pub idle_poll: Duration,
    /// How often a worker records that it is alive.
    pub heartbeat: Duration,
    /// A worker silent for `heartbeat × missed_heartbeats` is dead; its tasks are re-enqueued.
    pub missed_heartbeats: u32,
    /// Tasks worked at once, per queue.
    pub urgent_concurrency: usize,
    pub notify_concurrency: usize,
    pub exports_concurrency: usize,
    pub webhooks_concurrency: usize,
    /// The billing tick's schedule (cron, seconds first, UTC).
    pub billing_cron: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            idle_poll: Duration::from_millis(1000),
            heartbeat: Duration::from_secs(15),
            missed_heartbeats: 4,
            urgent_concurrency: 4,
            notify_concurrency: 4,
            exports_concurrency: 1,
            webhooks_concurrency: 4,
            billing_cron: "0 */5 * * * *".into(),
        }
    }
}

impl Settings {
    pub fn orphaned_after(&self) -> Duration {
        self.heartbeat * self.missed_heartbeats.max(1)
    }
}

/// apalis-postgres's own migrations (schema `apalis`, ledger `apalis._sqlx_migrations`), run by
/// the owning role before ours (`yoyaku migrate`).
pub fn migrations() -> sqlx::migrate::Migrator {
    apalis_postgres::PostgresStorage::<()>::migrations()
}

/// The key a tenant job is stored under: `<tenant id>/<key>`.
pub fn tenant_key(tenant: uuid::Uuid, key: &str) -> String {
    format!("{tenant}/{key}")
}

/// A new task id (apalis's ids are ULIDs).
pub fn new_task_id() -> String {
    ulid::Ulid::generate().to_string()
}

fn encode<T: Serialize>(args: &T) -> Result<Vec<u8>, sqlx::Error> {
    serde_json::to_vec(args).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

fn to_sqlx(e: apalis_postgres::Error) -> sqlx::Error {
    match e {
        apalis_postgres::Error::Database(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// Queues a task in the caller's transaction (apalis-postgres's sink). A task with the same key
/// in the queue makes it fail, and with it the caller's transaction.
pub async fn push<T: Serialize>(
    conn: &mut PgConnection,
    queue: &str,
    key: &str,
    priority: usize,
    args: &T,
) -> Result<(), sqlx::Error> {
    let task = TaskBuilder::new(encode(args)?)
        .idempotency_key(key)
        .priority(priority)
        .max_attempts(MAX_ATTEMPTS as usize)
        .build();
    apalis_postgres::queries::push_tasks(conn, queue, vec![task])
        .await
        .map_err(to_sqlx)
}

/// Queues a task to run at `run_at` unless one with the same key is in the queue already (done or
/// not); `true` when queued now. The same row as apalis's sink writes, with `ON CONFLICT DO
/// NOTHING` (the sink has no such option).
pub async fn push_once<T: Serialize>(
    conn: &mut PgConnection,
    queue: &str,
    key: &str,
    priority: i32,
    run_at: DateTime<Utc>,
    args: &T,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, idempotency_key) \
         VALUES ($1, $2, $3, 'Pending', 0, $4, $5, $6, $7) \
         ON CONFLICT (job_type, idempotency_key) DO NOTHING",
    )
    .bind(new_task_id())
    .bind(queue)
    .bind(encode(args)?)
    .bind(MAX_ATTEMPTS)
    .bind(run_at)
    .bind(priority)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Tasks of `queue` not yet finished (pending, waiting to retry, or being worked).
pub async fn unfinished(pool: &sqlx::PgPool, queue: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 \
           AND (status IN ('Pending', 'Queued', 'Running') OR (status = 'Failed' AND attempts < max_attempts))",
    )
    .bind(queue)
    .fetch_one(pool)
    .await
}
