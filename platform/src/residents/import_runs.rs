//! Imports as a record: [`run`] is what the admin UI's upload and GraphQL's `startResidentImport`
//! both call — it checks the size, parses, imports ([`super::import::import`]) and keeps the
//! outcome with every per-row error in `resident_imports`, in the import's own transaction, so the
//! import can be looked up afterwards by id ([`get`]). The work runs within the call (a register
//! of 2 MiB takes seconds): when `run` returns, the import is finished, `completed` (rows written)
//! or `rejected` (some rows invalid and `import_valid_rows` not asked for: nothing written, the
//! errors kept). A file that cannot be read at all is refused without a record.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::Row as _;
use uuid::Uuid;

use super::import::{self, ImportError, RowError};
use crate::staff::audit;
use crate::staff::authz::Scope;

/// The largest file an import takes (the server's request body limit is 2 MiB by default too).
pub const MAX_IMPORT_BYTES: usize = 2 * 1024 * 1024;

/// Where an import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStatus {
    /// The rows were written (with `import_valid_rows`, the valid ones).
    Completed,
    /// Some rows were invalid and nothing was written.
    Rejected,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Rejected => "rejected",
        }
    }
    fn parse(raw: &str) -> Self {
        if raw == "completed" {
            Self::Completed
        } else {
            Self::Rejected
        }
    }
}

/// An import as recorded.
#[derive(Debug, Clone)]
pub struct ImportRun {
    pub id: Uuid,
    pub status: ImportStatus,
    /// The file name (admin UI) or the caller's label (GraphQL).
    pub source: String,
    /// "UTF-8" or "Shift_JIS".
    pub encoding: String,
    pub import_valid_rows: bool,
    /// Data rows in the file (valid and invalid).
    pub rows_total: i64,
    /// Rows written or found unchanged (0 when rejected).
    pub rows_done: i64,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    /// Invalid rows left out (with `import_valid_rows`) or that caused the rejection.
    pub skipped_invalid: i64,
    /// Every invalid cell: line (the header is line 1), column, reason; in file order.
    pub errors: Vec<RowError>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Why an import was not even started; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the file is over {} MiB; split it into smaller files", MAX_IMPORT_BYTES / 1024 / 1024)]
    TooLarge,
    #[error("the source name must be one line of at most 200 characters")]
    BadSource,
    #[error("the file is not a CSV we can read: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Parses and imports an uploaded file (at most [`MAX_IMPORT_BYTES`]) and records the outcome
/// (see the module doc). The caller commits the scope in both outcomes (a rejected import wrote
/// only its record).
pub async fn run(
    scope: &mut Scope,
    bytes: &[u8],
    import_valid_rows: bool,
    source: &str,
) -> Result<ImportRun, RunError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(RunError::TooLarge);
    }
    run_file(scope, bytes, import_valid_rows, source, |_, _| {}).await
}

/// [`run`] without the upload size limit, telling `progress(rows done, rows)` as it goes: the
/// operator's `yoyaku import residents` (a whole city's register from the server's disk). Recorded
/// in the same history as uploads, so the city's staff see every import however it came in.
pub async fn run_file(
    scope: &mut Scope,
    bytes: &[u8],
    import_valid_rows: bool,
    source: &str,
    progress: impl FnMut(usize, usize),
) -> Result<ImportRun, RunError> {
    let source = crate::text::clean_line("source", source).map_err(|_| RunError::BadSource)?;
    if source.chars().count() > 200 {
        return Err(RunError::BadSource);
    }
    let source = if source.is_empty() {
        "upload.csv".to_owned()
    } else {
        source
    };
    let parsed = import::parse(bytes).map_err(|e| match e {
        ImportError::Unreadable(m) => RunError::Unreadable(m),
        ImportError::Database(e) => RunError::Database(e),
        other => RunError::Unreadable(other.to_string()),
    })?;
    let invalid_lines = parsed
        .errors
        .iter()
        .map(|e| e.line)
        .collect::<std::collections::HashSet<_>>()
        .len() as i64;
    let rows_total = parsed.rows.len() as i64 + invalid_lines;
    let (status, outcome) =
        match import::import(scope, &parsed, import_valid_rows, &source, progress).await {
            Ok(o) => (ImportStatus::Completed, o),
            Err(ImportError::InvalidRows(_)) => (
                ImportStatus::Rejected,
                import::ImportOutcome {
                    skipped_invalid: invalid_lines as u64,
                    ..Default::default()
                },
            ),
            Err(ImportError::Database(e)) => return Err(e.into()),
            Err(ImportError::Unreadable(m)) => return Err(RunError::Unreadable(m)),
        };
    let id = Uuid::now_v7();
    let errors: Value = parsed
        .errors
        .iter()
        .map(|e| json!({ "line": e.line, "column": e.column, "reason": e.reason }))
        .collect();
    let rows_done = (outcome.inserted + outcome.updated + outcome.unchanged) as i64;
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO resident_imports (tenant_id, id, status, source, encoding, import_valid_rows, \
             rows_total, rows_done, inserted, updated, unchanged, skipped_invalid, errors, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING created_at",
    )
    .bind(scope.tenant_id().0)
    .bind(id)
    .bind(status.as_str())
    .bind(&source)
    .bind(parsed.encoding)
    .bind(import_valid_rows)
    .bind(rows_total)
    .bind(rows_done)
    .bind(outcome.inserted as i64)
    .bind(outcome.updated as i64)
    .bind(outcome.unchanged as i64)
    .bind(outcome.skipped_invalid as i64)
    .bind(&errors)
    .bind(&scope.actor.label)
    .fetch_one(&mut *scope.tx)
    .await?;
    if status == ImportStatus::Rejected {
        audit::record(
            scope,
            "residents.import.rejected",
            &format!("resident_import/{id}"),
            json!({ "source": source, "rows": rows_total, "invalid_rows": invalid_lines }),
        )
        .await?;
    }
    Ok(ImportRun {
        id,
        status,
        source,
        encoding: parsed.encoding.to_owned(),
        import_valid_rows,
        rows_total,
        rows_done,
        inserted: outcome.inserted as i64,
        updated: outcome.updated as i64,
        unchanged: outcome.unchanged as i64,
        skipped_invalid: outcome.skipped_invalid as i64,
        errors: parsed.errors,
        created_by: scope.actor.label.clone(),
        created_at,
    })
}

/// One import of the city (None: no such import here — also another city's id).
pub async fn get(scope: &mut Scope, id: Uuid) -> Result<Option<ImportRun>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, status, source, encoding, import_valid_rows, rows_total, rows_done, inserted, \
                updated, unchanged, skipped_invalid, errors, created_by, created_at \
         FROM resident_imports WHERE tenant_id = $1 AND id = $2",
    )
    .bind(scope.tenant_id().0)
    .bind(id)
    .fetch_optional(&mut *scope.tx)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let errors: Value = r.try_get("errors")?;
    let errors = errors
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| RowError {
                    line: e["line"].as_u64().unwrap_or(0),
                    column: e["column"].as_str().unwrap_or("").to_owned(),
                    reason: e["reason"].as_str().unwrap_or("").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(ImportRun {
        id: r.try_get("id")?,
        status: ImportStatus::parse(r.try_get::<&str, _>("status")?),
        source: r.try_get("source")?,
        encoding: r.try_get("encoding")?,
        import_valid_rows: r.try_get("import_valid_rows")?,
        rows_total: r.try_get("rows_total")?,
        rows_done: r.try_get("rows_done")?,
        inserted: r.try_get("inserted")?,
        updated: r.try_get("updated")?,
        unchanged: r.try_get("unchanged")?,
        skipped_invalid: r.try_get("skipped_invalid")?,
        errors,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    }))
}
