//! Exports over GraphQL, through the admin UI's platform functions (`platform::exports`):
//! `startExport` (scope `exports:write`), `city { export(id) }` and `city { exports }` (scope
//! `exports:read`), with a download link that takes the same API key
//! (`GET /graphql/exports/{city}/{id}`, [`crate::download`]).

use crate::scalars::DateTime;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use chrono::Utc;
use platform::exports::{self, ExportFormat, ExportJob, ExportJobError, ExportKind};
use platform::staff::authz::{Act, Object as Obj};
use sqlx::PgPool;
use tenants::TenantId;
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::city_bookings::{PageInfo, UserError};
use crate::scalars::Date;

/// What an export contains (docs/exports.md).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ExportKindValue {
    /// Live bookings of one venue on one local day (needs `venueId` and `date`).
    BookedList,
    /// Eligible residents without a live booking.
    UnbookedResidents,
    /// Every booking, live and cancelled.
    BookingLedger,
    /// Every vaccination recorded at intake, with the side effects of that visit.
    VaccinationRecords,
}

/// The file format.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ExportFileFormat {
    /// Excel (xlsx).
    Xlsx,
    /// CSV in UTF-8 with a byte-order mark (Excel opens it correctly).
    #[graphql(name = "CSV_UTF8")]
    CsvUtf8,
    /// CSV in Shift_JIS.
    CsvShiftJis,
}

impl From<ExportFileFormat> for ExportFormat {
    fn from(f: ExportFileFormat) -> Self {
        match f {
            ExportFileFormat::Xlsx => Self::Xlsx,
            ExportFileFormat::CsvUtf8 => Self::CsvUtf8,
            ExportFileFormat::CsvShiftJis => Self::CsvShiftJis,
        }
    }
}

/// Where an export stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "platform::exports::ExportStatus")]
pub enum ExportStatus {
    /// Waiting for a worker.
    Queued,
    /// Being written (`progress` moves).
    Running,
    /// Ready to download until `expiresAt`.
    Done,
    /// Could not be written (`error` says why).
    Failed,
    /// Past `expiresAt`: the file was deleted; start the export again.
    Expired,
}

/// An export job and, once done, its download link.
#[derive(SimpleObject)]
pub struct Export {
    /// The export's id.
    id: Uuid,
    /// What it contains.
    kind: ExportKindValue,
    /// The venue of a BOOKED_LIST export.
    venue_id: Option<Uuid>,
    /// The local day of a BOOKED_LIST export.
    date: Option<Date>,
    /// The file format.
    format: ExportFileFormat,
    /// Where it stands.
    status: ExportStatus,
    /// Percent written, when the number of rows is known (100 when done).
    progress: Option<i32>,
    /// Rows to write (known once the worker counted them).
    rows_total: Option<i64>,
    /// Rows written so far.
    rows_done: i64,
    /// Why it failed.
    error: Option<String>,
    /// The file's name, once written.
    file_name: Option<String>,
    /// The file's size in bytes, once written.
    byte_size: Option<i64>,
    /// Who started it (a staff member's e-mail or `API key <name>`).
    created_by: String,
    /// When it was started.
    created_at: DateTime,
    /// When it finished.
    finished_at: Option<DateTime>,
    /// The file can be downloaded until then.
    expires_at: Option<DateTime>,
    /// Where to download the file while it is DONE and not expired (null otherwise): a path on
    /// this server, `GET` with the same `Authorization: Bearer yk_…` (scope `exports:read`);
    /// each download is audited.
    download_url: Option<String>,
}

impl Export {
    fn new(job: ExportJob, city: &str) -> Self {
        let kind = ExportKind::from_stored(&job.kind, &job.params);
        let (venue_id, date) = match &kind {
            Some(ExportKind::BookedList { venue_id, date }) => {
                (Some(*venue_id), Some((*date).into()))
            }
            _ => (None, None),
        };
        let status = ExportStatus::from(job.status(Utc::now()));
        Self {
            id: job.id,
            kind: match kind {
                Some(ExportKind::BookedList { .. }) => ExportKindValue::BookedList,
                Some(ExportKind::UnbookedResidents) => ExportKindValue::UnbookedResidents,
                Some(ExportKind::VaccinationRecords) => ExportKindValue::VaccinationRecords,
                _ => ExportKindValue::BookingLedger,
            },
            venue_id,
            date,
            format: match ExportFormat::parse(&job.format) {
                Some(ExportFormat::CsvUtf8) => ExportFileFormat::CsvUtf8,
                Some(ExportFormat::CsvShiftJis) => ExportFileFormat::CsvShiftJis,
                _ => ExportFileFormat::Xlsx,
            },
            progress: job.percent().map(|p| p as i32),
            rows_total: job.rows_total,
            rows_done: job.rows_done,
            error: job.error,
            file_name: job.file_name,
            byte_size: job.byte_size,
            created_by: job.created_by,
            created_at: job.created_at.into(),
            finished_at: job.finished_at.map(DateTime),
            expires_at: job.expires_at.map(DateTime),
            download_url: (status == ExportStatus::Done)
                .then(|| crate::download::export_path(city, job.id)),
            status,
        }
    }
}

/// One export of a page and the cursor to continue after it.
#[derive(SimpleObject)]
pub struct ExportEdge {
    /// Opaque; pass it as `after` to continue after this export.
    cursor: String,
    /// The export.
    node: Export,
}

/// A page of the city's exports, newest first (by id: the order they were started in).
pub struct ExportConnection {
    tenant: TenantId,
    edges: Vec<ExportEdge>,
    page_info: PageInfo,
}

/// A page of the city's exports, newest first (by id: the order they were started in).
#[Object]
impl ExportConnection {
    /// The exports of this page, newest first.
    async fn edges(&self) -> &[ExportEdge] {
        &self.edges
    }

    /// Where this page ends and whether more follow.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many exports the city has (expired ones included).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Exports, Act::Read).await?;
        let n = exports::count(&mut scope).await.map_err(ApiError::from)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(n)
    }
}

fn cursor_of(id: Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("export:{id}"))
}

fn parse_cursor(cursor: &str) -> Result<Uuid, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|t| {
            t.strip_prefix("export:")
                .and_then(|id| Uuid::try_parse(id).ok())
        })
        .ok_or_else(|| {
            ApiError::Validation(
                "`after` is not a cursor of this list: pass an `endCursor` or edge `cursor` \
                 exactly as it was returned"
                    .into(),
            )
        })
}

/// `city { exports(first, after) }`.
pub async fn page(
    ctx: &Context<'_>,
    tenant: TenantId,
    city: &str,
    first: i64,
    after: Option<String>,
) -> Result<ExportConnection> {
    let mut scope = auth::enter(ctx, tenant, Obj::Exports, Act::Read).await?;
    if !(1..=200).contains(&first) {
        return Err(ApiError::Validation("`first` must be between 1 and 200".into()).into());
    }
    let before = after.as_deref().map(parse_cursor).transpose()?;
    let mut jobs = exports::page(&mut scope, before, first)
        .await
        .map_err(ApiError::from)?;
    scope.commit().await.map_err(ApiError::from)?;
    let has_next = jobs.len() as i64 > first;
    jobs.truncate(first as usize);
    let edges: Vec<ExportEdge> = jobs
        .into_iter()
        .map(|j| ExportEdge {
            cursor: cursor_of(j.id),
            node: Export::new(j, city),
        })
        .collect();
    Ok(ExportConnection {
        tenant,
        page_info: PageInfo {
            has_next_page: has_next,
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
    })
}

/// `city { export(id) }`: null when the city has no such export.
pub async fn get(
    ctx: &Context<'_>,
    tenant: TenantId,
    city: &str,
    id: Uuid,
) -> Result<Option<Export>> {
    let mut scope = auth::enter(ctx, tenant, Obj::Exports, Act::Read).await?;
    let job = exports::get(&mut scope, id).await.map_err(ApiError::from)?;
    scope.commit().await.map_err(ApiError::from)?;
    Ok(job.map(|j| Export::new(j, city)))
}

/// Start an export.
#[derive(InputObject)]
pub struct StartExportInput {
    /// What to export.
    kind: ExportKindValue,
    /// The file format (default XLSX).
    #[graphql(default_with = "ExportFileFormat::Xlsx")]
    format: ExportFileFormat,
    /// The venue (BOOKED_LIST only; required there).
    venue_id: Option<Uuid>,
    /// The local day (BOOKED_LIST only; required there).
    date: Option<Date>,
}

/// What `startExport` did: the queued export, or why not (`errors`, nothing queued).
#[derive(SimpleObject)]
pub struct StartExportPayload {
    /// The export, QUEUED (null when `errors` is not empty). Poll `city { export(id:) }` until it
    /// is DONE, then download `downloadUrl`.
    export: Option<Export>,
    /// Refusals the caller can act on: VALIDATION (`venueId` / `date` missing for BOOKED_LIST,
    /// or given for another kind), NOT_FOUND (`venueId` is not a venue of the city).
    errors: Vec<UserError>,
}

fn refused(code: &str, message: &str, field: &str) -> Result<StartExportPayload> {
    Ok(StartExportPayload {
        export: None,
        errors: vec![UserError::new(code, message, Some(field))],
    })
}

/// Exports (API key scope `exports:write`; city admins and city staff).
#[derive(Default)]
pub struct ExportMutation;

#[Object]
impl ExportMutation {
    /// Queues an export (audited, `export.create`); a background worker writes the file.
    async fn start_export(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "What to export and in which format.")] input: StartExportInput,
    ) -> Result<StartExportPayload> {
        let pool = ctx.data::<PgPool>()?;
        let tenant = tenants::find_by_slug(pool, &city)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("city".into()))?;
        let mut scope = auth::enter(ctx, tenant.id, Obj::Exports, Act::Write).await?;
        let kind = match (input.kind, input.venue_id, input.date) {
            (ExportKindValue::BookedList, Some(venue_id), Some(date)) => ExportKind::BookedList {
                venue_id,
                date: date.0,
            },
            (ExportKindValue::BookedList, None, _) => {
                return refused(
                    "VALIDATION",
                    "a BOOKED_LIST export needs `venueId`",
                    "venueId",
                );
            }
            (ExportKindValue::BookedList, _, None) => {
                return refused("VALIDATION", "a BOOKED_LIST export needs `date`", "date");
            }
            (_, Some(_), _) => {
                return refused(
                    "VALIDATION",
                    "`venueId` is only for BOOKED_LIST exports",
                    "venueId",
                );
            }
            (_, _, Some(_)) => {
                return refused(
                    "VALIDATION",
                    "`date` is only for BOOKED_LIST exports",
                    "date",
                );
            }
            (ExportKindValue::UnbookedResidents, None, None) => ExportKind::UnbookedResidents,
            (ExportKindValue::BookingLedger, None, None) => ExportKind::BookingLedger,
            (ExportKindValue::VaccinationRecords, None, None) => ExportKind::VaccinationRecords,
        };
        match exports::create(&mut scope, &kind, input.format.into()).await {
            Ok(id) => {
                let job = exports::get(&mut scope, id).await.map_err(ApiError::from)?;
                scope.commit().await.map_err(ApiError::from)?;
                Ok(StartExportPayload {
                    export: job.map(|j| Export::new(j, &tenant.slug)),
                    errors: Vec::new(),
                })
            }
            Err(ExportJobError::NotFound) => {
                refused("NOT_FOUND", "no such venue in this city", "venueId")
            }
            Err(ExportJobError::Database(e)) => Err(ApiError::from(e).into()),
            Err(e) => refused("VALIDATION", &e.to_string(), "kind"),
        }
    }
}
