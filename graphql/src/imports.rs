//! Eligible-resident imports over GraphQL, through the admin UI's platform function
//! (`platform::residents::import_runs::run`): `startResidentImport` (scope `imports:write`) and
//! `city { residentImport(id) }` to read an import back with its per-row errors.

use crate::scalars::DateTime;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use platform::residents::import::RowError;
use platform::residents::import_runs::{self, ImportRun, ImportStatus, RunError};
use platform::staff::authz::{Act, Object as Obj};
use sqlx::PgPool;
use tenants::TenantId;
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::city_bookings::{PageInfo, UserError};

/// Where an import ended (imports run within `startResidentImport`: it answers when done).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ResidentImportStatus {
    /// The rows were written (with `importValidRows`, the valid ones; the others are in `errors`).
    Completed,
    /// Some rows were invalid and nothing was written; `errors` names each.
    Rejected,
}

/// One invalid cell of the file.
#[derive(SimpleObject)]
pub struct ImportRowError {
    /// The line of the file (the header is line 1).
    line: i64,
    /// The column (e.g. `birth_date`); empty when the whole row could not be read.
    field: String,
    /// What is wrong and how to fix it.
    message: String,
}

impl From<&RowError> for ImportRowError {
    fn from(e: &RowError) -> Self {
        Self {
            line: i64::try_from(e.line).unwrap_or(i64::MAX),
            field: e.column.clone(),
            message: e.reason.clone(),
        }
    }
}

/// One row error of a page and the cursor to continue after it.
#[derive(SimpleObject)]
pub struct ImportRowErrorEdge {
    /// Opaque; pass it as `after` to continue after this error.
    cursor: String,
    /// The error.
    node: ImportRowError,
}

/// A page of an import's row errors, in file order.
#[derive(SimpleObject)]
pub struct ImportRowErrorConnection {
    /// The errors of this page.
    edges: Vec<ImportRowErrorEdge>,
    /// Where this page ends and whether more follow.
    page_info: PageInfo,
    /// How many errors the import has, all pages together.
    total_count: i64,
}

/// An eligible-resident import and its outcome.
pub struct ResidentImport(ImportRun);

const MAX_ERRORS_PAGE: i64 = 1000;

fn error_cursor(index: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("import-error:{index}"))
}

fn parse_error_cursor(cursor: &str) -> Option<usize> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("import-error:")?
        .parse()
        .ok()
}

/// An eligible-resident import and its outcome, with its per-row errors.
#[Object]
impl ResidentImport {
    /// The import's id (for `city { residentImport(id:) }`).
    async fn id(&self) -> Uuid {
        self.0.id
    }
    /// Where it ended.
    async fn status(&self) -> ResidentImportStatus {
        match self.0.status {
            ImportStatus::Completed => ResidentImportStatus::Completed,
            ImportStatus::Rejected => ResidentImportStatus::Rejected,
        }
    }
    /// Percent of the file's rows handled: 100 once finished (always, since imports finish
    /// within `startResidentImport`).
    async fn progress(&self) -> i32 {
        100
    }
    /// The file name or label the import was started with.
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// The file's encoding as read: `UTF-8` or `Shift_JIS`.
    async fn encoding(&self) -> &str {
        &self.0.encoding
    }
    /// Whether valid rows were to be imported despite invalid ones.
    async fn import_valid_rows(&self) -> bool {
        self.0.import_valid_rows
    }
    /// Data rows in the file (valid and invalid).
    async fn rows(&self) -> i64 {
        self.0.rows_total
    }
    /// Rows written or found unchanged (0 when rejected).
    async fn rows_done(&self) -> i64 {
        self.0.rows_done
    }
    /// New residents.
    async fn inserted(&self) -> i64 {
        self.0.inserted
    }
    /// Residents whose details changed.
    async fn updated(&self) -> i64 {
        self.0.updated
    }
    /// Residents already registered with the same details.
    async fn unchanged(&self) -> i64 {
        self.0.unchanged
    }
    /// Invalid rows left out (or that caused the rejection).
    async fn skipped_invalid(&self) -> i64 {
        self.0.skipped_invalid
    }
    /// Who started it (a staff member's e-mail or `API key <name>`).
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    /// When it ran.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// The invalid cells, in file order, a page at a time (`first` 1–1000, default 100).
    #[graphql(
        complexity = "2 + child_complexity.max(1) * (first.clamp(1, 1000) as usize).div_ceil(10)"
    )]
    async fn errors(
        &self,
        #[graphql(default = 100, desc = "How many errors, 1–1000.")] first: i64,
        #[graphql(desc = "Continue after this cursor (an edge's `cursor` or `endCursor`).")]
        after: Option<String>,
    ) -> Result<ImportRowErrorConnection> {
        if !(1..=MAX_ERRORS_PAGE).contains(&first) {
            return Err(ApiError::Validation("`first` must be between 1 and 1000".into()).into());
        }
        let start = match after {
            None => 0,
            Some(a) => parse_error_cursor(&a).map(|i| i + 1).ok_or_else(|| {
                ApiError::Validation(
                    "`after` is not a cursor of this list: pass an `endCursor` or edge `cursor` \
                     exactly as it was returned"
                        .into(),
                )
            })?,
        };
        let all = &self.0.errors;
        let end = start.saturating_add(first as usize).min(all.len());
        let edges: Vec<ImportRowErrorEdge> = (start.min(end)..end)
            .map(|i| ImportRowErrorEdge {
                cursor: error_cursor(i),
                node: (&all[i]).into(),
            })
            .collect();
        Ok(ImportRowErrorConnection {
            page_info: PageInfo {
                has_next_page: end < all.len(),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: all.len() as i64,
        })
    }
}

/// `city { residentImport(id) }`: null when the city has no such import.
pub async fn get(ctx: &Context<'_>, tenant: TenantId, id: Uuid) -> Result<Option<ResidentImport>> {
    let mut scope = auth::enter(ctx, tenant, Obj::Imports, Act::Write).await?;
    let run = import_runs::get(&mut scope, id)
        .await
        .map_err(ApiError::from)?;
    scope.commit().await.map_err(ApiError::from)?;
    Ok(run.map(ResidentImport))
}

/// Import eligible residents from a CSV file (the admin UI's format).
#[derive(InputObject)]
pub struct StartResidentImportInput {
    /// The file's text: a header line naming the columns (`ticket_no, birth_date, kana_name, sex`
    /// and optionally `phone, email, postal_code, preferred_language`), then one resident a
    /// line; at most 2 MiB (the request body limit applies too).
    csv: String,
    /// Write the valid rows even when some are invalid (default: nothing unless all are valid).
    #[graphql(default)]
    import_valid_rows: bool,
    /// A label kept with the import (e.g. the file name); default `upload.csv`.
    #[graphql(default)]
    source: String,
}

/// What `startResidentImport` did: the import (finished), or why it could not start.
#[derive(SimpleObject)]
pub struct StartResidentImportPayload {
    /// The import, COMPLETED or REJECTED (null when `errors` is not empty).
    resident_import: Option<ResidentImport>,
    /// Refusals before anything was read: VALIDATION on `csv` (too large, not a CSV we can read,
    /// a missing column) or `source`. Invalid rows are not refusals: they are the import's
    /// `errors` (status REJECTED, or COMPLETED with `importValidRows`).
    errors: Vec<UserError>,
}

/// Imports (API key scope `imports:write`; city admins and city staff).
#[derive(Default)]
pub struct ImportMutation;

#[Object]
impl ImportMutation {
    /// Imports eligible residents (upserted by ticket number; a row whose values did not change
    /// is not touched). Runs within the request and answers the finished import; audited
    /// (`residents.import`, or `residents.import.rejected`).
    async fn start_resident_import(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The file and how to import it.")] input: StartResidentImportInput,
    ) -> Result<StartResidentImportPayload> {
        let pool = ctx.data::<PgPool>()?;
        let tenant = tenants::find_by_slug(pool, &city)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("city".into()))?;
        let mut scope = auth::enter(ctx, tenant.id, Obj::Imports, Act::Write).await?;
        match import_runs::run(
            &mut scope,
            input.csv.as_bytes(),
            input.import_valid_rows,
            &input.source,
        )
        .await
        {
            Ok(run) => {
                scope.commit().await.map_err(ApiError::from)?;
                Ok(StartResidentImportPayload {
                    resident_import: Some(ResidentImport(run)),
                    errors: Vec::new(),
                })
            }
            Err(RunError::Database(e)) => Err(ApiError::from(e).into()),
            Err(e) => {
                let field = if matches!(e, RunError::BadSource) {
                    "source"
                } else {
                    "csv"
                };
                Ok(StartResidentImportPayload {
                    resident_import: None,
                    errors: vec![UserError::new("VALIDATION", e.to_string(), Some(field))],
                })
            }
        }
    }
}
