//! The operator's view of the job runtime (admin page `/admin/jobs`, platform operator only): per
//! queue the tasks pending, running, failed and done and the age of the oldest due task; the live
//! workers; the failed tasks with their reason, each to retry or discard — both recorded in the
//! platform audit log. City admins keep their delivery log; this page shows ids and keys only.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::QUEUES;
use crate::notifications::NotifyTask;
use crate::staff::audit;
use crate::staff::authz::PlatformScope;

/// One queue's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: String,
    /// Waiting: not yet due, due, or failed and waiting to be tried again.
    pub pending: i64,
    /// Taken by a worker.
    pub running: i64,
    /// Given up (dead), until retried or discarded.
    pub failed: i64,
    pub done: i64,
    /// How long the oldest due task has been waiting, in seconds.
    pub oldest_due_secs: Option<i64>,
}

/// A task that was given up.
#[derive(Debug, Clone)]
pub struct FailedTask {
    pub id: String,
    pub queue: String,
    pub key: Option<String>,
    pub attempts: i32,
    pub reason: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// A worker and its last heartbeat.
#[derive(Debug, Clone)]
pub struct WorkerBeat {
    pub id: String,
    pub queue: String,
    pub last_seen: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Overview {
    pub queues: Vec<QueueStats>,
    pub failed: Vec<FailedTask>,
    pub workers: Vec<WorkerBeat>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobAdminError {
    #[error("no failed task with this id")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const FAILED: &str = "(status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts))";

/// The queues, the newest 100 failed tasks, the workers seen in the last hour.
pub async fn overview(scope: &PlatformScope) -> Result<Overview, sqlx::Error> {
    type Row = (String, i64, i64, i64, i64, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT q, \
                count(j.id) FILTER (WHERE j.status = 'Pending' OR (j.status = 'Failed' AND j.attempts < j.max_attempts)), \
                count(j.id) FILTER (WHERE j.status IN ('Queued', 'Running')), \
                count(j.id) FILTER (WHERE j.status = 'Killed' OR (j.status = 'Failed' AND j.attempts >= j.max_attempts)), \
                count(j.id) FILTER (WHERE j.status = 'Done'), \
                extract(epoch FROM now() - min(j.run_at) FILTER ( \
                    WHERE (j.status = 'Pending' OR (j.status = 'Failed' AND j.attempts < j.max_attempts)) \
                      AND j.run_at <= now()))::bigint \
           FROM unnest($1::text[]) WITH ORDINALITY AS u(q, n) \
           LEFT JOIN apalis.jobs j ON j.job_type = u.q \
          GROUP BY u.q, u.n ORDER BY u.n",
    )
    .bind(QUEUES.to_vec())
    .fetch_all(&scope.pool)
    .await?;
    let queues = rows
        .into_iter()
        .map(
            |(queue, pending, running, failed, done, oldest_due_secs)| QueueStats {
                queue,
                pending,
                running,
                failed,
                done,
                oldest_due_secs,
            },
        )
        .collect();
    type Failed = (
        String,
        String,
        Option<String>,
        i32,
        Option<String>,
        Option<DateTime<Utc>>,
    );
    let failed: Vec<Failed> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, job_type, idempotency_key, attempts, last_result->>'Err', done_at \
               FROM apalis.jobs WHERE {FAILED} ORDER BY done_at DESC NULLS LAST, id DESC LIMIT 100"
    )))
    .fetch_all(&scope.pool)
    .await?;
    let workers: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, worker_type, last_seen FROM apalis.workers \
          WHERE last_seen > now() - interval '1 hour' ORDER BY worker_type, last_seen DESC",
    )
    .fetch_all(&scope.pool)
    .await?;
    Ok(Overview {
        queues,
        failed: failed
            .into_iter()
            .map(|(id, queue, key, attempts, reason, at)| FailedTask {
                id,
                queue,
                key,
                attempts,
                reason,
                at,
            })
            .collect(),
        workers: workers
            .into_iter()
            .map(|(id, queue, last_seen)| WorkerBeat {
                id,
                queue,
                last_seen,
            })
            .collect(),
    })
}

/// Puts a failed task back to be worked now, with its attempts counted afresh; a message's
/// delivery-log row and an export's row go back to queued with it (in their city's scope).
/// Audited (`job.retry`).
pub async fn retry(scope: &PlatformScope, id: &str) -> Result<(), JobAdminError> {
    let found: Option<(String, Vec<u8>, Option<String>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT job_type, job, idempotency_key FROM apalis.jobs WHERE id = $1 AND {FAILED}"
        )))
        .bind(id)
        .fetch_optional(&scope.pool)
        .await?;
    let Some((queue, args, key)) = found else {
        return Err(JobAdminError::NotFound);
    };
    if (queue == super::NOTIFY || queue == super::NOTIFY_URGENT)
        && let Ok(task) = serde_json::from_slice::<NotifyTask>(&args)
    {
        let mut tx = tenants::begin(&scope.pool, tenants::TenantId(task.tenant)).await?;
        sqlx::query(
            "UPDATE notification_jobs SET status = 'queued', attempts = 0, run_after = now() \
              WHERE tenant_id = $1 AND idempotency_key = $2 AND status = 'dead'",
        )
        .bind(task.tenant)
        .bind(&task.key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    } else if queue == super::EXPORTS
        && let Ok(crate::exports::ExportTask::Write { tenant, export }) =
            serde_json::from_slice(&args)
    {
        let mut tx = tenants::begin(&scope.pool, tenants::TenantId(tenant)).await?;
        sqlx::query(
            "UPDATE export_jobs SET state = 'queued', attempts = 0, error = NULL, finished_at = NULL \
              WHERE tenant_id = $1 AND id = $2 AND state = 'failed'",
        )
        .bind(tenant)
        .bind(export)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    let mut tx = scope.pool.begin().await?;
    let put_back = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE apalis.jobs SET status = 'Pending', attempts = 0, run_at = now(), lock_by = NULL, \
                lock_at = NULL, done_at = NULL, last_result = NULL WHERE id = $1 AND {FAILED}"
    )))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if put_back.rows_affected() == 0 {
        return Err(JobAdminError::NotFound);
    }
    audit::record_platform_in(
        &mut tx,
        &scope.actor,
        "job.retry",
        &format!("job/{id}"),
        json!({ "queue": queue, "key": key }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes a failed task for good (the delivery log keeps the message as dead). Audited
/// (`job.discard`).
pub async fn discard(scope: &PlatformScope, id: &str) -> Result<(), JobAdminError> {
    let mut tx = scope.pool.begin().await?;
    let gone: Option<(String, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "DELETE FROM apalis.jobs WHERE id = $1 AND {FAILED} RETURNING job_type, idempotency_key"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((queue, key)) = gone else {
        return Err(JobAdminError::NotFound);
    };
    audit::record_platform_in(
        &mut tx,
        &scope.actor,
        "job.discard",
        &format!("job/{id}"),
        json!({ "queue": queue, "key": key }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
