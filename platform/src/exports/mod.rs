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
//! * **Jobs**: an `export_jobs` row (the record staff see: states queued → running → done |
//!   failed, then expired) and a task of the job runtime's exports queue ([`crate::jobs::EXPORTS`])
//!   queued in the same transaction. A running export whose worker vanished is started again when
//!   the runtime re-enqueues its task (three attempts). `rows_done` is updated after every batch.
//! * **Files** live in the database (`export_chunks`, 1 MiB bytea chunks): every server process
//!   can serve every download, row-level security covers the files like any tenant data, and
//!   expiry is a DELETE: finishing an export queues its expiry task, due at `expires_at`, which
//!   marks it expired and deletes its chunks (no sweep over every city).
//! * **Audit**: creating and downloading are audited; downloads only through [`open_download`].

//!
//! Files: [`kinds`] (what and how), [`jobs`] (the staff side), [`worker`] (the background side),
//! [`spreadsheet`] (the Excel and CSV writers every download uses, statistics and invoices too).

pub mod jobs;
pub mod kinds;
pub mod spreadsheet;
pub mod worker;

pub use jobs::{
    Download, ExportJob, ExportJobError, ExportStatus, chunks, count, create, get, list,
    open_download, page,
};
pub use kinds::{ExportFormat, ExportKind, Plan};
pub use worker::{BATCH_ROWS, CHUNK_BYTES, ExportTask, ExportWorker, MAX_ATTEMPTS};
