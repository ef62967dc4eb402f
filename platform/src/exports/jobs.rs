//! Export jobs as staff see them: queue one ([`create`]), list them, and download a finished file
//! ([`open_download`], audited) until it expires.

use chrono::{DateTime, Utc};
use futures::Stream;
use serde_json::{Value, json};
use sqlx::{PgPool, Row};
use tenants::TenantId;
use uuid::Uuid;

use crate::staff::audit;
use crate::staff::authz::Scope;

use super::kinds::{ExportFormat, ExportKind};

#[derive(Debug, thiserror::Error)]
pub enum ExportJobError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("this export has expired; please create it again")]
    Expired,
    #[error("this export is not ready yet")]
    NotReady,
    /// The plan's monthly cap on exports is used up (docs/billing.md, "Hard caps"); nothing queued.
    #[error("{0}")]
    PlanLimit(crate::caps::CapReached),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// An export job as the admin page lists it.
#[derive(Debug, Clone)]
pub struct ExportJob {
    pub id: Uuid,
    pub kind: String,
    pub params: Value,
    pub format: String,
    pub state: String,
    pub rows_total: Option<i64>,
    pub rows_done: i64,
    pub max_buffered_rows: Option<i32>,
    pub error: Option<String>,
    pub file_name: Option<String>,
    pub byte_size: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where an export stands, as every door shows it ([`ExportJob::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStatus {
    /// Waiting for a worker.
    Queued,
    /// Being written.
    Running,
    /// Ready to download until `expires_at`.
    Done,
    /// Could not be written (`error` says why).
    Failed,
    /// Past `expires_at`: the file is (or is about to be) deleted; create the export again.
    Expired,
}

impl ExportStatus {
    /// The stored state's name (`data-state` on the admin page).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }
}

impl ExportJob {
    /// Where the export stands at `now`. A finished file past its `expires_at` is expired at once,
    /// even before the expiry task has deleted it: no door offers a download that would fail.
    pub fn status(&self, now: DateTime<Utc>) -> ExportStatus {
        match self.state.as_str() {
            "queued" => ExportStatus::Queued,
            "running" => ExportStatus::Running,
            "done" if self.expires_at.is_some_and(|e| e > now) => ExportStatus::Done,
            "failed" => ExportStatus::Failed,
            _ => ExportStatus::Expired,
        }
    }

    /// Progress in percent, when the total is known.
    pub fn percent(&self) -> Option<i64> {
        match (self.state.as_str(), self.rows_total) {
            ("done", _) => Some(100),
            (_, Some(t)) if t > 0 => Some((self.rows_done * 100 / t).clamp(0, 100)),
            (_, Some(_)) => Some(0),
            _ => None,
        }
    }
}

pub(crate) const JOB_COLUMNS: &str = "id, kind, params, format, state, rows_total, rows_done, max_buffered_rows, \
    error, file_name, byte_size, created_by, created_at, finished_at, expires_at";

pub(crate) fn job_from_row(r: &sqlx::postgres::PgRow) -> Result<ExportJob, sqlx::Error> {
    Ok(ExportJob {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        params: r.try_get("params")?,
        format: r.try_get("format")?,
        state: r.try_get("state")?,
        rows_total: r.try_get("rows_total")?,
        rows_done: r.try_get("rows_done")?,
        max_buffered_rows: r.try_get("max_buffered_rows")?,
        error: r.try_get("error")?,
        file_name: r.try_get("file_name")?,
        byte_size: r.try_get("byte_size")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// Queues an export (audited). A venue of another tenant is "not found". A city whose plan caps
/// exports gets [`ExportJobError::PlanLimit`] once the month's exports (written, queued or running)
/// reach the cap: decided under the cap's lock in this transaction, so of many exports started at
/// once exactly the ones that fit are queued ([`crate::caps::take`]).
pub async fn create(
    scope: &mut Scope,
    kind: &ExportKind,
    format: ExportFormat,
) -> Result<Uuid, ExportJobError> {
    let tid = scope.tenant_id().0;
    if let ExportKind::BookedList { venue_id, .. } = kind {
        let exists: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM venues WHERE tenant_id = $1 AND id = $2")
                .bind(tid)
                .bind(venue_id)
                .fetch_optional(&mut *scope.tx)
                .await?;
        if exists.is_none() {
            return Err(ExportJobError::NotFound);
        }
    }
    let tenant = tenants::find_by_id(&mut *scope.tx, TenantId(tid))
        .await?
        .ok_or(ExportJobError::NotFound)?;
    if let Err(reached) =
        crate::caps::take(&mut scope.tx, &tenant, crate::caps::Use::Export, Utc::now()).await?
    {
        return Err(ExportJobError::PlanLimit(reached));
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO export_jobs (tenant_id, id, kind, format, params, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tid)
    .bind(id)
    .bind(kind.as_str())
    .bind(format.as_str())
    .bind(kind.params())
    .bind(&scope.actor.label)
    .execute(&mut *scope.tx)
    .await?;
    crate::jobs::push(
        &mut scope.tx,
        crate::jobs::EXPORTS,
        &crate::jobs::tenant_key(tid, &format!("export:{id}")),
        0,
        &super::ExportTask::Write {
            tenant: tid,
            export: id,
        },
    )
    .await?;
    audit::record(
        scope,
        "export.create",
        &format!("export/{id}"),
        json!({ "kind": kind.as_str(), "format": format.as_str(), "params": kind.params() }),
    )
    .await?;
    Ok(id)
}

/// The newest `limit` export jobs of the tenant.
pub async fn list(scope: &mut Scope, limit: i64) -> Result<Vec<ExportJob>, sqlx::Error> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM export_jobs WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(limit)
        .fetch_all(&mut *scope.tx)
        .await?;
    rows.iter().map(job_from_row).collect()
}

/// Export jobs newest first, as a keyset on the job id (UUIDv7, in creation order): the `first`
/// jobs older than `before` (None: from the newest). Returns one more than asked when more follow.
/// Lists name no resident (kinds, states, file names), so reading them is not audited.
pub async fn page(
    scope: &mut Scope,
    before: Option<Uuid>,
    first: i64,
) -> Result<Vec<ExportJob>, sqlx::Error> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM export_jobs WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(before)
        .bind(first + 1)
        .fetch_all(&mut *scope.tx)
        .await?;
    rows.iter().map(job_from_row).collect()
}

/// How many export jobs the tenant has (expired ones included).
pub async fn count(scope: &mut Scope) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM export_jobs WHERE tenant_id = $1")
        .bind(scope.tenant_id().0)
        .fetch_one(&mut *scope.tx)
        .await
}

/// One job of the tenant.
pub async fn get(scope: &mut Scope, id: Uuid) -> Result<Option<ExportJob>, sqlx::Error> {
    let tenant = scope.tenant_id().0;
    get_in(&mut scope.tx, tenant, id).await
}

pub(crate) async fn get_in(
    conn: &mut sqlx::PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<ExportJob>, sqlx::Error> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM export_jobs WHERE tenant_id = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(job_from_row).transpose()
}

/// A download about to be served.
#[derive(Debug, Clone)]
pub struct Download {
    pub job_id: Uuid,
    pub tenant: TenantId,
    pub file_name: String,
    pub content_type: &'static str,
    pub byte_size: i64,
    pub chunks: i32,
}

/// Checks that the job's file can be downloaded and records the download in the audit log (the
/// caller commits the scope, then streams [`chunks`]).
pub async fn open_download(scope: &mut Scope, id: Uuid) -> Result<Download, ExportJobError> {
    let job = get(scope, id).await?.ok_or(ExportJobError::NotFound)?;
    match job.status(Utc::now()) {
        ExportStatus::Done => {}
        ExportStatus::Expired => return Err(ExportJobError::Expired),
        ExportStatus::Queued | ExportStatus::Running | ExportStatus::Failed => {
            return Err(ExportJobError::NotReady);
        }
    }
    let chunks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM export_chunks WHERE tenant_id = $1 AND job_id = $2",
    )
    .bind(scope.tenant_id().0)
    .bind(id)
    .fetch_one(&mut *scope.tx)
    .await?;
    audit::record(
        scope,
        "export.download",
        &format!("export/{id}"),
        json!({ "kind": job.kind, "file": job.file_name, "rows": job.rows_done }),
    )
    .await?;
    let format = ExportFormat::parse(&job.format).unwrap_or(ExportFormat::Xlsx);
    Ok(Download {
        job_id: id,
        tenant: scope.tenant_id(),
        file_name: job.file_name.unwrap_or_else(|| "export".into()),
        content_type: format.content_type(),
        byte_size: job.byte_size.unwrap_or(0),
        chunks: chunks as i32,
    })
}

/// The file's chunks in order, each read in its own short tenant-scoped transaction, so a large
/// download neither holds a transaction open nor the whole file in memory. Only after
/// [`open_download`] (which checked and audited).
pub fn chunks(
    pool: PgPool,
    d: &Download,
) -> impl Stream<Item = Result<Vec<u8>, sqlx::Error>> + Send + use<> {
    let (tenant, job, n) = (d.tenant, d.job_id, d.chunks);
    futures::stream::try_unfold(0i32, move |seq| {
        let pool = pool.clone();
        async move {
            if seq >= n {
                return Ok(None);
            }
            let mut tx = tenants::begin(&pool, tenant).await?;
            let data: Vec<u8> = sqlx::query_scalar(
                "SELECT data FROM export_chunks WHERE tenant_id = $1 AND job_id = $2 AND seq = $3",
            )
            .bind(tenant.0)
            .bind(job)
            .bind(seq)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some((data, seq + 1)))
        }
    })
}
