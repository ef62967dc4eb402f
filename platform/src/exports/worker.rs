//! The export worker: the [`Handler`] of the [`jobs::EXPORTS`] queue. A task names an export
//! ([`ExportTask::Write`]): the worker claims its row (`running`), streams the rows from
//! PostgreSQL in batches to a blocking thread that writes the file, stores it in chunks and marks
//! it `done`, queuing its expiry ([`ExportTask::Expire`], due at `expires_at`) in the same
//! transaction. A worker that vanished mid-export: the job runtime re-enqueues the task, which
//! starts the export again (three attempts, then `failed`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgPool, Row};
use tenants::billing::{MeteredKind, usage};
use tenants::{Tenant, TenantId, TenantStatus};
use uuid::Uuid;

use crate::exports::spreadsheet::{
    Cell, Column, ColumnKind, CsvEncoding, CsvExport, ExportError, XlsxExport,
};
use crate::jobs::{self, Handler, Outcome, Runner, Task};
use crate::webhooks::{EventType, events as webhook_events};

use super::kinds::{ExportFormat, ExportKind, Plan};

/// Rows per batch handed from the database stream to the file writer.
pub const BATCH_ROWS: usize = 1_000;
/// Size of one stored file chunk.
pub const CHUNK_BYTES: usize = 1024 * 1024;
pub const MAX_ATTEMPTS: i32 = 3;

/// A task of the exports queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportTask {
    /// Write the export's file.
    Write { tenant: Uuid, export: Uuid },
    /// Delete the file of a finished export whose time is up.
    Expire { tenant: Uuid, export: Uuid },
}

/// The background half: writes queued exports, expires old files.
#[derive(Clone)]
pub struct ExportWorker {
    pub pool: PgPool,
    /// How long a finished file can be downloaded (`exports.ttl_hours`).
    pub ttl: chrono::Duration,
    /// Where files are written while being built (then stored in the database and deleted).
    pub scratch_dir: std::path::PathBuf,
    /// Polling, heartbeats and concurrency of the queue.
    pub jobs: jobs::Settings,
    /// This worker's id in `apalis.workers`, shared by its clones.
    pub name: Arc<String>,
}

struct Claimed {
    id: Uuid,
    kind: String,
    params: Value,
    format: String,
    attempts: i32,
}

impl ExportWorker {
    pub fn new(pool: PgPool, ttl: chrono::Duration) -> Self {
        Self {
            pool,
            ttl,
            scratch_dir: std::env::temp_dir(),
            jobs: jobs::Settings::default(),
            name: Arc::new(jobs::runner::worker_name(jobs::EXPORTS)),
        }
    }

    /// The runner of the exports queue.
    pub fn runner(&self) -> Runner<ExportWorker> {
        let mut r = Runner::new(
            self.pool.clone(),
            jobs::EXPORTS,
            self.jobs.exports_concurrency,
            self.jobs.clone(),
            self.clone(),
        );
        r.name = self.name.as_ref().clone();
        r
    }

    /// Works the queue until `shutdown` resolves; an export in progress is finished first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        self.runner().run(shutdown).await;
    }

    /// Works every due task now (writes and expiries); returns how many.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        self.runner().run_once().await
    }

    /// Deletes the file of a done export whose `expires_at` has passed; `Later` while it has not.
    async fn expire(&self, tenant: TenantId, export: Uuid) -> Result<Outcome, sqlx::Error> {
        let mut tx = tenants::begin(&self.pool, tenant).await?;
        let row: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT state, expires_at FROM export_jobs WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(tenant.0)
        .bind(export)
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some((state, Some(at))) if state == "done" => {
                let left = at - Utc::now();
                if left > chrono::Duration::zero() {
                    return Ok(Outcome::Later {
                        after: left.to_std().unwrap_or_default(),
                    });
                }
            }
            _ => return Ok(Outcome::Done),
        }
        sqlx::query("UPDATE export_jobs SET state = 'expired' WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(export)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM export_chunks WHERE tenant_id = $1 AND job_id = $2")
            .bind(tenant.0)
            .bind(export)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(tenant.id = %tenant, export = %export, "export file expired");
        Ok(Outcome::Done)
    }

    /// Takes the export: `running`, one more attempt. `None` when it is not to be written (done,
    /// failed, gone); an export left `running` by a vanished worker starts again, up to
    /// [`MAX_ATTEMPTS`].
    async fn claim(&self, tenant: &Tenant, export: Uuid) -> Result<Option<Claimed>, sqlx::Error> {
        let mut tx = tenants::begin(&self.pool, tenant.id).await?;
        sqlx::query("DELETE FROM export_chunks WHERE tenant_id = $1 AND job_id = $2")
            .bind(tenant.id.0)
            .bind(export)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "UPDATE export_jobs j SET state = 'running', started_at = now(), attempts = j.attempts + 1, \
                    rows_done = 0, error = NULL \
              WHERE j.tenant_id = $1 AND j.id = $2 AND j.state IN ('queued', 'running') \
             RETURNING j.id, j.kind, j.params, j.format, j.attempts",
        )
        .bind(tenant.id.0)
        .bind(export)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                params: r.try_get("params")?,
                format: r.try_get("format")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .transpose()
    }

    async fn write(&self, tenant: &Tenant, export: Uuid) -> Result<Outcome, sqlx::Error> {
        let Some(job) = self.claim(tenant, export).await? else {
            return Ok(Outcome::Done);
        };
        if job.attempts > MAX_ATTEMPTS {
            let reason = "the worker stopped during the export; please create it again";
            self.fail(tenant, &job, reason).await?;
            return Ok(Outcome::Dead {
                reason: reason.into(),
            });
        }
        match self.work(tenant, &job).await {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => {
                self.fail(tenant, &job, &e.to_string()).await?;
                Ok(Outcome::Dead {
                    reason: e.to_string(),
                })
            }
        }
    }

    async fn fail(&self, tenant: &Tenant, job: &Claimed, reason: &str) -> Result<(), sqlx::Error> {
        tracing::warn!(tenant.id = %tenant.id, job = %job.id, reason, "export failed");
        let mut tx = tenants::begin(&self.pool, tenant.id).await?;
        sqlx::query("DELETE FROM export_chunks WHERE tenant_id = $1 AND job_id = $2")
            .bind(tenant.id.0)
            .bind(job.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE export_jobs SET state = 'failed', error = $4, finished_at = now(), lease_until = NULL \
             WHERE tenant_id = $1 AND id = $2 AND state = 'running' AND attempts = $3",
        )
        .bind(tenant.id.0)
        .bind(job.id)
        .bind(job.attempts)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    async fn progress(&self, tenant: TenantId, id: Uuid, rows: u64) -> Result<(), sqlx::Error> {
        let mut tx = tenants::begin(&self.pool, tenant).await?;
        sqlx::query(
            "UPDATE export_jobs SET rows_done = $3 \
             WHERE tenant_id = $1 AND id = $2 AND state = 'running'",
        )
        .bind(tenant.0)
        .bind(id)
        .bind(rows as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Writes one claimed job; `Ok(false)` when it was taken away meanwhile.
    async fn work(&self, tenant: &Tenant, job: &Claimed) -> Result<bool, WorkError> {
        let kind = ExportKind::from_stored(&job.kind, &job.params)
            .ok_or_else(|| WorkError::Invalid(format!("unknown export kind {}", job.kind)))?;
        let format = ExportFormat::parse(&job.format)
            .ok_or_else(|| WorkError::Invalid(format!("unknown format {}", job.format)))?;
        let plan = kind.plan();
        let tid = tenant.id;

        // the total, for the progress bar (the rows themselves are counted as written)
        let mut tx = tenants::begin(&self.pool, tid).await?;
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM ({}) q",
            plan.sql
        )))
        .bind(tid.0)
        .bind(kind.params())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE export_jobs SET rows_total = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tid.0)
            .bind(job.id)
            .bind(total)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;

        let path = self
            .scratch_dir
            .join(format!("yoyaku-export-{}-{}.tmp", job.id, job.attempts));
        let outcome = self
            .write_file(tid, job.id, &kind, format, &plan, &path)
            .await;
        let result = match outcome {
            Ok(stats) => self.store(tenant, job, &kind, format, &path, stats).await,
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&path);
        result
    }

    /// Streams the rows into a file at `path` in batches; returns (rows, peak rows buffered).
    async fn write_file(
        &self,
        tenant: TenantId,
        job: Uuid,
        kind: &ExportKind,
        format: ExportFormat,
        plan: &Plan,
        path: &std::path::Path,
    ) -> Result<(u64, usize), WorkError> {
        let buffered = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        // capacity 1: the reader waits while the writer is behind (at most 3 batches exist)
        let (send, recv) = tokio::sync::mpsc::channel::<Vec<Vec<Cell>>>(1);
        let writer = {
            let (path, title, columns) = (path.to_owned(), plan.title, plan.columns.clone());
            let buffered = buffered.clone();
            tokio::task::spawn_blocking(move || {
                write_batches(&path, format, title, &columns, recv, &buffered)
            })
        };

        let mut tx = tenants::begin(&self.pool, tenant).await?;
        let mut rows = sqlx::query(plan.sql)
            .bind(tenant.0)
            .bind(kind.params())
            .fetch(&mut *tx);
        let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(BATCH_ROWS);
        let mut count: u64 = 0;
        let mut read_error = None;
        loop {
            let next = match rows.try_next().await {
                Ok(n) => n,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            let last = next.is_none();
            if let Some(row) = next {
                match decode(&row, &plan.columns) {
                    Ok(cells) => batch.push(cells),
                    Err(e) => {
                        read_error = Some(e);
                        break;
                    }
                }
                count += 1;
                let now = buffered.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
            }
            if batch.len() >= BATCH_ROWS || (last && !batch.is_empty()) {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                if send.send(full).await.is_err() {
                    break; // the writer stopped: its error is reported below
                }
                if let Err(e) = self.progress(tenant, job, count).await {
                    read_error = Some(e);
                    break;
                }
            }
            if last {
                break;
            }
        }
        drop(rows);
        drop(send);
        let _ = tx.commit().await;
        let written = writer
            .await
            .map_err(|e| WorkError::Invalid(format!("export writer crashed: {e}")))?;
        if let Some(e) = read_error {
            return Err(e.into());
        }
        let written = written?;
        debug_assert_eq!(written, count);
        Ok((written, peak.load(Ordering::SeqCst)))
    }

    /// Stores the file as chunks and marks the job done, in one transaction (with the usage event).
    async fn store(
        &self,
        tenant: &Tenant,
        job: &Claimed,
        kind: &ExportKind,
        format: ExportFormat,
        path: &std::path::Path,
        (rows, peak): (u64, usize),
    ) -> Result<bool, WorkError> {
        use std::io::Read;
        let tid = tenant.id.0;
        let mut tx = tenants::begin(&self.pool, tenant.id).await?;
        let mut file = std::fs::File::open(path)?;
        let mut seq = 0i32;
        let mut size: i64 = 0;
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let mut filled = 0;
            while filled < CHUNK_BYTES {
                let n = file.read(&mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            sqlx::query(
                "INSERT INTO export_chunks (tenant_id, job_id, seq, data) VALUES ($1, $2, $3, $4)",
            )
            .bind(tid)
            .bind(job.id)
            .bind(seq)
            .bind(&buf[..filled])
            .execute(&mut *tx)
            .await?;
            seq += 1;
            size += filled as i64;
            if filled < CHUNK_BYTES {
                break;
            }
        }
        let finished = sqlx::query(
            "UPDATE export_jobs SET state = 'done', rows_done = $4, rows_total = $4, max_buffered_rows = $5, \
                    file_name = $6, byte_size = $7, finished_at = now(), \
                    expires_at = now() + make_interval(secs => $8) \
              WHERE tenant_id = $1 AND id = $2 AND state = 'running' AND attempts = $3",
        )
        .bind(tid)
        .bind(job.id)
        .bind(job.attempts)
        .bind(rows as i64)
        .bind(peak as i32)
        .bind(kind.file_name(format))
        .bind(size)
        .bind(self.ttl.num_seconds() as f64)
        .execute(&mut *tx)
        .await?;
        if finished.rows_affected() == 0 {
            // someone else has it now (its task was re-enqueued): keep nothing
            tx.rollback().await?;
            return Ok(false);
        }
        usage::record(
            &mut tx,
            &format!("export:{}", job.id),
            MeteredKind::Export,
            1,
            Utc::now(),
        )
        .await?;
        let expires: DateTime<Utc> = sqlx::query_scalar(
            "SELECT expires_at FROM export_jobs WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tid)
        .bind(job.id)
        .fetch_one(&mut *tx)
        .await?;
        jobs::push_once(
            &mut tx,
            jobs::EXPORTS,
            &jobs::tenant_key(tid, &format!("export-expire:{}", job.id)),
            0,
            expires,
            &ExportTask::Expire {
                tenant: tid,
                export: job.id,
            },
        )
        .await?;
        // the integrators' event, committed with the file
        if webhook_events::wanted(&mut tx, tid, EventType::ExportReady).await? {
            let data = serde_json::json!({ "export": {
                "id": job.id,
                "kind": kind.as_str(),
                "format": format.as_str(),
                "file_name": kind.file_name(format),
                "rows": rows,
                "byte_size": size,
                "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            } });
            webhook_events::queue(&mut tx, tid, EventType::ExportReady, &data).await?;
        }
        tx.commit().await?;
        tracing::info!(tenant.id = %tenant.id, job = %job.id, rows, bytes = size, peak_rows = peak, "export done");
        Ok(true)
    }
}

impl Handler for ExportWorker {
    async fn handle(&self, task: &Task) -> Result<Outcome, sqlx::Error> {
        let export: ExportTask = match serde_json::from_slice(&task.args) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Outcome::Dead {
                    reason: format!("unreadable task: {e}"),
                });
            }
        };
        let (ExportTask::Write { tenant, .. } | ExportTask::Expire { tenant, .. }) = &export;
        let Some(tenant) = tenants::find_by_id(&self.pool, TenantId(*tenant)).await? else {
            return Ok(Outcome::Dead {
                reason: "the city no longer exists".into(),
            });
        };
        match export {
            ExportTask::Expire { export, .. } => self.expire(tenant.id, export).await,
            ExportTask::Write { .. } if tenant.status == TenantStatus::Suspended => {
                Ok(Outcome::Later {
                    after: Duration::from_secs(60),
                })
            }
            ExportTask::Write { export, .. } => self.write(&tenant, export).await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum WorkError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("could not use the scratch file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One database row as cells, by the plan's column kinds.
pub(crate) fn decode(
    row: &sqlx::postgres::PgRow,
    columns: &[Column],
) -> Result<Vec<Cell>, sqlx::Error> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(match c.kind {
                ColumnKind::Text => row.try_get::<Option<String>, _>(i)?.into(),
                ColumnKind::Integer => row.try_get::<Option<i64>, _>(i)?.into(),
                ColumnKind::Date => row.try_get::<Option<NaiveDate>, _>(i)?.into(),
                ColumnKind::DateTime => row.try_get::<Option<NaiveDateTime>, _>(i)?.into(),
            })
        })
        .collect()
}

/// The blocking half: receives batches and writes them; every row written is released from the
/// `buffered` count. Returns the rows written.
pub(crate) fn write_batches(
    path: &std::path::Path,
    format: ExportFormat,
    title: &str,
    columns: &[Column],
    mut batches: tokio::sync::mpsc::Receiver<Vec<Vec<Cell>>>,
    buffered: &AtomicUsize,
) -> Result<u64, ExportError> {
    let mut written = 0u64;
    match format {
        ExportFormat::Xlsx => {
            let mut book = XlsxExport::new();
            {
                let mut sheet = book.sheet(title, columns)?;
                while let Some(batch) = batches.blocking_recv() {
                    for row in &batch {
                        sheet.push(row)?;
                    }
                    written += batch.len() as u64;
                    buffered.fetch_sub(batch.len(), Ordering::SeqCst);
                }
                sheet.finish()?;
            }
            let file = std::fs::File::create(path)?;
            book.finish_to(std::io::BufWriter::new(file))?;
        }
        ExportFormat::CsvUtf8 | ExportFormat::CsvShiftJis => {
            let encoding = if format == ExportFormat::CsvUtf8 {
                CsvEncoding::Utf8Bom
            } else {
                CsvEncoding::ShiftJis
            };
            let file = std::io::BufWriter::new(std::fs::File::create(path)?);
            let mut csv = CsvExport::new(file, encoding, columns)?;
            while let Some(batch) = batches.blocking_recv() {
                for row in &batch {
                    csv.push(row)?;
                }
                written += batch.len() as u64;
                buffered.fetch_sub(batch.len(), Ordering::SeqCst);
            }
            csv.finish()?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_releases_every_batch_it_writes() {
        let dir = std::env::temp_dir().join(format!("yoyaku-export-test-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        let cols = vec![
            Column::new("番号", ColumnKind::Integer),
            Column::new("日", ColumnKind::Date),
        ];
        let (send, recv) = tokio::sync::mpsc::channel(4);
        let buffered = AtomicUsize::new(0);
        for b in 0..3i64 {
            let batch: Vec<Vec<Cell>> = (0..10)
                .map(|i| {
                    vec![
                        Cell::Int(b * 10 + i),
                        NaiveDate::from_ymd_opt(2026, 1, 1).expect("date").into(),
                    ]
                })
                .collect();
            buffered.fetch_add(batch.len(), Ordering::SeqCst);
            send.try_send(batch).expect("queued");
        }
        drop(send);
        let path = dir.join("t.csv");
        let n = write_batches(&path, ExportFormat::CsvUtf8, "t", &cols, recv, &buffered)
            .expect("written");
        assert_eq!(n, 30);
        assert_eq!(buffered.load(Ordering::SeqCst), 0);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 31);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
