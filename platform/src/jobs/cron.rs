//! Cron ticks that fire once across processes. Every process runs [`schedule`]: for each cron job
//! it pushes the next tick as a task of the [`CRON`](super::CRON) queue, due at the tick's time,
//! keyed `<job>@<tick time>` with `ON CONFLICT DO NOTHING` ([`super::push_once`]) — however many
//! processes push it, the queue holds one task per tick, and apalis's claim (`SKIP LOCKED`) hands
//! it to one worker. A process that was down at a tick does not make it up; the next tick does the
//! work (the billing tick is idempotent and catches up by itself).
//!
//! The schedules are cron expressions (the `cron` crate, which apalis-cron wraps; seconds first,
//! UTC). Idle cost: one INSERT per tick per process.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cron::Schedule as CronSchedule;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{CRON, Handler, Outcome, Task};

/// The monthly billing tick (drafts in the grace period, finalising, resident counts).
pub const BILLING: &str = "billing";

/// Daily housekeeping of the runtime's own tables: finished tasks older than
/// [`KEEP_DONE_DAYS`] and workers silent for a day (holding no task) are deleted.
pub const CLEANUP: &str = "cleanup";
/// Its schedule: 03:17 UTC.
pub const CLEANUP_SCHEDULE: &str = "0 17 3 * * *";
/// Done tasks are kept this long (their keys keep a repeat push out meanwhile; nothing pushes a
/// key again that late: keys name a booking, an export or a tick).
pub const KEEP_DONE_DAYS: i32 = 7;

/// A tick as stored in the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    pub job: String,
    pub at: DateTime<Utc>,
}

/// A cron job: its name and schedule.
#[derive(Debug, Clone)]
pub struct CronJob {
    pub name: &'static str,
    pub schedule: CronSchedule,
}

impl CronJob {
    pub fn parse(name: &'static str, expression: &str) -> Result<Self, String> {
        CronSchedule::from_str(expression)
            .map(|schedule| Self { name, schedule })
            .map_err(|e| {
                format!("the schedule of {name} ({expression:?}) is not a cron expression: {e}")
            })
    }

    /// The first tick strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&now).next()
    }
}

/// Pushes the tick of `job` at `at` (once across processes); `true` when this call queued it.
pub async fn push_tick(pool: &PgPool, job: &str, at: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    super::push_once(
        &mut conn,
        CRON,
        &format!("{job}@{}", at.to_rfc3339()),
        0,
        at,
        &Tick {
            job: job.to_owned(),
            at,
        },
    )
    .await
}

/// Keeps the next tick of every job queued until `shutdown` resolves.
pub async fn schedule(pool: PgPool, jobs: Vec<CronJob>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    if jobs.is_empty() {
        shutdown.await;
        return;
    }
    loop {
        let now = Utc::now();
        let mut soonest: Option<DateTime<Utc>> = None;
        for job in &jobs {
            let Some(at) = job.next_after(now) else {
                continue;
            };
            if let Err(e) = push_tick(&pool, job.name, at).await {
                tracing::warn!(job = job.name, error = %e, "could not queue a cron tick");
            }
            soonest = Some(soonest.map_or(at, |s| s.min(at)));
        }
        // wake just after the soonest tick (then the one after it is pushed); at least every minute
        let wait = soonest
            .and_then(|s| (s - Utc::now()).to_std().ok())
            .unwrap_or_default()
            .min(Duration::from_secs(60))
            + Duration::from_millis(10);
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Works the cron queue: runs the job a tick names.
#[derive(Clone)]
pub struct CronHandler {
    pub pool: PgPool,
}

impl Handler for CronHandler {
    async fn handle(&self, task: &Task) -> Result<Outcome, sqlx::Error> {
        let tick: Tick = match serde_json::from_slice(&task.args) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Outcome::Dead {
                    reason: format!("unreadable tick: {e}"),
                });
            }
        };
        match tick.job.as_str() {
            BILLING => {
                let r = tenants::billing::report::tick(&self.pool, Utc::now()).await?;
                if r.ran {
                    tracing::info!(
                        tick = %tick.at,
                        drafts = r.drafts_built,
                        finalized = r.finalized,
                        resident_counts = r.resident_counts,
                        failures = r.failures,
                        "billing tick"
                    );
                }
                Ok(Outcome::Done)
            }
            CLEANUP => {
                let done = sqlx::query(
                    "DELETE FROM apalis.jobs WHERE status = 'Done' \
                       AND done_at < now() - make_interval(days => $1)",
                )
                .bind(KEEP_DONE_DAYS)
                .execute(&self.pool)
                .await?;
                let workers = sqlx::query(
                    "DELETE FROM apalis.workers w WHERE w.last_seen < now() - interval '1 day' \
                       AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
                )
                .execute(&self.pool)
                .await?;
                tracing::info!(
                    tasks = done.rows_affected(),
                    workers = workers.rows_affected(),
                    "job runtime cleaned up"
                );
                Ok(Outcome::Done)
            }
            other => Ok(Outcome::Dead {
                reason: format!("no cron job named {other}"),
            }),
        }
    }
}
