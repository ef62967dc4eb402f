//! Export jobs (docs/exports.md): staff queue an export, a background worker writes it, staff with
//! the right role download it until it expires.
//!
//! * **Kinds** ([`ExportKind`]): each is one arm of [`ExportKind::plan`] — a Japanese title (sheet
//!   and file name), typed columns and one SQL query whose result columns match them. Adding a kind
//!   is one enum variant and one arm.
//! * **Formats**: Excel through [`crate::export::XlsxExport`] (frozen header, auto-filter, real
//!   dates, Japanese sheet name, constant-memory mode) or CSV through [`crate::export::CsvExport`]
//!   (UTF-8 with BOM, or Shift_JIS).
//! * **Bounded memory**: rows are streamed from PostgreSQL (`fetch`, a server-side stream read as it
//!   is consumed) and cut into batches of [`BATCH_ROWS`]; a bounded channel of one batch hands them
//!   to a blocking thread that writes the file. At most three batches exist at once (being filled,
//!   queued, being written); the job records the peak it saw (`max_buffered_rows`).
//! * **Jobs**: `export_jobs` rows, claimed with `FOR UPDATE SKIP LOCKED` (any number of workers),
//!   states queued → running → done | failed, then expired. A running job whose worker vanished is
//!   re-queued when its lease ends (three attempts). `rows_done` is updated after every batch.
//! * **Files** live in the database (`export_chunks`, 1 MiB bytea chunks): every server process
//!   can serve every download, row-level security covers the files like any tenant data, and
//!   expiry is a DELETE. The worker tick expires done jobs past `expires_at` and deletes their chunks.
//! * **Audit**: creating and downloading are audited; downloads only through [`open_download`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::{Stream, TryStreamExt};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};
use tenants::billing::{MeteredKind, usage};
use tenants::{Tenant, TenantId, TenantStatus};
use uuid::Uuid;

use crate::audit;
use crate::authz::Scope;
use crate::export::{Cell, Column, ColumnKind, CsvEncoding, CsvExport, ExportError, XlsxExport};

/// Rows per batch handed from the database stream to the file writer.
pub const BATCH_ROWS: usize = 1_000;
/// Size of one stored file chunk.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// How long a worker may hold a running job without reporting progress.
pub const LEASE_SECS: i64 = 600;
pub const MAX_ATTEMPTS: i32 = 3;

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportKind {
    /// Live bookings of one venue on one local day (the day's intake list).
    BookedList { venue_id: Uuid, date: NaiveDate },
    /// Eligible residents without a live booking.
    UnbookedResidents,
    /// Every booking, live and cancelled.
    BookingLedger,
    /// Every vaccination recorded at intake, with the side effects noted at that visit.
    VaccinationRecords,
}

/// What a kind needs to be written: titles, typed columns and the query (binds: `$1` tenant id,
/// `$2` the kind's params as JSON). The query's columns are, in order, of the SQL types matching the
/// column kinds: text, bigint, date, timestamp (local time, without zone).
pub struct Plan {
    /// Sheet name and the start of the file name (Japanese).
    pub title: &'static str,
    /// ASCII file-name stem.
    pub slug: &'static str,
    pub columns: Vec<Column>,
    pub sql: &'static str,
}

const BOOKED_LIST_SQL: &str = "\
SELECT (s.starts_at AT TIME ZONE t.time_zone) AS starts, r.ticket_no, r.kana_name, r.birth_date,
       CASE r.sex WHEN 'female' THEN '女' WHEN 'male' THEN '男' WHEN 'other' THEN 'その他' ELSE '不明' END,
       b.dose::bigint, x.name, r.phone
  FROM bookings b
  JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id
  JOIN residents r ON r.tenant_id = b.tenant_id AND r.id = b.resident_id
  JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id
  JOIN tenants t ON t.id = b.tenant_id
 WHERE b.tenant_id = $1 AND b.status = 'booked'
   AND s.venue_id = ($2->>'venue_id')::uuid
   AND (s.starts_at AT TIME ZONE t.time_zone)::date = ($2->>'date')::date
 ORDER BY s.starts_at, r.ticket_no";

const UNBOOKED_SQL: &str = "\
SELECT r.ticket_no, r.kana_name, r.birth_date,
       CASE r.sex WHEN 'female' THEN '女' WHEN 'male' THEN '男' WHEN 'other' THEN 'その他' ELSE '不明' END,
       r.phone, r.email, r.postal_code
  FROM residents r
 WHERE r.tenant_id = $1 AND $2::jsonb IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM bookings b
                    WHERE b.tenant_id = r.tenant_id AND b.resident_id = r.id AND b.status = 'booked')
 ORDER BY r.ticket_no";

const LEDGER_SQL: &str = "\
SELECT b.id::text, CASE b.status WHEN 'booked' THEN '予約中' WHEN 'cancelled' THEN '取消' ELSE b.status END,
       (b.created_at AT TIME ZONE t.time_zone), (s.starts_at AT TIME ZONE t.time_zone), v.name, x.name,
       b.dose::bigint, r.ticket_no, r.kana_name, r.birth_date, (b.updated_at AT TIME ZONE t.time_zone)
  FROM bookings b
  JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id
  JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id
  JOIN residents r ON r.tenant_id = b.tenant_id AND r.id = b.resident_id
  JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id
  JOIN tenants t ON t.id = b.tenant_id
 WHERE b.tenant_id = $1 AND $2::jsonb IS NOT NULL
 ORDER BY b.created_at, b.id";

const VACCINATION_RECORDS_SQL: &str = "\
SELECT (c.vaccinated_at AT TIME ZONE t.time_zone), r.ticket_no, r.kana_name, r.birth_date,
       CASE r.sex WHEN 'female' THEN '女' WHEN 'male' THEN '男' WHEN 'other' THEN 'その他' ELSE '不明' END,
       c.dose::bigint, x.name, c.lot_number, c.dose_ml::text, c.vaccinator, v.name,
       coalesce((SELECT string_agg(
                   CASE n.kind WHEN 'injection_site' THEN '接種部位の反応' WHEN 'fever' THEN '発熱'
                        WHEN 'fatigue' THEN '倦怠感' WHEN 'headache' THEN '頭痛' WHEN 'allergic' THEN 'アレルギー反応'
                        WHEN 'anaphylaxis' THEN 'アナフィラキシー' WHEN 'vasovagal' THEN '血管迷走神経反射'
                        ELSE 'その他' END
                   || '（' || CASE n.severity WHEN 'mild' THEN '軽度' WHEN 'moderate' THEN '中等度' ELSE '重度' END || '）',
                   '、' ORDER BY n.onset_at)
                   FROM side_effect_notes n
                  WHERE n.tenant_id = c.tenant_id AND n.booking_id = c.booking_id), ''),
       c.recorded_by
  FROM vaccination_records c
  JOIN residents r ON r.tenant_id = c.tenant_id AND r.id = c.resident_id
  JOIN vaccines x ON x.tenant_id = c.tenant_id AND x.id = c.vaccine_id
  JOIN venues v ON v.tenant_id = c.tenant_id AND v.id = c.venue_id
  JOIN tenants t ON t.id = c.tenant_id
 WHERE c.tenant_id = $1 AND $2::jsonb IS NOT NULL
 ORDER BY c.vaccinated_at, c.id";

impl ExportKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::BookedList { .. } => "booked_list",
            Self::UnbookedResidents => "unbooked_residents",
            Self::BookingLedger => "booking_ledger",
            Self::VaccinationRecords => "vaccination_records",
        }
    }

    pub fn params(&self) -> Value {
        match self {
            Self::BookedList { venue_id, date } => json!({ "venue_id": venue_id, "date": date }),
            Self::UnbookedResidents | Self::BookingLedger | Self::VaccinationRecords => json!({}),
        }
    }

    /// The kind back from its stored name and params.
    pub fn from_stored(kind: &str, params: &Value) -> Option<Self> {
        match kind {
            "booked_list" => Some(Self::BookedList {
                venue_id: params.get("venue_id")?.as_str()?.parse().ok()?,
                date: params.get("date")?.as_str()?.parse().ok()?,
            }),
            "unbooked_residents" => Some(Self::UnbookedResidents),
            "booking_ledger" => Some(Self::BookingLedger),
            "vaccination_records" => Some(Self::VaccinationRecords),
            _ => None,
        }
    }

    pub fn plan(&self) -> Plan {
        use ColumnKind::{Date, DateTime, Integer, Text};
        let cols = |c: &[(&str, ColumnKind)]| -> Vec<Column> {
            c.iter().map(|(t, k)| Column::new(*t, *k)).collect()
        };
        match self {
            Self::BookedList { .. } => Plan {
                title: "予約者一覧",
                slug: "booked-list",
                columns: cols(&[
                    ("予約時刻", DateTime),
                    ("接種券番号", Text),
                    ("カナ氏名", Text),
                    ("生年月日", Date),
                    ("性別", Text),
                    ("回数", Integer),
                    ("ワクチン", Text),
                    ("電話番号", Text),
                ]),
                sql: BOOKED_LIST_SQL,
            },
            Self::UnbookedResidents => Plan {
                title: "未予約者一覧",
                slug: "unbooked-residents",
                columns: cols(&[
                    ("接種券番号", Text),
                    ("カナ氏名", Text),
                    ("生年月日", Date),
                    ("性別", Text),
                    ("電話番号", Text),
                    ("メール", Text),
                    ("郵便番号", Text),
                ]),
                sql: UNBOOKED_SQL,
            },
            Self::BookingLedger => Plan {
                title: "予約台帳",
                slug: "booking-ledger",
                columns: cols(&[
                    ("予約ID", Text),
                    ("状態", Text),
                    ("予約受付日時", DateTime),
                    ("接種日時", DateTime),
                    ("会場", Text),
                    ("ワクチン", Text),
                    ("回数", Integer),
                    ("接種券番号", Text),
                    ("カナ氏名", Text),
                    ("生年月日", Date),
                    ("更新日時", DateTime),
                ]),
                sql: LEDGER_SQL,
            },
            Self::VaccinationRecords => Plan {
                title: "接種記録",
                slug: "vaccination-records",
                columns: cols(&[
                    ("接種日時", DateTime),
                    ("接種券番号", Text),
                    ("カナ氏名", Text),
                    ("生年月日", Date),
                    ("性別", Text),
                    ("回数", Integer),
                    ("ワクチン", Text),
                    ("ロット番号", Text),
                    ("接種量(mL)", Text),
                    ("接種者", Text),
                    ("会場", Text),
                    ("副反応", Text),
                    ("記録者", Text),
                ]),
                sql: VACCINATION_RECORDS_SQL,
            },
        }
    }

    /// The download's file name (ASCII: every browser and mail filter keeps it).
    pub fn file_name(&self, format: ExportFormat) -> String {
        let stem = match self {
            Self::BookedList { date, .. } => format!("{}-{date}", self.plan().slug),
            _ => self.plan().slug.to_owned(),
        };
        format!("{stem}.{}", format.extension())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Xlsx,
    CsvUtf8,
    CsvShiftJis,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 3] = [Self::Xlsx, Self::CsvUtf8, Self::CsvShiftJis];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xlsx => "xlsx",
            Self::CsvUtf8 => "csv_utf8",
            Self::CsvShiftJis => "csv_sjis",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
    pub fn extension(self) -> &'static str {
        match self {
            Self::Xlsx => "xlsx",
            _ => "csv",
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::CsvUtf8 => "text/csv; charset=utf-8",
            Self::CsvShiftJis => "text/csv; charset=shift_jis",
        }
    }
}

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

impl ExportJob {
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

const JOB_COLUMNS: &str = "id, kind, params, format, state, rows_total, rows_done, max_buffered_rows, \
    error, file_name, byte_size, created_by, created_at, finished_at, expires_at";

fn job_from_row(r: &sqlx::postgres::PgRow) -> Result<ExportJob, sqlx::Error> {
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

/// Queues an export (audited). A venue of another tenant is "not found".
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

/// One job of the tenant.
pub async fn get(scope: &mut Scope, id: Uuid) -> Result<Option<ExportJob>, sqlx::Error> {
    let tenant = scope.tenant_id().0;
    get_in(&mut scope.tx, tenant, id).await
}

async fn get_in(
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
    match job.state.as_str() {
        "done" if job.expires_at.is_some_and(|e| e > Utc::now()) => {}
        "done" | "expired" => return Err(ExportJobError::Expired),
        _ => return Err(ExportJobError::NotReady),
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

/// The background half: claims queued jobs, writes them, expires old files.
#[derive(Clone)]
pub struct ExportWorker {
    pub pool: PgPool,
    /// How long a finished file can be downloaded (`exports.ttl_hours`).
    pub ttl: chrono::Duration,
    /// Where files are written while being built (then stored in the database and deleted).
    pub scratch_dir: std::path::PathBuf,
}

/// What one worker pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub done: usize,
    pub failed: usize,
    pub expired: u64,
    pub requeued: u64,
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
        }
    }

    /// Ticks every `every` until `shutdown` resolves; a job in progress is finished first.
    pub async fn run(self, every: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "export worker pass failed");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One pass over every tenant: expire old files, re-queue abandoned jobs, work queued ones.
    pub async fn run_once(&self) -> Result<TickReport, sqlx::Error> {
        let mut report = TickReport::default();
        for tenant in tenants::list(&self.pool).await? {
            let (expired, requeued) = self.housekeeping(tenant.id).await?;
            report.expired += expired;
            report.requeued += requeued;
            if tenant.status == TenantStatus::Suspended {
                continue;
            }
            while let Some(job) = self.claim(&tenant).await? {
                match self.work(&tenant, &job).await {
                    Ok(true) => report.done += 1,
                    Ok(false) => {}
                    Err(e) => {
                        report.failed += 1;
                        self.fail(&tenant, &job, &e.to_string()).await?;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Expires done jobs past `expires_at` (their chunks are deleted) and re-queues (or fails)
    /// running jobs whose lease ended. Returns (expired, re-queued).
    pub async fn housekeeping(&self, tenant: TenantId) -> Result<(u64, u64), sqlx::Error> {
        let mut tx = tenants::begin(&self.pool, tenant).await?;
        let expired: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE export_jobs SET state = 'expired' \
             WHERE tenant_id = $1 AND state = 'done' AND expires_at <= now() RETURNING id",
        )
        .bind(tenant.0)
        .fetch_all(&mut *tx)
        .await?;
        let abandoned: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE export_jobs SET \
               state = CASE WHEN attempts >= $2 THEN 'failed' ELSE 'queued' END, \
               error = CASE WHEN attempts >= $2 THEN 'the worker stopped during the export; please create it again' END, \
               rows_done = 0, lease_until = NULL \
             WHERE tenant_id = $1 AND state = 'running' AND lease_until < now() RETURNING id",
        )
        .bind(tenant.0)
        .bind(MAX_ATTEMPTS)
        .fetch_all(&mut *tx)
        .await?;
        let gone: Vec<Uuid> = expired.iter().chain(&abandoned).copied().collect();
        if !gone.is_empty() {
            sqlx::query("DELETE FROM export_chunks WHERE tenant_id = $1 AND job_id = ANY($2)")
                .bind(tenant.0)
                .bind(&gone)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if !expired.is_empty() {
            tracing::info!(tenant.id = %tenant, expired = expired.len(), "export files expired");
        }
        Ok((expired.len() as u64, abandoned.len() as u64))
    }

    async fn claim(&self, tenant: &Tenant) -> Result<Option<Claimed>, sqlx::Error> {
        let mut tx = tenants::begin(&self.pool, tenant.id).await?;
        let row = sqlx::query(
            "UPDATE export_jobs j SET state = 'running', started_at = now(), attempts = j.attempts + 1, \
                    lease_until = now() + make_interval(secs => $2), rows_done = 0, error = NULL \
              WHERE j.tenant_id = $1 AND j.id = ( \
                    SELECT id FROM export_jobs WHERE tenant_id = $1 AND state = 'queued' \
                     ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING j.id, j.kind, j.params, j.format, j.attempts",
        )
        .bind(tenant.id.0)
        .bind(LEASE_SECS as f64)
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
            "UPDATE export_jobs SET rows_done = $3, lease_until = now() + make_interval(secs => $4) \
             WHERE tenant_id = $1 AND id = $2 AND state = 'running'",
        )
        .bind(tenant.0)
        .bind(id)
        .bind(rows as i64)
        .bind(LEASE_SECS as f64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Writes one claimed job; `Ok(false)` when it was taken away meanwhile (lease ended).
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
                    file_name = $6, byte_size = $7, finished_at = now(), lease_until = NULL, \
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
            // the lease ended and someone else has it (or it was re-queued): keep nothing
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
        tx.commit().await?;
        tracing::info!(tenant.id = %tenant.id, job = %job.id, rows, bytes = size, peak_rows = peak, "export done");
        Ok(true)
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
fn decode(row: &sqlx::postgres::PgRow, columns: &[Column]) -> Result<Vec<Cell>, sqlx::Error> {
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
fn write_batches(
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
    fn kinds_round_trip_through_storage() {
        let kinds = [
            ExportKind::BookedList {
                venue_id: Uuid::now_v7(),
                date: NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"),
            },
            ExportKind::UnbookedResidents,
            ExportKind::BookingLedger,
        ];
        for k in kinds {
            assert_eq!(ExportKind::from_stored(k.as_str(), &k.params()), Some(k));
        }
        assert_eq!(ExportKind::from_stored("booked_list", &json!({})), None);
    }

    #[test]
    fn file_names_are_ascii() {
        let k = ExportKind::BookedList {
            venue_id: Uuid::nil(),
            date: NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"),
        };
        assert_eq!(
            k.file_name(ExportFormat::Xlsx),
            "booked-list-2026-12-01.xlsx"
        );
        assert_eq!(
            ExportKind::UnbookedResidents.file_name(ExportFormat::CsvShiftJis),
            "unbooked-residents.csv"
        );
    }

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
