//! Export jobs (docs/exports.md): staff queue an export, a background worker writes it, staff with
//! the right role download it until it expires.
//!
//! * **Kinds** ([`ExportKind`]): each is one arm of [`ExportKind::plan`] — a Japanese title (sheet
//!   and file name), typed columns and one SQL query whose result columns match them. Adding a kind
//!   is one enum variant and one arm.
//! * **Formats**: Excel through [`spreadsheet::XlsxExport`] (frozen header, auto-filter, real
//!   dates, Japanese sheet name, constant-memory mode) or CSV through [`spreadsheet::CsvExport`]
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

//!
//! Files: [`kinds`] (what and how), [`jobs`] (the staff side), [`worker`] (the background side),
//! [`spreadsheet`] (the Excel and CSV writers every download uses, statistics and invoices too).

pub mod jobs;
pub mod kinds;
pub mod spreadsheet;
pub mod worker;

pub use jobs::{Download, ExportJob, ExportJobError, chunks, create, get, list, open_download};
pub use kinds::{ExportFormat, ExportKind, Plan};
pub use worker::{BATCH_ROWS, CHUNK_BYTES, ExportWorker, LEASE_SECS, MAX_ATTEMPTS, TickReport};
