//! Works one named queue of `apalis.jobs`: registers a worker in `apalis.workers`, heartbeats,
//! re-enqueues the tasks of workers that stopped heartbeating (apalis-postgres's
//! `reenqueue_orphaned`), fetches due tasks with apalis's own `apalis.get_jobs` (priority first,
//! then the oldest `run_at`, `FOR UPDATE SKIP LOCKED`, so any number of processes share a queue),
//! hands each to the queue's [`Handler`] and records the [`Outcome`] on the task.
//!
//! Why not apalis's `WorkerBuilder` / `Monitor` loop: without LISTEN/NOTIFY its PostgreSQL backend
//! looks for new tasks only at each heartbeat, and NOTIFY is what we switched off (a notifying
//! commit takes a database-wide lock, which would serialise the bookings' commits during a rush);
//! and a delivery must be able to say "not before this time" (backoff, Retry-After), "not now"
//! (a suspended city, a rush) or "dead, because …", which its result handling does not express.
//! The storage, the claim, the heartbeats and the orphan rule are apalis's.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::Settings;

/// A task as fetched.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub queue: String,
    /// The arguments (JSON, as apalis's sink stores them).
    pub args: Vec<u8>,
    /// Earlier attempts (failures, and re-enqueues after a worker vanished).
    pub attempts: i32,
    pub key: Option<String>,
}

/// What became of a task.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// Failed this time; tried again after `after` (one attempt used).
    Retry {
        after: Duration,
        reason: String,
    },
    /// Not now (a suspended city, a reminder whose day moved): back to pending at `after`, no
    /// attempt used.
    Later {
        after: Duration,
    },
    /// Given up, with the reason (the operator page shows it; retry puts it back).
    Dead {
        reason: String,
    },
}

/// What a queue does with its tasks. Must be safe to run twice for one task: a task whose worker
/// vanished mid-way is handled again.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, task: &Task) -> impl Future<Output = Result<Outcome, sqlx::Error>> + Send;
}

/// Says, before each look at the queue, whether to hold back this time (a rush).
pub type Hold = Arc<dyn Fn() -> bool + Send + Sync>;

/// The worker of one queue.
pub struct Runner<H> {
    pub pool: PgPool,
    pub queue: &'static str,
    /// This worker's id in `apalis.workers` (queue, host process, random part).
    pub name: String,
    pub concurrency: usize,
    pub settings: Settings,
    pub handler: Arc<H>,
    pub hold: Option<Hold>,
    /// How often an idle queue is looked at.
    pub poll: Duration,
}

impl<H> Clone for Runner<H> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            queue: self.queue,
            name: self.name.clone(),
            concurrency: self.concurrency,
            settings: self.settings.clone(),
            handler: self.handler.clone(),
            hold: self.hold.clone(),
            poll: self.poll,
        }
    }
}

/// A worker id unique to this process and queue.
pub fn worker_name(queue: &str) -> String {
    format!(
        "{queue}@{}:{}",
        std::process::id(),
        &super::new_task_id()[16..]
    )
}

impl<H: Handler> Runner<H> {
    pub fn new(
        pool: PgPool,
        queue: &'static str,
        concurrency: usize,
        settings: Settings,
        handler: H,
    ) -> Self {
        let poll = if queue == super::NOTIFY_URGENT {
            settings.poll
        } else {
            settings.idle_poll
        };
        Self {
            pool,
            queue,
            name: worker_name(queue),
            concurrency: concurrency.max(1),
            settings,
            handler: Arc::new(handler),
            hold: None,
            poll,
        }
    }

    /// Records this worker as alive (registering it when missing) and re-enqueues the tasks of
    /// workers of this queue silent for longer than the orphan time.
    pub async fn heartbeat(&self) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen, started_at) \
             VALUES ($1, $2, 'PgStorage', 'yoyaku', now(), now()) \
             ON CONFLICT (id) DO UPDATE SET last_seen = now()",
        )
        .bind(&self.name)
        .bind(self.queue)
        .execute(&mut *tx)
        .await?;
        let requeued = apalis_postgres::queries::reenqueue_orphaned(
            &mut *tx,
            self.queue,
            self.settings.orphaned_after().as_secs().max(1),
        )
        .await
        .map_err(super::to_sqlx)?;
        tx.commit().await?;
        Ok(requeued)
    }

    /// Claims up to `n` due tasks (apalis's `get_jobs`).
    pub async fn fetch(&self, n: usize) -> Result<Vec<Task>, sqlx::Error> {
        let rows: Vec<(String, Vec<u8>, i32, Option<String>)> = sqlx::query_as(
            "SELECT id, job, attempts, idempotency_key FROM apalis.get_jobs($1, $2, $3)",
        )
        .bind(&self.name)
        .bind(self.queue)
        .bind(i32::try_from(n).unwrap_or(i32::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, args, attempts, key)| Task {
                id,
                queue: self.queue.to_owned(),
                args,
                attempts,
                key,
            })
            .collect())
    }

    /// Records what became of a task this worker holds (nothing, if it was taken away).
    pub async fn finish(&self, task: &Task, outcome: &Outcome) -> Result<(), sqlx::Error> {
        let (status, used, result, after) = match outcome {
            Outcome::Done => ("Done", 1, serde_json::json!({ "Ok": null }), None),
            Outcome::Retry { after, reason } => (
                "Failed",
                1,
                serde_json::json!({ "Err": reason }),
                Some(after.as_secs_f64()),
            ),
            Outcome::Later { after } => (
                "Pending",
                0,
                serde_json::json!({ "Ok": "later" }),
                Some(after.as_secs_f64()),
            ),
            Outcome::Dead { reason } => ("Killed", 1, serde_json::json!({ "Err": reason }), None),
        };
        sqlx::query(
            "UPDATE apalis.jobs SET status = $3, attempts = attempts + $4, last_result = $5, \
                    run_at = COALESCE(now() + make_interval(secs => $6), run_at), \
                    done_at = CASE WHEN $3 IN ('Done', 'Killed') THEN now() END, \
                    lock_by = CASE WHEN $3 IN ('Done', 'Killed') THEN lock_by END, \
                    lock_at = CASE WHEN $3 IN ('Done', 'Killed') THEN lock_at END \
              WHERE id = $1 AND lock_by = $2",
        )
        .bind(&task.id)
        .bind(&self.name)
        .bind(status)
        .bind(used)
        .bind(result)
        .bind(after)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn work(&self, task: Task) -> Outcome {
        let outcome = match self.handler.handle(&task).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(queue = self.queue, task = %task.id, error = %e, "job failed");
                Outcome::Retry {
                    after: Duration::from_secs(5),
                    reason: e.to_string(),
                }
            }
        };
        if let Err(e) = self.finish(&task, &outcome).await {
            // the task stays claimed by this worker; the orphan rule hands it out again
            tracing::warn!(queue = self.queue, task = %task.id, error = %e, "could not record a job's outcome");
        }
        outcome
    }

    /// Works one batch (at most `concurrency` tasks, at once); returns how many.
    pub async fn batch(&self) -> Result<usize, sqlx::Error> {
        let tasks = self.fetch(self.concurrency).await?;
        let n = tasks.len();
        futures::future::join_all(tasks.into_iter().map(|t| self.work(t))).await;
        Ok(n)
    }

    /// Works every due task until none is left; returns how many were handled (tests, tools).
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        self.heartbeat().await?;
        let mut total = 0;
        loop {
            let n = self.batch().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Works the queue until `shutdown` resolves; a batch in progress is finished first.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut last_beat: Option<Instant> = None;
        loop {
            if last_beat.is_none_or(|t| t.elapsed() >= self.settings.heartbeat) {
                match self.heartbeat().await {
                    Ok(_) => last_beat = Some(Instant::now()),
                    Err(e) => {
                        tracing::warn!(queue = self.queue, error = %e, "worker heartbeat failed")
                    }
                }
            }
            let held = self.hold.as_ref().is_some_and(|h| h());
            let worked = if held {
                0
            } else {
                match self.batch().await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(queue = self.queue, error = %e, "could not fetch jobs");
                        0
                    }
                }
            };
            if worked == 0 {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(self.poll) => {}
                }
            } else if futures::FutureExt::now_or_never(&mut shutdown).is_some() {
                return;
            }
        }
    }
}
