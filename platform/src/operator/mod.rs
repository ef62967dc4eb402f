//! The platform operator's work on whole cities: export every row of one city to an archive, delete
//! a city (offboarding) and import an archive into another database (docs/operations.md, "Moving
//! and removing a city"). The CLI (`yoyaku tenant export | delete | import`) parses arguments,
//! calls one function here and prints.
//!
//! Rules:
//! * **What a city's rows are** is read from the catalog, never listed by hand: every table with a
//!   `tenant_id` column ([`catalog::tenant_tables`]), plus the city's registry row (`tenants`) and
//!   its authorization rules (`authz_rules` whose domain is the city). A table added by a later
//!   migration is exported, deleted and imported without touching this code.
//! * **Run as the owning role** (`database.url`): the runtime role may not delete audit entries.
//!   Each operation still sets `app.tenant_id` for its transaction (so row-level security, forced
//!   on the owner too, shows exactly that city) and filters by `tenant_id` as well.
//! * **Final invoices stay immutable** for the application: only a transaction of a role that owns
//!   the invoice tables and that has set `yoyaku.operator_tenant` to the city may delete them or
//!   re-insert their lines (`operator_moves_tenant`, migration `20261203000001`).
//! * **Retention before deletion** ([`offboard::delete`]): the slug typed again as confirmation, the
//!   city not active (suspend it first) and no live booking on a slot that has not started; every
//!   reason is named. Everything goes in one transaction: all rows or none.
//! * **Import only into a database without the city** (same id, slug or local-government code is
//!   refused) and at the same schema version as the archive; one transaction; the row counts of the
//!   archive's trailer are checked before commit, so a truncated file imports nothing.
//! * **Audited**: each operation writes a `platform_audit_log` entry (`tenant.export`,
//!   `tenant.delete`, `tenant.import`) with the counts; delete and import in their own transaction.

pub mod archive;
pub mod catalog;
pub mod offboard;

use crate::staff::authz::Actor;

/// Why an operator action on a city did not happen; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no municipality with slug {0:?} (see `yoyaku tenant list`)")]
    UnknownSlug(String),
    #[error("type the slug again to confirm the deletion: --confirm {0}")]
    NotConfirmed(String),
    #[error("{slug} cannot be deleted yet: {}", reasons.join("; "))]
    Retained { slug: String, reasons: Vec<String> },
    #[error("not a Yoyaku tenant archive: {0}")]
    BadArchive(String),
    #[error(
        "the archive was written at schema version {archive}, this database is at {database}: \
         migrate both to the same release first"
    )]
    SchemaMismatch { archive: i64, database: i64 },
    #[error("this database already has {0}; import only into a database without the city")]
    AlreadyThere(String),
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error("could not read or write the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The actor of a command-line action (`cli (<unix user>)` in the audit log).
pub fn cli_actor(user: &str) -> Actor {
    Actor {
        subject: "system".into(),
        label: format!("cli ({user})"),
        ip: None,
    }
}

/// Sets the transaction-local settings of an operator transaction on `tenant`: the tenant scope (row-
/// level security) and the operator marker the invoice triggers accept from the owning role.
async fn enter_tenant(
    conn: &mut sqlx::PgConnection,
    tenant: uuid::Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('app.tenant_id', $1, true), set_config('yoyaku.operator_tenant', $1, true)",
    )
    .bind(tenant.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
